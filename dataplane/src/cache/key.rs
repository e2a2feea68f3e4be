//! The cache key of a request: the stage's store, the method's cache settings (which stand for
//! the route: method and resource path), the request's method, and the values of the route's
//! `cacheKeyParameters`. Requests that differ only outside these share an entry, as in AWS.
//!
//! Layout: store id (8 bytes LE), route cache id (8 bytes LE), method (1 byte), then per key
//! part the number of values (1 byte) and each value length-prefixed (4 bytes LE), so an
//! absent parameter, an empty one and two values never look alike.

use crate::http1::head::Head;
use proto::lookup::Captures;
use proto::table::{ArchivedCacheKeyPart, ArchivedRouteCache};
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// Writes the key of `head` into `out` (cleared first).
pub fn build(
    out: &mut Vec<u8>,
    store_id: u64,
    route: &ArchivedRouteCache,
    head: &Head<'_, '_>,
    route_path: &str,
    captures: &Captures,
) {
    out.clear();
    out.extend_from_slice(&store_id.to_le_bytes());
    out.extend_from_slice(&route.id.to_native().to_le_bytes());
    let method = proto::table::Method::from_bytes(head.method.as_bytes()).map_or(u8::MAX, |m| m as u8);
    out.push(method);
    for part in route.key.iter() {
        match part {
            ArchivedCacheKeyPart::Path(i) => {
                let value = captures.get(route_path, i.to_native() as usize);
                values(out, value.map(str::as_bytes).into_iter());
            }
            ArchivedCacheKeyPart::Query(name) => {
                let query = head.query().unwrap_or("");
                let found = query.split('&').filter_map(|pair| {
                    let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (n == name.as_str() && !pair.is_empty()).then_some(v.as_bytes())
                });
                values(out, found);
            }
            ArchivedCacheKeyPart::Header(name) => {
                let found = head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
                values(out, found);
            }
        }
    }
}

/// Appends a count and each value, length-prefixed. More than 255 values of one parameter
/// count as 255 (the values themselves all go in).
fn values<'v>(out: &mut Vec<u8>, found: impl Iterator<Item = &'v [u8]>) {
    let count_at = out.len();
    out.push(0);
    for value in found {
        out[count_at] = out[count_at].saturating_add(1);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }
}

/// The route cache id a key was built with.
pub fn route_cache_id(key: &[u8]) -> u64 {
    key.get(8..16).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// The key's hash: one process-wide random seed, so every shard agrees and clients cannot aim
/// for collisions (a collision only costs a miss: entries compare the whole key).
pub fn hash(key: &[u8]) -> u64 {
    static SEED: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    SEED.get_or_init(Default::default).hash_one(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::head::{self, Limits};
    use proto::table::{CacheKeyPart, RouteCache, UnauthorizedInvalidation};

    fn key_of(request: &str, parts: Vec<CacheKeyPart>) -> Vec<u8> {
        let cache = RouteCache {
            id: 42,
            ttl_ms: 1000,
            get_only: true,
            key: parts,
            require_authorization: true,
            unauthorized: UnauthorizedInvalidation::FailWith403,
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&cache).unwrap();
        let archived = rkyv::access::<ArchivedRouteCache, rkyv::rancor::Error>(&bytes).unwrap();
        let mut spans = Vec::new();
        let head = head::parse(request.as_bytes(), &mut spans, &Limits::default()).unwrap().unwrap();
        let mut out = Vec::new();
        build(&mut out, 7, archived, &head, head.path(), &Captures::default());
        assert_eq!(route_cache_id(&out), 42);
        out
    }

    #[test]
    fn only_key_parameters_tell_requests_apart() {
        let limit = || vec![CacheKeyPart::Query("limit".into())];
        let a = key_of("GET /pets?limit=1&x=1 HTTP/1.1\r\nhost: h\r\n\r\n", limit());
        let b = key_of("GET /pets?x=2&limit=1 HTTP/1.1\r\nhost: h\r\nfoo: bar\r\n\r\n", limit());
        let c = key_of("GET /pets?limit=2 HTTP/1.1\r\nhost: h\r\n\r\n", limit());
        let absent = key_of("GET /pets HTTP/1.1\r\nhost: h\r\n\r\n", limit());
        let empty = key_of("GET /pets?limit= HTTP/1.1\r\nhost: h\r\n\r\n", limit());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(absent, empty);
        let accept = || vec![CacheKeyPart::Header("accept".into())];
        let json = key_of("GET /p HTTP/1.1\r\nhost: h\r\nAccept: json\r\n\r\n", accept());
        let json_lower = key_of("GET /p HTTP/1.1\r\nhost: h\r\naccept: json\r\n\r\n", accept());
        let xml = key_of("GET /p HTTP/1.1\r\nhost: h\r\naccept: xml\r\n\r\n", accept());
        assert_eq!(json, json_lower);
        assert_ne!(json, xml);
        // Without key parameters, the method still counts.
        let get = key_of("GET /p HTTP/1.1\r\nhost: h\r\n\r\n", vec![]);
        let post = key_of("POST /p HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n", vec![]);
        assert_ne!(get, post);
        assert_eq!(hash(&get), hash(&get.clone()));
    }
}
