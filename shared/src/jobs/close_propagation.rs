//! Ticket-close propagation: an agent's close of an alert ticket resolves the alert in
//! Datto exactly once; Datto-origin closes are never sent back; a sweep re-queues stragglers.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::JobError;
use crate::domain::alerts::AlertUid;
use crate::domain::tickets::{CloseOrigin, Ticket};
use crate::error::Result;
use crate::ports::{DattoApi, ResolveResult};
use crate::ports::{Queue, QueueName};
use crate::store::{CloseClaim, Store};

/// How long a pending close may wait before the sweep sends its message again.
pub const SWEEP_AFTER_MINUTES: i64 = 2;

/// How long one delivery holds a pending close while it tells Datto: longer than the
/// propagator's timeout (30 s in template.yaml), shorter than the sweep's wait.
pub const CLAIM_SECONDS: i64 = 90;

/// Close a ticket as an agent and, when Datto must be told, send the `ticket-closed`
/// message after the commit. A failed send is logged, not fatal: the sweep resends.
pub async fn close_ticket_as_agent(
    store: &Store,
    queue: &dyn Queue,
    ticket_id: u64,
    note: &str,
    agent_id: Option<u64>,
) -> Result<Ticket> {
    let (ticket, pending) = store.close_ticket_by_agent(ticket_id, note, agent_id).await?;
    if let Some(p) = pending {
        match queue.send(QueueName::TicketClosed, &p.message()).await {
            // The close is committed and its message sent: failing the request now would
            // answer 503 for a done close. Unmarked, the sweep may send once more (harmless).
            Ok(_) => {
                if let Err(e) = store.mark_close_enqueued(ticket_id, store.clock().now()).await {
                    tracing::warn!(ticket_id, error = %e, "ticket-closed message sent but not marked as sent");
                }
            }
            Err(e) => tracing::warn!(ticket_id, error = %e, "ticket-closed message not sent; the sweep will resend it"),
        }
    }
    Ok(ticket)
}

#[derive(Debug, Deserialize)]
struct TicketClosed {
    ticket_id: u64,
    alert_uid: String,
}

/// Handle one `ticket-closed` message: every alert the pending close still lists is
/// resolved in Datto once and then leaves the list. Idempotent: a message for a close
/// already told to Datto (or that came from Datto) does nothing, and a redelivery skips
/// the alerts already done.
pub async fn propagate_close(store: &Store, datto: &dyn DattoApi, body: &str) -> Result<(), JobError> {
    let msg: TicketClosed = serde_json::from_str(body).map_err(|e| JobError::bad_message("ticket-closed", e))?;
    AlertUid::parse("alert_uid", &msg.alert_uid).map_err(|e| JobError::bad_message("ticket-closed", e))?;
    let pending = match store
        .claim_pending_close(msg.ticket_id, Duration::seconds(CLAIM_SECONDS))
        .await?
    {
        CloseClaim::Claimed(p) => p,
        CloseClaim::NotPending => {
            tracing::info!(ticket_id = msg.ticket_id, "close already propagated");
            return Ok(());
        }
        // A duplicate delivered at the same time: it waits, then finds the close done.
        CloseClaim::Busy => {
            return Err(JobError::Retryable(super::Failure::NotYet(format!(
                "another delivery is telling Datto about the close of ticket {}",
                msg.ticket_id
            ))))
        }
    };
    let told = tell_datto(store, datto, msg.ticket_id, &pending.uids()).await;
    if told.is_err() {
        // Let the next delivery try at once instead of waiting out the claim.
        if let Err(e) = store.release_close_claim(msg.ticket_id).await {
            tracing::warn!(ticket_id = msg.ticket_id, error = %e, "could not release the close claim");
        }
    }
    told
}

/// The claimed part of [`propagate_close`]: for each alert still listed, Datto's view, the
/// resolve, the finish.
async fn tell_datto(store: &Store, datto: &dyn DattoApi, ticket_id: u64, uids: &[String]) -> Result<(), JobError> {
    let (ticket, _) = store.ticket_head(ticket_id).await?;
    for uid in uids {
        let Ok(uid) = AlertUid::parse("alert_uid", uid) else {
            continue;
        };
        if ticket.close_origin == Some(CloseOrigin::Datto) {
            // Datto closed it: nothing to tell Datto.
            store.finish_close_propagation(ticket_id, &uid, None).await?;
        } else if ticket.is_open() {
            // Reopened before Datto was told: nothing to tell now, and the alert is not
            // resolved there, so the next close of the ticket is told.
            store.drop_pending_close(ticket_id, &uid).await?;
        } else {
            propagate_one(store, datto, ticket_id, &uid).await?;
        }
    }
    Ok(())
}

/// Tell Datto about one alert of a closed ticket, then take it off the pending close.
async fn propagate_one(store: &Store, datto: &dyn DattoApi, ticket_id: u64, uid: &AlertUid) -> Result<(), JobError> {
    if let Some((alert, _)) = store.alert(uid).await? {
        if alert.resolve_propagated {
            store.finish_close_propagation(ticket_id, uid, None).await?;
            return Ok(());
        }
    }
    let note = match datto.alert(uid).await?.map(|a| a.resolved) {
        Some(true) => None,
        None => Some(format!(
            "Datto RMM does not know alert {uid}; nothing to resolve there."
        )),
        Some(false) => match datto.resolve(uid).await? {
            ResolveResult::Resolved => Some(format!("Alert {uid} resolved in Datto RMM.")),
            ResolveResult::AlreadyResolved => None,
            ResolveResult::Unknown => Some(format!(
                "Datto RMM does not know alert {uid}; nothing to resolve there."
            )),
        },
    };
    store.finish_close_propagation(ticket_id, uid, note.as_deref()).await?;
    tracing::info!(ticket_id, alert_uid = %uid, "close propagated to Datto");
    Ok(())
}

/// Resend `ticket-closed` for closes still pending after `SWEEP_AFTER_MINUTES`; returns
/// how many were re-queued.
pub async fn sweep_pending_closes(store: &Store, queue: &dyn Queue, now: DateTime<Utc>) -> Result<usize> {
    let due = store
        .pending_closes_due(now - Duration::minutes(SWEEP_AFTER_MINUTES), 500)
        .await?;
    let mut sent = 0;
    for p in due {
        queue.send(QueueName::TicketClosed, &p.message()).await?;
        store.mark_close_enqueued(p.ticket_id, now).await?;
        sent += 1;
    }
    Ok(sent)
}
