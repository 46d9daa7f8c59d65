//! Helpdesk API routes for the Datto integration: settings, the webhook setup helper and
//! state rotation, site mappings, the intake request log and alert lookup.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{ListBody, ListParams};
use super::error::ApiError;
use super::extract::{ApiJson, ApiQuery, TextPath};
use super::AppState;
use crate::datto::{setup, state as webhook_state};
use crate::domain::alerts::AlertUid;
use crate::domain::datto::{AlertMethod, DattoSettings, ImportMode, PriorityMap, SiteMapping};
use crate::domain::desk::Priority;
use crate::domain::DomainError;
use crate::ports::SecretString;
use crate::store::{RequestLogEntry, RequestLogFilter};

use crate::datto::connect::API_SECRET;

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/config/datto", get(get_config).put(put_config))
        .route("/api/config/datto/webhook", get(webhook_helper))
        .route("/api/config/datto/webhook/rotate-state", post(rotate_state))
        .route("/api/config/datto/test", post(test_api))
        .route("/api/sync/datto", post(sync_now))
        .route("/api/site-mappings/{datto_site_uid}", get(get_mapping).put(put_mapping))
        .route("/api/request-log", get(request_log))
        .route("/api/alerts/{uid}", get(get_alert))
}

async fn config_body(s: &AppState, settings: &DattoSettings) -> ApiResult<Value> {
    let secret_set = s.secrets.get(API_SECRET).await.map_err(crate::Error::from)?.is_some();
    let mut v = serde_json::to_value(settings).expect("serializable");
    v["api_secret"] = json!({"set": secret_set});
    Ok(v)
}

async fn get_config(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let settings = s.store.datto_settings().await?;
    Ok(Json(config_body(&s, &settings).await?))
}

/// The settings a PUT carries; the API secret is write-only.
#[derive(Debug, Deserialize)]
struct DattoConfigInput {
    #[serde(default)]
    api_url: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    api_secret: Option<String>,
    #[serde(default)]
    alert_method: AlertMethod,
    #[serde(default)]
    from_address: Option<String>,
    #[serde(default)]
    default_ticket_type_id: Option<u64>,
    #[serde(default)]
    import_mode: ImportMode,
    #[serde(default)]
    import_customer_id: Option<u64>,
    #[serde(default = "five")]
    sync_interval_minutes: u32,
    #[serde(default)]
    priority_map: Option<BTreeMap<String, Priority>>,
}

fn five() -> u32 {
    5
}

async fn put_config(State(s): State<AppState>, ApiJson(input): ApiJson<DattoConfigInput>) -> ApiResult<Json<Value>> {
    let blank = |o: Option<String>| o.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let settings = DattoSettings {
        api_url: blank(input.api_url),
        api_key: blank(input.api_key),
        alert_method: input.alert_method,
        from_address: blank(input.from_address),
        default_ticket_type_id: input.default_ticket_type_id,
        import_mode: input.import_mode,
        import_customer_id: input.import_customer_id,
        sync_interval_minutes: input.sync_interval_minutes,
        priority_map: input.priority_map.map(PriorityMap).unwrap_or_default(),
    };
    s.store.save_datto_settings(&settings).await?;
    if let Some(secret) = blank(input.api_secret) {
        s.secrets
            .put(API_SECRET, &SecretString::new(secret))
            .await
            .map_err(crate::Error::from)?;
    }
    Ok(Json(config_body(&s, &settings).await?))
}

async fn webhook_helper(State(s): State<AppState>, headers: axum::http::HeaderMap) -> ApiResult<Json<Value>> {
    let st = webhook_state::load_or_create(s.secrets.as_ref())
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(json!({
        "url": format!("{}/datto/webhook", super::public_base(&s.config, &headers)),
        "content_type": setup::CONTENT_TYPE,
        "raised_payload": setup::webhook_payload(&st.current, false),
        "resolved_payload": setup::webhook_payload(&st.current, true),
        "additional_values_example": setup::additional_values_example(),
    })))
}

async fn rotate_state(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let st = webhook_state::rotate(s.secrets.as_ref(), s.clock.now())
        .await
        .map_err(crate::Error::from)?;
    tracing::info!("datto webhook state rotated");
    Ok(Json(json!({
        "rotated": true,
        "previous_valid_until": st.previous_valid_until(),
        "state": {"set": true},
    })))
}

async fn get_mapping(State(s): State<AppState>, TextPath(uid): TextPath) -> ApiResult<Json<SiteMapping>> {
    s.store
        .site_mapping(&uid)
        .await?
        .map(Json)
        .ok_or_else(|| DomainError::not_found("site mapping", &uid).into())
}

#[derive(Debug, Deserialize)]
struct MappingInput {
    customer_id: u64,
    site_id: u64,
}

async fn put_mapping(
    State(s): State<AppState>,
    TextPath(uid): TextPath,
    ApiJson(input): ApiJson<MappingInput>,
) -> ApiResult<Json<SiteMapping>> {
    let m = SiteMapping {
        datto_site_uid: uid,
        customer_id: input.customer_id,
        site_id: input.site_id,
    };
    Ok(Json(s.store.put_site_mapping(&m).await?))
}

#[derive(Debug, Deserialize, Default)]
struct LogQuery {
    source: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn request_log(
    State(s): State<AppState>,
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
    Ok(Json(s.store.request_log(&filter, &page).await?.into()))
}

async fn get_alert(State(s): State<AppState>, TextPath(uid): TextPath) -> ApiResult<Json<Value>> {
    let uid = AlertUid::parse("uid", &uid)?;
    let (alert, _) = s
        .store
        .alert(&uid)
        .await?
        .ok_or_else(|| DomainError::not_found("alert", &uid))?;
    Ok(Json(serde_json::to_value(alert).expect("serializable")))
}

async fn test_api(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let answer = match s.datto.connect().await {
        Ok(None) => {
            json!({"ok": false, "message": "The Datto API is not configured: set api_url, api_key and api_secret."})
        }
        Err(e) => json!({"ok": false, "message": e.message}),
        Ok(Some(api)) => match api.check().await {
            Ok(account) => {
                json!({"ok": true, "message": format!("Connected to Datto RMM account {account}."), "account": account})
            }
            Err(e) => json!({"ok": false, "message": e.message}),
        },
    };
    Ok(Json(answer))
}

async fn sync_now(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let api = match s.datto.connect().await {
        Ok(Some(api)) => api,
        Ok(None) => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "DATTO_API_NOT_CONFIGURED",
                "set api_url, api_key and api_secret before syncing",
            ))
        }
        Err(e) => {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "DATTO_UNAVAILABLE",
                e.message,
            ))
        }
    };
    let holder = format!("api-{}", uuid::Uuid::new_v4().simple());
    let summary = crate::jobs::alert_sync::run_once(&s.store, s.queue.as_ref(), api.as_ref(), &holder).await?;
    Ok(Json(serde_json::to_value(summary).expect("serializable")))
}
