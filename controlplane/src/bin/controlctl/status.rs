//! What the data planes serve: `status`, and waiting for a version (`--wait`).

use super::output::{print_structured, print_table};
use super::{connect, Failure, Output, Target};
use proto::grpc;
use std::time::{Duration, Instant};

pub(crate) async fn status(server: &Target, output: Output) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    let status = client.status(grpc::StatusRequest {}).await?.into_inner();
    match output {
        Output::Table => {
            println!("control plane version {}", status.version);
            let rows: Vec<Vec<String>> = status
                .dataplanes
                .iter()
                .map(|d| {
                    let shards: Vec<String> =
                        d.shards.iter().map(|s| format!("{}:v{}", s.shard, s.version)).collect();
                    let state = if d.connected { "connected" } else { "disconnected" };
                    vec![d.id.clone(), state.into(), d.peer.clone(), shards.join(" ")]
                })
                .collect();
            print_table(&["DATAPLANE", "STATE", "PEER", "SHARDS"], &rows);
        }
        _ => {
            let planes: Vec<serde_json::Value> = status
                .dataplanes
                .iter()
                .map(|d| {
                    serde_json::json!({"id": d.id, "connected": d.connected, "peer": d.peer,
                        "lastSeenMs": d.last_seen_ms,
                        "shards": d.shards.iter().map(|s| serde_json::json!({"shard": s.shard, "version": s.version})).collect::<Vec<_>>()})
                })
                .collect();
            print_structured(&serde_json::json!({"version": status.version, "dataplanes": planes}), output);
        }
    }
    Ok(())
}

/// Waits until every connected data plane reports every shard at `version` or later.
pub(crate) async fn wait_for(
    client: &mut proto::client::Client,
    version: u64,
    timeout: Duration,
) -> Result<(), Failure> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let status = client.status(grpc::StatusRequest {}).await?.into_inner();
        let connected: Vec<&grpc::DataplaneStatus> =
            status.dataplanes.iter().filter(|d| d.connected).collect();
        let behind: Vec<String> = connected
            .iter()
            .filter(|d| d.shards.is_empty() || d.shards.iter().any(|s| s.version < version))
            .map(|d| d.id.clone())
            .collect();
        if behind.is_empty() {
            // Name them, and the known ones that were not waited for (disconnected), so a
            // success never hides a data plane that is down.
            let served: Vec<&str> = connected.iter().map(|d| d.id.as_str()).collect();
            let down: Vec<&str> =
                status.dataplanes.iter().filter(|d| !d.connected).map(|d| d.id.as_str()).collect();
            let not_waited = if down.is_empty() {
                String::new()
            } else {
                format!("; not waited for (disconnected): {}", down.join(", "))
            };
            println!(
                "version {version} served by {} data plane(s) after {} ms: {}{not_waited}",
                connected.len(),
                started.elapsed().as_millis(),
                served.join(", ")
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Failure::Refused(format!(
                "timed out waiting for version {version} on: {}",
                behind.join(", ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
