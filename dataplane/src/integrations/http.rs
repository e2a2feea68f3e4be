//! The HTTP and HTTP_PROXY integrations: build the upstream request from the route's URI
//! template, send it over the shard's pool, and map the upstream response back.

use crate::exchange::{Exchange, Routed};
use crate::gateway_error::Kind;
use crate::http1::fields::{format_ip, is_hop_by_hop, named_by_connection, trim_ows};
use crate::respond;
use crate::upstream::client::{self, Body, Client, UpstreamBuffers, UpstreamError};
use proto::table::{ArchivedHttpIntegration, ArchivedUriPart};
use std::time::Duration;

/// One call of an HTTP integration: the exchange it serves and the route's settings.
pub struct Call<'c, 'x> {
    pub exchange: &'c Exchange<'x>,
    pub routed: &'c Routed<'x>,
    pub integration: &'c ArchivedHttpIntegration,
}

/// Sends the request upstream and reads the response into `bufs`, within the integration's
/// timeout; a failure is the gateway response to give instead.
pub async fn fetch(call: &Call<'_, '_>, bufs: &mut UpstreamBuffers) -> Result<client::Response, Kind> {
    let integration = call.integration;
    let x = call.exchange;
    let upstream_index = integration.upstream.to_native() as usize;
    let Some(addr) = x.table.upstream_addrs[upstream_index] else {
        return Err(Kind::IntegrationFailure);
    };
    let tls_config = &x.table.upstream_tls[upstream_index];
    let upstream_tls = x.table.get().upstreams[upstream_index].tls.as_ref();
    let secure = match (upstream_tls, tls_config) {
        (None, _) => None,
        (Some(tls), Some(config)) => Some(client::Secure { config, server_name: tls.server_name.as_str() }),
        // Settings this data plane could not load (logged when the table loaded).
        (Some(_), None) => return Err(Kind::IntegrationFailure),
    };
    // No upgrade over TLS: the relay takes plain upstream sockets only.
    let upgrade = secure.is_none() && tunnel_requested(call);
    build_request(call, &mut bufs.req, upgrade);
    if !bufs.settle(&x.shard.stats.memory) {
        x.shard.stats.memory.refuse();
        bufs.trim();
        return Err(Kind::Overloaded);
    }
    let timeout = timeout(integration);
    let connect_timeout = x.shard.settings.connect_timeout.min(timeout);
    let head_request = x.head().method == "HEAD" && integration.method.is_none();
    let upstream = Client { pool: &x.shard.upstreams, stats: &x.shard.stats };
    let asks = client::Asks { head_request, upgrade };
    let exchange = client::exchange(upstream, addr, secure, bufs, asks, connect_timeout);
    let started = std::time::Instant::now();
    let result = monoio::time::timeout(timeout, exchange).await;
    let trail = x.common.trail;
    trail.integration_us.set(Some(started.elapsed().as_micros() as u64));
    match result {
        Ok(Ok(response)) => {
            trail.integration_status.set(response.status);
            Ok(response)
        }
        Ok(Err(UpstreamError::Overloaded)) => {
            bufs.trim();
            log_failure(call, 503, &UpstreamError::Overloaded);
            Err(Kind::Overloaded)
        }
        Ok(Err(error)) => {
            bufs.trim();
            log_failure(call, 502, &error);
            Err(Kind::IntegrationFailure)
        }
        Err(_elapsed) => {
            // The exchange was dropped mid-way; its connection is gone with it.
            bufs.trim();
            log_failure(call, 504, &format_args!("no response within {timeout:?}"));
            Err(Kind::IntegrationTimeout)
        }
    }
}

/// Says why a request got a 502, 503 or 504: at most one line a second per shard, with a count of
/// the lines held back.
fn log_failure(call: &Call<'_, '_>, status: u16, cause: &dyn std::fmt::Display) {
    let x = call.exchange;
    let Some(held_back) = x.shard.integration_errors.allow(x.shard.clock.now_ms()) else { return };
    let (stage, route) = (call.routed.stage, call.routed.route);
    let upstream = &x.table.get().upstreams[call.integration.upstream.to_native() as usize];
    let more = if held_back > 0 { format!(" ({held_back} more since the last line)") } else { String::new() };
    log::warn!(
        "{}/{} {}: {status} from upstream {}:{}: {cause}{more}",
        stage.api,
        stage.name,
        route.key,
        upstream.host,
        upstream.port
    );
}

/// True when the request asks to become a WebSocket and may: the data plane relays upgrades
/// (`--proxy-websocket`), the integration passes requests through (HTTP_PROXY, the client's
/// method), and the request is an HTTP/1.1 `GET` without a body asking for `Upgrade:
/// websocket` in its `Connection` header. Any other protocol (`h2c` included, a known way to
/// smuggle requests past a proxy) is never relayed.
fn tunnel_requested(call: &Call<'_, '_>) -> bool {
    let x = call.exchange;
    let head = x.head();
    x.shard.settings.proxy_websocket
        && call.integration.proxy
        && call.integration.method.is_none()
        && head.method == "GET"
        && head.minor_version == 1
        && x.request.body.is_empty()
        && named_by_connection(head.headers.get("connection"), b"upgrade")
        && head.headers.get("upgrade").is_some_and(|p| trim_ows(p).eq_ignore_ascii_case(b"websocket"))
}

/// How long the integration may take.
pub fn timeout(integration: &ArchivedHttpIntegration) -> Duration {
    Duration::from_millis(u64::from(integration.timeout_ms.to_native()))
}

/// Encodes the upstream request into `req`; with `upgrade`, it asks the upstream to switch to
/// WebSocket (the client's own `Connection` and `Upgrade` are hop-by-hop and never copied).
fn build_request(call: &Call<'_, '_>, req: &mut Vec<u8>, upgrade: bool) {
    let x = call.exchange;
    let head = x.head();
    let integration = call.integration;
    req.clear();
    let method = match integration.method.as_ref() {
        Some(m) => m.to_native().as_str(),
        None => head.method,
    };
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    let mut template_has_query = false;
    for part in integration.path.iter() {
        match part {
            ArchivedUriPart::Literal(text) => {
                template_has_query |= text.contains('?');
                req.extend_from_slice(text.as_bytes());
            }
            ArchivedUriPart::Param(i) => {
                let routed = call.routed;
                let value = routed.captures.get(routed.route_path, i.to_native() as usize).unwrap_or("");
                req.extend_from_slice(value.as_bytes());
            }
        }
    }
    if let Some(query) = head.query().filter(|q| !q.is_empty()) {
        req.push(if template_has_query { b'&' } else { b'?' });
        req.extend_from_slice(query.as_bytes());
    }
    req.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    let upstream = &x.table.get().upstreams[integration.upstream.to_native() as usize];
    req.extend_from_slice(upstream.host.as_bytes());
    let port = upstream.port.to_native();
    let mut digits = itoa::Buffer::new();
    let default_port = if upstream.tls.is_some() { 443 } else { 80 };
    if port != default_port {
        req.push(b':');
        req.extend_from_slice(digits.format(port).as_bytes());
    }
    req.extend_from_slice(b"\r\n");

    let connection = head.headers.get("connection");
    let trace = x.request.trace(x.shard);
    let mut forwarded_for: Option<&[u8]> = None;
    for (name, value) in head.headers.iter() {
        let name = name.as_bytes();
        let replaced_trace = trace.traceparent.is_some() && name.eq_ignore_ascii_case(b"traceparent");
        if replaced_trace
            || is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"host")
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-forwarded-port")
            // The gateway sends its own; a client's would reach the backend beside it.
            || name.eq_ignore_ascii_case(b"x-amzn-requestid")
            || named_by_connection(connection, name)
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            forwarded_for = Some(value);
            continue;
        }
        respond::header(req, name, value);
    }
    req.extend_from_slice(b"x-forwarded-for: ");
    if let Some(prior) = forwarded_for {
        req.extend_from_slice(prior);
        req.extend_from_slice(b", ");
    }
    let mut ip = [0u8; 64];
    req.extend_from_slice(format_ip(&x.request.peer.ip(), &mut ip));
    let (proto, port) = match x.request.tls {
        Some(_) => (&b"https"[..], x.shard.tls_listen_port),
        None => (&b"http"[..], x.shard.listen_port),
    };
    req.extend_from_slice(b"\r\nx-forwarded-proto: ");
    req.extend_from_slice(proto);
    req.extend_from_slice(b"\r\nx-forwarded-port: ");
    req.extend_from_slice(digits.format(port).as_bytes());
    req.extend_from_slice(b"\r\nx-amzn-requestid: ");
    req.extend_from_slice(x.request.request_id);
    req.extend_from_slice(b"\r\n");
    if upgrade {
        req.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n");
    }
    if let Some(traceparent) = &trace.traceparent {
        respond::header(req, b"traceparent", traceparent);
    }
    if let Some(xray) = &trace.xray {
        respond::header(req, b"x-amzn-trace-id", xray);
    }
    let body = x.request.body;
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.extend_from_slice(b"content-length: ");
        req.extend_from_slice(digits.format(body.len()).as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(body);
}

/// The upstream response's body.
pub fn body<'b>(response: &client::Response, bufs: &'b UpstreamBuffers) -> &'b [u8] {
    match response.body {
        Body::Raw(start, end) => &bufs.resp[start..end],
        Body::Decoded => &bufs.body[..],
    }
}

/// The upstream's headers as the client gets them: without hop-by-hop ones and those the
/// gateway writes itself (`content-length`, `date`); its request id under a remapped name.
pub fn write_headers(bufs: &UpstreamBuffers, out: &mut Vec<u8>) {
    for i in 0..bufs.headers.len() {
        let (name, value) = bufs.header(i);
        if is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"date")
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-amzn-requestid") {
            // AWS keeps the backend's value under a remapped name.
            respond::header(out, b"x-amzn-Remapped-x-amzn-RequestId", value);
            continue;
        }
        respond::header(out, name, value);
    }
}
