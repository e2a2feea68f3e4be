//! What the data plane tells about itself: each request's [`trail`] (what it did), the
//! per-method [`metrics`], the [`access_log`], W3C / X-Ray [`trace_context`], and the process
//! [`logging`].

pub mod access_log;
pub mod logging;
pub mod metrics;
pub mod trace_context;
pub mod trail;
