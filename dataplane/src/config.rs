//! Data-plane settings that do not come from the routing table: one value per tunable, each
//! with a `dataplane` flag (see `--help`) and the default below.

use crate::http1::head::Limits;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Settings {
    pub limits: Limits,
    /// From the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Longest wait for the next bytes of a request body.
    pub body_timeout: Duration,
    /// Longest wait for an upstream TCP connection (also bounded by the route's timeout).
    pub connect_timeout: Duration,
    /// How long a shutting-down shard lets in-flight requests finish.
    pub shutdown_timeout: Duration,
    /// Idle keep-alive connections kept per upstream per shard.
    pub max_idle_per_upstream: usize,
    /// A connection's first read buffer; a larger request grows it.
    pub read_buffer: usize,
    /// A buffer that grew past this for one request is given back once it is done; also how
    /// many response bytes may wait unsent before a connection stops answering pipelined
    /// requests.
    pub keep_buffer: usize,
    /// Bytes each shard's connections may buffer in all ([`crate::runtime::memory`]).
    pub shard_memory_limit: u64,
    /// Client connections one shard serves at once. At the cap, the connection idle the
    /// longest is closed to make room; with none idle, the new one is answered 503 and closed.
    pub max_connections: usize,
    /// Relay WebSocket upgrades through HTTP_PROXY integrations (AWS's REST and HTTP APIs do
    /// not; off by default).
    pub proxy_websocket: bool,
    /// How often each shard's sweeper runs: the precision of every client timeout, and how
    /// soon a new table is served.
    pub tick: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(10),
            max_idle_per_upstream: 256,
            read_buffer: 2048,
            keep_buffer: 64 * 1024,
            shard_memory_limit: 256 * 1024 * 1024,
            proxy_websocket: false,
            max_connections: 16_384,
            tick: Duration::from_millis(100),
        }
    }
}
