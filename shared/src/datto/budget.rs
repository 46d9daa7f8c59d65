//! The Datto request budget: a rolling-minute request limit shared by every caller in the
//! process and, through `RecordStore` counters, by every Lambda instance; plus the 5-minute
//! stop on all Datto calls after 403s that look like an IP block, persisted the same way.
//!
//! Datto counts 600 requests per rolling 60 s per *account* (vendor notes §6), shared with
//! every other integration, and blocks the caller's IP for a while when it keeps going
//! after a 429. So deskbridge stays under its own, lower budget (default 500).
//!
//! Counting: the store holds one counter per 10-second slice (pk `datto-budget`, sk = the
//! slice's start in Unix seconds). A slot is granted when the current slice plus the six
//! before it hold fewer than the limit. Any rolling 60 s lies inside those seven slices, so
//! the limit holds for every rolling minute, not only per calendar minute (per-minute
//! counters would let up to twice the limit through across a minute boundary); the price
//! is that at most `limit` requests fit in 70 s. This module only decides; the client does
//! the waiting.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ports::{Clock, Condition, Record, RecordStore, StoreError, WriteOp};

/// Partition of the per-slice request counters.
pub const BUDGET_PK: &str = "datto-budget";
/// Key of the record that stops all Datto calls (pk, sk).
pub const BLOCK_KEY: (&str, &str) = ("datto-block", "all");

/// Width of one counter slice.
const SLICE_SECS: i64 = 10;
/// Slices before the current one that a rolling minute can reach into.
const PREVIOUS_SLICES: i64 = 6;
/// A slice counts as final this long after it ended (other instances' clocks may lag).
const CLOSE_GRACE_SECS: i64 = 2;
/// How long a 403 on one path is remembered when deciding whether a second path's 403
/// means an IP block.
const FORBIDDEN_MEMORY: Duration = Duration::from_secs(10 * 60);
/// At most this many distinct paths are remembered as having worked.
const WORKED_PATHS_MAX: usize = 256;

/// How the budget behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Requests allowed in any rolling 60 s, by all of deskbridge together.
    pub per_minute: u32,
    /// When the budget is used up: wait for room (true) or fail at once with
    /// `Error::Throttled` (false, for calls a person is waiting on).
    pub wait_when_exhausted: bool,
    /// Give up with `Error::Throttled` rather than wait longer than this for room.
    pub max_wait: Duration,
    /// How long all Datto calls stop after a 403 that looks like an IP block.
    pub block_for: Duration,
    /// How often the store is asked whether another instance set a block (a block set in
    /// this process applies at once).
    pub block_recheck: Duration,
}

impl Default for BudgetConfig {
    /// 500 per minute, waiting up to 2 minutes; 5-minute blocks, rechecked every 5 s.
    fn default() -> Self {
        BudgetConfig {
            per_minute: 500,
            wait_when_exhausted: true,
            max_wait: Duration::from_secs(120),
            block_for: Duration::from_secs(5 * 60),
            block_recheck: Duration::from_secs(5),
        }
    }
}

/// The answer to "may I send a request now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// A slot was taken; send the request.
    Granted,
    /// No room before this instant.
    WaitUntil(DateTime<Utc>),
    /// Every Datto call is stopped until this instant.
    Blocked(DateTime<Utc>),
}

#[derive(Default)]
struct State {
    /// Without a store: the counts of the recent slices. With a store: the highest count
    /// this process saw for a slice still open (a lower bound of the true count).
    seen: BTreeMap<i64, u64>,
    /// With a store: final counts of closed slices, read once.
    closed: BTreeMap<i64, u64>,
    block_until: Option<DateTime<Utc>>,
    block_checked_at: Option<DateTime<Utc>>,
    cool_down_until: Option<DateTime<Utc>>,
    worked: HashSet<String>,
    forbidden: Vec<(String, DateTime<Utc>)>,
}

struct Inner {
    config: BudgetConfig,
    clock: Arc<dyn Clock>,
    store: Option<Arc<dyn RecordStore>>,
    state: Mutex<State>,
}

/// The request budget and block switch of one Datto account. Clones share one budget;
/// build one per process and hand it to every `datto::Client`.
#[derive(Clone)]
pub struct RequestBudget {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RequestBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBudget")
            .field("config", &self.inner.config)
            .field("shared", &self.inner.store.is_some())
            .finish_non_exhaustive()
    }
}

impl RequestBudget {
    /// A budget counted in this process only (tests, local runs with one process).
    pub fn in_process(config: BudgetConfig, clock: Arc<dyn Clock>) -> Self {
        Self::build(config, clock, None)
    }

    /// A budget counted in `store`, shared by every process using the same store.
    pub fn shared(config: BudgetConfig, store: Arc<dyn RecordStore>, clock: Arc<dyn Clock>) -> Self {
        Self::build(config, clock, Some(store))
    }

    fn build(config: BudgetConfig, clock: Arc<dyn Clock>, store: Option<Arc<dyn RecordStore>>) -> Self {
        RequestBudget {
            inner: Arc::new(Inner {
                config,
                clock,
                store,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Try to take one request slot. Store failures are returned: without the shared
    /// count deskbridge cannot know whether a request would overrun the account's quota.
    pub async fn try_acquire(&self) -> Result<Acquire, StoreError> {
        let now = self.now();
        if let Some(until) = self.blocked_until_checked(now).await? {
            return Ok(Acquire::Blocked(until));
        }
        if let Some(until) = self.state().cool_down_until.filter(|u| *u > now) {
            return Ok(Acquire::WaitUntil(until));
        }
        let limit = u64::from(self.inner.config.per_minute.max(1));
        let secs = now.timestamp();
        let current = secs.div_euclid(SLICE_SECS) * SLICE_SECS;
        let next_slice = DateTime::from_timestamp(current + SLICE_SECS, 0).unwrap_or(now);
        let previous: Vec<i64> = (1..=PREVIOUS_SLICES).map(|i| current - i * SLICE_SECS).collect();

        let Some(store) = self.inner.store.clone() else {
            let mut st = self.state();
            let used: u64 = previous
                .iter()
                .chain([&current])
                .map(|s| st.seen.get(s).copied().unwrap_or(0))
                .sum();
            if used >= limit {
                return Ok(Acquire::WaitUntil(next_slice));
            }
            *st.seen.entry(current).or_default() += 1;
            let oldest = current - PREVIOUS_SLICES * SLICE_SECS;
            st.seen.retain(|s, _| *s >= oldest);
            return Ok(Acquire::Granted);
        };

        let mut used_before = 0;
        for slice in previous {
            let cached = self.state().closed.get(&slice).copied();
            let count = match cached {
                Some(c) => c,
                None => {
                    // An increment by zero reads the counter (the store has no plain read
                    // for counters).
                    let c = store.increment(BUDGET_PK, &slice.to_string(), 0).await?;
                    if secs >= slice + SLICE_SECS + CLOSE_GRACE_SECS {
                        self.state().closed.insert(slice, c);
                    }
                    c
                }
            };
            used_before += count;
        }
        // Don't add to the shared count when this process already knows there is no room:
        // a refused increment still counts, and would starve every instance for nothing.
        if used_before + self.state().seen.get(&current).copied().unwrap_or(0) >= limit {
            return Ok(Acquire::WaitUntil(next_slice));
        }
        // A slice matters for a minute; let the store drop it an hour later.
        let count = store
            .increment_expiring(BUDGET_PK, &current.to_string(), 1, current + 3600)
            .await?;
        {
            let mut st = self.state();
            let seen = st.seen.entry(current).or_default();
            *seen = (*seen).max(count);
            let oldest = current - PREVIOUS_SLICES * SLICE_SECS;
            st.seen.retain(|s, _| *s >= oldest);
            st.closed.retain(|s, _| *s >= oldest);
        }
        if used_before + count > limit {
            return Ok(Acquire::WaitUntil(next_slice));
        }
        Ok(Acquire::Granted)
    }

    /// Requests counted in the rolling minute now (by every instance, when shared): the
    /// slices `try_acquire` adds up. Reading costs one store read per slice.
    pub async fn used(&self) -> Result<u64, StoreError> {
        let now = self.now().timestamp();
        let current = now.div_euclid(SLICE_SECS) * SLICE_SECS;
        let slices = (0..=PREVIOUS_SLICES).map(|i| current - i * SLICE_SECS);
        let Some(store) = self.inner.store.clone() else {
            let st = self.state();
            return Ok(slices.map(|s| st.seen.get(&s).copied().unwrap_or(0)).sum());
        };
        let mut used = 0;
        for slice in slices {
            // An increment by zero reads the counter (as in `try_acquire`).
            used += store.increment(BUDGET_PK, &slice.to_string(), 0).await?;
        }
        Ok(used)
    }

    /// The end of the current block, if any (as this process knows it).
    pub fn blocked_until(&self) -> Option<DateTime<Utc>> {
        let now = self.now();
        self.state().block_until.filter(|u| *u > now)
    }

    async fn blocked_until_checked(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let recheck = {
            let st = self.state();
            if let Some(until) = st.block_until.filter(|u| *u > now) {
                return Ok(Some(until));
            }
            let every = chrono::Duration::from_std(self.inner.config.block_recheck).unwrap_or_default();
            st.block_checked_at.is_none_or(|at| now - at >= every || now < at)
        };
        let Some(store) = self.inner.store.as_ref().filter(|_| recheck) else {
            return Ok(None);
        };
        let record = store.get(BLOCK_KEY.0, BLOCK_KEY.1).await?;
        let until = record
            .and_then(|r| r.data.get("until").and_then(|u| u.as_str()).map(str::to_string))
            .and_then(|u| DateTime::parse_from_rfc3339(&u).ok())
            .map(|u| u.with_timezone(&Utc))
            .filter(|u| *u > now);
        let mut st = self.state();
        st.block_checked_at = Some(now);
        if let Some(u) = until {
            st.block_until = Some(st.block_until.map_or(u, |b| b.max(u)));
        }
        Ok(until)
    }

    /// A request on `path` (an endpoint template such as `GET /v2/alert/{uid}`) succeeded.
    pub fn note_success(&self, path: &str) {
        let mut st = self.state();
        if st.worked.len() < WORKED_PATHS_MAX || st.worked.contains(path) {
            st.worked.insert(path.to_string());
        }
    }

    /// Datto answered 429: nobody in this process sends before `until`.
    pub fn note_throttled(&self, until: DateTime<Utc>) {
        let mut st = self.state();
        st.cool_down_until = Some(st.cool_down_until.map_or(until, |c| c.max(until)));
    }

    /// Datto answered 403 on `path`. A 403 on a path that worked before, or a second 403
    /// on another path within 10 minutes, is taken as an IP block: every Datto call stops
    /// for `block_for`, and the stop is written to the store for the other instances.
    /// Returns the end of the block, or `None` when the 403 reads as a missing permission.
    pub async fn note_forbidden(&self, path: &str) -> Option<DateTime<Utc>> {
        let now = self.now();
        let until = {
            let mut st = self.state();
            let memory = chrono::Duration::from_std(FORBIDDEN_MEMORY).unwrap_or_default();
            st.forbidden.retain(|(_, at)| now - *at < memory);
            let other_path = st.forbidden.iter().any(|(p, _)| p != path);
            let worked_before = st.worked.contains(path);
            if !other_path && !worked_before {
                if !st.forbidden.iter().any(|(p, _)| p == path) {
                    st.forbidden.push((path.to_string(), now));
                }
                return None;
            }
            let until = now + chrono::Duration::from_std(self.inner.config.block_for).unwrap_or_default();
            st.block_until = Some(st.block_until.map_or(until, |b| b.max(until)));
            st.forbidden.clear();
            st.worked.clear();
            until
        };
        tracing::warn!(path, %until, "Datto answered 403 on several paths: stopping all Datto calls");
        if let Some(store) = &self.inner.store {
            let mut record = Record::new(
                BLOCK_KEY.0,
                BLOCK_KEY.1,
                serde_json::json!({"until": until.to_rfc3339(), "path": path, "set_at": now.to_rfc3339()}),
            );
            // Round up so the record outlives the block rather than the other way round.
            record.expires_at = Some(until.timestamp() + 1);
            let put = WriteOp::Put {
                record,
                condition: Condition::Always,
            };
            if let Err(e) = store.write(vec![put]).await {
                tracing::error!(error = %e, "could not persist the Datto block; it applies to this process only");
            }
        }
        Some(until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::SqliteRecordStore;
    use crate::ports::ManualClock;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn config(per_minute: u32) -> BudgetConfig {
        BudgetConfig {
            per_minute,
            ..BudgetConfig::default()
        }
    }

    #[tokio::test]
    async fn in_process_budget_frees_room_only_when_the_rolling_minute_has_passed() {
        let clock = Arc::new(ManualClock::new(start()));
        let budget = RequestBudget::in_process(config(3), clock.clone());
        for _ in 0..3 {
            assert_eq!(budget.try_acquire().await.unwrap(), Acquire::Granted);
        }
        let Acquire::WaitUntil(t) = budget.try_acquire().await.unwrap() else {
            panic!("expected a wait")
        };
        assert_eq!(t, start() + chrono::Duration::seconds(10));
        clock.advance(Duration::from_secs(59));
        assert!(matches!(budget.try_acquire().await.unwrap(), Acquire::WaitUntil(_)));
        clock.advance(Duration::from_secs(11));
        assert_eq!(budget.try_acquire().await.unwrap(), Acquire::Granted);
    }

    #[tokio::test]
    async fn two_instances_sharing_a_store_never_exceed_the_budget_together() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start()));
        let store: Arc<dyn RecordStore> =
            Arc::new(SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock.clone()).unwrap());
        let a = RequestBudget::shared(config(5), store.clone(), clock.clone());
        let b = RequestBudget::shared(config(5), store.clone(), clock.clone());
        let mut granted = 0;
        for i in 0..20 {
            let who = if i % 2 == 0 { &a } else { &b };
            if who.try_acquire().await.unwrap() == Acquire::Granted {
                granted += 1;
            }
            clock.advance(Duration::from_secs(1));
        }
        assert_eq!(granted, 5, "20 tries within 20 s share one budget of 5");
        clock.advance(Duration::from_secs(60));
        assert_eq!(a.try_acquire().await.unwrap(), Acquire::Granted);
    }

    #[tokio::test]
    async fn a_403_on_one_path_is_a_permission_problem_but_a_second_path_blocks_everyone() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(start()));
        let store: Arc<dyn RecordStore> =
            Arc::new(SqliteRecordStore::open(&dir.path().join("s.sqlite"), clock.clone()).unwrap());
        let here = RequestBudget::shared(config(100), store.clone(), clock.clone());
        let elsewhere = RequestBudget::shared(config(100), store.clone(), clock.clone());
        assert_eq!(elsewhere.try_acquire().await.unwrap(), Acquire::Granted);

        assert_eq!(here.note_forbidden("GET /v2/account/sites").await, None);
        assert_eq!(
            here.note_forbidden("GET /v2/account/sites").await,
            None,
            "same path again"
        );
        let until = here.note_forbidden("GET /v2/account").await.expect("blocked");
        assert_eq!(until, start() + chrono::Duration::minutes(5));
        assert_eq!(here.try_acquire().await.unwrap(), Acquire::Blocked(until));

        clock.advance(Duration::from_secs(6));
        assert_eq!(
            elsewhere.try_acquire().await.unwrap(),
            Acquire::Blocked(until),
            "seen through the store"
        );
        clock.advance(Duration::from_secs(5 * 60));
        assert_eq!(here.try_acquire().await.unwrap(), Acquire::Granted);
        assert_eq!(elsewhere.try_acquire().await.unwrap(), Acquire::Granted);
    }

    #[tokio::test]
    async fn a_403_on_a_path_that_worked_before_blocks_at_once() {
        let clock = Arc::new(ManualClock::new(start()));
        let budget = RequestBudget::in_process(config(100), clock.clone());
        budget.note_success("GET /v2/account/alerts/open");
        assert!(budget.note_forbidden("GET /v2/account/alerts/open").await.is_some());
        assert!(budget.blocked_until().is_some());
    }

    #[tokio::test]
    async fn a_429_cool_down_makes_every_caller_wait() {
        let clock = Arc::new(ManualClock::new(start()));
        let budget = RequestBudget::in_process(config(100), clock.clone());
        let until = start() + chrono::Duration::seconds(30);
        budget.note_throttled(until);
        assert_eq!(budget.try_acquire().await.unwrap(), Acquire::WaitUntil(until));
        clock.advance(Duration::from_secs(30));
        assert_eq!(budget.try_acquire().await.unwrap(), Acquire::Granted);
    }
}
