//! Accounts and access on a real server (port 0, the local server's router and peer-address
//! layer) over SQLite and DynamoDB Local: roles, sign-in, sessions, CSRF, the throttle,
//! personal tokens, passwords, first-admin setup, the audit log, and no secret in any log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deskbridge::ports::QueueName;
use deskbridge::services::{accounts, passwords};
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::desk::{on_both_stores, Desk, TOKEN};

const ADMIN_PW: &str = "admin-pass-7f3a9c1e";
const TECH_PW: &str = "tech-pass-b2d84e6f";

/// A real HTTP server over a `Desk`'s context, and a client that handles cookies by hand
/// (the `Secure` cookie of an https deployment, sent here over loopback http).
struct App {
    desk: Desk,
    base: String,
    http: reqwest::Client,
    /// Every answer body seen, for the no-secrets check.
    answers: Mutex<Vec<String>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Service,
    Bearer(&'a str),
    /// A session cookie and the CSRF token to send (`None`: do not send the header).
    Session(&'a Session, Option<&'a str>),
}

#[derive(Debug, Clone)]
struct Session {
    cookie: String,
    csrf: String,
    agent_id: u64,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn serve(desk: Desk) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = deskbridge_local::local_router(desk.ctx.clone(), desk.outbox.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    App {
        desk,
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        answers: Mutex::new(Vec::new()),
        _stop: tx,
    }
}

impl App {
    async fn call(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match auth {
            Auth::None => req,
            Auth::Service => req.bearer_auth(TOKEN),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Session(s, csrf) => {
                let r = req.header("cookie", &s.cookie);
                match csrf {
                    Some(c) => r.header("x-csrf-token", c),
                    None => r,
                }
            }
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        self.answers.lock().unwrap().push(text.clone());
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    async fn login(&self, email: &str, password: &str) -> Answer {
        self.call(
            Method::POST,
            "/api/auth/login",
            Auth::None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    async fn sign_in(&self, email: &str, password: &str) -> Session {
        let a = self.login(email, password).await;
        assert_eq!(a.status, 200, "{}", a.body);
        session_of(&a)
    }

    /// The first admin (service token) and a technician with a password; both signed in.
    async fn admin_and_technician(&self) -> (Session, Session) {
        let a = self
            .call(
                Method::POST,
                "/api/auth/first-admin",
                Auth::Service,
                Some(json!({"name": "Ada Admin", "email": "ada@msp.example", "password": ADMIN_PW})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let admin = self.sign_in("ada@msp.example", ADMIN_PW).await;
        let t = self
            .call(
                Method::POST,
                "/api/agents",
                Auth::Session(&admin, Some(&admin.csrf)),
                Some(json!({"name": "Tom Tech", "email": "tom@msp.example"})),
            )
            .await;
        assert_eq!(t.status, 201, "{}", t.body);
        assert_eq!(t.body["role"], "technician");
        let r = self
            .call(
                Method::PUT,
                &format!("/api/agents/{}/password", t.body["id"]),
                Auth::Session(&admin, Some(&admin.csrf)),
                Some(json!({"password": TECH_PW})),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.body);
        let tech = self.sign_in("TOM@msp.example ", TECH_PW).await;
        (admin, tech)
    }

    async fn ticket(&self, who: Auth<'_>) -> Answer {
        let (_, c) = self.desk.post("/api/customers", json!({"name": "Contoso"})).await;
        self.call(
            Method::POST,
            "/api/tickets",
            who,
            Some(json!({"summary": "Printer on fire", "customer_id": c["id"]})),
        )
        .await
    }
}

fn session_of(a: &Answer) -> Session {
    let set = a.headers.get(SET_COOKIE).expect("a session cookie").to_str().unwrap();
    Session {
        cookie: set.split(';').next().unwrap().to_string(),
        csrf: a.body["csrf_token"].as_str().expect("csrf token").to_string(),
        agent_id: a.body["agent"]["id"].as_u64().unwrap(),
    }
}

fn sess<'a>(s: &'a Session) -> Auth<'a> {
    Auth::Session(s, Some(&s.csrf))
}

// ---- roles and attribution ---------------------------------------------------------------------

async fn admin_and_technician_have_their_roles(d: Desk) {
    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let me = app
        .call(Method::GET, "/api/auth/me", Auth::Session(&tech, None), None)
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["agent"]["role"], "technician");
    assert_eq!(me.body["agent"]["email"], "tom@msp.example");
    assert_eq!(me.body["csrf_token"], tech.csrf.as_str());

    let rule = json!({"name": "Lab", "when": {"message": {"contains": "lab"}}, "then": "suppress"});
    let window = json!({"name": "Patch night", "scope": {"device": "ACME-SQL1"},
        "schedule": {"weekly": {"days": ["Sat"], "start_time": "22:00:00", "duration_minutes": 120, "time_zone": "Europe/London"}}});
    let forbidden: [(Method, &str, Value); 16] = [
        (Method::PUT, "/api/config/datto", json!({"alert_method": "webhook"})),
        (Method::POST, "/api/dead-letters/x/replay", json!({})),
        (Method::POST, "/api/request-log/x/replay", json!({})),
        (Method::POST, "/api/sync/beyondtrust", json!({})),
        (
            Method::POST,
            "/api/agents",
            json!({"name": "Eve", "email": "eve@msp.example"}),
        ),
        (
            Method::PUT,
            &format!("/api/agents/{}", tech.agent_id),
            json!({"role": "admin"}),
        ),
        (
            Method::PUT,
            &format!("/api/agents/{}/password", admin.agent_id),
            json!({"password": "x".repeat(12)}),
        ),
        (Method::POST, "/api/config/datto/webhook/rotate-state", json!({})),
        (Method::PUT, "/api/noise/settings", json!({"related_window_minutes": 5})),
        (Method::POST, "/api/noise/rules", rule.clone()),
        (Method::PUT, "/api/noise/rules/1", rule),
        (Method::DELETE, "/api/noise/rules/1", json!({})),
        (Method::POST, "/api/noise/windows", window.clone()),
        (Method::PUT, "/api/noise/windows/1", window),
        (Method::DELETE, "/api/noise/windows/1", json!({})),
        (
            Method::POST,
            "/api/noise/preview",
            json!({"alert": {"message": "Disk C: low"}}),
        ),
    ];
    for (m, path, body) in forbidden {
        let a = app.call(m.clone(), path, sess(&tech), Some(body)).await;
        assert_eq!(a.status, 403, "{m} {path}: {}", a.body);
        assert_eq!(a.body["error"], "FORBIDDEN");
    }
    for path in [
        "/api/audit-log",
        "/api/dead-letters",
        "/api/request-log",
        "/api/config/datto",
        "/api/sync/beyondtrust/runs",
        "/api/noise/settings",
        "/api/noise/rules",
        "/api/noise/windows",
    ] {
        assert_eq!(
            app.call(Method::GET, path, sess(&tech), None).await.status,
            403,
            "{path}"
        );
        assert_eq!(
            app.call(Method::GET, path, sess(&admin), None).await.status,
            200,
            "{path}"
        );
    }
    // Its own ticket work.
    let t = app.ticket(sess(&tech)).await;
    assert_eq!(t.status, 201, "{}", t.body);
    let id = t.body["id"].as_u64().unwrap();
    let a = app
        .call(
            Method::POST,
            &format!("/api/tickets/{id}/actions"),
            sess(&tech),
            Some(json!({"note": "on it"})),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let c = app
        .call(
            Method::POST,
            &format!("/api/tickets/{id}/close"),
            sess(&tech),
            Some(json!({"note": "fixed"})),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(
        app.call(Method::GET, "/api/agents", sess(&tech), None).await.status,
        200
    );
    let put = app
        .call(
            Method::PUT,
            "/api/config/datto",
            sess(&admin),
            Some(json!({"alert_method": "webhook"})),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
}

async fn a_signed_in_action_is_the_signed_in_agents_whatever_x_agent_id_says(d: Desk) {
    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let t = app.ticket(sess(&tech)).await;
    let id = t.body["id"].as_u64().unwrap();
    let path = format!("{}/api/tickets/{id}/actions", app.base);
    let resp = app
        .http
        .post(&path)
        .header("cookie", &tech.cookie)
        .header("x-csrf-token", &tech.csrf)
        .header("x-agent-id", admin.agent_id.to_string())
        .json(&json!({"note": "who am I"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let action: Value = resp.json().await.unwrap();
    assert_eq!(action["agent_id"], tech.agent_id, "{action}");
    // The same with a personal token; and the service token still honours X-Agent-Id.
    let tok = app
        .call(
            Method::POST,
            "/api/auth/tokens",
            sess(&tech),
            Some(json!({"name": "cli"})),
        )
        .await;
    let secret = tok.body["token"].as_str().unwrap().to_string();
    let resp = app
        .http
        .post(&path)
        .bearer_auth(&secret)
        .header("x-agent-id", admin.agent_id.to_string())
        .json(&json!({"note": "token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["agent_id"], tech.agent_id);
    let resp = app
        .http
        .post(&path)
        .bearer_auth(TOKEN)
        .header("x-agent-id", admin.agent_id.to_string())
        .json(&json!({"note": "machine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["agent_id"], admin.agent_id);
}

// ---- sign-in refusals and the throttle ------------------------------------------------------------

async fn wrong_password_unknown_email_and_the_lock(d: Desk) {
    let app = serve(d).await;
    let (_, _) = app.admin_and_technician().await;
    let wrong = app.login("tom@msp.example", "not the password").await;
    let unknown = app.login("nobody@msp.example", "not the password").await;
    assert_eq!(
        (wrong.status, unknown.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        wrong.body, unknown.body,
        "the body must not tell whether the e-mail exists"
    );
    assert!(wrong.headers.get(SET_COOKIE).is_none());
    // Four more failures for tom (5 in the window) lock the account.
    for _ in 0..4 {
        assert_eq!(app.login("tom@msp.example", "still wrong").await.status, 401);
    }
    let locked = app.login("tom@msp.example", TECH_PW).await;
    assert_eq!(
        locked.status, 429,
        "a right password during the lock is refused: {}",
        locked.body
    );
    let retry: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // An unknown e-mail is locked the same way (nothing tells it apart).
    for _ in 0..4 {
        app.login("nobody@msp.example", "x").await;
    }
    assert_eq!(app.login("nobody@msp.example", "x").await.status, 429);
    // Another account is not locked; once the lock ends tom signs in again.
    assert_eq!(app.login("ada@msp.example", ADMIN_PW).await.status, 200);
    app.desk.clock.advance(Duration::from_secs(retry + 1));
    assert_eq!(app.login("tom@msp.example", TECH_PW).await.status, 200);
}

// ---- CSRF, logout, disable, expiry ------------------------------------------------------------------

async fn a_cookie_post_needs_the_csrf_token(d: Desk) {
    let app = serve(d).await;
    let (_, tech) = app.admin_and_technician().await;
    let no = app.ticket(Auth::Session(&tech, None)).await;
    assert_eq!(no.status, 403, "{}", no.body);
    assert_eq!(no.body["error"], "CSRF");
    let wrong = app.ticket(Auth::Session(&tech, Some("not-the-token"))).await;
    assert_eq!(wrong.status, 403);
    assert_eq!(app.ticket(sess(&tech)).await.status, 201);
    assert_eq!(
        app.call(Method::GET, "/api/tickets", Auth::Session(&tech, None), None)
            .await
            .status,
        200
    );
}

async fn logout_disable_and_expiry_end_sessions(d: Desk) {
    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let out = app.call(Method::POST, "/api/auth/logout", sess(&tech), None).await;
    assert_eq!(out.status, 204);
    assert!(out.headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&tech), None).await.status,
        401
    );

    // Disable: the session and the token stop at once, sign-in is refused like a wrong password.
    let tech = app.sign_in("tom@msp.example", TECH_PW).await;
    let tok = app
        .call(
            Method::POST,
            "/api/auth/tokens",
            sess(&tech),
            Some(json!({"name": "t"})),
        )
        .await;
    let secret = tok.body["token"].as_str().unwrap().to_string();
    let dis = app
        .call(
            Method::PUT,
            &format!("/api/agents/{}", tech.agent_id),
            sess(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(dis.status, 200, "{}", dis.body);
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&tech), None).await.status,
        401
    );
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", Auth::Bearer(&secret), None)
            .await
            .status,
        401
    );
    let refused = app.login("tom@msp.example", TECH_PW).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body, app.login("nobody@msp.example", TECH_PW).await.body);
    // An admin cannot lock itself out.
    let own = app
        .call(
            Method::PUT,
            &format!("/api/agents/{}", admin.agent_id),
            sess(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(own.status, 409, "{}", own.body);

    // Idle expiry: an hour unused.
    let again = app.sign_in("ada@msp.example", ADMIN_PW).await;
    app.desk.clock.advance(Duration::from_secs(59 * 60));
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&again), None).await.status,
        200
    );
    app.desk.clock.advance(Duration::from_secs(61 * 60));
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&again), None).await.status,
        401,
        "idle"
    );
    // Absolute expiry: used every 50 minutes, it still ends 12 hours after sign-in.
    let busy = app.sign_in("ada@msp.example", ADMIN_PW).await;
    for _ in 0..14 {
        app.desk.clock.advance(Duration::from_secs(50 * 60));
        assert_eq!(
            app.call(Method::GET, "/api/auth/me", sess(&busy), None).await.status,
            200
        );
    }
    app.desk.clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&busy), None).await.status,
        401,
        "absolute"
    );
}

// ---- personal tokens, passwords, first admin ---------------------------------------------------------

/// The `last_used_at` the token's own listing shows.
async fn last_used(app: &App, secret: &str) -> String {
    let list = app
        .call(Method::GET, "/api/auth/tokens", Auth::Bearer(secret), None)
        .await;
    list.body["items"][0]["last_used_at"].as_str().unwrap().to_string()
}

async fn personal_tokens_are_shown_once_listed_without_secret_and_revocable(d: Desk) {
    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let made = app
        .call(
            Method::POST,
            "/api/auth/tokens",
            sess(&tech),
            Some(json!({"name": "laptop"})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = made.body["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("dbp_") && secret.len() > 40);
    assert!(secret.starts_with(made.body["prefix"].as_str().unwrap()));
    let list = app
        .call(Method::GET, "/api/auth/tokens", Auth::Bearer(&secret), None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let listed = list.body.to_string();
    assert!(!listed.contains(&secret) && !listed.contains(&passwords::secret_hash(&secret)));
    // The listing says when the token was last used: this very request, to the nearest
    // step; a use within the step writes nothing, a use after it moves the time on.
    let first_use = list.body["items"][0]["last_used_at"]
        .as_str()
        .expect("last_used_at")
        .to_string();
    app.desk.clock.advance(Duration::from_secs(60));
    assert_eq!(
        last_used(&app, &secret).await,
        first_use,
        "a minute later: not written again"
    );
    app.desk.clock.advance(deskbridge::domain::accounts::TOKEN_USE_STEP);
    assert!(
        last_used(&app, &secret).await > first_use,
        "after the step: the new use"
    );
    // Acting with it: the technician's role.
    let me = app.call(Method::GET, "/api/auth/me", Auth::Bearer(&secret), None).await;
    assert_eq!(
        (me.body["agent"]["id"].as_u64(), me.body["via"].as_str()),
        (Some(tech.agent_id), Some("token"))
    );
    assert_eq!(
        app.call(Method::GET, "/api/audit-log", Auth::Bearer(&secret), None)
            .await
            .status,
        403
    );
    // No CSRF token needed with a bearer token.
    assert_eq!(app.ticket(Auth::Bearer(&secret)).await.status, 201);
    // Someone else's token is not theirs to revoke; the service token has none.
    let id = made.body["id"].as_u64().unwrap();
    let path = format!("/api/auth/tokens/{id}");
    assert_eq!(app.call(Method::DELETE, &path, sess(&admin), None).await.status, 404);
    assert_eq!(
        app.call(
            Method::POST,
            "/api/auth/tokens",
            Auth::Service,
            Some(json!({"name": "x"}))
        )
        .await
        .status,
        403
    );
    assert_eq!(app.call(Method::DELETE, &path, sess(&tech), None).await.status, 204);
    let gone = app.call(Method::GET, "/api/auth/me", Auth::Bearer(&secret), None).await;
    assert_eq!(gone.status, 401, "{}", gone.body);
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", Auth::Bearer("dbp_made-up"), None)
            .await
            .status,
        401
    );
}

async fn password_change_and_admin_reset(d: Desk) {
    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let other = app.sign_in("tom@msp.example", TECH_PW).await;
    let bad = app
        .call(
            Method::POST,
            "/api/auth/password",
            sess(&tech),
            Some(json!({"old_password": "wrong-wrong-wrong", "new_password": "new-pass-1234567"})),
        )
        .await;
    assert_eq!(bad.status, 403);
    let short = app
        .call(
            Method::POST,
            "/api/auth/password",
            sess(&tech),
            Some(json!({"old_password": TECH_PW, "new_password": "short"})),
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(
        short.body["message"].as_str().unwrap().starts_with("new_password"),
        "{}",
        short.body
    );
    let ok = app
        .call(
            Method::POST,
            "/api/auth/password",
            sess(&tech),
            Some(json!({"old_password": TECH_PW, "new_password": "new-pass-1234567"})),
        )
        .await;
    assert_eq!(ok.status, 204, "{}", ok.body);
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&tech), None).await.status,
        200,
        "this session stays"
    );
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&other), None).await.status,
        401,
        "others end"
    );
    assert_eq!(app.login("tom@msp.example", TECH_PW).await.status, 401);
    let tech = app.sign_in("tom@msp.example", "new-pass-1234567").await;
    // Admin reset ends the technician's sessions.
    let r = app
        .call(
            Method::PUT,
            &format!("/api/agents/{}/password", tech.agent_id),
            sess(&admin),
            Some(json!({"password": "reset-pass-98765"})),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.call(Method::GET, "/api/auth/me", sess(&tech), None).await.status,
        401
    );
    app.sign_in("tom@msp.example", "reset-pass-98765").await;
}

async fn the_first_admin_by_setup_link_or_service_token_once(d: Desk) {
    let app = serve(d).await;
    let token = accounts::issue_setup_token(&app.desk.ctx)
        .await
        .unwrap()
        .expect("no admin yet");
    let body = |t: &str| json!({"setup_token": t, "name": "Ada", "email": "ada@msp.example", "password": ADMIN_PW});
    let wrong = app
        .call(Method::POST, "/api/auth/setup", Auth::None, Some(body("made-up")))
        .await;
    assert_eq!(wrong.status, 401);
    let made = app
        .call(Method::POST, "/api/auth/setup", Auth::None, Some(body(&token)))
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert_eq!(made.body["agent"]["role"], "admin");
    let admin = session_of(&made);
    assert_eq!(
        app.call(Method::GET, "/api/audit-log", sess(&admin), None).await.status,
        200
    );
    let again = app
        .call(Method::POST, "/api/auth/setup", Auth::None, Some(body(&token)))
        .await;
    assert_eq!(again.status, 401, "consumed once: {}", again.body);
    let svc = app
        .call(
            Method::POST,
            "/api/auth/first-admin",
            Auth::Service,
            Some(json!({"name": "B", "email": "b@msp.example", "password": ADMIN_PW})),
        )
        .await;
    assert_eq!(
        (svc.status, svc.body["error"].as_str()),
        (StatusCode::CONFLICT, Some("ADMIN_EXISTS"))
    );
    assert!(accounts::issue_setup_token(&app.desk.ctx).await.unwrap().is_none());
}

async fn session_cookies_carry_their_flags(d: Desk) {
    let app = serve(d).await;
    app.admin_and_technician().await;
    let a = app.login("ada@msp.example", ADMIN_PW).await;
    let set = a.headers[SET_COOKIE].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Secure", "Max-Age=43200"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    assert!(set.starts_with("__Host-deskbridge_session="), "{set}");
    let local = |url: &str, addr: &str| deskbridge_local::secure_cookies(url, addr.parse().unwrap());
    assert!(!local("http://127.0.0.1:8080", "127.0.0.1:8080"));
    assert!(local("https://desk.example", "127.0.0.1:8080"));
    assert!(local("http://10.0.0.5:8080", "10.0.0.5:8080"));
}

// ---- the audit log ---------------------------------------------------------------------------------

async fn the_audit_log_records_each_admin_change(d: Desk) {
    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let a = sess(&admin);
    app.call(Method::PUT, "/api/config/datto", a, Some(json!({"api_url": "https://merlot-api.centrastage.net", "api_key": "k", "api_secret": "audit-secret-value-1"}))).await;
    app.call(
        Method::POST,
        "/api/config/datto/webhook/rotate-state",
        a,
        Some(json!({})),
    )
    .await;
    let q = &app.desk.ctx.queue;
    q.send(QueueName::TicketClosed, "poison").await.unwrap();
    let got = q.receive(QueueName::TicketClosed, 1).await.unwrap();
    q.dead_letter(
        QueueName::TicketClosed,
        &got[0].receipt,
        "poison",
        "not a ticket-closed message",
    )
    .await
    .unwrap();
    let dl = app.call(Method::GET, "/api/dead-letters", a, None).await;
    let dl_id = dl.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.call(
            Method::POST,
            &format!("/api/dead-letters/{dl_id}/replay"),
            a,
            Some(json!({}))
        )
        .await
        .status,
        200
    );
    let tok = app
        .call(Method::POST, "/api/auth/tokens", a, Some(json!({"name": "n"})))
        .await;
    app.call(Method::DELETE, &format!("/api/auth/tokens/{}", tok.body["id"]), a, None)
        .await;
    app.call(
        Method::PUT,
        &format!("/api/agents/{}", tech.agent_id),
        a,
        Some(json!({"disabled": true})),
    )
    .await;
    let log = app.call(Method::GET, "/api/audit-log?limit=100", a, None).await;
    assert_eq!(log.status, 200);
    let items = log.body["items"].as_array().unwrap();
    let find = |action: &str| -> Value {
        items
            .iter()
            .find(|e| e["action"] == action)
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {}", log.body))
    };
    let by_admin = json!({"kind": "agent", "agent_id": admin.agent_id});
    let settings = find("settings_changed");
    assert_eq!(
        (settings["target"].as_str(), &settings["actor"]),
        (Some("config/datto"), &by_admin)
    );
    let fields: Vec<&str> = settings["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"api_secret") && fields.contains(&"api_url"),
        "{fields:?}"
    );
    assert_eq!(find("webhook_state_rotated")["actor"], by_admin);
    assert_eq!(find("dead_letter_replayed")["target"], format!("dead-letter/{dl_id}"));
    assert_eq!(find("agent_created")["target"], format!("agent/{}", tech.agent_id));
    assert_eq!(find("agent_disabled")["target"], format!("agent/{}", tech.agent_id));
    assert_eq!(find("token_created")["target"], format!("token/{}", tok.body["id"]));
    assert_eq!(find("token_revoked")["target"], format!("token/{}", tok.body["id"]));
    assert_eq!(find("password_reset")["target"], format!("agent/{}", tech.agent_id));
    assert_eq!(
        find("first_admin_created")["actor"],
        json!({"kind": "service", "agent_id": null})
    );
    assert!(!log.body.to_string().contains("audit-secret-value-1"));
    // Newest first.
    let ids: Vec<u64> = items.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
}

on_both_stores!(
    admin_and_technician_have_their_roles,
    a_signed_in_action_is_the_signed_in_agents_whatever_x_agent_id_says,
    wrong_password_unknown_email_and_the_lock,
    a_cookie_post_needs_the_csrf_token,
    logout_disable_and_expiry_end_sessions,
    personal_tokens_are_shown_once_listed_without_secret_and_revocable,
    password_change_and_admin_reset,
    the_first_admin_by_setup_link_or_service_token_once,
    session_cookies_carry_their_flags,
    the_audit_log_records_each_admin_change,
);

// ---- no secret in any log line or answer ----------------------------------------------------------------

/// Everything every tracing event of this process writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
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

/// A full scenario with known secrets, all log output captured at TRACE (the AWS SDK's
/// raw wire dumps capped at DEBUG by `telemetry::WIRE_LOG_CAP`, as the hosts do; without
/// the cap this test saw a password hash in the SDK's TRACE dump of a DynamoDB read): sign-in (also a
/// failed one), token create/use/revoke, password change and reset, settings with secrets,
/// a webhook with its state. No password, password hash, token, token hash, session secret
/// or hash, CSRF token, or vendor secret appears in any log line, nor in any API answer
/// except the one that hands it out (the token once, the CSRF token to its session).
async fn no_secret_reaches_a_log_or_an_answer(d: Desk) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        // TRACE for everything; the SDK's wire dumps capped as every host caps them.
        .with_env_filter(deskbridge::telemetry::filter("trace"))
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = serve(d).await;
    let (admin, tech) = app.admin_and_technician().await;
    let failed = app.login("tom@msp.example", "a-wrong-guess-0001").await;
    assert_eq!(failed.status, 401);
    let tok = app
        .call(
            Method::POST,
            "/api/auth/tokens",
            sess(&tech),
            Some(json!({"name": "ci"})),
        )
        .await;
    let secret = tok.body["token"].as_str().unwrap().to_string();
    assert_eq!(app.ticket(Auth::Bearer(&secret)).await.status, 201);
    app.call(
        Method::DELETE,
        &format!("/api/auth/tokens/{}", tok.body["id"]),
        sess(&tech),
        None,
    )
    .await;
    let changed = app
        .call(
            Method::POST,
            "/api/auth/password",
            sess(&tech),
            Some(json!({"old_password": TECH_PW, "new_password": "tech-new-pass-5c1d"})),
        )
        .await;
    assert_eq!(changed.status, 204);
    app.call(
        Method::PUT,
        &format!("/api/agents/{}/password", tech.agent_id),
        sess(&admin),
        Some(json!({"password": "tech-reset-pass-9e2f"})),
    )
    .await;
    let datto_secret = "datto-api-secret-3e8b1f";
    let bt_secret = "bt-client-secret-6a0c2d";
    app.call(Method::PUT, "/api/config/datto", sess(&admin), Some(json!({"api_url": "https://merlot-api.centrastage.net", "api_key": "key-1", "api_secret": datto_secret, "alert_method": "webhook"}))).await;
    app.call(
        Method::PUT,
        "/api/config/beyondtrust",
        sess(&admin),
        Some(json!({"base_url": "https://support.example.com", "client_id": "cid", "client_secret": bt_secret})),
    )
    .await;
    app.desk.use_fixture_state().await;
    let (s, _) = app
        .desk
        .webhook(&crate::desk::fixture_json("webhook-raised.json"))
        .await;
    assert_eq!(s, 200);
    app.call(Method::POST, "/api/auth/logout", sess(&admin), None).await;

    let tech_hash = app
        .desk
        .ctx
        .store
        .credential(tech.agent_id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let admin_hash = app
        .desk
        .ctx
        .store
        .credential(admin.agent_id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let session_secret = |s: &Session| s.cookie.split_once('=').unwrap().1.to_string();
    let mut secrets = vec![
        ADMIN_PW.to_string(),
        TECH_PW.to_string(),
        "a-wrong-guess-0001".into(),
        "tech-new-pass-5c1d".into(),
        "tech-reset-pass-9e2f".into(),
        tech_hash.clone(),
        admin_hash,
        // The hash's own part, in case a log shortened the PHC string.
        tech_hash.rsplit('$').next().unwrap().to_string(),
        passwords::secret_hash(&secret),
        session_secret(&admin),
        session_secret(&tech),
        passwords::secret_hash(&session_secret(&admin)),
        passwords::secret_hash(&session_secret(&tech)),
        datto_secret.into(),
        bt_secret.into(),
        crate::desk::STATE.into(),
        TOKEN.into(),
    ];
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.lines().count() > 20, "the capture saw the scenario:\n{logs}");
    assert!(logs.contains("signed in") && logs.contains("audited"), "{logs}");
    for s in &secrets {
        let line = logs.lines().find(|l| l.contains(s.as_str()));
        assert!(
            line.is_none(),
            "a secret in the logs: {s} in {}",
            line.unwrap_or("").chars().take(300).collect::<String>()
        );
    }
    secrets.push(admin.csrf.clone());
    secrets.push(tech.csrf.clone());
    secrets.push(secret.clone());
    for answer in app.answers.lock().unwrap().iter() {
        for s in &secrets {
            let handed_out = answer.contains("\"csrf_token\"") && (s == &admin.csrf || s == &tech.csrf)
                || answer.contains("\"token\":") && s == &secret;
            assert!(
                handed_out || !answer.contains(s.as_str()),
                "a secret in an answer: {s} in {answer}"
            );
        }
    }
    assert!(!logs.contains(&tech.csrf) && !logs.contains(&secret));
}

on_both_stores!(no_secret_reaches_a_log_or_an_answer);
