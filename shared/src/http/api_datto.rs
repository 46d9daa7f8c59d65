//! Helpdesk API routes for the Datto integration: settings, the webhook setup helper and
//! state rotation, the connection test, sync runs, site mappings, the request log, alerts.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, IdPath, TextPath};
use super::list::{ListBody, ListParams};
use super::request_host;
use crate::domain::alerts::Alert;
use crate::domain::datto::SiteMapping;
use crate::domain::ids::{CustomerId, SiteId};
use crate::services::datto_setup::{
    self, ConnectionTest, DattoConfigInput, DattoConfigView, DattoSiteRow, Rotated, WebhookSetup,
};
use crate::services::{datto_sync, request_log, Actor, Context};
use crate::store::{RequestLogEntry, RequestLogFilter, SyncRun, SyncTrigger};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(get_datto_config, put_datto_config))
        .routes(routes!(webhook_helper))
        .routes(routes!(rotate_state))
        .routes(routes!(test_api))
        .routes(routes!(sync_now))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(get_mapping, put_mapping, delete_mapping))
        .routes(routes!(datto_sites))
        .routes(routes!(request_log))
        .routes(routes!(get_alert))
}

#[utoipa::path(get, path = "/api/config/datto", tag = "datto", responses((status = 200, description = "The settings; the API secret shows only whether it is set", body = DattoConfigView)))]
async fn get_datto_config(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<DattoConfigView>> {
    Ok(Json(datto_setup::config(&ctx, &actor).await?))
}

#[utoipa::path(put, path = "/api/config/datto", tag = "datto", request_body = DattoConfigInput, responses((status = 200, description = "The saved settings", body = DattoConfigView)))]
async fn put_datto_config(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<DattoConfigInput>,
) -> ApiResult<Json<DattoConfigView>> {
    Ok(Json(datto_setup::save_config(&ctx, &actor, input).await?))
}

#[utoipa::path(get, path = "/api/config/datto/webhook", tag = "datto", responses((status = 200, description = "What to paste into Datto, with the current state", body = WebhookSetup)))]
async fn webhook_helper(State(ctx): State<Context>, actor: Actor, headers: HeaderMap) -> ApiResult<Json<WebhookSetup>> {
    let base = ctx.public_base(request_host(&headers));
    Ok(Json(datto_setup::webhook_setup(&ctx, &actor, &base).await?))
}

#[utoipa::path(post, path = "/api/config/datto/webhook/rotate-state", tag = "datto", responses((status = 200, description = "A new state; the previous one works for 24 hours", body = Rotated)))]
async fn rotate_state(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<Rotated>> {
    Ok(Json(datto_setup::rotate_state(&ctx, &actor).await?))
}

#[utoipa::path(post, path = "/api/config/datto/test", tag = "datto", responses((status = 200, description = "The outcome in plain words (also when it failed)", body = ConnectionTest)))]
async fn test_api(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<ConnectionTest>> {
    Ok(Json(datto_setup::test_connection(&ctx, &actor).await?))
}

/// The answer of `POST /api/sync/datto`: the queued run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunQueued {
    pub run_id: u64,
}

#[utoipa::path(post, path = "/api/sync/datto", tag = "datto", responses((status = 202, description = "The run is queued; see GET /api/sync/datto/runs/{id}", body = RunQueued), (status = 409, description = "DATTO_API_NOT_CONFIGURED", body = ErrorBody), (status = 502, description = "DATTO_UNAVAILABLE: the API settings could not be used", body = ErrorBody)))]
async fn sync_now(State(ctx): State<Context>, actor: Actor) -> ApiResult<(StatusCode, Json<RunQueued>)> {
    let run = datto_sync::request_run(&ctx, &actor, SyncTrigger::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(RunQueued { run_id: run.run_id })))
}

#[utoipa::path(get, path = "/api/sync/datto/runs", tag = "datto", params(ListParams), responses((status = 200, description = "The most recent runs first", body = ListBody<SyncRun>)))]
async fn list_runs(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<SyncRun>>> {
    Ok(Json(datto_sync::runs(&ctx, &actor, &q.page()?).await?.into()))
}

#[utoipa::path(get, path = "/api/sync/datto/runs/{id}", tag = "datto", params(("id" = u64, Path, description = "The run_id")), responses((status = 200, description = "The run: state, counts, errors", body = SyncRun)))]
async fn get_run(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<Json<SyncRun>> {
    Ok(Json(datto_sync::run(&ctx, &actor, id).await?))
}

#[utoipa::path(get, path = "/api/site-mappings/{datto_site_uid}", tag = "datto", params(("datto_site_uid" = String, Path, description = "The Datto site's uid")), responses((status = 200, description = "The mapping", body = SiteMapping)))]
async fn get_mapping(
    State(ctx): State<Context>,
    actor: Actor,
    TextPath(uid): TextPath,
) -> ApiResult<Json<SiteMapping>> {
    Ok(Json(datto_setup::site_mapping(&ctx, &actor, &uid).await?))
}

/// `{"customer_id", "site_id"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct MappingInput {
    #[schema(value_type = u64)]
    customer_id: CustomerId,
    #[schema(value_type = u64)]
    site_id: SiteId,
}

#[utoipa::path(put, path = "/api/site-mappings/{datto_site_uid}", tag = "datto", params(("datto_site_uid" = String, Path, description = "The Datto site's uid")), request_body = MappingInput, responses((status = 200, description = "The saved mapping", body = SiteMapping)))]
async fn put_mapping(
    State(ctx): State<Context>,
    actor: Actor,
    TextPath(uid): TextPath,
    ApiJson(input): ApiJson<MappingInput>,
) -> ApiResult<Json<SiteMapping>> {
    Ok(Json(
        datto_setup::map_site(&ctx, &actor, uid, input.customer_id, input.site_id).await?,
    ))
}

#[utoipa::path(delete, path = "/api/site-mappings/{datto_site_uid}", tag = "datto", params(("datto_site_uid" = String, Path, description = "The Datto site's uid")), responses((status = 200, description = "The mapping that was removed", body = SiteMapping)))]
async fn delete_mapping(
    State(ctx): State<Context>,
    actor: Actor,
    TextPath(uid): TextPath,
) -> ApiResult<Json<SiteMapping>> {
    Ok(Json(datto_setup::unmap_site(&ctx, &actor, &uid).await?))
}

/// `{"items": [...]}`: every site Datto lists.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DattoSites {
    pub items: Vec<DattoSiteRow>,
}

#[utoipa::path(get, path = "/api/datto/sites", tag = "datto", responses((status = 200, description = "The sites Datto lists now, each with its mapping", body = DattoSites), (status = 409, description = "DATTO_API_NOT_CONFIGURED", body = ErrorBody), (status = 502, description = "DATTO_UNAVAILABLE", body = ErrorBody)))]
async fn datto_sites(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<DattoSites>> {
    Ok(Json(DattoSites {
        items: datto_setup::datto_sites(&ctx, &actor).await?,
    }))
}

/// `source`, `outcome`, `limit`, `cursor`.
#[derive(Debug, Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// `datto-webhook`, `datto-mail`, `beyondtrust-event`, `session-import`.
    source: Option<String>,
    /// e.g. `created`, `duplicate`, `rejected`, `unauthorized`.
    outcome: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/request-log", tag = "operations", params(LogQuery), responses((status = 200, description = "Intake requests, newest first", body = ListBody<RequestLogEntry>)))]
async fn request_log(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<ListBody<RequestLogEntry>>> {
    let page = ListParams {
        limit: q.limit,
        cursor: q.cursor,
    }
    .page()?;
    let filter = RequestLogFilter {
        source: q.source,
        outcome: q.outcome,
    };
    Ok(Json(request_log::list(&ctx, &actor, &filter, &page).await?.into()))
}

#[utoipa::path(get, path = "/api/alerts/{uid}", tag = "datto", params(("uid" = String, Path, description = "The Datto alert uid")), responses((status = 200, description = "The alert: state, sources, ticket, propagation, timeline", body = Alert)))]
async fn get_alert(State(ctx): State<Context>, actor: Actor, TextPath(uid): TextPath) -> ApiResult<Json<Alert>> {
    Ok(Json(datto_setup::alert(&ctx, &actor, &uid).await?))
}
