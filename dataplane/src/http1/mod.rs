//! The HTTP/1.1 engine's pure parts, for both sides of the proxy: request heads ([`head`]),
//! upstream response heads ([`response_head`]), the header-field rules they share
//! ([`fields`]: lengths, list tokens, hop-by-hop names), chunked bodies ([`chunked`]),
//! response encoding ([`response`]), the `Date` header ([`date`]) and dot segments in paths
//! ([`path`]). The connection state
//! machine that drives them over a socket is [`crate::conn`].

pub mod chunked;
pub mod date;
pub mod fields;
pub mod head;
pub mod path;
pub mod response;
pub mod response_head;
