//! The local stand-in for SQS triggers and EventBridge: drains each SQLite queue through
//! the same consumers the Lambdas run, and queues the Datto sync and the BeyondTrust sweep
//! on their schedules.

use std::time::Duration;

use deskbridge::jobs::session_sweep::SWEEP_INTERVAL;
use deskbridge::ports::{QueueName, ReceivedMessage};
use deskbridge::services::{beyondtrust_sync, consumers, datto_sync, Actor, Context};
use deskbridge::store::SyncTrigger;

/// Drains queues and keeps the schedule of one local server.
#[derive(Clone)]
pub struct Worker {
    ctx: Context,
}

/// What one pass over the queues did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub done: usize,
    /// Retried later or dead-lettered.
    pub failed: usize,
    /// Of the failed, those dead-lettered at once (they can never succeed).
    pub dead: usize,
}

/// Delay before a failed message is offered again: 2^receives seconds, at most 5 minutes.
fn backoff(receive_count: u32) -> Duration {
    Duration::from_secs(2u64.saturating_pow(receive_count.min(8)).min(300))
}

/// A queue's own schedule where it has one (session imports: 5 s, 15 s, 30 s, 1, 2, 5 min,
/// as the SQS consumer sets it), else the doubling back-off.
fn backoff_for(queue: QueueName, receive_count: u32) -> Duration {
    consumers::retry_delay(queue, receive_count).unwrap_or_else(|| backoff(receive_count))
}

impl Worker {
    pub fn new(ctx: Context) -> Self {
        Worker { ctx }
    }

    /// Receive what is visible on every queue once and process it; failures come back
    /// after the queue's back-off.
    pub async fn drain_once(&self) -> Drained {
        let mut total = Drained::default();
        for queue in QueueName::ALL {
            let d = self.drain_queue(queue, |receives| backoff_for(queue, receives)).await;
            total.done += d.done;
            total.failed += d.failed;
            total.dead += d.dead;
        }
        total
    }

    /// Receive what is visible on `queue` once, run it through the queue's consumer (the
    /// same one the Lambda runs), ack successes, dead-letter what can never succeed and
    /// release the other failures after `delay(receive count)`.
    pub async fn drain_queue(&self, queue: QueueName, delay: impl Fn(u32) -> Duration) -> Drained {
        let mut total = Drained::default();
        let msgs: Vec<ReceivedMessage> = match self.ctx.queue.receive(queue, 10).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%queue, error = %e, "queue receive failed");
                return total;
            }
        };
        if msgs.is_empty() {
            return total;
        }
        let batch = msgs
            .iter()
            .map(|m| consumers::Delivery {
                id: m.id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
            })
            .collect();
        let outcome = consumers::consume_deliveries(&self.ctx, queue, batch).await;
        for m in &msgs {
            let dead = match (outcome.dead_reason(&m.id), outcome.retry_reason(&m.id)) {
                (Some(reason), _) => Some(reason.to_string()),
                // The last receive failed: dead-lettered now, with why.
                (None, Some(reason)) => consumers::gave_up_reason(queue, m.receive_count, reason),
                (None, None) => None,
            };
            let result = if let Some(reason) = dead {
                total.failed += 1;
                total.dead += 1;
                self.ctx.queue.dead_letter(queue, &m.receipt, &m.body, &reason).await
            } else if outcome.retry_reason(&m.id).is_some() {
                total.failed += 1;
                self.ctx.queue.release(queue, &m.receipt, delay(m.receive_count)).await
            } else {
                total.done += 1;
                self.ctx.queue.ack(queue, &m.receipt).await
            };
            if let Err(e) = result {
                tracing::warn!(%queue, message_id = %m.id, error = %e, "could not settle message");
            }
        }
        total
    }

    /// Drain every second, queue a Datto sync run every `sync_interval_minutes` and a
    /// BeyondTrust lost-end-event sweep every `SWEEP_INTERVAL` (the next drain runs them,
    /// as the Lambdas do) until `stop` fires.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut next_sync = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut next_sweep = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if *stop.borrow() {
                return;
            }
            self.drain_once().await;
            if tokio::time::Instant::now() >= next_sweep {
                if let Err(e) = beyondtrust_sync::request_run(&self.ctx, &Actor::System, SyncTrigger::Schedule).await {
                    tracing::warn!(error = %e, "scheduled BeyondTrust sweep not queued");
                }
                next_sweep = tokio::time::Instant::now() + SWEEP_INTERVAL;
            }
            if tokio::time::Instant::now() >= next_sync {
                if let Err(e) = datto_sync::request_run(&self.ctx, &Actor::System, SyncTrigger::Schedule).await {
                    tracing::warn!(error = %e, "scheduled Datto sync not queued");
                }
                let minutes = match self.ctx.store.datto_settings().await {
                    Ok(s) => s.sync_interval_minutes,
                    Err(_) => 5,
                };
                next_sync = tokio::time::Instant::now() + Duration::from_secs(60 * u64::from(minutes));
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                _ = stop.changed() => {},
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, backoff_for};
    use deskbridge::ports::QueueName;
    use std::time::Duration;

    /// Issue 10's schedule (it replaces 30 s, 1, 2, 5 min over five receives): retried
    /// soon, then less often, dead-lettered after the seventh receive.
    #[test]
    fn session_imports_retry_at_5_15_30_s_1_2_5_min_before_the_dead_letter_queue() {
        let waits: Vec<u64> = (1..QueueName::SessionImport.max_receives())
            .map(|n| backoff_for(QueueName::SessionImport, n).as_secs())
            .collect();
        assert_eq!(waits, [5, 15, 30, 60, 120, 300]);
        assert_eq!(backoff_for(QueueName::TicketClosed, 3), backoff(3));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(2));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(20), Duration::from_secs(256));
        assert!(backoff(u32::MAX) <= Duration::from_secs(300));
    }
}
