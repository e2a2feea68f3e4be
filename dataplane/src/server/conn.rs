//! The client connection state machine: read into one owned buffer, answer every complete
//! request in it in order (pipelining), write all their responses with one write, and keep
//! the connection alive between requests within the timeouts.
//!
//! Memory per idle connection is one small read buffer and the small write buffer its first
//! response needed; a buffer that grew for a large request is given back once it is done.
//! Every buffer is charged to the shard's [`crate::runtime::memory::MemoryBudget`]: a body
//! grows only as its bytes arrive and only while the shard has room (else 503), and
//! pipelined requests are not answered while more than `keep_buffer` response bytes wait
//! unsent, so a client that sends without reading holds at most one response more.

use super::stream::Stream;
use super::upgrade;
use crate::exchange::Client;
use crate::gateway::{self, Scratch, Tunnel};
use crate::gateway_error::Kind;
use crate::http1::chunked::{ChunkError, ChunkedDecoder};
use crate::http1::head::{self, Framing, Head, HeadError};
use crate::respond;
use crate::runtime::memory::Charge;
use crate::runtime::stats::ShardStats;
use crate::shard::Shard;
use crate::tls;
use monoio::buf::IoBufMut;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// A shard's open connections, so the sweeper can close those past their deadline and a drain
/// the idle ones.
#[derive(Default)]
pub struct Connections(RefCell<slab::Slab<ConnEntry>>);

struct ConnEntry {
    fd: RawFd,
    state: Rc<ConnState>,
}

/// What the shard's sweeper needs to know about a connection, set by the connection itself.
#[derive(Default)]
struct ConnState {
    /// True while the connection waits for the first byte of a next request.
    idle: Cell<bool>,
    /// Coarse time ([`crate::runtime::clock::CoarseClock::now_ms`]) after which the connection
    /// is closed; 0 while the request is in the gateway (integrations bound themselves).
    deadline_ms: Cell<u64>,
    /// The upstream socket of a relayed upgrade, shut down with the client's.
    tunnel_fd: Cell<Option<RawFd>>,
}

impl Connections {
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }

    /// Shuts down every connection whose deadline has passed: its pending read or write fails
    /// and its task ends.
    pub fn close_expired(&self, now_ms: u64) {
        for (_, conn) in self.0.borrow().iter() {
            let deadline = conn.state.deadline_ms.get();
            if deadline != 0 && deadline <= now_ms {
                conn.state.deadline_ms.set(0);
                crate::runtime::sys::shutdown_both(conn.fd);
                if let Some(fd) = conn.state.tunnel_fd.get() {
                    crate::runtime::sys::shutdown_both(fd);
                }
            }
        }
    }

    /// Shuts down up to `n` of the connections that have waited longest for a next request
    /// (their idle deadlines are the earliest), to make room for new ones; how many it shut.
    /// Rare (at the connection cap, out of descriptors), so it may sort.
    pub fn shed_oldest_idle(&self, n: usize) -> usize {
        let conns = self.0.borrow();
        let mut idle: Vec<&ConnEntry> = conns
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.state.idle.get() && c.state.deadline_ms.get() != 0)
            .collect();
        idle.sort_unstable_by_key(|c| c.state.deadline_ms.get());
        for conn in idle.iter().take(n) {
            // Not idle any more for the next shed: its task ends on the next turn.
            conn.state.idle.set(false);
            crate::runtime::sys::shutdown_both(conn.fd);
        }
        idle.len().min(n)
    }

    /// Shuts down the connections waiting for a next request (a drain).
    pub fn close_idle(&self) {
        for (_, conn) in self.0.borrow().iter() {
            if conn.state.idle.get() {
                crate::runtime::sys::shutdown_both(conn.fd);
            }
        }
    }
}

/// Serves one accepted plain-HTTP connection until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, shard: Rc<Shard>, conns: Rc<Connections>) {
    let state = Rc::new(ConnState::default());
    let key = conns.0.borrow_mut().insert(ConnEntry { fd: stream.fd(), state: state.clone() });
    shard.stats.open_connections.fetch_add(1, Relaxed);
    serve_http(stream, Client { peer, tls: None }, &shard, state).await;
    conns.0.borrow_mut().remove(key);
    shard.stats.open_connections.fetch_sub(1, Relaxed);
}

/// Serves one accepted HTTPS connection: the handshake (within the header timeout, which the
/// sweeper enforces as for a slow request head) with the sites of the table current now, then
/// HTTP over it until it closes.
pub async fn serve_tls(tcp: TcpStream, peer: SocketAddr, shard: Rc<Shard>, conns: Rc<Connections>) {
    let state = Rc::new(ConnState::default());
    let key = conns.0.borrow_mut().insert(ConnEntry { fd: tcp.fd(), state: state.clone() });
    shard.stats.open_connections.fetch_add(1, Relaxed);
    state.deadline_ms.set(shard.clock.deadline(shard.settings.header_timeout));
    let handshake = match shard.current_table() {
        Some(table) => Some(tls::accept::accept(tcp, &table.tls).await),
        // No table, so no certificate: the client is closed on, as for an unknown name.
        None => None,
    };
    state.deadline_ms.set(0);
    match handshake {
        Some(Ok((stream, session))) => {
            ShardStats::add(&shard.stats.tls_handshakes, 1);
            serve_http(stream, Client { peer, tls: Some(session) }, &shard, state).await;
        }
        Some(Err(e)) => {
            ShardStats::add(&shard.stats.tls_handshake_failures, 1);
            if let Some(held_back) = shard.tls_errors.allow(shard.clock.now_ms()) {
                let more = if held_back > 0 { format!(" ({held_back} more since)") } else { String::new() };
                log::info!("shard {}: TLS handshake from {peer} failed: {e}{more}", shard.index);
            }
        }
        None => ShardStats::add(&shard.stats.tls_handshake_failures, 1),
    }
    conns.0.borrow_mut().remove(key);
    shard.stats.open_connections.fetch_sub(1, Relaxed);
}

/// HTTP/1.1 over an established stream, then the upgrade relay if a response switched
/// protocols.
async fn serve_http<S: Stream>(stream: S, client: Client, shard: &Rc<Shard>, state: Rc<ConnState>) {
    let mut conn = Conn {
        stream,
        client,
        shard: shard.clone(),
        state,
        buf: Vec::with_capacity(shard.settings.read_buffer),
        start: 0,
        // Allocated by the first response, so an idle connection holds only its read buffer.
        out: Vec::new(),
        body: Vec::new(),
        scratch: Scratch::default(),
        pending: None,
        spans: Vec::new(),
        progress: head::Progress::default(),
        served: 0,
        charge: Charge::default(),
        tunnel: None,
    };
    conn.settle();
    conn.run().await;
    if conn.tunnel.is_none() {
        let clock = &shard.clock;
        conn.state.deadline_ms.set(clock.deadline(shard.settings.body_timeout));
        conn.stream.say_goodbye().await;
        conn.state.deadline_ms.set(0);
    }
    let memory = &shard.stats.memory;
    memory.release(&mut conn.charge);
    memory.release(&mut conn.scratch.charge);
    if let Some(tunnel) = conn.tunnel.take() {
        // The connection is no longer HTTP: what the client sent after its upgrade request
        // belongs to the new protocol.
        let early = conn.buf.split_off(conn.start);
        drop(conn.buf);
        conn.state.tunnel_fd.set(Some(tunnel.stream.as_raw_fd()));
        upgrade::relay(conn.stream, early, tunnel, shard, &conn.state.deadline_ms).await;
        conn.state.tunnel_fd.set(None);
    }
}

/// Answers a connection the shard will not serve (at its connection cap with none idle, or
/// out of descriptors) with a 503 and closes it, reading what the client sent for a moment
/// so it sees the answer rather than a reset.
pub async fn refuse<S: Stream>(mut stream: S, shard: Rc<Shard>) {
    ShardStats::add(&shard.stats.refused_connections, 1);
    let mut out = Vec::new();
    gateway::refuse(&shard, Kind::Overloaded, &mut out);
    let (written, _) = stream.write_all(out).await;
    if written.is_ok() && stream.shutdown().await.is_ok() {
        discard_input(&mut stream, Duration::from_millis(100), shard.settings.read_buffer).await;
    }
}

/// Reads and drops what the client still sends, for at most `time` and 1 MiB, so that after
/// a final response it reads that response rather than a reset caused by its unread bytes.
async fn discard_input<S: Stream>(stream: &mut S, time: Duration, buffer: usize) {
    let deadline = Instant::now() + time;
    let mut scratch = Vec::with_capacity(buffer);
    let mut discarded = 0usize;
    while discarded < 1 << 20 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { return };
        match monoio::time::timeout(left, stream.read(scratch)).await {
            Ok((Ok(n), buf)) if n > 0 => {
                discarded += n;
                scratch = buf;
                scratch.clear();
            }
            _ => return,
        }
    }
}

/// A request whose head has arrived but whose body has not, completely.
enum Pending {
    Length { head_len: usize, body_len: usize },
    Chunked { head_len: usize, decoder: ChunkedDecoder },
}

/// What to do after the buffered requests were handled.
#[derive(PartialEq, Eq)]
enum Next {
    /// Read more bytes.
    Read,
    /// Flush and close (after the client's last request, or on an error).
    Close,
    /// Flush, then close gracefully: stop writing and discard what the client still sends for
    /// a moment, so it reads the error response instead of a reset.
    CloseAfterError,
    /// Flush, then answer the requests still buffered (too many response bytes were waiting).
    Flush,
    /// Flush, then hand the connection over to relay the upgrade ([`Conn::tunnel`]).
    Upgrade,
}

struct Conn<S> {
    stream: S,
    client: Client,
    shard: Rc<Shard>,
    state: Rc<ConnState>,
    /// Received bytes; requests start at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Responses waiting to be written.
    out: Vec<u8>,
    /// The decoded body of a chunked request.
    body: Vec<u8>,
    /// The gateway's buffers for integrations, reused from request to request.
    scratch: Scratch,
    pending: Option<Pending>,
    /// Header positions of the head being answered (reused).
    spans: Vec<head::HeaderSpan>,
    /// What has been checked of a head still arriving.
    progress: head::Progress,
    /// Requests answered so far.
    served: u64,
    /// What `buf`, `body` and `out` hold of the shard's memory budget (`scratch` has its own).
    charge: Charge,
    /// The upstream side of an upgrade the last response switched to.
    tunnel: Option<Tunnel>,
}

impl<S: Stream> Conn<S> {
    async fn run(&mut self) {
        // Deadline of the head being received, fixed when its first bytes arrive.
        let mut head_deadline: Option<u64> = None;
        loop {
            let served_before = self.served;
            let next = self.handle_buffered().await;
            if self.served != served_before {
                // The partial head now in the buffer, if any, is a new request's.
                head_deadline = None;
            }
            if !self.flush().await {
                return;
            }
            match next {
                Next::Close => return,
                Next::CloseAfterError => return self.linger().await,
                Next::Flush => continue,
                Next::Upgrade => return,
                Next::Read => {}
            }
            self.compact();
            // What the flush and the compaction gave back is released before the connection
            // waits, so an idle connection is charged for its small buffers only.
            self.settle();
            let waiting_for_new_request = self.start == self.buf.len() && self.pending.is_none();
            if waiting_for_new_request && self.shard.draining.get() {
                return;
            }
            let settings = &self.shard.settings;
            let clock = &self.shard.clock;
            let deadline = if waiting_for_new_request {
                head_deadline = None;
                clock.deadline(settings.idle_timeout)
            } else if self.pending.is_some() {
                clock.deadline(settings.body_timeout)
            } else {
                *head_deadline.get_or_insert_with(|| clock.deadline(settings.header_timeout))
            };
            if !self.reserve_for_read() {
                self.write_error(Kind::Overloaded);
                if self.flush().await {
                    self.linger().await;
                }
                return;
            }
            let buf = std::mem::take(&mut self.buf);
            let len = buf.len();
            let capacity = buf.capacity();
            // The shard's sweeper shuts the socket down once the deadline passes, which ends
            // this read: a slow client costs nothing more than its buffer until then.
            self.state.deadline_ms.set(deadline);
            self.state.idle.set(waiting_for_new_request);
            let (result, slice) = self.stream.read(buf.slice_mut(len..capacity)).await;
            self.state.idle.set(false);
            self.state.deadline_ms.set(0);
            self.buf = slice.into_inner();
            match result {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Writes the responses waiting in `out`; false when the connection failed. (Their memory
    /// is settled by the caller once the buffers are compacted.)
    async fn flush(&mut self) -> bool {
        if !self.out.is_empty() {
            // A client that stops reading cannot hold the connection forever.
            let clock = &self.shard.clock;
            self.state.deadline_ms.set(clock.deadline(self.shard.settings.body_timeout));
            let out = std::mem::take(&mut self.out);
            let (result, mut out) = self.stream.write_all(out).await;
            self.state.deadline_ms.set(0);
            if result.is_err() {
                return false;
            }
            out.clear();
            if out.capacity() > self.shard.settings.keep_buffer {
                out = Vec::new();
            }
            self.out = out;
        }
        true
    }

    /// Charges what the connection's buffers hold now; false when that took the shard past
    /// its memory limit.
    fn settle(&mut self) -> bool {
        let memory = &self.shard.stats.memory;
        self.scratch.settle(memory);
        let bytes = (self.buf.capacity() + self.body.capacity() + self.out.capacity()) as u64;
        memory.set(&mut self.charge, bytes)
    }

    /// Answers every complete request in the buffer, in order, until too many response bytes
    /// wait unsent.
    async fn handle_buffered(&mut self) -> Next {
        loop {
            if self.out.len() >= self.shard.settings.keep_buffer {
                return Next::Flush;
            }
            if let Some(pending) = self.pending.take() {
                match self.progress_body(pending) {
                    BodyProgress::Incomplete(pending) => {
                        self.pending = Some(pending);
                        return Next::Read;
                    }
                    BodyProgress::Failed(kind) => {
                        self.write_error(kind);
                        return Next::CloseAfterError;
                    }
                    BodyProgress::Complete { head_len, consumed, chunked } => {
                        if !self.dispatch_reparsed(head_len, consumed, chunked).await {
                            return Next::Close;
                        }
                        continue;
                    }
                }
            }
            if self.start == self.buf.len() {
                return Next::Read;
            }
            let limits = self.shard.settings.limits;
            let head = match head::parse(&self.buf[self.start..], &mut self.spans, &limits) {
                Ok(None) => match self.progress.check(&self.buf[self.start..]) {
                    Ok(()) => return Next::Read,
                    Err(e) => {
                        self.write_error(head_error_kind(e));
                        return Next::CloseAfterError;
                    }
                },
                Ok(Some(head)) => {
                    self.progress = head::Progress::default();
                    head
                }
                Err(e) => {
                    self.write_error(head_error_kind(e));
                    return Next::CloseAfterError;
                }
            };
            let available = self.buf.len() - self.start - head.len;
            let (body_start, body_end, consumed) = match head.framing {
                Framing::Empty => (0, 0, head.len),
                Framing::Length(n) if available as u64 >= n => {
                    let s = self.start + head.len;
                    (s, s + n as usize, head.len + n as usize)
                }
                Framing::Length(n) => {
                    let (head_len, expect) = (head.len, head.expect_continue);
                    self.pending = Some(Pending::Length { head_len, body_len: n as usize });
                    if expect && available == 0 {
                        respond::continue_100(&mut self.out);
                    }
                    return Next::Read;
                }
                Framing::Chunked => {
                    let (head_len, expect) = (head.len, head.expect_continue);
                    self.body.clear();
                    let pending =
                        Pending::Chunked { head_len, decoder: ChunkedDecoder::new(limits.max_body) };
                    if expect && available == 0 {
                        respond::continue_100(&mut self.out);
                    }
                    self.pending = Some(pending);
                    continue;
                }
            };
            let keep_alive = head.keep_alive;
            let body = &self.buf[body_start..body_end];
            let (go_on, tunnel) =
                respond(&self.shard, &head, body, &self.client, &mut self.out, &mut self.scratch).await;
            self.served += 1;
            self.start += consumed;
            self.settle();
            if tunnel.is_some() {
                self.tunnel = tunnel;
                return Next::Upgrade;
            }
            if !(go_on && keep_alive) {
                return Next::Close;
            }
        }
    }

    /// Handles a request whose body arrived after its head: the head is parsed again (it is
    /// still at `start`), which is cheaper than keeping borrowed pieces across reads.
    async fn dispatch_reparsed(&mut self, head_len: usize, consumed: usize, chunked: bool) -> bool {
        let limits = self.shard.settings.limits;
        let parsed = head::parse(&self.buf[self.start..self.start + head_len], &mut self.spans, &limits);
        let Ok(Some(head)) = parsed else {
            // The head was valid when it arrived and its bytes have not changed.
            self.write_error(Kind::BadRequest);
            return false;
        };
        let keep_alive = head.keep_alive;
        let body =
            if chunked { &self.body[..] } else { &self.buf[self.start + head_len..self.start + consumed] };
        // A request with a body never upgrades (`integrations::http::tunnel_requested`).
        let (go_on, _) =
            respond(&self.shard, &head, body, &self.client, &mut self.out, &mut self.scratch).await;
        self.served += 1;
        self.start += consumed;
        if chunked && self.body.capacity() > self.shard.settings.keep_buffer {
            self.body = Vec::new();
        }
        self.settle();
        go_on && keep_alive
    }

    fn progress_body(&mut self, pending: Pending) -> BodyProgress {
        match pending {
            Pending::Length { head_len, body_len } => {
                if self.buf.len() - self.start >= head_len + body_len {
                    BodyProgress::Complete { head_len, consumed: head_len + body_len, chunked: false }
                } else {
                    BodyProgress::Incomplete(Pending::Length { head_len, body_len })
                }
            }
            Pending::Chunked { head_len, mut decoder } => {
                let raw_start = self.start + head_len;
                match decoder.decode(&self.buf[raw_start..], &mut self.body) {
                    Err(ChunkError::TooLarge) => BodyProgress::Failed(Kind::RequestTooLarge),
                    Err(ChunkError::Malformed(_)) => BodyProgress::Failed(Kind::BadRequest),
                    Ok(_) if !self.settle() => {
                        self.shard.stats.memory.refuse();
                        BodyProgress::Failed(Kind::Overloaded)
                    }
                    Ok(used) if decoder.is_done() => {
                        // Drop the raw chunked bytes so the head is followed by the next request.
                        self.buf.drain(raw_start..raw_start + used);
                        BodyProgress::Complete { head_len, consumed: head_len, chunked: true }
                    }
                    Ok(used) => {
                        // Raw bytes already decoded are not needed again.
                        self.buf.drain(raw_start..raw_start + used);
                        BodyProgress::Incomplete(Pending::Chunked { head_len, decoder })
                    }
                }
            }
        }
    }

    fn write_error(&mut self, kind: Kind) {
        gateway::refuse(&self.shard, kind, &mut self.out);
        ShardStats::add(&self.shard.stats.requests, 1);
    }

    /// Moves unconsumed bytes to the front, and gives back a buffer that grew large.
    fn compact(&mut self) {
        if self.start == self.buf.len() && self.pending.is_none() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > self.shard.settings.keep_buffer {
                self.buf = Vec::with_capacity(self.shard.settings.read_buffer);
            }
        } else if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Makes room for the next read by doubling the buffer (up to the rest of a body of known
    /// length), so a body takes memory only as its bytes arrive. False when the shard's memory
    /// budget has no room.
    fn reserve_for_read(&mut self) -> bool {
        let (len, capacity) = (self.buf.len(), self.buf.capacity());
        if len < capacity {
            return true;
        }
        let doubled = capacity + capacity.max(self.shard.settings.read_buffer);
        let target = match &self.pending {
            Some(Pending::Length { head_len, body_len }) => doubled.min(self.start + head_len + body_len),
            _ => doubled,
        };
        let bytes = (target + self.body.capacity() + self.out.capacity()) as u64;
        if !self.shard.stats.memory.try_set(&mut self.charge, bytes) {
            return false;
        }
        self.buf.reserve_exact(target - len);
        self.settle();
        true
    }

    /// After an error response: half-close and discard input briefly, so the client reads the
    /// response rather than a connection reset caused by its unread bytes.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        discard_input(&mut self.stream, Duration::from_millis(500), self.shard.settings.read_buffer).await;
    }
}

enum BodyProgress {
    Incomplete(Pending),
    Failed(Kind),
    Complete { head_len: usize, consumed: usize, chunked: bool },
}

fn head_error_kind(e: HeadError) -> Kind {
    match e {
        HeadError::BadRequest(_) => Kind::BadRequest,
        HeadError::UriTooLong => Kind::UriTooLong,
        HeadError::HeadersTooLarge => Kind::HeadersTooLarge,
        HeadError::BodyTooLarge => Kind::RequestTooLarge,
        HeadError::ExpectationFailed => Kind::ExpectationFailed,
    }
}

/// Runs one request through the gateway and appends its response. Returns false when the
/// connection must close afterwards (the process is draining), and the upstream side of an
/// upgrade the response switched to.
async fn respond(
    shard: &Shard,
    head: &Head<'_, '_>,
    body: &[u8],
    client: &Client,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> (bool, Option<Tunnel>) {
    ShardStats::add(&shard.stats.requests, 1);
    let keep_alive = head.keep_alive && !shard.draining.get();
    let tunnel = gateway::handle(shard, head, body, client, keep_alive, out, scratch).await;
    let go_on = !shard.draining.get();
    (go_on, tunnel.filter(|_| go_on))
}
