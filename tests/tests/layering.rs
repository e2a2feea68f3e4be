#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The layering rule of the data plane and the control plane (ARCHITECTURE.md, "Layers"):
//! each top-level module may use only modules listed before it. This reads every source file's
//! `crate::` paths (comments aside) and fails on a module that reaches up or sideways, or that
//! is missing from the list, so a new module has to be given its place.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The data plane's top-level modules, lowest first.
const DATAPLANE: &[&str] = &[
    "runtime",
    "tls",
    "http1",
    "config",
    "gateway_error",
    "cache",
    "observe",
    "limits",
    "table",
    "upstream",
    "shard",
    "respond",
    "exchange",
    "integrations",
    "gateway",
    "server",
    "admin",
    "control",
];

/// The control plane's top-level modules, lowest first.
const CONTROLPLANE: &[&str] = &[
    "auth",
    "pki",
    "client_config",
    "manifest",
    "compile",
    "state",
    "store",
    "usage",
    "metrics",
    "metrics_table",
    "service",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::`, including those in `use crate::{a,
/// b::c}` groups.
fn crate_references(text: &str) -> BTreeSet<String> {
    let code: String =
        text.lines().filter(|l| !l.trim_start().starts_with("//")).map(|l| format!("{l}\n")).collect();
    let mut found = BTreeSet::new();
    let ident =
        |s: &str| s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = ident(item.trim());
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Every violation of the rule in the crate whose sources are in `src`.
fn violations(src: &Path, layers: &[&str]) -> Vec<String> {
    let rank = |name: &str| layers.iter().position(|l| *l == name);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut problems = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_str().unwrap();
        let module = first.trim_end_matches(".rs");
        // The crate root and binaries sit above every layer.
        if matches!(module, "lib" | "main" | "bin") {
            continue;
        }
        let Some(own) = rank(module) else {
            problems
                .push(format!("{}: module `{module}` has no place in the layer list", relative.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for used in crate_references(&text) {
            if used == module {
                continue;
            }
            match rank(&used) {
                Some(r) if r < own => {}
                Some(_) => problems
                    .push(format!("{}: `{module}` uses `{used}`, which is not below it", relative.display())),
                // A name at the crate root that is not a module (a function of lib.rs).
                None => {}
            }
        }
    }
    problems
}

#[test]
fn data_plane_modules_use_only_layers_below_them() {
    let problems = violations(&workspace().join("dataplane/src"), DATAPLANE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn control_plane_modules_use_only_layers_below_them() {
    let problems = violations(&workspace().join("controlplane/src"), CONTROLPLANE);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_upward_and_grouped_imports() {
    let refs = crate_references("use crate::{a, b::c};\n// use crate::hidden;\nlet x = crate::d::e();\n");
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["a", "b", "d"]);
    let dir = std::env::temp_dir().join(format!("gw-layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("low")).unwrap();
    std::fs::write(dir.join("low/mod.rs"), "use crate::high::X;\n").unwrap();
    std::fs::write(dir.join("high.rs"), "use crate::low::Y;\n").unwrap();
    std::fs::write(dir.join("stray.rs"), "").unwrap();
    let mut problems = violations(&dir, &["low", "high"]);
    problems.sort();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        problems,
        vec![
            "low/mod.rs: `low` uses `high`, which is not below it".to_string(),
            "stray.rs: module `stray` has no place in the layer list".to_string(),
        ]
    );
}
