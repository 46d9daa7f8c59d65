//! One consumer per work queue, shared by the SQS Lambdas and the local worker: a batch of
//! `(message id, body)` in, the ids that failed out (partial batch failures).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};

use super::datto_api::DattoApi;
use super::{close_propagation, enrichment, run_batch, session_import};
use crate::http::AppState;

/// At most this many messages of a batch run at once (Datto's rate budget is shared).
pub const CONCURRENCY: usize = 4;

/// Connect to Datto for a batch; without API access every message fails (`retry`) or is
/// dropped (`!retry`).
async fn datto(state: &AppState, retry: bool, n: usize) -> Result<Option<std::sync::Arc<dyn DattoApi>>, Vec<usize>> {
    match state.datto.connect().await {
        Ok(Some(api)) => Ok(Some(api)),
        Ok(None) if !retry => Ok(None),
        Ok(None) => {
            tracing::warn!("Datto API not configured; messages stay queued");
            Err((0..n).collect())
        }
        Err(e) => {
            tracing::warn!(error = %e, "Datto API unavailable; messages stay queued");
            Err((0..n).collect())
        }
    }
}

/// `ticket-closed`: resolve the alerts of agent-closed tickets in Datto.
pub async fn ticket_closed(state: &AppState, messages: Vec<(String, String)>) -> Vec<String> {
    let api = match datto(state, true, messages.len()).await {
        Ok(Some(api)) => api,
        Ok(None) | Err(_) => return messages.into_iter().map(|(id, _)| id).collect(),
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, api) = (state.store.clone(), api.clone());
        async move { close_propagation::propagate_close(&store, api.as_ref(), &body).await }
    })
    .await
}

/// `alert-enrich`: add Datto's details to new alert tickets (dropped without API access).
pub async fn alert_enrich(state: &AppState, messages: Vec<(String, String)>) -> Vec<String> {
    let api = match datto(state, false, messages.len()).await {
        Ok(Some(api)) => api,
        Ok(None) => return Vec::new(),
        Err(_) => return messages.into_iter().map(|(id, _)| id).collect(),
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, api) = (state.store.clone(), api.clone());
        async move { enrichment::enrich(&store, api.as_ref(), &body).await }
    })
    .await
}

/// `session-import`: import ended BeyondTrust sessions. Without API access the messages
/// stay queued (and reach the dead-letter queue after their receives).
pub async fn session_import(state: &AppState, messages: Vec<(String, String)>) -> Vec<String> {
    let client = match state.beyondtrust.connect().await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::warn!("BeyondTrust API not configured; session imports stay queued");
            return messages.into_iter().map(|(id, _)| id).collect();
        }
        Err(e) => {
            tracing::warn!(error = %e, "BeyondTrust API unavailable; session imports stay queued");
            return messages.into_iter().map(|(id, _)| id).collect();
        }
    };
    run_batch(messages, CONCURRENCY, |body| {
        let (store, client) = (state.store.clone(), client.clone());
        async move { session_import::import(&store, &client, &body).await.map(|_| ()) }
    })
    .await
}

/// Turn an SQS event into `(id, body)` pairs (bodies are parsed by each handler, so one
/// malformed body fails only itself) and the failed ids into the batch response.
pub async fn sqs_batch<F, Fut>(event: SqsEvent, consume: F) -> SqsBatchResponse
where
    F: FnOnce(Vec<(String, String)>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let messages = event
        .records
        .into_iter()
        .map(|r| (r.message_id.unwrap_or_default(), r.body.unwrap_or_default()))
        .collect();
    let mut response = SqsBatchResponse::default();
    for id in consume(messages).await {
        response.add_failure(id);
    }
    response
}
