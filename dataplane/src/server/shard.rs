//! A shard's thread: pinned to one core, with its own io_uring ring (or epoll) and its own
//! `SO_REUSEPORT` listener. It accepts connections, runs the sweeper (one timer for the whole
//! shard), and drains on shutdown. The state requests touch is [`crate::shard::Shard`].

use crate::config::Settings;
use crate::observe::access_log::{LogStats, ShardLog, ToWriter};
use crate::observe::logging::RateLimited;
use crate::observe::metrics::recorder::{Export, Recorder};
use crate::runtime::driver::{run_with_driver, IoDriver};
use crate::runtime::stats::ShardStats;
use crate::server::conn::{self, Connections};
use crate::shard::{Shard, ShardParts};
use crate::table::LoadedTable;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a shard thread is given.
pub struct ShardSpec {
    pub index: usize,
    pub cpu: Option<usize>,
    pub driver: IoDriver,
    pub listener: std::net::TcpListener,
    /// The HTTPS listener (`--listen-tls`), if any.
    pub tls_listener: Option<std::net::TcpListener>,
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
            log::warn!("shard {}: cannot pin to cpu {cpu}: {e}", spec.index);
        }
    }
    let _ = spec.stats.cpu.set(spec.cpu);
    let stats = spec.stats.clone();
    let driver = spec.driver;
    let serve = move || serve(spec);
    let (_name, result) = run_with_driver(driver, serve, |name| {
        let _ = stats.driver.set(name);
    })?;
    result
}

/// Idle connections closed at once when the process runs out of descriptors: room for a burst
/// of newcomers, since io_uring loses the client whose accept found no descriptor.
const SHED_WHEN_OUT_OF_FDS: usize = 16;

async fn serve(spec: ShardSpec) -> io::Result<()> {
    let listen_port = spec.listener.local_addr()?.port();
    let tls_listen_port = match &spec.tls_listener {
        Some(l) => l.local_addr()?.port(),
        None => 0,
    };
    let listener = monoio::net::TcpListener::from_std(spec.listener)?;
    let shard = Rc::new(Shard::new(ShardParts {
        index: spec.index,
        settings: spec.settings.clone(),
        table: spec.table,
        stats: spec.stats.clone(),
        listen_port,
        tls_listen_port,
        metrics: Recorder::new(spec.metrics.clone()),
        access_log: ShardLog::new(spec.access_log.0.clone(), spec.access_log.1.clone()),
    }));
    let conns = Rc::new(Connections::default());
    monoio::spawn(sweep(shard.clone(), conns.clone(), spec.table_updates.clone()));
    let tls_listener = spec.tls_listener.map(monoio::net::TcpListener::from_std).transpose()?;
    let plain = accept_loop(listener, Protocol::Http, &shard, &conns, &spec.stopping);
    let tls = async {
        if let Some(listener) = tls_listener {
            accept_loop(listener, Protocol::Https, &shard, &conns, &spec.stopping).await;
        }
    };
    monoio::join!(plain, tls);
    drain(&shard, &conns).await;
    Ok(())
}

/// Turns a new connection away: HTTP gets its 503; an HTTPS client, which could not read a
/// plain answer before a handshake the shard has no room for, is closed on.
fn refuse(stream: monoio::net::TcpStream, protocol: Protocol, shard: &Rc<Shard>) {
    match protocol {
        Protocol::Http => {
            monoio::spawn(conn::refuse(stream, shard.clone()));
        }
        Protocol::Https => {
            ShardStats::add(&shard.stats.refused_connections, 1);
            drop(stream);
        }
    }
}

/// What a listener's connections speak.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    Https,
}

/// Accepts connections until the process stops (the listener's socket is shut down, which
/// fails the pending accept, and `stopping` is set).
async fn accept_loop(
    listener: monoio::net::TcpListener,
    protocol: Protocol,
    shard: &Rc<Shard>,
    conns: &Rc<Connections>,
    stopping: &AtomicBool,
) {
    // One descriptor held back for the moment the process runs out: closed to accept the
    // waiting client and answer it 503, instead of leaving it hanging in the backlog.
    let mut spare_fd = std::fs::File::open("/dev/null").ok();
    let accept_errors = RateLimited::default();
    loop {
        if spare_fd.is_none() {
            spare_fd = std::fs::File::open("/dev/null").ok();
        }
        match listener.accept().await {
            Ok((stream, peer)) => {
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                ShardStats::add(&shard.stats.accepted_connections, 1);
                if conns.len() >= shard.settings.max_connections {
                    if conns.shed_oldest_idle(1) == 1 {
                        ShardStats::add(&shard.stats.shed_connections, 1);
                    } else {
                        refuse(stream, protocol, shard);
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                match protocol {
                    Protocol::Http => monoio::spawn(conn::serve(stream, peer, shard.clone(), conns.clone())),
                    Protocol::Https => {
                        monoio::spawn(conn::serve_tls(stream, peer, shard.clone(), conns.clone()))
                    }
                };
            }
            Err(e) => {
                if stopping.load(Ordering::Acquire) {
                    break;
                }
                let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                if let Some(held_back) = accept_errors.allow(shard.clock.now_ms()) {
                    let more =
                        if held_back > 0 { format!(" ({held_back} more since)") } else { String::new() };
                    log::warn!("shard {}: accept failed: {e}{more}", shard.index);
                }
                if out_of_fds {
                    let shed = conns.shed_oldest_idle(SHED_WHEN_OUT_OF_FDS);
                    if shed > 0 {
                        // Their descriptors are free once their tasks have run: the waiting
                        // clients get them on the next accepts.
                        ShardStats::add(&shard.stats.shed_connections, shed as u64);
                        monoio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    if spare_fd.take().is_some() {
                        // Nothing to shed: the spare descriptor lets the waiting client in to
                        // be answered 503. Bounded, in case it gave up meanwhile.
                        let waiting = monoio::time::timeout(Duration::from_millis(10), listener.accept());
                        if let Ok(Ok((stream, _))) = waiting.await {
                            ShardStats::add(&shard.stats.accepted_connections, 1);
                            refuse(stream, protocol, shard);
                        }
                        continue;
                    }
                }
                // Back off instead of spinning.
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Every tick (`Settings::tick`): swaps in a new table if one arrived, lets the shard do its upkeep (coarse
/// clock, `Date`, cache map, access log), and closes connections past their deadline; once a
/// second, exports the shard's metrics. One timer for the whole shard, instead of one per
/// read; the request path never polls anything.
async fn sweep(
    shard: Rc<Shard>,
    conns: Rc<Connections>,
    table_updates: crossbeam_channel::Receiver<Arc<LoadedTable>>,
) {
    let tick = shard.settings.tick;
    // Metrics are exported once a second, whatever the tick.
    let export_every = (1000 / tick.as_millis().max(1)).max(1) as u64;
    let mut ticks: u64 = 0;
    loop {
        monoio::time::sleep(tick).await;
        ticks += 1;
        if ticks.is_multiple_of(export_every) {
            shard.metrics.borrow_mut().export();
        }
        shard.swap_table(&table_updates);
        shard.tick();
        conns.close_expired(shard.clock.now_ms());
        if shard.draining.get() && conns.is_empty() {
            return;
        }
    }
}

/// Stops the shard gracefully: idle connections close now, busy ones finish their current
/// request (answered with `connection: close`) until the shutdown deadline.
async fn drain(shard: &Shard, conns: &Connections) {
    shard.draining.set(true);
    conns.close_idle();
    let deadline = Instant::now() + shard.settings.shutdown_timeout;
    while !conns.is_empty() && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = conns.len();
    if left > 0 {
        log::warn!(
            "shard {}: shutdown deadline passed with {left} connection(s) open; closing them",
            shard.index
        );
    }
    // The last requests' log lines and metrics, which the next tick would have handed over.
    shard.flush();
}
