//! Shared pieces of the pharos benchmarks: a counting allocator, a steady-state fixture
//! ([`Follower`]: one node of a cluster settled in the simulator's bench preset, then driven
//! alone), and the public-IP allocation scenarios ([`ipalloc`]).
//!
//! The allocator is a type, not a registered `#[global_allocator]`: each bench binary that wants
//! allocation counts registers it itself (a program has only one global allocator).

pub mod failover;
pub mod ipalloc;

pub use ipalloc::{addresses, holds_any, scenario, stress, Scenario, Stress};

use pharos_core::config::{NodesFile, Tunables};
use pharos_core::control::{RecoveryMode, Request, Response};
use pharos_core::drive::{Driver, Feedback, Host};
use pharos_core::sim::{SimConfig, World};
use pharos_core::wire::{self, Header, Hello, Keepalive, Message, Op};
use pharos_core::{
    Action, ClientId, Event, Generation, Instant, Link, Node, NodeConfig, NodeFlags, Pnn,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// Wraps [`System`], counting this thread's allocations (and reallocations) and their bytes.
///
/// Per-thread counters keep measurements independent of other threads (criterion's, the test
/// harness's). Register with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

thread_local! {
    // `const`: touching these never allocates.
    static COUNT: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

fn record(bytes: usize) {
    // `try_with`: allocations also happen while thread-locals are torn down.
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches no allocator state.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Heap allocations made by one piece of code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Allocs {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`.
    pub count: u64,
    /// Bytes asked for by those calls (the new size for `realloc`).
    pub bytes: u64,
}

impl std::ops::AddAssign for Allocs {
    fn add_assign(&mut self, rhs: Allocs) {
        self.count += rhs.count;
        self.bytes += rhs.bytes;
    }
}

/// Runs `f` and reports the allocations this thread made meanwhile. Counts are zero unless
/// [`CountingAlloc`] is the global allocator.
pub fn allocations<R>(f: impl FnOnce() -> R) -> (Allocs, R) {
    let (c0, b0) = (COUNT.with(Cell::get), BYTES.with(Cell::get));
    let r = f();
    let a = Allocs {
        count: COUNT.with(Cell::get) - c0,
        bytes: BYTES.with(Cell::get) - b0,
    };
    (a, r)
}

/// The configuration of node 0 in a cluster of `peers + 1` nodes.
pub fn config(peers: u32, tunables: Tunables) -> NodeConfig {
    let addrs: Vec<Option<IpAddr>> = (0..=peers as usize)
        .map(|i| {
            Some(IpAddr::V4(Ipv4Addr::new(
                10,
                0,
                (i >> 8) as u8,
                i as u8 + 1,
            )))
        })
        .collect();
    let nodes = NodesFile::from_addresses(&addrs).expect("valid nodes");
    NodeConfig::new(nodes, Pnn(0), 4379, tunables).expect("node 0 is live")
}

/// Tunables for benchmarks that tick one node without feeding it frames every interval: peers
/// survive 1000 silent intervals (the largest KeepaliveLimit).
pub fn patient() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveLimit", "1000").expect("in range");
    t
}

/// Encodes one frame from `src` to node 0.
pub fn frame(src: u32, message: Message) -> Vec<u8> {
    let header = Header {
        op: message.op(),
        src: Pnn(src),
        dst: Pnn(0),
        generation: Generation(2),
        request_id: 0,
    };
    let mut v = Vec::new();
    wire::encode(&header, &message, &mut v);
    v
}

/// A keepalive as a follower of node 2 sends it.
pub fn keepalive() -> Message {
    Message::Keepalive(Keepalive {
        flags: NodeFlags::empty(),
        recmaster: Pnn(2),
        recovery_mode: RecoveryMode::Normal,
        liveness: wire::Liveness {
            interval_ms: 100,
            limit: 3,
        },
        stamp: 1,
        echo: 0,
    })
}

/// A hello.
pub fn hello(incarnation: u64) -> Message {
    Message::Hello(Hello {
        incarnation,
        flags: NodeFlags::empty(),
        capabilities: wire::CAP_RECMASTER,
        start_stamp: 1_700_000_000_000,
        liveness: wire::Liveness {
            interval_ms: 100,
            limit: 3,
        },
    })
}

/// A shell that drops everything (for measuring one node alone), counting frames and keeping
/// the last control reply.
#[derive(Default)]
pub struct Detached {
    /// Frames the node sent.
    pub sent: usize,
    /// The last reply to a control request.
    pub reply: Option<Response>,
}

impl Host for Detached {
    fn transmit(&mut self, _peer: Pnn, frame: &[u8]) {
        std::hint::black_box(frame);
        self.sent += 1;
    }

    fn act(&mut self, action: Action, _feedback: &mut Feedback) {
        match action {
            Action::Reply { response, .. } => self.reply = Some(response),
            other => {
                std::hint::black_box(&other);
            }
        }
    }
}

/// Node 0 of a cluster of `peers + 1` nodes settled in the simulator's bench preset, then
/// taken out of the world and driven alone through the drive path: it is a follower (the
/// biggest PNN wins the election), and the last keepalive each peer sent it is kept for replay,
/// so the node can be driven through its steady state with no world around it (the figures
/// are the node's and the drive path's work only).
pub struct Follower {
    node: Node,
    now: Instant,
    driver: Driver,
    keepalives: Vec<(Link, Vec<u8>)>,
}

impl Follower {
    /// Settles the cluster, captures the keepalives node 0 receives for two intervals, and
    /// takes node 0 out of the world.
    pub fn new(peers: u32, tunables: Tunables) -> Self {
        let mut w = World::new(SimConfig::bench(peers as usize + 1).tunables(tunables));
        let took = w
            .run_until_cond(Duration::from_secs(60), |w| w.settled())
            .expect("no violation");
        assert!(took.is_some(), "the cluster did not settle in 60 s");
        let node0 = w.node(0).expect("node 0 runs");
        assert_ne!(node0.recmaster(), Pnn(0), "node 0 must be a follower");
        w.capture(0);
        let interval = w.config().tunables.keepalive_interval;
        w.run_for(interval * 2).expect("no violation");
        // The last keepalive from each peer, in PNN order.
        let mut last: Vec<Option<(Link, Vec<u8>)>> = vec![None; peers as usize + 1];
        for c in w.take_captured() {
            if wire::decode(&c.bytes).is_ok_and(|(h, _)| h.op == Op::Keepalive) {
                last[c.from] = Some((c.link, c.bytes));
            }
        }
        let keepalives: Vec<(Link, Vec<u8>)> = last.into_iter().flatten().collect();
        assert_eq!(
            keepalives.len(),
            peers as usize,
            "a keepalive from every peer"
        );
        let now = w.now();
        let node = w.into_node(0).expect("node 0 runs");
        Follower {
            node,
            now,
            driver: Driver::new(),
            keepalives,
        }
    }

    /// The node measured.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Number of peers.
    pub fn peers(&self) -> usize {
        self.keepalives.len()
    }

    /// Whether node 0 sees every peer connected.
    pub fn all_connected(&self) -> bool {
        (0..=self.peers()).all(|p| self.node.flags_of(Pnn(p as u32)) == NodeFlags::empty())
    }

    /// Node 0 handles `event` now, through the drive path, with everything it asks dropped.
    fn handle(&mut self, event: Event<'_>) -> Detached {
        let mut shell = Detached::default();
        self.driver
            .drive(&mut self.node, self.now, event, &mut shell)
            .expect("valid input");
        shell
    }

    /// Peer `k`'s (0-based) keepalive arrives at node 0; outputs drained (there are none in the
    /// steady state). Returns the number of transmits.
    pub fn receive_keepalive(&mut self, k: usize) -> usize {
        let (link, bytes) = &self.keepalives[k];
        let mut shell = Detached::default();
        let event = Event::Frame { link: *link, bytes };
        self.driver
            .drive(&mut self.node, self.now, event, &mut shell)
            .expect("valid input");
        shell.sent
    }

    /// A keepalive from every peer.
    pub fn refresh(&mut self) {
        for k in 0..self.peers() {
            self.receive_keepalive(k);
        }
    }

    /// Time jumps to node 0's deadline (its next keepalive tick), `Timeout` is handled and the
    /// keepalives are encoded by the drive path. Returns the number of transmits.
    pub fn tick(&mut self) -> usize {
        let t = self.node.poll_timeout().expect("a deadline");
        self.now = self.now.max(t);
        self.handle(Event::Timeout).sent
    }

    /// A control `status` request to node 0, answered as the JSON line the shell would write.
    pub fn status_json(&mut self) -> String {
        let event = Event::Control {
            client: ClientId(1),
            request: Request::Status,
        };
        self.handle(event)
            .reply
            .map(|r| pharos_host::schema::encode(&r))
            .unwrap_or_default()
    }
}
