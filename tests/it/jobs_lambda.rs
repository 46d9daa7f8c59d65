//! The job Lambdas' event paths: recorded SQS and EventBridge events from tests/events/
//! through the same `sqs_batch` + consumer (or `datto_sync::lambda_event`) their `main.rs` runs.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use deskbridge::ports::QueueName;
use deskbridge::services::consumers::sqs_batch;
use serde_json::json;

use crate::desk::{desk_on, fixture_json, fixture_time, Desk, UID};
use crate::scripted_datto::{ScriptedConnect, ScriptedDatto};

fn event<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A desk where ticket 1042 is the open alert ticket of the fixture alert, closed by an
/// agent (so its close is pending), and ticket 1057's alert is unknown to the store.
async fn desk_with_ticket_1042() -> (Desk, tempfile::TempDir, Arc<ScriptedDatto>) {
    let clock = Arc::new(deskbridge::ports::ManualClock::new(fixture_time()));
    let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = desk_on(records.clone(), clock);
    d.configure_datto().await;
    // Make the next ticket number 1042, as in the fixture story.
    records.increment("counter", "ticket", 1041).await.unwrap();
    let (_, r) = d.webhook(&fixture_json("webhook-raised.json")).await;
    assert_eq!(r["ticket_id"], 1042);
    d.ctx.store.close_ticket_by_agent(1042, "fixed", None).await.unwrap();
    let datto = ScriptedDatto::with_open(UID);
    d.ctx.datto = Arc::new(ScriptedConnect(datto.clone()));
    (d, dir, datto)
}

#[tokio::test]
async fn the_ticket_closed_batch_reports_exactly_the_failing_records() {
    let (d, _dir, datto) = desk_with_ticket_1042().await;
    // Ticket 1057's message names an alert Datto answers 429 for; the third is malformed.
    let ev: SqsEvent = event("ticket-close-propagator.json");
    let c8 = "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7";
    d.ctx.store.records().increment("counter", "ticket", 14).await.unwrap();
    let mut other = fixture_json("webhook-raised.json");
    other["alert_uid"] = json!(c8);
    // Another device, so noise control does not relate it to ticket 1042.
    other["device_uid"] = json!("d4c3b2a1-0000-4000-8000-000000000002");
    other["device_hostname"] = json!("ACME-WS02");
    let (_, r) = d.webhook(&other).await;
    assert_eq!(r["ticket_id"], 1057);
    d.ctx.store.close_ticket_by_agent(1057, "", None).await.unwrap();
    datto
        .alerts
        .lock()
        .unwrap()
        .insert(c8.into(), (false, Default::default()));
    let state = d.ctx.clone();
    // 1042 first (succeeds); then 1057's first Datto call answers 429 and the third record
    // is malformed: exactly those two come back.
    let mut first_only = ev.clone();
    first_only.records.truncate(1);
    let first = sqs_batch(&state, QueueName::TicketClosed, first_only).await;
    assert!(first.batch_item_failures.is_empty());
    datto.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    let mut rest = ev;
    rest.records.remove(0);
    let response = sqs_batch(&state, QueueName::TicketClosed, rest).await;
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        vec![
            "0d6c2b1a-7e3f-4c9d-8a5b-6f1e2d3c4b5a".to_string(),
            "a9e4d7c2-5b1f-4a38-9e6d-2c7f0b8a1d34".to_string()
        ]
    );
    assert_eq!(
        datto.resolves.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "1042 resolved once"
    );
    let json = serde_json::to_value(&response).unwrap();
    assert!(json["batchItemFailures"][0]["itemIdentifier"].is_string(), "{json}");
}

#[tokio::test]
async fn the_alert_enrich_event_adds_the_details_once() {
    let (d, _dir, _datto) = desk_with_ticket_1042().await;
    let ev: SqsEvent = event("alert-enricher.json");
    let response = sqs_batch(&d.ctx, QueueName::AlertEnrich, ev.clone()).await;
    assert!(response.batch_item_failures.is_empty());
    sqs_batch(&d.ctx, QueueName::AlertEnrich, ev).await;
    let (_, t) = d.get("/api/tickets/1042").await;
    let details = t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["note"].as_str().unwrap().starts_with("Details from Datto RMM"))
        .count();
    assert_eq!(details, 1);
}

#[tokio::test]
async fn the_schedule_event_runs_a_sync_or_says_why_not() {
    let (mut d, _dir, _datto) = desk_with_ticket_1042().await;
    let schedule: serde_json::Value = event("scheduled-alert-sync.json");
    let _typed: aws_lambda_events::event::eventbridge::EventBridgeEvent<serde_json::Value> =
        serde_json::from_value(schedule.clone()).unwrap();
    let summary = schedule_then_run(&d, &schedule).await;
    assert_eq!(summary["skipped"], false, "{summary}");
    assert_eq!(summary["closes_requeued"], 0);
    assert_eq!(
        (summary["state"].as_str(), summary["trigger"].as_str()),
        (Some("done"), Some("schedule"))
    );
    d.ctx.datto = Arc::new(deskbridge::ports::NoDattoApi);
    let summary = schedule_then_run(&d, &schedule).await;
    assert_eq!(
        (summary["skipped"].as_bool(), summary["reason"].as_str()),
        (Some(true), Some("Datto API not configured"))
    );
    assert_eq!(summary["state"], "skipped");
}

/// The schedule event queues a run; the `datto-sync` SQS event that follows (built from
/// the queued message, as Lambda would deliver it) runs it. Answers the stored run.
async fn schedule_then_run(d: &Desk, schedule: &serde_json::Value) -> serde_json::Value {
    use deskbridge::services::datto_sync::lambda_event;
    let queued = lambda_event(&d.ctx, schedule.clone()).await.unwrap();
    assert_eq!(queued["state"], "queued", "{queued}");
    let msgs = d.ctx.queue.receive(QueueName::DattoSync, 10).await.unwrap();
    assert_eq!(msgs.len(), 1);
    let sqs = json!({"Records": [{
        "messageId": msgs[0].id, "receiptHandle": msgs[0].receipt, "body": msgs[0].body,
        "eventSource": "aws:sqs", "awsRegion": "eu-west-1",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:deskbridge-datto-sync",
    }]});
    let answer = lambda_event(&d.ctx, sqs).await.unwrap();
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    d.ctx.queue.ack(QueueName::DattoSync, &msgs[0].receipt).await.unwrap();
    let (s, run) = d.get(&format!("/api/sync/datto/runs/{}", queued["run_id"])).await;
    assert_eq!(s, 200, "{run}");
    run
}

/// [`desk_with_ticket_1042`] with its queue on SQS in moto (fresh queues); `None` without moto.
async fn desk_with_ticket_1042_on_sqs() -> Option<(
    Arc<dyn deskbridge::ports::Queue>,
    Desk,
    tempfile::TempDir,
    Arc<ScriptedDatto>,
)> {
    let endpoint = deskbridge_tests::emulators::moto()?;
    let client = aws_sdk_sqs::Client::new(&deskbridge_tests::emulators::aws_config(&endpoint).await);
    let prefix = format!("{}-", deskbridge_tests::emulators::unique("deskbridge"));
    let queues = deskbridge::adapters::sqs::create_queues(&client, &prefix, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let sqs: Arc<dyn deskbridge::ports::Queue> = Arc::new(deskbridge::adapters::sqs::SqsQueue::new(client, queues));
    let (mut d, dir, datto) = desk_with_ticket_1042().await;
    d.ctx.queue = sqs.clone();
    Some((sqs, d, dir, datto))
}

/// On the SQS path a message that can never succeed goes to the dead-letter queue at once:
/// it is not reported as a batch failure (Lambda deletes it), and the DLQ holds it after
/// its first receive, against real SQS semantics (moto).
#[tokio::test]
async fn a_permanent_failure_on_the_sqs_path_is_dead_lettered_at_once() {
    let Some((sqs, d, _dir, datto)) = desk_with_ticket_1042_on_sqs().await else {
        return;
    };
    sqs.send(QueueName::TicketClosed, "this is not json").await.unwrap();
    sqs.send(
        QueueName::TicketClosed,
        &json!({"ticket_id": 1042, "alert_uid": UID}).to_string(),
    )
    .await
    .unwrap();
    let mut msgs = Vec::new();
    for _ in 0..5 {
        msgs.extend(sqs.receive(QueueName::TicketClosed, 10).await.unwrap());
        if msgs.len() == 2 {
            break;
        }
    }
    assert_eq!(msgs.len(), 2);
    let records: Vec<serde_json::Value> = msgs
        .iter()
        .map(|m| json!({"messageId": m.id, "receiptHandle": m.receipt, "body": m.body, "eventSource": "aws:sqs"}))
        .collect();
    let ev: SqsEvent = serde_json::from_value(json!({ "Records": records })).unwrap();
    let response = sqs_batch(&d.ctx, QueueName::TicketClosed, ev).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(datto.resolves.load(std::sync::atomic::Ordering::SeqCst), 1);
    let dead = sqs.dead_letters(QueueName::TicketClosed).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, "this is not json");
    assert!(
        sqs.receive(QueueName::TicketClosed, 10).await.unwrap().is_empty(),
        "the poison message left the source queue"
    );
}

/// On the SQS path a retryable failure is a batch item failure until the message's last
/// receive (SQS's `ApproximateReceiveCount`); then it is dead-lettered with the failure's
/// text (a message attribute, since SQS's redrive would keep no reason), against moto.
#[tokio::test]
async fn a_retryable_failure_on_its_last_receive_is_dead_lettered_with_why_on_the_sqs_path() {
    let Some((sqs, d, _dir, datto)) = desk_with_ticket_1042_on_sqs().await else {
        return;
    };
    datto.fail_next.store(1_000, std::sync::atomic::Ordering::SeqCst);
    let body = json!({"ticket_id": 1042, "alert_uid": UID}).to_string();
    sqs.send(QueueName::TicketClosed, &body).await.unwrap();
    let event = |m: &deskbridge::ports::ReceivedMessage, receives: u32| -> SqsEvent {
        serde_json::from_value(json!({"Records": [{
            "messageId": m.id, "receiptHandle": m.receipt, "body": m.body, "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": receives.to_string()}}]}))
        .unwrap()
    };
    let m = sqs.receive(QueueName::TicketClosed, 1).await.unwrap().remove(0);
    let first = sqs_batch(&d.ctx, QueueName::TicketClosed, event(&m, 1)).await;
    assert_eq!(
        first.batch_item_failures.len(),
        1,
        "retried before its last receive: {first:?}"
    );
    assert!(sqs.dead_letters(QueueName::TicketClosed).await.unwrap().is_empty());
    sqs.release(QueueName::TicketClosed, &m.receipt, std::time::Duration::ZERO)
        .await
        .unwrap();

    let m = sqs.receive(QueueName::TicketClosed, 1).await.unwrap().remove(0);
    let last = sqs_batch(
        &d.ctx,
        QueueName::TicketClosed,
        event(&m, deskbridge::ports::MAX_RECEIVES),
    )
    .await;
    assert!(
        last.batch_item_failures.is_empty(),
        "dead-lettered, so done for Lambda: {last:?}"
    );
    let dead = sqs.dead_letters(QueueName::TicketClosed).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, body);
    assert_eq!(
        dead[0].error.as_deref(),
        Some("gave up after 5 receives; the last failed with: retryable failure: Datto RMM: 429 Too Many Requests")
    );
    assert!(sqs.receive(QueueName::TicketClosed, 10).await.unwrap().is_empty());
}
