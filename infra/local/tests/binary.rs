//! The `deskbridge` binary as a child process: a clean stop on SIGTERM, records kept across
//! restarts, nothing lost to a SIGKILL right after a 2xx, the API token generated once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The `deskbridge` binary cargo built for this test.
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_deskbridge"))
}

struct Server {
    child: Child,
    base: String,
    stdout_lines: Vec<String>,
}

fn start(data_dir: &Path, token: Option<&str>) -> Server {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("DESKBRIDGE_API_TOKEN")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(t) = token {
        cmd.env("DESKBRIDGE_API_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("server did not print its address in time");
        };
        let found = line.strip_prefix("deskbridge listening on ").map(str::to_string);
        lines.push(line);
        if let Some(base) = found {
            return Server {
                child,
                base,
                stdout_lines: lines,
            };
        }
    }
}

impl Server {
    async fn call(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let mut req = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.base),
            )
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("server answers");
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }

    fn sigterm_and_wait(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }
}

const TOKEN: &str = "binary-test-token";

#[tokio::test]
async fn records_survive_a_sigterm_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Some(TOKEN));
    let (_, c) = server
        .call(TOKEN, "POST", "/api/customers", Some(json!({"name": "Acme"})))
        .await;
    let (_, t) = server
        .call(
            TOKEN,
            "POST",
            "/api/tickets",
            Some(json!({"summary": "Disk full", "customer_id": c["id"]})),
        )
        .await;
    let path = format!("/api/tickets/{}", t["id"]);
    server
        .call(
            TOKEN,
            "POST",
            &format!("{path}/actions"),
            Some(json!({"note": "Cleaned temp"})),
        )
        .await;
    let (_, chat) = server
        .call(TOKEN, "POST", "/api/chats", Some(json!({"user_name": "Jane"})))
        .await;
    let (_, before) = server.call(TOKEN, "GET", &path, None).await;
    let status = server.sigterm_and_wait();
    assert!(status.success(), "clean exit on SIGTERM, got {status:?}");

    let server = start(dir.path(), Some(TOKEN));
    let (s, after) = server.call(TOKEN, "GET", &path, None).await;
    assert_eq!(s, 200);
    assert_eq!(after, before);
    let (s, _) = server
        .call(TOKEN, "GET", &format!("/api/chats/{}", chat["id"]), None)
        .await;
    assert_eq!(s, 200);
    let (_, t2) = server
        .call(
            TOKEN,
            "POST",
            "/api/tickets",
            Some(json!({"summary": "Next", "customer_id": c["id"]})),
        )
        .await;
    assert!(t2["id"].as_u64() > t["id"].as_u64(), "the counter survives the restart");
    server.sigterm_and_wait();
}

#[tokio::test]
async fn a_sigkill_right_after_a_2xx_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Some(TOKEN));
    let (_, c) = server
        .call(TOKEN, "POST", "/api/customers", Some(json!({"name": "Acme"})))
        .await;
    let mut acknowledged = Vec::new();
    for i in 0..25 {
        let (s, t) = server
            .call(
                TOKEN,
                "POST",
                "/api/tickets",
                Some(json!({"summary": format!("ticket {i}"), "customer_id": c["id"]})),
            )
            .await;
        assert_eq!(s, 201);
        acknowledged.push((t["id"].as_u64().unwrap(), format!("ticket {i}")));
    }
    server.sigkill();

    let server = start(dir.path(), Some(TOKEN));
    for (id, summary) in &acknowledged {
        let (s, t) = server.call(TOKEN, "GET", &format!("/api/tickets/{id}"), None).await;
        assert_eq!(s, 200, "ticket {id} acknowledged before SIGKILL is gone");
        assert_eq!(t["summary"], summary.as_str());
    }
    server.sigkill();
}

#[tokio::test]
async fn the_api_token_is_generated_once_printed_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), None);
    let line = server
        .stdout_lines
        .iter()
        .find(|l| l.starts_with("Generated an API token"))
        .expect("token announced on first start")
        .clone();
    let token = line.rsplit(' ').next().unwrap().to_string();
    assert!(token.len() >= 32);
    let (s, _) = server.call(&token, "GET", "/api/customers", None).await;
    assert_eq!(s, 200);
    let (s, _) = server.call("guess", "GET", "/api/customers", None).await;
    assert_eq!(s, 401);
    server.sigterm_and_wait();

    let server = start(dir.path(), None);
    assert!(
        !server.stdout_lines.iter().any(|l| l.starts_with("Generated")),
        "printed only once"
    );
    let (s, _) = server.call(&token, "GET", "/api/customers", None).await;
    assert_eq!(s, 200, "the kept token still works");
    server.sigterm_and_wait();
}
