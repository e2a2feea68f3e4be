//! `dataplane`: serves APIs with one shard per core.

use clap::Parser;
use dataplane::admin;
use dataplane::config::Settings;
use dataplane::control::{link as control_link, usage_report};
use dataplane::http1::head::Limits;
use dataplane::runtime::driver::IoDriver;
use dataplane::runtime::{stats, sys};
use dataplane::server::shard::{self, ShardSpec};
use dataplane::table::LoadedTable;
use proto::logging;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "dataplane", version, about = "The gateway's data plane: one shard per core")]
struct Cli {
    /// Address the API traffic is served on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Also serve HTTPS on this address (certificates come with the table: `kind:
    /// Certificate` and each Domain's `certificate`).
    #[arg(long)]
    listen_tls: Option<SocketAddr>,
    /// Address of the admin endpoints (/healthz, /readyz, /metrics).
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// A file holding a token the admin endpoints then require (`Authorization: Bearer`),
    /// all but /healthz. Meant for an admin port bound beyond loopback.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Number of shards (worker threads); default one per available core.
    #[arg(long)]
    shards: Option<usize>,
    /// io driver of every shard.
    #[arg(long, value_enum, default_value_t = IoDriver::Auto)]
    io_driver: IoDriver,
    /// Serve a routing table from this file (compiled by `controlctl compile`), with no
    /// control plane.
    #[arg(long, conflicts_with = "control_plane")]
    table: Option<PathBuf>,
    /// Receive routing tables from this control plane (e.g. https://127.0.0.1:7000).
    #[arg(long)]
    control_plane: Option<String>,
    /// PEM of the CA that signed the control plane's certificate (its data dir's
    /// `pki/ca.pem`); default: the system's roots.
    #[arg(long, requires = "control_plane")]
    control_plane_ca: Option<PathBuf>,
    /// A file holding this data plane's token (role `dataplane`; its data dir's
    /// `dataplane.token`, or one from `controlctl tokens create NAME --role dataplane`).
    #[arg(long, requires = "control_plane")]
    control_plane_token_file: Option<PathBuf>,
    /// Instead of a token: a client certificate from `controlplane issue-dataplane-cert`, and
    /// its key.
    #[arg(long, requires = "control_plane_key")]
    control_plane_cert: Option<PathBuf>,
    #[arg(long, requires = "control_plane_cert")]
    control_plane_key: Option<PathBuf>,
    /// Where the last table from the control plane is kept (to serve after a restart while the
    /// control plane is unreachable), and quota usage not yet reported. Default with
    /// --control-plane: ./dataplane-state; with --table, quotas persist only if this is given.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The directory access logs are written in: a stage's `accessLog.destination` is a file
    /// name inside it, so applying a manifest can never write anywhere else. Created on first
    /// use. Default: `access-logs` inside the state directory (./dataplane-state without one).
    #[arg(long)]
    access_log_dir: Option<PathBuf>,
    /// This data plane's name in `controlctl status` (default: HOSTNAME:PORT).
    #[arg(long)]
    id: Option<String>,
    /// Seconds a client may take to send a request head.
    #[arg(long, default_value_t = 10)]
    header_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay idle between requests.
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// Seconds to wait for the next bytes of a request body.
    #[arg(long, default_value_t = 30)]
    body_timeout_secs: u64,
    /// Seconds in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value_t = 10)]
    shutdown_timeout_secs: u64,
    /// Milliseconds to wait for a TCP connection to an upstream (a route's own timeout, if
    /// shorter, bounds it too).
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
    /// Idle keep-alive connections kept per upstream address on each shard.
    #[arg(long, default_value_t = 256)]
    max_idle_per_upstream: usize,
    /// Longest request target (path and query), in bytes; longer is 414 (AWS: 10,240).
    #[arg(long, default_value_t = Limits::default().max_uri)]
    max_uri_bytes: usize,
    /// Largest request header section, in bytes; larger is 431 (AWS: 10,240).
    #[arg(long, default_value_t = Limits::default().max_header_bytes)]
    max_header_bytes: usize,
    /// Largest request body, in bytes; larger is 413 (AWS: 10 MB).
    #[arg(long, default_value_t = Limits::default().max_body)]
    max_body_bytes: u64,
    /// A connection's first read buffer, in bytes (a larger request grows it).
    #[arg(long, default_value_t = Settings::default().read_buffer)]
    read_buffer_bytes: usize,
    /// A connection buffer grown past this many bytes is given back after its request.
    #[arg(long, default_value_t = Settings::default().keep_buffer)]
    keep_buffer_bytes: usize,
    /// Bytes each shard's connections may buffer in all (request heads and bodies, unsent
    /// responses, upstream requests and responses); a request that would need more gets 503.
    #[arg(long, default_value_t = Settings::default().shard_memory_limit)]
    shard_memory_limit_bytes: u64,
    /// Client connections each shard serves at once: at the cap, the connection idle the
    /// longest is closed to make room, and with none idle a new one gets 503 and is closed.
    /// Default: half the open-file limit shared by the shards (the other half is for upstream
    /// connections and files).
    #[arg(long)]
    max_connections_per_shard: Option<usize>,
    /// Relay WebSocket upgrades (`Connection: upgrade`, `Upgrade: websocket`) through
    /// HTTP_PROXY integrations: a backend's 101 turns the connection into a tunnel, closed
    /// after the idle timeout without traffic. AWS's REST and HTTP APIs do not do this, so it
    /// is off by default.
    #[arg(long)]
    proxy_websocket: bool,
    /// Milliseconds between sweeper ticks: the precision of client timeouts and how soon a
    /// new table is served.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(10..=1000))]
    tick_ms: u64,
    /// Milliseconds between quota usage reports to the control plane (the most a crash can
    /// lose).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    usage_report_interval_ms: u64,
    /// Milliseconds between per-method metric reports to the control plane.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    metrics_report_interval_ms: u64,
    /// Least severe log lines written to stderr.
    #[arg(long, value_enum, default_value_t = logging::Level::Info)]
    log_level: logging::Level,
    /// How log lines are written.
    #[arg(long, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    // Before any thread exists, so every thread inherits the mask and only the signal thread
    // receives SIGTERM/SIGINT/SIGHUP.
    sys::block_signals().map_err(|e| format!("blocking signals: {e}"))?;
    let fd_limit = match sys::raise_fd_limit() {
        Ok(n) => {
            if n < 16_384 {
                log::warn!("open-file limit is {n}; raise it for more connections");
            }
            n
        }
        Err(e) => {
            log::warn!("cannot raise the open-file limit: {e}");
            1024
        }
    };
    let cpus = sys::allowed_cpus();
    let shard_count = cli.shards.unwrap_or_else(|| cpus.len().max(1)).max(1);
    // Each proxied request holds a client and an upstream descriptor; a few dozen more are
    // the process's own (io_uring, listeners, files, threads).
    let max_connections = cli
        .max_connections_per_shard
        .unwrap_or((fd_limit.saturating_sub(64) / 2) as usize / shard_count)
        .max(1);

    let settings = Arc::new(Settings {
        header_timeout: Duration::from_secs(cli.header_timeout_secs),
        idle_timeout: Duration::from_secs(cli.idle_timeout_secs),
        body_timeout: Duration::from_secs(cli.body_timeout_secs),
        shutdown_timeout: Duration::from_secs(cli.shutdown_timeout_secs),
        connect_timeout: Duration::from_millis(cli.connect_timeout_ms),
        max_idle_per_upstream: cli.max_idle_per_upstream,
        limits: Limits {
            max_uri: cli.max_uri_bytes,
            max_header_bytes: cli.max_header_bytes,
            max_body: cli.max_body_bytes,
        },
        read_buffer: cli.read_buffer_bytes.max(64),
        keep_buffer: cli.keep_buffer_bytes.max(cli.read_buffer_bytes),
        shard_memory_limit: cli.shard_memory_limit_bytes,
        proxy_websocket: cli.proxy_websocket,
        max_connections,
        tick: Duration::from_millis(cli.tick_ms),
    });
    let state_dir = match (&cli.state_dir, &cli.control_plane) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(_)) => Some(PathBuf::from("dataplane-state")),
        (None, None) => None,
    };
    if let Some(dir) = &state_dir {
        std::fs::create_dir_all(dir).map_err(|e| format!("state dir {}: {e}", dir.display()))?;
    }
    let access_log_dir = cli.access_log_dir.clone().unwrap_or_else(|| {
        state_dir.as_deref().unwrap_or(std::path::Path::new("dataplane-state")).join("access-logs")
    });
    let table = match &cli.table {
        None if cli.control_plane.is_some() => {
            let dir = state_dir.as_deref().ok_or("a state directory")?;
            let persisted = control_link::load_persisted(dir, shard_count);
            if let Some(t) = &persisted {
                log::info!(
                    "serving persisted table version {} from {} until the control plane answers",
                    t.get().version,
                    dir.display()
                );
            }
            persisted.map(Arc::new)
        }
        None => None,
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            let table = LoadedTable::load(&bytes, None, shard_count)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            log::info!(
                "loaded table version {} ({} bytes, {} stage(s)) from {}",
                table.get().version,
                table.size_bytes(),
                table.get().stages.len(),
                path.display()
            );
            Some(Arc::new(table))
        }
    };

    let listeners = bind_listeners(cli.listen, shard_count)?;
    let listen_addr = listeners[0].local_addr().map_err(|e| e.to_string())?;
    let tls_listeners: Vec<Option<std::net::TcpListener>> = match cli.listen_tls {
        Some(addr) => bind_listeners(addr, shard_count)?.into_iter().map(Some).collect(),
        None => (0..shard_count).map(|_| None).collect(),
    };
    let tls_addr = tls_listeners.first().and_then(|l| l.as_ref()?.local_addr().ok());
    let admin_listener =
        std::net::TcpListener::bind(cli.admin).map_err(|e| format!("admin address {}: {e}", cli.admin))?;
    let admin_addr = admin_listener.local_addr().map_err(|e| e.to_string())?;

    let stats: Vec<Arc<stats::ShardStats>> = (0..shard_count).map(|_| Arc::default()).collect();
    let current_table: dataplane::table::CurrentTable = Arc::new(Mutex::new(table.clone()));
    let (metrics, metrics_exports) = dataplane::observe::metrics::registry::Registry::new();
    let log_stats = Arc::new(dataplane::observe::access_log::LogStats::default());
    let reopen_logs = Arc::new(AtomicBool::new(false));
    let (log_queue, log_writer) =
        dataplane::observe::access_log::start_writer(access_log_dir, log_stats.clone(), reopen_logs.clone())
            .map_err(|e| format!("access log writer: {e}"))?;
    let admin_token = match &cli.admin_token_file {
        Some(path) => {
            let token = std::fs::read_to_string(path)
                .map_err(|e| format!("--admin-token-file {}: {e}", path.display()))?;
            let token = token.trim().to_string();
            if token.is_empty() {
                return Err(format!("--admin-token-file {}: empty", path.display()));
            }
            Some(token)
        }
        None => None,
    };
    if admin_token.is_none() && !admin_addr.ip().is_loopback() {
        log::warn!("the admin port {admin_addr} is reachable beyond loopback without --admin-token-file");
    }
    let admin_state = Arc::new(admin::AdminState {
        ready: AtomicBool::new(table.is_some()),
        table_version: table.as_ref().map_or(0, |t| t.get().version.to_native()).into(),
        shards: stats.clone(),
        table: current_table.clone(),
        metrics: metrics.clone(),
        access_log: log_stats.clone(),
        token: admin_token,
    });
    {
        let state = admin_state.clone();
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || admin::serve(admin_listener, state))
            .map_err(|e| e.to_string())?;
    }

    let stopping = Arc::new(AtomicBool::new(false));
    let (update_senders, update_receivers): (Vec<_>, Vec<_>) =
        (0..shard_count).map(|_| crossbeam_channel::unbounded()).unzip();
    let mut update_receivers = update_receivers.into_iter();
    let listener_fds: Vec<i32> =
        listeners.iter().chain(tls_listeners.iter().flatten()).map(|l| l.as_raw_fd()).collect();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut handles = Vec::new();
    for (index, (listener, tls_listener)) in listeners.into_iter().zip(tls_listeners).enumerate() {
        let spec = ShardSpec {
            index,
            cpu: (!cpus.is_empty()).then(|| cpus[index % cpus.len()]),
            driver: cli.io_driver,
            listener,
            tls_listener,
            settings: settings.clone(),
            table: table.clone(),
            stats: stats[index].clone(),
            stopping: stopping.clone(),
            table_updates: update_receivers.next().ok_or("one channel per shard")?,
            metrics: metrics_exports.clone(),
            access_log: (log_queue.clone(), log_stats.clone()),
        };
        let started = started_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("shard-{index}"))
            .spawn(move || {
                let result = shard::run(spec);
                if let Err(e) = &result {
                    let _ = started.send(Err(format!("shard {index}: {e}")));
                }
                result
            })
            .map_err(|e| e.to_string())?;
        handles.push(handle);
    }
    drop(started_tx);
    // Wait until every shard has picked its driver (or one failed), then announce.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stats.iter().any(|s| s.driver.get().is_none()) {
        if let Ok(Err(e)) = started_rx.try_recv() {
            return Err(e);
        }
        if std::time::Instant::now() > deadline {
            return Err("shards did not start within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (i, s) in stats.iter().enumerate() {
        let cpu = s.cpu.get().copied().flatten().map_or("unpinned".to_string(), |c| format!("cpu {c}"));
        log::info!("shard {i}: {} on {cpu}", s.driver.get().copied().unwrap_or("?"));
    }
    println!("admin on {admin_addr}");
    println!("listening on {listen_addr}");
    if let Some(addr) = tls_addr {
        println!("listening (https) on {addr}");
    }

    let id = cli.id.clone().unwrap_or_else(|| format!("{}:{}", hostname(), listen_addr.port()));
    let started_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let instance = format!("{id}/{}-{started_ms}", std::process::id());
    let target = match &cli.control_plane {
        Some(url) => Some(control_target(url, &cli)?),
        None => None,
    };
    let reporter = usage_report::start(
        usage_report::ReporterConfig {
            control_plane: target.clone(),
            state_dir: state_dir.clone(),
            instance: instance.clone(),
            interval: Duration::from_millis(cli.usage_report_interval_ms),
        },
        current_table.clone(),
    )?;
    if let Some(target) = target.clone() {
        dataplane::control::metrics_report::start(dataplane::control::metrics_report::MetricsReporter {
            control_plane: target,
            dataplane_id: id.clone(),
            instance,
            registry: metrics.clone(),
            interval: Duration::from_millis(cli.metrics_report_interval_ms),
        })?;
    }
    if let Some(target) = target {
        let publisher = control_link::TablePublisher::new(
            update_senders,
            stats.clone(),
            admin_state.clone(),
            current_table,
        );
        let state_dir = state_dir.clone().ok_or("a state directory")?;
        let config = control_link::LinkConfig { target, id, state_dir };
        std::thread::Builder::new()
            .name("control-link".into())
            .spawn(move || control_link::run(config, publisher))
            .map_err(|e| e.to_string())?;
    }

    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let sig = sys::wait_signal();
            if sig == libc::SIGHUP {
                // After logrotate: the writer opens every access log file afresh.
                reopen_logs.store(true, Ordering::Release);
                log::info!("signal {sig}: reopening access logs");
                continue;
            }
            log::info!("signal {sig}: stopping; in-flight requests may finish");
            stopping.store(true, Ordering::Release);
            for fd in &listener_fds {
                sys::shutdown_read(*fd);
            }
            return;
        })
        .map_err(|e| e.to_string())?;

    let mut failed = false;
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                log::error!("shard stopped: {e}");
                failed = true;
            }
            Err(_) => failed = true,
        }
    }
    // Every request is counted now: the last quota usage goes out (or to disk) before exit,
    // and the shards' last log lines reach their files.
    reporter.flush_and_stop(Duration::from_secs(5));
    drop(log_queue);
    log_writer.stop();
    log::info!("stopped");
    if failed {
        Err("a shard failed".into())
    } else {
        Ok(())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "dataplane".into())
}

/// The control plane's address and what this data plane presents to it, read once at start.
fn control_target(url: &str, cli: &Cli) -> Result<dataplane::control::client::Target, String> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
    };
    let ca_pem = cli.control_plane_ca.as_ref().map(|p| read(p, "--control-plane-ca")).transpose()?;
    let token = match &cli.control_plane_token_file {
        Some(p) => Some(read(p, "--control-plane-token-file")?.trim().to_string()),
        None => std::env::var("GATEWAY_CONTROL_PLANE_TOKEN").ok(),
    };
    let identity = match (&cli.control_plane_cert, &cli.control_plane_key) {
        (Some(cert), Some(key)) => {
            Some((read(cert, "--control-plane-cert")?, read(key, "--control-plane-key")?))
        }
        _ => None,
    };
    if token.is_none() && identity.is_none() {
        log::warn!("no --control-plane-token-file or --control-plane-cert: the control plane will refuse this data plane");
    }
    let credentials = proto::client::Credentials { ca_pem, token, identity };
    Ok(dataplane::control::client::Target { url: url.to_string(), credentials })
}

/// One `SO_REUSEPORT` listener per shard on the same address. A probe bind without
/// `SO_REUSEPORT` first makes sure no other process already serves this port, since
/// `SO_REUSEPORT` would otherwise silently share it.
fn bind_listeners(addr: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, String> {
    use socket2::{Domain, Socket, Type};
    if addr.port() != 0 {
        let probe = std::net::TcpListener::bind(addr).map_err(|e| format!("listen address {addr}: {e}"))?;
        drop(probe);
    }
    let mut listeners = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket =
            Socket::new(Domain::for_address(bound), Type::STREAM, None).map_err(|e| e.to_string())?;
        socket.set_reuse_address(true).map_err(|e| e.to_string())?;
        socket.set_reuse_port(true).map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        socket.bind(&bound.into()).map_err(|e| format!("listen address {bound}: {e}"))?;
        socket.listen(4096).map_err(|e| format!("listen address {bound}: {e}"))?;
        let listener: std::net::TcpListener = socket.into();
        // With port 0, the first socket picks the port and the others join it.
        bound = listener.local_addr().map_err(|e| e.to_string())?;
        listeners.push(listener);
    }
    Ok(listeners)
}
