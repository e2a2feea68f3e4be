//! `controlctl`: the gateway's command-line client, in the manner of kubectl.
//!
//! Exit codes: 0 success; 1 refused (invalid manifest, not found, conflict, --wait timed out);
//! 2 usage error or the control plane cannot be reached.

use clap::{Parser, Subcommand, ValueEnum};
use controlplane::metrics_table;
use proto::grpc;
use proto::grpc::control_client::ControlClient;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
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
        return compile_offline(file, output, *version);
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

fn read_files(path: &Path) -> Result<Vec<grpc::ManifestFile>, Failure> {
    let paths = controlplane::manifest_files(path)
        .map_err(|e| Failure::Refused(format!("error: {}: {e}", path.display())))?;
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|content| grpc::ManifestFile { name: p.display().to_string(), content })
                .map_err(|e| Failure::Refused(format!("error: {}: {e}", p.display())))
        })
        .collect()
}

fn print_changes(changes: &[grpc::Change], suffix: &str) {
    for c in changes {
        let name = if c.name.is_empty() { String::new() } else { format!("/{}", c.name) };
        println!("{}{name} {}{suffix}", c.kind.to_ascii_lowercase(), c.action);
    }
}

fn format_errors(errors: &[grpc::FieldError]) -> String {
    let mut out = String::new();
    for e in errors {
        let line = if e.line > 0 { format!(":{}", e.line) } else { String::new() };
        let path = if e.path.is_empty() { String::new() } else { format!("{}: ", e.path) };
        out.push_str(&format!("error: {}{line}: {path}{}\n", e.file, e.message));
    }
    out.push_str(&format!("{} error(s); nothing applied", errors.len()));
    out
}

async fn run(command: Command, server: String) -> Result<(), Failure> {
    match command {
        Command::Apply { file, dry_run, wait, timeout_secs } => {
            let files = read_files(&file)?;
            let mut client = connect(&server).await?;
            let resp = client.apply(grpc::ApplyRequest { files, dry_run }).await?.into_inner();
            if !resp.errors.is_empty() {
                return Err(Failure::Refused(format_errors(&resp.errors)));
            }
            print_changes(&resp.changes, if dry_run { " (dry run)" } else { "" });
            if wait && !dry_run {
                wait_for(&mut client, resp.version, Duration::from_secs(timeout_secs)).await?;
            }
            Ok(())
        }
        Command::Diff { file } => diff(&server, &file).await,
        Command::Get { kind, name, output } => {
            let mut client = connect(&server).await?;
            let req = grpc::GetRequest { kind, name: name.unwrap_or_default() };
            let objects = client.get(req).await?.into_inner().objects;
            match output {
                Output::Table => {
                    let rows: Vec<Vec<String>> = objects
                        .iter()
                        .map(|o| vec![o.kind.clone(), o.name.clone(), o.summary.clone()])
                        .collect();
                    print_table(&["KIND", "NAME", "DETAILS"], &rows);
                }
                Output::Json | Output::Yaml => {
                    let values: Vec<serde_json::Value> =
                        objects.iter().filter_map(|o| serde_json::from_str(&o.json).ok()).collect();
                    print_structured(&serde_json::Value::Array(values), output);
                }
            }
            Ok(())
        }
        Command::Delete { kind, name } => {
            let mut client = connect(&server).await?;
            let resp = client.delete(grpc::DeleteRequest { kind, name }).await?.into_inner();
            print_changes(&resp.changes, "");
            Ok(())
        }
        Command::Deploy { api, stage, description } => {
            let mut client = connect(&server).await?;
            let resp = client.deploy(grpc::DeployRequest { api, stage, description }).await?.into_inner();
            print_changes(&resp.changes, "");
            Ok(())
        }
        Command::Metrics { api, stage, output } => {
            let mut client = connect(&server).await?;
            let req =
                grpc::GetMetricsRequest { api: api.unwrap_or_default(), stage: stage.unwrap_or_default() };
            let resp = client.get_metrics(req).await?.into_inner();
            match output {
                Output::Table => {
                    println!("{} data plane(s)", resp.dataplanes);
                    print_table(&metrics_table::header(false), &metrics_table::rows(&resp, None));
                }
                _ => print_structured(&metrics_json(&resp), output),
            }
            Ok(())
        }
        Command::Top { api, stage, interval, iterations } => {
            let mut client = connect(&server).await?;
            let req =
                grpc::GetMetricsRequest { api: api.unwrap_or_default(), stage: stage.unwrap_or_default() };
            let interval = Duration::from_secs_f64(interval.max(0.2));
            let mut previous: Option<(grpc::GetMetricsResponse, Instant)> = None;
            let mut shown = 0u64;
            loop {
                let resp = client.get_metrics(req.clone()).await?.into_inner();
                let since = previous.as_ref().map(|(p, at)| (p, at.elapsed()));
                // Clear the screen and go home, as top does.
                print!("\x1b[2J\x1b[H");
                println!("{} data plane(s), every {:.1} s", resp.dataplanes, interval.as_secs_f64());
                print_table(
                    &metrics_table::header(true),
                    &metrics_table::rows(&resp, since.or(Some((&resp, interval)))),
                );
                previous = Some((resp, Instant::now()));
                shown += 1;
                if iterations.is_some_and(|n| shown >= n) {
                    return Ok(());
                }
                tokio::time::sleep(interval).await;
            }
        }
        Command::Cache { action: CacheAction::Flush { api, stage, timeout_secs } } => {
            let mut client = connect(&server).await?;
            let resp = client.flush_cache(grpc::FlushCacheRequest { api, stage }).await?.into_inner();
            print_changes(&resp.changes, "");
            wait_for(&mut client, resp.version, Duration::from_secs(timeout_secs)).await
        }
        Command::Rollback { api, stage, to } => {
            let mut client = connect(&server).await?;
            let req = grpc::RollbackRequest { api, stage, to: to.unwrap_or_default() };
            let resp = client.rollback(req).await?.into_inner();
            print_changes(&resp.changes, "");
            Ok(())
        }
        Command::Deployments { api, stage, output } => {
            let mut client = connect(&server).await?;
            let list = client
                .list_deployments(grpc::ListDeploymentsRequest { api, stage })
                .await?
                .into_inner()
                .deployments;
            match output {
                Output::Table => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|d| {
                            vec![
                                format!("{}{}", d.id, if d.current { " *" } else { "" }),
                                d.routes.to_string(),
                                format_ms(d.created_at_ms),
                                d.description.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["DEPLOYMENT", "ROUTES", "CREATED", "DESCRIPTION"], &rows);
                }
                _ => {
                    let values: Vec<serde_json::Value> = list
                        .iter()
                        .map(|d| {
                            serde_json::json!({"id": d.id, "api": d.api, "createdAtMs": d.created_at_ms,
                                "description": d.description, "current": d.current, "routes": d.routes})
                        })
                        .collect();
                    print_structured(&serde_json::Value::Array(values), output);
                }
            }
            Ok(())
        }
        Command::Status { output } => {
            let mut client = connect(&server).await?;
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
                    print_structured(
                        &serde_json::json!({"version": status.version, "dataplanes": planes}),
                        output,
                    );
                }
            }
            Ok(())
        }
        Command::Keys { action } => keys(&server, action).await,
        Command::Usage { name, from, to, output } => {
            let bound = |text: Option<String>| -> Result<i64, Failure> {
                text.map_or(Ok(0), |t| {
                    proto::quota::parse_utc(&t).map_err(|e| Failure::Refused(format!("error: {e}")))
                })
            };
            let request = grpc::GetUsageRequest { name, from: bound(from)?, to: bound(to)? };
            let rows = connect(&server).await?.get_usage(request).await?.into_inner().rows;
            print_usage(&rows, output);
            Ok(())
        }
        Command::Compile { .. } => unreachable!("handled before connecting"),
    }
}

async fn keys(server: &str, action: KeysAction) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    match action {
        KeysAction::Create { name, plan, value } => {
            // Through apply, so a key goes through the same validation and store as manifests.
            let mut doc = serde_json::json!({ "kind": "ApiKey", "name": name });
            if let Some(plan) = plan {
                doc["plan"] = plan.into();
            }
            if let Some(value) = value {
                doc["value"] = value.into();
            }
            let content = yaml_serde::to_string(&doc).map_err(|e| Failure::Refused(e.to_string()))?;
            let files = vec![grpc::ManifestFile { name: "controlctl keys create".into(), content }];
            let resp = client.apply(grpc::ApplyRequest { files, dry_run: false }).await?.into_inner();
            if !resp.errors.is_empty() {
                return Err(Failure::Refused(format_errors(&resp.errors)));
            }
            print_changes(&resp.changes, "");
        }
        KeysAction::List => {
            let objects = client
                .get(grpc::GetRequest { kind: "ApiKey".into(), name: String::new() })
                .await?
                .into_inner()
                .objects;
            let rows: Vec<Vec<String>> =
                objects.iter().map(|o| vec![o.name.clone(), o.summary.clone()]).collect();
            print_table(&["KEY", "DETAILS"], &rows);
        }
        KeysAction::Revoke { name } => {
            let resp = client.delete(grpc::DeleteRequest { kind: "ApiKey".into(), name }).await?.into_inner();
            print_changes(&resp.changes, "");
        }
        KeysAction::Enable { name } => set_enabled(&mut client, name, true).await?,
        KeysAction::Disable { name } => set_enabled(&mut client, name, false).await?,
        KeysAction::Reset { name } => {
            let request = grpc::AdjustUsageRequest { key: name, reset: true, grant: 0 };
            print_usage(&client.adjust_usage(request).await?.into_inner().rows, Output::Table);
        }
        KeysAction::Grant { name, requests } => {
            let request = grpc::AdjustUsageRequest { key: name, reset: false, grant: requests };
            print_usage(&client.adjust_usage(request).await?.into_inner().rows, Output::Table);
        }
    }
    Ok(())
}

/// Re-applies a stored key with `enabled` changed. The stored value is its hash, which apply
/// takes as it is.
async fn set_enabled(
    client: &mut ControlClient<Channel>,
    name: String,
    enabled: bool,
) -> Result<(), Failure> {
    let request = grpc::GetRequest { kind: "ApiKey".into(), name };
    let objects = client.get(request).await?.into_inner().objects;
    let object = objects.first().ok_or_else(|| Failure::Refused("error: no such ApiKey".into()))?;
    let mut doc: serde_json::Value =
        serde_json::from_str(&object.json).map_err(|e| Failure::Refused(format!("error: {e}")))?;
    doc["enabled"] = enabled.into();
    let content = yaml_serde::to_string(&doc).map_err(|e| Failure::Refused(e.to_string()))?;
    let files = vec![grpc::ManifestFile { name: "controlctl keys".into(), content }];
    let resp = client.apply(grpc::ApplyRequest { files, dry_run: false }).await?.into_inner();
    if !resp.errors.is_empty() {
        return Err(Failure::Refused(format_errors(&resp.errors)));
    }
    print_changes(&resp.changes, "");
    Ok(())
}

fn print_usage(rows: &[grpc::UsageRow], output: Output) {
    let format = |s: i64| proto::quota::format_utc(s);
    match output {
        Output::Table => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.key.clone(),
                        r.plan.clone(),
                        format(r.period_start),
                        format(r.period_end),
                        r.used.to_string(),
                        r.adjustment.to_string(),
                        r.limit.to_string(),
                        r.remaining.to_string(),
                    ]
                })
                .collect();
            print_table(&["KEY", "PLAN", "FROM", "TO", "USED", "ADJUSTED", "LIMIT", "REMAINING"], &table);
        }
        _ => {
            let values: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({"key": r.key, "plan": r.plan, "from": format(r.period_start),
                        "to": format(r.period_end), "used": r.used, "adjustment": r.adjustment,
                        "limit": r.limit, "remaining": r.remaining})
                })
                .collect();
            print_structured(&serde_json::Value::Array(values), output);
        }
    }
}

/// Waits until every connected data plane reports every shard at `version` or later.
async fn wait_for(
    client: &mut ControlClient<Channel>,
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
            println!(
                "version {version} served by {} data plane(s) after {} ms",
                connected.len(),
                started.elapsed().as_millis()
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

/// Compares each object in the manifests with the stored one, field by field.
async fn diff(server: &str, file: &Path) -> Result<(), Failure> {
    let manifest = controlplane::load_manifests(file).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("error: {e}")).collect();
        Failure::Refused(lines.join("\n"))
    })?;
    let mut client = connect(server).await?;
    let mut local: Vec<(String, String, serde_json::Value)> = Vec::new();
    let push = |kind: &str, name: String, v: Result<serde_json::Value, serde_json::Error>| {
        (kind.to_string(), name, v.unwrap_or_default())
    };
    if let Some(a) = &manifest.account {
        local.push(push("Account", String::new(), serde_json::to_value(&a.value)));
    }
    for a in &manifest.apis {
        local.push(push("Api", a.value.name.clone(), serde_json::to_value(&a.value)));
    }
    for s in &manifest.stages {
        local.push(push(
            "Stage",
            format!("{}/{}", s.value.api, s.value.name),
            serde_json::to_value(&s.value),
        ));
    }
    for d in &manifest.domains {
        local.push(push("Domain", d.value.name.clone(), serde_json::to_value(&d.value)));
    }
    for p in &manifest.usage_plans {
        local.push(push("UsagePlan", p.value.name.clone(), serde_json::to_value(&p.value)));
    }
    for (kind, name, new) in local {
        let stored = client.get(grpc::GetRequest { kind: kind.clone(), name: name.clone() }).await;
        let label = if name.is_empty() {
            kind.to_ascii_lowercase()
        } else {
            format!("{}/{name}", kind.to_ascii_lowercase())
        };
        match stored {
            Err(s) if s.code() == tonic::Code::NotFound => println!("{label}: would be created"),
            Err(s) => return Err(s.into()),
            Ok(resp) => {
                let old: serde_json::Value = resp
                    .into_inner()
                    .objects
                    .first()
                    .and_then(|o| serde_json::from_str(&o.json).ok())
                    .unwrap_or_default();
                let mut lines = Vec::new();
                json_diff("", &old, &new, &mut lines);
                if lines.is_empty() {
                    println!("{label}: unchanged");
                } else {
                    println!("{label}:");
                    for l in lines {
                        println!("  {l}");
                    }
                }
            }
        }
    }
    Ok(())
}

fn json_diff(path: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => json_diff(&p, x, y, out),
                    (Some(x), None) => out.push(format!("- {p}: {x}")),
                    (None, Some(y)) => out.push(format!("+ {p}: {y}")),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => {
            out.push(format!("- {path}: {a}"));
            out.push(format!("+ {path}: {b}"));
        }
        _ => {}
    }
}

fn metrics_json(resp: &grpc::GetMetricsResponse) -> serde_json::Value {
    let methods: Vec<serde_json::Value> = resp
        .methods
        .iter()
        .map(|m| {
            serde_json::json!({"api": m.api, "stage": m.stage, "route": m.route, "method": m.method,
                "count": m.count, "4xx": m.errors_4xx, "5xx": m.errors_5xx, "throttled": m.throttled,
                "cacheHits": m.cache_hits, "cacheMisses": m.cache_misses,
                "latencyUs": {"p50": m.latency_p50, "p90": m.latency_p90, "p99": m.latency_p99},
                "integrationLatencyUs": {"p50": m.integration_p50, "p90": m.integration_p90, "p99": m.integration_p99,
                    "count": m.integration_count}})
        })
        .collect();
    serde_json::json!({"dataplanes": resp.dataplanes, "methods": methods})
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> =
            cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
        println!("{}", parts.join("   ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_structured(value: &serde_json::Value, output: Output) {
    match output {
        Output::Yaml => print!("{}", yaml_serde::to_string(value).unwrap_or_default()),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

fn format_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

fn compile_offline(file: &Path, output: &Path, version: u64) -> ExitCode {
    let table = controlplane::load_manifests(file).and_then(|m| controlplane::compile::compile(&m, version));
    match table {
        Ok(table) => {
            let bytes = proto::table::encode(&table);
            if let Err(e) = proto::durable_file::write(output, &bytes) {
                eprintln!("error: writing {}: {e}", output.display());
                return ExitCode::from(2);
            }
            let routes: usize = table.stages.iter().map(|s| s.routes.routes.len()).sum();
            println!(
                "compiled {} stage(s), {routes} route(s), {} bytes -> {}",
                table.stages.len(),
                bytes.len(),
                output.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s); nothing written", errors.len());
            ExitCode::from(1)
        }
    }
}
