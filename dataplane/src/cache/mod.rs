//! The stage response cache (AWS API Gateway's stage cache), for HTTP and HTTP_PROXY methods.
//!
//! - [`key`]: which stored response answers a request (method, resource, key parameters);
//! - [`store`]: one stage's entries on this data plane, shared by its shards: budget, TTL,
//!   eviction, and the fills in progress that collapse concurrent misses into one fetch;
//! - [`local`]: each shard's own map of entries, so a hit takes no lock.
//!
//! [`respond`] is the pipeline phase: a hit is answered from memory; a miss fetches through
//! [`crate::proxy`] and stores what it got (a 5xx or a body over 1 MiB is served, not stored).

pub mod key;
pub mod local;
pub mod store;

use crate::gateway_response::{self, Kind};
use crate::http1::head::Head;
use crate::http1::response::{self, Common};
use crate::proxy::{self, Call};
use crate::trail::CacheUse;
use crate::upstream::{self, UpstreamBuffers};
use proto::table::{ArchivedRouteCache, ArchivedUnauthorizedInvalidation, MAX_CACHED_RESPONSE};
use std::sync::Arc;
use std::time::Duration;
use store::{Entry, Fill, Lookup, Store};

/// How a request uses its method's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer from the cache when it can.
    Lookup,
    /// The client asked for a fresh response and may: fetch, and replace the entry.
    Refresh,
    /// The client asked for a fresh response and may not (AWS SUCCEED_WITH_RESPONSE_HEADER):
    /// a lookup, with a `Warning` header saying the request was not honoured.
    LookupWarned,
}

/// The header a refused refresh carries under SUCCEED_WITH_RESPONSE_HEADER.
const REFUSED_REFRESH: (&[u8], &[u8]) = (b"warning", b"199 - \"cache invalidation not authorized\"");

/// True when this request may use the method's cache at all: GET only, unless the method
/// enabled caching explicitly; never HEAD (its response has no body to store).
pub fn applies(settings: &ArchivedRouteCache, head: &Head<'_, '_>) -> bool {
    head.method != "HEAD" && (!settings.get_only || head.method == "GET")
}

/// The request's mode. `may_invalidate` is asked only for a refresh that needs authorization.
pub fn mode(
    settings: &ArchivedRouteCache,
    head: &Head<'_, '_>,
    may_invalidate: impl FnOnce() -> bool,
) -> Result<Mode, Kind> {
    if !asks_for_refresh(head) {
        return Ok(Mode::Lookup);
    }
    if !settings.require_authorization || may_invalidate() {
        return Ok(Mode::Refresh);
    }
    match settings.unauthorized {
        ArchivedUnauthorizedInvalidation::FailWith403 => Err(Kind::InvalidationForbidden),
        ArchivedUnauthorizedInvalidation::SucceedWithResponseHeader => Ok(Mode::LookupWarned),
        ArchivedUnauthorizedInvalidation::SucceedWithoutResponseHeader => Ok(Mode::Lookup),
    }
}

/// `Cache-Control: max-age=0` (AWS's invalidation request), in any of the header's lines.
fn asks_for_refresh(head: &Head<'_, '_>) -> bool {
    head.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("cache-control")).any(|(_, value)| {
        value.split(|&b| b == b',').any(|directive| directive.trim_ascii().eq_ignore_ascii_case(b"max-age=0"))
    })
}

/// What a request brings to the cache phase.
pub struct Cached<'a> {
    pub store: &'a Arc<Store>,
    pub settings: &'a ArchivedRouteCache,
    pub mode: Mode,
}

/// Answers an HTTP integration request through the stage cache.
pub async fn respond(
    call: Call<'_>,
    cached: Cached<'_>,
    out: &mut Vec<u8>,
    bufs: &mut UpstreamBuffers,
    common: &Common<'_>,
) {
    let Cached { store, settings, mode } = cached;
    let trail = common.trail;
    let shard = call.shard;
    let warning = (mode == Mode::LookupWarned).then_some(REFUSED_REFRESH);
    let now = crate::limit::now_ns();
    let hash = {
        let mut local = shard.cache.borrow_mut();
        let local = &mut *local;
        let head = call.request.head;
        key::build(&mut local.key, store.id, settings, head, call.route_path, call.captures);
        let hash = key::hash(&local.key);
        if mode != Mode::Refresh {
            if let Some(entry) = local.find(hash, now) {
                trail.cache.set(CacheUse::Hit);
                return write_entry(entry, out, common, warning);
            }
        }
        hash
    };
    // The key outlives the scratch buffer across the fetch; a miss costs a fetch anyway.
    let key: Box<[u8]> = shard.cache.borrow().key.as_slice().into();
    let lookup = {
        let mut local = shard.cache.borrow_mut();
        store.lookup(hash, &key, now, mode == Mode::Refresh, shard.index, &mut |h| local.forget(h))
    };
    let ticket = match lookup {
        Lookup::Hit(entry) => {
            trail.cache.set(CacheUse::Hit);
            write_entry(&entry, out, common, warning);
            shard.cache.borrow_mut().insert(hash, entry, shard.index);
            return;
        }
        Lookup::Wait(fill) => {
            let waited = monoio::time::timeout(proxy::timeout(call.integration), wait(&fill)).await;
            let common = &proxy::after_upstream(shard, common);
            match waited {
                Ok(Some(entry)) if entry.answers(&key, crate::limit::now_ns()) => {
                    trail.cache.set(CacheUse::Hit);
                    write_entry(&entry, out, common, warning);
                    shard.cache.borrow_mut().insert(hash, entry, shard.index);
                    return;
                }
                // The fill stored nothing (an error, too large): fetch for this request alone,
                // so an uncacheable key does not queue its requests behind each other.
                Ok(_) => None,
                Err(_elapsed) => return gateway_response::write(out, Kind::IntegrationTimeout, common),
            }
        }
        Lookup::Fetch(ticket) => Some(ticket),
    };
    trail.cache.set(CacheUse::Miss);
    let result = proxy::fetch(&call, bufs).await;
    let common = &proxy::after_upstream(shard, common);
    match result {
        Ok(response) => {
            if let Some(ticket) = ticket {
                let stored = storable(&response, bufs);
                let ttl_ns = u64::from(settings.ttl_ms.to_native()) * 1_000_000;
                let mut local = shard.cache.borrow_mut();
                let now = crate::limit::now_ns();
                if let Some(entry) = ticket.complete(&key, stored, ttl_ns, now, &mut |h| local.forget(h)) {
                    local.insert(hash, entry, shard.index);
                }
            }
            proxy::write_response(&response, bufs, out, common, warning);
        }
        Err(kind) => gateway_response::write(out, kind, common),
    }
    bufs.trim();
}

/// Waits for another request's fill. Shards cannot wake each other's tasks, so the waiter
/// looks again every millisecond (the timer's resolution); only concurrent misses of one key
/// ever wait.
async fn wait(fill: &Fill) -> Option<Arc<Entry>> {
    loop {
        if let Some(result) = fill.result() {
            return result.clone();
        }
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The response as the cache stores it, if it may be stored: not a 5xx, at most 1 MiB.
fn storable(response: &upstream::Response, bufs: &UpstreamBuffers) -> Option<store::Response> {
    let body = proxy::body(response, bufs);
    if response.status >= 500 || body.len() > MAX_CACHED_RESPONSE {
        return None;
    }
    let mut headers = Vec::new();
    proxy::write_headers(bufs, &mut headers);
    Some(store::Response { status: response.status, headers, body: body.to_vec() })
}

/// Writes a cached response: the original status, headers and body, with this request's
/// common headers (date, request id, connection).
fn write_entry(entry: &Entry, out: &mut Vec<u8>, common: &Common<'_>, extra: Option<(&[u8], &[u8])>) {
    response::start(out, common, entry.status);
    out.extend_from_slice(entry.headers());
    if let Some((name, value)) = extra {
        response::write_header(out, name, value);
    }
    response::finish(out, common, entry.body(), None);
}
