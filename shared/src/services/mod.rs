//! The use cases of deskbridge, one module per family. HTTP handlers, Lambda mains, the
//! local worker and the tests all call these functions with one `Context` and an `Actor`.
//!
//! A service function takes the `Context` (ports and configuration), the `Actor` it acts
//! for, and typed ids; it returns `ServiceResult`, which `http::error` maps to a status.
//! Authorization belongs here, not in the routers: a check on `Actor` in the service.

pub mod alert_intake;
pub mod beyondtrust_setup;
pub mod close_propagation;
pub mod consumers;
pub mod datto_setup;
pub mod datto_sync;
pub mod desk;
pub mod error;
pub mod invitations;
pub mod noise;
pub mod operations;
pub mod remote_sessions;
pub mod request_log;

use std::sync::Arc;

use crate::beyondtrust::connect::BeyondTrustConnect;
use crate::config::HttpConfig;
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
    /// A caller with the service token; `agent` is the acting agent it names
    /// (`X-Agent-Id`), not yet checked to exist.
    Service { agent: Option<AgentId> },
    /// deskbridge itself: queue consumers, the scheduler, intake of vendor events.
    System,
}

impl Actor {
    /// The agent the caller claims to act as.
    pub fn claimed_agent(&self) -> Option<AgentId> {
        match self {
            Actor::Service { agent } => *agent,
            Actor::System => None,
        }
    }
}

impl Context {
    /// The acting agent of `actor`, checked to exist (400 naming `X-Agent-Id` if not).
    pub async fn acting_agent(&self, actor: &Actor) -> ServiceResult<Option<AgentId>> {
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
