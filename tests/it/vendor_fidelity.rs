//! What Datto really sends, end to end on both stores: Halo-style and encoded alert mails,
//! webhooks with unfilled placeholders or admin-edited keys, and poll tickets for ten
//! `alertContext` classes from the fake Datto.

use deskbridge::datto::api::device_facts;
use deskbridge::domain::alerts::{correct_unknown, AlertUid, CorrectionSource, FactField, Unknown};
use deskbridge::intake::mail::{ingest_mail, MailOutcome};
use deskbridge::ports::QueueName;
use serde_json::{json, Value};

use crate::datto_e2e::wire;
use crate::desk::{fixture, fixture_json, on_both_stores, Desk, NowUtc};

const PC07_BACKUP: &str = "3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28";
const FS01_DISK: &str = "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7";

async fn ticket_of(d: &Desk, uid: &str) -> Value {
    let (_, alert) = d.get(&format!("/api/alerts/{uid}")).await;
    let (s, t) = d.get(&format!("/api/tickets/{}", alert["ticket_id"])).await;
    assert_eq!(s, 200, "{alert}");
    t
}

async fn a_halo_subject_mail_makes_the_reason_and_device_the_summary(d: Desk) {
    d.configure_datto().await;
    let mail = ingest_mail(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &fixture("alert-email-halo-subject.eml"),
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    let MailOutcome::Applied(r) = mail else {
        panic!("{mail:?}")
    };
    assert_eq!(r.result, deskbridge::domain::alerts::Outcome::Created);
    let t = ticket_of(&d, PC07_BACKUP).await;
    assert_eq!(t["summary"], "Process 'AdobeARMservice' isStopped on 10.20.0.17");
    assert_eq!(t["asset"], "BIRCH-PC07");
    assert_eq!(t["priority"], "low");
    let details = t["details"].as_str().unwrap();
    assert!(
        details.contains("Message body:\nSite: Birch & Co Accountants"),
        "{details}"
    );
    // The webhook for the same alert is the same ticket.
    let mut hook = fixture_json("webhook-raised.json");
    hook["alert_uid"] = json!(PC07_BACKUP);
    let (_, w) = d.webhook(&hook).await;
    assert_eq!(
        (w["result"].as_str(), w["ticket_id"].as_u64()),
        (Some("duplicate"), r.ticket_id)
    );
    assert_eq!(d.tickets().await.len(), 1);
}

async fn an_encoded_forwarded_subject_finds_its_alert(d: Desk) {
    d.configure_datto().await;
    let mail = ingest_mail(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &fixture("alert-email-encoded-subject.eml"),
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    assert!(matches!(mail, MailOutcome::Applied(_)), "{mail:?}");
    let t = ticket_of(&d, FS01_DISK).await;
    assert_eq!(t["summary"], "Volume D: (Daten) hat 4,5 % frei");
    assert_eq!(t["priority"], "medium", "Moderate, from the subject");
    assert!(t["details"].as_str().unwrap().contains("85,9 GB"));
}

async fn unfilled_placeholders_make_a_ticket_at_once_and_the_api_knows_what_to_correct(mut d: Desk) {
    let w = wire(&mut d, 500).await;
    let (s, r) = d.webhook(&fixture_json("webhook-variant-unfilled.json")).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    // At once, from what is known: no site, so the catch-all customer; default priority.
    let t = ticket_of(&d, PC07_BACKUP).await;
    assert_eq!(t["summary"], "Backup job 'Nightly-Docs' failed: VSS writer timed out");
    assert!(t["asset"].is_null(), "the empty hostname is not a value: {t}");
    let uid = AlertUid::parse("uid", PC07_BACKUP).unwrap();
    let (alert, _) = d.ctx.store.alert(&uid).await.unwrap().unwrap();
    assert_eq!(
        alert.facts.unknown.get(&FactField::SiteUid),
        Some(&Unknown::Placeholder("[site_uid]".into()))
    );
    assert_eq!(
        alert.facts.unknown.get(&FactField::DeviceHostname),
        Some(&Unknown::Empty)
    );
    assert!(!alert.facts.is_unknown(FactField::DeviceUid));
    // What the Datto API (the fake, through the real client) says corrects exactly those.
    let api = d.ctx.datto.connect().await.unwrap().expect("configured");
    let remote = api.alert(&uid).await.unwrap().expect("known to Datto");
    let device = api
        .device(alert.facts.device_uid.as_deref().unwrap())
        .await
        .unwrap()
        .and_then(|v| device_facts(&v));
    let c = correct_unknown(&alert.facts, &remote.facts, device.as_ref());
    let fields: Vec<(FactField, &str, CorrectionSource)> = c
        .corrections
        .iter()
        .map(|c| (c.field, c.value.as_str(), c.from))
        .collect();
    assert_eq!(
        fields,
        [
            (FactField::Priority, "Low", CorrectionSource::DattoAlert),
            (FactField::DeviceHostname, "BIRCH-PC07", CorrectionSource::DattoAlert),
            (
                FactField::SiteUid,
                "7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40",
                CorrectionSource::DattoAlert
            ),
            (
                FactField::SiteName,
                "Birch & Co Accountants",
                CorrectionSource::DattoAlert
            ),
        ]
    );
    assert_eq!(c.facts.message, alert.facts.message, "the real message stays");
    assert!(w.fake.count(&format!("/api/v2/alert/{PC07_BACKUP}")) >= 1);
}

/// The alert's timeline entries that enrichment's corrections wrote.
async fn corrections_on_timeline(d: &Desk, uid: &str) -> Vec<String> {
    let (_, alert) = d.get(&format!("/api/alerts/{uid}")).await;
    alert["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["decision"] == "fields_corrected")
        .map(|e| format!("{}: {}", e["source"].as_str().unwrap(), e["event"].as_str().unwrap()))
        .collect()
}

async fn enrichment_moves_a_placeholder_ticket_to_its_customer_with_the_apis_priority(mut d: Desk) {
    let _w = wire(&mut d, 500).await;
    let (s, r) = d.webhook(&fixture_json("webhook-variant-unfilled.json")).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    // At once, before Datto was asked anything: the catch-all customer, medium priority.
    let before = ticket_of(&d, PC07_BACKUP).await;
    assert_eq!(before["priority"], "medium");
    let (_, c) = d.get(&format!("/api/customers/{}", before["customer_id"])).await;
    assert_ne!(c["name"], "Birch & Co Accountants");
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 0));
    let t = ticket_of(&d, PC07_BACKUP).await;
    assert_eq!(t["id"], before["id"], "the same ticket, corrected");
    assert_eq!(t["priority"], "low", "the API's priority");
    assert_eq!(t["asset"], "BIRCH-PC07");
    assert_eq!(
        t["summary"], before["summary"],
        "the message arrived real: the summary stays"
    );
    let (_, c) = d.get(&format!("/api/customers/{}", t["customer_id"])).await;
    assert_eq!(
        c["name"], "Birch & Co Accountants",
        "the site imported from the API's site"
    );
    let (_, site) = d.get(&format!("/api/sites/{}", t["site_id"])).await;
    assert_eq!(site["datto_site_uid"], "7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40");
    assert_eq!(
        corrections_on_timeline(&d, PC07_BACKUP).await,
        [
            r#"enrichment: corrected priority: "Low" from the alert in the Datto API, was unknown (the unfilled placeholder [alert_priority])"#,
            r#"enrichment: corrected device name: "BIRCH-PC07" from the alert in the Datto API, was unknown (empty)"#,
            r#"enrichment: corrected site: "7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40" from the alert in the Datto API, was unknown (the unfilled placeholder [site_uid])"#,
            r#"enrichment: corrected site name: "Birch & Co Accountants" from the alert in the Datto API, was unknown (not sent)"#,
        ]
    );
    // A second enrichment (a repeated message) changes nothing.
    let uid = AlertUid::parse("uid", PC07_BACKUP).unwrap();
    let body = json!({"ticket_id": t["id"], "alert_uid": PC07_BACKUP}).to_string();
    d.ctx.queue.send(QueueName::AlertEnrich, &body).await.unwrap();
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 0));
    assert_eq!(corrections_on_timeline(&d, PC07_BACKUP).await.len(), 4);
    assert!(d
        .ctx
        .store
        .alert(&uid)
        .await
        .unwrap()
        .unwrap()
        .0
        .facts
        .unknown
        .is_empty());
}

async fn enrichment_never_overwrites_a_value_that_arrived_real(mut d: Desk) {
    let _w = wire(&mut d, 500).await;
    let mut hook = fixture_json("webhook-variant-unfilled.json");
    hook["alert_priority"] = json!("Critical");
    hook["device_hostname"] = json!("birch-pc07-old-name");
    let (s, r) = d.webhook(&hook).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    assert_eq!(d.drain(QueueName::AlertEnrich).await, (1, 0));
    let t = ticket_of(&d, PC07_BACKUP).await;
    assert_eq!(t["priority"], "critical", "the payload's priority, not the API's Low");
    assert_eq!(t["asset"], "birch-pc07-old-name");
    let (_, c) = d.get(&format!("/api/customers/{}", t["customer_id"])).await;
    assert_eq!(
        c["name"], "Birch & Co Accountants",
        "only the unknown site was corrected"
    );
    let corrected = corrections_on_timeline(&d, PC07_BACKUP).await;
    assert_eq!(corrected.len(), 2, "site and site name only: {corrected:?}");
    assert!(corrected.iter().all(|c| c.contains("corrected site")), "{corrected:?}");
}

async fn an_admin_edited_payload_is_accepted_and_its_extra_fields_reach_the_details(d: Desk) {
    d.configure_datto().await;
    let (s, r) = d.webhook(&fixture_json("webhook-variant-camelcase.json")).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    let t = ticket_of(&d, FS01_DISK).await;
    assert_eq!(t["summary"], "Volume D: (Data) has 4.5% free");
    assert_eq!(t["priority"], "medium");
    assert_eq!(t["asset"], "BIRCH-FS01");
    assert_eq!(t["custom_fields"], json!({"category": "Monitoring", "queue": 2}));
    let details = t["details"].as_str().unwrap();
    assert!(
        details.contains("Other fields sent:\n  deviceId: 1204388\n  platform: Concord\n  siteId: 418207\n"),
        "{details}"
    );
    assert!(!details.contains("s3cr3t-example"), "the state never reaches a ticket");
    let (_, c) = d.get(&format!("/api/customers/{}", t["customer_id"])).await;
    assert_eq!(c["name"], "Birch & Co Accountants");
    // The legacy spellings resolve it, "True" being true.
    let mut legacy = fixture_json("webhook-variant-legacy-keys.json");
    legacy["alert_uid"] = json!(FS01_DISK);
    assert_eq!(d.webhook(&legacy).await.1["result"], "resolved");
    assert_eq!(ticket_of(&d, FS01_DISK).await["status"], "closed");
}

async fn poll_tickets_for_ten_context_classes_have_readable_summaries(mut d: Desk) {
    let w = wire(&mut d, 500).await;
    w.fake.seed_context_classes();
    // One ticket per alert: noise control's relating of one device's alerts off.
    let (s, _) = d
        .put("/api/noise/settings", serde_json::json!({"related_window_minutes": 0}))
        .await;
    assert_eq!(s, 200);
    let (s, summary) = d.sync_now().await;
    assert_eq!(s, 200, "{summary}");
    assert_eq!(summary["tickets_created"], 10, "{summary}");
    let mut got: Vec<String> = d
        .tickets()
        .await
        .iter()
        .map(|t| t["summary"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want = vec![
        "CPU usage 93.4% on ACME-DC01",
        "Disk usage alert for D: on BIRCH-FS01",
        "Backup job 'Nightly-Docs' last result: Failed (BIRCH-PC07)",
        "COBALT-SRV01 is offline",
        "Service Control Manager event 7034 on ACME-DC01: The Print Spooler service terminated unexpectedly.  It has done this 3 time(s).",
        "Service Spooler stopped on ACME-DC01",
        "Patch failed on BIRCH-FS01: KB5046617 failed to install (0x800f0922)",
        "Webroot SecureAnywhere not running on BIRCH-PC07",
        "Process AdobeARMservice stopped on BIRCH-PC07",
        "SNMP UPS battery capacity is 38 on COBALT-UPS01",
    ];
    want.sort();
    assert_eq!(got, want);
}

on_both_stores!(
    a_halo_subject_mail_makes_the_reason_and_device_the_summary,
    an_encoded_forwarded_subject_finds_its_alert,
    unfilled_placeholders_make_a_ticket_at_once_and_the_api_knows_what_to_correct,
    enrichment_moves_a_placeholder_ticket_to_its_customer_with_the_apis_priority,
    enrichment_never_overwrites_a_value_that_arrived_real,
    an_admin_edited_payload_is_accepted_and_its_extra_fields_reach_the_details,
    poll_tickets_for_ten_context_classes_have_readable_summaries,
);
