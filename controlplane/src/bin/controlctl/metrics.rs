//! Per-method metrics: `metrics` once, `top` refreshed in place.

use super::output::{print_structured, print_table};
use super::{connect, Failure, Output, Target};
use controlplane::metrics_table;
use proto::grpc;
use std::time::{Duration, Instant};

pub(crate) async fn metrics(
    server: &Target,
    api: Option<String>,
    stage: Option<String>,
    output: Output,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let req = grpc::GetMetricsRequest { api: api.unwrap_or_default(), stage: stage.unwrap_or_default() };
    let resp = client.get_metrics(req).await?.into_inner();
    match output {
        Output::Table => {
            println!("{} data plane(s)", resp.dataplanes);
            print_table(&metrics_table::header(false), &metrics_table::rows(&resp, None));
        }
        _ => print_structured(&metrics_json(&resp), output),
    }
    Ok(())
}

pub(crate) async fn top(
    server: &Target,
    api: Option<String>,
    stage: Option<String>,
    interval: f64,
    iterations: Option<u64>,
) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let req = grpc::GetMetricsRequest { api: api.unwrap_or_default(), stage: stage.unwrap_or_default() };
    let interval = Duration::from_secs_f64(interval.max(0.2));
    let mut previous: Option<(grpc::GetMetricsResponse, Instant)> = None;
    let mut shown = 0u64;
    loop {
        let resp = client.get_metrics(req.clone()).await?.into_inner();
        let since = previous.as_ref().map(|(p, at)| (p, at.elapsed()));
        // Clear the screen and go home, as top does.
        print!("\x1b[2J\x1b[H");
        println!("{} data plane(s), every {:.1} s", resp.dataplanes, interval.as_secs_f64());
        print_table(
            &metrics_table::header(true),
            &metrics_table::rows(&resp, since.or(Some((&resp, interval)))),
        );
        previous = Some((resp, Instant::now()));
        shown += 1;
        if iterations.is_some_and(|n| shown >= n) {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

fn metrics_json(resp: &grpc::GetMetricsResponse) -> serde_json::Value {
    let methods: Vec<serde_json::Value> = resp
        .methods
        .iter()
        .map(|m| {
            serde_json::json!({"api": m.api, "stage": m.stage, "route": m.route, "method": m.method,
                "count": m.count, "4xx": m.errors_4xx, "5xx": m.errors_5xx, "throttled": m.throttled,
                "cacheHits": m.cache_hits, "cacheMisses": m.cache_misses,
                "latencyUs": {"p50": m.latency_p50, "p90": m.latency_p90, "p99": m.latency_p99},
                "integrationLatencyUs": {"p50": m.integration_p50, "p90": m.integration_p90, "p99": m.integration_p99,
                    "count": m.integration_count}})
        })
        .collect();
    serde_json::json!({"dataplanes": resp.dataplanes, "methods": methods})
}
