//! A shard's own map of the cache entries it has served: a hit is one lookup here, on the
//! shard, with no lock and no write to memory another shard writes. The entries themselves
//! are shared with the stage's [`Store`](super::store::Store); the map only holds references,
//! so an entry's memory is counted once however many shards serve it.

use super::store::{self, Entry, HashedMap};
use std::sync::Arc;

/// How often a shard drops expired entries from its map when nothing was evicted.
const EXPIRY_SWEEP_NS: u64 = 1_000_000_000;

#[derive(Default)]
pub struct LocalCache {
    entries: HashedMap<Arc<Entry>>,
    /// The key of the request being answered, reused so that building a key does not allocate.
    pub key: Vec<u8>,
    /// [`store::evictions`] when this map was last swept.
    seen_evictions: u64,
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

    pub fn insert(&mut self, hash: u64, entry: Arc<Entry>) {
        self.entries.insert(hash, entry);
    }

    /// Drops entries that no longer answer, so evicted ones give their memory back: at once
    /// when any store evicted since the last sweep, otherwise once a second for expired ones.
    /// Called from the shard's tick, never on a request.
    pub fn sweep(&mut self, now_ns: u64) {
        let evictions = store::evictions();
        let due = now_ns.saturating_sub(self.last_sweep_ns) >= EXPIRY_SWEEP_NS;
        if evictions == self.seen_evictions && !due {
            return;
        }
        self.seen_evictions = evictions;
        self.last_sweep_ns = now_ns;
        self.entries.retain(|_, entry| entry.is_live(now_ns));
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
        if self.key.capacity() > 64 * 1024 {
            self.key = Vec::new();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
