//! Queue and schedule work units: each job exposes "handle one message" or "run once",
//! called alike by the Lambda consumers, the local worker and the tests.

pub mod alert_sync;
pub mod close_propagation;
pub mod consumers;
pub mod datto_api;
pub mod enrichment;
pub mod session_import;

use std::future::Future;

use futures::stream::{self, StreamExt};

/// Why one message failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The message can never succeed (malformed body); it will reach the dead-letter queue.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// A retry later may succeed (vendor throttled or down, store unavailable).
    #[error("retryable failure: {0}")]
    Retryable(String),
}

impl From<crate::Error> for JobError {
    fn from(e: crate::Error) -> Self {
        JobError::Retryable(e.to_string())
    }
}

/// Run `handle` on each `(message id, body)` with at most `concurrency` at once (vendor
/// rate budgets are shared) and return the ids that failed, for a partial batch response.
/// Each body is parsed inside its own handler, so one bad message fails only itself.
pub async fn run_batch<F, Fut>(messages: Vec<(String, String)>, concurrency: usize, handle: F) -> Vec<String>
where
    F: Fn(String) -> Fut,
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
    results
        .into_iter()
        .filter_map(|(id, r)| match r {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "message failed; it will be retried");
                Some(id)
            }
        })
        .collect()
}
