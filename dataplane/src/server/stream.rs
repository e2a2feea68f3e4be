//! What a connection reads and writes through: a plain TCP stream or a TLS stream
//! ([`crate::tls::stream`]). The connection loop is generic over it, so HTTPS reuses the same
//! loop rather than a copy. It can be split into a read half and a write half used at once,
//! for the upgrade hand-off ([`super::upgrade`]).

use crate::tls::stream::{TlsReadHalf, TlsStream, TlsWriteHalf};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};

// Streams live on one shard and their futures are never sent: no `Send` bound is wanted.
#[allow(async_fn_in_trait)]
pub trait Stream: AsyncReadRent + AsyncWriteRent + 'static {
    type ReadHalf: AsyncReadRent;
    type WriteHalf: AsyncWriteRent;

    /// The socket underneath, which the sweeper shuts down when the connection's deadline
    /// passes (that ends any pending read or write, whatever is layered on top).
    fn fd(&self) -> RawFd;

    /// Halves that may read and write at the same time.
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf);

    /// Says goodbye before the socket closes: TLS sends `close_notify`, so the client can tell
    /// the end from a truncation. Best effort.
    async fn say_goodbye(&mut self) {}
}

impl Stream for TcpStream {
    type ReadHalf = OwnedReadHalf<TcpStream>;
    type WriteHalf = OwnedWriteHalf<TcpStream>;

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        self.into_split()
    }
}

impl Stream for TlsStream {
    type ReadHalf = TlsReadHalf;
    type WriteHalf = TlsWriteHalf;

    fn fd(&self) -> RawFd {
        TlsStream::fd(self)
    }

    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        TlsStream::into_halves(self)
    }

    async fn say_goodbye(&mut self) {
        let _ = self.send_close_notify().await;
    }
}
