//! Live chats between an end user and the desk: messages while open, the end of a chat,
//! and the optional link to a ticket.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{optional_text, required_text, DomainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatStatus {
    Open,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub at: DateTime<Utc>,
    pub from: String,
    pub text: String,
    /// When true, `text` is HTML the desk produced (e.g. an invitation); otherwise plain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub html: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Chat {
    pub id: u64,
    pub user_name: String,
    pub user_id: Option<u64>,
    pub customer_id: Option<u64>,
    pub status: ChatStatus,
    pub ticket_id: Option<u64>,
    pub messages: Vec<ChatMessage>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewChat {
    pub user_name: String,
    #[serde(default)]
    pub user_id: Option<u64>,
    #[serde(default)]
    pub customer_id: Option<u64>,
    #[serde(default)]
    pub ticket_id: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewChatMessage {
    pub from: String,
    pub text: String,
}

/// Longest chat message kept.
pub const MESSAGE_MAX: usize = 20_000;

impl NewChat {
    pub fn into_chat(self, id: u64, now: DateTime<Utc>) -> Result<Chat, DomainError> {
        Ok(Chat {
            id,
            user_name: required_text("user_name", &self.user_name, 200)?,
            user_id: self.user_id,
            customer_id: self.customer_id,
            status: ChatStatus::Open,
            ticket_id: self.ticket_id,
            messages: Vec::new(),
            created_at: now,
            ended_at: None,
        })
    }
}

impl Chat {
    pub fn is_open(&self) -> bool {
        self.status == ChatStatus::Open
    }

    /// Refuse with `CHAT_ENDED` once the chat has ended.
    pub fn ensure_open(&self) -> Result<(), DomainError> {
        if self.is_open() {
            Ok(())
        } else {
            Err(DomainError::conflict(
                "CHAT_ENDED",
                format!("chat {} has ended", self.id),
            ))
        }
    }

    pub fn post(&mut self, msg: NewChatMessage, now: DateTime<Utc>) -> Result<(), DomainError> {
        let from = required_text("from", &msg.from, 200)?;
        let text = required_text("text", &msg.text, MESSAGE_MAX)?;
        self.push(from, text, false, now)
    }

    /// Post a message the desk produced itself (system notes, invitations).
    pub fn push(&mut self, from: String, text: String, html: bool, now: DateTime<Utc>) -> Result<(), DomainError> {
        self.ensure_open()?;
        self.messages.push(ChatMessage {
            at: now,
            from,
            text,
            html,
        });
        Ok(())
    }

    pub fn end(&mut self, now: DateTime<Utc>) -> Result<(), DomainError> {
        if !self.is_open() {
            return Err(DomainError::conflict(
                "CHAT_ENDED",
                format!("chat {} has already ended", self.id),
            ));
        }
        self.status = ChatStatus::Ended;
        self.ended_at = Some(now);
        Ok(())
    }

    pub fn link(&mut self, ticket_id: u64) {
        self.ticket_id = Some(ticket_id);
    }
}

/// Validated optional display text, shared by chat inputs.
pub fn optional_name(field: &str, v: Option<&str>) -> Result<Option<String>, DomainError> {
    optional_text(field, v, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_chat_takes_no_messages() {
        let now = Utc::now();
        let mut c = NewChat {
            user_name: "Jane".into(),
            user_id: None,
            customer_id: None,
            ticket_id: None,
        }
        .into_chat(1, now)
        .unwrap();
        c.post(
            NewChatMessage {
                from: "Jane".into(),
                text: "hi".into(),
            },
            now,
        )
        .unwrap();
        c.end(now).unwrap();
        assert!(c
            .post(
                NewChatMessage {
                    from: "Jane".into(),
                    text: "again".into()
                },
                now
            )
            .is_err());
        assert_eq!(c.messages.len(), 1);
    }
}
