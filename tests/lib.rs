//! Test support shared by the integration tests: where the emulators are, and the rule
//! that a missing emulator skips loudly on a laptop but fails under `CI=true`.

pub mod lambda_host;

pub mod emulators {
    /// Endpoint of DynamoDB Local, from `DESKBRIDGE_TEST_DYNAMODB_URL` (set by scripts/test).
    pub fn dynamodb() -> Option<String> {
        endpoint("DESKBRIDGE_TEST_DYNAMODB_URL", "DynamoDB Local")
    }

    /// Endpoint of moto's server, from `DESKBRIDGE_TEST_MOTO_URL` (set by scripts/test).
    pub fn moto() -> Option<String> {
        endpoint("DESKBRIDGE_TEST_MOTO_URL", "moto")
    }

    /// The DynamoDB Local build (the folder with `DynamoDBLocal.jar`), from
    /// `DESKBRIDGE_TEST_DYNAMODB_LOCAL_DIR` (set by scripts/test), for tests that start and
    /// stop a DynamoDB Local of their own.
    pub fn dynamodb_local_dir() -> Option<String> {
        endpoint("DESKBRIDGE_TEST_DYNAMODB_LOCAL_DIR", "the DynamoDB Local jar")
    }

    fn endpoint(var: &str, what: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{what} is required under CI=true but {var} is not set; run the tests through scripts/test");
                }
                eprintln!("SKIPPED: {what} not configured ({var} unset); run scripts/test to include it");
                None
            }
        }
    }

    /// A name unique to this call, for per-test tables, queues, buckets and secrets.
    pub fn unique(prefix: &str) -> String {
        format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
    }

    /// An AWS SDK config pointing at `endpoint` with dummy credentials.
    pub async fn aws_config(endpoint: &str) -> aws_config::SdkConfig {
        deskbridge::hosting::sdk_loader()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test",
                "test",
                None,
                None,
                "deskbridge-tests",
            ))
            .load()
            .await
    }
}

/// Record stores for scenario tests that must hold on every storage adapter.
pub mod stores {
    use std::sync::Arc;

    use deskbridge::ports::{Clock, RecordStore};

    /// A SQLite store in a fresh temp dir (kept alive by the returned guard), as the local
    /// server composes it: behind its read cache (`adapters::record_cache`).
    pub fn sqlite(clock: Arc<dyn Clock>) -> (Arc<dyn RecordStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = deskbridge::adapters::sqlite_store::SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock)
            .expect("sqlite store");
        let cached = deskbridge::adapters::record_cache::CachedRecordStore::local(Arc::new(store));
        (Arc::new(cached), dir)
    }

    /// A DynamoDB Local store on a fresh table, or `None` (skipped loudly, fails under CI).
    pub async fn dynamodb() -> Option<Arc<dyn RecordStore>> {
        let endpoint = crate::emulators::dynamodb()?;
        let client = aws_sdk_dynamodb::Client::new(&crate::emulators::aws_config(&endpoint).await);
        let table = crate::emulators::unique("deskbridge");
        deskbridge::adapters::dynamo::create_table(&client, &table)
            .await
            .expect("create table");
        Some(Arc::new(deskbridge::adapters::dynamo::DynamoRecordStore::new(
            client, table,
        )))
    }
}

/// A `RecordStore` wrapper that fails chosen calls, for proving that a request never
/// answers 2xx unless its writes went through and that it recovers once the store does.
pub mod faults {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use deskbridge::ports::{Page, Query, Record, RecordStore, StoreError, WriteOp};

    /// Which calls fail, counted from the last `arm`. `write` and `increment` are writes;
    /// `get` and `query` are reads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Fault {
        /// Everything passes through.
        None,
        /// Only the n-th write (1-based) fails.
        NthWrite(u64),
        /// Only the n-th read (1-based) fails.
        NthRead(u64),
    }

    /// Wraps a real store; remembers every key ever written so that `snapshot` can read the
    /// whole stored state back (the wrapped store starts empty).
    pub struct FaultyStore {
        inner: Arc<dyn RecordStore>,
        fault: Mutex<Fault>,
        writes: AtomicU64,
        reads: AtomicU64,
        injected: AtomicU64,
        keys: Mutex<BTreeSet<(String, String)>>,
        counters: Mutex<BTreeSet<(String, String)>>,
        failed_calls: Mutex<Vec<String>>,
    }

    impl FaultyStore {
        pub fn new(inner: Arc<dyn RecordStore>) -> Arc<FaultyStore> {
            Arc::new(FaultyStore {
                inner,
                fault: Mutex::new(Fault::None),
                writes: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                injected: AtomicU64::new(0),
                keys: Mutex::new(BTreeSet::new()),
                counters: Mutex::new(BTreeSet::new()),
                failed_calls: Mutex::new(Vec::new()),
            })
        }

        /// Start counting calls afresh and fail as `fault` says.
        pub fn arm(&self, fault: Fault) {
            *self.fault.lock().unwrap() = fault;
            self.writes.store(0, Ordering::SeqCst);
            self.reads.store(0, Ordering::SeqCst);
        }

        /// Writes seen since the last `arm` (failed ones included).
        pub fn writes(&self) -> u64 {
            self.writes.load(Ordering::SeqCst)
        }

        /// Reads seen since the last `arm` (failed ones included).
        pub fn reads(&self) -> u64 {
            self.reads.load(Ordering::SeqCst)
        }

        /// Faults injected since the wrapper was made.
        pub fn injected(&self) -> u64 {
            self.injected.load(Ordering::SeqCst)
        }

        /// The calls that were made to fail, e.g. `get alert/5d1f…` or `write [alert/…, ticket/…]`.
        pub fn failed_calls(&self) -> Vec<String> {
            self.failed_calls.lock().unwrap().clone()
        }

        /// Keys of the counters ever incremented (adapters keep them apart from records, so
        /// `get` cannot read them; their values are ids, which may have gaps).
        pub fn counters(&self) -> BTreeSet<(String, String)> {
            self.counters.lock().unwrap().clone()
        }

        /// Every stored record by key, read from the wrapped store (no fault applies);
        /// counters are not records and are left out.
        pub async fn snapshot(&self) -> BTreeMap<(String, String), Record> {
            let keys: Vec<(String, String)> = self.keys.lock().unwrap().iter().cloned().collect();
            let mut out = BTreeMap::new();
            for (pk, sk) in keys {
                if let Some(r) = self.inner.get(&pk, &sk).await.expect("snapshot read") {
                    out.insert((pk, sk), r);
                }
            }
            out
        }

        fn fail_write(&self, call: impl FnOnce() -> String) -> Result<(), StoreError> {
            let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
            self.fail_if(*self.fault.lock().unwrap() == Fault::NthWrite(n), call, n)
        }

        fn fail_read(&self, call: impl FnOnce() -> String) -> Result<(), StoreError> {
            let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
            self.fail_if(*self.fault.lock().unwrap() == Fault::NthRead(n), call, n)
        }

        fn fail_if(&self, fail: bool, call: impl FnOnce() -> String, n: u64) -> Result<(), StoreError> {
            if !fail {
                return Ok(());
            }
            self.injected.fetch_add(1, Ordering::SeqCst);
            let call = call();
            self.failed_calls.lock().unwrap().push(call.clone());
            Err(StoreError::Unavailable(
                format!("injected fault at call {n}: {call}").into(),
            ))
        }

        fn remember(&self, pk: &str, sk: &str) {
            self.keys.lock().unwrap().insert((pk.to_string(), sk.to_string()));
        }
    }

    #[async_trait]
    impl RecordStore for FaultyStore {
        async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
            self.fail_read(|| format!("get {pk}/{sk}"))?;
            self.inner.get(pk, sk).await
        }

        async fn query(&self, query: &Query) -> Result<Page, StoreError> {
            self.fail_read(|| format!("query {}", query.partition))?;
            self.inner.query(query).await
        }

        async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
            self.fail_write(|| {
                let keys: Vec<String> = ops.iter().map(|op| format!("{}/{}", op.key().0, op.key().1)).collect();
                format!("write [{}]", keys.join(", "))
            })?;
            for op in &ops {
                let (pk, sk) = op.key();
                self.remember(pk, sk);
            }
            self.inner.write(ops).await
        }

        async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
            self.fail_write(|| format!("increment {pk}/{sk}"))?;
            self.counters.lock().unwrap().insert((pk.to_string(), sk.to_string()));
            self.inner.increment(pk, sk, by).await
        }

        async fn increment_expiring(&self, pk: &str, sk: &str, by: u64, expires_at: i64) -> Result<u64, StoreError> {
            self.fail_write(|| format!("increment {pk}/{sk}"))?;
            self.counters.lock().unwrap().insert((pk.to_string(), sk.to_string()));
            self.inner.increment_expiring(pk, sk, by, expires_at).await
        }
    }
}
