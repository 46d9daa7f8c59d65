//! The BeyondTrust API client: OAuth client-credentials token (in the shared
//! [`TokenCache`], re-minted once on a 401), command and reporting calls over form POSTs,
//! bounded retries by the crate's one [`RetryPolicy`].

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{HeaderValue, CONNECTION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::command::{ApiInfo, LoggedInRep, SessionKey, SessionKeyRequest, SupportTeam};
use super::report::{session_listing_from_xml, ListingWindow, SessionSummary, SupportSessionReport};
use super::{xml, Error};
use crate::domain::remote::Lsid;
use crate::ports::SecretString;
pub use crate::retry::RetryPolicy;
use crate::retry::{parse_retry_after, tokio_sleep, ClassifyRetry, RetryClass};
pub use crate::store::TokenCache;
use crate::store::{MintedToken, TokenOwner, TokenWaitTimeout};

/// Refresh a token this long before it expires (at most half its lifetime).
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The token record's key in the shared token store.
pub const TOKEN_VENDOR: &str = "beyondtrust";
/// At most this many retries per call, whatever the policy's schedule.
pub const MAX_RETRIES: usize = 2;

/// BeyondTrust's retry policy: 300 ms then 1.2 s (±50 %) after a 5xx, 429, timeout or
/// connection failure (never another 4xx or an `<error>` answer); a `Retry-After` up to
/// 5 s is waited for, a longer one fails the call (these calls serve people and 10-second
/// functions).
pub fn default_retry() -> RetryPolicy {
    RetryPolicy::new(vec![Duration::from_millis(300), Duration::from_millis(1200)])
        .with_max_retry_after(Duration::from_secs(5))
}

impl From<TokenWaitTimeout> for Error {
    fn from(e: TokenWaitTimeout) -> Self {
        Error::Unavailable(e.to_string())
    }
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
    /// Defaults: 10 s per call, [`default_retry`].
    pub fn new(base_url: impl Into<String>, client_id: impl Into<String>, client_secret: SecretString) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            client_id: client_id.into(),
            client_secret,
            timeout: Duration::from_secs(10),
            retry: default_retry(),
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
    /// Where call outcomes are noted for the health screen, if anywhere.
    health: Option<crate::store::HealthNotes>,
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
    /// 429, with its `Retry-After`.
    Throttled {
        why: String,
        retry_after: Option<Duration>,
    },
    Fatal(Error),
}

impl ClassifyRetry for Failure {
    fn retry_class(&self) -> RetryClass {
        match self {
            Failure::Transient(_) => RetryClass::Transient,
            Failure::Throttled { retry_after, .. } => RetryClass::Throttled {
                retry_after: *retry_after,
            },
            Failure::Unauthorized | Failure::Fatal(_) => RetryClass::Permanent,
        }
    }
}

impl Failure {
    /// The error of a failure that was not (or no longer) retried; `None` for a 401.
    fn into_error(self) -> Option<Error> {
        match self {
            Failure::Unauthorized => None,
            Failure::Transient(why) | Failure::Throttled { why, .. } => Some(Error::Unavailable(why)),
            Failure::Fatal(e) => Some(e),
        }
    }
}

/// Logs each retry; owns its label (a closure over `&Failure` that borrowed would trip
/// rustc's higher-ranked `Send` check in the `async_trait` callers).
fn log_retry(label: &str) -> impl FnMut(&Failure, Duration) {
    let label = label.to_string();
    move |failure, wait| {
        let why = match failure {
            Failure::Transient(why) | Failure::Throttled { why, .. } => why.as_str(),
            _ => "",
        };
        tracing::warn!(call = %label, ?wait, reason = %why, "BeyondTrust call failed; retrying");
    }
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
            retry: config.retry.capped(MAX_RETRIES),
            tokens,
            health: None,
        })
    }

    /// Note every call's outcome in `health` (the operations screen's vendor health).
    pub fn with_health(mut self, health: crate::store::HealthNotes) -> Client {
        self.health = Some(health);
        self
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
        if let Err(e) = self.token(None).await {
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
    /// transient failures per the policy, and on a 401 takes a new token (minted once for
    /// everyone) and tries once more.
    async fn call(&self, api: Api, label: &str, form: Vec<(&'static str, String)>) -> Result<String, Error> {
        let out = self.call_vendor(api, label, form).await;
        if let Some(h) = &self.health {
            h.note(label, out.as_ref().map(|_| ()).map_err(|e| e.to_string())).await;
        }
        out
    }

    async fn call_vendor(&self, api: Api, label: &str, form: Vec<(&'static str, String)>) -> Result<String, Error> {
        let url = match api {
            Api::Command => format!("{}/api/command", self.base),
            Api::Reporting => format!("{}/api/reporting", self.base),
        };
        let mut rejected: Option<SecretString> = None;
        loop {
            let token = self.token(rejected.as_ref()).await?;
            let (url, form, token_ref) = (&url, &form, &token);
            let outcome = self
                .retry
                .run(move || self.post(url, token_ref, form), tokio_sleep, log_retry(label))
                .await;
            let failure = match outcome {
                Ok(body) => return Ok(body),
                Err(f) => f,
            };
            match failure.into_error() {
                None if rejected.is_none() => {
                    tracing::warn!(call = label, "BeyondTrust answered 401; taking a new token once");
                    rejected = Some(token);
                }
                None => return Err(Error::Unauthorized),
                Some(e) => {
                    if e.is_transient() {
                        tracing::warn!(call = label, error = %e, "BeyondTrust call failed; giving up");
                    }
                    return Err(e);
                }
            }
        }
    }

    /// One POST with the bearer token.
    async fn post(&self, url: &str, token: &SecretString, form: &[(&'static str, String)]) -> Result<String, Failure> {
        let attempt = self
            .http
            .post(url)
            .header(CONNECTION, HeaderValue::from_static("close"))
            .bearer_auth(token.expose())
            .form(form)
            .timeout(self.timeout)
            .send()
            .await;
        self.read(attempt).await
    }

    /// Classify one attempt's outcome.
    async fn read(&self, attempt: reqwest::Result<reqwest::Response>) -> Result<String, Failure> {
        let resp = attempt.map_err(|e| Failure::Transient(self.transport(&e)))?;
        let status = resp.status();
        let retry_after = retry_after(&resp);
        let body = resp.text().await.map_err(|e| Failure::Transient(self.transport(&e)))?;
        classify(status, body).map_err(|f| f.throttled_if(status, retry_after))
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

    fn owner(&self) -> TokenOwner<'_> {
        TokenOwner {
            vendor: TOKEN_VENDOR,
            base_url: &self.base,
            account: &self.client_id,
            secret: &self.client_secret,
            renew_margin: REFRESH_MARGIN,
        }
    }

    /// The cached token (this process's or the shared one), or a new one; never `rejected`.
    async fn token(&self, rejected: Option<&SecretString>) -> Result<SecretString, Error> {
        self.tokens.get(&self.owner(), rejected, move || self.mint()).await
    }

    /// `POST /oauth2/token` with client credentials, retried per the policy.
    async fn mint(&self) -> Result<MintedToken, Error> {
        let outcome = self
            .retry
            .run(move || self.mint_once(), tokio_sleep, log_retry("oauth2/token"))
            .await;
        match outcome {
            Ok((token, expires_in)) => Ok(MintedToken {
                token,
                lifetime: Duration::from_secs(expires_in),
            }),
            Err(f) => Err(f.into_error().unwrap_or(Error::Unauthorized)),
        }
    }

    async fn mint_once(&self) -> Result<(SecretString, u64), Failure> {
        let url = format!("{}/oauth2/token", self.base);
        let attempt = self
            .http
            .post(&url)
            .header(CONNECTION, HeaderValue::from_static("close"))
            .basic_auth(&self.client_id, Some(self.client_secret.expose()))
            .form(&[("grant_type", "client_credentials")])
            .timeout(self.timeout)
            .send()
            .await;
        let resp = attempt.map_err(|e| Failure::Transient(self.transport(&e)))?;
        let status = resp.status();
        let retry_after = retry_after(&resp);
        let body = resp.text().await.map_err(|e| Failure::Transient(self.transport(&e)))?;
        match status {
            s if s.is_success() => parse_token(&body).map_err(Failure::Fatal),
            // A wrong id/secret: 401 or 400 (invalid_client) per OAuth.
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => Err(Failure::Fatal(Error::Unauthorized)),
            StatusCode::FORBIDDEN => Err(Failure::Fatal(Error::Forbidden)),
            s if is_transient_status(s) => {
                Err(Failure::Transient(format!("token endpoint answered HTTP {s}")).throttled_if(s, retry_after))
            }
            s => Err(Failure::Fatal(Error::Unavailable(format!(
                "token endpoint answered HTTP {s}"
            )))),
        }
    }
}

impl Failure {
    /// A transient failure of a 429 becomes a throttled one carrying `Retry-After`.
    fn throttled_if(self, status: StatusCode, retry_after: Option<Duration>) -> Failure {
        match self {
            Failure::Transient(why) if status == StatusCode::TOO_MANY_REQUESTS => {
                Failure::Throttled { why, retry_after }
            }
            other => other,
        }
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp.headers().get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(v, chrono::Utc::now())
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
        use crate::store::vendor_tokens::renew_at;
        let exp = chrono::DateTime::from_timestamp(10_000, 0).unwrap();
        assert_eq!(
            renew_at(exp, Duration::from_secs(3600), REFRESH_MARGIN).timestamp(),
            10_000 - 300
        );
        assert_eq!(
            renew_at(exp, Duration::from_secs(120), REFRESH_MARGIN).timestamp(),
            10_000 - 60
        );
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
        let config = ClientConfig {
            retry: RetryPolicy::new(vec![Duration::from_millis(100); 5]),
            ..ClientConfig::new("https://support.example.com", "id", SecretString::new("s"))
        };
        let clock: std::sync::Arc<dyn crate::ports::Clock> = std::sync::Arc::new(crate::ports::SystemClock);
        let p = Client::new(config, TokenCache::new(clock)).unwrap().retry;
        assert_eq!(p.retries(), 2);
        for _ in 0..50 {
            let d = p.wait_before(0, RetryClass::Transient).unwrap();
            assert!(
                d >= Duration::from_millis(50) && d < Duration::from_millis(150),
                "{d:?}"
            );
        }
        assert_eq!(
            RetryPolicy::immediate(2).wait_before(1, RetryClass::Transient),
            Some(Duration::ZERO)
        );
        assert_eq!(RetryPolicy::none().retries(), 0);
    }
}
