//! One consumer per work queue, shared by the SQS Lambdas and the local worker: a batch of
//! `(message id, body)` in, the ids to retry and the ids to dead-letter at once out.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::{datto_sync, Context};
use crate::jobs::{close_propagation, enrichment, run_batch, session_import, BatchOutcome};
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

/// Run a batch of `queue` through its consumer.
pub async fn consume(ctx: &Context, queue: QueueName, messages: Vec<(String, String)>) -> BatchOutcome {
    match queue {
        QueueName::TicketClosed => ticket_closed(ctx, messages).await,
        QueueName::AlertEnrich => alert_enrich(ctx, messages).await,
        QueueName::SessionImport => session_import(ctx, messages).await,
        QueueName::DattoSync => datto_sync::consume(ctx, messages).await,
    }
}

/// Connect to Datto for a batch: `Err` (retry every message) when Datto is unavailable,
/// or when it is not configured and `required`; `Ok(None)` when it is not configured and
/// the work can be dropped.
async fn datto(ctx: &Context, required: bool) -> Result<Option<Arc<dyn DattoApi>>, ()> {
    match ctx.datto.connect().await {
        Ok(Some(api)) => Ok(Some(api)),
        Ok(None) if !required => Ok(None),
        Ok(None) => {
            tracing::warn!("Datto API not configured; messages stay queued");
            Err(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "Datto API unavailable; messages stay queued");
            Err(())
        }
    }
}

/// `ticket-closed`: resolve the alerts of agent-closed tickets in Datto.
pub async fn ticket_closed(ctx: &Context, messages: Vec<(String, String)>) -> BatchOutcome {
    let Ok(Some(api)) = datto(ctx, true).await else {
        return BatchOutcome::retry_all(&messages);
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
        Err(()) => return BatchOutcome::retry_all(&messages),
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, api) = (ctx.store.clone(), api.clone());
        async move { enrichment::enrich(&store, api.as_ref(), &body).await }
    })
    .await
}

/// `session-import`: import ended BeyondTrust sessions. Without API access the messages
/// stay queued (and reach the dead-letter queue after their receives).
pub async fn session_import(ctx: &Context, messages: Vec<(String, String)>) -> BatchOutcome {
    let client = match ctx.beyondtrust.connect().await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::warn!("BeyondTrust API not configured; session imports stay queued");
            return BatchOutcome::retry_all(&messages);
        }
        Err(e) => {
            tracing::warn!(error = %e, "BeyondTrust API unavailable; session imports stay queued");
            return BatchOutcome::retry_all(&messages);
        }
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, client) = (ctx.store.clone(), client.clone());
        async move { session_import::import(&store, &client, &body).await.map(|_| ()) }
    })
    .await
}

/// Run an SQS event of `queue` through its consumer: messages that can never succeed are
/// sent to the dead-letter queue at once (and reported done, so Lambda deletes them);
/// the ones to retry come back as partial batch failures. A dead-letter send that fails
/// is reported as a failure too, so the redrive policy still catches the message.
pub async fn sqs_batch(ctx: &Context, queue: QueueName, event: SqsEvent) -> SqsBatchResponse {
    let records: Vec<(String, String, String)> = event
        .records
        .into_iter()
        .map(|r| {
            let id = r.message_id.unwrap_or_default();
            (id, r.receipt_handle.unwrap_or_default(), r.body.unwrap_or_default())
        })
        .collect();
    let messages: Vec<(String, String)> = records.iter().map(|(id, _, body)| (id.clone(), body.clone())).collect();
    let outcome = match tokio::time::timeout(batch_timeout(queue), consume(ctx, queue, messages.clone())).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(%queue, "batch cut off after its time limit; every message is retried");
            BatchOutcome::retry_all(&messages)
        }
    };
    let mut response = SqsBatchResponse::default();
    for id in outcome.retry {
        response.add_failure(id);
    }
    for (id, _reason) in outcome.dead {
        let Some((_, receipt, body)) = records.iter().find(|(m, _, _)| *m == id) else {
            continue;
        };
        if let Err(e) = ctx.queue.dead_letter(queue, receipt, body).await {
            tracing::warn!(%queue, message_id = %id, error = %e, "could not dead-letter the message; it will be retried");
            response.add_failure(id);
        }
    }
    response
}
