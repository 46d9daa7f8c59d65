//! The ingest benchmark: `deskbridge serve` and the floor server driven by the same
//! webhook load (distinct alerts, then 10 % duplicates, then a fixed rate), with RSS.
//!
//! Both servers run as child processes (or, in the smoke test, deskbridge in-process) and
//! are loaded one at a time, alternating, so background load on the machine hits both.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use serde_json::{json, Value};

use crate::load::{closed_loop, open_loop, LoadReport};
use crate::procfs::{load_average, Rss};

/// The sizes of one ingest run.
#[derive(Debug, Clone)]
pub struct IngestPlan {
    /// Requests in each closed-loop run.
    pub alerts: usize,
    pub concurrency: usize,
    /// Fixed-rate run: requests per second and for how long.
    pub rate: f64,
    pub seconds: f64,
    /// Datto sites the alerts are spread over (imported in the warm-up).
    pub sites: usize,
}

impl IngestPlan {
    /// The figures docs/perf.md reports.
    pub fn full() -> Self {
        IngestPlan {
            alerts: 20_000,
            concurrency: 32,
            rate: 200.0,
            seconds: 30.0,
            sites: 100,
        }
    }

    /// Small enough for the test run; exercises every step.
    pub fn smoke() -> Self {
        IngestPlan {
            alerts: 200,
            concurrency: 8,
            rate: 100.0,
            seconds: 1.0,
            sites: 5,
        }
    }
}

/// A server under load.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Whose /proc entry holds its memory.
    pub pid: u32,
}

impl Target {
    fn webhook_url(&self) -> String {
        format!("{}/datto/webhook", self.base)
    }
}

/// A server started as a child process; killed when dropped.
pub struct Spawned {
    child: Child,
    pub target: Target,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl Spawned {
    /// SIGTERM, then wait up to 30 s; returns the log's text.
    pub fn stop(mut self) -> anyhow::Result<String> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("{} did not stop within 30 s of SIGTERM", self.target.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Start `command`, whose stdout announces `<prefix>http://ADDR`; stderr goes to `log`.
fn spawn(name: &str, mut command: Command, prefix: &str, log: &Path) -> anyhow::Result<Spawned> {
    let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        let mut announced = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !announced {
                if let Some(base) = line.strip_prefix(&prefix) {
                    announced = true;
                    let _ = tx.send(base.to_string());
                }
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).with_context(|| {
        format!(
            "{name} did not announce its address within 60 s (log: {})",
            log.display()
        )
    })?;
    let pid = child.id();
    Ok(Spawned {
        child,
        target: Target {
            name: name.to_string(),
            base,
            pid,
        },
        log: log.to_path_buf(),
    })
}

/// `deskbridge serve` on a fresh `data_dir`, API token `token`, default log level.
pub fn spawn_deskbridge(bin: &Path, data_dir: &Path, token: &str) -> anyhow::Result<Spawned> {
    spawn_deskbridge_with(bin, data_dir, token, false)
}

/// [`spawn_deskbridge`], with vendor URLs on loopback allowed when `loopback_vendors` (for
/// fakes of Datto or BeyondTrust in the calling process).
pub fn spawn_deskbridge_with(
    bin: &Path,
    data_dir: &Path,
    token: &str,
    loopback_vendors: bool,
) -> anyhow::Result<Spawned> {
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    if loopback_vendors {
        cmd.arg("--allow-loopback-vendors");
    }
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("DESKBRIDGE_API_TOKEN", token)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    std::fs::create_dir_all(data_dir)?;
    spawn(
        "deskbridge serve",
        cmd,
        "deskbridge listening on ",
        &data_dir.join("server.log"),
    )
}

/// The floor server on a fresh database in `dir`.
pub fn spawn_floor(bin: &Path, dir: &Path) -> anyhow::Result<Spawned> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("floor.sqlite"));
    spawn("floor", cmd, "floor listening on ", &dir.join("floor.log"))
}

/// Read `"requests=N commits=M"` off the `SQLite writer stopped` line of a deskbridge log.
pub fn group_commit_line(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().rev().find(|l| l.contains("SQLite writer stopped"))?;
    let field = |name: &str| -> Option<u64> {
        let at = line.find(&format!("{name}="))? + name.len() + 1;
        line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((field("requests")?, field("commits")?))
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

/// Turn on webhook intake (a default ticket type, one customer per Datto site) and return
/// the webhook `state` secret the alerts must carry.
pub async fn configure_deskbridge(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<String> {
    use reqwest::Method;
    let tt = call(
        client,
        Method::POST,
        format!("{base}/api/ticket-types"),
        token,
        Some(json!({"name": "Monitoring alert", "default_priority": "low"})),
    )
    .await?;
    call(
        client,
        Method::PUT,
        format!("{base}/api/config/datto"),
        token,
        Some(json!({"alert_method": "webhook", "default_ticket_type_id": tt["id"],
                    "import_mode": "customer_per_site"})),
    )
    .await?;
    let helper = call(
        client,
        Method::GET,
        format!("{base}/api/config/datto/webhook"),
        token,
        None,
    )
    .await?;
    helper["raised_payload"]["state"]
        .as_str()
        .map(str::to_string)
        .context("no state in the webhook helper")
}

/// A Datto alert uid for alert `i` of run `run`.
pub fn alert_uid(run: u32, i: usize) -> String {
    format!("{run:08x}-be0c-4000-8000-{i:012x}")
}

/// The raised-alert webhook body Datto would send (shape of the fixture payload), from a
/// device of its own: noise control relates the alerts of one device (docs/noise.md), and
/// these loads measure alerts that each open a ticket.
pub fn alert_body(state: &str, uid: &str, site: usize) -> Bytes {
    alert_body_on(state, uid, site, None)
}

/// [`alert_body`] from `device` (shared by all alerts given it), or from a device of its
/// own when `None`.
pub fn alert_body_on(state: &str, uid: &str, site: usize, device: Option<usize>) -> Bytes {
    let priority = ["Critical", "High", "Moderate", "Low"][site % 4];
    let (device_uid, hostname) = match device {
        Some(d) => (format!("{d:08x}-de71-4000-8000-{d:012x}"), format!("PC-{d:03}")),
        None => (uid.to_string(), format!("PC-{site:03}-{}", &uid[uid.len() - 6..])),
    };
    let body = json!({
        "state": state,
        "alert_resolved": false,
        "alert_uid": uid,
        "alert_message": format!("Disk C: on {hostname} is 95% full"),
        "alert_priority": priority,
        "device_uid": device_uid,
        "device_hostname": hostname,
        "site_uid": format!("{site:08x}-5173-4000-8000-{site:012x}"),
        "site_name": format!("Customer {site:03} - Head Office"),
        "additional_values": {"category": "Monitoring", "source": "Datto RMM"}
    });
    Bytes::from(serde_json::to_vec(&body).expect("json"))
}

/// `count` bodies of run `run` over `sites` sites, all distinct; with `duplicates`, every
/// tenth body (from the 101st on) repeats the alert sent 100 positions earlier, so the
/// repeat finds it stored rather than racing it.
pub fn bodies(state: &str, run: u32, count: usize, sites: usize, duplicates: bool) -> Arc<Vec<Bytes>> {
    let mut uids: Vec<usize> = Vec::with_capacity(count);
    let mut fresh = 0;
    for k in 0..count {
        if duplicates && k >= 100 && k % 10 == 9 {
            uids.push(uids[k - 100]);
        } else {
            uids.push(fresh);
            fresh += 1;
        }
    }
    Arc::new(
        uids.into_iter()
            .map(|i| alert_body(state, &alert_uid(run, i), i % sites.max(1)))
            .collect(),
    )
}

/// One measured run on both servers.
#[derive(Debug, Clone)]
pub struct Pair {
    pub label: String,
    pub deskbridge: LoadReport,
    pub floor: LoadReport,
}

/// Everything the ingest benchmark measured.
#[derive(Debug, Clone)]
pub struct IngestFigures {
    pub runs: Vec<Pair>,
    pub rss_idle: Rss,
    pub rss_end: Rss,
    pub floor_rss_end: Rss,
}

fn print_pair(p: &Pair) {
    let d = &p.deskbridge;
    let f = &p.floor;
    println!("  deskbridge: {}", d.summary());
    println!("  floor:      {}", f.summary());
    println!(
        "  ratio deskbridge/floor: throughput {:.2}x, p99 {:.2}x",
        d.throughput() / f.throughput().max(1e-9),
        d.latencies.percentile(99.0).as_secs_f64() / f.latencies.percentile(99.0).as_secs_f64().max(1e-9),
    );
}

/// Run the whole ingest benchmark against `deskbridge` (configured, with webhook `state`)
/// and `floor`, printing as it goes.
pub async fn run(plan: &IngestPlan, deskbridge: &Target, state: &str, floor: &Target) -> anyhow::Result<IngestFigures> {
    let client = crate::load::client();
    let (d_url, f_url) = (deskbridge.webhook_url(), floor.webhook_url());

    // Warm-up: one alert per site (deskbridge imports the sites), not measured.
    let warm = bodies(state, 0, plan.sites, plan.sites, false);
    for (target, url) in [(deskbridge, &d_url), (floor, &f_url)] {
        let r = closed_loop(&client, url, warm.clone(), 1).await;
        if r.non_2xx + r.failed > 0 {
            bail!("warm-up of {} failed: {}", target.name, r.summary());
        }
    }
    let rss_idle = Rss::of(deskbridge.pid)?;
    println!(
        "deskbridge idle after warm-up ({} sites imported): {}; floor {}",
        plan.sites,
        rss_idle.summary(),
        Rss::of(floor.pid)?.summary()
    );

    let mut runs = Vec::new();
    let closed = [
        (
            format!("{} distinct alerts, concurrency {}", plan.alerts, plan.concurrency),
            false,
            1,
        ),
        (
            format!(
                "{} alerts with 10 % duplicates, concurrency {}",
                plan.alerts, plan.concurrency
            ),
            true,
            2,
        ),
    ];
    for (label, duplicates, run) in closed {
        let load = bodies(state, run, plan.alerts, plan.sites, duplicates);
        println!("{label} (load average before: {})", load_average());
        let deskbridge_report = closed_loop(&client, &d_url, load.clone(), plan.concurrency).await;
        let floor_report = closed_loop(&client, &f_url, load, plan.concurrency).await;
        let pair = Pair {
            label,
            deskbridge: deskbridge_report,
            floor: floor_report,
        };
        print_pair(&pair);
        println!("  (load average after: {})", load_average());
        runs.push(pair);
    }

    let count = (plan.rate * plan.seconds).round() as usize;
    let label = format!(
        "fixed rate {} req/s for {} s (open loop), distinct alerts",
        plan.rate, plan.seconds
    );
    let load = bodies(state, 3, count, plan.sites, false);
    println!("{label} (load average before: {})", load_average());
    let deskbridge_report = open_loop(&client, &d_url, load.clone(), plan.rate).await;
    let floor_report = open_loop(&client, &f_url, load, plan.rate).await;
    let pair = Pair {
        label,
        deskbridge: deskbridge_report,
        floor: floor_report,
    };
    print_pair(&pair);
    println!(
        "  generator lag: deskbridge run max {:.2} ms, floor run max {:.2} ms (load average after: {})",
        LoadReport::ms(pair.deskbridge.max_send_lag),
        LoadReport::ms(pair.floor.max_send_lag),
        load_average()
    );
    runs.push(pair);

    let rss_end = Rss::of(deskbridge.pid)?;
    let floor_rss_end = Rss::of(floor.pid)?;
    println!(
        "deskbridge at the end of the load: {}; floor {}",
        rss_end.summary(),
        floor_rss_end.summary()
    );
    Ok(IngestFigures {
        runs,
        rss_idle,
        rss_end,
        floor_rss_end,
    })
}

/// Noise control's settings that decide nothing: no relating, recurring or flapping (with
/// no rules and no windows, intake then takes the path it took before noise control).
pub fn noise_off() -> Value {
    json!({"related_window_minutes": 0, "recurring_window_minutes": 0,
           "flapping": {"cycles": 0, "window_minutes": 30, "quiet_minutes": 60}})
}

/// Store noise control's settings on a configured deskbridge.
pub async fn set_noise(client: &reqwest::Client, base: &str, token: &str, settings: Value) -> anyhow::Result<()> {
    call(
        client,
        reqwest::Method::PUT,
        format!("{base}/api/noise/settings"),
        token,
        Some(settings),
    )
    .await?;
    Ok(())
}

/// One load of the noise comparison on both servers.
#[derive(Debug, Clone)]
pub struct NoisePair {
    pub label: String,
    pub off: LoadReport,
    pub on: LoadReport,
}

/// Noise control on (default settings, `on`) against off (`off`): two configured servers,
/// each warmed up here, driven in turn with the same bounded load (distinct alerts,
/// `plan.alerts` at `plan.concurrency`): first every alert from a device of its own (each
/// opens a ticket: the common case), then the alerts spread over `plan.sites` devices (an
/// alert storm: noise control relates each device's alerts to one ticket).
pub async fn run_noise(plan: &IngestPlan, off: (&Target, &str), on: (&Target, &str)) -> anyhow::Result<Vec<NoisePair>> {
    let client = crate::load::client();
    let (off_url, on_url) = (off.0.webhook_url(), on.0.webhook_url());
    for ((target, state), url) in [(off, &off_url), (on, &on_url)] {
        let warm = bodies(state, 0, plan.sites, plan.sites, false);
        let r = closed_loop(&client, url, warm, 1).await;
        if r.non_2xx + r.failed > 0 {
            bail!("warm-up of {} failed: {}", target.name, r.summary());
        }
    }
    let layouts = [
        (
            format!(
                "{} distinct alerts, each from its own device, concurrency {}",
                plan.alerts, plan.concurrency
            ),
            false,
            1,
        ),
        (
            format!(
                "{} distinct alerts from {} devices (related per device), concurrency {}",
                plan.alerts, plan.sites, plan.concurrency
            ),
            true,
            2,
        ),
    ];
    let mut pairs = Vec::new();
    for (label, shared_devices, run) in layouts {
        let load = |state: &str| -> Arc<Vec<Bytes>> {
            Arc::new(
                (0..plan.alerts)
                    .map(|i| {
                        let site = i % plan.sites.max(1);
                        alert_body_on(state, &alert_uid(run, i), site, shared_devices.then_some(site))
                    })
                    .collect(),
            )
        };
        println!("{label} (load average before: {})", load_average());
        let off_report = closed_loop(&client, &off_url, load(off.1), plan.concurrency).await;
        println!("  noise off: {}", off_report.summary());
        let on_report = closed_loop(&client, &on_url, load(on.1), plan.concurrency).await;
        println!("  noise on:  {}", on_report.summary());
        println!(
            "  ratio on/off: throughput {:.2}x, p99 {:.2}x (load average after: {})",
            on_report.throughput() / off_report.throughput().max(1e-9),
            on_report.latencies.percentile(99.0).as_secs_f64()
                / off_report.latencies.percentile(99.0).as_secs_f64().max(1e-9),
            load_average()
        );
        pairs.push(NoisePair {
            label,
            off: off_report,
            on: on_report,
        });
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_runs_repeat_one_alert_in_ten_and_uids_parse() {
        let all = bodies("s", 7, 1000, 10, true);
        let uids: Vec<String> = all
            .iter()
            .map(|b| {
                serde_json::from_slice::<Value>(b).unwrap()["alert_uid"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let distinct: std::collections::HashSet<&String> = uids.iter().collect();
        assert_eq!(distinct.len(), 910);
        assert_eq!(uids[109], uids[9]);
        for u in &uids {
            deskbridge::domain::alerts::AlertUid::parse("alert_uid", u).expect("a Datto uid");
        }
    }

    #[test]
    fn the_group_commit_line_is_read_from_a_log() {
        let log = "x\n2026-11-24T10:00:00Z  INFO deskbridge::adapters::sqlite_store: SQLite writer stopped requests=40213 commits=2112\n";
        assert_eq!(group_commit_line(log), Some((40213, 2112)));
        assert_eq!(group_commit_line("nothing"), None);
    }
}
