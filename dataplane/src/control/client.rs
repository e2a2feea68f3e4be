//! The one way the data plane connects to the control plane, for its three links: TLS against
//! the control plane's CA (`--control-plane-ca`) and the data plane's token
//! (`--control-plane-token-file`) on every call.

use proto::client::{Client, Credentials};
use std::time::Duration;

/// Largest message the data plane accepts (a table of 100,000 routes is well below it).
const MAX_MESSAGE: usize = 256 << 20;

/// Where the control plane is and what the data plane presents to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub credentials: Credentials,
}

/// How a link talks to the control plane.
#[derive(Debug, Clone, Copy)]
pub enum Use {
    /// The table watch: one long-lived stream, kept alive by HTTP/2 pings, no call timeout.
    Watch,
    /// The reporters: short unary calls, each bounded by a timeout.
    Report,
}

pub async fn connect(target: &Target, purpose: Use) -> Result<Client, String> {
    let endpoint = proto::client::endpoint(&target.url, &target.credentials)?;
    let endpoint = match purpose {
        Use::Watch => endpoint
            .connect_timeout(Duration::from_secs(3))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5)),
        Use::Report => endpoint.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(3)),
    };
    proto::client::connect(endpoint, &target.credentials, MAX_MESSAGE).await
}
