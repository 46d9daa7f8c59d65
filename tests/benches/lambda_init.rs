//! Cold start and package size of every function as a Lambda process: the time from
//! spawning its binary to its first poll for an event, with the template's stack on the
//! emulators behind it, and the size of its `bootstrap.zip`.
//!
//! Two baselines, measured in the same run and alternated start by start with the
//! function's own: the start of the same binary with `TABLE_NAME` unset, which ends at once
//! with an init error (process start, runtime and logging set-up, no AWS), so `full - no
//! AWS` is what the AWS set-up costs; and the floor Lambda (`bench/lambda-floor`: the
//! runtime, its logging set-up and an echo handler, built by `scripts/build-lambdas` with
//! the same profile and target), whose start and zip are what any Rust Lambda costs here.
//!
//! Run (emulators from `scripts/test --emulators-only`, their variables exported):
//!   cargo bench -p deskbridge-tests --bench lambda_init
//! `scripts/bench` runs it after `scripts/build-lambdas`. Binaries: `DESKBRIDGE_FUNCTION_DIR`
//! (default `target/lambda`, as scripts/build-lambdas leaves them: `<dir>/<name>/bootstrap`
//! and `bootstrap.zip`, or `<dir>/<name>` for a plain cargo target dir); `DESKBRIDGE_RUNNER`
//! runs them, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the arm64 bootstraps on an
//! x86_64 machine. `DESKBRIDGE_INIT_RUNS` starts per function (default 5).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use deskbridge_tests::lambda_host::{function_names, workspace_root, FunctionProcess, Outcome, Stack, Template};

/// The floor Lambda's package name (`bench/lambda-floor`).
const FLOOR: &str = "lambda-floor";

/// The `q` quantile (nearest rank) of `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1_048_576.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// `<dir>/<name>/bootstrap` (scripts/build-lambdas) or `<dir>/<name>` (a cargo target dir).
fn binary_in(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name).join("bootstrap"), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The size of `<dir>/<name>/bootstrap.zip`, when scripts/build-lambdas zipped it.
fn zip_size(dir: &Path, name: &str) -> Option<u64> {
    std::fs::metadata(dir.join(name).join("bootstrap.zip"))
        .ok()
        .map(|m| m.len())
}

/// Start `binary` once; the time to its first poll, or to its end for an expected init error.
async fn start_once(
    runner: &[String],
    binary: &Path,
    name: &str,
    env: &[(String, String)],
    init_error: bool,
) -> Duration {
    let started = Instant::now();
    let (p, outcome) = FunctionProcess::start_with(runner, binary, name, env).await;
    if init_error {
        assert!(
            matches!(outcome, Outcome::InitError(_)),
            "{name}: {outcome:?}\n{}",
            p.output()
        );
        started.elapsed()
    } else {
        assert!(
            matches!(outcome, Outcome::Response(_)),
            "{name}: {outcome:?}\n{}",
            p.output()
        );
        p.init_duration().expect("polled")
    }
}

#[tokio::main]
async fn main() {
    // Relative to the workspace root (cargo runs benches in the package's folder).
    let dir = workspace_root().join(
        std::env::var("DESKBRIDGE_FUNCTION_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("target/lambda")),
    );
    let runner: Vec<String> = std::env::var("DESKBRIDGE_RUNNER")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let runs: usize = std::env::var("DESKBRIDGE_INIT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let floor = binary_in(&dir, FLOOR).unwrap_or_else(|| {
        panic!(
            "no {FLOOR} binary in {}: the baseline is built with the functions (scripts/build-lambdas)",
            dir.display()
        )
    });
    let floor_zip = zip_size(&dir, FLOOR);
    let template = Template::load();
    let stack = Stack::create(&template, "bench-token")
        .await
        .expect("the emulators (scripts/test --emulators-only) must be running");
    println!(
        "binaries: {} (runner: {:?}); {runs} starts each of the function, of it without TABLE_NAME \
         (no AWS) and of {FLOOR}, alternated; load average {}",
        dir.display(),
        runner,
        load_average()
    );
    println!(
        "{FLOOR} (the floor: runtime + logging + echo, same profile): bootstrap.zip {}",
        floor_zip.map_or_else(|| "not zipped".into(), mib)
    );
    println!();
    println!(
        "| function | bootstrap.zip | zip / floor | init p50 | init p95 | no-AWS start p50 | floor start p50 | init p50 / floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for name in function_names() {
        let Some(binary) = binary_in(&dir, &name) else {
            println!("| {name} | not built | | | | | | |");
            continue;
        };
        let id = template.function_id(&name).expect("template function");
        let env = stack.function_env(&template, &id);
        let mut bare = env.clone();
        bare.retain(|(k, _)| k != "TABLE_NAME");
        let (mut full, mut base, mut floors) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            full.push(start_once(&runner, &binary, &name, &env, false).await);
            base.push(start_once(&runner, &binary, &name, &bare, true).await);
            floors.push(start_once(&runner, &floor, FLOOR, &[], false).await);
        }
        let (p50, p95) = (quantile(&full, 0.5), quantile(&full, 0.95));
        let (b50, f50) = (quantile(&base, 0.5), quantile(&floors, 0.5));
        let zip = zip_size(&dir, &name);
        let zip_ratio = match (zip, floor_zip) {
            (Some(z), Some(f)) => format!("{:.1}x", z as f64 / f as f64),
            _ => String::new(),
        };
        println!(
            "| {name} | {} | {zip_ratio} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.1}x |",
            zip.map_or_else(|| "not zipped".into(), mib),
            ms(p50),
            ms(p95),
            ms(b50),
            ms(f50),
            ms(p50) / ms(f50)
        );
    }
    println!();
    println!("load average at the end: {}", load_average());
}
