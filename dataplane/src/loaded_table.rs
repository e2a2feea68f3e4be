//! A validated routing table plus what the data plane derives from it once, off the shards:
//! the resolved address of every upstream, and the shared state of every throttle.

use crate::limit;
use proto::table::{self, ArchivedTable, TableBytes};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

pub struct LoadedTable {
    bytes: TableBytes,
    /// Resolved address per upstream index; `None` when the name did not resolve.
    pub upstream_addrs: Vec<Option<SocketAddr>>,
    /// Throttle state per limit index, shared by all shards.
    pub limits: Vec<Arc<limit::Cell>>,
}

impl LoadedTable {
    /// Validates the bytes and resolves upstream names (a blocking DNS lookup: never call this
    /// on a shard). A throttle that `previous` also has (same stable id) keeps its state, so
    /// a new table neither refills nor empties a bucket.
    pub fn load(bytes: &[u8], previous: Option<&LoadedTable>) -> Result<LoadedTable, table::DecodeError> {
        let bytes = table::decode(bytes)?;
        let upstream_addrs = bytes
            .get()
            .upstreams
            .iter()
            .map(|u| {
                let host = u.host.as_str().trim_start_matches('[').trim_end_matches(']');
                let resolved = (host, u.port.to_native()).to_socket_addrs().ok().and_then(|mut a| a.next());
                if resolved.is_none() {
                    eprintln!(
                        "warning: upstream {}:{} does not resolve; its routes answer 502",
                        u.host, u.port
                    );
                }
                resolved
            })
            .collect();
        // id -> (cell, interval, burst) of the previous table's throttles.
        let surviving: HashMap<u64, (Arc<limit::Cell>, u64, u64)> = previous
            .map(|p| {
                let specs = p.get().limits.iter();
                specs
                    .zip(p.limits.iter())
                    .map(|(l, cell)| {
                        (l.id.to_native(), (cell.clone(), l.interval_ns.to_native(), l.burst.to_native()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let now = limit::now_ns();
        let limits = bytes
            .get()
            .limits
            .iter()
            .map(|l| {
                let new = (l.interval_ns.to_native(), l.burst.to_native());
                match surviving.get(&l.id.to_native()) {
                    // Unchanged: the very same cell, so shards on either table share it.
                    Some((cell, interval, burst)) if (*interval, *burst) == new => cell.clone(),
                    // Changed: a new cell starting from the old one's level. Until every shard
                    // has swapped (one sweeper tick), shards still on the old table use the old
                    // cell: for that moment a changed throttle may admit from both.
                    Some((cell, interval, burst)) => Arc::new(cell.rescaled(now, (*interval, *burst), new)),
                    None => Arc::default(),
                }
            })
            .collect();
        Ok(LoadedTable { bytes, upstream_addrs, limits })
    }

    pub fn get(&self) -> &ArchivedTable {
        self.bytes.get()
    }

    /// Size of the encoded table.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Takes a token from each throttle in order (AWS order: method, then stage, then account);
    /// false at the first one that is empty. Tokens taken from the levels already passed stay
    /// taken, as AWS counts them; levels after a refusal are not touched.
    pub fn admit(&self, limits: &[Option<u32>]) -> bool {
        let mut now = None;
        for index in limits.iter().flatten() {
            let spec = &self.get().limits[*index as usize];
            let now = *now.get_or_insert_with(limit::now_ns);
            if !self.limits[*index as usize].admit(now, spec.interval_ns.to_native(), spec.burst.to_native())
            {
                return false;
            }
        }
        true
    }
}
