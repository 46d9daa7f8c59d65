//! The use cases of deskbridge, one module per family. HTTP handlers, Lambda mains, the
//! local worker and the tests all call these functions with one `Context` and an `Actor`.
//!
//! A service function takes the `Context` (ports and configuration), the `Actor` it acts
//! for, and typed ids; it returns `ServiceResult`, which `http::error` maps to a status.
//! Authorization belongs here, not in the routers: a check on `Actor` in the service.

pub mod accounts;
pub mod alert_intake;
pub mod audit;
pub mod beyondtrust_setup;
pub mod beyondtrust_sync;
pub mod close_propagation;
pub mod consumers;
pub mod datto_setup;
pub mod datto_sync;
pub mod desk;
pub mod error;
pub mod invitations;
pub mod noise;
pub mod operations;
pub mod passwords;
pub mod remote_sessions;
pub mod request_log;

use std::sync::Arc;

use crate::beyondtrust::connect::BeyondTrustConnect;
use crate::config::HttpConfig;
use crate::domain::accounts::{AuditActor, Role};
use crate::domain::ids::AgentId;
use crate::domain::DomainError;
use crate::ports::{Clock, DattoApi, DattoConnect, Mailer, Queue, SecretStore};
use crate::store::Store;

pub use error::{InputError, ServiceError, ServiceResult, Vendor};

/// Everything a service call may use: the ports, the vendor connectors and the
/// configuration of the public surface. Hosts build one (`hosting`, `deskbridge-local`).
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub queue: Arc<dyn Queue>,
    pub mailer: Arc<dyn Mailer>,
    pub secrets: Arc<dyn SecretStore>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<HttpConfig>,
    /// The Datto RMM API as currently configured.
    pub datto: Arc<dyn DattoConnect>,
    /// The BeyondTrust API as currently configured.
    pub beyondtrust: Arc<dyn BeyondTrustConnect>,
}

/// Who a service call acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A caller with the service token (machines, scripts); `agent` is the acting agent it
    /// names (`X-Agent-Id`), not yet checked to exist. It may do everything an admin may.
    Service { agent: Option<AgentId> },
    /// A signed-in agent (session cookie or personal API token), checked to exist and be
    /// enabled when the request was authenticated; it may do what its role allows.
    Agent(SignedIn),
    /// deskbridge itself: queue consumers, the scheduler, intake of vendor events.
    System,
}

/// An agent authenticated by a session or one of its personal tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub id: AgentId,
    pub role: Role,
    pub via: SignInMethod,
}

/// How a signed-in agent authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInMethod {
    /// A session cookie; the key is the stored hash of its secret.
    Session(SessionKey),
    /// A personal API token (its id).
    Token(u64),
}

/// The store key of a session (the SHA-256 of its secret); never shown in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub String);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

impl Actor {
    /// The agent the caller claims to act as (checked already for a signed-in agent).
    pub fn claimed_agent(&self) -> Option<AgentId> {
        match self {
            Actor::Service { agent } => *agent,
            Actor::Agent(s) => Some(s.id),
            Actor::System => None,
        }
    }

    /// Whether the caller may do admin work: the service token, deskbridge itself, or a
    /// signed-in admin.
    pub fn is_admin(&self) -> bool {
        match self {
            Actor::Service { .. } | Actor::System => true,
            Actor::Agent(s) => s.role == Role::Admin,
        }
    }

    /// `Forbidden` (403) unless the caller may do admin work; `what` names the work.
    pub fn require_admin(&self, what: &str) -> ServiceResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ServiceError::forbidden(
                "FORBIDDEN",
                format!("{what} needs the admin role"),
            ))
        }
    }

    /// The signed-in agent, or 403 for the service token and deskbridge itself.
    pub fn signed_in(&self) -> ServiceResult<&SignedIn> {
        match self {
            Actor::Agent(s) => Ok(s),
            _ => Err(ServiceError::forbidden(
                "SIGNED_IN_AGENT_ONLY",
                "only a signed-in agent (session or personal token) can do this",
            )),
        }
    }

    /// Who this is, as the audit log records it.
    pub fn audit_actor(&self) -> AuditActor {
        match self {
            Actor::Service { agent } => AuditActor::Service {
                agent_id: agent.map(AgentId::get),
            },
            Actor::Agent(s) => AuditActor::Agent { agent_id: s.id.get() },
            Actor::System => AuditActor::System,
        }
    }
}

impl Context {
    /// The acting agent of `actor`, checked to exist (400 naming `X-Agent-Id` if not).
    pub async fn acting_agent(&self, actor: &Actor) -> ServiceResult<Option<AgentId>> {
        if let Actor::Agent(s) = actor {
            return Ok(Some(s.id));
        }
        let Some(id) = actor.claimed_agent() else {
            return Ok(None);
        };
        match self.store.agent(id.get()).await {
            Ok(_) => Ok(Some(id)),
            Err(crate::Error::Domain(DomainError::NotFound { .. })) => Err(ServiceError::invalid(
                "X-Agent-Id",
                format!("agent {id} does not exist"),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A Datto API client, or `NotConfigured`.
    pub async fn datto_api(&self) -> ServiceResult<Arc<dyn DattoApi>> {
        self.datto
            .connect()
            .await?
            .ok_or(ServiceError::NotConfigured(Vendor::Datto))
    }

    /// A BeyondTrust client, or `NotConfigured`.
    pub async fn beyondtrust_client(&self) -> ServiceResult<crate::beyondtrust::Client> {
        self.beyondtrust
            .connect()
            .await?
            .ok_or(ServiceError::NotConfigured(Vendor::BeyondTrust))
    }

    /// The public base URL: the configured one, or `https://<host>` of the request when
    /// none is configured (behind API Gateway the Host is the API's own domain).
    pub fn public_base(&self, request_host: Option<&str>) -> String {
        if !self.config.public_url.is_empty() {
            return self.config.public_url.clone();
        }
        format!("https://{}", request_host.unwrap_or("localhost"))
    }
}
