//! Sends the data plane's per-method totals to the control plane every `MetricsReporter::interval` (2 s by default), on its
//! own thread, for `controlctl metrics` and `controlctl top`. The totals are cumulative, so a
//! lost report costs nothing but freshness; nothing is kept on disk.

use crate::observe::metrics::registry::{Method, Registry};
use hdrhistogram::Histogram;
use proto::grpc;
use std::sync::Arc;
use std::time::Duration;

pub struct MetricsReporter {
    pub control_plane: super::client::Target,
    pub dataplane_id: String,
    /// One per process start, so the control plane replaces this run's previous report.
    pub instance: String,
    pub registry: Arc<Registry>,
    pub interval: Duration,
}

pub fn start(reporter: MetricsReporter) -> Result<(), String> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("metrics-report".into())
        .spawn(move || runtime.block_on(run(reporter)))
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn run(reporter: MetricsReporter) {
    let mut client: Option<proto::client::Client> = None;
    loop {
        tokio::time::sleep(reporter.interval).await;
        let methods = reporter.registry.read(|methods| methods.iter().map(|m| to_proto(m)).collect());
        let report = grpc::MetricsReport {
            dataplane_id: reporter.dataplane_id.clone(),
            instance: reporter.instance.clone(),
            methods,
        };
        if client.is_none() {
            client = super::client::connect(&reporter.control_plane, super::client::Use::Report).await.ok();
        }
        if let Some(c) = client.as_mut() {
            if c.report_metrics(report).await.is_err() {
                // The usage reporter already says when the control plane is away.
                client = None;
            }
        }
    }
}

fn to_proto(m: &Method) -> grpc::MethodMetrics {
    let c = &m.counts;
    grpc::MethodMetrics {
        api: m.labels.api.to_string(),
        stage: m.labels.stage.to_string(),
        route: m.labels.route.to_string(),
        method: m.labels.method.to_string(),
        by_class: c.by_class.to_vec(),
        throttled: c.throttled,
        cache_hits: c.cache_hits,
        cache_misses: c.cache_misses,
        latency_sum_us: c.latency_sum_us,
        integration_sum_us: c.integration_sum_us,
        latency: Some(histogram(&m.latency)),
        integration: Some(histogram(&m.integration)),
    }
}

fn histogram(h: &Histogram<u64>) -> grpc::Histogram {
    let (values, counts) = h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).unzip();
    grpc::Histogram { values, counts }
}
