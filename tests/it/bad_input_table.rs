//! The bad-input table of issue 14 item 6: over 50 hostile requests to the webhook, the
//! BeyondTrust event, inbound mail and the API, each with its documented answer, and every
//! stored record compared before and after (only the request log may grow).
//!
//! BeyondTrust's exception: with the right token an event body we cannot use is answered
//! 200 and recorded `rejected` (the appliance holds back every later event until one gets
//! 200); those rows expect 200 and a new `rejected` request-log entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::ports::{ManualClock, Record};
use deskbridge_tests::faults::FaultyStore;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{desk_on, fixture_json, fixture_time, Desk, STATE, TOKEN, UID};

/// What a row expects beyond its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    /// Nothing is written anywhere (API refusals).
    Nothing,
    /// One new request-log entry with the answer's status and a reason (intake refusals);
    /// for the BeyondTrust exception's 200, with outcome `rejected`.
    Entry,
    /// An intake request that was refused before it could be attributed (401 on a wrong
    /// secret): logged or not, never stored otherwise.
    Any,
}

struct Row {
    surface: &'static str,
    reason: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    bearer: bool,
    status: u16,
    /// Text the answer must contain (case-insensitive): the named problem.
    mentions: &'static str,
    logged: Logged,
}

fn row(
    (surface, reason): (&'static str, &'static str),
    method: &'static str,
    path: impl Into<String>,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    mentions: &'static str,
) -> Row {
    let path = path.into();
    let api = path.starts_with("/api/") || path.starts_with("/local/");
    let logged = if api && !path.starts_with("/local/") {
        Logged::Nothing
    } else {
        Logged::Entry
    };
    Row {
        surface,
        reason,
        method,
        path,
        content_type,
        body: body.into(),
        headers: vec![],
        bearer: api,
        status,
        mentions,
        logged,
    }
}

impl Row {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Row {
        self.headers.push((name, value.into()));
        self
    }
    fn logged(mut self, l: Logged) -> Row {
        self.logged = l;
        self
    }
    fn no_bearer(mut self) -> Row {
        self.bearer = false;
        self
    }
}

async fn send(desk: &Desk, r: &Row) -> (u16, String) {
    let mut req = http::Request::builder().method(r.method).uri(&r.path);
    if let Some(ct) = r.content_type {
        req = req.header("content-type", ct);
    }
    if r.bearer {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    for (k, v) in &r.headers {
        req = req.header(*k, v.as_str());
    }
    let router = deskbridge_local::local_router(desk.ctx.clone(), desk.outbox.clone());
    let resp = router
        .oneshot(req.body(Body::from(r.body.clone())).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Every record but the request log's entries (which bad input is meant to add) and the
/// kept bodies of rejected BeyondTrust events (written in the same write as their entry).
async fn records(faults: &FaultyStore) -> BTreeMap<(String, String), Record> {
    let mut s = faults.snapshot().await;
    s.retain(|(pk, _), _| pk != "request-log" && pk != "bt-kept-event");
    s
}

fn text_has(v: &Value, needle: &str) -> bool {
    v.as_str()
        .is_some_and(|t| t.to_lowercase().contains(&needle.to_lowercase()))
}

/// What a correctly authenticated BeyondTrust event we cannot use is answered: 200 once
/// recorded `rejected` with its reason and its body kept for replay (DESIGN §3, issue 10:
/// the appliance holds back every later event until one gets 200).
const BT_UNUSABLE: u16 = 200;

fn webhook(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn mail(from: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: alerts@desk.example.test\r\nSubject: {subject}\r\nDate: Mon, 24 Nov 2026 09:14:05 +0000\r\nMessage-ID: <x@centrastage.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn fifty_bad_inputs_get_their_documented_answer_and_change_no_record() {
    let clock = Arc::new(ManualClock::new(fixture_time()));
    let (inner, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let faults = FaultyStore::new(inner);
    let desk = desk_on(faults.clone(), clock);
    desk.configure_datto().await;
    // Stored state the table must not touch: an alert with its ticket, a customer, a
    // chat, a remote session's settings.
    let raised = fixture_json("webhook-raised.json");
    let (s, v) = desk.webhook(&raised).await;
    assert_eq!(s, 200, "{v}");
    let (_, fake) = FakeBeyondTrust::start().await;
    let (s, v) = desk
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": fake.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, c) = desk.post("/api/customers", json!({"name": "Acme"})).await;
    let cid = c["id"].as_u64().unwrap();
    let (_, t) = desk
        .post("/api/tickets", json!({"summary": "Existing", "customer_id": cid}))
        .await;
    let tid = t["id"].as_u64().unwrap();
    let (_, chat) = desk.post("/api/chats", json!({"user_name": "Jane"})).await;
    assert!(chat["id"].is_u64(), "{chat}");
    let (s, agent) = desk
        .post("/api/agents", json!({"name": "Bob", "email": "bob@desk.example"}))
        .await;
    assert_eq!(s, 201, "{agent}");
    let aid = agent["id"].as_u64().unwrap();
    let (_, url) = desk.get("/api/config/beyondtrust/event-url").await;
    let url = url["url"].as_str().unwrap();
    let event = url[url.find("/beyondtrust/events/").unwrap()..].to_string();
    let (_, wrong_event) = event
        .rsplit_once('/')
        .map(|(a, _)| (a, format!("{a}/not-the-token")))
        .unwrap();

    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = raised.clone();
        f(&mut v);
        webhook(&v)
    };
    let json_ct = Some("application/json");
    let form_ct = Some("application/x-www-form-urlencoded");
    let mail_ct = Some("message/rfc822");
    let wh = "/datto/webhook";
    let raised_text = String::from_utf8(webhook(&raised)).unwrap();
    let datto_from = "Datto RMM <noreply@centrastage.net>";
    let good_subject = format!("Alert on device: ACME-DC01, reason Disk C: 95% full - Alert{{{UID}}}");

    let rows = vec![
        // ---------------------------------------------------------------- Datto webhook
        row(
            ("webhook", "wrong content type (text/plain)"),
            "POST",
            wh,
            Some("text/plain"),
            webhook(&raised),
            415,
            "application/json",
        ),
        row(
            ("webhook", "form content type"),
            "POST",
            wh,
            form_ct,
            "state=x&alert_uid=y",
            415,
            "application/json",
        ),
        row(
            ("webhook", "no content type"),
            "POST",
            wh,
            None,
            webhook(&raised),
            415,
            "application/json",
        ),
        row(
            ("webhook", "invalid UTF-8 in a string"),
            "POST",
            wh,
            json_ct,
            raised_text
                .replace("ACME-DC01", "ACME-\u{1}")
                .into_bytes()
                .into_iter()
                .map(|b| if b == 1 { 0xff } else { b })
                .collect::<Vec<u8>>(),
            400,
            "unicode",
        ),
        row(
            ("webhook", "truncated JSON"),
            "POST",
            wh,
            json_ct,
            &raised_text.as_bytes()[..raised_text.len() / 2],
            400,
            "json",
        ),
        row(("webhook", "empty body"), "POST", wh, json_ct, "", 400, "json"),
        row(
            ("webhook", "a JSON array, not an object"),
            "POST",
            wh,
            json_ct,
            "[1,2,3]",
            401,
            "state",
        )
        .logged(Logged::Any),
        row(
            ("webhook", "deep nesting (10,000 levels)"),
            "POST",
            wh,
            json_ct,
            raised_text.replacen("{", &format!("{{\"deep\": {}, ", nested(10_000)), 1),
            400,
            "json",
        ),
        row(
            ("webhook", "over 256 KiB (a huge alert_message)"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_message"] = json!("x".repeat(300 * 1024))),
            413,
            "256 KiB",
        ),
        row(
            ("webhook", "missing state"),
            "POST",
            wh,
            json_ct,
            with(&|v| {
                v.as_object_mut().unwrap().remove("state");
            }),
            401,
            "state",
        )
        .logged(Logged::Any),
        row(
            ("webhook", "wrong state"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["state"] = json!("not-the-state")),
            401,
            "state",
        )
        .logged(Logged::Any),
        row(
            ("webhook", "state with a NUL byte appended"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["state"] = json!(format!("{STATE}\u{0}"))),
            401,
            "state",
        )
        .logged(Logged::Any),
        row(
            ("webhook", "missing alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| {
                v.as_object_mut().unwrap().remove("alert_uid");
            }),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "non-UUID alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_uid"] = json!("abc")),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "path traversal in alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_uid"] = json!("../../etc/passwd")),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "SQL-looking alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_uid"] = json!("' OR '1'='1' --")),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "NUL byte in alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_uid"] = json!(format!("{UID}\u{0}"))),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "numeric alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_uid"] = json!(12345)),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "alert_resolved not a boolean"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_resolved"] = json!("maybe")),
            400,
            "alert_resolved",
        ),
        row(
            ("webhook", "huge array as additional_values"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["additional_values"] = json!(vec![0; 50_000])),
            400,
            "additional_values",
        ),
        // ---------------------------------------------------------------- BeyondTrust event
        row(
            ("beyondtrust", "wrong token"),
            "POST",
            wrong_event.clone(),
            form_ct,
            format!("event=support_conference_end&lsid={}", "a".repeat(32)),
            401,
            "token",
        )
        .logged(Logged::Any),
        row(
            ("beyondtrust", "path traversal as the token"),
            "POST",
            "/beyondtrust/events/..%2F..%2Fetc%2Fpasswd",
            form_ct,
            "event=support_conference_end&lsid=x",
            401,
            "token",
        )
        .logged(Logged::Any),
        row(
            ("beyondtrust", "right token, session end without lsid (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            "event=support_conference_end&timestamp=1795425312",
            BT_UNUSABLE,
            "lsid",
        ),
        row(
            ("beyondtrust", "right token, invalid UTF-8 body (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            b"event=support_conference_end&timestamp=1795425312&lsid=\xff\xfe".to_vec(),
            BT_UNUSABLE,
            "lsid",
        ),
        row(
            ("beyondtrust", "right token, JSON instead of a form (recorded)"),
            "POST",
            event.clone(),
            json_ct,
            "{\"event\": \"support_conference_end\"}",
            BT_UNUSABLE,
            "form",
        ),
        row(
            ("beyondtrust", "right token, path traversal in lsid (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            "event=support_conference_end&timestamp=1795425312&lsid=..%2F..%2Fetc%2Fpasswd",
            BT_UNUSABLE,
            "lsid",
        ),
        row(
            ("beyondtrust", "right token, NUL byte in lsid (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            "event=support_conference_end&timestamp=1795425312&lsid=abc%00def",
            BT_UNUSABLE,
            "lsid",
        ),
        row(
            ("beyondtrust", "right token, 10,000-character lsid (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            format!(
                "event=support_conference_end&timestamp=1795425312&lsid={}",
                "a".repeat(10_000)
            ),
            BT_UNUSABLE,
            "lsid",
        ),
        row(
            ("beyondtrust", "right token, SQL-looking lsid (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            "event=support_conference_end&timestamp=1795425312&lsid=%27%20OR%201%3D1%20--",
            BT_UNUSABLE,
            "lsid",
        ),
        row(
            ("beyondtrust", "right token, over 256 KiB (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            format!("event=support_conference_end&lsid={}", "a".repeat(300 * 1024)),
            BT_UNUSABLE,
            "256 KiB",
        ),
        // ---------------------------------------------------------------- inbound mail
        row(
            ("mail", "no Alert{uid} in the subject"),
            "POST",
            "/local/mail",
            mail_ct,
            mail(datto_from, "Disk C: 95% full", "x"),
            422,
            "Alert{uid}",
        ),
        row(
            ("mail", "path traversal as the uid"),
            "POST",
            "/local/mail",
            mail_ct,
            mail(
                datto_from,
                "Alert on device: X, reason Y - Alert{../../etc/passwd}",
                "x",
            ),
            422,
            "Alert{uid}",
        ),
        row(
            ("mail", "SQL-looking uid"),
            "POST",
            "/local/mail",
            mail_ct,
            mail(datto_from, "Alert on device: X, reason Y - Alert{' OR 1=1 --}", "x"),
            422,
            "Alert{uid}",
        ),
        row(
            ("mail", "invalid UTF-8 in the headers"),
            "POST",
            "/local/mail",
            mail_ct,
            [
                b"From: \xff\xfe@centrastage.net\r\nSubject: Alert{".as_slice(),
                UID.as_bytes(),
                b"}\r\n\r\nx\r\n",
            ]
            .concat(),
            403,
            "from address",
        ),
        row(
            ("mail", "NUL bytes in the message"),
            "POST",
            "/local/mail",
            mail_ct,
            mail(datto_from, &good_subject, "x")
                .into_iter()
                .map(|b| if b == b':' { 0 } else { b })
                .collect::<Vec<u8>>(),
            422,
            "RFC 5322",
        ),
        row(
            ("mail", "no headers at all"),
            "POST",
            "/local/mail",
            mail_ct,
            "just some text",
            403,
            "sender (none)",
        ),
        row(
            ("mail", "missing API token"),
            "POST",
            "/local/mail",
            mail_ct,
            mail(datto_from, &good_subject, "x"),
            401,
            "missing",
        )
        .no_bearer()
        .logged(Logged::Nothing),
        // ---------------------------------------------------------------- helpdesk API
        row(
            ("api", "invalid UTF-8 in JSON"),
            "POST",
            "/api/tickets",
            json_ct,
            [
                b"{\"summary\": \"\xff\xfe\", \"customer_id\": ".as_slice(),
                cid.to_string().as_bytes(),
                b"}",
            ]
            .concat(),
            400,
            "unicode",
        ),
        row(
            ("api", "deep nesting in custom_fields"),
            "POST",
            "/api/tickets",
            json_ct,
            format!(
                "{{\"summary\": \"x\", \"customer_id\": {cid}, \"custom_fields\": {{\"a\": {}}}}}",
                nested(10_000)
            ),
            400,
            "json",
        ),
        row(
            ("api", "huge array in custom_fields"),
            "POST",
            "/api/tickets",
            json_ct,
            format!(
                "{{\"summary\": \"x\", \"customer_id\": {cid}, \"custom_fields\": {{\"a\": {}}}}}",
                serde_json::to_string(&vec![1; 50_000]).unwrap()
            ),
            400,
            "custom_fields",
        ),
        row(
            ("api", "negative customer_id"),
            "POST",
            "/api/tickets",
            json_ct,
            "{\"summary\": \"x\", \"customer_id\": -1}",
            400,
            "customer_id",
        ),
        row(
            ("api", "customer_id beyond u64"),
            "POST",
            "/api/tickets",
            json_ct,
            "{\"summary\": \"x\", \"customer_id\": 18446744073709551616}",
            400,
            "customer_id",
        ),
        row(
            ("api", "customer_id as a float"),
            "POST",
            "/api/tickets",
            json_ct,
            "{\"summary\": \"x\", \"customer_id\": 1e30}",
            400,
            "customer_id",
        ),
        row(
            ("api", "wrong content type (text/html)"),
            "POST",
            "/api/customers",
            Some("text/html"),
            "<b>Acme</b>",
            415,
            "application/json",
        ),
        row(
            ("api", "negative ticket id"),
            "GET",
            "/api/tickets/-1",
            None,
            "",
            400,
            "id",
        ),
        row(
            ("api", "ticket id beyond u64"),
            "GET",
            "/api/tickets/99999999999999999999",
            None,
            "",
            400,
            "id",
        ),
        row(
            ("api", "path traversal as a ticket id"),
            "GET",
            "/api/tickets/..%2F..%2Fetc%2Fpasswd",
            None,
            "",
            400,
            "id",
        ),
        row(
            ("api", "HTML as a ticket id"),
            "POST",
            "/api/tickets/%3Cscript%3E/close",
            json_ct,
            "{}",
            400,
            "id",
        ),
        row(
            ("api", "path traversal as an alert uid"),
            "GET",
            "/api/alerts/..%2F..%2Fetc%2Fpasswd",
            None,
            "",
            400,
            "uid",
        ),
        row(
            ("api", "SQL-looking alert uid"),
            "GET",
            "/api/alerts/%27%20OR%201%3D1%20--",
            None,
            "",
            400,
            "uid",
        ),
        row(
            ("api", "negative limit"),
            "GET",
            "/api/tickets?limit=-5",
            None,
            "",
            400,
            "limit",
        ),
        row(
            ("api", "non-numeric limit"),
            "GET",
            "/api/tickets?limit=abc",
            None,
            "",
            400,
            "limit",
        ),
        row(
            ("api", "SQL-looking cursor"),
            "GET",
            "/api/tickets?cursor=%27%3B%20DROP%20TABLE%20tickets%3B--",
            None,
            "",
            400,
            "cursor",
        ),
        row(
            ("api", "SQL-looking X-Agent-Id"),
            "POST",
            format!("/api/tickets/{tid}/close"),
            json_ct,
            "{}",
            400,
            "X-Agent-Id",
        )
        .header("x-agent-id", "1; DROP TABLE agents"),
        row(
            ("api", "header injection in the BeyondTrust base URL"),
            "PUT",
            "/api/config/beyondtrust",
            json_ct,
            "{\"base_url\": \"https://bt.example.com\\r\\nX-Evil: 1\"}",
            400,
            "base_url",
        ),
        row(
            ("api", "huge name (300 KiB)"),
            "POST",
            "/api/customers",
            json_ct,
            format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024)),
            413,
            "256 KiB",
        ),
        row(
            ("webhook", "HTML in alert_uid"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["alert_uid"] = json!("<script>alert(1)</script>")),
            400,
            "alert_uid",
        ),
        row(
            ("webhook", "state as a number"),
            "POST",
            wh,
            json_ct,
            with(&|v| v["state"] = json!(12345)),
            401,
            "state",
        )
        .logged(Logged::Any),
        row(
            ("api", "a JSON string as the body"),
            "POST",
            "/api/customers",
            json_ct,
            "\"Acme\"",
            400,
            "body",
        ),
        row(
            ("api", "negative customer_id filter"),
            "GET",
            "/api/tickets?customer_id=-3",
            None,
            "",
            400,
            "customer_id",
        ),
        row(
            ("api", "non-numeric customer id in the path"),
            "PUT",
            "/api/customers/abc",
            json_ct,
            "{\"name\": \"x\"}",
            400,
            "id",
        ),
        row(
            ("api", "header injection in the invite e-mail subject template"),
            "PUT",
            "/api/config/beyondtrust",
            json_ct,
            "{\"templates\": {\"email_subject\": \"Remote support\\r\\nBcc: evil@example.com\"}}",
            400,
            "email_subject",
        ),
        row(
            ("api", "chat message text null"),
            "POST",
            format!("/api/chats/{}/messages", chat["id"]),
            json_ct,
            "{\"text\": null}",
            400,
            "text",
        ),
        row(
            ("api", "SQL-looking ticket status filter"),
            "GET",
            "/api/tickets?status=open%27%20OR%20%271%27%3D%271",
            None,
            "",
            400,
            "status",
        ),
        // ------------------------------------------------ gaps the first table found
        row(
            ("webhook", "alert_uid given twice (duplicate JSON key)"),
            "POST",
            wh,
            json_ct,
            raised_text.replacen('{', "{\"alert_uid\": \"0b0b0b0b-1111-4222-8333-444455556666\", ", 1),
            400,
            "alert_uid",
        ),
        row(
            ("api", "summary given twice (duplicate JSON key)"),
            "POST",
            "/api/tickets",
            json_ct,
            format!("{{\"summary\": \"a\", \"summary\": \"b\", \"customer_id\": {cid}}}"),
            400,
            "summary",
        ),
        row(
            ("api", "duplicate key nested in custom fields"),
            "POST",
            "/api/tickets",
            json_ct,
            format!(
                "{{\"summary\": \"a\", \"customer_id\": {cid}, \"custom_fields\": {{\"k\": \"1\", \"k\": \"2\"}}}}"
            ),
            400,
            "custom_fields.k",
        ),
        row(
            ("api", "NUL byte in a ticket summary"),
            "POST",
            "/api/tickets",
            json_ct,
            format!("{{\"summary\": \"Disk\\u0000full\", \"customer_id\": {cid}}}"),
            400,
            "summary",
        ),
        row(
            ("api", "javascript: as the Datto API URL"),
            "PUT",
            "/api/config/datto",
            json_ct,
            "{\"api_url\": \"javascript:alert(1)\", \"alert_method\": \"webhook\"}",
            400,
            "api_url",
        ),
        row(
            ("api", "path traversal as a Datto site uid"),
            "PUT",
            "/api/site-mappings/..%2F..%2Fetc",
            json_ct,
            format!("{{\"customer_id\": {cid}, \"site_id\": 1}}"),
            400,
            "datto_site_uid",
        ),
        // ---------------------------------------------------------------- accounts
        row(
            ("accounts", "sign-in without a password"),
            "POST",
            "/api/auth/login",
            json_ct,
            r#"{"email": "bob@desk.example"}"#,
            400,
            "password",
        )
        .no_bearer(),
        row(
            ("accounts", "sign-in e-mail as a number"),
            "POST",
            "/api/auth/login",
            json_ct,
            r#"{"email": 42, "password": "long enough password"}"#,
            400,
            "email",
        )
        .no_bearer(),
        row(
            ("accounts", "password reset of 9 characters"),
            "PUT",
            format!("/api/agents/{aid}/password"),
            json_ct,
            r#"{"password": "123456789"}"#,
            400,
            "10 characters",
        ),
        row(
            ("accounts", "password reset for an agent id beyond u64"),
            "PUT",
            "/api/agents/99999999999999999999999/password",
            json_ct,
            r#"{"password": "long enough password"}"#,
            400,
            "id",
        ),
        row(
            ("accounts", "password reset with the password null"),
            "PUT",
            format!("/api/agents/{aid}/password"),
            json_ct,
            r#"{"password": null}"#,
            400,
            "password",
        ),
        row(
            ("accounts", "revoking a token by a non-numeric id"),
            "DELETE",
            "/api/auth/tokens/abc",
            None,
            "",
            400,
            "id",
        ),
        row(
            ("beyondtrust", "right token, two different lsids (recorded)"),
            "POST",
            event.clone(),
            form_ct,
            "event=support_conference_end&timestamp=1795425312&lsid=aaaa1111bbbb2222&lsid=cccc3333dddd4444",
            BT_UNUSABLE,
            "lsid",
        ),
    ];
    assert!(rows.len() >= 50, "{} rows", rows.len());

    let before = records(&faults).await;
    let outbox_before = desk.outbox.list().len();
    let mut failures = Vec::new();
    let mut per_surface: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        let log_before = desk.request_log("").await;
        let (status, body) = send(&desk, r).await;
        let log_after = desk.request_log("").await;
        let new: Vec<&Value> = log_after.iter().filter(|e| !log_before.contains(e)).collect();
        *per_surface.entry(r.surface).or_default() += 1;
        let mut problems = Vec::new();
        if status != r.status {
            problems.push(format!("status {status}, expected {}", r.status));
        }
        // The BeyondTrust exception answers 200; the log entry names the problem then.
        let named = if status == 200 {
            new.iter()
                .any(|e| e["outcome"] == "rejected" && text_has(&e["reason"], r.mentions))
        } else {
            body.to_lowercase().contains(&r.mentions.to_lowercase())
        };
        if !named {
            problems.push(format!("answer does not name {:?}", r.mentions));
        }
        match r.logged {
            Logged::Nothing if !new.is_empty() => problems.push(format!("logged {new:?}")),
            Logged::Entry if !(new.len() == 1 && new[0]["status"] == status && new[0]["reason"].is_string()) => {
                problems.push(format!(
                    "not one request-log entry with status {status} and a reason (new: {new:?})"
                ))
            }
            _ => {}
        }
        if before != records(&faults).await {
            problems.push("stored records changed".into());
        }
        let shown: String = body.chars().take(200).collect();
        println!("{:<12} {:<62} -> {status} {shown}", r.surface, r.reason);
        if !problems.is_empty() {
            failures.push(format!(
                "{} / {}: {} (answer {status} {shown})",
                r.surface,
                r.reason,
                problems.join("; ")
            ));
        }
    }
    println!(
        "bad-input table: {} rows {per_surface:?}, {} failed",
        rows.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(records(&faults).await, before, "bad input changed stored records");
    assert_eq!(desk.outbox.list().len(), outbox_before, "bad input sent mail");
}
