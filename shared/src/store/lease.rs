//! Named leases: a conditional write with an expiry, so that at most one holder runs a
//! job at a time across processes and Lambda instances; an expired lease counts as free.

use chrono::Duration;

use super::Store;
use crate::error::Result;
use crate::ports::{Condition, Record, StoreError, WriteOp};

const LEASE: &str = "lease";

/// A held lease; give it back with `release_lease`.
#[derive(Debug, Clone)]
pub struct Lease {
    pub name: String,
    pub holder: String,
}

impl Store {
    /// Take the lease `name` for `ttl` unless someone else holds it (then `None`).
    pub async fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        let now = self.clock().now();
        let mut r = Record::new(LEASE, name, serde_json::json!({"holder": holder, "acquired_at": now}));
        r.expires_at = Some((now + ttl).timestamp());
        match self
            .records()
            .write(vec![WriteOp::Put {
                record: r,
                condition: Condition::NotExists,
            }])
            .await
        {
            Ok(()) => Ok(Some(Lease {
                name: name.to_string(),
                holder: holder.to_string(),
            })),
            Err(StoreError::ConditionFailed { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Give the lease back (only if this holder still holds it).
    pub async fn release_lease(&self, lease: &Lease) -> Result<()> {
        if let Some(r) = self.records().get(LEASE, &lease.name).await? {
            if r.data.get("holder").and_then(|h| h.as_str()) == Some(lease.holder.as_str()) {
                let del = WriteOp::Delete {
                    pk: LEASE.into(),
                    sk: lease.name.clone(),
                    condition: Condition::VersionIs(r.version),
                };
                match self.records().write(vec![del]).await {
                    Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}
