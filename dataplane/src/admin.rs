//! The admin port: `/healthz` (the process is up), `/readyz` (a routing table is loaded) and
//! `/metrics` (Prometheus text). It runs on its own plain threads, off the shards: one accept
//! thread, and one short-lived thread per connection (at most [`MAX_CONNECTIONS`]), so a slow
//! client never delays a health probe. A connection has [`REQUEST_DEADLINE`] in all to send its
//! request, however it drips it.

use crate::observe::metrics::registry::{Method, Registry};
use crate::runtime::stats::ShardStats;
use crate::table::CurrentTable;
use crate::table::LoadedTable;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct AdminState {
    pub ready: AtomicBool,
    pub table_version: AtomicU64,
    pub shards: Vec<Arc<ShardStats>>,
    /// The table the shards serve (or are about to), for the stage cache series.
    pub table: CurrentTable,
    pub metrics: Arc<Registry>,
    pub access_log: Arc<crate::observe::access_log::LogStats>,
    /// When set (`--admin-token-file`), every endpoint but `/healthz` wants
    /// `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

/// Admin connections served at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// From accept to a complete request head, and again for writing the response.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

pub fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        if active.fetch_add(1, Relaxed) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Relaxed);
            let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
            let _ = respond(&mut stream, 503, "text/plain", "too many admin connections\n");
            continue;
        }
        let (state, done) = (state.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("admin-conn".into()).spawn(move || {
            let _ = handle(stream, &state);
            done.fetch_sub(1, Relaxed);
        });
        if spawned.is_err() {
            active.fetch_sub(1, Relaxed);
        }
    }
}

fn handle(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    stream.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    let path = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let path = req.path.unwrap_or("/").to_string();
                let bearer = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.strip_prefix("Bearer "));
                let allowed = match &state.token {
                    None => true,
                    Some(token) => bearer.is_some_and(|b| same_secret(b.trim().as_bytes(), token.as_bytes())),
                };
                // A liveness probe needs no secret and learns nothing from the answer.
                if !allowed && path.split('?').next() != Some("/healthz") {
                    return respond(&mut stream, 401, "text/plain", "a bearer token is required\n");
                }
                break path;
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => return respond(&mut stream, 400, "text/plain", "bad request\n"),
        }
    };
    let path = path.split('?').next().unwrap_or("/");
    match path {
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n"),
        "/readyz" if state.ready.load(Relaxed) => respond(&mut stream, 200, "text/plain", "ready\n"),
        "/readyz" => respond(&mut stream, 503, "text/plain", "no routing table loaded\n"),
        "/metrics" => respond(&mut stream, 200, "text/plain; version=0.0.4", &metrics(state)),
        _ => respond(&mut stream, 404, "text/plain", "not found\n"),
    }
}

/// Seconds until each certificate of the current table expires (negative once expired).
fn certificate_expiry(state: &AdminState, out: &mut String) {
    let table = state.table.lock().ok().and_then(|t| t.clone());
    let Some(table) = table else { return };
    if table.get().certificates.is_empty() {
        return;
    }
    let now = crate::limits::quota::unix_now_s();
    let _ = writeln!(out, "# HELP gateway_certificate_expiry_seconds Seconds until the certificate expires.");
    let _ = writeln!(out, "# TYPE gateway_certificate_expiry_seconds gauge");
    for c in table.get().certificates.iter() {
        let left = c.not_after.to_native() - now;
        let _ = writeln!(out, "gateway_certificate_expiry_seconds{{certificate=\"{}\"}} {left}", c.name);
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) -> std::io::Result<()> {
    let reason = crate::http1::response::reason(status);
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

/// Data-plane gauges and counters. The per-route metric set comes with the observability work.
fn metrics(state: &AdminState) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP gateway_table_version Version of the routing table being served.");
    let _ = writeln!(out, "# TYPE gateway_table_version gauge");
    let _ = writeln!(out, "gateway_table_version {}", state.table_version.load(Relaxed));
    type Series = (&'static str, &'static str, &'static str, fn(&ShardStats) -> u64);
    let series: [Series; 18] = [
        ("gateway_requests_total", "counter", "Requests answered.", |s| s.requests.load(Relaxed)),
        ("gateway_throttled_total", "counter", "Requests refused by a throttle.", |s| {
            s.throttled.load(Relaxed)
        }),
        ("gateway_quota_exceeded_total", "counter", "Requests refused by a usage plan quota.", |s| {
            s.quota_exceeded.load(Relaxed)
        }),
        ("gateway_forbidden_api_key_total", "counter", "API-key requests without a valid key.", |s| {
            s.forbidden.load(Relaxed)
        }),
        ("gateway_open_connections", "gauge", "Client connections open.", |s| {
            s.open_connections.load(Relaxed)
        }),
        ("gateway_accepted_connections_total", "counter", "Client connections accepted.", |s| {
            s.accepted_connections.load(Relaxed)
        }),
        (
            "gateway_connections_shed_total",
            "counter",
            "Idle client connections closed to make room at the connection cap.",
            |s| s.shed_connections.load(Relaxed),
        ),
        (
            "gateway_connections_refused_total",
            "counter",
            "New client connections answered 503: at the cap with none idle, or out of descriptors.",
            |s| s.refused_connections.load(Relaxed),
        ),
        ("gateway_tls_handshakes_total", "counter", "HTTPS handshakes completed.", |s| {
            s.tls_handshakes.load(Relaxed)
        }),
        (
            "gateway_tls_handshake_failures_total",
            "counter",
            "HTTPS handshakes refused or abandoned (unknown name, policy, client certificate).",
            |s| s.tls_handshake_failures.load(Relaxed),
        ),
        (
            "gateway_tunnels_open",
            "gauge",
            "Client connections relayed to an upstream after a WebSocket upgrade.",
            |s| s.tunnels_open.load(Relaxed),
        ),
        (
            "gateway_upstream_requests_reused_total",
            "counter",
            "Upstream requests sent on a pooled connection.",
            |s| s.upstream_reused.load(Relaxed),
        ),
        ("gateway_upstream_connections_opened_total", "counter", "Upstream connections opened.", |s| {
            s.upstream_opened.load(Relaxed)
        }),
        (
            "gateway_upstream_connections_unclean_total",
            "counter",
            "Upstream connections closed because they held unrequested bytes or had been closed.",
            |s| s.upstream_unclean.load(Relaxed),
        ),
        (
            "gateway_upstream_pool_idle_connections",
            "gauge",
            "Idle keep-alive connections in the shard's upstream pool.",
            |s| s.upstream_idle.load(Relaxed),
        ),
        (
            "gateway_memory_buffered_bytes",
            "gauge",
            "Bytes the shard's connections buffer (requests, unsent responses, upstream exchanges).",
            |s| s.memory.used(),
        ),
        ("gateway_memory_limit_bytes", "gauge", "The most the shard's connections may buffer.", |s| {
            s.memory.limit()
        }),
        (
            "gateway_memory_refusals_total",
            "counter",
            "Requests answered 503 because the shard's memory limit had no room for them.",
            |s| s.memory.refused(),
        ),
    ];
    for (name, kind, help, read) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (i, shard) in state.shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", read(shard));
        }
    }
    let _ = writeln!(out, "# HELP gateway_table_swap_max_seconds Longest routing-table swap on each shard.");
    let _ = writeln!(out, "# TYPE gateway_table_swap_max_seconds gauge");
    for (i, shard) in state.shards.iter().enumerate() {
        let ns = shard.table_swap_max_ns.load(Relaxed);
        let _ = writeln!(out, "gateway_table_swap_max_seconds{{shard=\"{i}\"}} {:.9}", ns as f64 / 1e9);
    }
    certificate_expiry(state, &mut out);
    let (reused, opened) = state
        .shards
        .iter()
        .fold((0, 0), |(r, o), s| (r + s.upstream_reused.load(Relaxed), o + s.upstream_opened.load(Relaxed)));
    let ratio = if reused + opened == 0 { 0.0 } else { reused as f64 / (reused + opened) as f64 };
    let _ = writeln!(
        out,
        "# HELP gateway_upstream_reuse_ratio Share of upstream requests sent on a reused connection."
    );
    let _ = writeln!(out, "# TYPE gateway_upstream_reuse_ratio gauge");
    let _ = writeln!(out, "gateway_upstream_reuse_ratio {ratio:.4}");
    let _ = writeln!(out, "# HELP gateway_shard_info The io driver and cpu of each shard.");
    let _ = writeln!(out, "# TYPE gateway_shard_info gauge");
    for (i, shard) in state.shards.iter().enumerate() {
        let driver = shard.driver.get().copied().unwrap_or("starting");
        let cpu = shard.cpu.get().copied().flatten().map_or("none".to_string(), |c| c.to_string());
        let _ = writeln!(out, "gateway_shard_info{{shard=\"{i}\",driver=\"{driver}\",cpu=\"{cpu}\"}} 1");
    }
    let table = state.table.lock().map(|t| t.clone()).unwrap_or_default();
    if let Some(table) = table {
        cache_metrics(&table, &mut out);
    }
    method_metrics(&state.metrics, &mut out);
    let logs = &state.access_log;
    for (name, help, value) in [
        ("gateway_access_log_lines_total", "Access log lines written.", logs.written.load(Relaxed)),
        (
            "gateway_access_log_dropped_total",
            "Access log lines dropped (writer behind, buffer full, or a file that cannot be written).",
            logs.dropped.load(Relaxed),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {value}");
    }
    out
}

/// Each stage cache's size.
fn cache_metrics(table: &LoadedTable, out: &mut String) {
    type Gauge = fn(&crate::cache::store::Store) -> u64;
    let gauges: [(&str, &str, Gauge); 3] = [
        ("gateway_cache_entries", "Entries in the stage cache.", |s| s.len() as u64),
        ("gateway_cache_used_bytes", "Bytes the stage cache's entries hold.", |s| s.used_bytes()),
        ("gateway_cache_capacity_bytes", "The stage cache's capacity.", |s| s.capacity),
    ];
    for (name, help, read) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (stage, store) in table.get().stages.iter().zip(&table.caches) {
            let Some(store) = store else { continue };
            let (api, stage) = (label(&stage.api), label(&stage.name));
            let _ = writeln!(out, "{name}{{api=\"{api}\",stage=\"{stage}\"}} {}", read(store));
        }
    }
}

/// The per-method series (AWS's CloudWatch metrics): requests by status class (`Count`,
/// `4XXError`, `5XXError`), throttled, `CacheHitCount`, `CacheMissCount`, and `Latency` and
/// `IntegrationLatency` as summaries in microseconds.
fn method_metrics(registry: &Registry, out: &mut String) {
    registry.read(|methods| {
        let labels = |m: &Method| {
            let l = &m.labels;
            format!(
                "api=\"{}\",stage=\"{}\",route=\"{}\",method=\"{}\"",
                label(&l.api),
                label(&l.stage),
                label(&l.route),
                label(&l.method)
            )
        };
        let _ = writeln!(out, "# HELP gateway_method_requests_total Requests answered, by status class (Count, 4XXError, 5XXError).");
        let _ = writeln!(out, "# TYPE gateway_method_requests_total counter");
        for m in methods {
            for (class, n) in m.counts.by_class.iter().enumerate().filter(|(_, n)| **n > 0) {
                let _ = writeln!(out, "gateway_method_requests_total{{{},status_class=\"{}xx\"}} {n}", labels(m), class + 1);
            }
        }
        type Count = fn(&Method) -> u64;
        let counters: [(&str, &str, Count); 3] = [
            ("gateway_method_throttled_total", "Requests refused by a throttle or quota (429).", |m| m.counts.throttled),
            ("gateway_cache_hits_total", "Requests answered from the stage cache (CacheHitCount).", |m| m.counts.cache_hits),
            ("gateway_cache_misses_total", "Requests of a cached method sent to the backend (CacheMissCount).", |m| {
                m.counts.cache_misses
            }),
        ];
        for (name, help, read) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for m in methods {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(m), read(m));
            }
        }
        type Summary = fn(&Method) -> (&hdrhistogram::Histogram<u64>, u64);
        let summaries: [(&str, &str, Summary); 2] = [
            ("gateway_method_latency_microseconds", "From the request's arrival to its response (Latency).", |m| {
                (&m.latency, m.counts.latency_sum_us)
            }),
            (
                "gateway_method_integration_latency_microseconds",
                "The upstream exchange (IntegrationLatency).",
                |m| (&m.integration, m.counts.integration_sum_us),
            ),
        ];
        for (name, help, read) in summaries {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} summary");
            for m in methods {
                let (histogram, sum) = read(m);
                if histogram.is_empty() {
                    continue;
                }
                let l = labels(m);
                for q in ["0.5", "0.9", "0.99", "0.999"] {
                    let value = histogram.value_at_quantile(q.parse().unwrap_or(0.5));
                    let _ = writeln!(out, "{name}{{{l},quantile=\"{q}\"}} {value}");
                }
                let _ = writeln!(out, "{name}_sum{{{l}}} {sum}");
                let _ = writeln!(out, "{name}_count{{{l}}} {}", histogram.len());
            }
        }
    });
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
