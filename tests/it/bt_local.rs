//! The local server's own assembly for BeyondTrust: the connector honours
//! `allow_loopback_vendors`, and the worker drains `session-import` through the same
//! consumer as the Lambda (a failed import is released for a later receive, not acked).

use deskbridge::beyondtrust::fake::{FakeBeyondTrust, CLIENT_ID, CLIENT_SECRET};
use deskbridge::beyondtrust::fixtures;
use deskbridge_local::worker::{Drained, Worker};
use deskbridge_local::{LocalConfig, LocalServer};
use serde_json::json;

use crate::desk::Desk;

#[tokio::test]
async fn the_local_worker_imports_an_ended_session_onto_its_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = LocalServer::build(
        listener,
        LocalConfig {
            data_dir: dir.path().to_path_buf(),
            api_token: Some("local-token".into()),
            public_url: Some("https://desk.example.test".into()),
            allow_loopback_vendors: true,
        },
    )
    .await
    .unwrap();
    let d = Desk::over(&server.ctx);
    let worker = Worker::new(server.ctx.clone());
    let (_, fake) = FakeBeyondTrust::start().await;
    let (s, v) = d
        .put(
            "/api/config/beyondtrust",
            json!({"base_url": fake.base_url(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = d
        .post(
            "/api/agents",
            json!({"name": "Alice", "email": "a@d.example", "bt_enabled": true, "bt_name": "Alice Martin"}),
        )
        .await;
    assert_eq!(s, 201);
    let (_, c) = d.post("/api/customers", json!({"name": "Contoso"})).await;
    let (_, t) = d
        .post("/api/tickets", json!({"summary": "S", "customer_id": c["id"]}))
        .await;
    let tid = t["id"].as_u64().unwrap();
    let (_, url) = d.get("/api/config/beyondtrust/event-url").await;
    let path = url["url"].as_str().unwrap().replace("https://desk.example.test", "");
    let lsid = fixtures::LSID_T1042;
    let body = format!("event=support_conference_end&timestamp=1795425312&lsid={lsid}&external_key=T{tid}");
    // No report yet: the import fails and the message is released, not acked.
    let (s, _) = d
        .call(
            "POST",
            &path,
            Some("application/x-www-form-urlencoded"),
            body.clone().into_bytes(),
            false,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        worker.drain_once().await,
        Drained {
            done: 0,
            failed: 1,
            dead: 0
        }
    );
    // A second end event with the report in place: imported once.
    fake.set_report(
        lsid,
        fixtures::REPORT.replace(
            "<external_key>T1042</external_key>",
            &format!("<external_key>T{tid}</external_key>"),
        ),
    );
    let (s, _) = d
        .call(
            "POST",
            &path,
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
            false,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        worker.drain_once().await,
        Drained {
            done: 1,
            failed: 0,
            dead: 0
        }
    );
    let (_, t) = d.get(&format!("/api/tickets/{tid}")).await;
    let remote: Vec<_> = t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "remote_session")
        .collect();
    assert_eq!(remote.len(), 1, "{t}");
}
