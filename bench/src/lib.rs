//! Benchmark tools.
//!
//! - [`schedule`]: intended send times of an open-loop run (pure).
//! - [`client`]: one keep-alive HTTP/1.1 connection of the generator (blocking, own thread).
//! - [`keys`]: Zipf-distributed key sets for cache benchmarks.
//! - [`pace`]: precise waits for intended send times.
//! - [`run`]: the modes: open loop (steady, ramp), burst from idle, closed loop.
//! - [`report`]: HDR histograms, counts by status, per-second series; table and JSON.

pub mod client;
pub mod keys;
pub mod pace;
pub mod report;
pub mod run;
pub mod schedule;
