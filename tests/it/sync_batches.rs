//! The sync writes new sites and alerts in pages (`intake::accept_new`, one write each):
//! its result is the per-alert sync's — same tickets on the same customers and sites,
//! same counts, lease released — on both stores, and a page that races a webhook falls
//! back to alert-by-alert intake without a second ticket.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use deskbridge::adapters::sqlite_queue::SqliteQueue;
use deskbridge::datto::fake::FakeDatto;
use deskbridge::datto::{BudgetConfig, Client, ClientConfig, DattoBaseUrl, RequestBudget, TokioSleeper};
use deskbridge::domain::alerts::{AlertEvent, AlertEventKind, AlertSource};
use deskbridge::domain::datto::DattoSettings;
use deskbridge::intake::{accept, ingest_with};
use deskbridge::jobs::alert_sync::run_once;
use deskbridge::ports::{
    Clock, CounterTake, DattoApi, NumberedOps, Page, Query, Record, RecordStore, SecretString, StoreError, SystemClock,
    WriteOp,
};
use deskbridge::store::{Store, TicketFilter};

/// More sites than one site page (33) and more alerts than `PAGES_IN_FLIGHT` pages of 33.
const SITES: usize = 70;
const ALERTS: usize = 300;

fn client(fake: &FakeDatto, clock: Arc<dyn Clock>) -> Client {
    let base = DattoBaseUrl::parse_allowing_loopback(fake.base_url()).expect("fake URL");
    let config = ClientConfig::new(base, FakeDatto::API_KEY, SecretString::new(FakeDatto::API_SECRET));
    let budget = RequestBudget::in_process(BudgetConfig::default(), clock.clone());
    Client::new(config, budget, clock, Arc::new(TokioSleeper)).expect("client")
}

fn queue(dir: &tempfile::TempDir, clock: Arc<dyn Clock>) -> SqliteQueue {
    SqliteQueue::open(&dir.path().join("queues.sqlite"), clock, Duration::from_secs(60)).expect("queue")
}

/// What the sync leaves behind, without the numbers: per alert uid its ticket (summary,
/// priority, status, asset, customer and site names, action notes); the sites with their
/// customers; and whether the ticket numbers are distinct.
#[derive(Debug, PartialEq)]
struct Outcome {
    tickets: BTreeMap<String, String>,
    sites: BTreeSet<String>,
}

async fn outcome(store: &Store) -> Outcome {
    let mut tickets = BTreeMap::new();
    let mut ids = BTreeSet::new();
    for head in store.all_tickets(&TicketFilter::default()).await.expect("tickets") {
        assert!(ids.insert(head.id), "ticket number {} twice", head.id);
        let t = store.ticket(head.id).await.expect("ticket");
        let customer = store.customer(t.customer_id).await.expect("customer");
        let site = store.site(t.site_id).await.expect("site");
        let uid = t.alert_uid.clone().expect("an alert ticket");
        let (alert, _) = store
            .alert(&deskbridge::domain::alerts::AlertUid::parse("uid", &uid).unwrap())
            .await
            .expect("alert")
            .expect("the alert is stored");
        assert_eq!(alert.ticket_id, Some(t.id), "the alert names its ticket");
        let notes: Vec<&str> = t.actions.iter().map(|a| a.note.as_str()).collect();
        let line = format!(
            "{} | {:?} | {:?} | {:?} | {} | {} | {notes:?}",
            t.summary, t.priority, t.status, t.asset, customer.name, site.name
        );
        assert!(tickets.insert(uid, line).is_none(), "a second ticket for one alert");
    }
    let mut sites = BTreeSet::new();
    for (uid, m) in store.site_mappings().await.expect("mappings") {
        let site = store.site(m.site_id).await.expect("site");
        let customer = store.customer(m.customer_id).await.expect("customer");
        assert_eq!(customer.main_site_id, site.id);
        sites.insert(format!("{uid} | {} | {}", site.name, customer.name));
    }
    Outcome { tickets, sites }
}

/// The sync as it was before pages: each site imported on its own, each listed alert read
/// and, when absent, taken through `accept` on its own.
async fn per_alert_sync(store: &Store, queue: &SqliteQueue, datto: &dyn DattoApi) -> (u32, u32) {
    let settings = store.datto_settings().await.expect("settings");
    let mut sites_created = 0;
    for site in datto.sites().await.expect("sites") {
        if store.site_mapping(&site.uid).await.expect("mapping").is_none() {
            store
                .site_for_datto(&site.uid, Some(&site.name), &settings)
                .await
                .expect("import");
            sites_created += 1;
        }
    }
    let mut tickets_created = 0;
    for a in datto.open_alerts().await.expect("alerts") {
        if store.alert(&a.uid).await.expect("alert").is_some() {
            continue;
        }
        let ev = AlertEvent {
            uid: a.uid.clone(),
            kind: AlertEventKind::Raised,
            source: AlertSource::Poll,
            at: store.clock().now(),
            facts: a.facts.clone(),
        };
        let r = accept(store, queue, &settings, &ev, None).await.expect("accept");
        if r.result == deskbridge::domain::alerts::Outcome::Created {
            tickets_created += 1;
        }
    }
    (sites_created, tickets_created)
}

async fn pages_give_the_per_alert_result(batched: Arc<dyn RecordStore>, reference: Arc<dyn RecordStore>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let fake = FakeDatto::start().await;
    fake.populate(SITES, ALERTS);
    let dir = tempfile::tempdir().unwrap();

    let store = Store::new(batched, clock.clone());
    let q = queue(&dir, clock.clone());
    let first = run_once(&store, &q, &client(&fake, clock.clone()), "pages-1")
        .await
        .expect("sync");
    assert_eq!(
        (first.sites_created, first.tickets_created, first.skipped),
        (SITES as u32, ALERTS as u32, false),
        "{first:?}"
    );
    // The lease was released: the next run is not skipped, and finds nothing new.
    let second = run_once(&store, &q, &client(&fake, clock.clone()), "pages-2")
        .await
        .expect("sync");
    assert_eq!(
        (second.sites_created, second.tickets_created, second.skipped),
        (0, 0, false),
        "{second:?}"
    );

    let ref_store = Store::new(reference, clock.clone());
    let ref_dir = tempfile::tempdir().unwrap();
    let counts = per_alert_sync(
        &ref_store,
        &queue(&ref_dir, clock.clone()),
        &client(&fake, clock.clone()),
    )
    .await;
    assert_eq!(counts, (SITES as u32, ALERTS as u32));

    let (got, want) = (outcome(&store).await, outcome(&ref_store).await);
    assert_eq!(got.tickets.len(), ALERTS);
    assert_eq!(got.sites.len(), SITES);
    assert_eq!(got, want, "the paged sync stores what the per-alert sync stores");
}

/// A store that, before the first numbered write carrying alerts, lets a "webhook" store
/// one of the alerts of that page (through its own intake), so the page loses the race.
struct WebhookRacesFirstPage {
    inner: Arc<dyn RecordStore>,
    race: Mutex<Option<AlertEvent>>,
}

#[async_trait]
impl RecordStore for WebhookRacesFirstPage {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
        self.inner.get(pk, sk).await
    }
    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        self.inner.query(query).await
    }
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        self.inner.write(ops).await
    }
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
        self.inner.increment(pk, sk, by).await
    }
    async fn write_numbered(&self, takes: &[CounterTake], build: NumberedOps) -> Result<Vec<u64>, StoreError> {
        let carries_alerts = build(&[1, 1]).iter().any(|op| op.key().0 == "alert");
        let race = if carries_alerts {
            self.race.lock().unwrap().take()
        } else {
            None
        };
        if let Some(ev) = race {
            let webhook_side = Store::new(self.inner.clone(), Arc::new(SystemClock));
            let r = ingest_with(&webhook_side, &DattoSettings::default(), &ev, None)
                .await
                .expect("the webhook's intake");
            assert_eq!(r.result, deskbridge::domain::alerts::Outcome::Created);
        }
        self.inner.write_numbered(takes, build).await
    }
}

async fn a_page_that_loses_a_race_falls_back_alert_by_alert(inner: Arc<dyn RecordStore>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let fake = FakeDatto::start().await;
    fake.populate(5, 40);
    let listed = DattoApi::open_alerts(&client(&fake, clock.clone()))
        .await
        .expect("list");
    let raced = &listed[7];
    let racing = Arc::new(WebhookRacesFirstPage {
        inner,
        race: Mutex::new(Some(AlertEvent {
            uid: raced.uid.clone(),
            kind: AlertEventKind::Raised,
            source: AlertSource::Webhook,
            at: clock.now(),
            facts: raced.facts.clone(),
        })),
    });
    let store = Store::new(racing.clone(), clock.clone());
    let dir = tempfile::tempdir().unwrap();
    let s = run_once(
        &store,
        &queue(&dir, clock.clone()),
        &client(&fake, clock.clone()),
        "race",
    )
    .await
    .expect("sync");
    assert!(racing.race.lock().unwrap().is_none(), "the race happened");
    assert_eq!(s.tickets_created, 39, "the webhook made one of the 40: {s:?}");
    let got = outcome(&store).await;
    assert_eq!(got.tickets.len(), 40, "one ticket per alert, none twice");
    let (alert, _) = store.alert(&raced.uid).await.unwrap().unwrap();
    assert_eq!(alert.sources, [AlertSource::Webhook, AlertSource::Poll]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pages_give_the_per_alert_result() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (a, _da) = deskbridge_tests::stores::sqlite(clock.clone());
    let (b, _db) = deskbridge_tests::stores::sqlite(clock);
    pages_give_the_per_alert_result(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_pages_give_the_per_alert_result() {
    let Some(a) = deskbridge_tests::stores::dynamodb().await else {
        return;
    };
    let Some(b) = deskbridge_tests::stores::dynamodb().await else {
        return;
    };
    pages_give_the_per_alert_result(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_page_that_loses_a_race_falls_back_alert_by_alert() {
    let (a, _d) = deskbridge_tests::stores::sqlite(Arc::new(SystemClock));
    a_page_that_loses_a_race_falls_back_alert_by_alert(a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_page_that_loses_a_race_falls_back_alert_by_alert() {
    let Some(a) = deskbridge_tests::stores::dynamodb().await else {
        return;
    };
    a_page_that_loses_a_race_falls_back_alert_by_alert(a).await;
}
