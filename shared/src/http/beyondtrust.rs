//! BeyondTrust intake: `POST /beyondtrust/events/{token}` (outbound events, form-encoded).
//! The token in the path is the only credential; the service records a session end once
//! per lsid and enqueues its import, and the answer comes at once (200 for every body once
//! recorded, a rejected one included). Every request is logged.

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::body_bytes;
use super::refuse;
use crate::services::remote_sessions::EventAnswer;
use crate::services::{remote_sessions, Context};

/// Request-log source of outbound events.
pub const SOURCE: &str = remote_sessions::EVENT_SOURCE;

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new().routes(routes!(event))
}

#[utoipa::path(post, path = "/beyondtrust/events/{token}", tag = "intake", params(("token" = String, Path, description = "The event token of GET /api/config/beyondtrust/event-url")), request_body(content = String, description = "BeyondTrust outbound event fields", content_type = "application/x-www-form-urlencoded"), responses((status = 200, description = "Recorded: a session end enqueued for import, ignored, a duplicate, or rejected (an unusable body, logged with the reason and kept for POST /api/request-log/{id}/replay)", body = EventAnswer), (status = 401, description = "UNAUTHORIZED: wrong event token; the appliance holds back every later event until the URL is fixed", body = ErrorBody), (status = 503, description = "STORE_UNAVAILABLE: nothing could be recorded; the appliance sends it again", body = ErrorBody)))]
async fn event(State(ctx): State<Context>, Path(token): Path<String>, req: Request) -> Response {
    let body = body_bytes(req, &()).await;
    let body = body.as_deref().map_err(Clone::clone);
    match remote_sessions::outbound_event(&ctx, &token, body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(refusal) => refuse(&ctx, refusal).await,
    }
}
