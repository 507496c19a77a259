//! Election convergence and one full recovery, on the in-memory network (virtual time, so the
//! figures are the CPU cost of the protocol, not its timeouts), plus allocations per operation.
//!
//! `cargo bench -p pharos-benches --bench election` (see benches/README.md).

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion};
use pharos_benches::{allocations, Allocs, CountingAlloc};
use pharos_core::config::Tunables;
use pharos_core::control::RecoveryMode;
use pharos_core::testing::Net;
use pharos_core::Pnn;
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const SIZES: [usize; 3] = [3, 5, 7];
/// Virtual time allowed for any convergence.
const LIMIT: Duration = Duration::from_secs(10);

fn tunables() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t.set("KeepaliveLimit", "3").unwrap();
    t
}

/// Every running node follows one acting recmaster in one generation, in normal mode.
fn agreed(net: &Net) -> bool {
    let running: Vec<usize> = (0..net.nodes.len())
        .filter(|&i| net.nodes[i].is_some())
        .collect();
    let first = net.node(running[0]);
    let (r, g) = (first.recmaster(), first.generation());
    r != Pnn::NONE
        && net.nodes[r.index()]
            .as_ref()
            .is_some_and(|n| n.is_acting_recmaster())
        && running.iter().all(|&i| {
            let n = net.node(i);
            n.recmaster() == r && n.generation() == g && n.recovery_mode() == RecoveryMode::Normal
        })
}

/// A cluster of `n` from start until it agrees; returns the virtual time it took.
fn converge(n: usize) -> (Net, Duration) {
    let mut net = Net::new(n, tunables());
    let took = net.run_until_cond(LIMIT, agreed).expect("converges");
    (net, took)
}

/// Kills the recmaster of a settled cluster and runs until the survivors agree again (new
/// election, lock, recovery); returns the virtual time it took.
fn recover(net: &mut Net) -> Duration {
    let r = net.node(0).recmaster();
    net.crash(r.index());
    net.run_until_cond(LIMIT, agreed).expect("recovers")
}

fn bench_election(c: &mut Criterion) {
    let mut g = c.benchmark_group("election");
    for n in SIZES {
        g.bench_with_input(BenchmarkId::new("converge_from_start", n), &n, |b, &n| {
            b.iter(|| converge(n))
        });
        g.bench_with_input(
            BenchmarkId::new("recmaster_crash_to_recovered", n),
            &n,
            |b, &n| {
                b.iter_batched(
                    || converge(n).0,
                    |mut net| recover(&mut net),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

fn report() {
    println!("\nVirtual time and allocations (counting global allocator, this thread):\n");
    println!("| operation | nodes | virtual time | allocations/op | bytes/op |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for n in SIZES {
        let (a, (mut net, took)): (Allocs, _) = allocations(|| converge(n));
        println!(
            "| converge from start | {n} | {took:?} | {} | {} |",
            a.count, a.bytes
        );
        let (a, took) = allocations(|| recover(&mut net));
        println!(
            "| recmaster crash to recovered | {n} | {took:?} | {} | {} |",
            a.count, a.bytes
        );
    }
    println!();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench_election
}

fn main() {
    report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
