//! A shard's state: everything mutable a request touches on one core (the table it serves,
//! upstream pool, cache map, metrics, access-log buffers, request ids, date, random numbers).
//! Single-threaded (`Rc`, `RefCell`, `Cell`; never borrowed across an await). Nothing here is
//! shared with another shard except the read-only table and the relaxed counters in
//! [`ShardStats`]. The shard's thread, accept loop and sweeper are `server::shard`.

use crate::cache::local::LocalCache;
use crate::config::Settings;
use crate::http1::date::DateCache;
use crate::observe::access_log::ShardLog;
use crate::observe::logging::RateLimited;
use crate::observe::metrics::recorder::Recorder;
use crate::runtime::clock::CoarseClock;
use crate::runtime::ids::RequestIds;
use crate::runtime::random::Xorshift;
use crate::runtime::stats::ShardStats;
use crate::table::LoadedTable;
use crate::upstream::pool::Pool;
use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

pub struct Shard {
    pub index: usize,
    pub settings: Arc<Settings>,
    pub table: RefCell<Option<Arc<LoadedTable>>>,
    pub upstreams: RefCell<Pool>,
    pub ids: RefCell<RequestIds>,
    pub date: RefCell<DateCache>,
    pub stats: Arc<ShardStats>,
    /// Set once the process is shutting down: finish the current request, then close.
    pub draining: Cell<bool>,
    /// The listeners' ports (HTTPS: 0 without one), for `X-Forwarded-Port`.
    pub listen_port: u16,
    pub tls_listen_port: u16,
    pub clock: CoarseClock,
    pub random: Xorshift,
    /// This shard's map of the cache entries it serves.
    pub cache: RefCell<LocalCache>,
    /// This shard's per-method metrics, exported to the registry once a second.
    pub metrics: RefCell<Recorder>,
    /// This shard's access log lines, handed to the writer every tick.
    pub access_log: RefCell<ShardLog>,
    /// `$context.requestTime` of the current second: `(unix second, text)`.
    request_time: Cell<(i64, [u8; 26])>,
    /// Lines saying why an integration failed (502, 504): at most one a second.
    pub integration_errors: RateLimited,
    /// Failed TLS handshakes, logged at most so often.
    pub tls_errors: RateLimited,
}

/// What a shard's state is made from.
pub struct ShardParts {
    pub index: usize,
    pub settings: Arc<Settings>,
    pub table: Option<Arc<LoadedTable>>,
    pub stats: Arc<ShardStats>,
    pub listen_port: u16,
    pub tls_listen_port: u16,
    pub metrics: Recorder,
    pub access_log: ShardLog,
}

impl Shard {
    pub fn new(parts: ShardParts) -> Shard {
        // Distinct per process start and shard: request ids and canary rolls never repeat
        // across restarts or shards.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ ((parts.index as u64) << 56)
            ^ (u64::from(std::process::id()) << 32);
        parts.stats.memory.set_limit(parts.settings.shard_memory_limit);
        if let Some(t) = &parts.table {
            parts.stats.table_version.store(t.get().version.to_native(), Ordering::Release);
        }
        Shard {
            index: parts.index,
            upstreams: RefCell::new(Pool::new(parts.settings.max_idle_per_upstream)),
            settings: parts.settings,
            table: RefCell::new(parts.table),
            ids: RefCell::new(RequestIds::new(seed)),
            date: RefCell::new(DateCache::default()),
            stats: parts.stats,
            draining: Cell::new(false),
            listen_port: parts.listen_port,
            tls_listen_port: parts.tls_listen_port,
            clock: CoarseClock::default(),
            random: Xorshift::new(seed),
            cache: RefCell::default(),
            metrics: RefCell::new(parts.metrics),
            access_log: RefCell::new(parts.access_log),
            request_time: Cell::new((i64::MIN, [0; 26])),
            integration_errors: RateLimited::default(),
            tls_errors: RateLimited::default(),
        }
    }

    /// `$context.requestTime` for a Unix second (formatted once per second).
    pub fn request_time(&self, unix_s: i64) -> [u8; 26] {
        let (second, text) = self.request_time.get();
        if second == unix_s {
            return text;
        }
        let text = crate::observe::access_log::format::request_time(unix_s);
        self.request_time.set((unix_s, text));
        text
    }

    /// The table a request runs on from start to finish, even if a newer one arrives meanwhile.
    pub fn current_table(&self) -> Option<Arc<LoadedTable>> {
        self.table.borrow().clone()
    }

    /// Takes the newest table waiting, if any. Requests in flight keep the `Arc` of the table
    /// they started on, so the swap is one pointer store and the old table is freed when its
    /// last request ends.
    pub fn swap_table(&self, updates: &crossbeam_channel::Receiver<Arc<LoadedTable>>) {
        let Some(newest) = updates.try_iter().last() else { return };
        let started = Instant::now();
        let version = newest.get().version.to_native();
        let old = self.table.borrow_mut().replace(newest);
        drop(old);
        self.stats.table_version.store(version, Ordering::Release);
        let took = started.elapsed().as_nanos() as u64;
        self.stats.table_swap_max_ns.fetch_max(took, Ordering::Relaxed);
    }

    /// The shard's own upkeep on every sweeper tick: clocks, the `Date` header, cache entries
    /// that stopped answering, and the access log's hand-over.
    pub fn tick(&self) {
        self.clock.advance();
        self.date.borrow_mut().refresh();
        if let Some(table) = self.current_table() {
            let stores = table.caches.iter().flatten().map(|s| &**s);
            self.cache.borrow_mut().tick(stores, self.index, crate::limits::throttle::now_ns());
        }
        self.access_log.borrow_mut().flush();
    }

    /// Hands over what the shard recorded (metrics, log lines) before it stops.
    pub fn flush(&self) {
        self.access_log.borrow_mut().flush();
        self.metrics.borrow_mut().export();
    }
}
