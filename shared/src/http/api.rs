//! The helpdesk API routes of DESIGN §3 for the service-desk core: customers, sites, users,
//! agents, teams, ticket types, tickets with actions, live chats.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_json, ApiJson, ApiQuery, IdPath, OptionalJson};
use super::list::{ListBody, ListParams};
use crate::domain::chats::{Chat, NewChat, NewChatMessage};
use crate::domain::desk::*;
use crate::domain::ids::{AgentId, ChatId, CustomerId, SiteId, TeamId, TicketId, TicketTypeId, UserId};
use crate::domain::tickets::{Action, NewAction, NewTicket, Ticket, TicketStatus};
use crate::services::{close_propagation, desk, Actor, Context, InputError};
use crate::store::TicketFilter;

type ApiResult<T> = Result<T, ApiError>;
type Created<T> = (StatusCode, Json<T>);

pub fn routes() -> Router<Context> {
    Router::new()
        .route("/api/customers", get(list_customers).post(create_customer))
        .route("/api/customers/{id}", get(get_customer).put(update_customer))
        .route("/api/sites", get(list_sites).post(create_site))
        .route("/api/sites/{id}", get(get_site).put(update_site))
        .route("/api/users", get(list_users).post(create_user))
        .route("/api/users/{id}", get(get_user).put(update_user))
        .route("/api/agents", get(list_agents).post(create_agent))
        .route("/api/agents/{id}", get(get_agent).put(update_agent))
        .route("/api/teams", get(list_teams).post(create_team))
        .route("/api/teams/{id}", get(get_team).put(update_team))
        .route("/api/ticket-types", get(list_ticket_types).post(create_ticket_type))
        .route("/api/ticket-types/{id}", get(get_ticket_type).put(update_ticket_type))
        .route("/api/tickets", get(list_tickets).post(create_ticket))
        .route("/api/tickets/{id}", get(get_ticket))
        .route("/api/tickets/{id}/actions", post(add_action))
        .route("/api/tickets/{id}/close", post(close_ticket))
        .route("/api/tickets/{id}/reopen", post(reopen_ticket))
        .route("/api/chats", post(create_chat))
        .route("/api/chats/{id}", get(get_chat))
        .route("/api/chats/{id}/messages", post(post_chat_message))
        .route("/api/chats/{id}/end", post(end_chat))
        .route("/api/chats/{id}/link", post(link_chat))
}

/// `customer_id`, `limit`, `cursor`.
#[derive(Debug, Deserialize, Default)]
struct CustomerScoped {
    customer_id: Option<CustomerId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl CustomerScoped {
    fn page(&self) -> Result<crate::store::PageRequest, InputError> {
        ListParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .page()
    }
}

// ---- customers, sites, users ------------------------------------------------------------

async fn list_customers(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Customer>>> {
    Ok(Json(desk::customers(&ctx, &actor, &q.page()?).await?.into()))
}

async fn create_customer(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewCustomer>,
) -> ApiResult<Created<Customer>> {
    Ok((
        StatusCode::CREATED,
        Json(desk::create_customer(&ctx, &actor, input).await?),
    ))
}

async fn get_customer(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<CustomerId>,
) -> ApiResult<Json<Customer>> {
    Ok(Json(desk::customer(&ctx, &actor, id).await?))
}

async fn update_customer(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<CustomerId>,
    ApiJson(input): ApiJson<CustomerUpdate>,
) -> ApiResult<Json<Customer>> {
    Ok(Json(desk::update_customer(&ctx, &actor, id, input).await?))
}

async fn list_sites(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<CustomerScoped>,
) -> ApiResult<Json<ListBody<Site>>> {
    Ok(Json(desk::sites(&ctx, &actor, q.customer_id, &q.page()?).await?.into()))
}

async fn create_site(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewSite>,
) -> ApiResult<Created<Site>> {
    Ok((StatusCode::CREATED, Json(desk::create_site(&ctx, &actor, input).await?)))
}

async fn get_site(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<SiteId>) -> ApiResult<Json<Site>> {
    Ok(Json(desk::site(&ctx, &actor, id).await?))
}

async fn update_site(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<SiteId>,
    ApiJson(input): ApiJson<SiteUpdate>,
) -> ApiResult<Json<Site>> {
    Ok(Json(desk::update_site(&ctx, &actor, id, input).await?))
}

async fn list_users(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<CustomerScoped>,
) -> ApiResult<Json<ListBody<User>>> {
    Ok(Json(desk::users(&ctx, &actor, q.customer_id, &q.page()?).await?.into()))
}

async fn create_user(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewUser>,
) -> ApiResult<Created<User>> {
    Ok((StatusCode::CREATED, Json(desk::create_user(&ctx, &actor, input).await?)))
}

async fn get_user(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<UserId>) -> ApiResult<Json<User>> {
    Ok(Json(desk::user(&ctx, &actor, id).await?))
}

async fn update_user(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<UserId>,
    ApiJson(input): ApiJson<UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(desk::update_user(&ctx, &actor, id, input).await?))
}

// ---- agents, teams, ticket types ----------------------------------------------------------

async fn list_agents(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Agent>>> {
    Ok(Json(desk::agents(&ctx, &actor, &q.page()?).await?.into()))
}

async fn create_agent(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewAgent>,
) -> ApiResult<Created<Agent>> {
    Ok((
        StatusCode::CREATED,
        Json(desk::create_agent(&ctx, &actor, input).await?),
    ))
}

async fn get_agent(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<AgentId>) -> ApiResult<Json<Agent>> {
    Ok(Json(desk::agent(&ctx, &actor, id).await?))
}

async fn update_agent(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<AgentId>,
    ApiJson(input): ApiJson<AgentUpdate>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(desk::update_agent(&ctx, &actor, id, input).await?))
}

async fn list_teams(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Team>>> {
    Ok(Json(desk::teams(&ctx, &actor, &q.page()?).await?.into()))
}

async fn create_team(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewTeam>,
) -> ApiResult<Created<Team>> {
    Ok((StatusCode::CREATED, Json(desk::create_team(&ctx, &actor, input).await?)))
}

async fn get_team(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<TeamId>) -> ApiResult<Json<Team>> {
    Ok(Json(desk::team(&ctx, &actor, id).await?))
}

async fn update_team(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TeamId>,
    ApiJson(input): ApiJson<TeamUpdate>,
) -> ApiResult<Json<Team>> {
    Ok(Json(desk::update_team(&ctx, &actor, id, input).await?))
}

async fn list_ticket_types(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<TicketType>>> {
    Ok(Json(desk::ticket_types(&ctx, &actor, &q.page()?).await?.into()))
}

async fn create_ticket_type(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewTicketType>,
) -> ApiResult<Created<TicketType>> {
    Ok((
        StatusCode::CREATED,
        Json(desk::create_ticket_type(&ctx, &actor, input).await?),
    ))
}

async fn get_ticket_type(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketTypeId>,
) -> ApiResult<Json<TicketType>> {
    Ok(Json(desk::ticket_type(&ctx, &actor, id).await?))
}

async fn update_ticket_type(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketTypeId>,
    ApiJson(input): ApiJson<TicketTypeUpdate>,
) -> ApiResult<Json<TicketType>> {
    Ok(Json(desk::update_ticket_type(&ctx, &actor, id, input).await?))
}

// ---- tickets ----------------------------------------------------------------------------

/// `status`, `alert_uid`, `customer_id`, `limit`, `cursor`.
#[derive(Debug, Deserialize, Default)]
struct TicketQuery {
    status: Option<TicketStatus>,
    alert_uid: Option<String>,
    customer_id: Option<CustomerId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_tickets(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<TicketQuery>,
) -> ApiResult<Json<ListBody<Ticket>>> {
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = TicketFilter {
        status: q.status,
        alert_uid: q.alert_uid,
        customer_id: q.customer_id.map(CustomerId::get),
    };
    Ok(Json(desk::tickets(&ctx, &actor, &filter, &page).await?.into()))
}

/// `POST /api/tickets`: a `NewTicket`, and `send_remote_invite: true|false` to send (or
/// not) a remote support invitation with it regardless of the ticket type.
async fn create_ticket(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(raw): ApiJson<serde_json::Value>,
) -> ApiResult<Created<Ticket>> {
    let send_invite = match raw.get("send_remote_invite") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err(InputError::invalid("send_remote_invite", "must be true or false").into()),
    };
    let input: NewTicket = parse_json(&serde_json::to_vec(&raw).expect("json"))?;
    let ticket = desk::create_ticket(&ctx, &actor, input, send_invite).await?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

async fn get_ticket(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<TicketId>) -> ApiResult<Json<Ticket>> {
    Ok(Json(desk::ticket(&ctx, &actor, id).await?))
}

async fn add_action(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketId>,
    ApiJson(input): ApiJson<NewAction>,
) -> ApiResult<Created<Action>> {
    Ok((
        StatusCode::CREATED,
        Json(desk::add_action(&ctx, &actor, id, input).await?),
    ))
}

/// An optional `{"note"}`.
#[derive(Debug, Deserialize, Default)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

async fn close_ticket(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketId>,
    OptionalJson(body): OptionalJson<NoteBody>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(
        close_propagation::close_ticket(&ctx, &actor, id, &body.note).await?,
    ))
}

async fn reopen_ticket(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketId>,
    OptionalJson(body): OptionalJson<NoteBody>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(desk::reopen_ticket(&ctx, &actor, id, &body.note).await?))
}

// ---- chats --------------------------------------------------------------------------------

async fn create_chat(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewChat>,
) -> ApiResult<Created<Chat>> {
    Ok((StatusCode::CREATED, Json(desk::create_chat(&ctx, &actor, input).await?)))
}

async fn get_chat(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<ChatId>) -> ApiResult<Json<Chat>> {
    Ok(Json(desk::chat(&ctx, &actor, id).await?))
}

async fn post_chat_message(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<ChatId>,
    ApiJson(input): ApiJson<NewChatMessage>,
) -> ApiResult<Created<Chat>> {
    Ok((
        StatusCode::CREATED,
        Json(desk::post_chat_message(&ctx, &actor, id, input).await?),
    ))
}

async fn end_chat(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<ChatId>) -> ApiResult<Json<Chat>> {
    Ok(Json(desk::end_chat(&ctx, &actor, id).await?))
}

/// `{"ticket_id"}`.
#[derive(Debug, Deserialize)]
struct LinkBody {
    ticket_id: TicketId,
}

async fn link_chat(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<ChatId>,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<Json<Chat>> {
    Ok(Json(desk::link_chat(&ctx, &actor, id, body.ticket_id).await?))
}
