//! DynamoDB capacity per operation: the routers and queue consumers the Lambdas run, over
//! a `DynamoRecordStore` on DynamoDB Local whose client carries a `CapacityMeter`, and the
//! units each kind of work consumed, turned into a cost per million alerts.
//!
//! Everything runs in-process (tower `oneshot` on the full router, the local worker's
//! consumers for the queues); queues and secrets are local, so only the store is counted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Body;
use deskbridge::adapters::dynamo::{create_table, DynamoRecordStore};
use deskbridge::adapters::dynamo_capacity::{CapacityMeter, CapacityUsage};
use deskbridge::adapters::outbox::OutboxMailer;
use deskbridge::adapters::secrets_file::FileSecretStore;
use deskbridge::adapters::sqlite_queue::SqliteQueue;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::fixtures;
use deskbridge::config::HttpConfig;
use deskbridge::datto::fake::FakeDatto;
use deskbridge::ports::{Clock, QueueName, SecretString, SystemClock};
use deskbridge::services::Context as ServiceContext;
use deskbridge::store::Store;
use deskbridge_local::worker::Worker;
use serde_json::{json, Value};
use tower::ServiceExt;

/// AWS DynamoDB on-demand list prices used for the cost lines (us-east-1, standard table
/// class), as known on the date below; not checked online (this machine has no internet).
pub const PRICE_SOURCE: &str =
    "AWS DynamoDB on-demand, us-east-1, standard table class, list price since 2024-11-01 (from memory, not checked online)";
/// US dollars per million write request units.
pub const USD_PER_MILLION_WRU: f64 = 0.625;
/// US dollars per million read request units.
pub const USD_PER_MILLION_RRU: f64 = 0.125;

const TOKEN: &str = "bench-capacity-token";
const SITE_UID: &str = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f";

/// Units of one kind of work, averaged over `count` repetitions.
#[derive(Debug, Clone)]
pub struct PerOperation {
    pub label: &'static str,
    pub count: usize,
    pub usage: CapacityUsage,
}

impl PerOperation {
    /// Write units as DynamoDB Local reported them.
    pub fn write_units(&self) -> f64 {
        self.usage.write_units() / self.count as f64
    }
    /// Write units by AWS's pricing rules (see `CapacityMeter`): what the bill would say.
    pub fn modelled_write_units(&self) -> f64 {
        self.usage.modelled_write_units() / self.count as f64
    }
    pub fn read_units(&self) -> f64 {
        self.usage.read_units() / self.count as f64
    }
    pub fn calls(&self) -> f64 {
        self.usage.calls() as f64 / self.count as f64
    }

    /// US dollars per million of this operation at the on-demand prices above, with the
    /// AWS-modelled write units and the reported read units.
    pub fn usd_per_million(&self) -> f64 {
        self.modelled_write_units() * USD_PER_MILLION_WRU + self.read_units() * USD_PER_MILLION_RRU
    }

    fn print(&self) {
        let ops: Vec<String> = self
            .usage
            .by_operation
            .iter()
            .map(|(op, u)| {
                let failed = if u.failed > 0 {
                    format!(", {} failed", u.failed)
                } else {
                    String::new()
                };
                format!("{op} {:.1}{failed}", u.calls as f64 / self.count as f64)
            })
            .collect();
        println!(
            "  {:<44} {:>5.2} WRU reported, {:>5.2} WRU by AWS rules, {:>5.2} RRU, {:>4.1} calls ({}) = ${:.3} per million",
            self.label,
            self.write_units(),
            self.modelled_write_units(),
            self.read_units(),
            self.calls(),
            ops.join(", "),
            self.usd_per_million()
        );
    }
}

/// The desk over a metered DynamoDB Local table, and the fakes it talks to.
struct Bench {
    ctx: ServiceContext,
    meter: CapacityMeter,
    datto: FakeDatto,
    bt: FakeBeyondTrust,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn call(&self, method: &str, path: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(body))?;
        let resp = deskbridge::http::full_router(self.ctx.clone()).oneshot(req).await?;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn json(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let (s, v) = self
            .call(method, path, "application/json", serde_json::to_vec(&body)?)
            .await?;
        if !(200..300).contains(&s) {
            bail!("{method} {path}: {s} {v}");
        }
        Ok(v)
    }

    /// Run every visible message of `queue` through its consumer until the queue is empty;
    /// a failing message is an error (it would hide in the retry counts).
    async fn drain(&self, queue: QueueName) -> anyhow::Result<usize> {
        let worker = Worker::new(self.ctx.clone());
        let mut done = 0;
        loop {
            let d = worker.drain_queue(queue, |_| Duration::from_secs(3600)).await;
            if d.failed > 0 {
                bail!("{} message(s) on {queue} failed", d.failed);
            }
            if d.done == 0 {
                return Ok(done);
            }
            done += d.done;
        }
    }

    /// Meter `work`, `count` repetitions of one kind.
    async fn measure<F, Fut>(&self, label: &'static str, count: usize, work: F) -> anyhow::Result<PerOperation>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let before = self.meter.snapshot();
        work().await.with_context(|| label)?;
        let per = PerOperation {
            label,
            count,
            usage: self.meter.snapshot().since(&before),
        };
        per.print();
        Ok(per)
    }
}

async fn bench(endpoint: &str) -> anyhow::Result<Bench> {
    let meter = CapacityMeter::new();
    let sdk = deskbridge::hosting::sdk_loader()
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "deskbridge-bench",
        ))
        .load()
        .await;
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(meter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let table = format!("bench-capacity-{}", uuid::Uuid::new_v4().simple());
    create_table(&client, &table).await?;
    let records = Arc::new(DynamoRecordStore::new(client, table));

    let dir = tempfile::tempdir()?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Store::new(records, clock.clone());
    let secrets: Arc<dyn deskbridge::ports::SecretStore> =
        Arc::new(FileSecretStore::new(dir.path().join("secrets.json"))?);
    let ctx = ServiceContext {
        store: store.clone(),
        queue: Arc::new(SqliteQueue::open(
            &dir.path().join("queues.sqlite"),
            clock.clone(),
            Duration::from_secs(60),
        )?),
        mailer: Arc::new(OutboxMailer::new(dir.path().join("outbox"))?),
        secrets: secrets.clone(),
        clock,
        config: Arc::new(HttpConfig::new(SecretString::new(TOKEN), "https://desk.example.test")),
        datto: Arc::new(deskbridge::datto::connect::SettingsConnect::new(
            store.clone(),
            secrets.clone(),
            true,
        )),
        beyondtrust: Arc::new(deskbridge::beyondtrust::connect::SettingsConnect::new(
            store, secrets, true,
        )),
    };
    let datto = FakeDatto::start().await;
    let (_, bt) = FakeBeyondTrust::start().await;
    Ok(Bench {
        ctx,
        meter,
        datto,
        bt,
        _dir: dir,
    })
}

fn uid(i: usize) -> String {
    format!("ca9ac170-0000-4000-8000-{i:012x}")
}

/// The open Datto alert the fake holds for `uid` (so close propagation really resolves it).
fn datto_alert(uid: &str) -> Value {
    json!({
        "alertUid": uid, "priority": "High", "diagnostics": "Disk C: 95% full",
        "resolved": false, "resolvedBy": null, "resolvedOn": null, "muted": false,
        "ticketNumber": null, "timestamp": 1_795_400_000_000_i64,
        "alertMonitorInfo": {"sendsEmails": false, "createsTicket": false},
        "alertContext": {"@class": "perf_disk_usage_ctx", "diskName": "C:", "totalVolume": 256, "freeSpace": 12},
        "alertSourceInfo": {"deviceUid": "b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63", "deviceName": "ACME-DC01",
            "siteUid": SITE_UID, "siteName": "Acme Ltd - Head Office"},
        "responseActions": [], "autoresolveMins": null
    })
}

fn webhook(state: &str, uid: &str, site_uid: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "state": state, "alert_resolved": false, "alert_uid": uid,
        "alert_message": "Disk C: on ACME-DC01 is 95% full", "alert_priority": "High",
        // A device per alert: each is a new ticket, not related to the one before.
        "device_uid": uid, "device_hostname": format!("PC-{}", &uid[..8]),
        "site_uid": site_uid, "site_name": "Acme Ltd - Head Office",
        "additional_values": {"category": "Monitoring"}
    }))
    .expect("json")
}

/// Count the capacity of each kind of work, `count` repetitions each, on DynamoDB Local
/// at `endpoint`; prints a line per kind and the cost per million alerts.
pub async fn run(endpoint: &str, count: usize) -> anyhow::Result<Vec<PerOperation>> {
    let b = bench(endpoint).await?;
    println!(
        "DynamoDB capacity on DynamoDB Local (ReturnConsumedCapacity=TOTAL), {count} of each (load average {})",
        crate::procfs::load_average()
    );

    // Settings: Datto API on the fake (close propagation), webhook intake, BeyondTrust.
    let tt = b
        .json(
            "POST",
            "/api/ticket-types",
            json!({"name": "Monitoring alert", "default_priority": "low"}),
        )
        .await?;
    b.json(
        "PUT",
        "/api/config/datto",
        json!({"alert_method": "webhook", "default_ticket_type_id": tt["id"], "import_mode": "customer_per_site",
               "api_url": b.datto.base_url(), "api_key": FakeDatto::API_KEY, "api_secret": FakeDatto::API_SECRET}),
    )
    .await?;
    let helper = b.json("GET", "/api/config/datto/webhook", Value::Null).await?;
    let state = helper["raised_payload"]["state"]
        .as_str()
        .context("webhook state")?
        .to_string();
    b.json(
        "PUT",
        "/api/config/beyondtrust",
        json!({"base_url": b.bt.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
               "templates": {"remote_invite": "Open $LINKTOREMOTE", "email_subject": "Code $REMOTESESSIONCODE",
                             "email_body": "$REMOTEINVITE", "chat_html": "<p>$REMOTEINVITE</p>"}}),
    )
    .await?;
    b.json(
        "POST",
        "/api/agents",
        json!({"name": "Alice", "email": "alice@desk.example", "bt_enabled": true, "bt_name": "Alice Martin"}),
    )
    .await?;
    let event_url = b.json("GET", "/api/config/beyondtrust/event-url", Value::Null).await?;
    let event_token = event_url["url"]
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .context("event token")?
        .to_string();
    for i in 0..2 * count {
        b.datto.add_alert(datto_alert(&uid(i)));
    }

    let post_alert = |uid: String, site: String| {
        let (b, state) = (&b, state.clone());
        async move {
            let (s, v) = b
                .call(
                    "POST",
                    "/datto/webhook",
                    "application/json",
                    webhook(&state, &uid, &site),
                )
                .await?;
            if s != 200 {
                bail!("webhook {uid}: {s} {v}");
            }
            Ok(v)
        }
    };

    let mut figures = Vec::new();
    figures.push(
        b.measure("new alert of a new site (imports the site)", count, || async {
            for i in 0..count {
                let site = format!("5173a1e7-0000-4000-8000-{i:012x}");
                post_alert(format!("ca9ac171-0000-4000-8000-{i:012x}"), site).await?;
            }
            Ok(())
        })
        .await?,
    );
    // The known site is imported once, unmeasured.
    post_alert(uid(2 * count), SITE_UID.to_string()).await?;
    let mut tickets = Vec::new();
    let new_alert = b
        .measure("new alert (webhook, known site)", count, || async {
            for i in 0..count {
                let v = post_alert(uid(i), SITE_UID.to_string()).await?;
                if v["result"] != "created" {
                    bail!("expected created, got {v}");
                }
                tickets.push(v["ticket_id"].as_u64().context("ticket id")?);
            }
            Ok(())
        })
        .await?;
    figures.push(new_alert);
    figures.push(
        b.measure("duplicate (webhook, alert known)", count, || async {
            for i in 0..count {
                let v = post_alert(uid(i), SITE_UID.to_string()).await?;
                if v["result"] != "duplicate" {
                    bail!("expected duplicate, got {v}");
                }
            }
            Ok(())
        })
        .await?,
    );
    figures.push(
        b.measure("agent close (API call)", count, || async {
            for t in &tickets {
                b.json("POST", &format!("/api/tickets/{t}/close"), json!({"note": "Fixed"}))
                    .await?;
            }
            Ok(())
        })
        .await?,
    );
    figures.push(
        b.measure("agent close: propagation to Datto (consumer)", count, || async {
            let n = b.drain(QueueName::TicketClosed).await?;
            if n != count {
                bail!("{n} ticket-closed messages, expected {count}");
            }
            Ok(())
        })
        .await?,
    );
    let lsids: Vec<String> = (0..count).map(|i| format!("{i:032x}")).collect();
    for (lsid, t) in lsids.iter().zip(&tickets) {
        let report = fixtures::REPORT.replace(fixtures::LSID_T1042, lsid).replace(
            "<external_key>T1042</external_key>",
            &format!("<external_key>T{t}</external_key>"),
        );
        b.bt.set_report(lsid, report);
    }
    figures.push(
        b.measure("session end event (BeyondTrust intake)", count, || async {
            for lsid in &lsids {
                let body = format!(
                    "event=support_conference_end&version=3&timestamp=1795425312&appliance_id=ba8a&lsid={lsid}&external_key="
                );
                let (s, v) = b
                    .call(
                        "POST",
                        &format!("/beyondtrust/events/{event_token}"),
                        "application/x-www-form-urlencoded",
                        body.into_bytes(),
                    )
                    .await?;
                if s != 200 || v["result"] != "enqueued" {
                    bail!("event {lsid}: {s} {v}");
                }
            }
            Ok(())
        })
        .await?,
    );
    figures.push(
        b.measure("imported session (consumer)", count, || async {
            let n = b.drain(QueueName::SessionImport).await?;
            if n != count {
                bail!("{n} session-import messages, expected {count}");
            }
            Ok(())
        })
        .await?,
    );
    print_costs(&figures);
    Ok(figures)
}

fn find<'a>(figures: &'a [PerOperation], label: &str) -> Option<&'a PerOperation> {
    figures.iter().find(|f| f.label == label)
}

/// Cost per million alerts for a mix: every alert new once (webhook), closed by an agent
/// and propagated; and, separately, per million duplicates.
fn print_costs(figures: &[PerOperation]) {
    println!(
        "  prices: {PRICE_SOURCE}: ${USD_PER_MILLION_WRU} per million WRU, ${USD_PER_MILLION_RRU} per million RRU"
    );
    let parts = [
        "new alert (webhook, known site)",
        "agent close (API call)",
        "agent close: propagation to Datto (consumer)",
    ];
    let lifecycle: f64 = parts
        .iter()
        .filter_map(|l| find(figures, l))
        .map(PerOperation::usd_per_million)
        .sum();
    println!("  per million alerts (new + agent close + propagation): ${lifecycle:.2}");
    if let Some(d) = find(figures, "duplicate (webhook, alert known)") {
        println!("  per million duplicates: ${:.2}", d.usd_per_million());
    }
}
