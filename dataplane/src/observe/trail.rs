//! What one request did, written by the phases as they run and read once it is answered, by
//! the per-method metrics and the access log. Shard-local (`Cell`s), one per request.

use std::cell::Cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheUse {
    /// The method does not use the cache (or the request bypassed it).
    #[default]
    None,
    /// Answered from the cache (a collapsed wait for another request's fill included).
    Hit,
    /// Sent to the backend.
    Miss,
}

#[derive(Default)]
pub struct Trail {
    /// The status written to the client.
    pub status: Cell<u16>,
    /// The body length written (a HEAD response's announced length).
    pub body_len: Cell<u64>,
    /// How long the upstream exchange took, when one was made.
    pub integration_us: Cell<Option<u64>>,
    /// The upstream's status (0 when it gave none).
    pub integration_status: Cell<u16>,
    pub cache: Cell<CacheUse>,
    /// A throttle or quota refused the request.
    pub throttled: Cell<bool>,
    /// The gateway answered with this error itself.
    pub error: Cell<Option<crate::gateway_error::Kind>>,
}
