//! The helpdesk API routes of DESIGN §3 for the service-desk core: customers, sites, users,
//! agents, teams, ticket types, tickets with actions, live chats.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
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

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(get_customer, update_customer))
        .routes(routes!(list_sites, create_site))
        .routes(routes!(get_site, update_site))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, update_agent))
        .routes(routes!(list_teams, create_team))
        .routes(routes!(get_team, update_team))
        .routes(routes!(list_ticket_types, create_ticket_type))
        .routes(routes!(get_ticket_type, update_ticket_type))
        .routes(routes!(list_tickets, create_ticket))
        .routes(routes!(get_ticket))
        .routes(routes!(add_action))
        .routes(routes!(close_ticket))
        .routes(routes!(reopen_ticket))
        .routes(routes!(list_chats, create_chat))
        .routes(routes!(get_chat))
        .routes(routes!(post_chat_message))
        .routes(routes!(end_chat))
        .routes(routes!(link_chat))
}

/// `customer_id`, `limit`, `cursor`.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct CustomerScoped {
    /// Only those of this customer.
    #[param(value_type = Option<u64>)]
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

#[utoipa::path(get, path = "/api/customers", tag = "desk", params(ListParams), responses((status = 200, description = "A page of customers", body = ListBody<Customer>)))]
async fn list_customers(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Customer>>> {
    Ok(Json(desk::customers(&ctx, &actor, &q.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/customers", tag = "desk", request_body = NewCustomer, responses((status = 201, description = "The new customer", body = Customer)))]
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

#[utoipa::path(get, path = "/api/customers/{id}", tag = "desk", params(("id" = u64, Path, description = "The customer's id")), responses((status = 200, description = "The customer", body = Customer)))]
async fn get_customer(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<CustomerId>,
) -> ApiResult<Json<Customer>> {
    Ok(Json(desk::customer(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/customers/{id}", tag = "desk", params(("id" = u64, Path, description = "The customer's id")), request_body = CustomerUpdate, responses((status = 200, description = "The changed customer", body = Customer)))]
async fn update_customer(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<CustomerId>,
    ApiJson(input): ApiJson<CustomerUpdate>,
) -> ApiResult<Json<Customer>> {
    Ok(Json(desk::update_customer(&ctx, &actor, id, input).await?))
}

#[utoipa::path(get, path = "/api/sites", tag = "desk", params(CustomerScoped), responses((status = 200, description = "A page of sites", body = ListBody<Site>)))]
async fn list_sites(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<CustomerScoped>,
) -> ApiResult<Json<ListBody<Site>>> {
    Ok(Json(desk::sites(&ctx, &actor, q.customer_id, &q.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/sites", tag = "desk", request_body = NewSite, responses((status = 201, description = "The new site", body = Site)))]
async fn create_site(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewSite>,
) -> ApiResult<Created<Site>> {
    Ok((StatusCode::CREATED, Json(desk::create_site(&ctx, &actor, input).await?)))
}

#[utoipa::path(get, path = "/api/sites/{id}", tag = "desk", params(("id" = u64, Path, description = "The site's id")), responses((status = 200, description = "The site", body = Site)))]
async fn get_site(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<SiteId>) -> ApiResult<Json<Site>> {
    Ok(Json(desk::site(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/sites/{id}", tag = "desk", params(("id" = u64, Path, description = "The site's id")), request_body = SiteUpdate, responses((status = 200, description = "The changed site", body = Site)))]
async fn update_site(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<SiteId>,
    ApiJson(input): ApiJson<SiteUpdate>,
) -> ApiResult<Json<Site>> {
    Ok(Json(desk::update_site(&ctx, &actor, id, input).await?))
}

#[utoipa::path(get, path = "/api/users", tag = "desk", params(CustomerScoped), responses((status = 200, description = "A page of users", body = ListBody<User>)))]
async fn list_users(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<CustomerScoped>,
) -> ApiResult<Json<ListBody<User>>> {
    Ok(Json(desk::users(&ctx, &actor, q.customer_id, &q.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/users", tag = "desk", request_body = NewUser, responses((status = 201, description = "The new user", body = User)))]
async fn create_user(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewUser>,
) -> ApiResult<Created<User>> {
    Ok((StatusCode::CREATED, Json(desk::create_user(&ctx, &actor, input).await?)))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "desk", params(("id" = u64, Path, description = "The user's id")), responses((status = 200, description = "The user", body = User)))]
async fn get_user(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<UserId>) -> ApiResult<Json<User>> {
    Ok(Json(desk::user(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/users/{id}", tag = "desk", params(("id" = u64, Path, description = "The user's id")), request_body = UserUpdate, responses((status = 200, description = "The changed user", body = User)))]
async fn update_user(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<UserId>,
    ApiJson(input): ApiJson<UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(desk::update_user(&ctx, &actor, id, input).await?))
}

// ---- agents, teams, ticket types ----------------------------------------------------------

#[utoipa::path(get, path = "/api/agents", tag = "desk", params(ListParams), responses((status = 200, description = "A page of agents", body = ListBody<Agent>)))]
async fn list_agents(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Agent>>> {
    Ok(Json(desk::agents(&ctx, &actor, &q.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/agents", tag = "desk", request_body = NewAgent, responses((status = 201, description = "The new agent", body = Agent)))]
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

#[utoipa::path(get, path = "/api/agents/{id}", tag = "desk", params(("id" = u64, Path, description = "The agent's id")), responses((status = 200, description = "The agent", body = Agent)))]
async fn get_agent(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<AgentId>) -> ApiResult<Json<Agent>> {
    Ok(Json(desk::agent(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/agents/{id}", tag = "desk", params(("id" = u64, Path, description = "The agent's id")), request_body = AgentUpdate, responses((status = 200, description = "The changed agent", body = Agent)))]
async fn update_agent(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<AgentId>,
    ApiJson(input): ApiJson<AgentUpdate>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(desk::update_agent(&ctx, &actor, id, input).await?))
}

#[utoipa::path(get, path = "/api/teams", tag = "desk", params(ListParams), responses((status = 200, description = "A page of teams", body = ListBody<Team>)))]
async fn list_teams(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Team>>> {
    Ok(Json(desk::teams(&ctx, &actor, &q.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/teams", tag = "desk", request_body = NewTeam, responses((status = 201, description = "The new team", body = Team)))]
async fn create_team(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewTeam>,
) -> ApiResult<Created<Team>> {
    Ok((StatusCode::CREATED, Json(desk::create_team(&ctx, &actor, input).await?)))
}

#[utoipa::path(get, path = "/api/teams/{id}", tag = "desk", params(("id" = u64, Path, description = "The team's id")), responses((status = 200, description = "The team", body = Team)))]
async fn get_team(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<TeamId>) -> ApiResult<Json<Team>> {
    Ok(Json(desk::team(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/teams/{id}", tag = "desk", params(("id" = u64, Path, description = "The team's id")), request_body = TeamUpdate, responses((status = 200, description = "The changed team", body = Team)))]
async fn update_team(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TeamId>,
    ApiJson(input): ApiJson<TeamUpdate>,
) -> ApiResult<Json<Team>> {
    Ok(Json(desk::update_team(&ctx, &actor, id, input).await?))
}

#[utoipa::path(get, path = "/api/ticket-types", tag = "desk", params(ListParams), responses((status = 200, description = "A page of ticket types", body = ListBody<TicketType>)))]
async fn list_ticket_types(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<TicketType>>> {
    Ok(Json(desk::ticket_types(&ctx, &actor, &q.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/ticket-types", tag = "desk", request_body = NewTicketType, responses((status = 201, description = "The new ticket type", body = TicketType)))]
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

#[utoipa::path(get, path = "/api/ticket-types/{id}", tag = "desk", params(("id" = u64, Path, description = "The ticket type's id")), responses((status = 200, description = "The ticket type", body = TicketType)))]
async fn get_ticket_type(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketTypeId>,
) -> ApiResult<Json<TicketType>> {
    Ok(Json(desk::ticket_type(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/ticket-types/{id}", tag = "desk", params(("id" = u64, Path, description = "The ticket type's id")), request_body = TicketTypeUpdate, responses((status = 200, description = "The changed ticket type", body = TicketType)))]
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
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TicketQuery {
    status: Option<TicketStatus>,
    /// The ticket of this Datto alert.
    alert_uid: Option<String>,
    #[param(value_type = Option<u64>)]
    customer_id: Option<CustomerId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/tickets", tag = "desk", params(TicketQuery), responses((status = 200, description = "A page of tickets", body = ListBody<Ticket>)))]
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

/// The body of `POST /api/tickets` as documented: a `NewTicket` and the invitation switch.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct NewTicketBody {
    #[schema(inline)]
    ticket: NewTicket,
    /// `true` sends a remote support invitation with the ticket, `false` sends none;
    /// absent or null: as the ticket type says.
    send_remote_invite: Option<bool>,
}

/// `POST /api/tickets`: a `NewTicket`, and `send_remote_invite: true|false` to send (or
/// not) a remote support invitation with it regardless of the ticket type.
#[utoipa::path(post, path = "/api/tickets", tag = "desk", request_body = NewTicketBody, responses((status = 201, description = "The new ticket (with the invitation's action when one went out)", body = Ticket)))]
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

#[utoipa::path(get, path = "/api/tickets/{id}", tag = "desk", params(("id" = u64, Path, description = "The ticket's id")), responses((status = 200, description = "The ticket with its actions", body = Ticket)))]
async fn get_ticket(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<TicketId>) -> ApiResult<Json<Ticket>> {
    Ok(Json(desk::ticket(&ctx, &actor, id).await?))
}

#[utoipa::path(post, path = "/api/tickets/{id}/actions", tag = "desk", params(("id" = u64, Path, description = "The ticket's id")), request_body = NewAction, responses((status = 201, description = "The new action", body = Action)))]
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
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

#[utoipa::path(post, path = "/api/tickets/{id}/close", tag = "desk", params(("id" = u64, Path, description = "The ticket's id")), request_body = Option<NoteBody>, responses((status = 200, description = "The closed ticket; an alert's close goes on to Datto", body = Ticket), (status = 409, description = "ALREADY_CLOSED", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/api/tickets/{id}/reopen", tag = "desk", params(("id" = u64, Path, description = "The ticket's id")), request_body = Option<NoteBody>, responses((status = 200, description = "The reopened ticket", body = Ticket), (status = 409, description = "NOT_CLOSED", body = ErrorBody)))]
async fn reopen_ticket(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketId>,
    OptionalJson(body): OptionalJson<NoteBody>,
) -> ApiResult<Json<Ticket>> {
    Ok(Json(desk::reopen_ticket(&ctx, &actor, id, &body.note).await?))
}

// ---- chats --------------------------------------------------------------------------------

/// `GET /api/chats` query: paging and whether to leave out ended chats.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ChatQuery {
    /// `true`: only chats still open.
    open: Option<bool>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/chats", tag = "desk", params(ChatQuery), responses((status = 200, description = "A page of chats by id, with their messages", body = ListBody<Chat>)))]
async fn list_chats(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ChatQuery>,
) -> ApiResult<Json<ListBody<Chat>>> {
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    Ok(Json(
        desk::chats(&ctx, &actor, q.open.unwrap_or(false), &page).await?.into(),
    ))
}

#[utoipa::path(post, path = "/api/chats", tag = "desk", request_body = NewChat, responses((status = 201, description = "The new chat", body = Chat)))]
async fn create_chat(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewChat>,
) -> ApiResult<Created<Chat>> {
    Ok((StatusCode::CREATED, Json(desk::create_chat(&ctx, &actor, input).await?)))
}

#[utoipa::path(get, path = "/api/chats/{id}", tag = "desk", params(("id" = u64, Path, description = "The chat's id")), responses((status = 200, description = "The chat with its messages", body = Chat)))]
async fn get_chat(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<ChatId>) -> ApiResult<Json<Chat>> {
    Ok(Json(desk::chat(&ctx, &actor, id).await?))
}

#[utoipa::path(post, path = "/api/chats/{id}/messages", tag = "desk", params(("id" = u64, Path, description = "The chat's id")), request_body = NewChatMessage, responses((status = 201, description = "The chat with the new message", body = Chat), (status = 409, description = "CHAT_ENDED", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/api/chats/{id}/end", tag = "desk", params(("id" = u64, Path, description = "The chat's id")), responses((status = 200, description = "The ended chat", body = Chat)))]
async fn end_chat(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<ChatId>) -> ApiResult<Json<Chat>> {
    Ok(Json(desk::end_chat(&ctx, &actor, id).await?))
}

/// `{"ticket_id"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct LinkBody {
    #[schema(value_type = u64)]
    ticket_id: TicketId,
}

#[utoipa::path(post, path = "/api/chats/{id}/link", tag = "desk", params(("id" = u64, Path, description = "The chat's id")), request_body = LinkBody, responses((status = 200, description = "The chat, linked to the ticket", body = Chat)))]
async fn link_chat(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<ChatId>,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<Json<Chat>> {
    Ok(Json(desk::link_chat(&ctx, &actor, id, body.ticket_id).await?))
}
