//! Property tests of the alert flow on both stores (issue 14, item 1): random interleavings
//! of raised / resolved / e-mail / poll / agent-close / reopen over several uids, delivered
//! by several tasks at once, against the fake Datto; close messages delivered twice.
//!
//! The pure rule (`domain::alerts::apply`) has its own property test; this one runs the
//! whole path — routers, intake, store transactions, queue, propagator, the REST client.

use std::collections::BTreeMap;
use std::sync::Arc;

use deskbridge::datto::fake::fixtures;
use deskbridge::ports::QueueName;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::datto_e2e::{wire, Wired};
use crate::desk::{fixture, Desk, NowUtc};

/// The fixture's three open alerts (Datto raised them before the run) and one Datto has
/// not raised yet (its raise or its resolve may come first).
const UIDS: [&str; 4] = [
    "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94",
    "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7",
    "3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28",
    "9b0c4d2e-7f1a-4c3b-8d5e-6a2f1e0d9c84",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    /// Datto's raised webhook (Datto raises the alert first when it has not yet).
    RaisedWebhook(usize),
    /// Datto's alert e-mail.
    RaisedMail(usize),
    /// Datto resolves the alert and sends the resolved webhook.
    Resolved(usize),
    /// An agent closes the alert's ticket (when there is one).
    AgentClose(usize),
    /// An agent reopens it (when it is closed).
    Reopen(usize),
    /// A sync run (the poll).
    Poll,
    /// Every queued `ticket-closed` message sent once more, then the queue drained.
    Propagate,
}

impl Event {
    /// The uid whose ticket state the event may change (raises may not change a state).
    fn critical_uid(self) -> Option<usize> {
        match self {
            Event::Resolved(u) | Event::AgentClose(u) | Event::Reopen(u) => Some(u),
            _ => None,
        }
    }

    fn is_barrier(self) -> bool {
        matches!(self, Event::Poll | Event::Propagate)
    }
}

fn event() -> impl Strategy<Value = Event> {
    let uid = 0..UIDS.len();
    prop_oneof![
        3 => uid.clone().prop_map(Event::RaisedWebhook),
        2 => uid.clone().prop_map(Event::RaisedMail),
        2 => uid.clone().prop_map(Event::Resolved),
        2 => uid.clone().prop_map(Event::AgentClose),
        1 => uid.prop_map(Event::Reopen),
        1 => Just(Event::Poll),
        1 => Just(Event::Propagate),
    ]
}

/// Batches delivered one after the other; the events of a batch by concurrent tasks. A
/// poll or propagation is a batch of its own, and a batch holds at most one event that can
/// change a given uid's ticket state (their order would be unknowable), any number of raises.
fn batches(events: Vec<Event>, widths: Vec<usize>) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut current: Vec<Event> = Vec::new();
    let mut width = widths.iter().cycle();
    let mut limit = *width.next().unwrap_or(&1);
    for e in events {
        let clash = e.is_barrier()
            || current.iter().any(|c| c.is_barrier())
            || e.critical_uid()
                .is_some_and(|u| current.iter().any(|c| c.critical_uid() == Some(u)));
        if !current.is_empty() && (clash || current.len() >= limit) {
            out.push(std::mem::take(&mut current));
            limit = *width.next().unwrap_or(&1);
        }
        current.push(e);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What the test knows happened to one uid, in batch order.
#[derive(Debug, Default, Clone)]
struct Truth {
    /// Datto itself resolved the alert (a `Resolved` event), at this batch.
    datto_resolved_at: Option<usize>,
    /// Agent closes and reopens that took effect (answered 200), with their batch.
    agent: Vec<(usize, bool)>,
}

impl Truth {
    fn effective_close(&self) -> bool {
        self.agent.iter().any(|(_, close)| *close)
    }
    fn last_agent(&self) -> Option<(usize, bool)> {
        self.agent.last().copied()
    }

    /// Whether Datto must have been told of an agent's close: some propagation (batch
    /// indexes `propagations`) ran while the ticket's last agent action was a close. A
    /// close reopened before any propagation ran is not told (the ticket is open again).
    fn told_datto(&self, propagations: &[usize]) -> bool {
        propagations.iter().any(|p| {
            self.agent
                .iter()
                .rev()
                .find(|(at, _)| at < p)
                .is_some_and(|(_, close)| *close)
        })
    }
}

struct Run {
    desk: Desk,
    wired: Wired,
}

/// The fixtures' device, which every fixture names.
const FIXTURE_DEVICE: (&str, &str) = ("b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63", "ACME-DC01");

/// `text` (a fixture) about alert `u`'s own device: one device per alert, so noise control
/// relates none of them and each alert keeps a ticket of its own.
fn on_device(text: &str, u: usize) -> String {
    text.replace(FIXTURE_DEVICE.0, &format!("b2e4a7c1-6f3d-4e58-a9b0-{u:012}"))
        .replace(FIXTURE_DEVICE.1, &format!("ACME-PC{u:02}"))
}

fn fixture_on_device(name: &str, u: usize) -> Value {
    serde_json::from_str(&on_device(&String::from_utf8(fixture(name)).unwrap(), u)).unwrap()
}

fn raised_body(u: usize) -> Value {
    let mut b = fixture_on_device("webhook-raised.json", u);
    b["alert_uid"] = json!(UIDS[u]);
    b
}

fn resolved_body(u: usize) -> Value {
    let mut b = fixture_on_device("webhook-resolved.json", u);
    b["alert_uid"] = json!(UIDS[u]);
    b
}

/// Datto's record of alert `u`, made from the fixture alert.
fn datto_alert(u: usize, resolved: bool) -> Value {
    let mut a: Value = serde_json::from_str(&on_device(fixtures::ALERT, u)).unwrap();
    a["alertUid"] = json!(UIDS[u]);
    a["resolved"] = json!(resolved);
    a
}

async fn ticket_of(d: &Desk, uid: &str) -> Vec<Value> {
    let (s, v) = d.get(&format!("/api/tickets?alert_uid={uid}&limit=100")).await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// Deliver one event; returns whether an agent action took effect.
async fn deliver(run: &Run, e: Event) -> Option<bool> {
    let d = &run.desk;
    let fake = &run.wired.fake;
    match e {
        Event::RaisedWebhook(u) | Event::RaisedMail(u) => {
            let uid = UIDS[u];
            if fake.alert(uid).is_none() {
                fake.add_alert(datto_alert(u, false));
            }
            if let Event::RaisedWebhook(_) = e {
                let (s, v) = d.webhook(&raised_body(u)).await;
                assert_eq!(s, 200, "raised webhook {uid}: {v}");
            } else {
                let eml = on_device(&String::from_utf8(fixture("alert-email.eml")).unwrap(), u).replace(UIDS[0], uid);
                deskbridge::intake::mail::ingest_mail(
                    &d.ctx.store,
                    d.ctx.queue.as_ref(),
                    eml.as_bytes(),
                    d.clock.now_utc(),
                )
                .await
                .expect("alert mail");
            }
            None
        }
        Event::Resolved(u) => {
            let uid = UIDS[u];
            if !fake.resolve_in_datto(uid) {
                fake.add_alert(datto_alert(u, true));
            }
            let (s, v) = d.webhook(&resolved_body(u)).await;
            assert_eq!(s, 200, "resolved webhook {uid}: {v}");
            None
        }
        Event::AgentClose(u) | Event::Reopen(u) => {
            let close = matches!(e, Event::AgentClose(_));
            let tickets = ticket_of(d, UIDS[u]).await;
            let t = tickets.first()?;
            let path = format!("/api/tickets/{}/{}", t["id"], if close { "close" } else { "reopen" });
            let (s, v) = d.post(&path, json!({"note": "property"})).await;
            match s {
                200 => Some(close),
                409 => None,
                _ => panic!("{path}: {s} {v}"),
            }
        }
        Event::Poll => {
            let (s, v) = d.sync_now().await;
            assert_eq!(s, 200, "{v}");
            assert!(v["errors"].as_array().is_none_or(Vec::is_empty), "sync errors: {v}");
            None
        }
        Event::Propagate => {
            // At-least-once delivery: every message waiting is there twice.
            let waiting = d.ctx.queue.receive(QueueName::TicketClosed, 10).await.unwrap();
            for m in &waiting {
                d.ctx.queue.send(QueueName::TicketClosed, &m.body).await.unwrap();
                d.ctx.queue.send(QueueName::TicketClosed, &m.body).await.unwrap();
                d.ctx.queue.ack(QueueName::TicketClosed, &m.receipt).await.unwrap();
            }
            for _ in 0..3 {
                if d.drain(QueueName::TicketClosed).await.0 == 0 {
                    break;
                }
            }
            None
        }
    }
}

/// Run one case and check every promise; `Err` names the broken one.
async fn check_case(mut desk: Desk, plan: Vec<Vec<Event>>) -> Result<(), TestCaseError> {
    let wired = wire(&mut desk, 100_000).await;
    let run = Arc::new(Run { desk, wired });
    let mut truth: BTreeMap<usize, Truth> = BTreeMap::new();
    let mut plan = plan;
    // Everything settles at the end: messages delivered (twice), one more poll.
    plan.push(vec![Event::Propagate]);
    plan.push(vec![Event::Poll]);
    plan.push(vec![Event::Propagate]);
    for (i, batch) in plan.iter().enumerate() {
        for e in batch {
            if let Event::Resolved(u) = e {
                truth.entry(*u).or_default().datto_resolved_at.get_or_insert(i);
            }
        }
        let results = futures::future::join_all(batch.iter().map(|e| {
            let run = run.clone();
            let e = *e;
            // Own tasks: the events of a batch run on the runtime's threads at once.
            async move { tokio::spawn(async move { (e, deliver(&run, e).await) }).await.unwrap() }
        }))
        .await;
        for (e, took_effect) in results {
            if let (Event::AgentClose(u) | Event::Reopen(u), Some(close)) = (e, took_effect) {
                truth.entry(u).or_default().agent.push((i, close));
            }
        }
    }
    let propagations: Vec<usize> = plan
        .iter()
        .enumerate()
        .filter(|(_, b)| b.contains(&Event::Propagate))
        .map(|(i, _)| i)
        .collect();
    let d = &run.desk;
    let fake = &run.wired.fake;
    for (u, uid) in UIDS.iter().enumerate() {
        let t = truth.get(&u).cloned().unwrap_or_default();
        let tickets = ticket_of(d, uid).await;
        prop_assert!(tickets.len() <= 1, "{uid}: {} tickets", tickets.len());
        let resolves = fake.count(&format!("/api/v2/alert/{uid}/resolve"));
        prop_assert!(resolves <= 1, "{uid}: {resolves} resolve calls ({t:?})");
        if !t.effective_close() {
            prop_assert_eq!(resolves, 0, "{}: a Datto call for a close that was not an agent's", uid);
        }
        if t.told_datto(&propagations) && t.datto_resolved_at.is_none() {
            prop_assert_eq!(
                resolves,
                1,
                "{}: an agent close without exactly one resolve ({:?})",
                uid,
                t
            );
        }
        let Some(ticket) = tickets.first() else {
            prop_assert!(!t.effective_close(), "{uid}: closed by an agent but no ticket");
            continue;
        };
        let closed = ticket["status"] == "closed";
        let reopened_last = t.last_agent().is_some_and(|(_, close)| !close);
        let datto_after_reopen = match (t.last_agent(), t.datto_resolved_at) {
            (Some((at, false)), Some(r)) => r > at,
            _ => false,
        };
        if closed {
            prop_assert!(
                t.datto_resolved_at.is_some()
                    || t.effective_close()
                    || fake.alert(uid).is_some_and(|a| a["resolved"] == true),
                "{uid}: closed, but neither resolved nor closed by an agent: {ticket} {t:?}"
            );
            match ticket["close_origin"].as_str() {
                Some("agent") => prop_assert!(t.effective_close(), "{uid}: agent close origin without a close"),
                Some("datto") => prop_assert!(
                    fake.alert(uid).is_some_and(|a| a["resolved"] == true),
                    "{uid}: closed as resolved in Datto, but Datto has it open"
                ),
                other => prop_assert!(false, "{uid}: closed with origin {other:?}"),
            }
        }
        if reopened_last && !datto_after_reopen {
            prop_assert!(!closed, "{uid}: reopened last, yet closed: {ticket} {t:?}");
        }
        if !reopened_last && (t.datto_resolved_at.is_some() || t.effective_close()) {
            prop_assert!(
                closed,
                "{uid}: resolved or closed by an agent, yet open: {ticket} {t:?}"
            );
        }
        if t.told_datto(&propagations) {
            prop_assert!(
                fake.alert(uid).is_some_and(|a| a["resolved"] == true),
                "{uid}: an agent close never reached Datto"
            );
        }
    }
    Ok(())
}

fn plan() -> impl Strategy<Value = Vec<Vec<Event>>> {
    (
        proptest::collection::vec(event(), 4..24),
        proptest::collection::vec(1usize..5, 1..8),
    )
        .prop_map(|(events, widths)| batches(events, widths))
}

/// Run `cases` cases, each on a fresh desk from `make`; a failure is shrunk and reported.
fn run_property<F, Fut>(cases: u32, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<(Desk, Option<tempfile::TempDir>)>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        // Shrinking reruns whole scenarios; a few steps find a short one.
        max_shrink_iters: 40,
        failure_persistence: None,
        ..Config::default()
    });
    let (events, batches_run) = (std::cell::Cell::new(0usize), std::cell::Cell::new(0usize));
    let result = runner.run(&plan(), |plan| {
        events.set(events.get() + plan.iter().map(Vec::len).sum::<usize>());
        batches_run.set(batches_run.get() + plan.len());
        rt.block_on(async {
            let Some((desk, _dir)) = make().await else {
                return Ok(());
            };
            check_case(desk, plan).await
        })
    });
    println!(
        "alert properties: {cases} cases, {} events in {} batches (shrinking included)",
        events.get(),
        batches_run.get()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn random_interleavings_keep_one_ticket_per_alert_and_one_resolve_per_agent_close_sqlite() {
    run_property(16, || async {
        let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
        let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
        Some((crate::desk::desk_on(records, clock), Some(dir)))
    });
}

#[test]
fn random_interleavings_keep_one_ticket_per_alert_and_one_resolve_per_agent_close_dynamodb() {
    run_property(6, || async {
        let records = deskbridge_tests::stores::dynamodb().await?;
        let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
        Some((crate::desk::desk_on(records, clock), None))
    });
}
