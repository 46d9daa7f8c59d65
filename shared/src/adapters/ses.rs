//! `Mailer` on Amazon SES (API v1 `SendEmail`, plain text, UTF-8).
//! The sender address or its domain must be a verified SES identity.

use async_trait::async_trait;
use aws_sdk_ses::error::ProvideErrorMetadata;
use aws_sdk_ses::types::{Body, Content, Destination, Message};
use aws_sdk_ses::Client;

use crate::ports::{MailError, Mailer, OutgoingMail};

/// Error codes that mean SES will not send this message as it stands; retrying the same
/// request cannot help.
const REFUSALS: &[&str] = &[
    "MessageRejected",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExistException",
    "InvalidParameterValue",
    "ValidationError",
];

/// Sends mail through SES.
#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
}

impl SesMailer {
    pub fn new(client: Client) -> Self {
        SesMailer { client }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    #[tracing::instrument(skip_all, fields(recipients = mail.to.len()))]
    async fn send(&self, mail: &OutgoingMail) -> Result<String, MailError> {
        mail.check()?;
        let utf8 = |text: &str| {
            Content::builder()
                .data(text)
                .charset("UTF-8")
                .build()
                .map_err(|e| MailError::Rejected(e.to_string()))
        };
        let message = Message::builder()
            .subject(utf8(&mail.subject)?)
            .body(Body::builder().text(utf8(&mail.text)?).build())
            .build();
        let sent = self
            .client
            .send_email()
            .source(&mail.from)
            .destination(Destination::builder().set_to_addresses(Some(mail.to.clone())).build())
            .message(message)
            .send()
            .await;
        match sent {
            Ok(out) => Ok(out.message_id),
            Err(e) if e.code().is_some_and(|c| REFUSALS.contains(&c)) => Err(MailError::Rejected(format!(
                "{}: {}",
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default()
            ))),
            Err(e) => Err(MailError::Unavailable(Box::new(e))),
        }
    }
}
