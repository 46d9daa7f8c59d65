//! `RecordStore` on one DynamoDB table (the production store): items keyed `(pk, sk)`, an
//! optional secondary index `gsi1`, conditional writes and transactions.
//!
//! Item layout: `pk` (S), `sk` (S), `version` (N), `data` (S, the record's JSON as text),
//! `gsi1pk`/`gsi1sk` (S, only when the record has an index key), `expires_at` (N, unix
//! seconds, only when set; the table's TTL attribute). Counters of `increment` keep their
//! value in `counter` (N) and are not records.
//!
//! DynamoDB's TTL deletes lazily and the emulators never do, so expiry is enforced here:
//! reads leave out items with `expires_at <= now` and every condition treats them as absent.
//!
//! Retries: the crate's one [`RetryPolicy`] ([`default_retry`]) owns them, for every call.
//! The SDK's own retries are switched off on the client this adapter uses, so attempts
//! never multiply (SDK 3 × ours 5) and one schedule decides: throttling, 5xx, timeouts,
//! dropped connections and transactions cancelled by a concurrent one (which the SDK would
//! not retry) are retried; validation errors, failed conditions and missing tables are
//! not. A transaction keeps its client request token across retries after an unknown
//! outcome (DynamoDB then applies it at most once) and takes a new one after a
//! cancellation, which applied nothing. Single puts, deletes and counter additions have no
//! such token: a retry after a lost answer may find its own write (a failed condition, or
//! a counter one higher: a gap, which ticket numbers and budgets tolerate).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem,
};
use aws_sdk_dynamodb::Client;

use crate::ports::{
    Condition, CounterTake, Cursor, Index, NumberedOps, Page, Query, Record, RecordStore, StoreError, WriteOp,
};
use crate::retry::{tokio_sleep, ClassifyRetry, RetryClass, RetryPolicy};

/// Name of the secondary index on `(gsi1pk, gsi1sk)`.
pub const GSI1: &str = "gsi1";

const PK: &str = "pk";
const SK: &str = "sk";
const VERSION: &str = "version";
const DATA: &str = "data";
const GSI1PK: &str = "gsi1pk";
const GSI1SK: &str = "gsi1sk";
const EXPIRES_AT: &str = "expires_at";
const COUNTER: &str = "counter";

/// DynamoDB's limit on actions per transaction, and the port's.
const MAX_OPS: usize = 100;

/// Error codes of throttling: the table or account is over its throughput for a moment.
const THROTTLING: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];
/// Error codes of a passing failure on DynamoDB's side.
const TRANSIENT: &[&str] = &[
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
    "TransactionConflictException",
];

/// The adapter's retry policy: four retries after 30, 60, 120, 240 ms (±50 %), about
/// 0.7 s at worst, well inside the 10-second functions; DynamoDB sends no `Retry-After`.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::new(vec![
        Duration::from_millis(30),
        Duration::from_millis(60),
        Duration::from_millis(120),
        Duration::from_millis(240),
    ])
}

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB-backed record store.
#[derive(Debug, Clone)]
pub struct DynamoRecordStore {
    client: Client,
    table: String,
    retry: RetryPolicy,
}

impl DynamoRecordStore {
    /// A store on `table`. It uses a copy of `client` with the SDK's retries switched off:
    /// [`default_retry`] retries instead (see the module notes).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        DynamoRecordStore {
            client: Client::from_conf(config),
            table: table.into(),
            retry: default_retry(),
        }
    }

    /// Retry by `policy` instead (tests: no waiting).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}

/// Create `table` with the layout this adapter expects (on-demand billing, index `gsi1`
/// with all attributes projected, TTL on `expires_at`) and wait until it is active.
/// An existing table of that name is left as it is, so local bootstrap can call this on
/// every start.
pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(invalid)
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(invalid)
    };
    let gsi = GlobalSecondaryIndex::builder()
        .index_name(GSI1)
        .key_schema(key(GSI1PK, KeyType::Hash)?)
        .key_schema(key(GSI1SK, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(invalid)?;
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(GSI1PK)?)
        .attribute_definitions(attr(GSI1SK)?)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.code() == Some("ResourceInUseException") => return Ok(()),
        Err(e) => return Err(classify(e)),
    }
    client
        .wait_until_table_exists()
        .table_name(table)
        .wait(Duration::from_secs(300))
        .await
        .map_err(StoreError::unavailable)?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(EXPIRES_AT)
                .enabled(true)
                .build()
                .map_err(invalid)?,
        )
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

#[async_trait]
impl RecordStore for DynamoRecordStore {
    #[tracing::instrument(skip_all, fields(table = %self.table, %pk, sk = %crate::ports::loggable_sk(pk, sk)))]
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
        let request = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true);
        let out = self.retried("GetItem", move || request.clone().send()).await?;
        let now = now_secs();
        match out.item() {
            Some(item) => {
                let record = record_from_item(item)?;
                Ok((!expired(&record, now)).then_some(record))
            }
            None => Ok(None),
        }
    }

    #[tracing::instrument(skip_all, fields(table = %self.table, partition = %query.partition))]
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        if !(1..=1000).contains(&query.limit) {
            return Err(StoreError::Invalid(format!(
                "query limit {} is not in 1..=1000",
                query.limit
            )));
        }
        let (index_name, pk_attr, sk_attr) = match query.index {
            Index::Primary => (None, PK, SK),
            Index::Gsi1 => (Some(GSI1), GSI1PK, GSI1SK),
        };
        let start = match &query.start_after {
            None => Start::Beginning,
            Some(cursor) => start_key(query, cursor)?,
        };
        let exclusive_start_key = match start {
            Start::Beginning => None,
            Start::After(key) => Some(key),
            Start::PastTheEnd => return Ok(Page::default()),
        };

        let mut names = HashMap::from([("#p".to_string(), pk_attr.to_string())]);
        let mut values = HashMap::from([(":p".to_string(), AttributeValue::S(query.partition.clone()))]);
        let mut key_condition = "#p = :p".to_string();
        if let Some(prefix) = &query.sk_prefix {
            key_condition.push_str(" AND begins_with(#s, :s)");
            names.insert("#s".to_string(), sk_attr.to_string());
            values.insert(":s".to_string(), AttributeValue::S(prefix.clone()));
        }

        let request = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index_name.map(str::to_string))
            .key_condition_expression(key_condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!query.descending)
            .limit(query.limit as i32)
            // Index reads are eventually consistent by nature; the table walk need not be.
            .set_consistent_read((query.index == Index::Primary).then_some(true))
            .set_exclusive_start_key(exclusive_start_key);
        let out = self.retried("Query", move || request.clone().send()).await?;

        let now = now_secs();
        let mut items = Vec::with_capacity(out.items().len());
        for item in out.items() {
            let record = record_from_item(item)?;
            if !expired(&record, now) {
                items.push(record);
            }
        }
        let next = match out.last_evaluated_key() {
            Some(last) if !last.is_empty() => Some(cursor_from_key(last)?),
            _ => None,
        };
        Ok(Page { items, next })
    }

    #[tracing::instrument(skip_all, fields(table = %self.table, ops = ops.len()))]
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        validate(&ops)?;
        // A check without a condition constrains nothing; DynamoDB would refuse it anyway.
        let ops: Vec<WriteOp> = ops
            .into_iter()
            .filter(|op| {
                !matches!(
                    op,
                    WriteOp::Check {
                        condition: Condition::Always,
                        ..
                    }
                )
            })
            .collect();
        if ops.is_empty() {
            return Ok(());
        }
        // One token per logical write; `write_transaction` renews it after a cancellation.
        let token = std::sync::Mutex::new(uuid::Uuid::new_v4().to_string());
        let (ops, token) = (&ops, &token);
        let outcome = self
            .retry
            .run(
                move || async move {
                    match ops.as_slice() {
                        [op] => self.write_one(op).await,
                        _ => self.write_transaction(ops, token).await,
                    }
                },
                tokio_sleep,
                log_retry("write"),
            )
            .await;
        outcome.map_err(Failure::into_store_error)
    }

    #[tracing::instrument(skip_all, fields(table = %self.table, %pk, sk = %crate::ports::loggable_sk(pk, sk)))]
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
        self.add_to_counter(pk, sk, by, None).await
    }

    /// The takes are `UpdateItem ADD`s sent at once, then the write is one
    /// `TransactWriteItems`: two round trips whatever the number of counters. Taking them
    /// inside the transaction instead (a conditional put of each counter) would cost 2
    /// write units per counter instead of 1 and make every new ticket conflict with every
    /// other on the counter item (docs/perf.md, "DynamoDB: counters").
    async fn write_numbered(&self, takes: &[CounterTake], build: NumberedOps) -> Result<Vec<u64>, StoreError> {
        let lasts =
            futures::future::try_join_all(takes.iter().map(|t| self.add_to_counter(&t.pk, &t.sk, t.count, None)))
                .await?;
        let firsts: Vec<u64> = lasts.iter().zip(takes).map(|(last, t)| last + 1 - t.count).collect();
        self.write(build(&firsts)).await?;
        Ok(firsts)
    }

    /// The counter also carries `expires_at`, so the table's TTL removes it later.
    #[tracing::instrument(skip_all, fields(table = %self.table, %pk, sk = %crate::ports::loggable_sk(pk, sk)))]
    async fn increment_expiring(&self, pk: &str, sk: &str, by: u64, expires_at: i64) -> Result<u64, StoreError> {
        self.add_to_counter(pk, sk, by, Some(expires_at)).await
    }
}

impl DynamoRecordStore {
    async fn add_to_counter(&self, pk: &str, sk: &str, by: u64, expires_at: Option<i64>) -> Result<u64, StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .update_expression(if expires_at.is_some() {
                "ADD #n :by SET #exp = :exp"
            } else {
                "ADD #n :by"
            })
            .expression_attribute_names("#n", COUNTER)
            .expression_attribute_values(":by", AttributeValue::N(by.to_string()));
        if let Some(at) = expires_at {
            update = update
                .expression_attribute_names("#exp", EXPIRES_AT)
                .expression_attribute_values(":exp", AttributeValue::N(at.to_string()));
        }
        let request = update.return_values(ReturnValue::UpdatedNew);
        let out = self.retried("UpdateItem", move || request.clone().send()).await?;
        let value = out
            .attributes()
            .and_then(|a| a.get(COUNTER))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok());
        value.ok_or_else(|| StoreError::Corrupt {
            pk: pk.to_string(),
            sk: sk.to_string(),
            reason: "counter is missing or not an unsigned integer".to_string(),
        })
    }
}

/// Why one attempt did not go through.
enum Failure {
    /// Trying again may succeed: throttling, a 5xx, a timeout, a concurrent transaction.
    Retry {
        class: RetryClass,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl ClassifyRetry for Failure {
    fn retry_class(&self) -> RetryClass {
        match self {
            Failure::Retry { class, .. } => *class,
            Failure::Store(_) => RetryClass::Permanent,
        }
    }
}

impl Failure {
    /// A failed call: retried when its class says so, else mapped by [`classify`].
    fn of<E>(err: SdkError<E>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match retry_class(&err) {
            RetryClass::Permanent => Failure::Store(classify(err)),
            class => Failure::Retry {
                class,
                source: Box::new(err),
            },
        }
    }

    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Retry { source, .. } => StoreError::Unavailable(source),
            Failure::Store(e) => e,
        }
    }
}

/// Logs each retry (owns its label: see `retry`'s notes on closures over `&E`).
fn log_retry(call: &'static str) -> impl FnMut(&Failure, Duration) {
    move |failure, wait| {
        if let Failure::Retry { class, source } = failure {
            tracing::warn!(call, ?class, ?wait, error = %source, "DynamoDB call failed; retrying");
        }
    }
}

impl DynamoRecordStore {
    /// Send a request (re-sent by `send` on each attempt) under the retry policy.
    async fn retried<T, E, Fut>(&self, call: &'static str, send: impl Fn() -> Fut) -> Result<T, StoreError>
    where
        Fut: std::future::Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.retry
            .run(
                move || {
                    let sent = send();
                    async move { sent.await.map_err(Failure::of) }
                },
                tokio_sleep,
                log_retry(call),
            )
            .await
            .map_err(Failure::into_store_error)
    }
}

impl DynamoRecordStore {
    /// A lone put or delete: one plain conditional request, cheaper than a transaction.
    async fn write_one(&self, op: &WriteOp) -> Result<(), Failure> {
        let (pk, sk) = op.key();
        let condition_failed = |conditional: bool| {
            conditional.then(|| {
                Failure::Store(StoreError::ConditionFailed {
                    pk: pk.to_string(),
                    sk: sk.to_string(),
                })
            })
        };
        match op {
            WriteOp::Put { record, condition } => {
                let expr = ConditionExpr::of(*condition);
                let sent = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item_of(record)?))
                    .set_condition_expression(expr.expression)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .send()
                    .await;
                sent.map(drop).map_err(|e| {
                    let failed = e
                        .as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception());
                    condition_failed(failed).unwrap_or_else(|| Failure::of(e))
                })
            }
            WriteOp::Delete { pk, sk, condition } => {
                let expr = ConditionExpr::of(*condition);
                let sent = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .set_condition_expression(expr.expression)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .send()
                    .await;
                sent.map(drop).map_err(|e| {
                    let failed = e
                        .as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception());
                    condition_failed(failed).unwrap_or_else(|| Failure::of(e))
                })
            }
            // Only a transaction can check without writing.
            WriteOp::Check { .. } => {
                let token = std::sync::Mutex::new(uuid::Uuid::new_v4().to_string());
                self.write_transaction(std::slice::from_ref(op), &token).await
            }
        }
    }

    /// One try of a transaction under the client request token `token` (renewed here after
    /// a cancellation, which applied nothing).
    async fn write_transaction(&self, ops: &[WriteOp], token: &std::sync::Mutex<String>) -> Result<(), Failure> {
        let mut items = Vec::with_capacity(ops.len());
        for op in ops {
            items.push(self.transact_item(op)?);
        }
        let request_token = token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(request_token)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let reasons = match err.as_service_error() {
            Some(e) if e.is_transaction_canceled_exception() => match e {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                    c.cancellation_reasons().to_vec()
                }
                _ => Vec::new(),
            },
            _ => return Err(Failure::of(err)),
        };
        *token.lock().unwrap_or_else(|p| p.into_inner()) = uuid::Uuid::new_v4().to_string();
        // Reasons come in the order of the actions; "None" marks an action that was fine.
        let codes: Vec<Option<&str>> = reasons.iter().map(|r| r.code()).collect();
        if let Some(i) = codes.iter().position(|c| *c == Some("ConditionalCheckFailed")) {
            if let Some(op) = ops.get(i) {
                let (pk, sk) = op.key();
                return Err(Failure::Store(StoreError::ConditionFailed {
                    pk: pk.to_string(),
                    sk: sk.to_string(),
                }));
            }
        }
        if codes.contains(&Some("TransactionConflict")) {
            return Err(Failure::Retry {
                class: RetryClass::Transient,
                source: Box::new(err),
            });
        }
        if codes
            .iter()
            .any(|c| matches!(c, Some("ThrottlingError" | "ProvisionedThroughputExceeded")))
        {
            return Err(Failure::Retry {
                class: RetryClass::Throttled { retry_after: None },
                source: Box::new(err),
            });
        }
        if codes.contains(&Some("ValidationError")) {
            return Err(Failure::Store(StoreError::Invalid(format!(
                "DynamoDB refused the transaction: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            ))));
        }
        Err(Failure::Store(StoreError::unavailable(err)))
    }

    fn transact_item(&self, op: &WriteOp) -> Result<TransactWriteItem, StoreError> {
        Ok(match op {
            WriteOp::Put { record, condition } => {
                let expr = ConditionExpr::of(*condition);
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item_of(record)?))
                    .set_condition_expression(expr.expression)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().put(put).build()
            }
            WriteOp::Delete { pk, sk, condition } => {
                let expr = ConditionExpr::of(*condition);
                let delete = Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .set_condition_expression(expr.expression)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().delete(delete).build()
            }
            WriteOp::Check { pk, sk, condition } => {
                let expr = ConditionExpr::of(*condition);
                let check = ConditionCheck::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .set_condition_expression(expr.expression)
                    .set_expression_attribute_names(expr.names)
                    .set_expression_attribute_values(expr.values)
                    .build()
                    .map_err(invalid)?;
                TransactWriteItem::builder().condition_check(check).build()
            }
        })
    }
}

/// A condition as DynamoDB expression parts; all `None` for `Always`. Only the names and
/// values the expression uses are present (DynamoDB rejects unused ones).
struct ConditionExpr {
    expression: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl ConditionExpr {
    fn of(condition: Condition) -> Self {
        // "#exp > :now" is false when the item has no expiry, hence the explicit test.
        let live = "(attribute_not_exists(#exp) OR #exp > :now)";
        let (expression, key_attr) = match condition {
            Condition::Always => {
                return ConditionExpr {
                    expression: None,
                    names: None,
                    values: None,
                }
            }
            Condition::NotExists => ("attribute_not_exists(#key) OR #exp <= :now".to_string(), PK),
            Condition::Exists => (format!("attribute_exists(#key) AND {live}"), PK),
            Condition::VersionIs(_) => (format!("#key = :ver AND {live}"), VERSION),
        };
        let names = HashMap::from([
            ("#key".to_string(), key_attr.to_string()),
            ("#exp".to_string(), EXPIRES_AT.to_string()),
        ]);
        let mut values = HashMap::from([(":now".to_string(), AttributeValue::N(now_secs().to_string()))]);
        if let Condition::VersionIs(v) = condition {
            values.insert(":ver".to_string(), AttributeValue::N(v.to_string()));
        }
        ConditionExpr {
            expression: Some(expression),
            names: Some(names),
            values: Some(values),
        }
    }
}

/// Where a query starts, given its cursor.
enum Start {
    Beginning,
    After(Item),
    /// The cursor lies beyond every key the query can return.
    PastTheEnd,
}

/// The `ExclusiveStartKey` for `cursor`. DynamoDB refuses a start key outside the key
/// condition, so a cursor before or after the prefix range is turned into "from the
/// beginning" or "nothing left" here.
fn start_key(query: &Query, cursor: &Cursor) -> Result<Start, StoreError> {
    let (cursor_partition, cursor_sort) = match query.index {
        Index::Primary => (cursor.pk.as_str(), cursor.sk.as_str()),
        Index::Gsi1 => match &cursor.gsi1 {
            Some((p, s)) => (p.as_str(), s.as_str()),
            None => {
                return Err(StoreError::Invalid(
                    "cursor of an index walk lacks its index key".to_string(),
                ))
            }
        },
    };
    if cursor_partition != query.partition {
        return Err(StoreError::Invalid(format!(
            "cursor belongs to partition {cursor_partition:?}, not {:?}",
            query.partition
        )));
    }
    if let Some(prefix) = &query.sk_prefix {
        if !cursor_sort.starts_with(prefix.as_str()) {
            let before_range = cursor_sort < prefix.as_str();
            // Walking up from below the range starts at its beginning; walking down from
            // below it finds nothing (and the mirror image for a cursor above the range).
            return Ok(if before_range != query.descending {
                Start::Beginning
            } else {
                Start::PastTheEnd
            });
        }
    }
    let mut item = key(&cursor.pk, &cursor.sk);
    if let (Index::Gsi1, Some((p, s))) = (query.index, &cursor.gsi1) {
        item.insert(GSI1PK.to_string(), AttributeValue::S(p.clone()));
        item.insert(GSI1SK.to_string(), AttributeValue::S(s.clone()));
    }
    Ok(Start::After(item))
}

fn cursor_from_key(key: &Item) -> Result<Cursor, StoreError> {
    let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
    let (Some(pk), Some(sk)) = (text(PK), text(SK)) else {
        return Err(StoreError::Corrupt {
            pk: text(PK).unwrap_or_default(),
            sk: text(SK).unwrap_or_default(),
            reason: "LastEvaluatedKey lacks the table key".to_string(),
        });
    };
    let gsi1 = text(GSI1PK).zip(text(GSI1SK));
    Ok(Cursor { pk, sk, gsi1 })
}

/// At most 100 operations, one per item.
fn validate(ops: &[WriteOp]) -> Result<(), StoreError> {
    if ops.len() > MAX_OPS {
        return Err(StoreError::Invalid(format!(
            "{} operations in one write; at most {MAX_OPS}",
            ops.len()
        )));
    }
    let mut seen = HashSet::with_capacity(ops.len());
    for op in ops {
        let (pk, sk) = op.key();
        if !seen.insert((pk, sk)) {
            return Err(StoreError::Invalid(format!("two operations on {pk}/{sk} in one write")));
        }
    }
    Ok(())
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([
        (PK.to_string(), AttributeValue::S(pk.to_string())),
        (SK.to_string(), AttributeValue::S(sk.to_string())),
    ])
}

fn item_of(record: &Record) -> Result<Item, StoreError> {
    let data = serde_json::to_string(&record.data).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut item = key(&record.pk, &record.sk);
    item.insert(VERSION.to_string(), AttributeValue::N(record.version.to_string()));
    item.insert(DATA.to_string(), AttributeValue::S(data));
    if let Some((p, s)) = &record.gsi1 {
        item.insert(GSI1PK.to_string(), AttributeValue::S(p.clone()));
        item.insert(GSI1SK.to_string(), AttributeValue::S(s.clone()));
    }
    if let Some(at) = record.expires_at {
        item.insert(EXPIRES_AT.to_string(), AttributeValue::N(at.to_string()));
    }
    Ok(item)
}

fn record_from_item(item: &Item) -> Result<Record, StoreError> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).cloned();
    let pk = text(PK).unwrap_or_default();
    let sk = text(SK).unwrap_or_default();
    let corrupt = |reason: String| StoreError::Corrupt {
        pk: pk.clone(),
        sk: sk.clone(),
        reason,
    };
    let version = number(VERSION)
        .ok_or_else(|| corrupt("no version".to_string()))?
        .parse::<u64>()
        .map_err(|e| corrupt(format!("version: {e}")))?;
    let data = text(DATA).ok_or_else(|| corrupt("no data".to_string()))?;
    let data = serde_json::from_str(&data).map_err(|e| corrupt(format!("data: {e}")))?;
    let expires_at = match number(EXPIRES_AT) {
        Some(n) => Some(n.parse::<i64>().map_err(|e| corrupt(format!("expires_at: {e}")))?),
        None => None,
    };
    let gsi1 = text(GSI1PK).zip(text(GSI1SK));
    Ok(Record {
        pk,
        sk,
        version,
        data,
        gsi1,
        expires_at,
    })
}

fn expired(record: &Record, now: i64) -> bool {
    record.expires_at.is_some_and(|at| at <= now)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(e.to_string())
}

/// Map an SDK failure that is not a condition failure: DynamoDB's own validation errors
/// mean the request was wrong; everything else (throttling, network, timeouts, 5xx, a
/// missing table) is worth retrying later.
fn classify<E>(err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if err.code() == Some("ValidationException") {
        return StoreError::Invalid(format!(
            "DynamoDB refused the request: {}",
            err.message().unwrap_or("validation error")
        ));
    }
    StoreError::unavailable(err)
}

/// Whether a failed call is worth another try: throttling and DynamoDB's passing
/// failures, any 5xx, timeouts and connection failures; not validation errors, failed
/// conditions, a missing table, refused credentials or a request the SDK could not build.
fn retry_class<E: ProvideErrorMetadata>(err: &SdkError<E>) -> RetryClass {
    match err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => RetryClass::Transient,
        SdkError::DispatchFailure(d) if !d.is_user() => RetryClass::Transient,
        SdkError::ServiceError(service) => match err.code() {
            Some(c) if THROTTLING.contains(&c) => RetryClass::Throttled { retry_after: None },
            Some(c) if TRANSIENT.contains(&c) => RetryClass::Transient,
            _ if service.raw().status().is_server_error() => RetryClass::Transient,
            _ => RetryClass::Permanent,
        },
        _ => RetryClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pk: &str, sk: &str) -> WriteOp {
        WriteOp::Put {
            record: Record::new(pk, sk, serde_json::json!({})),
            condition: Condition::Always,
        }
    }

    #[test]
    fn two_operations_on_one_item_are_invalid() {
        let ops = vec![
            put("a", "1"),
            WriteOp::Check {
                pk: "a".into(),
                sk: "1".into(),
                condition: Condition::Exists,
            },
        ];
        assert!(matches!(validate(&ops), Err(StoreError::Invalid(_))));
    }

    #[test]
    fn more_than_a_hundred_operations_are_invalid() {
        let ops: Vec<WriteOp> = (0..101).map(|i| put("a", &i.to_string())).collect();
        assert!(matches!(validate(&ops), Err(StoreError::Invalid(_))));
        assert!(validate(&ops[..100]).is_ok());
    }

    #[test]
    fn a_record_survives_the_item_round_trip() {
        let mut record = Record::new("p", "s", serde_json::json!({"a": [1, "two", null]}));
        record.version = 7;
        record.gsi1 = Some(("g".into(), "h".into()));
        record.expires_at = Some(1_700_000_000);
        let back = record_from_item(&item_of(&record).unwrap()).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_cursor_outside_the_prefix_range_starts_or_ends_the_walk() {
        let mut q = Query::partition(Index::Primary, "p");
        q.sk_prefix = Some("m".into());
        let cursor = |sk: &str| Cursor {
            pk: "p".into(),
            sk: sk.into(),
            gsi1: None,
        };
        let cases = [
            // (cursor sort key, descending, expected start)
            ("a", false, "beginning"),
            ("a", true, "end"),
            ("z", false, "end"),
            ("z", true, "beginning"),
            ("m1", false, "after"),
        ];
        for (sk, descending, want) in cases {
            q.descending = descending;
            let got = match start_key(&q, &cursor(sk)).unwrap() {
                Start::Beginning => "beginning",
                Start::After(_) => "after",
                Start::PastTheEnd => "end",
            };
            assert_eq!(got, want, "cursor {sk}, descending {descending}");
        }
    }

    #[test]
    fn a_cursor_of_another_partition_is_invalid() {
        let q = Query::partition(Index::Gsi1, "g");
        let foreign = Cursor {
            pk: "p".into(),
            sk: "s".into(),
            gsi1: Some(("other".into(), "x".into())),
        };
        assert!(matches!(start_key(&q, &foreign), Err(StoreError::Invalid(_))));
        let no_index_key = Cursor {
            pk: "p".into(),
            sk: "s".into(),
            gsi1: None,
        };
        assert!(matches!(start_key(&q, &no_index_key), Err(StoreError::Invalid(_))));
    }
}
