//! Request extractors whose rejections come out in the API's error format and name the
//! offending field: JSON bodies, path ids, query strings, the acting agent header.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Largest request body any route accepts.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Read the body, answering 413 past `BODY_LIMIT`.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("request body is larger than {} KiB", BODY_LIMIT / 1024),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "BAD_BODY", r.body_text())
        }
    })
}

/// Parse JSON, naming the path of a field with the wrong type or a missing field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = inner.to_string();
        let field = if path == "." || path.is_empty() {
            // serde names a missing field only in the message: "missing field `x` at ..."
            msg.split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "body".to_string())
        } else {
            path
        };
        let kind = if inner.is_syntax() || inner.is_eof() {
            "MALFORMED_JSON"
        } else {
            "VALIDATION"
        };
        ApiError::new(StatusCode::BAD_REQUEST, kind, format!("{field}: {msg}"))
    })
}

fn require_json_content_type(parts_headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let ct = parts_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!(
                "content-type must be application/json, got {}",
                if ct.is_empty() { "none" } else { ct }
            ),
        ))
    }
}

/// A JSON body; wrong content type → 415, too large → 413, bad JSON or field → 400.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(req.headers())?;
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be absent (empty body → `T::default()`).
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        require_json_content_type(&headers)?;
        parse_json(&bytes).map(OptionalJson)
    }
}

/// A numeric `{id}` path segment.
pub struct IdPath(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::bad_request("id", e.body_text()))?;
        raw.parse::<u64>()
            .map(IdPath)
            .map_err(|_| ApiError::bad_request("id", format!("must be a positive number, got {raw:?}")))
    }
}

/// A string `{...}` path segment.
pub struct TextPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TextPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| TextPath(p.0))
            .map_err(|e| ApiError::bad_request("path", e.body_text()))
    }
}

/// Query parameters, a bad one named in a 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let path = e.path().to_string();
            ApiError::bad_request(if path == "." { "query" } else { &path }, e.into_inner())
        })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// The acting agent named by `X-Agent-Id`, if any.
pub struct ActingAgent(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for ActingAgent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get("x-agent-id") {
            None => Ok(ActingAgent(None)),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(|id| ActingAgent(Some(id)))
                .ok_or_else(|| ApiError::bad_request("X-Agent-Id", "must be an agent id (a number)")),
        }
    }
}
