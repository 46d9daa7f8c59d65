//! `CapacityMeter` on a DynamoDB Local client: each store call counted by operation, with
//! the units DynamoDB reported and the units AWS's pricing rules give the request.

use deskbridge::adapters::dynamo::{create_table, DynamoRecordStore};
use deskbridge::adapters::dynamo_capacity::CapacityMeter;
use deskbridge::ports::{Condition, Index, Query, Record, RecordStore, StoreError, WriteOp};
use deskbridge_tests::emulators;
use serde_json::json;

fn put(pk: &str, sk: &str, condition: Condition) -> WriteOp {
    WriteOp::Put {
        record: Record::new(pk, sk, json!({"n": sk})),
        condition,
    }
}

#[tokio::test]
async fn the_capacity_meter_counts_every_store_call_by_operation() {
    let Some(endpoint) = emulators::dynamodb() else { return };
    let meter = CapacityMeter::new();
    let config = aws_sdk_dynamodb::config::Builder::from(&emulators::aws_config(&endpoint).await)
        .interceptor(meter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = emulators::unique("capacity");
    create_table(&client, &table).await.expect("table");
    let store = DynamoRecordStore::new(client, table);
    let start = meter.snapshot();

    store
        .write(vec![put("p", "one", Condition::NotExists)])
        .await
        .expect("put");
    store
        .write(vec![
            put("p", "a", Condition::NotExists),
            put("p", "b", Condition::NotExists),
            put("p", "c", Condition::NotExists),
        ])
        .await
        .expect("transaction");
    store.get("p", "one").await.expect("get").expect("present");
    store
        .query(&Query::partition(Index::Primary, "p"))
        .await
        .expect("query");
    store.increment("counter", "n", 1).await.expect("increment");
    let refused = store.write(vec![put("p", "one", Condition::NotExists)]).await;
    assert!(
        matches!(refused, Err(StoreError::ConditionFailed { .. })),
        "{refused:?}"
    );

    let used = meter.snapshot().since(&start);
    let op = |name: &str| {
        *used
            .by_operation
            .get(name)
            .unwrap_or_else(|| panic!("{name} not counted: {used:?}"))
    };
    let put_item = op("PutItem");
    assert_eq!((put_item.calls, put_item.failed), (2, 1), "{put_item:?}");
    assert!(
        put_item.write_units >= 1.0 && put_item.read_units == 0.0,
        "{put_item:?}"
    );
    assert_eq!(put_item.modelled_write_units, 2.0, "AWS charges the refused put too");
    let tx = op("TransactWriteItems");
    assert_eq!((tx.calls, tx.failed), (1, 0));
    assert!(tx.write_units > 0.0, "{tx:?}");
    assert_eq!(tx.modelled_write_units, 6.0, "three small items, 2 units each: {tx:?}");
    let get = op("GetItem");
    assert!(
        get.calls == 1 && get.read_units > 0.0 && get.write_units == 0.0,
        "{get:?}"
    );
    let query = op("Query");
    assert!(query.calls == 1 && query.read_units > 0.0, "{query:?}");
    let update = op("UpdateItem");
    assert!(update.calls == 1 && update.write_units >= 1.0, "{update:?}");
    assert_eq!(update.modelled_write_units, 1.0);
    assert_eq!(used.calls(), 6);
    assert!(meter.snapshot().since(&meter.snapshot()).by_operation.is_empty());
}
