//! JSON answers end with a newline, so `curl` output and saved answers stay line-based: one
//! response mapping, applied by `with_common_layers`, appends it to every JSON body.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};

/// Largest body this mapping rewrites (answers are far smaller; bigger ones pass untouched).
const LIMIT: usize = 16 * 1024 * 1024;

/// Append `\n` to a non-empty `application/json` body that does not end with one.
pub async fn end_json_with_newline(response: Response<Body>) -> Response<Body> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let too_big = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n >= LIMIT);
    if !is_json || too_big {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, LIMIT).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "could not read a JSON answer to end it with a newline");
            return Response::from_parts(parts, Body::empty());
        }
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut text = Vec::with_capacity(bytes.len() + 1);
    text.extend_from_slice(&bytes);
    text.push(b'\n');
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    Response::from_parts(parts, Body::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response<Body>) -> Vec<u8> {
        axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap().to_vec()
    }

    #[tokio::test]
    async fn json_gets_one_newline_and_other_bodies_none() {
        let json = axum::Json(serde_json::json!({"status": "ok"}));
        let r = end_json_with_newline(axum::response::IntoResponse::into_response(json)).await;
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "16");
        assert_eq!(body(r).await, b"{\"status\":\"ok\"}\n");
        let again = Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}\n"))
            .unwrap();
        assert_eq!(body(end_json_with_newline(again).await).await, b"{}\n");
        let html = axum::response::IntoResponse::into_response(axum::response::Html("<p>hi</p>"));
        assert_eq!(body(end_json_with_newline(html).await).await, b"<p>hi</p>");
        let empty = Response::builder()
            .status(204)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty())
            .unwrap();
        assert!(body(end_json_with_newline(empty).await).await.is_empty());
    }
}
