//! `deskbridge-fakes`: the Datto RMM and BeyondTrust fakes as one process, for the browser
//! tests that drive `deskbridge serve` (the Rust tests run the same fakes in-process).
//!
//! Binds three loopback ports (Datto, BeyondTrust, a control API), prints one JSON line
//! `{"datto": URL, "beyondtrust": URL, "control": URL}` and serves until SIGTERM or
//! Ctrl-C. The control API steers the fakes as the Rust tests do:
//! - `POST /bt/log-out {"rep_id"}` / `POST /bt/log-in {"id", "display_name", "private_display_name"}`
//! - `POST /bt/parked-session`: the fake's report for an unlinked session ended by rep 21
//!   (Sam), answered with `{"lsid", "event_body"}`: the outbound event to post to deskbridge
//! - `POST /datto/fail {"path_prefix", "times", "status"}`: answer the next calls with a
//!   status; status 401 answers as if the token had expired (a refusal no retry heals)
//! - `GET /datto/requests`: how many requests the Datto fake has had

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use deskbridge::beyondtrust::fake::{FakeBeyondTrust, FakeRep};
use deskbridge::beyondtrust::fixtures as bt_fixtures;
use deskbridge::datto::fake::{Failure, FakeDatto};
use serde::Deserialize;
use serde_json::{json, Value};

struct Fakes {
    datto: FakeDatto,
    bt: FakeBeyondTrust,
}

type Shared = State<Arc<Fakes>>;

#[derive(Deserialize)]
struct RepId {
    rep_id: String,
}

#[derive(Deserialize)]
struct Rep {
    id: String,
    display_name: String,
    private_display_name: String,
}

#[derive(Deserialize)]
struct Fail {
    path_prefix: String,
    times: usize,
    status: u16,
}

async fn log_out(State(f): Shared, Json(r): Json<RepId>) -> Json<Value> {
    f.bt.log_out(&r.rep_id);
    Json(json!({"logged_out": r.rep_id}))
}

async fn log_in(State(f): Shared, Json(r): Json<Rep>) -> Json<Value> {
    f.bt.log_in(FakeRep::new(r.id.clone(), r.display_name, r.private_display_name));
    Json(json!({"logged_in": r.id}))
}

async fn parked_session(State(f): Shared) -> Json<Value> {
    let lsid = bt_fixtures::LSID_UNLINKED;
    f.bt.set_report(lsid, bt_fixtures::REPORT_UNLINKED);
    let event_body = format!("event=support_conference_end&version=3&timestamp=1795428782&lsid={lsid}&external_key=");
    Json(json!({"lsid": lsid, "event_body": event_body}))
}

async fn datto_fail(State(f): Shared, Json(r): Json<Fail>) -> Json<Value> {
    let failure = match r.status {
        401 => Failure::Unauthorized,
        403 => Failure::Forbidden,
        429 => Failure::TooManyRequests { retry_after: None },
        s if s >= 500 => Failure::ServerError(s),
        s => Failure::Status(s),
    };
    f.datto.fail_next_on(&r.path_prefix, r.times, failure);
    Json(json!({"armed": r.times}))
}

async fn datto_requests(State(f): Shared) -> Json<Value> {
    Json(json!({"requests": f.datto.request_count()}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let datto = FakeDatto::start().await;
    datto.seed_fixtures();
    let (_, bt) = FakeBeyondTrust::start().await;
    let fakes = Arc::new(Fakes { datto, bt });
    let control = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/bt/log-out", post(log_out))
        .route("/bt/log-in", post(log_in))
        .route("/bt/parked-session", post(parked_session))
        .route("/datto/fail", post(datto_fail))
        .route("/datto/requests", get(datto_requests))
        .with_state(fakes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let urls = json!({
        "datto": fakes.datto.base_url(),
        "beyondtrust": fakes.bt.base_url(),
        "control": format!("http://{}", listener.local_addr()?),
        "datto_api_key": FakeDatto::API_KEY,
        "datto_api_secret": FakeDatto::API_SECRET,
        "beyondtrust_client_id": deskbridge::beyondtrust::fake::CLIENT_ID,
        "beyondtrust_client_secret": deskbridge::beyondtrust::fake::CLIENT_SECRET,
    });
    println!("{urls}");
    axum::serve(listener, control)
        .with_graceful_shutdown(deskbridge_local::shutdown_signal())
        .await?;
    Ok(())
}
