//! axum routers for every HTTP entry point (intake and helpdesk API) and the layers they
//! share; Lambda functions and the local server mount these same routers.

pub mod api;
pub mod api_bt;
pub mod api_datto;
pub mod api_ops;
pub mod beyondtrust;
pub mod datto;
pub mod error;
pub mod extract;
pub mod security;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::HttpConfig;
use crate::ports::{Clock, Mailer, Queue, SecretStore};
use crate::store::Store;
use error::ApiError;
pub use extract::BODY_LIMIT;

/// Everything a handler may use: the ports and the HTTP configuration.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub mailer: Arc<dyn Mailer>,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<HttpConfig>,
    /// The Datto RMM API as currently configured.
    pub datto: Arc<dyn crate::jobs::datto_api::DattoConnect>,
    /// The BeyondTrust API as currently configured.
    pub beyondtrust: Arc<dyn crate::beyondtrust::connect::BeyondTrustConnect>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers every router gets, identical under lambda_http and `axum::serve`: body
/// limit, request id (set, logged, echoed), tracing, timeout.
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(25),
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(security::headers))
}

/// Refuse requests without the API's bearer token (compared in constant time).
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match given {
        None => ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)").into_response(),
        Some(t) if bool::from(t.trim().as_bytes().ct_eq(state.config.api_token.expose().as_bytes())) => {
            next.run(req).await
        }
        Some(_) => ApiError::unauthorized("wrong bearer token").into_response(),
    }
}

/// The public base URL: the configured one, or `https://<Host>` of the request when none
/// is configured (behind API Gateway the Host is the API's own domain).
pub fn public_base(config: &HttpConfig, headers: &axum::http::HeaderMap) -> String {
    if !config.public_url.is_empty() {
        return config.public_url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("https://{host}")
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route")
}

/// The helpdesk API (`/api/*`, bearer token) and `GET /healthz`.
pub fn helpdesk_router(state: AppState) -> Router {
    let api = api::routes()
        .merge(api_datto::routes())
        .merge(api_bt::routes())
        .merge(api_ops::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    with_common_layers(
        Router::new()
            .route("/healthz", get(healthz))
            .merge(api)
            .fallback(not_found),
    )
}

/// Datto intake (`POST /datto/webhook`), authenticated by the `state` in the body.
pub fn datto_router(state: AppState) -> Router {
    with_common_layers(datto::routes().with_state(state))
}

/// BeyondTrust intake (`POST /beyondtrust/events/{token}`), authenticated by the token.
pub fn beyondtrust_router(state: AppState) -> Router {
    with_common_layers(beyondtrust::routes().with_state(state))
}

/// Every router of the system merged, as the local server serves it.
pub fn full_router(state: AppState) -> Router {
    helpdesk_router(state.clone())
        .merge(datto_router(state.clone()))
        .merge(beyondtrust_router(state))
}
