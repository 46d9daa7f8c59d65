//! The helpdesk API over the service-desk core, through the real local server: customers
//! with main sites, users, agents, teams, ticket types, tickets with actions, chats.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{id, spawn_app};

#[tokio::test]
async fn a_customer_is_created_with_its_main_site() {
    let app = spawn_app().await;
    let (s, c) = app
        .post(
            "/api/customers",
            json!({"name": "Acme Ltd", "main_site": {"name": "Head Office"}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, site) = app.get(&format!("/api/sites/{}", c["main_site_id"])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(site["name"], "Head Office");
    assert_eq!(site["customer_id"], c["id"]);

    let (_, c2) = app.post("/api/customers", json!({"name": "Birch & Co"})).await;
    let (_, site2) = app.get(&format!("/api/sites/{}", c2["main_site_id"])).await;
    assert_eq!(site2["name"], "Main", "the main site defaults to Main");
}

#[tokio::test]
async fn ticket_defaults_come_from_the_customer_and_the_default_type() {
    let app = spawn_app().await;
    let (cid, main_site) = app.customer("Acme").await;
    let (_, other) = app
        .post(
            "/api/ticket-types",
            json!({"name": "Request", "default_priority": "low"}),
        )
        .await;
    let (_, incident) = app
        .post(
            "/api/ticket-types",
            json!({"name": "Incident", "default_priority": "high", "is_default": true}),
        )
        .await;
    let (s, t) = app
        .post("/api/tickets", json!({"summary": "Printer jammed", "customer_id": cid}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!(t["site_id"].as_u64(), Some(main_site));
    assert_eq!(t["ticket_type_id"], incident["id"]);
    assert_eq!(t["priority"], "high");
    assert_eq!(t["status"], "open");

    // Making another type the default takes the flag off the first.
    let (s, _) = app
        .put(
            &format!("/api/ticket-types/{}", id(&other)),
            json!({"is_default": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, inc) = app.get(&format!("/api/ticket-types/{}", id(&incident))).await;
    assert_eq!(inc["is_default"], false);
    let (_, t2) = app
        .post("/api/tickets", json!({"summary": "New laptop", "customer_id": cid}))
        .await;
    assert_eq!(t2["ticket_type_id"], other["id"]);
    assert_eq!(t2["priority"], "low");
    assert!(id(&t2) > id(&t), "ticket ids only grow");
}

#[tokio::test]
async fn a_ticket_collects_actions_closes_with_a_note_and_reopens() {
    let app = spawn_app().await;
    let (cid, _) = app.customer("Acme").await;
    let (_, agent) = app
        .post(
            "/api/agents",
            json!({"name": "Alice Martin", "email": "alice@msp.example"}),
        )
        .await;
    let (_, t) = app
        .post("/api/tickets", json!({"summary": "VPN down", "customer_id": cid}))
        .await;
    let tid = id(&t);

    let (s, a) = app
        .post_as(
            id(&agent),
            &format!("/api/tickets/{tid}/actions"),
            json!({"note": "Called the user"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{a}");
    assert_eq!(a["kind"], "note");
    assert_eq!(a["agent_id"], agent["id"]);

    let (s, closed) = app
        .post_as(
            id(&agent),
            &format!("/api/tickets/{tid}/close"),
            json!({"note": "Certificate renewed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    let notes: Vec<&str> = closed["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["note"].as_str().unwrap())
        .collect();
    assert_eq!(notes, vec!["Called the user", "Ticket closed: Certificate renewed"]);

    let (s, e) = app.post(&format!("/api/tickets/{tid}/close"), json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"], "TICKET_CLOSED");

    let (s, reopened) = app
        .post_raw(&format!("/api/tickets/{tid}/reopen"), "application/json", vec![])
        .await;
    assert_eq!(s, StatusCode::OK, "{reopened}");
    assert_eq!(reopened["status"], "open");
    assert!(reopened.get("closed_at").is_none());
    assert_eq!(reopened["actions"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn ticket_lists_filter_and_page() {
    let app = spawn_app().await;
    let (a, _) = app.customer("Acme").await;
    let (b, _) = app.customer("Birch").await;
    for i in 0..7 {
        let cid = if i % 2 == 0 { a } else { b };
        app.post("/api/tickets", json!({"summary": format!("T{i}"), "customer_id": cid}))
            .await;
    }
    let (_, page1) = app.get(&format!("/api/tickets?customer_id={a}&limit=2")).await;
    let items = page1["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["summary"], "T6", "newest first");
    let next = page1["next"].as_str().expect("a next cursor");
    let (_, page2) = app
        .get(&format!("/api/tickets?customer_id={a}&limit=2&cursor={next}"))
        .await;
    let summaries: Vec<&str> = page2["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["summary"].as_str().unwrap())
        .collect();
    assert_eq!(summaries, vec!["T2", "T0"]);
    assert!(
        page2.get("next").is_none() || page2["next"].is_null() || {
            let (_, p3) = app
                .get(&format!(
                    "/api/tickets?customer_id={a}&limit=2&cursor={}",
                    page2["next"].as_str().unwrap()
                ))
                .await;
            p3["items"].as_array().unwrap().is_empty()
        }
    );

    let tid = id(&items[0]);
    app.post(&format!("/api/tickets/{tid}/close"), json!({})).await;
    let (_, closed) = app.get("/api/tickets?status=closed").await;
    assert_eq!(closed["items"].as_array().unwrap().len(), 1);
    let (_, open) = app.get("/api/tickets?status=open").await;
    assert_eq!(open["items"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn users_agents_and_teams_round_trip() {
    let app = spawn_app().await;
    let (cid, _) = app.customer("Acme").await;
    let (s, u) = app
        .post(
            "/api/users",
            json!({"name": "Jane Doe", "email": "jane@acme.example", "customer_id": cid}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, users) = app.get(&format!("/api/users?customer_id={cid}")).await;
    assert_eq!(users["items"][0]["email"], "jane@acme.example");
    let (s, u2) = app
        .put(&format!("/api/users/{}", id(&u)), json!({"name": "Jane Smith"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u2["name"], "Jane Smith");

    let (_, ag) = app
        .post(
            "/api/agents",
            json!({"name": "Bob", "email": "bob@msp.example", "bt_enabled": true, "bt_name": " Robert Keller "}),
        )
        .await;
    assert_eq!(ag["bt_name"], "Robert Keller");
    let (_, ag2) = app
        .put(&format!("/api/agents/{}", id(&ag)), json!({"bt_name": null}))
        .await;
    assert!(ag2["bt_name"].is_null());

    let (_, t1) = app
        .post("/api/teams", json!({"name": "Service Desk", "is_default": true}))
        .await;
    assert_eq!(t1["display_name"], "Service Desk");
    let (_, t2) = app
        .post("/api/teams", json!({"name": "Network", "is_default": true}))
        .await;
    let (_, t1_now) = app.get(&format!("/api/teams/{}", id(&t1))).await;
    assert_eq!(t1_now["is_default"], false, "at most one default team");
    assert_eq!(t2["is_default"], true);
}

#[tokio::test]
async fn a_chat_takes_messages_until_it_ends_and_links_to_a_ticket() {
    let app = spawn_app().await;
    let (cid, _) = app.customer("Acme").await;
    let (_, t) = app
        .post("/api/tickets", json!({"summary": "Chat follow-up", "customer_id": cid}))
        .await;
    let (s, chat) = app
        .post("/api/chats", json!({"user_name": "Jane", "customer_id": cid}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let chat_id = id(&chat);
    let (s, c) = app
        .post(
            &format!("/api/chats/{chat_id}/messages"),
            json!({"from": "Jane", "text": "Outlook asks for my password"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(c["messages"][0]["text"], "Outlook asks for my password");
    let (s, linked) = app
        .post(&format!("/api/chats/{chat_id}/link"), json!({"ticket_id": id(&t)}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(linked["ticket_id"], t["id"]);
    let (s, ended) = app.post(&format!("/api/chats/{chat_id}/end"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ended["status"], "ended");
    let (s, e) = app
        .post(
            &format!("/api/chats/{chat_id}/messages"),
            json!({"from": "Jane", "text": "hello?"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(e["error"], "CHAT_ENDED");
    let (_, c) = app.get(&format!("/api/chats/{chat_id}")).await;
    assert_eq!(c["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn healthz_needs_no_token_and_echoes_a_request_id() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().get("x-request-id").is_some());
}

/// A request that outlives the router's time limit gets the API's error body, not an empty
/// 504, with the request id and the security headers every answer has.
#[tokio::test]
async fn a_request_past_the_time_limit_is_answered_504_with_an_error_body() {
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            "late"
        }),
    );
    let app = deskbridge::http::with_common_layers_and_limit(slow, std::time::Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let resp = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(resp.headers().get("x-request-id").is_some());
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "TIMED_OUT", "{body}");
    assert!(body["message"].as_str().unwrap().contains("too long"), "{body}");
}
