//! The scheduled Datto sync's logic against a scripted Datto: site import per mode, the
//! poll as backstop for lost webhooks, confirmed closes only, one run at a time.

use deskbridge::jobs::alert_sync::run_once;
use deskbridge::ports::QueueName;
use serde_json::json;

use crate::desk::{fixture_json, on_both_stores, Desk, UID};
use crate::scripted_datto::ScriptedDatto;

const BIRCH_DISK: &str = "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7";
const BIRCH_BACKUP: &str = "3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28";

async fn sync(d: &Desk, datto: &ScriptedDatto) -> deskbridge::jobs::alert_sync::SyncSummary {
    run_once(&d.ctx.store, d.ctx.queue.as_ref(), datto, "test-run")
        .await
        .unwrap()
}

async fn two_pages_of_sites_become_customers_and_a_rerun_changes_nothing(d: Desk) {
    d.configure_datto().await;
    let datto = ScriptedDatto::from_fixtures();
    datto.alerts.lock().unwrap().clear();
    // The mapping table wins: Birch goes onto an existing customer.
    let (_, birch) = d.post("/api/customers", json!({"name": "Birch (existing)"})).await;
    d.put(
        "/api/site-mappings/7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40",
        json!({"customer_id": birch["id"], "site_id": birch["main_site_id"]}),
    )
    .await;
    let s = sync(&d, &datto).await;
    assert_eq!((s.sites_created, s.sites_updated, s.skipped), (2, 0, false), "{s:?}");
    let (_, customers) = d.get("/api/customers").await;
    let names: Vec<&str> = customers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Birch (existing)", "Acme Ltd - Head Office", "Cobalt Dental Clinic"],
        "Deleted Devices skipped"
    );
    for c in customers["items"].as_array().unwrap() {
        let (s, site) = d.get(&format!("/api/sites/{}", c["main_site_id"])).await;
        assert_eq!(
            (s, &site["customer_id"]),
            (200, &c["id"]),
            "every customer has its main site"
        );
    }
    let again = sync(&d, &datto).await;
    assert_eq!((again.sites_created, again.sites_updated), (0, 0));
    assert_eq!(d.get("/api/customers").await.1["items"].as_array().unwrap().len(), 3);

    // A site renamed in Datto is renamed here (and the customer made for it).
    datto.sites.lock().unwrap()[0].name = "Acme Ltd - HQ".into();
    assert_eq!(sync(&d, &datto).await.sites_updated, 1);
    let (_, customers) = d.get("/api/customers").await;
    assert!(customers["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "Acme Ltd - HQ"));
}

async fn single_customer_mode_puts_every_site_under_one_customer(d: Desk) {
    d.configure_datto().await;
    let (_, msp) = d.post("/api/customers", json!({"name": "All clients"})).await;
    let (_, mut cfg) = d.get("/api/config/datto").await;
    cfg["import_mode"] = json!("single_customer");
    cfg["import_customer_id"] = msp["id"].clone();
    cfg.as_object_mut().unwrap().remove("api_secret");
    assert_eq!(d.put("/api/config/datto", cfg).await.0, 200);
    let datto = ScriptedDatto::from_fixtures();
    datto.alerts.lock().unwrap().clear();
    assert_eq!(sync(&d, &datto).await.sites_created, 3);
    assert_eq!(d.get("/api/customers").await.1["items"].as_array().unwrap().len(), 1);
    let (_, sites) = d.get(&format!("/api/sites?customer_id={}", msp["id"])).await;
    assert_eq!(
        sites["items"].as_array().unwrap().len(),
        4,
        "main site + three imported"
    );
}

async fn an_open_alert_without_a_ticket_gets_one_from_the_poll(d: Desk) {
    d.configure_datto().await;
    let datto = ScriptedDatto::from_fixtures();
    // The webhook for the first alert arrived; the other two were lost.
    d.webhook(&fixture_json("webhook-raised.json")).await;
    let s = sync(&d, &datto).await;
    assert_eq!(s.tickets_created, 2, "{s:?}");
    assert_eq!(d.tickets().await.len(), 3);
    let (_, alert) = d.get(&format!("/api/alerts/{BIRCH_BACKUP}")).await;
    assert_eq!(alert["sources"], json!(["poll"]));
    let (_, t) = d.get(&format!("/api/tickets/{}", alert["ticket_id"])).await;
    assert_eq!(t["asset"], "BIRCH-PC07");
    assert_eq!(t["priority"], "low");
    assert!(
        t["summary"]
            .as_str()
            .unwrap()
            .starts_with("Backup job 'Nightly-Docs' last result: Failed"),
        "{}",
        t["summary"]
    );
    let (_, disk) = d.get(&format!("/api/alerts/{BIRCH_DISK}")).await;
    let (_, t) = d.get(&format!("/api/tickets/{}", disk["ticket_id"])).await;
    assert_eq!(t["summary"], "Disk usage alert for D: on BIRCH-FS01");
    // The webhook arriving later for a polled alert is a duplicate.
    let mut late = fixture_json("webhook-raised.json");
    late["alert_uid"] = json!(BIRCH_DISK);
    assert_eq!(d.webhook(&late).await.1["result"], "duplicate");
    assert_eq!(sync(&d, &datto).await.tickets_created, 0);
}

async fn a_ticket_closes_only_after_datto_confirms_the_resolve(d: Desk) {
    d.configure_datto().await;
    let datto = ScriptedDatto::from_fixtures();
    sync(&d, &datto).await;
    assert_eq!(d.tickets().await.len(), 3);
    // One alert is left out of an incomplete open list but is still open on GET.
    datto.hidden_from_list.lock().unwrap().insert(BIRCH_DISK.into());
    // Another was resolved in Datto.
    datto.resolve_in_datto(UID);
    let s = sync(&d, &datto).await;
    assert_eq!((s.tickets_closed, s.still_open_on_check), (1, 1), "{s:?}");
    let (_, by_uid) = d.get(&format!("/api/tickets?alert_uid={UID}")).await;
    assert_eq!(by_uid["items"][0]["status"], "closed");
    assert_eq!(by_uid["items"][0]["close_origin"], "datto");
    let (_, hidden) = d.get(&format!("/api/tickets?alert_uid={BIRCH_DISK}")).await;
    assert_eq!(hidden["items"][0]["status"], "open");
    assert_eq!(
        datto.resolves.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a Datto-side resolve never calls back"
    );
}

async fn overlapping_sync_runs_leave_the_work_to_one(d: Desk) {
    d.configure_datto().await;
    let datto = ScriptedDatto::from_fixtures();
    let held = d
        .ctx
        .store
        .acquire_lease("datto-sync", "other-run", chrono::Duration::minutes(10))
        .await
        .unwrap()
        .expect("free at first");
    let s = sync(&d, &datto).await;
    assert!(s.skipped);
    assert_eq!(datto.requests_used(), 0, "the skipped run made no Datto call");
    assert!(d.tickets().await.is_empty());
    d.ctx.store.release_lease(&held).await.unwrap();
    let s = sync(&d, &datto).await;
    assert!(!s.skipped && s.tickets_created == 3);
    // Two at once: the lease lets at most one work; the other skips without calling Datto.
    let before = datto.requests_used();
    let (a, b) = tokio::join!(sync(&d, &datto), sync(&d, &datto));
    let workers = [&a, &b].iter().filter(|s| !s.skipped).count();
    assert!(workers <= 1, "both runs worked: {a:?} {b:?}");
    // A run with nothing to confirm makes three calls: request rate, sites, open alerts.
    assert_eq!(datto.requests_used() - before, if workers == 1 { 3 } else { 0 });
}

use deskbridge::ports::DattoApi;

on_both_stores!(
    two_pages_of_sites_become_customers_and_a_rerun_changes_nothing,
    single_customer_mode_puts_every_site_under_one_customer,
    an_open_alert_without_a_ticket_gets_one_from_the_poll,
    a_ticket_closes_only_after_datto_confirms_the_resolve,
    overlapping_sync_runs_leave_the_work_to_one,
);

async fn with_api(mut d: Desk) -> (Desk, std::sync::Arc<ScriptedDatto>) {
    d.configure_datto().await;
    let (_, mut cfg) = d.get("/api/config/datto").await;
    cfg["api_url"] = json!("https://concord-api.centrastage.net");
    cfg["api_key"] = json!("KEY");
    cfg["api_secret"] = json!("SECRET");
    assert_eq!(d.put("/api/config/datto", cfg).await.0, 200);
    let datto = ScriptedDatto::from_fixtures();
    d.ctx.datto = std::sync::Arc::new(crate::scripted_datto::ScriptedConnect(datto.clone()));
    (d, datto)
}

async fn a_webhook_ticket_gets_its_enrichment_and_a_failure_only_delays_it(d: Desk) {
    let (d, datto) = with_api(d).await;
    let (_, r) = d.webhook(&fixture_json("webhook-raised.json")).await;
    assert_eq!(r["result"], "created", "the webhook does not wait for the API");
    datto.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 1), "the fake failed once");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(
        t["actions"].as_array().unwrap().len(),
        1,
        "no enrichment yet, ticket unaffected"
    );
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 0), "the retry succeeds");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    let actions = t["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    let note = actions[1]["note"].as_str().unwrap();
    assert!(note.contains("CPU usage 93.4% for 15 minutes"), "{note}");
    assert!(note.contains("percentage: 93.4"), "{note}");
    assert!(note.contains("Operating system: Windows Server 2022"), "{note}");
    // A duplicate message adds nothing; a duplicate webhook asks for nothing.
    let body = json!({"ticket_id": r["ticket_id"], "alert_uid": UID}).to_string();
    deskbridge::jobs::enrichment::enrich(&d.ctx.store, datto.as_ref(), &body)
        .await
        .unwrap();
    d.webhook(&fixture_json("webhook-raised.json")).await;
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (0, 0));
    assert_eq!(
        d.get(&format!("/api/tickets/{}", r["ticket_id"])).await.1["actions"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn sync_now_and_the_config_test_answer_in_plain_words(d: Desk) {
    let (s, t) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!((s, t["ok"].as_bool()), (200, Some(false)));
    assert!(t["message"].as_str().unwrap().contains("not configured"));
    assert_eq!(d.sync_now().await.1["error"], "DATTO_API_NOT_CONFIGURED");
    let (d, datto) = with_api(d).await;
    let (_, t) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!(
        (t["ok"].as_bool(), t["account"].as_str()),
        (Some(true), Some("Example MSP"))
    );
    datto.fail_next.store(1, std::sync::atomic::Ordering::SeqCst);
    let (_, t) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!(
        (t["ok"].as_bool(), t["message"].as_str()),
        (Some(false), Some("429 Too Many Requests"))
    );
    let (s, summary) = d.sync_now().await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(
        (
            &summary["sites_created"],
            &summary["tickets_created"],
            &summary["tickets_closed"]
        ),
        (&json!(3), &json!(3), &json!(0))
    );
    assert!(summary["requests_used"].as_u64().unwrap() >= 2);
    assert_eq!(
        (&summary["sites_updated"], &summary["skipped"]),
        (&json!(0), &json!(false))
    );
}

on_both_stores!(
    a_webhook_ticket_gets_its_enrichment_and_a_failure_only_delays_it,
    sync_now_and_the_config_test_answer_in_plain_words,
);

async fn a_sync_leaves_an_account_near_its_rate_limit_alone(d: Desk) {
    d.configure_datto().await;
    let datto = ScriptedDatto::from_fixtures();
    datto.headroom.store(40, std::sync::atomic::Ordering::SeqCst);
    let s = sync(&d, &datto).await;
    assert!(s.skipped, "{s:?}");
    assert_eq!(s.read_headroom, Some(40));
    assert!(s.reason.as_deref().unwrap().contains("40 requests of headroom"));
    assert_eq!(datto.requests_used(), 1, "only the request-rate call was made");
    assert!(d.tickets().await.is_empty());
    datto.headroom.store(450, std::sync::atomic::Ordering::SeqCst);
    let s = sync(&d, &datto).await;
    assert_eq!((s.skipped, s.read_headroom, s.tickets_created), (false, Some(450), 3));
}

on_both_stores!(a_sync_leaves_an_account_near_its_rate_limit_alone);
