//! Operations routes of the helpdesk API: dead letters of every work queue, listed and
//! replayed (SQS dead-letter queues in AWS, the SQLite queue locally), and the health figures.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::TextPath;
use crate::ports::DeadLetter;
use crate::services::operations::{self, Health, Replayed};
use crate::services::{Actor, Context};

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay))
        .routes(routes!(health))
}

/// `{"items": [...]}`: every queue's dead letters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    pub items: Vec<DeadLetter>,
}

#[utoipa::path(get, path = "/api/dead-letters", tag = "operations", responses((status = 200, description = "Every queue's dead letters", body = DeadLetters)))]
async fn list_dead_letters(State(ctx): State<Context>, actor: Actor) -> Result<Json<DeadLetters>, ApiError> {
    let items = operations::dead_letters(&ctx, &actor).await?;
    Ok(Json(DeadLetters { items }))
}

#[utoipa::path(post, path = "/api/dead-letters/{id}/replay", tag = "operations", params(("id" = String, Path, description = "The dead letter's message id")), responses((status = 200, description = "The message is back on its queue", body = Replayed)))]
async fn replay(State(ctx): State<Context>, actor: Actor, TextPath(id): TextPath) -> Result<Json<Replayed>, ApiError> {
    Ok(Json(operations::replay(&ctx, &actor, &id).await?))
}

#[utoipa::path(get, path = "/api/operations/health", tag = "operations", responses((status = 200, description = "Queue depths, each vendor's last success and failure, the Datto request budget used", body = Health)))]
async fn health(State(ctx): State<Context>, actor: Actor) -> Result<Json<Health>, ApiError> {
    Ok(Json(operations::health(&ctx, &actor).await?))
}
