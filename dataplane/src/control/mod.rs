//! The data plane's side of the control plane, the only users of gRPC types: the [`link`]
//! (tables in, acks out), the [`usage_report`] (quota usage, durable) and the
//! [`metrics_report`] (per-method totals), all connected by [`client`]. Each runs on its own
//! thread, off the shards.

pub mod client;
pub mod link;
pub mod metrics_report;
pub mod usage_report;
