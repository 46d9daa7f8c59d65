//! Bad input gets a clear 4xx naming the problem and changes nothing: a table of refused
//! requests, each with its reason, checked against a snapshot of everything stored.

use std::sync::Arc;

use async_trait::async_trait;
use deskbridge::ports::{Page, Query, Record, RecordStore, StoreError, WriteOp};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{id, spawn_app, TestApp, TOKEN};

enum Auth {
    Good,
    Missing,
    Wrong,
}

struct Case {
    reason: &'static str,
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
    auth: Auth,
    status: u16,
    code: &'static str,
    mentions: &'static str,
}

fn case(
    reason: &'static str,
    method: &'static str,
    path: String,
    body: &str,
    status: u16,
    code: &'static str,
    mentions: &'static str,
) -> Case {
    Case {
        reason,
        method,
        path,
        content_type: "application/json",
        body: body.as_bytes().to_vec(),
        auth: Auth::Good,
        status,
        code,
        mentions,
    }
}

async fn snapshot(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        "/api/customers",
        "/api/sites",
        "/api/users",
        "/api/agents",
        "/api/teams",
        "/api/ticket-types",
        "/api/tickets",
    ] {
        let (s, v) = app.get(&format!("{path}?limit=1000")).await;
        assert_eq!(s, StatusCode::OK);
        out.push(v);
    }
    out
}

#[tokio::test]
async fn bad_requests_get_a_named_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let (cid, _) = app.customer("Acme").await;
    let (_, t) = app
        .post("/api/tickets", json!({"summary": "Existing", "customer_id": cid}))
        .await;
    let tid = id(&t);
    let (_, chat) = app.post("/api/chats", json!({"user_name": "Jane"})).await;
    let chat_id = id(&chat);
    let before = snapshot(&app).await;
    let (_, ticket_before) = app.get(&format!("/api/tickets/{tid}")).await;

    let big = format!(
        "{{\"summary\": \"{}\", \"customer_id\": {cid}}}",
        "x".repeat(300 * 1024)
    );
    let mut cases = vec![
        case(
            "malformed JSON",
            "POST",
            "/api/tickets".into(),
            "{\"summary\": ",
            400,
            "MALFORMED_JSON",
            "line",
        ),
        case(
            "missing required field",
            "POST",
            "/api/tickets".into(),
            &format!("{{\"customer_id\": {cid}}}"),
            400,
            "VALIDATION",
            "summary",
        ),
        case(
            "wrong type",
            "POST",
            "/api/tickets".into(),
            "{\"summary\": \"x\", \"customer_id\": \"acme\"}",
            400,
            "VALIDATION",
            "customer_id",
        ),
        case(
            "blank summary",
            "POST",
            "/api/tickets".into(),
            &format!("{{\"summary\": \"  \", \"customer_id\": {cid}}}"),
            400,
            "VALIDATION",
            "summary",
        ),
        case(
            "unknown customer",
            "POST",
            "/api/tickets".into(),
            "{\"summary\": \"x\", \"customer_id\": 999}",
            400,
            "VALIDATION",
            "customer_id",
        ),
        case(
            "unknown site",
            "POST",
            "/api/tickets".into(),
            &format!("{{\"summary\": \"x\", \"customer_id\": {cid}, \"site_id\": 999}}"),
            400,
            "VALIDATION",
            "site_id",
        ),
        case(
            "object custom field",
            "POST",
            "/api/tickets".into(),
            &format!("{{\"summary\": \"x\", \"customer_id\": {cid}, \"custom_fields\": {{\"a\": [1]}}}}"),
            400,
            "VALIDATION",
            "custom_fields.a",
        ),
        case(
            "bad priority",
            "POST",
            "/api/tickets".into(),
            &format!("{{\"summary\": \"x\", \"customer_id\": {cid}, \"priority\": \"urgent\"}}"),
            400,
            "VALIDATION",
            "priority",
        ),
        case(
            "over 256 KiB",
            "POST",
            "/api/tickets".into(),
            &big,
            413,
            "PAYLOAD_TOO_LARGE",
            "256 KiB",
        ),
        case(
            "unknown ticket",
            "GET",
            "/api/tickets/424242".into(),
            "",
            404,
            "NOT_FOUND",
            "ticket 424242",
        ),
        case(
            "non-numeric id",
            "GET",
            "/api/tickets/abc".into(),
            "",
            400,
            "VALIDATION",
            "id",
        ),
        case(
            "action on unknown ticket",
            "POST",
            "/api/tickets/424242/actions".into(),
            "{\"note\": \"x\"}",
            404,
            "NOT_FOUND",
            "ticket 424242",
        ),
        case(
            "empty action note",
            "POST",
            format!("/api/tickets/{tid}/actions"),
            "{\"note\": \"\"}",
            400,
            "VALIDATION",
            "note",
        ),
        case(
            "bad email",
            "POST",
            "/api/users".into(),
            &format!("{{\"name\": \"J\", \"email\": \"nope\", \"customer_id\": {cid}}}"),
            400,
            "VALIDATION",
            "email",
        ),
        case(
            "user of unknown customer",
            "POST",
            "/api/users".into(),
            "{\"name\": \"J\", \"email\": \"j@x.example\", \"customer_id\": 999}",
            404,
            "NOT_FOUND",
            "customer 999",
        ),
        case(
            "link to unknown ticket",
            "POST",
            format!("/api/chats/{chat_id}/link"),
            "{\"ticket_id\": 999}",
            404,
            "NOT_FOUND",
            "ticket 999",
        ),
        case(
            "limit too high",
            "GET",
            "/api/tickets?limit=5000".into(),
            "",
            400,
            "VALIDATION",
            "limit",
        ),
        case(
            "foreign cursor",
            "GET",
            "/api/tickets?cursor=bm9wZQ".into(),
            "",
            400,
            "VALIDATION",
            "cursor",
        ),
        case(
            "bad status filter",
            "GET",
            "/api/tickets?status=maybe".into(),
            "",
            400,
            "VALIDATION",
            "status",
        ),
        case(
            "main site of another customer",
            "PUT",
            format!("/api/customers/{cid}"),
            "{\"main_site_id\": 999}",
            400,
            "VALIDATION",
            "main_site_id",
        ),
    ];
    let mut wrong_ct = case(
        "wrong content type",
        "POST",
        "/api/tickets".into(),
        "summary=x",
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "application/json",
    );
    wrong_ct.content_type = "application/x-www-form-urlencoded";
    cases.push(wrong_ct);
    let mut missing = case(
        "missing token",
        "POST",
        "/api/customers".into(),
        "{\"name\": \"Intruder\"}",
        401,
        "UNAUTHORIZED",
        "missing",
    );
    missing.auth = Auth::Missing;
    cases.push(missing);
    let mut wrong = case(
        "wrong token",
        "POST",
        "/api/customers".into(),
        "{\"name\": \"Intruder\"}",
        401,
        "UNAUTHORIZED",
        "wrong",
    );
    wrong.auth = Auth::Wrong;
    cases.push(wrong);
    let bad_agent = case(
        "unknown acting agent",
        "POST",
        format!("/api/tickets/{tid}/close"),
        "{}",
        400,
        "VALIDATION",
        "X-Agent-Id",
    );
    cases.push(bad_agent);

    for c in cases {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = app.client.request(method, app.url(&c.path));
        if !c.body.is_empty() {
            req = req.header("content-type", c.content_type).body(c.body.clone());
        }
        req = match c.auth {
            Auth::Good => req.bearer_auth(TOKEN),
            Auth::Missing => req,
            Auth::Wrong => req.bearer_auth("not-the-token"),
        };
        if c.reason == "unknown acting agent" {
            req = req.header("X-Agent-Id", "777");
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, c.status, "{}: {body}", c.reason);
        assert_eq!(body["error"], c.code, "{}: {body}", c.reason);
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains(c.mentions),
            "{}: message {msg:?} should mention {:?}",
            c.reason,
            c.mentions
        );
    }

    assert_eq!(snapshot(&app).await, before, "refused requests changed stored data");
    let (_, ticket_after) = app.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(ticket_after, ticket_before);
}

/// A store whose every call fails as if the backend were down.
struct DownStore;

#[async_trait]
impl RecordStore for DownStore {
    async fn get(&self, _: &str, _: &str) -> Result<Option<Record>, StoreError> {
        Err(StoreError::Unavailable("backend down".into()))
    }
    async fn query(&self, _: &Query) -> Result<Page, StoreError> {
        Err(StoreError::Unavailable("backend down".into()))
    }
    async fn write(&self, _: Vec<WriteOp>) -> Result<(), StoreError> {
        Err(StoreError::Unavailable("backend down".into()))
    }
    async fn increment(&self, _: &str, _: &str, _: u64) -> Result<u64, StoreError> {
        Err(StoreError::Unavailable("backend down".into()))
    }
}

#[tokio::test]
async fn a_store_outage_answers_503_without_internal_detail() {
    use tower::ServiceExt;
    let app = spawn_app().await;
    let mut state = app.ctx.clone();
    state.store = deskbridge::store::Store::new(Arc::new(DownStore), state.clock.clone());
    let router = deskbridge::http::helpdesk_router(state);
    let req = http::Request::post("/api/customers")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(r#"{"name":"Acme"}"#))
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"], "STORE_UNAVAILABLE");
    assert!(
        !body["message"].as_str().unwrap().contains("backend down"),
        "cause leaked: {body}"
    );
}
