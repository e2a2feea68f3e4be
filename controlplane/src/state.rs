//! The desired state the control plane owns, and the operations that change it: apply,
//! delete, deploy, rollback. Pure: every operation takes the current state and `now` and returns
//! the next state, so it can be validated (compiled) before anything is stored.
//!
//! Deployments: a deployment is an immutable snapshot of one API definition, identified by a
//! hash of its content (the same definition is the same deployment). A stage serves the last
//! deployment of its history. A new stage is deployed at once; afterwards a stage with
//! `autoDeploy: true` follows every change of its API, and one with `autoDeploy: false` moves
//! only on `deploy` or `rollback`.

use crate::compile;
use crate::manifest::{self, Located, Manifest, ManifestError};
use proto::table::Table;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// One stored manifest object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Document {
    Account(manifest::Account),
    Api(manifest::Api),
    Stage(manifest::Stage),
    Domain(manifest::Domain),
    Certificate(manifest::Certificate),
    UsagePlan(manifest::UsagePlan),
    ApiKey(manifest::ApiKey),
}

impl Document {
    pub fn kind(&self) -> &'static str {
        match self {
            Document::Account(_) => "Account",
            Document::Api(_) => "Api",
            Document::Stage(_) => "Stage",
            Document::Domain(_) => "Domain",
            Document::Certificate(_) => "Certificate",
            Document::UsagePlan(_) => "UsagePlan",
            Document::ApiKey(_) => "ApiKey",
        }
    }

    /// The object's name within its kind: `api/stage` for stages, empty for the Account.
    pub fn name(&self) -> String {
        match self {
            Document::Account(_) => String::new(),
            Document::Api(a) => a.name.clone(),
            Document::Stage(s) => format!("{}/{}", s.api, s.name),
            Document::Domain(d) => d.name.clone(),
            Document::Certificate(c) => c.name.clone(),
            Document::UsagePlan(p) => p.name.clone(),
            Document::ApiKey(k) => k.name.clone(),
        }
    }

    /// A one-line description for table output.
    pub fn summary(&self) -> String {
        match self {
            Document::Account(a) => match a.throttle {
                Some(t) => format!("throttle {}/s burst {}", t.rate, t.burst),
                None => "no throttle".into(),
            },
            Document::Api(a) => {
                format!("{} {} route(s)", format!("{:?}", a.protocol).to_uppercase(), a.routes.len())
            }
            Document::Stage(s) => {
                format!("autoDeploy={} variables={}", s.auto_deploy, s.variables.len())
            }
            Document::Domain(d) => {
                let maps: Vec<String> = d
                    .mappings
                    .iter()
                    .map(|m| format!("/{} -> {}/{}", m.base_path.trim_matches('/'), m.api, m.stage))
                    .collect();
                maps.join(", ")
            }
            Document::Certificate(c) => c.summary(),
            Document::UsagePlan(p) => format!("stages={}", p.stages.join(",")),
            Document::ApiKey(k) => {
                format!("plan={} enabled={}", k.plan.as_deref().unwrap_or("-"), k.enabled)
            }
        }
    }
}

/// Where an object was last applied from, for error messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredObject {
    pub file: String,
    pub line: usize,
    pub doc: Document,
    /// The document's text, while it is being applied (to locate errors to a line); not stored.
    #[serde(skip)]
    pub source: Option<std::sync::Arc<manifest::Source>>,
}

impl PartialEq for StoredObject {
    fn eq(&self, other: &Self) -> bool {
        (&self.file, self.line, &self.doc) == (&other.file, other.line, &other.doc)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: String,
    pub api: String,
    pub created_at_ms: u64,
    pub description: String,
    pub source: StoredObject,
}

/// Deployments each stage keeps by default: its current one and the ones it can roll back to.
pub const DEFAULT_DEPLOYMENT_HISTORY: usize = 10;

/// Everything the control plane stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Incremented by every accepted change; the version of the table it compiles to.
    pub version: u64,
    /// Keyed by `Kind/name`.
    pub objects: BTreeMap<String, StoredObject>,
    pub deployments: BTreeMap<String, Deployment>,
    /// Deployment ids per `api/stage`, oldest first; the last one is served.
    pub stage_history: BTreeMap<String, Vec<String>>,
    /// How many times each `api/stage` cache was flushed; each flush starts it empty.
    #[serde(default)]
    pub cache_flushes: BTreeMap<String, u64>,
    /// Entries each stage's history keeps (a setting of the control plane, not stored).
    #[serde(skip, default = "default_history")]
    pub history_limit: usize,
}

fn default_history() -> usize {
    DEFAULT_DEPLOYMENT_HISTORY
}

impl Default for State {
    fn default() -> State {
        State {
            version: 0,
            objects: BTreeMap::new(),
            deployments: BTreeMap::new(),
            stage_history: BTreeMap::new(),
            cache_flushes: BTreeMap::new(),
            history_limit: DEFAULT_DEPLOYMENT_HISTORY,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: String,
    pub name: String,
    pub action: String,
}

fn change(kind: &str, name: &str, action: &str) -> Change {
    Change { kind: kind.into(), name: name.into(), action: action.into() }
}

/// A refused operation: located manifest errors, or a plain reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    Invalid(Vec<ManifestError>),
    NotFound(String),
    Conflict(String),
}

/// The result of an accepted operation.
pub struct Outcome {
    pub state: State,
    pub table: Table,
    pub changes: Vec<Change>,
    /// API keys generated by this apply, shown once: `(name, value)`.
    pub generated_keys: Vec<(String, String)>,
}

fn located<T>(obj: &StoredObject, value: T) -> Located<T> {
    Located { file: obj.file.clone(), line: obj.line, value, source: obj.source.clone() }
}

fn key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

/// Content address of an API definition: the first 10 hex digits of its SHA-256.
pub fn deployment_id(api: &manifest::Api) -> String {
    let json = serde_json::to_vec(api).expect("an Api serializes");
    let digest = Sha256::digest(&json);
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

impl State {
    /// The objects as a manifest, plus the API snapshot each stage is deployed with.
    fn manifest(&self) -> (Manifest, compile::Deployed) {
        let mut m = Manifest::default();
        for obj in self.objects.values() {
            match &obj.doc {
                Document::Account(a) => m.account = Some(located(obj, a.clone())),
                Document::Api(a) => m.apis.push(located(obj, a.clone())),
                Document::Stage(s) => m.stages.push(located(obj, s.clone())),
                Document::Domain(d) => m.domains.push(located(obj, d.clone())),
                Document::Certificate(c) => m.certificates.push(located(obj, c.clone())),
                Document::UsagePlan(p) => m.usage_plans.push(located(obj, p.clone())),
                Document::ApiKey(k) => m.api_keys.push(located(obj, k.clone())),
            }
        }
        let snapshot = |d: &Deployment| match &d.source.doc {
            Document::Api(api) => Some(Located {
                file: d.source.file.clone(),
                line: d.source.line,
                value: api.clone(),
                source: d.source.source.clone(),
            }),
            _ => None,
        };
        let mut canaries = HashMap::new();
        for s in &m.stages {
            let Some(canary) = &s.value.canary else { continue };
            // Only a deployment of this stage's own API can be its canary.
            let Some(d) = self.deployments.get(&canary.deployment).filter(|d| d.api == s.value.api) else {
                continue;
            };
            if let Some(api) = snapshot(d) {
                canaries.insert((s.value.api.clone(), s.value.name.clone()), api);
            }
        }
        let mut deployed = HashMap::new();
        for (stage, history) in &self.stage_history {
            let Some(id) = history.last() else { continue };
            let Some(api) = self.deployments.get(id).and_then(snapshot) else { continue };
            if let Some((api_name, stage_name)) = stage.split_once('/') {
                deployed.insert((api_name.to_string(), stage_name.to_string()), api);
            }
        }
        let cache_flushes = self.cache_flushes.clone();
        (m, compile::Deployed { apis: deployed, canaries, cache_flushes })
    }

    /// Compiles this state into its table.
    pub fn compile(&self) -> Result<Table, Vec<ManifestError>> {
        let (manifest, deployed) = self.manifest();
        compile::compile_deployed(&manifest, self.version, &deployed)
    }

    /// Applies parsed manifests: creates or updates each object (objects not mentioned stay as
    /// they are), deploys as the stages' autoDeploy settings say, and compiles the result.
    pub fn apply(&self, manifest: &Manifest, now_ms: u64) -> Result<Outcome, Refusal> {
        let mut next = self.clone();
        let mut changes = Vec::new();
        let mut generated_keys = Vec::new();
        let mut incoming: Vec<StoredObject> = Vec::new();
        fn stored<T>(from: &Located<T>, doc: Document) -> StoredObject {
            StoredObject { file: from.file.clone(), line: from.line, doc, source: from.source.clone() }
        }
        if let Some(a) = &manifest.account {
            incoming.push(stored(a, Document::Account(a.value.clone())));
        }
        for a in &manifest.apis {
            incoming.push(stored(a, Document::Api(a.value.clone())));
        }
        for s in &manifest.stages {
            incoming.push(stored(s, Document::Stage(s.value.clone())));
        }
        for d in &manifest.domains {
            incoming.push(stored(d, Document::Domain(d.value.clone())));
        }
        for c in &manifest.certificates {
            incoming.push(stored(c, Document::Certificate(c.value.clone())));
        }
        for p in &manifest.usage_plans {
            incoming.push(stored(p, Document::UsagePlan(p.value.clone())));
        }
        let mut key_errors = Vec::new();
        for k in &manifest.api_keys {
            let mut key_doc = k.value.clone();
            let k_key = key("ApiKey", &key_doc.name);
            // Keys are stored hashed. Without a value, keep the stored one or generate one,
            // shown once.
            key_doc.value = match key_doc.value.take() {
                Some(v) => match crate::compile::usage_plans::stored_value(&v) {
                    Ok(stored) => Some(stored),
                    Err(message) => {
                        let line = Some(k.line_of("value"));
                        key_errors.push(ManifestError {
                            file: k.file.clone(),
                            line,
                            path: "value".into(),
                            message,
                        });
                        None
                    }
                },
                None => match next.objects.get(&k_key).map(|o| &o.doc) {
                    Some(Document::ApiKey(old)) => old.value.clone(),
                    _ => {
                        let v = generate_key(&key_doc.name, now_ms);
                        generated_keys.push((key_doc.name.clone(), v.clone()));
                        crate::compile::usage_plans::stored_value(&v).ok()
                    }
                },
            };
            incoming.push(stored(k, Document::ApiKey(key_doc)));
        }
        if !key_errors.is_empty() {
            return Err(Refusal::Invalid(key_errors));
        }

        let mut changed_apis: Vec<String> = Vec::new();
        for obj in incoming {
            let (kind, name) = (obj.doc.kind(), obj.doc.name());
            let k = key(kind, &name);
            let action = match next.objects.get(&k) {
                None => "created",
                Some(old) if old.doc == obj.doc => "unchanged",
                Some(_) => "configured",
            };
            if action != "unchanged" {
                if let Document::Api(a) = &obj.doc {
                    changed_apis.push(a.name.clone());
                }
            }
            changes.push(change(kind, &name, action));
            next.objects.insert(k, obj);
        }

        // Deploy: new stages at once, autoDeploy stages when their API changed.
        let stages: Vec<manifest::Stage> = next
            .objects
            .values()
            .filter_map(|o| match &o.doc {
                Document::Stage(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        for s in stages {
            let stage_key = format!("{}/{}", s.api, s.name);
            let is_new = !next.stage_history.contains_key(&stage_key);
            if is_new || (s.auto_deploy && changed_apis.contains(&s.api)) {
                if let Some(id) = next.deploy_current(&s.api, &stage_key, "", now_ms) {
                    changes.push(change("Stage", &stage_key, &format!("deployed {id}")));
                }
            }
        }
        let changed = changes.iter().any(|c| c.action != "unchanged");
        next.finish(changed, changes, generated_keys)
    }

    /// Adds a deployment of the API's current definition to the stage's history, unless it is
    /// already the one served. Returns the id when the stage moved.
    fn deploy_current(
        &mut self,
        api: &str,
        stage_key: &str,
        description: &str,
        now_ms: u64,
    ) -> Option<String> {
        let source = self.objects.get(&key("Api", api))?.clone();
        let Document::Api(api_doc) = &source.doc else { return None };
        let id = deployment_id(api_doc);
        self.deployments.entry(id.clone()).or_insert_with(|| Deployment {
            id: id.clone(),
            api: api.to_string(),
            created_at_ms: now_ms,
            description: description.to_string(),
            source,
        });
        let history = self.stage_history.entry(stage_key.to_string()).or_default();
        if history.last() == Some(&id) {
            return None;
        }
        history.push(id.clone());
        Some(id)
    }

    /// Keeps the last `history_limit` entries of each stage's history, and only the deployments
    /// a history or a canary still names: state stays bounded however often APIs change.
    /// True when anything was dropped.
    pub fn prune(&mut self) -> bool {
        let limit = self.history_limit.max(1);
        let mut dropped = false;
        for history in self.stage_history.values_mut() {
            if history.len() > limit {
                history.drain(..history.len() - limit);
                dropped = true;
            }
        }
        let canaries = self.objects.values().filter_map(|obj| match &obj.doc {
            Document::Stage(manifest::Stage { canary: Some(canary), .. }) => Some(&canary.deployment),
            _ => None,
        });
        let named: std::collections::HashSet<String> =
            self.stage_history.values().flatten().chain(canaries).cloned().collect();
        let before = self.deployments.len();
        self.deployments.retain(|id, _| named.contains(id));
        dropped || self.deployments.len() != before
    }

    fn finish(
        mut self,
        changed: bool,
        changes: Vec<Change>,
        generated_keys: Vec<(String, String)>,
    ) -> Result<Outcome, Refusal> {
        if changed {
            self.version += 1;
            self.prune();
        }
        let table = self.compile().map_err(Refusal::Invalid)?;
        Ok(Outcome { state: self, table, changes, generated_keys })
    }

    /// Deletes one object. An Api still used by a stage cannot be deleted.
    pub fn delete(&self, kind: &str, name: &str) -> Result<Outcome, Refusal> {
        let mut next = self.clone();
        let k = key(kind, name);
        if next.objects.remove(&k).is_none() {
            return Err(Refusal::NotFound(format!("{kind} '{name}' not found")));
        }
        if kind == "Api" {
            let users: Vec<String> = next
                .objects
                .values()
                .filter_map(|o| match &o.doc {
                    Document::Stage(s) if s.api == name => Some(format!("{}/{}", s.api, s.name)),
                    _ => None,
                })
                .collect();
            if !users.is_empty() {
                return Err(Refusal::Conflict(format!(
                    "Api '{name}' is used by stage(s) {}; delete them first",
                    users.join(", ")
                )));
            }
        }
        if kind == "Stage" {
            next.stage_history.remove(name);
        }
        next.finish(true, vec![change(kind, name, "deleted")], Vec::new())
    }

    /// Deploys the API's current definition to a stage (`controlctl deploy`).
    pub fn deploy(&self, api: &str, stage: &str, description: &str, now_ms: u64) -> Result<Outcome, Refusal> {
        let mut next = self.clone();
        let stage_key = format!("{api}/{stage}");
        if !next.objects.contains_key(&key("Stage", &stage_key)) {
            return Err(Refusal::NotFound(format!("Stage '{stage_key}' not found")));
        }
        let moved = next.deploy_current(api, &stage_key, description, now_ms);
        let action = match &moved {
            Some(id) => format!("deployed {id}"),
            None => "unchanged".to_string(),
        };
        next.finish(moved.is_some(), vec![change("Stage", &stage_key, &action)], Vec::new())
    }

    /// Empties a stage's cache on every data plane: the flush count is part of the stage
    /// cache's identity, so the next table starts it empty.
    pub fn flush_cache(&self, api: &str, stage: &str) -> Result<Outcome, Refusal> {
        let mut next = self.clone();
        let stage_key = format!("{api}/{stage}");
        let Some(Document::Stage(s)) = next.objects.get(&key("Stage", &stage_key)).map(|o| &o.doc) else {
            return Err(Refusal::NotFound(format!("Stage '{stage_key}' not found")));
        };
        if !s.cache.as_ref().is_some_and(|c| c.enabled) {
            return Err(Refusal::Conflict(format!(
                "Stage '{stage_key}' has no cache (cache.enabled is not true)"
            )));
        }
        *next.cache_flushes.entry(stage_key.clone()).or_default() += 1;
        next.finish(true, vec![change("Stage", &stage_key, "cache flushed")], Vec::new())
    }

    /// Moves a stage back to an earlier deployment: `to`, or the one before the current.
    pub fn rollback(&self, api: &str, stage: &str, to: Option<&str>) -> Result<Outcome, Refusal> {
        let mut next = self.clone();
        let stage_key = format!("{api}/{stage}");
        let history = next
            .stage_history
            .get_mut(&stage_key)
            .ok_or_else(|| Refusal::NotFound(format!("Stage '{stage_key}' not found")))?;
        let target = match to {
            Some(id) => {
                if !history.iter().any(|h| h == id) {
                    return Err(Refusal::NotFound(format!(
                        "deployment '{id}' is not in {stage_key}'s history (it keeps its last {} deployments)",
                        self.history_limit
                    )));
                }
                id.to_string()
            }
            None => {
                if history.len() < 2 {
                    return Err(Refusal::Conflict(format!("{stage_key} has no earlier deployment")));
                }
                history[history.len() - 2].clone()
            }
        };
        if history.last() == Some(&target) {
            return next.finish(false, vec![change("Stage", &stage_key, "unchanged")], Vec::new());
        }
        if to.is_none() {
            // Rolling back drops the current deployment from the history, so a second
            // rollback goes further back.
            history.pop();
        } else {
            history.push(target.clone());
        }
        next.finish(true, vec![change("Stage", &stage_key, &format!("rolled back to {target}"))], Vec::new())
    }
}

/// A new API key value: 40 characters from the SHA-256 of the name, the time and process
/// entropy. Shown once, stored hashed.
fn generate_key(name: &str, now_ms: u64) -> String {
    let mut entropy = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut entropy);
    }
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(now_ms.to_le_bytes());
    h.update(entropy);
    h.finalize().iter().take(20).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> Manifest {
        manifest::parse("m.yaml", text).unwrap()
    }

    const API_V1: &str =
        "kind: Api\nname: a\nroutes:\n  GET /x: { integration: { type: MOCK, response: { body: v1 } } }\n";
    const API_V2: &str =
        "kind: Api\nname: a\nroutes:\n  GET /x: { integration: { type: MOCK, response: { body: v2 } } }\n";

    fn body_served(state: &State, stage: &str) -> String {
        let t = state.compile().unwrap();
        let s = t.stages.iter().find(|s| s.name == stage).unwrap();
        match &s.routes.routes[0].integration {
            proto::table::Integration::Mock(m) => String::from_utf8(m.body.clone()).unwrap(),
            _ => panic!("not mock"),
        }
    }

    fn api(version: usize) -> String {
        API_V1.replace("v1", &format!("v{version}"))
    }

    #[test]
    fn history_and_deployments_stay_bounded_however_often_an_api_changes() {
        let mut state = State { history_limit: 3, ..State::default() };
        state = state
            .apply(&manifest(&format!("{}---\nkind: Stage\napi: a\nname: s\n", api(0))), 0)
            .unwrap()
            .state;
        let first = state.stage_history["a/s"][0].clone();
        let mut sizes = Vec::new();
        for v in 1..=30 {
            state = state.apply(&manifest(&api(v)), v as u64).unwrap().state;
            sizes.push(serde_json::to_vec(&state).unwrap().len());
        }
        assert_eq!(state.stage_history["a/s"].len(), 3);
        assert_eq!(state.deployments.len(), 3, "deployments no history names are dropped");
        assert_eq!(body_served(&state, "s"), "v30");
        assert!(sizes[29] < sizes[5] + 64, "the stored state stops growing: {sizes:?}");
        let refused = state.rollback("a", "s", Some(&first));
        assert!(
            matches!(&refused, Err(Refusal::NotFound(m)) if m.contains("keeps its last 3 deployments")),
            "{:?}",
            refused.err()
        );
        // A canary keeps the deployment it names, even once out of the history.
        let canary_id = state.stage_history["a/s"][0].clone();
        let canary =
            format!("kind: Stage\napi: a\nname: s\ncanary: {{ deployment: {canary_id}, percent: 10 }}\n");
        state = state.apply(&manifest(&canary), 40).unwrap().state;
        for v in 41..=45 {
            state = state.apply(&manifest(&api(v)), v as u64).unwrap().state;
        }
        assert!(state.deployments.contains_key(&canary_id));
        assert_eq!(state.deployments.len(), 4);
    }

    #[test]
    fn stages_deploy_on_creation_and_follow_their_api_only_with_auto_deploy() {
        let stages = "---\nkind: Stage\napi: a\nname: auto\n---\nkind: Stage\napi: a\nname: manual\nautoDeploy: false\n";
        let s0 = State::default();
        let s1 = s0.apply(&manifest(&format!("{API_V1}{stages}")), 1).unwrap().state;
        assert_eq!(s1.version, 1);
        assert_eq!((body_served(&s1, "auto"), body_served(&s1, "manual")), ("v1".into(), "v1".into()));
        let out = s1.apply(&manifest(API_V2), 2).unwrap();
        let s2 = out.state;
        assert_eq!(s2.version, 2);
        assert_eq!((body_served(&s2, "auto"), body_served(&s2, "manual")), ("v2".into(), "v1".into()));
        let s3 = s2.deploy("a", "manual", "release", 3).unwrap().state;
        assert_eq!(body_served(&s3, "manual"), "v2");
        let s4 = s3.rollback("a", "manual", None).unwrap().state;
        assert_eq!(body_served(&s4, "manual"), "v1");
        assert!(s4.rollback("a", "manual", None).is_err(), "no earlier deployment left");
        // Re-applying the same thing changes nothing and keeps the version.
        let same = s2.apply(&manifest(API_V2), 9).unwrap();
        assert_eq!(same.state.version, 2);
        assert!(same.changes.iter().all(|c| c.action == "unchanged"));
        // The same definition is the same deployment.
        assert_eq!(s2.stage_history["a/auto"].len(), 2);
        let back = s2.apply(&manifest(API_V1), 10).unwrap().state;
        assert_eq!(back.stage_history["a/auto"].last(), back.stage_history["a/auto"].first());
        assert_eq!(back.deployments.len(), 2);
    }

    #[test]
    fn a_canary_serves_another_deployment_with_its_own_variables() {
        let s1 = State::default()
            .apply(&manifest(&format!("{API_V1}---\nkind: Stage\napi: a\nname: s\n")), 1)
            .unwrap()
            .state;
        let v1 = s1.stage_history["a/s"][0].clone();
        let stage = format!("---\nkind: Stage\napi: a\nname: s\nvariables: {{ x: main }}\ncanary: {{ deployment: {v1}, percent: 12.5, variables: {{ x: canary }} }}\n");
        let out = s1.apply(&manifest(&format!("{API_V2}{stage}")), 2).unwrap();
        let s = &out.table.stages[0];
        let canary = s.canary.as_ref().unwrap();
        assert_eq!(canary.percent_per_million, 125_000);
        let body = |set: &proto::table::RouteSet| match &set.routes[0].integration {
            proto::table::Integration::Mock(m) => String::from_utf8(m.body.clone()).unwrap(),
            _ => panic!("not mock"),
        };
        assert_eq!((body(&s.routes), body(&canary.routes)), ("v2".into(), "v1".into()));
        assert_eq!(canary.variables.iter().find(|v| v.name == "x").unwrap().value, "canary");
        let bad = "---\nkind: Stage\napi: a\nname: s\ncanary: { deployment: nope, percent: 5 }\n";
        match out.state.apply(&manifest(bad), 3) {
            Err(Refusal::Invalid(e)) => assert_eq!(
                e[0].to_string(),
                "m.yaml:5: canary.deployment: 'nope' is not a deployment of Api 'a' (see controlctl deployments; offline compile has none)"
            ),
            _ => panic!("accepted"),
        }
    }

    #[test]
    fn refusals() {
        let s1 = State::default()
            .apply(&manifest(&format!("{API_V1}---\nkind: Stage\napi: a\nname: s\n")), 1)
            .unwrap()
            .state;
        assert!(matches!(s1.delete("Api", "a"), Err(Refusal::Conflict(_))));
        assert!(matches!(s1.delete("Domain", "nope"), Err(Refusal::NotFound(_))));
        let s2 = s1.delete("Stage", "a/s").unwrap().state;
        assert!(s2.delete("Api", "a").is_ok());
        let bad = manifest("kind: Stage\napi: missing\nname: s\n");
        match State::default().apply(&bad, 1) {
            Err(Refusal::Invalid(e)) => assert_eq!(e[0].to_string(), "m.yaml:2: api: no Api named 'missing'"),
            _ => panic!("accepted"),
        }
    }

    #[test]
    fn api_keys_are_stored_hashed() {
        let m = manifest(
            "kind: ApiKey\nname: k\nvalue: secret-value-of-twenty-chars\n---\nkind: ApiKey\nname: g\n",
        );
        let out = State::default().apply(&m, 1).unwrap();
        let json = serde_json::to_string(&out.state).unwrap();
        assert!(!json.contains("secret-value"));
        assert_eq!(out.generated_keys.len(), 1);
        assert!(!json.contains(&out.generated_keys[0].1));
        // Re-applying a key without a value keeps the stored one and shows nothing.
        let again = out.state.apply(&manifest("kind: ApiKey\nname: g\n"), 2).unwrap();
        assert!(again.generated_keys.is_empty());
        // The stored form (its hash) re-applies unchanged: how `keys disable` rewrites a key.
        let Some(Document::ApiKey(k)) = again.state.objects.get("ApiKey/k").map(|o| &o.doc) else {
            panic!("stored")
        };
        let doc = format!("kind: ApiKey\nname: k\nvalue: {}\n", k.value.clone().unwrap());
        let same = again.state.apply(&manifest(&doc), 3).unwrap();
        assert_eq!(same.changes[0].action, "unchanged");
        // Too short to be an AWS key: refused, located.
        match State::default().apply(&manifest("kind: ApiKey\nname: s\nvalue: short\n"), 1) {
            Err(Refusal::Invalid(errors)) => assert_eq!(errors[0].line, Some(3)),
            _ => panic!("accepted a 5-character key"),
        }
    }
}
