//! Operations routes of the helpdesk API: dead letters of every work queue, listed and
//! replayed (SQS dead-letter queues in AWS, the SQLite queue locally), the kept bodies of
//! rejected BeyondTrust events replayed, and the health figures.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::TextPath;
use crate::ports::DeadLetter;
use crate::services::operations::{self, Health, Replayed};
use crate::services::remote_sessions::{self, EventAnswer};
use crate::services::{Actor, Context};

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay))
        .routes(routes!(health))
        .routes(routes!(replay_event))
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

#[utoipa::path(post, path = "/api/request-log/{id}/replay", tag = "operations", params(("id" = String, Path, description = "The request-log entry of a rejected BeyondTrust event")), responses((status = 200, description = "The kept body was handled as a new event", body = EventAnswer), (status = 400, description = "VALIDATION: the kept body is still unusable (names the field)", body = ErrorBody), (status = 404, description = "NOT_FOUND: no kept BeyondTrust body for that entry", body = ErrorBody)))]
async fn replay_event(
    State(ctx): State<Context>,
    actor: Actor,
    TextPath(id): TextPath,
) -> Result<Json<EventAnswer>, ApiError> {
    Ok(Json(remote_sessions::replay_event(&ctx, &actor, &id).await?))
}
