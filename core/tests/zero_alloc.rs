//! The steady state allocates nothing.
//!
//! A counting global allocator (per thread, so tests running in parallel do not disturb each
//! other) watches a settled cluster of four nodes in one thread (every node connected to every
//! other, a recovery master elected and holding the lock, one recovery done) through 10,000
//! keepalive intervals: keepalive ticks at each node's deadline, every transmit encoded into a
//! reused write buffer and cut with `wire::frame_len`, every frame decoded and handled by its
//! receiver. Any heap allocation in that loop (a `Vec` push, a `format!`, a boxed error) fails
//! the test.

// The mesh is shared with the benchmarks, which measure the same steady state.
#[allow(dead_code)]
#[path = "../../benches/src/mesh.rs"]
mod mesh;

use mesh::Mesh;
use pharos_core::config::Tunables;
use pharos_core::control::Request;
use pharos_core::{ClientId, Event};
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

/// Runs `intervals` keepalive intervals of a settled mesh and checks it stayed settled and
/// quiet (no connect, close or lock request) while carrying traffic. Returns the allocations.
fn run_steady(m: &mut Mesh, intervals: u32) -> u64 {
    let interval = m.nodes[0].tunables().keepalive_interval;
    let until = m.now + interval * intervals;
    let ticks = |m: &Mesh| -> u64 { m.nodes.iter().map(|n| n.stats().keepalive_ticks).sum() };
    let (ticks0, frames0, disturbances0) = (ticks(m), m.net.frames, m.net.disturbances);
    let generation = m.nodes[0].generation();
    let (n, ()) = allocations(|| m.run_until(until));
    let (ticks, frames) = (ticks(m) - ticks0, m.net.frames - frames0);
    // Every node ticked every interval and sent a keepalive to every peer each time.
    assert!(
        ticks >= (NODES as u64) * u64::from(intervals),
        "{ticks} ticks"
    );
    assert!(frames >= ticks * (NODES as u64 - 1), "{frames} frames");
    assert_eq!(
        m.net.disturbances, disturbances0,
        "connects, closes or lock requests"
    );
    assert!(m.settled(), "the cluster left its steady state");
    assert_eq!(m.nodes[0].generation(), generation, "a recovery ran");
    n
}

#[test]
fn steady_state_cluster_allocates_nothing() {
    let mut m = Mesh::settled_cluster(NODES, tunables());
    // Warm-up: lets every queue and buffer reach its working size.
    run_steady(&mut m, 100);
    let frames = m.net.frames;
    let n = run_steady(&mut m, INTERVALS);
    assert_eq!(
        n,
        0,
        "{n} heap allocations in {INTERVALS} keepalive intervals ({} frames)",
        m.net.frames - frames
    );
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
    let mut m = Mesh::settled_cluster(NODES, tunables());
    let (n, _) = allocations(|| {
        m.handle_detached(
            0,
            Event::Control {
                client: ClientId(1),
                request: Request::Status,
            },
        )
    });
    assert!(n >= 1, "status allocated {n} times");
}

/// A connection reset is a cold path (death, reconnection, maybe a recovery); once the cluster
/// has settled again, the steady state is back to zero allocations.
#[test]
fn back_to_zero_after_a_connection_reset() {
    let mut m = Mesh::settled_cluster(NODES, tunables());
    m.break_link(0, 1);
    m.deliver_all();
    assert!(!m.settled());
    let limit = m.now + std::time::Duration::from_secs(30);
    while !m.settled() {
        assert!(m.now < limit, "did not settle again");
        m.step();
    }
    run_steady(&mut m, 100);
    assert_eq!(run_steady(&mut m, 2_000), 0);
}
