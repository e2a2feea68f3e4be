//! The data plane's link to the control plane, on its own thread (off the shards): receive
//! each table over the `Watch` stream, validate it once, persist it, hand it to every shard,
//! wait for the shards to swap, and acknowledge per shard. Reconnects with backoff; while the
//! control plane is away the shards keep serving their last table.
//!
//! Protobuf types stay in this module: shards only ever see [`LoadedTable`].

use crate::admin::AdminState;
use crate::runtime::stats::ShardStats;
use crate::table::CurrentTable;
use crate::table::LoadedTable;
use proto::grpc;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Hands new tables to the shards and reads back what they serve.
pub struct TablePublisher {
    senders: Vec<crossbeam_channel::Sender<Arc<LoadedTable>>>,
    shards: Vec<Arc<ShardStats>>,
    admin: Arc<AdminState>,
    /// The table last published (shared with the usage reporter). Holding it means the
    /// previous table's last reference is dropped here, off the shards, once they have
    /// swapped (freeing a large table takes time a shard should spend on requests).
    current: CurrentTable,
}

impl TablePublisher {
    /// `current`: the table the shards start with, if any (its throttles' state carries over
    /// to the first table from the control plane).
    pub fn new(
        senders: Vec<crossbeam_channel::Sender<Arc<LoadedTable>>>,
        shards: Vec<Arc<ShardStats>>,
        admin: Arc<AdminState>,
        current: CurrentTable,
    ) -> Self {
        TablePublisher { senders, shards, admin, current }
    }

    /// Sends the table to every shard; each swaps at its next tick. Returns the table it
    /// replaces, to be dropped once the shards have swapped.
    #[must_use = "drop the retired table after the shards swapped, not before"]
    pub fn publish(&mut self, table: Arc<LoadedTable>) -> Option<Arc<LoadedTable>> {
        let version = table.get().version.to_native();
        for tx in &self.senders {
            let _ = tx.send(table.clone());
        }
        self.admin.table_version.store(version, Ordering::Relaxed);
        self.admin.ready.store(true, Ordering::Relaxed);
        match self.current.lock() {
            Ok(mut current) => current.replace(table),
            Err(_) => None,
        }
    }

    fn current(&self) -> Option<Arc<LoadedTable>> {
        self.current.lock().ok().and_then(|c| c.clone())
    }

    /// The version each shard serves.
    pub fn shard_versions(&self) -> Vec<u64> {
        self.shards.iter().map(|s| s.table_version.load(Ordering::Acquire)).collect()
    }
}

pub struct LinkConfig {
    pub target: super::client::Target,
    pub id: String,
    pub state_dir: PathBuf,
}

/// The persisted table, if a previous run stored one.
pub fn load_persisted(state_dir: &Path, shards: usize) -> Option<LoadedTable> {
    let path = state_dir.join("table.bin");
    let bytes = std::fs::read(&path).ok()?;
    match LoadedTable::load(&bytes, None, shards) {
        Ok(table) => Some(table),
        Err(e) => {
            log::warn!("ignoring persisted table {}: {e}", path.display());
            None
        }
    }
}

/// Runs the link forever on the calling thread.
pub fn run(config: LinkConfig, mut publisher: TablePublisher) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("control-plane link: {e}");
            return;
        }
    };
    runtime.block_on(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            match session(&config, &mut publisher).await {
                Ok(()) => log::info!("control plane closed the stream; reconnecting"),
                // A refused token does not fix itself: worth a warning, not an info line.
                Err(e) if e.starts_with("refused") => {
                    log::warn!("control plane {}: {e}; retrying in {backoff:?}", config.target.url)
                }
                Err(e) => log::info!("control plane {}: {e}; retrying in {backoff:?}", config.target.url),
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(100);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

async fn session(config: &LinkConfig, publisher: &mut TablePublisher) -> Result<(), String> {
    let mut client = super::client::connect(&config.target, super::client::Use::Watch).await?;
    let have = publisher.shard_versions().into_iter().min().unwrap_or(0);
    let have_digest = publisher.current().map(|t| t.digest().to_vec()).unwrap_or_default();
    let request = grpc::WatchRequest {
        dataplane_id: config.id.clone(),
        shards: publisher.shards.len() as u32,
        have_version: have,
        have_digest,
    };
    let mut stream = client.watch(request).await.map_err(|e| proto::client::status_text(&e))?.into_inner();
    log::info!("connected to control plane {} as {}", config.target.url, config.id);
    ack(&mut client, config, publisher).await?;
    while let Some(update) = stream.message().await.map_err(|e| proto::client::status_text(&e))? {
        let started = Instant::now();
        let shards = publisher.shards.len();
        let table = match LoadedTable::load(&update.table, publisher.current().as_deref(), shards) {
            Ok(table) => Arc::new(table),
            Err(e) => {
                // The control plane verifies tables before publishing, so this is a bug or a
                // corrupted transfer; keep serving the current table.
                log::error!("refusing table version {}: {e}", update.version);
                continue;
            }
        };
        if let Err(e) = proto::durable_file::write(&config.state_dir.join("table.bin"), &update.table) {
            log::warn!("cannot persist table version {}: {e}", update.version);
        }
        let retired = publisher.publish(table);
        let version = update.version;
        // The shards swap at their next tick (at most `Settings::tick` away).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !publisher.shard_versions().iter().all(|v| *v == version) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(retired);
        ack(&mut client, config, publisher).await?;
        log::info!(
            "serving table version {version} ({} ms from receipt to every shard)",
            started.elapsed().as_millis()
        );
    }
    Ok(())
}

async fn ack(
    client: &mut proto::client::Client,
    config: &LinkConfig,
    publisher: &TablePublisher,
) -> Result<(), String> {
    let shards = publisher
        .shard_versions()
        .into_iter()
        .enumerate()
        .map(|(i, version)| grpc::ShardStatus { shard: i as u32, version })
        .collect();
    client
        .ack(grpc::AckRequest { dataplane_id: config.id.clone(), shards })
        .await
        .map(|_| ())
        .map_err(|e| proto::client::status_text(&e))
}
