//! Datto intake over HTTP: `POST /datto/webhook`, authenticated by the `state` in the body.
//! Every request lands in the request log, refused ones with the reason.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use super::error::ApiError;
use super::extract::body_bytes;
use super::AppState;
use crate::datto::state as webhook_state;
use crate::datto::webhook::{interpret, parse_body, state_of, Parsed, WebhookCall};
use crate::intake::ingest;
use crate::store::RequestLogEntry;

pub fn routes() -> Router<AppState> {
    Router::new().route("/datto/webhook", post(webhook))
}

/// Record a refused request, then answer with `err`. A log failure does not change the
/// answer (the refusal stands), but is logged.
async fn refuse(s: &AppState, mut log: RequestLogEntry, err: ApiError, raw: Option<&[u8]>) -> Response {
    log.status = err.status.as_u16();
    log.outcome = if err.status == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "rejected"
    }
    .to_string();
    log.reason = Some(err.message.clone());
    if let Some(raw) = raw {
        log.keep_raw(raw);
    }
    if let Err(e) = s.store.log_request(&log).await {
        tracing::error!(error = %e, "could not write the request log");
    }
    err.into_response()
}

async fn webhook(State(s): State<AppState>, req: Request) -> Response {
    let now = s.clock.now();
    let log = RequestLogEntry::new("datto-webhook", now);
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = match body_bytes(req, &()).await {
        Ok(b) => b,
        Err(e) => return refuse(&s, log, e, None).await,
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence != "application/json" {
        let e = ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!(
                "content-type must be application/json, got {}",
                if ct.is_empty() { "none" } else { &ct }
            ),
        );
        return refuse(&s, log, e, None).await;
    }
    let parsed = match parse_body(&bytes) {
        Ok(p) => p,
        Err(e) => {
            let err = ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", format!("body: {e}"));
            return refuse(&s, log, err, Some(&bytes)).await;
        }
    };
    if let Parsed::Repaired(_, what) = &parsed {
        tracing::warn!(repair = what, "webhook body needed repair");
    }
    let body = parsed.value();
    let stored_state = match webhook_state::load(s.secrets.as_ref()).await {
        Ok(st) => st,
        Err(e) => return ApiError::from(crate::Error::from(e)).into_response(),
    };
    let authorised = match (state_of(body), &stored_state) {
        (Some(given), Some(st)) => st.accepts(given, now),
        _ => false,
    };
    if !authorised {
        let msg = if state_of(body).is_none() {
            "state: missing"
        } else {
            "state: wrong or expired"
        };
        return refuse(&s, log, ApiError::unauthorized(msg), None).await;
    }
    let call = match interpret(body, now) {
        Ok(c) => c,
        Err(e) => return refuse(&s, log, e.into(), Some(&bytes)).await,
    };
    match call {
        WebhookCall::Test => {
            let mut log = log;
            log.status = 200;
            log.outcome = "test_accepted".into();
            log.reason = Some("Datto's Test button (placeholders not substituted)".into());
            tracing::info!("datto webhook test accepted");
            match s.store.log_request(&log).await {
                Ok(()) => Json(serde_json::json!({"result": "test_accepted"})).into_response(),
                Err(e) => ApiError::from(e).into_response(),
            }
        }
        WebhookCall::Event(ev) => {
            let uid = ev.uid.to_string();
            match ingest(&s.store, &ev, Some(log.clone())).await {
                Ok(r) => {
                    if let Err(e) = crate::jobs::enrichment::request_enrichment(&s.store, s.queue.as_ref(), &r).await {
                        tracing::warn!(error = %e, "enrichment not requested");
                    }
                    Json(r).into_response()
                }
                Err(e) => {
                    let err = ApiError::from(e);
                    let mut log = log;
                    log.alert_uid = Some(uid);
                    if err.status.is_client_error() {
                        refuse(&s, log, err, Some(&bytes)).await
                    } else {
                        // The store may be down: try to log, answer 5xx regardless.
                        refuse(&s, log, err, None).await
                    }
                }
            }
        }
    }
}
