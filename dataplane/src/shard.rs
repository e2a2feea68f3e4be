//! A shard: one thread pinned to one core, with its own io_uring ring (or epoll), its own
//! `SO_REUSEPORT` listener and everything mutable a request touches (upstream pools, request
//! ids, date cache). Nothing here is shared with another shard except the read-only table and
//! the relaxed counters in [`ShardStats`].

use crate::access_log::{LogStats, ShardLog, ToWriter};
use crate::cache::local::LocalCache;
use crate::http1::date::DateCache;
use crate::loaded_table::LoadedTable;
use crate::metrics::recorder::{Export, Recorder};
use crate::request_id::RequestIds;
use crate::settings::Settings;
use crate::stats::ShardStats;
use crate::upstream::Pool;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which io driver shards run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IoDriver {
    /// io_uring with COOP_TASKRUN, SINGLE_ISSUER and DEFER_TASKRUN where the kernel has them,
    /// then plain io_uring, then epoll.
    Auto,
    /// io_uring only (tuned flags when available); fail if the kernel refuses io_uring.
    Uring,
    /// epoll (monoio's legacy driver).
    Epoll,
}

/// Per-shard state shared by the shard's tasks (single-threaded: `Rc` and `RefCell`, never
/// borrowed across an await).
pub struct Shard {
    pub index: usize,
    pub settings: Arc<Settings>,
    pub table: RefCell<Option<Arc<LoadedTable>>>,
    pub upstreams: RefCell<Pool>,
    pub ids: RefCell<RequestIds>,
    pub date: RefCell<DateCache>,
    pub stats: Arc<ShardStats>,
    /// Open connections, so a drain can close the idle ones at once.
    pub conns: RefCell<slab::Slab<ConnEntry>>,
    /// Set once the process is shutting down: finish the current request, then close.
    pub draining: Cell<bool>,
    /// The listener's port, for `X-Forwarded-Port`.
    pub listen_port: u16,
    pub clock: CoarseClock,
    /// xorshift state for [`Shard::random`].
    rng: Cell<u64>,
    /// This shard's map of the cache entries it serves.
    pub cache: RefCell<LocalCache>,
    /// This shard's per-method metrics, exported to the registry once a second.
    pub metrics: RefCell<Recorder>,
    /// This shard's access log lines, handed to the writer every tick.
    pub access_log: RefCell<ShardLog>,
    /// `$context.requestTime` of the current second: `(unix second, text)`.
    pub request_time: Cell<(i64, [u8; 26])>,
}

pub struct ConnEntry {
    pub fd: RawFd,
    pub state: Rc<ConnState>,
}

/// What the shard's sweeper needs to know about a connection, set by the connection itself.
#[derive(Default)]
pub struct ConnState {
    /// True while the connection waits for the first byte of a next request.
    pub idle: Cell<bool>,
    /// Coarse time ([`CoarseClock::now_ms`]) after which the connection is closed; 0 while the
    /// request is in the pipeline (integrations bound themselves).
    pub deadline_ms: Cell<u64>,
}

/// Milliseconds since the shard started, advanced by the sweeper every [`TICK`]. Reading it
/// costs no system call, so the request path never asks the kernel for the time.
pub struct CoarseClock {
    start: Instant,
    now_ms: Cell<u64>,
}

impl CoarseClock {
    fn new() -> Self {
        // Start at 1 so that a deadline is never 0, which means "none".
        CoarseClock { start: Instant::now(), now_ms: Cell::new(1) }
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    /// The deadline `after` from now.
    pub fn deadline(&self, after: Duration) -> u64 {
        self.now_ms() + after.as_millis() as u64
    }

    fn advance(&self) {
        self.now_ms.set(1 + self.start.elapsed().as_millis() as u64);
    }
}

/// How often the sweeper runs: the precision of every client timeout.
pub const TICK: Duration = Duration::from_millis(100);
/// Ticks between metric exports (one second).
const METRICS_EXPORT_TICKS: u64 = 10;

impl Shard {
    /// 64 random bits (xorshift64*: no system call), for canary rolls and trace ids.
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A uniform number below 1,000,000, for canary shares.
    pub fn roll_per_million(&self) -> u32 {
        ((self.random() >> 32) % 1_000_000) as u32
    }

    /// `$context.requestTime` for a Unix second (formatted once per second).
    pub fn request_time(&self, unix_s: i64) -> [u8; 26] {
        let (second, text) = self.request_time.get();
        if second == unix_s {
            return text;
        }
        let text = crate::access_log::format::request_time(unix_s);
        self.request_time.set((unix_s, text));
        text
    }

    /// The table a request runs on from start to finish, even if a newer one arrives meanwhile.
    pub fn current_table(&self) -> Option<Arc<LoadedTable>> {
        self.table.borrow().clone()
    }
}

/// What a shard thread is given.
pub struct ShardSpec {
    pub index: usize,
    pub cpu: Option<usize>,
    pub driver: IoDriver,
    pub listener: std::net::TcpListener,
    pub settings: Arc<Settings>,
    pub table: Option<Arc<LoadedTable>>,
    pub stats: Arc<ShardStats>,
    /// Set by the signal thread when the process must stop.
    pub stopping: Arc<AtomicBool>,
    /// New tables from the control-plane link.
    pub table_updates: crossbeam_channel::Receiver<Arc<LoadedTable>>,
    /// Where the shard's metrics go once a second.
    pub metrics: crossbeam_channel::Sender<Vec<Export>>,
    /// Where the shard's access log lines go every tick.
    pub access_log: (crossbeam_channel::Sender<ToWriter>, Arc<LogStats>),
}

/// Runs a shard to completion on the current thread: picks the driver, serves until the
/// process stops, then drains.
pub fn run(spec: ShardSpec) -> io::Result<()> {
    if let Some(cpu) = spec.cpu {
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            eprintln!("warning: shard {}: cannot pin to cpu {cpu}: {e}", spec.index);
        }
    }
    let _ = spec.stats.cpu.set(spec.cpu);
    let stats = spec.stats.clone();
    let driver = spec.driver;
    let serve = move || serve(spec);
    let (name, result) = run_with_driver(driver, serve, |name| {
        let _ = stats.driver.set(name);
    })?;
    let _ = name;
    result
}

const URING_TUNED: &str = "io_uring (coop_taskrun, single_issuer, defer_taskrun)";
const URING_PLAIN: &str = "io_uring";
const EPOLL: &str = "epoll";

/// Builds a runtime of the requested kind, falling back as `driver` allows, and runs the
/// future the factory makes on it. `started` is told which driver was chosen.
fn run_with_driver<F, Fut>(
    driver: IoDriver,
    make: F,
    started: impl Fn(&'static str),
) -> io::Result<(&'static str, Fut::Output)>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
    if driver != IoDriver::Epoll {
        let mut tuned = io_uring::IoUring::builder();
        tuned.setup_coop_taskrun().setup_single_issuer().setup_defer_taskrun();
        let attempts = [(tuned, URING_TUNED), (io_uring::IoUring::builder(), URING_PLAIN)];
        let mut last_error = None;
        for (builder, name) in attempts {
            match RuntimeBuilder::<IoUringDriver>::new().enable_timer().uring_builder(builder).build() {
                Ok(mut rt) => {
                    started(name);
                    return Ok((name, rt.block_on(make())));
                }
                // EINVAL: flags unknown to this kernel; ENOMEM: memlock too small for the
                // ring; ENOSYS/EPERM: io_uring unavailable or disabled.
                Err(e) => last_error = Some(e),
            }
        }
        if driver == IoDriver::Uring {
            let e = last_error.unwrap_or_else(|| io::Error::other("io_uring unavailable"));
            return Err(io::Error::new(e.kind(), format!("io_uring unavailable: {e}")));
        }
    }
    let mut rt = RuntimeBuilder::<LegacyDriver>::new().enable_timer().build()?;
    started(EPOLL);
    Ok((EPOLL, rt.block_on(make())))
}

async fn serve(spec: ShardSpec) -> io::Result<()> {
    let listen_port = spec.listener.local_addr()?.port();
    let listener = monoio::net::TcpListener::from_std(spec.listener)?;
    if let Some(t) = &spec.table {
        spec.stats.table_version.store(t.get().version.to_native(), Ordering::Release);
    }
    // Distinct per process start and shard: request ids and canary rolls never repeat across
    // restarts or shards.
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ ((spec.index as u64) << 56)
            ^ (u64::from(std::process::id()) << 32);
    let shard = Rc::new(Shard {
        index: spec.index,
        settings: spec.settings.clone(),
        table: RefCell::new(spec.table),
        upstreams: RefCell::new(Pool::new(spec.settings.max_idle_per_upstream)),
        ids: RefCell::new(RequestIds::new(seed)),
        date: RefCell::new(DateCache::default()),
        stats: spec.stats.clone(),
        conns: RefCell::new(slab::Slab::new()),
        draining: Cell::new(false),
        listen_port,
        clock: CoarseClock::new(),
        rng: Cell::new(seed | 1),
        cache: RefCell::default(),
        metrics: RefCell::new(Recorder::new(spec.metrics.clone())),
        access_log: RefCell::new(ShardLog::new(spec.access_log.0.clone(), spec.access_log.1.clone())),
        request_time: Cell::new((i64::MIN, [0; 26])),
    });
    monoio::spawn(sweep(shard.clone(), spec.table_updates.clone()));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if spec.stopping.load(Ordering::Acquire) {
                    break;
                }
                ShardStats::add(&shard.stats.accepted_connections, 1);
                monoio::spawn(crate::conn::serve(stream, peer, shard.clone()));
            }
            Err(e) => {
                if spec.stopping.load(Ordering::Acquire) {
                    break;
                }
                // EMFILE and friends: back off instead of spinning; the connection stays in
                // the backlog until a descriptor frees up.
                eprintln!("warning: shard {}: accept failed: {e}", shard.index);
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    drop(listener);
    drain(&shard).await;
    Ok(())
}

/// Every [`TICK`]: swaps in a new table if one arrived, advances the coarse clock and the
/// `Date` header, drops cache entries that stopped answering from the shard's map, and closes
/// connections past their deadline; once a second, exports the shard's metrics. One timer for
/// the whole shard, instead of one per read; the request path never polls anything.
async fn sweep(shard: Rc<Shard>, table_updates: crossbeam_channel::Receiver<Arc<LoadedTable>>) {
    let mut ticks: u64 = 0;
    loop {
        monoio::time::sleep(TICK).await;
        ticks += 1;
        if ticks.is_multiple_of(METRICS_EXPORT_TICKS) {
            shard.metrics.borrow_mut().export();
        }
        swap_table(&shard, &table_updates);
        shard.clock.advance();
        shard.date.borrow_mut().refresh();
        if let Some(table) = shard.current_table() {
            let stores = table.caches.iter().flatten().map(|s| &**s);
            shard.cache.borrow_mut().tick(stores, shard.index, crate::limit::now_ns());
        }
        let now = shard.clock.now_ms();
        for (_, conn) in shard.conns.borrow().iter() {
            let deadline = conn.state.deadline_ms.get();
            if deadline != 0 && deadline <= now {
                // The connection's pending read or write fails and its task ends.
                conn.state.deadline_ms.set(0);
                crate::sys::shutdown_both(conn.fd);
            }
        }
        shard.access_log.borrow_mut().flush();
        if shard.draining.get() && shard.conns.borrow().is_empty() {
            return;
        }
    }
}

/// Takes the newest table waiting, if any. Requests in flight keep the `Arc` of the table they
/// started on, so the swap is one pointer store and the old table is freed when its last
/// request ends.
fn swap_table(shard: &Shard, updates: &crossbeam_channel::Receiver<Arc<LoadedTable>>) {
    let Some(newest) = updates.try_iter().last() else { return };
    let started = Instant::now();
    let version = newest.get().version.to_native();
    let old = shard.table.borrow_mut().replace(newest);
    drop(old);
    shard.stats.table_version.store(version, Ordering::Release);
    let took = started.elapsed().as_nanos() as u64;
    shard.stats.table_swap_max_ns.fetch_max(took, Ordering::Relaxed);
}

/// Stops the shard gracefully: idle connections close now, busy ones finish their current
/// request (answered with `connection: close`) until the shutdown deadline.
async fn drain(shard: &Shard) {
    shard.draining.set(true);
    for (_, conn) in shard.conns.borrow().iter() {
        if conn.state.idle.get() {
            crate::sys::shutdown_both(conn.fd);
        }
    }
    let deadline = Instant::now() + shard.settings.shutdown_timeout;
    while !shard.conns.borrow().is_empty() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = shard.conns.borrow().len();
    if left > 0 {
        eprintln!(
            "shard {}: shutdown deadline passed with {left} connection(s) open; closing them",
            shard.index
        );
    }
    // The last requests' log lines and metrics, which the next tick would have handed over.
    shard.access_log.borrow_mut().flush();
    shard.metrics.borrow_mut().export();
}
