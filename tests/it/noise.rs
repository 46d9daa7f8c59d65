//! Alert noise control wired in, on both stores: related alerts share one ticket and an
//! agent close resolves each in Datto once; recurrence; flapping; maintenance windows;
//! routing rules on every path as the preview said; suppression; and a property test of
//! random raises, resolves and agent closes through the real intake and close propagation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use deskbridge::domain::alerts::{AlertFacts, AlertUid};
use deskbridge::jobs::close_propagation::{propagate_close, sweep_pending_closes};
use deskbridge::ports::QueueName;
use serde_json::{json, Value};

use crate::desk::{fixture, on_both_stores, Desk, NowUtc, STATE};
use crate::scripted_datto::{ScriptedConnect, ScriptedDatto};

fn uid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn body(uid: &str, resolved: bool, device: &str, message: &str) -> Value {
    json!({
        "state": STATE,
        "alert_resolved": resolved,
        "alert_uid": uid,
        "alert_message": message,
        "alert_priority": "High",
        "device_uid": format!("b2e4a7c1-6f3d-4e58-a9b0-{:0>12}", device),
        "device_hostname": format!("ACME-{device}"),
        "site_uid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        "site_name": "Acme Ltd - Head Office"
    })
}

async fn raise(d: &Desk, uid: &str, device: &str, message: &str) -> Value {
    let (s, r) = d.webhook(&body(uid, false, device, message)).await;
    assert_eq!(s, 200, "{r}");
    r
}

async fn resolve(d: &Desk, uid: &str, device: &str, message: &str) -> Value {
    let (s, r) = d.webhook(&body(uid, true, device, message)).await;
    assert_eq!(s, 200, "{r}");
    r
}

fn minutes(d: &Desk, m: u64) {
    d.clock.advance(Duration::from_secs(m * 60));
}

fn use_datto(d: &mut Desk, datto: &Arc<ScriptedDatto>) {
    d.ctx.datto = Arc::new(ScriptedConnect(datto.clone()));
}

fn datto_with_open(uids: &[String]) -> Arc<ScriptedDatto> {
    let datto = ScriptedDatto::with_open(&uids[0]);
    for u in &uids[1..] {
        datto
            .alerts
            .lock()
            .unwrap()
            .insert(u.clone(), (false, AlertFacts::default()));
    }
    datto
}

fn resolve_counts(datto: &ScriptedDatto) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for u in datto.resolved_uids.lock().unwrap().iter() {
        *counts.entry(u.clone()).or_insert(0) += 1;
    }
    counts
}

fn alert_actions(ticket: &Value) -> usize {
    ticket["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "alert")
        .count()
}

fn notes(ticket: &Value) -> Vec<String> {
    ticket["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["note"].as_str().unwrap().to_string())
        .collect()
}

async fn timeline_notes(d: &Desk, uid: &str) -> Vec<String> {
    let (s, a) = d.get(&format!("/api/alerts/{uid}")).await;
    assert_eq!(s, 200, "{a}");
    a["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str().map(str::to_string))
        .collect()
}

async fn three_alerts_for_one_device_make_one_ticket_and_a_close_resolves_each_once(mut d: Desk) {
    d.configure_datto().await;
    let uids: Vec<String> = (1..=3).map(uid).collect();
    let first = raise(&d, &uids[0], "DC01", "CPU usage above 90%").await;
    let tid = first["ticket_id"].as_u64().unwrap();
    minutes(&d, 4);
    let second = raise(&d, &uids[1], "DC01", "Disk C: 95% full").await;
    minutes(&d, 5);
    let third = raise(&d, &uids[2], "DC01", "Service Spooler stopped").await;
    assert_eq!(
        (second["ticket_id"].as_u64(), third["ticket_id"].as_u64()),
        (Some(tid), Some(tid))
    );
    assert_eq!(second["result"], "updated");
    assert_eq!(second["decision"], format!("related to ticket {tid}"));
    assert_eq!(d.tickets().await.len(), 1, "one ticket");
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(alert_actions(&t), 3, "{t}");
    assert_eq!(t["noise"]["alert_uids"], json!(uids));
    assert!(timeline_notes(&d, &uids[1]).await[0].starts_with(&format!("Related to ticket {tid}")));
    let log = d.request_log("&source=datto-webhook").await;
    assert!(log.iter().any(|e| e["outcome"] == format!("related to ticket {tid}")));

    // One resolve is noted; the ticket stays open until all are resolved or an agent closes it.
    resolve(&d, &uids[0], "DC01", "CPU usage above 90%").await;
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(t["status"], "open");
    assert!(notes(&t)
        .iter()
        .any(|n| n.contains(&format!("Alert {} resolved in Datto", uids[0]))));

    let datto = datto_with_open(&uids);
    datto.resolve_in_datto(&uids[0]);
    use_datto(&mut d, &datto);
    let (s, _) = d
        .post(&format!("/api/tickets/{tid}/close"), json!({"note": "Fixed"}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(d.drain(QueueName::TicketClosed).await, (1, 0));
    let counts = resolve_counts(&datto);
    assert_eq!(
        counts,
        BTreeMap::from([(uids[1].clone(), 1), (uids[2].clone(), 1)]),
        "each open alert resolved once; the one Datto resolved itself not at all"
    );
    // Redelivery, the sweep and Datto's own resolves change nothing.
    let msg = json!({"ticket_id": tid, "alert_uid": uids[1]}).to_string();
    propagate_close(&d.ctx.store, datto.as_ref(), &msg).await.unwrap();
    propagate_close(&d.ctx.store, datto.as_ref(), &msg).await.unwrap();
    minutes(&d, 10);
    assert_eq!(
        sweep_pending_closes(&d.ctx.store, d.ctx.queue.as_ref(), d.clock.now_utc())
            .await
            .unwrap(),
        0
    );
    resolve(&d, &uids[2], "DC01", "Service Spooler stopped").await;
    assert_eq!(resolve_counts(&datto), counts);
    for u in &uids {
        let (_, a) = d.get(&format!("/api/alerts/{u}")).await;
        assert_eq!(a["state"], "resolved", "{a}");
    }
}

async fn closing_when_the_last_alert_resolves(d: Desk) {
    d.configure_datto().await;
    let (a, b) = (uid(11), uid(12));
    let tid = raise(&d, &a, "WS07", "CPU high").await["ticket_id"].as_u64().unwrap();
    minutes(&d, 1);
    raise(&d, &b, "WS07", "Memory high").await;
    resolve(&d, &b, "WS07", "Memory high").await;
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(t["status"], "open");
    let r = resolve(&d, &a, "WS07", "CPU high").await;
    assert_eq!(r["result"], "resolved");
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(
        (t["status"].as_str(), t["close_origin"].as_str()),
        (Some("closed"), Some("datto"))
    );
}

/// An alert first seen without a device uid (as an e-mail names only the hostname) is
/// counted under its hostname; a later event that adds the uid must not move it: the
/// resolve is decided on the record the raise was decided on.
async fn an_alert_first_named_by_hostname_resolves_on_its_own_device_record(d: Desk) {
    d.configure_datto().await;
    let (a, b) = (uid(61), uid(62));
    let host_only = |uid: &str, message: &str| {
        let mut v = body(uid, false, "MX01", message);
        v.as_object_mut().unwrap().remove("device_uid");
        v
    };
    let (s, first) = d.webhook(&host_only(&a, "CPU high")).await;
    assert_eq!((s, first["result"].as_str()), (200, Some("created")), "{first}");
    let tid = first["ticket_id"].as_u64().unwrap();
    minutes(&d, 1);
    let (s, second) = d.webhook(&host_only(&b, "Memory high")).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["ticket_id"].as_u64(), Some(tid), "{second}");
    // Datto's resolve carries the device uid too.
    resolve(&d, &a, "MX01", "CPU high").await;
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(t["status"], "open", "the other alert is still open: {t}");
    let (_, alert) = d.get(&format!("/api/alerts/{a}")).await;
    assert_eq!(alert["noise_device"], "host:acme-mx01", "{alert}");
    let r = resolve(&d, &b, "MX01", "Memory high").await;
    assert_eq!(r["result"], "resolved", "{r}");
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(
        (t["status"].as_str(), t["close_origin"].as_str()),
        (Some("closed"), Some("datto")),
        "{t}"
    );
}

async fn an_alert_recurring_within_the_window_reopens_its_ticket_and_outside_opens_a_new_one(d: Desk) {
    d.configure_datto().await;
    let msg = "Service Spooler stopped";
    let tid = raise(&d, &uid(21), "FS01", msg).await["ticket_id"].as_u64().unwrap();
    resolve(&d, &uid(21), "FS01", msg).await;
    minutes(&d, 40);
    let r = raise(&d, &uid(22), "FS01", msg).await;
    assert_eq!(r["ticket_id"].as_u64(), Some(tid));
    assert_eq!(r["decision"], format!("recurred: reopened ticket {tid} (1st time)"));
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(
        (t["status"].as_str(), t["noise"]["recurrences"].as_u64()),
        (Some("open"), Some(1))
    );
    assert!(notes(&t).iter().any(|n| n.contains("Recurred (1st time)")), "{t}");

    // Outside the window (default 3 hours): a new ticket.
    resolve(&d, &uid(22), "FS01", msg).await;
    minutes(&d, 4 * 60);
    let r = raise(&d, &uid(23), "FS01", msg).await;
    let new = r["ticket_id"].as_u64().unwrap();
    assert_ne!(new, tid);
    assert_eq!(r["result"], "created");
    assert_eq!(d.tickets().await.len(), 2);

    // Mode child: a child ticket linked to the closed one.
    let (s, _) = d.put("/api/noise/settings", json!({"recurring_mode": "child"})).await;
    assert_eq!(s, 200);
    resolve(&d, &uid(23), "FS01", msg).await;
    minutes(&d, 30);
    let r = raise(&d, &uid(24), "FS01", msg).await;
    let child = r["ticket_id"].as_u64().unwrap();
    assert!(child != new && child != tid);
    let (_, c) = d.get(&format!("/api/tickets/{child}")).await;
    assert_eq!(
        (c["noise"]["parent_id"].as_u64(), c["noise"]["recurrences"].as_u64()),
        (Some(new), Some(1))
    );
}

async fn a_monitor_flapping_ten_times_in_thirty_minutes_leaves_one_ticket_marked_flapping(d: Desk) {
    d.configure_datto().await;
    let msg = "Ping to gateway failed";
    for i in 0..10 {
        raise(&d, &uid(100 + i), "RTR1", msg).await;
        minutes(&d, 1);
        resolve(&d, &uid(100 + i), "RTR1", msg).await;
        minutes(&d, 2);
    }
    let tickets = d.tickets().await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let tid = tickets[0]["id"].as_u64().unwrap();
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(t["noise"]["flapping"], true, "{t}");
    assert_eq!(t["status"], "open", "held: no close churn");
    assert_eq!(t["noise"]["alert_uids"].as_array().unwrap().len(), 10);
    let reopens = notes(&t).iter().filter(|n| n.contains("Ticket reopened")).count();
    let closes = notes(&t).iter().filter(|n| n.contains("Ticket closed")).count();
    assert!(
        reopens <= 4 && closes <= 4,
        "churn only before flapping was detected: {t}"
    );
    assert!(timeline_notes(&d, &uid(109))
        .await
        .iter()
        .any(|n| n.contains("Flapping")));
}

async fn an_alert_in_a_maintenance_window_opens_no_ticket_until_the_window_ends(mut d: Desk) {
    d.configure_datto().await;
    let now = d.clock.now_utc();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string();
    let (s, w) = d
        .post(
            "/api/noise/windows",
            json!({"name": "Patch night", "scope": {"device": "ACME-SQL1"},
                   "schedule": {"one_off": {"starts_at": fmt(now - chrono::Duration::minutes(10)),
                                            "ends_at": fmt(now + chrono::Duration::minutes(60))}}}),
        )
        .await;
    assert_eq!(s, 201, "{w}");
    let (held, gone) = (uid(31), uid(32));
    let r = raise(&d, &held, "SQL1", "SQL Server service stopped").await;
    assert!(r["ticket_id"].is_null(), "{r}");
    assert_eq!(r["decision"], "suppressed by maintenance window 'Patch night'");
    raise(&d, &gone, "SQL1", "Disk D: full").await;
    resolve(&d, &gone, "SQL1", "Disk D: full").await;
    assert!(d.tickets().await.is_empty());
    let (s, a) = d.get(&format!("/api/alerts/{held}")).await;
    assert_eq!((s, a["state"].as_str()), (200, Some("open")), "the alert is visible");
    assert!(timeline_notes(&d, &held).await[0].starts_with("Inside maintenance window 'Patch night'"));

    // The window ends; the scheduled sync decides the alert still open.
    let datto = ScriptedDatto::with_open(&held);
    use_datto(&mut d, &datto);
    minutes(&d, 61);
    let (s, run) = d.sync_now().await;
    assert_eq!(s, 200, "{run}");
    let tickets = d.tickets().await;
    assert_eq!(tickets.len(), 1, "only the alert still open gets a ticket: {tickets:?}");
    assert_eq!(tickets[0]["alert_uid"], held);
    let (_, a) = d.get(&format!("/api/alerts/{held}")).await;
    assert_eq!(a["ticket_id"], tickets[0]["id"]);
    assert!(timeline_notes(&d, &held)
        .await
        .iter()
        .any(|n| n.contains("ended with the alert still open")));
}

fn route_rule() -> Value {
    json!({"name": "Servers to Infra", "when": {"device_names": ["*-DC*"], "priorities": ["High"]},
           "then": {"route": {"priority": "critical", "custom_fields": {"category": "Servers"}}}})
}

async fn rules_route_as_the_preview_said_on_webhook_mail_and_poll(mut d: Desk) {
    d.configure_datto().await;
    let (_, team) = d.post("/api/teams", json!({"name": "Infra"})).await;
    let (_, tt) = d
        .post(
            "/api/ticket-types",
            json!({"name": "Server", "default_priority": "high"}),
        )
        .await;
    let mut rule = route_rule();
    rule["then"]["route"]["team_id"] = team["id"].clone();
    rule["then"]["route"]["ticket_type_id"] = tt["id"].clone();
    let (s, saved) = d.post("/api/noise/rules", rule).await;
    assert_eq!(s, 201, "{saved}");
    let (s, p) = d
        .post(
            "/api/noise/preview",
            json!({"alert": {"message": "CPU high", "priority": "High", "device_hostname": "ACME-DC09"}}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["decision"]["rule"]["id"], saved["id"]);
    let want = |t: &Value| {
        assert_eq!(t["team_id"], p["ticket"]["team_id"], "{t}");
        assert_eq!(t["priority"], p["ticket"]["priority"]);
        assert_eq!(t["ticket_type_id"], p["ticket"]["ticket_type_id"]);
        assert_eq!(t["custom_fields"]["category"], "Servers");
    };
    assert_eq!(p["ticket"]["priority"], "critical");

    // Webhook.
    let r = raise(&d, &uid(41), "DC02", "CPU high").await;
    assert_eq!(r["decision"], "routed by rule 1 'Servers to Infra'");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    want(&t);
    // E-mail (the fixture's alert on ACME-DC01).
    let mail = deskbridge::intake::mail::ingest_mail(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &fixture("alert-email.eml"),
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    let deskbridge::intake::mail::MailOutcome::Applied(m) = mail else {
        panic!("{mail:?}")
    };
    let (_, t) = d.get(&format!("/api/tickets/{}", m.ticket_id.unwrap())).await;
    want(&t);
    // Poll.
    let polled = uid(42);
    let datto = ScriptedDatto::with_open(&polled);
    datto.alerts.lock().unwrap().get_mut(&polled).unwrap().1 = AlertFacts {
        priority: Some("High".into()),
        device_uid: Some("c0ffee00-0000-4000-8000-000000000003".into()),
        device_hostname: Some("ACME-DC03".into()),
        ..Default::default()
    };
    use_datto(&mut d, &datto);
    let (s, run) = d.sync_now().await;
    assert_eq!(s, 200, "{run}");
    let (_, a) = d.get(&format!("/api/alerts/{polled}")).await;
    let (_, t) = d.get(&format!("/api/tickets/{}", a["ticket_id"])).await;
    want(&t);
}

async fn a_suppress_rule_opens_nothing_and_says_so(d: Desk) {
    d.configure_datto().await;
    let (s, _) = d
        .post(
            "/api/noise/rules",
            json!({"name": "Lab is noise", "when": {"message": {"contains": "lab"}}, "then": "suppress"}),
        )
        .await;
    assert_eq!(s, 201);
    let r = raise(&d, &uid(51), "LAB1", "Lab VM offline").await;
    assert!(r["ticket_id"].is_null());
    assert_eq!(r["decision"], "suppressed by rule 1 'Lab is noise'");
    assert!(d.tickets().await.is_empty());
    assert_eq!(
        timeline_notes(&d, &uid(51)).await,
        ["Suppressed by rule 1 'Lab is noise': recorded, no ticket."]
    );
    let log = d.request_log("&source=datto-webhook").await;
    assert_eq!(log[0]["outcome"], "suppressed by rule 1 'Lab is noise'");
}

async fn rules_and_windows_are_validated_on_save_naming_the_field(d: Desk) {
    let (s, e) = d
        .post(
            "/api/noise/rules",
            json!({"name": "x", "when": {"priorities": ["High", "Urgent"]}, "then": "suppress"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("when.priorities[1]"), "{e}");
    let (s, e) = d
        .post(
            "/api/noise/rules",
            json!({"name": "x", "when": {"device_names": [""]}, "then": "suppress"}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("when.device_names[0]"), "{e}");
    let (s, e) = d.put("/api/noise/settings", json!({"flapping": {"cycles": 1}})).await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("flapping.cycles"), "{e}");
    let (s, e) = d
        .post(
            "/api/noise/windows",
            json!({"name": "w", "scope": {"site_id": 1},
                   "schedule": {"weekly": {"days": ["Sat"], "start_time": "23:00:00", "duration_minutes": 0,
                                           "time_zone": "Europe/London"}}}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("duration_minutes"), "{e}");
    let (s, e) = d
        .post(
            "/api/noise/rules",
            json!({"name": "late", "then": "suppress", "position": 5}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("position"), "{e}");

    // CRUD keeps the order; nothing refused was stored.
    let (_, a) = d
        .post("/api/noise/rules", json!({"name": "a", "then": "suppress"}))
        .await;
    let (_, b) = d
        .post(
            "/api/noise/rules",
            json!({"name": "b", "then": "suppress", "position": 1}),
        )
        .await;
    let (_, l) = d.get("/api/noise/rules").await;
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "a"]);
    let (s, _) = d
        .put(
            &format!("/api/noise/rules/{}", b["id"]),
            json!({"name": "b2", "then": "suppress", "position": 2}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, l) = d.get("/api/noise/rules").await;
    let names: Vec<&str> = l["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b2"]);
    let (s, _) = d
        .call("DELETE", &format!("/api/noise/rules/{}", a["id"]), None, vec![], true)
        .await;
    assert_eq!(s, 204);
    let (s, _) = d.get(&format!("/api/noise/rules/{}", a["id"])).await;
    assert_eq!(s, 404);
}

/// An agent's reopen reaches noise control's state: the ticket counts as opened at the
/// reopen for relating, and Datto's resolve of its alert closes it again.
async fn an_agent_reopen_counts_as_opened_now_and_closes_on_resolve(d: Desk) {
    d.configure_datto().await;
    let (a, b) = (uid(31), uid(32));
    let tid = raise(&d, &a, "PR01", "Printer offline").await["ticket_id"]
        .as_u64()
        .unwrap();
    minutes(&d, 30);
    let (s, _) = d
        .post(&format!("/api/tickets/{tid}/close"), json!({"note": "Fixed"}))
        .await;
    assert_eq!(s, 200);
    let (s, t) = d
        .post(&format!("/api/tickets/{tid}/reopen"), json!({"note": "Not fixed"}))
        .await;
    assert_eq!((s, t["status"].as_str()), (200, Some("open")), "{t}");
    minutes(&d, 5);
    // 35 minutes after the ticket opened, 5 after the reopen: related (window 15 minutes).
    let r = raise(&d, &b, "PR01", "Toner low").await;
    assert_eq!(r["ticket_id"].as_u64(), Some(tid), "{r}");
    assert_eq!(r["decision"], format!("related to ticket {tid}"));
    resolve(&d, &b, "PR01", "Toner low").await;
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(
        t["status"], "closed",
        "every alert of the reopened ticket resolved: {t}"
    );
}

on_both_stores!(
    three_alerts_for_one_device_make_one_ticket_and_a_close_resolves_each_once,
    closing_when_the_last_alert_resolves,
    an_alert_first_named_by_hostname_resolves_on_its_own_device_record,
    an_alert_recurring_within_the_window_reopens_its_ticket_and_outside_opens_a_new_one,
    a_monitor_flapping_ten_times_in_thirty_minutes_leaves_one_ticket_marked_flapping,
    an_alert_in_a_maintenance_window_opens_no_ticket_until_the_window_ends,
    rules_route_as_the_preview_said_on_webhook_mail_and_poll,
    a_suppress_rule_opens_nothing_and_says_so,
    rules_and_windows_are_validated_on_save_naming_the_field,
    an_agent_reopen_counts_as_opened_now_and_closes_on_resolve,
);

// ---- the property test ------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Raise { device: u8, monitor: u8 },
    Resolve { pick: usize },
    AgentClose { pick: usize },
    Deliver,
    Wait { minutes: u16 },
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..3, 0u8..3).prop_map(|(device, monitor)| Step::Raise { device, monitor }),
        3 => any::<usize>().prop_map(|pick| Step::Resolve { pick }),
        2 => any::<usize>().prop_map(|pick| Step::AgentClose { pick }),
        2 => Just(Step::Deliver),
        2 => (1u16..120).prop_map(|minutes| Step::Wait { minutes }),
    ]
}

/// Run `steps` through the real intake and close propagation; check that no alert leaves
/// its ticket and no alert is resolved in Datto twice.
async fn interleaving(mut d: Desk, steps: Vec<Step>) {
    d.configure_datto().await;
    let datto = Arc::new(ScriptedDatto {
        headroom: std::sync::atomic::AtomicU64::new(500),
        ..Default::default()
    });
    use_datto(&mut d, &datto);
    let mut raised: Vec<(String, String, String)> = Vec::new();
    let mut on_ticket: BTreeMap<String, u64> = BTreeMap::new();
    for (n, s) in steps.into_iter().enumerate() {
        match s {
            Step::Raise { device, monitor } => {
                let u = uid(1000 + n as u64);
                let (dev, msg) = (format!("D{device}"), format!("Monitor {monitor} failed"));
                datto
                    .alerts
                    .lock()
                    .unwrap()
                    .insert(u.clone(), (false, AlertFacts::default()));
                let r = raise(&d, &u, &dev, &msg).await;
                let tid = r["ticket_id"].as_u64().unwrap_or_else(|| panic!("no ticket: {r}"));
                on_ticket.insert(u.clone(), tid);
                raised.push((u, dev, msg));
            }
            Step::Resolve { pick } if !raised.is_empty() => {
                let (u, dev, msg) = raised[pick % raised.len()].clone();
                // Datto resolves it itself (a resolved alert is never resolved by us).
                let was_resolved = datto.alerts.lock().unwrap().get(&u).unwrap().0;
                if !was_resolved {
                    datto.resolve_in_datto(&u);
                    resolve(&d, &u, &dev, &msg).await;
                }
            }
            Step::AgentClose { pick } => {
                let open: Vec<u64> = d
                    .tickets()
                    .await
                    .iter()
                    .filter(|t| t["status"] == "open")
                    .map(|t| t["id"].as_u64().unwrap())
                    .collect();
                if !open.is_empty() {
                    let tid = open[pick % open.len()];
                    let (s, r) = d.post(&format!("/api/tickets/{tid}/close"), json!({})).await;
                    assert_eq!(s, 200, "{r}");
                }
            }
            Step::Deliver => {
                d.drain(QueueName::TicketClosed).await;
            }
            Step::Wait { minutes: m } => minutes(&d, m as u64),
            Step::Resolve { .. } => {}
        }
    }
    // Deliver everything twice over (duplicated deliveries), and sweep.
    d.drain(QueueName::TicketClosed).await;
    minutes(&d, 10);
    sweep_pending_closes(&d.ctx.store, d.ctx.queue.as_ref(), d.clock.now_utc())
        .await
        .unwrap();
    d.drain(QueueName::TicketClosed).await;
    for p in d
        .ctx
        .store
        .pending_closes_due(d.clock.now_utc() + chrono::Duration::days(1), 1000)
        .await
        .unwrap()
    {
        propagate_close(&d.ctx.store, datto.as_ref(), &p.message())
            .await
            .unwrap();
    }

    for (u, tid) in &on_ticket {
        let t = d.ctx.store.ticket(*tid).await.unwrap();
        let uids = deskbridge::store::ticket_alert_uids(&t);
        assert!(
            uids.contains(&AlertUid::parse("uid", u).unwrap()),
            "alert {u} lost from ticket {tid}: {uids:?}"
        );
        let (a, _) = d
            .ctx
            .store
            .alert(&AlertUid::parse("uid", u).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.ticket_id, Some(*tid), "alert {u} points at another ticket");
    }
    for (u, n) in resolve_counts(&datto) {
        assert_eq!(n, 1, "alert {u} resolved in Datto {n} times");
    }
}

/// Run `cases` random step lists, each on a fresh store (`dynamodb`: DynamoDB Local, else
/// SQLite), all on one runtime so the store's connections live as long as it.
fn run_interleavings(cases: u32, dynamodb: bool) {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if dynamodb && rt.block_on(deskbridge_tests::stores::dynamodb()).is_none() {
        return;
    }
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 20,
        ..ProptestConfig::default()
    };
    proptest!(config, |(steps in proptest::collection::vec(step(), 1..24))| {
        rt.block_on(async {
            let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
            let (records, _dir) = if dynamodb {
                (deskbridge_tests::stores::dynamodb().await.expect("checked above"), None)
            } else {
                let (r, dir) = deskbridge_tests::stores::sqlite(clock.clone());
                (r, Some(dir))
            };
            interleaving(crate::desk::desk_on(records, clock), steps).await;
        });
    });
}

#[test]
fn any_interleaving_keeps_every_alert_on_its_ticket_and_resolves_once_sqlite() {
    run_interleavings(24, false);
}

#[test]
fn any_interleaving_keeps_every_alert_on_its_ticket_and_resolves_once_dynamodb() {
    run_interleavings(4, true);
}

// ---- numbers taken in the write ------------------------------------------------------------

/// A store that counts what intake asks for numbers: counter increments on their own, and
/// numbered writes (`write_numbered`).
struct CountingNumbers {
    inner: Arc<dyn deskbridge::ports::RecordStore>,
    increments: std::sync::atomic::AtomicUsize,
    numbered: std::sync::atomic::AtomicUsize,
}

impl CountingNumbers {
    /// `(increments, numbered writes)` since the last call.
    fn take(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.increments.swap(0, SeqCst), self.numbered.swap(0, SeqCst))
    }
}

#[async_trait::async_trait]
impl deskbridge::ports::RecordStore for CountingNumbers {
    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<deskbridge::ports::Record>, deskbridge::ports::StoreError> {
        self.inner.get(pk, sk).await
    }
    async fn query(
        &self,
        q: &deskbridge::ports::Query,
    ) -> Result<deskbridge::ports::Page, deskbridge::ports::StoreError> {
        self.inner.query(q).await
    }
    async fn write(&self, ops: Vec<deskbridge::ports::WriteOp>) -> Result<(), deskbridge::ports::StoreError> {
        self.inner.write(ops).await
    }
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, deskbridge::ports::StoreError> {
        self.increments.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.increment(pk, sk, by).await
    }
    async fn write_numbered(
        &self,
        takes: &[deskbridge::ports::CounterTake],
        build: deskbridge::ports::NumberedOps,
    ) -> Result<Vec<u64>, deskbridge::ports::StoreError> {
        self.numbered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.write_numbered(takes, build).await
    }
}

fn event(uid: u64, device: &str, message: &str, resolved: bool) -> deskbridge::domain::alerts::AlertEvent {
    use deskbridge::domain::alerts::{AlertEvent, AlertEventKind, AlertSource};
    AlertEvent {
        uid: AlertUid::parse("alert_uid", &self::uid(uid)).unwrap(),
        kind: if resolved {
            AlertEventKind::Resolved
        } else {
            AlertEventKind::Raised
        },
        source: AlertSource::Webhook,
        at: chrono::Utc::now(),
        facts: AlertFacts {
            message: Some(message.into()),
            device_uid: Some(format!("b2e4a7c1-6f3d-4e58-a9b0-{device:0>12}")),
            device_hostname: Some(format!("ACME-{device}")),
            site_uid: Some("0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f".into()),
            site_name: Some("Acme Ltd - Head Office".into()),
            ..Default::default()
        },
    }
}

/// A new alert that opens a ticket takes its ticket and action numbers in its one write,
/// with noise control on (the defaults) and off; so do a related alert (its action) and a
/// resolve that leaves the ticket open (its note). No number is taken on its own.
async fn every_alert_decision_takes_its_numbers_in_its_one_write(inner: Arc<dyn deskbridge::ports::RecordStore>) {
    use deskbridge::domain::alerts::Outcome;
    use deskbridge::domain::datto::DattoSettings;
    use deskbridge::intake::ingest_with;
    let counting = Arc::new(CountingNumbers {
        inner,
        increments: Default::default(),
        numbered: Default::default(),
    });
    let store = deskbridge::store::Store::new(counting.clone(), Arc::new(deskbridge::ports::SystemClock));
    let settings = DattoSettings::default();
    // The first alert of the site imports it (one numbered write of its own).
    let first = ingest_with(&store, &settings, &event(41, "SRV1", "CPU high", false), None)
        .await
        .unwrap();
    assert_eq!(first.result, Outcome::Created);
    counting.take();

    let a = ingest_with(&store, &settings, &event(42, "SRV2", "Disk C: full", false), None)
        .await
        .unwrap();
    assert_eq!((a.result, a.ticket_id.is_some()), (Outcome::Created, true), "{a:?}");
    assert_eq!(
        counting.take(),
        (0, 1),
        "a new ticket: one numbered write, no increment"
    );

    let b = ingest_with(&store, &settings, &event(43, "SRV2", "Spooler stopped", false), None)
        .await
        .unwrap();
    assert_eq!((b.result, b.ticket_id), (Outcome::Updated, a.ticket_id), "{b:?}");
    assert_eq!(
        counting.take(),
        (0, 1),
        "a related alert: its action numbered in the write"
    );

    let r = ingest_with(&store, &settings, &event(42, "SRV2", "Disk C: full", true), None)
        .await
        .unwrap();
    assert_eq!(r.result, Outcome::Resolved);
    assert_eq!(counting.take(), (0, 1), "a resolve noted on the open ticket");
    let t = store.ticket(a.ticket_id.unwrap()).await.unwrap();
    assert_eq!(t.status, deskbridge::domain::tickets::TicketStatus::Open);
    let ids: std::collections::BTreeSet<u64> = t.actions.iter().map(|x| x.id).collect();
    assert_eq!(ids.len(), t.actions.len(), "distinct action numbers: {:?}", t.actions);

    let mut off = store.noise_settings().await.unwrap();
    off.related_window_minutes = 0;
    off.recurring_window_minutes = 0;
    off.flapping.cycles = 0;
    store.save_noise_settings(&off).await.unwrap();
    counting.take();
    let c = ingest_with(&store, &settings, &event(44, "SRV2", "Memory high", false), None)
        .await
        .unwrap();
    assert_eq!(c.result, Outcome::Created, "{c:?}");
    assert_ne!(c.ticket_id, a.ticket_id, "noise control off: a ticket of its own");
    assert_eq!(
        counting.take(),
        (0, 1),
        "noise control off: one numbered write, no increment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_alert_decision_takes_its_numbers_in_its_one_write() {
    let (s, _dir) = deskbridge_tests::stores::sqlite(Arc::new(deskbridge::ports::SystemClock));
    every_alert_decision_takes_its_numbers_in_its_one_write(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_every_alert_decision_takes_its_numbers_in_its_one_write() {
    let Some(s) = deskbridge_tests::stores::dynamodb().await else {
        return;
    };
    every_alert_decision_takes_its_numbers_in_its_one_write(s).await;
}
