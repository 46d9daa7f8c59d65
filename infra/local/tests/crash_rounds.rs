//! Crash rounds (issue 14, item 2): `deskbridge serve` as a child under 5,000 webhooks from
//! several clients, SIGKILLed at a random moment and restarted on the same data dir.
//!
//! Each round checks that every acknowledged alert has its ticket and none has two, that
//! acknowledged resolves, agent closes and session ends took effect, and that the queued
//! work (enrichment, close propagation, session import) resumes after the restart and
//! drains. One round in `scripts/test`; `scripts/soak crash --rounds N` runs more
//! (`DESKBRIDGE_CRASH_ROUNDS`). Figures: docs/reliability.md.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::datto::fake::{fixtures, FakeDatto};
use serde_json::{json, Value};

const TOKEN: &str = "crash-round-token";
/// Webhooks per round, and the clients sending them.
const WEBHOOKS: usize = 5_000;
const CLIENTS: usize = 8;
/// Distinct alerts: each is raised many times (Datto repeats), the first ones resolved.
/// Few enough that their enrichment fits Datto's budget of 500 requests a minute.
const ALERTS: usize = 150;
/// Requests from this index on are resolved webhooks for alerts `0..RESOLVED`.
const RESOLVES_FROM: usize = 3_500;
const RESOLVED: usize = 50;
/// Alerts `AGENT_CLOSED` closed by an agent during the load (their close propagates).
const AGENT_CLOSED: std::ops::Range<usize> = 100..130;
/// BeyondTrust sessions ended during the load, one per prepared ticket.
const SESSIONS: usize = 40;
/// How long the queues may take to drain after the restart.
const DRAIN_LIMIT: Duration = Duration::from_secs(150);

struct Server {
    child: Child,
    base: String,
}

fn start(data_dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_deskbridge"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("DESKBRIDGE_API_TOKEN", TOKEN)
        .env("DESKBRIDGE_ALLOW_LOOPBACK_VENDORS", "true")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(base) = line.strip_prefix("deskbridge listening on ") {
                let _ = tx.send(base.to_string());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(base) => Server { child, base },
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print its address in time");
        }
    }
}

impl Server {
    async fn call(&self, client: &reqwest::Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

fn uid(k: usize) -> String {
    format!("00000000-0000-4000-8000-{k:012}")
}

/// Alert `k`'s device: one device per alert, so noise control relates none of them and
/// each acknowledged raise has a ticket of its own.
fn device(k: usize) -> (String, String) {
    (format!("d0000000-0000-4000-8000-{k:012}"), format!("ACME-WS{k:03}"))
}

fn lsid(n: usize) -> String {
    format!("{n:08x}c0ffee00c0ffee00c0ffee00")
}

fn webhook(state: &str, k: usize, resolved: bool) -> Value {
    let (device_uid, hostname) = device(k);
    json!({
        "state": state,
        "alert_resolved": resolved,
        "alert_uid": uid(k),
        "alert_message": format!("Disk C: on host-{k} is 95% full"),
        "alert_priority": "High",
        "device_uid": device_uid,
        "device_hostname": hostname,
        "site_uid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        "site_name": "Acme Ltd - Head Office",
    })
}

/// Datto's record of alert `k` (the fixture alert under another uid).
fn datto_alert(k: usize) -> Value {
    let mut a: Value = serde_json::from_str(fixtures::ALERT).unwrap();
    a["alertUid"] = json!(uid(k));
    let (device_uid, hostname) = device(k);
    a["alertSourceInfo"]["deviceUid"] = json!(device_uid);
    a["alertSourceInfo"]["deviceName"] = json!(hostname);
    a
}

struct World {
    datto: FakeDatto,
    bt: FakeBeyondTrust,
    state: String,
    event_path: String,
}

async fn configure(server: &Server, client: &reqwest::Client) -> World {
    let datto = FakeDatto::start().await;
    datto.seed_fixtures();
    for k in 0..ALERTS {
        datto.add_alert(datto_alert(k));
    }
    let (s, tt) = server
        .call(
            client,
            "POST",
            "/api/ticket-types",
            Some(json!({"name": "Monitoring alert"})),
        )
        .await;
    assert_eq!(s, 201, "{tt}");
    let (s, cfg) = server
        .call(
            client,
            "PUT",
            "/api/config/datto",
            Some(json!({"alert_method": "webhook", "default_ticket_type_id": tt["id"],
                        "import_mode": "customer_per_site", "api_url": datto.base_url(),
                        "api_key": FakeDatto::API_KEY, "api_secret": FakeDatto::API_SECRET})),
        )
        .await;
    assert_eq!(s, 200, "{cfg}");
    let (_, helper) = server.call(client, "GET", "/api/config/datto/webhook", None).await;
    let state = helper["raised_payload"]["state"].as_str().expect("state").to_string();

    let (_, bt) = FakeBeyondTrust::start().await;
    let (s, v) = server
        .call(
            client,
            "PUT",
            "/api/config/beyondtrust",
            Some(json!({"base_url": bt.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = server
        .call(
            client,
            "POST",
            "/api/agents",
            Some(
                json!({"name": "Alice", "email": "alice@desk.example", "bt_enabled": true, "bt_name": "Alice Martin"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, customer) = server
        .call(
            client,
            "POST",
            "/api/customers",
            Some(json!({"name": "Crash Customer"})),
        )
        .await;
    for n in 0..SESSIONS {
        let (s, t) = server
            .call(
                client,
                "POST",
                "/api/tickets",
                Some(json!({"summary": format!("Remote work {n}"), "customer_id": customer["id"]})),
            )
            .await;
        assert_eq!(s, 201, "{t}");
        let id = t["id"].as_u64().unwrap();
        let report = deskbridge::beyondtrust::fixtures::REPORT
            .replace(deskbridge::beyondtrust::fixtures::LSID_T1042, &lsid(n))
            .replace(
                "<external_key>T1042</external_key>",
                &format!("<external_key>T{id}</external_key>"),
            );
        bt.set_report(&lsid(n), report);
    }
    let (_, url) = server
        .call(client, "GET", "/api/config/beyondtrust/event-url", None)
        .await;
    let url = url["url"].as_str().expect("event url");
    let event_path = url[url.find("/beyondtrust/events/").expect("event path")..].to_string();
    World {
        datto,
        bt,
        state,
        event_path,
    }
}

/// What the clients saw answered 2xx before the kill.
#[derive(Default)]
struct Acked {
    /// uid index → ticket id, from raised webhooks.
    raised: HashMap<usize, u64>,
    /// uid indexes whose raise answered `created`.
    created: HashSet<usize>,
    resolved: HashSet<usize>,
    agent_closed: HashSet<usize>,
    sessions: HashSet<usize>,
    /// Requests sent (answered or not).
    sent: usize,
}

/// Messages waiting (visible or in flight) and dead letters in the server's queue file.
fn queue_depth(data_dir: &Path) -> (u64, u64) {
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("queues.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("queues.sqlite");
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let (waiting, dead): (i64, i64) = db
        .query_row(
            "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM queue_messages",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("queue depth");
    (waiting as u64, dead as u64)
}

/// Every ticket of the desk: alert uid → ticket ids, and the tickets by id.
async fn all_tickets(server: &Server, client: &reqwest::Client) -> (BTreeMap<String, Vec<u64>>, HashMap<u64, Value>) {
    let (mut by_uid, mut by_id) = (BTreeMap::<String, Vec<u64>>::new(), HashMap::new());
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/tickets?limit=1000&cursor={c}"),
            None => "/api/tickets?limit=1000".to_string(),
        };
        let (s, page) = server.call(client, "GET", &path, None).await;
        assert_eq!(s, 200, "{page}");
        for t in page["items"].as_array().unwrap() {
            let id = t["id"].as_u64().unwrap();
            if let Some(u) = t["alert_uid"].as_str() {
                by_uid.entry(u.to_string()).or_default().push(id);
            }
            by_id.insert(id, t.clone());
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => return (by_uid, by_id),
        }
    }
}

/// One round's figures.
struct Round {
    sent: usize,
    acked: usize,
    killed_after: usize,
    tickets_found: usize,
    duplicates: usize,
    waiting_at_restart: u64,
    drain: Duration,
    unenriched_unacked: usize,
}

async fn round(n: usize) -> Round {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let server = start(dir.path());
    let world = configure(&server, &client).await;
    let kill_at = rand::random_range(WEBHOOKS / 10..WEBHOOKS * 9 / 10);
    let next = Arc::new(AtomicUsize::new(0));
    let acks = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (next, acks, acked, client) = (next.clone(), acks.clone(), acked.clone(), client.clone());
        let (url, state) = (format!("{}/datto/webhook", server.base), world.state.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= WEBHOOKS {
                    return;
                }
                let (k, resolved) = if i < RESOLVES_FROM {
                    (i % ALERTS, false)
                } else {
                    ((i - RESOLVES_FROM) % RESOLVED, true)
                };
                acked.lock().unwrap().sent += 1;
                let Ok(resp) = client.post(&url).json(&webhook(&state, k, resolved)).send().await else {
                    return;
                };
                let status = resp.status().as_u16();
                let Ok(body) = resp.json::<Value>().await else { return };
                assert_eq!(status, 200, "webhook {i}: {body}");
                let mut a = acked.lock().unwrap();
                if resolved {
                    a.resolved.insert(k);
                } else if let Some(t) = body["ticket_id"].as_u64() {
                    if let Some(before) = a.raised.insert(k, t) {
                        assert_eq!(before, t, "alert {k} answered with two tickets");
                    }
                    if body["result"] == "created" {
                        a.created.insert(k);
                    }
                }
                drop(a);
                acks.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // An agent closes alert tickets as they appear.
    {
        let (acked, client, base) = (acked.clone(), client.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            let mut todo: Vec<usize> = AGENT_CLOSED.collect();
            while !todo.is_empty() {
                let ready: Vec<(usize, u64)> = {
                    let a = acked.lock().unwrap();
                    todo.iter().filter_map(|k| a.raised.get(k).map(|t| (*k, *t))).collect()
                };
                for (k, t) in ready {
                    let Ok(resp) = client
                        .post(format!("{base}/api/tickets/{t}/close"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"note": "fixed"}))
                        .send()
                        .await
                    else {
                        return;
                    };
                    if resp.status().as_u16() == 200 {
                        acked.lock().unwrap().agent_closed.insert(k);
                    }
                    todo.retain(|x| *x != k);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // BeyondTrust ends sessions.
    {
        let (acked, client) = (acked.clone(), client.clone());
        let url = format!("{}{}", server.base, world.event_path);
        tasks.push(tokio::spawn(async move {
            for s in 0..SESSIONS {
                let form = format!(
                    "event=support_conference_end&version=3&timestamp=1795425312&appliance_id=ba8a&lsid={}&external_key=",
                    lsid(s)
                );
                let Ok(resp) = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form)
                    .send()
                    .await
                else {
                    return;
                };
                if resp.status().as_u16() == 200 {
                    acked.lock().unwrap().sessions.insert(s);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while acks.load(Ordering::SeqCst) < kill_at && next.load(Ordering::SeqCst) < WEBHOOKS {
        assert!(
            Instant::now() < deadline,
            "round {n}: {kill_at} acknowledgements took too long"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let killed_after = acks.load(Ordering::SeqCst);
    server.sigkill();
    for t in tasks {
        t.await.expect("client task");
    }
    let (waiting_at_restart, _) = queue_depth(dir.path());

    // Restart on the same data dir; the queued work resumes.
    let restarted = Instant::now();
    let server = start(dir.path());
    loop {
        let (waiting, dead) = queue_depth(dir.path());
        assert_eq!(dead, 0, "round {n}: a dead letter after the restart");
        if waiting == 0 {
            break;
        }
        assert!(
            restarted.elapsed() < DRAIN_LIMIT,
            "round {n}: {waiting} messages still waiting {DRAIN_LIMIT:?} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = restarted.elapsed();

    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let (by_uid, by_id) = all_tickets(&server, &client).await;
    let duplicates = by_uid.values().filter(|ids| ids.len() > 1).count();
    assert_eq!(
        duplicates,
        0,
        "round {n}: alerts with two tickets: {:?}",
        by_uid.values().filter(|v| v.len() > 1).collect::<Vec<_>>()
    );
    let mut tickets_found = 0;
    for (k, t) in &acked.raised {
        let ids = by_uid
            .get(&uid(*k))
            .unwrap_or_else(|| panic!("round {n}: acknowledged alert {k} has no ticket"));
        assert_eq!(ids, &vec![*t], "round {n}: alert {k}'s ticket");
        tickets_found += 1;
    }
    for k in &acked.resolved {
        if let Some(t) = by_uid.get(&uid(*k)).and_then(|ids| ids.first()) {
            assert_eq!(
                by_id[t]["status"], "closed",
                "round {n}: resolved alert {k}'s ticket is open"
            );
        }
    }
    for k in &acked.agent_closed {
        let t = by_uid[&uid(*k)][0];
        assert_eq!(
            by_id[&t]["status"], "closed",
            "round {n}: agent-closed ticket {t} is open"
        );
        assert_eq!(
            world.datto.alert(&uid(*k)).unwrap()["resolved"],
            true,
            "round {n}: close of alert {k} never reached Datto"
        );
    }
    for k in 0..ALERTS {
        let resolves = world.datto.count(&format!("/api/v2/alert/{}/resolve", uid(k)));
        assert!(resolves <= 1, "round {n}: alert {k} resolved {resolves} times in Datto");
        if !AGENT_CLOSED.contains(&k) {
            assert_eq!(
                resolves, 0,
                "round {n}: a Datto call for alert {k}, which no agent closed"
            );
        }
    }
    // Enrichment: every acknowledged creation was enriched (the fake saw its alert read).
    let mut unenriched_unacked = 0;
    for k in by_uid
        .keys()
        .filter_map(|u| u.rsplit('-').next()?.parse::<usize>().ok())
    {
        let reads = world.datto.count(&format!("/api/v2/alert/{}", uid(k)));
        if acked.created.contains(&k) {
            assert!(reads >= 1, "round {n}: acknowledged alert {k} was never enriched");
        } else if reads == 0 {
            // Created by a request whose answer the kill cut off, between the durable
            // write and the enrichment request (best effort): counted, not lost.
            unenriched_unacked += 1;
        }
    }
    let (_, sessions) = server
        .call(&client, "GET", "/api/remote-sessions?limit=1000", None)
        .await;
    let imported: HashSet<String> = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["lsid"].as_str().map(str::to_string))
        .collect();
    for s in &acked.sessions {
        assert!(
            imported.contains(&lsid(*s)),
            "round {n}: session {s} acknowledged but not imported"
        );
        assert!(world.bt.report_fetches(&lsid(*s)) >= 1);
    }
    server.sigkill();
    let r = Round {
        sent: acked.sent,
        acked: killed_after,
        killed_after: kill_at,
        tickets_found,
        duplicates,
        waiting_at_restart,
        drain,
        unenriched_unacked,
    };
    println!(
        "crash round {n}: {} webhooks sent, {} acknowledged before the SIGKILL (aimed at {}); {} acknowledged alerts, {} with their ticket, {} duplicates; {} resolves, {} agent closes, {} session ends acknowledged, all in effect; {} messages waiting at the restart, drained {:.1} s after it; {} alerts created by a cut-off request left unenriched",
        r.sent,
        r.acked,
        r.killed_after,
        acked.raised.len(),
        r.tickets_found,
        r.duplicates,
        acked.resolved.len(),
        acked.agent_closed.len(),
        acked.sessions.len(),
        r.waiting_at_restart,
        r.drain.as_secs_f64(),
        r.unenriched_unacked
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rounds_keep_every_acknowledged_alert_once_and_resume_queued_work() {
    let rounds: usize = std::env::var("DESKBRIDGE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut all = Vec::new();
    for n in 1..=rounds {
        all.push(round(n).await);
    }
    let acked: usize = all.iter().map(|r| r.acked).sum();
    let found: usize = all.iter().map(|r| r.tickets_found).sum();
    let dups: usize = all.iter().map(|r| r.duplicates).sum();
    let worst = all.iter().map(|r| r.drain).max().unwrap_or_default();
    println!(
        "crash rounds: {rounds}, {acked} acknowledgements in all, {found} acknowledged alerts with their ticket, {dups} duplicates, slowest drain {:.1} s",
        worst.as_secs_f64()
    );
}
