//! BeyondTrust intake: `POST /beyondtrust/events/{token}` (outbound events, form-encoded).
//! The token in the path is the only credential (compared in constant time). A session
//! end is recorded once per lsid and its import enqueued; the answer comes at once, with
//! no call to BeyondTrust inline. Every request lands in the request log.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::error::ApiError;
use super::extract::body_bytes;
use super::AppState;
use crate::beyondtrust::connect::event_token_matches;
use crate::beyondtrust::OutboundEvent;
use crate::jobs::session_import;
use crate::ports::QueueName;
use crate::store::RequestLogEntry;

/// Request-log source of outbound events.
pub const SOURCE: &str = "beyondtrust-event";

pub fn routes() -> Router<AppState> {
    Router::new().route("/beyondtrust/events/{token}", post(event))
}

async fn write_log(s: &AppState, mut log: RequestLogEntry, status: StatusCode, outcome: &str, reason: Option<String>) {
    log.status = status.as_u16();
    log.outcome = outcome.to_string();
    log.reason = reason;
    if let Err(e) = s.store.log_request(&log).await {
        tracing::error!(error = %e, "could not write the request log");
    }
}

async fn refuse(s: &AppState, log: RequestLogEntry, err: ApiError) -> Response {
    let outcome = if err.status == StatusCode::UNAUTHORIZED {
        "unauthorized"
    } else {
        "rejected"
    };
    write_log(s, log, err.status, outcome, Some(err.message.clone())).await;
    err.into_response()
}

async fn event(State(s): State<AppState>, Path(token): Path<String>, req: Request) -> Response {
    let mut log = RequestLogEntry::new(SOURCE, s.clock.now());
    match event_token_matches(s.secrets.as_ref(), &token).await {
        Ok(true) => {}
        Ok(false) => {
            // BeyondTrust blocks its whole queue behind a refused event: say so loudly.
            tracing::error!("BeyondTrust event with a wrong token refused; check the outbound event URL");
            return refuse(&s, log, ApiError::unauthorized("wrong event token")).await;
        }
        Err(e) => return ApiError::from(crate::Error::from(e)).into_response(),
    }
    let bytes = match body_bytes(req, &()).await {
        Ok(b) => b,
        Err(e) => return refuse(&s, log, e).await,
    };
    let ev = match OutboundEvent::parse_form(&bytes) {
        Ok(ev) => ev,
        Err(e) => {
            log.keep_raw(&bytes);
            let err = ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_EVENT", e.to_string());
            return refuse(&s, log, err).await;
        }
    };
    log.lsid = ev.lsid.as_ref().map(|l| l.to_string());
    if !ev.is_session_end() {
        write_log(
            &s,
            log,
            StatusCode::OK,
            "ignored",
            Some(format!("event {} is not imported", ev.event)),
        )
        .await;
        return Json(json!({"result": "ignored"})).into_response();
    }
    let Some(lsid) = ev.lsid.clone() else {
        log.keep_raw(&bytes);
        let err = ApiError::bad_request("lsid", "missing in a session end event");
        return refuse(&s, log, err).await;
    };
    let first = match s.store.record_session_end(&lsid, &ev.dedupe_key()).await {
        Ok(first) => first,
        Err(e) => return refuse(&s, log, ApiError::from(e)).await,
    };
    if !first {
        match s.store.remote_session_by_lsid(&lsid).await {
            Ok(Some(_)) => {
                write_log(
                    &s,
                    log,
                    StatusCode::OK,
                    "duplicate",
                    Some("session already imported".into()),
                )
                .await;
                return Json(json!({"result": "duplicate", "lsid": lsid})).into_response();
            }
            Ok(None) => {}
            Err(e) => return refuse(&s, log, ApiError::from(e)).await,
        }
    }
    // A repeat before the import finished is enqueued again; the import is idempotent.
    if let Err(e) = s
        .queue
        .send(QueueName::SessionImport, &session_import::message(&lsid))
        .await
    {
        return refuse(&s, log, ApiError::from(crate::Error::from(e))).await;
    }
    let outcome = if first { "enqueued" } else { "enqueued_again" };
    write_log(&s, log, StatusCode::OK, outcome, None).await;
    Json(json!({"result": "enqueued", "lsid": lsid})).into_response()
}
