//! The manifest model: what `controlctl apply -f` reads. Multi-document YAML, one object per
//! document, selected by `kind`, like kubectl manifests.
//!
//! Parsing is strict (unknown keys are errors) and every error carries the file, the line and
//! the field path, so a user can fix a manifest without guessing.

mod account;
mod api;
mod certificate;
mod domain;
mod duration;
pub mod files;
mod source;
mod stage;
mod usage_plan;

pub use account::{Account, Throttle};
pub use api::{
    Api, Integration, IntegrationTls, IntegrationType, MockResponse, Protocol, Route, RouteCache,
    UnauthorizedHandling,
};
pub use certificate::Certificate;
pub use domain::{Domain, Mapping, MutualTls};
pub use duration::{parse_duration, DurationText};
pub use source::Source;
pub use stage::{AccessLogSettings, Stage, StageCache, StageCanary};
pub use usage_plan::{ApiKey, Quota, QuotaPeriod, UsagePlan};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// One error in a manifest, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// Field path inside the document, e.g. `routes["GET /pets"].integration.uri`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.path.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.path, self.message)
        }
    }
}

/// Every object of one or more manifest files, in document order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub account: Option<Located<Account>>,
    pub apis: Vec<Located<Api>>,
    pub stages: Vec<Located<Stage>>,
    pub domains: Vec<Located<Domain>>,
    pub certificates: Vec<Located<Certificate>>,
    pub usage_plans: Vec<Located<UsagePlan>>,
    pub api_keys: Vec<Located<ApiKey>>,
}

/// A document together with where it came from, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub file: String,
    /// Line of the document's first line.
    pub line: usize,
    pub value: T,
    /// The document's text when it was parsed in this run, to locate a field's own line.
    pub source: Option<std::sync::Arc<Source>>,
}

impl<T> Located<T> {
    /// The file line of the field at `path` (`routes["GET /x"].integration.uri`), as near as the
    /// text allows; the document's first line when the text is not at hand.
    pub fn line_of(&self, path: &str) -> usize {
        match &self.source {
            Some(source) => self.line + source.locate(path),
            None => self.line,
        }
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub(crate) fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates
        .map(|c| (distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Adds "did you mean" to serde's unknown field and variant messages.
fn suggest(message: &str) -> String {
    for prefix in ["unknown field `", "unknown variant `"] {
        let Some(rest) = message.strip_prefix(prefix) else { continue };
        let Some((word, tail)) = rest.split_once('`') else { continue };
        let candidates = tail.split('`').skip(1).step_by(2);
        if let Some(best) = nearest(word, candidates) {
            return format!("{message}; did you mean `{best}`?");
        }
    }
    message.to_string()
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
struct KindOnly {
    kind: Option<String>,
}

const KINDS: &[&str] = &["Account", "Api", "Stage", "Domain", "Certificate", "UsagePlan", "ApiKey"];

/// Splits multi-document YAML text into `(first line, text)` pairs. A document starts after a
/// line that begins with `---`.
/// Most flow collections (`[`, `{`) open at once in a document. The YAML parser's cost grows
/// with the square of this nesting, so a small file nested deeply could otherwise stall the
/// control plane for minutes.
pub const MAX_NESTING: usize = 64;

/// The 0-based line where a document first has more than [`MAX_NESTING`] brackets open. Every
/// bracket counts, quoted or not: a count that cannot be fooled by quoting, at the price of
/// refusing a document whose strings alone leave 64 brackets unclosed.
fn too_deeply_nested(doc: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, line) in doc.lines().enumerate() {
        for b in line.bytes() {
            match b {
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NESTING {
                        return Some(i);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs.retain(|(_, doc)| {
        doc.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
    });
    docs
}

fn yaml_error(file: &str, first_line: usize, err: &yaml_serde::Error) -> ManifestError {
    // yaml_serde reports "path: message at line L column C"; keep the path and message, and
    // turn the line into a file line.
    let line = err.location().map(|l| first_line + l.line() - 1).or(Some(first_line));
    let text = err.to_string();
    let (path, message) = path_and_message(&text);
    ManifestError { file: file.to_string(), line, path: route_path_style(path), message: suggest(message) }
}

/// Splits yaml_serde's "path: message at line L column C" into the field path (empty when
/// the message has none) and the message.
fn path_and_message(text: &str) -> (&str, &str) {
    let text = text.rfind(" at line ").map_or(text, |at| &text[..at]);
    // serde's own phrases, which start a message that has no path in front.
    const PHRASES: [&str; 7] = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown field",
        "unknown variant",
        "missing field",
        "duplicate field",
    ];
    match text.split_once(": ") {
        Some((path, message)) if !PHRASES.iter().any(|p| path.starts_with(p)) => (path, message),
        _ => ("", text),
    }
}

/// Rewrites serde's `routes.GET /x.integration` into this project's `routes["GET /x"].integration`.
fn route_path_style(path: &str) -> String {
    let Some(rest) = path.strip_prefix("routes.") else { return path.to_string() };
    let fields = [".integration", ".throttle", ".cache", ".apiKeyRequired"];
    let end = fields.iter().filter_map(|f| rest.find(f)).min().unwrap_or(rest.len());
    format!("routes[\"{}\"]{}", &rest[..end], &rest[end..])
}

/// Parses one file's text into `manifest`, appending every error found to `errors`. Returns
/// false when a document could not be read at all; when every document was read, at least in
/// part (an Api whose bad routes were left out), the manifest can be compiled for the errors
/// the parser cannot see, so one run reports them all.
pub fn parse_into(file: &str, text: &str, manifest: &mut Manifest, errors: &mut Vec<ManifestError>) -> bool {
    let mut complete = true;
    for (line, doc) in documents(text) {
        if let Some(at) = too_deeply_nested(&doc) {
            errors.push(ManifestError {
                file: file.to_string(),
                line: Some(line + at),
                path: String::new(),
                message: format!(
                    "more than {MAX_NESTING} `[` and `{{` open at once; no manifest needs to nest this deep"
                ),
            });
            complete = false;
            continue;
        }
        if let Some(error) = duplicate_key(file, line, &doc) {
            errors.push(error);
            complete = false;
            continue;
        }
        let source = Some(std::sync::Arc::new(Source::new(&doc)));
        let kind = match yaml_serde::from_str::<KindOnly>(&doc) {
            Ok(KindOnly { kind: Some(kind) }) => kind,
            Ok(KindOnly { kind: None }) => {
                errors.push(ManifestError {
                    file: file.to_string(),
                    line: Some(line),
                    path: "kind".into(),
                    message: format!("missing; one of {}", KINDS.join(", ")),
                });
                complete = false;
                continue;
            }
            Err(e) => {
                errors.push(yaml_error(file, line, &e));
                complete = false;
                continue;
            }
        };
        macro_rules! push {
            ($field:expr, $ty:ty) => {
                match yaml_serde::from_str::<$ty>(&doc) {
                    Ok(value) => {
                        $field.push(Located { file: file.to_string(), line, value, source: source.clone() })
                    }
                    Err(e) => {
                        errors.push(yaml_error(file, line, &e));
                        complete = false;
                    }
                }
            };
        }
        match kind.as_str() {
            "Account" => match yaml_serde::from_str::<Account>(&doc) {
                Ok(value) => {
                    if manifest.account.is_some() {
                        errors.push(ManifestError {
                            file: file.to_string(),
                            line: Some(line),
                            path: "kind".into(),
                            message: "a second Account; there is one per gateway".into(),
                        });
                    }
                    manifest.account =
                        Some(Located { file: file.to_string(), line, value, source: source.clone() });
                }
                Err(e) => {
                    errors.push(yaml_error(file, line, &e));
                    complete = false;
                }
            },
            "Api" => match yaml_serde::from_str::<Api>(&doc) {
                Ok(value) => manifest.apis.push(Located {
                    file: file.to_string(),
                    line,
                    value,
                    source: source.clone(),
                }),
                // Serde stops at the first error: read the routes one by one, so each bad
                // route reports its own, and the good ones are still checked.
                Err(e) => match api_route_by_route(file, line, &doc, source.clone(), errors) {
                    Some(partial) => manifest.apis.push(partial),
                    None => {
                        errors.push(yaml_error(file, line, &e));
                        complete = false;
                    }
                },
            },
            "Stage" => push!(manifest.stages, Stage),
            "Domain" => push!(manifest.domains, Domain),
            "Certificate" => push!(manifest.certificates, Certificate),
            "UsagePlan" => push!(manifest.usage_plans, UsagePlan),
            "ApiKey" => push!(manifest.api_keys, ApiKey),
            other => {
                errors.push(ManifestError {
                    file: file.to_string(),
                    line: Some(line),
                    path: "kind".into(),
                    message: format!("unknown kind '{other}'; one of {}", KINDS.join(", ")),
                });
                complete = false;
            }
        }
    }
    complete
}

/// A key written twice in one mapping (two routes with one key, a variable set twice), which
/// typed parsing would let the last one win silently: refused, with both lines.
fn duplicate_key(file: &str, first_line: usize, doc: &str) -> Option<ManifestError> {
    let error = yaml_serde::from_str::<yaml_serde::Value>(doc).err()?;
    let text = error.to_string();
    let (path, rest) = match text.split_once(": duplicate entry with key ") {
        Some((path, rest)) => (path.to_string(), rest),
        None => (String::new(), text.strip_prefix("duplicate entry with key ")?),
    };
    let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k).trim_matches('"').to_string();
    // The mapping starts at the reported line; the key's two lines are found from there.
    let from = error.location().map_or(0, |l| l.line().saturating_sub(1));
    let spellings = [format!("{key}:"), format!("\"{key}\":"), format!("'{key}':")];
    let lines: Vec<usize> = doc
        .lines()
        .enumerate()
        .skip(from)
        .filter(|(_, l)| spellings.iter().any(|s| l.trim_start().starts_with(s.as_str())))
        .map(|(i, _)| first_line + i)
        .take(2)
        .collect();
    let (line, message) = match lines[..] {
        [a, b] => (a, format!("'{key}' is written twice (lines {a} and {b}); each key once")),
        _ => (first_line + from, format!("'{key}' is written twice; each key once")),
    };
    let path = if path.is_empty() { key } else { format!("{}[\"{key}\"]", route_path_style(&path)) };
    Some(ManifestError { file: file.to_string(), line: Some(line), path, message })
}

/// An Api document whose top level is sound, read one route at a time: each route that does
/// not parse adds its error (located by its path) and is left out. `None` when the top level
/// itself is wrong.
fn api_route_by_route(
    file: &str,
    line: usize,
    doc: &str,
    source: Option<std::sync::Arc<Source>>,
    errors: &mut Vec<ManifestError>,
) -> Option<Located<Api>> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TopLevel {
        kind: String,
        name: String,
        #[serde(default = "api::default_protocol")]
        protocol: Protocol,
        #[serde(default)]
        routes: BTreeMap<String, yaml_serde::Value>,
    }
    let top: TopLevel = yaml_serde::from_str(doc).ok()?;
    let mut located = Located {
        file: file.to_string(),
        line,
        value: Api { kind: top.kind, name: top.name, protocol: top.protocol, routes: BTreeMap::new() },
        source,
    };
    for (key, value) in top.routes {
        match yaml_serde::from_value::<Route>(value.clone()) {
            Ok(route) => {
                located.value.routes.insert(key, route);
            }
            Err(e) => {
                // Deserializing from a value loses the field path; from text keeps it.
                let reparsed =
                    yaml_serde::to_string(&value).ok().and_then(|t| yaml_serde::from_str::<Route>(&t).err());
                let text = reparsed.map_or_else(|| e.to_string(), |e| e.to_string());
                let (inner, message) = path_and_message(&text);
                let path = match inner {
                    "" => format!("routes[\"{key}\"]"),
                    inner => format!("routes[\"{key}\"].{inner}"),
                };
                // An unknown field is located on its own line, as serde would.
                let unknown = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
                let line = match unknown {
                    Some(field) => located.line_of(&format!("{path}.{field}")),
                    None => located.line_of(&path),
                };
                errors.push(ManifestError {
                    file: file.to_string(),
                    line: Some(line),
                    path,
                    message: suggest(message),
                });
            }
        }
    }
    Some(located)
}

/// Parses manifest text from one file.
pub fn parse(file: &str, text: &str) -> Result<Manifest, Vec<ManifestError>> {
    let mut manifest = Manifest::default();
    let mut errors = Vec::new();
    let _ = parse_into(file, text, &mut manifest, &mut errors);
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(errors)
    }
}
