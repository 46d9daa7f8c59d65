//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes as
//! the routers register them, and served at `GET /api/openapi.json`.
//!
//! Adding a documented route is one change: write the handler with its `#[utoipa::path]`
//! and register it with `.routes(routes!(handler))` in its module's `routes()`. The error
//! answers every operation shares (400, 401, 404, 503, ...) are added here, once.

use axum::extract::State;
use axum::Json;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref};
use utoipa::OpenApi as _;

use super::error::ErrorBody;

/// The document's frame: title, version, tags. Paths come from the routers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "deskbridge",
        description = "Datto RMM alerts to service-desk tickets and back, BeyondTrust remote support on tickets and chats, and the service desk itself. Errors are `{\"error\": CODE, \"message\"}`.",
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "desk", description = "Customers, sites, users, agents, teams, ticket types, tickets, chats"),
        (name = "datto", description = "Datto RMM settings, webhook setup, sync runs, site mappings, alerts"),
        (name = "beyondtrust", description = "BeyondTrust settings, team import, invitations, remote sessions"),
        (name = "noise", description = "Alert noise control: settings, routing rules, maintenance windows, the preview"),
        (name = "auth", description = "Sign-in, sessions, personal API tokens, passwords, the first admin"),
        (name = "operations", description = "Request log, dead letters, audit log, the API document"),
        (name = "intake", description = "Vendor calls into deskbridge, authenticated by a shared secret"),
        (name = "local", description = "Routes only the local server has"),
        (name = "console", description = "The web console: its HTML document and embedded assets (no token; it signs in against the API)"),
    )
)]
struct Frame;

/// Name of the service-token bearer scheme in `components.securitySchemes`.
pub const BEARER: &str = "bearer";
/// An agent's personal API token (bearer, `dbp_…`).
pub const PERSONAL_TOKEN: &str = "personal_token";
/// The session cookie from `POST /api/auth/login`.
pub const SESSION: &str = "session";
/// The session's CSRF token header, required with the cookie on state-changing requests.
pub const CSRF: &str = "csrf";

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// True for the paths behind the bearer token: all but the intake routes, `/healthz` and
/// this document.
fn needs_token(path: &str) -> bool {
    !(path.starts_with("/datto/")
        || path.starts_with("/beyondtrust/")
        || path == "/healthz"
        || path == "/api/openapi.json"
        || path == "/api/auth/login"
        || path == "/api/auth/setup"
        || path.starts_with(super::security::CONSOLE_PREFIX))
}

/// The error answers an operation can give besides its own: every one may be refused for
/// bad input or fail on a backend; token routes need the token, ones with a path id may
/// not find it.
fn add_common_errors(path: &str, op: &mut Operation, has_body: bool) {
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description).into());
    };
    add("400", "VALIDATION or MALFORMED_JSON: the message names the field");
    if has_body {
        add("413", "PAYLOAD_TOO_LARGE: the body is over 256 KiB");
        add("415", "UNSUPPORTED_MEDIA_TYPE");
    }
    if needs_token(path) {
        add("401", "UNAUTHORIZED: missing or wrong token, or no live session");
        add(
            "403",
            "FORBIDDEN: the caller's role may not do this; CSRF: a cookie request without X-CSRF-Token",
        );
    }
    if path.contains('{') {
        add("404", "NOT_FOUND: no record with that id");
    }
    add("500", "INTERNAL: an unexpected failure (details in the server log)");
    add(
        "503",
        "STORE_UNAVAILABLE, QUEUE_UNAVAILABLE, SECRETS_UNAVAILABLE: try again",
    );
    add(
        "504",
        "TIMED_OUT: the request took too long; what was saved stays saved",
    );
}

/// The document for `routes` (the paths of every router a host serves): frame, paths,
/// the auth schemes on every authenticated route, and the common error answers.
pub fn document(routes: OpenApi) -> OpenApi {
    let mut doc = Frame::openapi().merge_from(routes);
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The service token (machines, scripts). `X-Agent-Id` names the acting agent of a request made with it; it may do what an admin may.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        PERSONAL_TOKEN,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A personal API token of an agent (`dbp_…`, from POST /api/auth/tokens): acts as that agent with its role; `X-Agent-Id` is ignored.",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "__Host-deskbridge_session",
            "The session cookie set by POST /api/auth/login (`deskbridge_session` on plain loopback http): acts as the signed-in agent; `X-Agent-Id` is ignored.",
        ))),
    );
    components.add_security_scheme(
        CSRF,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-CSRF-Token",
            "The session's CSRF token (in the login answer and GET /api/auth/me); required with the session cookie on every request but GET/HEAD/OPTIONS.",
        ))),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let has_body = op.request_body.is_some();
            add_common_errors(path, op, has_body);
            if needs_token(path) {
                let none: [&str; 0] = [];
                op.security = Some(vec![
                    SecurityRequirement::new(BEARER, none),
                    SecurityRequirement::new(PERSONAL_TOKEN, none),
                    SecurityRequirement::new(SESSION, none).add(CSRF, none),
                ]);
            }
        }
    }
    doc
}

/// The document a host serves.
#[derive(Clone)]
pub struct Served(pub std::sync::Arc<serde_json::Value>);

/// The OpenAPI 3.1 document of every route this host serves.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi_json(State(doc): State<Served>) -> Json<serde_json::Value> {
    Json(doc.0.as_ref().clone())
}
