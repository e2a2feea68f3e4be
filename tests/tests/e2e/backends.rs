//! Hostile backends (issue 13): each misbehaviour is answered 502 or 504 within the route's
//! timeout, the shard serves other clients meanwhile, and nothing is left behind (no pooled
//! connection that carried the bad exchange, no buffered bytes).

use crate::read_metric;
use gateway_tests::{Dataplane, DataplaneOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A backend that misbehaves by path; every other path gets a small 200.
fn hostile_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || misbehave(stream));
        }
    });
    addr
}

fn misbehave(mut s: TcpStream) {
    let mut buf = Vec::new();
    if gateway_tests::origin::read_request_head(&mut s, &mut buf).is_none() {
        return;
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("").to_string();
    let chunk = vec![b'x'; 64 * 1024];
    let _ = match path.as_str() {
        // A body without a length that never ends.
        "/endless" => s.write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n").and_then(|()| loop {
            s.write_all(&chunk)?;
        }),
        // Chunks that never end.
        "/endless-chunked" => {
            s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").and_then(|()| loop {
                s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                s.write_all(&chunk)?;
                s.write_all(b"\r\n")?;
            })
        }
        // Fewer bytes than the length promises, then the connection closes.
        "/short-close" => s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b"),
        // Fewer bytes than promised, and the connection stays open.
        "/short-open" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b");
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        }
        // Header lines that never end.
        "/endless-head" => s.write_all(b"HTTP/1.1 200 OK\r\n").and_then(|()| loop {
            s.write_all(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")?;
        }),
        // A head that stops half-way.
        "/stuck-head" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-le");
            std::thread::sleep(Duration::from_secs(5));
            Ok(())
        }
        // A valid response, one byte every 100 ms.
        "/drip" => {
            for b in b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello" {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
        // A reset in the middle of the body.
        "/reset" => {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nthe first bytes");
            std::thread::sleep(Duration::from_millis(50));
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            Ok(())
        }
        _ => s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
    };
}

fn manifest(backend: SocketAddr) -> String {
    format!(
        r#"kind: Api
name: hostile
routes:
  GET /health:
    integration: {{ type: MOCK, response: {{ body: fine }} }}
  GET /b/{{proxy+}}:
    integration: {{ type: HTTP_PROXY, uri: "http://{backend}/{{proxy}}", timeout: 1s }}
---
kind: Stage
api: hostile
name: prod
---
kind: Domain
name: localhost
mappings:
  - {{ basePath: "", api: hostile, stage: prod }}
"#
    )
}

#[test]
fn every_hostile_backend_gets_a_502_or_504_and_costs_nothing_else() {
    let backend = hostile_backend();
    let dp = Dataplane::start_with(&manifest(backend), DataplaneOptions { shards: 1, ..Default::default() });
    for (path, status, body) in [
        ("/endless", 502, r#"{"message":"Internal server error"}"#),
        ("/endless-chunked", 502, r#"{"message":"Internal server error"}"#),
        ("/short-close", 502, r#"{"message":"Internal server error"}"#),
        ("/short-open", 504, r#"{"message":"Endpoint request timed out"}"#),
        ("/endless-head", 502, r#"{"message":"Internal server error"}"#),
        ("/stuck-head", 504, r#"{"message":"Endpoint request timed out"}"#),
        ("/drip", 504, r#"{"message":"Endpoint request timed out"}"#),
        ("/reset", 502, r#"{"message":"Internal server error"}"#),
    ] {
        let started = Instant::now();
        let hostile = std::thread::spawn({
            let mut c = dp.client();
            move || {
                let r = c.get("localhost", &format!("/b{path}"));
                (r.status, r.text())
            }
        });
        // Meanwhile the same shard answers another client at once.
        std::thread::sleep(Duration::from_millis(50));
        let quick = Instant::now();
        assert_eq!(dp.client().get("localhost", "/health").text(), "fine", "{path}");
        assert!(
            quick.elapsed() < Duration::from_millis(500),
            "{path}: another client waited {:?}",
            quick.elapsed()
        );
        let (got, text) = hostile.join().unwrap();
        assert_eq!((got, text.as_str()), (status, body), "{path}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path} took {:?}", started.elapsed());
    }
    // Nothing left behind: no bad connection pooled, no bytes held.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read_metric(&dp, "gateway_upstream_pool_idle_connections", &[]), 0);
    assert!(read_metric(&dp, "gateway_memory_buffered_bytes", &[]) < 64 * 1024);
    // And a good exchange works on a fresh connection.
    assert_eq!(dp.client().get("localhost", "/b/fine").text(), "ok");
}
