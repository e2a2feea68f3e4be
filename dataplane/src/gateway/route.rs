//! The route phase: host and base path pick the stage, a canary roll picks the deployment, the
//! path and method pick the route. Unknown routes are answered as AWS does (REST: 403 Missing
//! Authentication Token; HTTP: 404), and path parameters must stay inside their prefix.

use super::Flow;
use crate::exchange::{Exchange, Routed};
use crate::gateway_error::Kind;
use crate::http1::head::Head;
use crate::http1::path::{self, AboveRoot};
use crate::respond;
use proto::lookup::{self, Captures};
use proto::table::{ArchivedDomain, ArchivedProtocol, ArchivedTlsPolicy, Method};
use std::borrow::Cow;

/// The request's path with its dot segments resolved (see [`crate::http1::path`]), before any
/// routing.
pub fn normalized_path<'b>(head: &Head<'b, '_>) -> Result<Cow<'b, str>, AboveRoot> {
    path::normalize(head.path())
}

/// A domain with mutual TLS or the TLS_1_3 policy serves only requests on connections whose
/// handshake was made with its own settings: otherwise a client could shake hands for another
/// name (or over plain HTTP) and name this domain in `Host`, skipping the client certificate.
fn tls_settings_met(x: &Exchange<'_>, domain: &ArchivedDomain) -> bool {
    let Some(tls) = domain.tls.as_ref() else { return true };
    let mutual = !tls.truststore.is_empty();
    if !mutual && tls.policy != ArchivedTlsPolicy::Tls13 {
        return true;
    }
    x.request.tls.is_some_and(|t| &*t.site == domain.host.as_str() && (!mutual || t.client_cert.is_some()))
}

pub fn run<'x>(x: &mut Exchange<'x>, path: &'x str, out: &mut Vec<u8>) -> Flow {
    let head = x.request.head;
    let table = x.table.get();
    let Some(stage_match) = lookup::find_stage(table, head.host.unwrap_or(""), path) else {
        respond::error(out, Kind::UnknownDomain, x.common);
        return Flow::Answered;
    };
    if let Some(domain) = stage_match.domain.map(|i| &table.domains[i as usize]) {
        if !tls_settings_met(x, domain) {
            // As for a host the gateway does not serve: AWS's 403 Forbidden.
            respond::error(out, Kind::UnknownDomain, x.common);
            return Flow::Answered;
        }
    }
    let stage = &table.stages[stage_match.stage as usize];
    x.stage = Some(stage);
    // A canary takes its share of requests, each chosen at random.
    let routes = match stage.canary.as_ref() {
        Some(canary) if x.shard.random.per_million() < canary.percent_per_million.to_native() => {
            &canary.routes
        }
        _ => &stage.routes,
    };
    let mut captures = Captures::default();
    let method = Method::from_bytes(head.method.as_bytes());
    let Some(route_index) = lookup::find_route(routes, method, stage_match.path, &mut captures) else {
        let kind = match stage.protocol {
            ArchivedProtocol::Http => Kind::NotFound,
            _ => Kind::MissingAuthenticationToken,
        };
        respond::error(out, kind, x.common);
        return Flow::Answered;
    };
    let route = &routes.routes[route_index as usize];
    let routed =
        Routed { stage_index: stage_match.stage, stage, route, route_path: stage_match.path, captures };
    let contained = (0..route.params.len())
        .all(|i| routed.captures.get(routed.route_path, i).is_none_or(path::parameter_is_contained));
    x.routed = Some(routed);
    if !contained {
        respond::error(out, Kind::BadRequest, x.common);
        return Flow::Answered;
    }
    Flow::Continue
}
