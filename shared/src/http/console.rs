//! The web console: one HTML document at `/console` and its scripts and style sheet under
//! `/console/assets/`, embedded in the binary and served without a token.
//!
//! The console is plain ES modules and one CSS file with no build step: the files under
//! `shared/console/` are the shipped files. The page signs in against the JSON API and
//! routes on the URL's hash (`/console#/tickets/12`), so every console URL is this one
//! document (API Gateway needs no rewrite). The security layer gives these answers the
//! console's CSP (scripts and styles from this origin only, nothing inline).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, RoutingError};

/// One embedded file of the console.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The name under `/console/assets/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../../console/assets/", $name)),
        }
    };
}

/// Every asset the console serves.
pub const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("signin.js", JS),
    asset!("tickets.js", JS),
    asset!("chats.js", JS),
    asset!("datto.js", JS),
    asset!("beyondtrust.js", JS),
    asset!("operations.js", JS),
    asset!("noise.js", JS),
];

/// The console's one HTML document.
pub const INDEX_HTML: &str = include_str!("../../console/index.html");

/// The asset named `name`, if the console has one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The console routes; they take no state, so any router can merge them.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(console_page))
        .routes(routes!(console_setup_page))
        .routes(routes!(console_asset))
}

/// Revalidate every time: the files change with the binary, and they are small.
const NO_CACHE: &str = "no-cache";

/// The console page (the same document for every screen: screens are chosen by the hash).
#[utoipa::path(get, path = "/console", tag = "console",
    responses((status = 200, description = "The console's HTML document", content_type = "text/html", body = String)))]
async fn console_page() -> Response {
    (
        [(CONTENT_TYPE, "text/html; charset=utf-8"), (CACHE_CONTROL, NO_CACHE)],
        INDEX_HTML,
    )
        .into_response()
}

/// The same document at the address `deskbridge serve` prints for the first admin
/// (`/console/setup#token=...`): the page opens its first-admin screen with the token.
#[utoipa::path(get, path = "/console/setup", tag = "console",
    responses((status = 200, description = "The console's HTML document, opening the first-admin screen", content_type = "text/html", body = String)))]
async fn console_setup_page() -> Response {
    console_page().await
}

/// A script or the style sheet of the console; 404 for any other name.
#[utoipa::path(get, path = "/console/assets/{name}", tag = "console",
    params(("name" = String, Path, description = "The asset's file name, e.g. `app.js`")),
    responses((status = 200, description = "The file, with its content type", body = String)))]
async fn console_asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let a = asset(&name).ok_or(RoutingError::NoAsset(name))?;
    Ok(([(CONTENT_TYPE, a.content_type), (CACHE_CONTROL, NO_CACHE)], a.body).into_response())
}
