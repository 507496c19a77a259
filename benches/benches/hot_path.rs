//! pharos-core benchmarks: the wire codec, the keepalive hot path, timer ticks, the
//! simulator's throughput, and the cold paths; plus allocations per operation, printed first.
//!
//! `cargo bench -p pharos-benches --bench hot_path` (see benches/README.md).

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use pharos_benches::{
    allocations, config, frame, hello, keepalive, patient, Allocs, CountingAlloc, Follower,
};
use pharos_core::config::Tunables;
use pharos_core::control::Request;
use pharos_core::sim::{SimConfig, World};
use pharos_core::wire::{self, Header};
use pharos_core::{Generation, Instant, Node, Pnn};
use std::hint::black_box;
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Peer counts for the per-node benchmarks.
const PEERS: [u32; 3] = [2, 16, 64];
/// Cluster sizes for the simulator.
const SIM_NODES: [usize; 2] = [3, 7];
/// Cluster sizes for whole-cluster cold paths.
const CLUSTER_NODES: [usize; 2] = [3, 7];

fn header(m: &wire::Message) -> Header {
    Header {
        op: m.op(),
        src: Pnn(1),
        dst: Pnn(0),
        generation: Generation(1),
        request_id: 0,
    }
}

fn bench_wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    for (name, m) in [("keepalive", keepalive()), ("hello", hello(7))] {
        let h = header(&m);
        let mut out = Vec::with_capacity(64);
        g.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                out.clear();
                wire::encode(black_box(&h), black_box(&m), &mut out);
                black_box(&out);
            })
        });
        let mut buf = [0u8; 64];
        g.bench_function(format!("encode_to_slice_{name}"), |b| {
            b.iter(|| wire::encode_to_slice(black_box(&h), black_box(&m), &mut buf))
        });
        let bytes = frame(1, m);
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| wire::decode(black_box(&bytes)))
        });
    }
    let bytes = frame(1, keepalive());
    g.bench_function("frame_len", |b| {
        b.iter(|| wire::frame_len(black_box(&bytes)))
    });
    g.finish();
}

fn bench_hot_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("hot_path");
    for n in PEERS {
        // Frames from every peer in turn: `Link::In` lookup cost is averaged over the table.
        g.bench_with_input(BenchmarkId::new("receive_keepalive", n), &n, |b, &n| {
            let mut s = Follower::new(n, Tunables::default());
            let mut k = 0;
            b.iter(|| {
                k = (k + 1) % n as usize;
                s.receive_keepalive(k)
            });
            assert!(s.all_connected());
        });
    }
    g.finish();
}

/// Runs `iters` keepalive ticks timed, refreshing the peers (untimed) before they could reach
/// KeepaliveLimit, so every tick is a steady-state tick with all peers connected.
fn timed_ticks(s: &mut Follower, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let k = left.min(500);
        let start = std::time::Instant::now();
        for _ in 0..k {
            black_box(s.tick());
        }
        total += start.elapsed();
        s.refresh();
        left -= k;
    }
    total
}

fn bench_timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers");
    for n in PEERS {
        g.bench_with_input(BenchmarkId::new("tick", n), &n, |b, &n| {
            let mut s = Follower::new(n, patient());
            b.iter_custom(|iters| timed_ticks(&mut s, iters));
            assert!(s.all_connected());
        });
        g.bench_with_input(BenchmarkId::new("poll_timeout", n), &n, |b, &n| {
            let s = Follower::new(n, patient());
            b.iter(|| black_box(s.node()).poll_timeout());
        });
    }
    g.finish();
}

fn sim_tunables() -> Tunables {
    // The test suite's setting: ten keepalive intervals per simulated second.
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").expect("in range");
    t
}

/// A world of `cfg`, run until every node sees every other connected.
fn formed(cfg: SimConfig) -> World {
    let mut w = World::new(cfg.tunables(sim_tunables()));
    let took = w
        .run_until_cond(Duration::from_secs(2), |w| w.all_connected())
        .expect("no violation");
    assert!(took.is_some(), "cluster forms");
    w
}

fn bench_sim(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    for n in SIM_NODES {
        // One simulated second of a formed cluster: elements/s = node-seconds per wall second.
        // `run_1s`: the quiet preset the tests use (100 us latency, trace tail, every invariant
        // checked); `run_1s_bench`: the bench preset (no latency, trace or checks).
        g.throughput(Throughput::Elements(n as u64));
        for (name, cfg) in [
            ("run_1s", SimConfig::quiet as fn(usize) -> SimConfig),
            ("run_1s_bench", SimConfig::bench),
        ] {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                let mut w = formed(cfg(n));
                b.iter(|| w.run_for(Duration::from_secs(1)).expect("no violation"));
                assert!(w.all_connected());
            });
        }
    }
    g.finish();
    let mut g = c.benchmark_group("sim_formation");
    for n in SIM_NODES {
        // From start to every node connected to every other (about 0.3 ms of virtual time).
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| formed(SimConfig::quiet(n)));
        });
    }
    g.finish();
}

/// A cluster of `n` settled in the bench preset.
fn settled(n: usize) -> World {
    let mut w = World::new(SimConfig::bench(n));
    let took = w
        .run_until_cond(Duration::from_secs(60), |w| w.settled())
        .expect("no violation");
    assert!(took.is_some(), "the cluster did not settle");
    w
}

/// Node 0's connection to node 1 is reset (both ends see EOF), and the world runs until it has
/// settled again: both sides declare the other dead, reconnect, say Hello, and go through
/// whatever election or recovery the membership change causes.
fn reset_and_resettle(w: &mut World) {
    w.reset(0, 1).expect("no violation");
    // Zero latency: the resets arrive now.
    w.run_for(Duration::ZERO).expect("no violation");
    assert!(!w.settled(), "the reset was noticed");
    let took = w
        .run_until_cond(Duration::from_secs(60), |w| w.settled())
        .expect("no violation");
    assert!(took.is_some(), "the cluster did not settle again");
}

fn bench_cold(c: &mut Criterion) {
    let mut g = c.benchmark_group("cold");
    for n in PEERS {
        let cfg = config(n, Tunables::default());
        g.bench_with_input(BenchmarkId::new("node_new", n), &n, |b, _| {
            b.iter_batched(
                || cfg.clone(),
                |cfg| Node::new(cfg, 1, Instant::ZERO),
                BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("control_status", n), &n, |b, &n| {
            let mut s = Follower::new(n, Tunables::default());
            b.iter(|| s.status_json());
        });
    }
    for n in CLUSTER_NODES {
        g.bench_with_input(BenchmarkId::new("link_reset_resettle", n), &n, |b, &n| {
            let mut w = settled(n);
            b.iter(|| reset_and_resettle(&mut w));
        });
    }
    g.bench_function("request_parse_setvar", |b| {
        b.iter(|| Request::parse(black_box("setvar KeepaliveInterval 100ms")))
    });
    g.finish();
}

/// Average allocations of `op` over `k` runs after two warm-up runs.
fn per_op(k: u64, mut op: impl FnMut()) -> (f64, f64) {
    op();
    op();
    let (a, ()) = allocations(|| {
        for _ in 0..k {
            op();
        }
    });
    (a.count as f64 / k as f64, a.bytes as f64 / k as f64)
}

/// Prints allocations per operation as a Markdown table, and fails if the hot path allocates.
fn allocation_report() {
    const K: u64 = 1000;
    let mut rows: Vec<(String, (f64, f64))> = Vec::new();

    let m = keepalive();
    let h = header(&m);
    let mut out = Vec::with_capacity(64);
    rows.push((
        "wire: encode keepalive (reused Vec)".into(),
        per_op(K, || {
            out.clear();
            wire::encode(&h, &m, &mut out);
        }),
    ));
    let bytes = frame(1, m);
    rows.push((
        "wire: decode keepalive".into(),
        per_op(K, || {
            black_box(wire::decode(black_box(&bytes)).ok());
        }),
    ));
    for n in PEERS {
        let mut s = Follower::new(n, patient());
        let mut k = 0;
        let hot = per_op(K, || {
            k = (k + 1) % n as usize;
            s.receive_keepalive(k);
        });
        assert_eq!(hot.0, 0.0, "receiving a keepalive allocates");
        rows.push((format!("hot: receive keepalive + drain, {n} peers"), hot));
        let tick = per_op(100, || {
            s.tick();
        });
        assert_eq!(tick.0, 0.0, "a keepalive tick allocates");
        rows.push((format!("hot: keepalive tick + drain, {n} peers"), tick));
    }
    for n in PEERS {
        let cfg = config(n, Tunables::default());
        let mut total = Allocs::default();
        for _ in 0..100 {
            let c = cfg.clone();
            let (a, node) = allocations(|| Node::new(c, 1, Instant::ZERO));
            drop(node);
            total += a;
        }
        rows.push((
            format!("cold: Node::new, {n} peers"),
            (total.count as f64 / 100.0, total.bytes as f64 / 100.0),
        ));
        let mut s = Follower::new(n, Tunables::default());
        rows.push((
            format!("cold: control status, reply as JSON, {n} peers"),
            per_op(100, || {
                black_box(s.status_json());
            }),
        ));
    }
    for n in CLUSTER_NODES {
        let mut w = settled(n);
        let generation = |w: &World| w.node(0).expect("runs").generation().0;
        let g0 = generation(&w);
        let allocs = per_op(20, || reset_and_resettle(&mut w));
        // Recoveries per reset (the two warm-up resets included).
        // The generation's counter is its high 24 bits (the low 8 name the recmaster).
        let recoveries = f64::from((generation(&w) >> 8) - (g0 >> 8)) / 22.0;
        rows.push((
            format!(
                "cold: link reset, whole simulated cluster until settled again ({recoveries:.1} recoveries), {n} nodes"
            ),
            allocs,
        ));
    }
    for line in ["status", "setvar KeepaliveInterval 100ms"] {
        rows.push((
            format!("cold: Request::parse({line:?})"),
            per_op(K, || {
                black_box(Request::parse(black_box(line)).ok());
            }),
        ));
    }

    println!("\nAllocations per operation (counting global allocator, this thread):\n");
    println!("| operation | allocations/op | bytes/op |");
    println!("| --- | ---: | ---: |");
    for (name, (count, bytes)) in rows {
        println!("| {name} | {count:.2} | {bytes:.0} |");
    }
    println!();
}

criterion_group! {
    name = benches;
    // Short runs: the whole suite finishes in a couple of minutes on 2 cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = bench_wire, bench_hot_path, bench_timers, bench_sim, bench_cold
}

fn main() {
    allocation_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
