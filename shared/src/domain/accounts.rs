//! Accounts and access as pure rules: roles, the password policy, server-side sessions and
//! their idle/absolute expiry, the sign-in throttle, personal API tokens and audit entries.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DomainError;

/// What an agent may do. `admin`: integration settings and secrets, agents and teams, site
/// mappings, dead letters, request log, sync, audit log. `technician`: tickets, chats,
/// invites, remote-session linking, reading alerts (and the desk's customers and users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    /// Agents made before accounts existed read back as technicians.
    #[default]
    Technician,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Technician => "technician",
        }
    }
}

/// Shortest and longest password accepted (characters). NIST SP 800-63B: at least 8, no
/// composition rules, long passphrases allowed; the upper bound keeps hashing cheap.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 256;

/// The password policy: length only.
pub fn check_password(field: &str, password: &str) -> Result<(), DomainError> {
    let n = password.chars().count();
    if n < PASSWORD_MIN_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must have at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if n > PASSWORD_MAX_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must have at most {PASSWORD_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The form of an e-mail address that sign-in compares: trimmed, lower case.
pub fn login_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub absolute: Duration,
}

impl SessionPolicy {
    /// Idle 1 hour, absolute 12 hours (one working day; OWASP's session guidance).
    pub const DEFAULT: SessionPolicy = SessionPolicy {
        idle: Duration::from_secs(3600),
        absolute: Duration::from_secs(12 * 3600),
    };
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A signed-in session as stored (under the hash of its secret, never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub agent_id: u64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The per-session CSRF token that state-changing cookie requests send back.
    pub csrf_token: String,
}

impl Session {
    pub fn new(agent_id: u64, now: DateTime<Utc>, csrf_token: String) -> Self {
        Session {
            agent_id,
            created_at: now,
            last_seen_at: now,
            csrf_token,
        }
    }

    /// When the session ends if it is not used again.
    pub fn expires_at(&self, policy: &SessionPolicy) -> DateTime<Utc> {
        let idle = self.last_seen_at + chrono::Duration::from_std(policy.idle).expect("short");
        let absolute = self.created_at + chrono::Duration::from_std(policy.absolute).expect("short");
        idle.min(absolute)
    }

    pub fn is_live(&self, policy: &SessionPolicy, now: DateTime<Utc>) -> bool {
        now < self.expires_at(policy)
    }

    /// Whether `last_seen_at` is stale enough to be worth a write (a sixtieth of the idle
    /// time: one write a minute at most with the default policy).
    pub fn needs_touch(&self, policy: &SessionPolicy, now: DateTime<Utc>) -> bool {
        let step = chrono::Duration::from_std(policy.idle / 60).expect("short");
        now - self.last_seen_at >= step
    }
}

/// How failed sign-ins are slowed and then refused, per account (the e-mail tried, known or
/// not) and per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures are counted in fixed windows of this length.
    pub window: Duration,
    /// From this many failures in a window on, each failed answer is delayed.
    pub slow_after: u64,
    /// The delay per failure past `slow_after` (capped at `max_delay`).
    pub delay_step: Duration,
    pub max_delay: Duration,
    /// This many failures of one account in a window lock it for `lock_for`.
    pub account_lock_after: u64,
    /// This many failures from one address in a window lock it (higher: offices share an address).
    pub address_lock_after: u64,
    pub lock_for: Duration,
}

impl LoginThrottle {
    /// 15-minute windows; slowed from the 3rd failure (0.5 s more each, at most 3 s);
    /// an account locked after 5, an address after 30 failures, for 15 minutes.
    pub const DEFAULT: LoginThrottle = LoginThrottle {
        window: Duration::from_secs(15 * 60),
        slow_after: 3,
        delay_step: Duration::from_millis(500),
        max_delay: Duration::from_secs(3),
        account_lock_after: 5,
        address_lock_after: 30,
        lock_for: Duration::from_secs(15 * 60),
    };

    /// The start (unix seconds) of the window `now` falls in.
    pub fn window_start(&self, now: DateTime<Utc>) -> i64 {
        let w = self.window.as_secs().max(1) as i64;
        now.timestamp().div_euclid(w) * w
    }

    /// How long to hold back the answer to the `failures`-th failure of a window.
    pub fn delay(&self, failures: u64) -> Duration {
        if failures < self.slow_after {
            return Duration::ZERO;
        }
        let steps = (failures - self.slow_after + 1).min(u32::MAX as u64) as u32;
        self.delay_step.saturating_mul(steps).min(self.max_delay)
    }

    /// Whether these counts lock sign-in (account, address).
    pub fn locks(&self, account_failures: u64, address_failures: u64) -> (bool, bool) {
        (
            account_failures >= self.account_lock_after,
            address_failures >= self.address_lock_after,
        )
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A personal API token as listed: never the secret, only a short prefix to recognise it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: u64,
    pub agent_id: u64,
    pub name: String,
    /// The first characters of the token (`dbp_` and 6 more), enough to tell tokens apart.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    /// When the token last signed a request in (to the nearest [`TOKEN_USE_STEP`]); `None`
    /// for a token never used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A token's `last_used_at` is written at most once per this long, so a busy token costs
/// one write per step, not one per request.
pub const TOKEN_USE_STEP: std::time::Duration = std::time::Duration::from_secs(300);

impl ApiToken {
    /// Whether a use at `now` is to be written down.
    pub fn needs_use_noted(&self, now: DateTime<Utc>) -> bool {
        let step = chrono::Duration::from_std(TOKEN_USE_STEP).expect("short");
        self.last_used_at.is_none_or(|at| now - at >= step)
    }
}

/// A token name: 1..=100 characters.
pub fn token_name(name: &str) -> Result<String, DomainError> {
    super::required_text("name", name, 100)
}

/// How long audit entries are kept (at least; DynamoDB's TTL deletes them some time after).
pub const AUDIT_LOG_DAYS: i64 = 90;

/// Who made an audited change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditActor {
    /// A signed-in agent (session or personal token).
    Agent { agent_id: u64 },
    /// A caller with the service token, with the agent its `X-Agent-Id` named, if any.
    Service { agent_id: Option<u64> },
    /// deskbridge itself or a local command (`deskbridge admin create`).
    System,
}

/// What was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    SettingsChanged,
    WebhookStateRotated,
    DeadLetterReplayed,
    AgentCreated,
    AgentChanged,
    AgentDisabled,
    TokenCreated,
    TokenRevoked,
    PasswordChanged,
    PasswordReset,
    FirstAdminCreated,
    SignedIn,
}

/// One audit-log entry. `fields` names the settings that changed, never their values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: u64,
    pub at: DateTime<Utc>,
    pub actor: AuditActor,
    pub action: AuditAction,
    /// What the change concerned: `config/datto`, `agent/3`, `token/7`, `dead-letter/<id>`.
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_session_ends_at_the_earlier_of_idle_and_absolute_expiry() {
        let p = SessionPolicy::DEFAULT;
        let mut s = Session::new(1, t(0), "c".into());
        assert!(s.is_live(&p, t(3599)));
        assert!(!s.is_live(&p, t(3600)), "idle for an hour");
        s.last_seen_at = t(12 * 3600 - 10);
        assert!(!s.is_live(&p, t(12 * 3600)), "absolute limit despite recent use");
        assert!(s.is_live(&p, t(12 * 3600 - 1)));
    }

    #[test]
    fn the_throttle_slows_then_locks() {
        let th = LoginThrottle::DEFAULT;
        assert_eq!(th.delay(2), Duration::ZERO);
        assert_eq!(th.delay(3), Duration::from_millis(500));
        assert_eq!(th.delay(4), Duration::from_millis(1000));
        assert_eq!(th.delay(100), Duration::from_secs(3));
        assert_eq!(th.locks(4, 29), (false, false));
        assert_eq!(th.locks(5, 30), (true, true));
    }

    #[test]
    fn passwords_are_judged_by_length_only() {
        assert!(check_password("password", "short").is_err());
        assert!(check_password("password", "correct horse").is_ok());
        assert!(check_password("password", &"x".repeat(257)).is_err());
    }
}
