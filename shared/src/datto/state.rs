//! The webhook `state` secret: generated once, rotated on request, and compared in constant
//! time against the current value and, for 24 hours after a rotation, the previous one.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::ports::{SecretError, SecretStore, SecretString};

/// Secret-store name of the webhook state.
pub const SECRET_NAME: &str = "datto/webhook-state";
/// How long the previous state stays valid after a rotation.
pub const GRACE_HOURS: i64 = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookState {
    pub current: String,
    #[serde(default)]
    pub previous: Option<String>,
    #[serde(default)]
    pub rotated_at: Option<DateTime<Utc>>,
}

fn generate() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 40)
}

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl WebhookState {
    /// True when `given` is the current state, or the previous one inside the grace period.
    pub fn accepts(&self, given: &str, now: DateTime<Utc>) -> bool {
        let current = same(given, &self.current);
        let previous = match (&self.previous, self.rotated_at) {
            (Some(p), Some(at)) => same(given, p) && now < at + Duration::hours(GRACE_HOURS),
            _ => false,
        };
        current | previous
    }

    /// When the previous state stops working, if there is one.
    pub fn previous_valid_until(&self) -> Option<DateTime<Utc>> {
        self.previous
            .as_ref()
            .and(self.rotated_at.map(|at| at + Duration::hours(GRACE_HOURS)))
    }
}

async fn save(secrets: &dyn SecretStore, s: &WebhookState) -> Result<(), SecretError> {
    let json = serde_json::to_string(s).expect("serializable");
    secrets.put(SECRET_NAME, &SecretString::new(json)).await
}

/// The stored state, if one was generated.
pub async fn load(secrets: &dyn SecretStore) -> Result<Option<WebhookState>, SecretError> {
    Ok(secrets
        .get(SECRET_NAME)
        .await?
        .and_then(|v| serde_json::from_str::<WebhookState>(v.expose()).ok()))
}

/// The stored state, generated and saved on first use.
pub async fn load_or_create(secrets: &dyn SecretStore) -> Result<WebhookState, SecretError> {
    if let Some(s) = load(secrets).await? {
        return Ok(s);
    }
    let s = WebhookState {
        current: generate(),
        previous: None,
        rotated_at: None,
    };
    save(secrets, &s).await?;
    Ok(s)
}

/// Replace the state; the old one stays valid for `GRACE_HOURS`.
pub async fn rotate(secrets: &dyn SecretStore, now: DateTime<Utc>) -> Result<WebhookState, SecretError> {
    let old = load_or_create(secrets).await?;
    let s = WebhookState {
        current: generate(),
        previous: Some(old.current),
        rotated_at: Some(now),
    };
    save(secrets, &s).await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_state_works_only_inside_the_grace_period() {
        let at = Utc::now();
        let s = WebhookState {
            current: "new".into(),
            previous: Some("old".into()),
            rotated_at: Some(at),
        };
        assert!(s.accepts("new", at));
        assert!(s.accepts("old", at + Duration::hours(23)));
        assert!(!s.accepts("old", at + Duration::hours(24)));
        assert!(!s.accepts("", at));
        assert!(!s.accepts("ne", at));
    }
}
