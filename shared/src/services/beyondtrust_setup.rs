//! BeyondTrust setup: settings (client secret write-only), Test Configuration, the
//! outbound-event URL, support team import and Jump links for assets.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::datto_setup::SecretSet;
use super::{audit, Actor, Context, ServiceError, ServiceResult, Vendor};
use crate::beyondtrust::connect::{check_base_url, event_token, CLIENT_SECRET};
use crate::domain::accounts::AuditAction;
use crate::domain::bt::{BeyondTrustSettings, InviteTemplates};
use crate::domain::desk::{NewTeam, Team, TeamUpdate};
use crate::ports::SecretString;

/// The BeyondTrust settings as the API shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BeyondTrustConfigView {
    #[serde(flatten)]
    pub settings: BeyondTrustSettings,
    pub client_secret: SecretSet,
}

/// The settings a PUT carries.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct BeyondTrustConfigInput {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    /// A string sets the secret; absent, null or `{"set": true}` keeps it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub client_secret: Option<Value>,
    #[serde(default)]
    pub default_user_id: Option<u64>,
    #[serde(default)]
    pub allow_invites_for_others: bool,
    #[serde(default)]
    pub disable_quick_invites: bool,
    #[serde(default)]
    pub only_generated_here: bool,
    #[serde(default)]
    pub fallback_to_default_team: bool,
    #[serde(default)]
    pub templates: InviteTemplates,
    #[serde(default)]
    pub email_from: Option<String>,
}

/// The answer of Test Configuration: the appliance's checks in plain words.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ConfigCheck {
    pub ok: bool,
    pub message: String,
    /// The individual checks, when the appliance could be reached.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub details: Value,
}

/// A URL to show or open.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UrlAnswer {
    pub url: String,
    /// What to know about the URL, in plain words (the event URL: what a wrong one does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The event URL's note on the setup screen.
pub const EVENT_URL_NOTE: &str = "Enter this URL as an HTTP recipient of outbound events (Support Session End). \
     If the URL is wrong, every event is refused with 401 and the appliance holds back every later event \
     until this URL is fixed; nothing is lost meanwhile. Refused events show in the request log \
     (GET /api/request-log?source=beyondtrust-event) as unauthorized.";

/// What a team import changed, and the teams afterwards.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TeamImport {
    pub created: u32,
    pub updated: u32,
    pub items: Vec<Team>,
}

async fn view(ctx: &Context, settings: BeyondTrustSettings) -> ServiceResult<BeyondTrustConfigView> {
    let set = ctx.secrets.get(CLIENT_SECRET).await?.is_some();
    Ok(BeyondTrustConfigView {
        settings,
        client_secret: SecretSet { set },
    })
}

pub async fn config(ctx: &Context, actor: &Actor) -> ServiceResult<BeyondTrustConfigView> {
    actor.require_admin("reading the BeyondTrust settings")?;
    let settings = ctx.store.bt_settings().await?;
    view(ctx, settings).await
}

pub async fn save_config(
    ctx: &Context,
    actor: &Actor,
    input: BeyondTrustConfigInput,
) -> ServiceResult<BeyondTrustConfigView> {
    actor.require_admin("changing the BeyondTrust settings")?;
    let before = serde_json::to_value(ctx.store.bt_settings().await?).expect("serializable");
    let blank = |o: Option<String>| o.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let base_url = match blank(input.base_url) {
        Some(u) => Some(
            check_base_url(&u, ctx.beyondtrust.allows_loopback()).map_err(|m| ServiceError::invalid("base_url", m))?,
        ),
        None => None,
    };
    let secret = match input.client_secret {
        None | Some(Value::Null) | Some(Value::Object(_)) => None,
        Some(Value::String(v)) => blank(Some(v)),
        Some(_) => return Err(ServiceError::invalid("client_secret", "must be a string")),
    };
    let mut settings = BeyondTrustSettings {
        base_url,
        client_id: blank(input.client_id),
        default_user_id: input.default_user_id,
        allow_invites_for_others: input.allow_invites_for_others,
        disable_quick_invites: input.disable_quick_invites,
        only_generated_here: input.only_generated_here,
        fallback_to_default_team: input.fallback_to_default_team,
        templates: input.templates,
        ..BeyondTrustSettings::default()
    };
    if let Some(from) = blank(input.email_from) {
        settings.email_from = from;
    }
    ctx.store.save_bt_settings(&settings).await?;
    let mut fields = audit::changed_fields(&before, &serde_json::to_value(&settings).expect("serializable"));
    if let Some(secret) = secret {
        ctx.secrets.put(CLIENT_SECRET, &SecretString::new(secret)).await?;
        ctx.beyondtrust.forget_token().await;
        fields.push("client_secret".into());
    }
    audit::record(ctx, actor, AuditAction::SettingsChanged, "config/beyondtrust", fields).await?;
    view(ctx, settings).await
}

/// Test Configuration: every outcome is an answer, not an error.
pub async fn test_config(ctx: &Context, actor: &Actor) -> ServiceResult<ConfigCheck> {
    actor.require_admin("testing the BeyondTrust settings")?;
    let refused = |message: String| ConfigCheck {
        ok: false,
        message,
        details: Value::Object(Default::default()),
    };
    let c = match ctx.beyondtrust.connect().await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Ok(refused(
                "BeyondTrust is not configured: set base_url, client_id and client_secret.".into(),
            ))
        }
        Err(e) => return Ok(refused(e.to_string())),
    };
    let check = c.check_configuration().await;
    let message = if check.ok {
        format!(
            "Connected to BeyondTrust (API version {}); the API account has full command access and support session reports.",
            check.api_version.as_deref().unwrap_or("unknown")
        )
    } else {
        check.problems.join(" ")
    };
    let mut details = serde_json::to_value(&check).expect("serializable");
    if let Some(o) = details.as_object_mut() {
        o.remove("ok");
        o.remove("message");
    }
    Ok(ConfigCheck {
        ok: check.ok,
        message,
        details,
    })
}

/// The URL to enter as BeyondTrust's outbound event URL (token created on first use).
pub async fn event_url(ctx: &Context, actor: &Actor, base: &str) -> ServiceResult<UrlAnswer> {
    actor.require_admin("reading the BeyondTrust event URL")?;
    let token = event_token(ctx.secrets.as_ref()).await?;
    Ok(UrlAnswer {
        url: format!("{base}/beyondtrust/events/{token}"),
        note: Some(EVENT_URL_NOTE.to_string()),
    })
}

/// Import BeyondTrust's support teams: new ones are created (enabled, not default), known
/// ones (by `bt_team_id`) get BeyondTrust's name; display names, enabled flags and the
/// default stay as the desk set them.
pub async fn import_teams(ctx: &Context, actor: &Actor) -> ServiceResult<TeamImport> {
    actor.require_admin("importing teams")?;
    let c = ctx.beyondtrust_client().await?;
    let remote = c.get_support_teams().await?;
    let existing = ctx.store.all_teams().await?;
    let (mut created, mut updated) = (0, 0);
    for t in &remote {
        match existing.iter().find(|e| e.bt_team_id.as_deref() == Some(t.id.as_str())) {
            Some(e) if e.name == t.name => {}
            Some(e) => {
                let update = TeamUpdate {
                    name: Some(t.name.clone()),
                    display_name: None,
                    enabled: None,
                    is_default: None,
                };
                ctx.store.update_team(e.id, update).await?;
                updated += 1;
            }
            None => {
                let new = NewTeam {
                    name: t.name.clone(),
                    display_name: None,
                    bt_team_id: Some(t.id.clone()),
                    enabled: true,
                    is_default: false,
                };
                if ctx.store.create_imported_team(new).await?.is_some() {
                    created += 1;
                }
            }
        }
    }
    let items = ctx.store.all_teams().await?;
    Ok(TeamImport {
        created,
        updated,
        items,
    })
}

/// A rep-console link that starts a session with the asset's pinned Jump Client (client
/// scripting API, `start_jump_item_session`, searched by inventory number).
pub async fn jump_url(ctx: &Context, _actor: &Actor, inventory: &str) -> ServiceResult<UrlAnswer> {
    let inventory = inventory.trim();
    if inventory.is_empty() || inventory.len() > 255 {
        return Err(ServiceError::invalid("inventory_number", "must be 1 to 255 characters"));
    }
    let settings = ctx.store.bt_settings().await?;
    let base = settings
        .base_url
        .ok_or(ServiceError::NotConfigured(Vendor::BeyondTrust))?;
    let query = serde_urlencoded::to_string([
        ("type", "rep"),
        ("operation", "generate"),
        ("action", "start_jump_item_session"),
        ("jump.method", "pinned"),
        ("search_string", inventory),
    ])
    .expect("urlencoded");
    Ok(UrlAnswer {
        url: format!("{base}/api/client_script?{query}"),
        note: None,
    })
}
