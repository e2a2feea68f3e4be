//! Compiles usage plans and API keys into the table: each key gets its plan's throttle and
//! per-method throttles as buckets of its own (AWS throttles usage plans per client), and the
//! plan's quota, which the data planes count per key.

use super::common::{add_limit, check_throttle, stable_id, valid_name, Errors};
use crate::manifest::{self, Located, Manifest, QuotaPeriod};
use proto::quota;
use proto::table::{self, KeyMethodLimit, Stage};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// Shortest API key value AWS accepts.
pub const MIN_KEY_LENGTH: usize = 20;
/// Prefix of a key value given (or stored) as its SHA-256 in hex instead of in clear.
pub const HASH_PREFIX: &str = "sha256:";

/// The SHA-256 of a key value as written: `sha256:<64 hex digits>` is taken as the hash
/// itself (how the control plane stores keys), anything else is the key in clear.
pub fn key_hash(value: &str) -> Result<[u8; 32], String> {
    if let Some(hex) = value.strip_prefix(HASH_PREFIX) {
        let mut hash = [0u8; 32];
        let valid = hex.len() == 64 && hex.is_ascii();
        for (i, byte) in hash.iter_mut().enumerate().take_while(|_| valid) {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("'{HASH_PREFIX}' must be followed by 64 hex digits"))?;
        }
        return if valid {
            Ok(hash)
        } else {
            Err(format!("'{HASH_PREFIX}' must be followed by 64 hex digits"))
        };
    }
    if value.len() < MIN_KEY_LENGTH || value.len() > 128 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "an API key is {MIN_KEY_LENGTH} to 128 printable characters without spaces (as AWS requires)"
        ));
    }
    Ok(Sha256::digest(value.as_bytes()).into())
}

/// The stored form of a key value: its hash in hex, behind [`HASH_PREFIX`].
pub fn stored_value(value: &str) -> Result<String, String> {
    let hash = key_hash(value)?;
    Ok(format!("{HASH_PREFIX}{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// Adds every plan and key to the table. `stage_index` maps `(api lowercase, stage)` to the
/// index in `stages`.
pub(crate) fn compile(
    manifest: &Manifest,
    stages: &[Stage],
    stage_index: &BTreeMap<(String, String), u32>,
    limits: &mut Vec<table::Limit>,
    errors: &mut Errors,
) -> (Vec<table::UsagePlan>, Vec<table::ApiKey>) {
    let mut plans = Vec::new();
    // Per plan name: its index and the docs the keys need.
    let mut by_name: HashMap<&str, (u32, &Located<manifest::UsagePlan>)> = HashMap::new();
    for doc in &manifest.usage_plans {
        let p = &doc.value;
        if !valid_name(&p.name) {
            errors.at(doc, "name", "use letters, digits, '-' and '_' (at most 128)");
            continue;
        }
        if by_name.contains_key(p.name.as_str()) {
            errors.at(doc, "name", format!("a second UsagePlan named '{}'", p.name));
            continue;
        }
        let mut covered = Vec::new();
        for (i, name) in p.stages.iter().enumerate() {
            match find_stage(stage_index, name) {
                Some(index) => covered.push(index),
                None => errors.at(doc, format!("stages[{i}]"), format!("no Stage '{name}' (use api/stage)")),
            }
        }
        covered.sort_unstable();
        covered.dedup();
        if let Some(t) = &p.throttle {
            // Validated once here; each key adds its own bucket below.
            if let Err(e) = check_throttle(t) {
                errors.at(doc, "throttle", e);
            }
        }
        for (stage_name, methods) in &p.method_throttle {
            let field = format!("methodThrottle[\"{stage_name}\"]");
            let Some(stage) = find_stage(stage_index, stage_name) else {
                errors.at(doc, field, format!("no Stage '{stage_name}' (use api/stage)"));
                continue;
            };
            if !covered.contains(&stage) {
                errors.at(doc, field, format!("'{stage_name}' is not one of the plan's stages"));
                continue;
            }
            let routes = &stages[stage as usize].routes.routes;
            for (route_key, t) in methods {
                let field = format!("methodThrottle[\"{stage_name}\"][\"{route_key}\"]");
                if !routes.iter().any(|r| r.key == *route_key) {
                    errors.at(doc, field, format!("'{stage_name}' has no route '{route_key}'"));
                } else if let Err(e) = check_throttle(t) {
                    errors.at(doc, field, e);
                }
            }
        }
        let quota = p.quota.as_ref().and_then(|q| compile_quota(doc, q, errors));
        by_name.insert(&p.name, (plans.len() as u32, doc));
        plans.push(table::UsagePlan {
            id: stable_id(&["usage plan", &p.name]),
            name: p.name.clone(),
            stages: covered,
            quota,
        });
    }

    let mut keys: Vec<table::ApiKey> = Vec::new();
    let mut names: HashMap<&str, ()> = HashMap::new();
    for doc in &manifest.api_keys {
        let k = &doc.value;
        if !valid_name(&k.name) {
            errors.at(doc, "name", "use letters, digits, '-' and '_' (at most 128)");
            continue;
        }
        if names.insert(&k.name, ()).is_some() {
            errors.at(doc, "name", format!("a second ApiKey named '{}'", k.name));
            continue;
        }
        let Some(value) = &k.value else {
            errors.at(doc, "value", "required here (only the control plane generates key values)");
            continue;
        };
        let hash = match key_hash(value) {
            Ok(hash) => hash,
            Err(e) => {
                errors.at(doc, "value", e);
                continue;
            }
        };
        let (mut plan, mut limit, mut method_limits) = (None, None, Vec::new());
        if let Some(plan_name) = &k.plan {
            let Some(&(index, plan_doc)) = by_name.get(plan_name.as_str()) else {
                errors.at(doc, "plan", format!("no UsagePlan named '{plan_name}'"));
                continue;
            };
            plan = Some(index);
            let p = &plan_doc.value;
            if let Some(t) = &p.throttle {
                limit = add_limit(limits, stable_id(&["usage plan", &p.name, &k.name]), t).ok();
            }
            for (stage_name, methods) in &p.method_throttle {
                let Some(stage) = find_stage(stage_index, stage_name) else { continue };
                for (route_key, t) in methods {
                    let Some(route) =
                        stages[stage as usize].routes.routes.iter().find(|r| r.key == *route_key)
                    else {
                        continue;
                    };
                    let id = stable_id(&["usage plan", &p.name, &k.name, stage_name, route_key]);
                    if let Ok(limit) = add_limit(limits, id, t) {
                        method_limits.push(KeyMethodLimit { route: route.id, limit });
                    }
                }
            }
            method_limits.sort_by_key(|m| m.route);
        }
        if let Some(other) = keys.iter().find(|o| o.hash == hash) {
            errors.at(doc, "value", format!("the same value as ApiKey '{}'", other.name));
            continue;
        }
        keys.push(table::ApiKey {
            id: stable_id(&["api key", &k.name]),
            name: k.name.clone(),
            hash,
            enabled: k.enabled,
            plan,
            limit,
            method_limits,
            invalidate_cache: k.invalidate_cache,
        });
    }
    keys.sort_by_key(|k| k.hash);
    (plans, keys)
}

/// `api/stage` to a stage index.
fn find_stage(stage_index: &BTreeMap<(String, String), u32>, name: &str) -> Option<u32> {
    let (api, stage) = name.split_once('/')?;
    stage_index.get(&(api.to_ascii_lowercase(), stage.to_string())).copied()
}

/// A plan's quota as both planes evaluate it, or every `(field, problem)` with it.
pub fn quota_rule(q: &manifest::Quota) -> Result<quota::Rule, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    if q.limit == 0 || q.limit > table::MAX_QUOTA {
        problems.push(("quota.limit", format!("between 1 and {}", table::MAX_QUOTA)));
    }
    if q.offset >= q.limit.max(1) {
        problems.push(("quota.offset", "smaller than the limit".to_string()));
    }
    let period = match q.period {
        QuotaPeriod::Day => quota::Period::Day,
        QuotaPeriod::Week => quota::Period::Week,
        QuotaPeriod::Month => quota::Period::Month,
    };
    let anchor_s = match &q.start {
        Some(text) => quota::parse_utc(text).unwrap_or_else(|e| {
            problems.push(("quota.start", e));
            0
        }),
        None => {
            if q.offset > 0 {
                problems
                    .push(("quota.offset", "applies to the first period, so it needs quota.start".into()));
            }
            // Without a start, periods begin at midnight UTC, on Monday, or on the 1st.
            if period == quota::Period::Week {
                quota::FIRST_MONDAY_S
            } else {
                0
            }
        }
    };
    if problems.is_empty() {
        Ok(quota::Rule { limit: q.limit, period, offset: q.offset, anchor_s })
    } else {
        Err(problems)
    }
}

fn compile_quota(
    doc: &Located<manifest::UsagePlan>,
    q: &manifest::Quota,
    errors: &mut Errors,
) -> Option<table::Quota> {
    let rule = quota_rule(q)
        .map_err(|problems| problems.into_iter().for_each(|(f, m)| errors.at(doc, f, m)))
        .ok()?;
    let period = match rule.period {
        quota::Period::Day => table::QuotaPeriod::Day,
        quota::Period::Week => table::QuotaPeriod::Week,
        quota::Period::Month => table::QuotaPeriod::Month,
    };
    Some(table::Quota { limit: rule.limit, period, offset: rule.offset, anchor_s: rule.anchor_s })
}

#[cfg(test)]
mod tests {
    use crate::compile::compile;
    use crate::manifest::parse;

    const BASE: &str =
        "kind: Api\nname: a\nroutes:\n  GET /x:\n    apiKeyRequired: true\n    integration: { type: MOCK }\n\
                        ---\nkind: Stage\napi: a\nname: s\n";

    fn compiled(extra: &str) -> Result<proto::table::Table, Vec<String>> {
        let m = parse("m.yaml", &format!("{BASE}---\n{extra}")).map_err(|e| vec![format!("{e:?}")])?;
        compile(&m, 1).map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn each_key_gets_its_own_buckets_and_the_plan_quota() {
        let t = compiled(
            "kind: UsagePlan\nname: p\nstages: [a/s]\nthrottle: { rate: 10, burst: 5 }\n\
             methodThrottle: { a/s: { GET /x: { rate: 1, burst: 1 } } }\nquota: { limit: 100, period: WEEK }\n\
             ---\nkind: ApiKey\nname: k1\nplan: p\nvalue: aaaaaaaaaaaaaaaaaaaaaaaa\n\
             ---\nkind: ApiKey\nname: k2\nplan: p\nvalue: bbbbbbbbbbbbbbbbbbbbbbbb\n",
        )
        .unwrap();
        assert_eq!(t.api_keys.len(), 2);
        assert!(t.api_keys[0].hash < t.api_keys[1].hash, "sorted for binary search");
        let buckets: std::collections::HashSet<u32> =
            t.api_keys.iter().flat_map(|k| [k.limit.unwrap(), k.method_limits[0].limit]).collect();
        assert_eq!(buckets.len(), 4, "two buckets per key, none shared");
        assert_eq!(t.api_keys[0].method_limits[0].route, t.stages[0].routes.routes[0].id);
        let quota = t.plans[0].quota.unwrap();
        assert_eq!((quota.limit, quota.anchor_s), (100, proto::quota::FIRST_MONDAY_S));
        assert!(t.stages[0].routes.routes[0].api_key_required);
    }

    #[test]
    fn bad_plans_and_keys_are_reported_where_they_are() {
        let errors = compiled(
            "kind: UsagePlan\nname: p\nstages: [a/nope]\nmethodThrottle: { a/s: { GET /x: { rate: 1, burst: 1 } } }\n\
             quota: { limit: 10, period: DAY, offset: 3 }\n\
             ---\nkind: ApiKey\nname: k1\nplan: q\nvalue: aaaaaaaaaaaaaaaaaaaaaaaa\n\
             ---\nkind: ApiKey\nname: k2\nvalue: aaaaaaaaaaaaaaaaaaaaaaaa\n---\nkind: ApiKey\nname: k3\nvalue: short\n",
        )
        .unwrap_err();
        let expected = [
            "stages[0]: no Stage 'a/nope' (use api/stage)",
            "methodThrottle[\"a/s\"]: 'a/s' is not one of the plan's stages",
            "quota.offset: applies to the first period, so it needs quota.start",
            "plan: no UsagePlan named 'q'",
            "value: an API key is 20 to 128 printable characters",
        ];
        for want in expected {
            assert!(errors.iter().any(|e| e.contains(want)), "missing {want:?} in {errors:#?}");
        }
        let twice = compiled(
            "kind: ApiKey\nname: k1\nvalue: aaaaaaaaaaaaaaaaaaaaaaaa\n---\nkind: ApiKey\nname: k2\nvalue: aaaaaaaaaaaaaaaaaaaaaaaa\n",
        )
        .unwrap_err();
        assert!(twice[0].contains("the same value as ApiKey 'k1'"), "{twice:?}");
        let route = compiled(
            "kind: UsagePlan\nname: p\nstages: [a/s]\nmethodThrottle: { a/s: { GET /y: { rate: 1, burst: 1 } } }\n",
        )
        .unwrap_err();
        assert!(route[0].contains("'a/s' has no route 'GET /y'"), "{route:?}");
    }
}
