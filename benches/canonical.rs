//! Path canonicalisation (docs/contract.md §4.0) cost, next to a baseline that only scans the
//! path for the bytes that force the slow path.
//!
//! Run: `cargo bench --bench canonical`. Results are recorded here and in the session note, never
//! asserted. A plain path (no `%`, `\`, dot segment or `//`) is returned borrowed: no allocation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vpcguard::identity::canonical::{PathRules, canonicalize_path};

fn bench(c: &mut Criterion) {
    let rules = PathRules::default();
    let cases = [
        ("plain_short", "/v1/repo/main.zip"),
        (
            "plain_long",
            "/v1/0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e/repositories/team-platform/archive/main/src.tar.gz",
        ),
        ("escaped_unreserved", "/repo/%61rchive/%7Euser/x"),
        ("dot_segments", "/repo/a/./b/../archive/x"),
        ("double_slashes", "/repo//archive///x"),
    ];
    let mut g = c.benchmark_group("canonicalize_path");
    for (name, path) in cases {
        g.bench_function(name, |b| {
            b.iter(|| canonicalize_path(black_box(path), &rules).unwrap())
        });
    }
    // Baseline: the cheapest possible check, one scan for '%' or '\\'.
    g.bench_function("baseline_scan_plain_long", |b| {
        let p = cases[1].1;
        b.iter(|| black_box(p).bytes().any(|c| c == b'%' || c == b'\\'))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
