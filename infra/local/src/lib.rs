//! The whole of deskbridge in one process: the same routers as the Lambdas, over SQLite
//! storage and queues, a secrets file and an outbox folder in one data directory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deskbridge::adapters::outbox::OutboxMailer;
use deskbridge::adapters::record_cache::CachedRecordStore;
use deskbridge::adapters::secrets_file::FileSecretStore;
use deskbridge::adapters::sqlite_queue::SqliteQueue;
use deskbridge::adapters::sqlite_store::SqliteRecordStore;
use deskbridge::config::HttpConfig;
use deskbridge::ports::{Clock, SecretString, SystemClock};
use deskbridge::services::{accounts, Context};
use deskbridge::store::Store;
use tokio::net::TcpListener;

pub mod worker;

/// How the local server is set up.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub data_dir: PathBuf,
    /// The helpdesk API token; `None` = read from the data dir or generate one.
    pub api_token: Option<String>,
    /// Base of the URLs the config helpers show; `None` = `http://<listen address>`.
    pub public_url: Option<String>,
    /// Let vendor API URLs point at loopback (local fakes); never on for real use.
    pub allow_loopback_vendors: bool,
}

/// A server ready to run: its state and the address it is bound to.
pub struct LocalServer {
    pub ctx: Context,
    pub outbox: Arc<OutboxMailer>,
    pub addr: SocketAddr,
    listener: TcpListener,
}

/// Where the generated API token is kept.
pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("api-token")
}

/// The API token: given, or kept in the data dir, or generated now (then `generated` is true).
fn api_token(config: &LocalConfig) -> anyhow::Result<(String, bool)> {
    if let Some(t) = config.api_token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok((t.to_string(), false));
    }
    let path = token_path(&config.data_dir);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    use rand::distr::{Alphanumeric, SampleString};
    let token = Alphanumeric.sample_string(&mut rand::rng(), 40);
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    Ok((token, true))
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Whether session cookies get `Secure`: always, except when the server is reached over
/// plain http on a loopback address (browsers do not send `Secure` cookies over http).
/// Decided from the configuration, never from request headers.
pub fn secure_cookies(public_url: &str, addr: SocketAddr) -> bool {
    !(public_url.starts_with("http://") && addr.ip().is_loopback())
}

/// The data dir's storage, secrets and outbox as a `Context` (the API token generated if
/// needed, then `true` in the answer).
fn open_context(
    config: &LocalConfig,
    public_url: &str,
    secure: bool,
) -> anyhow::Result<(Context, Arc<OutboxMailer>, bool)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let records = SqliteRecordStore::open(&config.data_dir.join("deskbridge.sqlite"), clock.clone())
        .context("opening the SQLite store")?;
    let queue = SqliteQueue::open(
        &config.data_dir.join("queues.sqlite"),
        clock.clone(),
        Duration::from_secs(60),
    )
    .context("opening the SQLite queue")?;
    let outbox = Arc::new(OutboxMailer::new(config.data_dir.join("outbox")).context("opening the outbox")?);
    let secrets = FileSecretStore::new(config.data_dir.join("secrets.json")).context("opening the secrets file")?;
    let (token, generated) = api_token(config)?;
    if generated {
        println!(
            "Generated an API token (kept in {}): {token}",
            token_path(&config.data_dir).display()
        );
    }
    // `serve` holds the data dir's lock, so no other process writes this file: the
    // rarely-changing reads of every new alert can come from memory.
    let store = Store::new(Arc::new(CachedRecordStore::local(Arc::new(records))), clock.clone());
    let secrets: Arc<dyn deskbridge::ports::SecretStore> = Arc::new(secrets);
    let datto =
        deskbridge::datto::connect::SettingsConnect::new(store.clone(), secrets.clone(), config.allow_loopback_vendors);
    let beyondtrust = deskbridge::beyondtrust::connect::SettingsConnect::new(
        store.clone(),
        secrets.clone(),
        config.allow_loopback_vendors,
    );
    let mut http = HttpConfig::new(SecretString::new(token), public_url);
    http.secure_cookies = secure;
    let ctx = Context {
        store,
        queue: Arc::new(queue),
        mailer: outbox.clone(),
        secrets,
        clock,
        config: Arc::new(http),
        datto: Arc::new(datto),
        beyondtrust: Arc::new(beyondtrust),
    };
    Ok((ctx, outbox, generated))
}

/// `deskbridge admin create`: the first admin of a data dir, made from the command line.
pub async fn create_admin(data_dir: &Path, name: &str, email: &str, password: String) -> anyhow::Result<u64> {
    let config = LocalConfig {
        data_dir: data_dir.to_path_buf(),
        api_token: None,
        public_url: None,
        allow_loopback_vendors: false,
    };
    let (ctx, _, _) = open_context(&config, "http://127.0.0.1", false)?;
    let input = accounts::FirstAdmin {
        name: name.to_string(),
        email: email.to_string(),
        password: accounts::Password::new(password),
        setup_token: None,
    };
    let (agent, _) = accounts::create_first_admin(&ctx, Some(&deskbridge::services::Actor::System), input)
        .await
        .map_err(|e| anyhow::anyhow!("{}", deskbridge::http::error::ApiError::from(e).message()))?;
    Ok(agent.id)
}

impl LocalServer {
    /// Open (or create) the data dir's storage and bind the router to `listener`. On a data
    /// dir without an admin, print a one-time setup link for the first one.
    pub async fn build(listener: TcpListener, config: LocalConfig) -> anyhow::Result<LocalServer> {
        let addr = listener.local_addr()?;
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let (ctx, outbox, _) = open_context(&config, &public_url, secure_cookies(&public_url, addr))?;
        deskbridge::services::passwords::prepare().await;
        let setup = accounts::issue_setup_token(&ctx)
            .await
            .map_err(|e| anyhow::anyhow!("preparing the first-admin setup: {e}"))?;
        if let Some(token) = setup {
            let base = ctx.config.public_url.clone();
            println!(
                "No admin yet. Within {} hours, open {base}/console/setup#token={token}\n\
                 or create one with: curl -X POST {base}/api/auth/setup -H 'content-type: application/json' \\\n  \
                 -d '{{\"setup_token\": \"{token}\", \"name\": \"…\", \"email\": \"…\", \"password\": \"…\"}}'\n\
                 (or stop the server and run: deskbridge admin create --email …)",
                accounts::SETUP_TOKEN_HOURS
            );
        }
        Ok(LocalServer {
            ctx,
            outbox,
            addr,
            listener,
        })
    }

    /// Serve (and run the background worker) until `shutdown` resolves, then finish
    /// in-flight requests, stop the worker and return.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let router = local_router(self.ctx.clone(), self.outbox.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let worker = tokio::spawn(worker::Worker::new(self.ctx.clone()).run(stop_rx));
        tracing::info!(addr = %self.addr, "deskbridge listening");
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP");
        let _ = stop_tx.send(true);
        let _ = worker.await;
        served
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Every route the local server serves: the shared routers and its own.
pub fn local_router(ctx: Context, outbox: Arc<OutboxMailer>) -> axum::Router {
    routes::local_router(ctx, outbox)
}

/// The OpenAPI document of the local server's routes (the shared ones and its own), as
/// `GET /api/openapi.json` serves it.
pub fn openapi_json() -> String {
    let doc = deskbridge::http::document_with(routes::local_routes());
    serde_json::to_string_pretty(&doc).expect("serializable")
}

mod routes {
    //! Routes only the local server has: the outbox viewer and `POST /local/mail`, which
    //! stands in for SES receipt (raw RFC 5322 body; bearer token required).

    use std::sync::Arc;

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::{Extension, Json, Router};
    use deskbridge::adapters::outbox::OutboxMailer;
    use deskbridge::http::error::{ApiError, ErrorBody};
    use deskbridge::intake::IntakeResult;
    use deskbridge::services::{alert_intake, Actor, Context};
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    /// The local routes, documented; served behind the API token.
    pub fn local_routes() -> OpenApiRouter<Context> {
        OpenApiRouter::new()
            .routes(routes!(list_outbox))
            .routes(routes!(local_mail))
    }

    pub fn local_router(ctx: Context, outbox: Arc<OutboxMailer>) -> Router {
        deskbridge::http::full_router_with(ctx, local_routes())
            .layer(Extension(outbox))
            .layer(axum::middleware::map_request(peer_addr))
    }

    /// Hand the connection's peer address to the sign-in throttle.
    async fn peer_addr(mut req: axum::extract::Request) -> axum::extract::Request {
        let peer = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(ip) = peer {
            req.extensions_mut().insert(deskbridge::http::auth::PeerAddr(ip));
        }
        req
    }

    /// One sent mail in the outbox folder.
    #[derive(serde::Serialize, utoipa::ToSchema)]
    struct OutboxMail {
        id: String,
        from: String,
        to: Vec<String>,
        subject: String,
        text: String,
    }

    /// `{"items": [...]}`.
    #[derive(serde::Serialize, utoipa::ToSchema)]
    struct Outbox {
        items: Vec<OutboxMail>,
    }

    /// The mail the local server "sent" (kept in the data dir's outbox folder).
    #[utoipa::path(get, path = "/api/outbox", tag = "local",
        responses((status = 200, description = "Every mail in the outbox", body = Outbox), (status = 403, description = "FORBIDDEN: needs the admin role", body = ErrorBody)))]
    async fn list_outbox(
        State(_ctx): State<Context>,
        actor: Actor,
        Extension(outbox): Extension<Arc<OutboxMailer>>,
    ) -> Result<Json<Outbox>, ApiError> {
        actor.require_admin("reading the outbox")?;
        let items = outbox
            .list()
            .into_iter()
            .map(|(id, m)| OutboxMail {
                id,
                from: m.from,
                to: m.to,
                subject: m.subject,
                text: m.text,
            })
            .collect();
        Ok(Json(Outbox { items }))
    }

    /// Same outcome JSON as the webhook; a refused mail answers 403 (sender) or 422
    /// (no `Alert{uid}`), and is in the request log either way.
    #[utoipa::path(post, path = "/local/mail", tag = "local",
        request_body(content = String, description = "A raw RFC 5322 alert e-mail", content_type = "message/rfc822"),
        responses(
            (status = 200, description = "The alert event was applied durably", body = IntakeResult),
            (status = 403, description = "SENDER_REFUSED: not the configured From Address, or e-mail intake is off", body = ErrorBody),
            (status = 422, description = "NO_ALERT_UID: no Alert{uid} in the subject", body = ErrorBody),
        ))]
    async fn local_mail(State(ctx): State<Context>, body: Bytes) -> Result<Json<IntakeResult>, ApiError> {
        Ok(Json(alert_intake::mail(&ctx, &body).await?))
    }
}
