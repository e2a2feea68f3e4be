//! The data plane: shards that serve APIs from a compiled routing table.
//!
//! Modules are layers; a module imports only from the layers above it in this list (a test,
//! `tests/layering.rs`, checks it):
//!
//! 1. [`runtime`], [`config`]: sys calls, counters, clocks, ids, the io driver; settings
//!    and [`tls`]: HTTPS termination with rustls (sites, handshake, stream)
//! 2. [`http1`]: the pure HTTP/1.1 codec, both sides
//! 3. [`gateway_error`]: what a gateway error is and how AWS shows it
//! 4. [`observe`]: trail, metrics, access log, trace context
//! 5. [`limits`], [`cache`]: throttle and quota cells; the stage cache store
//! 6. [`table`]: a loaded table and what is carried across swaps
//! 7. [`upstream`]: the HTTP/1.1 client and its pool
//! 8. [`shard`]: a shard's state
//! 9. [`respond`], [`exchange`]: the one response writer; one request's context
//! 10. [`integrations`]: MOCK, HTTP (Lambda next) behind one interface
//! 11. [`gateway`]: the phases in their order
//! 12. [`server`]: connections and the shard's thread
//! 13. [`admin`], then [`control`]: the admin port; the links to the control plane
//!
//! The binary (`main.rs`) wires these together; the library form also lets fuzz targets and
//! benchmarks reach the pure parts (`http1`).

pub mod admin;
pub mod cache;
pub mod config;
pub mod control;
pub mod exchange;
pub mod gateway;
pub mod gateway_error;
pub mod http1;
pub mod integrations;
pub mod limits;
pub mod observe;
pub mod respond;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod table;
pub mod tls;
pub mod upstream;
