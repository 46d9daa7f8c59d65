//! The soak: minutes of mixed traffic at a fixed rate (new alerts, duplicates, resolves,
//! API reads, BeyondTrust session ends) against `deskbridge serve`, then its queues drained.
//!
//! Figures: requests and errors by kind, latency, RSS sampled through the run (growth after
//! warm-up), time to drain the queues, sessions imported. The load is `load::open_loop_calls`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::fixtures;
use serde_json::{json, Value};

use crate::ingest::{alert_body, alert_uid, configure_deskbridge};
use crate::load::{open_loop_calls, Call, LoadReport};
use crate::procfs::Rss;

/// How long, how fast, and how long the warm-up (excluded from the RSS growth) lasts.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    pub seconds: f64,
    pub rate: f64,
    pub warmup_seconds: f64,
    /// Tickets the BeyondTrust sessions land on.
    pub tickets: usize,
    /// Datto sites the new alerts are spread over.
    pub sites: usize,
}

impl SoakPlan {
    /// The documented run: 10 minutes at 100 req/s, the first minute warm-up.
    pub fn full() -> Self {
        SoakPlan {
            seconds: 600.0,
            rate: 100.0,
            warmup_seconds: 60.0,
            tickets: 20,
            sites: 50,
        }
    }

    /// The test command's version: 30 s at 100 req/s, 10 s warm-up.
    pub fn smoke() -> Self {
        SoakPlan {
            seconds: 30.0,
            rate: 100.0,
            warmup_seconds: 10.0,
            tickets: 5,
            sites: 10,
        }
    }
}

/// The kinds of request, in the order of one block of 20 (10 new alerts, 2 duplicates,
/// 2 resolves, 4 API reads, 2 BeyondTrust session ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Raise,
    Duplicate,
    Resolve,
    ApiRead,
    SessionEnd,
}

/// What request `i` of the soak is, and which raise/session number it concerns.
pub fn kind_of(i: usize) -> (Kind, usize) {
    let (block, slot) = (i / 20, i % 20);
    match slot {
        0..=9 => (Kind::Raise, block * 10 + slot),
        // The raises of the block before: answered ~200 ms ago, so these find them stored.
        10 | 11 => (Kind::Duplicate, (block.max(1) - 1) * 10 + 3 + (slot - 10)),
        12 | 13 => (Kind::Resolve, (block.max(1) - 1) * 10 + 5 * (slot - 12)),
        14..=17 => (Kind::ApiRead, slot - 14),
        _ => (Kind::SessionEnd, block * 2 + (slot - 18)),
    }
}

/// A configured server: the webhook state, the event path, the tickets sessions land on.
pub struct SoakSetup {
    pub base: String,
    pub token: String,
    pub state: String,
    pub event_path: String,
    pub ticket_ids: Vec<u64>,
    pub beyondtrust: FakeBeyondTrust,
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = client.request(method, &url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| url.clone())?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

/// Webhook intake on, BeyondTrust on a fake in this process (the server must allow
/// loopback vendors), a technician the reports name, a customer with `plan.tickets` tickets.
pub async fn configure(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    plan: &SoakPlan,
) -> anyhow::Result<SoakSetup> {
    use reqwest::Method;
    let state = configure_deskbridge(client, base, token).await?;
    let (_, beyondtrust) = FakeBeyondTrust::start().await;
    call(
        client,
        Method::PUT,
        format!("{base}/api/config/beyondtrust"),
        token,
        Some(json!({"base_url": beyondtrust.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})),
    )
    .await?;
    call(
        client,
        Method::POST,
        format!("{base}/api/agents"),
        token,
        Some(json!({"name": "Alice", "email": "alice@desk.example", "bt_enabled": true, "bt_name": "Alice Martin"})),
    )
    .await?;
    let customer = call(
        client,
        Method::POST,
        format!("{base}/api/customers"),
        token,
        Some(json!({"name": "Soak Customer"})),
    )
    .await?;
    let mut ticket_ids = Vec::new();
    for n in 0..plan.tickets {
        let t = call(
            client,
            Method::POST,
            format!("{base}/api/tickets"),
            token,
            Some(json!({"summary": format!("Remote work {n}"), "customer_id": customer["id"]})),
        )
        .await?;
        ticket_ids.push(t["id"].as_u64().context("ticket id")?);
    }
    let url = call(
        client,
        Method::GET,
        format!("{base}/api/config/beyondtrust/event-url"),
        token,
        None,
    )
    .await?;
    let url = url["url"].as_str().context("no event url")?;
    let at = url.find("/beyondtrust/events/").context("event url shape")?;
    Ok(SoakSetup {
        base: base.to_string(),
        token: token.to_string(),
        state,
        event_path: url[at..].to_string(),
        ticket_ids,
        beyondtrust,
    })
}

/// The lsid of session `n` of the soak (32 hex digits, like BeyondTrust's).
pub fn soak_lsid(n: usize) -> String {
    format!("50a4{n:028x}")
}

impl SoakSetup {
    fn ticket_of_session(&self, n: usize) -> u64 {
        self.ticket_ids[n % self.ticket_ids.len()]
    }

    /// Request `i`; a session end first puts its report in the fake.
    fn make(&self, i: usize, sites: usize) -> Call {
        let json_post = |path: &str, body: Bytes| Call {
            method: reqwest::Method::POST,
            url: format!("{}{path}", self.base),
            content_type: Some("application/json"),
            body,
            bearer: None,
        };
        let get = |path: String| Call {
            method: reqwest::Method::GET,
            url: format!("{}{path}", self.base),
            content_type: None,
            body: Bytes::new(),
            bearer: Some(Arc::from(self.token.as_str())),
        };
        match kind_of(i) {
            (Kind::Raise | Kind::Duplicate, n) => {
                json_post("/datto/webhook", alert_body(&self.state, &alert_uid(9, n), n % sites))
            }
            (Kind::Resolve, n) => {
                let mut v: Value =
                    serde_json::from_slice(&alert_body(&self.state, &alert_uid(9, n), n % sites)).expect("json");
                v["alert_resolved"] = json!(true);
                json_post("/datto/webhook", Bytes::from(v.to_string()))
            }
            (Kind::ApiRead, which) => {
                // An alert raised 50 blocks (10 s at 100 req/s) ago: long answered, even
                // at the worst latency of a loaded machine (a younger one raced its raise).
                let block = i / 20;
                match which {
                    0 => get("/api/tickets?status=open&limit=50".into()),
                    1 if block >= 50 => get(format!("/api/alerts/{}", alert_uid(9, (block - 50) * 10 + 1))),
                    1 => get("/api/tickets?limit=1".into()),
                    2 => get("/api/request-log?limit=20".into()),
                    _ => get(format!("/api/tickets/{}", self.ticket_of_session(i))),
                }
            }
            (Kind::SessionEnd, n) => {
                let lsid = soak_lsid(n);
                let ticket = self.ticket_of_session(n);
                self.beyondtrust.set_report(
                    &lsid,
                    fixtures::REPORT.replace(fixtures::LSID_T1042, &lsid).replace(
                        "<external_key>T1042</external_key>",
                        &format!("<external_key>T{ticket}</external_key>"),
                    ),
                );
                let form =
                    format!("event=support_conference_end&timestamp=1795425312&lsid={lsid}&external_key=T{ticket}");
                Call {
                    method: reqwest::Method::POST,
                    url: format!("{}{}", self.base, self.event_path),
                    content_type: Some("application/x-www-form-urlencoded"),
                    body: Bytes::from(form),
                    bearer: None,
                }
            }
        }
    }
}

/// Messages still waiting (visible or in flight) and dead letters, read from the server's
/// `queues.sqlite` (read-only; the server writes it in WAL mode).
pub fn queue_depth(data_dir: &Path) -> anyhow::Result<(u64, u64)> {
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("queues.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.busy_timeout(Duration::from_secs(5))?;
    let (waiting, dead): (i64, i64) = db.query_row(
        "SELECT COALESCE(SUM(dead = 0), 0), COALESCE(SUM(dead = 1), 0) FROM queue_messages",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((waiting as u64, dead as u64))
}

/// The waiting messages by queue and receive count, and the latest time one becomes
/// visible again (for a run whose queues did not drain).
fn waiting_breakdown(data_dir: &Path) -> anyhow::Result<String> {
    let db = rusqlite::Connection::open_with_flags(
        data_dir.join("queues.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut stmt = db.prepare(
        "SELECT queue, receive_count, COUNT(*), MAX(visible_at) FROM queue_messages WHERE dead = 0 GROUP BY queue, receive_count",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(format!(
            "{} × {} received {} times (latest visible at {})",
            r.get::<_, i64>(2)?,
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(3)?
        ))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?.join("; "))
}

/// Everything one soak measured.
#[derive(Debug, Clone)]
pub struct SoakFigures {
    pub load: LoadReport,
    /// Per kind: (sent, answered 2xx).
    pub by_kind: BTreeMap<Kind, (usize, usize)>,
    /// Statuses outside 2xx and how often (0: no answer).
    pub bad_statuses: BTreeMap<u16, usize>,
    /// (seconds since start, RSS KiB).
    pub rss: Vec<(f64, u64)>,
    pub rss_at_warmup: u64,
    pub rss_end: u64,
    pub rss_max_after_warmup: u64,
    pub drained_after: Duration,
    pub dead_letters: u64,
    pub sessions_sent: usize,
    pub sessions_imported: usize,
}

impl SoakFigures {
    /// RSS at the end over RSS at the end of the warm-up, minus one.
    pub fn rss_growth(&self) -> f64 {
        self.rss_end as f64 / self.rss_at_warmup.max(1) as f64 - 1.0
    }

    pub fn print(&self) {
        println!("soak: {}", self.load.summary());
        for (kind, (sent, ok)) in &self.by_kind {
            println!("  {kind:?}: {sent} sent, {ok} answered 2xx");
        }
        if !self.bad_statuses.is_empty() {
            println!("  statuses outside 2xx (0 = no answer): {:?}", self.bad_statuses);
        }
        println!(
            "  RSS: {:.1} MiB after warm-up, {:.1} MiB at the end ({:+.1} %), max after warm-up {:.1} MiB; {} samples",
            self.rss_at_warmup as f64 / 1024.0,
            self.rss_end as f64 / 1024.0,
            self.rss_growth() * 100.0,
            self.rss_max_after_warmup as f64 / 1024.0,
            self.rss.len()
        );
        println!(
            "  queues drained {:.1} s after the last answer, {} dead letters; sessions imported {} of {}",
            self.drained_after.as_secs_f64(),
            self.dead_letters,
            self.sessions_imported,
            self.sessions_sent
        );
    }
}

/// Run `plan` against the configured server `setup`, whose process is `pid` and data dir
/// `data_dir`; wait up to `drain_timeout` for its queues to empty.
pub async fn run(
    plan: &SoakPlan,
    setup: Arc<SoakSetup>,
    pid: u32,
    data_dir: PathBuf,
    drain_timeout: Duration,
) -> anyhow::Result<SoakFigures> {
    let client = crate::load::client();
    let started = Instant::now();
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Ok(r) = Rss::of(pid) {
                    samples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((started.elapsed().as_secs_f64(), r.now_kib));
                }
            }
        })
    };
    let count = (plan.rate * plan.seconds).round() as usize;
    let ok = Arc::new((0..5).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let bad: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let rss_warm = Arc::new(Mutex::new(None::<u64>));
    let load = {
        let (ok, bad) = (ok.clone(), bad.clone());
        let setup_make = setup.clone();
        let warm_at = (plan.rate * plan.warmup_seconds) as usize;
        let rss_warm = rss_warm.clone();
        let sites = plan.sites;
        open_loop_calls(
            &client,
            plan.rate,
            plan.seconds,
            move |i| {
                if i == warm_at {
                    *rss_warm.lock().unwrap_or_else(|p| p.into_inner()) = Rss::of(pid).ok().map(|r| r.now_kib);
                }
                setup_make.make(i, sites)
            },
            move |i, status| {
                if (200..300).contains(&status) {
                    ok[kind_of(i).0 as usize].fetch_add(1, Ordering::Relaxed);
                } else {
                    *bad.lock().unwrap_or_else(|p| p.into_inner()).entry(status).or_default() += 1;
                }
            },
        )
        .await
    };
    let rss_end = Rss::of(pid)?.now_kib;
    sampler.abort();

    let answered = Instant::now();
    let (dead_letters, drained_after) = loop {
        let (waiting, dead) = queue_depth(&data_dir)?;
        if waiting == 0 {
            break (dead, answered.elapsed());
        }
        if answered.elapsed() > drain_timeout {
            bail!(
                "{waiting} queue messages still waiting {drain_timeout:?} after the load: {}",
                waiting_breakdown(&data_dir).unwrap_or_else(|e| e.to_string())
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let mut sent: BTreeMap<Kind, usize> = BTreeMap::new();
    let mut sessions_sent = 0;
    for i in 0..count {
        let k = kind_of(i).0;
        *sent.entry(k).or_default() += 1;
        if k == Kind::SessionEnd {
            sessions_sent += 1;
        }
    }
    let kinds = [
        Kind::Raise,
        Kind::Duplicate,
        Kind::Resolve,
        Kind::ApiRead,
        Kind::SessionEnd,
    ];
    let by_kind = kinds
        .iter()
        .map(|k| {
            (
                *k,
                (
                    sent.get(k).copied().unwrap_or(0),
                    ok[*k as usize].load(Ordering::Relaxed),
                ),
            )
        })
        .collect();

    let mut sessions_imported = 0;
    for id in &setup.ticket_ids {
        let t = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/tickets/{id}", setup.base),
            &setup.token,
            None,
        )
        .await?;
        sessions_imported += t["actions"]
            .as_array()
            .map(|a| a.iter().filter(|a| a["kind"] == "remote_session").count())
            .unwrap_or(0);
    }

    let rss = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let rss_at_warmup = rss_warm
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .unwrap_or_else(|| rss.first().map(|s| s.1).unwrap_or(0));
    let rss_max_after_warmup = rss
        .iter()
        .filter(|(t, _)| *t >= plan.warmup_seconds)
        .map(|s| s.1)
        .chain([rss_end])
        .max()
        .unwrap_or(rss_end);
    let bad_statuses = bad.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(SoakFigures {
        load,
        by_kind,
        bad_statuses,
        rss,
        rss_at_warmup,
        rss_end,
        rss_max_after_warmup,
        drained_after,
        dead_letters,
        sessions_sent,
        sessions_imported,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_of_twenty_mixes_every_kind_and_refers_to_earlier_raises() {
        let kinds: Vec<Kind> = (0..20).map(|i| kind_of(i).0).collect();
        let count = |k| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(
            [
                Kind::Raise,
                Kind::Duplicate,
                Kind::Resolve,
                Kind::ApiRead,
                Kind::SessionEnd
            ]
            .map(count),
            [10, 2, 2, 4, 2]
        );
        // From the second block on, duplicates and resolves name raises of the block before.
        for i in 20..2000 {
            if let (Kind::Duplicate | Kind::Resolve, n) = kind_of(i) {
                assert!(n < (i / 20) * 10 && n >= (i / 20 - 1) * 10, "{i} -> {n}");
            }
        }
        assert_eq!(soak_lsid(7).len(), 32);
    }
}
