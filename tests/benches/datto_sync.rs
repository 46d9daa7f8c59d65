//! Full Datto sync of 2,000 sites and 20,000 open alerts against the fake Datto, on the
//! SQLite store: requests used and wall time, with the bare client listing (no storage
//! work) measured in the same run as the baseline. Run: `cargo bench -p deskbridge-tests`.

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

    for (label, run) in [("first sync (imports everything)", 1), ("second sync (nothing new)", 2)] {
        let api = client(&fake, clock.clone());
        let before = fake.request_count();
        let started = Instant::now();
        let summary = run_once(&store, &queue, &api, &format!("bench-{run}"))
            .await
            .expect("sync");
        let took = started.elapsed();
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
}
