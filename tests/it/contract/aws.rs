//! The `RecordStore` and `Queue` contracts stamped for the AWS adapters: DynamoDB (a fresh
//! table per test in DynamoDB Local) and SQS (a fresh queue set with DLQs per test in
//! moto), plus what only those adapters have: the item layout template.yaml relies on and
//! the behaviour when the service is unreachable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use deskbridge::adapters::dynamo::{self, DynamoRecordStore};
use deskbridge::adapters::sqs::{create_queues, SqsQueue};
use deskbridge::ports::{Condition, Record, RecordStore, StoreError, WriteOp};
use deskbridge_tests::emulators;

use super::{QueueFixture, StoreFixture};

/// Visibility timeout of the test queues; no case waits for it (they release instead).
const VISIBILITY: Duration = Duration::from_secs(30);

async fn dynamodb_client() -> Option<aws_sdk_dynamodb::Client> {
    let endpoint = emulators::dynamodb()?;
    Some(aws_sdk_dynamodb::Client::new(&emulators::aws_config(&endpoint).await))
}

/// A store on a table of its own.
async fn dynamodb_store() -> Option<DynamoRecordStore> {
    let client = dynamodb_client().await?;
    let table = emulators::unique("deskbridge");
    dynamo::create_table(&client, &table).await.expect("create table");
    Some(DynamoRecordStore::new(client, table))
}

async fn dynamodb() -> Option<StoreFixture> {
    let store = dynamodb_store().await?;
    Some(StoreFixture::new(Arc::new(store), chrono::Utc::now().timestamp()))
}

async fn sqs() -> Option<QueueFixture> {
    let endpoint = emulators::moto()?;
    let client = aws_sdk_sqs::Client::new(&emulators::aws_config(&endpoint).await);
    let prefix = format!("{}-", emulators::unique("deskbridge"));
    let queues = create_queues(&client, &prefix, VISIBILITY)
        .await
        .expect("create queues");
    Some(QueueFixture::new(Arc::new(SqsQueue::new(client, queues))))
}

super::records_suite!(dynamodb, dynamodb());
super::queue_suite!(sqs, sqs());

/// Items carry the attributes template.yaml and the TTL setting name: `pk`, `sk`,
/// `version` (N), `data` (JSON text), `gsi1pk`/`gsi1sk` only when set, `expires_at` (N).
#[tokio::test]
async fn dynamodb_items_use_the_documented_attribute_layout() {
    let Some(store) = dynamodb_store().await else {
        return;
    };
    let mut indexed = Record::new("p", "indexed", serde_json::json!({"a": 1}));
    indexed.version = 3;
    indexed.gsi1 = Some(("g".into(), "h".into()));
    indexed.expires_at = Some(4_102_444_800);
    let plain = Record::new("p", "plain", serde_json::json!(null));
    store
        .write(vec![
            WriteOp::Put {
                record: indexed,
                condition: Condition::NotExists,
            },
            WriteOp::Put {
                record: plain,
                condition: Condition::NotExists,
            },
        ])
        .await
        .expect("write");

    let client = dynamodb_client().await.expect("configured above");
    let raw = |sk: &'static str| {
        let client = client.clone();
        let table = store.table().to_string();
        async move {
            client
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S("p".into()))
                .key("sk", AttributeValue::S(sk.into()))
                .send()
                .await
                .expect("get item")
                .item
                .expect("item exists")
        }
    };
    let item = raw("indexed").await;
    assert_eq!(item["version"], AttributeValue::N("3".into()));
    assert_eq!(item["data"], AttributeValue::S(r#"{"a":1}"#.into()));
    assert_eq!(item["gsi1pk"], AttributeValue::S("g".into()));
    assert_eq!(item["gsi1sk"], AttributeValue::S("h".into()));
    assert_eq!(item["expires_at"], AttributeValue::N("4102444800".into()));

    let item = raw("plain").await;
    let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["data", "pk", "sk", "version"],
        "unset index key or expiry was written"
    );
}

/// `create_table` on an existing table leaves it (and its items) alone, so local
/// bootstrap can run it on every start.
#[tokio::test]
async fn dynamodb_create_table_twice_keeps_the_table() {
    let Some(store) = dynamodb_store().await else {
        return;
    };
    let record = Record::new("p", "s", serde_json::json!({"kept": true}));
    store
        .write(vec![WriteOp::Put {
            record: record.clone(),
            condition: Condition::NotExists,
        }])
        .await
        .expect("write");
    let client = dynamodb_client().await.expect("configured above");

    dynamo::create_table(&client, store.table())
        .await
        .expect("second create");

    assert_eq!(store.get("p", "s").await.expect("get"), Some(record));
}

/// A DynamoDB that cannot be reached makes writes and reads fail fast with
/// `Unavailable` (which the HTTP layer turns into 503), not hang or report a conflict.
#[tokio::test]
async fn unreachable_dynamodb_is_unavailable_quickly() {
    // Nothing listens on port 1; the connection is refused at once.
    let sdk = emulators::aws_config("http://127.0.0.1:1").await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .build();
    let store = DynamoRecordStore::new(aws_sdk_dynamodb::Client::from_conf(config), "unreachable");
    let started = Instant::now();

    let write = store
        .write(vec![WriteOp::Put {
            record: Record::new("p", "s", serde_json::json!({})),
            condition: Condition::NotExists,
        }])
        .await;
    let get = store.get("p", "s").await;
    let increment = store.increment("counter", "tickets", 1).await;

    assert!(matches!(write, Err(StoreError::Unavailable(_))), "write: {write:?}");
    assert!(matches!(get, Err(StoreError::Unavailable(_))), "get: {get:?}");
    assert!(
        matches!(increment, Err(StoreError::Unavailable(_))),
        "increment: {increment:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Budget counters carry `expires_at`, so the table's TTL removes old slices.
#[tokio::test]
async fn dynamodb_expiring_counters_carry_the_ttl_attribute() {
    let Some(store) = dynamodb_store().await else {
        return;
    };
    assert_eq!(
        store
            .increment_expiring("datto-budget", "1795425240", 1, 1_795_428_840)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .increment_expiring("datto-budget", "1795425240", 1, 1_795_428_840)
            .await
            .unwrap(),
        2
    );
    let client = dynamodb_client().await.expect("configured above");
    let item = client
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S("datto-budget".into()))
        .key("sk", AttributeValue::S("1795425240".into()))
        .send()
        .await
        .unwrap()
        .item
        .expect("counter item");
    assert_eq!(
        item.get("expires_at").and_then(|v| v.as_n().ok()).map(String::as_str),
        Some("1795428840")
    );
    // A plain increment leaves no expiry.
    store.increment("counter", "ticket", 1).await.unwrap();
}
