//! axum routers for every HTTP entry point (intake and helpdesk API) and the layers they
//! share; Lambda functions and the local server mount these same routers.
//!
//! Handlers parse the request, call one `services` function with the `Context` and the
//! request's `Actor`, and map the result; `error` is the one place statuses are chosen.

pub mod api;
pub mod api_bt;
pub mod api_datto;
pub mod api_noise;
pub mod api_ops;
pub mod auth;
pub mod beyondtrust;
pub mod console;
pub mod datto;
pub mod error;
pub mod extract;
pub mod json_newline;
pub mod list;
pub mod openapi;
pub mod security;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::services::request_log::{log_refusal, Refusal};
use crate::services::Context;
use error::{ApiError, RoutingError};
pub use extract::BODY_LIMIT;

/// How long any request may take before the router answers 504. The Lambda `Timeout` of
/// every HTTP function in template.yaml is longer (a test checks), and API Gateway's 30 s
/// integration limit is longer still, so the router's answer is the one the caller gets.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(25);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The layers every router gets, identical under lambda_http and `axum::serve`: body
/// limit, request id (set, logged, echoed), tracing, timeout, security headers.
pub fn with_common_layers(router: Router) -> Router {
    with_common_layers_and_limit(router, REQUEST_TIMEOUT)
}

/// [`with_common_layers`] with another time limit (tests use a short one).
pub fn with_common_layers_and_limit(router: Router, limit: Duration) -> Router {
    router
        .layer(middleware::from_fn(move |req: Request, next: middleware::Next| {
            time_limit(limit, req, next)
        }))
        .layer(axum::middleware::map_response(json_newline::end_json_with_newline))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            let path = loggable_path(req.uri().path());
            tracing::info_span!("request", method = %req.method(), path = %path, request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(security::headers))
}

/// A request still running after `limit` is dropped and answered 504 with the API's error
/// body (`TIMED_OUT`), logged like every other failure.
async fn time_limit(limit: Duration, req: Request, next: middleware::Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::from(crate::services::ServiceError::TimedOut(format!(
            "the request took longer than {} s",
            limit.as_secs_f64()
        )))
        .into_response(),
    }
}

/// The request path as logged: BeyondTrust's event URL carries its token in the path, so
/// that segment is replaced (DESIGN §6: no token in any log line, also inside a URL path).
fn loggable_path(path: &str) -> &str {
    if path.starts_with("/beyondtrust/events/") {
        "/beyondtrust/events/{token}"
    } else {
        path
    }
}

/// The Host header of a request, for URLs shown when no public URL is configured.
pub fn request_host(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// The service is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    RoutingError::NoRoute.into()
}

/// The helpdesk API routes (`/api/*`), before the token check is layered on.
fn api_routes() -> OpenApiRouter<Context> {
    api::routes()
        .merge(api_datto::routes())
        .merge(api_noise::routes())
        .merge(api_bt::routes())
        .merge(api_ops::routes())
        .merge(auth::routes())
}

/// The OpenAPI document of every route: the helpdesk API, both intake routers, and
/// `extra` (routes a host adds, e.g. the local server's).
pub fn document_with(extra: OpenApiRouter<Context>) -> utoipa::openapi::OpenApi {
    let (_, routes) = api_routes()
        .merge(extra)
        .merge(datto::routes())
        .merge(beyondtrust::routes())
        .merge(auth::open_routes())
        .split_for_parts();
    let (_, own) = unauthenticated_routes().split_for_parts();
    openapi::document(routes.merge_from(own))
}

/// The document of the routes every host serves.
pub fn document() -> utoipa::openapi::OpenApi {
    document_with(OpenApiRouter::new())
}

/// `GET /healthz`, `GET /api/openapi.json` and the console's page and assets: no token
/// needed (the console signs in against the API).
fn unauthenticated_routes() -> OpenApiRouter<openapi::Served> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(openapi::openapi_json))
        .merge(console::routes())
}

/// The helpdesk API (`/api/*`, behind `auth::authenticate`) plus `extra` routes behind the
/// same check, sign-in and setup, `GET /healthz` and the API document (intake routers too).
fn helpdesk_router_with(ctx: Context, extra: OpenApiRouter<Context>) -> Router {
    static PLAIN: std::sync::OnceLock<Arc<serde_json::Value>> = std::sync::OnceLock::new();
    let to_json = |doc| Arc::new(serde_json::to_value(doc).expect("serializable"));
    let served = openapi::Served(if extra.get_openapi().paths.paths.is_empty() {
        PLAIN.get_or_init(|| to_json(document())).clone()
    } else {
        to_json(document_with(extra.clone()))
    });
    let (api, _) = api_routes().merge(extra).split_for_parts();
    let api = api
        .route_layer(middleware::from_fn_with_state(ctx.clone(), auth::authenticate))
        .with_state(ctx.clone());
    let (open, _) = unauthenticated_routes().split_for_parts();
    let (sign_in, _) = auth::open_routes().split_for_parts();
    with_common_layers(
        open.with_state(served)
            .merge(sign_in.with_state(ctx))
            .merge(api)
            .fallback(not_found),
    )
}

/// The helpdesk API (`/api/*`, bearer token), `GET /healthz`, `GET /api/openapi.json`,
/// the console (`/console`).
pub fn helpdesk_router(ctx: Context) -> Router {
    helpdesk_router_with(ctx, OpenApiRouter::new())
}

/// Datto intake (`POST /datto/webhook`), authenticated by the `state` in the body.
pub fn datto_router(ctx: Context) -> Router {
    with_common_layers(datto::routes().split_for_parts().0.with_state(ctx))
}

/// BeyondTrust intake (`POST /beyondtrust/events/{token}`), authenticated by the token.
pub fn beyondtrust_router(ctx: Context) -> Router {
    with_common_layers(beyondtrust::routes().split_for_parts().0.with_state(ctx))
}

/// Every router of the system merged, as the local server serves it, with `extra` routes
/// of the host behind the API token (and in the API document).
pub fn full_router_with(ctx: Context, extra: OpenApiRouter<Context>) -> Router {
    helpdesk_router_with(ctx.clone(), extra)
        .merge(datto_router(ctx.clone()))
        .merge(beyondtrust_router(ctx))
}

/// Every router of the system merged.
pub fn full_router(ctx: Context) -> Router {
    full_router_with(ctx, OpenApiRouter::new())
}

/// Answer a refused intake request: map the error to its status, complete and keep the
/// request-log entry with that status and message, and respond.
pub(crate) async fn refuse(ctx: &Context, refusal: Box<Refusal>) -> Response {
    let Refusal { error, log, raw } = *refusal;
    let err = ApiError::from(error);
    log_refusal(ctx, log, raw.as_deref(), err.status().as_u16(), err.message()).await;
    err.into_response()
}
