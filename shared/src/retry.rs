//! The one retry policy of deskbridge's outbound calls — the Datto and BeyondTrust clients
//! and the DynamoDB adapter: an explicit schedule with jitter, bounded attempts, a
//! predicate saying what may be retried, and `Retry-After` honoured.
//!
//! Each caller says what a failure is ([`RetryClass`]: 429/throttling, 5xx/timeouts/
//! connection failures, or anything else, which is never retried) and this module decides
//! whether and how long to wait. (The loop is ours, not `backon`'s: its combinator
//! closures over `&E`, held in a generic future, trip rustc's higher-ranked `Send` check
//! inside the `async_trait` methods that call the vendor clients.) The waits are
//! randomised so that instances failing together do not retry in step:
//! - a transient failure waits the schedule's next delay, scaled by a factor in [0.5, 1.5);
//! - a throttled answer with `Retry-After` waits at least that long, plus up to a quarter
//!   of it (1–15 s) so that callers told the same instant do not all return at once;
//!   a `Retry-After` beyond [`RetryPolicy::max_retry_after`] fails at once;
//! - a throttled answer without `Retry-After` waits the policy's throttle wait scaled by a
//!   factor in [0.5, 2.0), or, when the policy has none, the schedule's delay.
//!
//! Every kind of retry counts against the one schedule: a call is tried at most
//! `1 + schedule length` times, whatever mix of failures it meets.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// What a failed attempt means for retrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// 5xx, a timeout, a dropped connection: the same call may work in a moment.
    Transient,
    /// 429 or the service's throttling answer, with its `Retry-After` when it sent one.
    Throttled { retry_after: Option<Duration> },
    /// Any other refusal (4xx, bad input, a permission): retrying cannot help.
    Permanent,
}

impl RetryClass {
    /// The class of an HTTP status: 429 throttled; 408 and 5xx transient; others permanent.
    pub fn of_status(status: u16, retry_after: Option<Duration>) -> RetryClass {
        match status {
            429 => RetryClass::Throttled { retry_after },
            408 | 500..=599 => RetryClass::Transient,
            _ => RetryClass::Permanent,
        }
    }
}

/// A failure that knows its [`RetryClass`].
pub trait ClassifyRetry {
    fn retry_class(&self) -> RetryClass;
}

/// When, and how long, to wait before trying a failed call again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    schedule: Vec<Duration>,
    jitter: bool,
    throttle_wait: Option<Duration>,
    max_retry_after: Duration,
}

impl RetryPolicy {
    /// Retry after each delay of `schedule` in turn (its length bounds the retries), with
    /// jitter; throttled answers without `Retry-After` follow the schedule too; a
    /// `Retry-After` up to 5 minutes is waited for.
    pub fn new(schedule: Vec<Duration>) -> Self {
        RetryPolicy {
            schedule,
            jitter: true,
            throttle_wait: None,
            max_retry_after: Duration::from_secs(5 * 60),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy::new(Vec::new()).with_jitter(false)
    }

    /// `retries` retries without waiting (tests).
    pub fn immediate(retries: usize) -> Self {
        RetryPolicy::new(vec![Duration::ZERO; retries]).with_jitter(false)
    }

    /// Randomise the waits (on by default).
    pub fn with_jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The base wait after a throttled answer that names no `Retry-After`.
    pub fn with_throttle_wait(mut self, wait: Duration) -> Self {
        self.throttle_wait = Some(wait);
        self
    }

    /// Fail at once rather than wait for a `Retry-After` longer than this.
    pub fn with_max_retry_after(mut self, limit: Duration) -> Self {
        self.max_retry_after = limit;
        self
    }

    /// At most `retries` retries: the schedule is cut to that length.
    pub fn capped(mut self, retries: usize) -> Self {
        self.schedule.truncate(retries);
        self
    }

    /// How many times a failed call is tried again at most.
    pub fn retries(&self) -> usize {
        self.schedule.len()
    }

    /// The longest `Retry-After` still waited for.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The wait before retry number `retry` (0-based) after a failure of class `class`, or
    /// `None` when the call must not be retried (permanent, schedule used up, or a
    /// `Retry-After` beyond the limit).
    pub fn wait_before(&self, retry: usize, class: RetryClass) -> Option<Duration> {
        let scheduled = *self.schedule.get(retry)?;
        self.wait_for(class, scheduled)
    }

    fn wait_for(&self, class: RetryClass, scheduled: Duration) -> Option<Duration> {
        match class {
            RetryClass::Permanent => None,
            RetryClass::Transient => Some(self.spread(scheduled, 0.5..1.5)),
            RetryClass::Throttled { retry_after: Some(ra) } => {
                if ra > self.max_retry_after {
                    return None;
                }
                if !self.jitter {
                    return Some(ra);
                }
                let spread = (ra / 4).clamp(Duration::from_secs(1), Duration::from_secs(15));
                Some(ra + spread.mul_f64(rand::rng().random_range(0.0..1.0)))
            }
            RetryClass::Throttled { retry_after: None } => Some(match self.throttle_wait {
                Some(wait) => self.spread(wait, 0.5..2.0),
                None => self.spread(scheduled, 0.5..1.5),
            }),
        }
    }

    fn spread(&self, base: Duration, factor: std::ops::Range<f64>) -> Duration {
        if self.jitter && !base.is_zero() {
            base.mul_f64(rand::rng().random_range(factor))
        } else {
            base
        }
    }

    /// Run `attempt` until it succeeds, fails in a way that is not retried, or the schedule
    /// is used up; the last failure is returned. `sleep` does every wait (tests pass one
    /// that records instead of sleeping); `before_retry` sees each failure that will be
    /// retried and the wait ahead (for logs, and for budgets that must know the pause).
    pub async fn run<T, E, Fut, SFut>(
        &self,
        mut attempt: impl FnMut() -> Fut,
        sleep: impl Fn(Duration) -> SFut,
        mut before_retry: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        E: ClassifyRetry,
        Fut: Future<Output = Result<T, E>>,
        SFut: Future<Output = ()>,
    {
        let mut retry = 0;
        loop {
            let failure = match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(wait) = self.wait_before(retry, failure.retry_class()) else {
                return Err(failure);
            };
            before_retry(&failure, wait);
            drop(failure);
            retry += 1;
            sleep(wait).await;
        }
    }
}

/// `tokio::time::sleep`, for [`RetryPolicy::run`] outside tests.
pub async fn tokio_sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// A `Retry-After` value: delta seconds (capped at a day) or an HTTP date.
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Failure(RetryClass);

    impl ClassifyRetry for Failure {
        fn retry_class(&self) -> RetryClass {
            self.0
        }
    }

    /// Run `policy` over attempts that fail with `failures` in turn (then succeed);
    /// returns the outcome, the number of attempts and the waits.
    async fn drive(policy: &RetryPolicy, failures: Vec<RetryClass>) -> (Result<u32, Failure>, usize, Vec<Duration>) {
        let calls = Arc::new(Mutex::new(0usize));
        let slept = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(failures);
        let (c, f) = (calls.clone(), failures.clone());
        let s = slept.clone();
        let out = policy
            .run(
                move || {
                    let (c, f) = (c.clone(), f.clone());
                    async move {
                        let n = {
                            let mut c = c.lock().unwrap();
                            *c += 1;
                            *c
                        };
                        match f.get(n - 1) {
                            Some(class) => Err(Failure(*class)),
                            None => Ok(n as u32),
                        }
                    }
                },
                move |d| {
                    s.lock().unwrap().push(d);
                    async {}
                },
                |_, _| {},
            )
            .await;
        let n = *calls.lock().unwrap();
        let waits = slept.lock().unwrap().clone();
        (out, n, waits)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn statuses_map_to_classes() {
        assert_eq!(
            RetryClass::of_status(429, Some(secs(3))),
            RetryClass::Throttled {
                retry_after: Some(secs(3))
            }
        );
        for s in [408, 500, 502, 503, 504, 599] {
            assert_eq!(RetryClass::of_status(s, None), RetryClass::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert_eq!(RetryClass::of_status(s, None), RetryClass::Permanent, "{s}");
        }
    }

    #[tokio::test]
    async fn transient_failures_follow_the_schedule_and_then_give_up() {
        let p = RetryPolicy::new(vec![secs(1), secs(4), secs(10)]).with_jitter(false);
        let (out, calls, waits) = drive(&p, vec![RetryClass::Transient; 10]).await;
        assert_eq!(out, Err(Failure(RetryClass::Transient)));
        assert_eq!(calls, 4, "one try and three retries");
        assert_eq!(waits, [secs(1), secs(4), secs(10)]);

        let (out, calls, _) = drive(&p, vec![RetryClass::Transient; 2]).await;
        assert_eq!(out, Ok(3));
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn permanent_failures_are_never_retried() {
        let p = RetryPolicy::new(vec![secs(1); 3]);
        let (out, calls, waits) = drive(&p, vec![RetryClass::Permanent]).await;
        assert_eq!(out, Err(Failure(RetryClass::Permanent)));
        assert_eq!(calls, 1);
        assert!(waits.is_empty());
    }

    #[tokio::test]
    async fn every_kind_of_retry_counts_against_one_schedule() {
        let p = RetryPolicy::new(vec![Duration::ZERO; 3]).with_jitter(false);
        let throttled = RetryClass::Throttled {
            retry_after: Some(secs(2)),
        };
        let mix = vec![RetryClass::Transient, throttled, RetryClass::Transient, throttled];
        let (out, calls, waits) = drive(&p, mix).await;
        assert_eq!(out, Err(Failure(throttled)));
        assert_eq!(calls, 4);
        assert_eq!(waits, [Duration::ZERO, secs(2), Duration::ZERO]);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_fails_at_once() {
        let p = RetryPolicy::new(vec![secs(1); 3]).with_max_retry_after(secs(300));
        let long = RetryClass::Throttled {
            retry_after: Some(secs(3600)),
        };
        let (out, calls, waits) = drive(&p, vec![long]).await;
        assert_eq!(out, Err(Failure(long)));
        assert_eq!(calls, 1);
        assert!(waits.is_empty());
    }

    #[test]
    fn a_throttled_wait_never_undercuts_retry_after() {
        let p = RetryPolicy::new(vec![secs(1), secs(4), secs(10)]).with_throttle_wait(secs(60));
        for _ in 0..200 {
            let d = p
                .wait_before(
                    0,
                    RetryClass::Throttled {
                        retry_after: Some(secs(7)),
                    },
                )
                .unwrap();
            assert!(d >= secs(7) && d < secs(9), "{d:?}");
            let d = p.wait_before(0, RetryClass::Throttled { retry_after: None }).unwrap();
            assert!(d >= secs(30) && d < secs(120), "{d:?}");
        }
    }

    #[test]
    fn jitter_stays_within_half_to_one_and_a_half_of_the_schedule() {
        let p = RetryPolicy::new(vec![Duration::from_millis(100); 5]).capped(2);
        assert_eq!(p.retries(), 2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = p.wait_before(0, RetryClass::Transient).unwrap();
            assert!(
                d >= Duration::from_millis(50) && d < Duration::from_millis(150),
                "{d:?}"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 10, "the waits are randomised");
        assert_eq!(p.wait_before(2, RetryClass::Transient), None, "capped at two");
        assert_eq!(
            RetryPolicy::immediate(2).wait_before(1, RetryClass::Transient),
            Some(Duration::ZERO)
        );
        assert_eq!(RetryPolicy::none().retries(), 0);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("7", now), Some(secs(7)));
        assert_eq!(parse_retry_after("Mon, 23 Nov 2026 09:00:30 GMT", now), Some(secs(30)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
