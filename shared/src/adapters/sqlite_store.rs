//! `RecordStore` on one SQLite file: the local server's storage.
//!
//! One table `records` keyed by `(pk, sk)` with the secondary index `(gsi1pk, gsi1sk)`, and
//! one table `counters` for `increment`. WAL journal with `synchronous=FULL`, so a write
//! that returned survives a killed process. SQLite calls are blocking: each runs on
//! `spawn_blocking` with the one connection behind a mutex, which also serialises writers.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use crate::ports::{Clock, Condition, Cursor, Index, Page, Query, Record, RecordStore, StoreError, WriteOp};

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many operations in one `write`, as DynamoDB allows.
const MAX_OPS: usize = 100;

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

/// The durable SQLite record store.
#[derive(Clone)]
pub struct SqliteRecordStore {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRecordStore").finish_non_exhaustive()
    }
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

impl SqliteRecordStore {
    /// Open (or create) the store at `path`. `clock` decides which records have expired.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let conn = open_connection(path).map_err(StoreError::unavailable)?;
        conn.execute_batch(SCHEMA).map_err(StoreError::unavailable)?;
        Ok(SqliteRecordStore {
            conn: Arc::new(Mutex::new(conn)),
            clock,
        })
    }

    fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// Run `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(StoreError::unavailable)?
    }
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

fn write_blocking(conn: &mut Connection, ops: &[PreparedOp], now: i64) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::unavailable)?;
    for op in ops {
        let (pk, sk, condition) = match op {
            PreparedOp::Put { pk, sk, condition, .. }
            | PreparedOp::Delete { pk, sk, condition }
            | PreparedOp::Check { pk, sk, condition } => (pk, sk, *condition),
        };
        if condition != Condition::Always && !holds(condition, live_version(&tx, pk, sk, now)?) {
            // Dropping `tx` rolls back whatever earlier operations wrote.
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
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO records (pk, sk, version, data, gsi1pk, gsi1sk, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .and_then(|mut st| st.execute(params![pk, sk, version, data, gpk, gsk, expires_at]))
            }
            PreparedOp::Delete { pk, sk, .. } => tx
                .prepare_cached("DELETE FROM records WHERE pk = ?1 AND sk = ?2")
                .and_then(|mut st| st.execute(params![pk, sk])),
            PreparedOp::Check { .. } => Ok(0),
        };
        done.map_err(StoreError::unavailable)?;
    }
    tx.commit().map_err(StoreError::unavailable)
}

#[async_trait]
impl RecordStore for SqliteRecordStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
        let (pk, sk, now) = (pk.to_string(), sk.to_string(), self.now());
        let row = self
            .run(move |conn| {
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
        let mut rows = self.run(move |conn| query_blocking(conn, &q, now)).await?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let items = rows.into_iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let next = if more { items.last().map(Cursor::after) } else { None };
        Ok(Page { items, next })
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if ops.len() > MAX_OPS {
            return Err(StoreError::Invalid(format!(
                "{} operations in one write; at most {MAX_OPS}",
                ops.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for op in &ops {
            let (pk, sk) = op.key();
            if !seen.insert((pk, sk)) {
                return Err(StoreError::Invalid(format!("two operations on {pk}/{sk} in one write")));
            }
        }
        let prepared = ops
            .into_iter()
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
            .collect::<Result<Vec<_>, StoreError>>()?;
        if prepared.is_empty() {
            return Ok(());
        }
        let now = self.now();
        self.run(move |conn| write_blocking(conn, &prepared, now)).await
    }

    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
        let (pk, sk, by) = (pk.to_string(), sk.to_string(), to_i64("increment", by)?);
        let value: i64 = self
            .run(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO counters (pk, sk, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (pk, sk) DO UPDATE SET value = value + excluded.value \
                     RETURNING value",
                )
                .and_then(|mut st| st.query_row(params![pk, sk, by], |row| row.get(0)))
                .map_err(StoreError::unavailable)
            })
            .await?;
        u64::try_from(value).map_err(|_| StoreError::Invalid(format!("counter overflowed to {value}")))
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
        {
            let conn = lock(&store.conn);
            conn.execute(
                "INSERT INTO records (pk, sk, version, data) VALUES ('p', 's', 1, '{not json')",
                [],
            )
            .expect("raw insert");
        }
        match store.get("p", "s").await {
            Err(StoreError::Corrupt { pk, sk, .. }) => {
                assert_eq!((pk.as_str(), sk.as_str()), ("p", "s"))
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let page = store.query(&Query::partition(Index::Primary, "p")).await;
        assert!(matches!(page, Err(StoreError::Corrupt { .. })), "got {page:?}");
    }

    #[test]
    fn opening_a_path_in_a_missing_directory_is_unavailable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = SqliteRecordStore::open(&dir.path().join("nope/store.sqlite"), Arc::new(SystemClock))
            .expect_err("no directory");
        assert!(matches!(err, StoreError::Unavailable(_)), "got {err:?}");
    }
}
