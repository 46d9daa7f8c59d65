//! Cold start of every function as a Lambda process: the time from spawning its binary to
//! its first poll for an event, with the template's stack on the emulators behind it.
//!
//! Baseline, measured in the same run on the same binary: the start with `TABLE_NAME` unset,
//! which ends at once with an init error: process start, runtime and logging set-up, no AWS.
//! So `full - baseline` is what the AWS set-up costs (config, clients, the API-token secret).
//!
//! Run (emulators from `scripts/test --emulators-only`, their variables exported):
//!   cargo bench -p deskbridge-tests --bench lambda_init
//! Binaries: `DESKBRIDGE_FUNCTION_DIR` (default `target/lambda`, as scripts/build-lambdas
//! leaves them: `<dir>/<name>/bootstrap`, or `<dir>/<name>` for a plain cargo target dir);
//! `DESKBRIDGE_RUNNER` runs them, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu` for the arm64
//! bootstraps on an x86_64 machine. `DESKBRIDGE_INIT_RUNS` starts per function (default 5).

use std::path::PathBuf;
use std::time::Duration;

use deskbridge_tests::lambda_host::{function_names, workspace_root, FunctionProcess, Outcome, Stack, Template};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
        .unwrap_or(5);
    let template = Template::load();
    let stack = Stack::create(&template, "bench-token")
        .await
        .expect("the emulators (scripts/test --emulators-only) must be running");
    println!(
        "binaries: {} (runner: {:?}); {runs} starts each; median",
        dir.display(),
        runner
    );
    println!();
    println!("| function | init (to first poll) | baseline (no AWS set-up) | ratio |");
    println!("|---|---:|---:|---:|");
    for name in function_names() {
        let Some(binary) = [dir.join(&name).join("bootstrap"), dir.join(&name)]
            .into_iter()
            .find(|p| p.is_file())
        else {
            println!("| {name} | not built | | |");
            continue;
        };
        let id = template.function_id(&name).expect("template function");
        let env = stack.function_env(&template, &id);
        let mut bare = env.clone();
        bare.retain(|(k, _)| k != "TABLE_NAME");
        let (mut full, mut base) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (p, outcome) = FunctionProcess::start_with(&runner, &binary, &name, &env).await;
            assert!(
                matches!(outcome, Outcome::Response(_)),
                "{name}: {outcome:?}\n{}",
                p.output()
            );
            full.push(p.init_duration().expect("polled"));
            drop(p);
            let started = std::time::Instant::now();
            let (p, outcome) = FunctionProcess::start_with(&runner, &binary, &name, &bare).await;
            assert!(
                matches!(outcome, Outcome::InitError(_)),
                "{name}: {outcome:?}\n{}",
                p.output()
            );
            base.push(started.elapsed());
        }
        let (f, b) = (median(full), median(base));
        println!("| {name} | {:.0} ms | {:.0} ms | {:.1}x |", ms(f), ms(b), ms(f) / ms(b));
    }
}
