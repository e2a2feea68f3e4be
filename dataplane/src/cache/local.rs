//! A shard's own map of the cache entries it has served: a hit is one lookup here, on the
//! shard, with no lock and no write to memory another shard writes. The entries themselves
//! are shared with the stage's [`Store`](super::store::Store); the map only holds references,
//! so an entry's memory is counted once however many shards serve it.

use super::store::{Entry, HashedMap, Store};
use std::sync::Arc;

/// How often a shard drops expired entries from its map.
const EXPIRY_SWEEP_NS: u64 = 1_000_000_000;

#[derive(Default)]
pub struct LocalCache {
    entries: HashedMap<Arc<Entry>>,
    /// The key of the request being answered, reused so that building a key does not allocate.
    pub key: Vec<u8>,
    last_sweep_ns: u64,
}

impl LocalCache {
    /// The entry that answers the key in [`LocalCache::key`] (hashed to `hash`) at `now`.
    pub fn find(&self, hash: u64, now_ns: u64) -> Option<&Entry> {
        let entry = self.entries.get(&hash)?;
        if !entry.answers(&self.key, now_ns) {
            return None;
        }
        entry.touch();
        Some(entry)
    }

    /// Keeps `entry` for later hits on this shard (unless it was evicted meanwhile).
    pub fn insert(&mut self, hash: u64, entry: Arc<Entry>, shard: usize) {
        if entry.hold(shard) {
            self.entries.insert(hash, entry);
        }
    }

    /// The store evicted the entry under `hash`: drop it, so its memory comes back. A newer
    /// entry under the same hash stays.
    pub fn forget(&mut self, hash: u64) {
        if self.entries.get(&hash).is_some_and(|e| e.is_evicted()) {
            self.entries.remove(&hash);
        }
    }

    /// From the shard's tick, never on a request: takes the evictions the stores kept for this
    /// shard, and once a second drops expired entries (and any evicted one a shard past the
    /// tracked ones could not be told of).
    pub fn tick<'s>(&mut self, stores: impl Iterator<Item = &'s Store>, shard: usize, now_ns: u64) {
        for store in stores {
            store.drain_evicted(shard, &mut |hash| self.forget(hash));
        }
        if now_ns.saturating_sub(self.last_sweep_ns) < EXPIRY_SWEEP_NS {
            return;
        }
        self.last_sweep_ns = now_ns;
        self.entries.retain(|_, entry| entry.is_live(now_ns));
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
        if self.key.capacity() > 64 * 1024 {
            self.key = Vec::new();
        }
    }
}
