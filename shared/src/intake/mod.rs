//! Alert intake: an `AlertEvent` from any source (webhook, e-mail, poll) taken to one
//! durable decision — alert, ticket and request-log entry written in one transaction —
//! and then, for a new ticket, the request for its enrichment (`accept`).

pub mod mail;
pub mod ses;

use rand::Rng;

use crate::domain::alerts::{apply, ticket_draft, AlertEvent, AlertSource, AlertUid, Effect, Outcome};
use crate::domain::datto::DattoSettings;
use crate::domain::tickets::{Action, ActionKind, Ticket, TicketStatus};
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
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Created => "created",
        Outcome::Updated => "updated",
        Outcome::Duplicate => "duplicate",
        Outcome::Resolved => "resolved",
    }
}

fn source_word(s: AlertSource) -> &'static str {
    match s {
        AlertSource::Webhook => "webhook",
        AlertSource::Email => "e-mail",
        AlertSource::Poll => "poll",
    }
}

/// Build the ticket an alert opens (customer and site from the mapping or the import).
async fn new_alert_ticket(store: &Store, ev: &AlertEvent, settings: &DattoSettings) -> Result<Ticket> {
    let facts = &ev.facts;
    let draft = ticket_draft(&ev.uid, facts, &settings.priority_map)?;
    let mapping = match facts.site_uid.as_deref() {
        Some(site_uid) => {
            store
                .site_for_datto(site_uid, facts.site_name.as_deref(), settings)
                .await?
        }
        None => store.fallback_alert_site(settings).await?,
    };
    let ticket_type_id = match settings.default_ticket_type_id {
        Some(t) => Some(t),
        None => store.default_ticket_type().await?.map(|t| t.id),
    };
    // The number comes first: a lost race leaves a gap, never a second ticket.
    let id = store.next_id("ticket").await?;
    let (action_id, now) = store.new_action_stamp().await?;
    let note = format!(
        "Datto RMM alert raised (via {}): {}",
        source_word(ev.source),
        facts.message.as_deref().unwrap_or(&draft.summary)
    );
    Ok(Ticket {
        id,
        summary: draft.summary,
        details: draft.details,
        status: TicketStatus::Open,
        customer_id: mapping.customer_id,
        site_id: mapping.site_id,
        user_id: None,
        ticket_type_id,
        priority: draft.priority,
        alert_uid: Some(ev.uid.as_str().to_string()),
        asset: draft.asset,
        custom_fields: draft.custom_fields,
        created_at: now,
        closed_at: None,
        close_origin: None,
        actions: vec![Action {
            id: action_id,
            at: now,
            kind: ActionKind::Alert,
            agent_id: None,
            note,
        }],
    })
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
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Spread retries of concurrent duplicates a little.
            let ms = rand::rng().random_range(1..=(5 * attempt as u64).min(50));
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let current = store.alert(&ev.uid).await?;
        let mut applied = apply(current.as_ref().map(|(a, _)| a), ev);
        let mut new_ticket = None;
        if applied.effect == Some(Effect::OpenTicket) {
            let t = new_alert_ticket(store, ev, settings).await?;
            applied.alert.ticket_id = Some(t.id);
            new_ticket = Some(t);
        }
        let result = IntakeResult {
            result: applied.outcome,
            alert_uid: ev.uid.clone(),
            ticket_id: applied.alert.ticket_id,
        };
        if let Some(l) = log.as_mut() {
            l.status = 200;
            l.outcome = outcome_word(applied.outcome).to_string();
            l.alert_uid = Some(ev.uid.to_string());
        }
        if !applied.changed && applied.effect.is_none() {
            if let Some(l) = &log {
                store.log_request(l).await?;
            }
            return Ok(result);
        }
        let close_ticket = match applied.effect {
            Some(Effect::CloseTicket { ticket_id }) => Some(ticket_id),
            _ => None,
        };
        let write = AlertWrite {
            alert: &applied.alert,
            previous_version: current.as_ref().map(|(_, v)| *v),
            new_ticket: new_ticket.as_ref(),
            close_ticket,
            log: log.as_ref(),
        };
        match store.write_alert(write).await {
            Ok(()) => {
                tracing::info!(alert_uid = %ev.uid, outcome = outcome_word(applied.outcome), ticket_id = ?result.ticket_id, "alert event applied");
                return Ok(result);
            }
            Err(Error::Store(StoreError::ConditionFailed { pk, .. })) if pk == "alert" || pk == "ticket" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Unavailable(format!("alert {} kept changing; try again", ev.uid).into()).into())
}
