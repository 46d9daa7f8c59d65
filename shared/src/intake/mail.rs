//! Alert e-mails into alert events: parse the raw message, require `Alert{uid}` and the
//! configured sender, then the same `accept` as the webhook. Refusals are logged, not errors.

use chrono::{DateTime, Utc};

use super::{accept, IntakeResult};
use crate::datto::mail::{parse, sender_matches};
use crate::domain::alerts::{AlertEvent, AlertEventKind, AlertSource};
use crate::error::Result;
use crate::ports::Queue;
use crate::store::{RequestLogEntry, Store};

/// What became of one e-mail.
#[derive(Debug, Clone, PartialEq)]
pub enum MailOutcome {
    Applied(IntakeResult),
    /// Not from the configured sender, or e-mail intake is off: logged and dropped.
    Dropped(String),
    /// No `Alert{uid}` in the subject, or not a message at all: logged and dropped.
    Unusable(String),
}

/// Handle one raw alert e-mail.
pub async fn ingest_mail(store: &Store, queue: &dyn Queue, raw: &[u8], now: DateTime<Utc>) -> Result<MailOutcome> {
    let mut log = RequestLogEntry::new("datto-mail", now);
    let settings = store.datto_settings().await?;
    let refuse = |mut log: RequestLogEntry, status: u16, outcome: &str, reason: String| {
        log.status = status;
        log.outcome = outcome.to_string();
        log.reason = Some(reason);
        log
    };
    let mail = match parse(raw) {
        Ok(m) => m,
        Err(e) => {
            let mut l = refuse(log, 422, "unusable", e.to_string());
            l.keep_raw(raw);
            store.log_request(&l).await?;
            tracing::warn!(reason = %e, "alert e-mail dropped");
            return Ok(MailOutcome::Unusable(e.to_string()));
        }
    };
    if !settings.accepts_email() {
        let reason = "e-mail intake is off (alert_method is webhook)".to_string();
        store.log_request(&refuse(log, 403, "dropped", reason.clone())).await?;
        return Ok(MailOutcome::Dropped(reason));
    }
    let from_ok = settings
        .from_address
        .as_deref()
        .is_some_and(|want| sender_matches(want, mail.from_address.as_deref()));
    if !from_ok {
        let reason = format!(
            "sender {} is not the configured From Address {}",
            mail.from_address.as_deref().unwrap_or("(none)"),
            settings.from_address.as_deref().unwrap_or("(not configured)")
        );
        tracing::warn!(%reason, subject = %mail.subject, "alert e-mail dropped");
        store.log_request(&refuse(log, 403, "dropped", reason.clone())).await?;
        return Ok(MailOutcome::Dropped(reason));
    }
    let Some(uid) = mail.uid.clone() else {
        let reason = format!("no Alert{{uid}} in subject {:?}", mail.subject);
        tracing::warn!(%reason, "alert e-mail dropped");
        store.log_request(&refuse(log, 422, "unusable", reason.clone())).await?;
        return Ok(MailOutcome::Unusable(reason));
    };
    log.alert_uid = Some(uid.to_string());
    let ev = AlertEvent {
        uid,
        kind: AlertEventKind::Raised,
        source: AlertSource::Email,
        at: now,
        facts: mail.facts,
    };
    Ok(MailOutcome::Applied(
        accept(store, queue, &settings, &ev, Some(log)).await?,
    ))
}
