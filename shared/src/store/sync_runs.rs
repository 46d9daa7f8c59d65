//! Datto sync runs: queued by the button, the schedule or the local scheduler, then run by
//! the `datto-sync` consumer; each keeps its state, counts and errors for 30 days.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Listing, PageRequest, Store};
use crate::error::Result;
use crate::ports::{Condition, Index, WriteOp};

const KIND: &str = "sync-run";

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
    /// Store a new run in state `queued`.
    pub async fn queue_sync_run(&self, trigger: SyncTrigger) -> Result<SyncRun> {
        let run = SyncRun {
            run_id: self.next_id(KIND).await?,
            state: SyncRunState::Queued,
            trigger,
            queued_at: self.clock().now(),
            started_at: None,
            finished_at: None,
            summary: SyncSummary::default(),
        };
        self.save_sync_run(&run, None).await?;
        Ok(run)
    }

    /// The run and its version, or `NotFound`.
    pub async fn sync_run(&self, id: u64) -> Result<(SyncRun, u64)> {
        self.fetch(KIND, "sync run", id).await
    }

    /// Write `run` over the version read (`None`: a new run).
    pub async fn save_sync_run(&self, run: &SyncRun, version: Option<u64>) -> Result<()> {
        let mut record = Self::record_of(KIND, run.run_id, run, version.map_or(1, |v| v + 1));
        record.expires_at = Some(run.queued_at.timestamp() + SYNC_RUN_DAYS * 24 * 3600);
        let condition = match version {
            None => Condition::NotExists,
            Some(v) => Condition::VersionIs(v),
        };
        Ok(self.records().write(vec![WriteOp::Put { record, condition }]).await?)
    }

    /// The most recent runs first.
    pub async fn sync_runs(&self, page: &PageRequest) -> Result<Listing<SyncRun>> {
        self.list(Index::Primary, KIND, true, page, |_: &SyncRun| true).await
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
