//! The HTTP/1.1 server, apart from the gateway: a shard's thread and accept loop
//! ([`shard`]), the connection loop with its buffers, pipelining and timeouts ([`conn`]), and
//! the [`stream::Stream`] it reads and writes through, and the hand-off of a connection that
//! switched protocols ([`upgrade`]). It enters the gateway at one place:
//! [`crate::gateway::handle`] for a request, [`crate::gateway::refuse`] for one it refused.

pub mod conn;
pub mod shard;
pub mod stream;
pub mod upgrade;
