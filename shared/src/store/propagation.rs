//! The close-propagation outbox: a record written in the same transaction as an agent's
//! close of an alert ticket, deleted when Datto has been told (or needed no telling); and
//! the agent's close and reopen of a ticket, which noise control's device state learns of.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::alerts::ALERT;
use super::noise::DEVICE_NOISE;
use super::tickets::{put_action, TICKET};
use super::{sk_id, Store, UPDATE_ATTEMPTS};
use crate::domain::alerts::{resolve_propagated, Alert, AlertUid};
use crate::domain::noise::{agent_closed, agent_reopened, DeviceKey, TicketEffect};
use crate::domain::tickets::{Action, ActionKind, CloseOrigin, Ticket};
use crate::error::{Error, Result};
use crate::ports::{Condition, Index, Query, Record, StoreError, WriteOp};

const PENDING_CLOSE: &str = "pending-close";

/// A close made here that Datto has not yet been told about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingClose {
    pub ticket_id: u64,
    pub alert_uid: String,
    /// Every alert of the ticket Datto is to resolve (noise control puts several alerts
    /// on one ticket); each is resolved once and leaves this list. Empty in records
    /// written before noise control: then `alert_uid` is the one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_uids: Vec<String>,
    pub closed_at: DateTime<Utc>,
    /// When a `ticket-closed` message was last sent for it.
    #[serde(default)]
    pub enqueued_at: Option<DateTime<Utc>>,
    /// A delivery of its message is telling Datto until then (see
    /// [`Store::claim_pending_close`]); a duplicate delivery meanwhile waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<DateTime<Utc>>,
}

/// What [`Store::claim_pending_close`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseClaim {
    /// This delivery may tell Datto, until the claim's end.
    Claimed(PendingClose),
    /// Another delivery holds an unexpired claim.
    Busy,
    /// Nothing pending: already propagated.
    NotPending,
}

impl PendingClose {
    /// The `ticket-closed` message body.
    pub fn message(&self) -> String {
        serde_json::json!({"ticket_id": self.ticket_id, "alert_uid": self.alert_uid,
                           "alert_uids": self.uids(), "closed_at": self.closed_at})
        .to_string()
    }

    /// The alerts still to resolve in Datto.
    pub fn uids(&self) -> Vec<String> {
        if self.alert_uids.is_empty() {
            vec![self.alert_uid.clone()]
        } else {
            self.alert_uids.clone()
        }
    }
}

/// Every alert a ticket holds: noise control's list, else the ticket's own alert.
pub fn ticket_alert_uids(t: &Ticket) -> Vec<AlertUid> {
    let listed: Vec<&str> = if t.noise.alert_uids.is_empty() {
        t.alert_uid.as_deref().into_iter().collect()
    } else {
        t.noise.alert_uids.iter().map(String::as_str).collect()
    };
    listed
        .into_iter()
        .filter_map(|u| AlertUid::parse("alert_uid", u).ok())
        .collect()
}

pub(crate) fn pending_close_put(p: &PendingClose) -> WriteOp {
    WriteOp::Put {
        record: Record::new(
            PENDING_CLOSE,
            sk_id(p.ticket_id),
            serde_json::to_value(p).expect("serializable"),
        ),
        condition: Condition::Always,
    }
}

impl Store {
    pub async fn pending_close(&self, ticket_id: u64) -> Result<Option<(PendingClose, u64)>> {
        match self.records().get(PENDING_CLOSE, &sk_id(ticket_id)).await? {
            Some(r) => Ok(Some((Self::decode(&r)?, r.version))),
            None => Ok(None),
        }
    }

    /// Pending closes whose message was last sent before `before` (or never), oldest first.
    pub async fn pending_closes_due(&self, before: DateTime<Utc>, limit: usize) -> Result<Vec<PendingClose>> {
        let mut due = Vec::new();
        for r in self
            .all_records(Query::partition(Index::Primary, PENDING_CLOSE))
            .await?
        {
            let p: PendingClose = Self::decode(&r)?;
            if p.enqueued_at.unwrap_or(p.closed_at) < before && due.len() < limit {
                due.push(p);
            }
        }
        Ok(due)
    }

    /// Write `p` over its record if that is still at `version`.
    async fn replace_pending_close(&self, p: &PendingClose, version: u64) -> std::result::Result<(), StoreError> {
        let mut r = Record::new(
            PENDING_CLOSE,
            sk_id(p.ticket_id),
            serde_json::to_value(p).expect("serializable"),
        );
        r.version = version + 1;
        self.records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::VersionIs(version),
            }])
            .await
    }

    /// Remember that a message was sent for the pending close (if it is still pending).
    pub async fn mark_close_enqueued(&self, ticket_id: u64, at: DateTime<Utc>) -> Result<()> {
        if let Some((mut p, v)) = self.pending_close(ticket_id).await? {
            p.enqueued_at = Some(at);
            match self.replace_pending_close(&p, v).await {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Take the pending close of `ticket_id` for `lease` (a conditional write), so that two
    /// deliveries of its message at once make one resolve call: the loser finds it `Busy`.
    /// A claim whose holder died expires; the next delivery or the sweep takes it then.
    pub async fn claim_pending_close(&self, ticket_id: u64, lease: chrono::Duration) -> Result<CloseClaim> {
        let Some((mut p, v)) = self.pending_close(ticket_id).await? else {
            return Ok(CloseClaim::NotPending);
        };
        let now = self.clock().now();
        if p.claimed_until.is_some_and(|until| until > now) {
            return Ok(CloseClaim::Busy);
        }
        p.claimed_until = Some(now + lease);
        match self.replace_pending_close(&p, v).await {
            Ok(()) => Ok(CloseClaim::Claimed(p)),
            Err(StoreError::ConditionFailed { .. }) => Ok(CloseClaim::Busy),
            Err(e) => Err(e.into()),
        }
    }

    /// Give up the claim of [`Store::claim_pending_close`] (the delivery failed).
    pub async fn release_close_claim(&self, ticket_id: u64) -> Result<()> {
        let Some((mut p, v)) = self.pending_close(ticket_id).await? else {
            return Ok(());
        };
        p.claimed_until = None;
        match self.replace_pending_close(&p, v).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Datto knows now (or never needed to) about `uid`: mark the alert propagated, take it
    /// off the pending record (dropped with its last alert), and add `note` to the ticket
    /// when given — in one transaction.
    pub async fn finish_close_propagation(&self, ticket_id: u64, uid: &AlertUid, note: Option<&str>) -> Result<()> {
        self.end_pending_close(ticket_id, uid, note, true).await
    }

    /// The ticket was reopened before Datto was told: drop the pending record, Datto not
    /// told (the alert stays open as far as deskbridge knows, so a later close is told).
    pub async fn drop_pending_close(&self, ticket_id: u64, uid: &AlertUid) -> Result<()> {
        self.end_pending_close(ticket_id, uid, None, false).await
    }

    async fn end_pending_close(&self, ticket_id: u64, uid: &AlertUid, note: Option<&str>, told: bool) -> Result<()> {
        for _ in 0..super::UPDATE_ATTEMPTS {
            let mut ops = Vec::new();
            match self.pending_close(ticket_id).await? {
                None => {}
                Some((mut p, v)) => {
                    let rest: Vec<String> = p.uids().into_iter().filter(|u| u != uid.as_str()).collect();
                    if rest.is_empty() {
                        ops.push(WriteOp::Delete {
                            pk: PENDING_CLOSE.to_string(),
                            sk: sk_id(ticket_id),
                            condition: Condition::VersionIs(v),
                        });
                    } else {
                        p.alert_uid = rest[0].clone();
                        p.alert_uids = rest;
                        let mut r = Record::new(
                            PENDING_CLOSE,
                            sk_id(ticket_id),
                            serde_json::to_value(&p).expect("serializable"),
                        );
                        r.version = v + 1;
                        ops.push(WriteOp::Put {
                            record: r,
                            condition: Condition::VersionIs(v),
                        });
                    }
                }
            }
            if let Some((mut alert, v)) = self.alert(uid).await? {
                let a: &mut Alert = &mut alert;
                if told {
                    resolve_propagated(a, self.clock().now());
                } else {
                    a.propagation_pending = false;
                }
                ops.push(Self::alert_put(&alert, Some(v)));
            }
            if let Some(note) = note {
                let (id, at) = self.new_action_stamp().await?;
                ops.push(Self::must_exist(TICKET, ticket_id));
                ops.push(put_action(
                    ticket_id,
                    &Action {
                        id,
                        at,
                        kind: ActionKind::System,
                        agent_id: None,
                        note: note.to_string(),
                    },
                ));
            }
            if ops.is_empty() {
                return Ok(());
            }
            match self.records().write(ops).await {
                Ok(()) => return Ok(()),
                Err(StoreError::ConditionFailed { pk, .. }) if pk == ALERT || pk == PENDING_CLOSE => continue,
                Err(e) => return Err(Error::from(e)),
            }
        }
        Err(StoreError::Unavailable("alert kept changing".into()).into())
    }
}

impl Store {
    /// Close a ticket as an agent. When the ticket came from a Datto alert, the alert
    /// records the agent's close, and — unless Datto resolved it already — a pending-close
    /// record is written for the propagator, all in the same transaction as the close.
    pub async fn close_ticket_by_agent(
        &self,
        id: u64,
        note: &str,
        agent_id: Option<u64>,
    ) -> Result<(Ticket, Option<PendingClose>)> {
        let settings = self.noise_settings().await?;
        for _ in 0..UPDATE_ATTEMPTS {
            let (head, _) = self.ticket_head(id).await?;
            let mut alerts = Vec::new();
            for uid in ticket_alert_uids(&head) {
                if let Some(a) = self.alert(&uid).await? {
                    alerts.push(a);
                }
            }
            let now = self.clock().now();
            // Noise control's state learns of the close in the same transaction.
            let mut noise_ops = Vec::new();
            if let Some(key) = noise_device(&head)? {
                let (state, v) = self.device_noise(&key).await?;
                if state.ticket(id).is_some_and(|t| t.open) {
                    let rec = agent_closed(&state, id, now, &settings)?;
                    noise_ops.push(Self::device_noise_put(&rec.state, v));
                    noise_ops.extend(self.other_ticket_effects(id, &rec.effects).await?);
                }
            }
            let pending = std::sync::Mutex::new(None);
            let extra = |_: &Ticket| {
                let mut ops = noise_ops.clone();
                let mut needed = Vec::new();
                for (a, v) in &alerts {
                    let mut a = a.clone();
                    if crate::domain::alerts::ticket_closed_by_agent(&mut a, now) {
                        needed.push(a.alert_uid.to_string());
                    }
                    ops.push(Self::alert_put(&a, Some(*v)));
                }
                if let Some(first) = needed.first() {
                    let p = PendingClose {
                        ticket_id: id,
                        alert_uid: first.clone(),
                        alert_uids: if needed.len() > 1 { needed.clone() } else { Vec::new() },
                        closed_at: now,
                        enqueued_at: None,
                        claimed_until: None,
                    };
                    ops.push(pending_close_put(&p));
                    *pending.lock().expect("lock") = Some(p);
                }
                ops
            };
            match self.close_ticket(id, note, agent_id, CloseOrigin::Agent, extra).await {
                Err(Error::Store(StoreError::ConditionFailed { pk, .. }))
                    if pk == ALERT || pk == DEVICE_NOISE || pk == TICKET =>
                {
                    continue
                }
                Err(e) => return Err(e),
                Ok(t) => return Ok((t, pending.into_inner().expect("lock"))),
            }
        }
        Err(StoreError::Unavailable(format!("ticket {id} is changing too fast; try again").into()).into())
    }

    /// Reopen a ticket as an agent. When noise control tracks it (an alert ticket of a
    /// known device), the device's state learns of the reopen in the same transaction
    /// (`agent_reopened`): the ticket counts as opened now for relating, and Datto's
    /// resolves of its alerts close it again. Datto is told nothing.
    pub async fn reopen_ticket_by_agent(&self, id: u64, note: &str, agent_id: Option<u64>) -> Result<Ticket> {
        let settings = self.noise_settings().await?;
        let (action_id, _) = self.new_action_stamp().await?;
        for _ in 0..UPDATE_ATTEMPTS {
            let (mut t, v) = self.ticket_head(id).await?;
            let now = self.clock().now();
            let mut ops = Vec::new();
            if let Some(key) = noise_device(&t)? {
                let (state, dv) = self.device_noise(&key).await?;
                if state.ticket(id).is_some_and(|nt| !nt.open) && !t.is_open() {
                    let rec = agent_reopened(&state, id, now, &settings)?;
                    ops.push(Self::device_noise_put(&rec.state, dv));
                    ops.extend(self.other_ticket_effects(id, &rec.effects).await?);
                }
            }
            let action = t.reopen(action_id, agent_id, note, now)?;
            ops.insert(0, Self::ticket_put(&t, v));
            ops.push(put_action(id, &action));
            match self.records().write(ops).await {
                Ok(()) => {
                    t.actions = self.actions(id).await?;
                    return Ok(t);
                }
                Err(StoreError::ConditionFailed { pk, .. }) if pk == TICKET || pk == DEVICE_NOISE => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable(format!("ticket {id} is changing too fast; try again").into()).into())
    }

    /// Time passing inside an agent's close may end another ticket's flapping hold (and
    /// close it): the writes for those other tickets.
    async fn other_ticket_effects(&self, closing: u64, effects: &[TicketEffect]) -> Result<Vec<WriteOp>> {
        let mut tickets: std::collections::BTreeMap<u64, (Ticket, u64)> = Default::default();
        let mut ops = Vec::new();
        for e in effects {
            let (tid, change): (u64, &TicketEffect) = match e {
                TicketEffect::SetFlapping { ticket_id, .. } | TicketEffect::Close { ticket_id, .. } => (*ticket_id, e),
                _ => continue,
            };
            if tid == closing {
                continue;
            }
            if let std::collections::btree_map::Entry::Vacant(v) = tickets.entry(tid) {
                v.insert(self.ticket_head(tid).await?);
            }
            let t = &mut tickets.get_mut(&tid).expect("inserted").0;
            match change {
                TicketEffect::SetFlapping { flapping, .. } => t.noise.flapping = *flapping,
                TicketEffect::Close { note, .. } if t.is_open() => {
                    let (aid, now) = self.new_action_stamp().await?;
                    let a = t.close(aid, None, note, CloseOrigin::Datto, now)?;
                    ops.push(put_action(tid, &a));
                }
                _ => {}
            }
        }
        for (t, v) in tickets.values() {
            ops.push(Self::ticket_put(t, *v));
        }
        Ok(ops)
    }
}

/// The device noise control tracks an alert ticket under, if any.
fn noise_device(t: &Ticket) -> Result<Option<DeviceKey>> {
    t.noise
        .device
        .as_deref()
        .map(|device| {
            serde_json::from_value(serde_json::Value::String(device.to_string()))
                .map_err(|e| Error::Store(StoreError::Unavailable(e.to_string().into())))
        })
        .transpose()
}
