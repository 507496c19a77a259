//! Shared pieces of the pharos benchmarks: a counting allocator and steady-state fixtures.
//!
//! The allocator is a type, not a registered `#[global_allocator]`: each bench binary that wants
//! allocation counts registers it itself (a program has only one global allocator).

use pharos_core::config::{NodesFile, Tunables};
use pharos_core::control::Request;
use pharos_core::wire::{self, Header, Hello, Message};
use pharos_core::{
    Action, ClientId, ConnId, Event, Generation, Instant, Link, Node, NodeConfig, NodeFlags, Pnn,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

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

/// The address of node `i` in the fixtures: 10.0.x.y.
pub fn node_addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8 + 1))
}

/// The configuration of node 0 in a cluster of `peers + 1` nodes.
pub fn config(peers: u32, tunables: Tunables) -> NodeConfig {
    let addrs: Vec<Option<IpAddr>> = (0..=peers).map(|i| Some(node_addr(i))).collect();
    let nodes = NodesFile::from_addresses(&addrs).expect("valid nodes");
    NodeConfig::new(nodes, Pnn(0), 4379, tunables).expect("node 0 is live")
}

/// Tunables for benchmarks that tick without feeding frames: peers survive 1000 silent
/// intervals (the largest KeepaliveLimit).
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
        generation: Generation(1),
        request_id: 0,
    };
    let mut v = Vec::new();
    wire::encode(&header, &message, &mut v);
    v
}

/// A keepalive with no flags.
pub fn keepalive() -> Message {
    Message::Keepalive {
        flags: NodeFlags::empty(),
    }
}

/// A hello.
pub fn hello(incarnation: u64) -> Message {
    Message::Hello(Hello {
        incarnation,
        flags: NodeFlags::empty(),
        capabilities: 0,
    })
}

/// Node 0 with every peer connected both ways, driven the way a shell drives it: transmits are
/// encoded into one reused write buffer, actions are taken and dropped.
pub struct Steady {
    /// The node.
    pub node: Node,
    /// Current time.
    pub now: Instant,
    peers: u32,
    conns: Vec<ConnId>,
    next_conn: u64,
    keepalives: Vec<Vec<u8>>,
    hellos: Vec<Vec<u8>>,
    out: Vec<u8>,
}

impl Steady {
    /// Node 0 of `peers + 1` nodes, every peer connected (our connect done, its connection
    /// accepted, its Hello received), all queues drained.
    pub fn new(peers: u32, tunables: Tunables) -> Self {
        let now = Instant::from_nanos(1_000_000_000);
        let mut s = Steady {
            node: Node::new(config(peers, tunables), 1, now),
            now,
            peers,
            conns: (0..=peers).map(|p| ConnId(p as u64)).collect(),
            next_conn: peers as u64 + 1,
            keepalives: (0..=peers).map(|p| frame(p, keepalive())).collect(),
            hellos: (0..=peers).map(|p| frame(p, hello(p as u64))).collect(),
            out: Vec::with_capacity(1024),
        };
        s.drain();
        for p in 1..=peers {
            s.connect(p);
        }
        assert!(s.all_connected());
        s
    }

    /// Number of peers.
    pub fn peers(&self) -> u32 {
        self.peers
    }

    /// Whether every peer is connected.
    pub fn all_connected(&self) -> bool {
        (1..=self.peers).all(|p| self.node.flags_of(Pnn(p)) == NodeFlags::empty())
    }

    fn handle(&mut self, event: Event<'_>) {
        self.node.handle(self.now, event).expect("valid input");
    }

    /// The shell's drain: every transmit encoded into the reused write buffer, then every
    /// action taken. Returns the number of transmits.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(t) = self.node.poll_transmit() {
            self.out.clear();
            t.encode(&mut self.out);
            std::hint::black_box(&self.out);
            n += 1;
        }
        while let Some(a) = self.node.poll_action() {
            std::hint::black_box(&a);
        }
        n
    }

    /// One keepalive frame from `peer` arrives on its connection; outputs drained.
    pub fn receive_keepalive(&mut self, peer: u32) {
        let p = peer as usize;
        let bytes = std::mem::take(&mut self.keepalives[p]);
        self.handle(Event::Frame {
            link: Link::In(self.conns[p]),
            bytes: &bytes,
        });
        self.keepalives[p] = bytes;
        self.drain();
    }

    /// A keepalive from every peer.
    pub fn refresh(&mut self) {
        for p in 1..=self.peers {
            self.receive_keepalive(p);
        }
    }

    /// Time jumps to the node's deadline (the next keepalive tick), `Timeout` is handled and the
    /// keepalives drained. Returns the number of transmits.
    pub fn tick(&mut self) -> usize {
        self.now = self.node.poll_timeout().expect("a deadline").max(self.now);
        self.handle(Event::Timeout);
        self.drain()
    }

    /// A control `status` request, answered as the JSON line the shell would write.
    pub fn status_json(&mut self) -> String {
        self.handle(Event::Control {
            client: ClientId(1),
            request: Request::Status,
        });
        let mut json = String::new();
        while let Some(a) = self.node.poll_action() {
            if let Action::Reply { response, .. } = a {
                json = response.to_json();
            }
        }
        json
    }

    /// Our connect to `peer` succeeds, it connects to us and says Hello.
    fn connect(&mut self, peer: u32) {
        let p = peer as usize;
        self.handle(Event::Connected { peer: Pnn(peer) });
        self.drain();
        self.handle(Event::Accepted {
            conn: self.conns[p],
            addr: node_addr(peer),
        });
        self.drain();
        let bytes = std::mem::take(&mut self.hellos[p]);
        self.handle(Event::Frame {
            link: Link::In(self.conns[p]),
            bytes: &bytes,
        });
        self.hellos[p] = bytes;
        self.drain();
    }

    /// `peer` drops our connection (EOF), the node declares it dead, waits ReconnectInterval,
    /// asks to reconnect, and the peer comes back on a new incoming connection.
    pub fn reconnect(&mut self, peer: u32) {
        self.handle(Event::Closed {
            link: Link::Out(Pnn(peer)),
        });
        self.drain();
        self.now += self.node.tunables().reconnect_interval;
        self.handle(Event::Timeout);
        self.drain();
        self.conns[peer as usize] = ConnId(self.next_conn);
        self.next_conn += 1;
        self.connect(peer);
        assert_eq!(self.node.flags_of(Pnn(peer)), NodeFlags::empty());
    }

    /// Tunables for [`Steady::reconnect`] loops: a fast reconnect, and keepalive ticks rare
    /// enough (hourly) that the other peers never go silent for long.
    pub fn reconnect_tunables() -> Tunables {
        let mut t = patient();
        t.set("ReconnectInterval", "10ms").expect("in range");
        t.set("KeepaliveInterval", "3600s").expect("in range");
        t
    }
}
