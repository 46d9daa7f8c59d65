//! Secrets stay secret (issue 14 item 8, the rest): write-only through every settings
//! endpoint, absent from every log line of a full scenario, and HTML in chat escaped.
//!
//! The log test installs a global tracing subscriber at TRACE: it needs a process of its
//! own, which nextest (scripts/test) gives every test.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, Fault, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::fixtures;
use deskbridge::datto::fake::FakeDatto;
use deskbridge::ports::QueueName;
use serde_json::{json, Value};

use crate::datto_e2e::wire;
use crate::desk::{fixture_json, Desk, STATE, TOKEN};

/// Every form a secret could take in a line: raw, URL-encoded (both space styles), base64
/// (standard and URL-safe, with and without padding), and JSON-escaped.
fn disguises(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let mut out = vec![
        secret.to_string(),
        urlencoding(secret, false),
        urlencoding(secret, true),
        b64.trim_end_matches('=').to_string(),
        b64url,
        serde_json::to_string(secret).unwrap().trim_matches('"').to_string(),
    ];
    out.sort();
    out.dedup();
    out
}

fn urlencoding(s: &str, plus_for_space: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' if plus_for_space => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Where the subscriber writes: one buffer for the whole process.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn capture_logs() -> Captured {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)
        .expect("the log test needs a process of its own (run it with cargo nextest, as scripts/test does)");
    captured
}

async fn bt_event(d: &Desk, path: &str, body: String) -> u16 {
    d.call(
        "POST",
        path,
        Some("application/x-www-form-urlencoded"),
        body.into_bytes(),
        false,
    )
    .await
    .0
}

/// A full scenario with known secrets, every log line at TRACE captured, then searched for
/// each secret in every disguise; and every settings endpoint read back without a secret.
#[tokio::test]
async fn no_secret_appears_in_any_log_line_or_settings_answer() {
    let logs = capture_logs();
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = crate::desk::desk_on(records, clock);

    // Datto: API key and secret, the webhook state; the alert's whole flow.
    let w = wire(&mut d, 500).await;
    let (s, r) = d.webhook(&fixture_json("webhook-raised.json")).await;
    assert_eq!(s, 200, "{r}");
    let tid = r["ticket_id"].as_u64().unwrap();
    assert_eq!(d.drain(QueueName::AlertEnrich).await.1, 0);
    let mut wrong = fixture_json("webhook-raised.json");
    wrong["state"] = json!(format!("{STATE}x"));
    assert_eq!(d.webhook(&wrong).await.0, 401);
    // A body that still fails keeps its raw text in the request log: with the state in it.
    let broken = format!("{{\"state\": \"{STATE}\", \"alert_uid\": ");
    let (s, _) = d
        .call(
            "POST",
            "/datto/webhook",
            Some("application/json"),
            broken.into_bytes(),
            false,
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = d.post("/api/config/datto/webhook/rotate-state", json!({})).await;
    assert_eq!(s, 200);
    let (_, helper) = d.get("/api/config/datto/webhook").await;
    let new_state = helper["raised_payload"]["state"].as_str().unwrap().to_string();
    assert_eq!(
        d.post(&format!("/api/tickets/{tid}/close"), json!({"note": "done"}))
            .await
            .0,
        200
    );
    assert_eq!(d.drain(QueueName::TicketClosed).await.1, 0);
    assert!(w.fake.count_prefix("/api/v2/alert/") > 0, "the propagator called Datto");
    let (_, cfg) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!(cfg["ok"], true, "{cfg}");

    // BeyondTrust: client secret, event token; an invite and a session import.
    let (_, bt) = FakeBeyondTrust::start().await;
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": bt.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, t) = d.post("/api/config/beyondtrust/test", json!({})).await;
    assert_eq!(t["ok"], true, "{t}");
    let (_, url) = d.get("/api/config/beyondtrust/event-url").await;
    let url = url["url"].as_str().unwrap().to_string();
    let path = url[url.find("/beyondtrust/events/").unwrap()..].to_string();
    let event_token = path.rsplit('/').next().unwrap().to_string();
    let (_, agent) = d
        .post(
            "/api/agents",
            json!({"name": "Alice", "email": "alice@desk.example", "bt_enabled": true, "bt_name": "Alice Martin"}),
        )
        .await;
    assert!(agent["id"].is_u64(), "{agent}");
    let (_, c) = d.post("/api/customers", json!({"name": "Contoso"})).await;
    let (_, u) = d
        .post(
            "/api/users",
            json!({"name": "Jane", "email": "jane@contoso.example", "customer_id": c["id"]}),
        )
        .await;
    let (_, t2) = d
        .post(
            "/api/tickets",
            json!({"summary": "Printer", "customer_id": c["id"], "user_id": u["id"]}),
        )
        .await;
    let t2 = t2["id"].as_u64().unwrap();
    let (s, inv) = d
        .post(&format!("/api/tickets/{t2}/remote-invites"), json!({"via": "quick"}))
        .await;
    assert_eq!(s, 201, "{inv}");
    let lsid = fixtures::LSID_T1042;
    bt.set_report(
        lsid,
        fixtures::REPORT.replace(
            "<external_key>T1042</external_key>",
            &format!("<external_key>T{t2}</external_key>"),
        ),
    );
    let form = format!("event=support_conference_end&timestamp=1795425312&lsid={lsid}&external_key=T{t2}");
    assert_eq!(bt_event(&d, &path, form.clone()).await, 200);
    let wrong_path = path.replace(&event_token, &format!("{event_token}x"));
    assert_eq!(bt_event(&d, &wrong_path, form).await, 401);
    assert_eq!(d.drain(QueueName::SessionImport).await.1, 0);
    // A rejected bearer token is logged too.
    let (s, _) = d.call("GET", "/api/tickets", None, vec![], false).await;
    assert_eq!(s, 401);

    let secrets: Vec<(&str, String)> = vec![
        ("Datto API key", FakeDatto::API_KEY.to_string()),
        ("Datto API secret", FakeDatto::API_SECRET.to_string()),
        ("webhook state", STATE.to_string()),
        ("rotated webhook state", new_state.clone()),
        ("BeyondTrust client secret", CLIENT_SECRET.to_string()),
        ("BeyondTrust event token", event_token.clone()),
        ("API token", TOKEN.to_string()),
    ];
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 50, "the scenario logged only {} lines", lines.len());
    let mut leaks = Vec::new();
    for (name, secret) in &secrets {
        for form in disguises(secret) {
            for l in lines.iter().filter(|l| l.contains(form.as_str())) {
                leaks.push(format!("{name} as {form:?}: {l}"));
            }
        }
    }
    println!(
        "logs: {} lines ({} KiB) searched for {} secrets in {} forms (raw, URL-encoded, base64, JSON); {} leaks",
        lines.len(),
        text.len() / 1024,
        secrets.len(),
        secrets.iter().map(|(_, s)| disguises(s).len()).sum::<usize>(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "secrets in the logs:\n{}", leaks.join("\n"));

    // Write-only: no settings or operations answer carries a secret, except the two that
    // exist to be pasted: the webhook helper (its state) and the event URL (its token).
    let (_, open_alert) = d.get("/api/request-log?limit=1000").await;
    assert!(open_alert["items"].is_array());
    let mut sweep = Vec::new();
    let endpoints = [
        "/api/config/datto",
        "/api/config/beyondtrust",
        "/api/config/datto/webhook",
        "/api/config/beyondtrust/event-url",
        "/api/request-log?limit=1000",
        "/api/request-log?source=datto-webhook&limit=1000",
        "/api/request-log?source=beyondtrust-event&limit=1000",
        "/api/dead-letters",
        "/api/sync/datto/runs",
        "/api/agents",
        "/api/teams",
        "/api/tickets?limit=1000",
        &format!("/api/tickets/{tid}"),
        &format!("/api/tickets/{t2}"),
        &format!("/api/alerts/{}", crate::desk::UID),
        "/api/remote-sessions",
        "/api/openapi.json",
    ];
    for path in endpoints {
        let (s, v) = d.get(path).await;
        assert_eq!(s, 200, "{path}: {v}");
        let body = v.to_string();
        for (name, secret) in &secrets {
            // Datto's API key is an account identifier shown like BeyondTrust's client id
            // (DESIGN's datto config shape); only its secret is write-only.
            let identifier = *name == "Datto API key";
            let pasted = identifier
                || (path == "/api/config/datto/webhook" && secret == &new_state)
                || (path == "/api/config/beyondtrust/event-url" && secret == &event_token);
            if !pasted && disguises(secret).iter().any(|f| body.contains(f.as_str())) {
                sweep.push(format!("{path} shows the {name}"));
            }
        }
        sweep_set_flags(path, &v, &mut sweep);
    }
    println!(
        "settings sweep: {} endpoints read, {} secrets shown",
        endpoints.len(),
        sweep.len()
    );
    assert!(sweep.is_empty(), "{}", sweep.join("\n"));
}

/// The settings answers say a secret is set instead of showing it.
fn sweep_set_flags(path: &str, v: &Value, out: &mut Vec<String>) {
    let fields: &[&str] = match path {
        "/api/config/datto" => &["api_secret"],
        "/api/config/beyondtrust" => &["client_secret"],
        _ => return,
    };
    for f in fields {
        if v[f] != json!({"set": true}) && v[f] != json!(true) && v[format!("{f}_set")] != json!(true) {
            out.push(format!("{path}: {f} is {} (expected it marked as set)", v[f]));
        }
    }
}

/// HTML in chat: a chat invite's message is the HTML template with every value escaped,
/// even a key URL BeyondTrust sent with markup in it; the customer's own words and name
/// are stored as text, never as HTML.
#[tokio::test]
async fn html_in_chat_is_escaped() {
    let clock = Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let d = crate::desk::desk_on(records, clock);
    let (_, bt) = FakeBeyondTrust::start().await;
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": bt.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let script = "<script>alert(1)</script>";
    let (s, chat) = d
        .post("/api/chats", json!({"user_name": format!("Jane {script}")}))
        .await;
    assert_eq!(s, 201, "{chat}");
    let chat_id = chat["id"].as_u64().unwrap();
    let (s, m) = d
        .post(
            &format!("/api/chats/{chat_id}/messages"),
            json!({"from": format!("Jane {script}"), "text": format!("help {script}")}),
        )
        .await;
    assert!(s == 200 || s == 201, "{m}");
    // BeyondTrust answers with a key whose URL and code carry markup (XML-escaped on the wire).
    bt.push_fault(
        "generate_session_key",
        Fault::Body(
            fixtures::SESSION_KEY_TEAM
                .replace("<key_url>", "<key_url>&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;")
                .replace("<short_key>", "<short_key>&lt;b&gt;"),
        ),
    );
    let (s, inv) = d.post(&format!("/api/chats/{chat_id}/remote-invites"), json!({})).await;
    assert_eq!(s, 201, "{inv}");
    let (_, chat) = d.get(&format!("/api/chats/{chat_id}")).await;
    let messages = chat["messages"].as_array().unwrap();
    let invite = messages.last().unwrap();
    let html = invite["text"].as_str().unwrap();
    println!("chat invite message: {html}");
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "unescaped markup: {html}"
    );
    // The customer's text and name come back as the text they were, marked as not HTML.
    let customer = messages
        .iter()
        .find(|m| m["text"].as_str().is_some_and(|t| t.starts_with("help")))
        .unwrap();
    assert_eq!(customer["text"], format!("help {script}"));
    assert_ne!(customer["html"], true, "{customer}");
    assert_eq!(chat["user_name"], format!("Jane {script}"));
}
