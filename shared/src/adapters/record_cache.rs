//! A read cache in front of a `RecordStore` that this process alone writes (the local
//! server's SQLite file, held under `serve`'s lock): reads of rarely-changing partitions.
//!
//! A new alert reads the Datto settings, noise control's settings, rules and windows, its
//! site mapping and the default ticket type before its one write; on SQLite each read is a
//! hop to a reader thread. Here `get`s and primary-key `query`s of the chosen partitions are
//! answered from memory after the first time, and every write that touches one of those
//! partitions drops that partition's reads once it has returned. A read that raced a write
//! is not kept (its partition's generation, renewed by each such write, must be the same
//! before and after the read), so the cache never holds anything older than the last write
//! that returned.
//! Records that expire are never kept, nor are secondary-index queries (the partition they
//! walk is not the items' `pk`). Not for a store other processes write too (DynamoDB behind
//! several Lambda instances): their writes would not drop it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ports::{CounterTake, Index, NumberedOps, Page, Query, Record, RecordStore, StoreError, WriteOp};

/// The partitions the local server caches: configuration (Datto, noise control,
/// BeyondTrust), Datto site mappings, ticket types and maintenance windows. Each changes
/// rarely and is read on every new alert.
pub const LOCAL_CACHED_PARTITIONS: [&str; 4] = ["config", "site-mapping", "ticket-type", "noise-window"];

/// At most this many reads are kept; past it the cache starts again empty.
const MAX_ENTRIES: usize = 20_000;

/// Which partitions a [`CachedRecordStore`] keeps reads of.
#[derive(Debug, Clone)]
pub enum CachedPartitions {
    /// These only.
    Only(Vec<String>),
    /// Every partition (the contract suite's strictest setting).
    All,
}

impl CachedPartitions {
    fn covers(&self, pk: &str) -> bool {
        match self {
            CachedPartitions::All => true,
            CachedPartitions::Only(list) => list.iter().any(|p| p == pk),
        }
    }
}

/// The cached reads of one partition and its generation: set afresh from
/// `Entries::next_generation` by every write that touches the partition.
#[derive(Default)]
struct Partition {
    generation: u64,
    gets: HashMap<String, Option<Record>>,
    queries: HashMap<String, Page>,
}

#[derive(Default)]
struct Entries {
    /// Bumped when the cache starts again empty (full, or a poisoned lock).
    epoch: u64,
    next_generation: u64,
    partitions: HashMap<String, Partition>,
    /// Reads kept, over all partitions.
    len: usize,
}

/// What a read saw of its partition before going to the store: the read may be kept only
/// if nothing changed the partition meanwhile.
#[derive(PartialEq, Eq)]
struct Stamp {
    epoch: u64,
    generation: u64,
}

impl Entries {
    fn stamp(&self, pk: &str) -> Stamp {
        Stamp {
            epoch: self.epoch,
            generation: self.partitions.get(pk).map_or(0, |p| p.generation),
        }
    }

    /// The partition to keep a read in, if `stamp` is still true of it.
    fn keep(&mut self, pk: &str, stamp: &Stamp) -> Option<&mut Partition> {
        if self.stamp(pk) != *stamp {
            return None;
        }
        if self.len >= MAX_ENTRIES {
            self.reset();
            return None;
        }
        self.len += 1;
        Some(self.partitions.entry(pk.to_string()).or_default())
    }

    /// Forget a partition's reads and give it a new generation.
    fn written(&mut self, pk: &str) {
        self.next_generation += 1;
        let p = self.partitions.entry(pk.to_string()).or_default();
        self.len -= p.gets.len() + p.queries.len();
        p.gets.clear();
        p.queries.clear();
        p.generation = self.next_generation;
    }

    fn reset(&mut self) {
        self.epoch += 1;
        self.partitions.clear();
        self.len = 0;
    }
}

/// Reads served from memory since the store was made, and reads passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheCounts {
    pub hits: u64,
    pub misses: u64,
}

/// A `RecordStore` answering reads of some partitions from memory (module comment).
pub struct CachedRecordStore {
    inner: Arc<dyn RecordStore>,
    partitions: CachedPartitions,
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CachedRecordStore {
    pub fn new(inner: Arc<dyn RecordStore>, partitions: CachedPartitions) -> Self {
        CachedRecordStore {
            inner,
            partitions,
            entries: Mutex::new(Entries::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The local server's cache: [`LOCAL_CACHED_PARTITIONS`].
    pub fn local(inner: Arc<dyn RecordStore>) -> Self {
        let list = LOCAL_CACHED_PARTITIONS.iter().map(|p| p.to_string()).collect();
        Self::new(inner, CachedPartitions::Only(list))
    }

    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves nothing half-done worth keeping.
        self.entries.lock().unwrap_or_else(|poisoned| {
            let mut e = poisoned.into_inner();
            e.reset();
            e
        })
    }

    /// Forget the reads of the partitions a write touched, whatever its result (a failed
    /// write may still have been applied).
    fn written<'a>(&self, pks: impl IntoIterator<Item = &'a str>) {
        let mut e = self.entries();
        for pk in pks {
            e.written(pk);
        }
    }

    /// The cached partitions among `ops`' keys, once each.
    fn touched(partitions: &CachedPartitions, ops: &[WriteOp]) -> Vec<String> {
        let mut pks: Vec<String> = Vec::new();
        for op in ops {
            let pk = op.key().0;
            if partitions.covers(pk) && !pks.iter().any(|p| p == pk) {
                pks.push(pk.to_string());
            }
        }
        pks
    }

    fn query_key(query: &Query) -> Option<String> {
        (query.index == Index::Primary).then(|| format!("{query:?}"))
    }
}

#[async_trait]
impl RecordStore for CachedRecordStore {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Record>, StoreError> {
        if !self.partitions.covers(pk) {
            return self.inner.get(pk, sk).await;
        }
        let stamp = {
            let e = self.entries();
            if let Some(found) = e.partitions.get(pk).and_then(|p| p.gets.get(sk)) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(found.clone());
            }
            e.stamp(pk)
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let found = self.inner.get(pk, sk).await?;
        if found.as_ref().is_none_or(|r| r.expires_at.is_none()) {
            if let Some(p) = self.entries().keep(pk, &stamp) {
                p.gets.insert(sk.to_string(), found.clone());
            }
        }
        Ok(found)
    }

    async fn query(&self, query: &Query) -> Result<Page, StoreError> {
        let pk = query.partition.as_str();
        let key = match Self::query_key(query) {
            Some(k) if self.partitions.covers(pk) => k,
            _ => return self.inner.query(query).await,
        };
        let stamp = {
            let e = self.entries();
            if let Some(page) = e.partitions.get(pk).and_then(|p| p.queries.get(&key)) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(page.clone());
            }
            e.stamp(pk)
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let page = self.inner.query(query).await?;
        if page.items.iter().all(|r| r.expires_at.is_none()) {
            if let Some(p) = self.entries().keep(pk, &stamp) {
                p.queries.insert(key, page.clone());
            }
        }
        Ok(page)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let touched = Self::touched(&self.partitions, &ops);
        let result = self.inner.write(ops).await;
        self.written(touched.iter().map(String::as_str));
        result
    }

    async fn write_numbered(&self, takes: &[CounterTake], build: NumberedOps) -> Result<Vec<u64>, StoreError> {
        // The operations are only known once `build` runs (maybe more than once).
        let touched = Arc::new(Mutex::new(Vec::<String>::new()));
        let noted = {
            let (touched, partitions) = (touched.clone(), self.partitions.clone());
            Arc::new(move |firsts: &[u64]| {
                let ops = build(firsts);
                let mut t = touched.lock().unwrap_or_else(|p| p.into_inner());
                for pk in Self::touched(&partitions, &ops) {
                    if !t.contains(&pk) {
                        t.push(pk);
                    }
                }
                ops
            })
        };
        let result = self.inner.write_numbered(takes, noted).await;
        let touched = std::mem::take(&mut *touched.lock().unwrap_or_else(|p| p.into_inner()));
        self.written(touched.iter().map(String::as_str));
        result
    }

    // Counters are not records (`get` cannot read them): nothing cached to forget.
    async fn increment(&self, pk: &str, sk: &str, by: u64) -> Result<u64, StoreError> {
        self.inner.increment(pk, sk, by).await
    }

    async fn increment_expiring(&self, pk: &str, sk: &str, by: u64, expires_at: i64) -> Result<u64, StoreError> {
        self.inner.increment_expiring(pk, sk, by, expires_at).await
    }
}
