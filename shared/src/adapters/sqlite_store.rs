//! `RecordStore` on one SQLite file: the local server's storage, with group commit.
//!
//! One table `records` keyed by `(pk, sk)` with the secondary index `(gsi1pk, gsi1sk)`, and
//! one table `counters` for `increment`. WAL journal with `synchronous=FULL`, so a write
//! that returned survives a killed process.
//!
//! Writes go through one writer thread that owns the only writing connection. It takes
//! every request waiting in its short queue (up to `MAX_BATCH`) and applies them in one
//! SQLite transaction, each caller's operations inside a savepoint of their own, so one
//! fsync makes the whole batch durable. A caller whose condition fails is rolled back to
//! its savepoint alone; the others in the batch still commit. Every caller is answered
//! only after the batch's commit returned. Reads use a small pool of other connections on
//! the blocking pool; WAL lets them run beside the writer and see every committed batch.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use crate::ports::{
    Clock, Condition, CounterTake, Cursor, Index, NumberedOps, Page, Query, Record, RecordStore, StoreError, WriteOp,
};

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many operations in one `write`, as DynamoDB allows.
const MAX_OPS: usize = 100;

/// At most this many callers' writes share one transaction (and one fsync).
const MAX_BATCH: usize = 128;

/// Requests that may wait for the writer; a caller beyond that waits to enqueue.
const QUEUE_DEPTH: usize = 256;

/// Read connections; WAL readers never block the writer or each other.
const READERS: usize = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    pk         TEXT    NOT NULL,
    sk         TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    data       TEXT    NOT NULL,
    gsi1pk     TEXT,
    gsi1sk     TEXT,
    expires_at INTEGER,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_gsi1 ON records (gsi1pk, gsi1sk, pk, sk);
CREATE TABLE IF NOT EXISTS counters (
    pk    TEXT    NOT NULL,
    sk    TEXT    NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
";

const COLUMNS: &str = "pk, sk, version, data, gsi1pk, gsi1sk, expires_at";

/// Open `path` (created when missing) with the settings every deskbridge SQLite file uses:
/// WAL, `synchronous=FULL`, a busy timeout.
pub(crate) fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "{} does not support WAL (journal_mode is {mode})",
                path.display()
            )),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Lock the connection; a panic in another holder rolled its transaction back on unwind,
/// so a poisoned lock still guards a usable connection.
pub(crate) fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The durable SQLite record store. Clones share the writer and the read connections;
/// the writer stops (and closes its connection) when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteRecordStore {
    writer: Arc<Writer>,
    readers: Arc<ReadPool>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRecordStore").finish_non_exhaustive()
    }
}

/// How much the group commit has batched so far: `requests` writes and increments made
/// durable in `commits` transactions (one fsync each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    pub requests: u64,
    pub commits: u64,
}

/// A `Put` whose JSON is already serialised, ready for the blocking task.
enum PreparedOp {
    Put {
        pk: String,
        sk: String,
        version: i64,
        data: String,
        gsi1: Option<(String, String)>,
        expires_at: Option<i64>,
        condition: Condition,
    },
    Delete {
        pk: String,
        sk: String,
        condition: Condition,
    },
    Check {
        pk: String,
        sk: String,
        condition: Condition,
    },
}

/// One caller's unit of work for the writer.
enum Job {
    Write {
        ops: Vec<PreparedOp>,
        now: i64,
    },
    Increment {
        pk: String,
        sk: String,
        by: i64,
    },
    /// Take numbers from counters, then write what `build` makes of them, all in the
    /// caller's savepoint (`write_numbered`): a failed condition undoes the take too.
    Numbered {
        takes: Vec<(String, String, i64)>,
        build: NumberedOps,
        now: i64,
    },
}

/// What a job produced: nothing for a write, the new value for an increment, the first
/// number of each take for a numbered write.
#[derive(Debug, PartialEq, Eq)]
enum Done {
    Written,
    Counter(i64),
    Numbered(Vec<u64>),
}

struct Request {
    job: Job,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

/// The handle on the writer thread: the sending end of its queue.
struct Writer {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    commits: AtomicU64,
}

impl Drop for Writer {
    /// Close the queue and wait for the thread, so the file is closed once this returns.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read connections, each used by one blocking task at a time.
struct ReadPool {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

#[derive(Debug, thiserror::Error)]
#[error("the SQLite writer has stopped")]
struct WriterStopped;

impl SqliteRecordStore {
    /// Open (or create) the store at `path`. `clock` decides which records have expired.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let conn = open_connection(path).map_err(StoreError::unavailable)?;
        conn.execute_batch(SCHEMA).map_err(StoreError::unavailable)?;
        let mut idle = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            idle.push(open_connection(path).map_err(StoreError::unavailable)?);
        }
        let stats = Arc::new(Counts::default());
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn({
                let stats = stats.clone();
                move || run_writer(conn, requests, &stats)
            })
            .map_err(StoreError::unavailable)?;
        Ok(SqliteRecordStore {
            writer: Arc::new(Writer {
                queue: Some(queue),
                thread: Some(thread),
                stats,
            }),
            readers: Arc::new(ReadPool {
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(READERS)),
            }),
            clock,
        })
    }

    /// How many writes the group commit has made durable, in how many transactions.
    pub fn group_commit_stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            requests: self.writer.stats.requests.load(Ordering::Relaxed),
            commits: self.writer.stats.commits.load(Ordering::Relaxed),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Run `f` with a read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit: OwnedSemaphorePermit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(StoreError::unavailable)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(|| StoreError::Unavailable("no idle read connection".into()))?;
            let out = f(&conn);
            pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
            drop(permit);
            out
        })
        .await
        .map_err(StoreError::unavailable)?
    }

    /// Hand `job` to the writer and wait until its batch is durable.
    async fn submit(&self, job: Job) -> Result<Done, StoreError> {
        let queue = self
            .writer
            .queue
            .as_ref()
            .ok_or_else(|| StoreError::unavailable(WriterStopped))?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Request { job, reply })
            .await
            .map_err(|_| StoreError::unavailable(WriterStopped))?;
        answer.await.map_err(|_| StoreError::unavailable(WriterStopped))?
    }
}

/// The writer thread: take the waiting requests, commit them together, answer each.
/// Ends when every store handle is gone.
fn run_writer(mut conn: Connection, mut requests: mpsc::Receiver<Request>, stats: &Counts) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let jobs: Vec<&Job> = batch.iter().map(|r| &r.job).collect();
        let (results, committed) = commit_batch(&mut conn, &jobs);
        if committed {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats.requests.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        for (request, result) in batch.drain(..).zip(results) {
            // A caller that gave up waiting no longer needs the answer.
            let _ = request.reply.send(result);
        }
    }
    tracing::info!(
        requests = stats.requests.load(Ordering::Relaxed),
        commits = stats.commits.load(Ordering::Relaxed),
        "SQLite writer stopped"
    );
}

/// Apply `jobs` in one transaction, each in a savepoint of its own, and commit once.
/// Returns one result per job, and whether the transaction committed. A job whose
/// condition fails (or that fails on its own, like an overflowing counter) is rolled back
/// alone. When the transaction itself fails (begin, commit, or an error that made SQLite
/// abandon it) every job is `Unavailable`: nothing of the batch was written.
fn commit_batch(conn: &mut Connection, jobs: &[&Job]) -> (Vec<Result<Done, StoreError>>, bool) {
    let all_failed = |e: &dyn std::fmt::Display| -> Vec<Result<Done, StoreError>> {
        jobs.iter()
            .map(|_| {
                Err(StoreError::Unavailable(
                    format!("SQLite transaction failed: {e}").into(),
                ))
            })
            .collect()
    };
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return (all_failed(&e), false),
    };
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut savepoint = match tx.savepoint() {
            Ok(s) => s,
            Err(e) => return (all_failed(&e), false),
        };
        let result = apply_job(&savepoint, job);
        let closed = match &result {
            Ok(_) => savepoint.commit(),
            Err(_) => savepoint.rollback().and_then(|()| savepoint.commit()),
        };
        if let Err(e) = closed {
            return (all_failed(&e), false);
        }
        if tx.is_autocommit() {
            // SQLite rolled the whole transaction back (I/O error, disk full, ...).
            let reason = match &result {
                Err(e) => e.to_string(),
                Ok(_) => "the transaction was rolled back".to_string(),
            };
            return (all_failed(&reason), false);
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => (results, true),
        Err(e) => (all_failed(&e), false),
    }
}

fn apply_job(conn: &Connection, job: &Job) -> Result<Done, StoreError> {
    match job {
        Job::Write { ops, now } => apply_ops(conn, ops, *now).map(|()| Done::Written),
        Job::Increment { pk, sk, by } => add_to_counter(conn, pk, sk, *by).map(Done::Counter),
        Job::Numbered { takes, build, now } => {
            let mut firsts = Vec::with_capacity(takes.len());
            for (pk, sk, count) in takes {
                let last = add_to_counter(conn, pk, sk, *count)?;
                let first = last + 1 - count;
                firsts.push(
                    u64::try_from(first)
                        .map_err(|_| StoreError::Invalid(format!("counter {pk}/{sk} overflowed to {last}")))?,
                );
            }
            // `build` is the caller's code on the writer thread: a panic must not stop it.
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build(&firsts)))
                .map_err(|_| StoreError::Invalid("building a numbered write panicked".into()))?;
            let ops = prepare(built)?;
            apply_ops(conn, &ops, *now)?;
            Ok(Done::Numbered(firsts))
        }
    }
}

/// Add `by` to the counter at `(pk, sk)` (absent = 0) and return the new value.
fn add_to_counter(conn: &Connection, pk: &str, sk: &str, by: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO counters (pk, sk, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (pk, sk) DO UPDATE SET value = value + excluded.value \
         RETURNING value",
    )
    .and_then(|mut st| st.query_row(params![pk, sk, by], |row| row.get(0)))
    .map_err(StoreError::unavailable)
}

/// Check a write's limits (at most `MAX_OPS`, one operation per item) and serialise its
/// JSON, ready for the writer.
fn prepare(ops: Vec<WriteOp>) -> Result<Vec<PreparedOp>, StoreError> {
    if ops.len() > MAX_OPS {
        return Err(StoreError::Invalid(format!(
            "{} operations in one write; at most {MAX_OPS}",
            ops.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    for op in &ops {
        let (pk, sk) = op.key();
        if !seen.insert((pk, sk)) {
            return Err(StoreError::Invalid(format!("two operations on {pk}/{sk} in one write")));
        }
    }
    ops.into_iter()
        .map(|op| {
            Ok(match op {
                WriteOp::Put { record, condition } => PreparedOp::Put {
                    version: to_i64("version", record.version)?,
                    data: serde_json::to_string(&record.data).map_err(|e| StoreError::Invalid(e.to_string()))?,
                    pk: record.pk,
                    sk: record.sk,
                    gsi1: record.gsi1,
                    expires_at: record.expires_at,
                    condition,
                },
                WriteOp::Delete { pk, sk, condition } => PreparedOp::Delete { pk, sk, condition },
                WriteOp::Check { pk, sk, condition } => PreparedOp::Check { pk, sk, condition },
            })
        })
        .collect()
}

fn to_i64(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is out of range")))
}

/// The version of the live (present, unexpired) item at `(pk, sk)`.
fn live_version(conn: &Connection, pk: &str, sk: &str, now: i64) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(
        "SELECT version FROM records WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
    )
    .and_then(|mut st| st.query_row(params![pk, sk, now], |row| row.get(0)).optional())
    .map_err(StoreError::unavailable)
}

fn holds(condition: Condition, current: Option<i64>) -> bool {
    match condition {
        Condition::Always => true,
        Condition::NotExists => current.is_none(),
        Condition::Exists => current.is_some(),
        Condition::VersionIs(v) => current.is_some_and(|c| u64::try_from(c).ok() == Some(v)),
    }
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Record, String)> {
    let pk: String = row.get(0)?;
    let sk: String = row.get(1)?;
    let version: i64 = row.get(2)?;
    let data: String = row.get(3)?;
    let gsi1pk: Option<String> = row.get(4)?;
    let gsi1sk: Option<String> = row.get(5)?;
    let expires_at: Option<i64> = row.get(6)?;
    let record = Record {
        pk,
        sk,
        version: u64::try_from(version).unwrap_or_default(),
        data: serde_json::Value::Null,
        gsi1: gsi1pk.zip(gsi1sk),
        expires_at,
    };
    Ok((record, data))
}

/// Parse the stored JSON into the record; bad JSON is `Corrupt`.
fn decode((mut record, data): (Record, String)) -> Result<Record, StoreError> {
    record.data = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt {
        pk: record.pk.clone(),
        sk: record.sk.clone(),
        reason: e.to_string(),
    })?;
    Ok(record)
}

/// The least string greater than every string starting with `prefix`, or `None` when
/// there is none (every character is `char::MAX`). SQLite compares TEXT bytewise, and
/// UTF-8 byte order is code point order, so `prefix <= s < upper` is exactly "starts with".
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn query_blocking(conn: &Connection, q: &Query, now: i64) -> Result<Vec<(Record, String)>, StoreError> {
    let (part_col, sort_cols): (&str, &[&str]) = match q.index {
        Index::Primary => ("pk", &["sk"]),
        Index::Gsi1 => ("gsi1pk", &["gsi1sk", "pk", "sk"]),
    };
    let prefix_col = sort_cols[0];
    let mut sql =
        format!("SELECT {COLUMNS} FROM records WHERE {part_col} = ? AND (expires_at IS NULL OR expires_at > ?)");
    let mut args: Vec<Value> = vec![Value::Text(q.partition.clone()), Value::Integer(now)];

    if let Some(prefix) = q.sk_prefix.as_deref().filter(|p| !p.is_empty()) {
        sql.push_str(&format!(" AND {prefix_col} >= ?"));
        args.push(Value::Text(prefix.to_string()));
        if let Some(upper) = prefix_upper_bound(prefix) {
            sql.push_str(&format!(" AND {prefix_col} < ?"));
            args.push(Value::Text(upper));
        }
    }

    if let Some(cursor) = &q.start_after {
        let position: Vec<String> = match q.index {
            Index::Primary if cursor.pk == q.partition => vec![cursor.sk.clone()],
            Index::Gsi1 => match &cursor.gsi1 {
                Some((gpk, gsk)) if *gpk == q.partition => {
                    vec![gsk.clone(), cursor.pk.clone(), cursor.sk.clone()]
                }
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "cursor {}/{} is not a position in index partition {}",
                        cursor.pk, cursor.sk, q.partition
                    )))
                }
            },
            Index::Primary => {
                return Err(StoreError::Invalid(format!(
                    "cursor {}/{} is not a position in partition {}",
                    cursor.pk, cursor.sk, q.partition
                )))
            }
        };
        let cmp = if q.descending { "<" } else { ">" };
        let marks = vec!["?"; sort_cols.len()].join(", ");
        sql.push_str(&format!(" AND ({}) {cmp} ({marks})", sort_cols.join(", ")));
        args.extend(position.into_iter().map(Value::Text));
    }

    let dir = if q.descending { "DESC" } else { "ASC" };
    let order: Vec<String> = sort_cols.iter().map(|c| format!("{c} {dir}")).collect();
    // One row more than a page tells whether anything follows.
    sql.push_str(&format!(" ORDER BY {} LIMIT ?", order.join(", ")));
    args.push(Value::Integer(q.limit as i64 + 1));

    let mut st = conn.prepare_cached(&sql).map_err(StoreError::unavailable)?;
    let rows = st
        .query_map(params_from_iter(args), read_record)
        .map_err(StoreError::unavailable)?;
    rows.collect::<rusqlite::Result<_>>().map_err(StoreError::unavailable)
}

/// Check each operation's condition and apply it, on a connection inside a transaction
/// (or savepoint) that the caller rolls back when this fails.
fn apply_ops(conn: &Connection, ops: &[PreparedOp], now: i64) -> Result<(), StoreError> {
    for op in ops {
        let (pk, sk, condition) = match op {
            PreparedOp::Put { pk, sk, condition, .. }
            | PreparedOp::Delete { pk, sk, condition }
            | PreparedOp::Check { pk, sk, condition } => (pk, sk, *condition),
        };
        if condition != Condition::Always && !holds(condition, live_version(conn, pk, sk, now)?) {
            return Err(StoreError::ConditionFailed {
                pk: pk.clone(),
                sk: sk.clone(),
            });
        }
        let done = match op {
            PreparedOp::Put {
                pk,
                sk,
                version,
                data,
                gsi1,
                expires_at,
                ..
            } => {
                let (gpk, gsk) = gsi1.clone().unzip();
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO records (pk, sk, version, data, gsi1pk, gsi1sk, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut st| st.execute(params![pk, sk, version, data, gpk, gsk, expires_at]))
            }
            PreparedOp::Delete { pk, sk, .. } => conn
                .prepare_cached("DELETE FROM records WHERE pk = ?1 AND sk = ?2")
                .and_then(|mut st| st.execute(params![pk, sk])),
            PreparedOp::Check { .. } => Ok(0),
        };
        done.map_err(StoreError::unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl RecordStore for SqliteRecordStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
        let (pk, sk, now) = (pk.to_string(), sk.to_string(), self.now());
        let row = self
            .read(move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM records WHERE pk = ?1 AND sk = ?2 AND (expires_at IS NULL OR expires_at > ?3)"
                ))
                .and_then(|mut st| st.query_row(params![pk, sk, now], read_record).optional())
                .map_err(StoreError::unavailable)
            })
            .await?;
        row.map(decode).transpose()
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if !(1..=1000).contains(&query.limit) {
            return Err(StoreError::Invalid(format!(
                "query limit {} is outside 1..=1000",
                query.limit
            )));
        }
        let (q, now) = (query.clone(), self.now());
        let limit = q.limit;
        let mut rows = self.read(move |conn| query_blocking(conn, &q, now)).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let items = rows.into_iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let next = if more { items.last().map(Cursor::after) } else { None };
        Ok(Page { items, next })
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let prepared = prepare(ops)?;
        if prepared.is_empty() {
            return Ok(());
        }
        let job = Job::Write {
            ops: prepared,
            now: self.now(),
        };
        self.submit(job).await.map(drop)
    }

    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
        let job = Job::Increment {
            pk: pk.to_string(),
            sk: sk.to_string(),
            by: to_i64("increment", by)?,
        };
        match self.submit(job).await? {
            Done::Counter(value) => {
                u64::try_from(value).map_err(|_| StoreError::Invalid(format!("counter overflowed to {value}")))
            }
            _ => Err(StoreError::Unavailable(
                "the writer answered an increment without a value".into(),
            )),
        }
    }

    /// The takes and the write happen in the caller's savepoint of one group-commit batch:
    /// one fsync, shared with the batch; a failed condition rolls the takes back too.
    async fn write_numbered(&self, takes: &[CounterTake], build: NumberedOps) -> Result<Vec<u64>, StoreError> {
        let takes = takes
            .iter()
            .map(|t| Ok((t.pk.clone(), t.sk.clone(), to_i64("count", t.count)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let job = Job::Numbered {
            takes,
            build,
            now: self.now(),
        };
        match self.submit(job).await? {
            Done::Numbered(firsts) => Ok(firsts),
            _ => Err(StoreError::Unavailable(
                "the writer answered a numbered write without its numbers".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;

    #[test]
    fn prefix_upper_bound_is_the_least_string_past_every_extension() {
        assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[tokio::test]
    async fn unreadable_json_in_the_file_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.sqlite");
        let store = SqliteRecordStore::open(&path, Arc::new(SystemClock)).expect("open");
        open_connection(&path)
            .expect("second connection")
            .execute(
                "INSERT INTO records (pk, sk, version, data) VALUES ('p', 's', 1, '{not json')",
                [],
            )
            .expect("raw insert");
        match store.get("p", "s").await {
            Err(StoreError::Corrupt { pk, sk, .. }) => {
                assert_eq!((pk.as_str(), sk.as_str()), ("p", "s"))
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let page = store.query(&Query::partition(Index::Primary, "p")).await;
        assert!(matches!(page, Err(StoreError::Corrupt { .. })), "got {page:?}");
    }

    fn put_job(pk: &str, sk: &str, writer: u64, condition: Condition) -> Job {
        Job::Write {
            ops: vec![PreparedOp::Put {
                pk: pk.into(),
                sk: sk.into(),
                version: 1,
                data: format!("{{\"writer\":{writer}}}"),
                gsi1: None,
                expires_at: None,
                condition,
            }],
            now: 0,
        }
    }

    fn stored_data(conn: &Connection, pk: &str, sk: &str) -> Option<String> {
        conn.query_row(
            "SELECT data FROM records WHERE pk = ?1 AND sk = ?2",
            params![pk, sk],
            |row| row.get(0),
        )
        .optional()
        .expect("select")
    }

    fn batch_connection() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = open_connection(&dir.path().join("batch.sqlite")).expect("open");
        conn.execute_batch(SCHEMA).expect("schema");
        (dir, conn)
    }

    /// One batch, callers in order: a caller whose condition fails is rolled back alone,
    /// and sees the writes of the callers before it in the same batch.
    #[test]
    fn a_failed_condition_in_a_batch_rolls_back_only_its_own_caller() {
        let (_dir, mut conn) = batch_connection();
        let two_ops_then_fail = Job::Write {
            ops: vec![
                PreparedOp::Put {
                    pk: "p".into(),
                    sk: "half-written".into(),
                    version: 1,
                    data: "{}".into(),
                    gsi1: None,
                    expires_at: None,
                    condition: Condition::NotExists,
                },
                PreparedOp::Check {
                    pk: "p".into(),
                    sk: "shared".into(),
                    condition: Condition::NotExists,
                },
            ],
            now: 0,
        };
        let jobs = [
            put_job("p", "shared", 1, Condition::NotExists),
            two_ops_then_fail,
            put_job("p", "shared", 3, Condition::NotExists),
            Job::Increment {
                pk: "c".into(),
                sk: "n".into(),
                by: 1,
            },
            put_job("p", "own", 5, Condition::NotExists),
            Job::Increment {
                pk: "c".into(),
                sk: "n".into(),
                by: 1,
            },
            put_job("p", "shared", 7, Condition::VersionIs(1)),
        ];
        let (results, committed) = commit_batch(&mut conn, &jobs.iter().collect::<Vec<_>>());
        assert!(committed);
        let shape: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(Done::Written) => "written".to_string(),
                Ok(Done::Counter(n)) => format!("counter {n}"),
                Ok(Done::Numbered(firsts)) => format!("numbered {firsts:?}"),
                Err(StoreError::ConditionFailed { pk, sk }) => format!("failed {pk}/{sk}"),
                Err(e) => format!("error {e}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "written",
                "failed p/shared",
                "failed p/shared",
                "counter 1",
                "written",
                "counter 2",
                "written"
            ]
        );
        assert_eq!(stored_data(&conn, "p", "shared").as_deref(), Some("{\"writer\":7}"));
        assert_eq!(stored_data(&conn, "p", "own").as_deref(), Some("{\"writer\":5}"));
        assert_eq!(
            stored_data(&conn, "p", "half-written"),
            None,
            "the failed caller's first op is undone"
        );
        assert!(conn.is_autocommit(), "the batch's transaction is closed");
    }

    fn numbered_job(sk: &'static str, condition: Condition, panics: bool) -> Job {
        Job::Numbered {
            takes: vec![("c".into(), "n".into(), 2)],
            build: Arc::new(move |firsts: &[u64]| {
                assert!(!panics, "a builder that panics");
                vec![WriteOp::Put {
                    record: Record::new("p", sk, serde_json::json!({ "first": firsts[0] })),
                    condition,
                }]
            }),
            now: 0,
        }
    }

    /// Numbered writes in one batch: each takes its range in its own savepoint, so one whose
    /// condition fails (or whose builder panics) gives its numbers back and the next caller
    /// takes them; the writer carries on.
    #[test]
    fn a_numbered_write_that_fails_in_a_batch_gives_its_numbers_back() {
        let (_dir, mut conn) = batch_connection();
        let jobs = [
            numbered_job("a", Condition::NotExists, false),
            numbered_job("a", Condition::NotExists, false),
            numbered_job("b", Condition::NotExists, true),
            numbered_job("b", Condition::NotExists, false),
        ];
        let (results, committed) = commit_batch(&mut conn, &jobs.iter().collect::<Vec<_>>());
        assert!(committed);
        let shape: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(Done::Numbered(firsts)) => format!("numbered {firsts:?}"),
                Err(StoreError::ConditionFailed { pk, sk }) => format!("failed {pk}/{sk}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "numbered [1]",
                "failed p/a",
                "Err(Invalid(\"building a numbered write panicked\"))",
                "numbered [3]"
            ]
        );
        assert_eq!(stored_data(&conn, "p", "b").as_deref(), Some("{\"first\":3}"));
        let counter: i64 = conn
            .query_row("SELECT value FROM counters WHERE pk = 'c' AND sk = 'n'", [], |row| {
                row.get(0)
            })
            .expect("counter");
        assert_eq!(counter, 4);
    }

    /// When the batch's transaction cannot even begin, every caller hears `Unavailable`.
    #[test]
    fn a_batch_that_cannot_begin_fails_every_caller_and_writes_nothing() {
        let (dir, mut conn) = batch_connection();
        let other = open_connection(&dir.path().join("batch.sqlite")).expect("second connection");
        other.busy_timeout(Duration::ZERO).expect("timeout");
        conn.busy_timeout(Duration::ZERO).expect("timeout");
        other.execute_batch("BEGIN IMMEDIATE").expect("hold the write lock");
        let jobs = [
            put_job("p", "a", 1, Condition::NotExists),
            put_job("p", "b", 2, Condition::Always),
        ];
        let (results, committed) = commit_batch(&mut conn, &jobs.iter().collect::<Vec<_>>());
        assert!(!committed);
        assert!(
            results.iter().all(|r| matches!(r, Err(StoreError::Unavailable(_)))),
            "got {results:?}"
        );
        other.execute_batch("ROLLBACK").expect("release");
        assert_eq!(stored_data(&conn, "p", "a"), None);
    }

    /// Concurrent callers share commits: 64 writes at once take fewer transactions than
    /// writes, and every one is readable once its call returned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_are_readable_when_answered() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteRecordStore::open(&dir.path().join("s.sqlite"), Arc::new(SystemClock)).expect("open");
        let writes = (0..64).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let sk = format!("k{i:02}");
                store
                    .write(vec![WriteOp::Put {
                        record: Record::new("p", sk.clone(), serde_json::json!({"i": i})),
                        condition: Condition::NotExists,
                    }])
                    .await
                    .expect("write");
                store.get("p", &sk).await.expect("get").expect("visible once answered")
            })
        });
        for w in futures::future::join_all(writes).await {
            w.expect("task");
        }
        let stats = store.group_commit_stats();
        assert_eq!(stats.requests, 64);
        assert!(stats.commits < 64, "no batching: {stats:?}");
    }

    #[test]
    fn opening_a_path_in_a_missing_directory_is_unavailable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = SqliteRecordStore::open(&dir.path().join("nope/store.sqlite"), Arc::new(SystemClock))
            .expect_err("no directory");
        assert!(matches!(err, StoreError::Unavailable(_)), "got {err:?}");
    }
}
