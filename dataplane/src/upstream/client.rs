//! The HTTP/1.1 client side: one request/response exchange with an upstream, over a connection
//! from the shard's [`Pool`] or a new one.
//!
//! A pooled connection may have been closed by the upstream while idle. When a reused
//! connection fails before a single response byte arrives, the exchange is retried once on a
//! fresh connection: the upstream cannot have processed a request it never answered on a
//! connection it had already closed.

use super::pool::{Pool, PoolKey};
use super::stream::UpstreamStream;
use crate::http1::chunked::{ChunkError, ChunkedDecoder};
use crate::http1::response_head::{self, ResponseFraming, ResponseHead};
use crate::runtime::memory::{Charge, MemoryBudget};
use crate::runtime::stats::ShardStats;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest upstream response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Largest upstream response body, AWS's integration payload limit.
pub const MAX_RESPONSE_BODY: u64 = 10 * 1024 * 1024;
/// Most interim (1xx) responses before the final one; a backend sending more is broken or
/// hostile, and each one would otherwise cost a read and a parse.
const MAX_INTERIM_RESPONSES: usize = 16;

/// Buffers an exchange uses, owned by the client connection and reused for each request.
#[derive(Default)]
pub struct UpstreamBuffers {
    /// The encoded request to send.
    pub req: Vec<u8>,
    /// The raw response as received.
    pub resp: Vec<u8>,
    /// The decoded body of a chunked response.
    pub body: Vec<u8>,
    /// Header `(name_start, name_end, value_start, value_end)` offsets into `resp`.
    pub headers: Vec<(u32, u32, u32, u32)>,
    /// What these buffers hold of the shard's [`MemoryBudget`].
    pub charge: Charge,
    /// The upstream connection a `101 Switching Protocols` handed over, for the server to
    /// relay.
    pub tunnel: Option<Tunnel>,
}

/// An upstream connection that switched protocols: no longer HTTP, relayed byte for byte.
/// (Plain upstreams only: an upgrade is not asked of an HTTPS upstream.)
pub struct Tunnel {
    pub stream: TcpStream,
    /// What the upstream sent after its 101, already read.
    pub pending: Vec<u8>,
}

impl UpstreamBuffers {
    pub fn header(&self, i: usize) -> (&[u8], &[u8]) {
        let (ns, ne, vs, ve) = self.headers[i];
        (&self.resp[ns as usize..ne as usize], &self.resp[vs as usize..ve as usize])
    }

    /// Bytes held, as charged to the shard's budget.
    pub fn footprint(&self) -> u64 {
        (self.req.capacity() + self.resp.capacity() + self.body.capacity() + self.headers.capacity() * 16)
            as u64
    }

    /// Charges the bytes now held; false when that took the shard past its limit.
    pub fn settle(&mut self, memory: &MemoryBudget) -> bool {
        let bytes = self.footprint();
        memory.set(&mut self.charge, bytes)
    }

    /// Gives back memory a large response needed.
    pub fn trim(&mut self) {
        for v in [&mut self.req, &mut self.resp, &mut self.body] {
            if v.capacity() > 64 * 1024 {
                *v = Vec::new();
            }
        }
    }
}

/// Where an upstream response's body is.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// `resp[start..end]`.
    Raw(usize, usize),
    /// `body` (it was chunked).
    Decoded,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Body,
    /// The upstream's `Content-Length`, which a HEAD response must repeat.
    pub content_length: Option<u64>,
}

/// Why an exchange failed, with its cause (for the log line a 502 gets).
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be made: refused, unreachable, or `None` for the connect timeout.
    Connect(Option<std::io::ErrorKind>),
    /// The connection failed mid-exchange (`UnexpectedEof`: closed before a response).
    Io(std::io::ErrorKind),
    /// The upstream's bytes are not a valid HTTP/1.1 response (or too large a one): why.
    Malformed(&'static str),
    /// The shard's memory budget had no room for the response.
    Overloaded,
    /// The TLS handshake with an HTTPS upstream failed: why (an expired certificate, a wrong
    /// name, an unknown CA, ...).
    Tls(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Connect(None) => write!(f, "connect timed out"),
            UpstreamError::Connect(Some(kind)) => write!(f, "connect failed: {kind}"),
            UpstreamError::Io(std::io::ErrorKind::UnexpectedEof) => {
                write!(f, "closed before a complete response")
            }
            UpstreamError::Io(kind) => write!(f, "connection failed: {kind}"),
            UpstreamError::Malformed(why) => write!(f, "malformed response: {why}"),
            UpstreamError::Overloaded => write!(f, "the shard's memory limit has no room for the response"),
            UpstreamError::Tls(why) => write!(f, "TLS handshake failed: {why}"),
        }
    }
}

/// Where an exchange gets its connection and counts what it did: the shard's pool and stats.
#[derive(Clone, Copy)]
pub struct Client<'s> {
    pub pool: &'s RefCell<Pool>,
    pub stats: &'s ShardStats,
}

/// What the request asks of the exchange besides a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asks {
    /// A HEAD request: the response has no body whatever its length says.
    pub head_request: bool,
    /// The request asks to switch to WebSocket: a 101 hands the connection over
    /// ([`UpstreamBuffers::tunnel`]) instead of being refused.
    pub upgrade: bool,
}

/// How to secure a connection to an HTTPS upstream.
#[derive(Clone, Copy)]
pub struct Secure<'t> {
    pub config: &'t Arc<rustls::ClientConfig>,
    pub server_name: &'t str,
}

/// Sends `bufs.req` to `addr` (over TLS when `secure` says how) and reads the response into
/// `bufs`.
pub async fn exchange(
    client: Client<'_>,
    addr: SocketAddr,
    secure: Option<Secure<'_>>,
    bufs: &mut UpstreamBuffers,
    asks: Asks,
    connect_timeout: Duration,
) -> Result<Response, UpstreamError> {
    let key: PoolKey = (addr, secure.map_or(0, |s| Arc::as_ptr(s.config) as usize));
    for attempt in 0..2 {
        let pooled = {
            let mut pool = client.pool.borrow_mut();
            let pooled = pool.take(key, client.stats);
            client.stats.upstream_idle.store(pool.len() as u64, std::sync::atomic::Ordering::Relaxed);
            pooled
        };
        let reused = pooled.is_some();
        let mut stream = match pooled {
            Some(stream) => {
                ShardStats::add(&client.stats.upstream_reused, 1);
                stream
            }
            None => {
                // The connect timeout bounds the TCP connect and the TLS handshake together.
                let connect = open(addr, secure);
                let stream = match monoio::time::timeout(connect_timeout, connect).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return Err(e),
                    Err(_elapsed) => return Err(UpstreamError::Connect(None)),
                };
                ShardStats::add(&client.stats.upstream_opened, 1);
                stream
            }
        };
        let req = std::mem::take(&mut bufs.req);
        let (written, req) = stream.write_all(req).await;
        bufs.req = req;
        if let Err(e) = written {
            if reused && attempt == 0 {
                continue;
            }
            return Err(UpstreamError::Io(e.kind()));
        }
        match read_response(&mut stream, bufs, client.stats, asks).await {
            Ok((response, AfterResponse::Upgraded { head_end })) => {
                let UpstreamStream::Plain(stream) = stream else {
                    return Err(UpstreamError::Malformed("an upgrade over TLS"));
                };
                let pending = bufs.resp[head_end..].to_vec();
                bufs.tunnel = Some(Tunnel { stream, pending });
                return Ok(response);
            }
            Ok((response, after)) => {
                if after == AfterResponse::Unclean {
                    ShardStats::add(&client.stats.upstream_unclean, 1);
                }
                if after == AfterResponse::Reusable {
                    let mut pool = client.pool.borrow_mut();
                    pool.put(key, stream);
                    client.stats.upstream_idle.store(pool.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                return Ok(response);
            }
            Err(ReadError::ClosedBeforeResponse) if reused && attempt == 0 => continue,
            Err(ReadError::ClosedBeforeResponse) => {
                return Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof))
            }
            Err(ReadError::Io(kind)) => return Err(UpstreamError::Io(kind)),
            Err(ReadError::Malformed(why)) => return Err(UpstreamError::Malformed(why)),
            Err(ReadError::Overloaded) => return Err(UpstreamError::Overloaded),
        }
    }
    Err(UpstreamError::Io(std::io::ErrorKind::UnexpectedEof))
}

/// A new connection to `addr`, with its TLS handshake done when `secure` asks for one.
async fn open(addr: SocketAddr, secure: Option<Secure<'_>>) -> Result<UpstreamStream, UpstreamError> {
    let tcp = TcpStream::connect_addr(addr).await.map_err(|e| UpstreamError::Connect(Some(e.kind())))?;
    let _ = tcp.set_nodelay(true);
    let Some(secure) = secure else { return Ok(UpstreamStream::Plain(tcp)) };
    match crate::tls::connect::connect(tcp, secure.config.clone(), secure.server_name).await {
        Ok(tls) => Ok(UpstreamStream::Tls(Box::new(tls))),
        Err(e) => Err(UpstreamError::Tls(e.to_string())),
    }
}

enum ReadError {
    ClosedBeforeResponse,
    Io(std::io::ErrorKind),
    Malformed(&'static str),
    Overloaded,
}

/// Reads more bytes into `bufs.resp`, growing it within the shard's memory budget; `Ok(0)` is
/// end of stream.
async fn read_more(
    stream: &mut UpstreamStream,
    bufs: &mut UpstreamBuffers,
    memory: &MemoryBudget,
    want: usize,
) -> Result<usize, ReadError> {
    let resp = &bufs.resp;
    if resp.capacity() - resp.len() < want.max(1) {
        let grow = want.max(resp.capacity()).max(4096);
        let bytes = bufs.footprint() + (resp.len() + grow - resp.capacity()) as u64;
        if !memory.try_set(&mut bufs.charge, bytes) {
            return Err(ReadError::Overloaded);
        }
        bufs.resp.reserve(grow);
    }
    let buf = std::mem::take(&mut bufs.resp);
    let (len, cap) = (buf.len(), buf.capacity());
    let (result, slice) = stream.read(buf.slice_mut(len..cap)).await;
    bufs.resp = slice.into_inner();
    result.map_err(|e| ReadError::Io(e.kind()))
}

async fn read_response(
    stream: &mut UpstreamStream,
    bufs: &mut UpstreamBuffers,
    stats: &ShardStats,
    asks: Asks,
) -> Result<(Response, AfterResponse), ReadError> {
    let memory = &stats.memory;
    bufs.resp.clear();
    bufs.body.clear();
    bufs.headers.clear();
    let mut interim = 0;
    let head = loop {
        if !bufs.resp.is_empty() {
            let parsed = response_head::parse(&bufs.resp, &mut bufs.headers, MAX_RESPONSE_BODY)
                .map_err(|e| ReadError::Malformed(e.reason()))?;
            if let Some(head) = parsed {
                if head.status == 101 && asks.upgrade {
                    let at = head.len;
                    let response = Response { status: 101, body: Body::Raw(at, at), content_length: None };
                    return Ok((response, AfterResponse::Upgraded { head_end: at }));
                }
                if head.is_interim() {
                    interim += 1;
                    if head.status == 101 {
                        return Err(ReadError::Malformed(
                            "101 Switching Protocols to a request that asked for no upgrade",
                        ));
                    }
                    if interim > MAX_INTERIM_RESPONSES {
                        return Err(ReadError::Malformed("more than 16 interim (1xx) responses"));
                    }
                    // Interim responses are not relayed: forget their bytes, so a stream of
                    // them cannot grow the buffer.
                    bufs.resp.drain(..head.len);
                    bufs.headers.clear();
                    continue;
                }
                break head;
            }
            if bufs.resp.len() > MAX_RESPONSE_HEAD {
                return Err(ReadError::Malformed("a response head over 64 KiB"));
            }
        }
        let n = read_more(stream, bufs, memory, 4096).await?;
        if n == 0 {
            return Err(if bufs.resp.is_empty() && interim == 0 {
                ReadError::ClosedBeforeResponse
            } else {
                ReadError::Malformed("closed inside the response head")
            });
        }
    };
    let ResponseHead { status, len: head_end, framing, keep_alive, content_length } = head;
    let no_body = asks.head_request || status == 204 || status == 304;
    // Where this response ends in `resp`: bytes past it are not part of any exchange the
    // gateway started, so the connection must not carry another request.
    let (body, end) = match framing {
        _ if no_body => (Body::Raw(head_end, head_end), head_end),
        ResponseFraming::Length(n) => {
            let end = head_end + n as usize;
            while bufs.resp.len() < end {
                let want = end - bufs.resp.len();
                if read_more(stream, bufs, memory, want).await? == 0 {
                    return Err(ReadError::Malformed("closed before Content-Length bytes of body"));
                }
            }
            (Body::Raw(head_end, end), end)
        }
        ResponseFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(MAX_RESPONSE_BODY);
            let mut pos = head_end;
            loop {
                let used = decoder.decode(&bufs.resp[pos..], &mut bufs.body).map_err(|e| match e {
                    ChunkError::TooLarge => ReadError::Malformed("a chunked body over 10 MB"),
                    ChunkError::Malformed(why) => ReadError::Malformed(why),
                })?;
                pos += used;
                if !bufs.settle(memory) {
                    memory.refuse();
                    return Err(ReadError::Overloaded);
                }
                if decoder.is_done() {
                    break;
                }
                if read_more(stream, bufs, memory, 4096).await? == 0 {
                    return Err(ReadError::Malformed("closed inside a chunked body"));
                }
            }
            (Body::Decoded, pos)
        }
        ResponseFraming::UntilClose => {
            loop {
                if (bufs.resp.len() - head_end) as u64 > MAX_RESPONSE_BODY {
                    return Err(ReadError::Malformed("a body over 10 MB"));
                }
                if read_more(stream, bufs, memory, 16 * 1024).await? == 0 {
                    break;
                }
            }
            (Body::Raw(head_end, bufs.resp.len()), bufs.resp.len())
        }
    };
    let framed = no_body || !matches!(framing, ResponseFraming::UntilClose);
    let after = if !keep_alive || !framed {
        AfterResponse::Close
    } else if bufs.resp.len() != end {
        AfterResponse::Unclean
    } else {
        AfterResponse::Reusable
    };
    Ok((Response { status, body, content_length }, after))
}

/// What becomes of the connection once a response was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterResponse {
    /// Keep-alive, and nothing follows the response: back to the pool.
    Reusable,
    /// The response ends the connection (`Connection: close`, HTTP/1.0, read until close).
    Close,
    /// Bytes followed the response that no request asked for: closed, never reused.
    Unclean,
    /// A 101 to a request that asked to upgrade: the connection is the client's tunnel now.
    Upgraded { head_end: usize },
}
