//! The data plane's HTTP/1.1 client: [`pool`] (a shard's idle connections, clean ones only)
//! and [`client`] (one exchange over them), over plain or TLS connections ([`stream`]). Takes its pool and counters explicitly; knows
//! nothing of routes or requests.

pub mod client;
pub mod pool;
pub mod stream;
