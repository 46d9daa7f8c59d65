//! One consumer per work queue, shared by the SQS Lambdas and the local worker: a batch of
//! `(message id, body)` in, the ids to retry and the ids to dead-letter at once out.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::{beyondtrust_sync, datto_sync, Context};
use crate::jobs::{close_propagation, enrichment, gave_up, run_batch, session_import, BatchOutcome};
use crate::ports::{DattoApi, QueueName};

/// At most this many messages of a batch run at once (Datto's rate budget is shared).
pub const CONCURRENCY: usize = 4;

/// How long one SQS batch of `queue` may run before it is cut off and every message of
/// it is reported for a retry. Each is shorter than the consuming Lambda's `Timeout` in
/// template.yaml (a test checks), so the function always answers before Lambda kills it.
pub fn batch_timeout(queue: QueueName) -> Duration {
    match queue {
        QueueName::TicketClosed | QueueName::AlertEnrich => Duration::from_secs(25),
        QueueName::SessionImport => Duration::from_secs(20),
        // One run, plus the writes of its state before and after.
        QueueName::DattoSync => datto_sync::RUN_TIMEOUT + Duration::from_secs(15),
    }
}

/// One delivery of a queue message: its id, its body and how often the queue has handed
/// it out (1 = the first delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
}

/// Run a batch of first deliveries of `queue` through its consumer.
pub async fn consume(ctx: &Context, queue: QueueName, messages: Vec<(String, String)>) -> BatchOutcome {
    let deliveries = messages
        .into_iter()
        .map(|(id, body)| Delivery {
            id,
            body,
            receive_count: 1,
        })
        .collect();
    consume_deliveries(ctx, queue, deliveries).await
}

/// Run a batch of `queue` through its consumer, each message with its receive count.
pub async fn consume_deliveries(ctx: &Context, queue: QueueName, deliveries: Vec<Delivery>) -> BatchOutcome {
    let messages = || deliveries.iter().map(|d| (d.id.clone(), d.body.clone())).collect();
    match queue {
        QueueName::TicketClosed => ticket_closed(ctx, messages()).await,
        QueueName::AlertEnrich => alert_enrich(ctx, messages()).await,
        QueueName::SessionImport => session_import(ctx, deliveries).await,
        QueueName::DattoSync => datto_sync::consume(ctx, messages()).await,
    }
}

/// When a failed message of `queue` is to be offered again, if the queue has its own
/// schedule: session imports follow `session_import::RETRY_SCHEDULE`; the others keep the
/// queue's back-off (SQS: the visibility timeout; local worker: its doubling back-off).
pub fn retry_delay(queue: QueueName, receive_count: u32) -> Option<Duration> {
    match queue {
        QueueName::SessionImport => Some(session_import::retry_delay(receive_count)),
        _ => None,
    }
}

/// The dead-letter text for a retryable failure (`reason`) on a message's last receive (its
/// queue would dead-letter it on the next one, keeping no reason); `None` before that.
/// The SQS path and the local worker both settle messages by it.
pub fn gave_up_reason(queue: QueueName, receive_count: u32, reason: &str) -> Option<String> {
    (receive_count >= queue.max_receives()).then(|| gave_up(receive_count, reason))
}

/// Connect to Datto for a batch: `Err` with the reason (retry every message) when Datto is
/// unavailable, or when it is not configured and `required`; `Ok(None)` when it is not
/// configured and the work can be dropped.
async fn datto(ctx: &Context, required: bool) -> Result<Option<Arc<dyn DattoApi>>, String> {
    match ctx.datto.connect().await {
        Ok(Some(api)) => Ok(Some(api)),
        Ok(None) if !required => Ok(None),
        Ok(None) => {
            tracing::warn!("Datto API not configured; messages stay queued");
            Err("the Datto RMM API is not configured".into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "Datto API unavailable; messages stay queued");
            Err(format!("the Datto RMM API is unavailable: {e}"))
        }
    }
}

/// `ticket-closed`: resolve the alerts of agent-closed tickets in Datto.
pub async fn ticket_closed(ctx: &Context, messages: Vec<(String, String)>) -> BatchOutcome {
    let api = match datto(ctx, true).await {
        Ok(Some(api)) => api,
        Ok(None) => return BatchOutcome::retry_all(&messages, "the Datto RMM API is not configured"),
        Err(reason) => return BatchOutcome::retry_all(&messages, &reason),
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, api) = (ctx.store.clone(), api.clone());
        async move { close_propagation::propagate_close(&store, api.as_ref(), &body).await }
    })
    .await
}

/// `alert-enrich`: add Datto's details to new alert tickets (dropped without API access).
pub async fn alert_enrich(ctx: &Context, messages: Vec<(String, String)>) -> BatchOutcome {
    let api = match datto(ctx, false).await {
        Ok(Some(api)) => api,
        Ok(None) => return BatchOutcome::default(),
        Err(reason) => return BatchOutcome::retry_all(&messages, &reason),
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, api) = (ctx.store.clone(), api.clone());
        async move { enrichment::enrich(&store, api.as_ref(), &body).await }
    })
    .await
}

/// `session-import`: import ended BeyondTrust sessions (and run queued sweeps). Without API access the messages
/// stay queued (and reach the dead-letter queue after their receives).
pub async fn session_import(ctx: &Context, deliveries: Vec<Delivery>) -> BatchOutcome {
    let messages: Vec<(String, String)> = deliveries.iter().map(|d| (d.id.clone(), d.body.clone())).collect();
    let client = match ctx.beyondtrust.connect().await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::warn!("BeyondTrust API not configured; session imports stay queued");
            return BatchOutcome::retry_all(&messages, "the BeyondTrust API is not configured");
        }
        Err(e) => {
            tracing::warn!(error = %e, "BeyondTrust API unavailable; session imports stay queued");
            return BatchOutcome::retry_all(&messages, &format!("the BeyondTrust API is unavailable: {e}"));
        }
    };
    let batch = deliveries
        .into_iter()
        .map(|d| (d.id, (d.body, d.receive_count)))
        .collect();
    run_batch(batch, CONCURRENCY, |(body, receives)| {
        let (store, client) = (ctx.store.clone(), client.clone());
        async move {
            // The lost-end-event sweep rides this queue too.
            if let Some(run_id) = beyondtrust_sync::sweep_request(&body) {
                return beyondtrust_sync::execute(ctx, &client, run_id).await;
            }
            session_import::import(&store, &client, &body, receives)
                .await
                .map(|_| ())
        }
    })
    .await
}

/// Run an SQS event of `queue` through its consumer: messages that can never succeed are
/// sent to the dead-letter queue at once (and reported done, so Lambda deletes them);
/// the ones to retry come back as partial batch failures, each first made visible again
/// after its queue's schedule (`retry_delay`, by `ChangeMessageVisibility` on its receipt
/// handle) where the queue has one. A dead-letter send that fails is reported as a
/// failure too, so the redrive policy still catches the message.
pub async fn sqs_batch(ctx: &Context, queue: QueueName, event: SqsEvent) -> SqsBatchResponse {
    let records: Vec<(String, String, String, u32)> = event
        .records
        .into_iter()
        .map(|r| {
            let id = r.message_id.unwrap_or_default();
            let receives = r
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1);
            (
                id,
                r.receipt_handle.unwrap_or_default(),
                r.body.unwrap_or_default(),
                receives,
            )
        })
        .collect();
    let messages: Vec<(String, String)> = records
        .iter()
        .map(|(id, _, body, _)| (id.clone(), body.clone()))
        .collect();
    let deliveries = records
        .iter()
        .map(|(id, _, body, receives)| Delivery {
            id: id.clone(),
            body: body.clone(),
            receive_count: *receives,
        })
        .collect();
    let outcome = match tokio::time::timeout(batch_timeout(queue), consume_deliveries(ctx, queue, deliveries)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(%queue, "batch cut off after its time limit; every message is retried");
            let limit = batch_timeout(queue).as_secs();
            BatchOutcome::retry_all(
                &messages,
                &format!("the batch was cut off after its {limit} s time limit"),
            )
        }
    };
    let mut response = SqsBatchResponse::default();
    let mut dead = outcome.dead;
    for (id, reason) in outcome.retry {
        let record = records.iter().find(|(m, _, _, _)| *m == id);
        // The last receive failed: dead-letter it now, with why, rather than leave it to
        // the redrive policy on the next receive, which would keep no reason.
        if let Some(text) = record.and_then(|r| gave_up_reason(queue, r.3, &reason)) {
            dead.push((id, text));
            continue;
        }
        if let Some((delay, (_, receipt, _, _))) = record.and_then(|r| retry_delay(queue, r.3).map(|d| (d, r))) {
            if let Err(e) = ctx.queue.release(queue, receipt, delay).await {
                tracing::warn!(%queue, message_id = %id, error = %e, "could not schedule the retry; the queue's visibility timeout applies");
            }
        }
        response.add_failure(id);
    }
    for (id, reason) in dead {
        let Some((_, receipt, body, _)) = records.iter().find(|(m, _, _, _)| *m == id) else {
            continue;
        };
        if let Err(e) = ctx.queue.dead_letter(queue, receipt, body, &reason).await {
            tracing::warn!(%queue, message_id = %id, error = %e, "could not dead-letter the message; it will be retried");
            response.add_failure(id);
        }
    }
    response
}
