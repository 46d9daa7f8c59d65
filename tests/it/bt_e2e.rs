//! BeyondTrust Remote Support end to end against the fake appliance, on SQLite and
//! DynamoDB Local: settings, event intake, session import and its four linking cases,
//! technician matching, invitations (e-mail and chat), team import, manual linking.

use axum::body::Body;
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, Fault, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::fixtures;
use deskbridge::ports::QueueName;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{on_both_stores, Desk, NowUtc, TOKEN};

pub(crate) const L1: &str = "0123456789abcdef0123456789abcdef";
pub(crate) const L2: &str = "fedcba9876543210fedcba9876543210";

/// The fixture report of a session with another lsid and external key.
pub(crate) fn report(lsid: &str, key: &str) -> String {
    fixtures::REPORT.replace(fixtures::LSID_T1042, lsid).replace(
        "<external_key>T1042</external_key>",
        &format!("<external_key>{key}</external_key>"),
    )
}

pub(crate) fn report_incomplete(lsid: &str, key: &str) -> String {
    fixtures::REPORT_INCOMPLETE.replace(fixtures::LSID_T1042, lsid).replace(
        "<external_key>T1042</external_key>",
        &format!("<external_key>{key}</external_key>"),
    )
}

/// A report with only Sam (public "Sam", private "Samuel Ortiz (Tier 1)"), no key.
fn report_sam(lsid: &str, display_name: &str) -> String {
    fixtures::REPORT_UNLINKED
        .replace(fixtures::LSID_UNLINKED, lsid)
        .replace(
            "<display_name>Sam</display_name>",
            &format!("<display_name>{display_name}</display_name>"),
        )
}

pub(crate) fn end_event(lsid: &str) -> Vec<u8> {
    format!("event=support_conference_end&version=3&timestamp=1795425312&appliance_id=ba8a&lsid={lsid}&external_key=")
        .into_bytes()
}

pub(crate) async fn call_as(
    d: &Desk,
    method: &str,
    path: &str,
    agent: Option<u64>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(a) = agent {
        req = req.header("x-agent-id", a.to_string());
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&b).unwrap())
        }
        None => Body::empty(),
    };
    let resp = d.router().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub(crate) struct Bt {
    pub(crate) fake: FakeBeyondTrust,
    pub(crate) customer: u64,
    pub(crate) user: u64,
    pub(crate) alice: u64,
    pub(crate) bob: u64,
}

pub(crate) fn id(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}

pub(crate) async fn create(d: &Desk, path: &str, body: Value) -> Value {
    let (s, v) = d.post(path, body).await;
    assert_eq!(s, 201, "{path}: {v}");
    v
}

pub(crate) async fn configure(d: &Desk, fake: &FakeBeyondTrust, extra: Value) -> Value {
    let mut cfg = json!({
        "base_url": fake.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "templates": {
            "remote_invite": "Open $LINKTOREMOTE or type $REMOTESESSIONCODE",
            "email_subject": "Remote support code $REMOTESESSIONCODE",
            "email_body": "Hello,\n$REMOTEINVITE\nCode: $REMOTESESSIONCODE\nLink: $LINKTOREMOTE",
            "chat_html": "<p class=\"invite\">$REMOTEINVITE</p>"
        }
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let (s, v) = d.put("/api/config/beyondtrust", cfg).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The fake, the settings, a customer with a user, Alice (public name, sloppy case and
/// spaces) and Bob (private name) as technicians.
pub(crate) async fn setup(d: &Desk, extra: Value) -> Bt {
    let (_, fake) = FakeBeyondTrust::start().await;
    setup_with(d, fake, extra).await
}

/// [`setup`] against a given fake (e.g. one on the desk's manual clock).
pub(crate) async fn setup_with(d: &Desk, fake: FakeBeyondTrust, extra: Value) -> Bt {
    configure(d, &fake, extra).await;
    let customer = id(&create(d, "/api/customers", json!({"name": "Contoso"})).await);
    let user = id(&create(
        d,
        "/api/users",
        json!({"name": "Jane Doe", "email": "jane@contoso.example", "customer_id": customer}),
    )
    .await);
    let alice = id(&create(
        d,
        "/api/agents",
        json!({"name": "Alice", "email": "alice@desk.example", "bt_enabled": true, "bt_name": "  alice MARTIN "}),
    )
    .await);
    let bob = id(&create(
        d,
        "/api/agents",
        json!({"name": "Bob", "email": "bob@desk.example", "bt_enabled": true, "bt_name": "robert keller (l2 network)"}),
    )
    .await);
    Bt {
        fake,
        customer,
        user,
        alice,
        bob,
    }
}

pub(crate) async fn ticket(d: &Desk, bt: &Bt) -> u64 {
    id(&create(
        d,
        "/api/tickets",
        json!({"summary": "Outlook asks for the password", "customer_id": bt.customer, "user_id": bt.user}),
    )
    .await)
}

pub(crate) async fn event_token(d: &Desk) -> String {
    let (s, v) = d.get("/api/config/beyondtrust/event-url").await;
    assert_eq!(s, 200);
    let url = v["url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with("https://desk.example.test/beyondtrust/events/btevt_"),
        "{url}"
    );
    url.rsplit('/').next().unwrap().to_string()
}

pub(crate) async fn post_event(d: &Desk, token: &str, body: Vec<u8>) -> (u16, Value) {
    d.call(
        "POST",
        &format!("/beyondtrust/events/{token}"),
        Some("application/x-www-form-urlencoded"),
        body,
        false,
    )
    .await
}

pub(crate) async fn end_session(d: &Desk, lsid: &str) {
    let token = event_token(d).await;
    let (s, v) = post_event(d, &token, end_event(lsid)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"], "enqueued");
}

pub(crate) async fn remote_actions(d: &Desk, ticket: u64) -> Vec<Value> {
    let (s, t) = d.get(&format!("/api/tickets/{ticket}")).await;
    assert_eq!(s, 200);
    t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "remote_session")
        .cloned()
        .collect()
}

pub(crate) async fn sessions(d: &Desk, query: &str) -> Vec<Value> {
    let (s, v) = d.get(&format!("/api/remote-sessions?limit=100{query}")).await;
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

// ---- linking cases ------------------------------------------------------------------------

async fn a_ticket_session_becomes_one_action_by_the_technician_even_when_the_end_event_repeats(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    bt.fake.set_report(L1, report(L1, &format!("T{t}")));
    end_session(&d, L1).await;
    end_session(&d, L1).await; // BeyondTrust repeats events
                               // Both imports run at once; a store-level write conflict may send one back for a retry.
    let (received, _) = d.drain(QueueName::SessionImport).await;
    assert_eq!(received, 2);
    for _ in 0..3 {
        if d.drain(QueueName::SessionImport).await == (0, 0) {
            break;
        }
    }
    let token = event_token(&d).await;
    let (s, v) = post_event(&d, &token, end_event(L1)).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("duplicate")), "{v}");
    assert_eq!(d.drain(QueueName::SessionImport).await, (0, 0));
    let actions = remote_actions(&d, t).await;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["agent_id"], bt.alice, "owner Alice matched by public name");
    let note = actions[0]["note"].as_str().unwrap();
    assert!(note.contains("Chat transcript"), "{note}");
    let stored = sessions(&d, "").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["linked_ticket_id"], t);
    assert_eq!(stored[0]["technician_agent_id"], bt.alice);
    assert_eq!(stored[0]["name"], "Remote Session");
    assert_eq!(stored[0]["user_id"], bt.user, "the ticket's user");
    let log = d.request_log("&source=beyondtrust-event").await;
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e["lsid"] == L1 && e["status"] == 200));
}

async fn a_session_from_a_chat_linked_to_a_ticket_lands_on_the_ticket(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    let chat = id(&create(
        &d,
        "/api/chats",
        json!({"user_name": "Jane", "user_id": bt.user, "ticket_id": t}),
    )
    .await);
    bt.fake.set_report(L1, report(L1, &format!("C{chat}")));
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    let stored = sessions(&d, "").await;
    assert_eq!(stored[0]["chat_id"], chat);
    assert_eq!(stored[0]["linked_ticket_id"], t);
    assert_eq!(stored[0]["user_id"], bt.user);
}

async fn a_session_from_an_open_chat_posts_to_the_chat_and_waits_for_manual_linking(d: Desk) {
    let bt = setup(&d, json!({})).await;
    configure(&d, &bt.fake, json!({"default_user_id": bt.user})).await;
    let chat = id(&create(&d, "/api/chats", json!({"user_name": "Walk-in"})).await);
    bt.fake.set_report(L1, report(L1, &format!("C{chat}")));
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    let (_, c) = d.get(&format!("/api/chats/{chat}")).await;
    let last = c["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(last["text"].as_str().unwrap().contains("has ended"), "{last}");
    let open = sessions(&d, "&linked=false").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["name"], format!("Chat {chat} with Walk-in"));
    assert_eq!(open[0]["user_id"], bt.user, "the default user stands in");
    assert!(open[0].get("linked_ticket_id").is_none());
    // Link by hand.
    let t = ticket(&d, &bt).await;
    let sid = id(&open[0]);
    let (s, v) = call_as(
        &d,
        "POST",
        &format!("/api/tickets/{t}/remote-sessions"),
        Some(bt.bob),
        Some(json!({"session_id": sid})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["linked_ticket_id"], t);
    let actions = remote_actions(&d, t).await;
    assert_eq!(actions.len(), 1);
    assert_eq!(
        actions[0]["agent_id"], bt.alice,
        "the technician, not the one who linked"
    );
    let (s, v) = d
        .post(&format!("/api/tickets/{t}/remote-sessions"), json!({"session_id": sid}))
        .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("ALREADY_LINKED")));
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    assert!(sessions(&d, "&linked=false").await.is_empty());
}

async fn a_session_with_no_key_is_parked_and_found_by_search(d: Desk) {
    let bt = setup(&d, json!({})).await;
    // Bob is absent from this report; Sam matches on his private name.
    let sam = id(&create(
        &d,
        "/api/agents",
        json!({"name": "Sam", "email": "sam@desk.example", "bt_enabled": true, "bt_name": "SAMUEL ORTIZ (TIER 1)"}),
    )
    .await);
    bt.fake.set_report(L1, report_sam(L1, "Sam"));
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    let parked = sessions(&d, "&linked=false&q=remote%20sess").await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0]["name"], "Remote Session");
    assert_eq!(parked[0]["technician_agent_id"], sam);
    assert!(sessions(&d, "&linked=false&q=nothing-like-this").await.is_empty());
    let _ = bt.bob;
}

async fn technicians_match_on_the_display_name_too(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let sammy = id(&create(
        &d,
        "/api/agents",
        json!({"name": "Sammy", "email": "sammy@desk.example", "bt_enabled": true, "bt_name": " sammy o "}),
    )
    .await);
    bt.fake.set_report(L1, report_sam(L1, "Sammy O"));
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    assert_eq!(sessions(&d, "").await[0]["technician_agent_id"], sammy);
}

async fn an_incomplete_report_is_retried_until_it_completes(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    let key = format!("T{t}");
    bt.fake
        .set_report_sequence(L1, report_incomplete(L1, &key), report(L1, &key), 2);
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 1));
    assert!(remote_actions(&d, t).await.is_empty());
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 1));
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    assert_eq!(bt.fake.report_fetches(L1), 3);
}

async fn an_unknown_technician_links_nothing_and_is_logged(d: Desk) {
    let (_, fake) = FakeBeyondTrust::start().await;
    configure(&d, &fake, json!({})).await;
    // Alice's name, but not enabled for BeyondTrust.
    create(
        &d,
        "/api/agents",
        json!({"name": "Alice", "email": "a@x.example", "bt_enabled": false, "bt_name": "Alice Martin"}),
    )
    .await;
    let customer = id(&create(&d, "/api/customers", json!({"name": "C"})).await);
    let t = id(&create(&d, "/api/tickets", json!({"summary": "s", "customer_id": customer})).await);
    fake.set_report(L1, report(L1, &format!("T{t}")));
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0), "done, not retried");
    assert!(remote_actions(&d, t).await.is_empty());
    assert!(sessions(&d, "").await.is_empty());
    let log = d.request_log("&source=session-import").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["outcome"], "no_technician");
    assert_eq!(log[0]["lsid"], L1);
}

async fn only_generated_here_ignores_foreign_sessions_and_keeps_ours(d: Desk) {
    let bt = setup(&d, json!({"only_generated_here": true})).await;
    create(
        &d,
        "/api/teams",
        json!({"name": "Service Desk", "bt_team_id": "3", "is_default": true}),
    )
    .await;
    let foreign = ticket(&d, &bt).await;
    let ours = ticket(&d, &bt).await;
    let (s, v) = d
        .post(&format!("/api/tickets/{ours}/remote-invites"), json!({"via": "action"}))
        .await;
    assert_eq!(s, 201, "{v}");
    bt.fake.set_report(L1, report(L1, &format!("T{foreign}")));
    bt.fake.set_report(L2, report(L2, &format!("T{ours}")));
    end_session(&d, L1).await;
    end_session(&d, L2).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (2, 0));
    assert!(remote_actions(&d, foreign).await.is_empty());
    assert_eq!(remote_actions(&d, ours).await.len(), 1);
    let log = d.request_log("&source=session-import&outcome=not_generated_here").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["lsid"], L1);
}

async fn with_only_generated_here_off_a_foreign_session_is_parked(d: Desk) {
    let bt = setup(&d, json!({"only_generated_here": false})).await;
    bt.fake.set_report(L1, report(L1, "INC0012345"));
    end_session(&d, L1).await;
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    let parked = sessions(&d, "&linked=false").await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0]["name"], "Remote Session");
}

// ---- intake -------------------------------------------------------------------------------

/// Issue 10 changed this contract (DESIGN §3): with the right token an unusable body is
/// answered 200 and recorded `rejected` (it used to be a 400, which stalls the
/// appliance's whole feed). It still enqueues nothing and fetches no report.
async fn a_wrong_token_or_a_malformed_body_records_nothing(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let token = event_token(&d).await;
    let (s, v) = post_event(&d, "btevt_wrong", end_event(L1)).await;
    assert_eq!(s, 401);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("holds back every later event until this URL is fixed"),
        "{v}"
    );
    let (s, _) = post_event(&d, "", end_event(L1)).await;
    assert!(s == 401 || s == 404 || s == 405, "{s}");
    let (s, v) = post_event(&d, &token, b"\xff\xfe=%%%".to_vec()).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("rejected")), "{v}");
    let (s, v) = post_event(
        &d,
        &token,
        b"event=support_conference_end&timestamp=1795425312".to_vec(),
    )
    .await;
    assert_eq!((s, v["result"].as_str()), (200, Some("rejected")), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("lsid"), "{v}");
    assert_eq!(d.drain(QueueName::SessionImport).await, (0, 0), "nothing enqueued");
    let (s, v) = post_event(
        &d,
        &token,
        format!("event=support_conference_member_added&timestamp=1795425312&lsid={L1}").into_bytes(),
    )
    .await;
    assert_eq!((s, v["result"].as_str()), (200, Some("ignored")));
    assert_eq!(d.drain(QueueName::SessionImport).await, (0, 0));
    let log = d.request_log("&source=beyondtrust-event").await;
    let outcomes: Vec<&str> = log.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert!(outcomes.contains(&"unauthorized") && outcomes.contains(&"rejected") && outcomes.contains(&"ignored"));
    let refused = log.iter().find(|e| e["outcome"] == "unauthorized").unwrap();
    assert_eq!(refused["status"], 401);
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("holds back every later event until this URL is fixed"),
        "{refused}"
    );
    let (_, setup) = d.get("/api/config/beyondtrust/event-url").await;
    assert!(setup["note"]
        .as_str()
        .unwrap()
        .contains("holds back every later event until this URL is fixed"));
    assert_eq!(bt.fake.report_fetches(L1), 0);
}

async fn an_unusable_body_gets_200_is_logged_rejected_and_the_next_event_imports(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    bt.fake.set_report(L1, report(L1, &format!("T{t}")));
    bt.fake.set_report(L2, report(L2, &format!("T{t}")));
    let token = event_token(&d).await;
    // A session end whose timestamp the appliance garbled, then a good one behind it.
    let garbled = format!("event=support_conference_end&version=3&timestamp=soon&lsid={L2}");
    let (s, v) = post_event(&d, &token, garbled.clone().into_bytes()).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("rejected")), "{v}");
    let (s, v) = post_event(&d, &token, end_event(L1)).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("enqueued")), "{v}");
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    assert_eq!(remote_actions(&d, t).await.len(), 1, "the good event was imported");
    let rejected = d.request_log("&source=beyondtrust-event&outcome=rejected").await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let r = &rejected[0];
    assert_eq!(r["status"], 200);
    assert!(r["reason"].as_str().unwrap().contains("timestamp"), "{r}");
    assert_eq!(r["raw_body"], garbled.as_str(), "kept for replay");
    // Replay: the kept body still cannot be used, so it is refused and nothing changes.
    let replay = format!("/api/request-log/{}/replay", r["id"].as_str().unwrap());
    let (s, v) = d.post(&replay, json!({})).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("VALIDATION")), "{v}");
    assert!(v["message"].as_str().unwrap().contains("timestamp"), "{v}");
    assert_eq!(d.drain(QueueName::SessionImport).await, (0, 0));
    let (s, v) = d.post("/api/request-log/nosuchentry/replay", json!({})).await;
    assert_eq!(s, 404, "{v}");
}

async fn a_kept_body_replays_once_the_cause_is_fixed(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    bt.fake.set_report(L2, report(L2, &format!("T{t}")));
    let token = event_token(&d).await;
    // A body an older parser refused and today's reads: recorded as intake records a
    // rejected body (log entry + kept body in one write), then replayed by the admin.
    let mut log = deskbridge::store::RequestLogEntry::new("beyondtrust-event", d.clock.now_utc());
    log.status = 200;
    log.outcome = "rejected".into();
    log.reason = Some("timestamp: not understood by an older parser".into());
    d.ctx.store.log_rejected_event(&log, &end_event(L2)).await.unwrap();
    let (s, v) = d.post(&format!("/api/request-log/{}/replay", log.id), json!({})).await;
    assert_eq!(
        (s, v["result"].as_str(), v["lsid"].as_str()),
        (200, Some("enqueued"), Some(L2)),
        "{v}"
    );
    assert_eq!(d.drain(QueueName::SessionImport).await, (1, 0));
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    // A second replay is a duplicate: the import is idempotent by lsid.
    let (s, v) = d.post(&format!("/api/request-log/{}/replay", log.id), json!({})).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("duplicate")), "{v}");
    let (s, v) = post_event(&d, &token, end_event(L2)).await;
    assert_eq!((s, v["result"].as_str()), (200, Some("duplicate")), "{v}");
    assert_eq!(remote_actions(&d, t).await.len(), 1);
    let replayed = d.request_log("&source=beyondtrust-event&outcome=enqueued").await;
    assert!(
        replayed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with(&format!("replay of request-log entry {}", log.id)),
        "{replayed:?}"
    );
}

// ---- invitations --------------------------------------------------------------------------

async fn an_invite_for_oneself_emails_the_code_and_the_link(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    let (s, inv) = call_as(
        &d,
        "POST",
        &format!("/api/tickets/{t}/remote-invites"),
        Some(bt.alice),
        Some(json!({"target": format!("agent:{}", bt.alice), "via": "quick"})),
    )
    .await;
    assert_eq!(s, 201, "{inv}");
    assert_eq!(inv["queue"], "rep:12");
    assert_eq!(inv["external_key"], format!("T{t}"));
    let code = inv["short_key"].as_str().unwrap().to_string();
    let url = inv["key_url"].as_str().unwrap().to_string();
    let issued = bt.fake.issued_keys();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].external_key.as_deref(), Some(format!("T{t}").as_str()));
    let mails = d.outbox.list();
    assert_eq!(mails.len(), 1);
    let m = &mails[0].1;
    assert_eq!(m.to, vec!["jane@contoso.example".to_string()]);
    assert!(m.subject.contains(&code));
    assert!(
        m.text.contains(&format!("Code: {code}")) && m.text.contains(&url),
        "{}",
        m.text
    );
    let (_, tk) = d.get(&format!("/api/tickets/{t}")).await;
    let audit: Vec<&Value> = tk["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "email")
        .collect();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["agent_id"], bt.alice);
    // The logged-in list is reused for a short while (the vendor asks for caching).
    let body = json!({"target": format!("agent:{}", bt.alice), "via": "action"});
    let path = format!("/api/tickets/{t}/remote-invites");
    let (s, _) = call_as(&d, "POST", &path, Some(bt.alice), Some(body.clone())).await;
    assert_eq!(s, 201);
    assert_eq!(bt.fake.calls("get_logged_in_reps"), 1);
    d.clock.advance(std::time::Duration::from_secs(21));
    let (s, _) = call_as(&d, "POST", &path, Some(bt.alice), Some(body)).await;
    assert_eq!(s, 201);
    assert_eq!(bt.fake.calls("get_logged_in_reps"), 2);
}

async fn an_agent_who_is_not_logged_in_is_unavailable_unless_the_default_team_stands_in(d: Desk) {
    let bt = setup(&d, json!({"allow_invites_for_others": true})).await;
    let sam = id(&create(
        &d,
        "/api/agents",
        json!({"name": "Sam", "email": "s@d.example", "bt_enabled": true, "bt_name": "Sam"}),
    )
    .await);
    create(
        &d,
        "/api/teams",
        json!({"name": "Service Desk", "bt_team_id": "3", "is_default": true}),
    )
    .await;
    let t = ticket(&d, &bt).await;
    let path = format!("/api/tickets/{t}/remote-invites");
    let body = json!({"target": format!("agent:{sam}"), "via": "action"});
    let (s, v) = call_as(&d, "POST", &path, Some(bt.alice), Some(body.clone())).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("TECHUNAVAILABLE")), "{v}");
    assert!(bt.fake.issued_keys().is_empty());
    assert!(d.outbox.list().is_empty());
    configure(
        &d,
        &bt.fake,
        json!({"allow_invites_for_others": true, "fallback_to_default_team": true}),
    )
    .await;
    let (s, v) = call_as(&d, "POST", &path, Some(bt.alice), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["queue"], "team:3");
    assert_eq!(bt.fake.issued_keys()[0].queue_id, "team:3");
    // Listed as logged in, but the appliance refuses the agent's queue: the same rule.
    let alice = json!({"target": format!("agent:{}", bt.alice), "via": "action"});
    bt.fake.push_fault(
        "generate_session_key",
        Fault::ErrorRoot("Representative is not available".into()),
    );
    let (s, v) = call_as(&d, "POST", &path, Some(bt.alice), Some(alice.clone())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["queue"], "team:3");
    configure(&d, &bt.fake, json!({"allow_invites_for_others": true})).await;
    bt.fake.push_fault(
        "generate_session_key",
        Fault::ErrorRoot("Representative is not available".into()),
    );
    let (s, v) = call_as(&d, "POST", &path, Some(bt.alice), Some(alice)).await;
    assert_eq!((s, v["error"].as_str()), (409, Some("TECHUNAVAILABLE")), "{v}");
}

async fn quick_invites_and_invites_for_others_can_be_refused(d: Desk) {
    let bt = setup(&d, json!({"disable_quick_invites": true})).await;
    let t = ticket(&d, &bt).await;
    let path = format!("/api/tickets/{t}/remote-invites");
    let (s, v) = call_as(&d, "POST", &path, Some(bt.alice), Some(json!({"via": "quick"}))).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("QUICK_INVITES_DISABLED")), "{v}");
    let (s, v) = call_as(
        &d,
        "POST",
        &path,
        Some(bt.alice),
        Some(json!({"via": "action", "target": format!("agent:{}", bt.bob)})),
    )
    .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("INVITES_FOR_OTHERS_DISABLED")),
        "{v}"
    );
    assert!(bt.fake.issued_keys().is_empty());
}

async fn without_a_default_team_the_invite_goes_without_a_code(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let t = ticket(&d, &bt).await;
    let (s, v) = d
        .post(
            &format!("/api/tickets/{t}/remote-invites"),
            json!({"email": "other@contoso.example"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["queue"].is_null() && v["short_key"].is_null());
    assert!(bt.fake.issued_keys().is_empty());
    let mails = d.outbox.list();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1.to, vec!["other@contoso.example".to_string()]);
    assert_eq!(mails[0].1.text, "Hello,\n\nCode: \nLink: ");
    assert_eq!(mails[0].1.subject, "Remote support code ");
}

async fn a_chat_invite_posts_the_escaped_template(d: Desk) {
    let bt = setup(&d, json!({})).await;
    configure(
        &d,
        &bt.fake,
        json!({"templates": {"remote_invite": "Code <$REMOTESESSIONCODE> & link $LINKTOREMOTE",
                              "chat_html": "<p class=\"invite\">$REMOTEINVITE</p><a href=\"$LINKTOREMOTE\">join</a>"}}),
    )
    .await;
    create(
        &d,
        "/api/teams",
        json!({"name": "Service Desk", "bt_team_id": "3", "is_default": true}),
    )
    .await;
    let chat = id(&create(&d, "/api/chats", json!({"user_name": "Jane"})).await);
    let (s, v) = call_as(
        &d,
        "POST",
        &format!("/api/chats/{chat}/remote-invites"),
        Some(bt.alice),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let code = v["short_key"].as_str().unwrap();
    let (_, c) = d.get(&format!("/api/chats/{chat}")).await;
    let msg = c["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(msg["html"], true);
    assert_eq!(msg["from"], "Alice");
    let text = msg["text"].as_str().unwrap();
    assert!(text.starts_with("<p class=\"invite\">Code &lt;"), "{text}");
    assert!(text.contains(&format!("&lt;{code}&gt; &amp; link")), "{text}");
    assert!(d.outbox.list().is_empty(), "chat invites send no e-mail");
    assert_eq!(
        bt.fake.issued_keys()[0].external_key.as_deref(),
        Some(format!("C{chat}").as_str())
    );
}

async fn a_ticket_type_sends_an_invite_on_creation_and_a_failure_never_fails_the_ticket(d: Desk) {
    let bt = setup(&d, json!({})).await;
    create(
        &d,
        "/api/teams",
        json!({"name": "Service Desk", "bt_team_id": "3", "is_default": true}),
    )
    .await;
    let tt = id(&create(
        &d,
        "/api/ticket-types",
        json!({"name": "Remote", "send_remote_invite_on_create": true}),
    )
    .await);
    let t = create(
        &d,
        "/api/tickets",
        json!({"summary": "Help", "customer_id": bt.customer, "user_id": bt.user, "ticket_type_id": tt}),
    )
    .await;
    assert_eq!(bt.fake.issued_keys().len(), 1);
    assert_eq!(d.outbox.list().len(), 1);
    assert!(
        t["actions"].as_array().unwrap().iter().any(|a| a["kind"] == "email"),
        "{t}"
    );
    // The explicit flag on a plain ticket; BeyondTrust fails: the ticket stands, noted.
    for _ in 0..3 {
        bt.fake.push_fault("generate_session_key", Fault::Status(500));
    }
    let t = create(
        &d,
        "/api/tickets",
        json!({"summary": "Help", "customer_id": bt.customer, "send_remote_invite": true}),
    )
    .await;
    let notes: Vec<&str> = t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "system")
        .map(|a| a["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), 1, "{t}");
    assert!(
        notes[0].starts_with("Automatic remote support invitation failed"),
        "{}",
        notes[0]
    );
    // `false` overrides the type.
    create(
        &d,
        "/api/tickets",
        json!({"summary": "No", "customer_id": bt.customer, "ticket_type_id": tt, "send_remote_invite": false}),
    )
    .await;
    assert_eq!(bt.fake.issued_keys().len(), 1);
}

// ---- settings and teams -------------------------------------------------------------------

async fn settings_keep_the_secret_write_only_and_validate(d: Desk) {
    let bt = setup(&d, json!({})).await;
    let (s, v) = d.get("/api/config/beyondtrust").await;
    assert_eq!(s, 200);
    assert_eq!(v["client_secret"], json!({"set": true}));
    assert!(!v.to_string().contains(CLIENT_SECRET));
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": "http://bt.example.com", "client_id": "x"}),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("VALIDATION")), "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("base_url"));
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": bt.fake.base_url(), "client_id": CLIENT_ID, "default_user_id": 999}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("default_user_id"));
    let (s, v) = d.post("/api/config/beyondtrust/test", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true, "{v}");
    bt.fake.push_fault("token", Fault::Status(401));
    d.ctx.beyondtrust.forget_token().await;
    let (_, v) = d.post("/api/config/beyondtrust/test", json!({})).await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(v["message"].as_str().unwrap().contains("OAuth"), "{v}");
    let (s, v) = d.get("/api/assets/INV-00042/beyondtrust-jump-url").await;
    assert_eq!(s, 200);
    assert_eq!(
        v["url"],
        format!("{}/api/client_script?type=rep&operation=generate&action=start_jump_item_session&jump.method=pinned&search_string=INV-00042", bt.fake.base_url())
    );
}

async fn importing_teams_twice_makes_no_duplicates_and_keeps_edits(d: Desk) {
    let _bt = setup(&d, json!({})).await;
    // Two imports at once still make one team per BeyondTrust team.
    let ((s1, v1), (s2, v2)) = tokio::join!(
        d.post("/api/teams/import", json!({})),
        d.post("/api/teams/import", json!({}))
    );
    assert_eq!((s1, s2), (200, 200), "{v1} {v2}");
    assert_eq!(v1["created"].as_u64().unwrap() + v2["created"].as_u64().unwrap(), 2);
    let (_, v) = d.get("/api/teams?limit=100").await;
    let teams = v["items"].as_array().unwrap().clone();
    assert_eq!(teams.len(), 2, "{v}");
    let sd = teams.iter().find(|t| t["bt_team_id"] == "3").unwrap();
    let (s, _) = d
        .put(
            &format!("/api/teams/{}", id(sd)),
            json!({"display_name": "Helpdesk", "is_default": true}),
        )
        .await;
    assert_eq!(s, 200);
    let net = teams.iter().find(|t| t["bt_team_id"] == "5").unwrap();
    d.put(&format!("/api/teams/{}", id(net)), json!({"enabled": false}))
        .await;
    let (s, v) = d.post("/api/teams/import", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!((v["created"].as_u64(), v["updated"].as_u64()), (Some(0), Some(0)));
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let sd = items.iter().find(|t| t["bt_team_id"] == "3").unwrap();
    assert_eq!(
        (sd["display_name"].as_str(), sd["is_default"].as_bool()),
        (Some("Helpdesk"), Some(true))
    );
    let net = items.iter().find(|t| t["bt_team_id"] == "5").unwrap();
    assert_eq!(net["enabled"], false);
    assert_eq!(items.iter().filter(|t| t["is_default"] == true).count(), 1);
}

async fn bad_invite_and_link_requests_name_the_problem(d: Desk) {
    let bt = setup(&d, json!({"allow_invites_for_others": true})).await;
    let t = ticket(&d, &bt).await;
    let path = format!("/api/tickets/{t}/remote-invites");
    for (body, field) in [
        (json!({"target": "robot:1"}), "target"),
        (json!({"target": "agent:999"}), "target"),
        (json!({"target": "team:x"}), "target"),
        (json!({"via": "carrier-pigeon"}), "via"),
        (json!({"email": "not an address"}), "email"),
    ] {
        let (s, v) = d.post(&path, body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with(field), "{body}: {v}");
    }
    let (s, _) = d.post("/api/tickets/999/remote-invites", json!({})).await;
    assert_eq!(s, 404);
    let (s, _) = d
        .post(&format!("/api/tickets/{t}/remote-sessions"), json!({"session_id": 42}))
        .await;
    assert_eq!(s, 404);
    let (s, v) = d.post(&format!("/api/tickets/{t}/remote-sessions"), json!({})).await;
    assert_eq!(s, 400, "{v}");
    assert!(bt.fake.issued_keys().is_empty());
    // A ticket without a user and no address given: the invite is kept and noted, no mail.
    let bare = id(&create(
        &d,
        "/api/tickets",
        json!({"summary": "No user", "customer_id": bt.customer}),
    )
    .await);
    create(
        &d,
        "/api/teams",
        json!({"name": "Service Desk", "bt_team_id": "3", "is_default": true}),
    )
    .await;
    let (s, v) = d.post(&format!("/api/tickets/{bare}/remote-invites"), json!({})).await;
    assert_eq!(s, 201, "{v}");
    assert!(d.outbox.list().is_empty());
    let (_, tk) = d.get(&format!("/api/tickets/{bare}")).await;
    let note = tk["actions"][0]["note"].as_str().unwrap();
    assert!(note.contains("not e-mailed"), "{note}");
}

/// The invitation e-mail through SES (in moto): the code and the link arrive.
#[tokio::test]
async fn the_invite_email_goes_out_through_ses_with_the_code_and_the_link() {
    let Some((mailer, sent)) = crate::contract::mailer::ses_fixture().await else {
        return;
    };
    let clock = std::sync::Arc::new(deskbridge::ports::ManualClock::new(crate::desk::fixture_time()));
    let (records, _dir) = deskbridge_tests::stores::sqlite(clock.clone());
    let mut d = crate::desk::desk_on(records, clock);
    d.ctx.mailer = mailer;
    let bt = setup(&d, json!({"email_from": crate::contract::mailer::SENDER})).await;
    create(
        &d,
        "/api/teams",
        json!({"name": "Service Desk", "bt_team_id": "3", "is_default": true}),
    )
    .await;
    let t = ticket(&d, &bt).await;
    let (s, inv) = d
        .post(&format!("/api/tickets/{t}/remote-invites"), json!({"via": "action"}))
        .await;
    assert_eq!(s, 201, "{inv}");
    let code = inv["short_key"].as_str().unwrap();
    let url = inv["key_url"].as_str().unwrap();
    let mails: Vec<_> = sent
        .sent()
        .await
        .into_iter()
        .filter(|(_, m)| m.text.contains(url))
        .collect();
    assert_eq!(mails.len(), 1, "one invitation with this key URL");
    let m = &mails[0].1;
    assert_eq!(m.from, crate::contract::mailer::SENDER);
    assert_eq!(m.to, vec!["jane@contoso.example".to_string()]);
    assert!(
        m.subject.contains(code) && m.text.contains(&format!("Code: {code}")),
        "{m:?}"
    );
}

on_both_stores!(
    a_ticket_session_becomes_one_action_by_the_technician_even_when_the_end_event_repeats,
    a_session_from_a_chat_linked_to_a_ticket_lands_on_the_ticket,
    a_session_from_an_open_chat_posts_to_the_chat_and_waits_for_manual_linking,
    a_session_with_no_key_is_parked_and_found_by_search,
    technicians_match_on_the_display_name_too,
    an_incomplete_report_is_retried_until_it_completes,
    an_unknown_technician_links_nothing_and_is_logged,
    only_generated_here_ignores_foreign_sessions_and_keeps_ours,
    with_only_generated_here_off_a_foreign_session_is_parked,
    a_wrong_token_or_a_malformed_body_records_nothing,
    an_unusable_body_gets_200_is_logged_rejected_and_the_next_event_imports,
    a_kept_body_replays_once_the_cause_is_fixed,
    an_invite_for_oneself_emails_the_code_and_the_link,
    an_agent_who_is_not_logged_in_is_unavailable_unless_the_default_team_stands_in,
    quick_invites_and_invites_for_others_can_be_refused,
    without_a_default_team_the_invite_goes_without_a_code,
    a_chat_invite_posts_the_escaped_template,
    a_ticket_type_sends_an_invite_on_creation_and_a_failure_never_fails_the_ticket,
    settings_keep_the_secret_write_only_and_validate,
    importing_teams_twice_makes_no_duplicates_and_keeps_edits,
    bad_invite_and_link_requests_name_the_problem,
);
