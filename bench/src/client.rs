//! One load-generator connection: a blocking socket on its own thread that writes prepared
//! request bytes and reads responses (by `Content-Length` or chunked), reconnecting after a
//! failure or a `connection: close`.

use dataplane::http1::chunked::ChunkedDecoder;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// Connection refused, reset or closed early, or a malformed response.
    Error,
    Timeout,
}

/// A request template: the same bytes for every request of a run.
pub fn request_bytes(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        r.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

pub struct Connection {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Connection {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        Connection { addr, timeout, stream: None, buf: Vec::with_capacity(16 * 1024), out: Vec::new() }
    }

    /// Opens the connection now (so a burst starts from established connections).
    pub fn connect(&mut self) -> bool {
        if self.stream.is_some() {
            return true;
        }
        match TcpStream::connect_timeout(&self.addr, self.timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_read_timeout(Some(self.timeout));
                let _ = s.set_write_timeout(Some(self.timeout));
                self.stream = Some(s);
                self.buf.clear();
                true
            }
            Err(_) => false,
        }
    }

    /// Sends `count` pipelined copies of `request` in one write and reads `count` responses,
    /// calling `done` with each outcome as it arrives.
    pub fn exchange(&mut self, request: &[u8], count: usize, mut done: impl FnMut(Outcome)) {
        if !self.connect() {
            (0..count).for_each(|_| done(Outcome::Error));
            return;
        }
        self.out.clear();
        for _ in 0..count {
            self.out.extend_from_slice(request);
        }
        let written = self.stream.as_mut().map(|s| s.write_all(&self.out));
        if !matches!(written, Some(Ok(()))) {
            self.stream = None;
            (0..count).for_each(|_| done(Outcome::Error));
            return;
        }
        for answered in 0..count {
            match self.read_one() {
                Ok((status, close)) => {
                    done(Outcome::Status(status));
                    if close {
                        // The server ends the connection after this response; the rest of a
                        // pipelined batch is lost with it.
                        self.stream = None;
                        (answered + 1..count).for_each(|_| done(Outcome::Error));
                        return;
                    }
                }
                Err(outcome) => {
                    self.stream = None;
                    (answered..count).for_each(|_| done(outcome));
                    return;
                }
            }
        }
    }

    /// Reads one complete response: its status and whether the server closes after it.
    fn read_one(&mut self) -> Result<(u16, bool), Outcome> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(head)) => {
                    let status = resp.code.ok_or(Outcome::Error)?;
                    let mut length = 0usize;
                    let mut chunked = false;
                    let mut close = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let text = std::str::from_utf8(h.value).map_err(|_| Outcome::Error)?;
                            length = text.trim().parse().map_err(|_| Outcome::Error)?;
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = true;
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    if status / 100 == 1 {
                        self.buf.drain(..head);
                        continue;
                    }
                    let end = if chunked {
                        let mut decoder = ChunkedDecoder::new(u64::MAX);
                        let mut sink = Vec::new();
                        loop {
                            let used =
                                decoder.decode(&self.buf[head..], &mut sink).map_err(|_| Outcome::Error)?;
                            if decoder.is_done() {
                                break head + used;
                            }
                            self.fill()?;
                        }
                    } else {
                        while self.buf.len() < head + length {
                            self.fill()?;
                        }
                        head + length
                    };
                    self.buf.drain(..end);
                    return Ok((status, close));
                }
                Ok(httparse::Status::Partial) => self.fill()?,
                Err(_) => return Err(Outcome::Error),
            }
        }
    }

    fn fill(&mut self) -> Result<(), Outcome> {
        let stream = self.stream.as_mut().ok_or(Outcome::Error)?;
        let mut chunk = [0u8; 16 * 1024];
        match stream.read(&mut chunk) {
            Ok(0) => Err(Outcome::Error),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(Outcome::Timeout)
            }
            Err(_) => Err(Outcome::Error),
        }
    }
}
