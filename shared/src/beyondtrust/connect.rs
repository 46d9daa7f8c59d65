//! The BeyondTrust API as the desk uses it: a client built from the settings and the client
//! secret in force at each call, sharing one OAuth token with every instance through the
//! store (the vendor caps live tokens at 30 per API account, so tokens are never minted
//! per request or per cold start). Also the generated event token of the outbound-event URL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use super::{default_retry, Client, ClientConfig, Error, LoggedInRep, RetryPolicy, TokenCache};
use crate::ports::{SecretError, SecretStore, SecretString};
use crate::store::{HealthNotes, Store};

/// The name BeyondTrust's call outcomes are noted under (`store::vendor_health`).
pub const HEALTH_VENDOR: &str = "beyondtrust";

/// Secret-store name of the OAuth client secret.
pub const CLIENT_SECRET: &str = "beyondtrust/client-secret";
/// Secret-store name of the token in the outbound-event URL.
pub const EVENT_TOKEN: &str = "beyondtrust/event-token";

/// Builds a BeyondTrust client from the settings and secrets in force now.
#[async_trait]
pub trait BeyondTrustConnect: Send + Sync {
    /// `Ok(None)` while the API is not configured (no URL, client id or secret).
    async fn connect(&self) -> Result<Option<Client>, Error>;
    /// Whether `http://` loopback base URLs are accepted (local fakes and tests only).
    fn allows_loopback(&self) -> bool;
    /// Drop the cached token, here and in the store (after the client secret changed).
    async fn forget_token(&self);
    /// `get_logged_in_reps` of `client`; implementations may cache the list briefly, as
    /// the vendor asks integrators not to fetch it for every request.
    async fn logged_in_reps(&self, client: &Client) -> Result<Vec<LoggedInRep>, Error> {
        client.get_logged_in_reps().await
    }
}

/// How long the list of logged-in representatives is reused.
pub const REPS_CACHE_SECS: i64 = 20;

/// The last `get_logged_in_reps` answer: appliance URL, when fetched, the list.
type CachedReps = (String, chrono::DateTime<chrono::Utc>, Vec<LoggedInRep>);

/// [`BeyondTrustConnect`] over the store and the secret store.
pub struct SettingsConnect {
    store: Store,
    secrets: Arc<dyn SecretStore>,
    tokens: TokenCache,
    allow_loopback: bool,
    retry: RetryPolicy,
    timeout: Duration,
    reps: tokio::sync::Mutex<Option<CachedReps>>,
    health: HealthNotes,
}

impl SettingsConnect {
    pub fn new(store: Store, secrets: Arc<dyn SecretStore>, allow_loopback: bool) -> Self {
        let tokens = TokenCache::shared(store.clone());
        SettingsConnect {
            health: HealthNotes::new(store.clone(), HEALTH_VENDOR),
            store,
            secrets,
            tokens,
            allow_loopback,
            retry: default_retry(),
            timeout: Duration::from_secs(10),
            reps: tokio::sync::Mutex::new(None),
        }
    }

    /// Use this retry policy (tests: immediate retries, no waiting).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Give each call this timeout instead of 10 s (tests of slow answers).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// True when `url` is `http://` on a loopback host.
pub fn is_loopback_http(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return false;
    };
    u.scheme() == "http"
        && u.host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

/// Check a base URL as the settings accept it: `https://host`, or loopback `http://` when
/// `allow_loopback`.
pub fn check_base_url(url: &str, allow_loopback: bool) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let u = reqwest::Url::parse(trimmed).map_err(|e| format!("is not a URL: {e}"))?;
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    match u.scheme() {
        "https" => {}
        "http" if allow_loopback && is_loopback_http(trimmed) => {}
        _ => return Err("must start with https://".into()),
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() || u.password().is_some() {
        return Err("must be the site address only (no query, fragment or credentials)".into());
    }
    Ok(trimmed.to_string())
}

#[async_trait]
impl BeyondTrustConnect for SettingsConnect {
    async fn connect(&self) -> Result<Option<Client>, Error> {
        let unavailable = |e: crate::Error| Error::Unavailable(e.to_string());
        let settings = self.store.bt_settings().await.map_err(unavailable)?;
        let (Some(base), Some(id)) = (settings.base_url, settings.client_id) else {
            return Ok(None);
        };
        let Some(secret) = self
            .secrets
            .get(CLIENT_SECRET)
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?
        else {
            return Ok(None);
        };
        let base = check_base_url(&base, self.allow_loopback).map_err(|m| Error::Invalid(format!("base URL {m}")))?;
        let config = ClientConfig {
            base_url: base,
            client_id: id,
            client_secret: secret,
            timeout: self.timeout,
            retry: self.retry.clone(),
        };
        Ok(Some(
            Client::new(config, self.tokens.clone())?.with_health(self.health.clone()),
        ))
    }

    fn allows_loopback(&self) -> bool {
        self.allow_loopback
    }

    async fn forget_token(&self) {
        self.tokens.forget(super::TOKEN_VENDOR).await;
        *self.reps.lock().await = None;
    }

    async fn logged_in_reps(&self, client: &Client) -> Result<Vec<LoggedInRep>, Error> {
        let now = self.store.clock().now();
        let mut cached = self.reps.lock().await;
        if let Some((base, at, reps)) = cached.as_ref() {
            if base == client.base_url() && now >= *at && now < *at + chrono::Duration::seconds(REPS_CACHE_SECS) {
                return Ok(reps.clone());
            }
        }
        let reps = client.get_logged_in_reps().await?;
        *cached = Some((client.base_url().to_string(), now, reps.clone()));
        Ok(reps)
    }
}

fn generate_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!("btevt_{}", Alphanumeric.sample_string(&mut rand::rng(), 32))
}

/// The event token, generated and saved on first use.
pub async fn event_token(secrets: &dyn SecretStore) -> Result<String, SecretError> {
    if let Some(t) = secrets.get(EVENT_TOKEN).await? {
        if !t.expose().is_empty() {
            return Ok(t.expose().to_string());
        }
    }
    let t = generate_token();
    secrets.put(EVENT_TOKEN, &SecretString::new(t.clone())).await?;
    Ok(t)
}

/// True when `given` is the stored event token (constant-time; no token stored = false).
pub async fn event_token_matches(secrets: &dyn SecretStore, given: &str) -> Result<bool, SecretError> {
    Ok(match secrets.get(EVENT_TOKEN).await? {
        Some(t) if !t.expose().is_empty() => bool::from(given.as_bytes().ct_eq(t.expose().as_bytes())),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_must_be_https_unless_loopback_is_allowed() {
        assert_eq!(
            check_base_url("https://support.example.com/", false).unwrap(),
            "https://support.example.com"
        );
        assert!(check_base_url("http://support.example.com", true).is_err());
        assert!(check_base_url("http://127.0.0.1:9", false).is_err());
        assert!(check_base_url("http://127.0.0.1:9", true).is_ok());
        assert!(check_base_url("https://x.example.com?a=1", false).is_err());
        assert!(check_base_url("nonsense", false).is_err());
    }
}
