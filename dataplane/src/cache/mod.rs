//! The stage response cache (AWS API Gateway's stage cache), with no HTTP inside:
//!
//! - [`key`]: which stored response answers a request (method, resource, key parameters);
//! - [`store`]: one stage's entries on this data plane, shared by its shards: budget, TTL,
//!   eviction, and the fills in progress that collapse concurrent misses into one fetch;
//! - [`local`]: each shard's own map of entries, so a hit takes no lock.
//!
//! The pipeline phase that uses it is [`crate::gateway::cache`].

pub mod key;
pub mod local;
pub mod store;
