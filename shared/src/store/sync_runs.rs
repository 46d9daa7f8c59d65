//! Sync runs: Datto syncs (the `datto-sync` consumer) and BeyondTrust's lost-end-event
//! sweeps, queued by a button, a schedule or the local scheduler; kept 30 days each.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Listing, PageRequest, Store};
use crate::error::Result;
use crate::ports::{Condition, Index, WriteOp};

const KIND: &str = "sync-run";
/// BeyondTrust's lost-end-event sweeps: the same run model, their own records and ids.
const SWEEP_KIND: &str = "bt-sweep-run";

/// How long a run's record is kept.
pub const SYNC_RUN_DAYS: i64 = 30;

/// Where a sync run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncRunState {
    Queued,
    Running,
    Done,
    Failed,
    /// Another run held the lease, the account had too little headroom, or the API is
    /// not configured.
    Skipped,
}

/// Who asked for a sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncTrigger {
    /// `POST /api/sync/datto`.
    Api,
    /// The EventBridge schedule or the local scheduler.
    Schedule,
}

/// What one sync did (all counts zero until it ran).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncSummary {
    /// True when another run held the lease, or the account had too little headroom.
    #[serde(default)]
    pub skipped: bool,
    /// Why a run was skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The account's request headroom Datto reported at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_headroom: Option<i64>,
    #[serde(default)]
    pub sites_created: u32,
    #[serde(default)]
    pub sites_updated: u32,
    #[serde(default)]
    pub tickets_created: u32,
    #[serde(default)]
    pub tickets_closed: u32,
    /// Tickets whose alert was missing from the open list but still open on GET.
    #[serde(default)]
    pub still_open_on_check: u32,
    #[serde(default)]
    pub closes_requeued: u32,
    #[serde(default)]
    pub requests_used: u64,
    /// Datto failures that cut the run short (the next run continues).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// BeyondTrust sweep: ended sessions the `SupportSessionListing` window held.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions_listed: u32,
    /// BeyondTrust sweep: sessions whose end event never arrived, queued for import now.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub imports_queued: u32,
    /// BeyondTrust sweep: sessions already imported or whose end event was recorded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sessions_known: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One Datto sync run: its state, and the summary's counts and errors flattened in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SyncRun {
    pub run_id: u64,
    pub state: SyncRunState,
    pub trigger: SyncTrigger,
    pub queued_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub summary: SyncSummary,
}

impl Store {
    /// Store a new Datto sync run in state `queued`.
    pub async fn queue_sync_run(&self, trigger: SyncTrigger) -> Result<SyncRun> {
        self.queue_run(KIND, trigger).await
    }

    /// The run and its version, or `NotFound`.
    pub async fn sync_run(&self, id: u64) -> Result<(SyncRun, u64)> {
        self.fetch(KIND, "sync run", id).await
    }

    /// Write `run` over the version read (`None`: a new run).
    pub async fn save_sync_run(&self, run: &SyncRun, version: Option<u64>) -> Result<()> {
        self.save_run(KIND, run, version).await
    }

    /// The most recent runs first.
    pub async fn sync_runs(&self, page: &PageRequest) -> Result<Listing<SyncRun>> {
        self.list(Index::Primary, KIND, true, page, |_: &SyncRun| true).await
    }

    /// Store a new BeyondTrust sweep run in state `queued`.
    pub async fn queue_sweep_run(&self, trigger: SyncTrigger) -> Result<SyncRun> {
        self.queue_run(SWEEP_KIND, trigger).await
    }

    /// The sweep run and its version, or `NotFound`.
    pub async fn sweep_run(&self, id: u64) -> Result<(SyncRun, u64)> {
        self.fetch(SWEEP_KIND, "BeyondTrust sweep run", id).await
    }

    pub async fn save_sweep_run(&self, run: &SyncRun, version: Option<u64>) -> Result<()> {
        self.save_run(SWEEP_KIND, run, version).await
    }

    /// The most recent sweep runs first.
    pub async fn sweep_runs(&self, page: &PageRequest) -> Result<Listing<SyncRun>> {
        self.list(Index::Primary, SWEEP_KIND, true, page, |_: &SyncRun| true)
            .await
    }

    async fn queue_run(&self, kind: &str, trigger: SyncTrigger) -> Result<SyncRun> {
        let run = SyncRun {
            run_id: self.next_id(kind).await?,
            state: SyncRunState::Queued,
            trigger,
            queued_at: self.clock().now(),
            started_at: None,
            finished_at: None,
            summary: SyncSummary::default(),
        };
        self.save_run(kind, &run, None).await?;
        Ok(run)
    }

    async fn save_run(&self, kind: &str, run: &SyncRun, version: Option<u64>) -> Result<()> {
        let mut record = Self::record_of(kind, run.run_id, run, version.map_or(1, |v| v + 1));
        record.expires_at = Some(run.queued_at.timestamp() + SYNC_RUN_DAYS * 24 * 3600);
        let condition = match version {
            None => Condition::NotExists,
            Some(v) => Condition::VersionIs(v),
        };
        Ok(self.records().write(vec![WriteOp::Put { record, condition }]).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_shows_its_counts_beside_its_state() {
        let run = SyncRun {
            run_id: 7,
            state: SyncRunState::Done,
            trigger: SyncTrigger::Api,
            queued_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            started_at: None,
            finished_at: None,
            summary: SyncSummary {
                tickets_created: 3,
                ..SyncSummary::default()
            },
        };
        let v = serde_json::to_value(&run).unwrap();
        assert_eq!((v["run_id"].as_u64(), v["state"].as_str()), (Some(7), Some("done")));
        assert_eq!(v["tickets_created"], 3);
        assert_eq!(serde_json::from_value::<SyncRun>(v).unwrap(), run);
    }
}
