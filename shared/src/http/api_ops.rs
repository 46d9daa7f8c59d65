//! Operations routes of the helpdesk API: dead letters of every work queue, listed and
//! replayed (SQS dead-letter queues in AWS, the SQLite queue locally).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use super::error::ApiError;
use super::extract::TextPath;
use crate::ports::DeadLetter;
use crate::services::operations::{self, Replayed};
use crate::services::{Actor, Context};

pub fn routes() -> Router<Context> {
    Router::new()
        .route("/api/dead-letters", get(list_dead_letters))
        .route("/api/dead-letters/{id}/replay", post(replay))
}

/// `{"items": [...]}`: every queue's dead letters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub items: Vec<DeadLetter>,
}

async fn list_dead_letters(State(ctx): State<Context>, actor: Actor) -> Result<Json<DeadLetters>, ApiError> {
    let items = operations::dead_letters(&ctx, &actor).await?;
    Ok(Json(DeadLetters { items }))
}

async fn replay(State(ctx): State<Context>, actor: Actor, TextPath(id): TextPath) -> Result<Json<Replayed>, ApiError> {
    Ok(Json(operations::replay(&ctx, &actor, &id).await?))
}
