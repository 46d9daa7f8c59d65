//! Repository of the BeyondTrust side: settings, stored invitations (findable by external
//! key), recorded end events (one per lsid) and imported remote sessions (one per lsid).

use serde_json::json;

use super::chats::CHAT;
use super::desk::{missing_reference, TEAM, USER};
use super::tickets::{put_action, TICKET};
use super::{Listing, PageRequest, Store, UPDATE_ATTEMPTS};
use crate::domain::bt::{BeyondTrustSettings, RemoteInvite};
use crate::domain::chats::Chat;
use crate::domain::desk::{NewTeam, Team};
use crate::domain::remote::{Lsid, RemoteSession};
use crate::domain::tickets::Action;
use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::ports::{Condition, Index, Record, StoreError, WriteOp};

const CONFIG: &str = "config";
const CONFIG_SK: &str = "beyondtrust";
pub(crate) const INVITE: &str = "remote-invite";
const INVITE_KEY: &str = "remote-invite-key";
const EVENT: &str = "bt-event";
pub(crate) const SESSION: &str = "remote-session";
const SESSION_LSID: &str = "remote-session-lsid";
const TEAM_BT: &str = "team-bt";
const KEPT_EVENT: &str = "bt-kept-event";

/// The body of an outbound event that was recorded `rejected`, kept for replay under its
/// request-log entry's id (as long as the entry: `REQUEST_LOG_DAYS`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeptEvent {
    pub log_id: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub body: String,
}

/// Filters of the remote-session list.
#[derive(Debug, Clone, Default)]
pub struct RemoteSessionFilter {
    /// `Some(false)`: only sessions not linked to a ticket.
    pub linked: Option<bool>,
    /// Case-insensitive text in the name, lsid or transcript.
    pub q: Option<String>,
}

impl RemoteSessionFilter {
    fn keeps(&self, s: &RemoteSession) -> bool {
        let linked_ok = self.linked.is_none_or(|l| s.linked_ticket_id.is_some() == l);
        let q_ok = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .is_none_or(|q| {
                let q = q.to_lowercase();
                s.name.to_lowercase().contains(&q)
                    || s.lsid.as_str().contains(&q)
                    || s.transcript.iter().any(|l| l.text.to_lowercase().contains(&q))
            });
        linked_ok && q_ok
    }
}

/// What an import stores besides the session itself.
#[derive(Debug, Clone)]
pub struct SessionImport {
    pub session: RemoteSession,
    /// The action to add to the session's ticket.
    pub action: Option<(u64, Action)>,
    /// A message for the open chat: `(chat id, from, text)`.
    pub chat_message: Option<(u64, String, String)>,
}

impl Store {
    // ---- settings -----------------------------------------------------------------------

    pub async fn bt_settings(&self) -> Result<BeyondTrustSettings> {
        match self.records().get(CONFIG, CONFIG_SK).await? {
            Some(r) => Self::decode(&r),
            None => Ok(BeyondTrustSettings::default()),
        }
    }

    pub async fn save_bt_settings(&self, s: &BeyondTrustSettings) -> Result<()> {
        s.validate()?;
        if let Some(u) = s.default_user_id {
            if self.load::<crate::domain::desk::User>(USER, u).await?.is_none() {
                return Err(DomainError::invalid("default_user_id", format!("user {u} does not exist")).into());
            }
        }
        let r = Record::new(CONFIG, CONFIG_SK, serde_json::to_value(s).expect("serializable"));
        self.records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::Always,
            }])
            .await?;
        Ok(())
    }

    // ---- imported teams -----------------------------------------------------------------

    /// Create a team imported from BeyondTrust, at most once per BeyondTrust team id (a
    /// guard record makes concurrent imports agree): `None` when it was imported already.
    pub async fn create_imported_team(&self, input: NewTeam) -> Result<Option<Team>> {
        let bt_id = input
            .bt_team_id
            .clone()
            .ok_or_else(|| DomainError::invalid("bt_team_id", "an imported team needs its BeyondTrust id"))?;
        let id = self.next_id(TEAM).await?;
        let team = input.into_team(id)?;
        let guard = Record::new(TEAM_BT, bt_id, json!({"team_id": id}));
        let ops = vec![
            Self::put_new(TEAM, id, &team),
            WriteOp::Put {
                record: guard,
                condition: Condition::NotExists,
            },
        ];
        match self.records().write(ops).await {
            Ok(()) => Ok(Some(team)),
            Err(StoreError::ConditionFailed { pk, .. }) if pk == TEAM_BT => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    // ---- invitations --------------------------------------------------------------------

    /// Store an invitation and make its external key findable.
    pub async fn save_invite(&self, invite: &RemoteInvite) -> Result<()> {
        let key = Record::new(INVITE_KEY, &invite.external_key, json!({"invite_id": invite.id}));
        self.records()
            .write(vec![
                Self::put_new(INVITE, invite.id, invite),
                WriteOp::Put {
                    record: key,
                    condition: Condition::Always,
                },
            ])
            .await?;
        Ok(())
    }

    /// True when deskbridge issued an invitation with this external key.
    pub async fn invite_issued_for(&self, external_key: &str) -> Result<bool> {
        Ok(self.records().get(INVITE_KEY, external_key).await?.is_some())
    }

    pub async fn invite(&self, id: u64) -> Result<RemoteInvite> {
        Ok(self.fetch(INVITE, "remote invite", id).await?.0)
    }

    /// Record how an invitation's mail went, with the ticket action saying so, in one
    /// transaction.
    pub async fn record_invite_mail(&self, invite: &RemoteInvite, ticket_id: u64, action: &Action) -> Result<()> {
        let mail = (invite.email_to.clone(), invite.email_failed.clone());
        self.update(INVITE, "remote invite", invite.id, |i: &mut RemoteInvite, ops| {
            (i.email_to, i.email_failed) = mail.clone();
            ops.push(Self::must_exist(TICKET, ticket_id));
            ops.push(put_action(ticket_id, action));
            Ok(())
        })
        .await?;
        Ok(())
    }

    // ---- end events ---------------------------------------------------------------------

    /// Record the end event of `lsid`; `false` when the lsid was recorded before.
    pub async fn record_session_end(&self, lsid: &Lsid, dedupe_key: &str) -> Result<bool> {
        let event = Record::new(
            EVENT,
            lsid.as_str(),
            json!({"lsid": lsid.as_str(), "first_seen": self.clock().now(), "dedupe_key": dedupe_key}),
        );
        match self
            .records()
            .write(vec![WriteOp::Put {
                record: event,
                condition: Condition::NotExists,
            }])
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed { pk, .. }) if pk == EVENT => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Record a refused outbound event and keep its body for replay, in one transaction:
    /// when this returns the refusal is durable (the appliance may be answered 200).
    pub async fn log_rejected_event(&self, log: &super::RequestLogEntry, body: &[u8]) -> Result<()> {
        let cut = &body[..body.len().min(64 * 1024)];
        let kept = KeptEvent {
            log_id: log.id.clone(),
            at: log.at,
            body: String::from_utf8_lossy(cut).into_owned(),
        };
        let mut r = Record::new(KEPT_EVENT, &log.id, serde_json::to_value(&kept).expect("serializable"));
        r.expires_at = Some(log.at.timestamp() + super::REQUEST_LOG_DAYS * 24 * 3600);
        let ops = vec![
            self.request_log_put(log),
            WriteOp::Put {
                record: r,
                condition: Condition::NotExists,
            },
        ];
        Ok(self.records().write(ops).await?)
    }

    /// The kept body of the rejected outbound event logged as `log_id`.
    pub async fn kept_event(&self, log_id: &str) -> Result<KeptEvent> {
        match self.records().get(KEPT_EVENT, log_id).await? {
            Some(r) => Self::decode(&r),
            None => Err(DomainError::not_found("kept BeyondTrust event of request-log entry", log_id).into()),
        }
    }

    // ---- sessions -----------------------------------------------------------------------

    pub async fn remote_session_by_lsid(&self, lsid: &Lsid) -> Result<Option<RemoteSession>> {
        let Some(r) = self.records().get(SESSION_LSID, lsid.as_str()).await? else {
            return Ok(None);
        };
        let id = r.data["id"].as_u64().unwrap_or_default();
        Ok(self.load(SESSION, id).await?.map(|(s, _)| s))
    }

    pub async fn remote_session(&self, id: u64) -> Result<RemoteSession> {
        Ok(self.fetch(SESSION, "remote session", id).await?.0)
    }

    /// Sessions newest first.
    pub async fn remote_sessions(
        &self,
        filter: &RemoteSessionFilter,
        page: &PageRequest,
    ) -> Result<Listing<RemoteSession>> {
        self.list(Index::Primary, SESSION, true, page, |s: &RemoteSession| filter.keeps(s))
            .await
    }

    /// Store an imported session with its action or chat message in one transaction,
    /// once per lsid: `false` when the lsid was imported before (nothing written).
    pub async fn store_imported_session(&self, import: &SessionImport) -> Result<bool> {
        let s = &import.session;
        for _ in 0..UPDATE_ATTEMPTS {
            let mut ops = vec![
                WriteOp::Put {
                    record: Record::new(SESSION_LSID, s.lsid.as_str(), json!({"id": s.id})),
                    condition: Condition::NotExists,
                },
                Self::put_new(SESSION, s.id, s),
            ];
            let mut refs = Vec::new();
            if let Some((ticket_id, action)) = &import.action {
                ops.push(Self::must_exist(TICKET, *ticket_id));
                ops.push(put_action(*ticket_id, action));
                refs.push((TICKET, "ticket", *ticket_id));
            }
            if let Some((chat_id, from, text)) = &import.chat_message {
                if let Some((mut chat, version)) = self.load::<Chat>(CHAT, *chat_id).await? {
                    // A chat that ended meanwhile gets no message; the session is stored anyway.
                    if chat.push(from.clone(), text.clone(), false, self.clock().now()).is_ok() {
                        ops.push(Self::put_over(CHAT, *chat_id, &chat, version));
                    }
                }
            }
            match self.records().write(ops).await {
                Ok(()) => return Ok(true),
                Err(StoreError::ConditionFailed { pk, .. }) if pk == SESSION_LSID => return Ok(false),
                Err(StoreError::ConditionFailed { pk, .. }) if pk == CHAT => continue,
                Err(e) => return Err(missing_reference(e, &refs)),
            }
        }
        Err(StoreError::Unavailable("the chat is changing too fast; try again".into()).into())
    }

    /// Link a stored, unlinked session to a ticket and add `action` to the ticket.
    pub async fn link_remote_session(&self, id: u64, ticket_id: u64, action: &Action) -> Result<RemoteSession> {
        self.update(SESSION, "remote session", id, |s: &mut RemoteSession, ops| {
            if let Some(t) = s.linked_ticket_id {
                return Err(Error::from(DomainError::conflict(
                    "ALREADY_LINKED",
                    format!("remote session {id} is already linked to ticket {t}"),
                )));
            }
            s.linked_ticket_id = Some(ticket_id);
            ops.push(Self::must_exist(TICKET, ticket_id));
            ops.push(put_action(ticket_id, action));
            Ok(())
        })
        .await
        .map(|(s, ())| s)
        .map_err(|e| match e {
            Error::Store(s) => missing_reference(s, &[(TICKET, "ticket", ticket_id)]),
            other => other,
        })
    }
}
