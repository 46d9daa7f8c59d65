//! The scheduled Datto sync, the backstop for lost webhooks and mails: site import, open
//! alerts without a ticket get one (source poll), tickets of alerts gone from the open list
//! close only once `GET /alert/{uid}` confirms it; pending closes are swept. One run at a time.

use std::collections::HashSet;

use futures::StreamExt;

use chrono::Duration;

use super::close_propagation::sweep_pending_closes;
use crate::domain::alerts::{AlertEvent, AlertEventKind, AlertSource, AlertState, AlertUid};
use crate::domain::tickets::TicketStatus;
use crate::error::Result;
use crate::intake::{accept, accept_new};
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

/// New sites imported in one write (3 store operations each, at most 100 a write).
const SITES_PER_WRITE: usize = 33;

/// Site-import writes at once: on SQLite they share group commits.
const PAGES_IN_FLIGHT: usize = 4;

/// Import one page of new sites in one write; when another writer mapped one of them
/// meanwhile, site by site instead (each finds or imports its mapping).
async fn import_sites(
    store: &Store,
    page: Vec<(String, Option<String>)>,
    settings: &crate::domain::datto::DattoSettings,
) -> Result<Vec<crate::domain::datto::SiteMapping>> {
    match store.import_datto_sites(&page, settings).await {
        Err(crate::error::Error::Store(crate::ports::StoreError::ConditionFailed { .. })) => {
            let mut out = Vec::with_capacity(page.len());
            for (uid, name) in &page {
                out.push(store.site_for_datto(uid, name.as_deref(), settings).await?);
            }
            Ok(out)
        }
        done => done,
    }
}

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

    // 1. Sites: the mappings and site names in one walk each, then the new sites imported
    // in pages (one write each) and the renamed ones renamed.
    let mut mappings = store.site_mappings().await?;
    match datto.sites().await {
        Err(e) => note(summary, "listing sites", e),
        Ok(sites) => {
            let names = store.site_names().await?;
            let mut new = Vec::new();
            for site in sites {
                if site.name.trim() == DELETED_DEVICES || !is_uuid(&site.uid) {
                    continue;
                }
                match mappings.get(&site.uid) {
                    Some(m) => {
                        let unchanged = names.get(&m.site_id).is_some_and(|n| *n == site.name);
                        if !unchanged && store.rename_imported_site(m, &site.name).await? {
                            summary.sites_updated += 1;
                        }
                    }
                    None if new.iter().any(|(uid, _)| *uid == site.uid) => {}
                    None => new.push((site.uid.clone(), Some(site.name.clone()))),
                }
            }
            let imports: Vec<_> = new
                .chunks(SITES_PER_WRITE)
                .map(|page| import_sites(store, page.to_vec(), &settings))
                .collect();
            let imported: Vec<_> = futures::stream::iter(imports).buffered(PAGES_IN_FLIGHT).collect().await;
            for page in imported {
                for m in page? {
                    mappings.insert(m.datto_site_uid.clone(), m);
                    summary.sites_created += 1;
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
        // The known alerts in one walk of their partition, not a read per listed alert.
        let mut known = store.known_alert_uids().await?;
        let mut new = Vec::new();
        for a in open {
            if !known.insert(a.uid.as_str().to_string()) {
                continue;
            }
            new.push(AlertEvent {
                uid: a.uid.clone(),
                kind: AlertEventKind::Raised,
                source: AlertSource::Poll,
                at: store.clock().now(),
                facts: a.facts.clone(),
            });
        }
        for r in accept_new(store, queue, &settings, &new, &mut mappings).await? {
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
