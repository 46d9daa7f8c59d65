//! The DynamoDB adapter's retries, against DynamoDB Local behind a loopback proxy that
//! answers chosen requests with DynamoDB's own failure answers (throttling, 500, a
//! validation error) and forwards the rest. Throttling and 5xx are retried by the crate's
//! one policy, validation errors are not, and — the SDK's retries being off — every
//! attempt is exactly one request, so the policy alone bounds them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use deskbridge::adapters::dynamo::{self, DynamoRecordStore};
use deskbridge::ports::{Condition, Record, RecordStore, StoreError, WriteOp};
use deskbridge_tests::emulators;

/// A failure the proxy answers with instead of forwarding: status and DynamoDB error type.
type Fault = (u16, &'static str);

const THROTTLED: Fault = (400, "ProvisionedThroughputExceededException");
const THROTTLING: Fault = (400, "ThrottlingException");
const INTERNAL: Fault = (500, "InternalServerError");
const VALIDATION: Fault = (400, "ValidationException");

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    faults: Arc<Mutex<VecDeque<Fault>>>,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    fn fail_next(&self, n: usize, fault: Fault) {
        self.faults.lock().unwrap().extend(std::iter::repeat_n(fault, n));
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn reset(&self) {
        self.faults.lock().unwrap().clear();
        self.requests.store(0, Ordering::SeqCst);
    }
}

async fn relay(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> Response {
    p.requests.fetch_add(1, Ordering::SeqCst);
    if let Some((status, kind)) = p.faults.lock().unwrap().pop_front() {
        let body =
            format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected by the test proxy"}}"#);
        let status = StatusCode::from_u16(status).unwrap();
        return (status, [("content-type", "application/x-amz-json-1.0")], body).into_response();
    }
    let mut forward = p.http.post(&p.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.send().await.expect("DynamoDB Local answers");
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-amz-json-1.0")
        .to_string();
    let bytes = answer.bytes().await.expect("body");
    (status, [("content-type", content_type)], bytes).into_response()
}

/// A store on a fresh table whose requests pass through the proxy, and the proxy.
async fn rig() -> Option<(DynamoRecordStore, Proxy)> {
    let upstream = emulators::dynamodb()?;
    let direct = aws_sdk_dynamodb::Client::new(&emulators::aws_config(&upstream).await);
    let table = emulators::unique("deskbridge-retry");
    dynamo::create_table(&direct, &table).await.expect("create table");
    let proxy = Proxy {
        upstream,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        faults: Arc::default(),
        requests: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/", axum::routing::post(relay))
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = aws_sdk_dynamodb::Client::new(&emulators::aws_config(&url).await);
    Some((DynamoRecordStore::new(client, table), proxy))
}

fn put(sk: &str) -> WriteOp {
    WriteOp::Put {
        record: Record::new("p", sk, serde_json::json!({"sk": sk})),
        condition: Condition::NotExists,
    }
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_by_the_policy_and_validation_errors_are_not() {
    let Some((store, proxy)) = rig().await else {
        return;
    };
    store.write(vec![put("a")]).await.unwrap();

    // Two throttled answers, then the real one: one request per attempt.
    proxy.reset();
    proxy.fail_next(2, THROTTLED);
    assert!(store.get("p", "a").await.unwrap().is_some());
    assert_eq!(proxy.requests(), 3, "two retries, and no SDK retries inside them");

    // A storm of 500s: five attempts (one try and the schedule's four retries), then 503.
    proxy.reset();
    proxy.fail_next(10, INTERNAL);
    let err = store.get("p", "a").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(proxy.requests(), 5);

    // A validation error is the caller's mistake: not retried.
    proxy.reset();
    proxy.fail_next(1, VALIDATION);
    let err = store.increment("counter", "c", 1).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(proxy.requests(), 1);

    // Counters, queries and transactions go through the same policy.
    proxy.reset();
    proxy.fail_next(1, THROTTLING);
    assert_eq!(store.increment("counter", "c", 1).await.unwrap(), 1);
    proxy.fail_next(1, INTERNAL);
    let page = store
        .query(&deskbridge::ports::Query::partition(
            deskbridge::ports::Index::Primary,
            "p",
        ))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    proxy.fail_next(2, THROTTLED);
    store.write(vec![put("b"), put("c")]).await.unwrap();
    assert_eq!(proxy.requests(), 2 + 2 + 3);
    let both = (store.get("p", "b").await.unwrap(), store.get("p", "c").await.unwrap());
    assert!(both.0.is_some() && both.1.is_some(), "the transaction was applied once");
}
