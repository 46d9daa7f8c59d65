//! A router-level harness over any record store: the same `Context` the hosts build, with
//! a manual clock, driven in-process with `oneshot`. `on_both_stores!` stamps a scenario
//! once for SQLite and once for DynamoDB Local.

use std::sync::Arc;

use axum::body::Body;
use deskbridge::adapters::outbox::OutboxMailer;
use deskbridge::adapters::secrets_file::FileSecretStore;
use deskbridge::adapters::sqlite_queue::SqliteQueue;
use deskbridge::config::HttpConfig;
use deskbridge::datto::state::{WebhookState, SECRET_NAME};
use deskbridge::ports::{Clock, ManualClock, RecordStore, SecretString};
use deskbridge::services::Context;
use deskbridge::store::Store;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const TOKEN: &str = "desk-token";
/// The fixture story's state secret.
pub const STATE: &str = "s3cr3t-example";
pub const UID: &str = "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94";

pub struct Desk {
    pub ctx: Context,
    pub clock: Arc<ManualClock>,
    /// The local mailer behind `ctx.mailer`.
    pub outbox: Arc<OutboxMailer>,
    _dir: tempfile::TempDir,
}

/// Where a scenario's manual clock starts: the real current time, because cloud stores
/// judge record expiry (leases, TTL) by the system clock.
pub fn fixture_time() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

pub fn desk_on(records: Arc<dyn RecordStore>, clock: Arc<ManualClock>) -> Desk {
    let dir = tempfile::tempdir().unwrap();
    let clock_dyn: Arc<dyn Clock> = clock.clone();
    let outbox = Arc::new(OutboxMailer::new(dir.path().join("outbox")).unwrap());
    let store = Store::new(records, clock_dyn.clone());
    let secrets: Arc<dyn deskbridge::ports::SecretStore> =
        Arc::new(FileSecretStore::new(dir.path().join("secrets.json")).unwrap());
    let beyondtrust = deskbridge::beyondtrust::connect::SettingsConnect::new(store.clone(), secrets.clone(), true)
        .with_retry(deskbridge::beyondtrust::RetryPolicy::immediate(2));
    let ctx = Context {
        store,
        queue: Arc::new(
            SqliteQueue::open(
                &dir.path().join("q.sqlite"),
                clock_dyn.clone(),
                std::time::Duration::from_secs(60),
            )
            .unwrap(),
        ),
        mailer: outbox.clone(),
        secrets,
        clock: clock_dyn,
        config: Arc::new(HttpConfig::new(SecretString::new(TOKEN), "https://desk.example.test")),
        datto: Arc::new(deskbridge::ports::NoDattoApi),
        beyondtrust: Arc::new(beyondtrust),
    };
    Desk {
        ctx,
        clock,
        outbox,
        _dir: dir,
    }
}

impl Desk {
    pub fn router(&self) -> axum::Router {
        deskbridge::http::full_router(self.ctx.clone())
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        auth: bool,
    ) -> (u16, Value) {
        let mut req = http::Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if auth {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        let resp = self
            .router()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn webhook(&self, body: &Value) -> (u16, Value) {
        self.call(
            "POST",
            "/datto/webhook",
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
            false,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, vec![], true).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            "POST",
            path,
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
            true,
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(
            "PUT",
            path,
            Some("application/json"),
            serde_json::to_vec(&body).unwrap(),
            true,
        )
        .await
    }

    /// Store the fixture's webhook state as the current one.
    pub async fn use_fixture_state(&self) {
        let st = WebhookState {
            current: STATE.into(),
            previous: None,
            rotated_at: None,
        };
        self.ctx
            .secrets
            .put(SECRET_NAME, &SecretString::new(serde_json::to_string(&st).unwrap()))
            .await
            .unwrap();
    }

    /// The fixture state, both intake methods, Datto's sender, a default ticket type.
    pub async fn configure_datto(&self) -> Value {
        self.use_fixture_state().await;
        self.alert_tickets_of_a_new_type("Monitoring alert", "low").await
    }

    /// A new ticket type, set in the Datto settings (both intake methods, Datto's sender)
    /// as the one of alert tickets.
    pub async fn alert_tickets_of_a_new_type(&self, name: &str, priority: &str) -> Value {
        let (s, tt) = self
            .post("/api/ticket-types", json!({"name": name, "default_priority": priority}))
            .await;
        assert_eq!(s, 201);
        let (s, cfg) = self
            .put(
                "/api/config/datto",
                json!({"alert_method": "both", "from_address": "noreply@centrastage.net",
                       "default_ticket_type_id": tt["id"], "import_mode": "customer_per_site"}),
            )
            .await;
        assert_eq!(s, 200, "{cfg}");
        tt
    }

    pub async fn tickets(&self) -> Vec<Value> {
        let (s, v) = self.get("/api/tickets?limit=1000").await;
        assert_eq!(s, 200);
        v["items"].as_array().unwrap().clone()
    }

    pub async fn request_log(&self, query: &str) -> Vec<Value> {
        let (s, v) = self.get(&format!("/api/request-log?limit=1000{query}")).await;
        assert_eq!(s, 200);
        v["items"].as_array().unwrap().clone()
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/datto/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

/// Stamp `scenario(desk)` for SQLite and DynamoDB Local as `scenario::sqlite` / `::dynamodb`.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use std::sync::Arc;
            #[tokio::test]
            async fn sqlite() {
                let clock = Arc::new(deskbridge::ports::ManualClock::new($crate::desk::fixture_time()));
                let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
                super::$scenario($crate::desk::desk_on(records, clock)).await;
            }
            #[tokio::test]
            async fn dynamodb() {
                let Some(records) = deskbridge_tests::stores::dynamodb().await else { return };
                let clock = Arc::new(deskbridge::ports::ManualClock::new($crate::desk::fixture_time()));
                super::$scenario($crate::desk::desk_on(records, clock)).await;
            }
        }
    )*};
}
pub(crate) use on_both_stores;

/// `now()` of the manual clock, for calls that take the time explicitly.
pub trait NowUtc {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        self.now()
    }
}

impl Desk {
    /// A harness over an existing server's state (sharing its storage and secrets).
    pub fn over(ctx: &Context) -> Desk {
        let mut ctx = ctx.clone();
        ctx.config = Arc::new(HttpConfig::new(SecretString::new(TOKEN), &ctx.config.public_url));
        let dir = tempfile::tempdir().unwrap();
        let outbox = Arc::new(OutboxMailer::new(dir.path().join("outbox")).unwrap());
        Desk {
            ctx,
            clock: Arc::new(ManualClock::new(chrono::Utc::now())),
            outbox,
            _dir: dir,
        }
    }
}

impl Desk {
    /// Run what is visible on `queue` once through the local worker's loop and the
    /// queue's consumer; failures are released at once. `(received, failed)`.
    pub async fn drain(&self, queue: deskbridge::ports::QueueName) -> (usize, usize) {
        let d = deskbridge_local::worker::Worker::new(self.ctx.clone())
            .drain_queue(queue, |_| std::time::Duration::ZERO)
            .await;
        (d.done + d.failed, d.failed)
    }
}

impl Desk {
    /// `POST /api/sync/datto` as a caller sees it end to end: the 202 with a `run_id`, the
    /// `datto-sync` queue drained through the worker, then `GET /api/sync/datto/runs/{id}`.
    /// A refused POST comes back as it was answered.
    pub async fn sync_now(&self) -> (u16, Value) {
        let (s, queued) = self.post("/api/sync/datto", json!({})).await;
        if s != 202 {
            return (s, queued);
        }
        let run_id = queued["run_id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no run_id in {queued}"));
        let (_, failed) = self.drain(deskbridge::ports::QueueName::DattoSync).await;
        assert_eq!(failed, 0, "the sync run's message failed");
        self.get(&format!("/api/sync/datto/runs/{run_id}")).await
    }
}
