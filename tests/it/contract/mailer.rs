//! The `Mailer` contract, run against SES (in moto) and the local outbox folder. Each case
//! takes the mailer and a way to read back what it sent; cases find their own mails by a
//! unique token in the text, so they may share one moto with other tests.

use std::sync::Arc;

use async_trait::async_trait;
use deskbridge::adapters::outbox::OutboxMailer;
use deskbridge::adapters::ses::SesMailer;
use deskbridge::ports::{MailError, Mailer, OutgoingMail};
use deskbridge_tests::emulators;

/// The sender every case uses; the SES fixture verifies it first.
pub const SENDER: &str = "deskbridge@example.com";

/// What a mailer under test has handed on, as `(message id, mail)`.
#[async_trait]
pub trait Sent: Send + Sync {
    async fn sent(&self) -> Vec<(String, OutgoingMail)>;
}

fn mail(token: &str) -> OutgoingMail {
    OutgoingMail {
        from: SENDER.to_string(),
        to: vec!["tech@example.com".to_string()],
        subject: format!("Ticket 42 updated [{token}]"),
        text: format!("Hello,\n\nticket 42 was closed. ✓ ünïcode\n\n-- {token}\n"),
    }
}

async fn sent_with(sent: &dyn Sent, token: &str) -> Vec<(String, OutgoingMail)> {
    sent.sent()
        .await
        .into_iter()
        .filter(|(_, m)| m.text.contains(token))
        .collect()
}

type Spoil = fn(&mut OutgoingMail);

#[track_caller]
fn assert_rejected(result: Result<String, MailError>) {
    assert!(
        matches!(result, Err(MailError::Rejected(_))),
        "expected Rejected, got {result:?}"
    );
}

/// A sent mail arrives field for field (sender, every recipient in order, subject, a
/// multi-line UTF-8 text) under the id `send` returned.
pub async fn a_sent_mail_arrives_field_for_field(mailer: &dyn Mailer, sent: &dyn Sent) {
    let token = emulators::unique("fields");
    let mut m = mail(&token);
    m.to = vec!["first@example.com".into(), "second@example.org".into()];

    let id = mailer.send(&m).await.expect("send");

    assert!(!id.is_empty(), "empty message id");
    assert_eq!(sent_with(sent, &token).await, vec![(id, m)]);
}

/// Sending the same mail twice sends two mails with distinct ids; mailers do not dedupe.
pub async fn every_send_is_a_separate_mail_with_its_own_id(mailer: &dyn Mailer, sent: &dyn Sent) {
    let token = emulators::unique("twice");
    let m = mail(&token);

    let first = mailer.send(&m).await.expect("first send");
    let second = mailer.send(&m).await.expect("second send");

    assert_ne!(first, second);
    let mut got = sent_with(sent, &token).await;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![(first, m.clone()), (second, m)];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want);
}

/// A mail nobody would receive or that smuggles a header through a line break is
/// `Rejected`, and nothing is sent.
pub async fn malformed_mails_are_rejected_and_not_sent(mailer: &dyn Mailer, sent: &dyn Sent) {
    let token = emulators::unique("malformed");
    let cases: [(&str, Spoil); 3] = [
        ("no recipients", |m| m.to.clear()),
        ("header injection in the subject", |m| {
            m.subject = "Hi\r\nBcc: everyone@example.com".into()
        }),
        ("recipient that is no address", |m| m.to = vec!["not an address".into()]),
    ];
    for (reason, spoil) in cases {
        let mut m = mail(&token);
        spoil(&mut m);
        let result = mailer.send(&m).await;
        assert!(matches!(result, Err(MailError::Rejected(_))), "{reason}: {result:?}");
    }
    assert_eq!(sent_with(sent, &token).await, vec![], "a refused mail was sent");
}

/// Stamps one test per case for an adapter: `contract::mailer::<adapter>::<case>`.
/// `$fixture` is an async fn returning `Option<(Arc<dyn Mailer>, Box<dyn Sent>)>` (None
/// when its emulator is not configured).
macro_rules! mailer_contract {
    ($adapter:ident, $fixture:path) => {
        mod $adapter {
            mailer_contract!(@cases $fixture;
                a_sent_mail_arrives_field_for_field,
                every_send_is_a_separate_mail_with_its_own_id,
                malformed_mails_are_rejected_and_not_sent,
            );
        }
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((mailer, sent)) = $fixture().await else { return };
                super::$case(&*mailer, &*sent).await;
            }
        )*
    };
}

mailer_contract!(ses_in_moto, super::ses_fixture);
mailer_contract!(outbox, super::outbox_fixture);

// ---------------------------------------------------------------------------------------
// SES in moto
// ---------------------------------------------------------------------------------------

/// What moto recorded as sent, read from its state dump (`ses.Message[]`).
struct MotoSent {
    endpoint: String,
}

#[async_trait]
impl Sent for MotoSent {
    async fn sent(&self) -> Vec<(String, OutgoingMail)> {
        let url = format!("{}/moto-api/data.json", self.endpoint.trim_end_matches('/'));
        let dump: serde_json::Value = reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .expect("moto state dump")
            .json()
            .await
            .expect("moto state dump is JSON");
        let messages = dump["ses"]["Message"].as_array().cloned().unwrap_or_default();
        messages
            .iter()
            .map(|m| {
                let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
                let to = m["destinations"]["ToAddresses"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let mail = OutgoingMail {
                    from: text("source"),
                    to,
                    subject: text("subject"),
                    text: text("body"),
                };
                (text("id"), mail)
            })
            .collect()
    }
}

async fn ses_client(endpoint: &str) -> aws_sdk_ses::Client {
    aws_sdk_ses::Client::new(&emulators::aws_config(endpoint).await)
}

pub(crate) async fn ses_fixture() -> Option<(Arc<dyn Mailer>, Box<dyn Sent>)> {
    let endpoint = emulators::moto()?;
    let client = ses_client(&endpoint).await;
    client
        .verify_email_identity()
        .email_address(SENDER)
        .send()
        .await
        .expect("verify the sender in moto");
    Some((Arc::new(SesMailer::new(client)), Box::new(MotoSent { endpoint })))
}

/// SES refuses an unverified sender; that is `Rejected` (retrying cannot help), not
/// `Unavailable`.
#[tokio::test]
async fn ses_refuses_an_unverified_sender_as_rejected() {
    let Some(endpoint) = emulators::moto() else {
        return;
    };
    let mailer = SesMailer::new(ses_client(&endpoint).await);
    let token = emulators::unique("unverified");
    let mut m = mail(&token);
    m.from = format!("{token}@unverified.example.net");

    assert_rejected(mailer.send(&m).await);
}

// ---------------------------------------------------------------------------------------
// Outbox folder
// ---------------------------------------------------------------------------------------

struct OutboxSent {
    outbox: OutboxMailer,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Sent for OutboxSent {
    async fn sent(&self) -> Vec<(String, OutgoingMail)> {
        self.outbox.list()
    }
}

async fn outbox_fixture() -> Option<(Arc<dyn Mailer>, Box<dyn Sent>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = OutboxMailer::new(dir.path().join("outbox")).expect("outbox folder");
    Some((Arc::new(outbox.clone()), Box::new(OutboxSent { outbox, _dir: dir })))
}

/// The outbox is a folder of complete files: a new mailer on the same folder (a restart)
/// lists every mail, oldest first, and no temporary file is left behind.
#[tokio::test]
async fn outbox_mails_survive_a_restart_in_send_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("outbox");
    let before = OutboxMailer::new(&folder).expect("outbox");
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut m = mail("restart");
        m.subject = format!("mail {i}");
        ids.push(before.send(&m).await.expect("send"));
    }
    drop(before);

    let after = OutboxMailer::new(&folder).expect("outbox");
    let listed = after.list();

    let subjects: Vec<String> = listed.iter().map(|(_, m)| m.subject.clone()).collect();
    assert_eq!(subjects, (0..5).map(|i| format!("mail {i}")).collect::<Vec<_>>());
    assert_eq!(listed.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), ids);
    let files = std::fs::read_dir(&folder).expect("read outbox").count();
    assert_eq!(files, 5, "one file per mail and nothing else");
}

/// A file that is not a mail (a stray or damaged file) is skipped, not fatal.
#[tokio::test]
async fn outbox_listing_skips_unreadable_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = OutboxMailer::new(dir.path()).expect("outbox");
    let id = outbox.send(&mail("skip")).await.expect("send");
    std::fs::write(dir.path().join("00000000000000000000-broken.json"), b"{\"half\":").expect("write");

    let listed = outbox.list();

    assert_eq!(listed.into_iter().map(|(i, _)| i).collect::<Vec<_>>(), vec![id]);
}
