//! Tickets and their actions: what a new ticket needs, and the rules for adding actions,
//! closing (recording who closed it and from where) and reopening.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::desk::Priority;
use super::{optional_text, required_text, DomainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TicketStatus {
    Open,
    Closed,
}

/// What an action on a ticket records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Note,
    System,
    Email,
    Alert,
    RemoteSession,
}

/// Where a close came from; a close that came from Datto must never be sent back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseOrigin {
    Agent,
    Datto,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Action {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub kind: ActionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<u64>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ticket {
    pub id: u64,
    pub summary: String,
    pub details: String,
    pub status: TicketStatus,
    pub customer_id: u64,
    pub site_id: u64,
    pub user_id: Option<u64>,
    pub ticket_type_id: Option<u64>,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// The team a routing rule gave the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<u64>,
    /// Noise control's facts: every alert on the ticket, recurrences, parent, flapping.
    #[serde(default, skip_serializing_if = "AlertTicketNoise::is_empty")]
    pub noise: AlertTicketNoise,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_origin: Option<CloseOrigin>,
    /// Filled on read from the action records; never stored inside the ticket.
    #[serde(default)]
    pub actions: Vec<Action>,
}

/// What noise control keeps on an alert ticket: the alerts it holds (the first one is
/// `alert_uid`), how often its monitor recurred, its parent ticket, and a flapping hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertTicketNoise {
    /// Every Datto alert on the ticket, in the order they joined it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_uids: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recurrences: u32,
    /// The closed ticket this one recurred from (recurring mode `child`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<u64>,
    /// Held for a flapping monitor: no reopen or close until it is quiet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
    /// The device record (`uid:…` or `host:…`) noise control tracks the ticket under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl AlertTicketNoise {
    pub fn is_empty(&self) -> bool {
        self == &AlertTicketNoise::default()
    }
}

/// A ticket as asked for over the API, before ids and defaults are resolved.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTicket {
    pub summary: String,
    #[serde(default)]
    pub details: Option<String>,
    pub customer_id: u64,
    #[serde(default)]
    pub site_id: Option<u64>,
    #[serde(default)]
    pub user_id: Option<u64>,
    #[serde(default)]
    pub ticket_type_id: Option<u64>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub asset: Option<String>,
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
}

/// Longest summary a ticket keeps.
pub const SUMMARY_MAX: usize = 200;
/// Longest note an action keeps.
pub const NOTE_MAX: usize = 100_000;

impl NewTicket {
    /// Build the ticket once the references are resolved: `site_id`, `ticket_type_id` and
    /// `priority` are the values after defaults were applied.
    pub fn into_ticket(
        self,
        id: u64,
        site_id: u64,
        ticket_type_id: Option<u64>,
        priority: Priority,
        now: DateTime<Utc>,
    ) -> Result<Ticket, DomainError> {
        Ok(Ticket {
            id,
            summary: required_text("summary", &self.summary, SUMMARY_MAX)?,
            details: self.details.unwrap_or_default(),
            status: TicketStatus::Open,
            customer_id: self.customer_id,
            site_id,
            user_id: self.user_id,
            ticket_type_id,
            priority,
            alert_uid: None,
            asset: optional_text("asset", self.asset.as_deref(), 200)?,
            custom_fields: validate_custom_fields(self.custom_fields)?,
            team_id: None,
            noise: AlertTicketNoise::default(),
            created_at: now,
            closed_at: None,
            close_origin: None,
            actions: Vec::new(),
        })
    }
}

/// Custom fields hold strings, numbers and booleans only.
pub fn validate_custom_fields(
    fields: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Map<String, serde_json::Value>, DomainError> {
    for (k, v) in &fields {
        let path = format!("custom_fields.{k}");
        if k.trim().is_empty() || k.len() > 100 {
            return Err(DomainError::invalid(path, "names must be 1 to 100 characters"));
        }
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            return Err(DomainError::invalid(path, "must be a string, a number or a boolean"));
        }
    }
    Ok(fields)
}

/// An action to add, as asked for over the API.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewAction {
    #[serde(default = "note_kind")]
    pub kind: ActionKind,
    pub note: String,
}

fn note_kind() -> ActionKind {
    ActionKind::Note
}

impl NewAction {
    pub fn into_action(self, id: u64, agent_id: Option<u64>, now: DateTime<Utc>) -> Result<Action, DomainError> {
        Ok(Action {
            id,
            at: now,
            kind: self.kind,
            agent_id,
            note: required_text("note", &self.note, NOTE_MAX)?,
        })
    }
}

impl Ticket {
    pub fn is_open(&self) -> bool {
        self.status == TicketStatus::Open
    }

    /// Close the ticket and return the action recording it. A closed ticket refuses.
    pub fn close(
        &mut self,
        action_id: u64,
        agent_id: Option<u64>,
        note: &str,
        origin: CloseOrigin,
        now: DateTime<Utc>,
    ) -> Result<Action, DomainError> {
        if !self.is_open() {
            return Err(DomainError::conflict(
                "TICKET_CLOSED",
                format!("ticket {} is already closed", self.id),
            ));
        }
        let note = note.trim();
        let text = match (origin, note.is_empty()) {
            (_, false) => format!("Ticket closed: {note}"),
            (CloseOrigin::Agent, true) => "Ticket closed.".to_string(),
            (CloseOrigin::Datto, true) => "Ticket closed: the alert was resolved in Datto RMM.".to_string(),
        };
        self.status = TicketStatus::Closed;
        self.closed_at = Some(now);
        self.close_origin = Some(origin);
        Ok(Action {
            id: action_id,
            at: now,
            kind: ActionKind::System,
            agent_id,
            note: text,
        })
    }

    /// Reopen a closed ticket and return the action recording it. An open ticket refuses.
    pub fn reopen(
        &mut self,
        action_id: u64,
        agent_id: Option<u64>,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<Action, DomainError> {
        if self.is_open() {
            return Err(DomainError::conflict(
                "TICKET_OPEN",
                format!("ticket {} is already open", self.id),
            ));
        }
        self.status = TicketStatus::Open;
        self.closed_at = None;
        self.close_origin = None;
        let note = note.trim();
        Ok(Action {
            id: action_id,
            at: now,
            kind: ActionKind::System,
            agent_id,
            note: if note.is_empty() {
                "Ticket reopened.".to_string()
            } else {
                format!("Ticket reopened: {note}")
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        NewTicket {
            summary: "Printer jammed".into(),
            details: None,
            customer_id: 1,
            site_id: None,
            user_id: None,
            ticket_type_id: None,
            priority: None,
            asset: None,
            custom_fields: Default::default(),
        }
        .into_ticket(7, 2, None, Priority::Medium, Utc::now())
        .unwrap()
    }

    #[test]
    fn closing_twice_is_a_conflict_and_reopen_restores_open() {
        let mut t = ticket();
        let a = t.close(1, Some(3), "fixed", CloseOrigin::Agent, Utc::now()).unwrap();
        assert_eq!(a.note, "Ticket closed: fixed");
        assert_eq!(t.close_origin, Some(CloseOrigin::Agent));
        assert!(matches!(
            t.close(2, None, "", CloseOrigin::Agent, Utc::now()),
            Err(DomainError::Conflict {
                code: "TICKET_CLOSED",
                ..
            })
        ));
        t.reopen(3, None, "", Utc::now()).unwrap();
        assert!(t.is_open() && t.closed_at.is_none() && t.close_origin.is_none());
        assert!(t.reopen(4, None, "", Utc::now()).is_err());
    }

    #[test]
    fn custom_fields_refuse_objects_and_arrays() {
        let mut m = serde_json::Map::new();
        m.insert("a".into(), serde_json::json!("x"));
        m.insert("b".into(), serde_json::json!(1.5));
        m.insert("c".into(), serde_json::json!(true));
        assert!(validate_custom_fields(m.clone()).is_ok());
        m.insert("d".into(), serde_json::json!({"x": 1}));
        assert_eq!(
            validate_custom_fields(m),
            Err(DomainError::invalid(
                "custom_fields.d",
                "must be a string, a number or a boolean"
            ))
        );
    }
}
