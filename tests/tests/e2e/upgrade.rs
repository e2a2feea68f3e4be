//! The upgrade hand-off: with `--proxy-websocket`, a WebSocket upgrade through an HTTP_PROXY
//! route becomes a tunnel to the backend; without it (the default, as AWS), upgrade headers
//! never reach the backend.

use crate::{manifest, read_metric};
use gateway_tests::{Dataplane, DataplaneOptions};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A WebSocket-shaped backend: to a request carrying `connection: upgrade` and `upgrade:
/// websocket` it answers 101 and then echoes what it reads in upper case, sending `BYE` once
/// the gateway half-closes; to any other request, `426 Upgrade Required`. Sends each request
/// head it read on `heads`.
fn ws_backend() -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, heads) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let Some(head_end) = gateway_tests::origin::read_request_head(&mut s, &mut buf) else {
                    return;
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let _ = tx.send(head.clone());
                if !(head.contains("\r\nconnection: upgrade\r\n")
                    && head.contains("\r\nupgrade: websocket\r\n"))
                {
                    let _ = s.write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n");
                    let _ = s.read(&mut [0u8; 1]);
                    return;
                }
                let reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
                if s.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                let mut rest = buf.split_off(head_end);
                loop {
                    if !rest.is_empty() && s.write_all(&rest.to_ascii_uppercase()).is_err() {
                        return;
                    }
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => rest = chunk[..n].to_vec(),
                    }
                }
                let _ = s.write_all(b"BYE");
            });
        }
    });
    (addr, heads)
}

fn gateway(backend: SocketAddr, extra: &[&str]) -> Dataplane {
    let extra_args = extra.iter().map(|a| a.to_string()).collect();
    Dataplane::start_with(
        &manifest(backend),
        DataplaneOptions { shards: 1, extra_args, ..Default::default() },
    )
}

const UPGRADE: &str = "GET /echo/chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Reads until `want` bytes arrived or the stream ends.
fn read_exactly(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.len() < want {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    got
}

/// Reads a response head (up to the empty line) byte by byte, so nothing after it is taken.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn a_websocket_upgrade_becomes_a_tunnel_when_enabled() {
    let (backend, heads) = ws_backend();
    let dp = gateway(backend, &["--proxy-websocket"]);
    let mut s = TcpStream::connect(dp.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The client's first bytes of the new protocol come in the same write as its request.
    s.write_all(format!("{UPGRADE}early").as_bytes()).unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}");
    let lower = head.to_lowercase();
    assert!(
        lower.contains("\r\nconnection: upgrade\r\n") && lower.contains("\r\nupgrade: websocket\r\n"),
        "{head}"
    );
    assert!(lower.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"), "{head}");
    assert!(lower.contains("\r\nx-amzn-requestid: "), "{head}");
    assert!(!lower.contains("content-length"), "a 101 has no length: {head}");
    let sent = heads.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(sent.starts_with("get /chat http/1.1\r\n"), "{sent}");
    assert!(sent.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n"), "{sent}");
    assert_eq!(read_exactly(&mut s, 5), b"EARLY");
    assert_eq!(read_metric(&dp, "gateway_tunnels_open", &[]), 1);
    s.write_all(b"hello").unwrap();
    assert_eq!(read_exactly(&mut s, 5), b"HELLO");
    // A half-close reaches the backend, and what it sends after still reaches the client.
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_exactly(&mut s, 100), b"BYE");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_metric(&dp, "gateway_tunnels_open", &[]), 0);
}

#[test]
fn upgrades_are_not_relayed_by_default_nor_for_other_protocols() {
    let (backend, heads) = ws_backend();
    for (flags, upgrade) in [(&[][..], "websocket"), (&["--proxy-websocket"][..], "h2c")] {
        let dp = gateway(backend, flags);
        let mut c = dp.client();
        let request = UPGRADE.replace("Upgrade: websocket", &format!("Upgrade: {upgrade}"));
        let r = c.request(&request);
        assert_eq!(r.status, 426, "{flags:?} {upgrade}");
        let sent = heads.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(!sent.contains("upgrade"), "the backend saw an upgrade: {sent}");
        // The connection is still HTTP.
        assert_eq!(c.get("localhost", "/health").status, 200);
    }
}

#[test]
fn an_idle_tunnel_is_closed_after_the_idle_timeout() {
    let (backend, _heads) = ws_backend();
    let dp = gateway(backend, &["--proxy-websocket", "--idle-timeout-secs", "1"]);
    let mut s = TcpStream::connect(dp.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(UPGRADE.as_bytes()).unwrap();
    assert!(read_head(&mut s).starts_with("HTTP/1.1 101 "));
    s.write_all(b"ping").unwrap();
    assert_eq!(read_exactly(&mut s, 4), b"PING");
    let started = Instant::now();
    // The tunnel ends with the backend's goodbye (it saw its socket shut) or nothing.
    let rest = read_exactly(&mut s, 100);
    assert!(rest.is_empty() || rest == b"BYE", "{rest:?}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(read_metric(&dp, "gateway_tunnels_open", &[]), 0);
}
