//! A shard's idle keep-alive connections to its upstreams, by address. A connection is handed
//! out only while it is clean (nothing unread, not closed by the peer): see
//! [`crate::runtime::sys::idle_connection_is_clean`].

use super::stream::UpstreamStream;
use crate::runtime::stats::ShardStats;
use std::collections::HashMap;
use std::net::SocketAddr;

/// What a pooled connection is for: the address, and how it was secured (0: plain; else the
/// identity of the TLS configuration, which its connections keep alive, so it is not reused
/// for another while one of them is pooled).
pub type PoolKey = (SocketAddr, usize);

/// Idle keep-alive connections per upstream address, owned by one shard.
pub struct Pool {
    idle: HashMap<PoolKey, Vec<UpstreamStream>>,
    max_idle: usize,
    /// Idle connections over all upstreams.
    len: usize,
}

impl Pool {
    pub fn new(max_idle: usize) -> Self {
        Pool { idle: HashMap::new(), max_idle, len: 0 }
    }

    /// An idle connection to `addr` that is still clean (see [`sys::idle_connection_is_clean`]);
    /// the unclean ones met on the way are closed and counted.
    pub fn take(&mut self, key: PoolKey, stats: &ShardStats) -> Option<UpstreamStream> {
        let idle = self.idle.get_mut(&key)?;
        while let Some(mut stream) = idle.pop() {
            self.len -= 1;
            if stream.idle_is_clean() {
                return Some(stream);
            }
            ShardStats::add(&stats.upstream_unclean, 1);
        }
        None
    }

    pub fn put(&mut self, key: PoolKey, stream: UpstreamStream) {
        let idle = self.idle.entry(key).or_default();
        if idle.len() < self.max_idle {
            idle.push(stream);
            self.len += 1;
        }
    }
}

impl Pool {
    /// Idle connections over all upstreams.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
