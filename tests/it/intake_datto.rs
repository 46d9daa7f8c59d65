//! Datto RMM alert intake end to end (webhook, e-mail, SES, the Lambda path), each scenario
//! on SQLite and on DynamoDB Local: one alert makes one ticket whatever the path.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::desk::{fixture, fixture_json, on_both_stores, Desk, NowUtc, STATE, UID};

fn raised() -> Value {
    fixture_json("webhook-raised.json")
}

fn resolved() -> Value {
    fixture_json("webhook-resolved.json")
}

fn with_uid(mut v: Value, uid: &str) -> Value {
    v["alert_uid"] = json!(uid);
    v
}

async fn raised_makes_one_well_filled_ticket(d: Desk) {
    let tt = d.configure_datto().await;
    let (s, r) = d.webhook(&raised()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["result"], "created");
    assert_eq!(r["alert_uid"], UID);
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(t["summary"], "CPU usage on ACME-DC01 has been above 90% for 15 minutes");
    assert_eq!(t["priority"], "high", "Datto High maps to high");
    assert_eq!(t["ticket_type_id"], tt["id"]);
    assert_eq!(t["asset"], "ACME-DC01");
    assert_eq!(t["alert_uid"], UID);
    assert_eq!(
        t["custom_fields"],
        json!({"category": "Monitoring", "source": "Datto RMM"})
    );
    assert!(t["details"]
        .as_str()
        .unwrap()
        .contains("Site: Acme Ltd - Head Office (0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f)"));
    assert_eq!(t["actions"][0]["kind"], "alert");
    // The unknown Datto site was imported as a customer with that site as main site.
    let (_, c) = d.get(&format!("/api/customers/{}", t["customer_id"])).await;
    assert_eq!(c["name"], "Acme Ltd - Head Office");
    assert_eq!(c["main_site_id"], t["site_id"]);
    let (_, site) = d.get(&format!("/api/sites/{}", t["site_id"])).await;
    assert_eq!(site["datto_site_uid"], "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f");
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(alert["state"], "open");
    assert_eq!(alert["sources"], json!(["webhook"]));
    assert_eq!(alert["ticket_id"], r["ticket_id"]);
    assert_eq!(alert["timeline"][0]["decision"], "ticket_created");
    let (_, by_uid) = d.get(&format!("/api/tickets?alert_uid={UID}")).await;
    assert_eq!(by_uid["items"].as_array().unwrap().len(), 1);
}

async fn repeats_and_the_email_for_the_same_alert_are_duplicates(d: Desk) {
    d.configure_datto().await;
    // E-mail first, then the webhook twice, then the e-mail again.
    let mail = deskbridge::intake::mail::ingest_mail(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &fixture("alert-email.eml"),
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    let deskbridge::intake::mail::MailOutcome::Applied(first) = mail else {
        panic!("{mail:?}")
    };
    assert_eq!(first.result, deskbridge::domain::alerts::Outcome::Created);
    let (_, r) = d.webhook(&raised()).await;
    assert_eq!(r["result"], "duplicate");
    assert_eq!(r["ticket_id"].as_u64(), first.ticket_id);
    let (_, r) = d.webhook(&raised()).await;
    assert_eq!(r["result"], "duplicate");
    let again = deskbridge::intake::mail::ingest_mail(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &fixture("alert-email.eml"),
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    assert!(
        matches!(again, deskbridge::intake::mail::MailOutcome::Applied(ref r) if r.result == deskbridge::domain::alerts::Outcome::Duplicate)
    );
    assert_eq!(d.tickets().await.len(), 1);
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(alert["sources"], json!(["email", "webhook"]));
    assert_eq!(d.request_log("&outcome=duplicate").await.len(), 3);
}

async fn twenty_concurrent_identical_posts_make_one_ticket(d: Desk) {
    d.configure_datto().await;
    let d = Arc::new(d);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let d = d.clone();
        tasks.push(tokio::spawn(async move { d.webhook(&raised()).await }));
    }
    let mut created = 0;
    let mut ticket_ids = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, r) = t.await.unwrap();
        assert_eq!(s, 200, "{r}");
        if r["result"] == "created" {
            created += 1;
        }
        ticket_ids.insert(r["ticket_id"].as_u64().unwrap());
    }
    assert_eq!(created, 1);
    assert_eq!(ticket_ids.len(), 1, "every answer names the same ticket");
    assert_eq!(d.tickets().await.len(), 1);
    let (_, customers) = d.get("/api/customers").await;
    assert_eq!(
        customers["items"].as_array().unwrap().len(),
        1,
        "the site was imported once"
    );
}

async fn resolved_closes_the_ticket_as_a_datto_close(d: Desk) {
    d.configure_datto().await;
    let (_, r) = d.webhook(&raised()).await;
    let (s, res) = d.webhook(&resolved()).await;
    assert_eq!((s, res["result"].as_str()), (200, Some("resolved")), "{res}");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(t["status"], "closed");
    assert_eq!(
        t["close_origin"], "datto",
        "a Datto close must never be sent back to Datto"
    );
    assert!(t["actions"].as_array().unwrap().last().unwrap()["note"]
        .as_str()
        .unwrap()
        .contains("resolved in Datto"));
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(alert["state"], "resolved");
    assert_eq!(alert["resolve_propagated"], true);
    let (_, again) = d.webhook(&resolved()).await;
    assert_eq!(again["result"], "duplicate");
}

async fn a_resolve_before_the_raise_means_the_late_raise_opens_nothing(d: Desk) {
    d.configure_datto().await;
    let (_, r) = d.webhook(&resolved()).await;
    assert_eq!(r["result"], "resolved");
    let (_, late) = d.webhook(&raised()).await;
    assert_eq!(late["result"], "resolved");
    assert!(late.get("ticket_id").is_none());
    assert!(d.tickets().await.is_empty());
    // Datto re-raising the problem makes a new alert uid: that opens a new ticket.
    let (_, fresh) = d
        .webhook(&with_uid(raised(), "0b8c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"))
        .await;
    assert_eq!(fresh["result"], "created");
    assert_eq!(d.tickets().await.len(), 1);
}

async fn an_agent_close_is_recorded_and_datto_resolving_afterwards_changes_nothing(d: Desk) {
    d.configure_datto().await;
    let (_, r) = d.webhook(&raised()).await;
    let tid = r["ticket_id"].as_u64().unwrap();
    let (s, closed) = d
        .post(&format!("/api/tickets/{tid}/close"), json!({"note": "Rebooted"}))
        .await;
    assert_eq!(s, 200, "{closed}");
    assert_eq!(closed["close_origin"], "agent");
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(alert["propagation_pending"], true);
    assert_eq!(alert["resolve_propagated"], false);
    let (_, res) = d.webhook(&resolved()).await;
    assert_eq!(res["result"], "resolved");
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    assert_eq!(
        t["close_origin"], "agent",
        "the resolved webhook did not close it again"
    );
    assert_eq!(t["actions"].as_array().unwrap().len(), 2);
    let (_, alert) = d.get(&format!("/api/alerts/{UID}")).await;
    assert_eq!(
        (
            alert["propagation_pending"].as_bool(),
            alert["resolve_propagated"].as_bool()
        ),
        (Some(false), Some(true))
    );
}

async fn the_mapping_table_wins_and_single_customer_mode_imports_under_one_customer(d: Desk) {
    d.configure_datto().await;
    let (_, acme) = d.post("/api/customers", json!({"name": "ACME (existing)"})).await;
    let (s, m) = d
        .put(
            "/api/site-mappings/0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
            json!({"customer_id": acme["id"], "site_id": acme["main_site_id"]}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    let (_, r) = d.webhook(&raised()).await;
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!((&t["customer_id"], &t["site_id"]), (&acme["id"], &acme["main_site_id"]));

    let (_, cfg) = d.get("/api/config/datto").await;
    let mut cfg = cfg;
    cfg["import_mode"] = json!("single_customer");
    cfg["import_customer_id"] = acme["id"].clone();
    cfg.as_object_mut().unwrap().remove("api_secret");
    let (s, _) = d.put("/api/config/datto", cfg).await;
    assert_eq!(s, 200);
    let mut other = with_uid(raised(), "c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7");
    other["site_uid"] = json!("7a3c5e91-2b4d-4f68-9a1c-3e5d7f9b2c40");
    other["site_name"] = json!("Birch & Co Accountants");
    // Another device, so noise control does not relate it to the first alert.
    other["device_uid"] = json!("d4c3b2a1-0000-4000-8000-000000000002");
    other["device_hostname"] = json!("BIRCH-PC01");
    let (_, r2) = d.webhook(&other).await;
    let (_, t2) = d.get(&format!("/api/tickets/{}", r2["ticket_id"])).await;
    assert_eq!(t2["customer_id"], acme["id"]);
    let (_, site) = d.get(&format!("/api/sites/{}", t2["site_id"])).await;
    assert_eq!(site["name"], "Birch & Co Accountants");
    let (_, customers) = d.get("/api/customers").await;
    assert_eq!(
        customers["items"].as_array().unwrap().len(),
        1,
        "no customer per site in single-customer mode"
    );
}

async fn the_test_button_and_the_state_secret(d: Desk) {
    d.configure_datto().await;
    let (s, r) = d.webhook(&fixture_json("webhook-raised.template.json")).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("test_accepted")));
    assert!(d.tickets().await.is_empty());
    assert_eq!(d.request_log("&outcome=test_accepted").await.len(), 1);

    let mut wrong = raised();
    wrong["state"] = json!("guess");
    assert_eq!(d.webhook(&wrong).await.0, 401);
    let mut missing = raised();
    missing.as_object_mut().unwrap().remove("state");
    assert_eq!(d.webhook(&missing).await.0, 401);
    let mut test_wrong = fixture_json("webhook-raised.template.json");
    test_wrong["state"] = json!("guess");
    assert_eq!(
        d.webhook(&test_wrong).await.0,
        401,
        "a test with a bad state is refused too"
    );

    // Rotation: the old state works for 24 hours, then stops.
    let (s, rot) = d.post("/api/config/datto/webhook/rotate-state", json!({})).await;
    assert_eq!(s, 200, "{rot}");
    let (_, helper) = d.get("/api/config/datto/webhook").await;
    let new_state = helper["raised_payload"]["state"].as_str().unwrap().to_string();
    assert_ne!(new_state, STATE);
    d.clock.advance(std::time::Duration::from_secs(23 * 3600));
    assert_eq!(
        d.webhook(&raised()).await.1["result"],
        "created",
        "old state inside the grace period"
    );
    d.clock.advance(std::time::Duration::from_secs(2 * 3600));
    assert_eq!(d.webhook(&resolved()).await.0, 401, "old state after the grace period");
    let mut fresh = resolved();
    fresh["state"] = json!(new_state);
    assert_eq!(d.webhook(&fresh).await.1["result"], "resolved");
    assert!(d.request_log("&outcome=unauthorized").await.len() >= 4);
}

async fn bad_webhook_bodies_get_a_named_4xx_and_only_a_log_entry(d: Desk) {
    d.configure_datto().await;
    let ok = |mut v: Value, f: &dyn Fn(&mut Value)| {
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let big = ok(raised(), &|v| v["alert_message"] = json!("x".repeat(300 * 1024)));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            "application/json",
            br#"{"state": "s3cr3t-example", "alert_uid": "#.to_vec(),
            400,
            "body",
        ),
        (
            "missing uid",
            "application/json",
            ok(raised(), &|v| {
                v.as_object_mut().unwrap().remove("alert_uid");
            }),
            400,
            "alert_uid",
        ),
        (
            "uid not a uuid",
            "application/json",
            ok(raised(), &|v| v["alert_uid"] = json!("1234")),
            400,
            "alert_uid",
        ),
        (
            "uid wrong type",
            "application/json",
            ok(raised(), &|v| v["alert_uid"] = json!(42)),
            400,
            "alert_uid",
        ),
        (
            "resolved wrong type",
            "application/json",
            ok(raised(), &|v| v["alert_resolved"] = json!("maybe")),
            400,
            "alert_resolved",
        ),
        (
            "message wrong type",
            "application/json",
            ok(raised(), &|v| v["alert_message"] = json!({"a": 1})),
            400,
            "alert_message",
        ),
        (
            "nested additional value",
            "application/json",
            ok(raised(), &|v| v["additional_values"]["x"] = json!([1])),
            400,
            "additional_values.x",
        ),
        ("over 256 KiB", "application/json", big, 413, "256 KiB"),
        (
            "wrong content type",
            "text/plain",
            serde_json::to_vec(&raised()).unwrap(),
            415,
            "application/json",
        ),
    ];
    let n = cases.len();
    for (reason, ct, body, status, mentions) in cases {
        let (s, e) = d.call("POST", "/datto/webhook", Some(ct), body, false).await;
        assert_eq!(s, status, "{reason}: {e}");
        assert!(
            e["message"].as_str().unwrap_or("").contains(mentions),
            "{reason}: {e} should mention {mentions}"
        );
    }
    assert!(d.tickets().await.is_empty());
    assert_eq!(d.get(&format!("/api/alerts/{UID}")).await.0, 404);
    let (_, customers) = d.get("/api/customers").await;
    assert!(customers["items"].as_array().unwrap().is_empty());
    let log = d.request_log("&source=datto-webhook").await;
    assert_eq!(log.len(), n, "one log entry per refused request");
    assert!(log.iter().all(|e| e["outcome"] == "rejected"));
    let malformed = log
        .iter()
        .find(|e| e["status"] == 400 && e["reason"].as_str().unwrap().starts_with("body"))
        .unwrap();
    let raw = malformed["raw_body"].as_str().unwrap();
    assert!(raw.contains("[redacted]\", \"alert_uid"), "raw body kept: {raw}");
    assert!(!raw.contains("s3cr3t-example"), "the webhook state is redacted: {raw}");
}

async fn unescaped_placeholder_values_are_repaired(d: Desk) {
    d.configure_datto().await;
    let body = format!(
        r#"{{"state": "{STATE}", "alert_resolved": false, "alert_uid": "{UID}", "alert_message": "Logon failure for ALPHASCAN\lloyd on "DC01"", "site_uid": "[site_uid]", "site_name": "Acme"}}"#
    );
    // The bare quotes cannot be repaired; the backslash can.
    let (s, _) = d
        .call(
            "POST",
            "/datto/webhook",
            Some("application/json"),
            body.into_bytes(),
            false,
        )
        .await;
    assert_eq!(s, 400);
    let body = format!(
        r#"{{"state": "{STATE}", "alert_resolved": false, "alert_uid": "{UID}", "alert_message": "Logon failure for ALPHASCAN\lloyd", "site_uid": "[site_uid]", "site_name": "Acme"}}"#
    );
    let (s, r) = d
        .call(
            "POST",
            "/datto/webhook",
            Some("application/json"),
            body.into_bytes(),
            false,
        )
        .await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(t["summary"], "Logon failure for ALPHASCAN\\lloyd");
}

async fn the_setup_helper_payloads_round_trip_through_the_webhook(d: Desk) {
    d.configure_datto().await;
    let (s, h) = d.get("/api/config/datto/webhook").await;
    assert_eq!(s, 200);
    assert_eq!(h["url"], "https://desk.example.test/datto/webhook");
    assert_eq!(h["content_type"], "application/json");
    assert!(h["additional_values_example"].is_object());
    // The e-mail route: the subject line to paste into a monitor's e-mail response.
    assert_eq!(
        h["email_subject"],
        "Alert on device: [ipaddress], reason [alert] - Alert{[alertuid]}"
    );
    assert!(h["email_instructions"].as_str().unwrap().contains("Alert{[alertuid]}"));
    // Datto substitutes placeholders as plain text, without JSON escaping.
    let values = [
        ("[alert_uid]", UID),
        (
            "[alert_message]",
            r"Process 'AdobeARMservice' isStopped for CORP\svc_adobe",
        ),
        ("[alert_priority]", "Moderate"),
        ("[device_uid]", "b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63"),
        ("[device_hostname]", "ACME-DC01"),
        ("[site_uid]", "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"),
        ("[site_name]", "Acme Ltd - Head Office"),
    ];
    let substitute = |payload: &Value| {
        let mut text = serde_json::to_string_pretty(payload).unwrap();
        for (k, v) in values {
            text = text.replace(k, v);
        }
        text.into_bytes()
    };
    let (s, r) = d
        .call(
            "POST",
            "/datto/webhook",
            Some(h["content_type"].as_str().unwrap()),
            substitute(&h["raised_payload"]),
            false,
        )
        .await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")), "{r}");
    let (_, t) = d.get(&format!("/api/tickets/{}", r["ticket_id"])).await;
    assert_eq!(t["priority"], "medium");
    assert!(t["summary"].as_str().unwrap().ends_with(r"CORP\svc_adobe"));
    let (s, r) = d
        .call(
            "POST",
            "/datto/webhook",
            Some("application/json"),
            substitute(&h["resolved_payload"]),
            false,
        )
        .await;
    assert_eq!((s, r["result"].as_str()), (200, Some("resolved")), "{r}");
    // The raw payloads are Datto's Test button: accepted, nothing created.
    let (_, r) = d.webhook(&h["raised_payload"]).await;
    assert_eq!(r["result"], "test_accepted");
    // Secrets stay write-only elsewhere.
    let (_, cfg) = d.get("/api/config/datto").await;
    assert_eq!(cfg["api_secret"], json!({"set": false}));
}

async fn alert_mails_are_checked_for_sender_and_uid(d: Desk) {
    use deskbridge::intake::mail::{ingest_mail, MailOutcome};
    d.configure_datto().await;
    let now = d.clock.now_utc();
    let eml = String::from_utf8(fixture("alert-email.eml")).unwrap();
    let forged = eml.replace(
        "From: Datto RMM <noreply@centrastage.net>",
        "From: Datto RMM <noreply@centrastage.net.evil.example>",
    );
    assert!(matches!(
        ingest_mail(&d.ctx.store, d.ctx.queue.as_ref(), forged.as_bytes(), now)
            .await
            .unwrap(),
        MailOutcome::Dropped(_)
    ));
    let no_uid = eml.replace(
        "Subject: Alert{5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94} High",
        "Subject: High",
    );
    assert!(matches!(
        ingest_mail(&d.ctx.store, d.ctx.queue.as_ref(), no_uid.as_bytes(), now)
            .await
            .unwrap(),
        MailOutcome::Unusable(_)
    ));
    assert!(d.tickets().await.is_empty());
    let log = d.request_log("&source=datto-mail").await;
    assert_eq!(log.len(), 2);
    assert!(log
        .iter()
        .any(|e| e["outcome"] == "dropped" && e["reason"].as_str().unwrap().contains("evil.example")));
    assert!(log
        .iter()
        .any(|e| e["outcome"] == "unusable" && e["reason"].as_str().unwrap().contains("Alert{uid}")));

    let html_only = "From: \"Datto\" <NoReply@centrastage.net>\r\nTo: desk@example.test\r\nSubject: =?UTF-8?Q?Alert{_3e7a9c1d-5f2b-4d8e-a6c0-9b1d3f5e7a28_}_Backup_=E2=80=93_failed?=\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<html><body><p>Priority: Low</p><p>Device: BIRCH-PC07</p><p>Alert: Backup job failed</p></body></html>\r\n";
    let MailOutcome::Applied(r) = ingest_mail(&d.ctx.store, d.ctx.queue.as_ref(), html_only.as_bytes(), now)
        .await
        .unwrap()
    else {
        panic!("html-only mail refused")
    };
    let (_, t) = d.get(&format!("/api/tickets/{}", r.ticket_id.unwrap())).await;
    assert_eq!(t["summary"], "Backup job failed");
    assert_eq!(t["asset"], "BIRCH-PC07");
    assert_eq!(t["priority"], "low");

    let with_attachment = "From: noreply@centrastage.net\r\nTo: desk@example.test\r\nSubject: Alert{c8a2e5f1-3b7d-4a96-8e0c-f4d1b2a3c5e7} Disk\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nPriority: Moderate\r\nDevice: BIRCH-FS01\r\nAlert: Volume D: has 4.5% free\r\n\r\n--b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOfCg==\r\n--b1--\r\n";
    let MailOutcome::Applied(r) = ingest_mail(&d.ctx.store, d.ctx.queue.as_ref(), with_attachment.as_bytes(), now)
        .await
        .unwrap()
    else {
        panic!("multipart refused")
    };
    let (_, t) = d.get(&format!("/api/tickets/{}", r.ticket_id.unwrap())).await;
    assert_eq!(t["summary"], "Volume D: has 4.5% free");
    assert_eq!(t["priority"], "medium");
}

on_both_stores!(
    raised_makes_one_well_filled_ticket,
    repeats_and_the_email_for_the_same_alert_are_duplicates,
    twenty_concurrent_identical_posts_make_one_ticket,
    resolved_closes_the_ticket_as_a_datto_close,
    a_resolve_before_the_raise_means_the_late_raise_opens_nothing,
    an_agent_close_is_recorded_and_datto_resolving_afterwards_changes_nothing,
    the_mapping_table_wins_and_single_customer_mode_imports_under_one_customer,
    the_test_button_and_the_state_secret,
    bad_webhook_bodies_get_a_named_4xx_and_only_a_log_entry,
    unescaped_placeholder_values_are_repaired,
    the_setup_helper_payloads_round_trip_through_the_webhook,
    alert_mails_are_checked_for_sender_and_uid,
);
