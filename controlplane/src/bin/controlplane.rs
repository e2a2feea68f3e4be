//! `controlplane`: owns the gateway's desired state (in an embedded store under --data-dir)
//! and streams compiled routing tables to data planes over gRPC.

use clap::Parser;
use controlplane::service::ControlService;
use controlplane::store::Store;
use proto::grpc::control_server::ControlServer;
use proto::logging;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Largest request (manifests) and message (tables) accepted.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

#[derive(Parser)]
#[command(name = "controlplane", version, about = "The gateway's control plane")]
struct Cli {
    /// gRPC address for controlctl and data planes.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Where the embedded store keeps its state.
    #[arg(long, default_value = "controlplane-data")]
    data_dir: PathBuf,
    /// Deployments each stage keeps: its current one and those it can roll back to. Older
    /// ones are dropped, and so is every deployment no stage or canary names any more.
    #[arg(long, default_value_t = controlplane::state::DEFAULT_DEPLOYMENT_HISTORY as u64,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    deployment_history: u64,
    /// Least severe log lines written to stderr.
    #[arg(long, value_enum, default_value_t = logging::Level::Info)]
    log_level: logging::Level,
    /// How log lines are written.
    #[arg(long, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let store =
        Store::open(&cli.data_dir).map_err(|e| format!("data dir {}: {e}", cli.data_dir.display()))?;
    let service = ControlService::open(store, cli.deployment_history as usize)?;
    log::info!("state version {} from {}", service.version(), cli.data_dir.display());
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("listen address {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("control plane on {addr}");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = ControlServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    tonic::transport::Server::builder()
        .add_service(server)
        .serve_with_incoming_shutdown(incoming, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    log::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else { return std::future::pending().await };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
