//! The `RecordStore` contract (see the doc comments in `deskbridge::ports`). Every case
//! takes the store under test, works only under partition keys made unique by
//! `emulators::unique`, and so may share one backend (one SQLite file, one DynamoDB table)
//! with the other cases, even concurrently. Cases only ever use conditions, never rely on
//! a clean table.

use std::collections::BTreeSet;

use std::sync::Arc;

use deskbridge::ports::{
    Condition, CounterTake, Cursor, Index, NumberedOps, Query, Record, RecordStore, StoreError, WriteOp,
};
use deskbridge_tests::emulators::unique;
use futures::future::join_all;
use serde_json::json;

fn record(pk: &str, sk: &str, data: serde_json::Value) -> Record {
    Record::new(pk, sk, data)
}

fn put(record: Record, condition: Condition) -> WriteOp {
    WriteOp::Put { record, condition }
}

fn check(pk: &str, sk: &str, condition: Condition) -> WriteOp {
    WriteOp::Check {
        pk: pk.to_string(),
        sk: sk.to_string(),
        condition,
    }
}

fn delete(pk: &str, sk: &str, condition: Condition) -> WriteOp {
    WriteOp::Delete {
        pk: pk.to_string(),
        sk: sk.to_string(),
        condition,
    }
}

async fn get(store: &dyn RecordStore, pk: &str, sk: &str) -> Option<Record> {
    store.get(pk, sk).await.expect("get")
}

async fn write_ok(store: &dyn RecordStore, ops: Vec<WriteOp>) {
    store.write(ops).await.expect("write");
}

/// Assert that `result` is `ConditionFailed` naming exactly `(pk, sk)`.
#[track_caller]
fn assert_condition_failed(result: Result<(), StoreError>, pk: &str, sk: &str) {
    match result {
        Err(StoreError::ConditionFailed { pk: p, sk: s }) => {
            assert_eq!(
                (p.as_str(), s.as_str()),
                (pk, sk),
                "ConditionFailed names the wrong item"
            )
        }
        other => panic!("expected ConditionFailed on {pk}/{sk}, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Invalid(_))),
        "expected Invalid, got {result:?}"
    );
}

/// Follow `next` from `query` to the end; every page must respect the limit. Fails if the
/// walk does not end within a generous number of pages (a cursor that never advances).
async fn walk(store: &dyn RecordStore, query: &Query) -> Vec<Record> {
    let mut q = query.clone();
    let mut all = Vec::new();
    for _ in 0..200 {
        let page = store.query(&q).await.expect("query");
        assert!(
            page.items.len() <= q.limit,
            "page of {} items over limit {}",
            page.items.len(),
            q.limit
        );
        all.extend(page.items);
        match page.next {
            None => return all,
            Some(next) => q.start_after = Some(next),
        }
    }
    panic!("walk did not end after 200 pages; the cursor does not advance");
}

fn sks(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.sk.clone()).collect()
}

/// `get` of an item never written is `None`.
pub async fn get_of_an_absent_item_is_none(store: &dyn RecordStore) {
    let pk = unique("absent");
    assert_eq!(get(store, &pk, "00000000000000000001").await, None);
}

/// A put record reads back field for field: version as given, nested JSON, gsi1 key,
/// expiry; an `Always` put replaces it whole.
pub async fn put_record_reads_back_with_version_json_index_key_and_expiry(store: &dyn RecordStore) {
    let pk = unique("roundtrip");
    let data = json!({
        "summary": "Disk C: 95% full — ünïcode ✓",
        "nested": {"list": [1, 2.5, null, true, "x"], "empty": {}},
        "n": 18446744073709551615u64,
    });
    let far_future = 4_102_444_800; // 2100-01-01
    let mut r = record(&pk, "00000000000000000007", data);
    r.version = 42;
    r.gsi1 = Some((format!("{pk}#by-status"), "open#00000000000000000007".to_string()));
    r.expires_at = Some(far_future);
    write_ok(store, vec![put(r.clone(), Condition::NotExists)]).await;
    assert_eq!(get(store, &pk, &r.sk).await, Some(r.clone()));

    let mut replaced = record(&pk, &r.sk, json!({"only": "this"}));
    replaced.version = 43;
    write_ok(store, vec![put(replaced.clone(), Condition::Always)]).await;
    assert_eq!(
        get(store, &pk, &r.sk).await,
        Some(replaced),
        "an Always put replaces the whole item, dropping the old gsi1 and expiry"
    );
}

/// `NotExists` refuses an existing item, names it, and leaves it as it was.
pub async fn not_exists_refuses_an_existing_item_and_leaves_it_unchanged(store: &dyn RecordStore) {
    let pk = unique("notexists");
    let original = record(&pk, "a", json!({"v": "original"}));
    write_ok(store, vec![put(original.clone(), Condition::NotExists)]).await;

    let mut intruder = record(&pk, "a", json!({"v": "intruder"}));
    intruder.version = 9;
    assert_condition_failed(store.write(vec![put(intruder, Condition::NotExists)]).await, &pk, "a");
    assert_eq!(get(store, &pk, "a").await, Some(original));
}

/// When the third condition of a three-operation write fails, neither of the first two
/// operations is applied (no puts, no deletes) and the error names the third item.
pub async fn a_failed_condition_writes_none_of_the_transaction(store: &dyn RecordStore) {
    let pk = unique("atomic");
    let doomed = record(&pk, "to-delete", json!({"keep": "me"}));
    let existing = record(&pk, "existing", json!({}));
    write_ok(
        store,
        vec![
            put(doomed.clone(), Condition::Always),
            put(existing.clone(), Condition::Always),
        ],
    )
    .await;

    let result = store
        .write(vec![
            put(record(&pk, "new-1", json!({"n": 1})), Condition::NotExists),
            delete(&pk, "to-delete", Condition::Exists),
            put(record(&pk, "existing", json!({"n": 3})), Condition::NotExists),
        ])
        .await;
    assert_condition_failed(result, &pk, "existing");
    assert_eq!(get(store, &pk, "new-1").await, None, "op 1 was written");
    assert_eq!(get(store, &pk, "to-delete").await, Some(doomed), "op 2 was applied");
    assert_eq!(get(store, &pk, "existing").await, Some(existing));

    // The failing op in the middle: the error names it, not a later passing one.
    let result = store
        .write(vec![
            put(record(&pk, "new-2", json!({})), Condition::Always),
            check(&pk, "missing", Condition::Exists),
            put(record(&pk, "new-3", json!({})), Condition::NotExists),
        ])
        .await;
    assert_condition_failed(result, &pk, "missing");
    assert_eq!(get(store, &pk, "new-2").await, None);
    assert_eq!(get(store, &pk, "new-3").await, None);

    // And the same operations without the failing one all apply together.
    write_ok(
        store,
        vec![
            put(record(&pk, "new-1", json!({"n": 1})), Condition::NotExists),
            delete(&pk, "to-delete", Condition::Exists),
        ],
    )
    .await;
    assert!(get(store, &pk, "new-1").await.is_some());
    assert_eq!(get(store, &pk, "to-delete").await, None);
}

/// `VersionIs(v)` holds only for an existing item at exactly version `v`.
pub async fn version_is_holds_only_on_the_exact_version(store: &dyn RecordStore) {
    let pk = unique("version");
    let v1 = record(&pk, "a", json!({"rev": 1}));
    write_ok(store, vec![put(v1.clone(), Condition::NotExists)]).await;

    let mut v2 = record(&pk, "a", json!({"rev": 2}));
    v2.version = 2;
    for wrong in [0, 2, 3, u64::from(u32::MAX) + 1] {
        assert_condition_failed(
            store.write(vec![put(v2.clone(), Condition::VersionIs(wrong))]).await,
            &pk,
            "a",
        );
    }
    assert_eq!(get(store, &pk, "a").await, Some(v1));

    write_ok(store, vec![put(v2.clone(), Condition::VersionIs(1))]).await;
    assert_eq!(get(store, &pk, "a").await, Some(v2.clone()));
    // The old version no longer matches: the loser of a read-modify-write race fails.
    assert_condition_failed(
        store
            .write(vec![put(
                record(&pk, "a", json!({"rev": "lost"})),
                Condition::VersionIs(1),
            )])
            .await,
        &pk,
        "a",
    );
    assert_eq!(get(store, &pk, "a").await, Some(v2));

    // An absent item has no version at all.
    assert_condition_failed(
        store
            .write(vec![put(record(&pk, "b", json!({})), Condition::VersionIs(1))])
            .await,
        &pk,
        "b",
    );
    assert_eq!(get(store, &pk, "b").await, None);
}

/// A `Check` writes nothing and only gates the transaction: `Exists` needs the item,
/// `NotExists` its absence, `VersionIs` its version.
pub async fn check_gates_the_transaction_without_writing(store: &dyn RecordStore) {
    let pk = unique("check");
    let mut parent = record(&pk, "parent", json!({"p": true}));
    parent.version = 5;
    write_ok(store, vec![put(parent.clone(), Condition::Always)]).await;

    write_ok(
        store,
        vec![
            check(&pk, "parent", Condition::Exists),
            check(&pk, "parent-less", Condition::NotExists),
            put(record(&pk, "child-1", json!({})), Condition::NotExists),
        ],
    )
    .await;
    assert!(get(store, &pk, "child-1").await.is_some());
    assert_eq!(
        get(store, &pk, "parent").await,
        Some(parent.clone()),
        "a Check changed the item"
    );
    assert_eq!(get(store, &pk, "parent-less").await, None, "a Check created the item");

    write_ok(
        store,
        vec![
            check(&pk, "parent", Condition::VersionIs(5)),
            put(record(&pk, "child-2", json!({})), Condition::NotExists),
        ],
    )
    .await;
    assert!(get(store, &pk, "child-2").await.is_some());

    let refused = [
        (check(&pk, "orphan", Condition::Exists), "orphan"),
        (check(&pk, "parent", Condition::NotExists), "parent"),
        (check(&pk, "parent", Condition::VersionIs(4)), "parent"),
    ];
    for (gate, gated_sk) in refused {
        let result = store
            .write(vec![put(record(&pk, "child-3", json!({})), Condition::NotExists), gate])
            .await;
        assert_condition_failed(result, &pk, gated_sk);
        assert_eq!(
            get(store, &pk, "child-3").await,
            None,
            "write went through a failed Check"
        );
    }
    assert_eq!(get(store, &pk, "parent").await, Some(parent));
}

/// A `Delete` removes the item only when its condition holds; an unconditional delete of
/// an absent item is fine.
pub async fn delete_removes_the_item_only_when_its_condition_holds(store: &dyn RecordStore) {
    let pk = unique("delete");
    let mut r = record(&pk, "a", json!({}));
    r.version = 3;
    write_ok(store, vec![put(r.clone(), Condition::Always)]).await;

    assert_condition_failed(
        store.write(vec![delete(&pk, "a", Condition::VersionIs(2))]).await,
        &pk,
        "a",
    );
    assert_condition_failed(
        store.write(vec![delete(&pk, "a", Condition::NotExists)]).await,
        &pk,
        "a",
    );
    assert_eq!(get(store, &pk, "a").await, Some(r));

    write_ok(store, vec![delete(&pk, "a", Condition::VersionIs(3))]).await;
    assert_eq!(get(store, &pk, "a").await, None);

    assert_condition_failed(store.write(vec![delete(&pk, "a", Condition::Exists)]).await, &pk, "a");
    write_ok(store, vec![delete(&pk, "a", Condition::Always)]).await;
    write_ok(store, vec![delete(&pk, "never", Condition::NotExists)]).await;

    // Deleted means absent: NotExists holds again.
    write_ok(
        store,
        vec![put(record(&pk, "a", json!({"again": 1})), Condition::NotExists)],
    )
    .await;
    assert!(get(store, &pk, "a").await.is_some());
}

/// A primary walk lists one partition in sort-key order, ascending or descending, and
/// `sk_prefix` keeps only sort keys starting with it.
pub async fn primary_query_lists_one_partition_in_sort_key_order(store: &dyn RecordStore) {
    let pk = unique("primary");
    let other = unique("primary-other");
    // Written out of order, with keys that sort differently as numbers and as text.
    let keys = ["b#2", "a#10", "b#1", "a#2", "a#1", "b", "c", "a"];
    let mut ops: Vec<WriteOp> = keys
        .iter()
        .map(|sk| put(record(&pk, sk, json!({"sk": sk})), Condition::NotExists))
        .collect();
    ops.push(put(record(&other, "a#3", json!({})), Condition::NotExists));
    write_ok(store, ops).await;

    let mut expected: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    expected.sort();
    let all = walk(store, &Query::partition(Index::Primary, &pk)).await;
    assert_eq!(sks(&all), expected);
    assert!(
        all.iter().all(|r| r.pk == pk),
        "a record of another partition came back"
    );
    assert!(all.iter().all(|r| r.data == json!({"sk": r.sk})));

    let mut q = Query::partition(Index::Primary, &pk);
    q.descending = true;
    expected.reverse();
    assert_eq!(sks(&walk(store, &q).await), expected);

    let mut q = Query::partition(Index::Primary, &pk);
    q.sk_prefix = Some("a#".into());
    assert_eq!(sks(&walk(store, &q).await), ["a#1", "a#10", "a#2"]);
    q.descending = true;
    assert_eq!(sks(&walk(store, &q).await), ["a#2", "a#10", "a#1"]);
    q.sk_prefix = Some("b".into());
    assert_eq!(sks(&walk(store, &q).await), ["b#2", "b#1", "b"]);
    q.sk_prefix = Some("z".into());
    let page = store.query(&q).await.expect("query");
    assert!(
        page.items.is_empty() && page.next.is_none(),
        "prefix matching nothing: {page:?}"
    );

    let empty = store
        .query(&Query::partition(Index::Primary, unique("primary-empty")))
        .await
        .expect("query");
    assert!(empty.items.is_empty() && empty.next.is_none());
}

/// Paging a primary walk (25 records, 7 a page) visits every record exactly once, in
/// order, both ways, with and without a prefix.
pub async fn primary_query_pages_visit_every_record_exactly_once(store: &dyn RecordStore) {
    let pk = unique("paging");
    let ids: Vec<String> = (1..=25).map(|i| format!("item#{i:020}")).collect();
    let mut ops: Vec<WriteOp> = ids
        .iter()
        .map(|sk| put(record(&pk, sk, json!({})), Condition::NotExists))
        .collect();
    ops.push(put(record(&pk, "other#1", json!({})), Condition::NotExists));
    write_ok(store, ops).await;

    for descending in [false, true] {
        let mut q = Query::partition(Index::Primary, &pk);
        q.limit = 7;
        q.descending = descending;
        q.sk_prefix = Some("item#".into());
        let mut pages = 0;
        let mut seen = Vec::new();
        loop {
            let page = store.query(&q).await.expect("query");
            pages += 1;
            assert!(page.items.len() <= 7);
            seen.extend(page.items.iter().map(|r| r.sk.clone()));
            match page.next {
                Some(next) => q.start_after = Some(next),
                None => break,
            }
            assert!(pages < 20, "paging does not end");
        }
        let mut expected = ids.clone();
        if descending {
            expected.reverse();
        }
        assert_eq!(seen, expected, "descending={descending}");
        assert!(
            (4..=5).contains(&pages),
            "25 records at 7 a page take 4 pages (5 if the last full page cannot tell); took {pages}"
        );

        // Without the prefix the walk covers the other record too.
        let mut q = Query::partition(Index::Primary, &pk);
        q.limit = 7;
        q.descending = descending;
        assert_eq!(walk(store, &q).await.len(), 26);
    }

    // A limit of 1 still walks everything once.
    let mut q = Query::partition(Index::Primary, &pk);
    q.limit = 1;
    let all = walk(store, &q).await;
    let unique_sks: BTreeSet<String> = sks(&all).into_iter().collect();
    assert_eq!((all.len(), unique_sks.len()), (26, 26));
}

/// `start_after` may be the key of any record of the partition, not only a `next`.
pub async fn query_continues_after_any_record_key(store: &dyn RecordStore) {
    let pk = unique("after");
    let keys = ["k1", "k2", "k3", "k4", "k5"];
    write_ok(
        store,
        keys.iter()
            .map(|sk| put(record(&pk, sk, json!({})), Condition::NotExists))
            .collect(),
    )
    .await;

    let cursor = Cursor {
        pk: pk.clone(),
        sk: "k2".into(),
        gsi1: None,
    };
    let mut q = Query::partition(Index::Primary, &pk);
    q.start_after = Some(cursor.clone());
    assert_eq!(sks(&walk(store, &q).await), ["k3", "k4", "k5"]);
    q.descending = true;
    assert_eq!(sks(&walk(store, &q).await), ["k1"]);

    let mut q = Query::partition(Index::Primary, &pk);
    q.start_after = Some(Cursor {
        sk: "k5".into(),
        ..cursor
    });
    let page = store.query(&q).await.expect("query");
    assert!(page.items.is_empty() && page.next.is_none(), "{page:?}");
}

/// The secondary index walk lists records of one index partition by `gsi1sk` (across
/// primary partitions), honours `sk_prefix` on `gsi1sk` and descending order, leaves out
/// records without an index key, and pages through equal `gsi1sk`s exactly once.
pub async fn gsi1_query_orders_by_index_key_and_pages_exactly_once(store: &dyn RecordStore) {
    let base = unique("gsi");
    let gpk = format!("{base}#status");
    let other_gpk = format!("{base}#other");
    // (pk, sk, gsi1sk): three primary partitions, several items sharing one gsi1sk.
    let rows = [
        ("p1", "s1", "open#0003"),
        ("p2", "s1", "open#0001"),
        ("p3", "s9", "closed#0002"),
        ("p1", "s2", "open#0002"),
        ("p2", "s2", "open#0002"),
        ("p3", "s1", "open#0002"),
        ("p3", "s2", "closed#0001"),
        ("p1", "s3", "open#0004"),
    ];
    let mut ops = Vec::new();
    for (p, s, g) in rows {
        let mut r = record(&format!("{base}#{p}"), s, json!({"g": g}));
        r.gsi1 = Some((gpk.clone(), g.to_string()));
        ops.push(put(r, Condition::NotExists));
    }
    let mut elsewhere = record(&format!("{base}#p1"), "s4", json!({}));
    elsewhere.gsi1 = Some((other_gpk.clone(), "open#0001".into()));
    ops.push(put(elsewhere, Condition::NotExists));
    ops.push(put(
        record(&format!("{base}#p1"), "s5", json!({})),
        Condition::NotExists,
    ));
    write_ok(store, ops).await;

    let keys = |records: &[Record]| -> Vec<(String, String, String)> {
        records
            .iter()
            .map(|r| {
                let (g, gs) = r.gsi1.clone().expect("index walk returns records with their index key");
                assert_eq!(g, gpk, "record of another index partition");
                (gs, r.pk.clone(), r.sk.clone())
            })
            .collect()
    };
    let gsi1sks = |records: &[Record]| -> Vec<String> { keys(records).into_iter().map(|k| k.0).collect() };
    let mut expected_sorted: Vec<String> = rows.iter().map(|r| r.2.to_string()).collect();
    expected_sorted.sort();

    let all = walk(store, &Query::partition(Index::Gsi1, &gpk)).await;
    assert_eq!(gsi1sks(&all), expected_sorted);
    assert!(all.iter().all(|r| r.data == json!({"g": r.gsi1.as_ref().unwrap().1})));

    let mut q = Query::partition(Index::Gsi1, &gpk);
    q.descending = true;
    let mut desc = expected_sorted.clone();
    desc.reverse();
    assert_eq!(gsi1sks(&walk(store, &q).await), desc);

    let mut q = Query::partition(Index::Gsi1, &gpk);
    q.sk_prefix = Some("closed#".into());
    assert_eq!(gsi1sks(&walk(store, &q).await), ["closed#0001", "closed#0002"]);

    // Paging, both directions, with a page boundary inside the run of equal gsi1sks.
    for (descending, limit) in [(false, 2), (false, 3), (true, 2), (true, 1)] {
        let mut q = Query::partition(Index::Gsi1, &gpk);
        q.sk_prefix = Some("open#".into());
        q.limit = limit;
        q.descending = descending;
        let got = keys(&walk(store, &q).await);
        let distinct: BTreeSet<_> = got.iter().cloned().collect();
        assert_eq!(
            (got.len(), distinct.len()),
            (6, 6),
            "descending={descending} limit={limit}: {got:?}"
        );
        let order: Vec<&String> = got.iter().map(|k| &k.0).collect();
        let mut sorted = order.clone();
        sorted.sort();
        if descending {
            sorted.reverse();
        }
        assert_eq!(order, sorted, "descending={descending} limit={limit}");
    }
}

/// A cursor that is no position of the walked partition is refused as `Invalid`.
pub async fn query_refuses_a_cursor_from_another_partition(store: &dyn RecordStore) {
    let pk = unique("foreign");
    let other = unique("foreign-other");
    write_ok(store, vec![put(record(&pk, "a", json!({})), Condition::NotExists)]).await;
    let mut q = Query::partition(Index::Primary, &pk);
    q.start_after = Some(Cursor {
        pk: other.clone(),
        sk: "a".into(),
        gsi1: None,
    });
    assert_invalid(store.query(&q).await);

    let mut q = Query::partition(Index::Gsi1, format!("{pk}#idx"));
    q.start_after = Some(Cursor {
        pk: pk.clone(),
        sk: "a".into(),
        gsi1: Some((format!("{other}#idx"), "x".into())),
    });
    assert_invalid(store.query(&q).await);
}

/// A counter starts at 0, so the first increment by one returns 1; `by` adds that much;
/// counters are independent per key and unrelated to records at the same key.
pub async fn increment_starts_at_one_and_adds_by(store: &dyn RecordStore) {
    let pk = unique("counter");
    assert_eq!(store.increment(&pk, "tickets", 1).await.expect("increment"), 1);
    assert_eq!(store.increment(&pk, "tickets", 1).await.expect("increment"), 2);
    assert_eq!(store.increment(&pk, "tickets", 5).await.expect("increment"), 7);
    assert_eq!(store.increment(&pk, "chats", 1).await.expect("increment"), 1);
    assert_eq!(store.increment(&pk, "tickets", 1).await.expect("increment"), 8);
}

/// Twenty concurrent increments of one counter return 1..=20, each exactly once.
pub async fn concurrent_increments_return_distinct_consecutive_values(store: &dyn RecordStore) {
    let pk = unique("counter-race");
    let results = join_all((0..20).map(|_| store.increment(&pk, "ids", 1))).await;
    let mut values: Vec<u64> = results.into_iter().map(|r| r.expect("increment")).collect();
    values.sort_unstable();
    assert_eq!(values, (1..=20).collect::<Vec<u64>>());
    assert_eq!(store.increment(&pk, "ids", 1).await.expect("increment"), 21);
}

/// Of twenty concurrent `NotExists` puts of one new key exactly one succeeds; every other
/// one fails with `ConditionFailed` on that key, and the stored record is the winner's.
pub async fn concurrent_creates_of_one_key_let_exactly_one_win(store: &dyn RecordStore) {
    let pk = unique("create-race");
    let results = join_all((0..20).map(|i| {
        store.write(vec![put(
            record(&pk, "the-one", json!({"writer": i})),
            Condition::NotExists,
        )])
    }))
    .await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}; results: {results:?}");
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_condition_failed(r, &pk, "the-one");
    }
    let stored = get(store, &pk, "the-one").await.expect("the winner's record");
    assert_eq!(stored.data, json!({"writer": winners[0]}));
}

/// Of ten concurrent writes conditioned on the same version of one item exactly one
/// succeeds (even when the store commits concurrent writers together); the others fail
/// with `ConditionFailed` on that item, and the stored record is the winner's.
pub async fn concurrent_updates_of_one_version_let_exactly_one_win(store: &dyn RecordStore) {
    let pk = unique("update-race");
    write_ok(
        store,
        vec![put(record(&pk, "item", json!({"writer": null})), Condition::NotExists)],
    )
    .await;
    let results = join_all((0..10).map(|i| {
        let mut next = record(&pk, "item", json!({"writer": i}));
        next.version = 2;
        store.write(vec![put(next, Condition::VersionIs(1))])
    }))
    .await;
    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}; results: {results:?}");
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_condition_failed(r, &pk, "item");
    }
    let stored = get(store, &pk, "item").await.expect("the item");
    assert_eq!((stored.version, stored.data), (2, json!({"writer": winners[0]})));
}

/// Ten concurrent transactions each claim one shared item and write one item of their
/// own: exactly one transaction is applied whole; every loser wrote neither item.
pub async fn concurrent_claims_apply_exactly_one_transaction_whole(store: &dyn RecordStore) {
    let pk = unique("claim-race");
    let results = join_all((0..10).map(|i| {
        store.write(vec![
            put(
                record(&pk, &format!("own#{i}"), json!({"writer": i})),
                Condition::NotExists,
            ),
            put(record(&pk, "shared", json!({"writer": i})), Condition::NotExists),
        ])
    }))
    .await;
    let winners: Vec<usize> = (0..results.len()).filter(|i| results[*i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "winners: {winners:?}; results: {results:?}");
    for r in results.into_iter().filter(|r| r.is_err()) {
        assert_condition_failed(r, &pk, "shared");
    }
    let mut q = Query::partition(Index::Primary, &pk);
    q.sk_prefix = Some("own#".into());
    assert_eq!(sks(&walk(store, &q).await), [format!("own#{}", winners[0])]);
    let shared = get(store, &pk, "shared").await.expect("the shared item");
    assert_eq!(shared.data, json!({"writer": winners[0]}));
}

/// Among twenty concurrent writers, the ten whose check fails get `ConditionFailed` and
/// write nothing, while the ten others are all applied: one caller's failed condition
/// never fails or undoes another caller's write.
pub async fn a_failed_condition_fails_only_its_own_concurrent_writer(store: &dyn RecordStore) {
    let pk = unique("mixed-batch");
    write_ok(store, vec![put(record(&pk, "exists", json!({})), Condition::NotExists)]).await;
    let results = join_all((0..20).map(|i| {
        let mut ops = vec![put(
            record(&pk, &format!("w#{i:02}"), json!({"i": i})),
            Condition::NotExists,
        )];
        if i % 2 == 1 {
            ops.push(check(&pk, "exists", Condition::NotExists));
        }
        store.write(ops)
    }))
    .await;
    for (i, r) in results.into_iter().enumerate() {
        if i % 2 == 1 {
            assert_condition_failed(r, &pk, "exists");
        } else {
            r.unwrap_or_else(|e| panic!("writer {i} failed: {e:?}"));
        }
    }
    let mut q = Query::partition(Index::Primary, &pk);
    q.sk_prefix = Some("w#".into());
    let expected: Vec<String> = (0..20).step_by(2).map(|i| format!("w#{i:02}")).collect();
    assert_eq!(sks(&walk(store, &q).await), expected);
}

/// Two operations on one item in a write, or more than 100 operations, are `Invalid` and
/// write nothing; exactly 100 operations are fine.
pub async fn malformed_writes_are_invalid_and_write_nothing(store: &dyn RecordStore) {
    let pk = unique("invalid");
    for twice in [
        vec![
            put(record(&pk, "a", json!({})), Condition::Always),
            put(record(&pk, "a", json!({})), Condition::Always),
        ],
        vec![
            put(record(&pk, "a", json!({})), Condition::NotExists),
            check(&pk, "a", Condition::NotExists),
        ],
        vec![
            put(record(&pk, "b", json!({})), Condition::Always),
            put(record(&pk, "a", json!({})), Condition::Always),
            delete(&pk, "a", Condition::Always),
        ],
    ] {
        assert_invalid(store.write(twice).await);
        assert_eq!(get(store, &pk, "a").await, None);
        assert_eq!(get(store, &pk, "b").await, None);
    }

    let many = |n: usize| -> Vec<WriteOp> {
        (0..n)
            .map(|i| {
                put(
                    record(&pk, &format!("bulk#{i:03}"), json!({"i": i})),
                    Condition::NotExists,
                )
            })
            .collect()
    };
    assert_invalid(store.write(many(101)).await);
    assert_eq!(get(store, &pk, "bulk#000").await, None);
    assert_eq!(get(store, &pk, "bulk#100").await, None);

    write_ok(store, many(100)).await;
    let mut q = Query::partition(Index::Primary, &pk);
    q.sk_prefix = Some("bulk#".into());
    assert_eq!(walk(store, &q).await.len(), 100);
}

/// Records whose `expires_at` is at or before the store's now are invisible to `get` and
/// `query` and count as absent for every condition. `now` is the store's idea of the
/// current unix time (its clock); a record expiring an hour later stays visible.
pub async fn expired_records_are_invisible_and_count_as_absent(store: &dyn RecordStore, now: i64) {
    let pk = unique("expiry");
    let at = |sk: &str, expires_at: i64| {
        let mut r = record(&pk, sk, json!({"sk": sk}));
        r.expires_at = Some(expires_at);
        r.gsi1 = Some((format!("{pk}#idx"), sk.to_string()));
        r
    };
    let alive = at("alive", now + 3600);
    write_ok(
        store,
        vec![
            put(at("gone-1", now - 3600), Condition::Always),
            put(at("gone-2", now - 60), Condition::Always),
            put(at("gone-3", now - 1), Condition::Always),
            put(alive.clone(), Condition::Always),
        ],
    )
    .await;

    for sk in ["gone-1", "gone-2", "gone-3"] {
        assert_eq!(get(store, &pk, sk).await, None, "{sk} expired but is visible");
    }
    assert_eq!(get(store, &pk, "alive").await, Some(alive.clone()));
    assert_eq!(
        sks(&walk(store, &Query::partition(Index::Primary, &pk)).await),
        ["alive"]
    );
    assert_eq!(
        sks(&walk(store, &Query::partition(Index::Gsi1, format!("{pk}#idx"))).await),
        ["alive"]
    );

    assert_condition_failed(
        store.write(vec![check(&pk, "gone-1", Condition::Exists)]).await,
        &pk,
        "gone-1",
    );
    assert_condition_failed(
        store.write(vec![check(&pk, "gone-2", Condition::VersionIs(1))]).await,
        &pk,
        "gone-2",
    );
    assert_condition_failed(
        store.write(vec![delete(&pk, "gone-2", Condition::Exists)]).await,
        &pk,
        "gone-2",
    );

    // An expired item can be created afresh.
    let reborn = record(&pk, "gone-3", json!({"reborn": true}));
    write_ok(store, vec![put(reborn.clone(), Condition::NotExists)]).await;
    assert_eq!(get(store, &pk, "gone-3").await, Some(reborn));
    // A live one still cannot.
    assert_condition_failed(
        store
            .write(vec![put(record(&pk, "alive", json!({})), Condition::NotExists)])
            .await,
        &pk,
        "alive",
    );
}

/// Operations that store one record per number taken, keyed by the number, under `pk`:
/// `tickets` numbers from the first take and `actions` from the second.
fn numbered_records(pk: &str, tickets: u64, actions: u64, condition: Condition) -> NumberedOps {
    let pk = pk.to_string();
    Arc::new(move |firsts: &[u64]| {
        let mut ops = Vec::new();
        for t in firsts[0]..firsts[0] + tickets {
            ops.push(put(record(&pk, &format!("t{t:04}"), json!({"ticket": t})), condition));
        }
        for a in firsts[1]..firsts[1] + actions {
            ops.push(put(
                record(&pk, &format!("a{a:04}"), json!({"action": a})),
                Condition::NotExists,
            ));
        }
        ops
    })
}

/// `write_numbered` takes `count` consecutive numbers from each counter (after what
/// `increment` handed out before), hands the first of each to the builder, writes what it
/// built and returns the firsts; later increments continue after the range.
pub async fn numbered_write_takes_ranges_and_writes_with_them_atomically(store: &dyn RecordStore) {
    let counters = unique("numbered-counters");
    let pk = unique("numbered");
    assert_eq!(store.increment(&counters, "ticket", 4).await.expect("increment"), 4);
    let takes = [
        CounterTake::new(&counters, "ticket", 3),
        CounterTake::new(&counters, "action", 2),
    ];
    let firsts = store
        .write_numbered(&takes, numbered_records(&pk, 3, 2, Condition::NotExists))
        .await
        .expect("numbered write");
    assert_eq!(firsts, [5, 1]);
    let stored = walk(store, &Query::partition(Index::Primary, &pk)).await;
    assert_eq!(sks(&stored), ["a0001", "a0002", "t0005", "t0006", "t0007"]);
    assert_eq!(stored[2].data, json!({"ticket": 5}));
    assert_eq!(store.increment(&counters, "ticket", 1).await.expect("increment"), 8);
    assert_eq!(store.increment(&counters, "action", 1).await.expect("increment"), 3);
    // A take of 0 numbers takes none: its "first" is the next number, still free.
    let firsts = store
        .write_numbered(
            &[
                CounterTake::new(&counters, "ticket", 0),
                CounterTake::new(&counters, "action", 1),
            ],
            numbered_records(&pk, 0, 1, Condition::NotExists),
        )
        .await
        .expect("numbered write");
    assert_eq!(firsts, [9, 4]);
    assert_eq!(store.increment(&counters, "ticket", 1).await.expect("increment"), 9);
}

/// When a condition of the built write fails, `ConditionFailed` names the item, nothing
/// built is written, and no number of the failed write is ever handed out again (a gap,
/// or the same numbers unused: never a second record with one number).
pub async fn numbered_write_whose_condition_fails_writes_nothing_and_never_reuses_a_number(store: &dyn RecordStore) {
    let counters = unique("numbered-fail-counters");
    let pk = unique("numbered-fail");
    write_ok(
        store,
        vec![put(record(&pk, "t0002", json!({"old": true})), Condition::Always)],
    )
    .await;
    let takes = [
        CounterTake::new(&counters, "ticket", 2),
        CounterTake::new(&counters, "action", 1),
    ];
    let failed = store
        .write_numbered(&takes, numbered_records(&pk, 2, 1, Condition::NotExists))
        .await;
    match failed {
        Err(StoreError::ConditionFailed { pk: p, sk }) => assert_eq!((p.as_str(), sk.as_str()), (pk.as_str(), "t0002")),
        other => panic!("expected ConditionFailed on t0002, got {other:?}"),
    }
    let stored = walk(store, &Query::partition(Index::Primary, &pk)).await;
    assert_eq!(sks(&stored), ["t0002"], "nothing of the failed write is stored");
    assert_eq!(stored[0].data, json!({"old": true}));
    let firsts = store
        .write_numbered(&takes, numbered_records(&pk, 2, 1, Condition::Always))
        .await
        .expect("numbered write");
    let next = store.increment(&counters, "ticket", 1).await.expect("increment");
    assert_eq!(next, firsts[0] + 2, "increments continue after the range taken");
    assert!(
        firsts[0] == 1 || firsts[0] == 3,
        "a failed take is undone or left as a gap: {firsts:?}"
    );
}

/// Numbered writes and plain increments of the same counters, all at once, never hand out
/// one number twice, and every built record is stored.
pub async fn concurrent_numbered_writes_and_increments_never_share_a_number(store: &dyn RecordStore) {
    let counters = unique("numbered-race-counters");
    let pk = unique("numbered-race");
    let takes = [
        CounterTake::new(&counters, "ticket", 2),
        CounterTake::new(&counters, "action", 1),
    ];
    let numbered =
        join_all((0..10).map(|_| store.write_numbered(&takes, numbered_records(&pk, 2, 1, Condition::NotExists))));
    let increments = join_all((0..10).map(|_| store.increment(&counters, "ticket", 1)));
    let (numbered, increments) = futures::join!(numbered, increments);
    let mut tickets = BTreeSet::new();
    for firsts in numbered {
        let firsts = firsts.expect("numbered write");
        assert!(
            tickets.insert(firsts[0]) && tickets.insert(firsts[0] + 1),
            "{firsts:?} reused"
        );
    }
    for n in increments {
        let n = n.expect("increment");
        assert!(tickets.insert(n), "{n} reused");
    }
    assert_eq!(tickets, (1..=30).collect::<BTreeSet<u64>>());
    let stored = walk(store, &Query::partition(Index::Primary, &pk)).await;
    assert_eq!(stored.len(), 30, "20 ticket records and 10 action records");
}

/// A numbered write is a write: more than 100 built operations, or two on one item, are
/// `Invalid` and write nothing.
pub async fn numbered_write_obeys_the_write_rules(store: &dyn RecordStore) {
    let counters = unique("numbered-invalid-counters");
    let pk = unique("numbered-invalid");
    let takes = [
        CounterTake::new(&counters, "ticket", 101),
        CounterTake::new(&counters, "action", 0),
    ];
    assert_invalid(
        store
            .write_numbered(&takes, numbered_records(&pk, 101, 0, Condition::NotExists))
            .await,
    );
    let twice: NumberedOps = {
        let pk = pk.clone();
        Arc::new(move |firsts: &[u64]| {
            let sk = format!("t{}", firsts[0]);
            vec![
                put(record(&pk, &sk, json!({})), Condition::Always),
                put(record(&pk, &sk, json!({})), Condition::Always),
            ]
        })
    };
    assert_invalid(store.write_numbered(&takes[..1], twice).await);
    assert!(walk(store, &Query::partition(Index::Primary, &pk)).await.is_empty());
}
