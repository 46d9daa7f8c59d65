//! Helpdesk API routes for the Datto integration: settings, the webhook setup helper and
//! state rotation, the connection test, sync runs, site mappings, the request log, alerts.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, IdPath, TextPath};
use super::list::{ListBody, ListParams};
use super::request_host;
use crate::domain::alerts::Alert;
use crate::domain::datto::SiteMapping;
use crate::domain::ids::{CustomerId, SiteId};
use crate::services::datto_setup::{self, ConnectionTest, DattoConfigInput, DattoConfigView, Rotated, WebhookSetup};
use crate::services::{datto_sync, request_log, Actor, Context};
use crate::store::{RequestLogEntry, RequestLogFilter, SyncRun, SyncTrigger};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<Context> {
    Router::new()
        .route("/api/config/datto", get(get_config).put(put_config))
        .route("/api/config/datto/webhook", get(webhook_helper))
        .route("/api/config/datto/webhook/rotate-state", post(rotate_state))
        .route("/api/config/datto/test", post(test_api))
        .route("/api/sync/datto", post(sync_now))
        .route("/api/sync/datto/runs", get(list_runs))
        .route("/api/sync/datto/runs/{id}", get(get_run))
        .route("/api/site-mappings/{datto_site_uid}", get(get_mapping).put(put_mapping))
        .route("/api/request-log", get(request_log))
        .route("/api/alerts/{uid}", get(get_alert))
}

async fn get_config(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<DattoConfigView>> {
    Ok(Json(datto_setup::config(&ctx, &actor).await?))
}

async fn put_config(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<DattoConfigInput>,
) -> ApiResult<Json<DattoConfigView>> {
    Ok(Json(datto_setup::save_config(&ctx, &actor, input).await?))
}

async fn webhook_helper(State(ctx): State<Context>, actor: Actor, headers: HeaderMap) -> ApiResult<Json<WebhookSetup>> {
    let base = ctx.public_base(request_host(&headers));
    Ok(Json(datto_setup::webhook_setup(&ctx, &actor, &base).await?))
}

async fn rotate_state(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<Rotated>> {
    Ok(Json(datto_setup::rotate_state(&ctx, &actor).await?))
}

async fn test_api(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<ConnectionTest>> {
    Ok(Json(datto_setup::test_connection(&ctx, &actor).await?))
}

/// The answer of `POST /api/sync/datto`: the queued run.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunQueued {
    pub run_id: u64,
}

async fn sync_now(State(ctx): State<Context>, actor: Actor) -> ApiResult<(StatusCode, Json<RunQueued>)> {
    let run = datto_sync::request_run(&ctx, &actor, SyncTrigger::Api).await?;
    Ok((StatusCode::ACCEPTED, Json(RunQueued { run_id: run.run_id })))
}

async fn list_runs(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<SyncRun>>> {
    Ok(Json(datto_sync::runs(&ctx, &actor, &q.page()?).await?.into()))
}

async fn get_run(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<Json<SyncRun>> {
    Ok(Json(datto_sync::run(&ctx, &actor, id).await?))
}

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

/// `source`, `outcome`, `limit`, `cursor`.
#[derive(Debug, Deserialize, Default)]
struct LogQuery {
    source: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

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

async fn get_alert(State(ctx): State<Context>, actor: Actor, TextPath(uid): TextPath) -> ApiResult<Json<Alert>> {
    Ok(Json(datto_setup::alert(&ctx, &actor, &uid).await?))
}
