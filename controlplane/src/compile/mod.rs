//! Compiles a parsed [`Manifest`] into a routing [`Table`]: names resolved to indexes, stage
//! variables substituted, URI templates pre-split, defaults applied, every reference checked.
//! Whatever this accepts, [`proto::table::decode`] accepts too (checked before publishing).

//!
//! One file per object, shared helpers at the bottom ([`common`]): [`stage`] (variables,
//! throttle, canary), [`route`] (routes and integrations), [`cache_settings`],
//! [`usage_plans`] (plans and keys), [`access_log`], [`tls`] (certificates, domains' HTTPS).

pub mod access_log;
pub mod cache_settings;
pub mod common;
pub mod route;
pub mod stage;
pub mod tls;
pub mod usage_plans;
pub mod variables;

pub use common::stable_id;
pub use route::{DEFAULT_INTEGRATION_TIMEOUT, MAX_INTEGRATION_TIMEOUT, MIN_INTEGRATION_TIMEOUT};

use crate::manifest::{self, Located, Manifest, ManifestError};
use common::{add_limit, valid_name, Errors};
use proto::table::{self, BasePathMapping, Domain, Stage, StageName, Table, Upstream};
use stage::compile_stage;
use std::collections::{BTreeMap, HashMap};

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

    let certificates = tls::compile_certificates(manifest, &mut errors);
    let mut domains: Vec<Domain> = Vec::new();
    for doc in &manifest.domains {
        let host = doc.value.name.to_ascii_lowercase();
        // `*.` may lead a name of two labels or more; no other `*` anywhere.
        let labels = host.strip_prefix("*.");
        let name = labels.unwrap_or(&host);
        let valid = !name.is_empty()
            && !name.contains(['/', ':', ' ', '*'])
            && labels.is_none_or(|rest| rest.contains('.'));
        if !valid {
            errors.at(doc, "name", "a host name without scheme, port or path (`*.` may lead, for one label)");
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
        let tls = tls::compile_domain_tls(doc, &host, &certificates, &mut errors);
        domains.push(Domain { host, tls, mappings });
    }
    domains.sort_by(|a, b| a.host.cmp(&b.host));

    let (plans, api_keys) = usage_plans::compile(manifest, &stages, &stage_index, &mut limits, &mut errors);

    let stage_names = stage_index
        .iter()
        .map(|((api, stage), &index)| StageName { api: api.clone(), stage: stage.clone(), index })
        .collect();

    // Every API's routes as written, as any stage would serve them, so an API that no stage
    // uses yet is refused for what is wrong with it now, not when a stage first uses it.
    // After the stages, whose errors (variables, deployments) come first; repeats are dropped.
    for api in &manifest.apis {
        let (mut upstreams, mut limits) = (Vec::new(), Vec::new());
        route::compile_routes(api, "", None, None, &mut upstreams, &mut limits, &mut errors);
    }
    if !errors.list.is_empty() {
        return Err(errors.into_unique());
    }
    let table = Table {
        version,
        domains,
        stage_names,
        stages,
        upstreams,
        limits,
        account_limit,
        plans,
        api_keys,
        certificates: certificates.certificates,
        default_certificate: certificates.default,
    };
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

#[cfg(test)]
mod tests {
    use super::route::{split_http_uri, split_template};
    use super::variables::substitute_stage_variables;
    use super::*;
    use crate::manifest::parse;
    use proto::table::{Integration, UriPart};

    const PETSTORE: &str = include_str!("../../examples/petstore.yaml");

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
        assert_eq!(table.upstreams, vec![Upstream { host: "127.0.0.1".into(), port: 9000, tls: None }]);
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
    fn hostile_nesting_and_aliases_are_refused_not_followed() {
        let deep = format!(
            "kind: Api\nname: a\nroutes:\n  GET /x: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            errors(&deep),
            vec!["m.yaml:4: more than 64 `[` and `{` open at once; no manifest needs to nest this deep"]
        );
        // 64 levels are fine (and reach the type check).
        let fine = format!("kind: Api\nname: a\nroutes:\n  GET /x: {}{}\n", "[".repeat(64), "]".repeat(64));
        assert!(errors(&fine)[0].contains("invalid type"), "{:?}", errors(&fine));
        // A billion laughs: nine levels of nine aliases each would be 387 million strings.
        let mut bomb = String::from("kind: Api\nname: a\nroutes:\n  GET /x:\n    integration:\n      type: MOCK\n      response:\n        headers:\n          x0: &a0 [l, l, l, l, l, l, l, l, l]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            bomb.push_str(&format!("          x{i}: &a{i} [{refs}]\n"));
        }
        assert_eq!(errors(&bomb).len(), 1, "{:?}", errors(&bomb));
    }

    #[test]
    fn domain_names_take_one_leading_wildcard_and_any_letters() {
        let api = "kind: Api\nname: a\nroutes:\n  GET /x: { integration: { type: MOCK } }\n---\nkind: Stage\napi: a\nname: s\n";
        let domain = |name: &str| {
            format!("{api}---\nkind: Domain\nname: \"{name}\"\nmappings: [{{ basePath: \"\", api: a, stage: s }}]\n")
        };
        // Found in review: a name starting with a multi-byte letter panicked the compiler.
        for good in ["\u{e9}.com", "*.example.com", "localhost"] {
            assert!(errors(&domain(good)).is_empty(), "{good}: {:?}", errors(&domain(good)));
        }
        for bad in ["*.com", "*.", "a.*.com", "**.a.com", "a b", "h:80", ""] {
            assert_eq!(errors(&domain(bad)).len(), 1, "{bad}");
        }
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
        assert_eq!(errors("kind: Gateway\n"), vec!["m.yaml:1: kind: unknown kind 'Gateway'; one of Account, Api, Stage, Domain, Certificate, UsagePlan, ApiKey"]);
        assert_eq!(errors("kind: Stage\napi: nope\nname: s\n"), vec!["m.yaml:2: api: no Api named 'nope'"]);
        let bad_routes = "kind: Api\nname: a\nroutes:\n  FETCH /x: { integration: { type: MOCK } }\n  GET /{p+}/x: { integration: { type: MOCK } }\n  GET /y: { integration: { type: HTTP, uri: \"http://h/\", tls: { insecureSkipVerification: true } } }\n---\nkind: Stage\napi: a\nname: s\n";
        assert_eq!(
            errors(bad_routes),
            vec![
                "m.yaml:4: routes[\"FETCH /x\"]: unknown method 'FETCH'; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY",
                "m.yaml:6: routes[\"GET /y\"].integration.tls: only an https:// uri has TLS settings",
                "m.yaml:5: routes[\"GET /{p+}/x\"]: a greedy '{name+}' segment must be the last",
            ]
        );
    }

    #[test]
    fn every_error_of_every_document_in_one_run() {
        // A misspelt field, an unknown method and an HTTP_PROXY without uri, in an API that no
        // stage uses yet, beside a stage of another API with an unset variable.
        let text = "kind: Api\nname: a\nroutes:\n  GET /v:\n    integration: { type: MOCK, respnse: { body: x } }\n  FETCH /w:\n    integration: { type: MOCK }\n  GET /x:\n    integration: { type: HTTP_PROXY }\n\
                    ---\nkind: Api\nname: b\nroutes:\n  GET /y:\n    integration: { type: HTTP_PROXY, uri: \"http://${stageVariables.nope}/\" }\n\
                    ---\nkind: Stage\napi: b\nname: s\n";
        let mut manifest = Manifest::default();
        let mut errors = Vec::new();
        let complete = crate::manifest::parse_into("m.yaml", text, &mut manifest, &mut errors);
        assert!(complete, "every document was read, at least in part");
        let all: Vec<String> =
            crate::with_compile_errors(&manifest, errors, complete).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            all,
            vec![
                "m.yaml:5: routes[\"GET /v\"].integration: unknown field `respnse`, expected one of `type`, `uri`, `method`, `timeout`, `response`, `tls`; did you mean `response`?",
                "m.yaml:15: routes[\"GET /y\"].integration.uri: stage variable 'nope' is not set on this stage",
                "m.yaml:6: routes[\"FETCH /w\"]: unknown method 'FETCH'; use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or ANY",
                "m.yaml:9: routes[\"GET /x\"].integration.uri: required for HTTP integrations",
            ]
        );
        // A document that cannot be read at all: its parse error alone, not the references to
        // it that compiling the rest would report as missing.
        let mut manifest = Manifest::default();
        let mut errors = Vec::new();
        let text = "kind: Api\nname: a\nroutez: {}\n---\nkind: Stage\napi: a\nname: s\n";
        let complete = crate::manifest::parse_into("m.yaml", text, &mut manifest, &mut errors);
        assert!(!complete);
        assert_eq!(crate::with_compile_errors(&manifest, errors, complete).len(), 1);
    }

    #[test]
    fn an_api_alone_is_checked_as_far_as_its_variables_allow() {
        // Variables as the port, the host or the whole URI are judged by each stage that uses
        // them; a fault that does not depend on them is reported without any stage.
        let api = "kind: Api\nname: a\nroutes:\n  GET /p:\n    integration: { type: HTTP_PROXY, uri: \"http://127.0.0.1:${stageVariables.port}/x\" }\n  \
                   GET /u:\n    integration: { type: HTTP_PROXY, uri: \"${stageVariables.url}/x\" }\n  \
                   GET /h/{id}:\n    integration: { type: HTTP_PROXY, uri: \"http://${stageVariables.host}/{nope}\" }\n";
        assert_eq!(
            errors(api),
            vec!["m.yaml:9: routes[\"GET /h/{id}\"].integration.uri: '{nope}' is not a path parameter of this route"]
        );
    }

    #[test]
    fn keys_written_twice_are_refused_with_both_lines() {
        let text = "kind: Api\nname: a\nroutes:\n  GET /x:\n    integration: { type: MOCK }\n  \"GET /x\":\n    integration: { type: MOCK }\n\
                    ---\nkind: Stage\napi: a\nname: s\nvariables:\n  v: one\n  v: two\n";
        assert_eq!(
            errors(text),
            vec![
                "m.yaml:4: routes[\"GET /x\"]: 'GET /x' is written twice (lines 4 and 6); each key once",
                "m.yaml:13: variables[\"v\"]: 'v' is written twice (lines 13 and 14); each key once",
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
        assert_eq!(split_http_uri("http://h:81").unwrap(), ("h".into(), 81, String::new(), false));
        assert_eq!(split_http_uri("http://[::1]:82/x").unwrap(), ("[::1]".into(), 82, "/x".into(), false));
        assert_eq!(split_http_uri("https://h/x").unwrap(), ("h".into(), 443, "/x".into(), true));
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
            substitute_stage_variables("http://h/${stageVariables.v}", Some(&variables)).unwrap(),
            "http://h/a%0D%0Ab"
        );
    }
}
