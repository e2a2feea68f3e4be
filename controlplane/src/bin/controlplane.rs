//! `controlplane`: owns the gateway's desired state (in an embedded store under --data-dir)
//! and streams compiled routing tables to data planes over gRPC.

use clap::Parser;
use controlplane::auth::{Role, Tokens};
use controlplane::client_config::{ClientConfig, Context};
use controlplane::service::ControlService;
use controlplane::store::Store;
use proto::grpc::control_server::ControlServer;
use proto::logging;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tonic::transport::{Identity, ServerTlsConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Largest request (manifests) and message (tables) accepted.
const MAX_MESSAGE: usize = 256 * 1024 * 1024;

#[derive(Parser)]
#[command(name = "controlplane", version, about = "The gateway's control plane")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Another name (DNS or IP) the control plane's certificate must be valid for, beyond
    /// localhost, 127.0.0.1, ::1 and the host's name; repeat for more.
    #[arg(long = "tls-san", global = true)]
    tls_sans: Vec<String>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Make the CA, the server certificate and the first tokens under --data-dir, then exit
    /// (the first start does the same).
    Init,
    /// Write a client certificate and key for a data plane (`OUT/NAME.pem`, `OUT/NAME.key`),
    /// signed by the control plane's CA: an alternative to a data-plane token
    /// (`dataplane --control-plane-cert/--control-plane-key`).
    IssueDataplaneCert {
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
    },
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
    if let Some(Command::IssueDataplaneCert { name, out }) = &cli.command {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (cert, key) = controlplane::pki::issue_dataplane(&cli.data_dir, name, now)?;
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let (cert_path, key_path) = (out.join(format!("{name}.pem")), out.join(format!("{name}.key")));
        for (path, text) in [(&cert_path, &cert), (&key_path, &key)] {
            proto::durable_file::write(path, text.as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        println!("{} and {}", cert_path.display(), key_path.display());
        return Ok(());
    }
    if matches!(cli.command, Some(Command::Init)) {
        let (pki, tokens) = secure(&cli, cli.listen)?;
        println!("control plane credentials under {}", pki.dir.parent().unwrap_or(&pki.dir).display());
        drop(tokens);
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("listen address {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (pki, tokens) = secure(&cli, addr)?;
    let service = ControlService::open(store, cli.deployment_history as usize, Arc::new(tokens))?;
    log::info!("state version {} from {}", service.version(), cli.data_dir.display());
    println!("control plane on {addr}");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = ControlServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let identity = Identity::from_pem(&pki.server_cert_pem, &pki.server_key_pem);
    // A client certificate is optional (tokens are the rule); one that is sent must chain to
    // the control plane's own CA.
    let tls = ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .client_auth_optional(true);
    tonic::transport::Server::builder()
        .tls_config(tls)
        .map_err(|e| format!("TLS: {e}"))?
        .add_service(server)
        .serve_with_incoming_shutdown(incoming, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    log::info!("stopped");
    Ok(())
}

/// The certificates and tokens, made on the first start: a CA and server certificate, an
/// `admin` token written into `DATA_DIR/admin.conf` (a controlctl configuration) and a
/// `dataplane` token into `DATA_DIR/dataplane.token`, each readable by the owner only.
fn secure(cli: &Cli, addr: SocketAddr) -> Result<(controlplane::pki::Pki, Tokens), String> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let names = controlplane::pki::server_names(&cli.tls_sans);
    let pki = controlplane::pki::ensure(&cli.data_dir, &names, now)?;
    let tokens = Tokens::open(&cli.data_dir).map_err(|e| format!("tokens: {e}"))?;
    if tokens.is_empty() {
        let now_ms = now as u64 * 1000;
        let admin = tokens.create("admin", Role::Admin, now_ms).map_err(|e| e.message().to_string())?;
        let dataplane =
            tokens.create("dataplane", Role::Dataplane, now_ms).map_err(|e| e.message().to_string())?;
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let mut config = ClientConfig::default();
        config.set(Context {
            name: "default".into(),
            server: format!("https://{host}:{}", addr.port()),
            certificate_authority_data: Some(pki.ca_pem.clone()),
            certificate_authority: None,
            token: Some(admin),
        });
        let admin_conf = cli.data_dir.join("admin.conf");
        config.save(&admin_conf)?;
        let token_file = cli.data_dir.join("dataplane.token");
        proto::durable_file::write(&token_file, format!("{dataplane}\n").as_bytes())
            .map_err(|e| format!("{}: {e}", token_file.display()))?;
        log::info!(
            "first start: admin credentials in {} (CONTROLCTL_CONFIG), a data plane token in {}",
            admin_conf.display(),
            token_file.display()
        );
    }
    Ok((pki, tokens))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else { return std::future::pending().await };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
