//! Repository of live chats: creation with checked references, messages, end and link.

use super::desk::{missing_reference, CUSTOMER, USER};
use super::tickets::TICKET;
use super::{Listing, PageRequest, Store};
use crate::domain::chats::*;
use crate::error::Result;
use crate::ports::Index;

pub(crate) const CHAT: &str = "chat";

impl Store {
    pub async fn create_chat(&self, input: NewChat) -> Result<Chat> {
        let id = self.next_id(CHAT).await?;
        let chat = input.into_chat(id, self.clock().now())?;
        let mut ops = vec![Self::put_new(CHAT, id, &chat)];
        let mut refs = Vec::new();
        if let Some(u) = chat.user_id {
            ops.push(Self::must_exist(USER, u));
            refs.push((USER, "user", u));
        }
        if let Some(c) = chat.customer_id {
            ops.push(Self::must_exist(CUSTOMER, c));
            refs.push((CUSTOMER, "customer", c));
        }
        if let Some(t) = chat.ticket_id {
            ops.push(Self::must_exist(TICKET, t));
            refs.push((TICKET, "ticket", t));
        }
        self.records()
            .write(ops)
            .await
            .map_err(|e| missing_reference(e, &refs))?;
        Ok(chat)
    }

    /// A page of chats, by id; `open_only` leaves out ended ones.
    pub async fn chats(&self, open_only: bool, page: &PageRequest) -> Result<Listing<Chat>> {
        self.list(Index::Primary, CHAT, false, page, move |c: &Chat| {
            !open_only || c.status == ChatStatus::Open
        })
        .await
    }

    pub async fn chat(&self, id: u64) -> Result<Chat> {
        Ok(self.fetch(CHAT, "chat", id).await?.0)
    }

    pub async fn post_chat_message(&self, id: u64, msg: NewChatMessage) -> Result<Chat> {
        let now = self.clock().now();
        Ok(self
            .update(CHAT, "chat", id, |c: &mut Chat, _| Ok(c.post(msg.clone(), now)?))
            .await?
            .0)
    }

    /// Post a message produced by the desk (HTML when `html`).
    pub async fn push_chat_message(&self, id: u64, from: &str, text: &str, html: bool) -> Result<Chat> {
        let now = self.clock().now();
        Ok(self
            .update(CHAT, "chat", id, |c: &mut Chat, _| {
                Ok(c.push(from.to_string(), text.to_string(), html, now)?)
            })
            .await?
            .0)
    }

    pub async fn end_chat(&self, id: u64) -> Result<Chat> {
        let now = self.clock().now();
        Ok(self
            .update(CHAT, "chat", id, |c: &mut Chat, _| Ok(c.end(now)?))
            .await?
            .0)
    }

    pub async fn link_chat(&self, id: u64, ticket_id: u64) -> Result<Chat> {
        Ok(self
            .update(CHAT, "chat", id, |c: &mut Chat, ops| {
                c.link(ticket_id);
                ops.push(Self::must_exist(TICKET, ticket_id));
                Ok(())
            })
            .await
            .map_err(|e| match e {
                crate::error::Error::Store(s) => missing_reference(s, &[(TICKET, "ticket", ticket_id)]),
                other => other,
            })?
            .0)
    }
}
