//! The record phase, once the response is written: the method's metrics on the shard's
//! recorder, and the stage's access log line into the shard's buffer. Nothing shared, no lock.

use crate::exchange::Exchange;
use crate::observe::access_log::format::{self, Line};
use crate::observe::metrics::recorder::Labels;

pub fn run(x: &Exchange<'_>, latency_us: u64) {
    let shard = x.shard;
    if let Some(routed) = x.routed.as_ref() {
        let (stage, route) = (routed.stage, routed.route);
        let labels = || Labels::new(&stage.api, &stage.name, &route.key);
        shard.metrics.borrow_mut().record(route.id.to_native(), labels, x.common.trail, latency_us);
    }
    write_access_log(x, latency_us);
}

/// Formats the request's line into the shard's buffer for its stage's log file, if the
/// request reached a stage that has one.
fn write_access_log(x: &Exchange<'_>, latency_us: u64) {
    let Some(stage) = x.stage else { return };
    let Some(log) = stage.access_log.as_ref() else { return };
    let (shard, request, common) = (x.shard, x.request, x.common);
    let head = request.head;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let request_time = shard.request_time(now.as_secs() as i64);
    let trail = common.trail;
    let route = x.routed.as_ref().map(|r| r.route);
    let line = Line {
        request_id: request.request_id,
        source_ip: request.peer.ip(),
        user_agent: head.headers.get("user-agent"),
        api_key_id: x.identity.api_key.map(|k| x.table.get().api_keys[k as usize].name.as_str()),
        method: head.method,
        path: head.path(),
        resource_path: route.map(|r| r.resource.as_str()),
        route_key: route.map(|r| r.key.as_str()),
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
        client_cert: request.tls.and_then(|t| t.client_cert.as_ref()),
    };
    shard.access_log.borrow_mut().line(&log.destination, |out| format::render(&log.format, &line, out));
}
