//! Per-shard counters. Each is written by its own shard only (relaxed atomics, no contention)
//! and read by the admin thread, so the hot path takes no lock and shares no cache line with
//! another writer.

use super::memory::MemoryBudget;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

#[derive(Default)]
#[repr(align(128))]
pub struct ShardStats {
    pub requests: AtomicU64,
    /// Requests refused by a throttle (429).
    pub throttled: AtomicU64,
    /// Requests to an API-key route without a key that opens the stage (403).
    pub forbidden: AtomicU64,
    /// Requests refused because the key's quota for the period is used up (429).
    pub quota_exceeded: AtomicU64,
    pub open_connections: AtomicU64,
    pub accepted_connections: AtomicU64,
    /// Idle connections closed to make room for a new one at the connection cap.
    pub shed_connections: AtomicU64,
    /// New connections answered 503 and closed: at the cap with none idle, or out of file
    /// descriptors.
    pub refused_connections: AtomicU64,
    /// Upstream requests sent on a pooled keep-alive connection.
    pub upstream_reused: AtomicU64,
    /// Upstream connections opened.
    pub upstream_opened: AtomicU64,
    /// Upstream connections closed instead of pooled or reused because they held bytes no
    /// request asked for (a second response, a body after a HEAD) or the upstream closed them.
    pub upstream_unclean: AtomicU64,
    /// Idle upstream connections in the shard's pool.
    pub upstream_idle: AtomicU64,
    /// HTTPS connections whose handshake succeeded, and those whose handshake failed (an
    /// unknown server name, a refused client certificate, a policy the client cannot meet, a
    /// client gone before the end).
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Client connections relayed to an upstream after a protocol upgrade.
    pub tunnels_open: AtomicU64,
    /// What the shard's connections buffer, and its limit.
    pub memory: MemoryBudget,
    /// Version of the routing table this shard serves (0: none yet).
    pub table_version: AtomicU64,
    /// Longest table swap so far, in nanoseconds.
    pub table_swap_max_ns: AtomicU64,
    /// The io driver this shard runs, once it has started.
    pub driver: OnceLock<&'static str>,
    pub cpu: OnceLock<Option<usize>>,
}

impl ShardStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        // A plain load and store would do (one writer), but fetch_add keeps it simple and is
        // uncontended.
        counter.fetch_add(n, Relaxed);
    }
}
