//! Full Datto sync of 2,000 sites and 20,000 open alerts against the fake Datto, on the
//! SQLite store: requests used and wall time, with the bare client listing (no storage
//! work) measured in the same run as the baseline. Then `POST /api/sync/datto` on a fresh
//! store: the time to its 202, against the synchronous sync just measured as baseline,
//! and the queued run's result read back once the consumer ran it.
//! Run: `cargo bench -p deskbridge-tests`.

use std::sync::Arc;
use std::time::Instant;

use deskbridge::datto::fake::FakeDatto;
use deskbridge::datto::{BudgetConfig, Client, ClientConfig, DattoBaseUrl, RequestBudget, TokioSleeper};
use deskbridge::jobs::alert_sync::run_once;
use deskbridge::ports::{Clock, SecretString, SystemClock};
use deskbridge::store::Store;

const SITES: usize = 2_000;
const ALERTS: usize = 20_000;

fn client(fake: &FakeDatto, clock: Arc<dyn Clock>) -> Client {
    let base = DattoBaseUrl::parse_allowing_loopback(fake.base_url()).expect("fake URL");
    let config = ClientConfig::new(base, FakeDatto::API_KEY, SecretString::new(FakeDatto::API_SECRET));
    let budget = RequestBudget::in_process(BudgetConfig::default(), clock.clone());
    Client::new(config, budget, clock, Arc::new(TokioSleeper)).expect("client")
}

#[tokio::main]
async fn main() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let fake = FakeDatto::start().await;
    fake.populate(SITES, ALERTS);
    println!(
        "fake Datto: {} sites, {} open alerts",
        fake.site_count(),
        fake.open_alert_count()
    );

    // Baseline: the same lists through the client, no storage work.
    let baseline_client = client(&fake, clock.clone());
    let before = fake.request_count();
    let started = Instant::now();
    let sites = baseline_client.sites().await.expect("sites");
    let alerts = baseline_client.open_alerts().await.expect("alerts");
    let baseline = started.elapsed();
    let baseline_requests = fake.request_count() - before;
    println!(
        "baseline (list only): {} sites, {} alerts, {baseline_requests} requests, {:.2} s",
        sites.len(),
        alerts.len(),
        baseline.as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let records =
        deskbridge::adapters::sqlite_store::SqliteRecordStore::open(&dir.path().join("bench.sqlite"), clock.clone())
            .expect("sqlite");
    let store = Store::new(Arc::new(records), clock.clone());
    let queue = deskbridge::adapters::sqlite_queue::SqliteQueue::open(
        &dir.path().join("q.sqlite"),
        clock.clone(),
        std::time::Duration::from_secs(60),
    )
    .expect("queue");

    let mut first_sync = None;
    for (label, run) in [("first sync (imports everything)", 1), ("second sync (nothing new)", 2)] {
        let api = client(&fake, clock.clone());
        let before = fake.request_count();
        let started = Instant::now();
        let summary = run_once(&store, &queue, &api, &format!("bench-{run}"))
            .await
            .expect("sync");
        let took = started.elapsed();
        first_sync.get_or_insert(took);
        let requests = fake.request_count() - before;
        println!(
            "{label}: {} sites created, {} tickets created, {requests} requests (summary says {}), max {} requests in a rolling minute, {:.2} s, {:.1}x baseline",
            summary.sites_created,
            summary.tickets_created,
            summary.requests_used,
            fake.max_requests_in_rolling_minute(),
            took.as_secs_f64(),
            took.as_secs_f64() / baseline.as_secs_f64(),
        );
    }
    let synchronous = first_sync.expect("first sync measured");
    sync_run_through_the_api(&fake, clock, synchronous).await;
}

/// `POST /api/sync/datto` answers 202 with a queued run; the `datto-sync` consumer (what
/// the Lambda and the local worker run) does the work; `GET /api/sync/datto/runs/{id}`
/// shows the result.
async fn sync_run_through_the_api(fake: &FakeDatto, clock: Arc<dyn Clock>, synchronous: std::time::Duration) {
    use deskbridge::ports::{QueueName, SecretStore};
    use deskbridge::services::{consumers, Context};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let records =
        deskbridge::adapters::sqlite_store::SqliteRecordStore::open(&dir.path().join("api.sqlite"), clock.clone())
            .expect("sqlite");
    let store = Store::new(Arc::new(records), clock.clone());
    let queue = deskbridge::adapters::sqlite_queue::SqliteQueue::open(
        &dir.path().join("q.sqlite"),
        clock.clone(),
        std::time::Duration::from_secs(600),
    )
    .expect("queue");
    let secrets: Arc<dyn SecretStore> = Arc::new(
        deskbridge::adapters::secrets_file::FileSecretStore::new(dir.path().join("secrets.json")).expect("secrets"),
    );
    let mut settings = store.datto_settings().await.expect("settings");
    settings.api_url = Some(fake.base_url().to_string());
    settings.api_key = Some(FakeDatto::API_KEY.to_string());
    store.save_datto_settings(&settings).await.expect("save settings");
    secrets
        .put(
            deskbridge::datto::connect::API_SECRET,
            &SecretString::new(FakeDatto::API_SECRET),
        )
        .await
        .expect("secret");
    let ctx = Context {
        store: store.clone(),
        queue: Arc::new(queue),
        mailer: Arc::new(deskbridge::adapters::outbox::OutboxMailer::new(dir.path().join("outbox")).expect("outbox")),
        secrets: secrets.clone(),
        clock: clock.clone(),
        config: Arc::new(deskbridge::config::HttpConfig::new(
            SecretString::new("bench"),
            "http://bench",
        )),
        datto: Arc::new(deskbridge::datto::connect::SettingsConnect::new(
            store.clone(),
            secrets.clone(),
            true,
        )),
        beyondtrust: Arc::new(deskbridge::beyondtrust::connect::SettingsConnect::new(
            store, secrets, true,
        )),
    };
    let router = deskbridge::http::helpdesk_router(ctx.clone());
    let request = |method: &str, path: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", "Bearer bench")
            .body(axum::body::Body::empty())
            .expect("request")
    };
    let started = Instant::now();
    let resp = router
        .clone()
        .oneshot(request("POST", "/api/sync/datto"))
        .await
        .expect("answer");
    let answered = started.elapsed();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    let queued: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    println!(
        "POST /api/sync/datto: {status} {queued} in {:.1} ms, {:.5}x the synchronous sync ({:.2} s)",
        answered.as_secs_f64() * 1000.0,
        answered.as_secs_f64() / synchronous.as_secs_f64(),
        synchronous.as_secs_f64(),
    );
    let started = Instant::now();
    let msgs = ctx.queue.receive(QueueName::DattoSync, 10).await.expect("receive");
    let batch = msgs.iter().map(|m| (m.id.clone(), m.body.clone())).collect();
    let outcome = consumers::consume(&ctx, QueueName::DattoSync, batch).await;
    assert!(outcome.retry.is_empty() && outcome.dead.is_empty(), "{outcome:?}");
    let ran = started.elapsed();
    let path = format!("/api/sync/datto/runs/{}", queued["run_id"]);
    let resp = router.oneshot(request("GET", &path)).await.expect("answer");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    let run: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
    println!(
        "the queued run, executed by the datto-sync consumer in {:.2} s: state {}, {} sites created, {} tickets created, {} requests",
        ran.as_secs_f64(),
        run["state"],
        run["sites_created"],
        run["tickets_created"],
        run["requests_used"],
    );
}
