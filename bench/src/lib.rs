//! Benchmark tools.
//!
//! - [`schedule`]: intended send times of an open-loop run (pure).
//! - [`client`]: one keep-alive HTTP/1.1 connection of the generator.
//! - [`run`]: the modes: open loop (steady, ramp), burst from idle, closed loop.
//! - [`report`]: HDR histograms, counts by status, per-second series; table and JSON.

pub mod client;
pub mod report;
pub mod run;
pub mod schedule;
