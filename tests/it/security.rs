//! Security promises over HTTP: security headers on every answer of every router (success
//! and error), https-only vendor URLs except the loopback switch, constant-time secrets.
//!
//! Headers are judged by what they allow, not by their exact text: a CSP whose scripts may
//! come only from 'self' (or nowhere) and that refuses framing, `nosniff`, a referrer
//! policy that never sends the path, and HSTS exactly when the request came over https.

use std::path::{Path, PathBuf};

use axum::body::Body;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::datto::fake::FakeDatto;
use deskbridge::datto::state::{WebhookState, SECRET_NAME};
use deskbridge::ports::SecretString;
use deskbridge_local::{LocalConfig, LocalServer};
use http::HeaderMap;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{fixture, Desk, NowUtc, STATE, TOKEN};
use crate::helpers::{spawn_app, TestApp};

/// The directive's sources, `None` when the directive is absent.
fn directive<'a>(csp: &'a str, name: &str) -> Option<Vec<&'a str>> {
    csp.split(';').map(str::trim).find_map(|d| {
        let mut words = d.split_whitespace();
        (words.next() == Some(name)).then(|| words.collect())
    })
}

/// Everything the security headers must say; returns the CSP for further checks.
fn check_headers(what: &str, h: &HeaderMap, https: bool) -> String {
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
    let csp = get("content-security-policy").unwrap_or_else(|| panic!("{what}: no Content-Security-Policy"));
    let scripts = directive(&csp, "script-src")
        .or_else(|| directive(&csp, "default-src"))
        .unwrap_or_else(|| panic!("{what}: CSP {csp:?} limits no scripts"));
    assert!(
        scripts.iter().all(|s| *s == "'self'" || *s == "'none'"),
        "{what}: scripts may come from {scripts:?}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert_eq!(
        directive(&csp, "frame-ancestors"),
        Some(vec!["'none'"]),
        "{what}: {csp}"
    );
    assert_eq!(get("x-content-type-options").as_deref(), Some("nosniff"), "{what}");
    let referrer = get("referrer-policy").unwrap_or_else(|| panic!("{what}: no Referrer-Policy"));
    assert!(
        [
            "no-referrer",
            "same-origin",
            "strict-origin",
            "strict-origin-when-cross-origin"
        ]
        .contains(&referrer.as_str()),
        "{what}: Referrer-Policy {referrer}"
    );
    match get("strict-transport-security") {
        Some(hsts) if https => {
            let max_age: u64 = hsts
                .split(';')
                .find_map(|p| p.trim().strip_prefix("max-age="))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what}: HSTS {hsts:?} without max-age"));
            assert!(max_age >= 31_536_000, "{what}: HSTS max-age {max_age} is under a year");
        }
        None if !https => {}
        other => panic!("{what}: over https={https} HSTS is {other:?}"),
    }
    csp
}

/// One request of the table: method, path, content type, body, with the API token?
struct Probe {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    auth: bool,
}

fn probe(method: &'static str, path: impl Into<String>, auth: bool) -> Probe {
    Probe {
        method,
        path: path.into(),
        content_type: None,
        body: vec![],
        auth,
    }
}

fn with_body(mut p: Probe, content_type: &'static str, body: impl Into<Vec<u8>>) -> Probe {
    p.content_type = Some(content_type);
    p.body = body.into();
    p
}

/// Requests that reach every part of the routers: success, 4xx of each kind, 413, 404, 405.
fn probes(event_token: &str) -> Vec<Probe> {
    vec![
        probe("GET", "/healthz", false),
        probe("GET", "/api/tickets", true),
        probe("GET", "/api/tickets", false),
        probe("GET", "/api/tickets/999999", true),
        with_body(probe("POST", "/api/customers", true), "application/json", "{not json"),
        probe("GET", "/no/such/route", false),
        probe("GET", "/console", false),
        probe("GET", "/console/app.js", false),
        with_body(
            probe("POST", "/datto/webhook", false),
            "application/json",
            fixture("webhook-raised.json"),
        ),
        with_body(
            probe("POST", "/datto/webhook", false),
            "application/json",
            "{\"state\": 1",
        ),
        with_body(probe("POST", "/datto/webhook", false), "text/plain", "x"),
        with_body(
            probe("POST", "/datto/webhook", false),
            "application/json",
            vec![b' '; 300 * 1024],
        ),
        probe("GET", "/datto/webhook", false),
        with_body(
            probe("POST", format!("/beyondtrust/events/{event_token}"), false),
            "application/x-www-form-urlencoded",
            "event=support_conference_end&timestamp=1795425312&lsid=a3f1c9e27b5d4e08b6c2d9f4e1a7b530",
        ),
        with_body(
            probe("POST", "/beyondtrust/events/btevt_wrong", false),
            "application/x-www-form-urlencoded",
            "event=x&timestamp=1",
        ),
    ]
}

/// Send each probe through `router` in-process, plain and as if over https; return the
/// distinct statuses seen.
async fn through_router(name: &str, router: axum::Router, event_token: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for p in probes(event_token) {
        for https in [false, true] {
            let mut req = http::Request::builder().method(p.method).uri(&p.path);
            if let Some(ct) = p.content_type {
                req = req.header("content-type", ct);
            }
            if p.auth {
                req = req.header("authorization", format!("Bearer {TOKEN}"));
            }
            if https {
                req = req.header("x-forwarded-proto", "https");
            }
            let resp = router
                .clone()
                .oneshot(req.body(Body::from(p.body.clone())).unwrap())
                .await
                .unwrap();
            let what = format!("{name} {} {} (https={https}) -> {}", p.method, p.path, resp.status());
            let csp = check_headers(&what, resp.headers(), https);
            if p.path.starts_with("/console") {
                assert_eq!(directive(&csp, "script-src"), Some(vec!["'self'"]), "{what}");
                assert_eq!(directive(&csp, "style-src"), Some(vec!["'self'"]), "{what}");
            }
            statuses.push(resp.status().as_u16());
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

async fn desk_with_event_token() -> (Desk, String, tempfile::TempDir) {
    let clock = std::sync::Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let d = crate::desk::desk_on(records, clock);
    d.configure_datto().await;
    let (_, v) = d.get("/api/config/beyondtrust/event-url").await;
    let token = v["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    (d, token, dir)
}

#[tokio::test]
async fn every_router_puts_the_security_headers_on_every_answer() {
    let (d, token, _dir) = desk_with_event_token().await;
    let s = &d.ctx;
    let mut figures = Vec::new();
    for (name, router) in [
        ("helpdesk", deskbridge::http::helpdesk_router(s.clone())),
        ("datto intake", deskbridge::http::datto_router(s.clone())),
        ("beyondtrust intake", deskbridge::http::beyondtrust_router(s.clone())),
        ("full", deskbridge::http::full_router(s.clone())),
    ] {
        let statuses = through_router(name, router, &token).await;
        figures.push(format!("{name}: {statuses:?}"));
    }
    // The table must reach successes and errors alike, or it proves little.
    let all = figures.join("; ");
    for needed in ["200", "401", "404", "413"] {
        assert!(all.contains(needed), "no {needed} answer among {all}");
    }
    println!(
        "security headers checked on {} probes x 2 schemes per router; statuses {all}",
        probes("").len()
    );
}

/// The local server over real TCP: its own routes (`/local/mail`, `/api/outbox`) too.
#[tokio::test]
async fn the_local_server_puts_the_security_headers_on_every_answer() {
    let app = spawn_app().await;
    let d = Desk::over(&app.ctx);
    d.use_fixture_state().await;
    let (_, v) = d.get("/api/config/beyondtrust/event-url").await;
    let token = v["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let mut list = probes(&token);
    list.push(with_body(
        probe("POST", "/local/mail", true),
        "message/rfc822",
        fixture("alert-email.eml"),
    ));
    list.push(with_body(probe("POST", "/local/mail", true), "message/rfc822", ""));
    list.push(probe("GET", "/api/outbox", true));
    list.push(probe("GET", "/api/outbox", false));
    let mut statuses = Vec::new();
    for p in list {
        for https in [false, true] {
            let resp = send(&app, &p, https).await;
            let what = format!("local {} {} (https={https}) -> {}", p.method, p.path, resp.status());
            check_headers(&what, resp.headers(), https);
            statuses.push(resp.status().as_u16());
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    assert!(
        statuses.iter().any(|s| *s < 300) && statuses.iter().any(|s| *s >= 400),
        "{statuses:?}"
    );
    println!("local server: security headers on every answer, statuses {statuses:?}");
}

async fn send(app: &TestApp, p: &Probe, https: bool) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(p.method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(&p.path)).body(p.body.clone());
    if let Some(ct) = p.content_type {
        req = req.header("content-type", ct);
    }
    if p.auth {
        req = req.bearer_auth(crate::helpers::TOKEN);
    }
    if https {
        req = req.header("x-forwarded-proto", "https");
    }
    req.send().await.expect("request sent")
}

/// An API Gateway event (which carries `x-forwarded-proto: https`) through the Lambda
/// request path gets HSTS as well.
#[tokio::test]
async fn the_lambda_path_gets_hsts_from_api_gateways_forwarded_proto() {
    let (d, _token, _dir) = desk_with_event_token().await;
    let path = format!("{}/events/helpdesk-api-healthz.json", env!("CARGO_MANIFEST_DIR"));
    let event = lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let resp = deskbridge::http::helpdesk_router(d.ctx.clone())
        .oneshot(event)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    check_headers("lambda healthz", resp.headers(), true);
}

// ---- vendor URLs ----------------------------------------------------------------------------

async fn server(allow_loopback_vendors: bool) -> (Desk, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = LocalServer::build(
        listener,
        LocalConfig {
            data_dir: dir.path().to_path_buf(),
            api_token: Some("t".into()),
            public_url: Some("https://desk.example.test".into()),
            allow_loopback_vendors,
        },
    )
    .await
    .unwrap();
    (Desk::over(&server.ctx), dir)
}

/// BeyondTrust's base URL and Datto's API URL take https only; a loopback http fake only
/// behind the explicit switch, and never a plain-http host elsewhere, switch or not.
#[tokio::test]
async fn vendor_urls_are_https_only_except_behind_the_loopback_switch() {
    let (_, fake) = FakeBeyondTrust::start().await;
    let datto = FakeDatto::start().await;
    let mut refused = 0;
    for allow in [false, true] {
        let (d, _dir) = server(allow).await;
        for (url, ok) in [
            ("https://support.example.com".to_string(), true),
            ("http://support.example.com".to_string(), false),
            ("http://10.0.0.1".to_string(), false),
            ("ftp://support.example.com".to_string(), false),
            (fake.base_url().to_string(), allow),
        ] {
            let (s, v) = d
                .put(
                    "/api/config/beyondtrust",
                    json!({"base_url": url, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
                )
                .await;
            if ok {
                assert_eq!(s, 200, "switch={allow} {url}: {v}");
            } else {
                assert_eq!(
                    (s, v["error"].as_str()),
                    (400, Some("VALIDATION")),
                    "switch={allow} {url}: {v}"
                );
                assert!(v["message"].as_str().unwrap().contains("base_url"), "{v}");
                refused += 1;
            }
        }

        // Datto: a URL no Datto API has is refused when saved; a loopback one is saved and
        // checked against the switch when the client is built; a refused one is never called.
        for (url, ok) in [
            (datto.base_url().to_string(), allow),
            ("http://concord-api.centrastage.net".to_string(), false),
        ] {
            let before = datto.request_count();
            let (s, v) = d
                .put(
                    "/api/config/datto",
                    json!({"api_url": url, "api_key": FakeDatto::API_KEY, "api_secret": FakeDatto::API_SECRET}),
                )
                .await;
            if !url.starts_with(datto.base_url()) {
                assert_eq!((s, v["error"].as_str()), (400, Some("VALIDATION")), "{url}: {v}");
                let message = v["message"].as_str().unwrap();
                assert!(message.contains("api_url") && message.contains("https"), "{v}");
                assert_eq!(datto.request_count(), before, "a refused URL was called: {url}");
                refused += 1;
                continue;
            }
            assert_eq!(s, 200, "{v}");
            let (s, v) = d.post("/api/config/datto/test", json!({})).await;
            assert_eq!(s, 200, "{v}");
            if ok {
                assert_eq!(v["ok"], true, "switch={allow} {url}: {v}");
            } else {
                assert_eq!(v["ok"], false, "switch={allow} {url}: {v}");
                assert!(v["message"].as_str().unwrap().contains("https"), "{v}");
                assert_eq!(datto.request_count(), before, "a refused URL was called: {url}");
                refused += 1;
            }
        }
    }
    println!("vendor URLs: {refused} refused (https only; loopback http only with the switch)");
}

// ---- constant-time secrets ------------------------------------------------------------------

/// Each secret a request presents, and the function that compares it.
const SECRET_PATHS: [(&str, &str); 4] = [
    ("the Datto webhook state", "fn same("),
    ("the helpdesk API bearer token", "fn actor_of("),
    ("the session's CSRF token", "fn same_secret("),
    ("the BeyondTrust event token", "fn event_token_matches("),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn shared_sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    rust_files(&root.join("shared/src"), &mut files);
    rust_files(&root.join("infra/local/src"), &mut files);
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

/// The body of the function whose signature starts at `at` (up to its closing brace at
/// the signature's indentation).
fn function_body(text: &str, at: usize) -> &str {
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..at];
    let close = format!("\n{indent}}}");
    let end = text[at..].find(&close).map_or(text.len(), |i| at + i + close.len());
    &text[at..end]
}

/// Every secret path compares with `subtle`'s `ct_eq`, and no code anywhere compares an
/// exposed secret with `==`, `!=` or a prefix/suffix test (those stop at the first
/// differing byte and leak how much of a guess was right).
#[test]
fn secrets_are_compared_in_constant_time() {
    let sources = shared_sources();
    for (what, signature) in SECRET_PATHS {
        let found: Vec<_> = sources
            .iter()
            .filter_map(|(f, text)| text.find(signature).map(|at| (f, function_body(text, at))))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{what}: expected one `{signature}` in the sources, found {}",
            found.len()
        );
        let (file, body) = found[0];
        assert!(
            body.contains(".ct_eq("),
            "{what} ({}) is not compared with ct_eq:\n{body}",
            file.display()
        );
    }
    for (f, text) in &sources {
        for (n, line) in text.lines().enumerate() {
            if !line.contains(".expose()") {
                continue;
            }
            for op in ["==", "!=", ".eq(", "starts_with(", "ends_with(", "strip_prefix("] {
                assert!(
                    !line.contains(op),
                    "{}:{}: an exposed secret next to `{op}`: {line}",
                    f.display(),
                    n + 1
                );
            }
        }
    }
}

/// The same secret paths over HTTP: the right secret passes; one that differs only in its
/// last byte, a prefix of it, and the secret with a byte added are all refused.
#[tokio::test]
async fn each_secret_path_refuses_near_misses() {
    let (d, token, _dir) = desk_with_event_token().await;
    let near = |s: &str| -> Vec<String> {
        let mut last = s.to_string();
        let c = last.pop().unwrap();
        last.push(if c == 'x' { 'y' } else { 'x' });
        vec![last, s[..s.len() - 1].to_string(), format!("{s}x")]
    };

    // Webhook state.
    let mut body: Value = serde_json::from_slice(&fixture("webhook-raised.json")).unwrap();
    for wrong in near(STATE) {
        body["state"] = json!(wrong);
        assert_eq!(d.webhook(&body).await.0, 401, "state {wrong:?}");
    }
    body["state"] = json!(STATE);
    assert_eq!(d.webhook(&body).await.0, 200);

    // Helpdesk bearer token.
    for wrong in near(TOKEN) {
        let req = http::Request::get("/api/tickets")
            .header("authorization", format!("Bearer {wrong}"))
            .body(Body::empty())
            .unwrap();
        let resp = d.router().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 401, "token {wrong:?}");
    }
    assert_eq!(d.get("/api/tickets").await.0, 200);

    // BeyondTrust event token.
    let form = b"event=support_conference_end&timestamp=1795425312&lsid=a3f1c9e27b5d4e08b6c2d9f4e1a7b530".to_vec();
    for wrong in near(&token) {
        let (s, _) = d
            .call(
                "POST",
                &format!("/beyondtrust/events/{wrong}"),
                Some("application/x-www-form-urlencoded"),
                form.clone(),
                false,
            )
            .await;
        assert_eq!(s, 401, "event token {wrong:?}");
    }
    let (s, v) = d
        .call(
            "POST",
            &format!("/beyondtrust/events/{token}"),
            Some("application/x-www-form-urlencoded"),
            form,
            false,
        )
        .await;
    assert_eq!(s, 200, "{v}");

    // The rotated-away state stays valid for the grace period only (compared the same way).
    let st = WebhookState {
        current: "new-state-0123456789".into(),
        previous: Some(STATE.into()),
        rotated_at: Some(d.clock.now_utc()),
    };
    d.ctx
        .secrets
        .put(SECRET_NAME, &SecretString::new(serde_json::to_string(&st).unwrap()))
        .await
        .unwrap();
    for wrong in near(STATE) {
        body["state"] = json!(wrong);
        assert_eq!(d.webhook(&body).await.0, 401, "previous state near miss {wrong:?}");
    }
}
