//! Compiles a parsed [`Manifest`] into a routing [`Table`]: names resolved to indexes, stage
//! variables substituted, URI templates pre-split, defaults applied, every reference checked.
//! Whatever this accepts, [`proto::table::decode`] accepts too (checked before publishing).

use crate::manifest::{self, IntegrationType, Located, Manifest, ManifestError};
use proto::table::{
    self, BasePathMapping, Domain, HttpIntegration, Integration, Method, MockIntegration, Route, Stage,
    StageName, Table, Upstream, UriPart, Variable,
};
use proto::tree::{param_names, parse_path, TreeBuilder};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// AWS's default integration timeout.
pub const DEFAULT_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// Shortest integration timeout AWS allows.
pub const MIN_INTEGRATION_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest: AWS raised REST's ceiling above 29 s in 2024 (up to 300 s reported).
pub const MAX_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// 64-bit FNV-1a: a stable id from names, identical in every version and on every machine.
pub fn stable_id(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash ^= 0x1f;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        for byte in part.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

pub(crate) struct Errors {
    pub(crate) list: Vec<ManifestError>,
}

impl Errors {
    pub(crate) fn at<T>(&mut self, doc: &Located<T>, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        self.list.push(ManifestError {
            file: doc.file.clone(),
            line: Some(doc.line_of(&path)),
            path,
            message: message.into(),
        });
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Compiles the manifest into the table with the given version, or returns every error.
/// Every stage serves its API's definition as written in the manifest.
pub fn compile(manifest: &Manifest, version: u64) -> Result<Table, Vec<ManifestError>> {
    compile_deployed(manifest, version, &Deployed::default())
}

/// API definitions from deployments, by `(api, stage)`.
pub type DeployedApis = HashMap<(String, String), Located<manifest::Api>>;

/// What the control plane's state adds to the manifest for a stage.
#[derive(Default)]
pub struct Deployed {
    /// The API definition a stage serves (its deployment's snapshot), by `(api, stage)`.
    pub apis: DeployedApis,
    /// The API definition a stage's canary serves, by `(api, stage)`.
    pub canaries: DeployedApis,
    /// How many times each stage's cache was flushed, by `api/stage`.
    pub cache_flushes: BTreeMap<String, u64>,
}

/// Like [`compile`], but a stage listed in `deployed.apis` serves that API definition instead
/// of the current one, and a stage's canary serves the one in `deployed.canaries`.
pub fn compile_deployed(
    manifest: &Manifest,
    version: u64,
    deployed: &Deployed,
) -> Result<Table, Vec<ManifestError>> {
    let mut errors = Errors { list: Vec::new() };

    let mut apis: HashMap<String, &Located<manifest::Api>> = HashMap::new();
    for api in &manifest.apis {
        if !valid_name(&api.value.name) {
            errors.at(api, "name", "use letters, digits, '-' and '_' (at most 128)");
            continue;
        }
        if apis.insert(api.value.name.to_ascii_lowercase(), api).is_some() {
            errors.at(api, "name", format!("a second Api named '{}'", api.value.name));
        }
    }

    let mut upstreams: Vec<Upstream> = Vec::new();
    let mut limits: Vec<table::Limit> = Vec::new();
    let account_limit = match &manifest.account {
        Some(doc) => {
            match doc.value.throttle.as_ref().map(|t| add_limit(&mut limits, stable_id(&["account"]), t)) {
                Some(Err(e)) => {
                    errors.at(doc, "throttle", e);
                    None
                }
                Some(Ok(i)) => Some(i),
                None => None,
            }
        }
        None => None,
    };
    // Stages in a deterministic order, so the same manifest always gives the same table.
    let mut stage_docs: Vec<&Located<manifest::Stage>> = manifest.stages.iter().collect();
    stage_docs.sort_by(|a, b| (&a.value.api, &a.value.name).cmp(&(&b.value.api, &b.value.name)));
    let mut stages: Vec<Stage> = Vec::new();
    let mut stage_index: BTreeMap<(String, String), u32> = BTreeMap::new();
    for doc in stage_docs {
        let s = &doc.value;
        if !valid_name(&s.name) {
            errors.at(doc, "name", "use letters, digits, '-' and '_' (at most 128)");
            continue;
        }
        let Some(&live) = apis.get(&s.api.to_ascii_lowercase()) else {
            errors.at(doc, "api", format!("no Api named '{}'", s.api));
            continue;
        };
        let key = (live.value.name.clone(), s.name.clone());
        let api = deployed.apis.get(&key).unwrap_or(live);
        let key = (api.value.name.to_ascii_lowercase(), s.name.clone());
        if stage_index.contains_key(&key) {
            errors.at(doc, "name", format!("a second Stage '{}' for Api '{}'", s.name, s.api));
            continue;
        }
        let flushes = deployed.cache_flushes.get(&format!("{}/{}", s.api, s.name)).copied().unwrap_or(0);
        let targets = Targets { upstreams: &mut upstreams, limits: &mut limits };
        let canary = deployed.canaries.get(&key);
        if let Some(stage) = compile_stage(api, doc, canary, flushes, targets, &mut errors) {
            stage_index.insert(key, stages.len() as u32);
            stages.push(stage);
        }
    }

    let mut domains: Vec<Domain> = Vec::new();
    for doc in &manifest.domains {
        let host = doc.value.name.to_ascii_lowercase();
        if host.is_empty() || host.contains(['/', ':', ' ']) {
            errors.at(doc, "name", "a host name without scheme, port or path");
            continue;
        }
        if domains.iter().any(|d| d.host == host) {
            errors.at(doc, "name", format!("a second Domain '{host}'"));
            continue;
        }
        let mut mappings: Vec<BasePathMapping> = Vec::new();
        for (i, m) in doc.value.mappings.iter().enumerate() {
            let path = format!("mappings[{i}]");
            let base = m.base_path.trim_matches('/').to_string();
            if base.split('/').any(|seg| seg.is_empty() && !base.is_empty())
                || base.contains(['{', '}', '?', '#'])
            {
                errors.at(doc, format!("{path}.basePath"), format!("'{}' is not a base path", m.base_path));
                continue;
            }
            let Some(&stage) = stage_index.get(&(m.api.to_ascii_lowercase(), m.stage.clone())) else {
                errors.at(
                    doc,
                    format!("{path}.stage"),
                    format!("no Stage '{}' for Api '{}'", m.stage, m.api),
                );
                continue;
            };
            if mappings.iter().any(|x| x.base_path == base) {
                errors.at(doc, format!("{path}.basePath"), format!("base path '{base}' is mapped twice"));
                continue;
            }
            mappings.push(BasePathMapping { base_path: base, stage });
        }
        // Longest first, so the first prefix match is the most specific; "" last.
        mappings
            .sort_by(|a, b| b.base_path.len().cmp(&a.base_path.len()).then(a.base_path.cmp(&b.base_path)));
        domains.push(Domain { host, mappings });
    }
    domains.sort_by(|a, b| a.host.cmp(&b.host));

    let (plans, api_keys) =
        crate::usage_plans::compile(manifest, &stages, &stage_index, &mut limits, &mut errors);

    let stage_names = stage_index
        .iter()
        .map(|((api, stage), &index)| StageName { api: api.clone(), stage: stage.clone(), index })
        .collect();

    if !errors.list.is_empty() {
        return Err(errors.list);
    }
    let table =
        Table { version, domains, stage_names, stages, upstreams, limits, account_limit, plans, api_keys };
    // Invariant: whatever the control plane accepts, every data plane can load.
    if let Err(e) = table::decode(&table::encode(&table)) {
        return Err(vec![ManifestError {
            file: String::new(),
            line: None,
            path: String::new(),
            message: format!("internal error: the compiled table does not verify: {e}"),
        }]);
    }
    Ok(table)
}

/// What stages add to the table-wide lists.
struct Targets<'a> {
    upstreams: &'a mut Vec<Upstream>,
    limits: &'a mut Vec<table::Limit>,
}

/// Largest rate and burst a throttle may have.
const MAX_THROTTLE: f64 = 1e9;

/// Why a throttle's numbers are out of range, if they are.
pub(crate) fn check_throttle(t: &manifest::Throttle) -> Result<(), String> {
    if !(t.rate.is_finite() && t.rate > 0.0 && t.rate <= MAX_THROTTLE) {
        return Err(format!("rate must be above 0 and at most {MAX_THROTTLE:e} per second"));
    }
    if t.burst as f64 > MAX_THROTTLE {
        return Err(format!("burst must be at most {MAX_THROTTLE:e}"));
    }
    Ok(())
}

/// Adds a throttle (or finds the one with the same id) and returns its index.
pub(crate) fn add_limit(
    limits: &mut Vec<table::Limit>,
    id: u64,
    t: &manifest::Throttle,
) -> Result<u32, String> {
    check_throttle(t)?;
    if let Some(i) = limits.iter().position(|l| l.id == id) {
        return Ok(i as u32);
    }
    let interval_ns = ((1e9 / t.rate).round() as u64).max(1);
    limits.push(table::Limit { id, interval_ns, burst: t.burst });
    Ok((limits.len() - 1) as u32)
}

fn compile_stage(
    api: &Located<manifest::Api>,
    doc: &Located<manifest::Stage>,
    canary_api: Option<&Located<manifest::Api>>,
    cache_flushes: u64,
    targets: Targets<'_>,
    errors: &mut Errors,
) -> Option<Stage> {
    let Targets { upstreams, limits } = targets;
    let s = &doc.value;
    let before = errors.list.len();
    check_variables(doc, "variables", &s.variables, errors);
    let protocol = match api.value.protocol {
        manifest::Protocol::Rest => table::Protocol::Rest,
        manifest::Protocol::Http => table::Protocol::Http,
        manifest::Protocol::Websocket => table::Protocol::WebSocket,
    };
    let limit = match &s.throttle {
        None => None,
        Some(t) => match add_limit(limits, stable_id(&[&api.value.name, &s.name, "stage throttle"]), t) {
            Ok(i) => Some(i),
            Err(e) => {
                errors.at(doc, "throttle", e);
                None
            }
        },
    };
    let id = stable_id(&[&api.value.name, &s.name]);
    let cache = crate::cache_settings::stage(doc, id, cache_flushes, errors);
    let routes = compile_routes(api, &s.name, &s.variables, cache.as_ref(), upstreams, limits, errors);
    let canary = match (&s.canary, canary_api) {
        (None, _) => None,
        (Some(c), None) => {
            errors.at(
                doc,
                "canary.deployment",
                format!(
                    "'{}' is not a deployment of Api '{}' (see controlctl deployments; offline compile has none)",
                    c.deployment, s.api
                ),
            );
            None
        }
        (Some(c), Some(canary_api)) => {
            check_variables(doc, "canary.variables", &c.variables, errors);
            if !(0.0..=100.0).contains(&c.percent) {
                errors.at(doc, "canary.percent", "a share of traffic between 0 and 100");
            }
            // The canary sees the stage's variables with its own overrides on top.
            let mut variables = s.variables.clone();
            variables.extend(c.variables.iter().map(|(k, v)| (k.clone(), v.clone())));
            // AWS's canary default (useStageCache false): canary requests bypass the cache.
            compile_routes(canary_api, &s.name, &variables, None, upstreams, limits, errors).map(|routes| {
                table::Canary {
                    percent_per_million: (c.percent * 10_000.0).round() as u32,
                    deployment: c.deployment.clone(),
                    variables: to_variables(&variables),
                    routes,
                }
            })
        }
    };
    let access_log = match &s.access_log {
        None => None,
        Some(settings) => match crate::access_log::compile(settings) {
            Ok(log) => Some(log),
            Err((field, message)) => {
                errors.at(doc, format!("accessLog.{field}"), message);
                None
            }
        },
    };
    if errors.list.len() != before {
        return None;
    }
    Some(Stage {
        id,
        api: api.value.name.clone(),
        name: s.name.clone(),
        protocol,
        variables: to_variables(&s.variables),
        routes: routes?,
        canary,
        limit,
        cache: cache.map(|c| c.cache),
        access_log,
    })
}

fn to_variables(variables: &BTreeMap<String, String>) -> Vec<Variable> {
    variables.iter().map(|(n, v)| Variable { name: n.clone(), value: v.clone() }).collect()
}

fn check_variables<T>(
    doc: &Located<T>,
    field: &str,
    variables: &BTreeMap<String, String>,
    errors: &mut Errors,
) {
    for (name, value) in variables {
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            errors.at(doc, format!("{field}.{name}"), "a name of letters, digits and '_' (at most 64)");
        }
        if value.len() > 512 {
            errors.at(doc, format!("{field}.{name}"), "at most 512 characters");
        } else if let Err(message) = check_variable_value(value) {
            errors.at(doc, format!("{field}.{name}"), message);
        }
    }
}

/// AWS's rule for stage variable values: one or more of `A-Z a-z 0-9 - . _ ~ : / ? # & = ,`.
/// Nothing else may reach an upstream request line or header through a variable (a CR, LF or
/// space would split one request into two).
fn check_variable_value(value: &str) -> Result<(), String> {
    const ALLOWED: &str = "letters, digits and - . _ ~ : / ? # & = ,";
    if value.is_empty() {
        return Err(format!("a stage variable value is one or more of {ALLOWED}"));
    }
    match value.chars().find(|&c| !(c.is_ascii_alphanumeric() || "-._~:/?#&=,".contains(c))) {
        None => Ok(()),
        Some(c) => Err(format!("{c:?} is not allowed in a stage variable value (only {ALLOWED})")),
    }
}

/// One API definition's routes as a stage with these variables serves them.
fn compile_routes(
    api: &Located<manifest::Api>,
    stage: &str,
    variables: &BTreeMap<String, String>,
    cache: Option<&crate::cache_settings::StageDefaults>,
    upstreams: &mut Vec<Upstream>,
    limits: &mut Vec<table::Limit>,
    errors: &mut Errors,
) -> Option<table::RouteSet> {
    let before = errors.list.len();
    let mut tree = TreeBuilder::default();
    let mut routes = Vec::new();
    for (key, route) in &api.value.routes {
        let path = format!("routes[\"{key}\"]");
        let Some((method_text, resource)) = key.split_once(' ') else {
            errors.at(api, path, "a route key is 'METHOD /path', e.g. 'GET /pets'");
            continue;
        };
        let Some(method) = Method::from_route_key(method_text) else {
            errors.at(
                api,
                path,
                format!(
                    "unknown method '{method_text}'; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY"
                ),
            );
            continue;
        };
        let segments = match parse_path(resource) {
            Ok(segments) => segments,
            Err(e) => {
                errors.at(api, path, e.to_string());
                continue;
            }
        };
        let params = param_names(&segments);
        let integration = match compile_integration(&route.integration, &params, variables, upstreams) {
            Ok(integration) => integration,
            Err((field, message)) => {
                errors.at(api, format!("{path}.integration{field}"), message);
                continue;
            }
        };
        // Method throttles are per stage: the same route in two stages has two buckets.
        let limit = match &route.throttle {
            None => None,
            Some(t) => {
                match add_limit(limits, stable_id(&[&api.value.name, stage, key, "method throttle"]), t) {
                    Ok(i) => Some(i),
                    Err(e) => {
                        errors.at(api, format!("{path}.throttle"), e);
                        continue;
                    }
                }
            }
        };
        let id = stable_id(&[&api.value.name, stage, key]);
        let cache = match crate::cache_settings::route(cache, id, method, &params, route.cache.as_ref()) {
            Ok(cache) => cache,
            Err((field, message)) => {
                errors.at(api, format!("{path}{field}"), message);
                continue;
            }
        };
        if let Err(e) = tree.insert(method, &segments, routes.len() as u32) {
            errors.at(api, path, e.to_string());
            continue;
        }
        routes.push(Route {
            id,
            key: key.clone(),
            resource: resource.to_string(),
            params,
            integration,
            limit,
            api_key_required: route.api_key_required,
            cache,
        });
    }
    (errors.list.len() == before).then(|| tree.finish(routes))
}

type FieldError = (String, String);

fn compile_integration(
    i: &manifest::Integration,
    params: &[String],
    variables: &BTreeMap<String, String>,
    upstreams: &mut Vec<Upstream>,
) -> Result<Integration, FieldError> {
    let timeout = match &i.timeout {
        None => DEFAULT_INTEGRATION_TIMEOUT,
        Some(text) => {
            let t = text.parse().map_err(|e| (".timeout".to_string(), e))?;
            if !(MIN_INTEGRATION_TIMEOUT..=MAX_INTEGRATION_TIMEOUT).contains(&t) {
                return Err((".timeout".into(), "must be between 50ms and 300s".into()));
            }
            t
        }
    };
    match i.kind {
        IntegrationType::Mock => {
            if i.uri.is_some() {
                return Err((".uri".into(), "a MOCK integration has no uri".into()));
            }
            let response = i.response.clone().unwrap_or(manifest::MockResponse {
                status: 200,
                headers: BTreeMap::new(),
                body: String::new(),
            });
            if !(100..=599).contains(&response.status) {
                return Err((".response.status".into(), "an HTTP status between 100 and 599".into()));
            }
            let mut headers = Vec::new();
            for (name, value) in &response.headers {
                if httparse_token(name).is_err() || value.contains(['\r', '\n']) {
                    return Err((format!(".response.headers.{name}"), "not a valid header".into()));
                }
                headers.push(table::Header { name: name.clone(), value: value.clone() });
            }
            Ok(Integration::Mock(MockIntegration {
                status: response.status,
                headers,
                body: response.body.into_bytes(),
            }))
        }
        IntegrationType::Http | IntegrationType::HttpProxy => {
            if i.response.is_some() {
                return Err((".response".into(), "only a MOCK integration has a response".into()));
            }
            let uri =
                i.uri.as_deref().ok_or((".uri".to_string(), "required for HTTP integrations".to_string()))?;
            let uri = substitute_stage_variables(uri, variables).map_err(|e| (".uri".to_string(), e))?;
            let (host, port, path) = split_http_uri(&uri).map_err(|e| (".uri".to_string(), e))?;
            let parts = split_template(&path, params).map_err(|e| (".uri".to_string(), e))?;
            let method = match &i.method {
                None => None,
                Some(m) => Some(
                    Method::from_route_key(m)
                        .filter(|m| *m != Method::Any)
                        .ok_or((".method".to_string(), format!("unknown method '{m}'")))?,
                ),
            };
            let upstream = match upstreams.iter().position(|u| u.host == host && u.port == port) {
                Some(i) => i,
                None => {
                    upstreams.push(Upstream { host, port });
                    upstreams.len() - 1
                }
            };
            Ok(Integration::Http(HttpIntegration {
                proxy: i.kind == IntegrationType::HttpProxy,
                method,
                upstream: upstream as u32,
                path: parts,
                timeout_ms: timeout.as_millis() as u32,
            }))
        }
    }
}

fn httparse_token(name: &str) -> Result<(), ()> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

/// Replaces every `${stageVariables.name}`; a missing variable is an error rather than an
/// empty string, which AWS would only reveal at request time.
fn substitute_stage_variables(uri: &str, variables: &BTreeMap<String, String>) -> Result<String, String> {
    use std::fmt::Write;
    const OPEN: &str = "${stageVariables.";
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after.find('}').ok_or_else(|| "unclosed '${stageVariables.'".to_string())?;
        let name = &after[..end];
        let value =
            variables.get(name).ok_or_else(|| format!("stage variable '{name}' is not set on this stage"))?;
        // Values were checked when the stage was read; this is where one becomes part of a
        // request line, so anything outside AWS's set is percent-encoded here all the same.
        for c in value.chars() {
            if c.is_ascii_alphanumeric() || "-._~:/?#&=,".contains(c) {
                out.push(c);
            } else {
                let mut utf8 = [0u8; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    let _ = write!(out, "%{byte:02X}");
                }
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Splits `http://host[:port]/path?query` into host, port and the path-and-query.
fn split_http_uri(uri: &str) -> Result<(String, u16, String), String> {
    if uri.starts_with("https://") {
        return Err(format!("'{uri}': https upstreams are not supported yet; use http://"));
    }
    let rest = uri.strip_prefix("http://").ok_or_else(|| format!("'{uri}' is not an http:// URI"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains(['{', '}', '@']) {
        return Err(format!("'{uri}': the host must be fixed (path parameters go in the path)"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6.find(']').ok_or_else(|| format!("'{uri}': unclosed IPv6 literal"))?;
        let port = v6[end + 1..].strip_prefix(':');
        (format!("[{}]", &v6[..end]), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("'{uri}' has no host"));
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b)) {
        return Err(format!(
            "'{uri}': the host may hold only letters, digits and - . _ (or an [IPv6] literal)"
        ));
    }
    // The path goes into the upstream request line as it is: visible ASCII only, so that no
    // space, CR or LF can end the line early (percent-encode anything else).
    if let Some(c) = path.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("'{uri}': {c:?} cannot appear in a request target; percent-encode it"));
    }
    let port = match port {
        None => 80,
        Some(p) => {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("'{uri}': bad port '{p}'"))?
        }
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    Ok((host, port, path))
}

/// Splits a path template into literal parts and `{param}` references.
fn split_template(path: &str, params: &[String]) -> Result<Vec<UriPart>, String> {
    let mut parts = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(UriPart::Literal(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or("unclosed '{' in the uri")? + open;
        let name = rest[open + 1..close].trim_end_matches('+');
        let index = params
            .iter()
            .position(|p| p == name)
            .ok_or_else(|| format!("'{{{name}}}' is not a path parameter of this route"))?;
        parts.push(UriPart::Param(index as u32));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(UriPart::Literal(rest.to_string()));
    }
    if parts.is_empty() {
        parts.push(UriPart::Literal("/".into()));
    }
    if rest.contains('}') {
        return Err("unopened '}' in the uri".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;

    const PETSTORE: &str = include_str!("../examples/petstore.yaml");

    fn errors(text: &str) -> Vec<String> {
        match parse("m.yaml", text) {
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
            Ok(m) => match compile(&m, 1) {
                Err(e) => e.iter().map(|e| e.to_string()).collect(),
                Ok(_) => vec![],
            },
        }
    }

    #[test]
    fn petstore_compiles_with_variables_substituted() {
        let table = compile(&parse("petstore.yaml", PETSTORE).unwrap(), 7).unwrap();
        assert_eq!(table.version, 7);
        assert_eq!(table.stages.len(), 1);
        let stage = &table.stages[0];
        assert_eq!((stage.api.as_str(), stage.name.as_str()), ("petstore", "prod"));
        assert_eq!(stage.routes.routes.len(), 5);
        assert_eq!(table.upstreams, vec![Upstream { host: "127.0.0.1".into(), port: 9000 }]);
        let by_pet = stage.routes.routes.iter().find(|r| r.key == "GET /pets/{petId}").unwrap();
        let Integration::Http(http) = &by_pet.integration else { panic!("not http") };
        assert_eq!(http.path, vec![UriPart::Literal("/pets/".into()), UriPart::Param(0)]);
        assert_eq!(http.timeout_ms, 29_000);
        assert_eq!(table.domains[0].host, "localhost");
        // Same manifest, same ids: per-shard state survives recompilation.
        let again = compile(&parse("petstore.yaml", PETSTORE).unwrap(), 8).unwrap();
        assert_eq!(again.stages[0].id, stage.id);
        assert_eq!(again.stages[0].routes.routes[0].id, stage.routes.routes[0].id);
    }

    #[test]
    fn broken_manifests_get_located_errors() {
        let api = "kind: Api\nname: a\nroutes:\n  GET /x:\n    integration: { type: HTTP_PROXY, uri: \"http://${stageVariables.nope}/x\" }\n";
        let stage = "---\nkind: Stage\napi: a\nname: s\n";
        assert_eq!(
            errors(&format!("{api}{stage}")),
            vec!["m.yaml:5: routes[\"GET /x\"].integration.uri: stage variable 'nope' is not set on this stage"]
        );
        assert_eq!(
            errors("kind: Api\nname: a\nroutez: {}\n"),
            vec!["m.yaml:3: unknown field `routez`, expected one of `kind`, `name`, `protocol`, `routes`; did you mean `routes`?"]
        );
        assert_eq!(errors("kind: Gateway\n"), vec!["m.yaml:1: kind: unknown kind 'Gateway'; one of Account, Api, Stage, Domain, UsagePlan, ApiKey"]);
        assert_eq!(errors("kind: Stage\napi: nope\nname: s\n"), vec!["m.yaml:2: api: no Api named 'nope'"]);
        let bad_routes = "kind: Api\nname: a\nroutes:\n  FETCH /x: { integration: { type: MOCK } }\n  GET /{p+}/x: { integration: { type: MOCK } }\n  GET /y: { integration: { type: HTTP, uri: \"https://h/\" } }\n---\nkind: Stage\napi: a\nname: s\n";
        assert_eq!(
            errors(bad_routes),
            vec![
                "m.yaml:4: routes[\"FETCH /x\"]: unknown method 'FETCH'; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY",
                "m.yaml:6: routes[\"GET /y\"].integration.uri: 'https://h/': https upstreams are not supported yet; use http://",
                "m.yaml:5: routes[\"GET /{p+}/x\"]: a greedy '{name+}' segment must be the last",
            ]
        );
    }

    #[test]
    fn uri_templates_split_into_parts() {
        let params = vec!["proxy".to_string()];
        assert_eq!(
            split_template("/a/{proxy}?q=1", &params).unwrap(),
            vec![UriPart::Literal("/a/".into()), UriPart::Param(0), UriPart::Literal("?q=1".into())]
        );
        assert!(split_template("/a/{nope}", &params).is_err());
        assert_eq!(split_http_uri("http://h:81").unwrap(), ("h".into(), 81, String::new()));
        assert_eq!(split_http_uri("http://[::1]:82/x").unwrap(), ("[::1]".into(), 82, "/x".into()));
        assert!(split_http_uri("http://h:0/").is_err());
        assert!(split_http_uri("ftp://h/").is_err());
        assert!(split_http_uri("http://h/a b").is_err());
        assert!(split_http_uri("http://h/a\r\nx: y").is_err());
        assert!(split_http_uri("http://h\r\nx/").is_err());
    }

    #[test]
    fn stage_variable_values_follow_aws_rules() {
        let doc = |value: &str| {
            format!(
                "kind: Api\nname: a\nroutes:\n  GET /x:\n    integration: {{ type: HTTP_PROXY, uri: \"http://h/${{stageVariables.v}}\" }}\n\
                 ---\nkind: Stage\napi: a\nname: s\nvariables:\n  v: {value}\n"
            )
        };
        assert_eq!(errors(&doc("\"a-._~:/?#&=,Z9\"")), Vec::<String>::new());
        assert_eq!(
            errors(&doc("\"x HTTP/1.1\\r\\nX-Injected: 1\\r\\n\\r\\nGET /y\"")),
            vec!["m.yaml:11: variables.v: ' ' is not allowed in a stage variable value (only letters, digits and - . _ ~ : / ? # & = ,)"]
        );
        assert_eq!(
            errors(&doc("\"a%0d\"")),
            vec!["m.yaml:11: variables.v: '%' is not allowed in a stage variable value (only letters, digits and - . _ ~ : / ? # & = ,)"]
        );
        assert_eq!(
            errors(&doc("\"\"")),
            vec!["m.yaml:11: variables.v: a stage variable value is one or more of letters, digits and - . _ ~ : / ? # & = ,"]
        );
        // The guard where values are substituted holds even for a value that skipped the check.
        let mut variables = BTreeMap::new();
        variables.insert("v".to_string(), "a\r\nb".to_string());
        assert_eq!(
            substitute_stage_variables("http://h/${stageVariables.v}", &variables).unwrap(),
            "http://h/a%0D%0Ab"
        );
    }
}
