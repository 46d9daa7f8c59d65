//! Helpdesk API routes for alert noise control: settings, the ordered routing rules,
//! maintenance windows, and the preview of a sample or recent alert under the rules.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, IdPath};
use crate::domain::noise::{MaintenanceWindow, NoiseSettings, RoutingRule};
use crate::services::noise::{self, PreviewRequest, PreviewView, RuleBody, RuleListView, WindowBody, WindowListView};
use crate::services::{Actor, Context};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(get_settings, put_settings))
        .routes(routes!(list_rules, create_rule))
        .routes(routes!(get_rule, update_rule, delete_rule))
        .routes(routes!(list_windows, create_window))
        .routes(routes!(get_window, update_window, delete_window))
        .routes(routes!(preview))
}

#[utoipa::path(get, path = "/api/noise/settings", tag = "noise", responses((status = 200, description = "The noise settings (defaults when never saved)", body = NoiseSettings)))]
async fn get_settings(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<NoiseSettings>> {
    Ok(Json(noise::settings(&ctx, &actor).await?))
}

#[utoipa::path(put, path = "/api/noise/settings", tag = "noise", request_body = NoiseSettings, responses((status = 200, description = "The saved settings", body = NoiseSettings), (status = 400, description = "A value out of range, naming the field", body = ErrorBody)))]
async fn put_settings(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NoiseSettings>,
) -> ApiResult<Json<NoiseSettings>> {
    Ok(Json(noise::save_settings(&ctx, &actor, input).await?))
}

#[utoipa::path(get, path = "/api/noise/rules", tag = "noise", responses((status = 200, description = "The routing rules in the order they are tried", body = RuleListView)))]
async fn list_rules(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<RuleListView>> {
    Ok(Json(noise::rules(&ctx, &actor).await?))
}

#[utoipa::path(post, path = "/api/noise/rules", tag = "noise", request_body = RuleBody, responses((status = 201, description = "The new rule", body = RoutingRule), (status = 400, description = "A bad field, named", body = ErrorBody)))]
async fn create_rule(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<RuleBody>,
) -> ApiResult<(StatusCode, Json<RoutingRule>)> {
    Ok((
        StatusCode::CREATED,
        Json(noise::create_rule(&ctx, &actor, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/noise/rules/{id}", tag = "noise", params(("id" = u64, Path, description = "Rule id")), responses((status = 200, description = "The rule", body = RoutingRule), (status = 404, description = "No such rule", body = ErrorBody)))]
async fn get_rule(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<Json<RoutingRule>> {
    Ok(Json(noise::rule(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/noise/rules/{id}", tag = "noise", params(("id" = u64, Path, description = "Rule id")), request_body = RuleBody, responses((status = 200, description = "The saved rule", body = RoutingRule), (status = 400, description = "A bad field, named", body = ErrorBody), (status = 404, description = "No such rule", body = ErrorBody)))]
async fn update_rule(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<u64>,
    ApiJson(input): ApiJson<RuleBody>,
) -> ApiResult<Json<RoutingRule>> {
    Ok(Json(noise::update_rule(&ctx, &actor, id, input).await?))
}

#[utoipa::path(delete, path = "/api/noise/rules/{id}", tag = "noise", params(("id" = u64, Path, description = "Rule id")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such rule", body = ErrorBody)))]
async fn delete_rule(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<StatusCode> {
    noise::delete_rule(&ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/noise/windows", tag = "noise", responses((status = 200, description = "The maintenance windows", body = WindowListView)))]
async fn list_windows(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<WindowListView>> {
    Ok(Json(noise::windows(&ctx, &actor).await?))
}

#[utoipa::path(post, path = "/api/noise/windows", tag = "noise", request_body = WindowBody, responses((status = 201, description = "The new window", body = MaintenanceWindow), (status = 400, description = "A bad field, named", body = ErrorBody)))]
async fn create_window(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<WindowBody>,
) -> ApiResult<(StatusCode, Json<MaintenanceWindow>)> {
    Ok((
        StatusCode::CREATED,
        Json(noise::create_window(&ctx, &actor, input).await?),
    ))
}

#[utoipa::path(get, path = "/api/noise/windows/{id}", tag = "noise", params(("id" = u64, Path, description = "Window id")), responses((status = 200, description = "The window", body = MaintenanceWindow), (status = 404, description = "No such window", body = ErrorBody)))]
async fn get_window(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<u64>,
) -> ApiResult<Json<MaintenanceWindow>> {
    Ok(Json(noise::window(&ctx, &actor, id).await?))
}

#[utoipa::path(put, path = "/api/noise/windows/{id}", tag = "noise", params(("id" = u64, Path, description = "Window id")), request_body = WindowBody, responses((status = 200, description = "The saved window", body = MaintenanceWindow), (status = 400, description = "A bad field, named", body = ErrorBody), (status = 404, description = "No such window", body = ErrorBody)))]
async fn update_window(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<u64>,
    ApiJson(input): ApiJson<WindowBody>,
) -> ApiResult<Json<MaintenanceWindow>> {
    Ok(Json(noise::update_window(&ctx, &actor, id, input).await?))
}

#[utoipa::path(delete, path = "/api/noise/windows/{id}", tag = "noise", params(("id" = u64, Path, description = "Window id")), responses((status = 204, description = "Deleted"), (status = 404, description = "No such window", body = ErrorBody)))]
async fn delete_window(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<StatusCode> {
    noise::delete_window(&ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/noise/preview", tag = "noise", request_body = PreviewRequest, responses((status = 200, description = "The rule that matches and the ticket it would make; nothing is stored", body = PreviewView), (status = 400, description = "Neither or both of alert and alert_uid", body = ErrorBody), (status = 404, description = "No such alert", body = ErrorBody)))]
async fn preview(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<PreviewRequest>,
) -> ApiResult<Json<PreviewView>> {
    Ok(Json(noise::preview(&ctx, &actor, input).await?))
}
