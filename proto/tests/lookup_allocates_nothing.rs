#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The lookup runs per request: prove it never allocates, with a counting allocator.

use proto::lookup::{find_route, find_stage, Captures};
use proto::table::*;
use proto::tree::{param_names, parse_path, TreeBuilder};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the thread whose allocations are counted: the test harness's own threads
    /// allocate now and then while a test runs, and must not count.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTED.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        // SAFETY: forwarding the caller's valid layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn stage_and_route_lookup_do_not_allocate() {
    let keys =
        ["GET /pets", "GET /pets/{id}", "GET /pets/{id}/toys/{toy}", "ANY /files/{path+}", "POST /pets"];
    let mut tree = TreeBuilder::default();
    let mut routes = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (m, p) = key.split_once(' ').unwrap();
        let segs = parse_path(p).unwrap();
        tree.insert(Method::from_route_key(m).unwrap(), &segs, i as u32).unwrap();
        let integration = Integration::Mock(MockIntegration { status: 200, headers: vec![], body: vec![] });
        routes.push(Route {
            id: 0,
            key: key.to_string(),
            resource: p.into(),
            params: param_names(&segs),
            integration,
            limit: None,
            api_key_required: false,
            cache: None,
        });
    }
    let stage = Stage {
        id: 1,
        api: "a".into(),
        name: "s".into(),
        protocol: Protocol::Rest,
        variables: vec![],
        routes: tree.finish(routes),
        canary: None,
        limit: None,
        cache: None,
        access_log: None,
    };
    let table = Table {
        version: 1,
        domains: vec![
            // A wildcard lookup compares `*.` + the rest on the fly, without a String.
            Domain {
                host: "*.wild.com".into(),
                tls: None,
                mappings: vec![BasePathMapping { base_path: "".into(), stage: 0 }],
            },
            Domain {
                host: "example.com".into(),
                tls: None,
                mappings: vec![BasePathMapping { base_path: "".into(), stage: 0 }],
            },
        ],
        stage_names: vec![StageName { api: "a".into(), stage: "s".into(), index: 0 }],
        stages: vec![stage],
        upstreams: vec![],
        limits: vec![],
        account_limit: None,
        plans: vec![],
        api_keys: vec![],
        certificates: vec![],
        default_certificate: None,
    };
    let bytes = decode(&encode(&table)).unwrap();
    let t = bytes.get();
    let requests = [
        ("Example.COM:443", "/pets/7/toys/9", Some(Method::Get)),
        ("a.execute-api", "/s/files/x/y/z", Some(Method::Delete)),
        ("example.com", "/nope/nope", Some(Method::Get)),
        ("x.Wild.com", "/pets/7/toys/9", Some(Method::Get)),
        ("unknown", "/x", None),
    ];
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTED.with(|c| c.set(true));
    let mut found = 0;
    for _ in 0..1000 {
        for (host, path, method) in requests {
            if let Some(m) = find_stage(t, host, path) {
                let mut caps = Captures::default();
                if find_route(&t.stages[m.stage as usize].routes, method, m.path, &mut caps).is_some() {
                    found += 1;
                }
            }
        }
    }
    COUNTED.with(|c| c.set(false));
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst) - before, 0, "the lookup allocated");
    assert_eq!(found, 3000);
}
