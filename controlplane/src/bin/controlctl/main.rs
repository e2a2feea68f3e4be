//! `controlctl`: the gateway's command-line client, in the manner of kubectl.
//!
//! Exit codes: 0 success; 1 refused (invalid manifest, not found, conflict, --wait timed out);
//! 2 usage error or the control plane cannot be reached.

mod keys;
mod manifests;
mod metrics;
mod objects;
mod output;
mod status;

use clap::{Parser, Subcommand, ValueEnum};
use proto::grpc::control_client::ControlClient;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::Channel;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "controlctl", version, about = "Manage the gateway like kubectl manages a cluster")]
struct Cli {
    /// Control plane URL [env: CONTROLCTL_SERVER; default http://127.0.0.1:7000].
    #[arg(long, global = true)]
    server: Option<String>,
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
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal => {
                Failure::Unreachable(s.message().to_string())
            }
            _ => Failure::Refused(format!("error: {}", s.message())),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = cli
        .server
        .clone()
        .or_else(|| std::env::var("CONTROLCTL_SERVER").ok())
        .unwrap_or_else(|| "http://127.0.0.1:7000".into());
    if let Command::Compile { file, output, version } = &cli.command {
        return manifests::compile_offline(file, output, *version);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(m)) => {
            eprintln!("{m}");
            ExitCode::from(1)
        }
        Err(Failure::Unreachable(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
    }
}

async fn connect(server: &str) -> Result<ControlClient<Channel>, Failure> {
    let endpoint = Channel::from_shared(server.to_string())
        .map_err(|e| Failure::Unreachable(format!("bad server URL '{server}': {e}")))?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| Failure::Unreachable(format!("cannot reach the control plane at {server}: {e}")))?;
    Ok(ControlClient::new(channel).max_decoding_message_size(256 << 20).max_encoding_message_size(256 << 20))
}

/// One command group per module; this only dispatches.
async fn run(command: Command, server: String) -> Result<(), Failure> {
    let server = server.as_str();
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
