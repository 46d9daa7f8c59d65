//! `Queue` on SQLite: the local server's work queues, with the same visibility timeout,
//! receive limit and dead-letter semantics as the SQS queues (see `ports::Queue`).
//!
//! One table `queue_messages` holds every queue's messages, told apart by the queue
//! name; `seq` orders them oldest first. Times (`visible_at`, `sent_at`) are unix
//! milliseconds from the injected `Clock`, never the wall clock. Each receive hands out a
//! fresh receipt, so a receipt from an earlier delivery can no longer ack or release.
//! The file may be the store's own file or a separate one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::sqlite_store::{lock, open_connection};
use crate::ports::{
    dead_letter_error, Clock, DeadLetter, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage, MAX_RECEIVES,
};

/// `dead_letters` lists at most this many.
const DEAD_LETTER_PAGE: i64 = 100;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS queue_messages (
    seq           INTEGER PRIMARY KEY,
    queue         TEXT    NOT NULL,
    id            TEXT    NOT NULL UNIQUE,
    body          TEXT    NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    visible_at    INTEGER NOT NULL,
    dead          INTEGER NOT NULL DEFAULT 0,
    sent_at       INTEGER NOT NULL,
    receipt       TEXT UNIQUE,
    error         TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_by_queue ON queue_messages (queue, dead, seq);
";

/// Adds the `error` column to a queue file made before dead letters kept their error.
fn add_error_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('queue_messages') WHERE name = 'error'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE queue_messages ADD COLUMN error TEXT")?;
    }
    Ok(())
}

/// The durable SQLite queues.
#[derive(Clone)]
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
    visibility_ms: i64,
}

impl std::fmt::Debug for SqliteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteQueue")
            .field("visibility_ms", &self.visibility_ms)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SqliteQueue {
    /// Open (or create) the queues at `path`. A received message stays invisible for
    /// `visibility_timeout` unless acked or released first.
    pub fn open(path: &Path, clock: Arc<dyn Clock>, visibility_timeout: Duration) -> Result<Self, QueueError> {
        let conn = open_connection(path).map_err(QueueError::unavailable)?;
        conn.execute_batch(SCHEMA).map_err(QueueError::unavailable)?;
        add_error_column(&conn).map_err(QueueError::unavailable)?;
        Ok(SqliteQueue {
            conn: Arc::new(Mutex::new(conn)),
            clock,
            visibility_ms: millis(visibility_timeout),
        })
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// Run `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut lock(&conn)))
            .await
            .map_err(QueueError::unavailable)?
            .map_err(QueueError::unavailable)
    }
}

/// Hand out up to `max` visible messages of `queue`, oldest first, moving the ones that
/// have used up their receives to the dead letters on the way.
fn receive_blocking(
    conn: &mut Connection,
    queue: &str,
    max: usize,
    now: i64,
    visibility_ms: i64,
) -> rusqlite::Result<Vec<ReceivedMessage>> {
    let max_receives = QueueName::parse(queue).map_or(MAX_RECEIVES, QueueName::max_receives);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut out = Vec::new();
    let mut after_seq = i64::MIN;
    'scan: while out.len() < max {
        let batch: Vec<(i64, String, String, u32)> = {
            let mut st = tx.prepare_cached(
                "SELECT seq, id, body, receive_count FROM queue_messages \
                 WHERE queue = ?1 AND dead = 0 AND visible_at <= ?2 AND seq > ?3 \
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = st.query_map(params![queue, now, after_seq, (max - out.len()) as i64], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if batch.is_empty() {
            break 'scan;
        }
        for (seq, id, body, count) in batch {
            after_seq = seq;
            if count >= max_receives {
                tx.prepare_cached("UPDATE queue_messages SET dead = 1, receipt = NULL WHERE seq = ?1")?
                    .execute(params![seq])?;
                continue;
            }
            let receipt = uuid::Uuid::new_v4().to_string();
            tx.prepare_cached(
                "UPDATE queue_messages SET receive_count = receive_count + 1, visible_at = ?2, receipt = ?3 \
                 WHERE seq = ?1",
            )?
            .execute(params![seq, now.saturating_add(visibility_ms), receipt])?;
            out.push(ReceivedMessage {
                id,
                receipt,
                body,
                receive_count: count + 1,
            });
        }
    }
    tx.commit()?;
    Ok(out)
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, queue: QueueName, body: &str) -> Result<String, QueueError> {
        let id = uuid::Uuid::new_v4().to_string();
        let (mid, body, now) = (id.clone(), body.to_string(), self.now_ms());
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO queue_messages (queue, id, body, receive_count, visible_at, dead, sent_at) \
                 VALUES (?1, ?2, ?3, 0, ?4, 0, ?4)",
            )?
            .execute(params![queue.as_str(), mid, body, now])
        })
        .await?;
        Ok(id)
    }

    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let (now, visibility_ms) = (self.now_ms(), self.visibility_ms);
        self.run(move |conn| receive_blocking(conn, queue.as_str(), max, now, visibility_ms))
            .await
    }

    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), QueueError> {
        let r = receipt.to_string();
        let deleted = self
            .run(move |conn| {
                conn.prepare_cached("DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2 AND dead = 0")?
                    .execute(params![queue.as_str(), r])
            })
            .await?;
        match deleted {
            0 => Err(QueueError::NotFound(format!("receipt {receipt} on {queue}"))),
            _ => Ok(()),
        }
    }

    async fn release(&self, queue: QueueName, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let r = receipt.to_string();
        let visible_at = self.now_ms().saturating_add(millis(delay));
        let updated = self
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE queue_messages SET visible_at = ?3 WHERE queue = ?1 AND receipt = ?2 AND dead = 0",
                )?
                .execute(params![queue.as_str(), r, visible_at])
            })
            .await?;
        match updated {
            0 => Err(QueueError::NotFound(format!("receipt {receipt} on {queue}"))),
            _ => Ok(()),
        }
    }

    async fn dead_letter(&self, queue: QueueName, receipt: &str, _body: &str, error: &str) -> Result<(), QueueError> {
        let (r, error) = (receipt.to_string(), dead_letter_error(error).to_string());
        let updated = self
            .run(move |conn| {
                conn.prepare_cached(
                    "UPDATE queue_messages SET dead = 1, receipt = NULL, error = ?3 \
                     WHERE queue = ?1 AND receipt = ?2 AND dead = 0",
                )?
                .execute(params![queue.as_str(), r, error])
            })
            .await?;
        match updated {
            0 => Err(QueueError::NotFound(format!("receipt {receipt} on {queue}"))),
            _ => Ok(()),
        }
    }

    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        self.run(move |conn| {
            let mut st = conn.prepare_cached(
                "SELECT id, body, receive_count, error FROM queue_messages WHERE queue = ?1 AND dead = 1 \
                 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![queue.as_str(), DEAD_LETTER_PAGE], |row| {
                Ok(DeadLetter {
                    id: row.get(0)?,
                    queue,
                    body: row.get(1)?,
                    receive_count: row.get(2)?,
                    error: row.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let now = self.now_ms();
        let (waiting, in_flight, dead_letters) = self
            .run(move |conn| {
                conn.query_row(
                    "SELECT COALESCE(SUM(dead = 0 AND visible_at <= ?2), 0), \
                            COALESCE(SUM(dead = 0 AND visible_at > ?2), 0), COALESCE(SUM(dead = 1), 0) \
                     FROM queue_messages WHERE queue = ?1",
                    params![queue.as_str(), now],
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?)),
                )
            })
            .await?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(QueueDepth {
            queue,
            waiting: n(waiting),
            in_flight: n(in_flight),
            dead_letters: n(dead_letters),
        })
    }

    async fn replay(&self, queue: QueueName, id: &str) -> Result<(), QueueError> {
        let (mid, now) = (id.to_string(), self.now_ms());
        // A replayed message joins the back of the queue, like a fresh send.
        let updated = self
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let found: Option<i64> = tx
                    .prepare_cached("SELECT seq FROM queue_messages WHERE queue = ?1 AND id = ?2 AND dead = 1")?
                    .query_row(params![queue.as_str(), mid], |row| row.get(0))
                    .optional()?;
                let n = match found {
                    None => 0,
                    Some(seq) => tx
                        .prepare_cached(
                            "UPDATE queue_messages SET seq = (SELECT max(seq) + 1 FROM queue_messages), \
                             dead = 0, receive_count = 0, visible_at = ?2, receipt = NULL, error = NULL \
                             WHERE seq = ?1",
                        )?
                        .execute(params![seq, now])?,
                };
                tx.commit()?;
                Ok(n)
            })
            .await?;
        match updated {
            0 => Err(QueueError::NotFound(format!("dead letter {id} on {queue}"))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;

    /// A queue file made before dead letters kept their error gains the column on open,
    /// keeps its messages, and dead-letters with a reason afterwards.
    #[tokio::test]
    async fn a_queue_file_without_the_error_column_is_upgraded_on_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queues.sqlite");
        open_connection(&path)
            .expect("connection")
            .execute_batch(
                "CREATE TABLE queue_messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, \
                 id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0, \
                 visible_at INTEGER NOT NULL, dead INTEGER NOT NULL DEFAULT 0, sent_at INTEGER NOT NULL, \
                 receipt TEXT UNIQUE); \
                 INSERT INTO queue_messages (queue, id, body, visible_at, sent_at) \
                 VALUES ('ticket-closed', 'old-1', 'kept', 0, 0);",
            )
            .expect("old schema");
        let q = SqliteQueue::open(&path, Arc::new(SystemClock), Duration::from_secs(30)).expect("open");
        let got = q.receive(QueueName::TicketClosed, 10).await.expect("receive");
        assert_eq!((got.len(), got[0].body.as_str()), (1, "kept"));
        q.dead_letter(QueueName::TicketClosed, &got[0].receipt, "kept", "why")
            .await
            .expect("dead letter");
        let dead = q.dead_letters(QueueName::TicketClosed).await.expect("list");
        assert_eq!(dead[0].error.as_deref(), Some("why"));
        // Opening again finds the column and changes nothing.
        drop(q);
        let q = SqliteQueue::open(&path, Arc::new(SystemClock), Duration::from_secs(30)).expect("reopen");
        assert_eq!(q.dead_letters(QueueName::TicketClosed).await.expect("list").len(), 1);
    }
}
