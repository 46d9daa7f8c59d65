//! The floor server: the least a durable webhook receiver can do, one SQLite insert per
//! request (WAL, `synchronous=FULL`, one fsync each), to compare `deskbridge serve` against.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rusqlite::Connection;

/// Open the floor's database at `path`: WAL, `synchronous=FULL`, one table of bodies.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    assert!(mode.eq_ignore_ascii_case("wal"), "journal_mode is {mode}, not WAL");
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")?;
    Ok(conn)
}

/// `POST /datto/webhook`: insert the body (its own transaction, its own fsync), then 200.
pub fn router(conn: Connection) -> Router {
    Router::new()
        .route("/datto/webhook", post(insert))
        .with_state(Arc::new(Mutex::new(conn)))
}

async fn insert(
    State(conn): State<Arc<Mutex<Connection>>>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let id = tokio::task::spawn_blocking(move || {
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.prepare_cached("INSERT INTO requests (body) VALUES (?1)")
            .and_then(|mut st| st.insert([String::from_utf8_lossy(&body)]))
    })
    .await
    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?
    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(serde_json::json!({"result": "created", "id": id})))
}
