//! The local server's read cache (`adapters::record_cache`) on a real SQLite store: a new
//! alert's configuration reads come from memory after the first alert, and a change made
//! through the API is what the very next alert is decided by.

use std::sync::Arc;

use deskbridge::adapters::record_cache::CachedRecordStore;
use deskbridge::ports::{ManualClock, RecordStore};
use deskbridge_tests::faults::{Fault, FaultyStore};
use serde_json::{json, Value};

use crate::desk::{desk_on, fixture_time, Desk, STATE};

fn alert(n: u64, device: &str, message: &str) -> Value {
    json!({
        "state": STATE,
        "alert_resolved": false,
        "alert_uid": format!("00000000-0000-4000-8000-{n:012x}"),
        "alert_message": message,
        "alert_priority": "High",
        "device_uid": format!("b2e4a7c1-6f3d-4e58-a9b0-{device:0>12}"),
        "device_hostname": format!("ACME-{device}"),
        "site_uid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        "site_name": "Acme Ltd - Head Office"
    })
}

/// A desk on SQLite with the store's reads counted below the cache (`cached`) or with no
/// cache at all.
fn rig(
    cached: bool,
) -> (
    Desk,
    Arc<FaultyStore>,
    Option<Arc<CachedRecordStore>>,
    tempfile::TempDir,
) {
    let clock = Arc::new(ManualClock::new(fixture_time()));
    let dir = tempfile::tempdir().unwrap();
    let sqlite = deskbridge::adapters::SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock.clone()).unwrap();
    let counted = FaultyStore::new(Arc::new(sqlite));
    let (records, cache): (Arc<dyn RecordStore>, _) = if cached {
        let c = Arc::new(CachedRecordStore::local(counted.clone()));
        (c.clone(), Some(c))
    } else {
        (counted.clone(), None)
    };
    (desk_on(records, clock), counted, cache, dir)
}

/// Store reads a new alert (on a device of its own) costs once two alerts of its site came
/// before it (the first imported the site).
async fn reads_of_a_new_alert(cached: bool) -> u64 {
    let (d, counted, _, _dir) = rig(cached);
    d.configure_datto().await;
    for (n, device) in [(1, "PC1"), (2, "PC2")] {
        let (s, r) = d.webhook(&alert(n, device, "Disk full")).await;
        assert_eq!(s, 200, "{r}");
    }
    counted.arm(Fault::None);
    let (s, r) = d.webhook(&alert(3, "PC3", "CPU high")).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    counted.reads()
}

#[tokio::test]
async fn a_new_alert_reads_only_its_own_records_once_the_configuration_is_in_memory() {
    let uncached = reads_of_a_new_alert(false).await;
    let cached = reads_of_a_new_alert(true).await;
    println!("store reads of a new alert: {uncached} without the cache, {cached} with it");
    // Left to read: the alert itself and its device's noise record.
    assert_eq!(cached, 2, "with the cache");
    assert!(uncached >= cached + 5, "without the cache: {uncached}");
}

#[tokio::test]
async fn a_change_through_the_api_decides_the_very_next_alert() {
    let (d, _, cache, _dir) = rig(true);
    let cache = cache.unwrap();
    let first_type = d.configure_datto().await;
    let (s, r) = d.webhook(&alert(1, "PC1", "Disk full")).await;
    assert_eq!(s, 200, "{r}");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(t["ticket_type_id"], first_type["id"]);
    let before = cache.counts();

    // A rule: the next matching alert is suppressed, not ticketed.
    let (s, _) = d
        .post(
            "/api/noise/rules",
            json!({"name": "Lab is noise", "when": {"message": {"contains": "lab"}}, "then": "suppress"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, r) = d.webhook(&alert(2, "LAB1", "Lab VM offline")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["decision"], "suppressed by rule 1 'Lab is noise'");

    // Datto settings: another ticket type for alert tickets.
    let other = d.alert_tickets_of_a_new_type("Server alert", "high").await;
    let (s, r) = d.webhook(&alert(3, "PC3", "CPU high")).await;
    assert_eq!(s, 200, "{r}");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(t["ticket_type_id"], other["id"], "{t}");

    // Noise settings: related alerts off, so a second alert of PC3 opens its own ticket.
    let (s, n) = d.get("/api/noise/settings").await;
    assert_eq!(s, 200, "{n}");
    let mut n = n;
    n["related_window_minutes"] = json!(0);
    let (s, saved) = d.put("/api/noise/settings", n).await;
    assert_eq!(s, 200, "{saved}");
    let (s, r2) = d.webhook(&alert(4, "PC3", "Memory low")).await;
    assert_eq!(s, 200, "{r2}");
    assert_eq!(r2["result"], "created", "{r2}");
    assert_ne!(r2["ticket_id"], r["ticket_id"]);

    let after = cache.counts();
    assert!(
        after.hits > before.hits,
        "the cache answered reads: {before:?} -> {after:?}"
    );
}
