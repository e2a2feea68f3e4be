//! A validated routing table plus what the data plane derives from it once, off the shards:
//! the resolved address of every upstream, the shared state of every throttle and quota, the
//! stage caches, the per-method counters and the HTTPS sites. State whose identity survives a new table is
//! carried over from the previous one.

use crate::cache::store::Store;
use crate::limits::{quota, throttle as limit};
use proto::lookup;
use proto::quota as quota_rule;
use proto::table::{self, ArchivedTable, TableBytes};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

/// The table the shards serve (or are about to), as the admin port and the reporters see it
/// (set by whoever publishes).
pub type CurrentTable = Arc<Mutex<Option<Arc<LoadedTable>>>>;

pub struct LoadedTable {
    bytes: TableBytes,
    /// Resolved address per upstream index; `None` when the name did not resolve.
    pub upstream_addrs: Vec<Option<SocketAddr>>,
    /// The TLS client configuration per upstream index, for `https://` upstreams (`None` for
    /// plain ones, or when the settings could not be loaded: its routes answer 502). The same
    /// settings keep the same configuration across tables, and with it the sessions it can
    /// resume.
    pub upstream_tls: Vec<Option<Arc<rustls::ClientConfig>>>,
    /// Throttle state per limit index, shared by all shards.
    pub limits: Vec<Arc<limit::Cell>>,
    /// Quota count per API key index, for keys whose plan has a quota.
    pub quotas: Vec<Option<Arc<quota::Cell>>>,
    /// The cache store per stage index, for stages with a cache.
    pub caches: Vec<Option<Arc<Store>>>,
    /// The HTTPS sites of the table's domains (resumption carried from the previous table).
    pub tls: crate::tls::sites::Sites,
}

/// The TLS client configurations of the table's HTTPS upstreams; one whose settings `previous`
/// also has is the very same configuration.
fn upstream_tls(
    table: &ArchivedTable,
    previous: Option<&LoadedTable>,
) -> Vec<Option<Arc<rustls::ClientConfig>>> {
    // The settings as bytes: archived values have no Hash.
    let identity = |tls: &table::ArchivedUpstreamTls| {
        let mut key = vec![u8::from(tls.insecure_skip_verification)];
        key.extend_from_slice(tls.server_name.as_bytes());
        key.push(0);
        for ca in tls.ca_bundle.iter() {
            key.extend_from_slice(&(ca.len() as u32).to_le_bytes());
            key.extend_from_slice(ca);
        }
        key
    };
    let mut known: HashMap<Vec<u8>, Arc<rustls::ClientConfig>> = HashMap::new();
    if let Some(p) = previous {
        for (u, config) in p.get().upstreams.iter().zip(&p.upstream_tls) {
            if let (Some(tls), Some(config)) = (u.tls.as_ref(), config) {
                known.insert(identity(tls), config.clone());
            }
        }
    }
    table
        .upstreams
        .iter()
        .map(|u| {
            let tls = u.tls.as_ref()?;
            if let Some(config) = known.get(&identity(tls)) {
                return Some(config.clone());
            }
            match crate::tls::connect::client_config(tls) {
                Ok(config) => Some(Arc::new(config)),
                Err(e) => {
                    log::warn!(
                        "upstream {}:{}: TLS settings unusable ({e}); its routes answer 502",
                        u.host,
                        u.port
                    );
                    None
                }
            }
        })
        .collect()
}

/// What identifies a key's quota count across tables: the same key in the same plan, with
/// periods that start at the same moments (a changed limit keeps the count).
fn quota_identity(
    table: &ArchivedTable,
    key: &table::ArchivedApiKey,
) -> Option<(u64, u64, quota_rule::Rule)> {
    let plan = &table.plans[key.plan.as_ref()?.to_native() as usize];
    let rule = plan.quota.as_ref()?.rule();
    Some((key.id.to_native(), plan.id.to_native(), quota_rule::Rule { limit: 0, offset: 0, ..rule }))
}

impl LoadedTable {
    /// Validates the bytes and resolves upstream names (a blocking DNS lookup: never call this
    /// on a shard). A throttle that `previous` also has (same stable id) keeps its state, so
    /// a new table neither refills nor empties a bucket.
    pub fn load(
        bytes: &[u8],
        previous: Option<&LoadedTable>,
        shards: usize,
    ) -> Result<LoadedTable, table::DecodeError> {
        let bytes = table::decode(bytes)?;
        let upstream_addrs = bytes
            .get()
            .upstreams
            .iter()
            .map(|u| {
                let host = u.host.as_str().trim_start_matches('[').trim_end_matches(']');
                let resolved = (host, u.port.to_native()).to_socket_addrs().ok().and_then(|mut a| a.next());
                if resolved.is_none() {
                    log::warn!("upstream {}:{} does not resolve; its routes answer 502", u.host, u.port);
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
        let surviving: HashMap<_, Arc<quota::Cell>> = previous
            .map(|p| {
                let keys = p.get().api_keys.iter().zip(p.quotas.iter());
                keys.filter_map(|(k, cell)| Some((quota_identity(p.get(), k)?, cell.clone()?))).collect()
            })
            .unwrap_or_default();
        let quotas = bytes
            .get()
            .api_keys
            .iter()
            .map(|k| {
                let identity = quota_identity(bytes.get(), k)?;
                Some(surviving.get(&identity).cloned().unwrap_or_default())
            })
            .collect();
        let caches = carry_caches(bytes.get(), previous, shards);
        let tls = crate::tls::sites::Sites::build(bytes.get(), previous.map(|p| &p.tls));
        let upstream_tls = upstream_tls(bytes.get(), previous);
        Ok(LoadedTable { bytes, upstream_addrs, upstream_tls, limits, quotas, caches, tls })
    }

    pub fn get(&self) -> &ArchivedTable {
        self.bytes.get()
    }

    /// The table's SHA-256, which the control plane compares with its own.
    pub fn digest(&self) -> &[u8; 32] {
        self.bytes.digest()
    }

    /// Size of the encoded table.
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The index of the API key in `x-api-key` if it may call this stage: known, enabled, and
    /// in a usage plan that covers the stage (AWS answers 403 Forbidden otherwise).
    pub fn authorized_key(&self, x_api_key: Option<&[u8]>, stage: u32) -> Option<u32> {
        let hash: [u8; 32] = Sha256::digest(x_api_key?).into();
        let index = lookup::find_key(self.get(), &hash)?;
        let key = &self.get().api_keys[index as usize];
        let plan = &self.get().plans[key.plan.as_ref()?.to_native() as usize];
        let covered = plan.stages.binary_search_by(|s| s.to_native().cmp(&stage)).is_ok();
        (key.enabled && covered).then_some(index)
    }

    /// Counts one request against the key's quota, if its plan has one; false when the
    /// period's quota is used up.
    pub fn take_quota(&self, key: u32, now_unix_s: i64) -> bool {
        let Some(cell) = &self.quotas[key as usize] else { return true };
        let Some(rule) = self.quota_rule(key) else { return true };
        let period = rule.index(now_unix_s);
        cell.admit(period, rule.limit_in(period))
    }

    /// The quota rule of a key's plan.
    pub fn quota_rule(&self, key: u32) -> Option<quota_rule::Rule> {
        let table = self.get();
        let plan = table.api_keys[key as usize].plan.as_ref()?.to_native();
        table.plans[plan as usize].quota.as_ref().map(|q| q.rule())
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

/// A stage cache whose identity (stage, capacity, flush count) is unchanged keeps its store,
/// minus the entries of methods whose cache settings changed or that are gone. Every other
/// store of the previous table is retired: its entries stop answering at once.
fn carry_caches(
    table: &ArchivedTable,
    previous: Option<&LoadedTable>,
    shards: usize,
) -> Vec<Option<Arc<Store>>> {
    let mut old: HashMap<u64, Arc<Store>> =
        previous.map(|p| p.caches.iter().flatten().map(|s| (s.id, s.clone())).collect()).unwrap_or_default();
    let caches: Vec<Option<Arc<Store>>> = table
        .stages
        .iter()
        .map(|stage| {
            let settings = stage.cache.as_ref()?;
            let id = settings.id.to_native();
            let Some(store) = old.remove(&id) else {
                return Some(Arc::new(Store::new(id, settings.capacity_bytes.to_native(), shards)));
            };
            let kept: std::collections::HashSet<u64> = stage
                .routes
                .routes
                .iter()
                .filter_map(|r| r.cache.as_ref().map(|c| c.id.to_native()))
                .collect();
            store.retain_routes(|route| kept.contains(&route));
            Some(store)
        })
        .collect();
    for store in old.values() {
        store.retire();
    }
    caches
}
