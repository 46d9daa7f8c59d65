//! `deskbridge`: command-line entry of the local server; argument parsing only.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use deskbridge_local::{shutdown_signal, LocalConfig, LocalServer};

mod backup;

#[derive(Parser)]
#[command(
    name = "deskbridge",
    version,
    about = "deskbridge: Datto RMM and BeyondTrust, bridged to a service desk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system locally with embedded storage (no AWS account needed).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "DESKBRIDGE_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where records, queues, secrets and sent mail are kept.
        #[arg(long, env = "DESKBRIDGE_DATA_DIR", default_value = "./deskbridge-data")]
        data_dir: PathBuf,
        /// Bearer token of the helpdesk API (generated and kept in the data dir when unset).
        #[arg(long, env = "DESKBRIDGE_API_TOKEN", hide_env_values = true)]
        api_token: Option<String>,
        /// Base URL shown by the config helpers (webhook URL, event URL).
        #[arg(long, env = "DESKBRIDGE_PUBLIC_URL")]
        public_url: Option<String>,
        /// Allow vendor API URLs on loopback (for local fakes of Datto or BeyondTrust).
        #[arg(long, env = "DESKBRIDGE_ALLOW_LOOPBACK_VENDORS")]
        allow_loopback_vendors: bool,
        /// Log as JSON lines.
        #[arg(long, env = "DESKBRIDGE_LOG_JSON")]
        log_json: bool,
    },
    /// Print the OpenAPI 3.1 document of every route the local server serves (the one
    /// `GET /api/openapi.json` answers).
    Openapi,
    /// Copy a data dir (records, queues, secrets, outbox) into one file, while it is served.
    Backup {
        #[arg(long, env = "DESKBRIDGE_DATA_DIR", default_value = "./deskbridge-data")]
        data_dir: PathBuf,
        /// The backup file to write (mode 0600: it holds the secrets unless --no-secrets).
        #[arg(long)]
        to: PathBuf,
        /// Leave the secrets file and the API token out.
        #[arg(long)]
        no_secrets: bool,
    },
    /// Accounts from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Bring a backup back into a data dir no server is running on.
    Restore {
        #[arg(long)]
        from: PathBuf,
        #[arg(long, env = "DESKBRIDGE_DATA_DIR", default_value = "./deskbridge-data")]
        data_dir: PathBuf,
        /// Replace existing data (moved to a replaced-<time>/ folder, not deleted).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create the first admin of a data dir. The password is prompted for without echo on a
    /// terminal, or read as the first line of standard input otherwise.
    Create {
        #[arg(long)]
        email: String,
        /// Display name (default: the e-mail's part before `@`).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, env = "DESKBRIDGE_DATA_DIR", default_value = "./deskbridge-data")]
        data_dir: PathBuf,
    },
}

/// The new password: prompted twice without echo on a terminal, else one line of stdin.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Password again: ")?;
        anyhow::ensure!(first == again, "the passwords differ");
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// glibc's malloc arenas, at most two. With one per thread (the default: up to 8 per
/// core) the server's RSS grew steadily under mixed traffic while its live heap stayed
/// near 7 MB; with two, the 10-minute soak's growth was +5.9 % (docs/reliability.md). Set
/// before the runtime starts its threads; `MALLOC_ARENA_MAX` in the environment wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tuning parameter; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            listen,
            data_dir,
            api_token,
            public_url,
            allow_loopback_vendors,
            log_json,
        } => {
            deskbridge::telemetry::init(log_json);
            let _lock = backup::lock_data_dir(&data_dir)?;
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            let server = LocalServer::build(
                listener,
                LocalConfig {
                    data_dir,
                    api_token,
                    public_url,
                    allow_loopback_vendors,
                },
            )
            .await?;
            println!("deskbridge listening on http://{}", server.addr);
            server.run(shutdown_signal()).await
        }
        Command::Openapi => {
            println!("{}", deskbridge_local::openapi_json());
            Ok(())
        }
        Command::Backup {
            data_dir,
            to,
            no_secrets,
        } => {
            let copied = backup::backup(&data_dir, &to, !no_secrets)?;
            println!("backup written to {}: {}", to.display(), backup::describe(&copied));
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Create { email, name, data_dir },
        } => {
            let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or(&email).to_string());
            let password = read_password()?;
            let id = deskbridge_local::create_admin(&data_dir, &name, &email, password).await?;
            println!("admin {email} created (agent {id}); sign in with POST /api/auth/login");
            Ok(())
        }
        Command::Restore { from, data_dir, force } => {
            let (copied, replaced) = backup::restore(&from, &data_dir, force)?;
            println!("restored into {}: {}", data_dir.display(), backup::describe(&copied));
            if let Some(old) = replaced {
                println!("the data it replaced is kept in {}", old.display());
            }
            Ok(())
        }
    }
}
