//! Store faults injected at every write (and read) position of real requests through the
//! real routers: 503 and never 2xx, nothing partially stored, and recovery once lifted.
//!
//! For each scenario a clean run counts the request's store writes M. Then, on a fresh
//! desk each time, write N (1..=M) fails: the answer must be 503, the stored state must
//! equal the state before except for the records a scenario declares may precede its one
//! durable decision (a Datto site import, which a retry reuses), counters (an id used up is
//! a gap) and the request log's entry of the refusal itself (status 503); and the same
//! request sent again with the fault lifted must succeed and leave as many records of each
//! kind as the clean run did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use deskbridge::ports::{ManualClock, Record, RecordStore};
use deskbridge_tests::faults::{Fault, FaultyStore};
use serde_json::{json, Value};

use crate::desk::{desk_on, fixture_json, fixture_time, Desk};

#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// A raised webhook for an unknown alert on an unmapped site: site import + ticket.
    WebhookRaised,
    /// The resolved webhook for an open alert: closes its ticket.
    WebhookResolved,
    /// BeyondTrust's session-end event: recorded, then queued for import.
    BeyondTrustSessionEnd,
    /// An agent's note on a ticket.
    TicketAction,
    /// An agent closes an alert's ticket: close + pending propagation.
    AgentClose,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario::WebhookRaised,
    Scenario::WebhookResolved,
    Scenario::BeyondTrustSessionEnd,
    Scenario::TicketAction,
    Scenario::AgentClose,
];

const LSID: &str = "a3f1c9e27b5d4e08b6c2d9f4e1a7b530";

type Snapshot = BTreeMap<(String, String), Record>;

impl Scenario {
    /// Partitions whose records a failed attempt may leave behind, and why that is safe.
    /// (Counters are no records: a failed attempt may use up an id, which leaves a gap.)
    fn may_precede(self) -> &'static [&'static str] {
        match self {
            // The site import (customer, its site, the mapping, all under NotExists) is its
            // own durable step before the alert's transaction; the retry finds and reuses it.
            Scenario::WebhookRaised => &["customer", "site", "site-mapping"],
            _ => &[],
        }
    }

    /// Bring a fresh desk to where the request makes sense; returns what the request needs.
    async fn setup(self, d: &Desk) -> Value {
        match self {
            Scenario::WebhookRaised => {
                d.configure_datto().await;
                Value::Null
            }
            Scenario::WebhookResolved => {
                d.configure_datto().await;
                let (s, v) = d.webhook(&fixture_json("webhook-raised.json")).await;
                assert_eq!(s, 200, "{v}");
                v
            }
            Scenario::BeyondTrustSessionEnd => {
                let (s, v) = d.get("/api/config/beyondtrust/event-url").await;
                assert_eq!(s, 200, "{v}");
                json!(v["url"].as_str().unwrap().rsplit('/').next().unwrap())
            }
            Scenario::TicketAction => {
                let (s, c) = d.post("/api/customers", json!({"name": "Contoso"})).await;
                assert_eq!(s, 201, "{c}");
                let (s, t) = d
                    .post(
                        "/api/tickets",
                        json!({"summary": "Printer jam", "customer_id": c["id"]}),
                    )
                    .await;
                assert_eq!(s, 201, "{t}");
                t
            }
            Scenario::AgentClose => {
                d.configure_datto().await;
                let (s, v) = d.webhook(&fixture_json("webhook-raised.json")).await;
                assert_eq!(s, 200, "{v}");
                v
            }
        }
    }

    async fn request(self, d: &Desk, ctx: &Value) -> (u16, Value) {
        match self {
            Scenario::WebhookRaised => d.webhook(&fixture_json("webhook-raised.json")).await,
            Scenario::WebhookResolved => d.webhook(&fixture_json("webhook-resolved.json")).await,
            Scenario::BeyondTrustSessionEnd => {
                let body = format!("event=support_conference_end&version=3&timestamp=1795425312&lsid={LSID}");
                d.call(
                    "POST",
                    &format!("/beyondtrust/events/{}", ctx.as_str().unwrap()),
                    Some("application/x-www-form-urlencoded"),
                    body.into_bytes(),
                    false,
                )
                .await
            }
            Scenario::TicketAction => {
                d.post(
                    &format!("/api/tickets/{}/actions", ctx["id"]),
                    json!({"note": "Replaced the drum"}),
                )
                .await
            }
            Scenario::AgentClose => {
                d.post(
                    &format!("/api/tickets/{}/close", ctx["ticket_id"]),
                    json!({"note": "Fixed on site"}),
                )
                .await
            }
        }
    }
}

/// The intake's request-log entry of a refused request: the failure's own record, which
/// the request log exists to keep (DESIGN §3: each intake request, with its outcome).
fn is_failure_log(r: &Record) -> bool {
    r.pk == "request-log" && r.data["status"] == 503
}

/// The keys whose records differ between two snapshots, the failure's log entry left out.
fn changed(before: &Snapshot, after: &Snapshot) -> BTreeSet<(String, String)> {
    let keys: BTreeSet<_> = before.keys().chain(after.keys()).cloned().collect();
    keys.into_iter()
        .filter(|k| before.get(k) != after.get(k))
        .filter(|k| !(before.get(k).is_none() && after.get(k).is_some_and(is_failure_log)))
        .collect()
}

/// Records per kind (`ticket#7` counts as `ticket#`: ids may differ by a gap), failure log
/// entries left out.
fn shape(s: &Snapshot) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for ((pk, _), _) in s.iter().filter(|(_, r)| !is_failure_log(r)) {
        let kind = pk.split_once('#').map_or(pk.clone(), |(k, _)| format!("{k}#"));
        *out.entry(kind).or_default() += 1;
    }
    out
}

/// Which store a desk runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Dynamodb,
}

struct Rig {
    desk: Desk,
    faults: Arc<FaultyStore>,
    _dir: Option<tempfile::TempDir>,
}

async fn rig(backend: Backend) -> Rig {
    let clock = Arc::new(ManualClock::new(fixture_time()));
    let (inner, dir): (Arc<dyn RecordStore>, _) = match backend {
        Backend::Sqlite => {
            let (r, dir) = deskbridge_tests::stores::sqlite(clock.clone());
            (r, Some(dir))
        }
        Backend::Dynamodb => (
            deskbridge_tests::stores::dynamodb()
                .await
                .expect("checked by the caller"),
            None,
        ),
    };
    let faults = FaultyStore::new(inner);
    Rig {
        desk: desk_on(faults.clone(), clock),
        faults,
        _dir: dir,
    }
}

/// Tallies over all scenarios, printed as the figure of docs/reliability.md.
#[derive(Default)]
struct Tally {
    attempts: usize,
    ok_2xx: usize,
    unavailable_503: usize,
    partial: usize,
    recovered: usize,
    /// 2xx where only a best-effort write after the durable decision failed.
    log_only_2xx: usize,
}

/// Writes a handler makes after its durable decision and survives the failure of (logging
/// it): the BeyondTrust intake's request-log entry, and the "message sent" mark of a
/// pending close (unmarked, the sweep sends once more; propagation is idempotent).
fn is_best_effort(call: &str) -> bool {
    !call.contains(", ") && (call.starts_with("write [request-log/") || call.starts_with("write [pending-close/"))
}

async fn each_write_position(backend: Backend) -> Tally {
    let mut t = Tally::default();
    for scenario in SCENARIOS {
        // Clean run: how many writes the request makes, what it answers, what it leaves.
        let clean = rig(backend).await;
        let ctx = scenario.setup(&clean.desk).await;
        clean.faults.arm(Fault::None);
        let (status, body) = scenario.request(&clean.desk, &ctx).await;
        assert!((200..300).contains(&status), "{scenario:?} clean run: {status} {body}");
        let m = clean.faults.writes();
        assert!(m >= 1, "{scenario:?} wrote nothing");
        let clean_shape = shape(&clean.faults.snapshot().await);
        println!("{backend:?} {scenario:?}: {m} writes, clean answer {status}");

        for n in 1..=m {
            let r = rig(backend).await;
            let ctx = scenario.setup(&r.desk).await;
            let before = r.faults.snapshot().await;
            r.faults.arm(Fault::NthWrite(n));
            let (s, v) = scenario.request(&r.desk, &ctx).await;
            t.attempts += 1;
            let failed = r.faults.failed_calls();
            if (200..300).contains(&s) && failed.iter().all(|c| is_best_effort(c)) {
                // Only a write after the durable decision failed: everything else must be
                // stored in full (a failed log write leaves the log one entry short).
                let mut want = clean_shape.clone();
                if failed.iter().any(|c| c.starts_with("write [request-log/")) {
                    *want.get_mut("request-log").expect("clean run logged") -= 1;
                }
                want.retain(|_, n| *n > 0);
                assert_eq!(
                    shape(&r.faults.snapshot().await),
                    want,
                    "{backend:?} {scenario:?} answered {s} with its log write {n}/{m} failed"
                );
                println!("{backend:?} {scenario:?}: write {n}/{m} ({failed:?}) comes after the durable decision: {s}, decision stored");
                t.log_only_2xx += 1;
                continue;
            }
            if (200..300).contains(&s) {
                t.ok_2xx += 1;
            }
            assert_eq!(
                s,
                503,
                "{backend:?} {scenario:?} fault at write {n}/{m} ({:?}): {v}",
                r.faults.failed_calls()
            );
            assert_eq!(v["error"], "STORE_UNAVAILABLE", "{v}");
            t.unavailable_503 += 1;
            let after = r.faults.snapshot().await;
            let stray: Vec<_> = changed(&before, &after)
                .into_iter()
                .filter(|(pk, _)| !scenario.may_precede().contains(&pk.as_str()))
                .collect();
            if !stray.is_empty() {
                t.partial += 1;
            }
            assert!(
                stray.is_empty(),
                "{backend:?} {scenario:?} fault at write {n}/{m} left a partial write: {stray:?}"
            );

            r.faults.arm(Fault::None);
            let (s2, v2) = scenario.request(&r.desk, &ctx).await;
            assert_eq!(
                (s2, v2.get("result")),
                (status, body.get("result")),
                "{backend:?} {scenario:?} retry after a fault at write {n}/{m}: {v2}"
            );
            assert_eq!(
                shape(&r.faults.snapshot().await),
                clean_shape,
                "{backend:?} {scenario:?} retry after a fault at write {n}/{m} stored other records than a clean run"
            );
            t.recovered += 1;
        }
    }
    println!(
        "{backend:?}: fault at each write position of {} requests: {} attempts, {} x 2xx, {} x 503, {} partial writes, \
         {} recovered on retry, {} x 2xx with only a best-effort write after the durable decision failed",
        SCENARIOS.len(),
        t.attempts,
        t.ok_2xx,
        t.unavailable_503,
        t.partial,
        t.recovered,
        t.log_only_2xx
    );
    t
}

#[tokio::test]
async fn a_fault_at_any_write_answers_503_stores_nothing_partial_and_recovers_sqlite() {
    let t = each_write_position(Backend::Sqlite).await;
    assert_eq!((t.ok_2xx, t.partial), (0, 0));
    assert_eq!(t.recovered + t.log_only_2xx, t.attempts);
}

#[tokio::test]
async fn a_fault_at_any_write_answers_503_stores_nothing_partial_and_recovers_dynamodb() {
    if deskbridge_tests::emulators::dynamodb().is_none() {
        return;
    }
    let t = each_write_position(Backend::Dynamodb).await;
    assert_eq!((t.ok_2xx, t.partial), (0, 0));
    assert_eq!(t.recovered + t.log_only_2xx, t.attempts);
}

/// A failed read before the durable write is as unavailable as a failed write: 503 and
/// nothing stored. A read after it (work the answer does not wait for) may fail without
/// undoing the acknowledgement, so a 2xx is allowed only with everything a clean run stores.
#[tokio::test]
async fn a_fault_at_any_read_of_the_webhook_answers_503_or_leaves_the_write_complete() {
    let scenario = Scenario::WebhookRaised;
    let clean = rig(Backend::Sqlite).await;
    scenario.setup(&clean.desk).await;
    clean.faults.arm(Fault::None);
    let (s, v) = scenario.request(&clean.desk, &Value::Null).await;
    assert_eq!(s, 200, "{v}");
    let m = clean.faults.reads();
    let clean_shape = shape(&clean.faults.snapshot().await);
    let (mut refused, mut acked) = (0, 0);
    for n in 1..=m {
        let r = rig(Backend::Sqlite).await;
        scenario.setup(&r.desk).await;
        let before = r.faults.snapshot().await;
        r.faults.arm(Fault::NthRead(n));
        let (s, v) = scenario.request(&r.desk, &Value::Null).await;
        let failed = r.faults.failed_calls();
        let after = r.faults.snapshot().await;
        match s {
            503 => {
                refused += 1;
                let stray: Vec<_> = changed(&before, &after)
                    .into_iter()
                    .filter(|(pk, _)| !scenario.may_precede().contains(&pk.as_str()))
                    .collect();
                assert!(stray.is_empty(), "fault at read {n}/{m} ({failed:?}) left {stray:?}");
                r.faults.arm(Fault::None);
                assert_eq!(scenario.request(&r.desk, &Value::Null).await.0, 200);
            }
            200 => {
                acked += 1;
                assert_eq!(
                    shape(&after),
                    clean_shape,
                    "2xx with fault at read {n}/{m} ({failed:?}) but the write is incomplete"
                );
                println!(
                    "read {n}/{m} ({failed:?}) failed after the durable write: answered 200 with the write complete"
                );
            }
            other => panic!("fault at read {n}/{m} ({failed:?}): {other} {v}"),
        }
    }
    println!("fault at each of {m} read positions of the raised webhook: {refused} x 503 (nothing stored), {acked} x 200 (after the durable write, complete), 0 partial writes");
}

/// A DynamoDB Local of this test's own, file-backed, on a free loopback port.
struct OwnDynamo {
    dir: String,
    db_path: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnDynamo {
    fn start(dir: String) -> OwnDynamo {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut d = OwnDynamo {
            dir,
            db_path: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        d.restart();
        d
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)start on the same port and data files; returns once it accepts connections.
    fn restart(&mut self) {
        let child = std::process::Command::new("java")
            .arg(format!("-Djava.library.path={}/DynamoDBLocal_lib", self.dir))
            .arg("-jar")
            .arg(format!("{}/DynamoDBLocal.jar", self.dir))
            .args([
                "-sharedDb",
                "-disableTelemetry",
                "-port",
                &self.port.to_string(),
                "-dbPath",
            ])
            .arg(self.db_path.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("java runs DynamoDB Local");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "DynamoDB Local did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reaped");
        }
    }

    /// Take it away mid-run with SIGTERM. (DynamoDB Local answers a write before it has
    /// written it to its `-dbPath` files: a SIGKILL within milliseconds of the answer loses
    /// the last TransactWriteItems, which the real service, durable when it answers, never
    /// does. On SIGTERM it keeps what it answered; to deskbridge either is a refused
    /// connection.)
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let ok = std::process::Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(ok.success(), "SIGTERM to DynamoDB Local");
            c.wait().expect("reaped");
        }
    }
}

impl Drop for OwnDynamo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// DynamoDB Local stopped mid-run: intake and API answer 503 (never 2xx) while it is down,
/// and the same process serves again, with nothing lost, once it is back on its port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_stopped_mid_run_answers_503_and_the_service_recovers_by_itself() {
    use aws_sdk_dynamodb::config::{retry::RetryConfig, timeout::TimeoutConfig};
    let Some(dir) = deskbridge_tests::emulators::dynamodb_local_dir() else {
        return;
    };
    let mut ddb = OwnDynamo::start(dir);
    let sdk = deskbridge_tests::emulators::aws_config(&ddb.endpoint()).await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_millis(500))
                .operation_timeout(std::time::Duration::from_secs(5))
                .build(),
        )
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    deskbridge::adapters::dynamo::create_table(&client, "stopped-mid-run")
        .await
        .expect("create table");
    let records = Arc::new(deskbridge::adapters::dynamo::DynamoRecordStore::new(
        client,
        "stopped-mid-run",
    ));
    let d = desk_on(records, Arc::new(ManualClock::new(fixture_time())));
    d.configure_datto().await;
    let first = fixture_json("webhook-raised.json");
    let mut second = first.clone();
    second["alert_uid"] = json!("3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28");
    // Another device, so noise control does not join it to the first alert's ticket.
    second["device_uid"] = json!("d4c3b2a1-0000-4000-8000-000000000002");
    second["device_hostname"] = json!("ACME-WS02");
    assert_eq!(d.webhook(&first).await.0, 200);

    ddb.stop();
    let started = std::time::Instant::now();
    let mut down = Vec::new();
    for _ in 0..3 {
        down.push(d.webhook(&second).await.0);
        down.push(d.get("/api/tickets").await.0);
        down.push(d.post("/api/customers", json!({"name": "Contoso"})).await.0);
    }
    let outage = started.elapsed();
    assert!(
        down.iter().all(|s| *s == 503),
        "answers while DynamoDB was down: {down:?}"
    );

    ddb.restart();
    let (s, v) = d.webhook(&second).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("created")), "{v}");
    assert_eq!(
        d.webhook(&first).await.1["result"],
        "duplicate",
        "the first alert survived"
    );
    let tickets = d.tickets().await;
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    println!(
        "DynamoDB Local stopped mid-run: {} requests while down, {} x 503, 0 x 2xx ({} ms in all); \
         after its restart the same process served again: 2 tickets, nothing lost",
        down.len(),
        down.iter().filter(|s| **s == 503).count(),
        outage.as_millis()
    );
}
