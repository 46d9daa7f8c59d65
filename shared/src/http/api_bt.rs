//! Helpdesk API routes for BeyondTrust Remote Support: settings (client secret write-only),
//! Test Configuration, the outbound-event URL, team import, invitations from tickets and
//! chats, stored remote sessions and manual linking, and Jump links for assets.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::api::{ListBody, ListParams};
use super::error::ApiError;
use super::extract::{ActingAgent, ApiJson, ApiQuery, IdPath, OptionalJson, TextPath};
use super::AppState;
use crate::beyondtrust::connect::{check_base_url, event_token, CLIENT_SECRET};
use crate::beyondtrust::{find_logged_in_rep, Client, Error as BtError, QueueId, SessionKeyRequest};
use crate::domain::bt::{BeyondTrustSettings, InviteTemplates, RemoteInvite};
use crate::domain::chats::Chat;
use crate::domain::desk::{NewTeam, Team, TeamUpdate};
use crate::domain::remote::{
    plan_invite, render_invite, render_invite_html, render_transcript, ExternalKey, InviteKey, InviteQueue,
    InviteRequest, RemoteSession,
};
use crate::domain::tickets::{Action, ActionKind, Ticket};
use crate::domain::DomainError;
use crate::ports::{OutgoingMail, SecretString};
use crate::store::{PageRequest, RemoteSessionFilter};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
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

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "BEYONDTRUST_NOT_CONFIGURED",
        "set base_url, client_id and client_secret in /api/config/beyondtrust first",
    )
}

fn vendor_error(e: BtError) -> ApiError {
    match e {
        BtError::Invalid(m) => ApiError::new(StatusCode::CONFLICT, "BEYONDTRUST_NOT_CONFIGURED", m),
        other => ApiError::new(StatusCode::BAD_GATEWAY, "BEYONDTRUST_UNAVAILABLE", other.to_string()),
    }
}

async fn client(s: &AppState) -> ApiResult<Client> {
    match s.beyondtrust.connect().await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(not_configured()),
        Err(e) => Err(vendor_error(e)),
    }
}

// ---- settings ---------------------------------------------------------------------------

async fn config_body(s: &AppState, settings: &BeyondTrustSettings) -> ApiResult<Value> {
    let set = s
        .secrets
        .get(CLIENT_SECRET)
        .await
        .map_err(crate::Error::from)?
        .is_some();
    let mut v = serde_json::to_value(settings).expect("serializable");
    v["client_secret"] = json!({"set": set});
    Ok(v)
}

async fn get_config(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let settings = s.store.bt_settings().await?;
    Ok(Json(config_body(&s, &settings).await?))
}

#[derive(Debug, Deserialize)]
struct ConfigInput {
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    /// A string sets the secret; absent, null or `{"set": true}` keeps it.
    #[serde(default)]
    client_secret: Option<Value>,
    #[serde(default)]
    default_user_id: Option<u64>,
    #[serde(default)]
    allow_invites_for_others: bool,
    #[serde(default)]
    disable_quick_invites: bool,
    #[serde(default)]
    only_generated_here: bool,
    #[serde(default)]
    fallback_to_default_team: bool,
    #[serde(default)]
    templates: InviteTemplates,
    #[serde(default)]
    email_from: Option<String>,
}

async fn put_config(State(s): State<AppState>, ApiJson(input): ApiJson<ConfigInput>) -> ApiResult<Json<Value>> {
    let blank = |o: Option<String>| o.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let base_url = match blank(input.base_url) {
        Some(u) => Some(
            check_base_url(&u, s.beyondtrust.allows_loopback()).map_err(|m| ApiError::bad_request("base_url", m))?,
        ),
        None => None,
    };
    let secret = match input.client_secret {
        None | Some(Value::Null) | Some(Value::Object(_)) => None,
        Some(Value::String(v)) => blank(Some(v)),
        Some(_) => return Err(ApiError::bad_request("client_secret", "must be a string")),
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
    s.store.save_bt_settings(&settings).await?;
    if let Some(secret) = secret {
        s.secrets
            .put(CLIENT_SECRET, &SecretString::new(secret))
            .await
            .map_err(crate::Error::from)?;
        s.beyondtrust.forget_token().await;
    }
    Ok(Json(config_body(&s, &settings).await?))
}

async fn test_config(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let c = match s.beyondtrust.connect().await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Ok(Json(json!({"ok": false,
                "message": "BeyondTrust is not configured: set base_url, client_id and client_secret."})))
        }
        Err(e) => return Ok(Json(json!({"ok": false, "message": e.to_string()}))),
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
    let mut v = serde_json::to_value(&check).expect("serializable");
    v["message"] = json!(message);
    Ok(Json(v))
}

async fn event_url(State(s): State<AppState>, headers: axum::http::HeaderMap) -> ApiResult<Json<Value>> {
    let token = event_token(s.secrets.as_ref()).await.map_err(crate::Error::from)?;
    Ok(Json(json!({
        "url": format!("{}/beyondtrust/events/{token}", super::public_base(&s.config, &headers)),
    })))
}

// ---- teams ------------------------------------------------------------------------------

async fn all_teams(s: &AppState) -> ApiResult<Vec<Team>> {
    let mut page = PageRequest {
        limit: 1000,
        cursor: None,
    };
    let mut out = Vec::new();
    loop {
        let l = s.store.teams(&page).await?;
        out.extend(l.items);
        match l.next {
            Some(n) => page.cursor = Some(n),
            None => return Ok(out),
        }
    }
}

/// Import BeyondTrust's support teams: new ones are created (enabled, not default), known
/// ones (by `bt_team_id`) get BeyondTrust's name; display names, enabled flags and the
/// default stay as the desk set them.
async fn import_teams(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let c = client(&s).await?;
    let remote = c.get_support_teams().await.map_err(vendor_error)?;
    let existing = all_teams(&s).await?;
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
                s.store.update_team(e.id, update).await?;
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
                if s.store.create_imported_team(new).await?.is_some() {
                    created += 1;
                }
            }
        }
    }
    Ok(Json(json!({
        "created": created,
        "updated": updated,
        "items": all_teams(&s).await?,
    })))
}

// ---- invitations ------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
struct InviteBody {
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    via: Option<String>,
}

enum Target {
    Default,
    Agent(u64),
    Team(u64),
}

fn parse_target(t: Option<&str>) -> ApiResult<Target> {
    let Some(t) = t.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(Target::Default);
    };
    let bad = || ApiError::bad_request("target", format!("must be \"agent:<id>\" or \"team:<id>\", got {t:?}"));
    let (kind, id) = t.split_once(':').ok_or_else(bad)?;
    let id: u64 = id.trim().parse().map_err(|_| bad())?;
    match kind {
        "agent" => Ok(Target::Agent(id)),
        "team" => Ok(Target::Team(id)),
        _ => Err(bad()),
    }
}

/// What an invitation is for.
pub(crate) enum Subject {
    Ticket(Ticket),
    Chat(Chat),
}

/// How an invitation was asked for.
pub(crate) struct InviteAsk {
    pub target: Option<String>,
    pub email: Option<String>,
    /// `quick`, `action`, `chat` or `automatic`.
    pub via: String,
    pub acting: Option<u64>,
}

fn forbidden(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// Generate (or, with no default team, blank) an invitation, deliver it — e-mail and audit
/// action for a ticket, HTML message for a chat — and store it.
pub(crate) async fn invite(s: &AppState, subject: Subject, ask: InviteAsk) -> ApiResult<RemoteInvite> {
    let settings = s.store.bt_settings().await?;
    if ask.via == "quick" && settings.disable_quick_invites {
        return Err(forbidden(
            "QUICK_INVITES_DISABLED",
            "quick invites are disabled in the BeyondTrust settings; use the invite action",
        ));
    }
    let target = parse_target(ask.target.as_deref())?;
    if !settings.allow_invites_for_others {
        match target {
            Target::Agent(id) if ask.acting == Some(id) => {}
            Target::Agent(_) | Target::Team(_) => {
                return Err(forbidden(
                    "INVITES_FOR_OTHERS_DISABLED",
                    "invites for other agents or teams are not allowed: invite for yourself (target agent:<your id> with X-Agent-Id) or for the default team",
                ))
            }
            Target::Default => {}
        }
    }
    let mut connected: Option<Client> = None;
    let request = match target {
        Target::Default => InviteRequest::Default,
        Target::Agent(id) => {
            let agent = s
                .store
                .agent(id)
                .await
                .map_err(|_| ApiError::bad_request("target", format!("agent {id} does not exist")))?;
            let bt_name = agent
                .bt_name
                .clone()
                .filter(|n| agent.bt_enabled && !n.trim().is_empty())
                .ok_or_else(|| ApiError::bad_request("target", format!("agent {id} is not enabled for BeyondTrust")))?;
            let c = client(s).await?;
            let reps = s.beyondtrust.logged_in_reps(&c).await.map_err(vendor_error)?;
            let rep = find_logged_in_rep(&reps, &bt_name).map(|r| r.id.clone());
            connected = Some(c);
            InviteRequest::Agent { logged_in_rep_id: rep }
        }
        Target::Team(id) => {
            let team = s
                .store
                .team(id)
                .await
                .map_err(|_| ApiError::bad_request("target", format!("team {id} does not exist")))?;
            if !team.enabled {
                return Err(ApiError::bad_request("target", format!("team {id} is disabled")));
            }
            InviteRequest::Team {
                bt_team_id: team.bt_team_id,
            }
        }
    };
    let default_team = s.store.default_team().await?.filter(|t| t.enabled);
    let default_bt = default_team.as_ref().and_then(|t| t.bt_team_id.clone());
    let mut queue = plan_invite(request, settings.fallback_to_default_team, default_bt.as_deref())?;
    let external_key = match &subject {
        Subject::Ticket(t) => ExternalKey::Ticket(t.id),
        Subject::Chat(c) => ExternalKey::Chat(c.id),
    };
    let mut key: Option<InviteKey> = None;
    let mut expires_at = None;
    if let Some(q) = queue.clone() {
        let c = match connected.take() {
            Some(c) => c,
            None => client(s).await?,
        };
        let key_for = |q: InviteQueue| SessionKeyRequest::new(QueueId::from(q)).external_key(external_key);
        let generated = match c.generate_session_key(&key_for(q.clone())).await {
            Ok(k) => k,
            // The appliance refused the agent's queue (e.g. logged out since the list was
            // fetched): the same rule as for an agent who is not logged in.
            Err(BtError::Api(m)) if matches!(q, InviteQueue::Rep(_)) => {
                let fallback = default_bt
                    .clone()
                    .filter(|_| settings.fallback_to_default_team)
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::CONFLICT,
                            "TECHUNAVAILABLE",
                            format!("BeyondTrust refused a key for the agent: {m}"),
                        )
                    })?;
                let team = InviteQueue::Team(fallback);
                queue = Some(team.clone());
                c.generate_session_key(&key_for(team)).await.map_err(vendor_error)?
            }
            Err(e) => return Err(vendor_error(e)),
        };
        expires_at = generated.expires;
        key = Some(generated.invite_key(c.base_url()));
    }
    let t = &settings.templates;
    let now = s.clock.now();
    let mut invite = RemoteInvite {
        id: s.store.next_id("remote-invite").await?,
        external_key: external_key.to_string(),
        ticket_id: None,
        chat_id: None,
        queue: queue.clone().map(|q| QueueId::from(q).to_string()),
        short_key: key.as_ref().map(|k| k.short_key.clone()),
        key_url: key.as_ref().map(|k| k.key_url.clone()),
        expires_at,
        via: ask.via.clone(),
        agent_id: ask.acting,
        email_to: None,
        created_at: now,
    };
    match subject {
        Subject::Ticket(ticket) => {
            invite.ticket_id = Some(ticket.id);
            let to = match ask.email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty()) {
                Some(e) if e.contains('@') && !e.contains(char::is_whitespace) => Some(e),
                Some(_) => return Err(ApiError::bad_request("email", "must be an e-mail address")),
                None => match ticket.user_id {
                    Some(u) => Some(s.store.user(u).await?.email).filter(|e| !e.trim().is_empty()),
                    None => None,
                },
            };
            s.store.save_invite(&invite).await?;
            let subject_line = render_invite(&t.email_subject, &t.remote_invite, key.as_ref());
            let body = render_invite(&t.email_body, &t.remote_invite, key.as_ref());
            let what = match (&invite.queue, &key) {
                (Some(q), Some(k)) => format!("queue {q}, code {}, link {}", k.short_key, k.key_url),
                _ => "no default team: sent without a session code".to_string(),
            };
            let (kind, note) = match &to {
                Some(addr) => {
                    let mail = OutgoingMail {
                        from: settings.email_from.clone(),
                        to: vec![addr.clone()],
                        subject: subject_line,
                        text: body,
                    };
                    s.mailer.send(&mail).await.map_err(crate::Error::from)?;
                    invite.email_to = Some(addr.clone());
                    (ActionKind::Email, format!("Remote support invitation e-mailed to {addr} ({what})."))
                }
                None => (
                    ActionKind::System,
                    format!("Remote support invitation created ({what}); not e-mailed: the ticket has no user e-mail address."),
                ),
            };
            let (id, at) = s.store.new_action_stamp().await?;
            let action = Action {
                id,
                at,
                kind,
                agent_id: ask.acting,
                note,
            };
            s.store.append_action(ticket.id, &action).await?;
        }
        Subject::Chat(chat) => {
            invite.chat_id = Some(chat.id);
            s.store.save_invite(&invite).await?;
            let html = render_invite_html(&t.chat_html, &t.remote_invite, key.as_ref());
            let from = match ask.acting {
                Some(a) => s.store.agent(a).await?.name,
                None => "Service Desk".to_string(),
            };
            s.store.push_chat_message(chat.id, &from, &html, true).await?;
        }
    }
    Ok(invite)
}

async fn ticket_invite(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    agent: ActingAgent,
    OptionalJson(body): OptionalJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<RemoteInvite>)> {
    let acting = super::api::acting_agent(&s, agent).await?;
    let via = match body.via.as_deref().map(str::trim) {
        None | Some("") | Some("action") => "action",
        Some("quick") => "quick",
        Some(other) => {
            return Err(ApiError::bad_request(
                "via",
                format!("must be \"quick\" or \"action\", got {other:?}"),
            ))
        }
    };
    let ticket = s.store.ticket_head(id).await?.0;
    let ask = InviteAsk {
        target: body.target,
        email: body.email,
        via: via.to_string(),
        acting,
    };
    Ok((
        StatusCode::CREATED,
        Json(invite(&s, Subject::Ticket(ticket), ask).await?),
    ))
}

async fn chat_invite(
    State(s): State<AppState>,
    IdPath(id): IdPath,
    agent: ActingAgent,
    OptionalJson(body): OptionalJson<InviteBody>,
) -> ApiResult<(StatusCode, Json<RemoteInvite>)> {
    let acting = super::api::acting_agent(&s, agent).await?;
    let chat = s.store.chat(id).await?;
    chat.ensure_open()?;
    let ask = InviteAsk {
        target: body.target,
        email: None,
        via: "chat".to_string(),
        acting,
    };
    Ok((StatusCode::CREATED, Json(invite(&s, Subject::Chat(chat), ask).await?)))
}

/// The automatic invitation of a new ticket (ticket type flag or `send_remote_invite`).
/// A failure never fails the ticket: it becomes a system action.
pub(crate) async fn automatic_invite(s: &AppState, ticket: Ticket, acting: Option<u64>) {
    let id = ticket.id;
    let ask = InviteAsk {
        target: None,
        email: None,
        via: "automatic".to_string(),
        acting,
    };
    if let Err(e) = invite(s, Subject::Ticket(ticket), ask).await {
        tracing::warn!(ticket_id = id, error = %e, "automatic remote invitation failed");
        let note = format!("Automatic remote support invitation failed: {}", e.message);
        let noted = match s.store.new_action_stamp().await {
            Ok((aid, at)) => {
                let action = Action {
                    id: aid,
                    at,
                    kind: ActionKind::System,
                    agent_id: None,
                    note,
                };
                s.store.append_action(id, &action).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = noted {
            tracing::error!(ticket_id = id, error = %e, "could not note the failed invitation");
        }
    }
}

// ---- remote sessions --------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
struct SessionQuery {
    linked: Option<bool>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

async fn list_sessions(
    State(s): State<AppState>,
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
    Ok(Json(s.store.remote_sessions(&filter, &page).await?.into()))
}

async fn get_session(State(s): State<AppState>, IdPath(id): IdPath) -> ApiResult<Json<RemoteSession>> {
    Ok(Json(s.store.remote_session(id).await?))
}

#[derive(Debug, Deserialize)]
struct LinkBody {
    session_id: u64,
}

async fn link_session(
    State(s): State<AppState>,
    IdPath(ticket_id): IdPath,
    agent: ActingAgent,
    ApiJson(body): ApiJson<LinkBody>,
) -> ApiResult<(StatusCode, Json<RemoteSession>)> {
    let acting = super::api::acting_agent(&s, agent).await?;
    let session = s.store.remote_session(body.session_id).await?;
    if let Some(t) = session.linked_ticket_id {
        return Err(DomainError::conflict(
            "ALREADY_LINKED",
            format!("remote session {} is already linked to ticket {t}", session.id),
        )
        .into());
    }
    let chat = if session.transcript.is_empty() {
        "No chat messages.".to_string()
    } else {
        format!("Chat transcript (UTC):\n{}", render_transcript(&session.transcript))
    };
    let (id, at) = s.store.new_action_stamp().await?;
    let action = Action {
        id,
        at,
        kind: ActionKind::RemoteSession,
        agent_id: session.technician_agent_id.or(acting),
        note: format!(
            "{} (BeyondTrust session {}), linked by hand.\n\n{chat}",
            session.name, session.lsid
        ),
    };
    let linked = s.store.link_remote_session(session.id, ticket_id, &action).await?;
    Ok((StatusCode::CREATED, Json(linked)))
}

// ---- jump links -------------------------------------------------------------------------

/// A rep-console link that starts a session with the asset's pinned Jump Client (client
/// scripting API, `start_jump_item_session`, searched by inventory number).
async fn jump_url(State(s): State<AppState>, TextPath(inventory): TextPath) -> ApiResult<Json<Value>> {
    let inventory = inventory.trim().to_string();
    if inventory.is_empty() || inventory.len() > 255 {
        return Err(ApiError::bad_request("inventory_number", "must be 1 to 255 characters"));
    }
    let settings = s.store.bt_settings().await?;
    let base = settings.base_url.ok_or_else(not_configured)?;
    let query = serde_urlencoded::to_string([
        ("type", "rep"),
        ("operation", "generate"),
        ("action", "start_jump_item_session"),
        ("jump.method", "pinned"),
        ("search_string", inventory.as_str()),
    ])
    .expect("urlencoded");
    Ok(Json(json!({"url": format!("{base}/api/client_script?{query}")})))
}
