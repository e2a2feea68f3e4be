//! Per-method metrics after a scripted mix of requests: exact counts by status class,
//! throttled and cache counts, and latency histograms that place a delayed origin's latency
//! in the right range.

use crate::{read_metric, settle_metrics};
use gateway_tests::{Dataplane, Origin};
use std::net::SocketAddr;

fn manifest(origin: SocketAddr) -> String {
    format!(
        "kind: Api\nname: m\nroutes:\n  \
         GET /ok:\n    integration: {{ type: MOCK, response: {{ body: ok }} }}\n  \
         GET /missing:\n    integration: {{ type: MOCK, response: {{ status: 404, body: no }} }}\n  \
         GET /boom:\n    integration: {{ type: HTTP_PROXY, uri: \"http://{origin}/status/500\" }}\n  \
         GET /slow:\n    integration: {{ type: HTTP_PROXY, uri: \"http://{origin}/delay/200\" }}\n  \
         GET /limited:\n    integration: {{ type: MOCK, response: {{ body: l }} }}\n    throttle: {{ rate: 0.01, burst: 2 }}\n  \
         GET /cached:\n    integration: {{ type: HTTP_PROXY, uri: \"http://{origin}/x\" }}\n    cache: {{ ttl: 60s }}\n\
         ---\nkind: Stage\napi: m\nname: s\ncache: {{ enabled: true, ttl: 0s }}\n\
         ---\nkind: Domain\nname: 127.0.0.1\nmappings:\n  - {{ basePath: \"\", api: m, stage: s }}\n"
    )
}

/// The script: (path, times).
const SCRIPT: &[(&str, usize)] =
    &[("/ok", 5), ("/missing", 3), ("/boom", 2), ("/slow", 4), ("/limited", 5), ("/cached", 3), ("/nope", 2)];

fn series(dp: &Dataplane, name: &str, route: &str, extra: &[&str]) -> u64 {
    let route = format!("route=\"{route}\"");
    let mut labels = vec!["api=\"m\"", "stage=\"s\"", "method=\"GET\"", route.as_str()];
    labels.extend_from_slice(extra);
    read_metric(dp, name, &labels)
}

fn quantile(dp: &Dataplane, name: &str, route: &str, q: &str) -> u64 {
    series(dp, name, route, &[&format!("quantile=\"{q}\"")])
}

#[test]
fn counts_by_method_and_status_class_are_exact_and_latencies_land_in_range() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut client = dp.client();
    for (path, times) in SCRIPT {
        for _ in 0..*times {
            client.get("127.0.0.1", path);
        }
    }
    settle_metrics();
    let requests = |route: &str, class: &str| {
        series(&dp, "gateway_method_requests_total", route, &[&format!("status_class=\"{class}\"")])
    };
    assert_eq!(requests("/ok", "2xx"), 5);
    assert_eq!(requests("/missing", "4xx"), 3);
    assert_eq!(requests("/boom", "5xx"), 2);
    assert_eq!(requests("/slow", "2xx"), 4);
    assert_eq!((requests("/limited", "2xx"), requests("/limited", "4xx")), (2, 3));
    assert_eq!(series(&dp, "gateway_method_throttled_total", "/limited", &[]), 3);
    assert_eq!(requests("/cached", "2xx"), 3);
    assert_eq!(series(&dp, "gateway_cache_misses_total", "/cached", &[]), 1);
    assert_eq!(series(&dp, "gateway_cache_hits_total", "/cached", &[]), 2);
    assert_eq!(series(&dp, "gateway_cache_hits_total", "/ok", &[]), 0);
    // Nothing else was counted per method: the two unknown routes have no method.
    let all = read_metric(&dp, "gateway_method_requests_total", &["api=\"m\""]);
    assert_eq!(all, 22, "5 + 3 + 2 + 4 + 5 + 3");

    // The origin waits 200 ms: both latencies of /slow are 200 ms and a little, the
    // integration's within the request's; a MOCK answer takes well under 10 ms.
    for q in ["0.5", "0.99"] {
        let latency = quantile(&dp, "gateway_method_latency_microseconds", "/slow", q);
        let integration = quantile(&dp, "gateway_method_integration_latency_microseconds", "/slow", q);
        assert!((200_000..260_000).contains(&latency), "p{q} latency {latency} us");
        assert!((200_000..260_000).contains(&integration), "p{q} integration {integration} us");
        assert!(integration <= latency + latency / 50, "integration {integration} within latency {latency}");
        let mock = quantile(&dp, "gateway_method_latency_microseconds", "/ok", q);
        assert!(mock < 10_000, "p{q} MOCK latency {mock} us");
    }
    assert_eq!(series(&dp, "gateway_method_latency_microseconds_count", "/slow", &[]), 4);
    let sum = series(&dp, "gateway_method_latency_microseconds_sum", "/slow", &[]);
    assert!((800_000..1_040_000).contains(&sum), "4 x 200 ms and a little: {sum}");
    assert_eq!(series(&dp, "gateway_method_integration_latency_microseconds_count", "/ok", &[]), 0);
}

/// The header named `name` the origin received, from its echo.
fn received(response: &gateway_tests::Response, name: &str) -> Vec<String> {
    let echo = response.json();
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .map(|h| h[1].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn tracing_headers_are_forwarded_or_generated() {
    let origin = Origin::start();
    let manifest = format!(
        "kind: Api\nname: t\nroutes:\n  GET /echo:\n    integration: {{ type: HTTP_PROXY, uri: \"http://{}/echo\" }}\n\
         ---\nkind: Stage\napi: t\nname: s\n---\nkind: Domain\nname: 127.0.0.1\nmappings:\n  - {{ basePath: \"\", api: t, stage: s }}\n",
        origin.addr
    );
    let dp = Dataplane::start(&manifest);
    let mut client = dp.client();
    // None sent: both generated, in their formats, and different per request.
    let a = client.get("127.0.0.1", "/echo");
    let b = client.get("127.0.0.1", "/echo");
    for r in [&a, &b] {
        let tp = received(r, "traceparent");
        assert_eq!(tp.len(), 1);
        let parts: Vec<&str> = tp[0].split('-').collect();
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"), "{tp:?}");
        let xray = received(r, "x-amzn-trace-id");
        assert!(xray.len() == 1 && xray[0].starts_with("Root=1-") && xray[0].len() == 40, "{xray:?}");
    }
    assert_ne!(received(&a, "traceparent"), received(&b, "traceparent"));
    // Valid ones are forwarded untouched; a malformed traceparent is replaced.
    let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1";
    let r = client.request(&format!(
        "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\ntraceparent: {good}\r\nX-Amzn-Trace-Id: {xray}\r\n\r\n"
    ));
    assert_eq!(received(&r, "traceparent"), vec![good.to_string()]);
    assert_eq!(received(&r, "x-amzn-trace-id"), vec![xray.to_string()]);
    let r = client.request("GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\ntraceparent: 00-zz-yy-01\r\n\r\n");
    let tp = received(&r, "traceparent");
    assert!(tp.len() == 1 && tp[0] != "00-zz-yy-01" && tp[0].len() == 55, "{tp:?}");
    assert!(r.header("x-amzn-RequestId").is_some());
}

#[test]
fn controlctl_metrics_sums_every_data_plane() {
    let origin = Origin::start();
    let work = gateway_tests::process::TempDir::new("metrics-cp");
    let cp = gateway_tests::ControlPlane::start(&work.0.join("data"));
    let (state_a, state_b) = (
        gateway_tests::process::TempDir::new("metrics-a"),
        gateway_tests::process::TempDir::new("metrics-b"),
    );
    let a = crate::follower(&cp, &state_a);
    let b = crate::follower(&cp, &state_b);
    cp.apply(&work.0, &manifest(origin.addr));
    for (dp, slow) in [(&a, 3), (&b, 1)] {
        let mut client = dp.client();
        for _ in 0..slow {
            assert_eq!(client.get("127.0.0.1", "/slow").status, 200);
        }
        for _ in 0..2 {
            assert_eq!(client.get("127.0.0.1", "/missing").status, 404);
        }
        assert_eq!(client.get("127.0.0.1", "/boom").status, 500);
        // Each data plane has its own buckets (burst 2) and its own cache.
        let limited: Vec<u16> = (0..3).map(|_| client.get("127.0.0.1", "/limited").status).collect();
        assert_eq!(limited, [200, 200, 429]);
        for _ in 0..2 {
            assert_eq!(client.get("127.0.0.1", "/cached").status, 200);
        }
    }
    // Shards export every second, data planes report every 2 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let find = |json: &serde_json::Value, route: &str| {
        json["methods"].as_array().unwrap().iter().find(|m| m["route"] == route).cloned().unwrap_or_default()
    };
    let json = loop {
        let (code, out, err) = cp.ctl(&["metrics", "m", "--stage", "s", "-o", "json"]);
        assert_eq!(code, 0, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        let done = json["dataplanes"] == 2
            && find(&json, "/slow")["count"] == 4
            && find(&json, "/missing")["count"] == 4
            && find(&json, "/boom")["count"] == 2
            && find(&json, "/limited")["count"] == 6
            && find(&json, "/cached")["count"] == 4;
        if done || std::time::Instant::now() > deadline {
            break json;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let (slow, missing, boom) = (find(&json, "/slow"), find(&json, "/missing"), find(&json, "/boom"));
    assert_eq!((json["dataplanes"].as_u64(), slow["count"].as_u64()), (Some(2), Some(4)), "{json}");
    assert_eq!((missing["count"].as_u64(), missing["4xx"].as_u64()), (Some(4), Some(4)));
    assert_eq!((boom["count"].as_u64(), boom["5xx"].as_u64()), (Some(2), Some(2)));
    let (limited, cached) = (find(&json, "/limited"), find(&json, "/cached"));
    assert_eq!((limited["count"].as_u64(), limited["throttled"].as_u64()), (Some(6), Some(2)));
    assert_eq!((limited["4xx"].as_u64(), limited["5xx"].as_u64()), (Some(2), Some(0)));
    assert_eq!((cached["cacheHits"].as_u64(), cached["cacheMisses"].as_u64()), (Some(2), Some(2)));
    let p50 = slow["latencyUs"]["p50"].as_u64().unwrap();
    let integration_p99 = slow["integrationLatencyUs"]["p99"].as_u64().unwrap();
    assert!((200_000..260_000).contains(&p50), "p50 {p50}");
    assert!((200_000..260_000).contains(&integration_p99), "integration p99 {integration_p99}");
    // The table and one frame of `top`.
    let (code, out, _) = cp.ctl(&["metrics"]);
    assert_eq!(code, 0);
    assert!(out.contains("2 data plane(s)") && out.contains("LATENCY p50/p90/p99"), "{out}");
    let row = out.lines().find(|l| l.contains("/missing")).unwrap();
    assert!(row.contains("100.0%"), "all 4xx: {row}");
    let (code, out, _) = cp.ctl(&["top", "m", "--iterations", "1"]);
    assert_eq!(code, 0);
    assert!(out.contains("REQ/S") && out.contains("/slow"), "{out}");
}
