//! The steady state allocates nothing.
//!
//! A counting global allocator (per thread, so tests running in parallel do not disturb each
//! other) watches a settled cluster of four nodes in the simulator (every node connected to
//! every other, a recovery master elected and holding the lock, one recovery done) through
//! 10,000 keepalive intervals: keepalive ticks at each node's deadline, every transmit encoded
//! by the drive path and carried by the simulated network, every frame decoded and handled by
//! its receiver. Any heap allocation in that loop, in a node or in the world (a `Vec` push, a
//! `format!`, a boxed error, a queue that grows), fails the test. The world runs its bench
//! preset (zero latency, no trace, no invariant checks), as the benchmarks of the same steady
//! state do; a second test keeps the trace tail and every invariant on.

use core::time::Duration;
use pharos_core::config::Tunables;
use pharos_core::control::Request;
use pharos_core::sim::{SimConfig, World};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // `const` so that touching it never allocates (a lazy thread-local would).
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches no allocator state.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCS.with(Cell::get);
    let r = f();
    (ALLOCS.with(Cell::get) - before, r)
}

const NODES: usize = 4;
const INTERVALS: u32 = 10_000;

fn tunables() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t
}

/// A world of `cfg` run until it settled.
fn settled(cfg: SimConfig) -> World {
    let mut w = World::new(cfg.tunables(tunables()));
    let took = w
        .run_until_cond(Duration::from_secs(60), |w| w.settled())
        .unwrap();
    assert!(took.is_some(), "the cluster did not settle in 60 s");
    w
}

fn sum(w: &World, f: impl Fn(&pharos_core::node::Stats) -> u64) -> u64 {
    (0..NODES).map(|i| f(w.node(i).unwrap().stats())).sum()
}

/// Runs `intervals` keepalive intervals of a settled world and checks it stayed settled and
/// quiet (no connection opened, no lock granted, no recovery) while carrying traffic. Returns
/// the allocations.
fn run_steady(w: &mut World, intervals: u32) -> u64 {
    let interval = w.config().tunables.keepalive_interval;
    let ticks0 = sum(w, |s| s.keepalive_ticks);
    let frames0 = sum(w, |s| s.frames_received);
    let (connections0, grants0) = (w.net_stats().connections, w.lock_grants());
    let generation = w.node(0).unwrap().generation();
    let (n, r) = allocations(|| w.run_for(interval * intervals));
    r.unwrap();
    let ticks = sum(w, |s| s.keepalive_ticks) - ticks0;
    let frames = sum(w, |s| s.frames_received) - frames0;
    // Every node ticked every interval and sent a keepalive to every peer each time.
    assert!(
        ticks >= (NODES as u64) * u64::from(intervals),
        "{ticks} ticks"
    );
    assert!(frames >= ticks * (NODES as u64 - 1), "{frames} frames");
    assert_eq!(
        w.net_stats().connections,
        connections0,
        "connections opened"
    );
    assert_eq!(w.lock_grants(), grants0, "lock granted again");
    assert!(w.settled(), "the cluster left its steady state");
    assert_eq!(
        w.node(0).unwrap().generation(),
        generation,
        "a recovery ran"
    );
    n
}

#[test]
fn steady_state_cluster_allocates_nothing() {
    let mut w = settled(SimConfig::bench(NODES));
    // Warm-up: lets every queue and buffer reach its working size.
    run_steady(&mut w, 100);
    let frames = sum(&w, |s| s.frames_received);
    let n = run_steady(&mut w, INTERVALS);
    assert_eq!(
        n,
        0,
        "{n} heap allocations in {INTERVALS} keepalive intervals ({} frames)",
        sum(&w, |s| s.frames_received) - frames
    );
}

/// With the trace's tail kept (the line buffers are reused) and every invariant checked after
/// every step, the simulator's steady state allocates nothing either.
#[test]
fn steady_state_with_trace_and_checks_allocates_nothing() {
    let mut w = settled(SimConfig::quiet(NODES));
    run_steady(&mut w, 100);
    assert_eq!(run_steady(&mut w, 2_000), 0);
}

/// The counter sees allocations on this thread, so a zero above means something.
#[test]
fn positive_control_counter_sees_allocations() {
    let (n, v) = allocations(|| {
        // What a keepalive-path regression would look like.
        let mut v: Vec<u64> = Vec::new();
        v.extend(std::hint::black_box([1]));
        v
    });
    assert_eq!(n, 1);
    drop(v);
    // And it sees the core's own allocations: a control `status` builds a report.
    let mut w = settled(SimConfig::bench(NODES));
    let (n, reply) = allocations(|| w.control(0, Request::Status));
    assert!(reply.is_some());
    assert!(n >= 1, "status allocated {n} times");
}

/// A connection reset is a cold path (death, reconnection, maybe a recovery); once the cluster
/// has settled again, the steady state is back to zero allocations.
#[test]
fn back_to_zero_after_a_connection_reset() {
    let mut w = settled(SimConfig::bench(NODES));
    w.reset(0, 1).unwrap();
    // Zero latency: the resets arrive now.
    w.run_for(Duration::ZERO).unwrap();
    assert!(!w.settled());
    let took = w
        .run_until_cond(Duration::from_secs(30), |w| w.settled())
        .unwrap();
    assert!(took.is_some(), "did not settle again");
    run_steady(&mut w, 100);
    assert_eq!(run_steady(&mut w, 2_000), 0);
}
