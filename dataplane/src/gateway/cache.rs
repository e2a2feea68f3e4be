//! The cache phase: a method with cache settings, on a stage with a cache, is answered from
//! the stage cache when it can; a miss calls the integration (any cacheable one, through
//! [`integrations::call`]) and stores what it got (a 5xx or a body over 1 MiB is served, not
//! stored). See [`crate::cache`] for the store itself.

use crate::cache::key;
use crate::cache::store::{self, Entry, Fill, Lookup, Store};
use crate::exchange::{Exchange, Routed};
use crate::gateway_error::Kind;
use crate::http1::head::Head;
use crate::integrations::{self, Answer, Scratch};
use crate::observe::trail::CacheUse;
use crate::respond::{self, Common};
use proto::table::{ArchivedRouteCache, ArchivedUnauthorizedInvalidation, MAX_CACHED_RESPONSE};
use std::sync::Arc;
use std::time::Duration;

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
fn applies(settings: &ArchivedRouteCache, head: &Head<'_, '_>) -> bool {
    head.method != "HEAD" && (!settings.get_only || head.method == "GET")
}

/// The request's mode. `may_invalidate` is asked only for a refresh that needs authorization.
fn mode(
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

/// How a request uses the cache.
pub enum Use<'a> {
    /// Not at all: the integration answers.
    Bypass,
    /// The request is refused (an invalidation it may not ask for, under FAIL_WITH_403).
    Refused(Kind),
    Through(Cached<'a>),
}

/// Whether the route's cache settings, the stage's cache and the request let the cache take
/// part. Canary routes carry no cache settings (AWS: the canary does not use the stage cache
/// by default).
pub fn decide<'a>(x: &Exchange<'a>, routed: &Routed<'a>) -> Use<'a> {
    let route = routed.route;
    if !integrations::cacheable(&route.integration) {
        return Use::Bypass;
    }
    let head = x.head();
    let cache = route.cache.as_ref().zip(x.table.caches[routed.stage_index as usize].as_ref());
    let Some((settings, store)) = cache.filter(|(settings, _)| applies(settings, head)) else {
        return Use::Bypass;
    };
    let may_invalidate = || {
        let table = x.table;
        let key = x
            .identity
            .api_key
            .or_else(|| table.authorized_key(head.headers.get("x-api-key"), routed.stage_index));
        key.is_some_and(|k| table.get().api_keys[k as usize].invalidate_cache)
    };
    match mode(settings, head, may_invalidate) {
        Ok(mode) => Use::Through(Cached { store, settings, mode }),
        Err(kind) => Use::Refused(kind),
    }
}

/// What a request brings to the cache phase.
pub struct Cached<'a> {
    pub store: &'a Arc<Store>,
    pub settings: &'a ArchivedRouteCache,
    pub mode: Mode,
}

/// Answers a request through the stage cache.
pub async fn respond(
    x: &Exchange<'_>,
    routed: &Routed<'_>,
    cached: Cached<'_>,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) {
    let Cached { store, settings, mode } = cached;
    let (shard, common) = (x.shard, x.common);
    let trail = common.trail;
    let warning = (mode == Mode::LookupWarned).then_some(REFUSED_REFRESH);
    let now = crate::limits::throttle::now_ns();
    let hash = {
        let mut local = shard.cache.borrow_mut();
        let local = &mut *local;
        key::build(&mut local.key, store.id, settings, x.head(), routed.route_path, &routed.captures);
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
            let limit = integrations::timeout(&routed.route.integration);
            let waited = monoio::time::timeout(limit, wait(&fill)).await;
            let common = &common.after_wait(shard.draining.get());
            match waited {
                Ok(Some(entry)) if entry.answers(&key, crate::limits::throttle::now_ns()) => {
                    trail.cache.set(CacheUse::Hit);
                    write_entry(&entry, out, common, warning);
                    shard.cache.borrow_mut().insert(hash, entry, shard.index);
                    return;
                }
                // The fill stored nothing (an error, too large): fetch for this request alone,
                // so an uncacheable key does not queue its requests behind each other.
                Ok(_) => None,
                Err(_elapsed) => return respond::error(out, Kind::IntegrationTimeout, common),
            }
        }
        Lookup::Fetch(ticket) => Some(ticket),
    };
    trail.cache.set(CacheUse::Miss);
    let result = integrations::call(x, routed, scratch).await;
    let common = &common.after_wait(shard.draining.get());
    match result {
        Ok(answer) => {
            if let Some(ticket) = ticket {
                let stored = storable(&answer);
                let ttl_ns = u64::from(settings.ttl_ms.to_native()) * 1_000_000;
                let mut local = shard.cache.borrow_mut();
                let now = crate::limits::throttle::now_ns();
                if let Some(entry) = ticket.complete(&key, stored, ttl_ns, now, &mut |h| local.forget(h)) {
                    local.insert(hash, entry, shard.index);
                }
            }
            integrations::write(&answer, out, common, warning);
        }
        Err(kind) => respond::error(out, kind, common),
    }
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

/// The response as the cache stores it, if it may be stored: not a 5xx, not a 101 (it
/// belongs to one connection), at most 1 MiB.
fn storable(answer: &Answer<'_>) -> Option<store::Response> {
    if answer.status >= 500 || answer.status < 200 || answer.body.len() > MAX_CACHED_RESPONSE {
        return None;
    }
    let mut headers = Vec::new();
    answer.headers.write(&mut headers);
    Some(store::Response { status: answer.status, headers, body: answer.body.to_vec() })
}

/// Writes a cached response: the original status, headers and body, with this request's
/// common headers (date, request id, connection).
fn write_entry(entry: &Entry, out: &mut Vec<u8>, common: &Common<'_>, extra: Option<(&[u8], &[u8])>) {
    respond::start(out, common, entry.status);
    out.extend_from_slice(entry.headers());
    if let Some((name, value)) = extra {
        respond::header(out, name, value);
    }
    respond::finish(out, common, entry.body(), None);
}
