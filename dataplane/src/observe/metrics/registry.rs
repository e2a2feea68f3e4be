//! The data plane's per-method totals since start: the shards' exports merged, off the shards.
//! Read by `/metrics` and by the reporter that sends them to the control plane; each read
//! first merges what the shards sent since the last one.

use super::recorder::{Counts, Export, Labels};
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub struct Method {
    pub labels: Labels,
    pub counts: Counts,
    pub latency: Histogram<u64>,
    pub integration: Histogram<u64>,
}

pub struct Registry {
    inbox: crossbeam_channel::Receiver<Vec<Export>>,
    methods: Mutex<HashMap<u64, Method>>,
}

impl Registry {
    /// The registry and the sender every shard's recorder exports to.
    pub fn new() -> (Arc<Registry>, crossbeam_channel::Sender<Vec<Export>>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Arc::new(Registry { inbox: rx, methods: Mutex::default() }), tx)
    }

    /// Runs `f` over every method seen so far, sorted by labels, after merging what arrived.
    pub fn read<R>(&self, f: impl FnOnce(&[&Method]) -> R) -> R {
        let mut methods = self.methods.lock().unwrap_or_else(|p| p.into_inner());
        for batch in self.inbox.try_iter() {
            for export in batch {
                merge(&mut methods, export);
            }
        }
        let mut sorted: Vec<&Method> = methods.values().collect();
        sorted.sort_by(|a, b| {
            let key = |m: &Method| (m.labels.api.clone(), m.labels.stage.clone(), m.labels.route.clone());
            key(a).cmp(&key(b)).then_with(|| a.labels.method.cmp(&b.labels.method))
        });
        f(&sorted)
    }
}

fn merge(methods: &mut HashMap<u64, Method>, export: Export) {
    let method = match (methods.get_mut(&export.route_id), export.labels) {
        (Some(m), _) => m,
        (None, Some(labels)) => methods.entry(export.route_id).or_insert_with(|| Method {
            labels,
            counts: Counts::default(),
            latency: wide(),
            integration: wide(),
        }),
        // A shard's first export of a method carries its labels and comes first.
        (None, None) => return,
    };
    method.counts.add(&export.counts);
    add(&mut method.latency, &export.latency);
    add(&mut method.integration, &export.integration);
}

/// Adds a shard's histogram (32-bit counts) into a total (64-bit counts) of the same bounds.
fn add(total: &mut Histogram<u64>, shard: &Histogram<u32>) {
    for v in shard.iter_recorded() {
        total.saturating_record_n(v.value_iterated_to(), u64::from(v.count_at_value()));
    }
}

fn wide() -> Histogram<u64> {
    let shard = super::recorder::histogram();
    Histogram::new_from(&shard)
}
