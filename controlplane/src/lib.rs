//! The control plane: owns desired state, validates it and compiles it into routing tables.
//!
//! - [`manifest`]: the YAML object model and its strict, located parsing.
//! - [`compile`]: manifest to [`proto::table::Table`], with every reference checked: one file
//!   per object (stages, routes, cache settings, usage plans and keys, access logs).
//! - [`state`]: the desired state and the operations on it (apply, delete, deploy, rollback).
//! - [`store`]: durable storage of the state (atomic replace with fsync).
//! - [`usage`]: durable quota usage reported by the data planes (fsynced log + snapshot).
//! - [`metrics`]: per-method metrics reported by the data planes (in memory, live).
//! - [`metrics_table`]: the per-method table `controlctl metrics` and `top` print.
//! - [`auth`]: bearer tokens with roles, checked on every call.
//! - [`client_config`]: controlctl's kubeconfig-like file of contexts.
//! - [`pki`]: the control plane's CA and server certificate, made on first start.
//! - [`service`]: the gRPC `Control` service over them, and the table stream to data planes.

pub mod auth;
pub mod client_config;
pub mod compile;
pub mod manifest;
pub mod metrics;
pub mod metrics_table;
pub mod pki;
pub mod service;
pub mod state;
pub mod store;
pub mod usage;

use manifest::{Manifest, ManifestError};
use std::path::{Path, PathBuf};

/// The manifest files `-f PATH` names: the file itself, or every `.yaml`/`.yml` file of a
/// directory, sorted by name (like `kubectl apply -f DIR`).
pub fn manifest_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and parses the manifests `-f PATH` names. Every error of every document comes back
/// in one run (see [`with_compile_errors`]).
pub fn load_manifests(path: &Path) -> Result<Manifest, Vec<ManifestError>> {
    let io_error = |file: &Path, e: std::io::Error| ManifestError {
        file: file.display().to_string(),
        line: None,
        path: String::new(),
        message: e.to_string(),
    };
    let files = manifest_files(path).map_err(|e| vec![io_error(path, e)])?;
    let mut manifest = Manifest::default();
    let mut errors = Vec::new();
    let mut complete = true;
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                complete &=
                    manifest::parse_into(&file.display().to_string(), &text, &mut manifest, &mut errors)
            }
            Err(e) => {
                errors.push(io_error(file, e));
                complete = false;
            }
        }
    }
    match manifest::files::read_referenced(&manifest) {
        Ok(attachments) => manifest::files::inline(&mut manifest, &attachments, &mut errors),
        Err(more) => errors.extend(more),
    }
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(with_compile_errors(&manifest, errors, complete))
    }
}

/// A manifest's parse errors, and, when every document was read at least in part, the errors
/// compiling what was read finds too (a bad route key beside a misspelt field), each once.
/// When a document could not be read at all, compiling the rest would report references to
/// it as missing, so the parse errors stand alone.
pub fn with_compile_errors(
    manifest: &Manifest,
    mut errors: Vec<ManifestError>,
    complete: bool,
) -> Vec<ManifestError> {
    if complete {
        if let Err(more) = compile::compile(manifest, 0) {
            for e in more {
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }
    }
    errors
}
