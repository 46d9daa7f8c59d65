//! Stand-ins for the ports a Lambda was deliberately built without (no SES client outside
//! helpdesk-api, no SQS client unless `with_queue` asked): every call fails, saying so.
//!
//! `hosting::AwsHost` puts these in place until a function's `main.rs` asks for the real
//! client (`with_queue`, `with_mailer`), so a function never builds or links a client it
//! does not use, and a wiring mistake is a clear error rather than a silent no-op.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::{
    DeadLetter, MailError, Mailer, OutgoingMail, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage,
};

/// A queue port for a function that sends to no queue: every call is `NotConfigured`.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnwiredQueue;

#[async_trait]
impl Queue for UnwiredQueue {
    async fn send(&self, queue: QueueName, _body: &str) -> Result<String, QueueError> {
        Err(unwired(queue))
    }
    async fn receive(&self, queue: QueueName, _max: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        Err(unwired(queue))
    }
    async fn ack(&self, queue: QueueName, _receipt: &str) -> Result<(), QueueError> {
        Err(unwired(queue))
    }
    async fn release(&self, queue: QueueName, _receipt: &str, _delay: Duration) -> Result<(), QueueError> {
        Err(unwired(queue))
    }
    async fn dead_letter(&self, queue: QueueName, _receipt: &str, _body: &str, _error: &str) -> Result<(), QueueError> {
        Err(unwired(queue))
    }
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        Err(unwired(queue))
    }
    async fn replay(&self, queue: QueueName, _id: &str) -> Result<(), QueueError> {
        Err(unwired(queue))
    }
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        Err(unwired(queue))
    }
}

fn unwired(queue: QueueName) -> QueueError {
    tracing::error!(%queue, "this function was built without a queue client (hosting: with_queue)");
    QueueError::NotConfigured(queue)
}

/// A mailer for a function that sends no mail: every message is refused as unavailable.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnwiredMailer;

#[derive(Debug, thiserror::Error)]
#[error("this function was built without a mail client")]
struct NoMailClient;

#[async_trait]
impl Mailer for UnwiredMailer {
    async fn send(&self, _mail: &OutgoingMail) -> Result<String, MailError> {
        tracing::error!("this function was built without a mail client (hosting: with_mailer)");
        Err(MailError::Unavailable(Box::new(NoMailClient)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_fails_and_names_what_is_missing() {
        let q = UnwiredQueue;
        let err = q.send(QueueName::AlertEnrich, "{}").await.unwrap_err();
        assert!(matches!(err, QueueError::NotConfigured(QueueName::AlertEnrich)));
        assert!(q.receive(QueueName::TicketClosed, 1).await.is_err());
        assert!(q.dead_letters(QueueName::SessionImport).await.is_err());
        let mail = OutgoingMail {
            from: "a@example.com".into(),
            to: vec!["b@example.com".into()],
            subject: "s".into(),
            text: "t".into(),
        };
        let err = UnwiredMailer.send(&mail).await.unwrap_err();
        assert!(err.to_string().contains("without a mail client"), "{err}");
    }
}
