//! The audit log: who changed which setting (names only, never a secret's value), rotated
//! the webhook state, replayed a dead letter, managed agents, tokens and passwords.
//!
//! An entry is written after the change it records succeeded; when that write fails the
//! call answers 5xx, so the caller retries the (idempotent) change and the entry follows.

use serde_json::Value;

use super::{Actor, Context, ServiceResult};
use crate::domain::accounts::{AuditAction, AuditEntry};
use crate::store::{Listing, PageRequest};

/// Append one entry for `actor`.
pub async fn record(
    ctx: &Context,
    actor: &Actor,
    action: AuditAction,
    target: impl Into<String>,
    fields: Vec<String>,
) -> ServiceResult<()> {
    let entry = ctx
        .store
        .append_audit(AuditEntry {
            id: 0,
            at: ctx.clock.now(),
            actor: actor.audit_actor(),
            action,
            target: target.into(),
            fields,
        })
        .await?;
    tracing::info!(audit_id = entry.id, action = ?entry.action, target = %entry.target, "audited");
    Ok(())
}

/// The audit log, newest first (admins).
pub async fn list(ctx: &Context, actor: &Actor, page: &PageRequest) -> ServiceResult<Listing<AuditEntry>> {
    actor.require_admin("reading the audit log")?;
    Ok(ctx.store.audit_log(page).await?)
}

/// The top-level fields whose values differ between two JSON objects, sorted.
pub fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = o
        .keys()
        .chain(n.keys())
        .filter(|k| o.get(*k) != n.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_names_keys_whose_values_differ() {
        let a = serde_json::json!({"x": 1, "y": 2, "gone": true});
        let b = serde_json::json!({"x": 1, "y": 3, "new": "v"});
        assert_eq!(changed_fields(&a, &b), vec!["gone", "new", "y"]);
    }
}
