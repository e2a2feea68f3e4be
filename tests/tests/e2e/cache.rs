//! The stage response cache against a counting origin: hits and misses, key parameters, TTL,
//! invalidation with and without permission, flush, survival across table swaps, the
//! capacity under key churn, and concurrent misses collapsed into one fetch.

use crate::follower;
use gateway_tests::process::TempDir;
use gateway_tests::{ControlPlane, Dataplane, Origin};
use std::net::SocketAddr;
use std::time::Duration;

const ADMIN: &str = "admin-key-0123456789abcdef";
const USER: &str = "user-key-0123456789abcdef";

/// API `c` on stage `s`, whose cache has `stage_cache` settings; every route proxies to the
/// origin. `items_cache` is the cache setting of `GET /items`.
fn manifest(origin: SocketAddr, stage_cache: &str, items_cache: &str) -> String {
    let proxy = |path: &str| format!("integration: {{ type: HTTP_PROXY, uri: \"http://{origin}{path}\" }}");
    format!(
        "kind: Api\nname: c\nroutes:\n  \
         GET /items:\n    {}\n    cache: {items_cache}\n  \
         GET /items/{{id}}:\n    {}\n    cache: {{ keyParameters: [method.request.path.id, method.request.header.Accept] }}\n  \
         GET /shared/{{id}}:\n    {}\n  \
         GET /short:\n    {}\n    cache: {{ ttl: 1s }}\n  \
         GET /off:\n    {}\n    cache: {{ ttl: 0s }}\n  \
         POST /post:\n    {}\n  \
         POST /post-cached:\n    {}\n    cache: {{ enabled: true }}\n  \
         GET /status/{{code}}:\n    {}\n    cache: {{ keyParameters: [method.request.path.code] }}\n  \
         GET /delay/{{ms}}:\n    {}\n    cache: {{ keyParameters: [method.request.path.ms] }}\n  \
         GET /big:\n    {}\n    cache: {{ keyParameters: [method.request.querystring.n] }}\n  \
         GET /strict:\n    {}\n    cache: {{ unauthorizedHandling: FAIL_WITH_403 }}\n  \
         GET /lenient:\n    {}\n  \
         GET /quiet:\n    {}\n    cache: {{ unauthorizedHandling: SUCCEED_WITHOUT_RESPONSE_HEADER }}\n  \
         GET /open-refresh:\n    {}\n    cache: {{ requireAuthorization: false }}\n  \
         ANY /any:\n    {}\n  \
         GET /mock:\n    integration: {{ type: MOCK, response: {{ body: mock }} }}\n\
         ---\nkind: Stage\napi: c\nname: s\ncache: {stage_cache}\n\
         ---\nkind: Domain\nname: 127.0.0.1\nmappings:\n  - {{ basePath: \"\", api: c, stage: s }}\n\
         ---\nkind: UsagePlan\nname: p\nstages: [c/s]\n\
         ---\nkind: ApiKey\nname: admin\nplan: p\ninvalidateCache: true\nvalue: {ADMIN}\n\
         ---\nkind: ApiKey\nname: user\nplan: p\nvalue: {USER}\n",
        proxy("/items"),
        proxy("/items/{id}"),
        proxy("/shared/{id}"),
        proxy("/short"),
        proxy("/off"),
        proxy("/post"),
        proxy("/post-cached"),
        proxy("/status/{code}"),
        proxy("/delay/{ms}"),
        proxy("/big"),
        proxy("/strict"),
        proxy("/lenient"),
        proxy("/quiet"),
        proxy("/open-refresh"),
        proxy("/any"),
    )
}

const ENABLED: &str = "{ enabled: true, capacity: 64MiB }";
const BY_ID: &str = "{ keyParameters: [method.request.querystring.id] }";

fn send(dp: &Dataplane, method: &str, target: &str, headers: &str) -> gateway_tests::Response {
    let length = if method == "POST" { "content-length: 0\r\n" } else { "" };
    let mut client = dp.client();
    client.send(format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}{headers}\r\n").as_bytes());
    client.read_response_to(method == "HEAD").expect("a response")
}

fn get(dp: &Dataplane, target: &str) -> gateway_tests::Response {
    send(dp, "GET", target, "")
}

/// The origin's request count after running `f`, minus before.
fn fetches(origin: &Origin, f: impl FnOnce()) -> usize {
    let before = origin.requests();
    f();
    origin.requests() - before
}

/// A per-method series for one resource path (after [`crate::settle_metrics`]).
fn metric(dp: &Dataplane, name: &str, route: &str) -> u64 {
    crate::read_metric(dp, name, &[&format!("route=\"{route}\"")])
}

fn gauge(dp: &Dataplane, name: &str) -> u64 {
    let (_, text) = dp.admin_get("/metrics");
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn repeated_gets_are_answered_from_the_cache_with_the_original_headers() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr, ENABLED, BY_ID));
    let (first, second) = (get(&dp, "/items?id=1"), get(&dp, "/items?id=1"));
    assert_eq!(origin.requests(), 1, "the second GET is a hit");
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, second.body, "the stored body");
    for name in ["content-type", "x-origin", "x-amzn-Remapped-x-amzn-RequestId"] {
        assert_eq!(first.header(name), second.header(name), "{name}");
        assert!(second.header(name).is_some(), "{name}");
    }
    assert_ne!(first.header("x-amzn-RequestId"), second.header("x-amzn-RequestId"), "a request id each");
    assert_eq!(second.headers_named("content-length").len(), 1);
    // Parameters outside the key share the entry; a key parameter does not.
    assert_eq!(fetches(&origin, || assert_eq!(get(&dp, "/items?id=1&other=x").body, first.body)), 0);
    assert_eq!(fetches(&origin, || drop(get(&dp, "/items?id=2"))), 1);
    assert_eq!(fetches(&origin, || drop(get(&dp, "/items"))), 1, "no id is a key of its own");
    // Path and header parameters.
    let json = "accept: application/json\r\n";
    assert_eq!(fetches(&origin, || drop(send(&dp, "GET", "/items/7", json))), 1);
    assert_eq!(fetches(&origin, || drop(send(&dp, "GET", "/items/7", "Accept: application/json\r\n"))), 0);
    assert_eq!(fetches(&origin, || drop(send(&dp, "GET", "/items/7", "accept: text/xml\r\n"))), 1);
    assert_eq!(fetches(&origin, || drop(send(&dp, "GET", "/items/8", json))), 1);
    // As in AWS, a path parameter outside the key does not tell requests apart.
    let shared = get(&dp, "/shared/1");
    assert_eq!(fetches(&origin, || assert_eq!(get(&dp, "/shared/2").body, shared.body)), 0);
    // GET only, unless the method enables caching; a TTL of 0 caches nothing; MOCK is never
    // cached (it is answered from the table anyway).
    assert_eq!(fetches(&origin, || (0..2).for_each(|_| drop(send(&dp, "POST", "/post", "")))), 2);
    assert_eq!(fetches(&origin, || (0..2).for_each(|_| drop(send(&dp, "POST", "/post-cached", "")))), 1);
    assert_eq!(fetches(&origin, || (0..2).for_each(|_| drop(get(&dp, "/off")))), 2);
    // An ANY route caches its GETs only; HEAD never uses the cache.
    for (method, expected) in [("GET", 1), ("POST", 2), ("HEAD", 2)] {
        let n = fetches(&origin, || (0..2).for_each(|_| drop(send(&dp, method, "/any", ""))));
        assert_eq!(n, expected, "{method} /any");
    }
    assert_eq!(get(&dp, "/mock").text(), "mock");
    // Errors (5xx) are not stored; a 404 is.
    assert_eq!(fetches(&origin, || (0..3).for_each(|_| assert_eq!(get(&dp, "/status/503").status, 503))), 3);
    assert_eq!(fetches(&origin, || (0..3).for_each(|_| assert_eq!(get(&dp, "/status/404").status, 404))), 1);
    // CacheHitCount and CacheMissCount per method.
    crate::settle_metrics();
    assert_eq!(metric(&dp, "gateway_cache_hits_total", "/items"), 2);
    assert_eq!(metric(&dp, "gateway_cache_misses_total", "/items"), 3);
    assert_eq!(metric(&dp, "gateway_cache_hits_total", "/items/{id}"), 1);
    assert_eq!(metric(&dp, "gateway_cache_misses_total", "/items/{id}"), 3);
    assert_eq!(metric(&dp, "gateway_cache_misses_total", "/status/{code}"), 4);
    assert_eq!(metric(&dp, "gateway_cache_hits_total", "/status/{code}"), 2);
    assert_eq!(metric(&dp, "gateway_cache_hits_total", "/off"), 0);
}

#[test]
fn entries_expire_after_their_ttl() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr, ENABLED, BY_ID));
    let first = get(&dp, "/short");
    assert_eq!(fetches(&origin, || assert_eq!(get(&dp, "/short").body, first.body)), 0);
    std::thread::sleep(Duration::from_millis(1200));
    let fresh = fetches(&origin, || assert_ne!(get(&dp, "/short").body, first.body, "a new fetch"));
    assert_eq!(fresh, 1, "the 1 s TTL passed");
    assert_eq!(fetches(&origin, || drop(get(&dp, "/short"))), 0, "and the new entry is cached again");
}

#[test]
fn max_age_0_refreshes_only_for_clients_allowed_to_invalidate() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr, ENABLED, BY_ID));
    let refresh = "cache-control: max-age=0\r\n";
    let as_admin = format!("{refresh}x-api-key: {ADMIN}\r\n");
    let as_user = format!("{refresh}x-api-key: {USER}\r\n");
    for path in ["/lenient", "/strict", "/quiet", "/open-refresh"] {
        drop(get(&dp, path));
    }
    assert_eq!(origin.requests(), 4);

    // Default handling (SUCCEED_WITH_RESPONSE_HEADER): served from the cache, with a warning.
    let cached = get(&dp, "/lenient");
    for headers in [refresh.to_string(), as_user.clone()] {
        let r = fetches(&origin, || {
            let r = send(&dp, "GET", "/lenient", &headers);
            assert_eq!(r.body, cached.body);
            assert!(r.header("warning").is_some_and(|w| w.contains("not authorized")), "{:?}", r.headers);
        });
        assert_eq!(r, 0, "not refreshed for {headers:?}");
    }
    assert_eq!(get(&dp, "/lenient").header("warning"), None, "a plain hit has no warning");
    // A key allowed to invalidate refreshes, and everyone gets the new entry afterwards.
    let mut renewed = Vec::new();
    assert_eq!(fetches(&origin, || renewed = send(&dp, "GET", "/lenient", &as_admin).body), 1);
    assert_ne!(renewed, cached.body);
    assert_eq!(fetches(&origin, || assert_eq!(get(&dp, "/lenient").body, renewed)), 0);

    // FAIL_WITH_403.
    let r = send(&dp, "GET", "/strict", refresh);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("AccessDeniedException"));
    assert!(r.text().contains("execute-api:InvalidateCache"), "{}", r.text());
    assert_eq!(fetches(&origin, || assert_eq!(send(&dp, "GET", "/strict", &as_admin).status, 200)), 1);

    // SUCCEED_WITHOUT_RESPONSE_HEADER: a plain hit.
    let r = fetches(&origin, || assert_eq!(send(&dp, "GET", "/quiet", &as_user).header("warning"), None));
    assert_eq!(r, 0);

    // requireAuthorization: false lets anyone refresh.
    assert_eq!(fetches(&origin, || drop(send(&dp, "GET", "/open-refresh", refresh))), 1);
}

#[test]
fn flush_empties_the_stage_cache_and_unchanged_entries_survive_new_tables() {
    let origin = Origin::start();
    let work = TempDir::new("cache-flush");
    let cp = ControlPlane::start(&work.0.join("data"));
    let state = TempDir::new("cache-flush-dp");
    let dp = follower(&cp, &state);
    cp.apply(&work.0, &manifest(origin.addr, ENABLED, BY_ID));
    let warm = |dp: &Dataplane| {
        drop(get(dp, "/items?id=1"));
        drop(get(dp, "/items/1"));
    };
    assert_eq!(fetches(&origin, || warm(&dp)), 2);
    assert_eq!(fetches(&origin, || warm(&dp)), 0);

    // A new table with the same cache settings keeps every entry.
    let unrelated = manifest(origin.addr, ENABLED, BY_ID).replace("body: mock", "body: mock2");
    cp.apply(&work.0, &unrelated);
    assert_eq!(get(&dp, "/mock").text(), "mock2", "the new table is served");
    assert_eq!(fetches(&origin, || warm(&dp)), 0, "entries survived the swap");

    // Changing one method's settings drops that method's entries only.
    let changed =
        manifest(origin.addr, ENABLED, "{ ttl: 100s, keyParameters: [method.request.querystring.id] }")
            .replace("body: mock", "body: mock2");
    cp.apply(&work.0, &changed);
    assert_eq!(fetches(&origin, || drop(get(&dp, "/items?id=1"))), 1, "GET /items changed its TTL");
    assert_eq!(fetches(&origin, || drop(get(&dp, "/items/1"))), 0, "GET /items/{{id}} did not");

    // controlctl cache flush: every entry of the stage goes, on every data plane.
    let (code, out, err) = cp.ctl(&["cache", "flush", "c", "--stage", "s"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cache flushed"), "{out}");
    assert_eq!(fetches(&origin, || warm(&dp)), 2);
    assert_eq!(fetches(&origin, || warm(&dp)), 0);

    // A stage without a cache, or none at all, is refused clearly.
    let (code, _, err) = cp.ctl(&["cache", "flush", "c", "--stage", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("Stage 'c/nope' not found"), "{err}");
    cp.apply(&work.0, &manifest(origin.addr, "{ enabled: false }", BY_ID));
    let (code, _, err) = cp.ctl(&["cache", "flush", "c", "--stage", "s"]);
    assert_eq!(code, 1);
    assert!(err.contains("has no cache"), "{err}");
    assert_eq!(fetches(&origin, || warm(&dp)), 2, "a disabled cache answers nothing");
}

#[test]
fn the_capacity_holds_under_key_churn() {
    let origin = Origin::start();
    let capacity: u64 = 1 << 20;
    let dp = Dataplane::start(&manifest(origin.addr, "{ enabled: true, capacity: 1MiB }", BY_ID));
    // Each response echoes its ~1,000-character target, so about 1.3 KB per entry: 3,000 keys
    // are several times the capacity.
    let padding = "p".repeat(1000);
    let mut client = dp.client();
    for n in 0..3000 {
        let r = client.request(&format!("GET /big?n={n}&pad={padding} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        assert_eq!(r.status, 200);
    }
    assert_eq!(origin.requests(), 3000);
    // Shards drop evicted entries from their maps at their next tick.
    std::thread::sleep(Duration::from_millis(300));
    let used = gauge(&dp, "gateway_cache_used_bytes");
    let entries = gauge(&dp, "gateway_cache_entries");
    assert!(used <= capacity, "{used} bytes in a {capacity}-byte cache");
    assert!(used > capacity / 2, "the cache is used: {used} bytes");
    assert!((300..1000).contains(&entries), "{entries} entries");
    // The most recent keys are still answered from the cache.
    let recent = format!("GET /big?n=2999&pad={padding} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(fetches(&origin, || drop(client.request(&recent))), 0);
}

#[test]
fn concurrent_misses_for_a_cold_key_reach_the_origin_once() {
    let origin = Origin::start();
    let dp = Dataplane::start(&manifest(origin.addr, ENABLED, BY_ID));
    let addr = dp.addr;
    // 100 connections, spread over both shards, each sends the same request at once; the
    // origin takes 300 ms, so all of them arrive while the first fetch is in flight.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut client = gateway_tests::Client::connect(addr);
                barrier.wait();
                client.request("GET /delay/300 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            })
        })
        .collect();
    let responses: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(origin.requests(), 1, "one fetch for 100 concurrent misses");
    assert!(responses.iter().all(|r| r.status == 200 && r.body == responses[0].body));
    crate::settle_metrics();
    assert_eq!(metric(&dp, "gateway_cache_misses_total", "/delay/{ms}"), 1);
    assert_eq!(metric(&dp, "gateway_cache_hits_total", "/delay/{ms}"), 99);
}
