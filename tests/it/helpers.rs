//! Test harness: `spawn_app` starts the real local server on a random loopback port with a
//! fresh data dir and returns a `TestApp` that speaks HTTP to it.

use deskbridge::services::Context;
use deskbridge_local::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::Value;

pub const TOKEN: &str = "test-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub ctx: Context,
    _dir: tempfile::TempDir,
    /// Dropping it stops the server: it lives as long as the `TestApp`.
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir")).await
}

pub async fn spawn_app_in(dir: tempfile::TempDir) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = LocalServer::build(
        listener,
        LocalConfig {
            data_dir: dir.path().to_path_buf(),
            api_token: Some(TOKEN.to_string()),
            public_url: Some("https://desk.example.test".to_string()),
            allow_loopback_vendors: true,
        },
    )
    .await
    .expect("server builds");
    let addr = server.addr;
    let ctx = server.ctx.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        ctx,
        _dir: dir,
        _stop: tx,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(TOKEN)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.post(self.url(path)).bearer_auth(TOKEN).json(&body))
            .await
    }

    pub async fn post_as(&self, agent: u64, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(TOKEN)
                .header("X-Agent-Id", agent.to_string())
                .json(&body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.client.put(self.url(path)).bearer_auth(TOKEN).json(&body))
            .await
    }

    /// POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(TOKEN)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// Create a customer and return `(customer_id, main_site_id)`.
    pub async fn customer(&self, name: &str) -> (u64, u64) {
        let (s, c) = self.post("/api/customers", serde_json::json!({"name": name})).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        (c["id"].as_u64().unwrap(), c["main_site_id"].as_u64().unwrap())
    }
}

/// The `id` of a JSON object.
pub fn id(v: &Value) -> u64 {
    v["id"].as_u64().unwrap_or_else(|| panic!("no id in {v}"))
}
