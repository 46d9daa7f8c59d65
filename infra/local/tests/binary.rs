//! The `deskbridge` binary as a child process: a clean stop on SIGTERM, records kept across
//! restarts, nothing lost to SIGKILL after a 2xx or amid group commits, one API token.

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

/// Turn on webhook intake with a default ticket type; returns the webhook `state`.
async fn enable_webhook(server: &Server) -> String {
    let (s, tt) = server
        .call(
            TOKEN,
            "POST",
            "/api/ticket-types",
            Some(json!({"name": "Monitoring alert", "default_priority": "low"})),
        )
        .await;
    assert_eq!(s, 201, "{tt}");
    let (s, cfg) = server
        .call(
            TOKEN,
            "PUT",
            "/api/config/datto",
            Some(json!({"alert_method": "webhook", "default_ticket_type_id": tt["id"],
                        "import_mode": "customer_per_site"})),
        )
        .await;
    assert_eq!(s, 200, "{cfg}");
    let (s, helper) = server.call(TOKEN, "GET", "/api/config/datto/webhook", None).await;
    assert_eq!(s, 200, "{helper}");
    helper["raised_payload"]["state"].as_str().expect("state").to_string()
}

fn raised_alert(state: &str, uid: &str) -> Value {
    json!({
        "state": state,
        "alert_resolved": false,
        "alert_uid": uid,
        "alert_message": format!("Disk C: on host-{uid} is 95% full"),
        "alert_priority": "High",
        // A device per alert: each opens its own ticket (noise control relates alerts
        // of one device).
        "device_uid": uid,
        "device_hostname": format!("host-{uid}"),
        "site_uid": "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f",
        "site_name": "Acme Ltd - Head Office",
    })
}

/// Group commit under a crash: 32 writers post new alerts at once, so the store commits
/// them in shared batches, and the server is SIGKILLed while batches are in flight. After
/// the restart every alert that got its 200 is there with its ticket, and every alert
/// whose answer never came is either wholly there (alert and ticket) or wholly absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_amid_concurrent_batches_keeps_every_acknowledged_alert_whole() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Some(TOKEN));
    let state = enable_webhook(&server).await;
    let acked = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let acks = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let writers: Vec<_> = (0..32)
        .map(|w| {
            let (acked, sent, acks, client) = (acked.clone(), sent.clone(), acks.clone(), client.clone());
            let (url, state) = (format!("{}/datto/webhook", server.base), state.clone());
            tokio::spawn(async move {
                for i in 0..200 {
                    let uid = format!("00000000-0000-4000-8000-{w:04}{i:08}");
                    sent.lock().unwrap().push(uid.clone());
                    let Ok(resp) = client.post(&url).json(&raised_alert(&state, &uid)).send().await else {
                        return;
                    };
                    let status = resp.status().as_u16();
                    let Ok(body) = resp.json::<Value>().await else { return };
                    assert_eq!(status, 200, "{body}");
                    assert_eq!(body["result"], "created");
                    let ticket = body["ticket_id"].as_u64().expect("ticket id");
                    acked.lock().unwrap().push((uid, ticket));
                    acks.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acks.load(Ordering::Relaxed) < 300 {
        assert!(
            Instant::now() < deadline,
            "the server did not acknowledge 300 alerts in time"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.sigkill();
    for w in writers {
        w.await.expect("writer");
    }

    let acked = acked.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();
    assert!(sent.len() > acked.len(), "some requests were in flight at the kill");
    let server = start(dir.path(), Some(TOKEN));
    let mut tickets = std::collections::HashSet::new();
    for (uid, ticket) in &acked {
        let (s, alert) = server.call(TOKEN, "GET", &format!("/api/alerts/{uid}"), None).await;
        assert_eq!(s, 200, "alert {uid} acknowledged before SIGKILL is gone");
        assert_eq!(alert["ticket_id"].as_u64(), Some(*ticket));
        let (s, t) = server.call(TOKEN, "GET", &format!("/api/tickets/{ticket}"), None).await;
        assert_eq!(s, 200, "ticket {ticket} of acknowledged alert {uid} is gone");
        assert_eq!(t["alert_uid"], uid.as_str());
        assert!(tickets.insert(*ticket), "ticket {ticket} answered twice");
    }
    let acked_uids: std::collections::HashSet<&str> = acked.iter().map(|(u, _)| u.as_str()).collect();
    for uid in sent.iter().filter(|u| !acked_uids.contains(u.as_str())) {
        let (s, alert) = server.call(TOKEN, "GET", &format!("/api/alerts/{uid}"), None).await;
        match s {
            404 => {}
            200 => {
                let ticket = alert["ticket_id"].as_u64().expect("a stored alert has its ticket");
                let (s, t) = server.call(TOKEN, "GET", &format!("/api/tickets/{ticket}"), None).await;
                assert_eq!((s, t["alert_uid"].as_str()), (200, Some(uid.as_str())));
            }
            other => panic!("alert {uid}: unexpected status {other}"),
        }
    }
    server.sigkill();
}

/// Run the binary with `args` to completion: (success, stdout, stderr).
fn run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(binary()).args(args).output().expect("binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The n-th alert uid of the load (a UUID, as Datto sends).
fn load_uid(client: u32, n: u32) -> String {
    format!("{client:08x}-0000-4000-8000-{n:012x}")
}

/// `deskbridge backup` while several clients post webhooks, then `deskbridge restore` into
/// a fresh dir and a server on it: every alert acknowledged before the backup began is
/// there with its ticket, none twice, and the restored secrets still authenticate Datto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_alert() {
    const CLIENTS: u32 = 4;
    const PER_CLIENT: u32 = 150;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Some(TOKEN));
    let (s, tt) = server
        .call(TOKEN, "POST", "/api/ticket-types", Some(json!({"name": "Alert"})))
        .await;
    assert_eq!(s, 201, "{tt}");
    let (s, v) = server
        .call(
            TOKEN,
            "PUT",
            "/api/config/datto",
            Some(json!({"alert_method": "webhook", "default_ticket_type_id": tt["id"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, setup) = server.call(TOKEN, "GET", "/api/config/datto/webhook", None).await;
    let template = setup["raised_payload"].clone();
    assert!(template["state"].is_string(), "{setup}");

    // Acknowledged uids with their tickets, stamped with the order of acknowledgement.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let url = format!("{}/datto/webhook", server.base);
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (acked, url, template) = (acked.clone(), url.clone(), template.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..PER_CLIENT {
                let mut body = template.clone();
                body["alert_uid"] = json!(load_uid(c, n));
                body["alert_message"] = json!(format!("load {c}/{n}"));
                body["site_uid"] = json!(format!("{c:08x}-1111-4000-8000-000000000000"));
                body["site_name"] = json!(format!("Site {c}"));
                let resp = http.post(&url).json(&body).send().await.expect("server answers");
                if resp.status().is_success() {
                    let v: Value = resp.json().await.unwrap();
                    let tid = v["ticket_id"].as_u64().expect("ticket id");
                    acked.lock().unwrap().push((load_uid(c, n), tid));
                }
            }
        }));
    }
    // Back up once the load is well under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < (CLIENTS * PER_CLIENT / 4) as usize {
        assert!(Instant::now() < deadline, "the load did not get going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before_backup = acked.lock().unwrap().clone();
    let backup_file = dir.path().join("backup.tar");
    let started = Instant::now();
    let (ok, out, err) = {
        let args: Vec<std::ffi::OsString> = vec![
            "backup".into(),
            "--data-dir".into(),
            dir.path().into(),
            "--to".into(),
            backup_file.clone().into(),
        ];
        tokio::task::spawn_blocking(move || run(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>()))
            .await
            .unwrap()
    };
    let took = started.elapsed();
    assert!(ok, "backup failed: {out} {err}");
    let after_backup = acked.lock().unwrap().len();

    // Restoring over the running server's data dir is refused, --force or not.
    let (ok, _, err) = run(&[
        "restore".as_ref(),
        "--force".as_ref(),
        "--from".as_ref(),
        backup_file.as_os_str(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(!ok && err.contains("running deskbridge server"), "{err}");

    for c in clients {
        c.await.unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert_eq!(total, (CLIENTS * PER_CLIENT) as usize, "every webhook was acknowledged");
    assert!(server.sigterm_and_wait().success());

    let fresh = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(&[
        "restore".as_ref(),
        "--from".as_ref(),
        backup_file.as_os_str(),
        "--data-dir".as_ref(),
        fresh.path().as_os_str(),
    ]);
    assert!(ok, "restore failed: {out} {err}");
    let server = start(fresh.path(), Some(TOKEN));
    for (uid, tid) in &before_backup {
        let (s, alert) = server.call(TOKEN, "GET", &format!("/api/alerts/{uid}"), None).await;
        assert_eq!(s, 200, "alert {uid}, acknowledged before the backup, is missing");
        assert_eq!(alert["ticket_id"].as_u64(), Some(*tid), "{alert}");
        let (s, t) = server.call(TOKEN, "GET", &format!("/api/tickets/{tid}"), None).await;
        assert_eq!((s, t["alert_uid"].as_str()), (200, Some(uid.as_str())), "{t}");
    }
    let (_, list) = server.call(TOKEN, "GET", "/api/tickets?limit=1000", None).await;
    let uids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["alert_uid"].as_str())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = uids.iter().copied().collect();
    assert_eq!(distinct.len(), uids.len(), "an alert has two tickets");
    assert!(
        uids.len() >= before_backup.len() && uids.len() <= total,
        "{}",
        uids.len()
    );

    // The secrets came along: Datto's state still authenticates against the restored server.
    let mut body = template.clone();
    body["alert_uid"] = json!(load_uid(99, 1));
    let resp = reqwest::Client::new()
        .post(format!("{}/datto/webhook", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    println!(
        "backup under load: {} webhooks from {CLIENTS} clients; {} acknowledged before the backup, {} by its end \
         ({} ms); restored: {} of {} present with their tickets, {} tickets in all, none twice",
        total,
        before_backup.len(),
        after_backup,
        took.as_millis(),
        before_backup.len(),
        before_backup.len(),
        uids.len()
    );
    server.sigterm_and_wait();
}

async fn login(server: &Server, email: &str, password: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/auth/login", server.base))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .expect("server answers")
}

/// An empty data dir prints a one-time setup link; its token makes the first admin (signed
/// in, with a plain-http loopback cookie: no `Secure`), once; a restart prints no link.
#[tokio::test]
async fn serve_on_an_empty_data_dir_prints_a_one_time_setup_link() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), Some(TOKEN));
    let line = server
        .stdout_lines
        .iter()
        .find(|l| l.contains("/console/setup#token="))
        .unwrap_or_else(|| panic!("no setup link in {:?}", server.stdout_lines))
        .clone();
    let token = line
        .split("#token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let body =
        json!({"setup_token": token, "name": "Ada", "email": "ada@msp.example", "password": "ada-long-password"});
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/api/auth/setup", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("deskbridge_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
    let again = client
        .post(format!("{}/api/auth/setup", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 401, "the link works once");
    assert_eq!(
        login(&server, "ada@msp.example", "ada-long-password").await.status(),
        200
    );
    server.sigterm_and_wait();
    let server = start(dir.path(), Some(TOKEN));
    assert!(
        !server.stdout_lines.iter().any(|l| l.contains("#token=")),
        "an admin exists"
    );
    server.sigterm_and_wait();
}

/// `deskbridge admin create` reads the password from a pipe; that admin signs in; a second
/// run is refused because an admin exists.
#[tokio::test]
async fn admin_create_from_a_pipe_makes_the_first_admin_once() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let create = || {
        let mut child = Command::new(binary())
            .args(["admin", "create", "--email", "root@msp.example", "--data-dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"piped-long-password\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = create();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let second = create();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("admin exists"),
        "{second:?}"
    );
    let server = start(dir.path(), Some(TOKEN));
    assert!(!server.stdout_lines.iter().any(|l| l.contains("#token=")));
    let resp = login(&server, "root@msp.example", "piped-long-password").await;
    assert_eq!(resp.status(), 200);
    let me: Value = resp.json().await.unwrap();
    assert_eq!(me["agent"]["role"], "admin");
    server.sigterm_and_wait();
}
