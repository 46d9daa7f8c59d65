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
        aws_config::defaults(aws_config::BehaviorVersion::latest())
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

    /// A SQLite store in a fresh temp dir (kept alive by the returned guard).
    pub fn sqlite(clock: Arc<dyn Clock>) -> (Arc<dyn RecordStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = deskbridge::adapters::sqlite_store::SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock)
            .expect("sqlite store");
        (Arc::new(store), dir)
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
