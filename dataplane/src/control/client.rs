//! The one way the data plane connects to the control plane, for its three links.

use proto::grpc::control_client::ControlClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest message the data plane accepts (a table of 100,000 routes is well below it).
const MAX_MESSAGE: usize = 256 << 20;

/// How a link talks to the control plane.
#[derive(Debug, Clone, Copy)]
pub enum Use {
    /// The table watch: one long-lived stream, kept alive by HTTP/2 pings, no call timeout.
    Watch,
    /// The reporters: short unary calls, each bounded by a timeout.
    Report,
}

pub async fn connect(url: &str, purpose: Use) -> Result<ControlClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| format!("bad URL {url}: {e}"))?;
    let endpoint = match purpose {
        Use::Watch => endpoint
            .connect_timeout(Duration::from_secs(3))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5)),
        Use::Report => endpoint.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(3)),
    };
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    Ok(ControlClient::new(channel).max_decoding_message_size(MAX_MESSAGE))
}
