//! The SES receipt event: each record names a stored raw mail; read it, check the verdicts,
//! and hand it to the mail intake. Transient failures fail the invocation so SES retries.

use aws_lambda_events::event::ses::SimpleEmailEvent;
use chrono::{DateTime, Utc};

use super::mail::{ingest_mail, MailOutcome};
use crate::error::Result;
use crate::ports::{MailError, MailSource, Queue};
use crate::store::{RequestLogEntry, Store};

/// Handle every record of one SES event; returns what became of each mail.
pub async fn handle_ses_event(
    store: &Store,
    queue: &dyn Queue,
    source: &dyn MailSource,
    event: SimpleEmailEvent,
    now: DateTime<Utc>,
) -> Result<Vec<MailOutcome>> {
    let mut outcomes = Vec::new();
    for record in event.records {
        let mail = &record.ses.mail;
        let Some(message_id) = mail.message_id.clone() else {
            tracing::warn!("SES record without a message id skipped");
            continue;
        };
        let verdict_failed = [
            ("spam", &record.ses.receipt.spam_verdict.status),
            ("virus", &record.ses.receipt.virus_verdict.status),
        ]
        .into_iter()
        .find(|(_, s)| s.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("FAIL")));
        if let Some((which, _)) = verdict_failed {
            let mut log = RequestLogEntry::new("datto-mail", now);
            log.status = 403;
            log.outcome = "dropped".into();
            log.reason = Some(format!("SES {which} verdict FAIL for message {message_id}"));
            store.log_request(&log).await?;
            outcomes.push(MailOutcome::Dropped(log.reason.unwrap_or_default()));
            continue;
        }
        let raw = match source.fetch(&message_id).await {
            Ok(raw) => raw,
            Err(MailError::Rejected(reason)) => {
                let mut log = RequestLogEntry::new("datto-mail", now);
                log.status = 404;
                log.outcome = "unusable".into();
                log.reason = Some(reason.clone());
                store.log_request(&log).await?;
                outcomes.push(MailOutcome::Unusable(reason));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        outcomes.push(ingest_mail(store, queue, &raw, now).await?);
    }
    Ok(outcomes)
}

/// A small JSON summary of an invocation (returned to Lambda, visible in logs).
pub fn summary(outcomes: &[MailOutcome]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| match o {
            MailOutcome::Applied(r) => serde_json::to_value(r).expect("serializable"),
            MailOutcome::Dropped(reason) => serde_json::json!({"result": "dropped", "reason": reason}),
            MailOutcome::Unusable(reason) => serde_json::json!({"result": "unusable", "reason": reason}),
        })
        .collect();
    serde_json::json!({ "mails": items })
}
