//! Datto intake over HTTP: `POST /datto/webhook`, authenticated by the `state` in the body.
//! Every request lands in the request log, refused ones with the status they got.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::extract::body_bytes;
use super::refuse;
use crate::services::alert_intake::WebhookAnswer;
use crate::services::{alert_intake, Context};

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new().routes(routes!(webhook))
}

#[utoipa::path(post, path = "/datto/webhook", tag = "intake", request_body(content = Object, description = "The monitor payload set up from GET /api/config/datto/webhook; `state` authenticates it", content_type = "application/json"), responses((status = 200, description = "The event was applied durably (or it was Datto's Test button)", body = WebhookAnswer), (status = 401, description = "UNAUTHORIZED: state missing, wrong or expired", body = ErrorBody)))]
async fn webhook(State(ctx): State<Context>, req: Request) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = body_bytes(req, &()).await;
    let body = body.as_deref().map_err(Clone::clone);
    match alert_intake::webhook(&ctx, content_type.as_deref(), body).await {
        Ok(answer) => Json(answer).into_response(),
        Err(refusal) => refuse(&ctx, refusal).await,
    }
}
