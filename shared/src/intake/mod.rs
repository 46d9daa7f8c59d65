//! Alert intake: an `AlertEvent` from any source (webhook, e-mail, poll) taken to one
//! durable decision — alert, ticket and request-log entry written in one transaction —
//! and then, for a new ticket, the request for its enrichment (`accept`).

pub mod mail;
pub mod noise;
pub mod ses;

use rand::Rng;

use crate::domain::alerts::{apply, AlertEvent, AlertEventKind, AlertState, AlertUid, Effect, Outcome};
use crate::domain::datto::DattoSettings;
use crate::error::{Error, Result};
use crate::ports::{Queue, QueueName, StoreError};
use crate::store::{AlertWrite, RequestLogEntry, Store};

/// How often a decision is retaken after another writer changed the alert first.
const ATTEMPTS: usize = 40;

/// What an intake answered.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct IntakeResult {
    pub result: Outcome,
    pub alert_uid: AlertUid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<u64>,
    /// What noise control decided (`related to ticket 12`, `suppressed by rule 1 'Lab'`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Duplicate => "duplicate",
        Outcome::Resolved => "resolved",
    }
}

/// The `alert-enrich` message: add Datto's details to the new ticket of an alert.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EnrichRequest {
    pub ticket_id: u64,
    pub alert_uid: String,
}

/// Every source's way in: apply the event durably (`ingest_with`), then ask for the new
/// ticket's enrichment. Once the decision is stored the intake has succeeded, whatever
/// happens to the request for enrichment: that is best effort (a failed send is logged and
/// the ticket stands without the extra details), so no source ever sees a failure for a
/// decision that was made, and none retries an event that was already applied.
pub async fn accept(
    store: &Store,
    queue: &dyn Queue,
    settings: &DattoSettings,
    ev: &AlertEvent,
    log: Option<RequestLogEntry>,
) -> Result<IntakeResult> {
    let result = ingest_with(store, settings, ev, log).await?;
    request_enrichment(queue, settings, &result).await;
    Ok(result)
}

/// After an intake created a ticket, ask for its enrichment when the Datto API is set up.
async fn request_enrichment(queue: &dyn Queue, settings: &DattoSettings, result: &IntakeResult) {
    if result.result != Outcome::Created || settings.api_url.is_none() || settings.api_key.is_none() {
        return;
    }
    let Some(ticket_id) = result.ticket_id else {
        return;
    };
    let body = serde_json::to_string(&EnrichRequest {
        ticket_id,
        alert_uid: result.alert_uid.to_string(),
    })
    .expect("json");
    if let Err(e) = queue.send(QueueName::AlertEnrich, &body).await {
        tracing::warn!(ticket_id, error = %e, "enrichment not requested; the ticket stands without Datto's details");
    }
}

/// Apply one alert event durably, under the Datto settings read by the caller (a sync
/// applies many events under one). `log`, when given, is completed with the outcome and
/// stored in the same transaction as the decision.
pub async fn ingest_with(
    store: &Store,
    settings: &DattoSettings,
    ev: &AlertEvent,
    mut log: Option<RequestLogEntry>,
) -> Result<IntakeResult> {
    let config = store.noise_config().await?;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Spread retries of concurrent duplicates a little.
            let ms = rand::rng().random_range(1..=(5 * attempt as u64).min(50));
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let current = store.alert(&ev.uid).await?;
        let mut applied = apply(current.as_ref().map(|(a, _)| a), ev);
        // Noise control decides once the alert's facts are final (see `noise`).
        let was_open = current.as_ref().is_some_and(|(a, _)| a.state == AlertState::Open);
        let noise = if applied.effect == Some(Effect::OpenTicket) {
            Some(noise::on_raise(store, settings, &config, ev, &mut applied.alert).await?)
        } else if ev.kind == AlertEventKind::Resolved && was_open {
            noise::on_resolve(store, &config, ev, &mut applied.alert).await?
        } else {
            None
        };
        let outcome = match &noise {
            Some(n) if applied.outcome == Outcome::Created && !n.opened && n.ticket_id.is_some() => Outcome::Updated,
            _ => applied.outcome,
        };
        let result = IntakeResult {
            result: outcome,
            alert_uid: ev.uid.clone(),
            ticket_id: applied.alert.ticket_id,
            decision: noise.as_ref().map(|n| n.line.outcome.clone()),
        };
        if let Some(l) = log.as_mut() {
            l.status = 200;
            l.outcome = match &noise {
                Some(n) if !n.plain => n.line.outcome.clone(),
                _ => outcome_word(applied.outcome).to_string(),
            };
            l.alert_uid = Some(ev.uid.to_string());
        }
        if !applied.changed && applied.effect.is_none() && noise.is_none() {
            if let Some(l) = &log {
                store.log_request(l).await?;
            }
            return Ok(result);
        }
        let close_ticket = match (applied.effect, &noise) {
            (Some(Effect::CloseTicket { ticket_id }), None) => Some(ticket_id),
            _ => None,
        };
        let write = AlertWrite {
            alert: &applied.alert,
            previous_version: current.as_ref().map(|(_, v)| *v),
            new_ticket: None,
            close_ticket,
            log: log.as_ref(),
            extra: noise.map(|n| n.ops).unwrap_or_default(),
        };
        match store.write_alert(write).await {
            Ok(()) => {
                tracing::info!(alert_uid = %ev.uid, outcome = outcome_word(outcome), decision = ?result.decision, ticket_id = ?result.ticket_id, "alert event applied");
                return Ok(result);
            }
            Err(Error::Store(StoreError::ConditionFailed { pk, .. }))
                if pk == "alert" || pk == "ticket" || pk == "noise-device" || pk.starts_with("ticket#") =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(format!("alert {} kept changing; try again", ev.uid).into()).into())
}
