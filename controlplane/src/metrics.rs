//! Per-method metrics from every data plane, in memory: each data-plane process (instance)
//! reports its cumulative totals, the latest report per instance is kept, and a query sums the
//! instances heard from in the last [`FRESH`]. Nothing here is durable: like `kubectl top`, it
//! is a live view, and a data plane's own `/metrics` is the source for long-term storage.

use hdrhistogram::Histogram;
use proto::grpc;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Instances not heard from for this long no longer count.
pub const FRESH: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct MetricsStore {
    latest: Mutex<HashMap<String, (Instant, grpc::MetricsReport)>>,
}

/// One method summed over instances.
struct Sum {
    counts: grpc::MethodMetrics,
    latency: Histogram<u64>,
    integration: Histogram<u64>,
}

impl MetricsStore {
    pub fn record(&self, report: grpc::MetricsReport) {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        latest.retain(|_, (at, _)| now.duration_since(*at) < FRESH);
        latest.insert(report.instance.clone(), (now, report));
    }

    /// Every method of `api` (all when empty) on `stage` (all when empty), sorted.
    pub fn summary(&self, api: &str, stage: &str) -> grpc::GetMetricsResponse {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let fresh: Vec<&grpc::MetricsReport> =
            latest.values().filter(|(at, _)| now.duration_since(*at) < FRESH).map(|(_, r)| r).collect();
        let mut sums: BTreeMap<(String, String, String, String), Sum> = BTreeMap::new();
        for report in &fresh {
            for m in &report.methods {
                if (!api.is_empty() && m.api != api) || (!stage.is_empty() && m.stage != stage) {
                    continue;
                }
                let key = (m.api.clone(), m.stage.clone(), m.route.clone(), m.method.clone());
                let sum = sums.entry(key).or_insert_with(|| Sum {
                    counts: grpc::MethodMetrics { by_class: vec![0; 5], ..Default::default() },
                    latency: histogram(),
                    integration: histogram(),
                });
                add(sum, m);
            }
        }
        let methods = sums
            .into_iter()
            .map(|((api, stage, route, method), s)| {
                let c = &s.counts;
                let q = |h: &Histogram<u64>, q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
                grpc::MethodSummary {
                    api,
                    stage,
                    route,
                    method,
                    count: c.by_class.iter().sum(),
                    errors_4xx: c.by_class[3],
                    errors_5xx: c.by_class[4],
                    throttled: c.throttled,
                    cache_hits: c.cache_hits,
                    cache_misses: c.cache_misses,
                    latency_p50: q(&s.latency, 0.5),
                    latency_p90: q(&s.latency, 0.9),
                    latency_p99: q(&s.latency, 0.99),
                    integration_p50: q(&s.integration, 0.5),
                    integration_p90: q(&s.integration, 0.9),
                    integration_p99: q(&s.integration, 0.99),
                    integration_count: s.integration.len(),
                }
            })
            .collect();
        grpc::GetMetricsResponse { methods, dataplanes: fresh.len() as u32 }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("static histogram bounds are valid")
}

fn add(sum: &mut Sum, m: &grpc::MethodMetrics) {
    for (total, n) in sum.counts.by_class.iter_mut().zip(&m.by_class) {
        *total += n;
    }
    sum.counts.throttled += m.throttled;
    sum.counts.cache_hits += m.cache_hits;
    sum.counts.cache_misses += m.cache_misses;
    for (histogram, from) in [(&mut sum.latency, &m.latency), (&mut sum.integration, &m.integration)] {
        if let Some(h) = from {
            for (value, count) in h.values.iter().zip(&h.counts) {
                histogram.saturating_record_n(*value, *count);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(instance: &str, count_2xx: u64, latencies: &[(u64, u64)]) -> grpc::MetricsReport {
        grpc::MetricsReport {
            dataplane_id: "dp".into(),
            instance: instance.into(),
            methods: vec![grpc::MethodMetrics {
                api: "a".into(),
                stage: "s".into(),
                route: "/x".into(),
                method: "GET".into(),
                by_class: vec![0, count_2xx, 0, 1, 0],
                latency: Some(grpc::Histogram {
                    values: latencies.iter().map(|l| l.0).collect(),
                    counts: latencies.iter().map(|l| l.1).collect(),
                }),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn instances_are_summed_and_a_newer_report_replaces_an_older() {
        let store = MetricsStore::default();
        store.record(report("one", 5, &[(100, 5)]));
        store.record(report("two", 3, &[(10_000, 3)]));
        store.record(report("one", 7, &[(100, 7)]));
        let summary = store.summary("a", "");
        assert_eq!(summary.dataplanes, 2);
        let m = &summary.methods[0];
        assert_eq!((m.count, m.errors_4xx), (7 + 3 + 2, 2));
        assert_eq!(m.latency_p50, 100);
        assert!((9_900..=10_100).contains(&m.latency_p99), "{}", m.latency_p99);
        assert!(store.summary("other", "").methods.is_empty());
    }
}
