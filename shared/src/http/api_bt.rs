//! Helpdesk API routes for BeyondTrust Remote Support: settings (client secret write-only),
//! Test Configuration, the outbound-event URL, team import, invitations from tickets and
//! chats, stored remote sessions and manual linking, and Jump links for assets.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, IdPath, OptionalJson, TextPath};
use super::list::{ListBody, ListParams};
use super::request_host;
use crate::domain::bt::RemoteInvite;
use crate::domain::ids::{ChatId, RemoteSessionId, TicketId};
use crate::domain::remote::RemoteSession;
use crate::services::beyondtrust_setup::{
    self, BeyondTrustConfigInput, BeyondTrustConfigView, ConfigCheck, TeamImport, UrlAnswer,
};
use crate::services::invitations::{self, Target, Via};
use crate::services::{remote_sessions, Actor, Context};
use crate::store::RemoteSessionFilter;

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<Context> {
    Router::new()
        .route("/api/config/beyondtrust", get(get_config).put(put_config))
        .route("/api/config/beyondtrust/test", post(test_config))
        .route("/api/config/beyondtrust/event-url", get(event_url))
        .route("/api/teams/import", post(import_teams))
        .route("/api/tickets/{id}/remote-invites", post(ticket_invite))
        .route("/api/chats/{id}/remote-invites", post(chat_invite))
        .route("/api/remote-sessions", get(list_sessions))
        .route("/api/remote-sessions/{id}", get(get_session))
        .route("/api/tickets/{id}/remote-sessions", post(link_session))
        .route("/api/assets/{inventory_number}/beyondtrust-jump-url", get(jump_url))
}

// ---- settings ---------------------------------------------------------------------------

async fn get_config(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<BeyondTrustConfigView>> {
    Ok(Json(beyondtrust_setup::config(&ctx, &actor).await?))
}

async fn put_config(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<BeyondTrustConfigInput>,
) -> ApiResult<Json<BeyondTrustConfigView>> {
    Ok(Json(beyondtrust_setup::save_config(&ctx, &actor, input).await?))
}

async fn test_config(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<ConfigCheck>> {
    Ok(Json(beyondtrust_setup::test_config(&ctx, &actor).await?))
}

async fn event_url(State(ctx): State<Context>, actor: Actor, headers: HeaderMap) -> ApiResult<Json<UrlAnswer>> {
    let base = ctx.public_base(request_host(&headers));
    Ok(Json(beyondtrust_setup::event_url(&ctx, &actor, &base).await?))
}

async fn import_teams(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<TeamImport>> {
    Ok(Json(beyondtrust_setup::import_teams(&ctx, &actor).await?))
}

// ---- invitations ------------------------------------------------------------------------

/// `{"target"?: "agent:<id>"|"team:<id>", "email"?, "via"?: "quick"|"action"}`.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
pub struct InviteBody {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    via: Option<String>,
}

async fn ticket_invite(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<TicketId>,
    OptionalJson(body): OptionalJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<RemoteInvite>)> {
    let via = Via::parse(body.via.as_deref())?;
    let target = Target::parse(body.target.as_deref())?;
    let invite = invitations::invite_for_ticket(&ctx, &actor, id, target, body.email, via).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

async fn chat_invite(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<ChatId>,
    OptionalJson(body): OptionalJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<RemoteInvite>)> {
    let target = Target::parse(body.target.as_deref())?;
    let invite = invitations::invite_for_chat(&ctx, &actor, id, target).await?;
    Ok((StatusCode::CREATED, Json(invite)))
}

// ---- remote sessions --------------------------------------------------------------------

/// `linked`, `q`, `limit`, `cursor`.
#[derive(Debug, Deserialize, Default)]
struct SessionQuery {
    linked: Option<bool>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_sessions(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Json<ListBody<RemoteSession>>> {
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = RemoteSessionFilter {
        linked: q.linked,
        q: q.q,
    };
    Ok(Json(remote_sessions::list(&ctx, &actor, &filter, &page).await?.into()))
}

async fn get_session(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<RemoteSessionId>,
) -> ApiResult<Json<RemoteSession>> {
    Ok(Json(remote_sessions::get(&ctx, &actor, id).await?))
}

/// `{"session_id"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LinkSessionBody {
    #[schema(value_type = u64)]
    session_id: RemoteSessionId,
}

async fn link_session(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(ticket): IdPath<TicketId>,
    ApiJson(body): ApiJson<LinkSessionBody>,
) -> ApiResult<(StatusCode, Json<RemoteSession>)> {
    let linked = remote_sessions::link_to_ticket(&ctx, &actor, ticket, body.session_id).await?;
    Ok((StatusCode::CREATED, Json(linked)))
}

// ---- jump links -------------------------------------------------------------------------

async fn jump_url(
    State(ctx): State<Context>,
    actor: Actor,
    TextPath(inventory): TextPath,
) -> ApiResult<Json<UrlAnswer>> {
    Ok(Json(beyondtrust_setup::jump_url(&ctx, &actor, &inventory).await?))
}
