//! The service-desk core as use cases: customers, sites, users, agents, teams, ticket
//! types, tickets (create with its automatic invitation, actions, reopen) and live chats.

use super::{accounts, audit, invitations, Actor, Context, ServiceResult};
use crate::domain::accounts::{AuditAction, Role};
use crate::domain::chats::{Chat, NewChat, NewChatMessage};
use crate::domain::desk::*;
use crate::domain::ids::{AgentId, ChatId, CustomerId, SiteId, TeamId, TicketId, TicketTypeId, UserId};
use crate::domain::tickets::{Action, NewAction, NewTicket, Ticket};
use crate::domain::DomainError;
use crate::store::{Listing, PageRequest, TicketFilter};

// ---- customers, sites, users --------------------------------------------------------------

pub async fn customers(ctx: &Context, _actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<Customer>> {
    Ok(ctx.store.customers(page).await?)
}

pub async fn create_customer(ctx: &Context, _actor: &Actor, input: NewCustomer) -> ServiceResult<Customer> {
    Ok(ctx.store.create_customer(input).await?)
}

pub async fn customer(ctx: &Context, _actor: &Actor, id: CustomerId) -> ServiceResult<Customer> {
    Ok(ctx.store.customer(id.get()).await?)
}

pub async fn update_customer(
    ctx: &Context,
    _actor: &Actor,
    id: CustomerId,
    input: CustomerUpdate,
) -> ServiceResult<Customer> {
    Ok(ctx.store.update_customer(id.get(), input).await?)
}

pub async fn sites(
    ctx: &Context,
    _actor: &Actor,
    customer: Option<CustomerId>,
    page: &PageRequest,
) -> ServiceResult<Listing<Site>> {
    Ok(ctx.store.sites(customer.map(CustomerId::get), page).await?)
}

pub async fn create_site(ctx: &Context, _actor: &Actor, input: NewSite) -> ServiceResult<Site> {
    Ok(ctx.store.create_site(input).await?)
}

pub async fn site(ctx: &Context, _actor: &Actor, id: SiteId) -> ServiceResult<Site> {
    Ok(ctx.store.site(id.get()).await?)
}

pub async fn update_site(ctx: &Context, _actor: &Actor, id: SiteId, input: SiteUpdate) -> ServiceResult<Site> {
    Ok(ctx.store.update_site(id.get(), input).await?)
}

pub async fn users(
    ctx: &Context,
    _actor: &Actor,
    customer: Option<CustomerId>,
    page: &PageRequest,
) -> ServiceResult<Listing<User>> {
    Ok(ctx.store.users(customer.map(CustomerId::get), page).await?)
}

pub async fn create_user(ctx: &Context, _actor: &Actor, input: NewUser) -> ServiceResult<User> {
    Ok(ctx.store.create_user(input).await?)
}

pub async fn user(ctx: &Context, _actor: &Actor, id: UserId) -> ServiceResult<User> {
    Ok(ctx.store.user(id.get()).await?)
}

pub async fn update_user(ctx: &Context, _actor: &Actor, id: UserId, input: UserUpdate) -> ServiceResult<User> {
    Ok(ctx.store.update_user(id.get(), input).await?)
}

// ---- agents, teams, ticket types ------------------------------------------------------------

pub async fn agents(ctx: &Context, _actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<Agent>> {
    Ok(ctx.store.agents(page).await?)
}

pub async fn create_agent(ctx: &Context, actor: &Actor, input: NewAgent) -> ServiceResult<Agent> {
    actor.require_admin("creating agents")?;
    let agent = ctx.store.create_agent(input).await?;
    let fields = vec!["role".to_string()];
    audit::record(
        ctx,
        actor,
        AuditAction::AgentCreated,
        format!("agent/{}", agent.id),
        fields,
    )
    .await?;
    Ok(agent)
}

pub async fn agent(ctx: &Context, _actor: &Actor, id: AgentId) -> ServiceResult<Agent> {
    Ok(ctx.store.agent(id.get()).await?)
}

pub async fn update_agent(ctx: &Context, actor: &Actor, id: AgentId, input: AgentUpdate) -> ServiceResult<Agent> {
    actor.require_admin("changing agents")?;
    let locks_out = input.disabled == Some(true) || input.role == Some(Role::Technician);
    if locks_out && actor.claimed_agent() == Some(id) && matches!(actor, Actor::Agent(_)) {
        return Err(DomainError::conflict(
            "SELF_LOCKOUT",
            "an admin cannot disable or demote itself; ask another admin",
        )
        .into());
    }
    let before = serde_json::to_value(ctx.store.agent(id.get()).await?).expect("serializable");
    let agent = ctx.store.update_agent(id.get(), input).await?;
    let fields = audit::changed_fields(&before, &serde_json::to_value(&agent).expect("serializable"));
    let disabled_now = agent.disabled && before["disabled"] != serde_json::Value::Bool(true);
    if agent.disabled {
        accounts::end_sessions(ctx, id).await?;
    }
    let action = if disabled_now {
        AuditAction::AgentDisabled
    } else {
        AuditAction::AgentChanged
    };
    audit::record(ctx, actor, action, format!("agent/{id}"), fields).await?;
    Ok(agent)
}

pub async fn teams(ctx: &Context, _actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<Team>> {
    Ok(ctx.store.teams(page).await?)
}

pub async fn create_team(ctx: &Context, actor: &Actor, input: NewTeam) -> ServiceResult<Team> {
    actor.require_admin("creating teams")?;
    Ok(ctx.store.create_team(input).await?)
}

pub async fn team(ctx: &Context, _actor: &Actor, id: TeamId) -> ServiceResult<Team> {
    Ok(ctx.store.team(id.get()).await?)
}

pub async fn update_team(ctx: &Context, actor: &Actor, id: TeamId, input: TeamUpdate) -> ServiceResult<Team> {
    actor.require_admin("changing teams")?;
    Ok(ctx.store.update_team(id.get(), input).await?)
}

pub async fn ticket_types(ctx: &Context, _actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<TicketType>> {
    Ok(ctx.store.ticket_types(page).await?)
}

pub async fn create_ticket_type(ctx: &Context, actor: &Actor, input: NewTicketType) -> ServiceResult<TicketType> {
    actor.require_admin("creating ticket types")?;
    Ok(ctx.store.create_ticket_type(input).await?)
}

pub async fn ticket_type(ctx: &Context, _actor: &Actor, id: TicketTypeId) -> ServiceResult<TicketType> {
    Ok(ctx.store.ticket_type(id.get()).await?)
}

pub async fn update_ticket_type(
    ctx: &Context,
    actor: &Actor,
    id: TicketTypeId,
    input: TicketTypeUpdate,
) -> ServiceResult<TicketType> {
    actor.require_admin("changing ticket types")?;
    Ok(ctx.store.update_ticket_type(id.get(), input).await?)
}

// ---- tickets --------------------------------------------------------------------------------

pub async fn tickets(
    ctx: &Context,
    _actor: &Actor,
    filter: &TicketFilter,
    page: &PageRequest,
) -> ServiceResult<Listing<Ticket>> {
    Ok(ctx.store.tickets(filter, page).await?)
}

/// Create a ticket. A remote support invitation goes out with it when its type says so, or
/// when `send_invite` asks (`Some(false)` overrides the type). A failed invitation never
/// fails the ticket: it is noted as a system action.
pub async fn create_ticket(
    ctx: &Context,
    actor: &Actor,
    input: NewTicket,
    send_invite: Option<bool>,
) -> ServiceResult<Ticket> {
    let acting = ctx.acting_agent(actor).await?;
    let ticket = ctx.store.create_ticket(input).await?;
    let by_type = match ticket.ticket_type_id {
        Some(t) => ctx.store.ticket_type(t).await?.send_remote_invite_on_create,
        None => false,
    };
    if !send_invite.unwrap_or(by_type) {
        return Ok(ticket);
    }
    let id = ticket.id;
    invitations::automatic_invite(ctx, ticket, acting).await;
    Ok(ctx.store.ticket(id).await?)
}

pub async fn ticket(ctx: &Context, _actor: &Actor, id: TicketId) -> ServiceResult<Ticket> {
    Ok(ctx.store.ticket(id.get()).await?)
}

pub async fn add_action(ctx: &Context, actor: &Actor, id: TicketId, input: NewAction) -> ServiceResult<Action> {
    let agent = ctx.acting_agent(actor).await?;
    Ok(ctx.store.add_action(id.get(), input, agent.map(AgentId::get)).await?)
}

pub async fn reopen_ticket(ctx: &Context, actor: &Actor, id: TicketId, note: &str) -> ServiceResult<Ticket> {
    let agent = ctx.acting_agent(actor).await?;
    Ok(ctx
        .store
        .reopen_ticket_by_agent(id.get(), note, agent.map(AgentId::get))
        .await?)
}

// ---- chats ----------------------------------------------------------------------------------

pub async fn create_chat(ctx: &Context, _actor: &Actor, input: NewChat) -> ServiceResult<Chat> {
    Ok(ctx.store.create_chat(input).await?)
}

/// A page of chats by id; `open_only` leaves out the ended ones.
pub async fn chats(ctx: &Context, _actor: &Actor, open_only: bool, page: &PageRequest) -> ServiceResult<Listing<Chat>> {
    Ok(ctx.store.chats(open_only, page).await?)
}

pub async fn chat(ctx: &Context, _actor: &Actor, id: ChatId) -> ServiceResult<Chat> {
    Ok(ctx.store.chat(id.get()).await?)
}

pub async fn post_chat_message(
    ctx: &Context,
    _actor: &Actor,
    id: ChatId,
    input: NewChatMessage,
) -> ServiceResult<Chat> {
    Ok(ctx.store.post_chat_message(id.get(), input).await?)
}

pub async fn end_chat(ctx: &Context, _actor: &Actor, id: ChatId) -> ServiceResult<Chat> {
    Ok(ctx.store.end_chat(id.get()).await?)
}

pub async fn link_chat(ctx: &Context, _actor: &Actor, id: ChatId, ticket: TicketId) -> ServiceResult<Chat> {
    Ok(ctx.store.link_chat(id.get(), ticket.get()).await?)
}
