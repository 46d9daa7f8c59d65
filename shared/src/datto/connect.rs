//! The Datto API as the jobs see it: a client built from the settings and secret in force,
//! behind `DattoApi`, sharing one request budget and one access token with every instance
//! through the store (so cold starts do not spend Datto's budget on token calls).

use std::sync::Arc;

use async_trait::async_trait;

use super::budget::{BudgetConfig, RequestBudget};
use super::client::{Client, ClientConfig, DattoBaseUrl, Error, ResolveOutcome, TokioSleeper};
use crate::domain::alerts::{AlertFacts, AlertUid};
use crate::ports::{Clock, RecordStore, SecretStore};
use crate::ports::{DattoAlert, DattoApi, DattoCallError, DattoConnect, DattoSite, ResolveResult};
use crate::store::{HealthNotes, Store, TokenCache};

/// The name Datto's call outcomes are noted under (`store::vendor_health`).
pub const HEALTH_VENDOR: &str = "datto";

/// Secret-store name of the Datto API secret.
pub const API_SECRET: &str = "datto/api-secret";

impl From<Error> for DattoCallError {
    fn from(e: Error) -> Self {
        DattoCallError {
            retryable: e.is_transient(),
            message: e.to_string(),
        }
    }
}

fn alert_of(a: &super::api::Alert) -> Result<DattoAlert, DattoCallError> {
    let uid = AlertUid::parse("alertUid", &a.alert_uid).map_err(|e| DattoCallError {
        retryable: false,
        message: e.to_string(),
    })?;
    Ok(DattoAlert {
        uid,
        resolved: a.resolved,
        facts: AlertFacts::from(a),
    })
}

#[async_trait]
impl DattoApi for Client {
    async fn sites(&self) -> Result<Vec<DattoSite>, DattoCallError> {
        Ok(Client::sites(self)
            .await?
            .into_iter()
            .map(|s| DattoSite {
                uid: s.uid,
                name: s.name,
            })
            .collect())
    }
    async fn open_alerts(&self) -> Result<Vec<DattoAlert>, DattoCallError> {
        // An alert whose uid is not a UUID cannot be tracked; skip it rather than fail the list.
        Ok(Client::open_alerts(self)
            .await?
            .iter()
            .filter_map(|a| alert_of(a).ok())
            .collect())
    }
    async fn alert(&self, uid: &AlertUid) -> Result<Option<DattoAlert>, DattoCallError> {
        Client::alert(self, uid).await?.as_ref().map(alert_of).transpose()
    }
    async fn resolve(&self, uid: &AlertUid) -> Result<ResolveResult, DattoCallError> {
        Ok(match self.resolve_alert(uid).await? {
            ResolveOutcome::Resolved => ResolveResult::Resolved,
            ResolveOutcome::AlreadyResolved => ResolveResult::AlreadyResolved,
            ResolveOutcome::Unknown { .. } => ResolveResult::Unknown,
        })
    }
    async fn device(&self, device_uid: &str) -> Result<Option<serde_json::Value>, DattoCallError> {
        Ok(Client::device(self, device_uid)
            .await?
            .map(|d| serde_json::to_value(d).expect("serializable")))
    }
    async fn read_headroom(&self) -> Result<Option<i64>, DattoCallError> {
        Ok(self.request_rate().await?.read_headroom())
    }
    async fn check(&self) -> Result<String, DattoCallError> {
        let account = self.account().await?;
        Ok(account.name.or(account.uid).unwrap_or_else(|| "(unnamed)".to_string()))
    }
    fn requests_used(&self) -> u64 {
        self.requests_sent()
    }
}

/// A client whose every call's outcome is noted for the health screen.
struct Noted {
    client: Client,
    health: HealthNotes,
}

impl Noted {
    async fn note<T>(&self, call: &str, out: Result<T, DattoCallError>) -> Result<T, DattoCallError> {
        let outcome = out.as_ref().map(|_| ()).map_err(|e| e.message.clone());
        self.health.note(call, outcome).await;
        out
    }
}

#[async_trait]
impl DattoApi for Noted {
    async fn sites(&self) -> Result<Vec<DattoSite>, DattoCallError> {
        self.note("sites", DattoApi::sites(&self.client).await).await
    }
    async fn open_alerts(&self) -> Result<Vec<DattoAlert>, DattoCallError> {
        self.note("open_alerts", DattoApi::open_alerts(&self.client).await)
            .await
    }
    async fn alert(&self, uid: &AlertUid) -> Result<Option<DattoAlert>, DattoCallError> {
        self.note("alert", DattoApi::alert(&self.client, uid).await).await
    }
    async fn resolve(&self, uid: &AlertUid) -> Result<ResolveResult, DattoCallError> {
        self.note("resolve", DattoApi::resolve(&self.client, uid).await).await
    }
    async fn device(&self, device_uid: &str) -> Result<Option<serde_json::Value>, DattoCallError> {
        self.note("device", DattoApi::device(&self.client, device_uid).await)
            .await
    }
    async fn read_headroom(&self) -> Result<Option<i64>, DattoCallError> {
        self.note("request_rate", DattoApi::read_headroom(&self.client).await)
            .await
    }
    async fn check(&self) -> Result<String, DattoCallError> {
        self.note("account", DattoApi::check(&self.client).await).await
    }
    fn requests_used(&self) -> u64 {
        self.client.requests_sent()
    }
}

/// Builds the client from `DattoSettings` and the API secret each time it is asked.
pub struct SettingsConnect {
    store: Store,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    budget: RequestBudget,
    /// The account's token, shared through the store; a change of URL, key or secret
    /// makes it another account's, so a new one is minted.
    tokens: TokenCache,
    allow_loopback: bool,
    sleeper: Arc<dyn super::client::Sleeper>,
    health: HealthNotes,
    /// Per-call timeout instead of [`ClientConfig::new`]'s.
    timeout: Option<std::time::Duration>,
}

impl SettingsConnect {
    /// `allow_loopback` admits `http://127.0.0.1:<port>` API URLs (tests, local fakes only).
    pub fn new(store: Store, secrets: Arc<dyn SecretStore>, allow_loopback: bool) -> Self {
        let clock = store.clock().clone();
        let records: Arc<dyn RecordStore> = store.records().clone();
        let budget = RequestBudget::shared(BudgetConfig::default(), records, clock.clone());
        let tokens = TokenCache::shared(store.clone());
        SettingsConnect {
            health: HealthNotes::new(store.clone(), HEALTH_VENDOR),
            store,
            secrets,
            clock,
            budget,
            tokens,
            allow_loopback,
            sleeper: Arc::new(TokioSleeper),
            timeout: None,
        }
    }

    /// Give each call this timeout instead of the default (tests of slow answers).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Wait through `sleeper` (tests record waits instead of sleeping).
    pub fn with_sleeper(mut self, sleeper: Arc<dyn super::client::Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// Use `budget` (e.g. a smaller one in tests) instead of the default shared budget.
    pub fn with_budget(mut self, budget: RequestBudget) -> Self {
        self.budget = budget;
        self
    }
}

#[async_trait]
impl DattoConnect for SettingsConnect {
    async fn connect(&self) -> Result<Option<Arc<dyn DattoApi>>, DattoCallError> {
        let unavailable = |m: String| DattoCallError {
            retryable: true,
            message: m,
        };
        let settings = self
            .store
            .datto_settings()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let (Some(url), Some(key)) = (settings.api_url.clone(), settings.api_key.clone()) else {
            return Ok(None);
        };
        let Some(secret) = self
            .secrets
            .get(API_SECRET)
            .await
            .map_err(|e| unavailable(e.to_string()))?
        else {
            return Ok(None);
        };
        let base = if self.allow_loopback {
            DattoBaseUrl::parse_allowing_loopback(&url)
        } else {
            DattoBaseUrl::parse(&url)
        }?;
        let mut config = ClientConfig::new(base, key, secret);
        if let Some(t) = self.timeout {
            config.timeout = t;
        }
        let client = Client::new(config, self.budget.clone(), self.clock.clone(), self.sleeper.clone())?
            .with_token_cache(self.tokens.clone());
        Ok(Some(Arc::new(Noted {
            client,
            health: self.health.clone(),
        })))
    }
}
