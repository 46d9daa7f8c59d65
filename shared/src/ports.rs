//! The narrow async traits that everything outside `domain` talks through: storage,
//! queues, outgoing mail, secrets, time and the Datto RMM calls the jobs make. Adapters in `adapters/` implement them.
//!
//! Each method's doc comment states the guarantee every adapter is judged by; the
//! contract suites in `tests/it/contract/` check those guarantees against each adapter.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::alerts::{AlertFacts, AlertUid};

// ---------------------------------------------------------------------------------------
// Storage
// ---------------------------------------------------------------------------------------

/// Which key a query walks: the primary `(pk, sk)` or the secondary index `(gsi1pk, gsi1sk)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    Primary,
    Gsi1,
}

/// One stored item. `data` is the aggregate's JSON; `version` counts its writes and is
/// what conditional writes compare against.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub pk: String,
    pub sk: String,
    pub version: u64,
    pub data: serde_json::Value,
    /// Secondary index key `(gsi1pk, gsi1sk)`, when the record should be findable by it.
    pub gsi1: Option<(String, String)>,
    /// Unix seconds after which the record counts as gone (reads filter it; the backend may
    /// delete it later).
    pub expires_at: Option<i64>,
}

impl Record {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>, data: serde_json::Value) -> Self {
        Record {
            pk: pk.into(),
            sk: sk.into(),
            version: 1,
            data,
            gsi1: None,
            expires_at: None,
        }
    }
}

/// The precondition of one write inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// No precondition.
    Always,
    /// The item must not exist (or must have expired).
    NotExists,
    /// The item must exist (any version).
    Exists,
    /// The item must exist with exactly this version.
    VersionIs(u64),
}

/// One operation of an atomic write.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Store `record` as given (its `version` is written as is) if `condition` holds.
    Put { record: Record, condition: Condition },
    /// Delete the item if `condition` holds.
    Delete {
        pk: String,
        sk: String,
        condition: Condition,
    },
    /// Write nothing; only require `condition` of the item.
    Check {
        pk: String,
        sk: String,
        condition: Condition,
    },
}

impl WriteOp {
    pub fn key(&self) -> (&str, &str) {
        match self {
            WriteOp::Put { record, .. } => (&record.pk, &record.sk),
            WriteOp::Delete { pk, sk, .. } | WriteOp::Check { pk, sk, .. } => (pk, sk),
        }
    }
}

/// Numbers to take from one counter in a [`RecordStore::write_numbered`]: `count`
/// consecutive values of the counter at `(pk, sk)` (absent = 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterTake {
    pub pk: String,
    pub sk: String,
    pub count: u64,
}

impl CounterTake {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>, count: u64) -> Self {
        CounterTake {
            pk: pk.into(),
            sk: sk.into(),
            count,
        }
    }
}

/// Builds the operations of a numbered write from the first number taken from each
/// counter (in the order of the takes). It may be called more than once (a backend that
/// retries calls it again with the new numbers) and must depend only on its argument.
pub type NumberedOps = std::sync::Arc<dyn Fn(&[u64]) -> Vec<WriteOp> + Send + Sync>;

/// A page-wise walk over one partition of the primary key or of the secondary index.
#[derive(Debug, Clone)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    /// Only sort keys starting with this prefix.
    pub sk_prefix: Option<String>,
    /// At most this many records per page (1..=1000).
    pub limit: usize,
    /// Start after this record (the `next` of the previous page, or the key of any record
    /// of the partition).
    pub start_after: Option<Cursor>,
    /// Walk sort keys from high to low.
    pub descending: bool,
}

impl Query {
    pub fn partition(index: Index, partition: impl Into<String>) -> Self {
        Query {
            index,
            partition: partition.into(),
            sk_prefix: None,
            limit: 100,
            start_after: None,
            descending: false,
        }
    }
}

/// The position of a record in a walk: its primary key and, for index walks, its index key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub pk: String,
    pub sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi1: Option<(String, String)>,
}

impl Cursor {
    /// The cursor that continues a walk right after `record`.
    pub fn after(record: &Record) -> Cursor {
        Cursor {
            pk: record.pk.clone(),
            sk: record.sk.clone(),
            gsi1: record.gsi1.clone(),
        }
    }
}

/// One page of a query. `next` is present when more records may follow.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Record>,
    pub next: Option<Cursor>,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A condition of an atomic write did not hold; nothing was written.
    #[error("condition failed on {pk}/{sk}")]
    ConditionFailed { pk: String, sk: String },
    /// The backend could not be reached or refused the call; the caller may retry.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The caller asked for something the store cannot do (two writes to one item, a
    /// foreign cursor, more than 100 operations).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// Stored data could not be read back.
    #[error("corrupt record {pk}/{sk}: {reason}")]
    Corrupt { pk: String, sk: String, reason: String },
}

impl StoreError {
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

/// Partitions whose sort key is the hash of a secret (sessions, personal tokens, setup
/// tokens): adapters never put those keys in a log line or span.
pub const SECRET_KEYED_PARTITIONS: [&str; 3] = ["session", "api-token", "setup-token"];

/// The sort key as a log line may show it (`<hash>` for a secret-keyed partition).
pub fn loggable_sk<'a>(pk: &str, sk: &'a str) -> &'a str {
    if SECRET_KEYED_PARTITIONS.contains(&pk) {
        "<hash>"
    } else {
        sk
    }
}

/// Durable keyed storage with conditional, atomic multi-item writes — the single storage
/// primitive; the typed repositories in `store/` are built on it.
#[async_trait]
pub trait RecordStore: Send + Sync {
    /// The record at `(pk, sk)`, or `None` if absent or expired. Strongly consistent.
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError>;

    /// Records of one partition in sort-key order, expired ones left out. A page holds at
    /// most `limit` items; following `next` until it is `None` visits every record once.
    async fn query(&self, query: &Query) -> Result<Page, StoreError>;

    /// Apply all operations atomically: when one condition fails nothing is written and the
    /// error is `ConditionFailed` naming that item. At most 100 operations, one per item.
    /// Returns only once the write is durable.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError>;

    /// Take numbers from counters and write what `build` makes of them, as one atomic
    /// write under the rules of `write` (the built operations count against its limit of
    /// 100). Returns the first number taken from each counter, in the order of `takes`:
    /// take *i* got `first[i] ..first[i] + count`. Numbers are never handed out twice,
    /// whether the write succeeds or not, so a caller that loses a race on a condition
    /// leaves a gap, never a duplicate; when the write fails nothing `build` made is
    /// written (the numbers may stay taken).
    ///
    /// The default takes each range with its own `increment` first (one durable write
    /// each) and then writes; a backend that can take them inside the write's own
    /// transaction (SQLite) overrides it.
    async fn write_numbered(&self, takes: &[CounterTake], build: NumberedOps) -> Result<Vec<u64>, StoreError> {
        let mut firsts = Vec::with_capacity(takes.len());
        for t in takes {
            let last = self.increment(&t.pk, &t.sk, t.count).await?;
            firsts.push(last + 1 - t.count);
        }
        self.write(build(&firsts)).await?;
        Ok(firsts)
    }

    /// Atomically add `by` to the counter at `(pk, sk)` (absent = 0) and return the new
    /// value. Two concurrent calls never return the same value.
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError>;

    /// Like `increment`, for counters nobody needs after `expires_at` (unix seconds): the
    /// backend may delete them after that. Backends without expiry keep them (the default).
    async fn increment_expiring(&self, pk: &str, sk: &str, by: u64, expires_at: i64) -> Result<u64, StoreError> {
        let _ = expires_at;
        self.increment(pk, sk, by).await
    }
}

// ---------------------------------------------------------------------------------------
// Queues
// ---------------------------------------------------------------------------------------

/// The asynchronous work queues of deskbridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum QueueName {
    TicketClosed,
    AlertEnrich,
    SessionImport,
    DattoSync,
}

impl QueueName {
    pub const ALL: [QueueName; 4] = [
        QueueName::TicketClosed,
        QueueName::AlertEnrich,
        QueueName::SessionImport,
        QueueName::DattoSync,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::TicketClosed => "ticket-closed",
            QueueName::AlertEnrich => "alert-enrich",
            QueueName::SessionImport => "session-import",
            QueueName::DattoSync => "datto-sync",
        }
    }

    pub fn parse(s: &str) -> Option<QueueName> {
        QueueName::ALL.into_iter().find(|q| q.as_str() == s)
    }

    /// How many receives a message of this queue gets before the dead-letter queue:
    /// `MAX_RECEIVES`, except session imports, which follow their retry schedule
    /// (`jobs::session_import::RETRY_SCHEDULE`: six waits, so seven receives).
    pub fn max_receives(self) -> u32 {
        match self {
            QueueName::SessionImport => SESSION_IMPORT_RECEIVES,
            _ => MAX_RECEIVES,
        }
    }
}

/// Receives of a `session-import` message: one first try and one after each of the six
/// waits of its retry schedule (5 s, 15 s, 30 s, 1 min, 2 min, 5 min).
pub const SESSION_IMPORT_RECEIVES: u32 = 7;

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many receives a message gets before it moves to the dead-letter queue (see
/// `QueueName::max_receives` for the one queue that differs).
pub const MAX_RECEIVES: u32 = 5;

/// A message handed out by `receive`; invisible to other receivers until acked, released
/// or its visibility timeout passes.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
    /// 1 on the first delivery.
    pub receive_count: u32,
}

/// A message that exhausted its receives, or could never succeed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub queue: QueueName,
    pub body: String,
    pub receive_count: u32,
    /// Why its last delivery failed, as the consumer said; `None` for a message the queue
    /// moved on its own (a consumer that died mid-message, on every receive).
    pub error: Option<String>,
}

/// The longest failure text kept with a dead letter (bytes; a longer one is cut at a
/// character boundary). SQS message attributes and the console show it whole.
pub const DEAD_LETTER_ERROR_MAX: usize = 1024;

/// `error` cut to at most [`DEAD_LETTER_ERROR_MAX`] bytes.
pub fn dead_letter_error(error: &str) -> &str {
    let mut end = error.len().min(DEAD_LETTER_ERROR_MAX);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// How many messages a queue holds right now (approximate on SQS, which counts lazily).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueDepth {
    pub queue: QueueName,
    /// Visible, waiting for a consumer.
    pub waiting: u64,
    /// Received and not yet acked (invisible until their timeout).
    pub in_flight: u64,
    /// In the dead-letter queue.
    pub dead_letters: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("unknown receipt or message: {0}")]
    NotFound(String),
    /// This host has no such queue (e.g. a Lambda without that queue's URL).
    #[error("queue {0} is not configured on this host")]
    NotConfigured(QueueName),
}

impl QueueError {
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        QueueError::Unavailable(Box::new(e))
    }
}

/// At-least-once message queues with a visibility timeout and a dead-letter queue after
/// `MAX_RECEIVES` receives.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueue `body`; durable when this returns. Returns the message id.
    async fn send(&self, queue: QueueName, body: &str) -> Result<String, QueueError>;

    /// Up to `max` visible messages, each made invisible for the queue's visibility timeout
    /// and its receive count increased. A message received for the `MAX_RECEIVES`+1-th
    /// time goes to the dead-letter queue instead of being returned.
    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<ReceivedMessage>, QueueError>;

    /// Delete a received message for good.
    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), QueueError>;

    /// Make a received message visible again after `delay` (zero = at once).
    async fn release(&self, queue: QueueName, receipt: &str, delay: Duration) -> Result<(), QueueError>;

    /// Move a received message to the dead-letter queue now, whatever its receive count:
    /// it can never succeed, or it failed its last receive. `receipt` is from its current
    /// delivery and `body` its body (some queues re-send it); `error` says why it failed
    /// (kept with it, at most `DEAD_LETTER_ERROR_MAX` bytes). Afterwards `receive` no longer
    /// returns it and `dead_letters` lists it, for `replay` once the cause is fixed.
    async fn dead_letter(&self, queue: QueueName, receipt: &str, body: &str, error: &str) -> Result<(), QueueError>;

    /// Messages waiting in the queue's dead-letter queue, oldest first (at most 100).
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError>;

    /// How many messages wait, are in flight, and are dead-lettered.
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError>;

    /// Move one dead letter back onto its queue with a fresh receive count.
    async fn replay(&self, queue: QueueName, id: &str) -> Result<(), QueueError>;
}

// ---------------------------------------------------------------------------------------
// Mail
// ---------------------------------------------------------------------------------------

/// An outgoing plain-text e-mail.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutgoingMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

impl OutgoingMail {
    /// What every mailer refuses before handing a mail on: no recipient, an empty or
    /// malformed address, a line break in a header field (header injection).
    pub fn check(&self) -> Result<(), MailError> {
        if self.to.is_empty() {
            return Err(MailError::Rejected("no recipients".to_string()));
        }
        for address in std::iter::once(&self.from).chain(&self.to) {
            let trimmed = address.trim();
            if trimmed.is_empty() || !trimmed.contains('@') || trimmed.contains(['\r', '\n']) {
                return Err(MailError::Rejected(format!("invalid address {address:?}")));
            }
        }
        if self.subject.contains(['\r', '\n']) {
            return Err(MailError::Rejected("line break in subject".to_string()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail refused: {0}")]
    Rejected(String),
    #[error("mail service unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends e-mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Hand the message to the mail service; returns its message id once accepted.
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError>;
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

/// A secret value that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl SecretError {
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        SecretError::Unavailable(Box::new(e))
    }
}

/// Named secrets (vendor credentials, webhook state, event token).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The current value, or `None` when never set.
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretError>;
    /// Create or replace the value; durable when this returns.
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretError>;
}

// ---------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------

/// The current time, injectable so that no test depends on the wall clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += chrono::Duration::from_std(by).expect("duration in range");
    }
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

// ---------------------------------------------------------------------------------------
// Inbound mail
// ---------------------------------------------------------------------------------------

/// Where received raw e-mails are kept (SES writes them to S3 before invoking us).
#[async_trait]
pub trait MailSource: Send + Sync {
    /// The raw RFC 5322 bytes of the received message `message_id`.
    async fn fetch(&self, message_id: &str) -> Result<Vec<u8>, MailError>;
}

// ---------------------------------------------------------------------------------------
// Datto RMM: the calls the jobs make, as one narrow trait. The REST client implements it
// in production (`datto::connect`), scripted fakes in tests; wire types stay in `datto/`.
// ---------------------------------------------------------------------------------------

/// A Datto site as the sync needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct DattoSite {
    pub uid: String,
    pub name: String,
}

/// A Datto alert as the jobs need it.
#[derive(Debug, Clone, PartialEq)]
pub struct DattoAlert {
    pub uid: AlertUid,
    pub resolved: bool,
    pub facts: AlertFacts,
}

/// What Datto says when asked to resolve an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveResult {
    Resolved,
    AlreadyResolved,
    /// Datto does not know the alert (404/400 after the confirming GET).
    Unknown,
}

/// A Datto failure as the jobs see it: `retryable` for 429, 403 blocks, 5xx and timeouts.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DattoCallError {
    pub retryable: bool,
    pub message: String,
}

#[async_trait]
pub trait DattoApi: Send + Sync {
    /// Every site of the account (all pages).
    async fn sites(&self) -> Result<Vec<DattoSite>, DattoCallError>;
    /// Every open alert of the account (all pages; may be incomplete — never conclude
    /// "resolved" from absence).
    async fn open_alerts(&self) -> Result<Vec<DattoAlert>, DattoCallError>;
    /// One alert, `None` when Datto does not know it.
    async fn alert(&self, uid: &AlertUid) -> Result<Option<DattoAlert>, DattoCallError>;
    async fn resolve(&self, uid: &AlertUid) -> Result<ResolveResult, DattoCallError>;
    /// A device's details as Datto sends them, `None` when Datto does not know it.
    async fn device(&self, device_uid: &str) -> Result<Option<serde_json::Value>, DattoCallError>;
    /// Requests the whole account may still make in Datto's current window before Datto
    /// slows it down (`GET /system/request_rate`); `None` when the account does not say.
    async fn read_headroom(&self) -> Result<Option<i64>, DattoCallError>;
    /// One cheap authenticated call; answers the account's name.
    async fn check(&self) -> Result<String, DattoCallError>;
    /// Requests this client has made so far (for sync summaries).
    fn requests_used(&self) -> u64;
}

/// Builds a Datto API client from the settings and secrets in force now.
#[async_trait]
pub trait DattoConnect: Send + Sync {
    /// `Ok(None)` while the API is not configured (no URL, key or secret).
    async fn connect(&self) -> Result<Option<std::sync::Arc<dyn DattoApi>>, DattoCallError>;
}

/// A connector for hosts and tests without Datto API access.
pub struct NoDattoApi;

#[async_trait]
impl DattoConnect for NoDattoApi {
    async fn connect(&self) -> Result<Option<std::sync::Arc<dyn DattoApi>>, DattoCallError> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            from: "desk@example.com".into(),
            to: vec!["tech@example.com".into()],
            subject: "Ticket 1".into(),
            text: "Hello\nthere".into(),
        }
    }

    type Spoil = fn(&mut OutgoingMail);

    #[test]
    fn header_fields_with_line_breaks_or_bad_addresses_are_refused() {
        let cases: [(&str, Spoil); 5] = [
            ("no recipient", |m| m.to.clear()),
            ("empty sender", |m| m.from.clear()),
            ("recipient without @", |m| m.to = vec!["tech".into()]),
            ("line break in subject", |m| m.subject = "a\r\nBcc: x@y".into()),
            ("line break in recipient", |m| m.to = vec!["a@b\nBcc: x@y".into()]),
        ];
        for (reason, spoil) in cases {
            let mut m = mail();
            spoil(&mut m);
            assert!(matches!(m.check(), Err(MailError::Rejected(_))), "{reason}");
        }
        assert!(mail().check().is_ok(), "line breaks in the text are fine");
    }
}
