//! The Datto jobs through the real REST client against the stateful fake Datto: sync,
//! confirmed closes, exactly one resolve per agent close, 429 storms inside the budget, the
//! 403 block, 5xx retries. Waits go through a recording sleeper on the scenario's clock.

use std::sync::Arc;
use std::time::Duration;

use deskbridge::datto::connect::SettingsConnect;
use deskbridge::datto::fake::{Failure, FakeDatto, RecordingSleeper};
use deskbridge::datto::{BudgetConfig, RequestBudget};
use deskbridge::ports::{Clock, QueueName};
use serde_json::json;

use crate::desk::{fixture_json, on_both_stores, Desk, UID};

pub(crate) struct Wired {
    pub(crate) fake: FakeDatto,
    pub(crate) sleeper: Arc<RecordingSleeper>,
}

/// Point the desk's Datto settings at a fake seeded with the fixtures.
pub(crate) async fn wire(d: &mut Desk, per_minute: u32) -> Wired {
    wire_with_timeout(d, per_minute, None).await
}

/// [`wire`] with this per-call timeout instead of the client's 20 s.
pub(crate) async fn wire_with_timeout(d: &mut Desk, per_minute: u32, timeout: Option<Duration>) -> Wired {
    d.configure_datto().await;
    let clock: Arc<dyn Clock> = d.clock.clone();
    let fake = FakeDatto::start_with_clock(clock.clone()).await;
    fake.seed_fixtures();
    let (_, mut cfg) = d.get("/api/config/datto").await;
    cfg["api_url"] = json!(fake.base_url());
    cfg["api_key"] = json!(FakeDatto::API_KEY);
    cfg["api_secret"] = json!(FakeDatto::API_SECRET);
    assert_eq!(d.put("/api/config/datto", cfg).await.0, 200);
    let sleeper = RecordingSleeper::new(d.clock.clone());
    let budget = RequestBudget::shared(
        BudgetConfig {
            per_minute,
            ..BudgetConfig::default()
        },
        d.ctx.store.records().clone(),
        clock,
    );
    let mut connect = SettingsConnect::new(d.ctx.store.clone(), d.ctx.secrets.clone(), true)
        .with_sleeper(sleeper.clone())
        .with_budget(budget);
    if let Some(t) = timeout {
        connect = connect.with_timeout(t);
    }
    d.ctx.datto = Arc::new(connect);
    Wired { fake, sleeper }
}

async fn the_sync_against_the_fake_imports_sites_fills_gaps_and_closes_confirmed(mut d: Desk) {
    let w = wire(&mut d, 500).await;
    let (_, t) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!(t["ok"], true, "{t}");
    let before = w.fake.request_count();
    let (s, summary) = d.sync_now().await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(
        (&summary["sites_created"], &summary["tickets_created"]),
        (&json!(3), &json!(3)),
        "{summary}"
    );
    assert_eq!(
        summary["requests_used"].as_u64().unwrap() as usize,
        w.fake.request_count() - before,
        "every request counted"
    );
    // The poll ticket of a missed webhook carries Datto's facts.
    let (_, by_uid) = d.get(&format!("/api/tickets?alert_uid={UID}")).await;
    assert_eq!(by_uid["items"][0]["asset"], "ACME-DC01");
    assert_eq!(by_uid["items"][0]["summary"], "CPU usage 93.4% on ACME-DC01");
    // Re-run: nothing new; the webhook for a polled alert is a duplicate.
    let (_, again) = d.sync_now().await;
    assert_eq!(
        (&again["sites_created"], &again["tickets_created"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(
        d.webhook(&fixture_json("webhook-raised.json")).await.1["result"],
        "duplicate"
    );
    // Resolved in Datto → closed after the confirming GET.
    assert!(w.fake.resolve_in_datto(UID));
    let (_, s3) = d.sync_now().await;
    assert_eq!(s3["tickets_closed"], 1, "{s3}");
    let (_, by_uid) = d.get(&format!("/api/tickets?alert_uid={UID}")).await;
    assert_eq!(
        (&by_uid["items"][0]["status"], &by_uid["items"][0]["close_origin"]),
        (&json!("closed"), &json!("datto"))
    );
    assert_eq!(
        w.fake.count(&format!("/api/v2/alert/{UID}/resolve")),
        0,
        "a Datto resolve never calls back"
    );
}

async fn an_agent_close_makes_exactly_one_resolve_call(mut d: Desk) {
    let w = wire(&mut d, 500).await;
    let (_, r) = d.webhook(&fixture_json("webhook-raised.json")).await;
    let tid = r["ticket_id"].as_u64().unwrap();
    assert_eq!(
        d.post(&format!("/api/tickets/{tid}/close"), json!({"note": "done"}))
            .await
            .0,
        200
    );
    assert_eq!(d.drain(QueueName::TicketClosed).await.1, 0);
    assert_eq!(w.fake.count(&format!("/api/v2/alert/{UID}/resolve")), 1);
    assert_eq!(w.fake.alert(UID).unwrap()["resolved"], true);
    // Datto's resolved webhook afterwards is a no-op; a redelivery calls nothing.
    assert_eq!(
        d.webhook(&fixture_json("webhook-resolved.json")).await.1["result"],
        "duplicate"
    );
    d.ctx
        .queue
        .send(
            QueueName::TicketClosed,
            &json!({"ticket_id": tid, "alert_uid": UID}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(d.drain(QueueName::TicketClosed).await.1, 0);
    assert_eq!(w.fake.count(&format!("/api/v2/alert/{UID}/resolve")), 1);
}

async fn a_429_storm_backs_off_succeeds_and_never_exceeds_the_budget(mut d: Desk) {
    let w = wire(&mut d, 12).await;
    w.fake.fail_next(3, Failure::TooManyRequests { retry_after: Some(7) });
    let (s, summary) = d.sync_now().await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["tickets_created"], 3, "{summary}");
    let slept = w.sleeper.slept();
    assert!(
        slept.iter().filter(|d| **d >= Duration::from_secs(7)).count() >= 3,
        "backed off at least Retry-After: {slept:?}"
    );
    assert!(
        w.fake.max_requests_in_rolling_minute() <= 12,
        "budget exceeded: {}",
        w.fake.max_requests_in_rolling_minute()
    );
}

#[tokio::test]
async fn a_403_block_stops_every_datto_call_for_five_minutes() {
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = crate::desk::desk_on(records, clock);
    let w = wire(&mut d, 500).await;
    // A token first (the test call), then 403 on two different API paths: an IP block.
    assert_eq!(d.post("/api/config/datto/test", json!({})).await.1["ok"], true);
    w.fake.fail_next_on("/api/v2/account/sites", 1, Failure::Forbidden);
    w.fake.fail_next_on("/api/v2/account/alerts", 1, Failure::Forbidden);
    let (_, first) = d.sync_now().await;
    assert!(
        !first["errors"].as_array().map(Vec::is_empty).unwrap_or(true),
        "{first}"
    );
    let before = w.fake.request_count();
    d.clock.advance(Duration::from_secs(120));
    let (_, blocked) = d.sync_now().await;
    assert_eq!(
        w.fake.request_count(),
        before,
        "no call reaches Datto during the block: {blocked}"
    );
    d.clock.advance(Duration::from_secs(200));
    let (_, after) = d.sync_now().await;
    assert_eq!(after["tickets_created"], 3, "calls resume after five minutes: {after}");
}

#[tokio::test]
async fn server_errors_are_retried_a_bounded_number_of_times() {
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = crate::desk::desk_on(records, clock);
    let w = wire(&mut d, 500).await;
    w.fake.fail_next(2, Failure::ServerError(503));
    let (_, ok) = d.sync_now().await;
    assert_eq!(ok["tickets_created"], 3, "two 503s are retried: {ok}");
    let before = w.fake.request_count();
    w.fake.fail_next(50, Failure::ServerError(502));
    let (_, failed) = d.sync_now().await;
    assert!(!failed["errors"].as_array().unwrap().is_empty(), "{failed}");
    let used = w.fake.request_count() - before;
    // Three calls (request rate, sites, open alerts), each tried at most 1 + 3 times.
    assert!(used <= 12, "retries are bounded, {used} requests");
}

async fn a_webhook_ticket_is_enriched_from_the_fake_and_a_failure_only_delays_it(mut d: Desk) {
    let w = wire(&mut d, 500).await;
    let (_, r) = d.webhook(&fixture_json("webhook-raised.json")).await;
    assert_eq!(r["result"], "created");
    // More 503s than the client's own retries: the message fails and stays queued.
    w.fake.fail_next(4, Failure::ServerError(503));
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 1));
    let ticket = format!("/api/tickets/{}", r["ticket_id"]);
    assert_eq!(
        d.get(&ticket).await.1["actions"].as_array().unwrap().len(),
        1,
        "the ticket is unaffected"
    );
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 0));
    let (_, t) = d.get(&ticket).await;
    let note = t["actions"][1]["note"].as_str().unwrap().to_string();
    assert!(note.starts_with("Details from Datto RMM"), "{note}");
    assert!(note.contains("CPU usage 93.4% for 15 minutes"), "{note}");
    assert!(note.contains("Hostname: ACME-DC01"), "{note}");
}

on_both_stores!(
    a_webhook_ticket_is_enriched_from_the_fake_and_a_failure_only_delays_it,
    the_sync_against_the_fake_imports_sites_fills_gaps_and_closes_confirmed,
    an_agent_close_makes_exactly_one_resolve_call,
    a_429_storm_backs_off_succeeds_and_never_exceeds_the_budget,
);
