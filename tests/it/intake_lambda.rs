//! Datto intake through the Lambda entry paths (API Gateway event into the datto-webhook
//! router, SES event with the raw mail in S3 on moto), local `POST /local/mail`, and a
//! store outage in the middle of an intake.

use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::ses::SimpleEmailEvent;
use deskbridge::adapters::s3_mail::S3MailSource;
use deskbridge::intake::mail::MailOutcome;
use deskbridge::intake::ses::handle_ses_event;
use deskbridge::ports::{MailError, MailSource, ManualClock, Page, Query, Record, RecordStore, StoreError, WriteOp};
use deskbridge_tests::emulators;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{desk_on, fixture, fixture_time, Desk, NowUtc, UID};

fn sqlite_desk() -> (Desk, tempfile::TempDir) {
    let clock = Arc::new(ManualClock::new(fixture_time()));
    let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
    (desk_on(records, clock), dir)
}

fn event_text(name: &str) -> String {
    std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[tokio::test]
async fn the_api_gateway_webhook_event_goes_through_the_datto_webhook_router() {
    let (d, _dir) = sqlite_desk();
    d.configure_datto().await;
    let router = || deskbridge::http::datto_router(d.ctx.clone());
    let req = lambda_http::request::from_str(&event_text("datto-webhook-raised.json")).unwrap();
    let resp = router().oneshot(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["result"], "created");
    let req = lambda_http::request::from_str(&event_text("datto-webhook-raised.json")).unwrap();
    let resp = router().oneshot(req).await.unwrap();
    let body: Value = serde_json::from_slice(&axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap()).unwrap();
    assert_eq!(body["result"], "duplicate");
    // The helpdesk routes are not part of that function.
    let mut req = lambda_http::request::from_str(&event_text("helpdesk-api-list-customers.json")).unwrap();
    *req.uri_mut() = "/api/customers".parse().unwrap();
    assert_eq!(router().oneshot(req).await.unwrap().status().as_u16(), 404);
}

struct FixtureMail;

#[async_trait]
impl MailSource for FixtureMail {
    async fn fetch(&self, message_id: &str) -> Result<Vec<u8>, MailError> {
        assert_eq!(message_id, "k9u3lq7d1m0rp5e2t8a6v4nhc3g1o0s9b7f2jwx1");
        Ok(fixture("alert-email.eml"))
    }
}

#[tokio::test]
async fn the_ses_event_creates_the_ticket_and_a_failed_verdict_drops_the_mail() {
    let (d, _dir) = sqlite_desk();
    d.configure_datto().await;
    let event: SimpleEmailEvent = serde_json::from_str(&event_text("ses-inbound-mail.json")).unwrap();
    let out = handle_ses_event(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &FixtureMail,
        event.clone(),
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&out[..], [MailOutcome::Applied(r)] if r.alert_uid.as_str() == UID),
        "{out:?}"
    );
    assert_eq!(d.tickets().await.len(), 1);

    let mut spam = event;
    spam.records[0].ses.receipt.spam_verdict.status = Some("FAIL".into());
    let out = handle_ses_event(
        &d.ctx.store,
        d.ctx.queue.as_ref(),
        &FixtureMail,
        spam,
        d.clock.now_utc(),
    )
    .await
    .unwrap();
    assert!(matches!(&out[..], [MailOutcome::Dropped(reason)] if reason.contains("spam")));
    let summary = deskbridge::intake::ses::summary(&out);
    assert_eq!(summary["mails"][0]["result"], "dropped");
}

#[tokio::test]
async fn the_s3_mail_source_reads_what_ses_stored_in_moto() {
    let Some(endpoint) = emulators::moto() else { return };
    let conf = emulators::aws_config(&endpoint).await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&conf).force_path_style(true).build());
    let bucket = emulators::unique("mail");
    s3.create_bucket()
        .bucket(&bucket)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("inbound/k9u3lq7d1m0rp5e2t8a6v4nhc3g1o0s9b7f2jwx1")
        .body(fixture("alert-email.eml").into())
        .send()
        .await
        .unwrap();
    let source = S3MailSource::new(s3, &bucket, "inbound/");
    assert_eq!(
        source.fetch("k9u3lq7d1m0rp5e2t8a6v4nhc3g1o0s9b7f2jwx1").await.unwrap(),
        fixture("alert-email.eml")
    );
    assert!(matches!(source.fetch("missing").await, Err(MailError::Rejected(_))));

    let (d, _dir) = sqlite_desk();
    d.configure_datto().await;
    let event: SimpleEmailEvent = serde_json::from_str(&event_text("ses-inbound-mail.json")).unwrap();
    let out = handle_ses_event(&d.ctx.store, d.ctx.queue.as_ref(), &source, event, d.clock.now_utc())
        .await
        .unwrap();
    assert!(matches!(&out[..], [MailOutcome::Applied(r)] if r.ticket_id.is_some()));
}

#[tokio::test]
async fn local_mail_takes_a_raw_message_like_ses_would() {
    let app = crate::helpers::spawn_app().await;
    let d = Desk::over(&app.ctx);
    d.configure_datto().await;
    let (s, r) = app
        .post_raw("/local/mail", "message/rfc822", fixture("alert-email.eml"))
        .await;
    assert_eq!((s.as_u16(), r["result"].as_str()), (200, Some("created")), "{r}");
    let (s, r) = app
        .post_raw("/local/mail", "message/rfc822", fixture("alert-email.eml"))
        .await;
    assert_eq!((s.as_u16(), r["result"].as_str()), (200, Some("duplicate")));
    let forged = String::from_utf8(fixture("alert-email.eml"))
        .unwrap()
        .replace("noreply@centrastage.net>", "someone@else.example>");
    let (s, e) = app.post_raw("/local/mail", "message/rfc822", forged.into_bytes()).await;
    assert_eq!((s.as_u16(), e["error"].as_str()), (403, Some("SENDER_REFUSED")));
    let resp = app
        .client
        .post(app.url("/local/mail"))
        .body(fixture("alert-email.eml"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "the local mail route needs the API token");
}

/// A store whose transactions touching an alert fail as if the backend went away.
struct OutageDuringIntake(Arc<dyn RecordStore>);

#[async_trait]
impl RecordStore for OutageDuringIntake {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
        self.0.get(pk, sk).await
    }
    async fn query(&self, q: &Query) -> Result<Page, StoreError> {
        self.0.query(q).await
    }
    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        if ops.iter().any(|o| o.key().0 == "alert") {
            return Err(StoreError::Unavailable("connection reset".into()));
        }
        self.0.write(ops).await
    }
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
        self.0.increment(pk, sk, by).await
    }
}

/// Runs on both stores: the outage wraps whichever store the desk uses.
async fn a_store_failure_during_intake_answers_503_and_leaves_no_partial_state(healthy: Desk) {
    let records = healthy.ctx.store.records().clone();
    let clock = healthy.clock.clone();
    healthy.configure_datto().await;
    let mut broken = desk_on(Arc::new(OutageDuringIntake(records)), clock);
    broken.ctx.secrets = healthy.ctx.secrets.clone();
    let (s, e) = broken.webhook(&crate::desk::fixture_json("webhook-raised.json")).await;
    assert_eq!((s, e["error"].as_str()), (503, Some("STORE_UNAVAILABLE")), "{e}");
    assert!(healthy.tickets().await.is_empty(), "no ticket without its alert");
    assert_eq!(healthy.get(&format!("/api/alerts/{UID}")).await.0, 404);
    // Datto (or the poll) retries once the store is back: exactly one ticket.
    let (s, r) = healthy.webhook(&crate::desk::fixture_json("webhook-raised.json")).await;
    assert_eq!((s, r["result"].as_str()), (200, Some("created")));
    assert_eq!(healthy.tickets().await.len(), 1);
    let log = healthy.request_log("").await;
    assert!(
        log.iter().any(|e| e["status"] == 503),
        "the failed attempt is in the log: {log:?}"
    );
    let _ = json!(null);
}

crate::desk::on_both_stores!(a_store_failure_during_intake_answers_503_and_leaves_no_partial_state);
