//! The lost-end-event sweep: `SupportSessionListing` over the last window finds ended
//! sessions whose end event never arrived and queues their import (idempotent by lsid).

use std::time::Duration;

use super::{session_import, JobError};
use crate::beyondtrust::{Client, ListingWindow};
use crate::ports::{Queue, QueueName};
use crate::store::{Store, SyncSummary};

/// How far back a sweep looks: ended sessions of the last two hours (the schedule runs
/// every `SWEEP_INTERVAL`, so windows overlap and a session is seen several times).
pub const SWEEP_WINDOW: Duration = Duration::from_secs(2 * 3600);

/// How often the EventBridge schedule (template.yaml) and the local scheduler sweep.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The dedupe key a sweep records a session end with.
const SWEPT: &str = "sweep";

/// List the sessions that ended in the last `SWEEP_WINDOW` and queue the import of each
/// one that is neither imported nor recorded by its end event. The session end is recorded
/// first (as the event would), so a late end event answers `duplicate` once imported, and
/// the import itself is guarded by the lsid: a session is imported exactly once.
pub async fn sweep(store: &Store, queue: &dyn Queue, client: &Client) -> Result<SyncSummary, JobError> {
    let now = store.clock().now();
    let from = now - chrono::Duration::from_std(SWEEP_WINDOW).expect("small");
    let window = ListingWindow::Ended {
        from,
        seconds: SWEEP_WINDOW.as_secs(),
    };
    let listed = client.support_session_listing(&window).await?;
    let mut summary = SyncSummary {
        sessions_listed: listed.len() as u32,
        ..SyncSummary::default()
    };
    for s in &listed {
        if store.remote_session_by_lsid(&s.lsid).await?.is_some() || !store.record_session_end(&s.lsid, SWEPT).await? {
            summary.sessions_known += 1;
            continue;
        }
        queue
            .send(QueueName::SessionImport, &session_import::message(&s.lsid))
            .await
            .map_err(crate::Error::from)?;
        tracing::info!(lsid = %s.lsid, "session end never arrived; import queued by the sweep");
        summary.imports_queued += 1;
    }
    Ok(summary)
}
