//! What every layer stands on: the only `unsafe` ([`sys`]), per-shard counters ([`stats`]),
//! the shard's budget for buffered bytes ([`memory`]), the coarse clock ([`clock`]), maps
//! keyed by hashes ([`hashed`]), request ids ([`ids`]), random numbers ([`random`]) and the io
//! driver a shard runs on ([`driver`]).

pub mod clock;
pub mod driver;
pub mod hashed;
pub mod ids;
pub mod memory;
pub mod random;
pub mod stats;
pub mod sys;
