//! The Datto RMM REST client: base-URL normalisation, the password-grant token (cached,
//! re-minted once on a 401), paging, and the retry, budget and 403-block rules.
//!
//! Every HTTP attempt — token requests and retries included — first takes a slot from the
//! shared [`RequestBudget`]. Retries follow the crate's one [`RetryPolicy`]
//! ([`default_retry`]): 429 backs off (at least `Retry-After`, else 30–120 s), 5xx and
//! timeouts wait 1, 4, 10 s (with jitter), at most three retries in all; other 4xx are not
//! retried. The token lives in the shared [`TokenCache`]. All waiting goes through an
//! injected [`Sleeper`], so tests never wait in real time. Facts: vendor notes §1–§6.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::api::{parse_page, Account, Alert, Device, RateStatus, Site, TokenAnswer};
use super::budget::{Acquire, RequestBudget};
use crate::domain::alerts::AlertUid;
use crate::ports::{Clock, SecretString};
use crate::retry::{parse_retry_after, ClassifyRetry, RetryClass, RetryPolicy};
use crate::store::{MintedToken, TokenCache, TokenOwner, TokenWaitTimeout};

/// Datto's fixed public OAuth client (the same for every account; not a secret).
const OAUTH_CLIENT: (&str, &str) = ("public-client", "public");
/// Renew a token this long before it expires (at most half its lifetime).
const TOKEN_RENEW_MARGIN: Duration = Duration::from_secs(60 * 60);
/// The token record's key in the shared token store.
pub const TOKEN_VENDOR: &str = "datto";
/// Lifetime assumed when the token answer has no usable `expires_in`.
const TOKEN_FALLBACK_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// A listing that needs more pages than this is taken as a paging loop.
const MAX_PAGES: usize = 10_000;
/// Datto's maximum (and default) page size.
pub const MAX_PAGE_SIZE: u32 = 250;

/// The regional platforms (vendor notes §1); a bare name must be one of them.
pub const PLATFORMS: [&str; 6] = ["pinotage", "merlot", "concord", "vidal", "zinfandel", "syrah"];

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a Datto call failed. The messages are written for the admin who pressed "Test
/// configuration".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The token endpoint refused the key/secret, or a fresh token was refused too.
    #[error(
        "Datto RMM refused the API key and secret: check that they are current and that API \
         access is enabled (Setup > Global Settings > Access Control)"
    )]
    Unauthorized,
    /// HTTP 403 that reads as a missing permission of the API user.
    #[error("Datto RMM refused the request (HTTP 403): the API user's security level does not allow it")]
    Forbidden,
    /// Every Datto call is stopped after 403s that look like an IP block.
    #[error(
        "Datto RMM calls are paused until {until} because Datto answered HTTP 403 to several \
         requests (it may have blocked this address for sending too many)"
    )]
    Blocked { until: DateTime<Utc> },
    /// Datto kept answering 429, or deskbridge's own request budget is used up.
    #[error("Datto RMM's request limit is reached; deskbridge will try again later")]
    Throttled,
    /// Datto could not be reached or failed (5xx, connection error, unexpected status).
    #[error("Datto RMM is unavailable: {0}")]
    Unavailable(String),
    /// Datto did not answer within the per-call timeout, retries included.
    #[error("Datto RMM did not answer in time")]
    Timeout,
    /// The settings cannot work (API URL, key, secret).
    #[error("Datto RMM settings are invalid: {0}")]
    BadConfig(String),
    /// Datto answered something deskbridge will not read or follow.
    #[error("Datto RMM sent an answer deskbridge could not use: {0}")]
    Malformed(String),
}

impl From<TokenWaitTimeout> for Error {
    fn from(e: TokenWaitTimeout) -> Self {
        Error::Unavailable(e.to_string())
    }
}

impl Error {
    /// True when the same call may succeed later without a settings change.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Blocked { .. } | Error::Throttled | Error::Unavailable(_) | Error::Timeout
        )
    }
}

// ---------------------------------------------------------------------------------------
// Base URL
// ---------------------------------------------------------------------------------------

/// A validated Datto API base such as `https://concord-api.centrastage.net` (no trailing
/// slash, no `/api`). Only Datto's own API hosts over https pass [`DattoBaseUrl::parse`];
/// [`DattoBaseUrl::parse_allowing_loopback`] also takes `http(s)://127.0.0.1:<port>`,
/// `localhost` and `[::1]` for fakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DattoBaseUrl {
    base: String,
    url: Url,
    platform: Option<String>,
}

impl DattoBaseUrl {
    /// Normalise what an admin pastes: trims spaces, trailing `/`, `/api` or `/api/v2` (any
    /// path, in fact — the host decides); takes a bare platform name (`concord`), the API
    /// host with or without `https://`, and the web-UI hosts `{platform}.centrastage.net` /
    /// `{platform}.rmm.datto.com`. Refuses http, other ports, user info and other hosts:
    /// the bearer token must never go anywhere else.
    pub fn parse(input: &str) -> Result<DattoBaseUrl, Error> {
        Self::parse_inner(input, false)
    }

    /// Like [`parse`](Self::parse), but also accepts a loopback origin over http or https
    /// (tests and local fakes only).
    pub fn parse_allowing_loopback(input: &str) -> Result<DattoBaseUrl, Error> {
        Self::parse_inner(input, true)
    }

    fn parse_inner(input: &str, allow_loopback: bool) -> Result<DattoBaseUrl, Error> {
        let s = input.trim();
        if s.is_empty() {
            return Err(Error::BadConfig("the Datto API URL is empty".into()));
        }
        if s.chars().all(|c| c.is_ascii_alphanumeric()) {
            let p = s.to_ascii_lowercase();
            if !PLATFORMS.contains(&p.as_str()) {
                return Err(Error::BadConfig(format!(
                    "{s:?} is not a Datto RMM platform (expected one of {} or the API URL shown next to the API keys)",
                    PLATFORMS.join(", ")
                )));
            }
            return Ok(Self::for_platform(&p));
        }
        let with_scheme = if s.contains("://") {
            s.to_string()
        } else {
            format!("https://{s}")
        };
        let url = Url::parse(&with_scheme)
            .map_err(|e| Error::BadConfig(format!("the Datto API URL {s:?} is not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::BadConfig(
                "the Datto API URL must not contain a user name or password".into(),
            ));
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if allow_loopback && matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(Error::BadConfig(format!("unsupported scheme in {s:?}")));
            }
            let path = url.path().trim_end_matches('/');
            if !matches!(path, "" | "/api" | "/api/v2") {
                return Err(Error::BadConfig(format!(
                    "a loopback Datto URL takes no path, got {path:?}"
                )));
            }
            let base = match url.port() {
                Some(p) => format!("{}://{host}:{p}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            };
            let parsed = Url::parse(&base).map_err(|e| Error::BadConfig(e.to_string()))?;
            return Ok(DattoBaseUrl {
                base,
                url: parsed,
                platform: None,
            });
        }
        if url.scheme() != "https" {
            return Err(Error::BadConfig(format!("the Datto API URL must use https, got {s:?}")));
        }
        if url.port().is_some() {
            return Err(Error::BadConfig(format!(
                "the Datto API URL must not name a port, got {s:?}"
            )));
        }
        let platform = host
            .strip_suffix("-api.centrastage.net")
            .or_else(|| host.strip_suffix(".centrastage.net"))
            .or_else(|| host.strip_suffix(".rmm.datto.com"))
            .filter(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
        match platform {
            Some(p) => Ok(Self::for_platform(p)),
            None => Err(Error::BadConfig(format!(
                "{host:?} is not a Datto RMM API host (expected https://<platform>-api.centrastage.net, \
                 e.g. https://concord-api.centrastage.net)"
            ))),
        }
    }

    fn for_platform(p: &str) -> DattoBaseUrl {
        let base = format!("https://{p}-api.centrastage.net");
        let url = Url::parse(&base).expect("a platform name makes a valid URL");
        DattoBaseUrl {
            base,
            url,
            platform: Some(p.to_string()),
        }
    }

    /// The base without a trailing slash, e.g. `https://concord-api.centrastage.net`.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The platform name (`concord`), `None` for a loopback fake.
    pub fn platform(&self) -> Option<&str> {
        self.platform.as_deref()
    }

    /// True for a loopback (test) base.
    pub fn is_loopback(&self) -> bool {
        self.platform.is_none()
    }

    /// `{base}{path}` with each `{}` segment of `segments` appended percent-encoded.
    fn endpoint(&self, path: &str, segments: &[&str]) -> Url {
        let mut url = self.url.clone();
        url.set_path(path);
        if !segments.is_empty() {
            if let Ok(mut s) = url.path_segments_mut() {
                s.extend(segments);
            }
        }
        url
    }

    /// True when `url` has this base's scheme, host and port (the only place the bearer
    /// token may go).
    pub fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.url.scheme()
            && url.host_str().map(str::to_ascii_lowercase) == self.url.host_str().map(str::to_ascii_lowercase)
            && url.port_or_known_default() == self.url.port_or_known_default()
            && url.username().is_empty()
            && url.password().is_none()
    }
}

impl fmt::Display for DattoBaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

// ---------------------------------------------------------------------------------------
// Sleeping and backoff
// ---------------------------------------------------------------------------------------

/// Waits a while. Injected so that tests record the waits instead of sitting them out.
#[async_trait]
pub trait Sleeper: Send + Sync {
    async fn sleep(&self, duration: Duration);
}

/// The real sleeper (`tokio::time::sleep`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSleeper;

#[async_trait]
impl Sleeper for TokioSleeper {
    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Datto's retry policy: 5xx and timeouts wait 1 s, 4 s, 10 s (±50 %); a 429 waits at
/// least its `Retry-After` (never one beyond 5 minutes: that fails at once), else 60 s
/// scaled by 0.5–2; three retries at most, whatever the mix.
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::new(vec![
        Duration::from_secs(1),
        Duration::from_secs(4),
        Duration::from_secs(10),
    ])
    .with_throttle_wait(Duration::from_secs(60))
    .with_max_retry_after(Duration::from_secs(5 * 60))
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// What it takes to reach one Datto account.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: DattoBaseUrl,
    pub api_key: String,
    pub api_secret: SecretString,
    /// Limit for one HTTP attempt, from connecting to the end of the body.
    pub timeout: Duration,
    /// `max` for list calls (1..=250).
    pub page_size: u32,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults: 20 s per call, pages of 250, [`default_retry`].
    pub fn new(base_url: DattoBaseUrl, api_key: impl Into<String>, api_secret: SecretString) -> Self {
        ClientConfig {
            base_url,
            api_key: api_key.into(),
            api_secret,
            timeout: Duration::from_secs(20),
            page_size: MAX_PAGE_SIZE,
            retry: default_retry(),
        }
    }
}

/// What `resolve_alert` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ResolveOutcome {
    /// Datto accepted the resolve.
    Resolved,
    /// Datto refused the resolve, and the alert reads `resolved: true`.
    AlreadyResolved,
    /// Datto does not know the alert (`GET /v2/alert/{uid}` answered this 404 or 400).
    Unknown { status: u16 },
}

/// A Datto RMM API client. Cheap to clone; clones share the token cache and the budget.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: DattoBaseUrl,
    api_key: String,
    api_secret: SecretString,
    timeout: Duration,
    page_size: u32,
    retry: RetryPolicy,
    budget: RequestBudget,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    tokens: TokenCache,
    /// HTTP attempts sent by this client and its clones.
    sent: Arc<AtomicU64>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("datto::Client")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A non-error HTTP answer (2xx, 401 or a 4xx other than 403/429) for the caller to judge.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    /// The `Retry-After` header, when present.
    retry_after: Option<String>,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Bearer(&'a SecretString),
    PasswordGrant,
}

enum Attempt {
    Reply(Reply),
    /// Transport failure or timeout.
    Failed {
        timeout: bool,
        detail: String,
    },
}

/// Why one attempt of an exchange failed.
enum Failed {
    /// 429, with its `Retry-After`.
    Throttled { retry_after: Option<Duration> },
    /// A 5xx status.
    Status(StatusCode),
    /// No answer: transport failure or timeout.
    Transport { timeout: bool, detail: String },
    /// Not worth retrying: a 403, or the budget refused.
    Final(Error),
}

impl ClassifyRetry for Failed {
    fn retry_class(&self) -> RetryClass {
        match self {
            Failed::Throttled { retry_after } => RetryClass::Throttled {
                retry_after: *retry_after,
            },
            Failed::Status(_) | Failed::Transport { .. } => RetryClass::Transient,
            Failed::Final(_) => RetryClass::Permanent,
        }
    }
}

impl Failed {
    fn into_error(self, path: &str) -> Error {
        match self {
            Failed::Throttled { .. } => Error::Throttled,
            Failed::Status(s) => Error::Unavailable(format!("Datto answered HTTP {} to {path}", s.as_u16())),
            Failed::Transport { timeout: true, .. } => Error::Timeout,
            Failed::Transport { detail, .. } => Error::Unavailable(detail),
            Failed::Final(e) => e,
        }
    }
}

impl Client {
    /// Build a client. `clock` dates tokens; `sleeper` does every wait (budget, 429,
    /// retries). Use [`with_token_cache`](Self::with_token_cache) to share a token with
    /// clients built elsewhere in the process.
    pub fn new(
        config: ClientConfig,
        budget: RequestBudget,
        clock: Arc<dyn Clock>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Client, Error> {
        let api_key = config.api_key.trim().to_string();
        if api_key.is_empty() {
            return Err(Error::BadConfig("the API key is empty".into()));
        }
        if config.api_secret.expose().is_empty() {
            return Err(Error::BadConfig("the API secret is empty".into()));
        }
        if config.timeout.is_zero() {
            return Err(Error::BadConfig("the timeout must be positive".into()));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&config.page_size) {
            return Err(Error::BadConfig(format!("the page size must be 1..={MAX_PAGE_SIZE}")));
        }
        let http = reqwest::Client::builder()
            // Never follow a redirect with the token on it.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!config.base_url.is_loopback())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::BadConfig(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: config.base_url,
            api_key,
            api_secret: config.api_secret,
            timeout: config.timeout,
            page_size: config.page_size,
            retry: config.retry,
            budget,
            sleeper,
            tokens: TokenCache::new(clock.clone()),
            clock,
            sent: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Use `tokens` (shared with other clients of this process) instead of a cache of
    /// this client's own.
    pub fn with_token_cache(mut self, tokens: TokenCache) -> Client {
        self.tokens = tokens;
        self
    }

    pub fn base_url(&self) -> &DattoBaseUrl {
        &self.base
    }

    pub fn budget(&self) -> &RequestBudget {
        &self.budget
    }

    /// HTTP requests this client and its clones sent so far (token requests and retries
    /// included), e.g. for sync summaries.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    // ----- calls ---------------------------------------------------------------------

    /// Every site of the account, all pages (the "Deleted Devices" system site included:
    /// see [`Site::is_deleted_devices`]).
    pub async fn sites(&self) -> Result<Vec<Site>, Error> {
        self.list("/api/v2/account/sites", "sites", &[], "GET /v2/account/sites")
            .await
    }

    /// Sites whose name contains `name_part` (Datto's `siteName` LIKE filter), all pages.
    pub async fn sites_named(&self, name_part: &str) -> Result<Vec<Site>, Error> {
        self.list(
            "/api/v2/account/sites",
            "sites",
            &[("siteName", name_part)],
            "GET /v2/account/sites",
        )
        .await
    }

    /// Every open alert of the account, all pages. The list can shift while it is read
    /// (alerts resolve meanwhile): never treat a missing uid as resolved without
    /// [`alert`](Self::alert).
    pub async fn open_alerts(&self) -> Result<Vec<Alert>, Error> {
        self.list(
            "/api/v2/account/alerts/open",
            "alerts",
            &[],
            "GET /v2/account/alerts/open",
        )
        .await
    }

    /// One alert; `None` when Datto does not know it (404, or 400 for a uid it rejects).
    pub async fn alert(&self, uid: &AlertUid) -> Result<Option<Alert>, Error> {
        Ok(self.lookup_alert(uid).await?.ok())
    }

    async fn lookup_alert(&self, uid: &AlertUid) -> Result<Result<Alert, u16>, Error> {
        let path = "GET /v2/alert/{uid}";
        let url = self.base.endpoint("/api/v2/alert", &[uid.as_str()]);
        let reply = self.call(Method::GET, &url, path).await?;
        match reply.status {
            s if s.is_success() => parse_json(&reply.body, path).map(Ok),
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => Ok(Err(reply.status.as_u16())),
            s => Err(unexpected(s, path)),
        }
    }

    /// Resolve an alert. On a refusal other than 401/403/429/5xx the alert is read back:
    /// resolved → `AlreadyResolved`; unknown (404/400) → `Unknown`; still open → an
    /// `Unavailable` error, to be retried later.
    pub async fn resolve_alert(&self, uid: &AlertUid) -> Result<ResolveOutcome, Error> {
        let path = "POST /v2/alert/{uid}/resolve";
        let url = self.base.endpoint("/api/v2/alert", &[uid.as_str(), "resolve"]);
        let reply = self.call(Method::POST, &url, path).await?;
        if reply.status.is_success() {
            return Ok(ResolveOutcome::Resolved);
        }
        let refused = reply.status.as_u16();
        match self.lookup_alert(uid).await? {
            Ok(alert) if alert.resolved => Ok(ResolveOutcome::AlreadyResolved),
            Ok(_) => Err(Error::Unavailable(format!(
                "Datto answered HTTP {refused} to resolving alert {uid} and the alert is still open"
            ))),
            Err(status) => Ok(ResolveOutcome::Unknown { status }),
        }
    }

    /// One device; `None` when Datto does not know it (404).
    pub async fn device(&self, uid: &str) -> Result<Option<Device>, Error> {
        let path = "GET /v2/device/{uid}";
        let uid = uid.trim();
        if uid.is_empty() {
            return Ok(None);
        }
        let url = self.base.endpoint("/api/v2/device", &[uid]);
        let reply = self.call(Method::GET, &url, path).await?;
        match reply.status {
            s if s.is_success() => parse_json(&reply.body, path).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(unexpected(s, path)),
        }
    }

    /// The account's use of its request quota (counts against the budget like any call).
    pub async fn request_rate(&self) -> Result<RateStatus, Error> {
        self.get_json("/api/v2/system/request_rate", "GET /v2/system/request_rate")
            .await
    }

    /// The account itself: the cheap call behind "Test configuration".
    pub async fn account(&self) -> Result<Account, Error> {
        self.get_json("/api/v2/account", "GET /v2/account").await
    }

    // ----- plumbing --------------------------------------------------------------------

    async fn get_json<T: DeserializeOwned>(&self, api_path: &str, path: &str) -> Result<T, Error> {
        let url = self.base.endpoint(api_path, &[]);
        let reply = self.call(Method::GET, &url, path).await?;
        if !reply.status.is_success() {
            return Err(unexpected(reply.status, path));
        }
        parse_json(&reply.body, path)
    }

    /// Read every page of a list. Filters are re-added to `nextPageUrl` when Datto drops
    /// them; a `nextPageUrl` on another origin is refused before the token is sent there.
    async fn list<T: DeserializeOwned>(
        &self,
        api_path: &str,
        items: &str,
        filters: &[(&str, &str)],
        path: &str,
    ) -> Result<Vec<T>, Error> {
        let mut url = self.base.endpoint(api_path, &[]);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("max", &self.page_size.to_string())
                .append_pair("page", "0");
            for (k, v) in filters {
                q.append_pair(k, v);
            }
        }
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        loop {
            if !seen.insert(url.to_string()) || seen.len() > MAX_PAGES {
                return Err(Error::Malformed(format!(
                    "{path}: nextPageUrl loops back to a page already read"
                )));
            }
            let reply = self.call(Method::GET, &url, path).await?;
            if !reply.status.is_success() {
                return Err(unexpected(reply.status, path));
            }
            let (details, page) =
                parse_page::<T>(&reply.body, items).map_err(|e| Error::Malformed(format!("{path}: {e}")))?;
            out.extend(page);
            match details.next_page_url {
                None => return Ok(out),
                Some(next) => url = self.next_page(&next, filters, path)?,
            }
        }
    }

    fn next_page(&self, next: &str, filters: &[(&str, &str)], path: &str) -> Result<Url, Error> {
        let mut url = Url::parse(next)
            .or_else(|_| self.base.url.join(next))
            .map_err(|e| Error::Malformed(format!("{path}: nextPageUrl {next:?} is not a URL ({e})")))?;
        if !self.base.same_origin(&url) {
            return Err(Error::Malformed(format!(
                "{path}: nextPageUrl points to {}, not to {}; the token is not sent there",
                url.origin().ascii_serialization(),
                self.base
            )));
        }
        if !url.path().starts_with("/api/") {
            return Err(Error::Malformed(format!(
                "{path}: nextPageUrl {next:?} is outside /api"
            )));
        }
        let present: HashSet<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let missing: Vec<_> = filters.iter().filter(|(k, _)| !present.contains(*k)).collect();
        if !missing.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in missing {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// An authorised call: on a 401 the token is re-minted once (or taken from whoever
    /// re-minted it meanwhile) and the call repeated once.
    async fn call(&self, method: Method, url: &Url, path: &str) -> Result<Reply, Error> {
        let mut rejected = None;
        loop {
            let token = self.token(rejected.as_ref()).await?;
            let reply = self.exchange(method.clone(), url, path, Auth::Bearer(&token)).await?;
            if reply.status != StatusCode::UNAUTHORIZED {
                return Ok(reply);
            }
            if rejected.is_some() {
                return Err(Error::Unauthorized);
            }
            tracing::info!(path, "Datto answered 401: minting a new token");
            rejected = Some(token);
        }
    }

    fn owner(&self) -> TokenOwner<'_> {
        TokenOwner {
            vendor: TOKEN_VENDOR,
            base_url: self.base.as_str(),
            account: &self.api_key,
            secret: &self.api_secret,
            renew_margin: TOKEN_RENEW_MARGIN,
        }
    }

    /// The cached token (this process's or the shared one), or a new one by the password
    /// grant; never `rejected`.
    async fn token(&self, rejected: Option<&SecretString>) -> Result<SecretString, Error> {
        self.tokens
            .get(&self.owner(), rejected, move || self.mint_token())
            .await
    }

    async fn mint_token(&self) -> Result<MintedToken, Error> {
        let path = "POST /auth/oauth/token";
        let url = self.base.endpoint("/auth/oauth/token", &[]);
        let reply = self.exchange(Method::POST, &url, path, Auth::PasswordGrant).await?;
        match reply.status {
            s if s.is_success() => {}
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => return Err(Error::Unauthorized),
            s => return Err(unexpected(s, path)),
        }
        let answer: TokenAnswer = parse_json(&reply.body, path)?;
        if answer.access_token.trim().is_empty() {
            return Err(Error::Malformed("the token answer has an empty access_token".into()));
        }
        let lifetime = answer
            .expires_in
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(TOKEN_FALLBACK_LIFETIME);
        Ok(MintedToken {
            token: SecretString::new(answer.access_token),
            lifetime,
        })
    }

    /// The cached token's expiry, if this client's account has one cached in this process.
    pub async fn token_expires_at(&self) -> Option<DateTime<Utc>> {
        self.tokens.expires_at(&self.owner()).await
    }

    /// Wait for a budget slot (or fail with `Blocked` / `Throttled`).
    async fn take_slot(&self) -> Result<(), Error> {
        let started = self.clock.now();
        let config = self.budget.config().clone();
        let max_wait = chrono::Duration::from_std(config.max_wait).unwrap_or_default();
        loop {
            let acquired = self
                .budget
                .try_acquire()
                .await
                .map_err(|e| Error::Unavailable(format!("the request budget store failed: {e}")))?;
            let until = match acquired {
                Acquire::Granted => return Ok(()),
                Acquire::Blocked(until) => return Err(Error::Blocked { until }),
                Acquire::WaitUntil(until) => until,
            };
            if !config.wait_when_exhausted || until - started > max_wait {
                return Err(Error::Throttled);
            }
            let wait = (until - self.clock.now()).to_std().unwrap_or_default();
            self.sleeper.sleep(wait.max(Duration::from_millis(10))).await;
        }
    }

    /// One request with the budget, 403, 429 and transient-retry rules applied. Returns
    /// 2xx, 401 and the other 4xx (and stray 1xx/3xx) for the caller to judge.
    async fn exchange(&self, method: Method, url: &Url, path: &str, auth: Auth<'_>) -> Result<Reply, Error> {
        let sleeper = self.sleeper.clone();
        let sleep = move |d: Duration| {
            let sleeper = sleeper.clone();
            async move { sleeper.sleep(d).await }
        };
        let (budget, clock, path_owned) = (self.budget.clone(), self.clock.clone(), path.to_string());
        self.retry
            .run(
                move || self.exchange_once(method.clone(), url, path, auth),
                sleep,
                // Owns what it uses: a closure over `&Failed` that borrowed would trip
                // rustc's higher-ranked `Send` check in the `async_trait` callers.
                move |failed: &Failed, wait| match failed {
                    Failed::Throttled { retry_after } => {
                        // Nobody in this process sends before the pause is over.
                        let pause = retry_after.unwrap_or(wait);
                        budget.note_throttled(clock.now() + chrono::Duration::from_std(pause).unwrap_or_default());
                        tracing::warn!(path = %path_owned, ?retry_after, ?wait, "Datto answered 429; backing off");
                    }
                    Failed::Status(s) => {
                        tracing::warn!(path = %path_owned, status = s.as_u16(), ?wait, "Datto failed; retrying")
                    }
                    Failed::Transport { timeout, detail } => {
                        tracing::warn!(path = %path_owned, timeout, %detail, ?wait, "Datto call failed; retrying")
                    }
                    Failed::Final(_) => {}
                },
            )
            .await
            .map_err(|f| f.into_error(path))
    }

    /// One attempt: a budget slot, the request, and the status rules.
    async fn exchange_once(&self, method: Method, url: &Url, path: &str, auth: Auth<'_>) -> Result<Reply, Failed> {
        self.take_slot().await.map_err(Failed::Final)?;
        let reply = match self.attempt(method, url, &auth).await {
            Attempt::Reply(r) => r,
            Attempt::Failed { timeout, detail } => return Err(Failed::Transport { timeout, detail }),
        };
        let status = reply.status;
        if status.is_success() {
            self.budget.note_success(path);
            return Ok(reply);
        }
        match status {
            StatusCode::FORBIDDEN => {
                tracing::warn!(path, body = %snippet(&reply.body), "Datto answered 403");
                Err(Failed::Final(match self.budget.note_forbidden(path).await {
                    Some(until) => Error::Blocked { until },
                    None => Error::Forbidden,
                }))
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let now = self.clock.now();
                let retry_after = reply.retry_after.as_deref().and_then(|v| parse_retry_after(v, now));
                // Even when this call gives up, the rest of the process holds back.
                self.budget.note_throttled(
                    now + chrono::Duration::from_std(retry_after.unwrap_or_default()).unwrap_or_default(),
                );
                Err(Failed::Throttled { retry_after })
            }
            s if s.is_server_error() => Err(Failed::Status(s)),
            _ => Ok(reply),
        }
    }

    async fn attempt(&self, method: Method, url: &Url, auth: &Auth<'_>) -> Attempt {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let mut rb = self
            .http
            .request(method, url.clone())
            .timeout(self.timeout)
            .header(ACCEPT, "application/json");
        rb = match auth {
            Auth::Bearer(token) => rb.bearer_auth(token.expose()),
            Auth::PasswordGrant => rb.basic_auth(OAUTH_CLIENT.0, Some(OAUTH_CLIENT.1)).form(&[
                ("grant_type", "password"),
                ("username", self.api_key.as_str()),
                ("password", self.api_secret.expose()),
            ]),
        };
        let failed = |e: reqwest::Error| Attempt::Failed {
            timeout: e.is_timeout(),
            // Without the URL: it is ours, and the error text then stays short.
            detail: e.without_url().to_string(),
        };
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match resp.bytes().await {
            Ok(b) => Attempt::Reply(Reply {
                status,
                body: b.to_vec(),
                retry_after,
            }),
            Err(e) => failed(e),
        }
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8], path: &str) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Malformed(format!("{path}: {e}")))
}

fn unexpected(status: StatusCode, path: &str) -> Error {
    Error::Unavailable(format!("Datto answered HTTP {} to {path}", status.as_u16()))
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::SqliteRecordStore;
    use crate::datto::budget::{BudgetConfig, BLOCK_KEY};
    use crate::datto::fake::{fixtures, Failure, FakeDatto, RecordingSleeper};
    use crate::ports::{ManualClock, RecordStore};

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    struct Rig {
        fake: FakeDatto,
        clock: Arc<ManualClock>,
        sleeper: Arc<RecordingSleeper>,
        store: Arc<dyn RecordStore>,
        client: Client,
        _dir: tempfile::TempDir,
    }

    impl Rig {
        /// Another client of the same account, as in another Lambda instance: own budget
        /// object, own token cache, same store.
        fn other_instance(&self) -> Client {
            let budget = RequestBudget::shared(
                self.client.budget.config().clone(),
                self.store.clone(),
                self.clock.clone(),
            );
            let config = config_for(&self.fake);
            Client::new(config, budget, self.clock.clone(), self.sleeper.clone()).unwrap()
        }
    }

    fn config_for(fake: &FakeDatto) -> ClientConfig {
        ClientConfig::new(
            DattoBaseUrl::parse_allowing_loopback(fake.base_url()).unwrap(),
            FakeDatto::API_KEY,
            SecretString::new(FakeDatto::API_SECRET),
        )
    }

    async fn rig_with(budget: BudgetConfig, tweak: impl FnOnce(&mut ClientConfig)) -> Rig {
        let clock = Arc::new(ManualClock::new(start()));
        let fake = FakeDatto::start_with_clock(clock.clone()).await;
        fake.seed_fixtures();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn RecordStore> =
            Arc::new(SqliteRecordStore::open(&dir.path().join("store.sqlite"), clock.clone()).unwrap());
        let sleeper = RecordingSleeper::new(clock.clone());
        let mut config = config_for(&fake);
        tweak(&mut config);
        let budget = RequestBudget::shared(budget, store.clone(), clock.clone());
        let client = Client::new(config, budget, clock.clone(), sleeper.clone()).unwrap();
        Rig {
            fake,
            clock,
            sleeper,
            store,
            client,
            _dir: dir,
        }
    }

    async fn rig() -> Rig {
        rig_with(BudgetConfig::default(), |_| {}).await
    }

    fn budget(per_minute: u32) -> BudgetConfig {
        BudgetConfig {
            per_minute,
            ..BudgetConfig::default()
        }
    }

    fn uid(s: &str) -> AlertUid {
        AlertUid::parse("uid", s).unwrap()
    }

    // ----- base URL ------------------------------------------------------------------

    #[test]
    fn pasted_api_urls_normalise_to_the_platform_api_host() {
        let concord = "https://concord-api.centrastage.net";
        let cases = [
            (
                "https://concord-api.centrastage.net",
                concord,
                "as shown next to the keys",
            ),
            (
                "  https://concord-api.centrastage.net/  ",
                concord,
                "spaces and trailing slash",
            ),
            ("https://concord-api.centrastage.net/api", concord, "trailing /api"),
            (
                "https://concord-api.centrastage.net/api/v2/",
                concord,
                "trailing /api/v2/",
            ),
            ("concord-api.centrastage.net", concord, "no scheme"),
            ("concord", concord, "bare platform name"),
            ("Concord", concord, "capitalised like the [platform] placeholder"),
            (
                "https://concord.centrastage.net/csm/search?qs=x",
                concord,
                "web-UI host",
            ),
            (
                "https://concord.rmm.datto.com/alert/5d1f0c6e",
                concord,
                "new web-UI host",
            ),
            (
                "HTTPS://MERLOT-API.CENTRASTAGE.NET",
                "https://merlot-api.centrastage.net",
                "upper case",
            ),
        ];
        for (input, want, why) in cases {
            let got = DattoBaseUrl::parse(input).unwrap_or_else(|e| panic!("{why}: {input:?}: {e}"));
            assert_eq!(got.as_str(), want, "{why}");
        }
        assert_eq!(DattoBaseUrl::parse("vidal").unwrap().platform(), Some("vidal"));
    }

    #[test]
    fn api_urls_that_could_leak_the_token_are_refused() {
        let cases = [
            ("", "empty"),
            ("http://concord-api.centrastage.net", "plain http"),
            ("https://concord-api.centrastage.net:8443", "other port"),
            ("https://evil.example", "foreign host"),
            ("https://concord-api.centrastage.net.evil.example", "look-alike suffix"),
            ("https://centrastage.net", "no platform"),
            ("https://user:pw@concord-api.centrastage.net", "credentials in the URL"),
            ("concrd", "misspelt platform"),
            ("http://127.0.0.1:8080", "loopback without the test constructor"),
            ("ftp://concord-api.centrastage.net", "other scheme"),
        ];
        for (input, why) in cases {
            assert!(
                matches!(DattoBaseUrl::parse(input), Err(Error::BadConfig(_))),
                "{why}: {input:?} should be refused"
            );
        }
    }

    #[test]
    fn loopback_is_accepted_only_by_the_test_constructor() {
        let b = DattoBaseUrl::parse_allowing_loopback("http://127.0.0.1:4321/api/v2").unwrap();
        assert_eq!(b.as_str(), "http://127.0.0.1:4321");
        assert!(b.is_loopback());
        assert_eq!(
            DattoBaseUrl::parse_allowing_loopback("http://localhost:9")
                .unwrap()
                .as_str(),
            "http://localhost:9"
        );
        assert!(DattoBaseUrl::parse_allowing_loopback("http://10.0.0.1:80").is_err());
        assert!(DattoBaseUrl::parse_allowing_loopback("http://127.0.0.1:80/other").is_err());
        assert!(DattoBaseUrl::parse_allowing_loopback("concord").is_ok());
    }

    #[test]
    fn backoff_after_a_429_never_undercuts_retry_after() {
        // (Retry-After parsing itself is tested with the policy, in `retry`.)
        let p = default_retry();
        let throttled = |ra: Option<u64>| RetryClass::Throttled {
            retry_after: ra.map(Duration::from_secs),
        };
        for _ in 0..200 {
            let d = p.wait_before(0, throttled(Some(7))).unwrap();
            assert!(d >= Duration::from_secs(7) && d < Duration::from_secs(9), "{d:?}");
            let d = p.wait_before(0, throttled(None)).unwrap();
            assert!(d >= Duration::from_secs(30) && d < Duration::from_secs(120), "{d:?}");
        }
    }

    // ----- paging ----------------------------------------------------------------------

    #[tokio::test]
    async fn sites_are_read_over_two_pages_including_the_deleted_devices_site() {
        let r = rig().await;
        r.fake.set_page_size(2);

        let sites = r.client.sites().await.unwrap();

        let names: Vec<_> = sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Acme Ltd - Head Office",
                "Birch & Co Accountants",
                "Cobalt Dental Clinic",
                "Deleted Devices"
            ]
        );
        assert!(sites[3].is_deleted_devices());
        assert_eq!(r.fake.count("/api/v2/account/sites"), 2);
        assert_eq!(r.fake.tokens_minted(), 1);
        assert_eq!(r.client.requests_sent(), 3);
    }

    #[tokio::test]
    async fn filters_dropped_from_next_page_url_are_added_back() {
        let r = rig().await;
        r.fake.set_page_size(1);
        r.fake.set_drop_filters_on_next_page(true);

        let sites = r.client.sites_named("o").await.unwrap();

        let names: Vec<_> = sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Acme Ltd - Head Office",
                "Birch & Co Accountants",
                "Cobalt Dental Clinic"
            ]
        );
        let pages: Vec<_> = r
            .fake
            .requests()
            .into_iter()
            .filter(|q| q.path == "/api/v2/account/sites")
            .collect();
        assert_eq!(pages.len(), 3);
        assert!(pages
            .iter()
            .all(|q| q.query.as_deref().unwrap_or_default().contains("siteName=o")));
    }

    #[tokio::test]
    async fn open_alerts_are_read_over_every_page_without_a_total_count() {
        let r = rig().await;
        r.fake.set_page_size(2);
        let alerts = r.client.open_alerts().await.unwrap();
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts[0].alert_uid, fixtures::ALERT_UID);
        assert_eq!(r.fake.count("/api/v2/account/alerts/open"), 2);
    }

    #[tokio::test]
    async fn next_page_url_on_a_foreign_host_is_refused_before_the_token_goes_there() {
        let r = rig().await;
        r.fake.set_page_size(2);
        r.fake.set_next_page_base(Some("https://evil.example"));

        let err = r.client.sites().await.unwrap_err();

        assert!(
            matches!(&err, Error::Malformed(m) if m.contains("https://evil.example")),
            "{err}"
        );
        assert_eq!(r.fake.count("/api/v2/account/sites"), 1);
    }

    #[tokio::test]
    async fn next_page_url_with_another_scheme_on_the_same_host_is_refused() {
        let r = rig().await;
        r.fake.set_page_size(2);
        let https_twin = r.fake.base_url().replace("http://", "https://");
        r.fake.set_next_page_base(Some(&https_twin));
        assert!(matches!(r.client.sites().await, Err(Error::Malformed(_))));
    }

    // ----- token -----------------------------------------------------------------------

    #[tokio::test]
    async fn token_is_cached_across_calls_and_reminted_once_after_a_401() {
        let r = rig().await;
        for _ in 0..3 {
            r.client.account().await.unwrap();
        }
        let clone = r.client.clone();
        clone.request_rate().await.unwrap();
        assert_eq!(r.fake.tokens_minted(), 1, "one token for every call and clone");

        r.fake.expire_tokens();
        let account = r.client.account().await.unwrap();

        assert_eq!(account.uid.as_deref(), Some("e4b7c91d"));
        assert_eq!(r.fake.tokens_minted(), 2);
        assert_eq!(r.fake.count("/api/v2/account"), 5, "3 + the 401 + its retry");
    }

    #[tokio::test]
    async fn a_second_401_with_a_fresh_token_is_unauthorized() {
        let r = rig().await;
        r.fake.fail_next_on("/api/v2/account", 2, Failure::Unauthorized);
        assert_eq!(r.client.account().await.unwrap_err(), Error::Unauthorized);
        assert_eq!(r.fake.tokens_minted(), 2);
        assert_eq!(r.fake.count("/api/v2/account"), 2);
    }

    #[tokio::test]
    async fn concurrent_first_calls_share_one_token() {
        let r = rig().await;
        let (a, b, c) = tokio::join!(r.client.account(), r.client.request_rate(), r.client.account());
        assert!(a.is_ok() && b.is_ok() && c.is_ok());
        assert_eq!(r.fake.tokens_minted(), 1);
    }

    #[tokio::test]
    async fn token_is_renewed_an_hour_before_it_expires() {
        let r = rig().await;
        r.fake.set_token_lifetime(10 * 3600);
        r.client.account().await.unwrap();
        assert_eq!(
            r.client.token_expires_at().await,
            Some(start() + chrono::Duration::hours(10))
        );

        r.clock.advance(Duration::from_secs(9 * 3600 - 60));
        r.client.account().await.unwrap();
        assert_eq!(r.fake.tokens_minted(), 1);

        r.clock.advance(Duration::from_secs(120));
        r.client.account().await.unwrap();
        assert_eq!(r.fake.tokens_minted(), 2);
    }

    #[tokio::test]
    async fn token_request_is_form_encoded_with_the_public_client() {
        // The fake checks Basic public-client:public and a form body; the secret holds
        // `&`, `+`, `=` and a space, which break an unencoded form.
        let r = rig().await;
        r.client.account().await.unwrap();
        let token_calls: Vec<_> = r
            .fake
            .requests()
            .into_iter()
            .filter(|q| q.path == "/auth/oauth/token")
            .collect();
        assert_eq!(token_calls.len(), 1);
        assert_eq!(token_calls[0].status, 200);
    }

    #[tokio::test]
    async fn a_wrong_secret_is_unauthorized_in_plain_words() {
        let r = rig().await;
        let mut config = config_for(&r.fake);
        config.api_secret = SecretString::new("wrong");
        let budget = RequestBudget::in_process(BudgetConfig::default(), r.clock.clone());
        let client = Client::new(config, budget, r.clock.clone(), r.sleeper.clone()).unwrap();

        let err = client.account().await.unwrap_err();

        assert_eq!(err, Error::Unauthorized);
        assert!(err.to_string().contains("API key and secret"));
        assert!(!err.is_transient());
        assert_eq!(r.fake.count("/api/v2/account"), 0);
    }

    // ----- 429 and the budget ----------------------------------------------------------

    #[tokio::test]
    async fn a_429_storm_backs_off_at_least_retry_after_and_then_succeeds() {
        let r = rig().await;
        r.fake
            .fail_next_on("/api/v2/account", 3, Failure::TooManyRequests { retry_after: Some(7) });

        r.client.account().await.unwrap();

        let slept = r.sleeper.slept();
        assert_eq!(slept.len(), 3, "{slept:?}");
        assert!(slept.iter().all(|d| *d >= Duration::from_secs(7)), "{slept:?}");
        assert_eq!(r.fake.count("/api/v2/account"), 4);
    }

    #[tokio::test]
    async fn many_calls_during_a_429_storm_never_exceed_the_budget_in_any_rolling_minute() {
        let r = rig_with(budget(5), |_| {}).await;
        r.fake.fail_next(3, Failure::TooManyRequests { retry_after: Some(3) });

        for i in 0..30 {
            if i == 10 {
                r.fake
                    .fail_next_on("/api/v2/account", 3, Failure::TooManyRequests { retry_after: Some(20) });
            }
            r.client.account().await.unwrap();
        }

        assert_eq!(
            r.fake.count("/auth/oauth/token"),
            4,
            "the first three 429s hit the token request"
        );
        assert_eq!(r.fake.count("/api/v2/account"), 30 + 3);
        assert!(
            r.fake.max_requests_in_rolling_minute() <= 5,
            "{}",
            r.fake.max_requests_in_rolling_minute()
        );
        assert!(
            r.sleeper.total() >= Duration::from_secs(5 * 60),
            "34 requests at 5 per ~minute"
        );
    }

    #[tokio::test]
    async fn two_instances_share_one_budget_through_the_store() {
        let r = rig_with(budget(6), |_| {}).await;
        let other = r.other_instance();
        for i in 0..20 {
            if i % 2 == 0 {
                r.client.account().await.unwrap();
            } else {
                other.account().await.unwrap();
            }
        }
        assert_eq!(r.fake.tokens_minted(), 2, "each instance minted its own");
        assert!(r.fake.max_requests_in_rolling_minute() <= 6);
    }

    #[tokio::test]
    async fn endless_429s_end_in_throttled_after_bounded_retries() {
        let r = rig().await;
        r.fake.fail_next_on(
            "/api/v2/account",
            100,
            Failure::TooManyRequests { retry_after: Some(1) },
        );
        assert_eq!(r.client.account().await.unwrap_err(), Error::Throttled);
        assert_eq!(r.fake.count("/api/v2/account"), 4);
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_limit_fails_at_once() {
        let r = rig().await;
        r.fake.fail_next_on(
            "/api/v2/account",
            1,
            Failure::TooManyRequests {
                retry_after: Some(3600),
            },
        );
        assert_eq!(r.client.account().await.unwrap_err(), Error::Throttled);
        assert!(r.sleeper.slept().is_empty());
    }

    #[tokio::test]
    async fn an_exhausted_budget_fails_fast_when_told_not_to_wait() {
        let config = BudgetConfig {
            per_minute: 3,
            wait_when_exhausted: false,
            ..BudgetConfig::default()
        };
        let r = rig_with(config, |_| {}).await;
        r.client.account().await.unwrap();
        r.client.account().await.unwrap();
        assert_eq!(r.client.account().await.unwrap_err(), Error::Throttled);
        assert_eq!(r.fake.request_count(), 3, "token + 2 calls; the third never left");
        assert!(r.sleeper.slept().is_empty());
    }

    // ----- 403 -------------------------------------------------------------------------

    #[tokio::test]
    async fn a_403_on_one_path_is_a_permission_error_without_a_block() {
        let r = rig().await;
        r.fake
            .fail_next_on("/api/v2/system/request_rate", 1, Failure::Forbidden);
        assert_eq!(r.client.request_rate().await.unwrap_err(), Error::Forbidden);
        r.client.account().await.unwrap();
    }

    #[tokio::test]
    async fn forbidden_answers_on_two_paths_stop_every_datto_call_for_five_minutes_in_every_instance() {
        let r = rig().await;
        r.client.account().await.unwrap();
        r.fake
            .fail_next_on("/api/v2/system/request_rate", 1, Failure::Forbidden);
        r.fake.fail_next_on("/api/v2/account/sites", 1, Failure::Forbidden);
        assert_eq!(r.client.request_rate().await.unwrap_err(), Error::Forbidden);

        let err = r.client.sites().await.unwrap_err();

        let until = start() + chrono::Duration::minutes(5);
        assert_eq!(err, Error::Blocked { until });
        assert!(err.to_string().contains("paused until"));
        assert!(r.store.get(BLOCK_KEY.0, BLOCK_KEY.1).await.unwrap().is_some());
        let seen = r.fake.request_count();
        assert_eq!(r.client.account().await.unwrap_err(), Error::Blocked { until });
        assert_eq!(
            r.client.resolve_alert(&uid(fixtures::ALERT_UID)).await.unwrap_err(),
            Error::Blocked { until }
        );
        r.clock.advance(Duration::from_secs(60));
        assert_eq!(
            r.other_instance().account().await.unwrap_err(),
            Error::Blocked { until },
            "no token either"
        );
        assert_eq!(r.fake.request_count(), seen, "nothing reached Datto during the block");

        r.clock.advance(Duration::from_secs(4 * 60));
        r.client.account().await.unwrap();
        r.client.sites().await.unwrap();
    }

    #[tokio::test]
    async fn a_403_on_a_path_that_worked_before_blocks_at_once() {
        let r = rig().await;
        r.client.open_alerts().await.unwrap();
        r.fake.forbid_for(Duration::from_secs(3600));
        let err = r.client.open_alerts().await.unwrap_err();
        assert!(matches!(err, Error::Blocked { .. }), "{err}");
        assert_eq!(r.fake.count("/api/v2/account/alerts/open"), 2);
    }

    // ----- 5xx and timeouts ----------------------------------------------------------------

    #[tokio::test]
    async fn a_5xx_is_retried_three_times_then_reported_unavailable() {
        let r = rig().await;
        r.fake.fail_next_on("/api/v2/account", 10, Failure::ServerError(503));

        let err = r.client.account().await.unwrap_err();

        assert!(matches!(&err, Error::Unavailable(m) if m.contains("503")), "{err}");
        assert!(err.is_transient());
        assert_eq!(r.fake.count("/api/v2/account"), 4);
        assert_eq!(r.sleeper.slept().len(), 3);
    }

    #[tokio::test]
    async fn a_few_504s_are_ridden_out() {
        let r = rig().await;
        r.fake
            .fail_next_on("/api/v2/account/alerts/open", 2, Failure::ServerError(504));
        assert_eq!(r.client.open_alerts().await.unwrap().len(), 3);
        assert_eq!(r.fake.count("/api/v2/account/alerts/open"), 3);
    }

    #[tokio::test]
    async fn a_slow_datto_times_out_after_bounded_retries() {
        let r = rig_with(BudgetConfig::default(), |c| c.timeout = Duration::from_millis(150)).await;
        r.fake
            .fail_next_on("/api/v2/account", 10, Failure::Slow(Duration::from_secs(3)));

        let err = r.client.account().await.unwrap_err();

        assert_eq!(err, Error::Timeout);
        assert_eq!(r.fake.count("/api/v2/account"), 4);
        assert_eq!(r.sleeper.slept().len(), 3);
    }

    // ----- single objects and resolve -----------------------------------------------------

    #[tokio::test]
    async fn resolve_follows_the_vendor_rule_for_resolved_already_resolved_and_unknown() {
        let r = rig().await;
        let known = uid(fixtures::ALERT_UID);

        assert_eq!(r.client.resolve_alert(&known).await.unwrap(), ResolveOutcome::Resolved);
        assert_eq!(r.fake.alert(fixtures::ALERT_UID).unwrap()["resolved"], true);
        assert_eq!(
            r.client.resolve_alert(&known).await.unwrap(),
            ResolveOutcome::AlreadyResolved
        );
        let unknown = uid("00000000-0000-4000-8000-000000000000");
        assert_eq!(
            r.client.resolve_alert(&unknown).await.unwrap(),
            ResolveOutcome::Unknown { status: 404 }
        );
        assert_eq!(
            r.client.alert(&known).await.unwrap().unwrap().resolved_by.as_deref(),
            Some("deskbridge-api")
        );
    }

    #[tokio::test]
    async fn a_2xx_to_resolving_an_already_resolved_alert_counts_as_resolved() {
        let r = rig().await;
        r.fake.set_already_resolved_status(200);
        r.fake.resolve_in_datto(fixtures::ALERT_UID);
        let got = r.client.resolve_alert(&uid(fixtures::ALERT_UID)).await.unwrap();
        assert_eq!(got, ResolveOutcome::Resolved);
    }

    #[tokio::test]
    async fn a_refused_resolve_of_a_still_open_alert_is_left_for_a_retry() {
        let r = rig().await;
        r.fake.fail_next_on("/api/v2/alert/", 1, Failure::Status(409));
        let err = r.client.resolve_alert(&uid(fixtures::ALERT_UID)).await.unwrap_err();
        assert!(matches!(&err, Error::Unavailable(m) if m.contains("409")), "{err}");
        assert_eq!(r.fake.alert(fixtures::ALERT_UID).unwrap()["resolved"], false);
    }

    #[tokio::test]
    async fn single_alerts_and_devices_are_read_bare_and_unknown_ones_are_none() {
        let r = rig().await;
        let alert = r.client.alert(&uid(fixtures::ALERT_UID)).await.unwrap().unwrap();
        assert_eq!(alert.to_facts().device_hostname.as_deref(), Some("ACME-DC01"));
        assert_eq!(
            r.client
                .alert(&uid("00000000-0000-4000-8000-000000000000"))
                .await
                .unwrap(),
            None
        );
        let device = r.client.device(fixtures::DEVICE_UID).await.unwrap().unwrap();
        assert_eq!(device.hostname.as_deref(), Some("ACME-DC01"));
        assert_eq!(r.client.device("no/such device").await.unwrap(), None);
        assert!(
            r.fake.count_prefix("/api/v2/device/no%2Fsuch") == 1,
            "uids are path-encoded"
        );
        let rate = r.client.request_rate().await.unwrap();
        assert_eq!(rate.account_rate_limit, Some(600));
    }

    // ----- scale -----------------------------------------------------------------------

    #[tokio::test]
    async fn two_thousand_sites_and_twenty_thousand_open_alerts_are_read_in_full() {
        let r = rig().await;
        r.fake.populate(2000, 20_000);
        let started = std::time::Instant::now();

        let sites = r.client.sites().await.unwrap();
        let alerts = r.client.open_alerts().await.unwrap();

        assert_eq!(sites.len(), 2004);
        assert_eq!(alerts.len(), 20_003);
        assert_eq!(r.fake.count("/api/v2/account/sites"), 9);
        assert_eq!(r.fake.count("/api/v2/account/alerts/open"), 81);
        // A figure, not a budget: timing is measured by the benchmarks (docs/perf.md).
        eprintln!("2 004 sites + 20 003 alerts read in {:?}", started.elapsed());
    }
}
