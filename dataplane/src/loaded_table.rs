//! A validated routing table plus what the data plane derives from it once, off the shards:
//! the resolved address of every upstream.

use proto::table::{self, ArchivedTable, TableBytes};
use std::net::{SocketAddr, ToSocketAddrs};

pub struct LoadedTable {
    bytes: TableBytes,
    /// Resolved address per upstream index; `None` when the name did not resolve.
    pub upstream_addrs: Vec<Option<SocketAddr>>,
}

impl LoadedTable {
    /// Validates the bytes and resolves upstream names (a blocking DNS lookup: never call this
    /// on a shard).
    pub fn load(bytes: &[u8]) -> Result<LoadedTable, table::DecodeError> {
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
        Ok(LoadedTable { bytes, upstream_addrs })
    }

    pub fn get(&self) -> &ArchivedTable {
        self.bytes.get()
    }

    /// Size of the encoded table.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }
}
