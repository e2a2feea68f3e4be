//! A shard's per-method metrics: counts by status class, throttled and cache counts, and
//! `Latency` / `IntegrationLatency` HdrHistograms in microseconds. Recording is a map lookup
//! and a few increments on the shard's own memory: no atomic, no lock. Once a second the
//! shard's tick hands what it recorded to the [`Registry`](super::registry::Registry) over a
//! channel and starts afresh, so merging happens off the shard.

use crate::observe::trail::{CacheUse, Trail};
use crate::runtime::hashed::HashedMap;
use hdrhistogram::Histogram;

/// Longest latency a histogram tells apart (10 minutes); longer ones count as this.
const MAX_LATENCY_US: u64 = 600_000_000;

/// A method's identity in the metrics: the labels `api`, `stage`, `route` (the resource
/// path) and `method`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub api: Box<str>,
    pub stage: Box<str>,
    pub route: Box<str>,
    pub method: Box<str>,
}

impl Labels {
    pub fn new(api: &str, stage: &str, route_key: &str) -> Labels {
        let (method, route) = route_key.split_once(' ').unwrap_or(("ANY", route_key));
        Labels { api: api.into(), stage: stage.into(), route: route.into(), method: method.into() }
    }
}

/// Counts since the last export (or, in the registry, since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Responses by status class: 1xx .. 5xx.
    pub by_class: [u64; 5],
    pub throttled: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Sum of latencies, for the summaries' `_sum`.
    pub latency_sum_us: u64,
    pub integration_sum_us: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            *a += b;
        }
        self.throttled += other.throttled;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.latency_sum_us += other.latency_sum_us;
        self.integration_sum_us += other.integration_sum_us;
    }

    pub fn requests(&self) -> u64 {
        self.by_class.iter().sum()
    }
}

pub fn histogram() -> Histogram<u32> {
    // Two significant digits: 1% resolution, 11 KiB per histogram.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 2).expect("static histogram bounds are valid")
}

/// What a shard recorded for one method since its last export.
pub struct Export {
    pub route_id: u64,
    /// Sent with a method's first export from this shard.
    pub labels: Option<Labels>,
    pub counts: Counts,
    pub latency: Histogram<u32>,
    pub integration: Histogram<u32>,
}

struct Method {
    /// Labels not sent yet (a method's first export carries them).
    unsent_labels: Option<Labels>,
    counts: Counts,
    latency: Histogram<u32>,
    integration: Histogram<u32>,
    /// Recorded since the last export.
    dirty: bool,
    /// Exports since it was last used; an unused method's memory is given back after a while.
    idle_exports: u32,
}

/// Exports (seconds) after which a method no request used is dropped from the shard.
const IDLE_EXPORTS: u32 = 300;

pub struct Recorder {
    methods: HashedMap<Method>,
    exports: crossbeam_channel::Sender<Vec<Export>>,
}

impl Recorder {
    pub fn new(exports: crossbeam_channel::Sender<Vec<Export>>) -> Recorder {
        Recorder { methods: HashedMap::default(), exports }
    }

    /// Records one answered request of the method `route_id`. `labels` is called only the
    /// first time the shard sees the method.
    pub fn record(&mut self, route_id: u64, labels: impl FnOnce() -> Labels, trail: &Trail, latency_us: u64) {
        let method = self.methods.entry(route_id).or_insert_with(|| Method {
            unsent_labels: Some(labels()),
            counts: Counts::default(),
            latency: histogram(),
            integration: histogram(),
            dirty: false,
            idle_exports: 0,
        });
        method.dirty = true;
        let counts = &mut method.counts;
        let class = (trail.status.get() / 100).clamp(1, 5) as usize - 1;
        counts.by_class[class] += 1;
        counts.throttled += u64::from(trail.throttled.get());
        match trail.cache.get() {
            CacheUse::Hit => counts.cache_hits += 1,
            CacheUse::Miss => counts.cache_misses += 1,
            CacheUse::None => {}
        }
        counts.latency_sum_us += latency_us;
        method.latency.saturating_record(latency_us.max(1));
        if let Some(us) = trail.integration_us.get() {
            counts.integration_sum_us += us;
            method.integration.saturating_record(us.max(1));
        }
    }

    /// Hands everything recorded since the last export to the registry (from the tick, once a
    /// second): the counts and histograms of each method used, replaced by empty ones.
    pub fn export(&mut self) {
        let mut batch = Vec::new();
        self.methods.retain(|_, m| {
            m.idle_exports = if m.dirty { 0 } else { m.idle_exports + 1 };
            m.idle_exports < IDLE_EXPORTS
        });
        for (route_id, method) in self.methods.iter_mut().filter(|(_, m)| m.dirty) {
            method.dirty = false;
            batch.push(Export {
                route_id: *route_id,
                labels: method.unsent_labels.take(),
                counts: std::mem::take(&mut method.counts),
                latency: std::mem::replace(&mut method.latency, histogram()),
                integration: std::mem::replace(&mut method.integration, histogram()),
            });
        }
        if !batch.is_empty() {
            // The registry lives as long as the process; a send cannot fail before exit.
            let _ = self.exports.send(batch);
        }
    }
}
