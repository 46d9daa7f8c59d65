//! Vendor faults from the fakes, one table row per (vendor call × fault): the calls the fake
//! counted stay in the row's bound, transient faults end in success, permanent ones in a
//! dead letter or a clear error (issue 14, item 4; figures in docs/reliability.md).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use deskbridge::beyondtrust::fake::{Fault, TOKEN_ENDPOINT};
use deskbridge::datto::fake::Failure;
use deskbridge::ports::{QueueName, MAX_RECEIVES};
use serde_json::{json, Value};

use crate::bt_e2e::{call_as, end_session, remote_actions, report, setup, ticket, Bt, L1};
use crate::datto_e2e::{wire_with_timeout, Wired};
use crate::desk::{fixture_json, Desk, UID};

/// Each call's timeout in this suite: short, so a timeout costs little real time.
const TIMEOUT: Duration = Duration::from_millis(2000);
/// A pause well past [`TIMEOUT`].
const PAST_TIMEOUT: Duration = Duration::from_millis(5000);
/// A pause well inside it.
const INSIDE_TIMEOUT: Duration = Duration::from_millis(100);

/// The vendor call a row attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// Datto: the sync's open-alert list (`GET /api/v2/account/alerts/open`).
    Sync,
    /// Datto: the enrichment job's `GET /api/v2/alert/{uid}`.
    Enrich,
    /// Datto: the close propagator's `POST /api/v2/alert/{uid}/resolve`.
    Resolve,
    /// BeyondTrust: the OAuth token, minted for an invitation.
    Token,
    /// BeyondTrust: `generate_session_key` of the command API, for an invitation.
    Invite,
    /// BeyondTrust: the `SupportSession` report of the session-import job.
    Report,
}

/// The fault, in vendor-neutral words; each fake answers it its own way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TooMany(Option<u64>),
    Status(u16),
    Timeout,
    Reset,
    Truncated,
    Malformed,
    SlowBody,
    SlowBodyPastTimeout,
}

impl Kind {
    fn datto(self) -> Failure {
        match self {
            Kind::TooMany(retry_after) => Failure::TooManyRequests { retry_after },
            Kind::Status(403) => Failure::Forbidden,
            Kind::Status(s) => Failure::ServerError(s),
            Kind::Timeout => Failure::Slow(PAST_TIMEOUT),
            Kind::Reset => Failure::Reset,
            Kind::Truncated => Failure::Truncated,
            Kind::Malformed => Failure::Malformed,
            Kind::SlowBody => Failure::SlowBody(INSIDE_TIMEOUT),
            Kind::SlowBodyPastTimeout => Failure::SlowBody(PAST_TIMEOUT),
        }
    }

    fn beyondtrust(self) -> Vec<Fault> {
        match self {
            Kind::TooMany(retry_after) => vec![Fault::TooManyRequests { retry_after }],
            Kind::Status(s) => vec![Fault::Status(s)],
            Kind::Timeout => vec![Fault::Delay(PAST_TIMEOUT)],
            Kind::Reset => vec![Fault::Reset],
            Kind::Truncated => vec![Fault::Truncated],
            Kind::Malformed => vec![Fault::Body("<html><body>Maintenance</body></html>".into())],
            Kind::SlowBody => vec![Fault::SlowBody(INSIDE_TIMEOUT)],
            Kind::SlowBodyPastTimeout => vec![Fault::SlowBody(PAST_TIMEOUT)],
        }
    }
}

/// How a row ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Done at the first go: the job's first receive, the first sync run, the first click.
    Ok,
    /// The first go failed (a message released for another receive, a sync run with an
    /// error, an error answer to the click); the next go, with the fault used up, succeeded.
    OkOnRetry,
    /// The message is a dead letter after this many receives.
    DeadLetter(u32),
    /// The first go failed with this clear error and the fault never went away.
    Refused(String),
}

struct Row {
    call: Call,
    kind: Kind,
    /// How many consecutive calls of `call` get the fault.
    burst: usize,
    /// Calls of `call` the fake may count, faulted and successful.
    calls: RangeInclusive<usize>,
    outcome: Outcome,
}

const fn row(call: Call, kind: Kind, burst: usize, calls: RangeInclusive<usize>, outcome: Outcome) -> Row {
    Row {
        call,
        kind,
        burst,
        calls,
        outcome,
    }
}

/// Datto's client tries a call 4 times (3 retries); BeyondTrust's 3 times in this harness.
const DATTO_TRIES: usize = 4;
const BT_TRIES: usize = 3;
/// "For ever" in a row: more faults than any bounded retrying can use.
const FOREVER: usize = 1000;

/// hyper's pool sends a request again by itself when a reused connection dies before an
/// answer (one reset can then cost two calls): reset rows allow one call more.
fn widened(mut rows: Vec<Row>) -> Vec<Row> {
    for r in rows.iter_mut().filter(|r| r.kind == Kind::Reset) {
        r.calls = *r.calls.start()..=*r.calls.end() + 1;
    }
    rows
}

fn table() -> Vec<Row> {
    use Call::*;
    use Kind::*;
    use Outcome::*;
    let dlq = MAX_RECEIVES;
    let datto_queue_forever = DATTO_TRIES * dlq as usize;
    let bt_dlq = QueueName::SessionImport.max_receives();
    let bt_queue_forever = BT_TRIES * bt_dlq as usize;
    let mut rows = Vec::new();
    // Transient faults in a burst the client's own retries absorb: 2 faulted calls, then
    // the real answer (3 calls); a slow body inside the timeout is no fault at all.
    for call in [Sync, Enrich, Resolve, Token, Invite, Report] {
        for kind in [
            TooMany(Some(1)),
            TooMany(None),
            Status(500),
            Status(502),
            Status(504),
            Timeout,
            Reset,
            Truncated,
            SlowBodyPastTimeout,
        ] {
            // A resolve whose answer was lost after Datto acted (cut or slow body) is not
            // sent again: the propagator reads the alert back and finds it resolved.
            let lost_after_acting = call == Resolve && matches!(kind, Truncated | SlowBodyPastTimeout);
            rows.push(row(call, kind, 2, if lost_after_acting { 1..=1 } else { 3..=3 }, Ok));
        }
        rows.push(row(call, SlowBody, 1, 1..=1, Ok));
    }
    // A burst longer than the client's retries: the queue's next receive (or the next sync
    // run, or the agent's next click) succeeds.
    for (call, tries) in [(Sync, DATTO_TRIES), (Enrich, DATTO_TRIES), (Resolve, DATTO_TRIES)] {
        rows.push(row(call, Status(503), tries + 1, tries + 2..=tries + 2, OkOnRetry));
        rows.push(row(call, Reset, tries + 1, tries + 2..=tries + 2, OkOnRetry));
    }
    for call in [Token, Invite, Report] {
        rows.push(row(
            call,
            Status(503),
            BT_TRIES + 1,
            BT_TRIES + 2..=BT_TRIES + 2,
            OkOnRetry,
        ));
        rows.push(row(
            call,
            Truncated,
            BT_TRIES + 1,
            BT_TRIES + 2..=BT_TRIES + 2,
            OkOnRetry,
        ));
    }
    // For ever: bounded calls, then a dead letter after MAX_RECEIVES, or a clear error.
    rows.push(row(
        Sync,
        Status(503),
        FOREVER,
        DATTO_TRIES..=DATTO_TRIES,
        Refused("unavailable".into()),
    ));
    rows.push(row(
        Enrich,
        Status(503),
        FOREVER,
        datto_queue_forever..=datto_queue_forever,
        DeadLetter(dlq),
    ));
    rows.push(row(
        Resolve,
        Status(503),
        FOREVER,
        datto_queue_forever..=datto_queue_forever,
        DeadLetter(dlq),
    ));
    rows.push(row(
        Resolve,
        TooMany(None),
        FOREVER,
        1..=datto_queue_forever,
        DeadLetter(dlq),
    ));
    rows.push(row(
        Token,
        Status(503),
        FOREVER,
        BT_TRIES..=BT_TRIES,
        Refused("502 {\"error\":\"beyondtrust_unavailable\"".into()),
    ));
    rows.push(row(
        Invite,
        Status(502),
        FOREVER,
        BT_TRIES..=BT_TRIES,
        Refused("502 {\"error\":\"beyondtrust_unavailable\"".into()),
    ));
    rows.push(row(
        Report,
        Status(503),
        FOREVER,
        bt_queue_forever..=bt_queue_forever,
        DeadLetter(bt_dlq),
    ));
    rows.push(row(
        Report,
        Timeout,
        FOREVER,
        bt_queue_forever..=bt_queue_forever,
        DeadLetter(bt_dlq),
    ));
    // Permanent: one call, no retry by the client; a dead letter at once, or a clear error
    // (a sync run's error, an error answer) that the next go, the fault gone (say, the
    // permission granted), does not repeat: the faulted call and the next one.
    rows.push(row(Sync, Status(403), 1, 2..=2, OkOnRetry));
    rows.push(row(Enrich, Status(403), 1, 1..=1, DeadLetter(1)));
    rows.push(row(Resolve, Status(403), 1, 1..=1, DeadLetter(1)));
    rows.push(row(Sync, Malformed, 1, 2..=2, OkOnRetry));
    rows.push(row(Enrich, Malformed, 1, 1..=1, DeadLetter(1)));
    // Datto documents no body for a resolve's 2xx and every client ignores it: a 200 is
    // taken as done, whatever it carries.
    rows.push(row(Resolve, Malformed, 1, 1..=1, Ok));
    rows.push(row(Token, Status(403), 1, 2..=2, OkOnRetry));
    rows.push(row(Invite, Status(403), 1, 2..=2, OkOnRetry));
    // A 403 on the report (the API account lacks reporting rights) is retried on the
    // import's schedule: the admin has minutes to fix the account.
    rows.push(row(Report, Status(403), 1, 2..=2, OkOnRetry));
    rows.push(row(Token, Malformed, 1, 2..=2, OkOnRetry));
    rows.push(row(Invite, Malformed, 1, 2..=2, OkOnRetry));
    rows.push(row(Report, Malformed, 1, 1..=1, DeadLetter(1)));
    // A Retry-After beyond what an interactive call waits for (BeyondTrust: 5 s) fails it at
    // once instead of holding the agent.
    rows.push(row(Invite, TooMany(Some(30)), 1, 2..=2, OkOnRetry));
    widened(rows)
}

/// What one row did.
struct Seen {
    calls: usize,
    outcome: Outcome,
    /// The error seen on the way (empty when there was none).
    detail: String,
}

fn fresh_desk() -> (Desk, tempfile::TempDir) {
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
    (crate::desk::desk_on(records, clock), dir)
}

/// Drain `queue` until nothing is left; `(failed receives, dead letters)`.
async fn drain_all(d: &Desk, queue: QueueName) -> (u32, usize) {
    let mut failed = 0;
    for _ in 0..=queue.max_receives() + 1 {
        let (received, f) = d.drain(queue).await;
        failed += f as u32;
        if received == 0 {
            break;
        }
    }
    let (_, dl) = d.get("/api/dead-letters").await;
    (failed, dl["items"].as_array().map_or(0, Vec::len))
}

async fn dead_letter_error(d: &Desk) -> String {
    let (_, dl) = d.get("/api/dead-letters").await;
    dl["items"][0]["last_error"]
        .as_str()
        .or(dl["items"][0]["error"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn queue_outcome(failed: u32, dead: usize, done: bool) -> Outcome {
    match (dead, failed, done) {
        (0, 0, true) => Outcome::Ok,
        (0, _, true) => Outcome::OkOnRetry,
        (n, f, _) if n > 0 => Outcome::DeadLetter(f),
        (_, f, _) => Outcome::Refused(format!("not done after {f} failed receives")),
    }
}

async fn run_datto(r: &Row) -> Seen {
    let (mut d, _dir) = fresh_desk();
    let w: Wired = wire_with_timeout(&mut d, 500, Some(TIMEOUT)).await;
    let path = match r.call {
        Call::Sync => "/api/v2/account/alerts".to_string(),
        Call::Enrich => format!("/api/v2/alert/{UID}"),
        _ => format!("/api/v2/alert/{UID}/resolve"),
    };
    // The enrichment and resolve rows need the alert's ticket first (webhook, then the
    // enrichment message drained before any fault is armed).
    let ticket = if r.call == Call::Sync {
        None
    } else {
        let (_, created) = d.webhook(&fixture_json("webhook-raised.json")).await;
        let tid = created["ticket_id"].as_u64().expect("ticket");
        if r.call == Call::Resolve {
            assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 0));
        }
        Some(tid)
    };
    let before = w.fake.count_prefix(&path);
    w.fake.fail_next_on(&path, r.burst, r.kind.datto());
    let (outcome, detail) = match r.call {
        Call::Sync => {
            let (_, first) = d.sync_now().await;
            let errors = first["errors"].to_string();
            let clean = |run: &Value| run["errors"].as_array().is_none_or(Vec::is_empty) && run["tickets_created"] == 3;
            if clean(&first) {
                (Outcome::Ok, String::new())
            } else if r.burst >= FOREVER {
                (Outcome::Refused(errors.to_lowercase()), errors)
            } else {
                let (_, second) = d.sync_now().await;
                let o = if clean(&second) {
                    Outcome::OkOnRetry
                } else {
                    Outcome::Refused(second.to_string())
                };
                (o, errors)
            }
        }
        Call::Enrich => {
            let (failed, dead) = drain_all(&d, QueueName::AlertEnrich).await;
            let (_, t) = d.get(&format!("/api/tickets/{}", ticket.unwrap())).await;
            let done = t["actions"].as_array().unwrap().iter().any(|a| {
                a["note"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Details from Datto RMM")
            });
            (queue_outcome(failed, dead, done), dead_letter_error(&d).await)
        }
        _ => {
            let tid = ticket.unwrap();
            let (s, v) = d
                .post(&format!("/api/tickets/{tid}/close"), json!({"note": "done"}))
                .await;
            assert_eq!(s, 200, "{v}");
            let (failed, dead) = drain_all(&d, QueueName::TicketClosed).await;
            // (A 200 whose body is not JSON counts as done: see its row.)
            let done = d.ctx.store.pending_close(tid).await.unwrap().is_none()
                && (w.fake.alert(UID).unwrap()["resolved"] == true || r.kind == Kind::Malformed);
            (queue_outcome(failed, dead, done), dead_letter_error(&d).await)
        }
    };
    Seen {
        calls: w.fake.count_prefix(&path) - before,
        outcome,
        detail,
    }
}

async fn run_beyondtrust(r: &Row) -> Seen {
    let (mut d, _dir) = fresh_desk();
    d.ctx.beyondtrust = Arc::new(
        deskbridge::beyondtrust::connect::SettingsConnect::new(d.ctx.store.clone(), d.ctx.secrets.clone(), true)
            // Production's cap on a Retry-After (default_retry), without its waits.
            .with_retry(deskbridge::beyondtrust::RetryPolicy::immediate(2).with_max_retry_after(Duration::from_secs(5)))
            .with_timeout(TIMEOUT),
    );
    let bt: Bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    let endpoint = match r.call {
        Call::Token => TOKEN_ENDPOINT,
        Call::Invite => "generate_session_key",
        _ => "SupportSession",
    };
    let before = bt.fake.calls(endpoint) as usize;
    for _ in 0..r.burst.min(FOREVER) {
        for f in r.kind.beyondtrust() {
            bt.fake.push_fault(endpoint, f);
        }
    }
    let (outcome, detail) = if r.call == Call::Report {
        bt.fake.set_report(L1, report(L1, &format!("T{t}")));
        end_session(&d, L1).await;
        let (failed, dead) = drain_all(&d, QueueName::SessionImport).await;
        let done = remote_actions(&d, t).await.len() == 1;
        (queue_outcome(failed, dead, done), dead_letter_error(&d).await)
    } else {
        let invite = || async {
            call_as(
                &d,
                "POST",
                &format!("/api/tickets/{t}/remote-invites"),
                Some(bt.alice),
                Some(json!({"target": format!("agent:{}", bt.alice), "via": "quick"})),
            )
            .await
        };
        let (s, v): (u16, Value) = invite().await;
        let detail = if s == 201 { String::new() } else { format!("{s} {v}") };
        if s == 201 {
            (Outcome::Ok, detail)
        } else if r.burst >= FOREVER {
            (Outcome::Refused(detail.clone()), detail)
        } else {
            let (s2, v2) = invite().await;
            let o = if s2 == 201 {
                Outcome::OkOnRetry
            } else {
                Outcome::Refused(format!("{s2} {v2}"))
            };
            (o, detail)
        }
    };
    Seen {
        calls: bt.fake.calls(endpoint) as usize - before,
        outcome,
        detail,
    }
}

fn matches(expected: &Outcome, seen: &Outcome) -> bool {
    match (expected, seen) {
        // A clear error names the fault (its status, or what was unavailable).
        (Outcome::Refused(word), Outcome::Refused(got)) => got.to_lowercase().contains(word),
        (e, s) => e == s,
    }
}

#[tokio::test]
async fn vendor_faults_give_bounded_calls_eventual_success_or_a_dead_letter() {
    let rows = table();
    let mut failures = Vec::new();
    let mut by_vendor = std::collections::BTreeMap::<&str, usize>::new();
    let started = std::time::Instant::now();
    // Rows are independent (own desk, own fakes) and mostly wait: eight at a time, reported
    // in table order.
    let seen_all: Vec<Seen> = futures::StreamExt::collect(futures::StreamExt::buffered(
        futures::stream::iter(rows.iter().map(|r| async move {
            match r.call {
                Call::Sync | Call::Enrich | Call::Resolve => run_datto(r).await,
                _ => run_beyondtrust(r).await,
            }
        })),
        8,
    ))
    .await;
    for (r, seen) in rows.iter().zip(seen_all) {
        let vendor = match r.call {
            Call::Sync | Call::Enrich | Call::Resolve => "datto",
            _ => "beyondtrust",
        };
        *by_vendor.entry(vendor).or_default() += 1;
        let burst = if r.burst >= FOREVER {
            "for ever".to_string()
        } else {
            format!("×{}", r.burst)
        };
        let ok = r.calls.contains(&seen.calls) && matches(&r.outcome, &seen.outcome);
        let detail: String = seen.detail.chars().take(140).collect();
        println!(
            "{} {:?} × {:?} {burst}: {} calls (bound {:?}), {:?}{}",
            if ok { "ok  " } else { "FAIL" },
            r.call,
            r.kind,
            seen.calls,
            r.calls,
            seen.outcome,
            if detail.is_empty() {
                String::new()
            } else {
                format!(" — {detail}")
            }
        );
        if !ok {
            failures.push(format!(
                "{:?} × {:?} {burst}: {} calls (expected {:?}), {:?} (expected {:?}) {detail}",
                r.call, r.kind, seen.calls, r.calls, seen.outcome, r.outcome
            ));
        }
    }
    println!(
        "vendor faults: {} rows {by_vendor:?}, {} failed, {:.1} s",
        rows.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
