//! Lambda event path: recorded API Gateway v2 events from tests/events/ parsed by
//! lambda_http and sent through the same router the helpdesk-api function serves.

use serde_json::Value;
use tower::ServiceExt;

use crate::helpers::spawn_app;

fn event(name: &str) -> lambda_http::Request {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name} is not an API Gateway event: {e}"))
}

async fn invoke(router: axum::Router, name: &str) -> (u16, Value) {
    let resp = router.oneshot(event(name)).await.expect("router answers");
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn helpdesk_api_events_go_through_the_lambda_request_path() {
    let app = spawn_app().await;
    let router = || deskbridge::http::helpdesk_router(app.ctx.clone());

    let (s, body) = invoke(router(), "helpdesk-api-healthz.json").await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));

    let (s, created) = invoke(router(), "helpdesk-api-create-customer.json").await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["name"], "Acme Ltd");

    let (s, list) = invoke(router(), "helpdesk-api-list-customers.json").await;
    assert_eq!(s, 200);
    assert_eq!(list["items"][0]["name"], "Acme Ltd");

    let (s, e) = invoke(router(), "helpdesk-api-wrong-token.json").await;
    assert_eq!((s, e["error"].as_str()), (401, Some("UNAUTHORIZED")));

    let (s, e) = invoke(router(), "helpdesk-api-malformed-json.json").await;
    assert_eq!((s, e["error"].as_str()), (400, Some("MALFORMED_JSON")));

    // The refused requests stored nothing.
    let (_, list) = invoke(router(), "helpdesk-api-list-customers.json").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
