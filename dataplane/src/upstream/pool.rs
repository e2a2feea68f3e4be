//! A shard's idle keep-alive connections to its upstreams, by address. A connection is handed
//! out only while it is clean (nothing unread, not closed by the peer): see
//! [`crate::runtime::sys::idle_connection_is_clean`].

use crate::runtime::stats::ShardStats;
use crate::runtime::sys;
use monoio::net::TcpStream;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Idle keep-alive connections per upstream address, owned by one shard.
pub struct Pool {
    idle: HashMap<SocketAddr, Vec<TcpStream>>,
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
    pub fn take(&mut self, addr: SocketAddr, stats: &ShardStats) -> Option<TcpStream> {
        let idle = self.idle.get_mut(&addr)?;
        while let Some(stream) = idle.pop() {
            self.len -= 1;
            if sys::idle_connection_is_clean(stream.as_raw_fd()) {
                return Some(stream);
            }
            ShardStats::add(&stats.upstream_unclean, 1);
        }
        None
    }

    pub fn put(&mut self, addr: SocketAddr, stream: TcpStream) {
        let idle = self.idle.entry(addr).or_default();
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
