//! Typed process configuration read from the environment; a missing or malformed variable
//! stops start-up with its name, so template.yaml and code cannot drift silently.

use crate::domain::accounts::{LoginThrottle, SessionPolicy};
use crate::ports::SecretString;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Read a required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// Read an optional variable (blank counts as absent).
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What the HTTP routers need besides the ports.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The bearer token of the helpdesk API.
    pub api_token: SecretString,
    /// Base of the URLs that the config helpers show (webhook URL, event URL), without a
    /// trailing slash.
    pub public_url: String,
    /// Session cookies carry `Secure`; off only for the local server on plain loopback http.
    pub secure_cookies: bool,
    /// Idle and absolute lifetime of sign-in sessions.
    pub sessions: SessionPolicy,
    /// How failed sign-ins are slowed and refused.
    pub login_throttle: LoginThrottle,
}

impl HttpConfig {
    /// Secure cookies, the default session lifetimes and sign-in throttle.
    pub fn new(api_token: SecretString, public_url: &str) -> Self {
        HttpConfig {
            api_token,
            public_url: public_url.trim_end_matches('/').to_string(),
            secure_cookies: true,
            sessions: SessionPolicy::DEFAULT,
            login_throttle: LoginThrottle::DEFAULT,
        }
    }
}

/// Configuration of the AWS-hosted functions, from the variables template.yaml sets.
#[derive(Debug, Clone)]
pub struct AwsConfig {
    /// The DynamoDB table holding every record.
    pub table: String,
    /// Secrets Manager name of the helpdesk API bearer token.
    pub api_token_secret: String,
    /// Public base URL of the HTTP API; empty = taken from each request's Host header.
    pub public_url: String,
    /// Bucket and key prefix where SES stores inbound mail (ses-inbound-mail only).
    pub mail_bucket: Option<String>,
    pub mail_prefix: String,
    /// Prefix of secret names this stack owns (vendor credentials, webhook state).
    pub secret_prefix: String,
    /// SQS queue URLs by queue, with their dead-letter queue URLs.
    pub queues: Vec<(crate::ports::QueueName, String, String)>,
    /// `DESKBRIDGE_ALLOW_LOOPBACK_VENDORS=true` admits `http://127.0.0.1:<port>` vendor API
    /// URLs, for running the functions locally against fake vendors (the runtime-API tests,
    /// `scripts/invoke`). template.yaml never sets it; a deployed function refuses such URLs.
    pub allow_loopback_vendors: bool,
}

impl AwsConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut queues = Vec::new();
        for (q, url, dlq) in [
            (
                crate::ports::QueueName::TicketClosed,
                "TICKET_CLOSED_QUEUE_URL",
                "TICKET_CLOSED_DLQ_URL",
            ),
            (
                crate::ports::QueueName::AlertEnrich,
                "ALERT_ENRICH_QUEUE_URL",
                "ALERT_ENRICH_DLQ_URL",
            ),
            (
                crate::ports::QueueName::SessionImport,
                "SESSION_IMPORT_QUEUE_URL",
                "SESSION_IMPORT_DLQ_URL",
            ),
            (
                crate::ports::QueueName::DattoSync,
                "DATTO_SYNC_QUEUE_URL",
                "DATTO_SYNC_DLQ_URL",
            ),
        ] {
            if let (Some(u), Some(d)) = (optional(url), optional(dlq)) {
                queues.push((q, u, d));
            }
        }
        Ok(AwsConfig {
            table: required("TABLE_NAME")?,
            api_token_secret: required("API_TOKEN_SECRET")?,
            public_url: optional("PUBLIC_URL").unwrap_or_default(),
            mail_bucket: optional("MAIL_BUCKET"),
            mail_prefix: optional("MAIL_PREFIX").unwrap_or_else(|| "inbound/".to_string()),
            secret_prefix: optional("SECRET_PREFIX").unwrap_or_else(|| "deskbridge/".to_string()),
            queues,
            allow_loopback_vendors: optional("DESKBRIDGE_ALLOW_LOOPBACK_VENDORS").is_some_and(|v| v == "true"),
        })
    }
}
