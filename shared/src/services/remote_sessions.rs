//! Remote sessions: BeyondTrust's session-end events recorded and their import queued,
//! stored sessions listed and linked to tickets by hand.

use serde::Serialize;

use super::request_log::{log_answer, Refusal};
use super::{Actor, Context, InputError, ServiceError, ServiceResult};
use crate::beyondtrust::connect::event_token_matches;
use crate::beyondtrust::OutboundEvent;
use crate::domain::ids::{AgentId, RemoteSessionId, TicketId};
use crate::domain::remote::{render_transcript, Lsid, RemoteSession};
use crate::domain::tickets::{Action, ActionKind};
use crate::domain::DomainError;
use crate::jobs::session_import;
use crate::ports::QueueName;
use crate::store::{Listing, PageRequest, RemoteSessionFilter, RequestLogEntry};

/// Request-log source of outbound events.
pub const EVENT_SOURCE: &str = "beyondtrust-event";

/// What an accepted outbound event led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventAnswer {
    /// `enqueued`, `duplicate` or `ignored`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsid: Option<String>,
}

/// `POST /beyondtrust/events/{token}`: check the token (constant time), record a session
/// end once per lsid and enqueue its import; never calls BeyondTrust inline.
pub async fn outbound_event(
    ctx: &Context,
    token: &str,
    body: Result<&[u8], InputError>,
) -> Result<EventAnswer, Box<Refusal>> {
    let mut log = RequestLogEntry::new(EVENT_SOURCE, ctx.clock.now());
    match event_token_matches(ctx.secrets.as_ref(), token).await {
        Ok(true) => {}
        Ok(false) => {
            // BeyondTrust blocks its whole queue behind a refused event: say so loudly.
            tracing::error!("BeyondTrust event with a wrong token refused; check the outbound event URL");
            return Err(Refusal::new(
                ServiceError::Unauthorized("wrong event token".into()),
                log,
                None,
            ));
        }
        Err(e) => return Err(Refusal::unlogged(e)),
    }
    let bytes = match body {
        Ok(b) => b,
        Err(e) => return Err(Refusal::new(e, log, None)),
    };
    let ev = match OutboundEvent::parse_form(bytes) {
        Ok(ev) => ev,
        Err(e) => {
            return Err(Refusal::new(
                InputError::MalformedEvent(e.to_string()),
                log,
                Some(bytes),
            ))
        }
    };
    log.lsid = ev.lsid.as_ref().map(|l| l.to_string());
    if !ev.is_session_end() {
        log_answer(ctx, log, "ignored", Some(format!("event {} is not imported", ev.event))).await;
        return Ok(EventAnswer {
            result: "ignored",
            lsid: None,
        });
    }
    let Some(lsid) = ev.lsid.clone() else {
        let e = ServiceError::invalid("lsid", "missing in a session end event");
        return Err(Refusal::new(e, log, Some(bytes)));
    };
    match record_and_enqueue(ctx, &lsid, &ev.dedupe_key()).await {
        Ok(outcome) => {
            let result = if outcome == "duplicate" {
                "duplicate"
            } else {
                "enqueued"
            };
            let reason = (outcome == "duplicate").then(|| "session already imported".to_string());
            log_answer(ctx, log, outcome, reason).await;
            Ok(EventAnswer {
                result,
                lsid: Some(lsid.to_string()),
            })
        }
        Err(e) => Err(Refusal::new(e, log, None)),
    }
}

/// Record the session end once per lsid and enqueue its import, unless it was imported
/// already: `enqueued`, `enqueued_again` (a repeat before the import finished; the import
/// is idempotent) or `duplicate`.
async fn record_and_enqueue(ctx: &Context, lsid: &Lsid, dedupe_key: &str) -> ServiceResult<&'static str> {
    let first = ctx.store.record_session_end(lsid, dedupe_key).await?;
    if !first && ctx.store.remote_session_by_lsid(lsid).await?.is_some() {
        return Ok("duplicate");
    }
    ctx.queue
        .send(QueueName::SessionImport, &session_import::message(lsid))
        .await?;
    Ok(if first { "enqueued" } else { "enqueued_again" })
}

pub async fn list(
    ctx: &Context,
    _actor: &Actor,
    filter: &RemoteSessionFilter,
    page: &PageRequest,
) -> ServiceResult<Listing<RemoteSession>> {
    Ok(ctx.store.remote_sessions(filter, page).await?)
}

pub async fn get(ctx: &Context, _actor: &Actor, id: RemoteSessionId) -> ServiceResult<RemoteSession> {
    Ok(ctx.store.remote_session(id.get()).await?)
}

/// Link a parked session to a ticket by hand: the session's action (by its technician,
/// else the acting agent) carries the transcript.
pub async fn link_to_ticket(
    ctx: &Context,
    actor: &Actor,
    ticket: TicketId,
    session: RemoteSessionId,
) -> ServiceResult<RemoteSession> {
    let acting = ctx.acting_agent(actor).await?;
    let session = ctx.store.remote_session(session.get()).await?;
    if let Some(t) = session.linked_ticket_id {
        return Err(DomainError::conflict(
            "ALREADY_LINKED",
            format!("remote session {} is already linked to ticket {t}", session.id),
        )
        .into());
    }
    let chat = if session.transcript.is_empty() {
        "No chat messages.".to_string()
    } else {
        format!("Chat transcript (UTC):\n{}", render_transcript(&session.transcript))
    };
    let (id, at) = ctx.store.new_action_stamp().await?;
    let action = Action {
        id,
        at,
        kind: ActionKind::RemoteSession,
        agent_id: session.technician_agent_id.or(acting.map(AgentId::get)),
        note: format!(
            "{} (BeyondTrust session {}), linked by hand.\n\n{chat}",
            session.name, session.lsid
        ),
    };
    Ok(ctx.store.link_remote_session(session.id, ticket.get(), &action).await?)
}
