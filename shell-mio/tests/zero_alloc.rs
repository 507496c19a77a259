//! The mio shell's steady state allocates nothing: two real daemons on 127.0.0.1 and 127.0.0.2,
//! stepped in one thread over real loopback sockets (reads, frame reassembly, the core,
//! encoding into write buffers, writes, timers), under a counting allocator.

mod common;

use common::*;
use pharos_host::settings::{Overrides, Settings};
use pharos_mio::daemon::Daemon;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
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

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn daemon(dir: &Scratch, port: u16, i: u8) -> Daemon {
    let o = Overrides {
        nodes: Some(dir.0.join("nodes")),
        node_address: Some(format!("127.0.0.{i}").parse().unwrap()),
        port: Some(port),
        socket: Some(dir.0.join(format!("node{i}.sock"))),
        tunables: [
            "KeepaliveInterval=10ms",
            "KeepaliveLimit=100",
            "ElectionTimeout=50ms",
            "RecoverInterval=50ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    };
    Daemon::new(&Settings::load(&o).unwrap()).unwrap()
}

fn step(a: &mut Daemon, b: &mut Daemon) {
    assert!(a.run_once(Some(Duration::from_millis(1))).unwrap());
    assert!(b.run_once(Some(Duration::from_millis(1))).unwrap());
}

#[test]
fn steady_state_daemons_allocate_nothing() {
    let dir = Scratch::new("zero-alloc");
    write(&dir.0.join("nodes"), "127.0.0.1\n127.0.0.2\n");
    let port = free_port(2);
    let (mut a, mut b) = (daemon(&dir, port, 1), daemon(&dir, port, 2));

    // Form the cluster, elect, recover; then let it settle.
    let start = Instant::now();
    loop {
        step(&mut a, &mut b);
        let settled = a.node().recmaster() != pharos_core::Pnn::NONE
            && a.node().recmaster() == b.node().recmaster()
            && a.node().generation() == b.node().generation()
            && a.node().generation().0 > 1;
        if settled {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "cluster did not settle"
        );
    }
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(500) {
        step(&mut a, &mut b);
    }

    let frames_before = a.node().stats().frames_received + b.node().stats().frames_received;
    let ticks_before = a.node().stats().keepalive_ticks;
    let before = allocations();
    let measured = Instant::now();
    while measured.elapsed() < Duration::from_secs(2) {
        step(&mut a, &mut b);
    }
    let allocated = allocations() - before;
    let frames =
        a.node().stats().frames_received + b.node().stats().frames_received - frames_before;
    let ticks = a.node().stats().keepalive_ticks - ticks_before;
    eprintln!("{frames} frames, {ticks} keepalive ticks on node 0, {allocated} allocations");
    assert!(
        frames >= 100 && ticks >= 50,
        "the window must carry traffic: {frames} frames, {ticks} ticks"
    );
    assert_eq!(
        allocated, 0,
        "allocations in the steady state over {frames} frames"
    );

    // The counter does see allocations (positive control).
    let before = allocations();
    let v: Vec<u64> = Vec::with_capacity(8);
    drop(std::hint::black_box(v));
    assert!(allocations() > before);
}
