//! `Queue` on Amazon SQS: one standard queue per `QueueName`, each with a dead-letter
//! queue that SQS itself fills through the source queue's redrive policy.
//!
//! SQS counts receives and moves a message to the DLQ when it is received once more after
//! `maxReceiveCount` (= `QueueName::max_receives`, set by template.yaml or `create_queue_pair`).
//! The dead-letter queues have no reader of their own, so this adapter reads them by
//! briefly hiding their messages and showing them again (see `dead_letters`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};
use aws_sdk_sqs::Client;

use crate::ports::{dead_letter_error, DeadLetter, Queue, QueueDepth, QueueError, QueueName, ReceivedMessage};

/// The message attribute a dead letter's failure text travels in.
const ERROR_ATTRIBUTE: &str = "deskbridge-error";

/// SQS hands out at most ten messages per receive.
const SQS_BATCH: usize = 10;

/// The port's cap on `dead_letters`.
const MAX_DEAD_LETTERS: usize = 100;

/// How long DLQ messages stay hidden while `dead_letters` or `replay` look through them;
/// they are shown again right after, this only bounds the damage if that fails.
const PEEK_HIDE_SECS: i32 = 30;

/// How long dead letters are kept (the SQS maximum, 14 days).
const DLQ_RETENTION_SECS: u32 = 1_209_600;

/// The SQS-backed queues.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    /// Queue URL and dead-letter queue URL of each configured queue.
    urls: HashMap<QueueName, (String, String)>,
    /// Long-poll time of `receive`; zero (short polling) unless set.
    wait: Duration,
}

impl SqsQueue {
    /// `queues` lists `(queue, queue URL, DLQ URL)`, as `AwsConfig::queues` holds them.
    /// Calls on a queue not listed fail with `Unavailable`.
    pub fn new(client: Client, queues: impl IntoIterator<Item = (QueueName, String, String)>) -> Self {
        SqsQueue {
            client,
            urls: queues.into_iter().map(|(q, url, dlq)| (q, (url, dlq))).collect(),
            wait: Duration::ZERO,
        }
    }

    /// Let `receive` wait up to `wait` (at most 20 s) for a message when none is visible.
    /// Short polling may miss messages on real SQS with few messages in flight; long
    /// polling asks every server but makes an empty receive take `wait`.
    pub fn with_receive_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(Duration::from_secs(20));
        self
    }

    fn urls(&self, queue: QueueName) -> Result<(&str, &str), QueueError> {
        self.urls
            .get(&queue)
            .map(|(u, d)| (u.as_str(), d.as_str()))
            .ok_or(QueueError::NotConfigured(queue))
    }

    /// Receive up to ten messages of `url`, hiding them for `visibility` seconds (the
    /// queue's default when `None`).
    async fn receive_batch(&self, url: &str, max: usize, visibility: Option<i32>) -> Result<Vec<Message>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH) as i32)
            .set_visibility_timeout(visibility)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names(ERROR_ATTRIBUTE)
            .send()
            .await
            .map_err(QueueError::unavailable)?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Make DLQ messages that were hidden for a peek visible again at once.
    async fn show_again(&self, url: &str, receipts: &[String]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(SQS_BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, receipt) in chunk.iter().enumerate() {
                entries.push(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(0)
                        .build()
                        .map_err(QueueError::unavailable)?,
                );
            }
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(QueueError::unavailable)?;
            if let Some(failed) = out.failed().first() {
                tracing::warn!(
                    code = failed.code(),
                    "a dead letter stays hidden until its visibility timeout passes"
                );
            }
        }
        Ok(())
    }
}

/// Create `{name}-dlq` and `{name}` with a redrive policy of `max_receives` receives and
/// the given visibility timeout; returns `(queue URL, DLQ URL)`. Creating an existing
/// queue with the same attributes returns it, so bootstrap may call this on every start.
pub async fn create_queue_pair(
    client: &Client,
    name: &str,
    visibility_timeout: Duration,
    max_receives: u32,
) -> Result<(String, String), QueueError> {
    let dlq_url = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(
            QueueAttributeName::MessageRetentionPeriod,
            DLQ_RETENTION_SECS.to_string(),
        )
        .send()
        .await
        .map_err(QueueError::unavailable)?
        .queue_url
        .ok_or_else(|| QueueError::Unavailable("CreateQueue returned no URL".into()))?;
    let dlq_arn = client
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(QueueError::unavailable)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Unavailable("GetQueueAttributes returned no QueueArn".into()))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receives.to_string(),
    });
    let url = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(QueueError::unavailable)?
        .queue_url
        .ok_or_else(|| QueueError::Unavailable("CreateQueue returned no URL".into()))?;
    Ok((url, dlq_url))
}

/// Create a queue pair named `{prefix}{queue}` for every `QueueName`; the result feeds
/// `SqsQueue::new`.
pub async fn create_queues(
    client: &Client,
    prefix: &str,
    visibility_timeout: Duration,
) -> Result<Vec<(QueueName, String, String)>, QueueError> {
    let mut out = Vec::new();
    for queue in QueueName::ALL {
        let (url, dlq) = create_queue_pair(
            client,
            &format!("{prefix}{queue}"),
            visibility_timeout,
            queue.max_receives(),
        )
        .await?;
        out.push((queue, url, dlq));
    }
    Ok(out)
}

#[async_trait]
impl Queue for SqsQueue {
    #[tracing::instrument(skip_all, fields(%queue))]
    async fn send(&self, queue: QueueName, body: &str) -> Result<String, QueueError> {
        let (url, _) = self.urls(queue)?;
        let out = self
            .client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(QueueError::unavailable)?;
        out.message_id
            .ok_or_else(|| QueueError::Unavailable("SendMessage returned no message id".into()))
    }

    #[tracing::instrument(skip_all, fields(%queue, max = max))]
    async fn receive(&self, queue: QueueName, max: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        let (url, _) = self.urls(queue)?;
        let mut received = Vec::new();
        while received.len() < max {
            let want = (max - received.len()).min(SQS_BATCH);
            let batch = self.receive_batch(url, want, None).await?;
            let got = batch.len();
            received.extend(batch.into_iter().filter_map(|m| {
                Some(ReceivedMessage {
                    receive_count: receive_count(&m),
                    id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                })
            }));
            if got < want {
                break;
            }
        }
        Ok(received)
    }

    #[tracing::instrument(skip_all, fields(%queue))]
    async fn ack(&self, queue: QueueName, receipt: &str) -> Result<(), QueueError> {
        let (url, _) = self.urls(queue)?;
        match self
            .client
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid() || s.is_invalid_id_format()) =>
            {
                Err(QueueError::NotFound(format!("receipt on {queue}")))
            }
            Err(e) => Err(QueueError::unavailable(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(%queue, delay_secs = delay.as_secs()))]
    async fn release(&self, queue: QueueName, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let (url, _) = self.urls(queue)?;
        // SQS caps a message's visibility timeout at 12 hours.
        let secs = delay.as_secs().min(43_200) as i32;
        match self
            .client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_receipt_handle_is_invalid() || s.is_message_not_inflight()) =>
            {
                Err(QueueError::NotFound(format!("receipt on {queue}")))
            }
            Err(e) => Err(QueueError::unavailable(e)),
        }
    }

    /// Sends the body to the dead-letter queue as a new message, then deletes the received
    /// one; if the delete fails the message may also be delivered once more, which
    /// at-least-once allows (and its redrive policy dead-letters it in the end anyway).
    #[tracing::instrument(skip_all, fields(%queue))]
    async fn dead_letter(&self, queue: QueueName, receipt: &str, body: &str, error: &str) -> Result<(), QueueError> {
        let (_, dlq) = self.urls(queue)?;
        let mut send = self.client.send_message().queue_url(dlq).message_body(body);
        let error = dead_letter_error(error);
        if !error.is_empty() {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(error)
                .build()
                .map_err(QueueError::unavailable)?;
            send = send.message_attributes(ERROR_ATTRIBUTE, value);
        }
        send.send().await.map_err(QueueError::unavailable)?;
        self.ack(queue, receipt).await
    }

    /// Peeks: the DLQ's messages are received (hidden for up to 30 s so that later
    /// receives return the next ones) and then made visible again at once. Each peek thus
    /// counts as a receive on the DLQ, and a concurrent `replay` may miss a message while
    /// it is hidden. `receive_count` is the receives it had before it was dead-lettered,
    /// which SQS no longer tells apart from peeks, so it is reported as at most
    /// `QueueName::max_receives`.
    #[tracing::instrument(skip_all, fields(%queue))]
    async fn dead_letters(&self, queue: QueueName) -> Result<Vec<DeadLetter>, QueueError> {
        let (_, dlq) = self.urls(queue)?;
        let mut seen = HashSet::new();
        let mut receipts = Vec::new();
        let mut letters = Vec::new();
        let mut outcome = Ok(());
        while letters.len() < MAX_DEAD_LETTERS {
            let batch = match self.receive_batch(dlq, SQS_BATCH, Some(PEEK_HIDE_SECS)).await {
                Ok(b) => b,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let (Some(id), Some(receipt)) = (m.message_id.clone(), m.receipt_handle.clone()) else {
                    continue;
                };
                receipts.push(receipt);
                if seen.insert(id.clone()) && letters.len() < MAX_DEAD_LETTERS {
                    // This peek is one of the receives SQS counts.
                    let count = receive_count(&m).saturating_sub(1).clamp(1, queue.max_receives());
                    let error = m
                        .message_attributes
                        .as_ref()
                        .and_then(|a| a.get(ERROR_ATTRIBUTE))
                        .and_then(|v| v.string_value.clone());
                    letters.push((sent_at(&m), id, m.body.unwrap_or_default(), count, error));
                }
            }
        }
        self.show_again(dlq, &receipts).await?;
        outcome?;
        letters.sort();
        Ok(letters
            .into_iter()
            .map(|(_, id, body, receive_count, error)| DeadLetter {
                id,
                queue,
                body,
                receive_count,
                error,
            })
            .collect())
    }

    /// SQS's approximate counts (`ApproximateNumberOfMessages`, `...NotVisible`) of the
    /// queue and of its dead-letter queue.
    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let (url, dlq) = self.urls(queue)?;
        let count = |attrs: &Option<std::collections::HashMap<QueueAttributeName, String>>,
                     name: QueueAttributeName| {
            attrs
                .as_ref()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let main = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(QueueError::unavailable)?
            .attributes;
        let dead = self
            .client
            .get_queue_attributes()
            .queue_url(dlq)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(QueueError::unavailable)?
            .attributes;
        Ok(QueueDepth {
            queue,
            waiting: count(&main, QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(&main, QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                + count(&main, QueueAttributeName::ApproximateNumberOfMessagesDelayed),
            // A dead letter being peeked at by a listing is still one.
            dead_letters: count(&dead, QueueAttributeName::ApproximateNumberOfMessages)
                + count(&dead, QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    /// Looks through the DLQ as `dead_letters` does, sends the body to the source queue
    /// as a new message (new id, receive count 0) and then deletes the dead letter; if the
    /// delete fails the message may be replayed twice, which at-least-once allows.
    #[tracing::instrument(skip_all, fields(%queue, %id))]
    async fn replay(&self, queue: QueueName, id: &str) -> Result<(), QueueError> {
        let (url, dlq) = self.urls(queue)?;
        let mut others = Vec::new();
        let mut found = None;
        let mut outcome = Ok(());
        for _ in 0..MAX_DEAD_LETTERS / SQS_BATCH {
            let batch = match self.receive_batch(dlq, SQS_BATCH, Some(PEEK_HIDE_SECS)).await {
                Ok(b) => b,
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            for m in batch {
                let Some(receipt) = m.receipt_handle.clone() else {
                    continue;
                };
                if found.is_none() && m.message_id.as_deref() == Some(id) {
                    found = Some((receipt, m.body.unwrap_or_default()));
                } else {
                    others.push(receipt);
                }
            }
            if found.is_some() {
                break;
            }
        }
        self.show_again(dlq, &others).await?;
        outcome?;
        let Some((receipt, body)) = found else {
            return Err(QueueError::NotFound(format!("dead letter {id} on {queue}")));
        };
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(QueueError::unavailable)?;
        self.client
            .delete_message()
            .queue_url(dlq)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(QueueError::unavailable)?;
        Ok(())
    }
}

fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn sent_at(m: &Message) -> u64 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
