//! The two BeyondTrust Lambdas driven through their handlers with the recorded events of
//! tests/events/: the API Gateway v2 end event (base64 form body) through the router the
//! `beyondtrust-event` function serves, and the SQS batch through the `session-import`
//! consumer the function runs.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use deskbridge::beyondtrust::connect::EVENT_TOKEN;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::fixtures;
use deskbridge::ports::{ManualClock, QueueName, SecretString};
use deskbridge::services::consumers::sqs_batch;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{desk_on, fixture_time, Desk};

/// The token inside the recorded event's path.
const RECORDED_TOKEN: &str = "btevt_4Qm9Zr2LxV7nK3pW";

fn events_file(name: &str) -> String {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn desk() -> (Desk, tempfile::TempDir) {
    let clock = Arc::new(ManualClock::new(fixture_time()));
    let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
    (desk_on(records, clock), dir)
}

async fn invoke(d: &Desk, event: &str) -> (u16, Value) {
    let req = lambda_http::request::from_str(event).expect("an API Gateway event");
    let resp = deskbridge::http::beyondtrust_router(d.ctx.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_recorded_end_event_is_accepted_and_enqueued_and_a_wrong_token_is_not() {
    let (d, _dir) = desk();
    let recorded = events_file("beyondtrust-event-session-end.json");
    // No token stored yet: refused, nothing enqueued.
    let (s, _) = invoke(&d, &recorded).await;
    assert_eq!(s, 401);
    assert!(d
        .ctx
        .queue
        .receive(QueueName::SessionImport, 10)
        .await
        .unwrap()
        .is_empty());
    d.ctx
        .secrets
        .put(EVENT_TOKEN, &SecretString::new(RECORDED_TOKEN))
        .await
        .unwrap();
    let (s, v) = invoke(&d, &recorded).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"], "enqueued");
    let msgs = d.ctx.queue.receive(QueueName::SessionImport, 10).await.unwrap();
    assert_eq!(msgs.len(), 1);
    let body: Value = serde_json::from_str(&msgs[0].body).unwrap();
    assert_eq!(body["lsid"], fixtures::LSID_T1042);
    // Both requests are logged at the same (manual) time, so find them by outcome.
    let log = d.request_log("&source=beyondtrust-event").await;
    assert_eq!(log.len(), 2);
    let enqueued: Vec<&Value> = log.iter().filter(|e| e["outcome"] == "enqueued").collect();
    assert_eq!(enqueued.len(), 1);
    assert_eq!(enqueued[0]["lsid"], fixtures::LSID_T1042);
    assert!(log.iter().any(|e| e["outcome"] == "unauthorized" && e["status"] == 401));
}

#[tokio::test]
async fn the_recorded_sqs_batch_imports_and_reports_failures_per_message() {
    let (d, _dir) = desk();
    let (_, fake) = FakeBeyondTrust::start().await;
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": fake.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = d
        .post(
            "/api/agents",
            json!({"name": "Alice", "email": "a@d.example", "bt_enabled": true, "bt_name": "Alice Martin"}),
        )
        .await;
    assert_eq!(s, 201);
    let recorded = events_file("session-import.json");
    // No report yet: the message fails and stays for a retry.
    let event: SqsEvent = serde_json::from_str(&recorded).unwrap();
    let id = event.records[0].message_id.clone().unwrap();
    let resp = sqs_batch(&d.ctx, QueueName::SessionImport, event).await;
    let failed: Vec<String> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec![id]);
    // With the report (ticket 1042 does not exist here): parked for manual linking.
    fake.set_report(fixtures::LSID_T1042, fixtures::REPORT);
    let event: SqsEvent = serde_json::from_str(&recorded).unwrap();
    let resp = sqs_batch(&d.ctx, QueueName::SessionImport, event).await;
    assert!(resp.batch_item_failures.is_empty());
    let (_, v) = d.get("/api/remote-sessions?linked=false").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["lsid"], fixtures::LSID_T1042);
}

/// A store whose writes of end-event records fail as if the backend went away.
struct EventWritesFail(Arc<dyn deskbridge::ports::RecordStore>);

#[async_trait::async_trait]
impl deskbridge::ports::RecordStore for EventWritesFail {
    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<deskbridge::ports::Record>, deskbridge::ports::StoreError> {
        self.0.get(pk, sk).await
    }
    async fn query(
        &self,
        q: &deskbridge::ports::Query,
    ) -> Result<deskbridge::ports::Page, deskbridge::ports::StoreError> {
        self.0.query(q).await
    }
    async fn write(&self, ops: Vec<deskbridge::ports::WriteOp>) -> Result<(), deskbridge::ports::StoreError> {
        if ops.iter().any(|o| o.key().0 == "bt-event") {
            return Err(deskbridge::ports::StoreError::Unavailable("connection reset".into()));
        }
        self.0.write(ops).await
    }
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, deskbridge::ports::StoreError> {
        self.0.increment(pk, sk, by).await
    }
}

/// No 200 without a durable record: a store failure answers 503 (BeyondTrust retries) and
/// enqueues nothing; the retry then goes through.
#[tokio::test]
async fn a_store_failure_answers_503_and_enqueues_nothing() {
    let clock = Arc::new(ManualClock::new(fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let healthy = desk_on(records.clone(), clock.clone());
    let mut failing_state = healthy.ctx.clone();
    failing_state.store = deskbridge::store::Store::new(Arc::new(EventWritesFail(records)), clock.clone());
    healthy
        .ctx
        .secrets
        .put(EVENT_TOKEN, &SecretString::new(RECORDED_TOKEN))
        .await
        .unwrap();
    let recorded = events_file("beyondtrust-event-session-end.json");
    let req = lambda_http::request::from_str(&recorded).unwrap();
    let resp = deskbridge::http::beyondtrust_router(failing_state)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert!(healthy
        .ctx
        .queue
        .receive(QueueName::SessionImport, 10)
        .await
        .unwrap()
        .is_empty());
    let (s, v) = invoke(&healthy, &recorded).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("enqueued")));
}
