//! An API's routes as one stage serves them: route keys into the path tree, integrations
//! (MOCK, HTTP, HTTP_PROXY) with their URI templates pre-split and checked for the wire.

use super::common::{add_limit, stable_id, Errors};
use super::variables::substitute_stage_variables;
use crate::manifest::{self, IntegrationType, Located};
use proto::table::{self, HttpIntegration, Integration, Method, MockIntegration, Route, Upstream, UriPart};
use proto::tree::{param_names, parse_path, TreeBuilder};
use std::collections::BTreeMap;
use std::time::Duration;

/// AWS's default integration timeout.
pub const DEFAULT_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(29);
/// Shortest integration timeout AWS allows.
pub const MIN_INTEGRATION_TIMEOUT: Duration = Duration::from_millis(50);
/// Longest: AWS raised REST's ceiling above 29 s in 2024 (up to 300 s reported).
pub const MAX_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(300);

/// One API definition's routes as a stage with these variables serves them (`None`: as any
/// stage would, to check an API on its own).
pub(super) fn compile_routes(
    api: &Located<manifest::Api>,
    stage: &str,
    variables: Option<&BTreeMap<String, String>>,
    cache: Option<&super::cache_settings::StageDefaults>,
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
        let cache = match super::cache_settings::route(cache, id, method, &params, route.cache.as_ref()) {
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
    variables: Option<&BTreeMap<String, String>>,
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
                if !table::is_token(name) || value.contains(['\r', '\n']) {
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
            let uses_variables = uri.contains("${stageVariables.");
            let uri = substitute_stage_variables(uri, variables).map_err(|e| (".uri".to_string(), e))?;
            let (host, port, path, https) = match split_http_uri(&uri) {
                Ok(split) => split,
                // Checked without a stage, a URI made of variables (a host, a port, the whole
                // URI) cannot be judged yet: each stage that serves it checks it with its values.
                Err(_) if variables.is_none() && uses_variables => return Ok(unchecked()),
                Err(e) => return Err((".uri".to_string(), e)),
            };
            let parts = split_template(&path, params).map_err(|e| (".uri".to_string(), e))?;
            let method = match &i.method {
                None => None,
                Some(m) => Some(
                    Method::from_route_key(m)
                        .filter(|m| *m != Method::Any)
                        .ok_or((".method".to_string(), format!("unknown method '{m}'")))?,
                ),
            };
            let tls =
                upstream_tls(i.tls.as_ref(), &host, https).map_err(|(at, e)| (format!(".tls{at}"), e))?;
            let wanted = Upstream { host, port, tls };
            let upstream = match upstreams.iter().position(|u| *u == wanted) {
                Some(i) => i,
                None => {
                    upstreams.push(wanted);
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

/// What an integration compiles to when it can only be checked with a stage's variables.
fn unchecked() -> Integration {
    Integration::Mock(MockIntegration { status: 200, headers: Vec::new(), body: Vec::new() })
}

/// An HTTPS upstream's verification settings (none for `http://`, where `tls` is an error).
fn upstream_tls(
    tls: Option<&manifest::IntegrationTls>,
    host: &str,
    https: bool,
) -> Result<Option<table::UpstreamTls>, (String, String)> {
    if !https {
        return match tls {
            Some(_) => Err((String::new(), "only an https:// uri has TLS settings".into())),
            None => Ok(None),
        };
    }
    let default =
        manifest::IntegrationTls { ca_bundle: None, server_name: None, insecure_skip_verification: false };
    let tls = tls.unwrap_or(&default);
    let server_name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| host.trim_start_matches('[').trim_end_matches(']').to_string());
    if rustls::pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        return Err((".serverName".into(), format!("'{server_name}' is not a DNS name or IP address")));
    }
    let ca_bundle = match &tls.ca_bundle {
        Some(pem) => super::tls::read_chain(pem).map_err(|e| (".caBundle".to_string(), e))?,
        None => Vec::new(),
    };
    Ok(Some(table::UpstreamTls {
        server_name: server_name.to_ascii_lowercase(),
        ca_bundle,
        insecure_skip_verification: tls.insecure_skip_verification,
    }))
}

/// Splits `http[s]://host[:port]/path?query` into host, port, the path-and-query, and whether
/// it is HTTPS.
pub(super) fn split_http_uri(uri: &str) -> Result<(String, u16, String, bool), String> {
    let (rest, https) = match (uri.strip_prefix("http://"), uri.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(format!("'{uri}' is not an http:// or https:// URI")),
    };
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
    if !table::is_upstream_host(&host) {
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
        None if https => 443,
        None => 80,
        Some(p) => {
            p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| format!("'{uri}': bad port '{p}'"))?
        }
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    Ok((host, port, path, https))
}

/// Splits a path template into literal parts and `{param}` references.
pub(super) fn split_template(path: &str, params: &[String]) -> Result<Vec<UriPart>, String> {
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
