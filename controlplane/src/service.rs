//! The gRPC `Control` service. Protobuf types stop here: requests are converted into
//! [`State`] operations, and results back into responses.
//!
//! Every change runs under one lock, in order: compute the next state (which compiles and
//! verifies the table), store it durably, then publish the table to every watching data
//! plane. A change is acknowledged only after it is stored.

use crate::auth::{Action, Tokens};
use crate::compile::usage_plans::quota_rule;
use crate::manifest::{self, Manifest, ManifestError};
use crate::state::{Change, Outcome, Refusal, State};
use crate::store::Store;
use crate::usage::{self, UsageStore};
use proto::grpc;
use proto::grpc::control_server::Control;
use proto::quota::Rule;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

/// The table every data plane should serve.
#[derive(Clone)]
pub struct Published {
    pub version: u64,
    pub bytes: Arc<Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
struct DataplaneInfo {
    peer: String,
    connected: bool,
    last_seen_ms: u64,
    shards: Vec<(u32, u64)>,
}

pub struct ControlService {
    store: Store,
    /// The current state. Changes are computed off this lock ([`ControlService::change`]) and
    /// stored under it, so a large apply never stalls reads, reports or other changes.
    state: tokio::sync::Mutex<Arc<State>>,
    published: watch::Sender<Published>,
    dataplanes: Arc<Mutex<BTreeMap<String, DataplaneInfo>>>,
    usage: Arc<Mutex<UsageStore>>,
    metrics: crate::metrics::MetricsStore,
    /// Who may call, checked first in every RPC.
    tokens: Arc<Tokens>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn to_changes(changes: &[Change]) -> Vec<grpc::Change> {
    changes
        .iter()
        .map(|c| grpc::Change { kind: c.kind.clone(), name: c.name.clone(), action: c.action.clone() })
        .collect()
}

fn to_field_errors(errors: &[ManifestError]) -> Vec<grpc::FieldError> {
    errors
        .iter()
        .map(|e| grpc::FieldError {
            file: e.file.clone(),
            line: e.line.unwrap_or(0) as u32,
            path: e.path.clone(),
            message: e.message.clone(),
        })
        .collect()
}

fn refusal_status(r: Refusal) -> Status {
    match r {
        Refusal::NotFound(m) => Status::not_found(m),
        Refusal::Conflict(m) => Status::failed_precondition(m),
        Refusal::Invalid(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Status::invalid_argument(lines.join("\n"))
        }
    }
}

const KINDS: [&str; 7] = ["Account", "Api", "Stage", "Domain", "Certificate", "UsagePlan", "ApiKey"];

/// Accepts `api`, `Api`, `apis`: kubectl-style kind names.
pub fn normalize_kind(kind: &str) -> Option<&'static str> {
    let k = kind.to_ascii_lowercase();
    let k = k.strip_suffix('s').unwrap_or(&k);
    let k = if k == "apikey" || k == "key" { "apikey" } else { k };
    KINDS.iter().copied().find(|c| c.to_ascii_lowercase() == k)
}

impl ControlService {
    /// Loads the stored state and compiles it; the first table is published at once. Each
    /// stage keeps its last `history_limit` deployments: a stored state with more (written
    /// with a larger limit) is compacted and stored again.
    pub fn open(store: Store, history_limit: usize, tokens: Arc<Tokens>) -> Result<ControlService, String> {
        let mut state = store.load().map_err(|e| format!("loading state: {e}"))?;
        state.history_limit = history_limit.max(1);
        let deployments = state.deployments.len();
        if state.prune() {
            store.save(&state).map_err(|e| format!("storing the compacted state: {e}"))?;
            log::info!(
                "compacted the state to the last {} deployments of each stage ({deployments} -> {} deployments)",
                state.history_limit,
                state.deployments.len()
            );
        }
        let table = state.compile().map_err(|errors| {
            let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            format!("the stored state does not compile:\n{}", lines.join("\n"))
        })?;
        let published = Published { version: state.version, bytes: Arc::new(proto::table::encode(&table)) };
        let (tx, _) = watch::channel(published);
        let usage = UsageStore::open(store.dir()).map_err(|e| format!("loading usage: {e}"))?;
        Ok(ControlService {
            tokens,
            usage: Arc::new(Mutex::new(usage)),
            metrics: crate::metrics::MetricsStore::default(),
            store,
            state: tokio::sync::Mutex::new(Arc::new(state)),
            published: tx,
            dataplanes: Arc::default(),
        })
    }

    pub fn version(&self) -> u64 {
        self.published.borrow().version
    }

    /// Runs a change (validate, compile: the slow part) on a blocking thread against the
    /// current state without holding the state lock, then stores it under the lock if no other
    /// change landed meanwhile; if one did, the change runs again on the newer state. With
    /// `dry_run`, nothing is stored. The outer error is a failure to store; the inner one, a
    /// refusal.
    async fn change<F>(&self, op: F, dry_run: bool) -> Result<Result<Outcome, Refusal>, Status>
    where
        F: Fn(&State) -> Result<Outcome, Refusal> + Send + Sync + 'static,
    {
        let op = Arc::new(op);
        loop {
            let base = self.state.lock().await.clone();
            let outcome = match self.compute(&op, &base).await? {
                Ok(outcome) if !dry_run => outcome,
                other => return Ok(other),
            };
            let mut state = self.state.lock().await;
            if state.version != base.version {
                continue;
            }
            self.commit(&mut state, &outcome)?;
            return Ok(Ok(outcome));
        }
    }

    /// A change that either lands or is refused with a status.
    async fn change_or_refuse<F>(&self, op: F) -> Result<Outcome, Status>
    where
        F: Fn(&State) -> Result<Outcome, Refusal> + Send + Sync + 'static,
    {
        self.change(op, false).await?.map_err(refusal_status)
    }

    /// Runs `op` on `state` on a blocking thread, so the runtime keeps serving meanwhile.
    async fn compute<F>(&self, op: &Arc<F>, state: &Arc<State>) -> Result<Result<Outcome, Refusal>, Status>
    where
        F: Fn(&State) -> Result<Outcome, Refusal> + Send + Sync + 'static,
    {
        let (op, state) = (op.clone(), state.clone());
        tokio::task::spawn_blocking(move || op(&state))
            .await
            .map_err(|e| Status::internal(format!("the change failed: {e}")))
    }

    /// Stores the outcome, then publishes its table. Holding `state` serializes changes.
    fn commit(&self, state: &mut Arc<State>, outcome: &Outcome) -> Result<(), Status> {
        if outcome.state == **state {
            return Ok(());
        }
        // A refusal, not an outage: nothing was acknowledged and the stored state is the old one
        // (the store replaces its file atomically), so controlctl exits 1 and says why.
        self.store
            .save(&outcome.state)
            .map_err(|e| Status::aborted(format!("not applied: storing it failed: {e}")))?;
        *state = Arc::new(outcome.state.clone());
        if outcome.state.version != self.published.borrow().version {
            let bytes = Arc::new(proto::table::encode(&outcome.table));
            self.published.send_replace(Published { version: outcome.state.version, bytes });
        }
        Ok(())
    }

    fn change_response(&self, outcome: &Outcome) -> grpc::ChangeResponse {
        grpc::ChangeResponse { version: outcome.state.version, changes: to_changes(&outcome.changes) }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<grpc::TableUpdate, Status>> + Send>>;

/// Marks a data plane disconnected when its stream is dropped.
struct ConnectedGuard {
    id: String,
    dataplanes: Arc<Mutex<BTreeMap<String, DataplaneInfo>>>,
}

impl Drop for ConnectedGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.dataplanes.lock() {
            if let Some(info) = map.get_mut(&self.id) {
                info.connected = false;
                log::info!("data plane {} ({}) disconnected", self.id, info.peer);
            }
        }
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn apply(&self, req: Request<grpc::ApplyRequest>) -> Result<Response<grpc::ApplyResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let dry_run = req.dry_run;
        // Parsing a large manifest takes long: on a blocking thread, so the runtime goes on
        // serving status, reports and data planes meanwhile.
        let parsed = tokio::task::spawn_blocking(move || {
            let mut parsed = Manifest::default();
            let mut errors = Vec::new();
            let mut complete = true;
            for file in &req.files {
                complete &= manifest::parse_into(&file.name, &file.content, &mut parsed, &mut errors);
            }
            let attachments = req.attachments.iter().map(|f| (f.name.clone(), f.content.clone())).collect();
            manifest::files::inline(&mut parsed, &attachments, &mut errors);
            match errors.is_empty() {
                true => Ok(parsed),
                false => Err(crate::with_compile_errors(&parsed, errors, complete)),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("parsing failed: {e}")))?;
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(errors) => {
                return Ok(Response::new(grpc::ApplyResponse {
                    version: 0,
                    changes: vec![],
                    errors: to_field_errors(&errors),
                }))
            }
        };
        let now = now_ms();
        let outcome = match self.change(move |state| state.apply(&parsed, now), dry_run).await? {
            Ok(outcome) => outcome,
            Err(Refusal::Invalid(errors)) => {
                return Ok(Response::new(grpc::ApplyResponse {
                    version: 0,
                    changes: vec![],
                    errors: to_field_errors(&errors),
                }))
            }
            Err(other) => return Err(refusal_status(other)),
        };
        if !dry_run {
            let changed = outcome.changes.iter().filter(|c| c.action != "unchanged").count();
            if changed > 0 {
                log::info!("applied version {}: {changed} change(s)", outcome.state.version);
            }
        }
        let mut changes = to_changes(&outcome.changes);
        for (name, value) in &outcome.generated_keys {
            // Shown once: only the hash is stored.
            changes.push(grpc::Change {
                kind: "ApiKey".into(),
                name: name.clone(),
                action: format!("generated value {value} (shown once)"),
            });
        }
        Ok(Response::new(grpc::ApplyResponse { version: outcome.state.version, changes, errors: vec![] }))
    }

    async fn get(&self, req: Request<grpc::GetRequest>) -> Result<Response<grpc::GetResponse>, Status> {
        self.tokens.authorize(&req, Action::Read)?;
        let req = req.into_inner();
        let kind = normalize_kind(&req.kind).ok_or_else(|| {
            Status::invalid_argument(format!("unknown kind '{}'; one of {}", req.kind, KINDS.join(", ")))
        })?;
        let state = self.state.lock().await;
        let objects: Vec<grpc::StoredObject> = state
            .objects
            .values()
            .filter(|o| o.doc.kind() == kind && (req.name.is_empty() || o.doc.name() == req.name))
            .map(|o| grpc::StoredObject {
                kind: kind.to_string(),
                name: o.doc.name(),
                json: doc_json(&o.doc),
                summary: o.doc.summary(),
            })
            .collect();
        if !req.name.is_empty() && objects.is_empty() {
            return Err(Status::not_found(format!("{kind} '{}' not found", req.name)));
        }
        Ok(Response::new(grpc::GetResponse { objects }))
    }

    async fn delete(
        &self,
        req: Request<grpc::DeleteRequest>,
    ) -> Result<Response<grpc::ChangeResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let kind = normalize_kind(&req.kind)
            .ok_or_else(|| Status::invalid_argument(format!("unknown kind '{}'", req.kind)))?;
        let outcome = self.change_or_refuse(move |state| state.delete(kind, &req.name)).await?;
        Ok(Response::new(self.change_response(&outcome)))
    }

    async fn deploy(
        &self,
        req: Request<grpc::DeployRequest>,
    ) -> Result<Response<grpc::ChangeResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let now = now_ms();
        let outcome = self
            .change_or_refuse(move |state| state.deploy(&req.api, &req.stage, &req.description, now))
            .await?;
        Ok(Response::new(self.change_response(&outcome)))
    }

    async fn rollback(
        &self,
        req: Request<grpc::RollbackRequest>,
    ) -> Result<Response<grpc::ChangeResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let outcome = self
            .change_or_refuse(move |state| {
                let to = (!req.to.is_empty()).then_some(req.to.as_str());
                state.rollback(&req.api, &req.stage, to)
            })
            .await?;
        Ok(Response::new(self.change_response(&outcome)))
    }

    async fn report_metrics(
        &self,
        req: Request<grpc::MetricsReport>,
    ) -> Result<Response<grpc::MetricsAck>, Status> {
        self.tokens.authorize(&req, Action::Dataplane)?;
        self.metrics.record(req.into_inner());
        Ok(Response::new(grpc::MetricsAck {}))
    }

    async fn get_metrics(
        &self,
        req: Request<grpc::GetMetricsRequest>,
    ) -> Result<Response<grpc::GetMetricsResponse>, Status> {
        self.tokens.authorize(&req, Action::Read)?;
        let req = req.into_inner();
        Ok(Response::new(self.metrics.summary(&req.api, &req.stage)))
    }

    async fn flush_cache(
        &self,
        req: Request<grpc::FlushCacheRequest>,
    ) -> Result<Response<grpc::ChangeResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let outcome = self.change_or_refuse(move |state| state.flush_cache(&req.api, &req.stage)).await?;
        Ok(Response::new(self.change_response(&outcome)))
    }

    async fn list_deployments(
        &self,
        req: Request<grpc::ListDeploymentsRequest>,
    ) -> Result<Response<grpc::ListDeploymentsResponse>, Status> {
        self.tokens.authorize(&req, Action::Read)?;
        let req = req.into_inner();
        let state = self.state.lock().await;
        let stage_key = format!("{}/{}", req.api, req.stage);
        let history = state
            .stage_history
            .get(&stage_key)
            .ok_or_else(|| Status::not_found(format!("Stage '{stage_key}' not found")))?;
        let current = history.last().cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let deployments = history
            .iter()
            .rev()
            .filter(|id| seen.insert((*id).clone()))
            .filter_map(|id| state.deployments.get(id))
            .map(|d| grpc::Deployment {
                id: d.id.clone(),
                api: d.api.clone(),
                created_at_ms: d.created_at_ms,
                description: d.description.clone(),
                current: d.id == current,
                routes: match &d.source.doc {
                    crate::state::Document::Api(a) => a.routes.len() as u32,
                    _ => 0,
                },
            })
            .collect();
        Ok(Response::new(grpc::ListDeploymentsResponse { deployments }))
    }

    async fn status(
        &self,
        _req: Request<grpc::StatusRequest>,
    ) -> Result<Response<grpc::StatusResponse>, Status> {
        self.tokens.authorize(&_req, Action::Read)?;
        let map = self.dataplanes.lock().map_err(|_| Status::internal("status lock poisoned"))?;
        let dataplanes = map
            .iter()
            .map(|(id, info)| grpc::DataplaneStatus {
                id: id.clone(),
                peer: info.peer.clone(),
                connected: info.connected,
                last_seen_ms: info.last_seen_ms,
                shards: info
                    .shards
                    .iter()
                    .map(|&(shard, version)| grpc::ShardStatus { shard, version })
                    .collect(),
            })
            .collect();
        Ok(Response::new(grpc::StatusResponse { version: self.version(), dataplanes }))
    }

    async fn create_token(
        &self,
        req: Request<grpc::CreateTokenRequest>,
    ) -> Result<Response<grpc::CreateTokenResponse>, Status> {
        let caller = self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let role = <crate::auth::Role as clap::ValueEnum>::from_str(&req.role, true).map_err(|_| {
            Status::invalid_argument(format!("unknown role '{}'; one of admin, viewer, dataplane", req.role))
        })?;
        let token = self.tokens.create(&req.name, role, now_ms())?;
        log::info!("token '{}' ({}) created by '{}'", req.name, role.name(), caller.name);
        Ok(Response::new(grpc::CreateTokenResponse { token }))
    }

    async fn list_tokens(
        &self,
        req: Request<grpc::ListTokensRequest>,
    ) -> Result<Response<grpc::ListTokensResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let tokens = self
            .tokens
            .list()
            .into_iter()
            .map(|t| grpc::TokenInfo { name: t.name, role: t.role.name().into(), created_ms: t.created_ms })
            .collect();
        Ok(Response::new(grpc::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        req: Request<grpc::RevokeTokenRequest>,
    ) -> Result<Response<grpc::RevokeTokenResponse>, Status> {
        let caller = self.tokens.authorize(&req, Action::Write)?;
        let name = req.into_inner().name;
        if !self.tokens.revoke(&name)? {
            return Err(Status::not_found(format!("no token named '{name}'")));
        }
        log::info!("token '{name}' revoked by '{}'", caller.name);
        Ok(Response::new(grpc::RevokeTokenResponse {}))
    }

    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<grpc::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        self.tokens.authorize(&req, Action::Dataplane)?;
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_default();
        let metadata = req.metadata().clone();
        let req = req.into_inner();
        if req.dataplane_id.is_empty() {
            return Err(Status::invalid_argument("dataplane_id is required"));
        }
        {
            let mut map = self.dataplanes.lock().map_err(|_| Status::internal("status lock poisoned"))?;
            let info = map.entry(req.dataplane_id.clone()).or_default();
            // Two data planes under one id would hide each other in `status` and in `--wait`:
            // the second is refused while the first is connected (a restarted one is let in
            // as soon as its old stream is gone).
            if info.connected {
                return Err(Status::already_exists(format!(
                    "a data plane with id '{}' is already connected from {}; give each its own --id",
                    req.dataplane_id, info.peer
                )));
            }
            log::info!(
                "data plane {} connected from {peer} with table version {}",
                req.dataplane_id,
                req.have_version
            );
            info.peer = peer;
            info.connected = true;
            info.last_seen_ms = now_ms();
            if info.shards.len() != req.shards as usize {
                info.shards = (0..req.shards).map(|s| (s, req.have_version)).collect();
            }
        }
        let guard = ConnectedGuard { id: req.dataplane_id, dataplanes: self.dataplanes.clone() };
        let (have, have_digest) = (req.have_version, req.have_digest);
        let tokens = self.tokens.clone();
        // Reconciled by content, not only by version: a data plane that serves this version
        // with other bytes (a table restored or altered on its disk) gets it again. A data
        // plane too old to send a digest is judged by version.
        let updates = tokio_stream::wrappers::WatchStream::new(self.published.subscribe())
            .filter(move |p| {
                let same_content = have_digest.is_empty()
                    || proto::table::stated_digest(&p.bytes).is_some_and(|d| d == have_digest.as_slice());
                p.version != have || !same_content
            })
            .map(move |p| {
                let _keep = &guard;
                // Checked again for every table: a token revoked while its stream is open gets
                // no further table, and the stream ends with the refusal.
                tokens.authorize_again(&metadata, Action::Dataplane)?;
                Ok(grpc::TableUpdate { version: p.version, table: p.bytes.as_ref().clone() })
            });
        Ok(Response::new(Box::pin(updates)))
    }

    async fn ack(&self, req: Request<grpc::AckRequest>) -> Result<Response<grpc::AckResponse>, Status> {
        self.tokens.authorize(&req, Action::Dataplane)?;
        let req = req.into_inner();
        let mut map = self.dataplanes.lock().map_err(|_| Status::internal("status lock poisoned"))?;
        let info = map.entry(req.dataplane_id).or_default();
        info.last_seen_ms = now_ms();
        info.shards = req.shards.iter().map(|s| (s.shard, s.version)).collect();
        Ok(Response::new(grpc::AckResponse {}))
    }

    async fn report_usage(
        &self,
        req: Request<grpc::UsageReport>,
    ) -> Result<Response<grpc::UsageTotals>, Status> {
        self.tokens.authorize(&req, Action::Dataplane)?;
        let req = req.into_inner();
        let entries = req
            .entries
            .into_iter()
            .map(|e| (e.key, e.plan, e.period_start, e.requests.max(0) as u64))
            .collect();
        let store = self.usage.clone();
        // The append is fsynced: off the async workers.
        let latest = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().map_err(|_| "usage lock poisoned".to_string())?;
            store.report(&req.instance, req.sequence, entries)?;
            Ok::<_, String>(store.latest())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(Status::unavailable)?;
        let entries = latest
            .into_iter()
            .map(|((key, plan, period_start), requests)| grpc::UsageEntry {
                key,
                plan,
                period_start,
                requests,
            })
            .collect();
        Ok(Response::new(grpc::UsageTotals { entries }))
    }

    async fn get_usage(
        &self,
        req: Request<grpc::GetUsageRequest>,
    ) -> Result<Response<grpc::GetUsageResponse>, Status> {
        self.tokens.authorize(&req, Action::Read)?;
        let req = req.into_inner();
        let keys = self.quota_keys(&req.name).await?;
        let store = self.usage.lock().map_err(|_| Status::internal("usage lock poisoned"))?;
        let to = if req.to == 0 { i64::MAX } else { req.to };
        let mut rows = Vec::new();
        for (key, plan, rule) in &keys {
            let current = rule.index(usage::now_s());
            let stored =
                store.periods().filter(|((k, p, _), _)| k == key && p == plan).map(|((_, _, s), _)| *s);
            let mut starts: Vec<i64> = stored.chain([rule.start(current)]).collect();
            starts.sort_unstable();
            starts.dedup();
            for start in starts {
                let index = rule.index(start);
                let end = rule.start(index + 1);
                if end <= req.from || start >= to {
                    continue;
                }
                rows.push(usage_row(key, plan, rule, index, store.counts(key, plan, start)));
            }
        }
        Ok(Response::new(grpc::GetUsageResponse { rows }))
    }

    async fn adjust_usage(
        &self,
        req: Request<grpc::AdjustUsageRequest>,
    ) -> Result<Response<grpc::GetUsageResponse>, Status> {
        self.tokens.authorize(&req, Action::Write)?;
        let req = req.into_inner();
        let keys = self.quota_keys(&req.key).await?;
        let Some((key, plan, rule)) = keys.into_iter().find(|(k, _, _)| *k == req.key) else {
            return Err(Status::failed_precondition(format!(
                "'{}' is not an API key whose usage plan has a quota",
                req.key
            )));
        };
        let store = self.usage.clone();
        let row = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().map_err(|_| "usage lock poisoned".to_string())?;
            let index = rule.index(usage::now_s());
            let start = rule.start(index);
            let mut delta = -(req.grant.min(i64::MAX as u64) as i64);
            if req.reset {
                delta -= store.counts(&key, &plan, start).effective();
            }
            store.adjust(&key, &plan, start, delta)?;
            Ok::<_, String>(usage_row(&key, &plan, &rule, index, store.counts(&key, &plan, start)))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::aborted(format!("not applied: {e}")))?;
        Ok(Response::new(grpc::GetUsageResponse { rows: vec![row] }))
    }
}

fn usage_row(key: &str, plan: &str, rule: &Rule, index: u64, counts: usage::Counts) -> grpc::UsageRow {
    let limit = rule.limit_in(index);
    grpc::UsageRow {
        key: key.to_string(),
        plan: plan.to_string(),
        period_start: rule.start(index),
        period_end: rule.start(index + 1),
        used: counts.used,
        adjustment: counts.adjustment,
        limit,
        remaining: limit as i64 - counts.effective(),
    }
}

impl ControlService {
    /// `(key, plan, quota)` of the key named `name`, or of every key of the plan named `name`,
    /// for keys whose plan has a quota.
    async fn quota_keys(&self, name: &str) -> Result<Vec<(String, String, Rule)>, Status> {
        use crate::state::Document;
        let state = self.state.lock().await;
        let docs = || state.objects.values().map(|o| &o.doc);
        let plan_rule = |plan: &str| {
            docs().find_map(|d| match d {
                Document::UsagePlan(p) if p.name == plan => p.quota.as_ref().and_then(|q| quota_rule(q).ok()),
                _ => None,
            })
        };
        let is_plan = docs().any(|d| matches!(d, Document::UsagePlan(p) if p.name == name));
        let is_key = docs().any(|d| matches!(d, Document::ApiKey(k) if k.name == name));
        if !is_plan && !is_key {
            return Err(Status::not_found(format!("no ApiKey or UsagePlan named '{name}'")));
        }
        Ok(docs()
            .filter_map(|d| match d {
                Document::ApiKey(k) if k.name == name || (!is_key && k.plan.as_deref() == Some(name)) => {
                    let plan = k.plan.clone()?;
                    Some((k.name.clone(), plan.clone(), plan_rule(&plan)?))
                }
                _ => None,
            })
            .collect())
    }
}

fn doc_json(doc: &crate::state::Document) -> String {
    use crate::state::Document;
    let value = match doc {
        Document::Account(a) => serde_json::to_value(a),
        Document::Api(a) => serde_json::to_value(a),
        Document::Stage(s) => serde_json::to_value(s),
        Document::Domain(d) => serde_json::to_value(d),
        // The private key goes to data planes only, never to a reader.
        Document::Certificate(c) => serde_json::to_value(c.redacted()),
        Document::UsagePlan(p) => serde_json::to_value(p),
        Document::ApiKey(k) => serde_json::to_value(k),
    };
    value.map(|v| v.to_string()).unwrap_or_default()
}
