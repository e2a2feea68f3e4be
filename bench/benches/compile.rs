//! Control-plane compile cost and table size at 10, 1,000 and 100,000 routes: parse the
//! manifest, compile, encode; and, on the data-plane side, validate the bytes once.
//!
//! `cargo bench -p bench --bench compile`; the table sizes are printed before the timings.
#![allow(clippy::unwrap_used)] // benchmark setup: a failed unwrap is a broken benchmark

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::fmt::Write;

fn manifest(routes: usize) -> String {
    let mut m = String::from("kind: Api\nname: big\nroutes:\n");
    for i in 0..routes {
        let _ = match i % 3 {
            0 => writeln!(m, "  GET /svc{}/res{i}: {{ integration: {{ type: MOCK, response: {{ body: ok }} }} }}", i % 97),
            1 => writeln!(
                m,
                "  GET /svc{}/res{i}/{{id}}: {{ integration: {{ type: HTTP_PROXY, uri: \"http://${{stageVariables.backend}}/r/{{id}}\" }} }}",
                i % 97
            ),
            _ => writeln!(
                m,
                "  ANY /svc{}/res{i}/{{proxy+}}: {{ integration: {{ type: HTTP_PROXY, uri: \"http://${{stageVariables.backend}}/{{proxy}}\" }} }}",
                i % 97
            ),
        };
    }
    m.push_str("---\nkind: Stage\napi: big\nname: prod\nvariables: { backend: 127.0.0.1:9000 }\n");
    m.push_str(
        "---\nkind: Domain\nname: localhost\nmappings:\n  - { basePath: \"\", api: big, stage: prod }\n",
    );
    m
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for n in [10usize, 1_000, 100_000] {
        let text = manifest(n);
        let parsed = controlplane::manifest::parse("big.yaml", &text).unwrap();
        let table = controlplane::compile::compile(&parsed, 1).unwrap();
        let bytes = proto::table::encode(&table);
        println!(
            "{n} routes: manifest {} bytes, table {} bytes ({} bytes/route)",
            text.len(),
            bytes.len(),
            bytes.len() / n
        );
        group.bench_with_input(BenchmarkId::new("parse+compile+encode", n), &text, |b, text| {
            b.iter(|| {
                let m = controlplane::manifest::parse("big.yaml", text).unwrap();
                let t = controlplane::compile::compile(&m, 1).unwrap();
                black_box(proto::table::encode(&t))
            })
        });
        group.bench_with_input(
            BenchmarkId::new("decode (data plane, once per table)", n),
            &bytes,
            |b, bytes| b.iter(|| black_box(proto::table::decode(bytes).unwrap().len())),
        );
    }
    group.finish();
}

criterion_group!(benches, compile);
criterion_main!(benches);
