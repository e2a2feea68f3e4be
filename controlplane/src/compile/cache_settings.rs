//! Compiles cache settings: a stage's cache (AWS: its cache cluster and the stage-wide `*/*`
//! method settings) and each method's override and `cacheKeyParameters`.

use super::common::{stable_id, Errors};
use crate::manifest::{self, Located, UnauthorizedHandling};
use proto::table::{self, CacheKeyPart, Method, UnauthorizedInvalidation};
use std::time::Duration;

/// AWS's default TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// AWS's smallest cache cluster, 0.5 GB, is the default capacity.
pub const DEFAULT_CAPACITY: u64 = 512 << 20;
/// Largest capacity accepted: well past any one machine's memory, so a typo is caught.
pub const MAX_CAPACITY: u64 = 1 << 40;

/// What a stage's cache gives every method of the stage.
pub(crate) struct StageDefaults {
    pub cache: table::StageCache,
    ttl: Duration,
    require_authorization: bool,
    unauthorized: UnauthorizedInvalidation,
}

/// The stage's cache, if enabled. `flushes` counts `controlctl cache flush` on the stage: each
/// gives the cache a new identity, so data planes start it empty.
pub(crate) fn stage(
    doc: &Located<manifest::Stage>,
    stage_id: u64,
    flushes: u64,
    errors: &mut Errors,
) -> Option<StageDefaults> {
    let settings = doc.value.cache.as_ref().filter(|c| c.enabled)?;
    let before = errors.list.len();
    let capacity = match &settings.capacity {
        None => DEFAULT_CAPACITY,
        Some(text) => parse_capacity(text).unwrap_or_else(|e| {
            errors.at(doc, "cache.capacity", e);
            0
        }),
    };
    let ttl = match &settings.ttl {
        None => DEFAULT_TTL,
        Some(text) => check_ttl(text).unwrap_or_else(|e| {
            errors.at(doc, "cache.ttl", e);
            Duration::ZERO
        }),
    };
    if errors.list.len() != before {
        return None;
    }
    let id = stable_id(&["stage cache", &stage_id.to_string(), &capacity.to_string(), &flushes.to_string()]);
    Some(StageDefaults {
        cache: table::StageCache { id, capacity_bytes: capacity },
        ttl,
        require_authorization: settings.require_authorization.unwrap_or(true),
        unauthorized: unauthorized(settings.unauthorized_handling),
    })
}

fn unauthorized(handling: Option<UnauthorizedHandling>) -> UnauthorizedInvalidation {
    match handling.unwrap_or(UnauthorizedHandling::SucceedWithResponseHeader) {
        UnauthorizedHandling::FailWith403 => UnauthorizedInvalidation::FailWith403,
        UnauthorizedHandling::SucceedWithResponseHeader => {
            UnauthorizedInvalidation::SucceedWithResponseHeader
        }
        UnauthorizedHandling::SucceedWithoutResponseHeader => {
            UnauthorizedInvalidation::SucceedWithoutResponseHeader
        }
    }
}

fn check_ttl(text: &manifest::DurationText) -> Result<Duration, String> {
    let ttl = text.parse()?;
    if ttl > Duration::from_millis(u64::from(table::MAX_CACHE_TTL_MS)) {
        return Err("at most 3600s (0 caches nothing)".into());
    }
    Ok(ttl)
}

/// How one method of a stage uses the stage cache: `Ok(None)` when it does not (no stage
/// cache, a TTL of 0, or a method other than GET that did not enable caching).
pub(crate) fn route(
    stage: Option<&StageDefaults>,
    route_id: u64,
    method: Method,
    params: &[String],
    settings: Option<&manifest::RouteCache>,
) -> Result<Option<table::RouteCache>, (String, String)> {
    // Parameters are checked even without a stage cache, so a mistake shows before it matters.
    let key = match settings {
        None => Vec::new(),
        Some(s) => s
            .key_parameters
            .iter()
            .enumerate()
            .map(|(i, name)| key_part(name, params).map_err(|e| (format!(".cache.keyParameters[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let ttl = match settings.and_then(|s| s.ttl.as_ref()) {
        Some(text) => Some(check_ttl(text).map_err(|e| (".cache.ttl".to_string(), e))?),
        None => None,
    };
    let Some(stage) = stage else { return Ok(None) };
    let ttl = ttl.unwrap_or(stage.ttl);
    let explicit = settings.and_then(|s| s.enabled);
    let enabled = explicit.unwrap_or(matches!(method, Method::Get | Method::Any));
    if !enabled || ttl.is_zero() {
        return Ok(None);
    }
    let get_only = explicit != Some(true);
    let require_authorization =
        settings.and_then(|s| s.require_authorization).unwrap_or(stage.require_authorization);
    let unauthorized = match settings.and_then(|s| s.unauthorized_handling) {
        Some(h) => self::unauthorized(Some(h)),
        None => stage.unauthorized,
    };
    let ttl_ms = (ttl.as_millis() as u32).max(1);
    // Every setting is part of the identity: entries made under other settings are dropped.
    let mut identity = vec![
        "route cache".to_string(),
        route_id.to_string(),
        ttl_ms.to_string(),
        get_only.to_string(),
        require_authorization.to_string(),
        format!("{unauthorized:?}"),
    ];
    identity.extend(key.iter().map(|part| format!("{part:?}")));
    let identity: Vec<&str> = identity.iter().map(String::as_str).collect();
    Ok(Some(table::RouteCache {
        id: stable_id(&identity),
        ttl_ms,
        get_only,
        key,
        require_authorization,
        unauthorized,
    }))
}

/// `method.request.path.NAME`, `method.request.querystring.NAME` or
/// `method.request.header.NAME`.
fn key_part(name: &str, params: &[String]) -> Result<CacheKeyPart, String> {
    let unknown = || {
        format!(
            "'{name}': use method.request.path.NAME, method.request.querystring.NAME or \
             method.request.header.NAME"
        )
    };
    let rest = name.strip_prefix("method.request.").ok_or_else(unknown)?;
    let (source, field) = rest.split_once('.').ok_or_else(unknown)?;
    if field.is_empty() {
        return Err(unknown());
    }
    match source {
        "path" => params
            .iter()
            .position(|p| p == field)
            .map(|i| CacheKeyPart::Path(i as u32))
            .ok_or_else(|| format!("'{field}' is not a path parameter of this route")),
        "querystring" => Ok(CacheKeyPart::Query(field.to_string())),
        "header" => {
            if !proto::table::is_token(field) {
                return Err(format!("'{field}' is not a header name"));
            }
            Ok(CacheKeyPart::Header(field.to_ascii_lowercase()))
        }
        _ => Err(unknown()),
    }
}

/// A byte size: digits with an optional unit (B, KB, MB, GB, KiB, MiB, GiB, TiB).
pub fn parse_capacity(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 =
        digits.parse().map_err(|_| format!("'{text}' is not a size; write it like 256MiB or 1GiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => return Err(format!("'{other}' is not a size unit; use B, KB, MB, GB, KiB, MiB or GiB")),
    };
    let bytes = n.checked_mul(scale).filter(|b| *b <= MAX_CAPACITY).ok_or("at most 1TiB")?;
    if bytes < table::MIN_CACHE_CAPACITY {
        return Err("at least 1MiB (the largest response the cache stores)".into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<table::Table, Vec<String>> {
        let manifest = crate::manifest::parse("m.yaml", text).map_err(|e| vec![e[0].to_string()])?;
        crate::compile::compile(&manifest, 1).map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    const API: &str = "kind: Api\nname: a\nroutes:\n  GET /p/{id}:\n    integration: { type: HTTP_PROXY, uri: \"http://h/p/{id}\" }\n    cache: ROUTE\n  POST /q:\n    integration: { type: HTTP_PROXY, uri: \"http://h/q\" }\n---\nkind: Stage\napi: a\nname: s\ncache: STAGE\n";

    fn with(route: &str, stage: &str) -> String {
        API.replace("ROUTE", route).replace("STAGE", stage)
    }

    #[test]
    fn settings_compile_with_aws_defaults_and_overrides() {
        let t = compile(&with("{ keyParameters: [method.request.path.id] }", "{ enabled: true }")).unwrap();
        let stage = &t.stages[0];
        assert_eq!(stage.cache.unwrap().capacity_bytes, DEFAULT_CAPACITY);
        let get = stage.routes.routes.iter().find(|r| r.key == "GET /p/{id}").unwrap();
        let cache = get.cache.as_ref().unwrap();
        assert_eq!((cache.ttl_ms, cache.get_only, cache.require_authorization), (300_000, true, true));
        assert_eq!(cache.key, vec![CacheKeyPart::Path(0)]);
        assert_eq!(cache.unauthorized, UnauthorizedInvalidation::SucceedWithResponseHeader);
        let post = stage.routes.routes.iter().find(|r| r.key == "POST /q").unwrap();
        assert!(post.cache.is_none(), "only GET by default");
        // A TTL of 0 on the method, or a disabled stage cache, caches nothing.
        let t = compile(&with("{ ttl: 0s }", "{ enabled: true }")).unwrap();
        assert!(t.stages[0].routes.routes.iter().all(|r| r.cache.is_none()));
        let t = compile(&with("{ ttl: 5s }", "{ enabled: false }")).unwrap();
        assert!(t.stages[0].cache.is_none() && t.stages[0].routes.routes.iter().all(|r| r.cache.is_none()));
        // Method settings override the stage's.
        let stage = "{ enabled: true, ttl: 10s, requireAuthorization: false }";
        let t = compile(&with("{ ttl: 2s, unauthorizedHandling: FAIL_WITH_403 }", stage)).unwrap();
        let cache = t.stages[0].routes.routes[0].cache.clone().unwrap();
        assert_eq!((cache.ttl_ms, cache.require_authorization), (2000, false));
        assert_eq!(cache.unauthorized, UnauthorizedInvalidation::FailWith403);
        // Another setting, another identity: the old entries do not answer for the new ones.
        let other = compile(&with("{ ttl: 3s, unauthorizedHandling: FAIL_WITH_403 }", stage)).unwrap();
        assert_ne!(other.stages[0].routes.routes[0].cache.as_ref().unwrap().id, cache.id);
    }

    #[test]
    fn bad_settings_get_located_errors() {
        let errors = compile(&with(
            "{ keyParameters: [method.request.path.nope], ttl: 2h }",
            "{ enabled: true, capacity: 12 parsecs }",
        ))
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                "m.yaml:13: cache.capacity: 'parsecs' is not a size unit; use B, KB, MB, GB, KiB, MiB or GiB",
                "m.yaml:6: routes[\"GET /p/{id}\"].cache.keyParameters[0]: 'nope' is not a path parameter of this route",
            ]
        );
        let errors = compile(&with("{ ttl: 2h }", "{ enabled: true }")).unwrap_err();
        assert_eq!(
            errors,
            vec!["m.yaml:6: routes[\"GET /p/{id}\"].cache.ttl: at most 3600s (0 caches nothing)"]
        );
        let errors = compile(&with("{ unauthorizedHandling: FAIL }", "{ enabled: true }")).unwrap_err();
        assert!(errors[0].contains("unknown variant `FAIL`"), "{errors:?}");
    }

    #[test]
    fn capacities_parse_with_units_and_bounds() {
        assert_eq!(parse_capacity("256MiB"), Ok(256 << 20));
        assert_eq!(parse_capacity("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_capacity("1048576"), Ok(1 << 20));
        assert!(parse_capacity("1KiB").unwrap_err().contains("at least 1MiB"));
        assert!(parse_capacity("2TiB").unwrap_err().contains("at most"));
        assert!(parse_capacity("lots").is_err());
        assert!(parse_capacity("5 pints").unwrap_err().contains("'pints'"));
    }

    #[test]
    fn key_parameters_name_path_query_or_header() {
        let params = vec!["petId".to_string()];
        assert_eq!(key_part("method.request.path.petId", &params), Ok(CacheKeyPart::Path(0)));
        assert_eq!(
            key_part("method.request.querystring.limit", &params),
            Ok(CacheKeyPart::Query("limit".into()))
        );
        assert_eq!(
            key_part("method.request.header.Accept", &params),
            Ok(CacheKeyPart::Header("accept".into()))
        );
        assert!(key_part("method.request.path.nope", &params).unwrap_err().contains("not a path parameter"));
        assert!(key_part("integration.request.path.petId", &params).is_err());
        assert!(key_part("method.request.header.", &params).is_err());
    }
}
