//! Port contract suites: each case is a `pub async fn` taking the port, run against every
//! adapter of that port so one failure names both the case and the adapter.
//!
//! - `records`: the `RecordStore` cases, `queue`: the `Queue` cases (adapter-neutral).
//! - `sqlite`: both suites stamped for the SQLite adapters, plus SQLite-only cases
//!   (durability across reopen, ManualClock-driven expiry and visibility timeouts).
//!
//! # Stamping a suite for another adapter
//!
//! In the adapter's module (e.g. `contract/aws.rs`, declared below with `mod aws;`):
//!
//! ```ignore
//! use super::{queue_suite, records_suite, QueueFixture, StoreFixture};
//!
//! async fn dynamodb() -> Option<StoreFixture> {
//!     let endpoint = deskbridge_tests::emulators::dynamodb()?; // None: skipped loudly
//!     let store = /* a DynamoDbRecordStore on a fresh table (name from `unique`) */;
//!     Some(StoreFixture::new(Arc::new(store), chrono::Utc::now().timestamp()))
//! }
//! records_suite!(dynamodb, dynamodb());
//!
//! async fn sqs() -> Option<QueueFixture> { /* fresh queues + DLQs per call */ }
//! queue_suite!(sqs, sqs());
//! ```
//!
//! Each macro makes a module named by its first argument with one `#[tokio::test]` per
//! case, e.g. `contract::aws::dynamodb::concurrent_creates_of_one_key_let_exactly_one_win`.
//! The second argument is an expression evaluated once per test to an
//! `Option<StoreFixture>` / `Option<QueueFixture>` future; `None` ends the test early
//! (the emulator helpers print SKIPPED, or panic under `CI=true`). Record cases may share
//! one backend; every queue test needs queues of its own.

use std::any::Any;
use std::sync::Arc;

use deskbridge::ports::{Queue, RecordStore};

mod queue;
mod records;
mod sqlite;

/// A record store under test and what must outlive it.
pub struct StoreFixture {
    pub store: Arc<dyn RecordStore>,
    /// The unix time the store's clock reads (the system time for cloud stores).
    pub now: i64,
    /// Kept alive for the test's duration: a temp dir, a table guard, ...
    pub keep: Box<dyn Any + Send>,
}

impl StoreFixture {
    pub fn new(store: Arc<dyn RecordStore>, now: i64) -> Self {
        StoreFixture {
            store,
            now,
            keep: Box::new(()),
        }
    }

    pub fn keeping(mut self, keep: impl Any + Send) -> Self {
        self.keep = Box::new(keep);
        self
    }
}

/// A queue set under test (all `QueueName`s empty and private to one test) and what must
/// outlive it.
pub struct QueueFixture {
    pub queue: Arc<dyn Queue>,
    pub keep: Box<dyn Any + Send>,
}

impl QueueFixture {
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        QueueFixture {
            queue,
            keep: Box::new(()),
        }
    }

    pub fn keeping(mut self, keep: impl Any + Send) -> Self {
        self.keep = Box::new(keep);
        self
    }
}

/// `records_suite!(adapter_name, fixture_future)`: one test per `records` case.
macro_rules! records_suite {
    ($adapter:ident, $fixture:expr) => {
        mod $adapter {
            #[allow(unused_imports)]
            use super::*;

            $crate::contract::records_suite!(@store $fixture;
                get_of_an_absent_item_is_none,
                put_record_reads_back_with_version_json_index_key_and_expiry,
                not_exists_refuses_an_existing_item_and_leaves_it_unchanged,
                a_failed_condition_writes_none_of_the_transaction,
                version_is_holds_only_on_the_exact_version,
                check_gates_the_transaction_without_writing,
                delete_removes_the_item_only_when_its_condition_holds,
                primary_query_lists_one_partition_in_sort_key_order,
                primary_query_pages_visit_every_record_exactly_once,
                query_continues_after_any_record_key,
                gsi1_query_orders_by_index_key_and_pages_exactly_once,
                query_refuses_a_cursor_from_another_partition,
                increment_starts_at_one_and_adds_by,
                concurrent_increments_return_distinct_consecutive_values,
                concurrent_creates_of_one_key_let_exactly_one_win,
                concurrent_updates_of_one_version_let_exactly_one_win,
                concurrent_claims_apply_exactly_one_transaction_whole,
                a_failed_condition_fails_only_its_own_concurrent_writer,
                malformed_writes_are_invalid_and_write_nothing,
                numbered_write_takes_ranges_and_writes_with_them_atomically,
                numbered_write_whose_condition_fails_writes_nothing_and_never_reuses_a_number,
                concurrent_numbered_writes_and_increments_never_share_a_number,
                numbered_write_obeys_the_write_rules,
            );
            $crate::contract::records_suite!(@store_at_now $fixture;
                expired_records_are_invisible_and_count_as_absent,
            );
        }
    };
    (@store $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture): Option<$crate::contract::StoreFixture> = $fixture.await else {
                    return;
                };
                $crate::contract::records::$case(&*fixture.store).await;
            }
        )+
    };
    (@store_at_now $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture): Option<$crate::contract::StoreFixture> = $fixture.await else {
                    return;
                };
                $crate::contract::records::$case(&*fixture.store, fixture.now).await;
            }
        )+
    };
}
pub(crate) use records_suite;

/// `queue_suite!(adapter_name, fixture_future)`: one test per `queue` case.
macro_rules! queue_suite {
    ($adapter:ident, $fixture:expr) => {
        mod $adapter {
            #[allow(unused_imports)]
            use super::*;

            $crate::contract::queue_suite!(@queue $fixture;
                sent_message_is_received_once_and_gone_after_ack,
                a_received_message_is_invisible_to_other_receives,
                receive_hands_out_at_most_max_and_each_message_once,
                release_now_redelivers_with_a_higher_receive_count,
                a_message_received_max_times_moves_to_the_dead_letters,
                a_dead_lettered_message_is_dead_at_once_and_can_be_replayed,
                a_replayed_dead_letter_can_be_received_and_acked,
                a_replayed_poison_message_dies_again_after_exactly_max_receives,
                replaying_an_unknown_dead_letter_is_not_found,
                queues_are_independent,
                one_failing_message_does_not_block_the_others,
                depth_counts_waiting_in_flight_and_dead_messages,
            );
        }
    };
    (@queue $fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture): Option<$crate::contract::QueueFixture> = $fixture.await else {
                    return;
                };
                $crate::contract::queue::$case(&*fixture.queue).await;
            }
        )+
    };
}
pub(crate) use queue_suite;

mod aws;
pub(crate) mod mailer;
mod secrets;
