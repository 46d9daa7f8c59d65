//! `session-import`: turn an ended BeyondTrust session into desk records. Fetches the
//! SupportSession report (an incomplete report is retried through the queue), requires a
//! known technician, honours "only process sessions generated here", then links the
//! session per DESIGN §5 (`domain::remote::decide_link`). Idempotent per lsid.
//!
//! Retry rule (`RETRY_SCHEDULE`): a failed receive is offered again after 5 s, 15 s, 30 s,
//! 1, 2, 5 min (SQS: the consumer changes the message's visibility; local worker: the same
//! schedule); the 7th failed receive dead-letters it. A report is importable once it has
//! `end_time`; without chat URLs it is waited for until receive `PARTIAL_AFTER_RECEIVES`
//! (about 2 minutes), then imported as it is and marked possibly partial.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Failure, JobError};
use crate::beyondtrust::Client;
use crate::domain::bt::BeyondTrustSettings;
use crate::domain::chats::Chat;
use crate::domain::desk::Agent;
use crate::domain::remote::{
    chat_session_name, decide_link, find_technician, render_note, transcript, ExternalKey, KeyLookup, LinkDecision,
    Lsid, RemoteSession, SessionFacts, DEFAULT_SESSION_NAME, PARTIAL_TRANSCRIPT_NOTE,
};
use crate::domain::tickets::{Action, ActionKind};
use crate::store::{RequestLogEntry, SessionImport, Store};

/// Request-log source of import outcomes.
pub const SOURCE: &str = "session-import";

/// The waits after failed receives 1, 2, … of a `session-import` message; after the last
/// one's receive fails too, the message is dead-lettered (`QueueName::max_receives`).
pub const RETRY_SCHEDULE: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
];

/// The receive from which an ended report without chat URLs is imported anyway (after
/// 5 + 15 + 30 + 60 s = 110 s of waiting for them).
pub const PARTIAL_AFTER_RECEIVES: u32 = 5;

/// How long to wait after failed receive `receive_count` (1 = the first delivery); after
/// the last scheduled one no wait: its next receive moves it to the dead-letter queue.
pub fn retry_delay(receive_count: u32) -> Duration {
    let i = (receive_count.max(1) - 1) as usize;
    RETRY_SCHEDULE.get(i).copied().unwrap_or(Duration::ZERO)
}

#[derive(Debug, Serialize, Deserialize)]
struct ImportRequest {
    lsid: String,
}

/// The queue message asking to import `lsid`.
pub fn message(lsid: &Lsid) -> String {
    serde_json::to_string(&ImportRequest { lsid: lsid.to_string() }).expect("json")
}

/// What one import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported(LinkDecision),
    AlreadyImported,
    NoTechnician,
    NotGeneratedHere,
}

async fn log_outcome(store: &Store, lsid: &Lsid, outcome: &str, reason: String) {
    let mut log = RequestLogEntry::new(SOURCE, store.clock().now());
    log.status = 200;
    log.outcome = outcome.to_string();
    log.reason = Some(reason);
    log.lsid = Some(lsid.to_string());
    if let Err(e) = store.log_request(&log).await {
        tracing::warn!(error = %e, "could not log the import outcome");
    }
}

/// Handle one `session-import` message on its `receive_count`-th delivery: fetch the
/// report, find the technician, honour "only generated here", decide the link and store
/// it all in one transaction.
pub async fn import(store: &Store, client: &Client, body: &str, receive_count: u32) -> Result<ImportOutcome, JobError> {
    let req: ImportRequest = serde_json::from_str(body).map_err(|e| JobError::bad_message("session-import", e))?;
    let lsid = Lsid::parse(&req.lsid).map_err(|e| JobError::bad_message("session-import", e))?;
    if store.remote_session_by_lsid(&lsid).await?.is_some() {
        return Ok(ImportOutcome::AlreadyImported);
    }
    let (facts, possibly_partial) = importable_report(client, &lsid, receive_count).await?;
    let settings = store.bt_settings().await?;
    let agents = store.all_agents().await?;
    let Some(tech) = find_technician(&agents, &facts) else {
        let names: Vec<String> = facts
            .reps_by_precedence()
            .iter()
            .filter_map(|r| r.names.shown().map(str::to_string))
            .collect();
        let reason = format!("no BeyondTrust-enabled agent matches the representatives {names:?}; nothing linked");
        tracing::warn!(%lsid, %reason, "session not imported");
        log_outcome(store, &lsid, "no_technician", reason).await;
        return Ok(ImportOutcome::NoTechnician);
    };
    if settings.only_generated_here && !generated_here(store, &facts).await? {
        let reason = format!(
            "external key {:?} matches no invitation of ours and only sessions generated here are processed",
            facts.external_key.as_deref().unwrap_or("")
        );
        log_outcome(store, &lsid, "not_generated_here", reason).await;
        return Ok(ImportOutcome::NotGeneratedHere);
    }
    let (decision, chat) = decide(store, facts.external_key()).await?;
    let mut import = records(store, &settings, &lsid, &facts, tech, &decision, chat.as_ref()).await?;
    if possibly_partial {
        mark_partial(&mut import);
    }
    if !store.store_imported_session(&import).await? {
        return Ok(ImportOutcome::AlreadyImported);
    }
    let partial = if possibly_partial {
        "; no chat download in the report: transcript possibly partial"
    } else {
        ""
    };
    log_outcome(store, &lsid, "imported", format!("{decision:?}{partial}")).await;
    Ok(ImportOutcome::Imported(decision))
}

/// The session's facts once BeyondTrust's report is importable (`end_time` present; until
/// then the message is retried), and whether it is possibly partial: without chat URLs it
/// is retried until receive `PARTIAL_AFTER_RECEIVES`, then imported as it is.
async fn importable_report(client: &Client, lsid: &Lsid, receive_count: u32) -> Result<(SessionFacts, bool), JobError> {
    let report = client.support_session_report(lsid).await?;
    if !report.is_importable() {
        return Err(JobError::Retryable(Failure::NotYet(format!(
            "the report of session {lsid} has no end time yet"
        ))));
    }
    let partial = report.possibly_partial();
    if partial && receive_count < PARTIAL_AFTER_RECEIVES {
        return Err(JobError::Retryable(Failure::NotYet(format!(
            "the report of session {lsid} has no chat download yet (read {receive_count} of {PARTIAL_AFTER_RECEIVES} before importing it as it is)"
        ))));
    }
    Ok((report.to_facts()?, partial))
}

/// Flag the session possibly partial and say so in its ticket action or chat message.
fn mark_partial(import: &mut SessionImport) {
    import.session.possibly_partial = true;
    if let Some((_, action)) = import.action.as_mut() {
        action.note = format!("{PARTIAL_TRANSCRIPT_NOTE}\n\n{}", action.note);
    }
    if let Some((_, _, text)) = import.chat_message.as_mut() {
        text.push_str(&format!("\n\n{PARTIAL_TRANSCRIPT_NOTE}"));
    }
}

/// Whether the session's external key is one of our stored invitations.
async fn generated_here(store: &Store, facts: &SessionFacts) -> Result<bool, JobError> {
    Ok(match facts.external_key() {
        Some(k) => store.invite_issued_for(&k.to_string()).await?,
        None => false,
    })
}

/// `Ok(false)` for a record that does not exist, other errors as they are.
fn exists<T>(r: crate::Result<T>) -> Result<bool, JobError> {
    match r {
        Ok(_) => Ok(true),
        Err(crate::Error::Domain(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Look up what the external key points at and let `decide_link` choose; also answers
/// the chat the key names, if it exists.
async fn decide(store: &Store, key: Option<ExternalKey>) -> Result<(LinkDecision, Option<Chat>), JobError> {
    let chat = match key {
        Some(ExternalKey::Chat(id)) => match store.chat(id).await {
            Ok(c) => Some(c),
            Err(crate::Error::Domain(_)) => None,
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    let lookup = match key {
        None => KeyLookup::NoKey,
        Some(ExternalKey::Ticket(id)) => KeyLookup::Ticket {
            id,
            exists: exists(store.ticket_head(id).await)?,
        },
        Some(ExternalKey::Chat(id)) => {
            let linked_ticket_exists = match chat.as_ref().and_then(|c| c.ticket_id) {
                Some(t) => exists(store.ticket_head(t).await)?,
                None => false,
            };
            KeyLookup::Chat {
                id,
                chat: chat.as_ref(),
                linked_ticket_exists,
            }
        }
    };
    Ok((decide_link(lookup), chat))
}

/// The records one import writes: the session, the ticket action (by the technician, the
/// transcript as its note) or the open chat's message.
async fn records(
    store: &Store,
    settings: &BeyondTrustSettings,
    lsid: &Lsid,
    facts: &SessionFacts,
    tech: &Agent,
    decision: &LinkDecision,
    chat: Option<&Chat>,
) -> Result<SessionImport, JobError> {
    let lines = transcript(facts);
    let note = render_note(facts, &lines);
    let name = match (decision, chat) {
        (LinkDecision::Park { name }, _) => name.clone(),
        (LinkDecision::ToOpenChat(_) | LinkDecision::ToChatTicket { .. }, Some(c)) => chat_session_name(c),
        _ => DEFAULT_SESSION_NAME.to_string(),
    };
    let chat_id = match decision {
        LinkDecision::ToOpenChat(id) | LinkDecision::ToChatTicket { chat_id: id, .. } => Some(*id),
        _ => chat.map(|c| c.id),
    };
    // The chat's user, else the ticket's, else the configured default user.
    let ticket_user = match decision.ticket_id() {
        Some(t) => store.ticket_head(t).await?.0.user_id,
        None => None,
    };
    let user_id = chat
        .and_then(|c| c.user_id)
        .or(ticket_user)
        .or(settings.default_user_id);
    let session = RemoteSession {
        id: store.next_id("remote-session").await?,
        lsid: lsid.clone(),
        name,
        linked_ticket_id: decision.ticket_id(),
        chat_id,
        technician_agent_id: Some(tech.id),
        user_id,
        started_at: facts.started_at,
        ended_at: facts.ended_at,
        transcript: lines,
        possibly_partial: false,
    };
    let action = match decision.ticket_id() {
        Some(ticket_id) => {
            let (id, at) = store.new_action_stamp().await?;
            let kind = ActionKind::RemoteSession;
            let action = Action {
                id,
                at,
                kind,
                agent_id: Some(tech.id),
                note: note.clone(),
            };
            Some((ticket_id, action))
        }
        None => None,
    };
    let chat_message = match decision {
        LinkDecision::ToOpenChat(id) => Some((
            *id,
            tech.name.clone(),
            format!(
                "The remote support session with {} has ended.\n\n{note}",
                facts.customer_name().unwrap_or("the customer")
            ),
        )),
        _ => None,
    };
    Ok(SessionImport {
        session,
        action,
        chat_message,
    })
}
