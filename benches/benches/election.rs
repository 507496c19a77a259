//! Election convergence and one full recovery, in the simulator's bench preset (virtual time, so
//! the figures are the CPU cost of the protocol and of the simulated network carrying it, not
//! its timeouts), plus allocations per operation.
//!
//! `cargo bench -p pharos-benches --bench election` (see benches/README.md).

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion};
use pharos_benches::{allocations, Allocs, CountingAlloc};
use pharos_core::config::Tunables;
use pharos_core::control::RecoveryMode;
use pharos_core::sim::{Fault, SimConfig, World};
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
fn agreed(w: &World) -> bool {
    let mut running = (0..w.config().nodes).filter_map(|i| w.node(i));
    let Some(first) = running.next() else {
        return false;
    };
    let (r, g) = (first.recmaster(), first.generation());
    r != Pnn::NONE
        && w.node(r.index()).is_some_and(|n| n.is_acting_recmaster())
        && (0..w.config().nodes).filter_map(|i| w.node(i)).all(|n| {
            n.recmaster() == r && n.generation() == g && n.recovery_mode() == RecoveryMode::Normal
        })
}

/// A cluster of `n` from start until it agrees; returns the virtual time it took.
fn converge(n: usize) -> (World, Duration) {
    let mut w = World::new(SimConfig::bench(n).tunables(tunables()));
    let took = w.run_until_cond(LIMIT, agreed).expect("no violation");
    (w, took.expect("converges"))
}

/// Kills the recmaster of a settled cluster and runs until the survivors agree again (new
/// election, lock, recovery); returns the virtual time it took.
fn recover(w: &mut World) -> Duration {
    let r = w.node(0).expect("runs").recmaster();
    w.apply(Fault::Crash(r.index())).expect("no violation");
    let took = w.run_until_cond(LIMIT, agreed).expect("no violation");
    took.expect("recovers")
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
