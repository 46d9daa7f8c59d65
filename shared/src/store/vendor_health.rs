//! Vendor health: the last success and the last failure of each vendor's API calls, one
//! record per vendor and outcome, so the operations screen can show them from any host.
//!
//! `HealthNotes` is what the Datto and BeyondTrust clients hold: it writes every failure,
//! and a success at most once a minute per process (a busy sync would otherwise double
//! its writes to record the same "it works").

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Store;
use crate::error::Result;
use crate::ports::{Condition, Record, WriteOp};

const VENDOR_HEALTH: &str = "vendor-health";

/// How often one process writes a success down.
pub const SUCCESS_NOTE_EVERY_SECS: i64 = 60;

/// One noted call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VendorCall {
    pub at: DateTime<Utc>,
    /// Which call, e.g. `sites`, `generate_session_key`.
    pub call: String,
    /// What failed, in our words (never a secret: the clients' errors carry none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The last success and the last failure of one vendor's calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VendorHealth {
    pub last_success: Option<VendorCall>,
    pub last_failure: Option<VendorCall>,
}

fn sk(vendor: &str, ok: bool) -> String {
    format!("{vendor}#{}", if ok { "success" } else { "failure" })
}

impl Store {
    /// Keep `call` as the vendor's last success (`ok`) or last failure.
    pub async fn note_vendor_call(&self, vendor: &str, ok: bool, call: &VendorCall) -> Result<()> {
        let r = Record::new(
            VENDOR_HEALTH,
            sk(vendor, ok),
            serde_json::to_value(call).expect("serializable"),
        );
        Ok(self
            .records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::Always,
            }])
            .await?)
    }

    pub async fn vendor_health(&self, vendor: &str) -> Result<VendorHealth> {
        let mut h = VendorHealth::default();
        for ok in [true, false] {
            let found = match self.records().get(VENDOR_HEALTH, &sk(vendor, ok)).await? {
                Some(r) => Some(Self::decode::<VendorCall>(&r)?),
                None => None,
            };
            if ok {
                h.last_success = found;
            } else {
                h.last_failure = found;
            }
        }
        Ok(h)
    }
}

/// Notes a vendor's call outcomes in the store (best effort: a store failure is logged,
/// never the call's failure).
#[derive(Clone)]
pub struct HealthNotes {
    store: Store,
    vendor: &'static str,
    last_success_noted: Arc<Mutex<Option<DateTime<Utc>>>>,
}

impl std::fmt::Debug for HealthNotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthNotes")
            .field("vendor", &self.vendor)
            .finish_non_exhaustive()
    }
}

impl HealthNotes {
    pub fn new(store: Store, vendor: &'static str) -> Self {
        HealthNotes {
            store,
            vendor,
            last_success_noted: Arc::new(Mutex::new(None)),
        }
    }

    /// Note one call's outcome: `Err(message)` is a failure.
    pub async fn note(&self, call: &str, outcome: std::result::Result<(), String>) {
        let now = self.store.clock().now();
        let ok = outcome.is_ok();
        if ok {
            let mut last = self.last_success_noted.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|at| now < at + Duration::seconds(SUCCESS_NOTE_EVERY_SECS) && now >= at) {
                return;
            }
            *last = Some(now);
        }
        let entry = VendorCall {
            at: now,
            call: call.to_string(),
            message: outcome.err(),
        };
        if let Err(e) = self.store.note_vendor_call(self.vendor, ok, &entry).await {
            tracing::warn!(vendor = self.vendor, error = %e, "could not note the vendor call's outcome");
        }
    }
}
