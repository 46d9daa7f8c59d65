//! Datto intake over HTTP: `POST /datto/webhook`, authenticated by the `state` in the body.
//! Every request lands in the request log, refused ones with the status they got.

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::extract::body_bytes;
use super::refuse;
use crate::services::{alert_intake, Context};

pub fn routes() -> Router<Context> {
    Router::new().route("/datto/webhook", post(webhook))
}

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
