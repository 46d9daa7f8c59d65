//! The BeyondTrust API client: OAuth client-credentials token (cached, one per process,
//! re-minted once on a 401), command and reporting calls over form POSTs, bounded retries.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use reqwest::header::{HeaderValue, CONNECTION};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::command::{ApiInfo, LoggedInRep, SessionKey, SessionKeyRequest, SupportTeam};
use super::report::{session_listing_from_xml, ListingWindow, SessionSummary, SupportSessionReport};
use super::{xml, Error};
use crate::domain::remote::Lsid;
use crate::ports::{Clock, SecretString};

/// Refresh a token this long before it expires (at most half its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

// ---------------------------------------------------------------------------------------
// Retry policy
// ---------------------------------------------------------------------------------------

/// When to retry a failed call (5xx, 429, timeouts, connection errors — never other 4xx or
/// an `<error>` answer): after each delay of the schedule, at most two retries. With
/// jitter each delay is scaled by a random factor in [0.5, 1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    delays: Vec<Duration>,
    jitter: bool,
}

impl RetryPolicy {
    pub const MAX_RETRIES: usize = 2;

    /// A schedule of delays before retry 1, 2; longer schedules are cut to two.
    pub fn new(mut delays: Vec<Duration>, jitter: bool) -> Self {
        delays.truncate(Self::MAX_RETRIES);
        RetryPolicy { delays, jitter }
    }

    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy::new(Vec::new(), false)
    }

    /// `retries` retries without waiting (tests).
    pub fn immediate(retries: usize) -> Self {
        RetryPolicy::new(vec![Duration::ZERO; retries], false)
    }

    pub fn retries(&self) -> usize {
        self.delays.len()
    }

    fn delay(&self, retry: usize) -> Duration {
        let base = self.delays.get(retry).copied().unwrap_or_default();
        if !self.jitter || base.is_zero() {
            return base;
        }
        base.mul_f64(rand::rng().random_range(0.5..1.5))
    }
}

impl Default for RetryPolicy {
    /// 300 ms then 1.2 s, with jitter.
    fn default() -> Self {
        RetryPolicy::new(vec![Duration::from_millis(300), Duration::from_millis(1200)], true)
    }
}

// ---------------------------------------------------------------------------------------
// Token cache
// ---------------------------------------------------------------------------------------

struct CachedToken {
    /// Whose token it is; a cache shared by clients of another account is ignored.
    owner: String,
    token: SecretString,
    expires_at: DateTime<Utc>,
    refresh_at: DateTime<Utc>,
}

/// The process-wide OAuth token: shared by every `Client` built with a clone of it, reused
/// until shortly before it expires. Minting happens under the lock, so concurrent callers
/// wait for one token instead of minting their own (the vendor caps live tokens at 30).
#[derive(Clone)]
pub struct TokenCache {
    slot: Arc<tokio::sync::Mutex<Option<CachedToken>>>,
    clock: Arc<dyn Clock>,
}

impl TokenCache {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        TokenCache {
            slot: Arc::new(tokio::sync::Mutex::new(None)),
            clock,
        }
    }

    /// Forget the token (e.g. after the client secret was changed).
    pub async fn clear(&self) {
        *self.slot.lock().await = None;
    }

    /// The cached token and its expiry, e.g. to share it through a store across processes.
    pub async fn snapshot(&self) -> Option<(SecretString, DateTime<Utc>)> {
        self.slot.lock().await.as_ref().map(|c| (c.token.clone(), c.expires_at))
    }

    /// Adopt a token minted elsewhere for the account `client_id` of `base_url`.
    pub async fn seed(&self, base_url: &str, client_id: &str, token: SecretString, expires_at: DateTime<Utc>) {
        let lifetime = (expires_at - self.clock.now()).to_std().unwrap_or_default();
        *self.slot.lock().await = Some(CachedToken {
            owner: owner(base_url.trim_end_matches('/'), client_id),
            token,
            expires_at,
            refresh_at: refresh_at(expires_at, lifetime),
        });
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCache(..)")
    }
}

fn owner(base: &str, client_id: &str) -> String {
    format!("{base} {client_id}")
}

fn refresh_at(expires_at: DateTime<Utc>, lifetime: Duration) -> DateTime<Utc> {
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    expires_at - chrono::Duration::from_std(margin).unwrap_or_default()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

// ---------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------

/// How to reach one appliance.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://<site>`; `http://` only for loopback hosts (tests, fakes).
    pub base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Limit for one HTTP request, from connecting to the end of the body.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults: 10 s per call, [`RetryPolicy::default`].
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, client_secret: SecretString) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// The outcome of "Test configuration", one entry per failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigCheck {
    pub ok: bool,
    pub token_ok: bool,
    pub api_info_ok: bool,
    pub command_full_access: bool,
    pub reporting_support: bool,
    pub api_version: Option<String>,
    pub problems: Vec<String>,
}

/// A BeyondTrust Remote Support API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    tokens: TokenCache,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("beyondtrust::Client")
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// How one HTTP attempt failed.
enum Failure {
    Unauthorized,
    /// Worth retrying (5xx, 429, transport, timeout).
    Transient(String),
    Fatal(Error),
}

enum Api {
    Command,
    Reporting,
}

impl Client {
    pub fn new(config: ClientConfig, tokens: TokenCache) -> Result<Client, Error> {
        let base = validate_base_url(&config.base_url)?;
        if config.client_id.trim().is_empty() {
            return Err(Error::Invalid("client id is empty".into()));
        }
        if config.client_secret.expose().is_empty() {
            return Err(Error::Invalid("client secret is empty".into()));
        }
        if config.timeout.is_zero() {
            return Err(Error::Invalid("timeout must be positive".into()));
        }
        let http = reqwest::Client::builder()
            // The vendor asks integrators to close the connection after each call.
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .user_agent(concat!("deskbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            client_id: config.client_id.trim().to_string(),
            client_secret: config.client_secret,
            timeout: config.timeout,
            retry: config.retry,
            tokens,
        })
    }

    /// The token cache this client uses (to share it, or to persist its token).
    pub fn token_cache(&self) -> &TokenCache {
        &self.tokens
    }

    /// The validated base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `get_api_info`: version and permissions of the API account.
    pub async fn get_api_info(&self) -> Result<ApiInfo, Error> {
        let body = self
            .call(Api::Command, "get_api_info", vec![("action", "get_api_info".into())])
            .await?;
        ApiInfo::from_xml(&body)
    }

    /// `get_logged_in_reps`. The vendor asks callers to cache this list for a while.
    pub async fn get_logged_in_reps(&self) -> Result<Vec<LoggedInRep>, Error> {
        let body = self
            .call(
                Api::Command,
                "get_logged_in_reps",
                vec![("action", "get_logged_in_reps".into())],
            )
            .await?;
        LoggedInRep::list_from_xml(&body)
    }

    /// `get_support_teams&showmembers=1`.
    pub async fn get_support_teams(&self) -> Result<Vec<SupportTeam>, Error> {
        let body = self
            .call(
                Api::Command,
                "get_support_teams",
                vec![("action", "get_support_teams".into()), ("showmembers", "1".into())],
            )
            .await?;
        SupportTeam::list_from_xml(&body)
    }

    /// `generate_session_key` (needs full command access). A refusal — e.g. for a rep who
    /// is not logged in — is `Error::Api`. A retry after a timeout may leave an unused
    /// key behind on the appliance; keys only expire, so that is harmless.
    pub async fn generate_session_key(&self, request: &SessionKeyRequest) -> Result<SessionKey, Error> {
        let form = request.form()?;
        let body = self.call(Api::Command, "generate_session_key", form).await?;
        SessionKey::from_xml(&body)
    }

    /// `generate_report=SupportSession&lsid=…`. "Nothing matched" is `Error::Api`; check
    /// [`SupportSessionReport::is_complete`] before importing.
    pub async fn support_session_report(&self, lsid: &Lsid) -> Result<SupportSessionReport, Error> {
        let body = self
            .call(
                Api::Reporting,
                "SupportSession",
                vec![("generate_report", "SupportSession".into()), ("lsid", lsid.to_string())],
            )
            .await?;
        SupportSessionReport::from_xml(&body, Some(lsid.as_str()))
    }

    /// `generate_report=SupportSessionListing` over `window`: the sessions the sweep for
    /// lost end events checks. No session is an empty list.
    pub async fn support_session_listing(&self, window: &ListingWindow) -> Result<Vec<SessionSummary>, Error> {
        let mut form = vec![("generate_report", "SupportSessionListing".to_string())];
        form.extend(window.form());
        let body = self.call(Api::Reporting, "SupportSessionListing", form).await?;
        session_listing_from_xml(&body)
    }

    /// "Test configuration": a token, `get_api_info`, and the two permissions deskbridge
    /// needs, each failure reported on its own.
    pub async fn check_configuration(&self) -> ConfigCheck {
        let mut check = ConfigCheck {
            ok: false,
            token_ok: false,
            api_info_ok: false,
            command_full_access: false,
            reporting_support: false,
            api_version: None,
            problems: Vec::new(),
        };
        if let Err(e) = self.token().await {
            check.problems.push(format!("Could not get an OAuth token: {e}"));
            return check;
        }
        check.token_ok = true;
        match self.get_api_info().await {
            Ok(info) => {
                check.api_info_ok = true;
                check.command_full_access = info.command_full_access();
                check.reporting_support = info.reporting_support();
                check.api_version = info.api_version.clone();
                check.problems.extend(info.problems());
            }
            Err(e) => check.problems.push(format!("get_api_info failed: {e}")),
        }
        check.ok = check.problems.is_empty();
        check
    }

    // ---- plumbing ----------------------------------------------------------------------

    /// POST a form to the command or reporting API and return the 2xx body: retries
    /// transient failures per the policy, and on a 401 mints a new token and retries once.
    async fn call(&self, api: Api, label: &str, form: Vec<(&'static str, String)>) -> Result<String, Error> {
        let url = match api {
            Api::Command => format!("{}/api/command", self.base),
            Api::Reporting => format!("{}/api/reporting", self.base),
        };
        let mut token = self.token().await?;
        let mut reminted = false;
        let mut retry = 0;
        loop {
            let attempt = self
                .http
                .post(&url)
                .header(CONNECTION, HeaderValue::from_static("close"))
                .bearer_auth(token.expose())
                .form(&form)
                .timeout(self.timeout)
                .send()
                .await;
            match self.read(attempt).await {
                Ok(body) => return Ok(body),
                Err(Failure::Unauthorized) if !reminted => {
                    tracing::warn!(call = label, "BeyondTrust answered 401; minting a new token once");
                    reminted = true;
                    token = self.token_after_401(&token).await?;
                }
                Err(Failure::Unauthorized) => return Err(Error::Unauthorized),
                Err(Failure::Transient(why)) if retry < self.retry.retries() => {
                    let delay = self.retry.delay(retry);
                    retry += 1;
                    tracing::warn!(call = label, retry, ?delay, reason = %why, "BeyondTrust call failed; retrying");
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                }
                Err(Failure::Transient(why)) => {
                    tracing::warn!(call = label, reason = %why, "BeyondTrust call failed; giving up");
                    return Err(Error::Unavailable(why));
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// Classify one attempt's outcome.
    async fn read(&self, attempt: reqwest::Result<reqwest::Response>) -> Result<String, Failure> {
        let resp = attempt.map_err(|e| Failure::Transient(self.transport(&e)))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| Failure::Transient(self.transport(&e)))?;
        classify(status, body)
    }

    fn transport(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            format!("no answer within {:?}", self.timeout)
        } else if e.is_connect() {
            format!("cannot connect: {e}")
        } else {
            format!("transport error: {e}")
        }
    }

    /// The cached token, or a new one.
    async fn token(&self) -> Result<SecretString, Error> {
        let me = owner(&self.base, &self.client_id);
        let mut slot = self.tokens.slot.lock().await;
        let now = self.tokens.clock.now();
        if let Some(c) = slot.as_ref() {
            if c.owner == me && now < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        self.mint_into(&mut slot, me, now).await
    }

    /// After a 401 with `rejected`: adopt a token another task minted meanwhile, else mint.
    async fn token_after_401(&self, rejected: &SecretString) -> Result<SecretString, Error> {
        let me = owner(&self.base, &self.client_id);
        let mut slot = self.tokens.slot.lock().await;
        let now = self.tokens.clock.now();
        if let Some(c) = slot.as_ref() {
            if c.owner == me && &c.token != rejected && now < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        self.mint_into(&mut slot, me, now).await
    }

    async fn mint_into(
        &self,
        slot: &mut Option<CachedToken>,
        me: String,
        now: DateTime<Utc>,
    ) -> Result<SecretString, Error> {
        *slot = None;
        let (token, expires_in) = self.mint().await?;
        let lifetime = Duration::from_secs(expires_in);
        let expires_at = now + chrono::Duration::from_std(lifetime).unwrap_or_default();
        *slot = Some(CachedToken {
            owner: me,
            token: token.clone(),
            expires_at,
            refresh_at: refresh_at(expires_at, lifetime),
        });
        Ok(token)
    }

    /// `POST /oauth2/token` with client credentials.
    async fn mint(&self) -> Result<(SecretString, u64), Error> {
        let url = format!("{}/oauth2/token", self.base);
        let mut retry = 0;
        loop {
            let attempt = self
                .http
                .post(&url)
                .header(CONNECTION, HeaderValue::from_static("close"))
                .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                .form(&[("grant_type", "client_credentials")])
                .timeout(self.timeout)
                .send()
                .await;
            let failure = match attempt {
                Err(e) => Failure::Transient(self.transport(&e)),
                Ok(resp) => {
                    let status = resp.status();
                    match resp.text().await {
                        Err(e) => Failure::Transient(self.transport(&e)),
                        Ok(body) if status.is_success() => return parse_token(&body),
                        // A wrong id/secret: 401 or 400 (invalid_client) per OAuth.
                        Ok(_) if status == StatusCode::UNAUTHORIZED || status == StatusCode::BAD_REQUEST => {
                            return Err(Error::Unauthorized)
                        }
                        Ok(_) if status == StatusCode::FORBIDDEN => return Err(Error::Forbidden),
                        Ok(_) if is_transient_status(status) => {
                            Failure::Transient(format!("token endpoint answered HTTP {status}"))
                        }
                        Ok(_) => return Err(Error::Unavailable(format!("token endpoint answered HTTP {status}"))),
                    }
                }
            };
            match failure {
                Failure::Transient(why) if retry < self.retry.retries() => {
                    let delay = self.retry.delay(retry);
                    retry += 1;
                    tracing::warn!(retry, ?delay, reason = %why, "BeyondTrust token request failed; retrying");
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                }
                Failure::Transient(why) => return Err(Error::Unavailable(why)),
                Failure::Unauthorized => return Err(Error::Unauthorized),
                Failure::Fatal(e) => return Err(e),
            }
        }
    }
}

fn parse_token(body: &str) -> Result<(SecretString, u64), Error> {
    let answer: TokenAnswer = serde_json::from_str(body).map_err(|e| Error::Malformed(format!("token answer: {e}")))?;
    if answer.access_token.trim().is_empty() {
        return Err(Error::Malformed("token answer without access_token".into()));
    }
    if let Some(t) = answer.token_type.as_deref() {
        if !t.eq_ignore_ascii_case("bearer") {
            tracing::warn!(token_type = t, "unexpected BeyondTrust token type; using it as Bearer");
        }
    }
    let expires_in = match answer.expires_in {
        Some(0) | None => {
            tracing::warn!("BeyondTrust token answer without expires_in; assuming one hour");
            3600
        }
        Some(s) => s,
    };
    Ok((SecretString::new(answer.access_token.trim()), expires_in))
}

fn is_transient_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Map a command/reporting answer to its body or a failure.
fn classify(status: StatusCode, body: String) -> Result<String, Failure> {
    if status.is_success() {
        return Ok(body);
    }
    match status {
        StatusCode::UNAUTHORIZED => Err(Failure::Unauthorized),
        StatusCode::FORBIDDEN => Err(Failure::Fatal(Error::Forbidden)),
        s if is_transient_status(s) => Err(Failure::Transient(match xml::error_message(&body) {
            Some(m) => format!("HTTP {s}: {m}"),
            None => format!("HTTP {s}"),
        })),
        s => Err(Failure::Fatal(match xml::error_message(&body) {
            Some(m) => Error::Api(m),
            None => Error::Unavailable(format!("unexpected HTTP {s}")),
        })),
    }
}

/// `https://…`, or `http://` for a loopback host; no query, fragment or credentials.
fn validate_base_url(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = reqwest::Url::parse(trimmed).map_err(|e| Error::Invalid(format!("base URL {trimmed:?}: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| Error::Invalid("base URL has no host".into()))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(Error::Invalid("base URL must use https".into())),
        other => return Err(Error::Invalid(format!("base URL scheme {other:?} is not https"))),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Invalid("base URL must not have a query or fragment".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Invalid("base URL must not contain credentials".into()));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_must_be_https_or_loopback_http() {
        for (url, ok, why) in [
            ("https://support.example.com", true, "https"),
            ("https://support.example.com/", true, "trailing slash"),
            ("https://example.com/bt", true, "path prefix"),
            ("http://127.0.0.1:8080", true, "loopback v4"),
            ("http://localhost:1", true, "localhost"),
            ("http://[::1]:9", true, "loopback v6"),
            ("http://support.example.com", false, "plain http elsewhere"),
            ("http://10.0.0.1", false, "private address is not loopback"),
            ("ftp://support.example.com", false, "other scheme"),
            ("support.example.com", false, "no scheme"),
            ("https://u:p@support.example.com", false, "credentials"),
            ("https://support.example.com/?x=1", false, "query"),
        ] {
            assert_eq!(validate_base_url(url).is_ok(), ok, "{why}");
        }
        assert_eq!(
            validate_base_url(" https://support.example.com/ ").unwrap(),
            "https://support.example.com"
        );
    }

    #[test]
    fn token_answer_fixture_and_variants_parse() {
        let (t, exp) = parse_token(super::super::fixtures::TOKEN).unwrap();
        assert_eq!(t.expose(), "Zq3Xk9VwP2mT7sLr4NbYc8HdGf1JaE6uWo5QiR0v");
        assert_eq!(exp, 3600);
        let (_, exp) = parse_token(r#"{"access_token":"x","token_type":"bearer","expires_in":1799}"#).unwrap();
        assert_eq!(exp, 1799);
        let (_, exp) = parse_token(r#"{"access_token":"x"}"#).unwrap();
        assert_eq!(exp, 3600);
        assert!(matches!(
            parse_token(r#"{"access_token":" "}"#),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(parse_token("<html/>"), Err(Error::Malformed(_))));
    }

    #[test]
    fn refresh_happens_five_minutes_early_or_at_half_life() {
        let exp = DateTime::from_timestamp(10_000, 0).unwrap();
        assert_eq!(refresh_at(exp, Duration::from_secs(3600)).timestamp(), 10_000 - 300);
        assert_eq!(refresh_at(exp, Duration::from_secs(120)).timestamp(), 10_000 - 60);
    }

    #[test]
    fn statuses_are_classified() {
        let ok = classify(StatusCode::OK, "<x/>".into());
        assert!(matches!(ok, Ok(b) if b == "<x/>"));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, String::new()),
            Err(Failure::Unauthorized)
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, String::new()),
            Err(Failure::Fatal(Error::Forbidden))
        ));
        for s in [500, 502, 503, 504, 429] {
            let s = StatusCode::from_u16(s).unwrap();
            assert!(matches!(classify(s, String::new()), Err(Failure::Transient(_))), "{s}");
        }
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, "<error>bad action</error>".into()),
            Err(Failure::Fatal(Error::Api(m))) if m == "bad action"
        ));
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, "<html/>".into()),
            Err(Failure::Fatal(Error::Unavailable(_)))
        ));
    }

    #[test]
    fn retry_schedule_is_capped_at_two_and_jitter_stays_in_range() {
        let p = RetryPolicy::new(vec![Duration::from_millis(100); 5], true);
        assert_eq!(p.retries(), 2);
        for _ in 0..50 {
            let d = p.delay(0);
            assert!(
                d >= Duration::from_millis(50) && d < Duration::from_millis(150),
                "{d:?}"
            );
        }
        assert_eq!(RetryPolicy::immediate(2).delay(1), Duration::ZERO);
        assert_eq!(RetryPolicy::none().retries(), 0);
    }
}
