//! What the data plane tells about itself: each request's [`trail`] (what it did), the
//! per-method [`metrics`], the [`access_log`] and W3C / X-Ray [`trace_context`].

pub mod access_log;
pub mod metrics;
pub mod trace_context;
pub mod trail;
