//! Each benchmark run tiny, inside the normal test run, so none of them can rot: the ingest
//! load against the floor binary and an in-process deskbridge, the sync on both stores,
//! the DynamoDB capacity count. Asserts what must hold at any size, never timings.

use std::path::Path;
use std::sync::Arc;

use deskbridge::ports::{Clock, SystemClock};
use deskbridge_bench::ingest::{self, IngestPlan, Target};
use deskbridge_bench::{capacity, sync};
use deskbridge_local::{LocalConfig, LocalServer};

const TOKEN: &str = "smoke-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_bench_runs_every_load_on_both_servers_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let floor = ingest::spawn_floor(Path::new(env!("CARGO_BIN_EXE_floor-server")), &dir.path().join("floor"))
        .expect("floor server starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = LocalServer::build(
        listener,
        LocalConfig {
            data_dir: dir.path().join("deskbridge"),
            api_token: Some(TOKEN.into()),
            public_url: None,
            allow_loopback_vendors: false,
        },
    )
    .await
    .expect("deskbridge builds");
    let deskbridge = Target {
        name: "deskbridge (in-process)".into(),
        base: format!("http://{}", server.addr),
        pid: std::process::id(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let state = ingest::configure_deskbridge(&deskbridge_bench::load::client(), &deskbridge.base, TOKEN)
        .await
        .expect("configured");
    let plan = IngestPlan::smoke();
    let figures = ingest::run(&plan, &deskbridge, &state, &floor.target)
        .await
        .expect("ingest bench");
    assert_eq!(figures.runs.len(), 3);
    let fixed = (plan.rate * plan.seconds).round() as usize;
    for (pair, expected) in figures.runs.iter().zip([plan.alerts, plan.alerts, fixed]) {
        for (who, r) in [("deskbridge", &pair.deskbridge), ("floor", &pair.floor)] {
            assert_eq!(r.requests, expected, "{who}, {}", pair.label);
            assert_eq!((r.non_2xx, r.failed), (0, 0), "{who}, {}: {}", pair.label, r.summary());
        }
    }
    assert!(figures.rss_idle.now_kib > 0 && figures.floor_rss_end.now_kib > 0);

    // The alerts really landed: the distinct run's last alert has its ticket.
    let uid = ingest::alert_uid(1, plan.alerts - 1);
    let alert: serde_json::Value = deskbridge_bench::load::client()
        .get(format!("{}/api/alerts/{uid}", deskbridge.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(alert["ticket_id"].as_u64().is_some(), "{alert}");

    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    let log = floor.stop().expect("floor stops on SIGTERM");
    assert!(!log.contains("panicked"), "{log}");
}

/// An in-process `deskbridge serve` on a fresh data dir: its target, and the sender that
/// stops it with the task it runs in.
async fn in_process(
    dir: &Path,
    name: &str,
) -> (
    Target,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = LocalServer::build(
        listener,
        LocalConfig {
            data_dir: dir.join(name),
            api_token: Some(TOKEN.into()),
            public_url: None,
            allow_loopback_vendors: false,
        },
    )
    .await
    .expect("deskbridge builds");
    let target = Target {
        name: format!("deskbridge {name} (in-process)"),
        base: format!("http://{}", server.addr),
        pid: std::process::id(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (target, stop, serving)
}

async fn ticket_of(target: &Target, uid: &str) -> Option<u64> {
    let alert: serde_json::Value = deskbridge_bench::load::client()
        .get(format!("{}/api/alerts/{uid}", target.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    alert["ticket_id"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_bench_drives_both_servers_and_only_the_one_with_noise_control_relates() {
    let dir = tempfile::tempdir().unwrap();
    let client = deskbridge_bench::load::client();
    let (off, stop_off, serving_off) = in_process(dir.path(), "noise-off").await;
    let (on, stop_on, serving_on) = in_process(dir.path(), "noise-on").await;
    let off_state = ingest::configure_deskbridge(&client, &off.base, TOKEN).await.unwrap();
    ingest::set_noise(&client, &off.base, TOKEN, ingest::noise_off())
        .await
        .expect("noise off");
    let on_state = ingest::configure_deskbridge(&client, &on.base, TOKEN).await.unwrap();
    let plan = IngestPlan::smoke();
    let pairs = ingest::run_noise(&plan, (&off, &off_state), (&on, &on_state))
        .await
        .expect("noise bench");
    assert_eq!(pairs.len(), 2);
    for p in &pairs {
        for (who, r) in [("off", &p.off), ("on", &p.on)] {
            assert_eq!(r.requests, plan.alerts, "{who}, {}", p.label);
            assert_eq!((r.non_2xx, r.failed), (0, 0), "{who}, {}: {}", p.label, r.summary());
        }
    }
    // Alerts 0 and `sites` of the shared-device run come from one device: one ticket with
    // noise control on, two with it off; the own-device run gives each its own ticket.
    let (a, b) = (ingest::alert_uid(2, 0), ingest::alert_uid(2, plan.sites));
    let (on_a, on_b) = (ticket_of(&on, &a).await, ticket_of(&on, &b).await);
    assert!(on_a.is_some() && on_a == on_b, "{on_a:?} {on_b:?}");
    let (off_a, off_b) = (ticket_of(&off, &a).await, ticket_of(&off, &b).await);
    assert!(
        off_a.is_some() && off_b.is_some() && off_a != off_b,
        "{off_a:?} {off_b:?}"
    );
    let (c, d) = (ingest::alert_uid(1, 0), ingest::alert_uid(1, plan.sites));
    assert_ne!(ticket_of(&on, &c).await, ticket_of(&on, &d).await);

    for (stop, serving) in [(stop_off, serving_off), (stop_on, serving_on)] {
        stop.send(()).unwrap();
        serving.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bench_on_sqlite_imports_everything_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let records = deskbridge::adapters::SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock.clone()).unwrap();
    let api_records = deskbridge::adapters::SqliteRecordStore::open(&dir.path().join("api.sqlite"), clock).unwrap();
    let f = sync::run("SQLite", Arc::new(records), Some(Arc::new(api_records)), 20, 200)
        .await
        .expect("sync bench");
    assert_sync_figures(&f);
    let api = f.api.as_ref().expect("the API-requested run was measured");
    assert_eq!(api.status, 202, "{}", api.answer);
    assert_eq!(api.run["run_id"], api.answer["run_id"], "{}", api.run);
    assert_eq!(api.run["state"], "done", "{}", api.run);
    assert_eq!(
        (api.run["sites_created"].as_u64(), api.run["tickets_created"].as_u64()),
        (Some(20), Some(200)),
        "the queued run on its fresh store imports everything: {}",
        api.run
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_bench_on_dynamodb_local_imports_everything_then_nothing() {
    let Some(records) = deskbridge_tests::stores::dynamodb().await else {
        return;
    };
    let f = sync::run("DynamoDB Local", records, None, 20, 200)
        .await
        .expect("sync bench");
    assert_sync_figures(&f);
    assert!(f.api.is_none());
}

fn assert_sync_figures(f: &sync::SyncFigures) {
    assert_eq!(
        f.baseline.requests,
        f.syncs[0].requests - 1,
        "a sync adds one request-rate check"
    );
    assert_eq!((f.syncs[0].sites_created, f.syncs[0].tickets_created), (20, 200));
    assert_eq!((f.syncs[1].sites_created, f.syncs[1].tickets_created), (0, 0));
    assert_eq!(f.too_many_requests, 0);
    assert!(f.peak_per_minute <= 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_bench_counts_units_for_every_kind_of_work() {
    let Some(endpoint) = deskbridge_tests::emulators::dynamodb() else {
        return;
    };
    let figures = capacity::run(&endpoint, 2).await.expect("capacity bench");
    let labels: Vec<&str> = figures.iter().map(|f| f.label).collect();
    assert_eq!(labels.len(), 7, "{labels:?}");
    for f in &figures {
        assert!(f.calls() >= 1.0, "{}: no DynamoDB call counted", f.label);
    }
    let new_alert = figures
        .iter()
        .find(|f| f.label == "new alert (webhook, known site)")
        .unwrap();
    assert!(
        new_alert.write_units() >= 1.0 && new_alert.modelled_write_units() >= new_alert.write_units(),
        "{new_alert:?}"
    );
    assert!(new_alert.read_units() > 0.0, "{new_alert:?}");
}
