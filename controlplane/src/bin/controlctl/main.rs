//! `controlctl`: the gateway's command-line client, in the manner of kubectl.
//!
//! Exit codes: 0 success; 1 refused (invalid manifest, not found, conflict, --wait timed out);
//! 2 usage error, the control plane cannot be reached, or it refused the caller
//! (unauthenticated, or a role without the permission).
//!
//! Where to connect and as whom: `--server` (or `$CONTROLCTL_SERVER`) and `$CONTROLCTL_TOKEN`
//! override the context (`--context`, else the current one) of the configuration file
//! (`$CONTROLCTL_CONFIG`, default `~/.config/controlctl/config`; the control plane writes one
//! for its admin as `DATA_DIR/admin.conf`).

mod keys;
mod manifests;
mod metrics;
mod objects;
mod output;
mod status;
mod tokens;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "controlctl", version, about = "Manage the gateway like kubectl manages a cluster")]
struct Cli {
    /// Control plane URL [env: CONTROLCTL_SERVER; default: the context's, else
    /// https://127.0.0.1:7000].
    #[arg(long, global = true)]
    server: Option<String>,
    /// The configuration context to use (default: the current one).
    #[arg(long, global = true)]
    context: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update the objects in manifests; print what changed.
    Apply {
        /// A manifest file, or a directory of .yaml/.yml files.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Validate and show what would change, store nothing.
        #[arg(long)]
        dry_run: bool,
        /// Return only once every connected data plane serves the new version.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
    },
    /// Show how the stored objects differ from the manifests.
    Diff {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
    },
    /// List stored objects of a kind (api, stage, domain, usageplan, apikey, account).
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Delete one object (stages are named API/STAGE).
    Delete { kind: String, name: String },
    /// Deploy the API's current definition to a stage.
    Deploy {
        api: String,
        #[arg(long)]
        stage: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Move a stage back to an earlier deployment (the previous one by default).
    Rollback {
        api: String,
        #[arg(long)]
        stage: String,
        #[arg(long)]
        to: Option<String>,
    },
    /// List a stage's deployments, newest first.
    Deployments {
        api: String,
        #[arg(long)]
        stage: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// The version each connected data plane and shard serves.
    Status {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Quota usage of an API key, or of every key of a usage plan, per period.
    Usage {
        /// An ApiKey or UsagePlan name.
        name: String,
        /// Periods that end after this UTC date or time (2026-12-01, 2026-12-01T08:00:00Z).
        #[arg(long)]
        from: Option<String>,
        /// Periods that start before this UTC date or time.
        #[arg(long)]
        to: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// API keys: create (the value is shown once), list, enable, disable, revoke, and reset
    /// or grant quota.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Per-method metrics summed over every data plane: count, error rates, cache hit rate,
    /// latency and integration latency percentiles.
    Metrics {
        /// Only this API.
        api: Option<String>,
        #[arg(long)]
        stage: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// `metrics`, refreshed in place, with the request rate since the last refresh (Ctrl-C
    /// stops).
    Top {
        api: Option<String>,
        #[arg(long)]
        stage: Option<String>,
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 2.0)]
        interval: f64,
        /// Stop after this many refreshes (default: until interrupted).
        #[arg(long)]
        iterations: Option<u64>,
    },
    /// The control plane's bearer tokens (admin only): create (shown once), list, revoke.
    Tokens {
        #[command(subcommand)]
        action: TokensAction,
    },
    /// The stage response cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Validate manifests and compile them into a routing table file, offline (for
    /// `dataplane --table FILE`).
    Compile {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        #[arg(long, default_value_t = 1)]
        version: u64,
    },
}

#[derive(Subcommand)]
enum CacheAction {
    /// Empty a stage's cache on every data plane; waits until every connected data plane
    /// serves the flushed table.
    Flush {
        api: String,
        #[arg(long)]
        stage: String,
        /// How long to wait for the data planes.
        #[arg(long = "timeout", default_value_t = 30)]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum TokensAction {
    /// Make a token; it is printed once.
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: controlplane::auth::Role,
    },
    /// List tokens (names and roles; only hashes are stored).
    List,
    /// Revoke a token: its next call is refused.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key; without --value one is generated and printed once.
    Create {
        name: String,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        value: Option<String>,
    },
    /// List keys (never their values: only hashes are stored).
    List,
    /// Revoke (delete) a key; it stops working with the next table.
    Revoke { name: String },
    /// Let a disabled key call its APIs again.
    Enable { name: String },
    /// Refuse a key (403) without deleting it.
    Disable { name: String },
    /// Set the key's usage in its current quota period back to zero.
    Reset { name: String },
    /// Give the key this many extra requests in its current quota period.
    Grant { name: String, requests: u64 },
}

/// Why a command failed, and so its exit code.
enum Failure {
    Refused(String),
    Unreachable(String),
    /// The control plane refused the caller (exit 2).
    Denied(String),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
                Failure::Unreachable(s.message().to_string())
            }
            tonic::Code::Unauthenticated => Failure::Denied(format!("not authenticated: {}", s.message())),
            tonic::Code::PermissionDenied => Failure::Denied(format!("permission denied: {}", s.message())),
            _ => Failure::Refused(format!("error: {}", s.message())),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Compile { file, output, version } = &cli.command {
        return manifests::compile_offline(file, output, *version);
    }
    let target = match target(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, target)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(m)) => {
            eprintln!("{m}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(m) | Failure::Denied(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
    }
}

/// A control plane and what to present to it.
pub(crate) struct Target {
    url: String,
    credentials: proto::client::Credentials,
}

/// The flags and environment over the configuration file's context.
fn target(cli: &Cli) -> Result<Target, String> {
    use controlplane::client_config::{default_path, ClientConfig};
    let config = match default_path() {
        Some(path) => ClientConfig::load(&path)?,
        None => ClientConfig::default(),
    };
    let context = config.context(cli.context.as_deref())?;
    let url = cli
        .server
        .clone()
        .or_else(|| std::env::var("CONTROLCTL_SERVER").ok())
        .or_else(|| context.map(|c| c.server.clone()))
        .unwrap_or_else(|| "https://127.0.0.1:7000".into());
    let ca_pem = match context {
        Some(c) => c.ca_pem()?,
        None => None,
    };
    let token = std::env::var("CONTROLCTL_TOKEN").ok().or_else(|| context.and_then(|c| c.token.clone()));
    Ok(Target { url, credentials: proto::client::Credentials { ca_pem, token, identity: None } })
}

async fn connect(server: &Target) -> Result<proto::client::Client, Failure> {
    let unreachable =
        |e: String| Failure::Unreachable(format!("cannot reach the control plane at {}: {e}", server.url));
    let endpoint = proto::client::endpoint(&server.url, &server.credentials)
        .map_err(Failure::Unreachable)?
        .connect_timeout(Duration::from_secs(5));
    proto::client::connect(endpoint, &server.credentials, 256 << 20).await.map_err(unreachable)
}

/// One command group per module; this only dispatches.
async fn run(command: Command, server: Target) -> Result<(), Failure> {
    let server = &server;
    match command {
        Command::Apply { file, dry_run, wait, timeout_secs } => {
            manifests::apply(server, &file, dry_run, wait, timeout_secs).await
        }
        Command::Diff { file } => manifests::diff(server, &file).await,
        Command::Get { kind, name, output } => objects::get(server, kind, name, output).await,
        Command::Delete { kind, name } => objects::delete(server, kind, name).await,
        Command::Deploy { api, stage, description } => objects::deploy(server, api, stage, description).await,
        Command::Rollback { api, stage, to } => objects::rollback(server, api, stage, to).await,
        Command::Deployments { api, stage, output } => objects::deployments(server, api, stage, output).await,
        Command::Tokens { action } => tokens::tokens(server, action).await,
        Command::Cache { action: CacheAction::Flush { api, stage, timeout_secs } } => {
            objects::flush_cache(server, api, stage, timeout_secs).await
        }
        Command::Metrics { api, stage, output } => metrics::metrics(server, api, stage, output).await,
        Command::Top { api, stage, interval, iterations } => {
            metrics::top(server, api, stage, interval, iterations).await
        }
        Command::Status { output } => status::status(server, output).await,
        Command::Keys { action } => keys::keys(server, action).await,
        Command::Usage { name, from, to, output } => keys::usage(server, name, from, to, output).await,
        Command::Compile { .. } => unreachable!("handled before connecting"),
    }
}
