//! A stateful fake BeyondTrust appliance for tests: OAuth token endpoint, command and
//! reporting APIs (reports ready later, abnormal ends, the session listing) with failure modes
//! (statuses, 429 with and without Retry-After, delays, resets, cut and slow bodies).
//!
//! Start it with [`FakeBeyondTrust::start`]; point a `beyondtrust::Client` at the returned
//! base URL with [`CLIENT_ID`]/[`CLIENT_SECRET`] (or use [`FakeBeyondTrust::client_config`]).
//! The server stops when the handle is dropped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use quick_xml::escape::escape;

use chrono::{DateTime, Utc};

use super::client::{ClientConfig, RetryPolicy};
use super::fixtures;
use crate::ports::{Clock, SecretString, SystemClock};

/// The client id the fake accepts.
pub const CLIENT_ID: &str = "deskbridge-test-client";
/// The client secret the fake accepts.
pub const CLIENT_SECRET: &str = "fake-client-secret";
/// The namespace the fake's command answers declare.
pub const COMMAND_NS: &str = "http://www.beyondtrust.com/sra/namespaces/API/command";
/// The namespace the fake's reporting answers declare.
pub const REPORTING_NS: &str = "http://www.beyondtrust.com/sra/namespaces/API/reporting";
/// The endpoint name of the token endpoint, for [`FakeBeyondTrust::push_fault`] and
/// [`FakeBeyondTrust::calls`]; command calls use their action name, reporting calls
/// their report type (`SupportSession`).
pub const TOKEN_ENDPOINT: &str = "token";

/// A failure to answer one call of an endpoint with (faults are used up in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 200 with `<error>message</error>` as the root.
    ErrorRoot(String),
    /// HTTP 200 with `<error>message</error>` inside the expected root element.
    ErrorChild(String),
    /// This status and a short text body (401 here does not revoke the token).
    Status(u16),
    /// Wait, then answer normally (or with the next fault).
    Delay(Duration),
    /// HTTP 200 with this body as is.
    Body(String),
    /// HTTP 429, with `Retry-After: <secs>` when given.
    TooManyRequests { retry_after: Option<u64> },
    /// The connection is dropped before any answer (what a client sees as a reset).
    Reset,
    /// The real answer's head with its full `Content-Length`, half its body, then the
    /// connection is dropped.
    Truncated,
    /// The real answer's head at once, half its body, the rest after this long.
    SlowBody(Duration),
}

/// What the queued faults make of one call.
enum Applied {
    /// No fault left: the real answer.
    Normal,
    /// This answer instead of the real one.
    Instead(Response),
    /// The real answer, its body cut or trickled by this fault.
    Cut(Fault),
}

impl Applied {
    /// The call's answer, `real` computed only when it is sent (in part or whole).
    async fn answer(self, real: impl FnOnce() -> Response) -> Response {
        match self {
            Applied::Normal => real(),
            Applied::Instead(r) => r,
            Applied::Cut(how) => cut_body(real(), how).await,
        }
    }
}

/// `real` with its head and `Content-Length` kept and its body cut ([`Fault::Truncated`]:
/// half, then the connection dropped) or trickled ([`Fault::SlowBody`]).
async fn cut_body(real: Response, how: Fault) -> Response {
    let (mut parts, body) = real.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let (half, rest) = (bytes.slice(..bytes.len() / 2), bytes.slice(bytes.len() / 2..));
    parts.headers.insert(header::CONTENT_LENGTH, bytes.len().into());
    let tail = futures::stream::once(async move {
        if let Fault::SlowBody(d) = how {
            tokio::time::sleep(d).await;
            Ok(rest)
        } else {
            Err(std::io::Error::other("fake BeyondTrust: connection dropped mid-body"))
        }
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(half) }), tail);
    Response::from_parts(parts, axum::body::Body::from_stream(body))
}

/// A representative the fake lists as logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRep {
    pub id: String,
    /// Display and public name.
    pub display_name: String,
    pub private_display_name: String,
}

impl FakeRep {
    pub fn new(
        id: impl Into<String>,
        display_name: impl Into<String>,
        private_display_name: impl Into<String>,
    ) -> Self {
        FakeRep {
            id: id.into(),
            display_name: display_name.into(),
            private_display_name: private_display_name.into(),
        }
    }
}

/// A support team of the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTeam {
    pub id: String,
    pub name: String,
    pub code_name: String,
    /// Rep ids; with `showmembers=1` each is shown with the names of the rep the fake knows.
    pub member_ids: Vec<String>,
}

/// A session key the fake issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedKey {
    pub short_key: String,
    pub queue_id: String,
    pub external_key: Option<String>,
    pub ttl: Option<String>,
}

#[derive(Debug)]
enum ReportScript {
    /// Answers in order; the last one repeats.
    Sequence(Vec<String>),
    /// `pending` until the fake's clock reaches `at`, then `ready`.
    ReadyAt {
        pending: String,
        ready: String,
        at: DateTime<Utc>,
    },
}

#[derive(Debug)]
struct ScriptedReport {
    script: ReportScript,
    fetches: u32,
}

impl ScriptedReport {
    /// The answer of the next fetch.
    fn answer(&mut self, now: DateTime<Utc>) -> Option<String> {
        let answer = match &self.script {
            ReportScript::Sequence(answers) if answers.is_empty() => return None,
            ReportScript::Sequence(answers) => answers[(self.fetches as usize).min(answers.len() - 1)].clone(),
            ReportScript::ReadyAt { pending, .. } if now < self.ready_at() => pending.clone(),
            ReportScript::ReadyAt { ready, .. } => ready.clone(),
        };
        self.fetches += 1;
        Some(answer)
    }

    fn ready_at(&self) -> DateTime<Utc> {
        match &self.script {
            ReportScript::ReadyAt { at, .. } => *at,
            ReportScript::Sequence(_) => DateTime::<Utc>::MIN_UTC,
        }
    }

    /// The report as it finally reads (what the listing knows of the session).
    fn last(&self) -> Option<&str> {
        match &self.script {
            ReportScript::Sequence(answers) => answers.last().map(String::as_str),
            ReportScript::ReadyAt { ready, .. } => Some(ready),
        }
    }
}

/// Everything the fake remembers.
struct FakeState {
    expires_in: u64,
    valid_tokens: HashSet<String>,
    minted: u32,
    calls: HashMap<String, u32>,
    without_connection_close: u32,
    last_forms: HashMap<String, Vec<(String, String)>>,
    faults: HashMap<String, VecDeque<Fault>>,
    logged_in: Vec<FakeRep>,
    /// Every rep the fake knows (for team members), logged in or not.
    known_reps: Vec<FakeRep>,
    teams: Vec<FakeTeam>,
    api_info: String,
    issued: Vec<IssuedKey>,
    reports: HashMap<String, ScriptedReport>,
    base_url: String,
    clock: Arc<dyn Clock>,
}

impl FakeState {
    fn new(base_url: String, clock: Arc<dyn Clock>) -> Self {
        let alice = FakeRep::new("12", "Alice Martin", "Alice Martin (Service Desk)");
        let bob = FakeRep::new("17", "Bob", "Robert Keller (L2 Network)");
        let sam = FakeRep::new("21", "Sam", "Samuel Ortiz (Tier 1)");
        FakeState {
            expires_in: 3600,
            valid_tokens: HashSet::new(),
            minted: 0,
            calls: HashMap::new(),
            without_connection_close: 0,
            last_forms: HashMap::new(),
            faults: HashMap::new(),
            logged_in: vec![alice.clone(), bob.clone()],
            known_reps: vec![alice, bob, sam],
            teams: vec![
                FakeTeam {
                    id: "3".into(),
                    name: "Service Desk".into(),
                    code_name: "service_desk".into(),
                    member_ids: vec!["12".into(), "21".into()],
                },
                FakeTeam {
                    id: "5".into(),
                    name: "Network Team".into(),
                    code_name: "network_team".into(),
                    member_ids: vec!["17".into()],
                },
            ],
            api_info: fixtures::API_INFO.to_string(),
            issued: Vec::new(),
            reports: HashMap::new(),
            base_url,
            clock,
        }
    }
}

type Shared = Arc<Mutex<FakeState>>;

/// Handle to a running fake appliance.
pub struct FakeBeyondTrust {
    state: Shared,
    base_url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBeyondTrust {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeBeyondTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeBeyondTrust")
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl FakeBeyondTrust {
    /// Bind 127.0.0.1 on a free port and serve. Starts with reps 12 (Alice) and 17 (Bob)
    /// logged in, rep 21 (Sam) known but logged out, teams 3 and 5 as in the fixtures,
    /// the `get_api_info` fixture, no reports. Panics when no loopback port can be bound.
    pub async fn start() -> (String, FakeBeyondTrust) {
        Self::start_with_clock(Arc::new(SystemClock)).await
    }

    /// [`FakeBeyondTrust::start`] with reports that become ready by `clock`
    /// ([`FakeBeyondTrust::set_report_ready_after`]).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> (String, FakeBeyondTrust) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake BeyondTrust: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake BeyondTrust: local address");
        let base_url = format!("http://{addr}");
        let state: Shared = Arc::new(Mutex::new(FakeState::new(base_url.clone(), clock)));
        let app = Router::new()
            .route("/oauth2/token", post(token))
            .route("/api/command", post(command))
            .route("/api/reporting", post(reporting))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "fake BeyondTrust stopped");
            }
        });
        (base_url.clone(), FakeBeyondTrust { state, base_url, task })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A client configuration for this fake: right credentials, 2 s timeout, two
    /// immediate retries.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.base_url.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: SecretString::new(CLIENT_SECRET),
            timeout: Duration::from_secs(2),
            retry: RetryPolicy::immediate(2),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    // ---- steering ----------------------------------------------------------------------

    /// Log a representative in (replacing one with the same id).
    pub fn log_in(&self, rep: FakeRep) {
        let mut s = self.lock();
        s.logged_in.retain(|r| r.id != rep.id);
        if !s.known_reps.iter().any(|r| r.id == rep.id) {
            s.known_reps.push(rep.clone());
        }
        s.logged_in.push(rep);
    }

    pub fn log_out(&self, rep_id: &str) {
        self.lock().logged_in.retain(|r| r.id != rep_id);
    }

    pub fn set_teams(&self, teams: Vec<FakeTeam>) {
        self.lock().teams = teams;
    }

    /// The body `get_api_info` answers with.
    pub fn set_api_info(&self, xml: impl Into<String>) {
        self.lock().api_info = xml.into();
    }

    /// `expires_in` of the tokens minted from now on.
    pub fn set_token_lifetime(&self, secs: u64) {
        self.lock().expires_in = secs;
    }

    /// Invalidate every token minted so far (like regenerating the client secret, or the
    /// 31st token pushing out the oldest): their next use gets a 401.
    pub fn revoke_tokens(&self) {
        self.lock().valid_tokens.clear();
    }

    /// Answer the next call of `endpoint` (action name, report type or
    /// [`TOKEN_ENDPOINT`]) with `fault`; several faults are used in order.
    pub fn push_fault(&self, endpoint: &str, fault: Fault) {
        self.lock()
            .faults
            .entry(endpoint.to_string())
            .or_default()
            .push_back(fault);
    }

    /// The report of `lsid` (always the same answer).
    pub fn set_report(&self, lsid: &str, xml: impl Into<String>) {
        self.set_report_answers(lsid, vec![xml.into()]);
    }

    /// `incomplete` for the first `incomplete_fetches` fetches, then `complete`.
    pub fn set_report_sequence(
        &self,
        lsid: &str,
        incomplete: impl Into<String>,
        complete: impl Into<String>,
        incomplete_fetches: u32,
    ) {
        let incomplete = incomplete.into();
        let mut answers = vec![incomplete; incomplete_fetches as usize];
        answers.push(complete.into());
        self.set_report_answers(lsid, answers);
    }

    fn set_report_answers(&self, lsid: &str, answers: Vec<String>) {
        self.set_script(lsid, ReportScript::Sequence(answers));
    }

    /// `pending` until `after` has passed on the fake's clock from now, then `ready`: call
    /// it when the session ends, for a report that becomes ready N seconds after the end
    /// event (the appliance writes the report after the event goes out).
    pub fn set_report_ready_after(
        &self,
        lsid: &str,
        pending: impl Into<String>,
        ready: impl Into<String>,
        after: Duration,
    ) {
        let now = self.lock().clock.now();
        let at = now + chrono::Duration::from_std(after).unwrap_or_default();
        self.set_report_ready_at(lsid, pending, ready, at);
    }

    /// `pending` until the fake's clock reaches `at`, then `ready`.
    pub fn set_report_ready_at(
        &self,
        lsid: &str,
        pending: impl Into<String>,
        ready: impl Into<String>,
        at: DateTime<Utc>,
    ) {
        self.set_script(
            lsid,
            ReportScript::ReadyAt {
                pending: pending.into(),
                ready: ready.into(),
                at,
            },
        );
    }

    fn set_script(&self, lsid: &str, script: ReportScript) {
        self.lock()
            .reports
            .insert(lsid.to_ascii_lowercase(), ScriptedReport { script, fetches: 0 });
    }

    // ---- observing ---------------------------------------------------------------------

    /// Tokens minted so far.
    pub fn tokens_minted(&self) -> u32 {
        self.lock().minted
    }

    /// Calls of an endpoint so far, including refused and faulted ones.
    pub fn calls(&self, endpoint: &str) -> u32 {
        self.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// Requests (any endpoint) that came without `Connection: close`.
    pub fn calls_without_connection_close(&self) -> u32 {
        self.lock().without_connection_close
    }

    /// The form of the last call of an endpoint.
    pub fn last_form(&self, endpoint: &str) -> Option<Vec<(String, String)>> {
        self.lock().last_forms.get(endpoint).cloned()
    }

    /// Session keys issued, in order.
    pub fn issued_keys(&self) -> Vec<IssuedKey> {
        self.lock().issued.clone()
    }

    /// How often the report of `lsid` was fetched.
    pub fn report_fetches(&self, lsid: &str) -> u32 {
        self.lock()
            .reports
            .get(&lsid.to_ascii_lowercase())
            .map_or(0, |r| r.fetches)
    }
}

fn lock(state: &Shared) -> MutexGuard<'_, FakeState> {
    // A test that panicked while holding the lock must not hide other failures.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

// ---- handlers ------------------------------------------------------------------------------

fn xml_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml; charset=UTF-8")], body).into_response()
}

fn error_root(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<error xmlns=\"{COMMAND_NS}\">{}</error>",
        escape(message)
    )
}

/// Count the call, remember its form and whether it asked to close the connection.
fn record(state: &Shared, endpoint: &str, headers: &HeaderMap, form: &[(String, String)]) {
    let mut s = lock(state);
    *s.calls.entry(endpoint.to_string()).or_default() += 1;
    s.last_forms.insert(endpoint.to_string(), form.to_vec());
    let close = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    if !close {
        s.without_connection_close += 1;
    }
}

/// Apply the faults queued for `endpoint`: delays are waited out; the first other fault
/// decides the answer.
async fn apply_faults(state: &Shared, endpoint: &str, root: &str) -> Applied {
    loop {
        let Some(fault) = lock(state).faults.get_mut(endpoint).and_then(VecDeque::pop_front) else {
            return Applied::Normal;
        };
        let instead = match fault {
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                continue;
            }
            cut @ (Fault::Truncated | Fault::SlowBody(_)) => return Applied::Cut(cut),
            Fault::Reset => {
                let failing = futures::stream::once(async {
                    Err::<Bytes, _>(std::io::Error::other("fake BeyondTrust: connection reset"))
                });
                // The body fails before its first byte: hyper drops the connection
                // without writing the head.
                Response::new(axum::body::Body::from_stream(failing))
            }
            Fault::TooManyRequests { retry_after } => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, "fake BeyondTrust: HTTP 429").into_response();
                if let Some(secs) = retry_after {
                    r.headers_mut().insert(header::RETRY_AFTER, secs.into());
                }
                r
            }
            Fault::ErrorRoot(m) => xml_response(StatusCode::OK, error_root(&m)),
            Fault::ErrorChild(m) => xml_response(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\"?>\n<{root} xmlns=\"{COMMAND_NS}\"><error>{}</error></{root}>",
                    escape(m.as_str())
                ),
            ),
            Fault::Status(code) => {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, format!("fake BeyondTrust: HTTP {code}")).into_response()
            }
            Fault::Body(b) => xml_response(StatusCode::OK, b),
        };
        return Applied::Instead(instead);
    }
}

fn parse_form(body: &Bytes) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn form_value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

async fn token(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    record(&state, TOKEN_ENDPOINT, &headers, &form);
    let applied = apply_faults(&state, TOKEN_ENDPOINT, "error").await;
    applied.answer(|| token_answer(&state, &headers, &form)).await
}

fn token_answer(state: &Shared, headers: &HeaderMap, form: &[(String, String)]) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_client","message":"Invalid client credentials"}"#,
        )
            .into_response();
    }
    if form_value(form, "grant_type") != Some("client_credentials") {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"unsupported_grant_type"}"#,
        )
            .into_response();
    }
    let mut s = lock(state);
    s.minted += 1;
    let token = format!("fake-token-{}-{}", s.minted, uuid::Uuid::new_v4().simple());
    s.valid_tokens.insert(token.clone());
    let answer = serde_json::json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": s.expires_in,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn bearer_ok(state: &Shared, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    given.is_some_and(|t| lock(state).valid_tokens.contains(t))
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "fake BeyondTrust: invalid or expired token").into_response()
}

async fn command(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let action = form_value(&form, "action").unwrap_or("").to_string();
    record(&state, &action, &headers, &form);
    if !bearer_ok(&state, &headers) {
        return unauthorized();
    }
    let root = match action.as_str() {
        "get_api_info" => "api_information",
        "get_logged_in_reps" => "logged_in_reps",
        "get_support_teams" => "support_teams",
        "generate_session_key" => "session_key",
        _ => "error",
    };
    let applied = apply_faults(&state, &action, root).await;
    applied
        .answer(|| {
            let mut s = lock(&state);
            let body = match action.as_str() {
                "get_api_info" => s.api_info.clone(),
                "get_logged_in_reps" => logged_in_reps_xml(&s),
                "get_support_teams" => support_teams_xml(&s, form_value(&form, "showmembers").is_some()),
                "generate_session_key" => generate_session_key(&mut s, &form),
                other => error_root(&format!("Invalid action: {other}")),
            };
            xml_response(StatusCode::OK, body)
        })
        .await
}

async fn reporting(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let report = form_value(&form, "generate_report").unwrap_or("").to_string();
    record(&state, &report, &headers, &form);
    if !bearer_ok(&state, &headers) {
        return unauthorized();
    }
    let applied = apply_faults(&state, &report, "session_list").await;
    applied.answer(|| report_answer(&state, &report, &form)).await
}

fn report_answer(state: &Shared, report: &str, form: &[(String, String)]) -> Response {
    match report {
        "SupportSession" => {}
        "SupportSessionListing" => return xml_response(StatusCode::OK, session_listing(&lock(state), form)),
        _ => {
            return xml_response(
                StatusCode::OK,
                error_root(&format!("Unsupported report type: {report}")),
            )
        }
    }
    let lsid = form_value(form, "lsid").unwrap_or("").to_ascii_lowercase();
    let mut s = lock(state);
    let now = s.clock.now();
    let body = s
        .reports
        .get_mut(&lsid)
        .and_then(|script| script.answer(now))
        .unwrap_or_else(|| error_root("No sessions matched your query."));
    xml_response(StatusCode::OK, body)
}

/// The window a listing asks for.
struct Window {
    /// Closed sessions by end time, else all sessions by start time.
    ended: bool,
    from: DateTime<Utc>,
    /// `None`: up to now.
    until: Option<DateTime<Utc>>,
}

/// Read the window parameters; `Err` names what is wrong.
fn listing_window(form: &[(String, String)]) -> Result<Window, String> {
    let duration: i64 = match form_value(form, "duration") {
        None => 0,
        Some(d) => d.trim().parse().map_err(|_| format!("Invalid duration: {d}"))?,
    };
    let date = |v: &str| {
        chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc())
            .ok_or_else(|| format!("Invalid date: {v}"))
    };
    let time = |v: &str| {
        v.trim()
            .parse::<i64>()
            .ok()
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| format!("Invalid timestamp: {v}"))
    };
    let (ended, from, unit) = if let Some(t) = form_value(form, "start_time") {
        (false, time(t)?, chrono::Duration::seconds(1))
    } else if let Some(t) = form_value(form, "end_time") {
        (true, time(t)?, chrono::Duration::seconds(1))
    } else if let Some(d) = form_value(form, "start_date") {
        (false, date(d)?, chrono::Duration::days(1))
    } else if let Some(d) = form_value(form, "end_date") {
        (true, date(d)?, chrono::Duration::days(1))
    } else {
        return Err("Missing required parameter: start_date, start_time, end_date or end_time".into());
    };
    let until = (duration != 0).then(|| from + unit * duration as i32);
    Ok(Window { ended, from, until })
}

/// `SupportSessionListing` over the sessions whose reports the fake holds, as they
/// finally read: started in the window (running ones included), or closed and ended in it.
fn session_listing(s: &FakeState, form: &[(String, String)]) -> String {
    let Window { ended, from, until } = match listing_window(form) {
        Ok(w) => w,
        Err(message) => return error_root(&message),
    };
    let mut rows: Vec<(DateTime<Utc>, String, String)> = Vec::new();
    for (lsid, script) in &s.reports {
        let Some(xml) = script.last() else { continue };
        let Ok(r) = super::report::SupportSessionReport::from_xml(xml, Some(lsid)) else {
            continue;
        };
        let at = if ended { r.end_time } else { r.start_time };
        let Some(at) = at.filter(|t| *t >= from && until.is_none_or(|u| *t < u)) else {
            continue;
        };
        let key = r
            .external_key
            .as_deref()
            .map(|k| escape(k).into_owned())
            .unwrap_or_default();
        let recorded = u8::from(xml.contains("<session_recording_"));
        rows.push((
            at,
            lsid.clone(),
            format!(
                "<session_summary lsid=\"{lsid}\" has_recording=\"{recorded}\">\n<external_key>{key}</external_key>\n</session_summary>\n"
            ),
        ));
    }
    rows.sort();
    let mut out =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<session_summary_list xmlns=\"{REPORTING_NS}\">\n");
    for (_, _, row) in rows {
        out.push_str(&row);
    }
    out.push_str("</session_summary_list>");
    out
}

/// `report` without its chat URLs: how the appliance reports a session that did not end
/// properly (the vendor gives the URLs "only for sessions that ended properly").
pub fn without_chat_urls(report: &str) -> String {
    report
        .lines()
        .filter(|l| !l.contains("<session_chat_view_url") && !l.contains("<session_chat_download_url"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---- answers ---------------------------------------------------------------------------------

fn rep_names_xml(rep: &FakeRep) -> String {
    format!(
        "<display_name>{d}</display_name>\n<public_display_name>{d}</public_display_name>\n<private_display_name>{p}</private_display_name>\n",
        d = escape(rep.display_name.as_str()),
        p = escape(rep.private_display_name.as_str()),
    )
}

fn logged_in_reps_xml(s: &FakeState) -> String {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<logged_in_reps xmlns=\"{COMMAND_NS}\">\n");
    for rep in &s.logged_in {
        out.push_str(&format!(
            "<rep id=\"{}\">\n{}<type>Normal</type>\n<showing_on_rep_list>1</showing_on_rep_list>\n</rep>\n",
            escape(rep.id.as_str()),
            rep_names_xml(rep)
        ));
    }
    out.push_str("</logged_in_reps>");
    out
}

fn support_teams_xml(s: &FakeState, members: bool) -> String {
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<support_teams xmlns=\"{COMMAND_NS}\">\n");
    for team in &s.teams {
        out.push_str(&format!(
            "<support_team id=\"{}\">\n<name>{}</name>\n<code_name>{}</code_name>\n",
            escape(team.id.as_str()),
            escape(team.name.as_str()),
            escape(team.code_name.as_str())
        ));
        if members {
            out.push_str("<members>\n");
            for id in &team.member_ids {
                out.push_str(&format!("<representative id=\"{}\">\n", escape(id.as_str())));
                if let Some(rep) = s.known_reps.iter().find(|r| &r.id == id) {
                    out.push_str(&rep_names_xml(rep));
                }
                out.push_str("</representative>\n");
            }
            out.push_str("</members>\n");
        }
        out.push_str("</support_team>\n");
    }
    out.push_str("</support_teams>");
    out
}

fn generate_session_key(s: &mut FakeState, form: &[(String, String)]) -> String {
    if form_value(form, "type") != Some("support") {
        return error_root("Invalid session type. The only supported type is support.");
    }
    let queue_id = form_value(form, "queue_id").unwrap_or("").to_string();
    let queue_ok = match queue_id.split_once(':') {
        None if queue_id == "general" => Ok(()),
        Some(("rep", id)) if s.logged_in.iter().any(|r| r.id == id) => Ok(()),
        Some(("rep", id)) => Err(format!(
            "Unable to generate a session key: representative {id} is not logged in."
        )),
        Some(("team", id)) if s.teams.iter().any(|t| t.id == id) => Ok(()),
        Some(("team", id)) => Err(format!("Unable to generate a session key: team {id} does not exist.")),
        _ => Err(format!("Invalid queue_id: {queue_id}")),
    };
    if let Err(message) = queue_ok {
        return error_root(&message);
    }
    let short_key = format!("{:07}", 4_825_913 + s.issued.len() as u64 * 7_919);
    let ak = uuid::Uuid::new_v4().simple().to_string();
    let ttl = form_value(form, "ttl").map(str::to_string);
    let ttl_secs: i64 = ttl.as_deref().and_then(|t| t.parse().ok()).unwrap_or(1800);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(ttl_secs);
    let key_url = format!("{}/?ak={ak}", s.base_url);
    s.issued.push(IssuedKey {
        short_key: short_key.clone(),
        queue_id,
        external_key: form_value(form, "session.custom.external_key").map(str::to_string),
        ttl,
    });
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<session_key xmlns=\"{COMMAND_NS}\">\n\
         <short_key>{short_key}</short_key>\n\
         <expires timestamp=\"{ts}\">{iso}</expires>\n\
         <key_url>{url}</key_url>\n\
         <mail_subject>Remote support invitation</mail_subject>\n\
         <mail_body>To start the session, open {url}\nor enter the session key {short_key}.</mail_body>\n\
         </session_key>",
        ts = expires.timestamp(),
        iso = expires.to_rfc3339(),
        url = escape(key_url.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beyondtrust::{Client, Completeness, ListingWindow, TokenCache};
    use crate::domain::remote::Lsid;
    use crate::ports::ManualClock;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_425_312, 0).unwrap() // the session's end event
    }

    async fn on_manual_clock() -> (FakeBeyondTrust, Client, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(t0()));
        let (_, fake) = FakeBeyondTrust::start_with_clock(clock.clone()).await;
        let client = Client::new(fake.client_config(), TokenCache::new(clock.clone())).unwrap();
        (fake, client, clock)
    }

    fn lsid(s: &str) -> Lsid {
        Lsid::parse(s).unwrap()
    }

    #[tokio::test]
    async fn a_report_becomes_ready_n_seconds_after_the_end_event() {
        let (fake, client, clock) = on_manual_clock().await;
        fake.set_report_ready_after(
            fixtures::LSID_T1042,
            fixtures::REPORT_INCOMPLETE,
            fixtures::REPORT,
            Duration::from_secs(3),
        );
        let id = lsid(fixtures::LSID_T1042);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(client.support_session_report(&id).await.unwrap().completeness());
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(
            seen,
            [
                Completeness::InProgress,
                Completeness::InProgress,
                Completeness::InProgress,
                Completeness::Complete
            ],
            "ready at end + 3 s"
        );
        assert_eq!(fake.report_fetches(fixtures::LSID_T1042), 4);
    }

    #[tokio::test]
    async fn an_abnormal_end_serves_a_report_without_chat_urls() {
        let (fake, client, _) = on_manual_clock().await;
        fake.set_report(fixtures::LSID_T1042, fixtures::REPORT_ABNORMAL_END);
        let r = client
            .support_session_report(&lsid(fixtures::LSID_T1042))
            .await
            .unwrap();
        assert_eq!(r.completeness(), Completeness::PossiblyPartial);
        // Any report can be served as after an abnormal end.
        fake.set_report(fixtures::LSID_UNLINKED, without_chat_urls(fixtures::REPORT_UNLINKED));
        let r = client
            .support_session_report(&lsid(fixtures::LSID_UNLINKED))
            .await
            .unwrap();
        assert!(r.possibly_partial() && r.chat_view_url.is_none());
        assert!(fixtures::REPORT_UNLINKED.contains("<session_chat_download_url"));
    }

    #[tokio::test]
    async fn the_listing_answers_the_window_asked_for() {
        let (fake, client, _) = on_manual_clock().await;
        // Started 08:52:12, ended 09:15:12 (T1042); the unlinked session per its fixture.
        fake.set_report(fixtures::LSID_T1042, fixtures::REPORT);
        fake.set_report(fixtures::LSID_UNLINKED, fixtures::REPORT_UNLINKED);
        let unlinked_end = ended_at(fixtures::REPORT_UNLINKED, fixtures::LSID_UNLINKED);
        let listed = |w: ListingWindow| {
            let client = &client;
            async move {
                client
                    .support_session_listing(&w)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|s| (s.lsid.to_string(), s.external_key))
                    .collect::<Vec<_>>()
            }
        };
        let end = t0();
        let everything = listed(ListingWindow::Ended {
            from: end.min(unlinked_end) - chrono::Duration::hours(1),
            seconds: 0,
        })
        .await;
        assert_eq!(everything.len(), 2, "{everything:?}");
        assert!(everything.contains(&(fixtures::LSID_T1042.to_string(), Some("T1042".into()))));
        assert!(everything.contains(&(fixtures::LSID_UNLINKED.to_string(), None)));
        // Ended in [end, end + 1 s): only T1042 unless the other ended in the same second.
        let just_t1042 = listed(ListingWindow::Ended { from: end, seconds: 1 }).await;
        assert_eq!(just_t1042, [(fixtures::LSID_T1042.to_string(), Some("T1042".into()))]);
        // A window after every end lists nothing, as an empty list.
        let later = listed(ListingWindow::Ended {
            from: end.max(unlinked_end) + chrono::Duration::seconds(1),
            seconds: 0,
        })
        .await;
        assert!(later.is_empty());
        // Start windows include sessions still in progress.
        fake.set_report(fixtures::LSID_T1042, fixtures::REPORT_INCOMPLETE);
        let began = listed(ListingWindow::Began {
            from: end - chrono::Duration::hours(1),
            seconds: 3600,
        })
        .await;
        assert!(began.iter().any(|(l, _)| l == fixtures::LSID_T1042), "{began:?}");
        let ended = listed(ListingWindow::Ended { from: end, seconds: 1 }).await;
        assert!(ended.is_empty(), "a running session has not ended: {ended:?}");
        let form = fake.last_form("SupportSessionListing").unwrap();
        assert!(form.contains(&("end_time".into(), end.timestamp().to_string())));
        assert!(form.contains(&("duration".into(), "1".into())));
        assert_eq!(fake.calls("SupportSessionListing"), 5);
    }

    #[tokio::test]
    async fn the_listing_can_answer_nothing_matched_and_fail_like_any_report() {
        let (fake, client, _) = on_manual_clock().await;
        let w = ListingWindow::Ended { from: t0(), seconds: 0 };
        fake.push_fault(
            "SupportSessionListing",
            Fault::ErrorRoot("No sessions matched your query.".into()),
        );
        assert_eq!(client.support_session_listing(&w).await, Ok(Vec::new()));
        fake.push_fault("SupportSessionListing", Fault::Status(503));
        fake.push_fault("SupportSessionListing", Fault::Status(503));
        fake.push_fault("SupportSessionListing", Fault::Status(503));
        assert!(matches!(
            client.support_session_listing(&w).await,
            Err(crate::beyondtrust::Error::Unavailable(_))
        ));
        fake.push_fault("SupportSessionListing", Fault::ErrorRoot("Permission denied".into()));
        assert_eq!(
            client.support_session_listing(&w).await,
            Err(crate::beyondtrust::Error::Api("Permission denied".into()))
        );
    }

    /// When a fixture report's session ended.
    fn ended_at(xml: &str, lsid: &str) -> DateTime<Utc> {
        crate::beyondtrust::SupportSessionReport::from_xml(xml, Some(lsid))
            .unwrap()
            .end_time
            .unwrap()
    }
}
