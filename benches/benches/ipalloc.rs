//! Public-IP allocation time: `cargo bench -p pharos-benches --bench ipalloc`.
//!
//! For (nodes, addresses) = (3, 8), (16, 256), (64, 1024) and each algorithm: a fresh cluster
//! (everything unassigned), one node failing in the steady state, and that node returning. Then
//! two LCP2 stress cases. Results: `benches/README.md`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pharos_benches::{scenario, stress};
use pharos_core::ipalloc::{allocate, Algorithm, Options};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [(usize, usize); 3] = [(3, 8), (16, 256), (64, 1024)];

fn ipalloc(c: &mut Criterion) {
    let o = Options::default();
    for alg in [
        Algorithm::Lcp2,
        Algorithm::Deterministic,
        Algorithm::NonDeterministic,
    ] {
        let mut group = c.benchmark_group(format!("ipalloc/{alg}"));
        for (nodes, count) in SIZES {
            let s = scenario(nodes, count, alg);
            let size = format!("{nodes}x{count}");
            for (what, input) in [
                ("fresh", &s.fresh),
                ("node_fails", &s.node_fails),
                ("node_returns", &s.node_returns),
            ] {
                group.bench_with_input(BenchmarkId::new(what, &size), input, |b, i| {
                    b.iter(|| allocate(black_box(i), alg, &o))
                });
            }
        }
        group.finish();
    }
}

/// LCP2's hard cases (see `pharos_benches::Stress`).
fn ipalloc_stress(c: &mut Criterion) {
    let o = Options::default();
    let s = stress();
    let mut group = c.benchmark_group("ipalloc/lcp2-stress");
    group.sample_size(10);
    for (what, input) in [
        ("ipv6_fresh", &s.ipv6_fresh),
        ("all_on_one_63_return", &s.all_on_one),
    ] {
        group.bench_with_input(BenchmarkId::new(what, "64x1024"), input, |b, i| {
            b.iter(|| allocate(black_box(i), Algorithm::Lcp2, &o))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Short runs: the whole set finishes in about a minute.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = ipalloc, ipalloc_stress
}
criterion_main!(benches);
