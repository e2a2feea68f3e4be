//! The data plane: shards that serve APIs from a compiled routing table.
//!
//! The binary (`main.rs`) wires these together; the library form exists so that fuzz targets
//! and benchmarks can reach the pure parts (`http1`).

pub mod access_log;
pub mod admin;
pub mod cache;
mod conn;
pub mod control_link;
mod gateway_response;
pub mod http1;
pub mod limit;
pub mod loaded_table;
pub mod metrics;
pub mod metrics_report;
mod mock;
mod pipeline;
mod proxy;
pub mod quota;
mod request_id;
pub mod settings;
pub mod shard;
pub mod stats;
pub mod sys;
mod trace_context;
mod trail;
mod upstream;
pub mod usage_report;
