//! Authentication of the helpdesk API and the account routes: the middleware that turns the
//! service token, a personal token or a session cookie (+ CSRF header) into an `Actor`, and
//! sign-in, me, sign-out, tokens, passwords, first-admin setup and the audit log.
//!
//! The client address of a sign-in is the host's peer address (`PeerAddr`, set by the local
//! server from the TCP connection) or, under Lambda, API Gateway's `sourceIp`, which API
//! Gateway sets itself from the connection. `X-Forwarded-For` is never read: any client can
//! write it, so a throttle keyed by it would be one header away from useless.

use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery, IdPath};
use super::list::{ListBody, ListParams};
use crate::domain::accounts::{ApiToken, AuditEntry};
use crate::domain::ids::AgentId;
use crate::services::accounts::{
    self, ClientAddr, FirstAdmin, LoginInput, Me, NewSession, NewToken, NewTokenInput, PasswordChange, PasswordReset,
    TOKEN_PREFIX,
};
use crate::services::passwords::same_secret;
use crate::services::{audit, Actor, Context, InputError, ServiceError};

/// The header a cookie-authenticated state-changing request carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The session cookie's name over https (`__Host-`: Secure, Path=/, no Domain, so no
/// subdomain can set or overwrite it) and over plain loopback http.
pub const SESSION_COOKIE_SECURE: &str = "__Host-deskbridge_session";
pub const SESSION_COOKIE_PLAIN: &str = "deskbridge_session";

/// The peer address of the connection, set by a host that knows it (the local server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

fn cookie_name(ctx: &Context) -> &'static str {
    if ctx.config.secure_cookies {
        SESSION_COOKIE_SECURE
    } else {
        SESSION_COOKIE_PLAIN
    }
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn x_agent_id(headers: &HeaderMap) -> Result<Option<AgentId>, InputError> {
    match headers.get("x-agent-id") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|id| Some(AgentId(id)))
            .ok_or_else(|| InputError::invalid("X-Agent-Id", "must be an agent id (a number)")),
    }
}

/// Who a request is from. Bearer first: the service token (compared in constant time;
/// `X-Agent-Id` names the acting agent) or a personal token (`X-Agent-Id` ignored). Else
/// the session cookie (`X-Agent-Id` ignored), whose state-changing requests must carry the
/// session's CSRF token in `X-CSRF-Token`.
async fn actor_of(ctx: &Context, headers: &HeaderMap, method: &axum::http::Method) -> Result<Actor, ApiError> {
    let unauthorized = |m: &str| ApiError::from(ServiceError::Unauthorized(m.to_string()));
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| unauthorized("Authorization must be `Bearer <token>`"))?;
        if bool::from(token.as_bytes().ct_eq(ctx.config.api_token.expose().as_bytes())) {
            return Ok(Actor::Service {
                agent: x_agent_id(headers)?,
            });
        }
        if token.starts_with(TOKEN_PREFIX) {
            return Ok(accounts::authenticate_token(ctx, token).await?);
        }
        return Err(unauthorized("wrong bearer token"));
    }
    let Some(secret) = cookie_value(headers, cookie_name(ctx)) else {
        return Err(unauthorized(
            "missing bearer token (Authorization: Bearer <token>) or session (sign in with POST /api/auth/login)",
        ));
    };
    let (actor, csrf) = accounts::authenticate_session(ctx, secret).await?;
    if !method.is_safe() {
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if !same_secret(sent, &csrf) {
            return Err(ServiceError::forbidden(
                "CSRF",
                "a signed-in state-changing request needs the session's CSRF token in X-CSRF-Token (from GET /api/auth/me)",
            )
            .into());
        }
    }
    Ok(actor)
}

/// Refuse unauthenticated requests (401) and cookie requests without their CSRF token
/// (403); put the `Actor` of the others in the request for handlers to extract.
pub async fn authenticate(State(ctx): State<Context>, mut req: Request, next: Next) -> Response {
    let (headers, method) = (req.headers().clone(), req.method().clone());
    match actor_of(&ctx, &headers, &method).await {
        Ok(actor) => {
            req.extensions_mut().insert(actor);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// Who the request acts for; only routes behind `authenticate` can extract it.
impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| ServiceError::Unauthorized("this route needs authentication".into()).into())
    }
}

/// The client's address: the peer the host saw, or API Gateway's `sourceIp`.
impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(PeerAddr(ip)) = parts.extensions.get::<PeerAddr>() {
            return Ok(ClientAddr(Some(*ip)));
        }
        #[cfg(feature = "aws")]
        let gateway = match parts.extensions.get::<lambda_http::request::RequestContext>() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
            _ => None,
        };
        #[cfg(not(feature = "aws"))]
        let gateway: Option<String> = None;
        Ok(ClientAddr(gateway.and_then(|ip| ip.parse().ok())))
    }
}

fn set_cookie(ctx: &Context, value: &str, max_age: u64) -> HeaderValue {
    let secure = if ctx.config.secure_cookies { "; Secure" } else { "" };
    let cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(ctx)
    );
    HeaderValue::from_str(&cookie).expect("a cookie of URL-safe characters")
}

fn signed_in(ctx: &Context, s: NewSession) -> Response {
    let cookie = set_cookie(ctx, &s.secret, ctx.config.sessions.absolute.as_secs());
    let mut resp = Json(s.me).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The routes that need no credential: sign-in and first-admin setup with the setup token.
pub fn open_routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(setup))
}

/// The account routes behind `authenticate`.
pub fn routes() -> OpenApiRouter<Context> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(change_password))
        .routes(routes!(reset_password))
        .routes(routes!(first_admin))
        .routes(routes!(audit_log))
}

type ApiResult<T> = Result<T, ApiError>;

/// Sign in with e-mail and password. 200 sets the session cookie (`HttpOnly`, `SameSite=Lax`,
/// `Path=/`, `Secure` except on plain loopback http) and answers who signed in with the CSRF
/// token; a wrong e-mail and a wrong password get the same 401.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", security(()), request_body = LoginInput,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session", body = Me),
        (status = 401, description = "UNAUTHORIZED: wrong e-mail or password (the same for both)", body = ErrorBody),
        (status = 429, description = "TOO_MANY_ATTEMPTS: locked after repeated failures; see `Retry-After`", body = ErrorBody),
    ))]
async fn login(
    State(ctx): State<Context>,
    client: ClientAddr,
    ApiJson(input): ApiJson<LoginInput>,
) -> ApiResult<Response> {
    Ok(signed_in(&ctx, accounts::login(&ctx, input, client).await?))
}

/// Create the first admin with the one-time setup token `deskbridge serve` printed; the
/// new admin is signed in.
#[utoipa::path(post, path = "/api/auth/setup", tag = "auth", security(()), request_body = FirstAdmin,
    responses(
        (status = 200, description = "The first admin exists and is signed in", body = Me),
        (status = 401, description = "UNAUTHORIZED: the setup token is unknown, used or expired", body = ErrorBody),
        (status = 409, description = "ADMIN_EXISTS", body = ErrorBody),
    ))]
async fn setup(State(ctx): State<Context>, ApiJson(input): ApiJson<FirstAdmin>) -> ApiResult<Response> {
    if input.setup_token.is_none() {
        return Err(InputError::invalid("setup_token", "is required").into());
    }
    let (_, session) = accounts::create_first_admin(&ctx, None, input).await?;
    Ok(signed_in(&ctx, session.expect("a setup token signs the admin in")))
}

/// Who the caller is (agent id, name, e-mail, role) and, with a session, its CSRF token.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", responses((status = 200, description = "The caller", body = Me)))]
async fn me(State(ctx): State<Context>, actor: Actor) -> ApiResult<Json<Me>> {
    Ok(Json(accounts::me(&ctx, &actor).await?))
}

/// End the session (the cookie is cleared too); with a token nothing changes.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204, description = "Signed out")))]
async fn logout(State(ctx): State<Context>, actor: Actor) -> ApiResult<Response> {
    accounts::logout(&ctx, &actor).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, set_cookie(&ctx, "", 0));
    Ok(resp)
}

/// The signed-in agent's personal tokens, without their secrets.
#[utoipa::path(get, path = "/api/auth/tokens", tag = "auth", params(ListParams), responses((status = 200, description = "Tokens, oldest first", body = ListBody<ApiToken>)))]
async fn list_tokens(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<ApiToken>>> {
    Ok(Json(accounts::tokens(&ctx, &actor, &q.page()?).await?.into()))
}

/// A new personal token for the signed-in agent; `token` is shown this once.
#[utoipa::path(post, path = "/api/auth/tokens", tag = "auth", request_body = NewTokenInput, responses((status = 201, description = "The token, with its secret this once", body = NewToken), (status = 403, description = "SIGNED_IN_AGENT_ONLY: the service token has no tokens of its own", body = ErrorBody)))]
async fn create_token(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<NewTokenInput>,
) -> ApiResult<(StatusCode, [(header::HeaderName, &'static str); 1], Json<NewToken>)> {
    let t = accounts::create_token(&ctx, &actor, input).await?;
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(t)))
}

/// Revoke one of the signed-in agent's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/auth/tokens/{id}", tag = "auth", params(("id" = u64, Path, description = "The token's id")), responses((status = 204, description = "Revoked"), (status = 404, description = "NOT_FOUND: no such token of yours", body = ErrorBody)))]
async fn revoke_token(State(ctx): State<Context>, actor: Actor, IdPath(id): IdPath<u64>) -> ApiResult<StatusCode> {
    accounts::revoke_token(&ctx, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change one's own password; one's other sessions end.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", request_body = PasswordChange, responses((status = 204, description = "Changed"), (status = 403, description = "WRONG_PASSWORD: old_password is not the current one", body = ErrorBody)))]
async fn change_password(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<PasswordChange>,
) -> ApiResult<StatusCode> {
    accounts::change_password(&ctx, &actor, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set an agent's password (admins); its sessions end at once.
#[utoipa::path(put, path = "/api/agents/{id}/password", tag = "auth", params(("id" = u64, Path, description = "The agent's id")), request_body = PasswordReset, responses((status = 204, description = "Set"), (status = 403, description = "FORBIDDEN: needs the admin role", body = ErrorBody)))]
async fn reset_password(
    State(ctx): State<Context>,
    actor: Actor,
    IdPath(id): IdPath<AgentId>,
    ApiJson(input): ApiJson<PasswordReset>,
) -> ApiResult<StatusCode> {
    accounts::reset_password(&ctx, &actor, id, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The new first admin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct FirstAdminCreated {
    agent: crate::domain::desk::Agent,
}

/// Create the first admin with the service token (the one-off step on AWS); 409 once an
/// admin exists.
#[utoipa::path(post, path = "/api/auth/first-admin", tag = "auth", request_body = FirstAdmin, responses((status = 201, description = "The admin; sign in with its e-mail and password", body = FirstAdminCreated), (status = 409, description = "ADMIN_EXISTS", body = ErrorBody)))]
async fn first_admin(
    State(ctx): State<Context>,
    actor: Actor,
    ApiJson(input): ApiJson<FirstAdmin>,
) -> ApiResult<(StatusCode, Json<FirstAdminCreated>)> {
    let (agent, _) = accounts::create_first_admin(&ctx, Some(&actor), input).await?;
    Ok((StatusCode::CREATED, Json(FirstAdminCreated { agent })))
}

/// Who changed what, newest first (admins); kept at least 90 days.
#[utoipa::path(get, path = "/api/audit-log", tag = "operations", params(ListParams), responses((status = 200, description = "Audit entries, newest first", body = ListBody<AuditEntry>), (status = 403, description = "FORBIDDEN: needs the admin role", body = ErrorBody)))]
async fn audit_log(
    State(ctx): State<Context>,
    actor: Actor,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListBody<AuditEntry>>> {
    Ok(Json(audit::list(&ctx, &actor, &q.page()?).await?.into()))
}
