//! The Datto sync benchmark: a first sync (everything new) and a second (nothing new) of
//! the fake Datto's sites and open alerts on one record store, beside the list-only
//! baseline (the same listings through the same client, no storage work) of the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deskbridge::datto::fake::FakeDatto;
use deskbridge::datto::{BudgetConfig, Client, ClientConfig, DattoBaseUrl, RequestBudget, TokioSleeper};
use deskbridge::jobs::alert_sync::run_once;
use deskbridge::ports::{Clock, RecordStore, SecretString, SystemClock};
use deskbridge::store::Store;

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
}

fn client(fake: &FakeDatto, clock: Arc<dyn Clock>) -> Client {
    let base = DattoBaseUrl::parse_allowing_loopback(fake.base_url()).expect("fake URL");
    let config = ClientConfig::new(base, FakeDatto::API_KEY, SecretString::new(FakeDatto::API_SECRET));
    let budget = RequestBudget::in_process(BudgetConfig::default(), clock.clone());
    Client::new(config, budget, clock, Arc::new(TokioSleeper)).expect("client")
}

/// Run the sync benchmark of `sites` sites and `alerts` open alerts on `records`
/// (a fresh, empty store), printing as it goes.
pub async fn run(
    store_name: &str,
    records: Arc<dyn RecordStore>,
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
    let too_many_requests = fake.requests().iter().filter(|r| r.status == 429).count();
    let peak_per_minute = fake.max_requests_in_rolling_minute();
    println!("  Datto requests: peak {peak_per_minute} in a rolling minute, {too_many_requests} answered 429");
    Ok(SyncFigures {
        store: store_name.to_string(),
        baseline,
        syncs,
        peak_per_minute,
        too_many_requests,
    })
}
