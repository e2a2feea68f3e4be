//! What a connection reads and writes through: a plain TCP stream today, TLS next. The
//! connection loop is generic over it, so HTTPS reuses the same loop rather than a copy. It
//! can be split into a read half and a write half used at once, for the upgrade hand-off
//! ([`super::upgrade`]).

use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};

pub trait Stream: AsyncReadRent + AsyncWriteRent + Split + 'static {
    /// The socket underneath, which the sweeper shuts down when the connection's deadline
    /// passes (that ends any pending read or write, whatever is layered on top).
    fn fd(&self) -> RawFd;
}

impl Stream for TcpStream {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}
