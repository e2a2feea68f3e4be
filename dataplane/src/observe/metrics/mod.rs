//! Per-method metrics (AWS's CloudWatch set): each shard records into its own
//! [`recorder::Recorder`] without a lock, exports once a second, and the
//! [`registry::Registry`] merges the exports off the shards for `/metrics` and the control
//! plane.

pub mod recorder;
pub mod registry;
