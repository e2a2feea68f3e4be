//! A real HTTP/1.1 origin for the proxy tests, on its own threads. It echoes what it received
//! as JSON, and has paths that misbehave on purpose.
//!
//! - any path: `200` with `{"method","target","headers":[[name,value]...],"body"}`;
//! - `/delay/{ms}`: the same after a delay;
//! - `/status/{code}`: that status;
//! - `/chunked`: the echo, sent chunked;
//! - `/until-close`: the echo without a length, then close;
//! - `/len`: only the length of the body received, as `{"length": n}`;
//! - `/malformed`: bytes that are not HTTP;
//! - `/close-after`: the echo with `connection: close`;
//! - `/bytes/{n}`: a body of `n` bytes.

use std::io::{Read, Write};

/// For the tests' own misbehaving backends: reads from `stream` into `buf` until it holds a
/// whole request head, and returns where the head ends; `None` once the stream ends first.
pub fn read_request_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

pub struct Origin {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin bind");
        let addr = listener.local_addr().expect("origin addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (requests.clone(), connections.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, SeqCst);
                let r = r.clone();
                std::thread::spawn(move || serve(stream, &r));
            }
        });
        Origin { addr, requests, connections, stop }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut stream: TcpStream, requests: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let (head_len, method, target, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned()))
                        .collect();
                    break (
                        n,
                        req.method.unwrap_or("").to_string(),
                        req.path.unwrap_or("").to_string(),
                        headers,
                    );
                }
                Ok(httparse::Status::Partial) => {
                    let mut chunk = [0u8; 65536];
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                Err(_) => return,
            }
        };
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_len + length {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_len..head_len + length]).into_owned();
        buf.drain(..head_len + length);
        requests.fetch_add(1, SeqCst);

        let echo = if target == "/len" {
            serde_json::json!({ "length": length }).to_string()
        } else {
            serde_json::json!({
            "method": method,
            "target": target,
            "headers": headers.iter().map(|(n, v)| vec![n.clone(), v.clone()]).collect::<Vec<_>>(),
            "body": body,
            })
            .to_string()
        };
        let path = target.split('?').next().unwrap_or("").to_string();
        let mut status = 200;
        if let Some(ms) = path.strip_prefix("/delay/") {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        }
        if let Some(code) = path.strip_prefix("/status/") {
            status = code.parse().unwrap_or(500);
        }
        let common = "content-type: application/json\r\nx-origin: yes\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\nx-amzn-RequestId: origin-id\r\n";
        let written = match path.as_str() {
            "/malformed" => stream.write_all(b"this is not http\r\n\r\n"),
            _ if path.starts_with("/bytes/") => {
                let n: usize = path["/bytes/".len()..].parse().unwrap_or(0);
                let head = format!("HTTP/1.1 200 OK\r\n{common}content-length: {n}\r\n\r\n");
                stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&vec![b'x'; n]))
            }
            "/chunked" => {
                let (a, b) = echo.split_at(echo.len() / 2);
                let head = format!("HTTP/1.1 {status} OK\r\n{common}transfer-encoding: chunked\r\n\r\n");
                let chunked = format!(
                    "{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nx-trailer: t\r\n\r\n",
                    a.len(),
                    b.len()
                );
                stream.write_all(format!("{head}{chunked}").as_bytes())
            }
            "/until-close" => {
                let _ = stream.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{echo}").as_bytes());
                return;
            }
            "/close-after" => {
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\n{common}connection: close\r\ncontent-length: {}\r\n\r\n{echo}",
                        echo.len()
                    )
                    .as_bytes(),
                );
                return;
            }
            _ if method == "HEAD" => stream.write_all(
                format!("HTTP/1.1 {status} OK\r\n{common}content-length: {}\r\n\r\n", echo.len()).as_bytes(),
            ),
            _ => stream.write_all(
                format!("HTTP/1.1 {status} OK\r\n{common}content-length: {}\r\n\r\n{echo}", echo.len())
                    .as_bytes(),
            ),
        };
        if written.is_err() || path == "/malformed" {
            return;
        }
    }
}
