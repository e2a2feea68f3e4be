//! The gateway: every request runs the phases below over one [`Exchange`], in this order. Each
//! phase is a module that either lets the request continue or answers it (through
//! [`crate::respond`]); a refusal is a [`Kind`].
//!
//! | phase | module | why it is here |
//! |---|---|---|
//! | route | [`route`] | every later phase needs the stage and the route; dot segments are resolved first, so the route matched is the path the backend will get |
//! | *authorize* | (next: authorizers) | after route (the route names its authorizer), before the API key (AWS's `apiKeySource: AUTHORIZER` takes the key from the authorizer) |
//! | API key | [`api_key`] | before the throttles: a key's own buckets are checked first, and AWS applies usage plans to API-key methods only |
//! | throttle | [`throttle`] | after the key, before the quota: a throttled request must use no quota |
//! | quota | [`quota`] | counts admitted requests only, so after every throttle |
//! | *validate* | (next: request validation) | after admission, before the cache: an invalid request is refused whatever is cached |
//! | cache | [`cache`] | after every admission check, so a refused request is never served from memory; around the integration, so a miss stores what the integration answered |
//! | *transform* + integrate + respond | [`crate::integrations`] | the integration's answer is written with the common headers |
//! | record | [`record`] | after the response is written: its status and length are known |

pub mod api_key;
pub mod cache;
pub mod quota;
pub mod record;
pub mod route;
pub mod throttle;

use crate::exchange::{Client, Exchange, Identity, Request};
use crate::gateway_error::Kind;
use crate::http1::head::Head;
use crate::integrations;
pub use crate::integrations::Scratch;
use crate::observe::trail::Trail;
use crate::respond::{self, Common};
use crate::shard::Shard;
pub use crate::upstream::client::Tunnel;
use std::time::Instant;

/// What a phase decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on to the next phase.
    Continue,
    /// The phase wrote the response.
    Answered,
}

/// The server's one entry into the gateway: answers one request, appending its response to
/// `out`. A [`Tunnel`] back means the response was a `101 Switching Protocols` from the
/// upstream: the server hands the client connection over to relay it (`server::upgrade`).
pub async fn handle(
    shard: &Shard,
    head: &Head<'_, '_>,
    body: &[u8],
    client: &Client,
    keep_alive: bool,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Option<Tunnel> {
    let started = Instant::now();
    let request_id = shard.ids.borrow_mut().next_id();
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
        respond::error(out, Kind::NotReady, &common);
        return None;
    };
    let request = Request::new(head, body, client, &request_id);
    let Ok(path) = route::normalized_path(head) else {
        respond::error(out, Kind::BadRequest, &common);
        return None;
    };
    let mut x = Exchange {
        shard,
        table: &table,
        request: &request,
        common: &common,
        stage: None,
        routed: None,
        identity: Identity::default(),
    };
    run_phases(&mut x, &path, out, scratch).await;
    scratch.trim();
    record::run(&x, started.elapsed().as_micros() as u64);
    scratch.tunnel.take()
}

/// The server's entry for a request it refused itself (a malformed head or body): the gateway
/// response for `kind`, and the connection closes after it.
pub fn refuse(shard: &Shard, kind: Kind, out: &mut Vec<u8>) {
    let request_id = shard.ids.borrow_mut().next_id();
    let date = *shard.date.borrow().get();
    let trail = Trail::default();
    let common = Common {
        request_id: &request_id,
        date: &date,
        keep_alive: false,
        http10: false,
        head_request: false,
        trail: &trail,
    };
    respond::error(out, kind, &common);
}

/// The phases, in the order (and for the reasons) the table above gives.
async fn run_phases<'x>(x: &mut Exchange<'x>, path: &'x str, out: &mut Vec<u8>, scratch: &mut Scratch) {
    if route::run(x, path, out) == Flow::Answered
        || api_key::run(x, out) == Flow::Answered
        || throttle::run(x, out) == Flow::Answered
        || quota::run(x, out) == Flow::Answered
    {
        return;
    }
    let x = &*x;
    let Some(routed) = x.routed.as_ref() else { return };
    // Boxed futures below: an integration's state is large, and keeping it inline would make
    // every connection's future (idle ones included) that much bigger. One small allocation
    // per integration call buys about half the memory of an idle connection.
    match cache::decide(x, routed) {
        cache::Use::Bypass => {}
        cache::Use::Refused(kind) => return respond::error(out, kind, x.common),
        cache::Use::Through(cached) => {
            return Box::pin(cache::respond(x, routed, cached, out, scratch)).await
        }
    }
    match &routed.route.integration {
        // MOCK answers from the table: nothing to wait for, nothing to box.
        proto::table::ArchivedIntegration::Mock(mock) => {
            integrations::write(&integrations::mock::answer(mock), out, x.common, None)
        }
        _ => Box::pin(integrate(x, routed, out, scratch)).await,
    }
}

/// Calls the route's integration and writes its answer (or the gateway response for its
/// failure).
async fn integrate(
    x: &Exchange<'_>,
    routed: &crate::exchange::Routed<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) {
    let result = integrations::call(x, routed, scratch).await;
    let common = &x.common.after_wait(x.shard.draining.get());
    match result {
        Ok(answer) => integrations::write(&answer, out, common, None),
        Err(kind) => respond::error(out, kind, common),
    }
}
