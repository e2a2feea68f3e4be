//! One load-generator connection: writes prepared request bytes, reads responses (by
//! `Content-Length` or chunked), reconnects after a failure.

use dataplane::http1::chunked::ChunkedDecoder;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::time::Duration;

/// What a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// Connection refused, reset or closed, or a malformed response.
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
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    pub opened: u64,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Self {
        Connection { addr, stream: None, buf: Vec::with_capacity(16 * 1024), scratch: Vec::new(), opened: 0 }
    }

    /// Opens the connection now (so a burst starts from established connections).
    pub async fn connect(&mut self) -> bool {
        if self.stream.is_some() {
            return true;
        }
        match TcpStream::connect_addr(self.addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                self.stream = Some(s);
                self.buf.clear();
                self.opened += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// Sends `request` (`count` pipelined copies of it) and reads `count` responses, calling
    /// `done` with each outcome as it arrives. Returns the bytes for reuse.
    pub async fn exchange(
        &mut self,
        request: Vec<u8>,
        count: usize,
        timeout: Duration,
        mut done: impl FnMut(Outcome),
    ) -> Vec<u8> {
        if !self.connect().await {
            for _ in 0..count {
                done(Outcome::Error);
            }
            return request;
        }
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        for _ in 0..count {
            out.extend_from_slice(&request);
        }
        let result = monoio::time::timeout(timeout, self.write_and_read(out, count, &mut done)).await;
        match result {
            Ok((Ok(()), out)) => self.scratch = out,
            Ok((Err(answered), out)) => {
                self.scratch = out;
                self.stream = None;
                for _ in answered..count {
                    done(Outcome::Error);
                }
            }
            Err(_) => {
                // The exchange was dropped mid-way: this connection's state is unknown.
                self.stream = None;
                done(Outcome::Timeout);
                for _ in 1..count {
                    done(Outcome::Timeout);
                }
            }
        }
        request
    }

    /// Err carries how many responses were read before the failure.
    async fn write_and_read(
        &mut self,
        out: Vec<u8>,
        count: usize,
        done: &mut impl FnMut(Outcome),
    ) -> (Result<(), usize>, Vec<u8>) {
        let Some(stream) = self.stream.as_mut() else { return (Err(0), out) };
        let (written, out) = stream.write_all(out).await;
        if written.is_err() {
            return (Err(0), out);
        }
        let mut answered = 0;
        while answered < count {
            match self.read_one().await {
                Some(status) => {
                    done(Outcome::Status(status));
                    answered += 1;
                }
                None => return (Err(answered), out),
            }
        }
        (Ok(()), out)
    }

    /// Reads one complete response; `None` on a closed connection or malformed bytes.
    async fn read_one(&mut self) -> Option<u16> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(head)) => {
                    let status = resp.code?;
                    let mut length = 0usize;
                    let mut chunked = false;
                    for h in resp.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = true;
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
                            let used = decoder.decode(&self.buf[head..], &mut sink).ok()?;
                            if decoder.is_done() {
                                break head + used;
                            }
                            if !self.fill().await? {
                                return None;
                            }
                        }
                    } else {
                        while self.buf.len() < head + length {
                            if !self.fill().await? {
                                return None;
                            }
                        }
                        head + length
                    };
                    self.buf.drain(..end);
                    return Some(status);
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill().await? {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Reads more bytes; `Some(false)` at end of stream.
    async fn fill(&mut self) -> Option<bool> {
        let stream = self.stream.as_mut()?;
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let (result, slice) = stream.read(buf.slice_mut(len..cap)).await;
        self.buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => Some(false),
            Ok(_) => Some(true),
        }
    }
}
