//! Commands that take manifests: `apply`, `diff` and the offline `compile`.

use super::output::{format_errors, print_changes};
use super::status::wait_for;
use super::{connect, Failure, Target};
use proto::grpc;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub(crate) async fn apply(
    server: &Target,
    file: &Path,
    dry_run: bool,
    wait: bool,
    timeout_secs: u64,
) -> Result<(), Failure> {
    let files = read_files(file)?;
    let attachments = read_attachments(&files)?;
    let mut client = connect(server).await?;
    let resp = client.apply(grpc::ApplyRequest { files, dry_run, attachments }).await?.into_inner();
    if !resp.errors.is_empty() {
        return Err(Failure::Refused(format_errors(&resp.errors)));
    }
    print_changes(&resp.changes, if dry_run { " (dry run)" } else { "" });
    if wait && !dry_run {
        wait_for(&mut client, resp.version, Duration::from_secs(timeout_secs)).await?;
    }
    Ok(())
}

/// The files the manifests name, read here (relative to each manifest) to go with them. A
/// manifest that does not parse sends none: the control plane reports its errors.
fn read_attachments(files: &[grpc::ManifestFile]) -> Result<Vec<grpc::ManifestFile>, Failure> {
    let mut parsed = controlplane::manifest::Manifest::default();
    for f in files {
        controlplane::manifest::parse_into(&f.name, &f.content, &mut parsed, &mut Vec::new());
    }
    let read = controlplane::manifest::files::read_referenced(&parsed).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| format!("error: {e}")).collect();
        Failure::Refused(lines.join("\n"))
    })?;
    Ok(read.into_iter().map(|(name, content)| grpc::ManifestFile { name, content }).collect())
}

pub(crate) fn read_files(path: &Path) -> Result<Vec<grpc::ManifestFile>, Failure> {
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

/// Compares each object in the manifests with the stored one, field by field.
pub(crate) async fn diff(server: &Target, file: &Path) -> Result<(), Failure> {
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
    for c in &manifest.certificates {
        local.push(push("Certificate", c.value.name.clone(), serde_json::to_value(c.value.redacted())));
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

pub(crate) fn compile_offline(file: &Path, output: &Path, version: u64) -> ExitCode {
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
