//! `controlctl`: the gateway's command-line client.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "controlctl", version, about = "Manage the gateway like kubectl manages a cluster")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate manifests and compile them into a routing table file, offline (for
    /// `dataplane --table FILE`). Exit code 1 when the manifests have errors.
    Compile {
        /// A manifest file, or a directory of .yaml/.yml files.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Where to write the table.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// The version number to stamp on the table.
        #[arg(long, default_value_t = 1)]
        version: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Compile { file, output, version } => {
            let table =
                controlplane::load_manifests(&file).and_then(|m| controlplane::compile::compile(&m, version));
            match table {
                Ok(table) => {
                    let bytes = proto::table::encode(&table);
                    if let Err(e) = write_atomically(&output, &bytes) {
                        eprintln!("error: writing {}: {e}", output.display());
                        return ExitCode::from(2);
                    }
                    let routes: usize = table.stages.iter().map(|s| s.routes.len()).sum();
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
    }
}

/// Writes to a temporary file and renames it over the target, so a reader never sees half a
/// table.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
