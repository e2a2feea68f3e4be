//! Pure, allocation-free lookup over an archived [`Table`](crate::table::Table).
//!
//! Two steps, both independent of table size apart from binary searches:
//! 1. [`find_stage`]: the `Host` header and the first path segments pick a stage, through a
//!    custom domain's base path mappings, or execute-api style (`{api}.anything/{stage}/...`).
//! 2. [`find_route`]: the remaining path walks the stage's segment tree with AWS precedence
//!    (literal beats `{param}` beats `{proxy+}`), then the method picks the route (an exact
//!    method beats `ANY`).
//!
//! Parameters are captured as byte ranges of the path into a fixed-size [`Captures`].

use crate::table::{
    edge_slot, ArchivedApiKey, ArchivedMethodRoute, ArchivedNode, ArchivedRouteSet, ArchivedTable, Method,
    EMPTY_EDGE, MAX_PARAMS,
};

/// Where a request landed: the stage, and the part of the path left after the base path or
/// stage prefix (always starting with `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageMatch<'p> {
    pub stage: u32,
    pub path: &'p str,
    /// True when the stage was addressed execute-api style (`/{stage}/...`).
    pub by_stage_name: bool,
    /// The index of the domain whose mapping picked the stage (none: execute-api style).
    pub domain: Option<u32>,
}

/// Path parameters of a matched route, as `(start, end)` byte offsets into the path given to
/// [`find_route`], in the order of the route's `params`.
#[derive(Debug, Clone, Copy)]
pub struct Captures {
    len: usize,
    spans: [(u32, u32); MAX_PARAMS],
}

impl Default for Captures {
    fn default() -> Self {
        Captures { len: 0, spans: [(0, 0); MAX_PARAMS] }
    }
}

impl Captures {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of parameter `index` within `path` (the same path given to [`find_route`]).
    pub fn get<'p>(&self, path: &'p str, index: usize) -> Option<&'p str> {
        if index >= self.len {
            return None;
        }
        let (start, end) = self.spans[index];
        path.get(start as usize..end as usize)
    }

    fn push(&mut self, start: usize, end: usize) -> bool {
        if self.len == MAX_PARAMS {
            return false;
        }
        self.spans[self.len] = (start as u32, end as u32);
        self.len += 1;
        true
    }
}

/// Strips an optional `:port` from a Host header value (IPv6 literals keep their brackets).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rfind(':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

fn cmp_ignore_ascii_case(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.bytes().map(|c| c.to_ascii_lowercase());
    let b = b.bytes().map(|c| c.to_ascii_lowercase());
    a.cmp(b)
}

/// The index of the API key with this SHA-256, if the table has one (enabled or not).
pub fn find_key(table: &ArchivedTable, hash: &[u8; 32]) -> Option<u32> {
    table.api_keys.binary_search_by(|k| k.hash.cmp(hash)).ok().map(|i| i as u32)
}

/// The per-method throttle a key's plan sets for this route, if any.
pub fn key_method_limit(key: &ArchivedApiKey, route_id: u64) -> Option<u32> {
    let limits = &key.method_limits;
    limits.binary_search_by(|m| m.route.to_native().cmp(&route_id)).ok().map(|i| limits[i].limit.to_native())
}

/// Picks the stage for a request. `host` may carry a port; `path` is the request path without
/// the query string and must start with `/`.
pub fn find_stage<'p>(table: &ArchivedTable, host: &str, path: &'p str) -> Option<StageMatch<'p>> {
    let host = host_without_port(host);
    if let Some(i) = find_domain(table, host) {
        let domain = &table.domains[i as usize];
        let domain_index = Some(i);
        let after_slash = path.strip_prefix('/')?;
        for mapping in domain.mappings.iter() {
            let base = mapping.base_path.as_str();
            if base.is_empty() {
                return Some(StageMatch {
                    stage: mapping.stage.to_native(),
                    path,
                    by_stage_name: false,
                    domain: domain_index,
                });
            }
            if let Some(rest) = after_slash.strip_prefix(base) {
                if rest.is_empty() || rest.starts_with('/') {
                    let rest = if rest.is_empty() { "/" } else { rest };
                    return Some(StageMatch {
                        stage: mapping.stage.to_native(),
                        path: rest,
                        by_stage_name: false,
                        domain: domain_index,
                    });
                }
            }
        }
        return None;
    }
    // execute-api style: the first label of the host names the API, the first path segment
    // names the stage.
    let api = host.split('.').next().unwrap_or(host);
    let after_slash = path.strip_prefix('/')?;
    let (stage, rest) = match after_slash.find('/') {
        Some(slash) => (&after_slash[..slash], &after_slash[slash..]),
        None => (after_slash, "/"),
    };
    let i = table
        .stage_names
        .binary_search_by(|s| {
            cmp_ignore_ascii_case(s.api.as_str(), api).then_with(|| s.stage.as_str().cmp(stage))
        })
        .ok()?;
    Some(StageMatch {
        stage: table.stage_names[i].index.to_native(),
        path: rest,
        by_stage_name: true,
        domain: None,
    })
}

/// The domain for a host without port: the one with that name, else the wildcard domain
/// `*.rest` when the host is `label.rest`. No allocation: the wildcard name is compared as
/// `"*." + rest` on the fly.
pub fn find_domain(table: &ArchivedTable, host: &str) -> Option<u32> {
    let domains = &table.domains;
    if let Ok(i) = domains.binary_search_by(|d| cmp_ignore_ascii_case(d.host.as_str(), host)) {
        return Some(i as u32);
    }
    let (label, rest) = host.split_once('.')?;
    if label.is_empty() || !rest.contains('.') {
        return None;
    }
    let wildcard = || b"*.".iter().copied().chain(rest.bytes().map(|c| c.to_ascii_lowercase()));
    domains
        .binary_search_by(|d| d.host.bytes().map(|c| c.to_ascii_lowercase()).cmp(wildcard()))
        .ok()
        .map(|i| i as u32)
}

/// Finds the route for `method` and `path` (starting with `/`, no query string) in a stage's
/// route set. On success returns the index into its routes and fills `captures`.
pub fn find_route(
    routes: &ArchivedRouteSet,
    method: Option<Method>,
    path: &str,
    captures: &mut Captures,
) -> Option<u32> {
    *captures = Captures::default();
    let path = path.strip_prefix('/')?;
    // A single trailing slash names the same resource (`/pets/` is `/pets`).
    let path_end = if path.ends_with('/') { path.len() - 1 } else { path.len() };
    let walker = Walker { routes, method, path: &path[..path_end], offset: 1 };
    walker.walk(0, 0, captures)
}

struct Walker<'a> {
    routes: &'a ArchivedRouteSet,
    method: Option<Method>,
    /// The path without its leading slash; offsets into it are shifted by `offset` so that
    /// captures index the path as the caller passed it.
    path: &'a str,
    offset: usize,
}

impl Walker<'_> {
    /// Matches `self.path[pos..]` from `node`. Depth-first in precedence order, so a dead end
    /// under a literal falls back to the parameter and then to the greedy routes, exactly as a
    /// "most specific route wins" rule requires.
    fn walk(&self, node_index: u32, pos: usize, captures: &mut Captures) -> Option<u32> {
        let node: &ArchivedNode = &self.routes.nodes[node_index as usize];
        if pos > self.path.len() || (pos == self.path.len() && !self.path.is_empty()) {
            // All segments consumed.
            return self.pick(&node.methods);
        }
        if self.path.is_empty() {
            // The root resource `/`.
            return self.pick(&node.methods);
        }
        let rest = &self.path[pos..];
        let seg_len = rest.find('/').unwrap_or(rest.len());
        let segment = &rest[..seg_len];
        let next = pos + seg_len + 1;
        if !segment.is_empty() {
            if let Some(child) = self.literal_child(node_index, node, segment) {
                let saved = captures.len;
                if let Some(route) = self.walk(child, next, captures) {
                    return Some(route);
                }
                captures.len = saved;
            }
            if let Some(child) = node.param.as_ref() {
                let saved = captures.len;
                if captures.push(self.offset + pos, self.offset + pos + seg_len) {
                    if let Some(route) = self.walk(child.to_native(), next, captures) {
                        return Some(route);
                    }
                }
                captures.len = saved;
            }
        }
        if !node.greedy.is_empty() && !rest.is_empty() {
            let saved = captures.len;
            if captures.push(self.offset + pos, self.offset + self.path.len()) {
                if let Some(route) = self.pick(&node.greedy) {
                    return Some(route);
                }
            }
            captures.len = saved;
        }
        None
    }

    /// Probes the stage's edge table for `parent --segment-->`. Terminates: `decode` checked
    /// that the table has a free slot.
    fn literal_child(&self, parent: u32, node: &ArchivedNode, segment: &str) -> Option<u32> {
        if !node.has_literals {
            return None;
        }
        let edges = &self.routes.edges;
        let mut slot = edge_slot(parent, segment, edges.len());
        loop {
            let edge = &edges[slot];
            let edge_parent = edge.parent.to_native();
            if edge_parent == EMPTY_EDGE {
                return None;
            }
            if edge_parent == parent && edge.segment.as_str() == segment {
                return Some(edge.node.to_native());
            }
            slot = (slot + 1) & (edges.len() - 1);
        }
    }

    fn pick(&self, routes: &[ArchivedMethodRoute]) -> Option<u32> {
        let mut any = None;
        for candidate in routes {
            let m = candidate.method.to_native();
            if Some(m) == self.method {
                return Some(candidate.route.to_native());
            }
            if m == Method::Any {
                any = Some(candidate.route.to_native());
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::*;
    use crate::tree::{param_names, parse_path, TreeBuilder};

    fn mock() -> Integration {
        Integration::Mock(MockIntegration { status: 200, headers: vec![], body: vec![] })
    }

    fn stage(keys: &[&str]) -> Stage {
        let mut tree = TreeBuilder::default();
        let mut routes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let (method, path) = key.split_once(' ').unwrap();
            let segments = parse_path(path).unwrap();
            tree.insert(Method::from_route_key(method).unwrap(), &segments, i as u32).unwrap();
            routes.push(Route {
                id: i as u64,
                key: (*key).to_string(),
                resource: path.to_string(),
                params: param_names(&segments),
                integration: mock(),
                limit: None,
                api_key_required: false,
                cache: None,
            });
        }
        Stage {
            id: 1,
            api: "petstore".into(),
            name: "prod".into(),
            protocol: Protocol::Rest,
            variables: vec![],
            routes: tree.finish(routes),
            canary: None,
            limit: None,
            cache: None,
            access_log: None,
        }
    }

    fn table(keys: &[&str]) -> TableBytes {
        let t = Table {
            version: 1,
            domains: vec![
                Domain {
                    host: "*.wild.example.com".into(),
                    tls: None,
                    mappings: vec![BasePathMapping { base_path: "".into(), stage: 0 }],
                },
                Domain {
                    host: "api.example.com".into(),
                    tls: None,
                    mappings: vec![BasePathMapping { base_path: "v1".into(), stage: 0 }],
                },
                Domain {
                    host: "localhost".into(),
                    tls: None,
                    mappings: vec![BasePathMapping { base_path: "".into(), stage: 0 }],
                },
            ],
            stage_names: vec![StageName { api: "petstore".into(), stage: "prod".into(), index: 0 }],
            stages: vec![stage(keys)],
            upstreams: vec![],
            limits: vec![],
            account_limit: None,
            plans: vec![],
            api_keys: vec![],
            certificates: vec![],
            default_certificate: None,
        };
        decode(&encode(&t)).unwrap()
    }

    /// Returns the matched route key and its captured parameters.
    fn route(t: &TableBytes, method: &str, path: &str) -> Option<(String, Vec<String>)> {
        let stage = &t.get().stages[0];
        let mut caps = Captures::default();
        let i = find_route(&stage.routes, Method::from_bytes(method.as_bytes()), path, &mut caps)?;
        let r = &stage.routes.routes[i as usize];
        let values = (0..caps.len()).map(|p| caps.get(path, p).unwrap().to_string()).collect();
        Some((r.key.to_string(), values))
    }

    #[test]
    fn literal_beats_param_beats_greedy() {
        let t = table(&["GET /pets/{petId}", "GET /pets/dog", "ANY /pets/{proxy+}", "GET /pets"]);
        assert_eq!(route(&t, "GET", "/pets/dog").unwrap().0, "GET /pets/dog");
        assert_eq!(route(&t, "GET", "/pets/7"), Some(("GET /pets/{petId}".into(), vec!["7".into()])));
        assert_eq!(
            route(&t, "GET", "/pets/7/toys/1"),
            Some(("ANY /pets/{proxy+}".into(), vec!["7/toys/1".into()]))
        );
        assert_eq!(route(&t, "GET", "/pets").unwrap().0, "GET /pets");
        assert_eq!(route(&t, "GET", "/pets/").unwrap().0, "GET /pets");
    }

    #[test]
    fn method_mismatch_falls_back_to_less_specific_route() {
        let t = table(&["GET /pets/dog", "POST /pets/{petId}"]);
        assert_eq!(route(&t, "POST", "/pets/dog").unwrap().0, "POST /pets/{petId}");
        assert_eq!(route(&t, "DELETE", "/pets/dog"), None);
    }

    #[test]
    fn exact_method_beats_any() {
        let t = table(&["ANY /pets", "POST /pets"]);
        assert_eq!(route(&t, "POST", "/pets").unwrap().0, "POST /pets");
        assert_eq!(route(&t, "GET", "/pets").unwrap().0, "ANY /pets");
        assert_eq!(route(&t, "TRACE", "/pets").unwrap().0, "ANY /pets");
    }

    #[test]
    fn greedy_needs_at_least_one_segment() {
        let t = table(&["ANY /{proxy+}"]);
        assert_eq!(route(&t, "GET", "/"), None);
        assert_eq!(route(&t, "GET", "/a").unwrap().1, vec!["a".to_string()]);
        let t = table(&["ANY /{proxy+}", "GET /"]);
        assert_eq!(route(&t, "GET", "/").unwrap().0, "GET /");
    }

    #[test]
    fn unknown_paths_do_not_match() {
        let t = table(&["GET /pets/{petId}"]);
        assert_eq!(route(&t, "GET", "/pets"), None);
        assert_eq!(route(&t, "GET", "/pets/1/2"), None);
        assert_eq!(route(&t, "GET", "/cats/1"), None);
        assert_eq!(route(&t, "GET", "//"), None);
        assert_eq!(route(&t, "GET", "pets/1"), None);
    }

    #[test]
    fn domains_base_paths_and_execute_api_style() {
        let t = table(&["GET /pets"]);
        let table = t.get();
        let m = find_stage(table, "LOCALHOST:8080", "/pets").unwrap();
        assert_eq!((m.stage, m.path, m.by_stage_name), (0, "/pets", false));
        let m = find_stage(table, "api.example.com", "/v1/pets").unwrap();
        assert_eq!(m.path, "/pets");
        assert_eq!(find_stage(table, "api.example.com", "/v1").unwrap().path, "/");
        assert_eq!(find_stage(table, "api.example.com", "/v10/pets"), None);
        let m = find_stage(table, "petstore.execute-api.local:80", "/prod/pets").unwrap();
        assert_eq!((m.stage, m.path, m.by_stage_name), (0, "/pets", true));
        assert_eq!(find_stage(table, "petstore.x", "/dev/pets"), None);
        assert_eq!(find_stage(table, "other", "/prod/pets"), None);
        // A wildcard domain covers one label more, and only that.
        let m = find_stage(table, "A.Wild.example.com:443", "/pets").unwrap();
        assert_eq!((m.by_stage_name, m.domain), (false, Some(0)));
        assert_eq!(find_domain(table, "a.b.wild.example.com"), None);
        assert_eq!(find_domain(table, "wild.example.com"), None);
        assert_eq!(find_stage(table, "api.example.com", "/v1").unwrap().domain, Some(1));
    }

    #[test]
    fn literal_children_need_an_edge_table() {
        // Found by the `table` fuzz target: a node that claims literal children in a route set
        // without edges sent the lookup probing an empty table.
        let mut t = Table { version: 3, stages: vec![stage(&["GET /a/b"])], ..Table::default() };
        t.stages[0].routes.edges.clear();
        assert!(
            matches!(decode(&encode(&t)), Err(DecodeError::Corrupt(m)) if m.contains("without an edge table"))
        );
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_crash() {
        let t = Table { version: 3, stages: vec![stage(&["GET /a/{b}"])], ..Table::default() };
        let bytes = encode(&t);
        assert!(matches!(decode(b"nonsense"), Err(DecodeError::NotATable)));
        for cut in [MAGIC.len(), MAGIC.len() + 1, MAGIC.len() + DIGEST_LEN, bytes.len() / 2, bytes.len() - 1]
        {
            assert!(decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        // Every flipped byte fails the digest.
        for i in MAGIC.len()..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            assert!(matches!(decode(&b), Err(DecodeError::Corrupt(_))), "byte {i} flipped unnoticed");
        }
        // Behind the digest, the structural checks: flip every archive byte and seal it again,
        // as a buggy writer would. Each result is a clean error or a table that passed
        // validation; none may panic.
        let archive = &bytes[MAGIC.len() + DIGEST_LEN..];
        for i in 0..archive.len() {
            let mut a = archive.to_vec();
            a[i] ^= 0xff;
            if let Ok(t) = decode(&crate::table::seal(&a)) {
                let _ = route(&t, "GET", "/a/x");
            }
        }
    }

    #[test]
    fn tree_rejects_bad_paths() {
        use crate::tree::TreeError;
        assert_eq!(parse_path("pets"), Err(TreeError::NotAbsolute));
        assert_eq!(parse_path("/{proxy+}/x"), Err(TreeError::GreedyNotLast));
        assert_eq!(parse_path("/a/{}"), Err(TreeError::BadSegment("{}".into())));
        assert_eq!(parse_path("/a/b{c}"), Err(TreeError::BadSegment("b{c}".into())));
        assert_eq!(parse_path("/{a}/{a}"), Err(TreeError::DuplicateParam("a".into())));
        let mut tree = TreeBuilder::default();
        tree.insert(Method::Get, &parse_path("/p/{id}").unwrap(), 0).unwrap();
        assert_eq!(
            tree.insert(Method::Get, &parse_path("/p/{pid}/x").unwrap(), 1),
            Err(TreeError::ConflictingParam { existing: "id".into(), new: "pid".into() })
        );
        assert_eq!(tree.insert(Method::Get, &parse_path("/p/{id}/").unwrap(), 2), Err(TreeError::Duplicate));
    }
}
