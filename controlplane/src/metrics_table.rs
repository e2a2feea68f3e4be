//! The table `controlctl metrics` and `controlctl top` print: one row per method, with
//! counts, error rates, cache hit rate and latency percentiles; `top` adds the request rate
//! since its previous refresh.

use proto::grpc;
use std::collections::HashMap;
use std::time::Duration;

pub const HEADER: [&str; 11] = [
    "API",
    "STAGE",
    "METHOD",
    "ROUTE",
    "COUNT",
    "4XX",
    "5XX",
    "THROTTLED",
    "CACHE HIT",
    "LATENCY p50/p90/p99",
    "INTEGRATION p50/p90/p99",
];

/// The rows for `metrics`; with `previous` (the last refresh and the time since), a REQ/S
/// column after COUNT.
pub fn rows(
    now: &grpc::GetMetricsResponse,
    previous: Option<(&grpc::GetMetricsResponse, Duration)>,
) -> Vec<Vec<String>> {
    let before: HashMap<(&str, &str, &str, &str), u64> = previous
        .map(|(p, _)| {
            p.methods.iter().map(|m| ((&*m.api, &*m.stage, &*m.route, &*m.method), m.count)).collect()
        })
        .unwrap_or_default();
    now.methods
        .iter()
        .map(|m| {
            let share = |n: u64, of: u64| {
                if of == 0 {
                    "-".to_string()
                } else {
                    format!("{:.1}%", 100.0 * n as f64 / of as f64)
                }
            };
            let cached = m.cache_hits + m.cache_misses;
            let mut row = vec![
                m.api.clone(),
                m.stage.clone(),
                m.method.clone(),
                m.route.clone(),
                m.count.to_string(),
                share(m.errors_4xx, m.count),
                share(m.errors_5xx, m.count),
                m.throttled.to_string(),
                share(m.cache_hits, cached),
                percentiles(m.latency_p50, m.latency_p90, m.latency_p99, m.count),
                percentiles(m.integration_p50, m.integration_p90, m.integration_p99, m.integration_count),
            ];
            if let Some((_, elapsed)) = previous {
                let was = before.get(&(&*m.api, &*m.stage, &*m.route, &*m.method)).copied().unwrap_or(0);
                let rate = m.count.saturating_sub(was) as f64 / elapsed.as_secs_f64().max(1e-3);
                row.insert(5, format!("{rate:.1}"));
            }
            row
        })
        .collect()
}

/// The header, with REQ/S when rates are shown.
pub fn header(with_rate: bool) -> Vec<&'static str> {
    let mut header = HEADER.to_vec();
    if with_rate {
        header.insert(5, "REQ/S");
    }
    header
}

/// `1.2/3.4/10 ms`, or `-` when nothing was measured.
fn percentiles(p50: u64, p90: u64, p99: u64, count: u64) -> String {
    if count == 0 {
        return "-".into();
    }
    let ms = |us: u64| {
        let ms = us as f64 / 1000.0;
        if ms >= 100.0 {
            format!("{ms:.0}")
        } else if ms >= 10.0 {
            format!("{ms:.1}")
        } else {
            format!("{ms:.2}")
        }
    };
    format!("{}/{}/{} ms", ms(p50), ms(p90), ms(p99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_rates_shares_and_milliseconds() {
        let m = grpc::MethodSummary {
            api: "a".into(),
            stage: "s".into(),
            route: "/x".into(),
            method: "GET".into(),
            count: 200,
            errors_4xx: 10,
            errors_5xx: 0,
            cache_hits: 3,
            cache_misses: 1,
            latency_p50: 250,
            latency_p90: 12_345,
            latency_p99: 200_000,
            ..Default::default()
        };
        let now = grpc::GetMetricsResponse { methods: vec![m.clone()], dataplanes: 1 };
        let row = &rows(&now, None)[0];
        assert_eq!(row[4..].to_vec(), ["200", "5.0%", "0.0%", "0", "75.0%", "0.25/12.3/200 ms", "-"]);
        let before = grpc::GetMetricsResponse {
            methods: vec![grpc::MethodSummary { count: 100, ..m }],
            dataplanes: 1,
        };
        let row = &rows(&now, Some((&before, Duration::from_secs(2))))[0];
        assert_eq!(row[5], "50.0");
        assert_eq!(header(true).len(), row.len());
    }
}
