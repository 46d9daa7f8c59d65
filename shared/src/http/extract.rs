//! Request extractors whose rejections are typed `InputError`s naming the offending field:
//! JSON bodies, typed path ids and query strings (the `Actor` extractor is in `auth`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::domain::json::first_repeated_key;
use crate::services::InputError;

/// Largest request body any route accepts.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Read the body, refusing it past `BODY_LIMIT`.
pub async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, InputError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            InputError::TooLarge {
                limit_kib: BODY_LIMIT / 1024,
            }
        } else {
            InputError::BadBody(r.body_text())
        }
    })
}

/// Parse JSON, naming the path of a field with the wrong type, a missing field or a key
/// an object repeats.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InputError> {
    if let Some(field) = first_repeated_key(bytes) {
        return Err(InputError::Invalid {
            field,
            message: "appears twice in the body: each key may appear once".into(),
        });
    }
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
        if inner.is_syntax() || inner.is_eof() {
            InputError::MalformedJson { field, message: msg }
        } else {
            InputError::Invalid { field, message: msg }
        }
    })
}

fn require_json_content_type(parts_headers: &axum::http::HeaderMap) -> Result<(), InputError> {
    let ct = parts_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json")) {
        Ok(())
    } else {
        Err(InputError::UnsupportedMediaType {
            expected: "application/json",
            got: if ct.is_empty() { "none" } else { ct }.to_string(),
        })
    }
}

/// A JSON body; wrong content type → 415, too large → 413, bad JSON or field → 400.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json_content_type(req.headers())?;
        let bytes = body_bytes(req, state).await?;
        Ok(ApiJson(parse_json(&bytes)?))
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
        Ok(OptionalJson(parse_json(&bytes)?))
    }
}

/// A numeric `{id}` path segment as the typed id `T`.
pub struct IdPath<T>(pub T);

impl<T: From<u64>, S: Send + Sync> FromRequestParts<S> for IdPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e| InputError::invalid("id", e.body_text()))?;
        let id = raw
            .parse::<u64>()
            .map_err(|_| InputError::invalid("id", format!("must be a positive number, got {raw:?}")))?;
        Ok(IdPath(T::from(id)))
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
            .map_err(|e| InputError::invalid("path", e.body_text()).into())
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
            InputError::invalid(if path == "." { "query" } else { &path }, e.into_inner()).into()
        })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}
