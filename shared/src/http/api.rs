//! The helpdesk API routes of DESIGN §3 for the service-desk core: customers, sites, users,
//! agents, teams, ticket types, tickets with actions, live chats.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ActingAgent, ApiJson, ApiQuery, IdPath, OptionalJson};
use super::AppState;
use crate::domain::chats::{Chat, NewChat, NewChatMessage};
use crate::domain::desk::*;
use crate::domain::tickets::{Action, NewAction, NewTicket, Ticket, TicketStatus};
use crate::ports::Cursor;
use crate::store::{Listing, PageRequest, TicketFilter};

type ApiResult<T> = Result<T, ApiError>;
type Created<T> = (StatusCode, Json<T>);

pub fn routes() -> Router<AppState> {
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

// ---- lists ----------------------------------------------------------------------------

/// `limit` and `cursor` of every list endpoint.
#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn page(&self) -> ApiResult<PageRequest> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_request("limit", "must be between 1 and 1000"));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) => Some(
                decode_cursor(c).ok_or_else(|| ApiError::bad_request("cursor", "is not a cursor this API issued"))?,
            ),
        };
        Ok(PageRequest { limit, cursor })
    }
}

fn decode_cursor(c: &str) -> Option<Cursor> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn encode_cursor(c: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(c).expect("serializable"))
}

/// `{"items": [...], "next"?: cursor}`.
#[derive(Debug, Serialize)]
pub struct ListBody<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T> From<Listing<T>> for ListBody<T> {
    fn from(l: Listing<T>) -> Self {
        ListBody {
            items: l.items,
            next: l.next.as_ref().map(encode_cursor),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct CustomerScoped {
    customer_id: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

impl CustomerScoped {
    fn page(&self) -> ApiResult<PageRequest> {
        ListParams {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .page()
    }
}

// ---- customers, sites, users ------------------------------------------------------------

async fn list_customers(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<Customer>>> {
    Ok(Json(s.store.customers(&q.page()?).await?.into()))
}

async fn create_customer(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<NewCustomer>,
) -> ApiResult<Created<Customer>> {
    Ok((StatusCode::CREATED, Json(s.store.create_customer(input).await?)))
}

async fn get_customer(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Customer>> {
    Ok(Json(s.store.customer(id).await?))
}

async fn update_customer(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<CustomerUpdate>,
) -> ApiResult<Json<Customer>> {
    Ok(Json(s.store.update_customer(id, input).await?))
}

async fn list_sites(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CustomerScoped>,
) -> ApiResult<Json<ListBody<Site>>> {
    Ok(Json(s.store.sites(q.customer_id, &q.page()?).await?.into()))
}

async fn create_site(State(s): State<AppState>, ApiJson(input): ApiJson<NewSite>) -> ApiResult<Created<Site>> {
    Ok((StatusCode::CREATED, Json(s.store.create_site(input).await?)))
}

async fn get_site(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Site>> {
    Ok(Json(s.store.site(id).await?))
}

async fn update_site(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<SiteUpdate>,
) -> ApiResult<Json<Site>> {
    Ok(Json(s.store.update_site(id, input).await?))
}

async fn list_users(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CustomerScoped>,
) -> ApiResult<Json<ListBody<User>>> {
    Ok(Json(s.store.users(q.customer_id, &q.page()?).await?.into()))
}

async fn create_user(State(s): State<AppState>, ApiJson(input): ApiJson<NewUser>) -> ApiResult<Created<User>> {
    Ok((StatusCode::CREATED, Json(s.store.create_user(input).await?)))
}

async fn get_user(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<User>> {
    Ok(Json(s.store.user(id).await?))
}

async fn update_user(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<UserUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(s.store.update_user(id, input).await?))
}

// ---- agents, teams, ticket types ----------------------------------------------------------

async fn list_agents(State(s): State<AppState>, ApiQuery(q): ApiQuery<ListParams>) -> ApiResult<Json<ListBody<Agent>>> {
    Ok(Json(s.store.agents(&q.page()?).await?.into()))
}

async fn create_agent(State(s): State<AppState>, ApiJson(input): ApiJson<NewAgent>) -> ApiResult<Created<Agent>> {
    Ok((StatusCode::CREATED, Json(s.store.create_agent(input).await?)))
}

async fn get_agent(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Agent>> {
    Ok(Json(s.store.agent(id).await?))
}

async fn update_agent(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<AgentUpdate>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(s.store.update_agent(id, input).await?))
}

async fn list_teams(State(s): State<AppState>, ApiQuery(q): ApiQuery<ListParams>) -> ApiResult<Json<ListBody<Team>>> {
    Ok(Json(s.store.teams(&q.page()?).await?.into()))
}

async fn create_team(State(s): State<AppState>, ApiJson(input): ApiJson<NewTeam>) -> ApiResult<Created<Team>> {
    Ok((StatusCode::CREATED, Json(s.store.create_team(input).await?)))
}

async fn get_team(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Team>> {
    Ok(Json(s.store.team(id).await?))
}

async fn update_team(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<TeamUpdate>,
) -> ApiResult<Json<Team>> {
    Ok(Json(s.store.update_team(id, input).await?))
}

async fn list_ticket_types(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<TicketType>>> {
    Ok(Json(s.store.ticket_types(&q.page()?).await?.into()))
}

async fn create_ticket_type(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<NewTicketType>,
) -> ApiResult<Created<TicketType>> {
    Ok((StatusCode::CREATED, Json(s.store.create_ticket_type(input).await?)))
}

async fn get_ticket_type(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<TicketType>> {
    Ok(Json(s.store.ticket_type(id).await?))
}

async fn update_ticket_type(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<TicketTypeUpdate>,
) -> ApiResult<Json<TicketType>> {
    Ok(Json(s.store.update_ticket_type(id, input).await?))
}

// ---- tickets ----------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
struct TicketQuery {
    status: Option<TicketStatus>,
    alert_uid: Option<String>,
    customer_id: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// Check that the acting agent named by `X-Agent-Id` exists.
pub(crate) async fn acting_agent(s: &AppState, agent: ActingAgent) -> ApiResult<Option<u64>> {
    match agent.0 {
        None => Ok(None),
        Some(id) => match s.store.agent(id).await {
            Ok(_) => Ok(Some(id)),
            Err(crate::Error::Domain(crate::domain::DomainError::NotFound { .. })) => Err(ApiError::bad_request(
                "X-Agent-Id",
                format!("agent {id} does not exist"),
            )),
            Err(e) => Err(e.into()),
        },
    }
}

async fn list_tickets(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<TicketQuery>,
) -> ApiResult<Json<ListBody<Ticket>>> {
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    }
    .page()?;
    let filter = TicketFilter {
        status: q.status,
        alert_uid: q.alert_uid,
        customer_id: q.customer_id,
    };
    Ok(Json(s.store.tickets(&filter, &page).await?.into()))
}

/// `POST /api/tickets`. A remote support invitation goes out with the new ticket when its
/// type says so, or when the body asks (`send_remote_invite: true`; `false` overrides the
/// type). A failed invitation never fails the ticket: it is noted as a system action.
async fn create_ticket(
    State(s): State<AppState>,
    agent: ActingAgent,
    ApiJson(raw): ApiJson<serde_json::Value>,
) -> ApiResult<Created<Ticket>> {
    let ask_invite = match raw.get("send_remote_invite") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ApiError::bad_request("send_remote_invite", "must be true or false")),
    };
    let input: NewTicket = super::extract::parse_json(&serde_json::to_vec(&raw).expect("json"))?;
    let acting = acting_agent(&s, agent).await?;
    let ticket = s.store.create_ticket(input).await?;
    let by_type = match ticket.ticket_type_id {
        Some(t) => s.store.ticket_type(t).await?.send_remote_invite_on_create,
        None => false,
    };
    if ask_invite.unwrap_or(by_type) {
        super::api_bt::automatic_invite(&s, ticket.clone(), acting).await;
        return Ok((StatusCode::CREATED, Json(s.store.ticket(ticket.id).await?)));
    }
    Ok((StatusCode::CREATED, Json(ticket)))
}

async fn get_ticket(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Ticket>> {
    Ok(Json(s.store.ticket(id).await?))
}

async fn add_action(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    agent: ActingAgent,
    ApiJson(input): ApiJson<NewAction>,
) -> ApiResult<Created<Action>> {
    let agent = acting_agent(&s, agent).await?;
    Ok((StatusCode::CREATED, Json(s.store.add_action(id, input, agent).await?)))
}

#[derive(Debug, Deserialize, Default)]
struct NoteBody {
    #[serde(default)]
    note: String,
}

async fn close_ticket(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    agent: ActingAgent,
    OptionalJson(body): OptionalJson<NoteBody>,
) -> ApiResult<Json<Ticket>> {
    let agent = acting_agent(&s, agent).await?;
    Ok(Json(
        crate::jobs::close_propagation::close_ticket_as_agent(&s.store, s.queue.as_ref(), id, &body.note, agent)
            .await?,
    ))
}

async fn reopen_ticket(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    agent: ActingAgent,
    OptionalJson(body): OptionalJson<NoteBody>,
) -> ApiResult<Json<Ticket>> {
    let agent = acting_agent(&s, agent).await?;
    Ok(Json(s.store.reopen_ticket(id, &body.note, agent).await?))
}

// ---- chats --------------------------------------------------------------------------------

async fn create_chat(State(s): State<AppState>, ApiJson(input): ApiJson<NewChat>) -> ApiResult<Created<Chat>> {
    Ok((StatusCode::CREATED, Json(s.store.create_chat(input).await?)))
}

async fn get_chat(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Chat>> {
    Ok(Json(s.store.chat(id).await?))
}

async fn post_chat_message(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(input): ApiJson<NewChatMessage>,
) -> ApiResult<Created<Chat>> {
    Ok((StatusCode::CREATED, Json(s.store.post_chat_message(id, input).await?)))
}

async fn end_chat(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<Chat>> {
    Ok(Json(s.store.end_chat(id).await?))
}

#[derive(Debug, Deserialize)]
struct LinkBody {
    ticket_id: u64,
}

async fn link_chat(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<Json<Chat>> {
    Ok(Json(s.store.link_chat(id, body.ticket_id).await?))
}
