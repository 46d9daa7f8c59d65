//! Helpdesk API routes for BeyondTrust Remote Support: settings (client secret write-only),
//! Test Configuration, the outbound-event URL, team import, invitations from tickets and
//! chats, stored remote sessions and manual linking, Jump links for assets, and the
//! lost-end-event sweep's runs.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api_datto::RunQueued;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, IdPath, OptionalJson, TextPath};
use super::list::{ListBody, ListParams};
use super::request_host;
use crate::domain::bt::RemoteInvite;
use crate::domain::ids::{ChatId, RemoteInviteId, RemoteSessionId, TicketId};
use crate::domain::remote::RemoteSession;
use crate::services::beyondtrust_setup::{
    self, BeyondTrustConfigInput, BeyondTrustConfigView, ConfigCheck, TeamImport, UrlAnswer,
};
use crate::services::invitations::{self, Target, Via};
use crate::services::{beyondtrust_sync, remote_sessions, Actor, Context};
use crate::store::{RemoteSessionFilter, SyncRun, SyncTrigger};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(get_beyondtrust_config, put_beyondtrust_config))
        .routes(routes!(test_beyondtrust_config))
        .routes(routes!(event_url))
        .routes(routes!(import_teams))
        .routes(routes!(ticket_invite))
        .routes(routes!(chat_invite))
        .routes(routes!(list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(link_session))
        .routes(routes!(jump_url))
        .routes(routes!(resend_invite))
        .routes(routes!(sweep_now))
        .routes(routes!(list_sweeps))
        .routes(routes!(get_sweep))
}

#[utoipa::path(post, path = "/api/remote-invites/{id}/resend", tag = "beyondtrust", params(("id" = u64, Path, description = "The invite's id")), responses((status = 200, description = "The invite: email_failed cleared when the mail went, or holding the new reason (the key stays valid either way)", body = RemoteInvite), (status = 400, description = "VALIDATION: a chat invitation, or one never e-mailed", body = ErrorBody)))]
async fn resend_invite(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<RemoteInviteId>,
) -> ApiResult<Json<RemoteInvite>> {
    Ok(Json(invitations::resend(&ctx, &actor, id).await?))
}

// ---- the lost-end-event sweep -------------------------------------------------------------

#[utoipa::path(post, path = "/api/sync/beyondtrust", tag = "beyondtrust", responses((status = 202, description = "The lost-end-event sweep is queued; see GET /api/sync/beyondtrust/runs/{id}", body = RunQueued), (status = 409, description = "BEYONDTRUST_NOT_CONFIGURED", body = ErrorBody)))]
async fn sweep_now(State(ctx): State<Context>, actor: Actor) -> ApiResult<(StatusCode, Json<RunQueued>)> {
    let run = beyondtrust_sync::request_run(&ctx, &actor, SyncTrigger::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(RunQueued { run_id: run.run_id })))
}

#[utoipa::path(get, path = "/api/sync/beyondtrust/runs", tag = "beyondtrust", params(ListParams), responses((status = 200, description = "The most recent sweeps first", body = ListBody<SyncRun>)))]
async fn list_sweeps(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<SyncRun>>> {
    Ok(Json(beyondtrust_sync::runs(&ctx, &actor, &q.page()?).await?.into()))
}

#[utoipa::path(get, path = "/api/sync/beyondtrust/runs/{id}", tag = "beyondtrust", params(("id" = u64, Path, description = "The run_id")), responses((status = 200, description = "The sweep: state, sessions listed, imports queued, errors", body = SyncRun)))]
async fn get_sweep(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<Json<SyncRun>> {
    Ok(Json(beyondtrust_sync::run(&ctx, &actor, id).await?))
}

// ---- settings ---------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/config/beyondtrust", tag = "beyondtrust", responses((status = 200, description = "The settings; the client secret shows only whether it is set", body = BeyondTrustConfigView)))]
async fn get_beyondtrust_config(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<BeyondTrustConfigView>> {
    Ok(Json(beyondtrust_setup::config(&ctx, &actor).await?))
}

#[utoipa::path(put, path = "/api/config/beyondtrust", tag = "beyondtrust", request_body = BeyondTrustConfigInput, responses((status = 200, description = "The saved settings", body = BeyondTrustConfigView)))]
async fn put_beyondtrust_config(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<BeyondTrustConfigInput>,
) -> ApiResult<Json<BeyondTrustConfigView>> {
    Ok(Json(beyondtrust_setup::save_config(&ctx, &actor, input).await?))
}

#[utoipa::path(post, path = "/api/config/beyondtrust/test", tag = "beyondtrust", responses((status = 200, description = "The appliance's checks in plain words (also when they failed)", body = ConfigCheck)))]
async fn test_beyondtrust_config(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<ConfigCheck>> {
    Ok(Json(beyondtrust_setup::test_config(&ctx, &actor).await?))
}

#[utoipa::path(get, path = "/api/config/beyondtrust/event-url", tag = "beyondtrust", responses((status = 200, description = "The outbound event URL to enter in BeyondTrust", body = UrlAnswer)))]
async fn event_url(State(ctx): State<Context>, actor: Actor, headers: HeaderMap) -> ApiResult<Json<UrlAnswer>> {
    let base = ctx.public_base(request_host(&headers));
    Ok(Json(beyondtrust_setup::event_url(&ctx, &actor, &base).await?))
}

#[utoipa::path(post, path = "/api/teams/import", tag = "beyondtrust", responses((status = 200, description = "What changed, and the teams afterwards", body = TeamImport), (status = 409, description = "BEYONDTRUST_NOT_CONFIGURED", body = ErrorBody), (status = 502, description = "BEYONDTRUST_UNAVAILABLE", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/api/tickets/{id}/remote-invites", tag = "beyondtrust", params(("id" = u64, Path, description = "The ticket's id")), request_body = Option<InviteBody>, responses((status = 201, description = "The invitation, e-mailed to the ticket's user (or `email`); when the mail failed after BeyondTrust issued the key, still 201 with `email_failed` (to, reason): the code and link stand, resend with POST /api/remote-invites/{id}/resend", body = RemoteInvite), (status = 403, description = "QUICK_INVITES_DISABLED or INVITES_FOR_OTHERS_DISABLED", body = ErrorBody), (status = 409, description = "TECHUNAVAILABLE or BEYONDTRUST_NOT_CONFIGURED", body = ErrorBody), (status = 502, description = "BEYONDTRUST_UNAVAILABLE", body = ErrorBody)))]
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

#[utoipa::path(post, path = "/api/chats/{id}/remote-invites", tag = "beyondtrust", params(("id" = u64, Path, description = "The chat's id")), request_body = Option<InviteBody>, responses((status = 201, description = "The invitation, posted into the chat", body = RemoteInvite), (status = 403, description = "INVITES_FOR_OTHERS_DISABLED", body = ErrorBody), (status = 409, description = "TECHUNAVAILABLE, CHAT_ENDED or BEYONDTRUST_NOT_CONFIGURED", body = ErrorBody), (status = 502, description = "BEYONDTRUST_UNAVAILABLE", body = ErrorBody)))]
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
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SessionQuery {
    /// `false`: the sessions parked for manual linking.
    linked: Option<bool>,
    /// Text to look for in the session's name, lsid or transcript.
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/remote-sessions", tag = "beyondtrust", params(SessionQuery), responses((status = 200, description = "A page of imported sessions", body = ListBody<RemoteSession>)))]
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

#[utoipa::path(get, path = "/api/remote-sessions/{id}", tag = "beyondtrust", params(("id" = u64, Path, description = "The remote session's id")), responses((status = 200, description = "The session with its transcript", body = RemoteSession)))]
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

#[utoipa::path(post, path = "/api/tickets/{id}/remote-sessions", tag = "beyondtrust", params(("id" = u64, Path, description = "The ticket's id")), request_body = LinkSessionBody, responses((status = 201, description = "The session, now linked; the ticket got its action", body = RemoteSession), (status = 409, description = "ALREADY_LINKED", body = ErrorBody)))]
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

#[utoipa::path(get, path = "/api/assets/{inventory_number}/beyondtrust-jump-url", tag = "beyondtrust", params(("inventory_number" = String, Path, description = "The asset's inventory number")), responses((status = 200, description = "A rep-console link to the asset's pinned Jump Client", body = UrlAnswer), (status = 409, description = "BEYONDTRUST_NOT_CONFIGURED", body = ErrorBody)))]
async fn jump_url(
    State(ctx): State<Context>,
    actor: Actor,
    TextPath(inventory): TextPath,
) -> ApiResult<Json<UrlAnswer>> {
    Ok(Json(beyondtrust_setup::jump_url(&ctx, &actor, &inventory).await?))
}
