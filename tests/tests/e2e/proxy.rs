use crate::manifest;
use gateway_tests::{Dataplane, Origin};
use serde_json::Value;
use std::time::{Duration, Instant};

fn header<'a>(echo: &'a Value, name: &str) -> Vec<&'a str> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|h| h[1].as_str().unwrap())
        .collect()
}

#[test]
fn http_proxy_passes_the_request_through() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let r = c.request(
        "PUT /echo/a/b%20c?x=1&y=two HTTP/1.1\r\nHost: localhost\r\nX-Custom: Kept\r\nConnection: keep-alive, X-Drop\r\nX-Drop: gone\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Forwarded-For: 10.0.0.1\r\nContent-Length: 4\r\n\r\nbody",
    );
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["target"], "/a/b%20c?x=1&y=two");
    assert_eq!(echo["body"], "body");
    assert_eq!(header(&echo, "x-custom"), vec!["Kept"]);
    assert_eq!(header(&echo, "host"), vec![origin.addr.to_string()]);
    assert_eq!(header(&echo, "x-forwarded-for"), vec!["10.0.0.1, 127.0.0.1"]);
    assert_eq!(header(&echo, "x-forwarded-proto"), vec!["http"]);
    assert_eq!(header(&echo, "x-forwarded-port"), vec![dp.addr.port().to_string()]);
    assert_eq!(header(&echo, "content-length"), vec!["4"]);
    for hop in ["connection", "keep-alive", "te", "upgrade", "x-drop", "transfer-encoding"] {
        assert!(header(&echo, hop).is_empty(), "{hop} was forwarded");
    }
    let request_id = r.header("x-amzn-RequestId").unwrap();
    assert_eq!(header(&echo, "x-amzn-requestid"), vec![request_id], "the backend sees the request id");
    // The upstream's headers come back, minus hop-by-hop ones; its request id is remapped.
    assert_eq!(r.header("x-origin"), Some("yes"));
    assert_eq!(r.header("keep-alive"), None);
    assert_eq!(r.headers_named("x-amzn-RequestId").len(), 1);
    assert_eq!(r.header("x-amzn-Remapped-x-amzn-RequestId"), Some("origin-id"));
}

#[test]
fn upstream_status_and_framings_are_relayed() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    assert_eq!(c.get("localhost", "/echo/status/404").status, 404);
    assert_eq!(c.get("localhost", "/echo/status/503").status, 503);
    let chunked = c.get("localhost", "/echo/chunked");
    assert_eq!(chunked.json()["target"], "/chunked");
    assert!(chunked.header("transfer-encoding").is_none());
    let until_close = c.get("localhost", "/echo/until-close");
    assert_eq!(until_close.json()["target"], "/until-close");
    let closing = c.get("localhost", "/echo/close-after");
    assert_eq!(closing.json()["target"], "/close-after");
    // HEAD: no body, the upstream's length.
    c.send(b"HEAD /echo/x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = c.read_response_to(true).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.header("content-length").unwrap().parse::<usize>().unwrap() > 0);
    // The connection is still in sync after all of that.
    assert_eq!(c.get("localhost", "/one").text(), "one");
}

#[test]
fn upstream_connections_are_pooled_and_reused() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    for i in 0..50 {
        assert_eq!(c.get("localhost", &format!("/pets/{i}")).json()["target"], format!("/pets/{i}"));
    }
    assert_eq!(origin.requests(), 50);
    assert_eq!(origin.connections(), 1, "one client connection lives on one shard: one upstream connection");
    let (_, metrics) = dp.admin_get("/metrics");
    let ratio: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gateway_upstream_reuse_ratio "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((ratio - 49.0 / 50.0).abs() < 1e-3, "reuse ratio {ratio}");
    // The upstream closes its side after a response: the next request opens a new connection
    // transparently.
    assert_eq!(c.get("localhost", "/echo/close-after").status, 200);
    assert_eq!(c.get("localhost", "/pets/x").status, 200);
    assert_eq!(origin.connections(), 2);
}

#[test]
fn a_pooled_connection_closed_by_the_upstream_is_retried_once() {
    // An origin that answers one request per connection but claims keep-alive, then closes:
    // the gateway's pooled connection is dead when the next request comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = std::io::Write::write_all(&mut s, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let dp = Dataplane::start(&manifest(addr));
    let mut c = dp.client();
    for _ in 0..5 {
        let r = c.get("localhost", "/pets/1");
        assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[test]
fn integration_timeout_dead_and_malformed_upstreams() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr));
    let mut c = dp.client();
    let t = Instant::now();
    let r = c.get("localhost", "/slow");
    assert_eq!((r.status, r.text().as_str()), (504, r#"{"message":"Endpoint request timed out"}"#));
    assert!(
        t.elapsed() >= Duration::from_millis(450) && t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    let r = c.get("localhost", "/dead");
    assert_eq!((r.status, r.text().as_str()), (502, r#"{"message":"Internal server error"}"#));
    let r = c.get("localhost", "/echo/malformed");
    assert_eq!(r.status, 502);
    assert!(r.header("x-amzn-RequestId").is_some());
    // The client connection survives every upstream failure.
    assert_eq!(c.get("localhost", "/one").text(), "one");
}

#[test]
fn a_failed_integration_logs_why_at_most_once_a_second() {
    let origin = Origin::start();
    let dp = gateway_tests::Dataplane::start_with(
        &manifest(origin.addr),
        gateway_tests::DataplaneOptions { shards: 1, ..Default::default() },
    );
    let mut c = dp.client();
    for _ in 0..20 {
        assert_eq!(c.get("localhost", "/dead").status, 502);
    }
    assert_eq!(c.get("localhost", "/slow").status, 504);
    std::thread::sleep(Duration::from_millis(200));
    let lines = dp.stderr_lines();
    let failures: Vec<&String> = lines.iter().filter(|l| l.contains("from upstream")).collect();
    // The first refusal is logged with its cause; the other 19 within the second are held back
    // (the 504 about half a second later too, or it opens the next second's line).
    assert!(
        failures[0].starts_with("warning: petstore/prod GET /dead: 502 from upstream 127.0.0.1:")
            && failures[0].ends_with(": connect failed: connection refused"),
        "{failures:?}"
    );
    assert!(failures.len() <= 2, "rate-limited: {failures:?}");
}

#[test]
fn log_lines_can_be_json() {
    let origin = Origin::start();
    let options = gateway_tests::DataplaneOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        ..Default::default()
    };
    let dp = gateway_tests::Dataplane::start_with(&manifest(origin.addr), options);
    assert_eq!(dp.client().get("localhost", "/dead").status, 502);
    std::thread::sleep(Duration::from_millis(200));
    let lines = dp.stderr_lines();
    let line = lines.iter().find(|l| l.contains("from upstream")).expect("a line for the 502");
    let json: Value = serde_json::from_str(line).unwrap();
    assert_eq!(json["level"], "warning");
    assert!(json["message"].as_str().unwrap().contains("connect failed"));
    assert!(json["time"].as_f64().unwrap() > 1.7e9);
    assert!(json["target"].as_str().unwrap().starts_with("dataplane::"));
}
