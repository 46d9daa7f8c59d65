//! HTTP load: a bounded closed loop (every body once, a fixed number in flight) and an
//! open loop paced by schedule (request i sent at start + i/rate, whatever the answers do).
//!
//! Latency in the open loop counts from the scheduled send time, so a stalled server
//! cannot hide its queueing by slowing the generator down (no coordinated omission).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;

/// A client for loopback load: no proxy, keep-alive, enough idle connections.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Latencies of one run, sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Latencies(samples)
    }

    /// The `p`-th percentile (0..=100), nearest rank; zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

/// What one run of load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: usize,
    /// Answers outside 2xx.
    pub non_2xx: usize,
    /// Requests that got no answer at all (connection refused, timeout).
    pub failed: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
    /// Open loop only: the latest any request left after its scheduled time.
    pub max_send_lag: Duration,
}

impl LoadReport {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1000.0
    }

    /// One line: throughput, percentiles, errors.
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.2} s = {:.0} req/s; p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms; non-2xx {}, failed {}",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            Self::ms(self.latencies.percentile(50.0)),
            Self::ms(self.latencies.percentile(95.0)),
            Self::ms(self.latencies.percentile(99.0)),
            Self::ms(self.latencies.max()),
            self.non_2xx,
            self.failed,
        )
    }
}

/// The outcome of one request: its latency, and whether it was answered 2xx / at all.
enum Outcome {
    Ok(Duration),
    Non2xx(Duration),
    Failed,
}

async fn send(client: &reqwest::Client, url: &str, body: Bytes, started: Instant) -> Outcome {
    let call = Call {
        method: reqwest::Method::POST,
        url: url.to_string(),
        content_type: Some("application/json"),
        body,
        bearer: None,
    };
    send_call(client, call, started).await.0
}

/// One HTTP request of a mixed load: any method, optional body type and bearer token.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: reqwest::Method,
    pub url: String,
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    pub bearer: Option<Arc<str>>,
}

/// Send `call`; its outcome, and the answer's status (0: no answer).
async fn send_call(client: &reqwest::Client, call: Call, started: Instant) -> (Outcome, u16) {
    let mut req = client.request(call.method, &call.url);
    if let Some(ct) = call.content_type {
        req = req.header("content-type", ct).body(call.body);
    }
    if let Some(token) = call.bearer {
        req = req.bearer_auth(token);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            // Read the whole answer: the request is done when its body is.
            let read = resp.bytes().await;
            let took = started.elapsed();
            match (status.is_success(), read) {
                (true, Ok(_)) => (Outcome::Ok(took), status.as_u16()),
                (false, Ok(_)) => (Outcome::Non2xx(took), status.as_u16()),
                (_, Err(_)) => (Outcome::Failed, 0),
            }
        }
        Err(_) => (Outcome::Failed, 0),
    }
}

fn report(outcomes: Vec<Outcome>, elapsed: Duration, max_send_lag: Duration) -> LoadReport {
    let (mut samples, mut non_2xx, mut failed) = (Vec::with_capacity(outcomes.len()), 0, 0);
    for o in &outcomes {
        match o {
            Outcome::Ok(d) => samples.push(*d),
            Outcome::Non2xx(d) => {
                non_2xx += 1;
                samples.push(*d);
            }
            Outcome::Failed => failed += 1,
        }
    }
    LoadReport {
        requests: outcomes.len(),
        non_2xx,
        failed,
        elapsed,
        latencies: Latencies::new(samples),
        max_send_lag,
    }
}

/// POST every body to `url` once, `concurrency` at a time, as fast as answers come.
pub async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    bodies: Arc<Vec<Bytes>>,
    concurrency: usize,
) -> LoadReport {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (client, url, bodies, next) = (client.clone(), url.to_string(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    outcomes.push(send(&client, &url, body.clone(), Instant::now()).await);
                }
                outcomes
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(bodies.len());
    for w in futures::future::join_all(workers).await {
        outcomes.extend(w.expect("load worker"));
    }
    report(outcomes, started.elapsed(), Duration::ZERO)
}

/// POST body i at `start + i / rate` (open loop), each on its own task; ends when every
/// request has been answered or has failed.
pub async fn open_loop(client: &reqwest::Client, url: &str, bodies: Arc<Vec<Bytes>>, rate: f64) -> LoadReport {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let mut tasks = Vec::with_capacity(bodies.len());
    let mut max_lag = Duration::ZERO;
    for (i, body) in bodies.iter().enumerate() {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(tokio::time::Instant::now().saturating_duration_since(due));
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        let due = due.into_std();
        tasks.push(tokio::spawn(async move { send(&client, &url, body, due).await }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in futures::future::join_all(tasks).await {
        outcomes.push(t.expect("load task"));
    }
    report(outcomes, start.elapsed(), max_lag)
}

/// Send call i (made by `make` when it is due, so a long run holds no bodies in advance)
/// at `start + i / rate` for `seconds`, each on its own task (open loop); `on_answer`
/// sees every call's index and answer status (0: no answer). Ends when all are answered.
pub async fn open_loop_calls<F, A>(
    client: &reqwest::Client,
    rate: f64,
    seconds: f64,
    mut make: F,
    on_answer: A,
) -> LoadReport
where
    F: FnMut(usize) -> Call,
    A: Fn(usize, u16) + Send + Sync + 'static,
{
    let count = (rate * seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now() + Duration::from_millis(10);
    let on_answer = Arc::new(on_answer);
    let mut tasks = Vec::with_capacity(count);
    let mut max_lag = Duration::ZERO;
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(tokio::time::Instant::now().saturating_duration_since(due));
        let (client, call, on_answer) = (client.clone(), make(i), on_answer.clone());
        let due = due.into_std();
        tasks.push(tokio::spawn(async move {
            let (outcome, status) = send_call(&client, call, due).await;
            on_answer(i, status);
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in futures::future::join_all(tasks).await {
        outcomes.push(t.expect("load task"));
    }
    report(outcomes, start.elapsed(), max_lag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let l = Latencies::new((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(l.percentile(50.0), Duration::from_millis(50));
        assert_eq!(l.percentile(99.0), Duration::from_millis(99));
        assert_eq!(l.percentile(100.0), Duration::from_millis(100));
        assert_eq!(l.percentile(0.0), Duration::from_millis(1));
        assert_eq!(Latencies::default().percentile(99.0), Duration::ZERO);
    }
}
