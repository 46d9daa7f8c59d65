//! The scheduled Datto sync, the backstop for lost webhooks and mails: site import, open
//! alerts without a ticket get one (source poll), tickets of alerts gone from the open list
//! close only once `GET /alert/{uid}` confirms it; pending closes are swept. One run at a time.

use std::collections::HashSet;

use chrono::Duration;

use super::close_propagation::sweep_pending_closes;
use crate::domain::alerts::{AlertEvent, AlertEventKind, AlertSource, AlertState, AlertUid};
use crate::domain::tickets::TicketStatus;
use crate::error::Result;
use crate::intake::accept;
use crate::ports::Queue;
use crate::ports::{DattoApi, DattoCallError};
pub use crate::store::SyncSummary;
use crate::store::{ticket_alert_uids, Store, TicketFilter};

/// A sync starts only when the account has at least this many requests of headroom in
/// Datto's window (the quota is shared with every other integration of the account).
pub const MIN_HEADROOM: i64 = 100;

/// How long a sync may hold its lease before another run may take over.
pub const LEASE_MINUTES: i64 = 10;
const DELETED_DEVICES: &str = "Deleted Devices";

fn is_uuid(s: &str) -> bool {
    AlertUid::parse("uid", s).is_ok()
}

/// Run one sync unless another is running. `holder` names this run in the lease.
pub async fn run_once(store: &Store, queue: &dyn Queue, datto: &dyn DattoApi, holder: &str) -> Result<SyncSummary> {
    let Some(lease) = store
        .acquire_lease("datto-sync", holder, Duration::minutes(LEASE_MINUTES))
        .await?
    else {
        tracing::info!("another Datto sync holds the lease; skipping");
        return Ok(SyncSummary {
            skipped: true,
            reason: Some("another sync is running".into()),
            ..Default::default()
        });
    };
    let before = datto.requests_used();
    let mut summary = SyncSummary::default();
    let result = sync(store, queue, datto, &mut summary).await;
    summary.requests_used = datto.requests_used() - before;
    store.release_lease(&lease).await?;
    result?;
    tracing::info!(?summary, "Datto sync finished");
    Ok(summary)
}

async fn sync(store: &Store, queue: &dyn Queue, datto: &dyn DattoApi, summary: &mut SyncSummary) -> Result<()> {
    let settings = store.datto_settings().await?;
    let note = |summary: &mut SyncSummary, what: &str, e: DattoCallError| {
        tracing::warn!(error = %e, "Datto sync: {what} failed");
        summary.errors.push(format!("{what}: {e}"));
    };

    // 0. Calibrate: leave the account's shared quota alone when others have used it up.
    match datto.read_headroom().await {
        Ok(Some(h)) if h < MIN_HEADROOM => {
            summary.read_headroom = Some(h);
            summary.skipped = true;
            summary.reason = Some(format!(
                "the Datto account has only {h} requests of headroom left; syncing later"
            ));
            tracing::warn!(headroom = h, "Datto account near its rate limit; sync skipped");
            return Ok(());
        }
        Ok(h) => summary.read_headroom = h,
        Err(e) => note(summary, "reading the request rate", e),
    }

    // 1. Sites.
    match datto.sites().await {
        Err(e) => note(summary, "listing sites", e),
        Ok(sites) => {
            for site in sites {
                if site.name.trim() == DELETED_DEVICES || !is_uuid(&site.uid) {
                    continue;
                }
                match store.site_mapping(&site.uid).await? {
                    Some(m) => {
                        if store.rename_imported_site(&m, &site.name).await? {
                            summary.sites_updated += 1;
                        }
                    }
                    None => {
                        store.site_for_datto(&site.uid, Some(&site.name), &settings).await?;
                        summary.sites_created += 1;
                    }
                }
            }
        }
    }

    // 2. Open alerts without a ticket get one.
    let open = match datto.open_alerts().await {
        Ok(open) => Some(open),
        Err(e) => {
            note(summary, "listing open alerts", e);
            None
        }
    };
    if let Some(open) = &open {
        for a in open {
            if store.alert(&a.uid).await?.is_some() {
                continue;
            }
            let ev = AlertEvent {
                uid: a.uid.clone(),
                kind: AlertEventKind::Raised,
                source: AlertSource::Poll,
                at: store.clock().now(),
                facts: a.facts.clone(),
            };
            let r = accept(store, queue, &settings, &ev, None).await?;
            if r.result == crate::domain::alerts::Outcome::Created {
                summary.tickets_created += 1;
            }
        }

        // 3. Open alert tickets whose alert left the open list: confirm before closing.
        let open_uids: HashSet<&str> = open.iter().map(|a| a.uid.as_str()).collect();
        let filter = TicketFilter {
            status: Some(TicketStatus::Open),
            ..Default::default()
        };
        let mut candidates = Vec::new();
        for t in store.all_tickets(&filter).await? {
            for uid in ticket_alert_uids(&t) {
                if open_uids.contains(uid.as_str()) || candidates.contains(&uid) {
                    continue;
                }
                // A ticket holding several alerts (noise control): ask only about those
                // not yet known as resolved.
                let known_resolved = t.noise.alert_uids.len() > 1
                    && store
                        .alert(&uid)
                        .await?
                        .is_some_and(|(a, _)| a.state == AlertState::Resolved);
                if !known_resolved {
                    candidates.push(uid);
                }
            }
        }
        for uid in candidates {
            match datto.alert(&uid).await {
                Ok(Some(a)) if a.resolved => {
                    let ev = AlertEvent {
                        uid: uid.clone(),
                        kind: AlertEventKind::Resolved,
                        source: AlertSource::Poll,
                        at: store.clock().now(),
                        facts: a.facts,
                    };
                    accept(store, queue, &settings, &ev, None).await?;
                    summary.tickets_closed += 1;
                }
                Ok(_) => summary.still_open_on_check += 1,
                Err(e) => {
                    let retryable = e.retryable;
                    note(summary, "confirming an alert", e);
                    if retryable {
                        break;
                    }
                }
            }
        }
    }

    // 4. Closes whose message was lost.
    summary.closes_requeued = sweep_pending_closes(store, queue, store.clock().now()).await? as u32;

    // 5. Noise control: flapping holds that went quiet, maintenance windows that ended.
    let settled = crate::intake::noise::settle_devices(store, &settings, store.clock().now()).await?;
    if settled.devices > 0 {
        tracing::info!(?settled, "noise control settled devices");
    }
    Ok(())
}
