//! `bench`: an open-loop HTTP/1.1 load generator on one core.
//!
//!   bench steady --rate 10000 --duration 30 http://127.0.0.1:8080/health
//!   bench ramp --from 1000 --to 20000 --duration 30 URL
//!   bench burst --requests 6000 --connections 200 URL
//!   bench max --duration 10 --connections 64 URL
//!
//! Latency is measured from each request's intended send time (no coordinated omission);
//! `--json FILE` writes the full report.

use bench::client::request_bytes;
use bench::run::{self, Target};
use bench::schedule::Shape;
use clap::{Args, Parser, Subcommand};
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "bench", about = "Open-loop HTTP/1.1 load generator")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// A constant rate for a duration.
    Steady {
        #[arg(long)]
        rate: f64,
        /// Seconds.
        #[arg(long)]
        duration: f64,
        #[command(flatten)]
        common: Common,
    },
    /// A rate rising linearly over a duration.
    Ramp {
        #[arg(long)]
        from: f64,
        #[arg(long)]
        to: f64,
        #[arg(long)]
        duration: f64,
        #[command(flatten)]
        common: Common,
    },
    /// N requests at once from idle (pipelined over pre-opened connections).
    Burst {
        #[arg(long)]
        requests: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Closed loop: as fast as the server answers.
    Max {
        #[arg(long)]
        duration: f64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// http://host:port/path?query
    url: String,
    #[arg(long, default_value_t = 64)]
    connections: usize,
    #[arg(long, default_value = "GET")]
    method: String,
    /// Host header (default: the URL's host:port).
    #[arg(long)]
    host: Option<String>,
    /// Extra header, `name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    #[arg(long, default_value = "")]
    body: String,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Pin the generator to this CPU.
    #[arg(long)]
    cpu: Option<usize>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Replace `{key}` in the URL with one of this many keys (0..N), drawn by --zipf.
    #[arg(long)]
    keys: Option<u32>,
    /// Zipf exponent of the key draw (1.0: rank k is k times rarer than the first; 0: uniform).
    #[arg(long, default_value_t = 1.0)]
    zipf: f64,
}

fn target(common: &Common) -> Result<Target, String> {
    let rest = common.url.strip_prefix("http://").ok_or("the URL must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority} does not resolve"))?;
    let mut headers = Vec::new();
    for h in &common.headers {
        let (k, v) = h.split_once(':').ok_or_else(|| format!("header '{h}' is not 'name: value'"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let host = common.host.clone().unwrap_or_else(|| authority.to_string());
    let encode = |path: &str| request_bytes(&common.method, &host, path, &headers, common.body.as_bytes());
    let (requests, sequence) = match common.keys {
        None => (vec![encode(path)], Vec::new()),
        Some(n) => {
            if !path.contains("{key}") {
                return Err("--keys needs '{key}' in the URL".into());
            }
            let requests = (0..n.max(1)).map(|k| encode(&path.replace("{key}", &k.to_string()))).collect();
            (requests, bench::keys::zipf_sequence(n, common.zipf, 1 << 20, 0x5eed))
        }
    };
    Ok(Target { addr, requests, sequence, timeout: Duration::from_secs_f64(common.timeout) })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.mode {
        Mode::Steady { common, .. }
        | Mode::Ramp { common, .. }
        | Mode::Burst { common, .. }
        | Mode::Max { common, .. } => common,
    };
    let target = match target(common) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Pinning the main thread before any connection thread starts pins them all.
    if let Some(cpu) = common.cpu {
        if let Err(e) = monoio::utils::bind_to_cpu_set([cpu]) {
            eprintln!("warning: cannot pin to cpu {cpu}: {e}");
        }
    }
    let connections = common.connections.max(1);
    let json = common.json.clone();
    let report = match cli.mode {
        Mode::Steady { rate, duration, .. } => run::open_loop(
            &target,
            Shape::Steady { rate, duration: Duration::from_secs_f64(duration) },
            connections,
        ),
        Mode::Ramp { from, to, duration, .. } => run::open_loop(
            &target,
            Shape::Ramp { from, to, duration: Duration::from_secs_f64(duration) },
            connections,
        ),
        Mode::Burst { requests, .. } => run::burst(&target, requests, connections),
        Mode::Max { duration, .. } => {
            run::closed_loop(&target, Duration::from_secs_f64(duration), connections)
        }
    };
    report.print();
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
