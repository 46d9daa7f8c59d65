//! The OpenAPI document against the routers: every route is in it (probed on the local
//! server's router, and no route is registered around it), both hosts serve it, and live
//! responses validate against the schemas it gives them.

use std::path::Path;

use axum::body::Body;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{desk_on, fixture_json, fixture_time, Desk};
use crate::helpers::{spawn_app, TOKEN};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// The local server's document (every route it serves), as JSON.
fn local_document() -> Value {
    serde_json::from_str(&deskbridge_local::openapi_json()).unwrap()
}

/// `(path, method)` of every operation of `doc`.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.push((path.clone(), m.to_string()));
            }
        }
    }
    out
}

/// A concrete path for a templated one (`{id}` → 1, other parameters → a word).
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(if &rest[start + 1..end] == "id" { "1" } else { "x" });
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether the router has a route for `(method, path)`: anything but the fallback's
/// "no such route" and axum's 405 counts.
async fn routed(router: &axum::Router, method: &str, path: &str) -> bool {
    let req = http::Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(concrete(path))
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    !(status == 405 || status == 404 && body["message"] == "no such route")
}

#[tokio::test]
async fn every_route_of_the_local_server_is_in_the_document_and_every_documented_one_answers() {
    let app = spawn_app().await;
    let outbox_dir = tempfile::tempdir().unwrap();
    let outbox =
        std::sync::Arc::new(deskbridge::adapters::outbox::OutboxMailer::new(outbox_dir.path().join("o")).unwrap());
    let router = deskbridge_local::local_router(app.ctx.clone(), outbox);
    let doc = local_document();
    let ops = operations(&doc);
    assert!(ops.len() >= 60, "{} operations", ops.len());
    for (path, method) in &ops {
        assert!(
            routed(&router, method, path).await,
            "{method} {path} is documented but not routed"
        );
    }
    // No method of a documented path is routed without being documented.
    for path in doc["paths"].as_object().unwrap().keys() {
        for m in METHODS {
            if !ops.contains(&(path.clone(), m.to_string())) {
                assert!(
                    !routed(&router, m, path).await,
                    "{m} {path} is routed but not documented"
                );
            }
        }
    }
    // A route outside the document answers as no route at all: the probe can tell.
    assert!(!routed(&router, "get", "/api/no-such-thing").await);
    assert!(!routed(&router, "delete", "/api/customers/{id}").await);
}

/// Every route is registered with `routes!(handler)`, which puts it in the document: a
/// plain axum `.route(` (or `route_service`, `nest`) in a router module would bypass it.
#[test]
fn no_route_is_registered_around_the_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for dir in ["shared/src/http", "infra/local/src"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            for bypass in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                assert!(
                    !line.contains(bypass),
                    "{}:{}: `{bypass}` registers a route outside the OpenAPI document; use `.routes(routes!(handler))`",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}

#[tokio::test]
async fn both_hosts_serve_the_document_without_a_token() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let served: Value = resp.json().await.unwrap();
    assert_eq!(
        served,
        local_document(),
        "the local server serves what `deskbridge openapi` prints"
    );
    assert!(served["paths"]["/local/mail"].is_object());
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(
        served["paths"]["/api/tickets"]["get"]["security"],
        json!([{"bearer": []}, {"personal_token": []}, {"session": [], "csrf": []}])
    );
    assert!(served["paths"]["/api/auth/login"]["post"]
        .get("security")
        .is_none_or(|s| s == &json!([{}])));
    assert!(served["paths"]["/datto/webhook"]["post"].get("security").is_none());
    assert!(served["paths"]["/api/tickets/{id}"]["get"]["responses"]["404"].is_object());

    // The helpdesk-api Lambda's router: every shared route, intake included, no local ones.
    let lambda = deskbridge::http::helpdesk_router(app.ctx.clone());
    let req = http::Request::get("/api/openapi.json").body(Body::empty()).unwrap();
    let resp = lambda.oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(doc["paths"]["/datto/webhook"]["post"].is_object());
    assert!(doc["paths"]["/beyondtrust/events/{token}"]["post"].is_object());
    assert!(doc["paths"]["/local/mail"].is_null());
    assert_eq!(doc, serde_json::to_value(deskbridge::http::document()).unwrap());
}

/// A validator for the JSON body `doc` gives `(method, path)` answering `status`.
fn response_validator(doc: &Value, method: &str, path: &str, status: u16) -> jsonschema::Validator {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "no schema for {method} {path} {status}");
    let mut root = schema.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["components"] = doc["components"].clone();
    jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"))
}

fn assert_matches(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let v = response_validator(doc, method, path, status);
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{body}");
}

async fn a_desk() -> (Desk, tempfile::TempDir) {
    let clock = std::sync::Arc::new(deskbridge::ports::ManualClock::new(fixture_time()));
    let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
    (desk_on(records, clock), dir)
}

#[tokio::test]
async fn live_responses_validate_against_their_schemas() {
    let doc = serde_json::to_value(deskbridge::http::document()).unwrap();
    let (d, _dir) = a_desk().await;
    d.configure_datto().await;
    let (s, customer) = d.post("/api/customers", json!({"name": "Contoso"})).await;
    assert_eq!(s, 201);
    assert_matches(&doc, "post", "/api/customers", 201, &customer);
    let (_, webhook) = d.webhook(&fixture_json("webhook-raised.json")).await;
    assert_matches(&doc, "post", "/datto/webhook", 200, &webhook);
    let path = format!("/api/tickets/{}", webhook["ticket_id"]);
    let (s, ticket) = d.get(&path).await;
    assert_eq!(s, 200);
    assert_matches(&doc, "get", "/api/tickets/{id}", 200, &ticket);
    let (_, tickets) = d.get("/api/tickets?limit=1").await;
    assert_matches(&doc, "get", "/api/tickets", 200, &tickets);
    let (_, alert) = d
        .get(&format!("/api/alerts/{}", webhook["alert_uid"].as_str().unwrap()))
        .await;
    assert_matches(&doc, "get", "/api/alerts/{uid}", 200, &alert);
    let (_, config) = d.get("/api/config/datto").await;
    assert_matches(&doc, "get", "/api/config/datto", 200, &config);
    let (_, setup) = d.get("/api/config/datto/webhook").await;
    assert_matches(&doc, "get", "/api/config/datto/webhook", 200, &setup);
    let (_, log) = d.get("/api/request-log").await;
    assert_matches(&doc, "get", "/api/request-log", 200, &log);
    let (s, missing) = d.get("/api/tickets/999999").await;
    assert_eq!(s, 404);
    assert_matches(&doc, "get", "/api/tickets/{id}", 404, &missing);
    let (s, refused) = d.post("/api/sync/datto", json!({})).await;
    assert_eq!(s, 409);
    assert_matches(&doc, "post", "/api/sync/datto", 409, &refused);

    // The schemas are strict enough to refuse a wrong answer.
    let mut wrong = ticket.clone();
    wrong["status"] = json!("pending");
    assert!(!response_validator(&doc, "get", "/api/tickets/{id}", 200).is_valid(&wrong));
    let mut wrong = customer.clone();
    wrong.as_object_mut().unwrap().remove("name");
    assert!(!response_validator(&doc, "post", "/api/customers", 201).is_valid(&wrong));
}
