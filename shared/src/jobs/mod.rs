//! Queue and schedule work units: each job exposes "handle one message" or "run once",
//! called alike by the Lambda consumers, the local worker and the tests.

pub mod alert_sync;
pub mod close_propagation;
pub mod enrichment;
pub mod session_import;
pub mod session_sweep;

use std::future::Future;

use futures::stream::{self, StreamExt};

/// What went wrong in a job, with its source kept.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The message body is not what the queue carries (malformed, unknown ids).
    #[error("{0}")]
    BadMessage(String),
    /// What the message refers to does not exist (any more).
    #[error("{0}")]
    Gone(String),
    /// The work cannot be done yet (a vendor report still being written).
    #[error("{0}")]
    NotYet(String),
    #[error(transparent)]
    Core(#[from] crate::Error),
    #[error("Datto RMM: {0}")]
    Datto(#[source] crate::ports::DattoCallError),
    #[error("BeyondTrust: {0}")]
    BeyondTrust(#[source] crate::beyondtrust::Error),
}

/// Why one message failed, and whether it may ever succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The message can never succeed (malformed body, a record that is gone, a vendor
    /// refusal no retry changes): it is dead-lettered at once instead of being retried.
    #[error("permanent failure: {0}")]
    Permanent(#[source] Failure),
    /// A retry later may succeed (vendor throttled or down, store unavailable): the queue
    /// offers it again after its back-off, and dead-letters it after `MAX_RECEIVES`.
    #[error("retryable failure: {0}")]
    Retryable(#[source] Failure),
}

impl JobError {
    /// A body that is not a message of this queue.
    pub fn bad_message(what: &str, e: impl std::fmt::Display) -> Self {
        JobError::Permanent(Failure::BadMessage(format!("not a{} {what} message: {e}", an(what))))
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, JobError::Permanent(_))
    }
}

fn an(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "n"
    } else {
        ""
    }
}

impl From<crate::Error> for JobError {
    /// Storage and port failures are retried; so are domain refusals, which a concurrent
    /// change (a reopen, a late write) may lift.
    fn from(e: crate::Error) -> Self {
        JobError::Retryable(Failure::Core(e))
    }
}

impl From<crate::ports::DattoCallError> for JobError {
    fn from(e: crate::ports::DattoCallError) -> Self {
        if e.retryable {
            JobError::Retryable(Failure::Datto(e))
        } else {
            JobError::Permanent(Failure::Datto(e))
        }
    }
}

impl From<crate::beyondtrust::Error> for JobError {
    fn from(e: crate::beyondtrust::Error) -> Self {
        use crate::beyondtrust::Error as Bt;
        match e {
            Bt::Malformed(_) | Bt::Invalid(_) => JobError::Permanent(Failure::BeyondTrust(e)),
            // "No session matched" right after the end event, auth and permission problems:
            // all may heal (report written late, configuration fixed) within the retry window.
            _ => JobError::Retryable(Failure::BeyondTrust(e)),
        }
    }
}

/// What became of a batch: the ids to offer again later and the ids that can never
/// succeed and go to the dead-letter queue at once, each with why it failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub retry: Vec<(String, String)>,
    pub dead: Vec<(String, String)>,
}

impl BatchOutcome {
    /// Every message of the batch to be retried, for `reason` (the batch could not even
    /// start, or was cut off).
    pub fn retry_all(messages: &[(String, String)], reason: &str) -> Self {
        BatchOutcome {
            retry: messages
                .iter()
                .map(|(id, _)| (id.clone(), reason.to_string()))
                .collect(),
            dead: Vec::new(),
        }
    }

    /// Why `id` is to be retried, if it is.
    pub fn retry_reason(&self, id: &str) -> Option<&str> {
        self.retry.iter().find(|(m, _)| m == id).map(|(_, r)| r.as_str())
    }

    /// Why `id` can never succeed, if it cannot.
    pub fn dead_reason(&self, id: &str) -> Option<&str> {
        self.dead.iter().find(|(m, _)| m == id).map(|(_, r)| r.as_str())
    }
}

/// The text kept with a message that failed its last receive (`receives` of them).
pub fn gave_up(receives: u32, reason: &str) -> String {
    format!("gave up after {receives} receives; the last failed with: {reason}")
}

/// Run `handle` on each `(message id, body)` with at most `concurrency` at once (vendor
/// rate budgets are shared) and sort the failures into retry and dead-letter.
/// Each body is parsed inside its own handler, so one bad message fails only itself.
/// (`T` is the body, or the body with what the queue tells about its delivery.)
pub async fn run_batch<T, F, Fut>(messages: Vec<(String, T)>, concurrency: usize, handle: F) -> BatchOutcome
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), JobError>>,
{
    let results: Vec<(String, Result<(), JobError>)> = stream::iter(messages)
        .map(|(id, body)| {
            let fut = handle(body);
            async move { (id, fut.await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut outcome = BatchOutcome::default();
    for (id, r) in results {
        match r {
            Ok(()) => {}
            Err(e) if e.is_permanent() => {
                tracing::error!(message_id = %id, error = %e, "message can never succeed; dead-lettered at once");
                outcome.dead.push((id, e.to_string()));
            }
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "message failed; it will be retried");
                outcome.retry.push((id, e.to_string()));
            }
        }
    }
    outcome
}
