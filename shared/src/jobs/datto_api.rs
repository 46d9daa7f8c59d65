//! The Datto RMM calls the jobs make, as one narrow trait: the REST client implements it in
//! production, scripted fakes in tests. Vendor wire types stay in `datto/`.

use async_trait::async_trait;

use crate::domain::alerts::{AlertFacts, AlertUid};

/// A Datto site as the sync needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct DattoSite {
    pub uid: String,
    pub name: String,
}

/// A Datto alert as the jobs need it.
#[derive(Debug, Clone, PartialEq)]
pub struct DattoAlert {
    pub uid: AlertUid,
    pub resolved: bool,
    pub facts: AlertFacts,
}

/// What Datto says when asked to resolve an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveResult {
    Resolved,
    AlreadyResolved,
    /// Datto does not know the alert (404/400 after the confirming GET).
    Unknown,
}

/// A Datto failure as the jobs see it: `retryable` for 429, 403 blocks, 5xx and timeouts.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DattoCallError {
    pub retryable: bool,
    pub message: String,
}

#[async_trait]
pub trait DattoApi: Send + Sync {
    /// Every site of the account (all pages).
    async fn sites(&self) -> Result<Vec<DattoSite>, DattoCallError>;
    /// Every open alert of the account (all pages; may be incomplete — never conclude
    /// "resolved" from absence).
    async fn open_alerts(&self) -> Result<Vec<DattoAlert>, DattoCallError>;
    /// One alert, `None` when Datto does not know it.
    async fn alert(&self, uid: &AlertUid) -> Result<Option<DattoAlert>, DattoCallError>;
    async fn resolve(&self, uid: &AlertUid) -> Result<ResolveResult, DattoCallError>;
    /// A device's details as Datto sends them, `None` when Datto does not know it.
    async fn device(&self, device_uid: &str) -> Result<Option<serde_json::Value>, DattoCallError>;
    /// Requests the whole account may still make in Datto's current window before Datto
    /// slows it down (`GET /system/request_rate`); `None` when the account does not say.
    async fn read_headroom(&self) -> Result<Option<i64>, DattoCallError>;
    /// One cheap authenticated call; answers the account's name.
    async fn check(&self) -> Result<String, DattoCallError>;
    /// Requests this client has made so far (for sync summaries).
    fn requests_used(&self) -> u64;
}

/// Builds a Datto API client from the settings and secrets in force now.
#[async_trait]
pub trait DattoConnect: Send + Sync {
    /// `Ok(None)` while the API is not configured (no URL, key or secret).
    async fn connect(&self) -> Result<Option<std::sync::Arc<dyn DattoApi>>, DattoCallError>;
}

/// A connector for hosts and tests without Datto API access.
pub struct NoDattoApi;

#[async_trait]
impl DattoConnect for NoDattoApi {
    async fn connect(&self) -> Result<Option<std::sync::Arc<dyn DattoApi>>, DattoCallError> {
        Ok(None)
    }
}
