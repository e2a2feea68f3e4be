#![allow(clippy::unwrap_used)] // benchmark setup: a failed unwrap is a broken benchmark
//! Route lookup cost at 10, 1,000 and 100,000 routes: it must not grow with the table (a
//! binary search per segment is all that depends on size).
//!
//! `cargo bench -p bench --bench lookup`; results go to perf/results/ by hand.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use proto::lookup::{find_route, find_stage, Captures};
use proto::table::*;
use proto::tree::{param_names, parse_path, TreeBuilder};

/// `n` routes shaped like real APIs: services, resources, ids and some greedy catch-alls.
fn table(n: usize) -> TableBytes {
    let mut tree = TreeBuilder::default();
    let mut routes = Vec::new();
    for i in 0..n {
        let path = match i % 4 {
            0 => format!("/svc{}/res{i}", i % 97),
            1 => format!("/svc{}/res{i}/{{id}}", i % 97),
            2 => format!("/svc{}/res{i}/{{id}}/sub/{{subId}}", i % 97),
            _ => format!("/svc{}/res{i}/files/{{path+}}", i % 97),
        };
        let segments = parse_path(&path).unwrap();
        tree.insert(Method::Get, &segments, routes.len() as u32).unwrap();
        routes.push(Route {
            id: i as u64,
            key: format!("GET {path}"),
            resource: path.clone(),
            params: param_names(&segments),
            integration: Integration::Mock(MockIntegration { status: 200, headers: vec![], body: vec![] }),
            limit: None,
            api_key_required: false,
            cache: None,
        });
    }
    let stage = Stage {
        id: 1,
        api: "api".into(),
        name: "prod".into(),
        protocol: Protocol::Rest,
        variables: vec![],
        routes: tree.finish(routes),
        canary: None,
        limit: None,
        cache: None,
        access_log: None,
    };
    let t = Table {
        version: 1,
        domains: vec![Domain {
            host: "api.example.com".into(),
            tls: None,
            mappings: vec![BasePathMapping { base_path: "".into(), stage: 0 }],
        }],
        stage_names: vec![],
        stages: vec![stage],
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

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [10usize, 1_000, 100_000] {
        let bytes = table(n);
        let t = bytes.get();
        // A spread of request paths hitting each route shape, deep in the table.
        let paths: Vec<String> = (0..64)
            .map(|k| {
                let i = (k * 7919) % n;
                match i % 4 {
                    0 => format!("/svc{}/res{i}", i % 97),
                    1 => format!("/svc{}/res{i}/42", i % 97),
                    2 => format!("/svc{}/res{i}/42/sub/7", i % 97),
                    _ => format!("/svc{}/res{i}/files/a/b/c.txt", i % 97),
                }
            })
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &paths, |b, paths| {
            let mut k = 0;
            b.iter(|| {
                let path = &paths[k % paths.len()];
                k += 1;
                let m = find_stage(t, black_box("api.example.com"), path).unwrap();
                let mut caps = Captures::default();
                black_box(find_route(
                    &t.stages[m.stage as usize].routes,
                    Some(Method::Get),
                    m.path,
                    &mut caps,
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
