//! Typed repositories, one per aggregate, built once over the `RecordStore` port so that
//! every storage adapter gets the same key layout, conditions and transactions.
//!
//! Key layout (one table): an aggregate `kind` lives at `pk = kind`, `sk = id` zero-padded
//! to 20 digits, so a partition walk lists it in id order; ticket actions live at
//! `pk = ticket#<id>`, `sk = action#<action id>`; counters at `pk = counter`, `sk = kind`;
//! the vendors' shared access tokens at `pk = vendor-token`, `sk = <vendor>` (sealed).

pub mod accounts;
mod alerts;
mod chats;
mod desk;
mod lease;
mod noise;
mod propagation;
mod remote;
mod sync_runs;
mod tickets;
pub mod vendor_health;
pub mod vendor_tokens;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::domain::DomainError;
use crate::error::{Error, Result};
use crate::ports::{Clock, Condition, Cursor, Index, Query, Record, RecordStore, StoreError, WriteOp};

pub use accounts::Credential;
pub use alerts::{AlertWrite, EnrichmentChange, NewAlert, RequestLogEntry, RequestLogFilter, REQUEST_LOG_DAYS};
pub use lease::Lease;
pub use noise::{NoiseConfig, RuleList};
pub use propagation::{ticket_alert_uids, CloseClaim, PendingClose};
pub use remote::{KeptEvent, RemoteSessionFilter, SessionImport};
pub use sync_runs::{SyncRun, SyncRunState, SyncSummary, SyncTrigger, SYNC_RUN_DAYS};
pub use tickets::TicketFilter;
pub use vendor_health::{HealthNotes, VendorCall, VendorHealth};
pub use vendor_tokens::{MintedToken, TokenCache, TokenOwner, TokenWaitTimeout};

/// How many times an optimistic read-modify-write is retried after losing a race.
pub(crate) const UPDATE_ATTEMPTS: usize = 8;

/// A page request from a list endpoint.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: 50,
            cursor: None,
        }
    }
}

/// One page of typed items and the cursor of the next page, if any.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
}

/// The typed storage of deskbridge.
#[derive(Clone)]
pub struct Store {
    records: Arc<dyn RecordStore>,
    clock: Arc<dyn Clock>,
}

pub(crate) fn sk_id(id: u64) -> String {
    format!("{id:020}")
}

impl Store {
    pub fn new(records: Arc<dyn RecordStore>, clock: Arc<dyn Clock>) -> Self {
        Store { records, clock }
    }

    pub fn records(&self) -> &Arc<dyn RecordStore> {
        &self.records
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The next number of `kind`'s counter; numbers only grow, a failed write leaves a gap.
    pub async fn next_id(&self, kind: &str) -> Result<u64> {
        Ok(self.records.increment("counter", kind, 1).await?)
    }

    pub(crate) fn record_of<T: Serialize>(kind: &str, id: u64, value: &T, version: u64) -> Record {
        let mut r = Record::new(kind, sk_id(id), serde_json::to_value(value).expect("serializable"));
        r.version = version;
        r
    }

    pub(crate) fn put_new<T: Serialize>(kind: &str, id: u64, value: &T) -> WriteOp {
        WriteOp::Put {
            record: Self::record_of(kind, id, value, 1),
            condition: Condition::NotExists,
        }
    }

    pub(crate) fn put_over<T: Serialize>(kind: &str, id: u64, value: &T, version: u64) -> WriteOp {
        WriteOp::Put {
            record: Self::record_of(kind, id, value, version + 1),
            condition: Condition::VersionIs(version),
        }
    }

    pub(crate) fn must_exist(kind: &str, id: u64) -> WriteOp {
        WriteOp::Check {
            pk: kind.to_string(),
            sk: sk_id(id),
            condition: Condition::Exists,
        }
    }

    pub(crate) fn decode<T: DeserializeOwned>(r: &Record) -> Result<T> {
        serde_json::from_value(r.data.clone()).map_err(|e| {
            Error::Store(StoreError::Corrupt {
                pk: r.pk.clone(),
                sk: r.sk.clone(),
                reason: e.to_string(),
            })
        })
    }

    /// The aggregate and its version, or `None`.
    pub(crate) async fn load<T: DeserializeOwned>(&self, kind: &str, id: u64) -> Result<Option<(T, u64)>> {
        match self.records.get(kind, &sk_id(id)).await? {
            Some(r) => Ok(Some((Self::decode(&r)?, r.version))),
            None => Ok(None),
        }
    }

    /// The aggregate, or `NotFound` naming `label` (the kind as users know it).
    pub(crate) async fn fetch<T: DeserializeOwned>(
        &self,
        kind: &str,
        label: &'static str,
        id: u64,
    ) -> Result<(T, u64)> {
        self.load(kind, id)
            .await?
            .ok_or_else(|| DomainError::not_found(label, id).into())
    }

    /// Read-modify-write with the version as condition, retried when another writer won.
    /// `change` may add further operations to the same transaction.
    pub(crate) async fn update<T, R>(
        &self,
        kind: &str,
        label: &'static str,
        id: u64,
        mut change: impl FnMut(&mut T, &mut Vec<WriteOp>) -> Result<R>,
    ) -> Result<(T, R)>
    where
        T: Serialize + DeserializeOwned,
    {
        for _ in 0..UPDATE_ATTEMPTS {
            let (mut value, version): (T, u64) = self.fetch(kind, label, id).await?;
            let mut extra = Vec::new();
            let out = change(&mut value, &mut extra)?;
            let mut ops = vec![Self::put_over(kind, id, &value, version)];
            ops.extend(extra);
            match self.records.write(ops).await {
                Ok(()) => return Ok((value, out)),
                Err(StoreError::ConditionFailed { pk, sk }) if pk == kind && sk == sk_id(id) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Unavailable(format!("{label} {id} is changing too fast; try again").into()).into())
    }

    /// Every record `q` matches, following `next` to the end (page size 1000).
    pub(crate) async fn all_records(&self, mut q: Query) -> Result<Vec<Record>> {
        q.limit = 1000;
        let mut out = Vec::new();
        loop {
            let page = self.records().query(&q).await?;
            out.extend(page.items);
            match page.next {
                Some(n) => q.start_after = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Every item of `partition` that passes `keep`, in list order.
    pub(crate) async fn list_all<T: DeserializeOwned>(
        &self,
        index: Index,
        partition: &str,
        descending: bool,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>> {
        let mut page = PageRequest {
            limit: 1000,
            cursor: None,
        };
        let mut out = Vec::new();
        loop {
            let l = self.list(index, partition, descending, &page, &keep).await?;
            out.extend(l.items);
            match l.next {
                Some(n) => page.cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// Walk `partition` and keep items that pass `keep` until `page.limit` are found. At
    /// most ten backend pages are read per call; `next` then continues exactly after the
    /// last item looked at.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        index: Index,
        partition: &str,
        descending: bool,
        page: &PageRequest,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Listing<T>> {
        let limit = page.limit.clamp(1, 1000);
        let mut q = Query::partition(index, partition);
        q.descending = descending;
        q.start_after = page.cursor.clone();
        let mut items = Vec::new();
        for _ in 0..10 {
            q.limit = (limit - items.len()).clamp(25, 1000);
            let got = self.records.query(&q).await?;
            for r in &got.items {
                let v: T = Self::decode(r)?;
                if keep(&v) {
                    items.push(v);
                    if items.len() == limit {
                        let more = got.next.is_some() || !std::ptr::eq(r, got.items.last().expect("non-empty"));
                        return Ok(Listing {
                            items,
                            next: more.then(|| Cursor::after(r)),
                        });
                    }
                }
            }
            match got.next {
                None => return Ok(Listing { items, next: None }),
                next => q.start_after = next,
            }
        }
        let next = q.start_after.clone();
        Ok(Listing { items, next })
    }
}
