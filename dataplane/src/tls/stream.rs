//! A TLS connection as a monoio stream: rustls' buffered state machine driven over the
//! connection's own socket. Reads copy decrypted bytes straight into the buffer the connection
//! loop lends; writes encrypt into one ciphertext buffer that goes out in one socket write.
//!
//! Why not `monoio-rustls`: it gives no access to the session after the handshake (the peer's
//! certificate, which mutual TLS needs), and its split halves share the whole stream through
//! an `UnsafeCell` while both may be suspended inside it. Here the session is an
//! `Rc<RefCell<_>>` borrowed only between awaits, and each half owns its own socket half and
//! buffer (monoio's TCP halves), so splitting needs no `unsafe` of ours.
//!
//! Reading never writes: what rustls wants to send after the handshake (a key update answer,
//! new session tickets) goes out with the next write, which for HTTP is the next response.

use crate::runtime::sys;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::Connection;
use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

/// One full TLS record and its header: the most ciphertext read at once.
const RECORD: usize = 16 * 1024 + 512;
/// The first read, and what an idle connection keeps: requests are small, and an idle
/// connection should cost little (rustls keeps 4 KiB of its own). A read that fills the
/// buffer doubles it, up to [`RECORD`].
const FIRST_READ: usize = 2048;
/// Plaintext rustls takes per write before it is flushed, bounding what one connection
/// holds encrypted and unsent.
pub const SEND_LIMIT: usize = 64 * 1024;

/// The rustls connection both halves of a split stream use, each only between its awaits.
type Shared = Rc<RefCell<Connection>>;

/// Ciphertext received and not yet handed to rustls.
#[derive(Default)]
pub struct Incoming {
    buf: Vec<u8>,
    start: usize,
}

impl Incoming {
    /// Hands rustls what is buffered, processing it record by record. Stops when the buffer
    /// is empty, or when rustls' plaintext buffer is full (the rest waits for the reader).
    pub fn feed(&mut self, session: &mut Connection) -> io::Result<()> {
        while self.start < self.buf.len() {
            let mut unread = &self.buf[self.start..];
            match session.read_tls(&mut unread) {
                Ok(0) => break,
                Ok(n) => self.start += n,
                // Plaintext buffer full: the reader empties it first.
                Err(_) => break,
            }
            session.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            // What a large request needed is given back once it is processed.
            if self.buf.capacity() > 2 * FIRST_READ {
                self.buf = Vec::new();
            }
        }
        Ok(())
    }

    pub fn unread(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// Reads more ciphertext from the socket; `Ok(0)` at end of stream.
    pub async fn fill<R: AsyncReadRent>(&mut self, io: &mut R) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < FIRST_READ / 2 {
            let grow = self.buf.capacity().clamp(FIRST_READ, RECORD);
            self.buf.reserve(grow);
        }
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let capacity = buf.capacity();
        let (result, slice): (_, SliceMut<Vec<u8>>) = io.read(buf.slice_mut(len..capacity)).await;
        self.buf = slice.into_inner();
        result
    }
}

/// Reads plaintext into `buf`: from what rustls already decrypted, else after reading more
/// ciphertext. `Ok(0)` after the peer's `close_notify`; an end of stream without it is an
/// error, as a truncation must be.
async fn read_plain<R: AsyncReadRent, T: IoBufMut>(
    io: &mut R,
    session: &Shared,
    incoming: &mut Incoming,
    mut buf: T,
) -> BufResult<usize, T> {
    loop {
        {
            let mut s = session.borrow_mut();
            if let Err(e) = incoming.feed(&mut s) {
                return (Err(e), buf);
            }
            let mut reader = s.reader();
            match reader.fill_buf() {
                Ok(chunk) => {
                    let n = sys::fill_io_buf(&mut buf, chunk);
                    reader.consume(n);
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return (Err(e), buf),
            }
        }
        match incoming.fill(io).await {
            Ok(0) => {
                // The socket ended: rustls decides between a clean close and a truncation.
                let mut s = session.borrow_mut();
                let _ = s.read_tls(&mut io::empty());
            }
            Ok(_) => {}
            Err(e) => return (Err(e), buf),
        }
    }
}

/// Encrypts what rustls takes of `data` (at most [`SEND_LIMIT`] at once) and writes all of
/// it, with anything rustls had queued, in one socket write.
async fn write_plain<W: AsyncWriteRent>(
    io: &mut W,
    session: &Shared,
    outgoing: &mut Vec<u8>,
    data: &[u8],
) -> io::Result<usize> {
    let taken = {
        let mut s = session.borrow_mut();
        let taken = if data.is_empty() { 0 } else { s.writer().write(data)? };
        while s.wants_write() {
            s.write_tls(outgoing)?;
        }
        taken
    };
    flush_outgoing(io, outgoing).await?;
    Ok(taken)
}

async fn flush_outgoing<W: AsyncWriteRent>(io: &mut W, outgoing: &mut Vec<u8>) -> io::Result<()> {
    if outgoing.is_empty() {
        return Ok(());
    }
    let (result, mut back) = io.write_all(std::mem::take(outgoing)).await;
    back.clear();
    // A large response's ciphertext is not kept for the next one.
    if back.capacity() <= RECORD {
        *outgoing = back;
    }
    result.map(|_| ())
}

/// A TLS connection after its handshake: a client's to the gateway, or the gateway's to an
/// HTTPS upstream. Its socket is split from the start, so the stream is its two halves and
/// [`TlsStream::into_halves`] only hands them out.
pub struct TlsStream {
    fd: RawFd,
    reader: TlsReadHalf,
    writer: TlsWriteHalf,
}

/// The reading side: its socket half, the shared session, and ciphertext not yet processed.
pub struct TlsReader<R> {
    tcp: R,
    session: Shared,
    incoming: Incoming,
}

/// The writing side: its socket half, the shared session, and ciphertext being sent.
pub struct TlsWriter<W> {
    tcp: W,
    session: Shared,
    outgoing: Vec<u8>,
}

pub type TlsReadHalf = TlsReader<OwnedReadHalf<TcpStream>>;
pub type TlsWriteHalf = TlsWriter<OwnedWriteHalf<TcpStream>>;

impl TlsStream {
    pub fn new(tcp: TcpStream, session: Connection, incoming: Incoming) -> TlsStream {
        let fd = tcp.as_raw_fd();
        let session = Rc::new(RefCell::new(session));
        let (read, write) = tcp.into_split();
        TlsStream {
            fd,
            reader: TlsReader { tcp: read, session: session.clone(), incoming },
            writer: TlsWriter { tcp: write, session, outgoing: Vec::new() },
        }
    }

    /// Sends `close_notify` (the socket stays open until dropped).
    pub async fn send_close_notify(&mut self) -> io::Result<()> {
        self.writer.close_notify().await
    }

    /// The socket, for the sweeper's shutdown and the pool's checks.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Takes what the peer sent while the connection sat idle in a pool (TLS 1.3 session
    /// tickets, say) without waiting: false when that was application data, an alert or the
    /// end, so the connection must not carry another request.
    pub fn idle_is_clean(&mut self) -> bool {
        let incoming = &mut self.reader.incoming;
        // A few records at most: tickets are small, and more than this is not idle.
        while incoming.buf.len() < RECORD * 4 {
            incoming.buf.reserve(RECORD);
            match sys::recv_nonblocking(self.fd, &mut incoming.buf) {
                Ok(None) => break,
                Ok(Some(0)) | Err(_) => return false,
                Ok(Some(_)) => {}
            }
        }
        let mut s = self.reader.session.borrow_mut();
        if incoming.feed(&mut s).is_err() {
            return false;
        }
        let has_plaintext = s.reader().fill_buf().map(|chunk| !chunk.is_empty());
        matches!(has_plaintext, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Halves usable at once (the upgrade relay): each owns its socket half and buffer.
    pub fn into_halves(self) -> (TlsReadHalf, TlsWriteHalf) {
        (self.reader, self.writer)
    }
}

impl AsyncReadRent for TlsStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.reader.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.reader.readv(buf).await
    }
}

impl AsyncWriteRent for TlsStream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.writer.write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.writer.writev(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.writer.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.writer.shutdown().await
    }
}

impl<R: AsyncReadRent> AsyncReadRent for TlsReader<R> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        read_plain(&mut self.tcp, &self.session, &mut self.incoming, buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // The connection loop never reads vectored; one buffer at a time would do if it did.
        (Err(io::Error::new(io::ErrorKind::Unsupported, "vectored TLS reads")), buf)
    }
}

impl<W: AsyncWriteRent> TlsWriter<W> {
    async fn close_notify(&mut self) -> io::Result<()> {
        self.session.borrow_mut().send_close_notify();
        write_plain(&mut self.tcp, &self.session, &mut self.outgoing, &[]).await.map(|_| ())
    }
}

impl<W: AsyncWriteRent> AsyncWriteRent for TlsWriter<W> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let result =
            write_plain(&mut self.tcp, &self.session, &mut self.outgoing, sys::io_buf_bytes(&buf)).await;
        (result, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::Error::new(io::ErrorKind::Unsupported, "vectored TLS writes")), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        write_plain(&mut self.tcp, &self.session, &mut self.outgoing, &[]).await.map(|_| ())
    }

    /// Sends `close_notify`, then ends the socket's writing side.
    async fn shutdown(&mut self) -> io::Result<()> {
        self.close_notify().await?;
        self.tcp.shutdown().await
    }
}
