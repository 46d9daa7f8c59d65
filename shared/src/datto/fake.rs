//! A stateful fake Datto RMM API on 127.0.0.1 for tests and benchmarks: sites, alerts and
//! devices, the password-grant token endpoint, absolute `nextPageUrl` paging, resolve, a
//! request log, and injectable failures (429, 403, 5xx, slow answers and bodies, resets,
//! truncated and non-JSON bodies, expired tokens).
//!
//! Shapes follow the recorded fixtures in `fixtures/` (copied unchanged from
//! `fixtures/datto/` of the project notes; values invented there, field names from Datto's
//! OpenAPI and real clients). What Datto answers to resolving an already resolved alert is
//! unconfirmed; the fake answers 400 unless told otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::api::is_uuid;
use super::client::Sleeper;
use crate::ports::{Clock, ManualClock, SystemClock};

/// Recorded payloads, copied unchanged from `fixtures/datto/` (see its README).
pub mod fixtures {
    /// `GET /api/v2/account/sites?max=2&page=0`: Acme Ltd - Head Office, Birch & Co.
    pub const SITES_PAGE_0: &str = include_str!("fixtures/sites-page-0.json");
    /// Page 1: Cobalt Dental Clinic and the "Deleted Devices" system site (non-UUID uid).
    pub const SITES_PAGE_1: &str = include_str!("fixtures/sites-page-1.json");
    /// `GET /api/v2/account/alerts/open`: three open alerts, no `totalCount`.
    pub const ALERTS_OPEN_PAGE_0: &str = include_str!("fixtures/alerts-open-page-0.json");
    /// `GET /api/v2/alert/5d1f0c6e-…`: the first alert, open.
    pub const ALERT: &str = include_str!("fixtures/alert-5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94.json");
    /// The same alert after deskbridge resolved it.
    pub const ALERT_RESOLVED: &str = include_str!("fixtures/alert-resolved-5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94.json");
    /// `GET /api/v2/system/request_rate`.
    pub const RATE: &str = include_str!("fixtures/rate.json");
    /// `POST /auth/oauth/token` success body.
    pub const TOKEN: &str = include_str!("fixtures/token.json");
    /// Seven more open alerts, one per `alertContext` class beyond the three of
    /// [`ALERTS_OPEN_PAGE_0`]: online/offline, event log, service status, patch, antivirus,
    /// process status and custom SNMP. Written for deskbridge (not in the project notes):
    /// class strings and field names from Datto's OpenAPI document and real clients
    /// (vendor notes §5.2), values invented on the fixture world's sites and devices.
    pub const ALERTS_CONTEXT_CLASSES: &str = include_str!("fixtures/alerts-context-classes.json");
    /// The uid of [`ALERT`].
    pub const ALERT_UID: &str = "5d1f0c6e-8a43-4b7e-9f21-3c0a7e6b2d94";
    /// The device of [`ALERT`] (ACME-DC01).
    pub const DEVICE_UID: &str = "b2e4a7c1-6f3d-4e58-a9b0-7d2c1e8f4a63";
}

/// A failure the fake answers with instead of the real answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429, with `Retry-After: <secs>` when given.
    TooManyRequests { retry_after: Option<u64> },
    /// 403.
    Forbidden,
    /// This 5xx status.
    ServerError(u16),
    /// Answer normally, but only after this long (real time).
    Slow(Duration),
    /// 401 as if the token had expired.
    Unauthorized,
    /// Any other status, with a small JSON error body.
    Status(u16),
    /// The connection is dropped before any answer (what a client sees as a reset).
    Reset,
    /// The real answer's head with its full `Content-Length`, then half its body, then the
    /// connection is dropped.
    Truncated,
    /// 200 with an HTML page instead of JSON, as a proxy's maintenance page reads.
    Malformed,
    /// The real answer's head at once, half its body, then the rest after this long.
    SlowBody(Duration),
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Arrival, by the fake's clock.
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// The answer's status; 0 while the answer is still being prepared.
    pub status: u16,
}

struct Rule {
    path_prefix: Option<String>,
    remaining: usize,
    failure: Failure,
}

struct World {
    base: String,
    sites: Vec<Value>,
    alerts: HashMap<String, Value>,
    /// Open alerts in insertion order.
    open: BTreeMap<u64, String>,
    seq_of: HashMap<String, u64>,
    next_seq: u64,
    devices: HashMap<String, Value>,
    tokens: HashSet<String>,
    minted: u64,
    token_lifetime: i64,
    page_size: usize,
    drop_filters: bool,
    next_page_base: Option<String>,
    already_resolved_status: u16,
    rules: Vec<Rule>,
    forbid_until: Option<DateTime<Utc>>,
    log: Vec<LoggedRequest>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    world: Mutex<World>,
}

impl Shared {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The fake Datto API. Stops serving when dropped.
pub struct FakeDatto {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDatto {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for FakeDatto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDatto")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl FakeDatto {
    /// The API key the token endpoint accepts.
    pub const API_KEY: &'static str = "FAKEKEY0123456789";
    /// The API secret the token endpoint accepts (with characters that need form-encoding).
    pub const API_SECRET: &'static str = "s3cr&t+with=odd chars";

    /// An empty fake on the wall clock.
    pub async fn start() -> FakeDatto {
        Self::start_with_clock(Arc::new(SystemClock)).await
    }

    /// An empty fake whose log, token lifetimes and timed failures follow `clock`.
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> FakeDatto {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Shared {
            clock,
            world: Mutex::new(World {
                base: base.clone(),
                sites: Vec::new(),
                alerts: HashMap::new(),
                open: BTreeMap::new(),
                seq_of: HashMap::new(),
                next_seq: 0,
                devices: HashMap::new(),
                tokens: HashSet::new(),
                minted: 0,
                token_lifetime: 359_999,
                page_size: 250,
                drop_filters: false,
                next_page_base: None,
                already_resolved_status: 400,
                rules: Vec::new(),
                forbid_until: None,
                log: Vec::new(),
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeDatto { base, shared, task }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.shared.world()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    // ----- data ------------------------------------------------------------------------

    /// Load the fixture world: 4 sites (incl. "Deleted Devices"), 3 open alerts and the
    /// device ACME-DC01.
    pub fn seed_fixtures(&self) {
        for page in [fixtures::SITES_PAGE_0, fixtures::SITES_PAGE_1] {
            let v: Value = serde_json::from_str(page).expect("fixture");
            for s in v["sites"].as_array().expect("sites") {
                self.add_site(s.clone());
            }
        }
        let v: Value = serde_json::from_str(fixtures::ALERTS_OPEN_PAGE_0).expect("fixture");
        for a in v["alerts"].as_array().expect("alerts") {
            self.add_alert(a.clone());
        }
        self.add_device(json!({
            "id": 1_204_311, "uid": fixtures::DEVICE_UID, "siteId": 418203,
            "siteUid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f", "siteName": "Acme Ltd - Head Office",
            "hostname": "ACME-DC01", "description": "Domain controller", "intIpAddress": "10.10.0.5",
            "extIpAddress": "203.0.113.10", "operatingSystem": "Microsoft Windows Server 2022 Standard",
            "lastLoggedInUser": "ACME\\j.okafor", "domain": "ACME",
            "deviceType": {"category": "Server", "type": "Physical"}, "deviceClass": "device",
            "online": true, "suspended": false, "deleted": false, "rebootRequired": false,
            "lastSeen": 1_795_425_200_000_i64, "lastReboot": "2026-11-01T03:12:00Z"
        }));
    }

    /// Add the open alerts of [`fixtures::ALERTS_CONTEXT_CLASSES`] (seven more context
    /// classes) to whatever is loaded.
    pub fn seed_context_classes(&self) {
        let v: Value = serde_json::from_str(fixtures::ALERTS_CONTEXT_CLASSES).expect("fixture");
        for a in v["alerts"].as_array().expect("alerts") {
            self.add_alert(a.clone());
        }
    }

    /// Generate `sites` sites and `open_alerts` open alerts spread over them (benchmarks).
    pub fn populate(&self, sites: usize, open_alerts: usize) {
        let mut w = self.world();
        let first_site = w.sites.len();
        for i in 0..sites {
            let n = first_site + i;
            w.sites.push(json!({
                "id": 500_000 + n, "uid": format!("{:08x}-0000-4000-8000-{:012x}", 0x5173, n),
                "accountUid": "e4b7c91d", "name": format!("Customer {n:05}"), "description": "",
                "notes": "", "onDemand": false, "splashtopAutoInstall": false, "proxySettings": null,
                "devicesStatus": {"numberOfDevices": 10, "numberOfOnlineDevices": 9, "numberOfOfflineDevices": 1},
                "autotaskCompanyName": null, "autotaskCompanyId": null, "portalUrl": null
            }));
        }
        let site_count = w.sites.len().max(1);
        for i in 0..open_alerts {
            let site = &w.sites[i % site_count];
            let (site_uid, site_name) = (site["uid"].clone(), site["name"].clone());
            let uid = format!("{:08x}-a1e7-4000-8000-{:012x}", 0xa1e7, w.next_seq);
            let priority = ["Critical", "High", "Moderate", "Low"][i % 4];
            let alert = json!({
                "alertUid": uid, "priority": priority,
                "diagnostics": "CPU usage above threshold", "resolved": false, "resolvedBy": null,
                "resolvedOn": null, "muted": false, "ticketNumber": null,
                "timestamp": 1_795_400_000_000_i64 + i as i64,
                "alertMonitorInfo": {"sendsEmails": false, "createsTicket": false},
                "alertContext": {"@class": "perf_resource_usage_ctx", "type": "CPU", "percentage": 91.5},
                "alertSourceInfo": {"deviceUid": format!("{:08x}-de71-4000-8000-{:012x}", 0xde71, i),
                    "deviceName": format!("PC-{i:05}"), "siteUid": site_uid, "siteName": site_name},
                "responseActions": [], "autoresolveMins": null
            });
            insert_alert(&mut w, alert);
        }
    }

    pub fn add_site(&self, site: Value) {
        self.world().sites.push(site);
    }

    /// Add (or replace) an alert; it is open unless its `resolved` is true.
    pub fn add_alert(&self, alert: Value) {
        insert_alert(&mut self.world(), alert);
    }

    /// Resolve an alert as if Datto (or a person there) did; false if unknown.
    pub fn resolve_in_datto(&self, uid: &str) -> bool {
        let now = self.shared.clock.now();
        resolve(&mut self.world(), uid, "datto-user", now)
    }

    /// Forget an alert entirely (Datto would then answer 404).
    pub fn remove_alert(&self, uid: &str) {
        let mut w = self.world();
        w.alerts.remove(uid);
        if let Some(seq) = w.seq_of.remove(uid) {
            w.open.remove(&seq);
        }
    }

    pub fn add_device(&self, device: Value) {
        let uid = device["uid"].as_str().unwrap_or_default().to_string();
        self.world().devices.insert(uid, device);
    }

    /// The alert as the fake holds it.
    pub fn alert(&self, uid: &str) -> Option<Value> {
        self.world().alerts.get(uid).cloned()
    }

    pub fn open_alert_count(&self) -> usize {
        self.world().open.len()
    }

    pub fn site_count(&self) -> usize {
        self.world().sites.len()
    }

    // ----- behaviour ---------------------------------------------------------------------

    /// Largest page the fake serves, whatever `max` asks for.
    pub fn set_page_size(&self, n: usize) {
        self.world().page_size = n.max(1);
    }

    /// Make `nextPageUrl` keep only `max` and `page` (as some Datto builds do).
    pub fn set_drop_filters_on_next_page(&self, on: bool) {
        self.world().drop_filters = on;
    }

    /// Build `nextPageUrl` on this origin instead of the fake's own (e.g. a foreign host).
    pub fn set_next_page_base(&self, base: Option<&str>) {
        self.world().next_page_base = base.map(str::to_string);
    }

    /// The status answered to resolving an already resolved alert (default 400).
    pub fn set_already_resolved_status(&self, status: u16) {
        self.world().already_resolved_status = status;
    }

    /// `expires_in` of minted tokens (default 359 999 s).
    pub fn set_token_lifetime(&self, secs: i64) {
        self.world().token_lifetime = secs;
    }

    /// Answer the next `n` requests (any path, token endpoint included) with `failure`.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.push_rule(None, n, failure);
    }

    /// Answer the next `n` requests whose path starts with `path_prefix` with `failure`.
    pub fn fail_next_on(&self, path_prefix: &str, n: usize, failure: Failure) {
        self.push_rule(Some(path_prefix.to_string()), n, failure);
    }

    fn push_rule(&self, path_prefix: Option<String>, remaining: usize, failure: Failure) {
        self.world().rules.push(Rule {
            path_prefix,
            remaining,
            failure,
        });
    }

    /// Answer 403 to everything for `d` (by the fake's clock), like Datto's IP block.
    pub fn forbid_for(&self, d: Duration) {
        let until = self.shared.clock.now() + chrono::Duration::from_std(d).unwrap_or_default();
        self.world().forbid_until = Some(until);
    }

    /// Invalidate every token minted so far: the next API call gets a 401.
    pub fn expire_tokens(&self) {
        self.world().tokens.clear();
    }

    // ----- observation -----------------------------------------------------------------

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.world().log.clone()
    }

    pub fn request_count(&self) -> usize {
        self.world().log.len()
    }

    /// Requests whose path is exactly `path`.
    pub fn count(&self, path: &str) -> usize {
        self.world().log.iter().filter(|r| r.path == path).count()
    }

    /// Requests whose path starts with `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> usize {
        self.world().log.iter().filter(|r| r.path.starts_with(prefix)).count()
    }

    /// Tokens minted so far.
    pub fn tokens_minted(&self) -> u64 {
        self.world().minted
    }

    /// The most requests that arrived within any rolling 60 s (Datto's window).
    pub fn max_requests_in_rolling_minute(&self) -> usize {
        let mut at: Vec<DateTime<Utc>> = self.world().log.iter().map(|r| r.at).collect();
        at.sort();
        let mut best = 0;
        let mut i = 0;
        for j in 0..at.len() {
            while at[j] - at[i] >= chrono::Duration::seconds(60) {
                i += 1;
            }
            best = best.max(j - i + 1);
        }
        best
    }
}

fn insert_alert(w: &mut World, alert: Value) {
    let uid = alert["alertUid"].as_str().unwrap_or_default().to_string();
    let resolved = alert["resolved"].as_bool().unwrap_or(false);
    if let Some(seq) = w.seq_of.get(&uid).copied() {
        w.open.remove(&seq);
    }
    let seq = w.next_seq;
    w.next_seq += 1;
    w.seq_of.insert(uid.clone(), seq);
    if !resolved {
        w.open.insert(seq, uid.clone());
    }
    w.alerts.insert(uid, alert);
}

fn resolve(w: &mut World, uid: &str, by: &str, now: DateTime<Utc>) -> bool {
    let Some(a) = w.alerts.get_mut(uid) else { return false };
    a["resolved"] = json!(true);
    a["resolvedBy"] = json!(by);
    a["resolvedOn"] = json!(now.timestamp_millis());
    if let Some(seq) = w.seq_of.get(uid) {
        w.open.remove(seq);
    }
    true
}

// ---------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("serialisable");
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn status_only(status: StatusCode) -> Response {
    json_response(status, &json!({"error": status.canonical_reason().unwrap_or("error")}))
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let now = shared.clock.now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let (index, failure) = {
        let mut w = shared.world();
        w.log.push(LoggedRequest {
            at: now,
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            status: 0,
        });
        let index = w.log.len() - 1;
        let failure = w
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && r.path_prefix.as_deref().is_none_or(|p| path.starts_with(p)))
            .map(|r| {
                r.remaining -= 1;
                r.failure.clone()
            });
        w.rules.retain(|r| r.remaining > 0);
        (index, failure)
    };
    let reset = failure == Some(Failure::Reset);
    let instead = match &failure {
        Some(Failure::TooManyRequests { retry_after }) => {
            let mut r = status_only(StatusCode::TOO_MANY_REQUESTS);
            if let Some(s) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, (*s).into());
            }
            Some(r)
        }
        Some(Failure::Forbidden) => Some(status_only(StatusCode::FORBIDDEN)),
        Some(Failure::ServerError(s)) => Some(status_only(
            StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        )),
        Some(Failure::Unauthorized) => Some(status_only(StatusCode::UNAUTHORIZED)),
        Some(Failure::Status(s)) => Some(status_only(StatusCode::from_u16(*s).unwrap_or(StatusCode::BAD_REQUEST))),
        Some(Failure::Reset) => Some(dropped_connection()),
        Some(Failure::Malformed) => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Service temporarily unavailable</h1></body></html>",
            )
                .into_response(),
        ),
        Some(Failure::Slow(d)) => {
            tokio::time::sleep(*d).await;
            None
        }
        Some(Failure::Truncated | Failure::SlowBody(_)) | None => None,
    };
    let response = match instead {
        Some(r) => r,
        None => {
            let real = route(
                &shared,
                now,
                &parts.method,
                &parts.headers,
                &path,
                query.as_deref(),
                body,
            )
            .await;
            match failure {
                Some(wire @ (Failure::Truncated | Failure::SlowBody(_))) => cut_body(real, wire).await,
                _ => real,
            }
        }
    };
    if let Some(entry) = shared.world().log.get_mut(index) {
        entry.status = if reset { 0 } else { response.status().as_u16() };
    }
    response
}

/// An answer whose body fails before its first byte: hyper then drops the connection
/// without writing the head, so the client's request fails as on a reset.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async { Err::<axum::body::Bytes, _>(std::io::Error::other("fake reset")) });
    Response::new(Body::from_stream(failing))
}

/// `real` with its head and `Content-Length` kept and its body cut (`Truncated`: half, then
/// the connection dropped) or trickled (`SlowBody`: half, a pause, the rest).
async fn cut_body(real: Response, how: Failure) -> Response {
    let (mut parts, body) = real.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let rest = bytes.slice(bytes.len() / 2..);
    parts.headers.insert(header::CONTENT_LENGTH, bytes.len().into());
    let pause = match how {
        Failure::SlowBody(d) => Some(d),
        _ => None,
    };
    let tail = futures::stream::once(async move {
        match pause {
            Some(d) => {
                tokio::time::sleep(d).await;
                Ok(rest)
            }
            None => Err(std::io::Error::other("fake truncation")),
        }
    });
    let stream = futures::StreamExt::chain(futures::stream::once(async move { Ok(half) }), tail);
    Response::from_parts(parts, Body::from_stream(stream))
}

async fn route(
    shared: &Shared,
    now: DateTime<Utc>,
    method: &Method,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
    body: Body,
) -> Response {
    if shared.world().forbid_until.is_some_and(|u| u > now) {
        return status_only(StatusCode::FORBIDDEN);
    }
    if path == "/auth/oauth/token" {
        if method != Method::POST {
            return status_only(StatusCode::METHOD_NOT_ALLOWED);
        }
        let body = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
        return token(shared, headers, &body);
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let mut w = shared.world();
    if !bearer.is_some_and(|t| w.tokens.contains(&t)) {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_token"}));
    }
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v2", "account", "sites"]) => {
            let name = param(&params, "siteName").map(str::to_lowercase);
            let sites: Vec<&Value> = w
                .sites
                .iter()
                .filter(|s| {
                    name.as_ref()
                        .is_none_or(|n| s["name"].as_str().unwrap_or_default().to_lowercase().contains(n))
                })
                .collect();
            let total = sites.len();
            page(&w, path, &params, "sites", sites.into_iter(), total, true)
        }
        ("GET", ["api", "v2", "account", "alerts", "open"]) => {
            let total = w.open.len();
            let alerts = w.open.values().filter_map(|uid| w.alerts.get(uid));
            page(&w, path, &params, "alerts", alerts, total, false)
        }
        ("GET", ["api", "v2", "alert", uid]) => {
            if !is_uuid(uid) {
                return status_only(StatusCode::BAD_REQUEST);
            }
            match w.alerts.get(*uid) {
                Some(a) => json_response(StatusCode::OK, a),
                None => status_only(StatusCode::NOT_FOUND),
            }
        }
        ("POST", ["api", "v2", "alert", uid, "resolve"]) => {
            if !is_uuid(uid) {
                return status_only(StatusCode::BAD_REQUEST);
            }
            let already = match w.alerts.get(*uid) {
                None => return status_only(StatusCode::NOT_FOUND),
                Some(a) => a["resolved"].as_bool().unwrap_or(false),
            };
            if already {
                let s = StatusCode::from_u16(w.already_resolved_status).unwrap_or(StatusCode::BAD_REQUEST);
                return if s.is_success() {
                    (s, Body::empty()).into_response()
                } else {
                    status_only(s)
                };
            }
            resolve(&mut w, uid, "deskbridge-api", now);
            (StatusCode::OK, Body::empty()).into_response()
        }
        ("GET", ["api", "v2", "device", uid]) => match w.devices.get(*uid) {
            Some(d) => json_response(StatusCode::OK, d),
            None => status_only(StatusCode::NOT_FOUND),
        },
        ("GET", ["api", "v2", "site", uid]) => match w.sites.iter().find(|s| s["uid"] == *uid) {
            Some(s) if is_uuid(uid) => json_response(StatusCode::OK, s),
            _ => status_only(StatusCode::NOT_FOUND),
        },
        ("GET", ["api", "v2", "system", "request_rate"]) => {
            let mut rate: Value = serde_json::from_str(fixtures::RATE).expect("fixture");
            let recent = w
                .log
                .iter()
                .filter(|r| now - r.at < chrono::Duration::seconds(60))
                .count();
            rate["accountCount"] = json!(recent);
            json_response(StatusCode::OK, &rate)
        }
        ("GET", ["api", "v2", "account"]) => json_response(
            StatusCode::OK,
            &json!({"id": 1017, "uid": "e4b7c91d", "name": "Concord MSP (fake)", "currency": "GBP",
                "descriptor": {"bilingEmail": "billing@msp.example", "deviceLimit": 5000, "timeZone": "Europe/London"},
                "devicesStatus": {"numberOfDevices": 74, "numberOfOnlineDevices": 61, "numberOfOfflineDevices": 13}}),
        ),
        _ => status_only(StatusCode::NOT_FOUND),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn page<'a>(
    w: &World,
    path: &str,
    params: &[(String, String)],
    items: &str,
    all: impl Iterator<Item = &'a Value>,
    total: usize,
    with_total: bool,
) -> Response {
    let max = param(params, "max")
        .and_then(|m| m.parse::<usize>().ok())
        .unwrap_or(w.page_size)
        .clamp(1, w.page_size);
    let page_no = param(params, "page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
    // Skip by reference: cloning the skipped items made deep pages quadratic.
    let list: Vec<Value> = all.skip(page_no * max).take(max).cloned().collect();
    let base = w.next_page_base.as_deref().unwrap_or(&w.base);
    let url_for = |n: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("max", &max.to_string())
            .append_pair("page", &n.to_string());
        if !w.drop_filters {
            for (k, v) in params.iter().filter(|(k, _)| k != "max" && k != "page") {
                q.append_pair(k, v);
            }
        }
        format!("{base}{path}?{}", q.finish())
    };
    let next = (page_no * max + list.len() < total).then(|| url_for(page_no + 1));
    let prev = (page_no > 0).then(|| url_for(page_no - 1));
    let mut details = json!({"count": list.len(), "prevPageUrl": prev, "nextPageUrl": next});
    if with_total {
        details["totalCount"] = json!(total);
    }
    json_response(StatusCode::OK, &json!({"pageDetails": details, items: list}))
}

fn token(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("public-client:public")
    );
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return json_response(StatusCode::UNAUTHORIZED, &json!({"error": "unauthorized"}));
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return json_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, &json!({"error": "form expected"}));
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let ok = form.get("grant_type").map(String::as_str) == Some("password")
        && form.get("username").map(String::as_str) == Some(FakeDatto::API_KEY)
        && form.get("password").map(String::as_str) == Some(FakeDatto::API_SECRET);
    if !ok {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_grant", "error_description": "Bad credentials"}),
        );
    }
    let mut w = shared.world();
    w.minted += 1;
    let access = format!("fake-token-{}", w.minted);
    w.tokens.insert(access.clone());
    let mut answer: Value = serde_json::from_str(fixtures::TOKEN).expect("fixture");
    answer["access_token"] = json!(access);
    answer["expires_in"] = json!(w.token_lifetime);
    json_response(StatusCode::OK, &answer)
}

// ---------------------------------------------------------------------------------------
// Test sleeper
// ---------------------------------------------------------------------------------------

/// A [`Sleeper`] that returns at once, records each requested wait and moves a
/// `ManualClock` forward by it — so backoff and budget waits cost no real time.
#[derive(Debug)]
pub struct RecordingSleeper {
    clock: Option<Arc<ManualClock>>,
    slept: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    /// Advance `clock` by every wait.
    pub fn new(clock: Arc<ManualClock>) -> Arc<RecordingSleeper> {
        Arc::new(RecordingSleeper {
            clock: Some(clock),
            slept: Mutex::new(Vec::new()),
        })
    }

    /// Only record.
    pub fn recording_only() -> Arc<RecordingSleeper> {
        Arc::new(RecordingSleeper {
            clock: None,
            slept: Mutex::new(Vec::new()),
        })
    }

    /// Every wait asked for, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn total(&self) -> Duration {
        self.slept().iter().sum()
    }
}

#[async_trait]
impl Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        self.slept.lock().unwrap_or_else(|p| p.into_inner()).push(duration);
        if let Some(c) = &self.clock {
            c.advance(duration);
        }
        tokio::task::yield_now().await;
    }
}
