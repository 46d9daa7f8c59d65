//! Datto RMM setup and lookups: settings (API secret write-only), the webhook setup helper
//! and `state` rotation, the connection test, site mappings and alert lookup.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{audit, Actor, Context, ServiceError, ServiceResult};
use crate::datto::client::DattoBaseUrl;
use crate::datto::connect::API_SECRET;
use crate::datto::{setup, state as webhook_state};
use crate::domain::accounts::AuditAction;
use crate::domain::alerts::{Alert, AlertUid};
use crate::domain::datto::{check_site_uid, AlertMethod, DattoSettings, ImportMode, PriorityMap, SiteMapping};
use crate::domain::desk::Priority;
use crate::domain::ids::{CustomerId, SiteId};
use crate::domain::DomainError;
use crate::ports::SecretString;

/// Whether a write-only secret is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretSet {
    pub set: bool,
}

/// The Datto settings as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DattoConfigView {
    #[serde(flatten)]
    pub settings: DattoSettings,
    pub api_secret: SecretSet,
}

/// The settings a PUT carries; the API secret is write-only.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DattoConfigInput {
    #[serde(default)]
    pub api_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub api_secret: Option<String>,
    #[serde(default)]
    pub alert_method: AlertMethod,
    #[serde(default)]
    pub from_address: Option<String>,
    #[serde(default)]
    pub default_ticket_type_id: Option<u64>,
    #[serde(default)]
    pub import_mode: ImportMode,
    #[serde(default)]
    pub import_customer_id: Option<u64>,
    #[serde(default = "five")]
    pub sync_interval_minutes: u32,
    #[serde(default)]
    pub priority_map: Option<BTreeMap<String, Priority>>,
}

fn five() -> u32 {
    5
}

/// What to paste into Datto's webhook settings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookSetup {
    pub url: String,
    pub content_type: String,
    pub raised_payload: Value,
    pub resolved_payload: Value,
    pub additional_values_example: Value,
    /// The subject line to paste into a monitor's e-mail response (alert method `email`
    /// or `both`): Datto fills the placeholders; `Alert{[alertuid]}` is required.
    pub email_subject: String,
    /// Where such mails go and how to set the subject, in plain words.
    pub email_instructions: String,
    /// Until when the state before the last rotation still works (its grace period).
    pub previous_valid_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The answer of a state rotation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    pub rotated: bool,
    pub previous_valid_until: Option<chrono::DateTime<chrono::Utc>>,
    pub state: SecretSet,
}

/// The answer of a connection test, in plain words.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConnectionTest {
    pub ok: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

async fn view(ctx: &Context, settings: DattoSettings) -> ServiceResult<DattoConfigView> {
    let set = ctx.secrets.get(API_SECRET).await?.is_some();
    Ok(DattoConfigView {
        settings,
        api_secret: SecretSet { set },
    })
}

pub async fn config(ctx: &Context, actor: &Actor) -> ServiceResult<DattoConfigView> {
    actor.require_admin("reading the Datto settings")?;
    let settings = ctx.store.datto_settings().await?;
    view(ctx, settings).await
}

pub async fn save_config(ctx: &Context, actor: &Actor, input: DattoConfigInput) -> ServiceResult<DattoConfigView> {
    actor.require_admin("changing the Datto settings")?;
    let before = serde_json::to_value(ctx.store.datto_settings().await?).expect("serializable");
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
    if let Some(url) = &settings.api_url {
        // The connector applies the strict form (Datto's hosts only) at call time, unless
        // loopback vendors are allowed; a scheme or host no Datto API has is refused here.
        match DattoBaseUrl::parse_allowing_loopback(url) {
            Err(crate::datto::client::Error::BadConfig(why)) => return Err(ServiceError::invalid("api_url", why)),
            Err(e) => return Err(ServiceError::invalid("api_url", e)),
            Ok(_) => {}
        }
    }
    ctx.store.save_datto_settings(&settings).await?;
    let mut fields = audit::changed_fields(&before, &serde_json::to_value(&settings).expect("serializable"));
    if let Some(secret) = blank(input.api_secret) {
        ctx.secrets.put(API_SECRET, &SecretString::new(secret)).await?;
        fields.push("api_secret".into());
    }
    audit::record(ctx, actor, AuditAction::SettingsChanged, "config/datto", fields).await?;
    view(ctx, settings).await
}

/// The webhook URL under `base`, the content type and the payloads with the current
/// `state` (created on first use).
pub async fn webhook_setup(ctx: &Context, actor: &Actor, base: &str) -> ServiceResult<WebhookSetup> {
    actor.require_admin("reading the Datto webhook setup")?;
    let st = webhook_state::load_or_create(ctx.secrets.as_ref()).await?;
    Ok(WebhookSetup {
        url: format!("{base}/datto/webhook"),
        content_type: setup::CONTENT_TYPE.to_string(),
        raised_payload: setup::webhook_payload(&st.current, false),
        resolved_payload: setup::webhook_payload(&st.current, true),
        additional_values_example: setup::additional_values_example(),
        email_subject: setup::EMAIL_SUBJECT.to_string(),
        previous_valid_until: st.previous_valid_until(),
        email_instructions: setup::email_instructions(None),
    })
}

/// A new `state`; the previous one keeps working for 24 hours.
pub async fn rotate_state(ctx: &Context, actor: &Actor) -> ServiceResult<Rotated> {
    actor.require_admin("rotating the webhook state")?;
    let st = webhook_state::rotate(ctx.secrets.as_ref(), ctx.clock.now()).await?;
    tracing::info!("datto webhook state rotated");
    audit::record(
        ctx,
        actor,
        AuditAction::WebhookStateRotated,
        "config/datto/webhook",
        vec![],
    )
    .await?;
    Ok(Rotated {
        rotated: true,
        previous_valid_until: st.previous_valid_until(),
        state: SecretSet { set: true },
    })
}

/// One cheap authenticated call; every outcome is an answer, not an error.
pub async fn test_connection(ctx: &Context, actor: &Actor) -> ServiceResult<ConnectionTest> {
    actor.require_admin("testing the Datto connection")?;
    let refused = |message: String| ConnectionTest {
        ok: false,
        message,
        account: None,
    };
    Ok(match ctx.datto.connect().await {
        Ok(None) => refused("The Datto API is not configured: set api_url, api_key and api_secret.".into()),
        Err(e) => refused(e.message),
        Ok(Some(api)) => match api.check().await {
            Ok(account) => ConnectionTest {
                ok: true,
                message: format!("Connected to Datto RMM account {account}."),
                account: Some(account),
            },
            Err(e) => refused(e.message),
        },
    })
}

pub async fn site_mapping(ctx: &Context, actor: &Actor, datto_site_uid: &str) -> ServiceResult<SiteMapping> {
    actor.require_admin("reading site mappings")?;
    ctx.store
        .site_mapping(datto_site_uid)
        .await?
        .ok_or_else(|| DomainError::not_found("site mapping", datto_site_uid).into())
}

pub async fn map_site(
    ctx: &Context,
    actor: &Actor,
    datto_site_uid: String,
    customer: CustomerId,
    site: SiteId,
) -> ServiceResult<SiteMapping> {
    actor.require_admin("mapping sites")?;
    let m = SiteMapping {
        datto_site_uid: check_site_uid("datto_site_uid", &datto_site_uid)?,
        customer_id: customer.get(),
        site_id: site.get(),
    };
    let saved = ctx.store.put_site_mapping(&m).await?;
    let target = format!("site-mapping/{}", saved.datto_site_uid);
    let fields = vec!["customer_id".into(), "site_id".into()];
    audit::record(ctx, actor, AuditAction::SettingsChanged, target, fields).await?;
    Ok(saved)
}

/// Remove a Datto site's mapping (404 when it has none).
pub async fn unmap_site(ctx: &Context, actor: &Actor, datto_site_uid: &str) -> ServiceResult<SiteMapping> {
    actor.require_admin("changing site mappings")?;
    Ok(ctx.store.delete_site_mapping(datto_site_uid).await?)
}

/// A Datto site as Datto lists it, with the desk site its alerts go to (if mapped).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DattoSiteRow {
    pub uid: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<SiteMapping>,
}

/// The sites Datto lists now (one live call; "Deleted Devices" included, as Datto shows
/// it), each beside its mapping.
pub async fn datto_sites(ctx: &Context, actor: &Actor) -> ServiceResult<Vec<DattoSiteRow>> {
    actor.require_admin("reading the Datto sites")?;
    let api = ctx.datto_api().await?;
    let sites = api.sites().await?;
    let mut mappings = ctx.store.site_mappings().await?;
    Ok(sites
        .into_iter()
        .map(|s| DattoSiteRow {
            mapping: mappings.remove(&s.uid),
            uid: s.uid,
            name: s.name,
        })
        .collect())
}

pub async fn alert(ctx: &Context, _actor: &Actor, uid: &str) -> ServiceResult<Alert> {
    let uid = AlertUid::parse("uid", uid)?;
    let (alert, _) = ctx
        .store
        .alert(&uid)
        .await?
        .ok_or_else(|| DomainError::not_found("alert", &uid))?;
    Ok(alert)
}
