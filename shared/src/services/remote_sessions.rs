//! Remote sessions: BeyondTrust's session-end events recorded and their import queued,
//! stored sessions listed and linked to tickets by hand.

use serde::Serialize;

use super::request_log::{log_answer, Refusal};
use super::{Actor, Context, InputError, ServiceError, ServiceResult};
use crate::beyondtrust::connect::event_token_matches;
use crate::beyondtrust::events::Received;
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
    /// `enqueued`, `duplicate`, `ignored`, or `rejected` (a body we cannot use: recorded
    /// with the reason and kept for replay, still answered 200).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsid: Option<String>,
    /// Why a `rejected` body could not be used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The request-log reason of an event refused for its token.
pub const WRONG_TOKEN_REASON: &str = "wrong event token: the appliance holds back every later event until \
     this URL is fixed (copy it again from GET /api/config/beyondtrust/event-url); nothing is lost meanwhile";

/// `POST /beyondtrust/events/{token}`: check the token (constant time), record a session
/// end once per lsid and enqueue its import; never calls BeyondTrust inline. With the
/// right token every body gets 200 once recorded: one we cannot use is logged `rejected`
/// with its reason and kept for replay, because the appliance holds back every later event
/// behind one that gets anything but 200. Only a wrong token (401) and a store that
/// cannot record (503) answer otherwise.
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
                ServiceError::Unauthorized(WRONG_TOKEN_REASON.into()),
                log,
                None,
            ));
        }
        Err(e) => return Err(Refusal::unlogged(e)),
    }
    let ev = match body {
        Err(e) => return reject(ctx, log, e.to_string(), &[]).await,
        Ok(bytes) => match OutboundEvent::read(bytes) {
            Received::Event(ev) => ev,
            Received::Unusable(u) => {
                log.lsid = u.lsid.as_ref().map(|l| l.to_string());
                return reject(ctx, log, u.to_string(), bytes).await;
            }
        },
    };
    handle_event(ctx, log, &ev).await
}

/// Record an unusable body as `rejected` (with the body kept for replay) and answer 200;
/// 503 when even that record could not be made durable.
async fn reject(
    ctx: &Context,
    mut log: RequestLogEntry,
    reason: String,
    body: &[u8],
) -> Result<EventAnswer, Box<Refusal>> {
    tracing::warn!(%reason, "BeyondTrust event body rejected; kept for replay");
    log.status = 200;
    log.outcome = "rejected".into();
    log.reason = Some(reason.clone());
    log.keep_raw(body);
    match ctx.store.log_rejected_event(&log, body).await {
        Ok(()) => Ok(EventAnswer {
            result: "rejected",
            lsid: log.lsid.clone(),
            reason: Some(reason),
        }),
        Err(e) => Err(Refusal::unlogged(e)),
    }
}

/// A usable event: a session end is recorded and its import enqueued, others ignored.
async fn handle_event(
    ctx: &Context,
    mut log: RequestLogEntry,
    ev: &OutboundEvent,
) -> Result<EventAnswer, Box<Refusal>> {
    log.lsid = ev.lsid.as_ref().map(|l| l.to_string());
    if !ev.is_session_end() {
        let reason = format!("event {} is not imported", ev.event);
        let reason = match log.reason.take() {
            Some(replay) => format!("{replay}: {reason}"),
            None => reason,
        };
        log_answer(ctx, log, "ignored", Some(reason)).await;
        return Ok(EventAnswer {
            result: "ignored",
            lsid: None,
            reason: None,
        });
    }
    let Some(lsid) = ev.lsid.clone() else {
        // `read` refuses a session end without an lsid; kept for a total match.
        let e = ServiceError::invalid("lsid", "missing in a session end event");
        return Err(Refusal::new(e, log, None));
    };
    match record_and_enqueue(ctx, &lsid, &ev.dedupe_key()).await {
        Ok(outcome) => {
            let result = if outcome == "duplicate" {
                "duplicate"
            } else {
                "enqueued"
            };
            let reason = (outcome == "duplicate").then(|| "session already imported".to_string());
            let reason = match (log.reason.take(), reason) {
                (Some(replay), Some(r)) => Some(format!("{replay}: {r}")),
                (replay, r) => replay.or(r),
            };
            log_answer(ctx, log, outcome, reason).await;
            Ok(EventAnswer {
                result,
                lsid: Some(lsid.to_string()),
                reason: None,
            })
        }
        Err(e) => Err(Refusal::new(e, log, None)),
    }
}

/// `POST /api/request-log/{id}/replay`: run the kept body of a `rejected` outbound event
/// through intake again (after the parser or the appliance's event was fixed). A body
/// still unusable is refused with its reason (400) and changes nothing; a usable one is
/// handled like a new event and logged with a reason naming the entry it replays.
pub async fn replay_event(ctx: &Context, actor: &Actor, log_id: &str) -> ServiceResult<EventAnswer> {
    actor.require_admin("replaying a rejected BeyondTrust event")?;
    let kept = ctx.store.kept_event(log_id).await?;
    let ev = match OutboundEvent::read(kept.body.as_bytes()) {
        Received::Event(ev) => ev,
        Received::Unusable(u) => {
            return Err(ServiceError::invalid(
                u.field,
                format!("{} (the kept body is still unusable)", u.message),
            ))
        }
    };
    let mut log = RequestLogEntry::new(EVENT_SOURCE, ctx.clock.now());
    log.reason = Some(format!("replay of request-log entry {log_id}"));
    match handle_event(ctx, log, &ev).await {
        Ok(answer) => Ok(answer),
        Err(refusal) => Err(refusal.error),
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
