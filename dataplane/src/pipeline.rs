//! The request pipeline: the fixed order of phases every request goes through.
//!
//! 1. route: host and base path pick the stage, a canary roll picks the deployment, the path
//!    and method pick the route;
//! 2. API key: a route with `apiKeyRequired` needs an `x-api-key` whose usage plan covers the
//!    stage, else 403;
//! 3. throttle: the key's per-method and plan buckets, then method, stage and account (all
//!    shared by every shard), 429 when one is empty;
//! 4. quota: the key's plan quota for this period, 429 Limit Exceeded when used up;
//! 5. cache: an HTTP method with cache settings is answered from the stage cache when it can
//!    (`Cache-Control: max-age=0` refreshes, if the client may invalidate);
//! 6. integration: MOCK answers from the table, HTTP and HTTP_PROXY call the upstream (a cache
//!    miss stores what it gets);
//! 7. response: written to the connection's output buffer with the common headers;
//! 8. metrics: the method's counts and latencies, recorded on the shard.
//!
//! Phases added later (authorizers, validation) slot in between
//! and keep this order; each failure is a [`Kind`] answered by [`gateway_response`].

use crate::access_log::format::Line;
use crate::gateway_response::{self, Kind};
use crate::http1::head::Head;
use crate::http1::response::Common;
use crate::loaded_table::LoadedTable;
use crate::metrics::recorder::Labels;
use crate::shard::Shard;
use crate::stats::ShardStats;
use crate::trace_context::TraceContext;
use crate::trail::Trail;
use crate::upstream::UpstreamBuffers;
use proto::lookup::{self, Captures};
use proto::table::{ArchivedIntegration, ArchivedProtocol, ArchivedRoute, ArchivedStage, Method};
use std::cell::OnceCell;
use std::net::SocketAddr;
use std::time::Instant;

/// Everything about the request a phase may need, borrowed from the connection.
pub struct Request<'r, 'b, 'h> {
    pub head: &'r Head<'b, 'h>,
    pub body: &'r [u8],
    pub peer: SocketAddr,
    pub request_id: &'r [u8; 36],
    /// The tracing headers, made when first needed (forwarding, logging).
    trace: OnceCell<TraceContext>,
}

impl Request<'_, '_, '_> {
    pub fn trace(&self, shard: &Shard) -> &TraceContext {
        self.trace
            .get_or_init(|| TraceContext::of(self.head, || shard.random(), crate::quota::unix_now_s() as u64))
    }
}

pub async fn handle(
    shard: &Shard,
    head: &Head<'_, '_>,
    body: &[u8],
    peer: SocketAddr,
    keep_alive: bool,
    out: &mut Vec<u8>,
    upstream: &mut UpstreamBuffers,
) {
    let started = Instant::now();
    let request_id = shard.ids.borrow_mut().next();
    let date = *shard.date.borrow().get();
    let trail = Trail::default();
    let common = Common {
        request_id: &request_id,
        date: &date,
        keep_alive,
        http10: head.minor_version == 0,
        head_request: head.method == "HEAD",
        trail: &trail,
    };
    // The request runs on this table from start to finish.
    let Some(table) = shard.current_table() else {
        return gateway_response::write(out, Kind::NotReady, &common);
    };
    let request = Request { head, body, peer, request_id: &request_id, trace: OnceCell::new() };
    let answered = answer(shard, &table, &request, &common, out, upstream).await;
    let latency_us = started.elapsed().as_micros() as u64;
    if let (Some(stage), Some(route)) = (answered.stage, answered.route) {
        let labels = || Labels::new(&stage.api, &stage.name, &route.key);
        shard.metrics.borrow_mut().record(route.id.to_native(), labels, &trail, latency_us);
    }
    write_access_log(shard, &table, &answered, &request, &common, latency_us);
}

/// Formats the request's line into the shard's buffer for its stage's log file, if the
/// request reached a stage that has one.
fn write_access_log(
    shard: &Shard,
    table: &LoadedTable,
    answered: &Answered<'_>,
    request: &Request<'_, '_, '_>,
    common: &Common<'_>,
    latency_us: u64,
) {
    let Some(stage) = answered.stage else { return };
    let Some(log) = stage.access_log.as_ref() else { return };
    let head = request.head;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let request_time = shard.request_time(now.as_secs() as i64);
    let trail = common.trail;
    let line = Line {
        request_id: request.request_id,
        source_ip: request.peer.ip(),
        user_agent: head.headers.get("user-agent"),
        api_key_id: answered.key.map(|k| table.get().api_keys[k as usize].name.as_str()),
        method: head.method,
        path: head.path(),
        resource_path: answered.route.map(|r| r.resource.as_str()),
        route_key: answered.route.map(|r| r.key.as_str()),
        stage: &stage.name,
        api: &stage.api,
        domain: head.host,
        http10: common.http10,
        status: trail.status.get(),
        response_length: trail.body_len.get(),
        latency_ms: latency_us / 1000,
        integration: trail.integration_us.get().map(|us| (us / 1000, trail.integration_status.get())),
        request_time: &request_time,
        request_time_epoch_ms: now.as_millis() as u64,
        xray_trace_id: request.trace(shard).xray(head),
        error: trail.error.get(),
    };
    shard
        .access_log
        .borrow_mut()
        .line(&log.destination, |out| crate::access_log::format::render(&log.format, &line, out));
}

/// What the request reached: the stage, route and API key, when it got that far.
#[derive(Default)]
struct Answered<'t> {
    stage: Option<&'t ArchivedStage>,
    route: Option<&'t ArchivedRoute>,
    key: Option<u32>,
}

/// Runs the phases and writes the response.
async fn answer<'t>(
    shard: &Shard,
    table: &'t LoadedTable,
    request: &Request<'_, '_, '_>,
    common: &Common<'_>,
    out: &mut Vec<u8>,
    upstream: &mut UpstreamBuffers,
) -> Answered<'t> {
    let head = request.head;
    let mut answered = Answered::default();
    // Dot segments are resolved before routing (see `http1::path`).
    let Ok(path) = crate::http1::path::normalize(head.path()) else {
        gateway_response::write(out, Kind::BadRequest, common);
        return answered;
    };
    let path = &*path;
    let Some(stage_match) = lookup::find_stage(table.get(), head.host.unwrap_or(""), path) else {
        gateway_response::write(out, Kind::UnknownDomain, common);
        return answered;
    };
    let stage = &table.get().stages[stage_match.stage as usize];
    answered.stage = Some(stage);
    // A canary takes its share of requests, each chosen at random.
    let routes = match stage.canary.as_ref() {
        Some(canary) if shard.roll_per_million() < canary.percent_per_million.to_native() => &canary.routes,
        _ => &stage.routes,
    };
    let mut captures = Captures::default();
    let method = Method::from_bytes(head.method.as_bytes());
    let Some(route_index) = lookup::find_route(routes, method, stage_match.path, &mut captures) else {
        let kind = match stage.protocol {
            ArchivedProtocol::Http => Kind::NotFound,
            _ => Kind::MissingAuthenticationToken,
        };
        gateway_response::write(out, kind, common);
        return answered;
    };
    let route = &routes.routes[route_index as usize];
    answered.route = Some(route);
    let contained = (0..route.params.len())
        .all(|i| captures.get(stage_match.path, i).is_none_or(crate::http1::path::parameter_is_contained));
    if !contained {
        gateway_response::write(out, Kind::BadRequest, common);
        return answered;
    }
    // AWS applies usage plans to API-key methods only.
    let key = match route.api_key_required {
        false => None,
        true => match table.authorized_key(head.headers.get("x-api-key"), stage_match.stage) {
            Some(index) => Some(index),
            None => {
                ShardStats::add(&shard.stats.forbidden, 1);
                gateway_response::write(out, Kind::InvalidApiKey, common);
                return answered;
            }
        },
    };
    answered.key = key;
    // Throttles, in AWS order: the client's (per method, then per plan), method, stage,
    // account.
    let key_entry = key.map(|index| &table.get().api_keys[index as usize]);
    let limits = [
        key_entry.and_then(|k| lookup::key_method_limit(k, route.id.to_native())),
        key_entry.and_then(|k| k.limit.as_ref().map(|l| l.to_native())),
        route.limit.as_ref().map(|l| l.to_native()),
        stage.limit.as_ref().map(|l| l.to_native()),
        table.get().account_limit.as_ref().map(|l| l.to_native()),
    ];
    if !table.admit(&limits) {
        ShardStats::add(&shard.stats.throttled, 1);
        common.trail.throttled.set(true);
        gateway_response::write(out, Kind::Throttled, common);
        return answered;
    }
    // The quota counts admitted requests only: after the throttles, so a throttled request
    // uses none of it.
    if let Some(index) = key {
        if !table.take_quota(index, crate::quota::unix_now_s()) {
            ShardStats::add(&shard.stats.quota_exceeded, 1);
            common.trail.throttled.set(true);
            gateway_response::write(out, Kind::QuotaExceeded, common);
            return answered;
        }
    }
    match &route.integration {
        ArchivedIntegration::Mock(mock) => crate::mock::respond(mock, out, common),
        ArchivedIntegration::Http(http) => {
            let call = crate::proxy::Call {
                shard,
                table,
                integration: http,
                request,
                route_path: stage_match.path,
                captures: &captures,
                trail: common.trail,
            };
            // Canary routes carry no cache settings (AWS: the canary does not use the stage
            // cache by default).
            let cache = route.cache.as_ref().zip(table.caches[stage_match.stage as usize].as_ref());
            let Some((settings, store)) = cache.filter(|(settings, _)| crate::cache::applies(settings, head))
            else {
                // Boxed: the upstream exchange's state is large, and keeping it inline would
                // make every connection's future (idle ones included) that much bigger. One
                // small allocation per proxied request buys ~half the memory of an idle
                // connection.
                Box::pin(crate::proxy::respond(call, out, upstream, common)).await;
                return answered;
            };
            let may_invalidate = || {
                let key =
                    key.or_else(|| table.authorized_key(head.headers.get("x-api-key"), stage_match.stage));
                key.is_some_and(|k| table.get().api_keys[k as usize].invalidate_cache)
            };
            match crate::cache::mode(settings, head, may_invalidate) {
                Ok(mode) => {
                    let cached = crate::cache::Cached { store, settings, mode };
                    Box::pin(crate::cache::respond(call, cached, out, upstream, common)).await;
                }
                Err(kind) => gateway_response::write(out, kind, common),
            }
        }
    }
    answered
}
