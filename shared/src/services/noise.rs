//! Noise control's use cases: the settings, the ordered routing rules, maintenance windows,
//! and the preview of what a sample (or recent real) alert would do under the rules.

use serde::{Deserialize, Serialize};

use super::{Actor, Context, ServiceResult};
use crate::domain::alerts::{AlertFacts, AlertUid};
use crate::domain::noise::{
    preview as rule_preview, MaintenanceWindow, NoiseSettings, RoutingRule, RuleAction, RuleInput, RuleMatch,
    RulePreview, TicketDefaults, WindowSchedule, WindowScope,
};
use crate::domain::DomainError;

/// A rule as a POST or PUT carries it: the id is the server's; `position` (from 1) places
/// it in the list (POST: the end when left out; PUT: where it was).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RuleBody {
    pub name: String,
    #[serde(default)]
    pub when: RuleMatch,
    pub then: RuleAction,
    #[serde(default)]
    pub position: Option<usize>,
}

/// The rules in the order they are tried.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleListView {
    pub items: Vec<RoutingRule>,
}

/// A maintenance window as a POST or PUT carries it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct WindowBody {
    pub name: String,
    pub scope: WindowScope,
    pub schedule: WindowSchedule,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WindowListView {
    pub items: Vec<MaintenanceWindow>,
}

/// What to preview: a sample alert's facts, or the uid of an alert deskbridge received.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct PreviewRequest {
    #[serde(default)]
    pub alert: Option<AlertFacts>,
    #[serde(default)]
    pub alert_uid: Option<String>,
}

/// The rule that matches, the ticket it would make, and where the site mapping puts it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewView {
    #[serde(flatten)]
    pub preview: RulePreview,
    pub customer_id: Option<u64>,
    pub site_id: Option<u64>,
}

pub async fn settings(ctx: &Context, actor: &Actor) -> ServiceResult<NoiseSettings> {
    actor.require_admin("noise control")?;
    Ok(ctx.store.noise_settings().await?)
}

pub async fn save_settings(ctx: &Context, actor: &Actor, s: NoiseSettings) -> ServiceResult<NoiseSettings> {
    actor.require_admin("noise control")?;
    Ok(ctx.store.save_noise_settings(&s).await?)
}

pub async fn rules(ctx: &Context, actor: &Actor) -> ServiceResult<RuleListView> {
    actor.require_admin("noise control")?;
    Ok(RuleListView {
        items: ctx.store.noise_rules().await?.rules,
    })
}

pub async fn rule(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<RoutingRule> {
    actor.require_admin("noise control")?;
    ctx.store
        .noise_rules()
        .await?
        .rules
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| DomainError::not_found("routing rule", id).into())
}

fn place(rules: &mut Vec<RoutingRule>, rule: RoutingRule, position: Option<usize>) -> Result<(), DomainError> {
    let at = match position {
        None => rules.len(),
        Some(p) if (1..=rules.len() + 1).contains(&p) => p - 1,
        Some(_) => {
            return Err(DomainError::invalid(
                "position",
                format!(
                    "must be 1 to {} (the list holds {} rules)",
                    rules.len() + 1,
                    rules.len()
                ),
            ))
        }
    };
    rules.insert(at, rule);
    Ok(())
}

pub async fn create_rule(ctx: &Context, actor: &Actor, body: RuleBody) -> ServiceResult<RoutingRule> {
    actor.require_admin("noise control")?;
    let id = ctx.store.next_id("noise-rule").await?;
    let rule = RoutingRule {
        id,
        name: body.name,
        when: body.when,
        then: body.then,
    };
    rule.validate()?;
    let (_, ()) = ctx
        .store
        .change_noise_rules(|rules| Ok(place(rules, rule.clone(), body.position)?))
        .await?;
    Ok(rule)
}

pub async fn update_rule(ctx: &Context, actor: &Actor, id: u64, body: RuleBody) -> ServiceResult<RoutingRule> {
    actor.require_admin("noise control")?;
    let rule = RoutingRule {
        id,
        name: body.name,
        when: body.when,
        then: body.then,
    };
    rule.validate()?;
    ctx.store
        .change_noise_rules(|rules| {
            let at = rules
                .iter()
                .position(|r| r.id == id)
                .ok_or_else(|| DomainError::not_found("routing rule", id))?;
            rules.remove(at);
            place(rules, rule.clone(), Some(body.position.unwrap_or(at + 1)))?;
            Ok(())
        })
        .await?;
    Ok(rule)
}

pub async fn delete_rule(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<()> {
    actor.require_admin("noise control")?;
    ctx.store
        .change_noise_rules(|rules| {
            let at = rules
                .iter()
                .position(|r| r.id == id)
                .ok_or_else(|| DomainError::not_found("routing rule", id))?;
            rules.remove(at);
            Ok(())
        })
        .await?;
    Ok(())
}

pub async fn windows(ctx: &Context, actor: &Actor) -> ServiceResult<WindowListView> {
    actor.require_admin("noise control")?;
    Ok(WindowListView {
        items: ctx.store.maintenance_windows().await?,
    })
}

pub async fn window(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<MaintenanceWindow> {
    actor.require_admin("noise control")?;
    Ok(ctx.store.maintenance_window(id).await?)
}

fn window_of(id: u64, b: WindowBody) -> MaintenanceWindow {
    MaintenanceWindow {
        id,
        name: b.name,
        scope: b.scope,
        schedule: b.schedule,
    }
}

pub async fn create_window(ctx: &Context, actor: &Actor, body: WindowBody) -> ServiceResult<MaintenanceWindow> {
    actor.require_admin("noise control")?;
    Ok(ctx.store.create_maintenance_window(window_of(0, body)).await?)
}

pub async fn update_window(
    ctx: &Context,
    actor: &Actor,
    id: u64,
    body: WindowBody,
) -> ServiceResult<MaintenanceWindow> {
    actor.require_admin("noise control")?;
    Ok(ctx.store.update_maintenance_window(id, window_of(id, body)).await?)
}

pub async fn delete_window(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<()> {
    actor.require_admin("noise control")?;
    Ok(ctx.store.delete_maintenance_window(id).await?)
}

/// Which rule matches the sample (or the stored alert's facts) and what ticket it would
/// make, built by the same code that makes real tickets. Nothing is stored.
pub async fn preview(ctx: &Context, actor: &Actor, req: PreviewRequest) -> ServiceResult<PreviewView> {
    actor.require_admin("noise control")?;
    let (uid, facts) = match (req.alert, req.alert_uid) {
        (Some(_), Some(_)) => {
            return Err(DomainError::invalid("alert_uid", "give either alert or alert_uid, not both").into())
        }
        (None, None) => return Err(DomainError::invalid("alert", "give a sample alert or an alert_uid").into()),
        (Some(f), None) => (AlertUid::parse("alert_uid", "00000000-0000-0000-0000-000000000000")?, f),
        (None, Some(u)) => {
            let uid = AlertUid::parse("alert_uid", &u)?;
            let (a, _) = ctx
                .store
                .alert(&uid)
                .await?
                .ok_or_else(|| DomainError::not_found("alert", &uid))?;
            (uid, a.facts)
        }
    };
    let mapping = match facts.site_uid.as_deref() {
        Some(s) => ctx.store.site_mapping(s).await?,
        None => None,
    };
    let settings = ctx.store.datto_settings().await?;
    let default_type = match settings.default_ticket_type_id {
        Some(t) => Some(t),
        None => ctx.store.default_ticket_type().await?.map(|t| t.id),
    };
    let rules = ctx.store.noise_rules().await?.rules;
    let input = RuleInput {
        facts: &facts,
        customer_id: mapping.as_ref().map(|m| m.customer_id),
        site_id: mapping.as_ref().map(|m| m.site_id),
    };
    let defaults = TicketDefaults {
        default_ticket_type_id: default_type,
        priorities: &settings.priority_map,
    };
    Ok(PreviewView {
        preview: rule_preview(&rules, &input, &uid, defaults)?,
        customer_id: input.customer_id,
        site_id: input.site_id,
    })
}
