//! The contract suites stamped for the SQLite adapters (a fresh temp file per test), and
//! the cases only SQLite can run: reopening the file, and time moved by a `ManualClock`
//! instead of waiting for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use deskbridge::adapters::record_cache::{CachedPartitions, CachedRecordStore};
use deskbridge::adapters::{SqliteQueue, SqliteRecordStore};
use deskbridge::ports::{
    Clock, Condition, Index, ManualClock, Query, Queue, QueueError, QueueName, Record, RecordStore, WriteOp,
};
use futures::future::join_all;
use serde_json::json;
use tempfile::TempDir;

use super::{queue_suite, records_suite, QueueFixture, StoreFixture};

const VISIBILITY: Duration = Duration::from_secs(30);

/// A fixed, whole-second start so expiry arithmetic in unix seconds is exact.
fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()))
}

fn temp_file(name: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    (dir, path)
}

async fn sqlite_store() -> Option<StoreFixture> {
    let (dir, path) = temp_file("records.sqlite");
    let clock = manual_clock();
    let store = SqliteRecordStore::open(&path, clock.clone()).expect("open store");
    Some(StoreFixture::new(Arc::new(store), clock.now().timestamp()).keeping(dir))
}

async fn sqlite_queue() -> Option<QueueFixture> {
    let (dir, path) = temp_file("queues.sqlite");
    let queue = SqliteQueue::open(&path, manual_clock(), VISIBILITY).expect("open queue");
    Some(QueueFixture::new(Arc::new(queue)).keeping(dir))
}

/// The SQLite store behind a read cache keeping every partition: the cache must keep the
/// whole contract (the local server caches only a few partitions).
async fn cached_sqlite_store() -> Option<StoreFixture> {
    let (dir, path) = temp_file("records.sqlite");
    let clock = manual_clock();
    let store = SqliteRecordStore::open(&path, clock.clone()).expect("open store");
    let cached = CachedRecordStore::new(Arc::new(store), CachedPartitions::All);
    Some(StoreFixture::new(Arc::new(cached), clock.now().timestamp()).keeping(dir))
}

records_suite!(records, sqlite_store());
records_suite!(cached_records, cached_sqlite_store());
queue_suite!(queue, sqlite_queue());

fn store_at(path: &Path, clock: Arc<dyn Clock>) -> SqliteRecordStore {
    SqliteRecordStore::open(path, clock).expect("open store")
}

fn queue_at(path: &Path, clock: Arc<dyn Clock>, visibility: Duration) -> SqliteQueue {
    SqliteQueue::open(path, clock, visibility).expect("open queue")
}

fn indexed(pk: &str, sk: &str, gsi1sk: &str) -> Record {
    let mut r = Record::new(pk, sk, json!({"sk": sk}));
    r.gsi1 = Some(("by-name".into(), gsi1sk.into()));
    r
}

// ---------------------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn store_records_and_counters_survive_dropping_and_reopening_the_file() {
    let (_dir, path) = temp_file("records.sqlite");
    let clock = manual_clock();
    let written = indexed("ticket", "00000000000000000001", "zeta");
    {
        let store = store_at(&path, clock.clone());
        store
            .write(vec![
                WriteOp::Put {
                    record: written.clone(),
                    condition: Condition::NotExists,
                },
                WriteOp::Put {
                    record: indexed("ticket", "00000000000000000002", "alpha"),
                    condition: Condition::NotExists,
                },
            ])
            .await
            .expect("write");
        assert_eq!(store.increment("counter", "ticket", 1).await.expect("increment"), 1);
        assert_eq!(store.increment("counter", "ticket", 1).await.expect("increment"), 2);
    }

    let store = store_at(&path, clock);
    assert_eq!(store.get("ticket", &written.sk).await.expect("get"), Some(written));
    let by_name = store
        .query(&Query::partition(Index::Gsi1, "by-name"))
        .await
        .expect("query");
    let names: Vec<_> = by_name.items.iter().map(|r| r.gsi1.clone().unwrap().1).collect();
    assert_eq!(names, ["alpha", "zeta"]);
    assert_eq!(store.increment("counter", "ticket", 1).await.expect("increment"), 3);
}

#[tokio::test]
async fn store_hides_a_record_from_the_second_its_expiry_is_reached() {
    let (_dir, path) = temp_file("records.sqlite");
    let clock = manual_clock();
    let store = store_at(&path, clock.clone());
    let now = clock.now().timestamp();
    let mut r = Record::new("session", "s1", json!({"token": "t"}));
    r.expires_at = Some(now + 10);
    r.gsi1 = Some(("sessions".into(), "s1".into()));
    store
        .write(vec![WriteOp::Put {
            record: r.clone(),
            condition: Condition::NotExists,
        }])
        .await
        .expect("write");

    clock.advance(Duration::from_secs(9));
    assert_eq!(store.get("session", "s1").await.expect("get"), Some(r.clone()));
    let refused = store
        .write(vec![WriteOp::Put {
            record: Record::new("session", "s1", json!({})),
            condition: Condition::NotExists,
        }])
        .await;
    assert!(refused.is_err(), "a live record counted as absent");

    clock.advance(Duration::from_secs(1));
    assert_eq!(store.get("session", "s1").await.expect("get"), None);
    for index in [(Index::Primary, "session"), (Index::Gsi1, "sessions")] {
        let page = store.query(&Query::partition(index.0, index.1)).await.expect("query");
        assert!(page.items.is_empty(), "{index:?}: {page:?}");
    }
    store
        .write(vec![WriteOp::Put {
            record: Record::new("session", "s1", json!({"token": "new"})),
            condition: Condition::NotExists,
        }])
        .await
        .expect("an expired record counts as absent");
    let fresh = store.get("session", "s1").await.expect("get").expect("recreated");
    assert_eq!(fresh.data, json!({"token": "new"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_store_handles_on_one_file_never_hand_out_the_same_counter_value() {
    let (_dir, path) = temp_file("records.sqlite");
    let clock = manual_clock();
    let a = store_at(&path, clock.clone());
    let b = store_at(&path, clock);
    let calls = (0..20).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move { store.increment("counter", "ticket", 1).await }
    });
    let mut values: Vec<u64> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("increment"))
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=20).collect::<Vec<u64>>());

    let creates = (0..10).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            store
                .write(vec![WriteOp::Put {
                    record: Record::new("ticket", "contested", json!({ "by": i })),
                    condition: Condition::NotExists,
                }])
                .await
        }
    });
    let oks = join_all(creates).await.into_iter().filter(Result::is_ok).count();
    assert_eq!(oks, 1);
}

#[tokio::test]
async fn store_and_queue_can_share_one_file() {
    let (_dir, path) = temp_file("deskbridge.sqlite");
    let clock = manual_clock();
    {
        let store = store_at(&path, clock.clone());
        let queue = queue_at(&path, clock.clone(), VISIBILITY);
        store
            .write(vec![WriteOp::Put {
                record: Record::new("ticket", "1", json!({})),
                condition: Condition::NotExists,
            }])
            .await
            .expect("write");
        queue.send(QueueName::TicketClosed, "1").await.expect("send");
    }
    let store = store_at(&path, clock.clone());
    let queue = queue_at(&path, clock, VISIBILITY);
    assert!(store.get("ticket", "1").await.expect("get").is_some());
    let got = queue.receive(QueueName::TicketClosed, 10).await.expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "1");
}

// ---------------------------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------------------------

const Q: QueueName = QueueName::SessionImport;

#[tokio::test]
async fn queue_messages_and_dead_letters_survive_dropping_and_reopening_the_file() {
    let (_dir, path) = temp_file("queues.sqlite");
    let clock = manual_clock();
    let (waiting, dead) = {
        let queue = queue_at(&path, clock.clone(), Duration::ZERO);
        let dead = queue.send(Q, "doomed").await.expect("send");
        for _ in 0..=Q.max_receives() {
            queue.receive(Q, 1).await.expect("receive");
        }
        assert_eq!(queue.dead_letters(Q).await.expect("dead").len(), 1);
        (queue.send(Q, "waiting").await.expect("send"), dead)
    };
    let queue = queue_at(&path, clock, VISIBILITY);
    let dead_letters = queue.dead_letters(Q).await.expect("dead");
    assert_eq!(dead_letters.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), [dead]);
    let got = queue.receive(Q, 10).await.expect("receive");
    assert_eq!(got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), [waiting]);
    assert_eq!(got[0].receive_count, 1);
}

#[tokio::test]
async fn queue_redelivers_an_unacked_message_once_the_visibility_timeout_has_passed() {
    let (_dir, path) = temp_file("queues.sqlite");
    let clock = manual_clock();
    let queue = queue_at(&path, clock.clone(), VISIBILITY);
    let id = queue.send(Q, "slow job").await.expect("send");
    let first = queue.receive(Q, 1).await.expect("receive").remove(0);

    clock.advance(VISIBILITY - Duration::from_millis(1));
    assert!(
        queue.receive(Q, 1).await.expect("receive").is_empty(),
        "visible too early"
    );

    clock.advance(Duration::from_millis(1));
    let again = queue.receive(Q, 1).await.expect("receive");
    assert_eq!(again.len(), 1, "not visible after the timeout");
    assert_eq!((again[0].id.as_str(), again[0].receive_count), (id.as_str(), 2));
    assert_ne!(again[0].receipt, first.receipt, "a redelivery needs a fresh receipt");

    // The first receiver wakes up late: its receipt no longer acks nor releases.
    let stale = queue.ack(Q, &first.receipt).await;
    assert!(matches!(stale, Err(QueueError::NotFound(_))), "got {stale:?}");
    let stale = queue.release(Q, &first.receipt, Duration::ZERO).await;
    assert!(matches!(stale, Err(QueueError::NotFound(_))), "got {stale:?}");
    assert!(
        queue.receive(Q, 1).await.expect("receive").is_empty(),
        "stale release took effect"
    );

    queue
        .ack(Q, &again[0].receipt)
        .await
        .expect("ack with the current receipt");
    clock.advance(VISIBILITY * 2);
    assert!(
        queue.receive(Q, 1).await.expect("receive").is_empty(),
        "acked message came back"
    );
}

#[tokio::test]
async fn queue_release_with_a_delay_hides_the_message_until_the_delay_has_passed() {
    let (_dir, path) = temp_file("queues.sqlite");
    let clock = manual_clock();
    let queue = queue_at(&path, clock.clone(), VISIBILITY);
    queue.send(Q, "later").await.expect("send");
    let m = queue.receive(Q, 1).await.expect("receive").remove(0);
    queue
        .release(Q, &m.receipt, Duration::from_secs(5))
        .await
        .expect("release");

    clock.advance(Duration::from_millis(4_999));
    assert!(queue.receive(Q, 1).await.expect("receive").is_empty());
    clock.advance(Duration::from_millis(1));
    let again = queue.receive(Q, 1).await.expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn queue_hands_out_messages_oldest_first_and_a_replayed_one_at_the_back() {
    let (_dir, path) = temp_file("queues.sqlite");
    let clock = manual_clock();
    let queue = queue_at(&path, clock.clone(), Duration::ZERO);
    let replayed = queue.send(Q, "m0").await.expect("send");
    for _ in 0..=Q.max_receives() {
        queue.receive(Q, 1).await.expect("receive");
    }
    let mut sent = Vec::new();
    for i in 1..=4 {
        clock.advance(Duration::from_millis(1));
        sent.push(queue.send(Q, &format!("m{i}")).await.expect("send"));
    }
    queue.replay(Q, &replayed).await.expect("replay");
    sent.push(replayed);

    let bodies: Vec<String> = queue
        .receive(Q, 2)
        .await
        .expect("receive")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["m1", "m2"]);
    // Zero visibility: everything is visible again at once, still oldest first.
    let ids: Vec<String> = queue
        .receive(Q, 10)
        .await
        .expect("receive")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, sent);
}

#[tokio::test]
async fn queue_lists_dead_letters_oldest_first_and_at_most_one_hundred() {
    let (_dir, path) = temp_file("queues.sqlite");
    let clock = manual_clock();
    // With no visibility timeout every receive sees every message again.
    let queue = queue_at(&path, clock, Duration::ZERO);
    let mut sent = Vec::new();
    for i in 0..101 {
        sent.push(queue.send(Q, &format!("d{i}")).await.expect("send"));
    }
    for round in 1..=Q.max_receives() {
        let got = queue.receive(Q, 200).await.expect("receive");
        assert_eq!(got.len(), 101, "round {round}");
        assert!(got.iter().all(|m| m.receive_count == round));
    }
    assert!(
        queue.receive(Q, 200).await.expect("receive").is_empty(),
        "a message outlived its receives"
    );
    let dead = queue.dead_letters(Q).await.expect("dead letters");
    assert_eq!(dead.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), sent[..100]);
    assert!(dead.iter().all(|d| d.receive_count == Q.max_receives() && d.queue == Q));
}

#[tokio::test]
async fn queue_refuses_receipts_it_never_issued() {
    let (_dir, path) = temp_file("queues.sqlite");
    let queue = queue_at(&path, manual_clock(), VISIBILITY);
    queue.send(Q, "x").await.expect("send");
    let m = queue.receive(Q, 1).await.expect("receive").remove(0);
    let forged = queue.ack(Q, "not-a-receipt").await;
    assert!(matches!(forged, Err(QueueError::NotFound(_))), "got {forged:?}");
    let forged = queue.release(Q, "not-a-receipt", Duration::ZERO).await;
    assert!(matches!(forged, Err(QueueError::NotFound(_))), "got {forged:?}");
    let wrong_queue = queue.ack(QueueName::TicketClosed, &m.receipt).await;
    assert!(
        matches!(wrong_queue, Err(QueueError::NotFound(_))),
        "got {wrong_queue:?}"
    );
    queue.ack(Q, &m.receipt).await.expect("ack");
}
