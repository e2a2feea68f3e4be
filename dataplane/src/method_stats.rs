//! Per-method counters (AWS's per-method CloudWatch dimensions): one slot per shard, each
//! written by its own shard only (relaxed atomics on its own cache line), summed by the admin
//! thread. They belong to a route's stable id, so a table swap keeps them when the route stays.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One shard's counts for one method.
#[derive(Default)]
#[repr(align(128))]
pub struct Slot {
    /// Requests answered from the cache (`CacheHitCount`), waiters on another request's fill
    /// included: the backend did not see them.
    pub cache_hits: AtomicU64,
    /// Requests of a cached method that went to the backend (`CacheMissCount`).
    pub cache_misses: AtomicU64,
}

/// One method's counters on every shard.
pub struct MethodStats {
    shards: Box<[Slot]>,
}

impl MethodStats {
    pub fn new(shards: usize) -> MethodStats {
        MethodStats { shards: (0..shards.max(1)).map(|_| Slot::default()).collect() }
    }

    /// The calling shard's slot (the last one for a shard index past the end, which only the
    /// tests' single-shard tables see).
    pub fn slot(&self, shard: usize) -> &Slot {
        &self.shards[shard.min(self.shards.len() - 1)]
    }

    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Sums over shards.
    pub fn total(&self, read: impl Fn(&Slot) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| read(s).load(Relaxed)).sum()
    }
}
