//! Repository of tickets and their actions: creation with resolved defaults, listing with
//! filters, actions, close and reopen — each a single atomic write.

use chrono::{DateTime, Utc};

use super::desk::{missing_reference, CUSTOMER, SITE, TICKET_TYPE, USER};
use super::{sk_id, Listing, PageRequest, Store};
use crate::domain::desk::{Priority, Site, User};
use crate::domain::tickets::*;
use crate::domain::DomainError;
use crate::error::Result;
use crate::ports::{Condition, Index, Query, Record, WriteOp};

pub(crate) const TICKET: &str = "ticket";
pub(crate) const ACTION: &str = "action";

/// Filters of the ticket list; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub status: Option<TicketStatus>,
    pub alert_uid: Option<String>,
    pub customer_id: Option<u64>,
}

impl TicketFilter {
    fn keeps(&self, t: &Ticket) -> bool {
        self.status.is_none_or(|s| t.status == s)
            && self.customer_id.is_none_or(|c| t.customer_id == c)
            && self
                .alert_uid
                .as_deref()
                .is_none_or(|u| t.alert_uid.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(u)))
    }
}

fn actions_pk(ticket_id: u64) -> String {
    format!("ticket#{}", sk_id(ticket_id))
}

/// The write that stores one action of a ticket.
pub(crate) fn put_action(ticket_id: u64, action: &Action) -> WriteOp {
    WriteOp::Put {
        record: Record::new(
            actions_pk(ticket_id),
            format!("{ACTION}#{}", sk_id(action.id)),
            serde_json::to_value(action).expect("serializable"),
        ),
        condition: Condition::NotExists,
    }
}

/// What a new ticket resolves to once its references are checked.
pub struct ResolvedTicket {
    pub site_id: u64,
    pub ticket_type_id: Option<u64>,
    pub priority: Priority,
}

impl Store {
    /// Check a new ticket's references and apply the defaults: the customer's main site,
    /// the default ticket type, the type's default priority.
    pub async fn resolve_ticket_refs(
        &self,
        customer_id: u64,
        site_id: Option<u64>,
        user_id: Option<u64>,
        ticket_type_id: Option<u64>,
        priority: Option<Priority>,
    ) -> Result<ResolvedTicket> {
        let customer = self
            .customer(customer_id)
            .await
            .map_err(|_| DomainError::invalid("customer_id", format!("customer {customer_id} does not exist")))?;
        let site_id = match site_id {
            None => customer.main_site_id,
            Some(s) => {
                let site: Site = self
                    .site(s)
                    .await
                    .map_err(|_| DomainError::invalid("site_id", format!("site {s} does not exist")))?;
                if site.customer_id != customer_id {
                    return Err(
                        DomainError::invalid("site_id", format!("site {s} belongs to another customer")).into(),
                    );
                }
                s
            }
        };
        if let Some(u) = user_id {
            let user: User = self
                .user(u)
                .await
                .map_err(|_| DomainError::invalid("user_id", format!("user {u} does not exist")))?;
            if user.customer_id != customer_id {
                return Err(DomainError::invalid("user_id", format!("user {u} belongs to another customer")).into());
            }
        }
        let ticket_type = match ticket_type_id {
            Some(t) => Some(
                self.ticket_type(t)
                    .await
                    .map_err(|_| DomainError::invalid("ticket_type_id", format!("ticket type {t} does not exist")))?,
            ),
            None => self.default_ticket_type().await?,
        };
        Ok(ResolvedTicket {
            site_id,
            ticket_type_id: ticket_type.as_ref().map(|t| t.id),
            priority: priority
                .or(ticket_type.as_ref().map(|t| t.default_priority))
                .unwrap_or_default(),
        })
    }

    /// Create a ticket from an API request.
    pub async fn create_ticket(&self, input: NewTicket) -> Result<Ticket> {
        let r = self
            .resolve_ticket_refs(
                input.customer_id,
                input.site_id,
                input.user_id,
                input.ticket_type_id,
                input.priority,
            )
            .await?;
        let id = self.next_id(TICKET).await?;
        let ticket = input.into_ticket(id, r.site_id, r.ticket_type_id, r.priority, self.clock().now())?;
        self.insert_ticket(&ticket, Vec::new()).await?;
        Ok(ticket)
    }

    /// Store a new ticket with its actions and any further operations in one transaction;
    /// the ticket's customer, site and user must still exist.
    pub async fn insert_ticket(&self, ticket: &Ticket, extra: Vec<WriteOp>) -> Result<()> {
        let mut ops = self.ticket_insert_ops(ticket);
        ops.extend(extra);
        let mut refs = vec![
            (CUSTOMER, "customer", ticket.customer_id),
            (SITE, "site", ticket.site_id),
        ];
        if let Some(u) = ticket.user_id {
            refs.push((USER, "user", u));
        }
        if let Some(t) = ticket.ticket_type_id {
            refs.push((TICKET_TYPE, "ticket type", t));
        }
        self.records().write(ops).await.map_err(|e| missing_reference(e, &refs))
    }

    /// The operations that store a new ticket and its actions, for callers composing a
    /// larger transaction.
    pub fn ticket_insert_ops(&self, ticket: &Ticket) -> Vec<WriteOp> {
        let mut stored = ticket.clone();
        let actions = std::mem::take(&mut stored.actions);
        let mut ops = vec![
            Self::put_new(TICKET, ticket.id, &stored),
            Self::must_exist(CUSTOMER, ticket.customer_id),
            Self::must_exist(SITE, ticket.site_id),
        ];
        if let Some(u) = ticket.user_id {
            ops.push(Self::must_exist(USER, u));
        }
        if let Some(t) = ticket.ticket_type_id {
            ops.push(Self::must_exist(TICKET_TYPE, t));
        }
        ops.extend(actions.iter().map(|a| put_action(ticket.id, a)));
        ops
    }

    /// The ticket without its actions, and its version.
    pub async fn ticket_head(&self, id: u64) -> Result<(Ticket, u64)> {
        self.fetch(TICKET, "ticket", id).await
    }

    /// The ticket with all its actions, oldest first.
    pub async fn ticket(&self, id: u64) -> Result<Ticket> {
        let (mut t, _): (Ticket, u64) = self.ticket_head(id).await?;
        t.actions = self.actions(id).await?;
        Ok(t)
    }

    pub(crate) async fn actions(&self, ticket_id: u64) -> Result<Vec<Action>> {
        let mut q = Query::partition(Index::Primary, actions_pk(ticket_id));
        q.sk_prefix = Some(format!("{ACTION}#"));
        self.all_records(q).await?.iter().map(Self::decode::<Action>).collect()
    }

    /// Every ticket passing `filter`, newest first, without actions.
    pub async fn all_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        self.list_all(Index::Primary, TICKET, true, |t: &Ticket| filter.keeps(t))
            .await
    }

    /// Tickets newest first, without their actions.
    pub async fn tickets(&self, filter: &TicketFilter, page: &PageRequest) -> Result<Listing<Ticket>> {
        self.list(Index::Primary, TICKET, true, page, |t: &Ticket| filter.keeps(t))
            .await
    }

    pub async fn add_action(&self, ticket_id: u64, input: NewAction, agent_id: Option<u64>) -> Result<Action> {
        let id = self.next_id(ACTION).await?;
        let action = input.into_action(id, agent_id, self.clock().now())?;
        self.append_action(ticket_id, &action).await?;
        Ok(action)
    }

    /// Store an already-built action on an existing ticket.
    pub async fn append_action(&self, ticket_id: u64, action: &Action) -> Result<()> {
        self.records()
            .write(vec![Self::must_exist(TICKET, ticket_id), put_action(ticket_id, action)])
            .await
            .map_err(|e| missing_reference(e, &[(TICKET, "ticket", ticket_id)]))
    }

    /// A new action id and the current time, for callers building actions themselves.
    pub async fn new_action_stamp(&self) -> Result<(u64, DateTime<Utc>)> {
        Ok((self.next_id(ACTION).await?, self.clock().now()))
    }

    /// Close a ticket; `extra` builds more operations for the same transaction from the
    /// closed ticket (the outbox record of close propagation, the alert update).
    pub async fn close_ticket(
        &self,
        id: u64,
        note: &str,
        agent_id: Option<u64>,
        origin: CloseOrigin,
        extra: impl Fn(&Ticket) -> Vec<WriteOp>,
    ) -> Result<Ticket> {
        let (action_id, now) = self.new_action_stamp().await?;
        let (mut t, ()) = self
            .update(TICKET, "ticket", id, |t: &mut Ticket, ops| {
                let action = t.close(action_id, agent_id, note, origin, now)?;
                ops.push(put_action(id, &action));
                ops.extend(extra(t));
                Ok(())
            })
            .await?;
        t.actions = self.actions(id).await?;
        Ok(t)
    }

    pub async fn reopen_ticket(&self, id: u64, note: &str, agent_id: Option<u64>) -> Result<Ticket> {
        let (action_id, now) = self.new_action_stamp().await?;
        let (mut t, ()) = self
            .update(TICKET, "ticket", id, |t: &mut Ticket, ops| {
                let action = t.reopen(action_id, agent_id, note, now)?;
                ops.push(put_action(id, &action));
                Ok(())
            })
            .await?;
        t.actions = self.actions(id).await?;
        Ok(t)
    }
}
