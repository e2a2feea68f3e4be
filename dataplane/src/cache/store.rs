//! One stage's cache on one data plane: every entry of the stage, shared by all shards, with
//! the byte budget, TTLs, CLOCK eviction and the fills in progress.
//!
//! Shards do not come here for a hit: each keeps its own map of the entries it has served
//! ([`super::local`]), so a hit takes no lock. A shard takes this store's mutex only when its
//! own map misses; then the store either has the entry (another shard fetched it), has a fill
//! for it in progress (the request waits for that one instead of calling the backend too), or
//! hands out a [`FillTicket`]: the caller fetches, and completing the ticket stores the entry
//! and releases the waiters. So a key costs the backend one fetch per TTL, whatever the shard
//! count.
//!
//! Memory: every entry charges its bytes to the store's budget from creation until its last
//! reference drops. An entry is stored only once the budget has room for it, evicting others
//! first, so entries alive anywhere never exceed the capacity. An evicted entry may still be
//! in a shard's map: each entry records which shards hold it, and its eviction tells them (at
//! once for the evicting shard, otherwise the next time that shard takes this lock or ticks),
//! so evicted memory comes back within a tick even under key churn. Pure apart from the
//! mutex: `now` is always an argument.

pub use crate::runtime::hashed::HashedMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// What an entry costs besides its data: the entry and its `Arc`, the store's map slot and
/// clock record, and a slot in each shard's map, with the maps' spare capacity.
pub const ENTRY_OVERHEAD: u64 = 384;

/// The memory an allocation of `len` bytes takes: rounded up to a quarter of its power of two,
/// the size classes of mimalloc (the data plane's allocator) above 1 KiB. Perf measures the
/// charge against the process's RSS growth (perf/cache.py).
fn allocated(len: usize) -> u64 {
    let len = len.max(1) as u64;
    if len <= 1024 {
        return len.next_multiple_of(16);
    }
    let quarter = (1u64 << (63 - len.leading_zeros())) / 4;
    len.next_multiple_of(quarter)
}

/// Shards past this index are not told of evictions; their maps drop evicted entries at
/// their once-a-second sweep.
const TRACKED_SHARDS: usize = 64;

/// Called with the hash of each entry the calling shard holds that was evicted.
pub type Forget<'f> = &'f mut dyn FnMut(u64);

/// A cached response, immutable once made.
pub struct Entry {
    pub status: u16,
    /// Headers, body and key in one allocation (one allocation less per entry is ~10% of a
    /// small entry's memory).
    data: Box<[u8]>,
    headers_end: u32,
    body_end: u32,
    pub expires_ns: u64,
    evicted: AtomicBool,
    /// Set by a hit, cleared by the CLOCK hand: a recently used entry gets a second chance.
    referenced: AtomicBool,
    /// Bit `s`: shard `s` holds this entry in its map.
    held_by: AtomicU64,
    charge: u64,
    budget: Arc<AtomicU64>,
}

impl Entry {
    /// True when this entry answers `key` at `now`.
    pub fn answers(&self, key: &[u8], now_ns: u64) -> bool {
        self.is_live(now_ns) && self.key() == key
    }

    /// The response's own headers as they are written to the client (`name: value\r\n` each):
    /// everything but `date`, `content-length`, `connection` and the request id.
    pub fn headers(&self) -> &[u8] {
        &self.data[..self.headers_end as usize]
    }

    pub fn body(&self) -> &[u8] {
        &self.data[self.headers_end as usize..self.body_end as usize]
    }

    fn key(&self) -> &[u8] {
        &self.data[self.body_end as usize..]
    }

    /// Neither expired nor evicted.
    pub fn is_live(&self, now_ns: u64) -> bool {
        now_ns < self.expires_ns && !self.evicted.load(Relaxed)
    }

    /// Marks the entry used. A plain load first: most hits find it already set, and then do
    /// not write the cache line other shards read.
    pub fn touch(&self) {
        if !self.referenced.load(Relaxed) {
            self.referenced.store(true, Relaxed);
        }
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Relaxed)
    }

    /// Records that `shard` holds the entry; false if it was evicted meanwhile (then the shard
    /// must not keep it). SeqCst here and in [`Entry::holders_after_evicting`]: of a
    /// concurrent hold and eviction, at least one sees the other.
    pub fn hold(&self, shard: usize) -> bool {
        if shard < TRACKED_SHARDS {
            self.held_by.fetch_or(1 << shard, SeqCst);
        }
        !self.evicted.load(SeqCst)
    }

    fn holders_after_evicting(&self) -> u64 {
        self.evicted.store(true, SeqCst);
        self.held_by.load(SeqCst)
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.charge, Relaxed);
    }
}

/// A response a fill fetched, to be stored.
pub struct Response {
    pub status: u16,
    pub headers: Vec<u8>,
    pub body: Vec<u8>,
}

/// A fill in progress: the request that fetches sets the result; requests for the same key
/// wait for it. `None` when the response could not be cached (an error, too large).
#[derive(Default)]
pub struct Fill {
    result: OnceLock<Option<Arc<Entry>>>,
}

impl Fill {
    /// The fill's outcome, once it has one.
    pub fn result(&self) -> Option<&Option<Arc<Entry>>> {
        self.result.get()
    }
}

pub enum Lookup {
    Hit(Arc<Entry>),
    /// Another request is fetching this key.
    Wait(Arc<Fill>),
    /// Fetch it and complete the ticket.
    Fetch(FillTicket),
}

/// The right and duty to fill one key. Dropping it without completing (the fetch failed or
/// was cancelled) releases the waiters with no entry, so nobody waits for a fill that ended.
pub struct FillTicket {
    store: Arc<Store>,
    hash: u64,
    fill: Arc<Fill>,
    shard: usize,
    completed: bool,
}

impl FillTicket {
    /// Stores the response (if any, and if the budget can make room) and releases the waiters.
    pub fn complete(
        mut self,
        key: &[u8],
        response: Option<Response>,
        ttl_ns: u64,
        now_ns: u64,
        forget: Forget<'_>,
    ) -> Option<Arc<Entry>> {
        self.completed = true;
        let mut inner = self.store.lock();
        if inner.fills.get(&self.hash).is_some_and(|f| Arc::ptr_eq(f, &self.fill)) {
            inner.fills.remove(&self.hash);
        }
        inner.drain(self.shard, forget);
        let put = Put { hash: self.hash, key, now_ns, ttl_ns, shard: self.shard };
        let entry = response.and_then(|r| self.store.insert(&mut inner, put, r, forget));
        drop(inner);
        let _ = self.fill.result.set(entry.clone());
        entry
    }
}

impl Drop for FillTicket {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        let mut inner = self.store.lock();
        if inner.fills.get(&self.hash).is_some_and(|f| Arc::ptr_eq(f, &self.fill)) {
            inner.fills.remove(&self.hash);
        }
        drop(inner);
        let _ = self.fill.result.set(None);
    }
}

/// Where and for how long a fetched response goes.
struct Put<'k> {
    hash: u64,
    key: &'k [u8],
    now_ns: u64,
    ttl_ns: u64,
    /// The shard storing it.
    shard: usize,
}

struct Slot {
    entry: Arc<Entry>,
    /// Which clock record is this entry's (older records for the same hash are stale).
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashedMap<Slot>,
    /// CLOCK order as a queue: `(hash, seq)`, oldest first; a referenced entry is moved to the
    /// back once instead of being evicted.
    clock: VecDeque<(u64, u64)>,
    next_seq: u64,
    fills: HashedMap<Arc<Fill>>,
    /// A newer table replaced this store; requests still on the old table store nothing.
    retired: bool,
    /// Per shard: hashes of entries it holds that were evicted, for it to drop.
    evicted: Vec<Vec<u64>>,
}

impl Inner {
    /// Evicts the entry (stored under `hash`) and tells the shards that hold it: `me` at once
    /// through `forget`, the others through their lists.
    fn evict(&mut self, hash: u64, entry: &Entry, me: Option<usize>, forget: Forget<'_>) {
        let mut holders = entry.holders_after_evicting();
        while holders != 0 {
            let shard = holders.trailing_zeros() as usize;
            holders &= holders - 1;
            if Some(shard) == me {
                forget(hash);
            } else if let Some(list) = self.evicted.get_mut(shard) {
                list.push(hash);
            }
        }
    }

    /// Hands `shard` the evictions waiting for it.
    fn drain(&mut self, shard: usize, forget: Forget<'_>) {
        if let Some(list) = self.evicted.get_mut(shard) {
            for hash in list.drain(..) {
                forget(hash);
            }
        }
    }
}

pub struct Store {
    /// [`proto::table::StageCache::id`]: a table with the same id keeps this store.
    pub id: u64,
    pub capacity: u64,
    /// Bytes charged by entries alive anywhere (stored, or still held by a shard).
    budget: Arc<AtomicU64>,
    inner: Mutex<Inner>,
}

impl Store {
    /// A store for a data plane of `shards` shards.
    pub fn new(id: u64, capacity: u64, shards: usize) -> Store {
        let inner = Inner { evicted: vec![Vec::new(); shards.min(TRACKED_SHARDS)], ..Inner::default() };
        Store { id, capacity, budget: Arc::default(), inner: Mutex::new(inner) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing the cache, so a poisoned lock is used as it is.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes charged by live entries.
    pub fn used_bytes(&self) -> u64 {
        self.budget.load(Relaxed)
    }

    /// Entries stored.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shard `shard`'s map missed `key` (hashed to `hash`). `refresh`: the client asked for a
    /// fresh response (`Cache-Control: max-age=0`), so a stored entry does not answer.
    /// `forget` hears of the shard's evicted entries meanwhile.
    pub fn lookup(
        self: &Arc<Self>,
        hash: u64,
        key: &[u8],
        now_ns: u64,
        refresh: bool,
        shard: usize,
        forget: Forget<'_>,
    ) -> Lookup {
        let mut inner = self.lock();
        inner.drain(shard, forget);
        if let Some(slot) = inner.entries.get(&hash) {
            if !refresh && slot.entry.answers(key, now_ns) {
                slot.entry.touch();
                return Lookup::Hit(slot.entry.clone());
            }
        }
        if let Some(fill) = inner.fills.get(&hash) {
            return Lookup::Wait(fill.clone());
        }
        let fill = Arc::new(Fill::default());
        inner.fills.insert(hash, fill.clone());
        Lookup::Fetch(FillTicket { store: self.clone(), hash, fill, shard, completed: false })
    }

    /// Hands `shard` the evictions waiting for it (from its tick).
    pub fn drain_evicted(&self, shard: usize, forget: Forget<'_>) {
        self.lock().drain(shard, forget);
    }

    fn insert(
        &self,
        inner: &mut Inner,
        put: Put<'_>,
        response: Response,
        forget: Forget<'_>,
    ) -> Option<Arc<Entry>> {
        let Put { hash, key, now_ns, ttl_ns, shard } = put;
        let charge = allocated(key.len() + response.headers.len() + response.body.len()) + ENTRY_OVERHEAD;
        if charge > self.capacity || inner.retired {
            return None;
        }
        if let Some(old) = inner.entries.remove(&hash) {
            inner.evict(hash, &old.entry, Some(shard), forget);
        }
        if !self.make_room(inner, charge, now_ns, shard, forget) {
            return None;
        }
        self.budget.fetch_add(charge, Relaxed);
        let mut data = Vec::with_capacity(response.headers.len() + response.body.len() + key.len());
        data.extend_from_slice(&response.headers);
        data.extend_from_slice(&response.body);
        let (headers_end, body_end) = (response.headers.len() as u32, data.len() as u32);
        data.extend_from_slice(key);
        let entry = Arc::new(Entry {
            status: response.status,
            data: data.into_boxed_slice(),
            headers_end,
            body_end,
            expires_ns: now_ns + ttl_ns,
            evicted: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            held_by: AtomicU64::new(0),
            charge,
            budget: self.budget.clone(),
        });
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.insert(hash, Slot { entry: entry.clone(), seq });
        inner.clock.push_back((hash, seq));
        // Records of replaced entries are skipped when reached; keep them from piling up.
        if inner.clock.len() > 2 * inner.entries.len() + 64 {
            let Inner { clock, entries, .. } = inner;
            clock.retain(|(h, s)| entries.get(h).is_some_and(|slot| slot.seq == *s));
        }
        Some(entry)
    }

    /// Evicts until `charge` more bytes fit: expired entries and those not used since the hand
    /// last passed go first; a used one is cleared and moved back once. False when even an
    /// empty store has no room (evicted entries still held elsewhere use the budget): then the
    /// response is not stored rather than exceed the capacity.
    fn make_room(
        &self,
        inner: &mut Inner,
        charge: u64,
        now_ns: u64,
        shard: usize,
        forget: Forget<'_>,
    ) -> bool {
        // Each record is moved back at most once per pass, so two passes end the loop.
        let mut budget = 2 * inner.clock.len() + 1;
        while self.budget.load(Relaxed) + charge > self.capacity {
            if budget == 0 {
                return false;
            }
            budget -= 1;
            let Some((hash, seq)) = inner.clock.pop_front() else { return false };
            let Some(slot) = inner.entries.get(&hash).filter(|slot| slot.seq == seq) else { continue };
            let entry = &slot.entry;
            if entry.is_live(now_ns) && entry.referenced.swap(false, Relaxed) {
                inner.clock.push_back((hash, seq));
                continue;
            }
            if let Some(slot) = inner.entries.remove(&hash) {
                inner.evict(hash, &slot.entry, Some(shard), forget);
            }
        }
        true
    }

    /// Drops the entries of methods `keep` rejects (given each entry's route cache id): their
    /// settings changed or the method is gone.
    pub fn retain_routes(&self, keep: impl Fn(u64) -> bool) {
        let mut inner = self.lock();
        let dropped: Vec<u64> = inner
            .entries
            .iter()
            .filter(|(_, slot)| !keep(super::key::route_cache_id(slot.entry.key())))
            .map(|(hash, _)| *hash)
            .collect();
        for hash in dropped {
            if let Some(slot) = inner.entries.remove(&hash) {
                inner.evict(hash, &slot.entry, None, &mut |_| {});
            }
        }
    }

    /// Evicts everything: the store is being replaced (flush, resize, stage gone).
    pub fn retire(&self) {
        let mut inner = self.lock();
        inner.retired = true;
        let entries = std::mem::take(&mut inner.entries);
        for (hash, slot) in entries {
            inner.evict(hash, &slot.entry, None, &mut |_| {});
        }
        inner.clock.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body_len: usize) -> Response {
        Response {
            status: 200,
            headers: b"content-type: text/plain\r\n".to_vec(),
            body: vec![b'x'; body_len],
        }
    }

    fn key(n: u64) -> Vec<u8> {
        let mut k = vec![0u8; 17];
        k.extend_from_slice(&n.to_le_bytes());
        k
    }

    /// Fetches and stores `n` as the only requester would.
    fn fill(store: &Arc<Store>, n: u64, body_len: usize, now: u64) -> Option<Arc<Entry>> {
        match store.lookup(n, &key(n), now, false, 0, &mut |_| {}) {
            Lookup::Fetch(ticket) => {
                ticket.complete(&key(n), Some(response(body_len)), 1_000, now, &mut |_| {})
            }
            Lookup::Hit(e) => Some(e),
            Lookup::Wait(_) => panic!("nobody else is filling"),
        }
    }

    #[test]
    fn charges_follow_the_allocators_size_classes() {
        assert_eq!(allocated(100), 112);
        assert_eq!(allocated(1024), 1024);
        assert_eq!(allocated(1025), 1280);
        assert_eq!(allocated(1281), 1536);
        assert_eq!(allocated(1 << 20), 1 << 20);
        assert_eq!(allocated((1 << 20) + 1), (1 << 20) + (1 << 18));
    }

    #[test]
    fn a_stored_entry_answers_until_it_expires() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        let entry = fill(&store, 7, 10, 100).unwrap();
        assert!(matches!(store.lookup(7, &key(7), 1_099, false, 0, &mut |_| {}), Lookup::Hit(_)));
        assert!(entry.answers(&key(7), 1_099));
        // The TTL was 1,000 ns from 100.
        assert!(!entry.answers(&key(7), 1_100));
        assert!(matches!(store.lookup(7, &key(7), 1_100, false, 0, &mut |_| {}), Lookup::Fetch(_)));
        // A different key with the same hash is not answered by this entry.
        assert!(!entry.answers(&key(8), 500));
    }

    #[test]
    fn concurrent_misses_wait_for_one_fill() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        let Lookup::Fetch(ticket) = store.lookup(1, &key(1), 0, false, 0, &mut |_| {}) else {
            panic!("first one fetches")
        };
        let Lookup::Wait(fill) = store.lookup(1, &key(1), 0, false, 0, &mut |_| {}) else {
            panic!("second one waits")
        };
        assert!(fill.result().is_none());
        ticket.complete(&key(1), Some(response(5)), 1_000, 0, &mut |_| {});
        let Some(Some(entry)) = fill.result() else { panic!("the waiter gets the entry") };
        assert_eq!(entry.body(), b"xxxxx");
        assert!(matches!(store.lookup(1, &key(1), 1, false, 0, &mut |_| {}), Lookup::Hit(_)));
    }

    #[test]
    fn an_abandoned_fill_releases_its_waiters_empty() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        let Lookup::Fetch(ticket) = store.lookup(1, &key(1), 0, false, 0, &mut |_| {}) else { panic!() };
        let Lookup::Wait(fill) = store.lookup(1, &key(1), 0, false, 0, &mut |_| {}) else { panic!() };
        drop(ticket);
        assert!(matches!(fill.result(), Some(None)));
        // The next request fetches again.
        assert!(matches!(store.lookup(1, &key(1), 0, false, 0, &mut |_| {}), Lookup::Fetch(_)));
    }

    #[test]
    fn refresh_fetches_even_when_an_entry_answers() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        let old = fill(&store, 3, 1, 0).unwrap();
        let Lookup::Fetch(ticket) = store.lookup(3, &key(3), 1, true, 0, &mut |_| {}) else {
            panic!("refresh fetches")
        };
        let new = ticket.complete(&key(3), Some(response(2)), 1_000, 1, &mut |_| {}).unwrap();
        assert!(!old.answers(&key(3), 2), "the replaced entry is evicted");
        assert!(new.answers(&key(3), 2));
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_budget_is_never_exceeded_under_churn() {
        let capacity = 64 * 1024;
        let store = Arc::new(Store::new(1, capacity, 2));
        for n in 0..10_000u64 {
            fill(&store, n, 1000, 0);
            assert!(store.used_bytes() <= capacity, "after {n}: {}", store.used_bytes());
        }
        // About capacity / charge entries stay.
        let charge = allocated(1000 + 25 + 26) + ENTRY_OVERHEAD;
        assert_eq!(store.len() as u64, capacity / charge);
    }

    #[test]
    fn recently_used_entries_survive_eviction() {
        let charge = allocated(1000 + 25 + 26) + ENTRY_OVERHEAD;
        let store = Arc::new(Store::new(1, 10 * charge, 2));
        let hot = fill(&store, 0, 1000, 0).unwrap();
        for n in 1..100u64 {
            hot.touch();
            fill(&store, n, 1000, 0);
        }
        assert!(hot.answers(&key(0), 1), "a hot entry keeps its place");
        assert!(
            matches!(store.lookup(1, &key(1), 1, false, 0, &mut |_| {}), Lookup::Fetch(_)),
            "a cold one is gone"
        );
    }

    #[test]
    fn entries_held_by_shards_count_until_dropped() {
        let charge = allocated(1000 + 25 + 26) + ENTRY_OVERHEAD;
        let store = Arc::new(Store::new(1, 2 * charge, 2));
        let held_0 = fill(&store, 0, 1000, 0).unwrap();
        let held_1 = fill(&store, 1, 1000, 0).unwrap();
        // Both are evicted to make room, but shards still hold them: storing would exceed the
        // capacity, so the new response is not stored.
        assert!(fill(&store, 2, 1000, 0).is_none());
        assert!(!held_0.is_live(0) && !held_1.is_live(0));
        assert!(store.used_bytes() <= 2 * charge);
        drop(held_0);
        assert!(fill(&store, 3, 1000, 0).is_some());
        assert!(store.used_bytes() <= 2 * charge);
    }

    #[test]
    fn shards_holding_an_evicted_entry_are_told() {
        let charge = allocated(1000 + 25 + 26) + ENTRY_OVERHEAD;
        let store = Arc::new(Store::new(1, charge, 2));
        let held = fill(&store, 0, 1000, 0).unwrap();
        assert!(held.hold(0) && held.hold(1));
        // Shard 1 stores another entry, which evicts the first: shard 1 hears at once,
        // shard 0 when it next takes the lock.
        let mut told_1 = Vec::new();
        let Lookup::Fetch(t) = store.lookup(1, &key(1), 0, false, 1, &mut |h| told_1.push(h)) else {
            panic!()
        };
        drop(held);
        let stored = t.complete(&key(1), Some(response(1000)), 1_000, 0, &mut |h| told_1.push(h));
        assert!(stored.is_some());
        assert_eq!(told_1, vec![0]);
        let mut told_0 = Vec::new();
        store.drain_evicted(0, &mut |h| told_0.push(h));
        assert_eq!(told_0, vec![0]);
        store.drain_evicted(0, &mut |h| told_0.push(h));
        assert_eq!(told_0, vec![0], "once");
    }

    #[test]
    fn a_retired_store_evicts_everything_and_stores_nothing() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        let held = fill(&store, 0, 10, 0).unwrap();
        store.retire();
        assert!(!held.is_live(0));
        assert!(fill(&store, 1, 10, 0).is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn too_large_and_uncacheable_responses_are_not_stored() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        assert!(fill(&store, 1, 2 << 20, 0).is_none());
        let Lookup::Fetch(ticket) = store.lookup(2, &key(2), 0, false, 0, &mut |_| {}) else { panic!() };
        assert!(ticket.complete(&key(2), None, 1_000, 0, &mut |_| {}).is_none());
        assert!(store.is_empty());
    }

    #[test]
    fn retain_routes_drops_the_methods_left_out() {
        let store = Arc::new(Store::new(1, 1 << 20, 2));
        let mut a = vec![0u8; 8];
        a.extend_from_slice(&11u64.to_le_bytes());
        a.push(0);
        let mut b = vec![0u8; 8];
        b.extend_from_slice(&22u64.to_le_bytes());
        b.push(0);
        for (hash, k) in [(1u64, &a), (2, &b)] {
            let Lookup::Fetch(t) = store.lookup(hash, k, 0, false, 0, &mut |_| {}) else { panic!() };
            t.complete(k, Some(response(1)), 1_000, 0, &mut |_| {});
        }
        store.retain_routes(|id| id == 11);
        assert!(matches!(store.lookup(1, &a, 1, false, 0, &mut |_| {}), Lookup::Hit(_)));
        assert!(matches!(store.lookup(2, &b, 1, false, 0, &mut |_| {}), Lookup::Fetch(_)));
    }
}
