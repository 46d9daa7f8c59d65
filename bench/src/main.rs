//! `deskbridge-bench`: the benchmark runner `scripts/bench` calls; argument parsing and the
//! order of the benchmarks only (the benchmarks themselves are in the library).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use deskbridge::ports::{Clock, RecordStore, SystemClock};
use deskbridge_bench::ingest::{self, IngestPlan};
use deskbridge_bench::{capacity, procfs, sync};

#[derive(Parser)]
#[command(name = "deskbridge-bench", about = "deskbridge benchmarks (see docs/perf.md)")]
struct Cli {
    /// Tiny sizes: checks that every step works, measures nothing worth reporting.
    #[arg(long, global = true)]
    smoke: bool,
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Every benchmark below, in this order: ingest, sync on SQLite, sync on DynamoDB
    /// Local, capacity.
    All {
        #[command(flatten)]
        bins: Bins,
        #[command(flatten)]
        dynamodb: DynamoDb,
        #[command(flatten)]
        size: SyncSize,
    },
    /// `deskbridge serve` against the floor server: bounded loads, a fixed rate, RSS.
    Ingest {
        #[command(flatten)]
        bins: Bins,
    },
    /// Noise control on (default settings) against off: two `deskbridge serve`s, the same
    /// bounded loads of distinct alerts, from a device each and from 100 devices.
    IngestNoise {
        /// The release `deskbridge` binary.
        #[arg(long)]
        deskbridge_bin: PathBuf,
    },
    /// The Datto sync of 2,000 sites / 20,000 alerts on SQLite, with its list-only baseline,
    /// then `POST /api/sync/datto` and its queued run on a fresh store.
    SyncSqlite,
    /// The same sync on DynamoDB Local.
    SyncDynamodb {
        #[command(flatten)]
        dynamodb: DynamoDb,
        #[command(flatten)]
        size: SyncSize,
    },
    /// The soak: mixed traffic (new alerts, duplicates, resolves, API reads, BeyondTrust
    /// session ends) at a fixed rate against `deskbridge serve`, then its queues drained;
    /// fails on any error, RSS growth over 10 % after warm-up, or queues left undrained.
    Soak {
        /// The `deskbridge` binary.
        #[arg(long)]
        deskbridge_bin: PathBuf,
        /// Length of the run in seconds (default 600; 30 with --smoke).
        #[arg(long)]
        seconds: Option<f64>,
        /// Requests per second (default 100).
        #[arg(long)]
        rate: Option<f64>,
    },
    /// DynamoDB capacity per new alert, duplicate, agent close and imported session.
    Capacity {
        #[command(flatten)]
        dynamodb: DynamoDb,
    },
}

#[derive(clap::Args)]
struct Bins {
    /// The release `deskbridge` binary.
    #[arg(long)]
    deskbridge_bin: PathBuf,
    /// The release `floor-server` binary.
    #[arg(long)]
    floor_bin: PathBuf,
}

#[derive(clap::Args)]
struct DynamoDb {
    /// DynamoDB Local's endpoint (scripts/bench starts it through scripts/test).
    #[arg(long, env = "DESKBRIDGE_TEST_DYNAMODB_URL")]
    dynamodb_url: String,
}

/// The DynamoDB sync's size, when it must be smaller than the SQLite one (DynamoDB Local
/// is slow on a loaded machine); both default to the full 2,000 / 20,000.
#[derive(clap::Args)]
struct SyncSize {
    #[arg(long)]
    dynamodb_sites: Option<usize>,
    #[arg(long)]
    dynamodb_alerts: Option<usize>,
}

/// Sites and alerts of the sync benchmark.
fn sync_size(smoke: bool) -> (usize, usize) {
    if smoke {
        (20, 200)
    } else {
        (2_000, 20_000)
    }
}

async fn run_ingest(bins: &Bins, smoke: bool) -> anyhow::Result<()> {
    let plan = if smoke { IngestPlan::smoke() } else { IngestPlan::full() };
    let dir = tempfile::tempdir()?;
    let token = "bench-ingest-token";
    let deskbridge = ingest::spawn_deskbridge(&bins.deskbridge_bin, &dir.path().join("deskbridge"), token)?;
    let floor = ingest::spawn_floor(&bins.floor_bin, &dir.path().join("floor"))?;
    println!(
        "ingest: deskbridge serve at {} (fresh data dir), floor at {} (load average {})",
        deskbridge.target.base,
        floor.target.base,
        procfs::load_average()
    );
    let state = ingest::configure_deskbridge(&deskbridge_bench::load::client(), &deskbridge.target.base, token).await?;
    ingest::run(&plan, &deskbridge.target, &state, &floor.target).await?;
    let log = deskbridge.stop()?;
    match ingest::group_commit_line(&log) {
        Some((requests, commits)) => println!(
            "  deskbridge's SQLite writer: {requests} writes in {commits} commits ({:.1} writes per fsync)",
            requests as f64 / commits.max(1) as f64
        ),
        None => println!("  deskbridge's SQLite writer: no statistics line in its log"),
    }
    drop(floor);
    Ok(())
}

async fn run_ingest_noise(bin: &std::path::Path, smoke: bool) -> anyhow::Result<()> {
    let plan = if smoke { IngestPlan::smoke() } else { IngestPlan::full() };
    let dir = tempfile::tempdir()?;
    let token = "bench-noise-token";
    let client = deskbridge_bench::load::client();
    let off = ingest::spawn_deskbridge(bin, &dir.path().join("noise-off"), token)?;
    let on = ingest::spawn_deskbridge(bin, &dir.path().join("noise-on"), token)?;
    println!(
        "ingest with noise control: off at {}, on (default settings) at {}, fresh data dirs (load average {})",
        off.target.base,
        on.target.base,
        procfs::load_average()
    );
    let off_state = ingest::configure_deskbridge(&client, &off.target.base, token).await?;
    ingest::set_noise(&client, &off.target.base, token, ingest::noise_off()).await?;
    let on_state = ingest::configure_deskbridge(&client, &on.target.base, token).await?;
    ingest::run_noise(&plan, (&off.target, &off_state), (&on.target, &on_state)).await?;
    off.stop()?;
    on.stop()?;
    Ok(())
}

async fn run_sync_sqlite(smoke: bool) -> anyhow::Result<()> {
    let (sites, alerts) = sync_size(smoke);
    let dir = tempfile::tempdir()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let records = deskbridge::adapters::SqliteRecordStore::open(&dir.path().join("sync.sqlite"), clock.clone())?;
    // A second fresh store for the sync requested through `POST /api/sync/datto`.
    let api_records = deskbridge::adapters::SqliteRecordStore::open(&dir.path().join("api-sync.sqlite"), clock)?;
    sync::run("SQLite", Arc::new(records), Some(Arc::new(api_records)), sites, alerts).await?;
    Ok(())
}

async fn run_sync_dynamodb(endpoint: &str, smoke: bool, size: &SyncSize) -> anyhow::Result<()> {
    let (sites, alerts) = sync_size(smoke);
    let (sites, alerts) = (
        size.dynamodb_sites.unwrap_or(sites),
        size.dynamodb_alerts.unwrap_or(alerts),
    );
    let sdk = deskbridge::hosting::sdk_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "deskbridge-bench",
        ))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("bench-sync-{}", uuid::Uuid::new_v4().simple());
    deskbridge::adapters::dynamo::create_table(&client, &table)
        .await
        .context("creating the table")?;
    let records: Arc<dyn RecordStore> = Arc::new(deskbridge::adapters::dynamo::DynamoRecordStore::new(client, table));
    // The API-requested run is measured on SQLite only: on DynamoDB Local it would repeat
    // the slowest part of the benchmark for an answer time the store hardly changes.
    sync::run("DynamoDB Local", records, None, sites, alerts).await?;
    Ok(())
}

async fn run_soak(bin: &std::path::Path, smoke: bool, seconds: Option<f64>, rate: Option<f64>) -> anyhow::Result<()> {
    use deskbridge_bench::soak::{self, SoakPlan};
    let mut plan = if smoke { SoakPlan::smoke() } else { SoakPlan::full() };
    if let Some(s) = seconds {
        plan.warmup_seconds = plan.warmup_seconds.min(s / 5.0);
        plan.seconds = s;
    }
    if let Some(r) = rate {
        plan.rate = r;
    }
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("deskbridge");
    let token = "bench-soak-token";
    let server = ingest::spawn_deskbridge_with(bin, &data_dir, token, true)?;
    println!(
        "soak: deskbridge serve at {} (pid {}), {} s at {} req/s, warm-up {} s (load average {})",
        server.target.base,
        server.target.pid,
        plan.seconds,
        plan.rate,
        plan.warmup_seconds,
        procfs::load_average()
    );
    let client = deskbridge_bench::load::client();
    let setup = Arc::new(soak::configure(&client, &server.target.base, token, &plan).await?);
    let figures = soak::run(
        &plan,
        setup,
        server.target.pid,
        data_dir.clone(),
        std::time::Duration::from_secs(300),
    )
    .await?;
    figures.print();
    println!("  load average at the end: {}", procfs::load_average());
    for (t, kib) in figures.rss.iter().step_by((figures.rss.len() / 12).max(1)) {
        println!("    RSS at {t:>5.0} s: {:.1} MiB", *kib as f64 / 1024.0);
    }
    let errors = figures.load.non_2xx + figures.load.failed;
    let log = server.stop()?;
    let growth = figures.rss_growth();
    if errors > 0 || figures.dead_letters > 0 || figures.sessions_imported != figures.sessions_sent || growth > 0.10 {
        anyhow::bail!(
            "soak failed: {errors} errors, {} dead letters, {} of {} sessions imported, RSS growth {:+.1} % (server log: {} lines)",
            figures.dead_letters,
            figures.sessions_imported,
            figures.sessions_sent,
            growth * 100.0,
            log.lines().count()
        );
    }
    println!(
        "soak passed: 0 errors, queues drained, RSS growth {:+.1} % (limit 10 %)",
        growth * 100.0
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let count = if cli.smoke { 2 } else { 20 };
    match &cli.command {
        Bench::All { bins, dynamodb, size } => {
            run_ingest(bins, cli.smoke).await?;
            run_sync_sqlite(cli.smoke).await?;
            run_sync_dynamodb(&dynamodb.dynamodb_url, cli.smoke, size).await?;
            capacity::run(&dynamodb.dynamodb_url, count).await?;
        }
        Bench::Ingest { bins } => run_ingest(bins, cli.smoke).await?,
        Bench::IngestNoise { deskbridge_bin } => run_ingest_noise(deskbridge_bin, cli.smoke).await?,
        Bench::SyncSqlite => run_sync_sqlite(cli.smoke).await?,
        Bench::SyncDynamodb { dynamodb, size } => run_sync_dynamodb(&dynamodb.dynamodb_url, cli.smoke, size).await?,
        Bench::Soak {
            deskbridge_bin,
            seconds,
            rate,
        } => run_soak(deskbridge_bin, cli.smoke, *seconds, *rate).await?,
        Bench::Capacity { dynamodb } => {
            capacity::run(&dynamodb.dynamodb_url, count).await?;
        }
    }
    Ok(())
}
