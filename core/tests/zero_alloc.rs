//! The steady state allocates nothing.
//!
//! A counting global allocator (per thread, so tests running in parallel do not disturb each
//! other) watches a node with connected peers through thousands of keepalive intervals: frames
//! are reassembled from a byte stream with `wire::frame_len`, decoded by the node, keepalive
//! ticks fire, and every transmit is encoded into a reused buffer. Any heap allocation in that
//! loop (a `Vec` push, a `format!`, a boxed error) fails the test.

use pharos_core::config::{NodesFile, Tunables};
use pharos_core::control::Request;
use pharos_core::wire::{self, Header, Hello, Message};
use pharos_core::{
    Action, ClientId, ConnId, Event, Generation, Instant, Link, Node, NodeConfig, NodeFlags, Pnn,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

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

const PEERS: u32 = 7;
const INTERVAL_MS: u64 = 100;
const CYCLES: u64 = 12_000;

fn at_ms(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

fn peer_addr(i: u32) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, i as u8 + 1))
}

fn frame(src: u32, message: Message, out: &mut Vec<u8>) {
    let header = Header {
        op: message.op(),
        src: Pnn(src),
        dst: Pnn(0),
        generation: Generation(1),
        request_id: 0,
    };
    wire::encode(&header, &message, out);
}

/// What the shell keeps between events; every buffer is reused.
struct Harness {
    node: Node,
    now: Instant,
    /// Each peer's incoming connection.
    conns: Vec<ConnId>,
    /// One byte stream per peer's incoming connection, as the socket would deliver it.
    streams: Vec<Vec<u8>>,
    /// The write buffer transmits are encoded into.
    out: Vec<u8>,
    sent: u64,
    actions: u64,
}

impl Harness {
    /// Node 0 of a cluster of `PEERS + 1` nodes, every peer connected both ways and greeted.
    fn connected() -> Self {
        let addrs: Vec<Option<IpAddr>> = (0..=PEERS).map(|i| Some(peer_addr(i))).collect();
        let nodes = NodesFile::from_addresses(&addrs).unwrap();
        let mut tunables = Tunables::default();
        tunables
            .set("KeepaliveInterval", &format!("{INTERVAL_MS}ms"))
            .unwrap();
        let config = NodeConfig::new(nodes, Pnn(0), 4379, tunables).unwrap();
        let mut h = Harness {
            node: Node::new(config, 7, at_ms(0)),
            now: at_ms(0),
            conns: (0..=PEERS).map(|p| ConnId(100 + p as u64)).collect(),
            streams: (0..=PEERS).map(|_| Vec::with_capacity(256)).collect(),
            out: Vec::with_capacity(256),
            sent: 0,
            actions: 0,
        };
        h.drain();
        for p in 1..=PEERS {
            h.handle(Event::Connected { peer: Pnn(p) });
            h.handle(Event::Accepted {
                conn: h.conns[p as usize],
                addr: peer_addr(p),
            });
            let mut hello = Vec::new();
            let m = Message::Hello(Hello {
                incarnation: p as u64,
                flags: NodeFlags::empty(),
                capabilities: 0,
            });
            frame(p, m, &mut hello);
            h.handle(Event::Frame {
                link: Link::In(h.conns[p as usize]),
                bytes: &hello,
            });
        }
        for p in 1..=PEERS {
            assert_eq!(h.node.flags_of(Pnn(p)), NodeFlags::empty(), "peer {p}");
        }
        h
    }

    fn handle(&mut self, event: Event<'_>) {
        self.node.handle(self.now, event).unwrap();
        self.drain();
    }

    /// The shell's drain: transmits encoded into the write buffer, then actions.
    fn drain(&mut self) {
        while let Some(t) = self.node.poll_transmit() {
            self.out.clear();
            t.encode(&mut self.out);
            self.sent += 1;
        }
        while let Some(a) = self.node.poll_action() {
            self.actions += 1;
            drop(a);
        }
    }

    /// One keepalive interval: every peer's keepalive arrives (as a byte stream, cut into frames
    /// the way a shell's read path does), then the tick fires at the node's deadline.
    fn cycle(&mut self) {
        for p in 1..=PEERS {
            let s = &mut self.streams[p as usize];
            s.clear();
            frame(
                p,
                Message::Keepalive {
                    flags: NodeFlags::empty(),
                },
                s,
            );
        }
        self.now += std::time::Duration::from_millis(1);
        for p in 1..=PEERS {
            let stream = std::mem::take(&mut self.streams[p as usize]);
            let mut at = 0;
            while let Some(len) = wire::frame_len(&stream[at..]).unwrap() {
                self.handle(Event::Frame {
                    link: Link::In(self.conns[p as usize]),
                    bytes: &stream[at..at + len],
                });
                at += len;
            }
            assert_eq!(at, stream.len());
            self.streams[p as usize] = stream;
        }
        let deadline = self.node.poll_timeout().unwrap();
        assert!(deadline > self.now);
        self.now = deadline;
        self.handle(Event::Timeout);
    }
}

#[test]
fn steady_state_keepalives_allocate_nothing() {
    let mut h = Harness::connected();
    // Warm-up: lets every queue and buffer reach its working size.
    for _ in 0..10 {
        h.cycle();
    }
    let (sent, actions, ticks) = (h.sent, h.actions, h.node.stats().keepalive_ticks);
    let (n, ()) = allocations(|| {
        for _ in 0..CYCLES {
            h.cycle();
        }
    });
    // The loop really was the steady state: one keepalive out per peer per tick, every peer
    // still connected, nothing for the shell to do.
    assert_eq!(h.node.stats().keepalive_ticks - ticks, CYCLES);
    assert_eq!(h.sent - sent, CYCLES * PEERS as u64);
    assert_eq!(h.actions, actions);
    assert!((1..=PEERS).all(|p| h.node.flags_of(Pnn(p)) == NodeFlags::empty()));
    assert_eq!(
        n,
        0,
        "{n} heap allocations in {CYCLES} keepalive intervals ({} events)",
        CYCLES * (PEERS as u64 + 1)
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
    // And it sees the core's own allocations: a control `status` builds a report and a reply.
    let mut h = Harness::connected();
    let (n, ()) = allocations(|| {
        h.handle(Event::Control {
            client: ClientId(1),
            request: Request::Status,
        })
    });
    assert!(n >= 1, "status allocated {n} times");
}

/// A peer that stops talking is declared dead and the node asks for reconnection: the cold path
/// runs, and the steady state returns to zero allocations once the peer is back.
#[test]
fn back_to_zero_after_a_peer_reconnects() {
    let mut h = Harness::connected();
    h.handle(Event::Closed {
        link: Link::Out(Pnn(3)),
    });
    assert!(h.node.flags_of(Pnn(3)).contains(NodeFlags::DISCONNECTED));
    // Reconnect: the retry timer fires, our connect succeeds, the peer connects and greets.
    let retry = h.node.poll_timeout().unwrap();
    h.now = retry.max(h.now + std::time::Duration::from_secs(1));
    h.node.handle(h.now, Event::Timeout).unwrap();
    let mut connect = false;
    while let Some(a) = h.node.poll_action() {
        connect |= matches!(a, Action::Connect { peer: Pnn(3), .. });
    }
    assert!(connect);
    h.handle(Event::Connected { peer: Pnn(3) });
    h.handle(Event::Accepted {
        conn: ConnId(999),
        addr: peer_addr(3),
    });
    let mut hello = Vec::new();
    let m = Message::Hello(Hello {
        incarnation: 33,
        flags: NodeFlags::empty(),
        capabilities: 0,
    });
    frame(3, m, &mut hello);
    h.handle(Event::Frame {
        link: Link::In(ConnId(999)),
        bytes: &hello,
    });
    assert_eq!(h.node.flags_of(Pnn(3)), NodeFlags::empty());
    // From now on peer 3's frames come on its new connection.
    h.conns[3] = ConnId(999);
    for _ in 0..10 {
        h.cycle();
    }
    let (n, ()) = allocations(|| {
        for _ in 0..2_000 {
            h.cycle();
        }
    });
    assert_eq!(n, 0);
    assert_eq!(h.node.flags_of(Pnn(3)), NodeFlags::empty());
}
