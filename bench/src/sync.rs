//! The Datto sync benchmark: a first sync (everything new) and a second (nothing new) of
//! the fake Datto's sites and open alerts on one record store, beside the list-only
//! baseline (the same listings through the same client, no storage work) of the same run.
//! Then, on a second fresh store, `POST /api/sync/datto`: the time to its 202 against the
//! synchronous first sync, and the queued run's result once the `datto-sync` consumer ran it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deskbridge::datto::fake::FakeDatto;
use deskbridge::datto::{BudgetConfig, Client, ClientConfig, DattoBaseUrl, RequestBudget, TokioSleeper};
use deskbridge::jobs::alert_sync::run_once;
use deskbridge::ports::{Clock, QueueName, RecordStore, SecretStore, SecretString, SystemClock};
use deskbridge::services::{consumers, Context};
use deskbridge::store::Store;
use tower::ServiceExt;

/// One sync (or the baseline) as measured.
#[derive(Debug, Clone)]
pub struct SyncRun {
    pub label: &'static str,
    pub requests: usize,
    pub took: Duration,
    pub tickets_created: usize,
    pub sites_created: usize,
}

/// The baseline and both syncs on one store.
#[derive(Debug, Clone)]
pub struct SyncFigures {
    pub store: String,
    pub baseline: SyncRun,
    pub syncs: Vec<SyncRun>,
    /// Most Datto requests in any rolling minute, over the whole benchmark.
    pub peak_per_minute: usize,
    /// 429 answers the fake gave.
    pub too_many_requests: usize,
    /// The sync requested through the API, when the run was asked to measure it.
    pub api: Option<ApiRun>,
}

/// `POST /api/sync/datto` on a fresh store, and the run it queued.
#[derive(Debug, Clone)]
pub struct ApiRun {
    /// The answer's status and body.
    pub status: u16,
    pub answer: serde_json::Value,
    /// Time to the answer.
    pub answered: Duration,
    /// The synchronous first sync of the same run, the baseline of `answered`.
    pub synchronous: Duration,
    /// Time the `datto-sync` consumer took to run the queued run.
    pub ran: Duration,
    /// `GET /api/sync/datto/runs/{id}` after the consumer ran.
    pub run: serde_json::Value,
}

fn client(fake: &FakeDatto, clock: Arc<dyn Clock>) -> Client {
    let base = DattoBaseUrl::parse_allowing_loopback(fake.base_url()).expect("fake URL");
    let config = ClientConfig::new(base, FakeDatto::API_KEY, SecretString::new(FakeDatto::API_SECRET));
    let budget = RequestBudget::in_process(BudgetConfig::default(), clock.clone());
    Client::new(config, budget, clock, Arc::new(TokioSleeper)).expect("client")
}

/// Run the sync benchmark of `sites` sites and `alerts` open alerts on `records`
/// (a fresh, empty store), printing as it goes; with `api_records` (another fresh store),
/// measure the sync requested through the API on it too.
pub async fn run(
    store_name: &str,
    records: Arc<dyn RecordStore>,
    api_records: Option<Arc<dyn RecordStore>>,
    sites: usize,
    alerts: usize,
) -> anyhow::Result<SyncFigures> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let fake = FakeDatto::start().await;
    fake.populate(sites, alerts);
    println!(
        "sync on {store_name}: fake Datto with {} sites, {} open alerts (load average {})",
        fake.site_count(),
        fake.open_alert_count(),
        crate::procfs::load_average()
    );

    let baseline_client = client(&fake, clock.clone());
    let before = fake.request_count();
    let started = Instant::now();
    let listed_sites = baseline_client.sites().await?.len();
    let listed_alerts = baseline_client.open_alerts().await?.len();
    let baseline = SyncRun {
        label: "baseline (list sites and open alerts only)",
        requests: fake.request_count() - before,
        took: started.elapsed(),
        tickets_created: 0,
        sites_created: 0,
    };
    println!(
        "  {}: {listed_sites} sites, {listed_alerts} alerts, {} requests, {:.2} s",
        baseline.label,
        baseline.requests,
        baseline.took.as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let store = Store::new(records, clock.clone());
    let queue = deskbridge::adapters::sqlite_queue::SqliteQueue::open(
        &dir.path().join("queues.sqlite"),
        clock.clone(),
        Duration::from_secs(60),
    )?;
    let mut syncs = Vec::new();
    for (label, holder) in [
        ("first sync (everything new)", "bench-1"),
        ("second sync (nothing new)", "bench-2"),
    ] {
        let api = client(&fake, clock.clone());
        let before = fake.request_count();
        let started = Instant::now();
        let summary = run_once(&store, &queue, &api, holder).await?;
        let run = SyncRun {
            label,
            requests: fake.request_count() - before,
            took: started.elapsed(),
            tickets_created: summary.tickets_created as usize,
            sites_created: summary.sites_created as usize,
        };
        println!(
            "  {label}: {} sites and {} tickets created, {} requests, {:.2} s = {:.1}x baseline (load average {})",
            run.sites_created,
            run.tickets_created,
            run.requests,
            run.took.as_secs_f64(),
            run.took.as_secs_f64() / baseline.took.as_secs_f64().max(1e-9),
            crate::procfs::load_average()
        );
        syncs.push(run);
    }
    let api_run = match api_records {
        Some(records) => Some(sync_run_through_the_api(&fake, records, clock, syncs[0].took).await?),
        None => None,
    };
    let too_many_requests = fake.requests().iter().filter(|r| r.status == 429).count();
    let peak_per_minute = fake.max_requests_in_rolling_minute();
    println!("  Datto requests: peak {peak_per_minute} in a rolling minute, {too_many_requests} answered 429");
    Ok(SyncFigures {
        store: store_name.to_string(),
        baseline,
        syncs,
        peak_per_minute,
        too_many_requests,
        api: api_run,
    })
}

/// `POST /api/sync/datto` answers 202 with a queued run; the `datto-sync` consumer (what
/// the Lambda and the local worker run) does the work; `GET /api/sync/datto/runs/{id}`
/// shows the result.
async fn sync_run_through_the_api(
    fake: &FakeDatto,
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
    synchronous: Duration,
) -> anyhow::Result<ApiRun> {
    const TOKEN: &str = "bench-sync-token";
    let dir = tempfile::tempdir()?;
    let store = Store::new(records, clock.clone());
    let queue = deskbridge::adapters::sqlite_queue::SqliteQueue::open(
        &dir.path().join("api-queues.sqlite"),
        clock.clone(),
        Duration::from_secs(600),
    )?;
    let secrets: Arc<dyn SecretStore> = Arc::new(deskbridge::adapters::secrets_file::FileSecretStore::new(
        dir.path().join("secrets.json"),
    )?);
    let mut settings = store.datto_settings().await?;
    settings.api_url = Some(fake.base_url().to_string());
    settings.api_key = Some(FakeDatto::API_KEY.to_string());
    store.save_datto_settings(&settings).await?;
    secrets
        .put(
            deskbridge::datto::connect::API_SECRET,
            &SecretString::new(FakeDatto::API_SECRET),
        )
        .await?;
    let ctx = Context {
        store: store.clone(),
        queue: Arc::new(queue),
        mailer: Arc::new(deskbridge::adapters::outbox::OutboxMailer::new(
            dir.path().join("outbox"),
        )?),
        secrets: secrets.clone(),
        clock,
        config: Arc::new(deskbridge::config::HttpConfig::new(
            SecretString::new(TOKEN),
            "http://bench.example.test",
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
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(axum::body::Body::empty())
    };
    let started = Instant::now();
    let resp = router.clone().oneshot(request("POST", "/api/sync/datto")?).await?;
    let answered = started.elapsed();
    let status = resp.status().as_u16();
    let answer: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await?)?;
    println!(
        "  POST /api/sync/datto (fresh store): {status} {answer} in {:.1} ms = {:.5}x the synchronous first sync ({:.2} s)",
        answered.as_secs_f64() * 1000.0,
        answered.as_secs_f64() / synchronous.as_secs_f64().max(1e-9),
        synchronous.as_secs_f64(),
    );

    let started = Instant::now();
    let msgs = ctx.queue.receive(QueueName::DattoSync, 10).await?;
    let batch = msgs.iter().map(|m| (m.id.clone(), m.body.clone())).collect();
    let outcome = consumers::consume(&ctx, QueueName::DattoSync, batch).await;
    if !(outcome.retry.is_empty() && outcome.dead.is_empty()) {
        anyhow::bail!("the datto-sync consumer failed: {outcome:?}");
    }
    let ran = started.elapsed();
    let path = format!("/api/sync/datto/runs/{}", answer["run_id"]);
    let resp = router.oneshot(request("GET", &path)?).await?;
    let run: serde_json::Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await?)?;
    println!(
        "  the queued run, by the datto-sync consumer: {:.2} s = {:.1}x the synchronous first sync; state {}, {} sites and {} tickets created, {} requests (load average {})",
        ran.as_secs_f64(),
        ran.as_secs_f64() / synchronous.as_secs_f64().max(1e-9),
        run["state"],
        run["sites_created"],
        run["tickets_created"],
        run["requests_used"],
        crate::procfs::load_average()
    );
    Ok(ApiRun {
        status,
        answer,
        answered,
        synchronous,
        ran,
        run,
    })
}
