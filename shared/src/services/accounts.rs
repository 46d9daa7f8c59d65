//! Accounts and access as use cases: sign-in with the brute-force throttle, sessions
//! (authenticate, me, logout), personal API tokens, passwords and the first admin.
//!
//! Every refusal of a sign-in is the same 401 whether or not the e-mail exists, after the
//! same Argon2 work; failures count per e-mail tried and per client address.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::passwords::{self, random_secret, secret_hash};
use super::{audit, Actor, Context, ServiceError, ServiceResult, SessionKey, SignInMethod, SignedIn};
use crate::domain::accounts::{check_password, login_email, token_name, ApiToken, AuditAction, Role, Session};
use crate::domain::desk::{Agent, NewAgent};
use crate::domain::ids::AgentId;
use crate::domain::DomainError;
use crate::ports::StoreError;
use crate::store::{Credential, Listing, PageRequest};

/// How long a first-admin setup link works.
pub const SETUP_TOKEN_HOURS: i64 = 24;
/// What every personal API token starts with (so that scanners and people recognise one).
pub const TOKEN_PREFIX: &str = "dbp_";

const WRONG_CREDENTIALS: &str = "wrong e-mail or password";

/// A password as received: never printed by `Debug`.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Password)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// `POST /api/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginInput {
    pub email: String,
    pub password: Password,
}

/// The client address a sign-in came from (`None` when the host cannot tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

/// The agent as `me` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentSummary {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub role: Role,
}

impl From<&Agent> for AgentSummary {
    fn from(a: &Agent) -> Self {
        AgentSummary {
            id: a.id,
            name: a.name.clone(),
            email: a.email.clone(),
            role: a.role,
        }
    }
}

/// Who the caller is: `GET /api/auth/me` and the body of a sign-in.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Me {
    /// The acting agent; `null` for the service token without `X-Agent-Id`.
    pub agent: Option<AgentSummary>,
    /// `session`, `token` or `service`.
    pub via: &'static str,
    /// With a session: the token state-changing requests send in `X-CSRF-Token`.
    pub csrf_token: Option<String>,
}

/// A new session: the secret goes into the cookie and nowhere else.
pub struct NewSession {
    pub secret: String,
    pub me: Me,
}

/// A new personal token: the secret is shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: ApiToken,
    /// The token itself (`Authorization: Bearer <token>`); it cannot be shown again.
    pub token: String,
}

/// `POST /api/auth/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewTokenInput {
    pub name: String,
}

/// `POST /api/auth/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordChange {
    pub old_password: Password,
    pub new_password: Password,
}

/// `PUT /api/agents/{id}/password`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PasswordReset {
    pub password: Password,
}

/// The first admin: `POST /api/auth/first-admin` (service token) or `POST /api/auth/setup`
/// (with the setup token the local server printed).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FirstAdmin {
    pub name: String,
    pub email: String,
    pub password: Password,
    /// Only for `POST /api/auth/setup`.
    #[serde(default)]
    pub setup_token: Option<String>,
}

fn unauthorized(m: &str) -> ServiceError {
    ServiceError::Unauthorized(m.to_string())
}

fn seconds_until(until: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    ((until - now).num_milliseconds().max(0) as u64).div_ceil(1000).max(1)
}

/// The agent that may sign in with `email` and its credential: exactly one enabled agent
/// with that e-mail and a password. Several is a setup mistake: nobody signs in with it.
async fn sign_in_candidate(ctx: &Context, email: &str) -> ServiceResult<Option<(Agent, Credential)>> {
    let mut found = Vec::new();
    for agent in ctx.store.all_agents().await? {
        if agent.disabled || login_email(&agent.email) != email {
            continue;
        }
        if let Some(c) = ctx.store.credential(agent.id).await? {
            found.push((agent, c));
        }
    }
    if found.len() > 1 {
        tracing::warn!(
            agents = found.len(),
            "several agents with a password share one e-mail; none can sign in with it"
        );
        return Ok(None);
    }
    Ok(found.pop())
}

/// Sign in: 200 with a new session, or the same 401 for every wrong e-mail or password,
/// or 429 while the account or the address is locked (even with the right password).
pub async fn login(ctx: &Context, input: LoginInput, client: ClientAddr) -> ServiceResult<NewSession> {
    let throttle = ctx.config.login_throttle;
    let now = ctx.clock.now();
    let email = login_email(&input.email);
    let account_key = format!("account:{email}");
    let address_key = format!("address:{}", client.0.map_or("unknown".to_string(), |a| a.to_string()));
    for key in [&account_key, &address_key] {
        if let Some(until) = ctx.store.login_locked_until(key, now).await? {
            tracing::warn!(client = ?client.0, "sign-in refused: locked after repeated failures");
            return Err(ServiceError::TooManyAttempts {
                retry_after_secs: seconds_until(until, now),
            });
        }
    }
    let candidate = sign_in_candidate(ctx, &email).await?;
    let stored = candidate.as_ref().map(|(_, c)| c.password_hash.clone());
    if !passwords::verify(input.password.0, stored).await {
        let start = throttle.window_start(now);
        let end = start + throttle.window.as_secs() as i64;
        let by_account = ctx.store.count_login_failure(&account_key, start, end).await?;
        let by_address = ctx.store.count_login_failure(&address_key, start, end).await?;
        let (lock_account, lock_address) = throttle.locks(by_account, by_address);
        let until = now + chrono::Duration::from_std(throttle.lock_for).expect("short");
        if lock_account {
            ctx.store.lock_login(&account_key, until).await?;
        }
        if lock_address {
            ctx.store.lock_login(&address_key, until).await?;
        }
        tracing::warn!(client = ?client.0, failures = by_account.max(by_address), "sign-in refused: wrong e-mail or password");
        tokio::time::sleep(throttle.delay(by_account.max(by_address))).await;
        return Err(unauthorized(WRONG_CREDENTIALS));
    }
    let (agent, _) = candidate.expect("verified against a stored hash");
    let session = start_session(ctx, &agent).await?;
    let actor = Actor::Agent(SignedIn {
        id: AgentId(agent.id),
        role: agent.role,
        via: SignInMethod::Session(SessionKey(secret_hash(&session.secret))),
    });
    audit::record(
        ctx,
        &actor,
        AuditAction::SignedIn,
        format!("agent/{}", agent.id),
        vec![],
    )
    .await?;
    tracing::info!(agent_id = agent.id, "signed in");
    Ok(session)
}

async fn start_session(ctx: &Context, agent: &Agent) -> ServiceResult<NewSession> {
    let secret = random_secret();
    let csrf = random_secret();
    let s = Session::new(agent.id, ctx.clock.now(), csrf.clone());
    ctx.store
        .create_session(&secret_hash(&secret), &s, s.expires_at(&ctx.config.sessions))
        .await?;
    Ok(NewSession {
        secret,
        me: Me {
            agent: Some(agent.into()),
            via: "session",
            csrf_token: Some(csrf),
        },
    })
}

/// The agent a session cookie's secret belongs to, and the session's CSRF token; 401 when
/// the session is unknown, ended, expired, or its agent is disabled.
pub async fn authenticate_session(ctx: &Context, secret: &str) -> ServiceResult<(Actor, String)> {
    let key = secret_hash(secret);
    let ended = || unauthorized("the session has expired or was ended; sign in again");
    let Some((mut s, version)) = ctx.store.session(&key).await? else {
        return Err(ended());
    };
    let now = ctx.clock.now();
    let policy = ctx.config.sessions;
    if !s.is_live(&policy, now) {
        ctx.store.delete_session(&key).await?;
        return Err(ended());
    }
    let agent = match ctx.store.agent(s.agent_id).await {
        Ok(a) if !a.disabled => a,
        Ok(_) | Err(crate::Error::Domain(DomainError::NotFound { .. })) => {
            ctx.store.delete_session(&key).await?;
            return Err(ended());
        }
        Err(e) => return Err(e.into()),
    };
    if s.needs_touch(&policy, now) {
        s.last_seen_at = now;
        ctx.store
            .touch_session(&key, &s, version, s.expires_at(&policy))
            .await?;
    }
    let actor = Actor::Agent(SignedIn {
        id: AgentId(agent.id),
        role: agent.role,
        via: SignInMethod::Session(SessionKey(key)),
    });
    Ok((actor, s.csrf_token))
}

/// The agent a personal API token belongs to; 401 when unknown, revoked or disabled.
pub async fn authenticate_token(ctx: &Context, token: &str) -> ServiceResult<Actor> {
    let refused = || unauthorized("unknown or revoked token");
    let hash = secret_hash(token);
    let Some((mut t, version)) = ctx.store.api_token_by_hash(&hash).await? else {
        return Err(refused());
    };
    let agent = match ctx.store.agent(t.agent_id).await {
        Ok(a) if !a.disabled => a,
        Ok(_) | Err(crate::Error::Domain(DomainError::NotFound { .. })) => return Err(refused()),
        Err(e) => return Err(e.into()),
    };
    let now = ctx.clock.now();
    if t.needs_use_noted(now) {
        t.last_used_at = Some(now);
        ctx.store.note_api_token_use(&hash, &t, version).await?;
    }
    Ok(Actor::Agent(SignedIn {
        id: AgentId(agent.id),
        role: agent.role,
        via: SignInMethod::Token(t.id),
    }))
}

/// Who the caller is; with a session, its CSRF token.
pub async fn me(ctx: &Context, actor: &Actor) -> ServiceResult<Me> {
    let agent = match ctx.acting_agent(actor).await? {
        Some(id) => Some(AgentSummary::from(&ctx.store.agent(id.get()).await?)),
        None => None,
    };
    let (via, csrf_token) = match actor {
        Actor::Agent(SignedIn {
            via: SignInMethod::Session(key),
            ..
        }) => ("session", ctx.store.session(&key.0).await?.map(|(s, _)| s.csrf_token)),
        Actor::Agent(_) => ("token", None),
        _ => ("service", None),
    };
    Ok(Me { agent, via, csrf_token })
}

/// End the caller's session (nothing to end for a token or the service token).
pub async fn logout(ctx: &Context, actor: &Actor) -> ServiceResult<()> {
    if let Actor::Agent(SignedIn {
        id,
        via: SignInMethod::Session(key),
        ..
    }) = actor
    {
        ctx.store.delete_session(&key.0).await?;
        tracing::info!(agent_id = id.get(), "signed out");
    }
    Ok(())
}

// ---- personal API tokens ----------------------------------------------------------------------

/// Create a personal token for the signed-in agent; its secret is in the answer only.
pub async fn create_token(ctx: &Context, actor: &Actor, input: NewTokenInput) -> ServiceResult<NewToken> {
    let me = actor.signed_in()?;
    let name = token_name(&input.name)?;
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let info = ApiToken {
        id: ctx.store.next_api_token_id().await?,
        agent_id: me.id.get(),
        name,
        prefix: secret.chars().take(TOKEN_PREFIX.len() + 6).collect(),
        created_at: ctx.clock.now(),
        last_used_at: None,
    };
    ctx.store.create_api_token(&secret_hash(&secret), &info).await?;
    audit::record(
        ctx,
        actor,
        AuditAction::TokenCreated,
        format!("token/{}", info.id),
        vec![],
    )
    .await?;
    Ok(NewToken { info, token: secret })
}

/// The signed-in agent's tokens, without their secrets.
pub async fn tokens(ctx: &Context, actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<ApiToken>> {
    let me = actor.signed_in()?;
    Ok(ctx.store.api_tokens_of(me.id.get(), page).await?)
}

/// Revoke one of the signed-in agent's tokens; it stops working at once.
pub async fn revoke_token(ctx: &Context, actor: &Actor, id: u64) -> ServiceResult<()> {
    let me = actor.signed_in()?;
    if ctx.store.delete_api_token(me.id.get(), id).await?.is_none() {
        return Err(DomainError::not_found("token", id).into());
    }
    audit::record(ctx, actor, AuditAction::TokenRevoked, format!("token/{id}"), vec![]).await?;
    Ok(())
}

// ---- passwords -----------------------------------------------------------------------------

/// Change one's own password (the old one required); one's other sessions end.
pub async fn change_password(ctx: &Context, actor: &Actor, input: PasswordChange) -> ServiceResult<()> {
    let me = actor.signed_in()?.clone();
    check_password("new_password", &input.new_password.0)?;
    let stored = ctx.store.credential(me.id.get()).await?.map(|c| c.password_hash);
    if !passwords::verify(input.old_password.0, stored).await {
        return Err(ServiceError::forbidden(
            "WRONG_PASSWORD",
            "old_password: is not the current password",
        ));
    }
    set_password(ctx, me.id, input.new_password).await?;
    let keep = match &me.via {
        SignInMethod::Session(k) => Some(k.0.as_str()),
        SignInMethod::Token(_) => None,
    };
    ctx.store.end_sessions_of(me.id.get(), keep).await?;
    audit::record(
        ctx,
        actor,
        AuditAction::PasswordChanged,
        format!("agent/{}", me.id),
        vec![],
    )
    .await
}

/// An admin sets another agent's password (also: the first one of an agent made before
/// accounts existed); that agent's sessions end at once.
pub async fn reset_password(ctx: &Context, actor: &Actor, agent: AgentId, input: PasswordReset) -> ServiceResult<()> {
    actor.require_admin("setting an agent's password")?;
    check_password("password", &input.password.0)?;
    ctx.store.agent(agent.get()).await?;
    set_password(ctx, agent, input.password).await?;
    let keep = match actor {
        Actor::Agent(SignedIn {
            id,
            via: SignInMethod::Session(k),
            ..
        }) if *id == agent => Some(k.0.as_str()),
        _ => None,
    };
    ctx.store.end_sessions_of(agent.get(), keep).await?;
    audit::record(ctx, actor, AuditAction::PasswordReset, format!("agent/{agent}"), vec![]).await
}

async fn set_password(ctx: &Context, agent: AgentId, password: Password) -> ServiceResult<()> {
    let hash = passwords::hash(password.0).await?;
    Ok(ctx
        .store
        .set_credential(&Credential {
            agent_id: agent.get(),
            password_hash: hash,
            changed_at: ctx.clock.now(),
        })
        .await?)
}

/// End every session of `agent` (it was disabled).
pub async fn end_sessions(ctx: &Context, agent: AgentId) -> ServiceResult<usize> {
    Ok(ctx.store.end_sessions_of(agent.get(), None).await?)
}

// ---- the first admin ---------------------------------------------------------------------------

/// Whether an admin who can sign in exists already.
async fn admin_exists(ctx: &Context) -> ServiceResult<bool> {
    if ctx.store.first_admin_exists().await? {
        return Ok(true);
    }
    for a in ctx.store.all_agents().await? {
        if a.role == Role::Admin && !a.disabled && ctx.store.credential(a.id).await?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A one-time setup token for the first admin when none exists (kept hashed,
/// `SETUP_TOKEN_HOURS`); `None` once an admin exists. A new one replaces nothing: every
/// unexpired token works until one is used.
pub async fn issue_setup_token(ctx: &Context) -> ServiceResult<Option<String>> {
    if admin_exists(ctx).await? {
        return Ok(None);
    }
    let token = random_secret();
    let until = ctx.clock.now() + chrono::Duration::hours(SETUP_TOKEN_HOURS);
    ctx.store.save_setup_token(&secret_hash(&token), until).await?;
    Ok(Some(token))
}

/// Create the first admin. The service token (`POST /api/auth/first-admin`, the AWS
/// one-off step), deskbridge itself (`deskbridge admin create`) or a valid setup token
/// (`POST /api/auth/setup`, no other credential) may; 409 `ADMIN_EXISTS` once one exists.
/// With a setup token the new admin is signed in.
pub async fn create_first_admin(
    ctx: &Context,
    actor: Option<&Actor>,
    input: FirstAdmin,
) -> ServiceResult<(Agent, Option<NewSession>)> {
    let token_hash = match (actor, input.setup_token.as_deref()) {
        (Some(Actor::Service { .. } | Actor::System), _) => None,
        (Some(Actor::Agent(_)), _) => {
            return Err(ServiceError::forbidden(
                "FORBIDDEN",
                "the first admin is made with the service token or the setup link",
            ))
        }
        (None, Some(t)) if ctx.store.setup_token_valid(&secret_hash(t.trim())).await? => Some(secret_hash(t.trim())),
        (None, _) => return Err(unauthorized("the setup token is unknown, used or expired")),
    };
    check_password("password", &input.password.0)?;
    if admin_exists(ctx).await? {
        return Err(admin_exists_error());
    }
    let hash = passwords::hash(input.password.0).await?;
    let new = NewAgent {
        name: input.name,
        email: input.email,
        bt_enabled: false,
        bt_name: None,
        role: Role::Admin,
    };
    let agent = match ctx.store.create_first_admin(new, hash, token_hash.as_deref()).await {
        Ok(a) => a,
        Err(crate::Error::Store(StoreError::ConditionFailed { pk, .. })) if pk == "setup" => {
            return Err(admin_exists_error())
        }
        Err(crate::Error::Store(StoreError::ConditionFailed { .. })) => {
            return Err(unauthorized("the setup token is unknown, used or expired"))
        }
        Err(e) => return Err(e.into()),
    };
    let by = actor.cloned().unwrap_or(Actor::System);
    audit::record(
        ctx,
        &by,
        AuditAction::FirstAdminCreated,
        format!("agent/{}", agent.id),
        vec![],
    )
    .await?;
    tracing::info!(agent_id = agent.id, "first admin created");
    let session = match token_hash {
        Some(_) => Some(start_session(ctx, &agent).await?),
        None => None,
    };
    Ok((agent, session))
}

fn admin_exists_error() -> ServiceError {
    DomainError::conflict(
        "ADMIN_EXISTS",
        "an admin exists already; sign in as that admin to add agents",
    )
    .into()
}
