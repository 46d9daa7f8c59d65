//! Operations routes of the helpdesk API: dead letters of every work queue, listed and
//! replayed (SQS dead-letter queues in AWS, the SQLite queue locally).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::ApiError;
use super::extract::TextPath;
use super::AppState;
use crate::ports::QueueName;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/dead-letters", get(list_dead_letters))
        .route("/api/dead-letters/{id}/replay", post(replay))
}

async fn list_dead_letters(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for q in QueueName::ALL {
        match s.queue.dead_letters(q).await {
            Ok(list) => items.extend(list),
            // A queue this host has no URL for is not an error of the listing.
            Err(crate::ports::QueueError::NotConfigured(_)) => {}
            Err(e) => return Err(crate::Error::from(e).into()),
        }
    }
    Ok(Json(json!({ "items": items })))
}

async fn replay(State(s): State<AppState>, TextPath(id): TextPath) -> Result<(StatusCode, Json<Value>), ApiError> {
    for q in QueueName::ALL {
        let found = match s.queue.dead_letters(q).await {
            Ok(list) => list.iter().any(|d| d.id == id),
            Err(_) => false,
        };
        if found {
            s.queue.replay(q, &id).await.map_err(crate::Error::from)?;
            tracing::info!(queue = %q, message_id = %id, "dead letter replayed");
            return Ok((StatusCode::OK, Json(json!({"replayed": id, "queue": q}))));
        }
    }
    Err(crate::domain::DomainError::not_found("dead letter", &id).into())
}
