//! The HTTP/1.1 engine's pure parts: request heads ([`head`]), chunked bodies ([`chunked`]),
//! response encoding ([`response`]), the `Date` header ([`date`]) and dot segments in paths
//! ([`path`]). The connection state
//! machine that drives them over a socket is [`crate::conn`].

pub mod chunked;
pub mod date;
pub mod head;
pub mod path;
pub mod response;
