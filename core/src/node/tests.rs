//! Rules of transport and health, one test each, with explicit time.

use super::*;
use crate::config::NodesFile;
use crate::control::Request;
use crate::sim::{Fault, SimConfig, World};
use crate::types::{ClientId, ConnId, Link};
use crate::wire::{self, Header};
use crate::wire::{Hello, Keepalive, Message, CAP_RECMASTER};
use alloc::string::ToString;
use alloc::vec;
use core::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn tunables() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t.set("KeepaliveLimit", "3").unwrap();
    t
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn t(ms: u64) -> Instant {
    Instant::from_nanos(ms * 1_000_000)
}

/// Node 0 of "127.0.0.1, 127.0.0.2, #deleted, 127.0.0.4".
fn node0() -> Node {
    let nodes = NodesFile::parse("127.0.0.1\n127.0.0.2\n#127.0.0.3\n127.0.0.4\n").unwrap();
    Node::new(
        NodeConfig::new(nodes, Pnn(0), 4379, tunables()).unwrap(),
        1,
        t(0),
    )
}

fn actions(n: &mut Node) -> Vec<Action> {
    let mut v = Vec::new();
    while let Some(a) = n.poll_action() {
        v.push(a);
    }
    v
}

/// A frame the node sent, decoded again.
#[derive(Debug)]
pub(super) struct Transmit {
    pub peer: Pnn,
    pub message: Message,
}

impl Transmit {
    pub fn message(&self) -> &Message {
        &self.message
    }
}

pub(super) fn transmits(n: &mut Node) -> Vec<Transmit> {
    let mut v = Vec::new();
    let mut buf = Vec::new();
    while let Some(peer) = n.poll_transmit(&mut buf) {
        let (_, message) = wire::decode(&buf).expect("the node encodes valid frames");
        v.push(Transmit { peer, message });
        buf.clear();
    }
    v
}

fn frame(src: u32, dst: u32, m: Message) -> Vec<u8> {
    let mut v = Vec::new();
    wire::encode(
        &Header {
            op: m.op(),
            src: Pnn(src),
            dst: Pnn(dst),
            generation: Generation(1),
            request_id: 0,
        },
        &m,
        &mut v,
    );
    v
}

fn hello(src: u32) -> Vec<u8> {
    frame(
        src,
        0,
        Message::Hello(Hello {
            incarnation: 9,
            flags: NodeFlags::empty(),
            capabilities: CAP_RECMASTER,
            start_stamp: 0,
            liveness: crate::wire::Liveness {
                interval_ms: 100,
                limit: 3,
            },
        }),
    )
}

fn keepalive(src: u32) -> Vec<u8> {
    frame(
        src,
        0,
        Message::Keepalive(Keepalive {
            flags: NodeFlags::empty(),
            recmaster: Pnn::NONE,
            recovery_mode: RecoveryMode::Normal,
            liveness: crate::wire::Liveness {
                interval_ms: 100,
                limit: 3,
            },
            stamp: 1,
            echo: 0,
        }),
    )
}

/// Brings peer 1 fully up at `at`: our connect succeeds, it connects to us and says Hello.
fn connect_peer1(n: &mut Node, at: Instant) {
    n.handle(at, Event::Connected { peer: Pnn(1) }).unwrap();
    n.handle(
        at,
        Event::Accepted {
            conn: ConnId(11),
            addr: ip("127.0.0.2"),
        },
    )
    .unwrap();
    n.handle(
        at,
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &hello(1),
        },
    )
    .unwrap();
    transmits(n);
    actions(n);
}

#[test]
fn connects_to_every_live_peer_from_own_address() {
    let mut n = node0();
    let a = actions(&mut n);
    assert_eq!(
        a,
        vec![
            Action::Connect {
                peer: Pnn(1),
                addr: "127.0.0.2:4379".parse().unwrap(),
                local: ip("127.0.0.1")
            },
            Action::Connect {
                peer: Pnn(3),
                addr: "127.0.0.4:4379".parse().unwrap(),
                local: ip("127.0.0.1")
            },
        ]
    );
    assert_eq!(n.flags_of(Pnn(2)), NodeFlags::DELETED);
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::DISCONNECTED);
    assert_eq!(n.flags_of(Pnn(0)), NodeFlags::empty());
}

#[test]
fn connected_needs_both_directions_and_hello() {
    let mut n = node0();
    actions(&mut n);
    n.handle(t(1), Event::Connected { peer: Pnn(1) }).unwrap();
    let tx = transmits(&mut n);
    assert_eq!(tx.len(), 3, "{tx:?}");
    assert_eq!(tx[0].peer, Pnn(1));
    assert!(matches!(tx[0].message(), Message::Hello(h) if h.capabilities == CAP_RECMASTER));
    // Followed by our view (whom we follow), without waiting for a keepalive tick, and our
    // public addresses (none here).
    assert!(matches!(tx[1].message(), Message::Keepalive(k) if k.recmaster == Pnn::NONE));
    assert_eq!(*tx[2].message(), Message::IpList { entries: 0 });
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
    n.handle(
        t(1),
        Event::Accepted {
            conn: ConnId(5),
            addr: ip("127.0.0.2"),
        },
    )
    .unwrap();
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
    n.handle(
        t(2),
        Event::Frame {
            link: Link::In(ConnId(5)),
            bytes: &hello(1),
        },
    )
    .unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    assert_eq!(n.stats().frames_received, 1);
}

#[test]
fn unknown_addresses_are_refused() {
    let mut n = node0();
    actions(&mut n);
    for (c, a) in [(1, "127.0.0.9"), (2, "127.0.0.1"), (3, "::1")] {
        n.handle(
            t(1),
            Event::Accepted {
                conn: ConnId(c),
                addr: ip(a),
            },
        )
        .unwrap();
        assert_eq!(
            actions(&mut n),
            vec![Action::Close {
                link: Link::In(ConnId(c))
            }],
            "{a}"
        );
    }
    assert_eq!(n.stats().refused_connections, 3);
    // An IPv4-mapped IPv6 address of a node is that node.
    n.handle(
        t(1),
        Event::Accepted {
            conn: ConnId(4),
            addr: ip("::ffff:127.0.0.2"),
        },
    )
    .unwrap();
    assert!(actions(&mut n).is_empty());
}

#[test]
fn frames_with_wrong_source_or_destination_are_dropped_and_counted() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    // Peer 1's connection carrying a frame that claims to be from node 3.
    n.handle(
        t(2),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &keepalive(3),
        },
    )
    .unwrap();
    assert_eq!(n.stats().wrong_source, 1);
    let mut to_other = keepalive(1);
    to_other[16] = 3;
    n.handle(
        t(2),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &to_other,
        },
    )
    .unwrap();
    assert_eq!(n.stats().wrong_destination, 1);
    n.handle(
        t(2),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &[1, 2, 3],
        },
    )
    .unwrap();
    assert_eq!(n.stats().malformed_frames, 1);
    n.handle(
        t(2),
        Event::Frame {
            link: Link::In(ConnId(99)),
            bytes: &keepalive(1),
        },
    )
    .unwrap();
    assert_eq!(n.stats().unknown_link, 1);
    // None of them counted as a sign of life: silent since it connected at 1 ms, it is dead
    // 3.5 intervals later.
    for ms in [100, 200, 300, 351] {
        n.handle(t(ms), Event::Timeout).unwrap();
    }
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
}

#[test]
fn eof_is_death_at_once_then_reconnect_after_delay() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    n.handle(
        t(50),
        Event::Closed {
            link: Link::Out(Pnn(1)),
        },
    )
    .unwrap();
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
    // The other direction is closed too, nothing is queued for the dead peer, and with 1 of 3
    // votes left the node is not quorate any more: it releases its public addresses.
    assert_eq!(
        actions(&mut n),
        vec![
            Action::Close {
                link: Link::In(ConnId(11))
            },
            Action::ReleaseAllIps
        ]
    );
    assert!(transmits(&mut n).is_empty());
    // It may be back soon (a restart): the first reconnect comes 20 ms later, not after a
    // whole ReconnectInterval; each failure doubles the wait, up to ReconnectInterval (1 s)
    // and the detection time (3 × 100 ms), whichever is shorter.
    let connects = |n: &mut Node| {
        actions(n)
            .iter()
            .filter(|a| matches!(a, Action::Connect { peer: Pnn(1), .. }))
            .count()
    };
    n.handle(t(69), Event::Timeout).unwrap();
    assert_eq!(connects(&mut n), 0);
    n.handle(t(70), Event::Timeout).unwrap();
    assert_eq!(connects(&mut n), 1);
    let mut at = 70;
    for wait in [40, 80, 160, 300, 300] {
        n.handle(t(at), Event::ConnectFailed { peer: Pnn(1) })
            .unwrap();
        n.handle(t(at + wait - 1), Event::Timeout).unwrap();
        assert_eq!(connects(&mut n), 0, "retry {wait} ms after {at}: too early");
        at += wait;
        n.handle(t(at), Event::Timeout).unwrap();
        assert_eq!(connects(&mut n), 1, "retry {wait} ms after: not made");
    }
}

#[test]
fn eof_on_incoming_is_death_too() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    n.handle(
        t(5),
        Event::Closed {
            link: Link::In(ConnId(11)),
        },
    )
    .unwrap();
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
    assert_eq!(
        actions(&mut n),
        vec![
            Action::Close {
                link: Link::Out(Pnn(1))
            },
            Action::ReleaseAllIps
        ]
    );
}

#[test]
fn connect_failure_and_timeout_retry() {
    let mut n = node0();
    actions(&mut n);
    n.handle(t(1), Event::ConnectFailed { peer: Pnn(1) })
        .unwrap();
    assert!(actions(&mut n).is_empty());
    // Retried after a short first wait (20 ms).
    n.handle(t(21), Event::Timeout).unwrap();
    assert!(actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(1), .. })));
    n.handle(t(1000), Event::Timeout).unwrap();
    let a = actions(&mut n);
    // Peer 3's first attempt timed out at ConnectTimeout (closed, retried 20 ms later).
    assert!(
        a.contains(&Action::Close {
            link: Link::Out(Pnn(3))
        }),
        "{a:?}"
    );
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(3), .. })));
    n.handle(t(1019), Event::Timeout).unwrap();
    assert!(!actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(3), .. })));
    n.handle(t(1020), Event::Timeout).unwrap();
    assert!(actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(3), .. })));
}

#[test]
fn incoming_connection_cuts_the_retry_wait() {
    let mut n = node0();
    actions(&mut n);
    n.handle(t(1), Event::ConnectFailed { peer: Pnn(1) })
        .unwrap();
    n.handle(
        t(10),
        Event::Accepted {
            conn: ConnId(7),
            addr: ip("127.0.0.2"),
        },
    )
    .unwrap();
    // A bare connect proves nothing (anyone on the peer's host can open one)...
    assert!(!actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { .. })));
    // ...its Hello does.
    n.handle(
        t(10),
        Event::Frame {
            link: Link::In(ConnId(7)),
            bytes: &hello(1),
        },
    )
    .unwrap();
    assert!(actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(1), .. })));
}

#[test]
fn silent_peer_dies_after_its_promised_limit_and_half_an_interval() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    n.handle(
        t(50),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &keepalive(1),
        },
    )
    .unwrap();
    n.handle(t(100), Event::Timeout).unwrap();
    // Each tick sends a keepalive to every peer we can write to.
    let tx = transmits(&mut n);
    assert_eq!(tx.len(), 1);
    assert!(matches!(tx[0].message(), Message::Keepalive { .. }));
    // It promised a frame every 100 ms, limit 3: silent from 50 ms, dead at 50 + 350 ms, and
    // the node asks to be woken exactly then.
    for ms in [200, 300, 399] {
        n.handle(t(ms), Event::Timeout).unwrap();
        assert!(
            !n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED),
            "dead too early at {ms}"
        );
    }
    assert_eq!(n.poll_timeout(), Some(t(400)));
    n.handle(t(400), Event::Timeout).unwrap();
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
    let a = actions(&mut n);
    assert!(a.contains(&Action::Close {
        link: Link::Out(Pnn(1))
    }));
    assert!(a.contains(&Action::Close {
        link: Link::In(ConnId(11))
    }));
}

/// A keepalive of peer 1 promising `interval_ms` x `limit`.
fn keepalive_promising(interval_ms: u32, limit: u32) -> Vec<u8> {
    frame(
        1,
        0,
        Message::Keepalive(Keepalive {
            flags: NodeFlags::empty(),
            recmaster: Pnn::NONE,
            recovery_mode: RecoveryMode::Normal,
            liveness: crate::wire::Liveness { interval_ms, limit },
            stamp: 1,
            echo: 0,
        }),
    )
}

#[test]
fn a_peer_is_judged_by_its_own_promise_not_ours() {
    // Issue 9.4: one node's `setvar KeepaliveInterval 3600` made the others declare it dead
    // every few seconds. Its keepalives say what it promised; its silence is judged by that.
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    let slow = keepalive_promising(3_600_000, 3);
    n.handle(
        t(10),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &slow,
        },
    )
    .unwrap();
    // Our own 100 ms ticks go on for a long time: the peer is not dead.
    let mut now = 10;
    while now < 60_000 {
        now = n.poll_timeout().unwrap().as_nanos() / 1_000_000;
        n.handle(t(now), Event::Timeout).unwrap();
        assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty(), "at {now} ms");
        transmits(&mut n);
        actions(&mut n);
    }
    // A promise of 0 ms (a broken or hostile peer) is read as the smallest interval allowed,
    // not as "dead at once".
    n.handle(
        t(now + 1),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &keepalive_promising(0, 0),
        },
    )
    .unwrap();
    n.handle(t(now + 10), Event::Timeout).unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    // Then it goes back to 100 ms x 1: silent 150 ms after its last frame, it is dead.
    n.handle(
        t(now + 20),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &keepalive_promising(100, 1),
        },
    )
    .unwrap();
    n.handle(t(now + 169), Event::Timeout).unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    n.handle(t(now + 170), Event::Timeout).unwrap();
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
}

#[test]
fn setvar_keepalive_interval_is_told_to_peers_at_once() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    n.handle(
        t(5),
        Event::Control {
            client: ClientId(1),
            request: Request::SetVar("KeepaliveInterval".into(), "3600".into()),
        },
    )
    .unwrap();
    let tx = transmits(&mut n);
    let promised: Vec<_> = tx
        .iter()
        .filter_map(|x| match x.message() {
            Message::Keepalive(k) if x.peer == Pnn(1) => Some(k.liveness),
            _ => None,
        })
        .collect();
    assert_eq!(
        promised,
        vec![crate::wire::Liveness {
            interval_ms: 3_600_000,
            limit: 3
        }]
    );
}

#[test]
fn a_peer_that_just_connected_is_not_blamed_for_silence_before_it() {
    // Issue 9.4: with KeepaliveLimit=1 nodes declared each other dead just after start. The
    // Hello that makes a peer connected may have come long before our own connect finished;
    // its silence counts from the moment it became connected.
    let nodes = NodesFile::parse("127.0.0.1\n127.0.0.2\n").unwrap();
    let mut tun = tunables();
    tun.set("KeepaliveLimit", "1").unwrap();
    let mut n = Node::new(NodeConfig::new(nodes, Pnn(0), 4379, tun).unwrap(), 1, t(0));
    actions(&mut n);
    let promise_1 = frame(
        1,
        0,
        Message::Hello(Hello {
            incarnation: 9,
            flags: NodeFlags::empty(),
            capabilities: CAP_RECMASTER,
            start_stamp: 0,
            liveness: crate::wire::Liveness {
                interval_ms: 100,
                limit: 1,
            },
        }),
    );
    n.handle(
        t(1),
        Event::Accepted {
            conn: ConnId(11),
            addr: ip("127.0.0.2"),
        },
    )
    .unwrap();
    n.handle(
        t(1),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &promise_1,
        },
    )
    .unwrap();
    // Our connect completes 140 ms later (a retry); the peer's next keepalive comes 100 ms
    // after that.
    n.handle(t(141), Event::Connected { peer: Pnn(1) }).unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    n.handle(t(240), Event::Timeout).unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
}

#[test]
fn a_stalled_node_does_not_blame_its_peers() {
    // The node itself was not run for a long time (SIGSTOP, VM pause): one tick, not many.
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    n.handle(t(5000), Event::Timeout).unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    // One tick now, the next one interval later (not a burst of the missed ones); the peer
    // gets one of its intervals to show it is alive.
    let ticks = n.stats().keepalive_ticks;
    n.handle(t(5099), Event::Timeout).unwrap();
    assert_eq!(n.stats().keepalive_ticks, ticks);
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    n.handle(t(5100), Event::Timeout).unwrap();
    assert_eq!(n.stats().keepalive_ticks, ticks + 1);
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
}

#[test]
fn any_frame_resets_the_strikes() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    for k in 1..=20u64 {
        // A frame every other interval: never 3 silent in a row.
        if k % 2 == 0 {
            n.handle(
                t(k * 100 - 10),
                Event::Frame {
                    link: Link::In(ConnId(11)),
                    bytes: &keepalive(1),
                },
            )
            .unwrap();
        }
        n.handle(t(k * 100), Event::Timeout).unwrap();
        assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty(), "interval {k}");
    }
}

#[test]
fn admin_flags_travel_in_keepalives_but_not_connection_state() {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    let f = NodeFlags::BANNED
        .union(NodeFlags::DISCONNECTED)
        .union(NodeFlags::DELETED);
    n.handle(
        t(2),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &frame(
                1,
                0,
                Message::Keepalive(Keepalive {
                    flags: f,
                    recmaster: Pnn::NONE,
                    recovery_mode: RecoveryMode::Normal,
                    liveness: crate::wire::Liveness {
                        interval_ms: 100,
                        limit: 3,
                    },
                    stamp: 1,
                    echo: 0,
                }),
            ),
        },
    )
    .unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::BANNED);
}

#[test]
fn misuse_is_an_error_and_changes_nothing() {
    let mut n = node0();
    n.handle(t(10), Event::Timeout).unwrap();
    assert_eq!(
        n.handle(t(9), Event::Timeout),
        Err(Error::TimeWentBackwards)
    );
    assert_eq!(
        n.handle(t(10), Event::Connected { peer: Pnn(2) }),
        Err(Error::UnknownPeer)
    );
    assert_eq!(
        n.handle(t(10), Event::Connected { peer: Pnn(0) }),
        Err(Error::UnknownPeer)
    );
    assert_eq!(
        n.handle(t(10), Event::ConnectFailed { peer: Pnn(77) }),
        Err(Error::UnknownPeer)
    );
}

#[test]
fn control_requests() {
    let mut n = node0();
    actions(&mut n);
    let ask = |n: &mut Node, line: &str| {
        n.handle(
            t(1),
            Event::Control {
                client: ClientId(3),
                request: Request::parse(line).unwrap(),
            },
        )
        .unwrap();
        match actions(n).pop() {
            Some(Action::Reply {
                client: ClientId(3),
                response,
            }) => response,
            other => panic!("{other:?}"),
        }
    };
    let Response::Status(s) = ask(&mut n, "status") else {
        panic!()
    };
    assert_eq!(s.nodes.len(), 4);
    assert!(!s.quorate, "1 of 3 votes");
    assert_eq!(s.nodes[2].flags, NodeFlags::DELETED);
    assert_eq!(s.nodes[2].address, ip("0.0.0.0"));
    assert_eq!(ask(&mut n, "pnn"), Response::Pnn(Pnn(0)));
    let Response::Status(s) = ask(&mut n, "nodestatus 3") else {
        panic!()
    };
    assert_eq!(s.nodes.len(), 1);
    assert!(matches!(ask(&mut n, "nodestatus 9"), Response::Error(_)));
    assert_eq!(
        ask(&mut n, "setvar KeepaliveInterval 50ms"),
        Response::Done(None)
    );
    // Takes effect at once: the next tick is 50 ms from now, not 100 ms from start.
    assert_eq!(n.poll_timeout(), Some(t(51)));
    assert_eq!(
        ask(&mut n, "getvar keepaliveinterval"),
        Response::Var("KeepaliveInterval", "50ms".to_string())
    );
    assert!(matches!(
        ask(&mut n, "setvar KeepaliveInterval fast"),
        Response::Error(_)
    ));
    assert_eq!(ask(&mut n, "ping"), Response::Pong(Pnn(0)));
}

// --- Several nodes in the simulator (its quiet preset: 100 us latency, every invariant checked) ---

/// `n` nodes started at time zero.
fn world(n: usize) -> World {
    World::new(SimConfig::quiet(n).tunables(tunables()))
}

/// Flags of `of` as node `seen_by` (running) sees them.
fn flags(w: &World, seen_by: usize, of: usize) -> NodeFlags {
    w.node(seen_by).expect("running").flags_of(Pnn(of as u32))
}

fn quorate(w: &World, i: usize) -> bool {
    w.node(i).expect("running").quorate()
}

#[test]
fn cluster_forms_quickly_for_1_to_7_nodes() {
    for size in 1..=7 {
        let mut w = world(size);
        let took = w
            .run_until_cond(Duration::from_secs(2), |w| w.all_connected())
            .unwrap();
        assert!(took.is_some_and(|d| d < 10 * MS), "{size} nodes: {took:?}");
        assert!((0..size).all(|i| quorate(&w, i)));
    }
}

#[test]
fn crash_is_seen_at_once_restart_rejoins() {
    let mut w = world(3);
    w.run_for(100 * MS).unwrap();
    assert!(w.all_connected());
    w.apply(Fault::Crash(2)).unwrap();
    let took = w
        .run_until_cond(Duration::from_secs(1), |w| {
            flags(w, 0, 2).contains(NodeFlags::DISCONNECTED)
                && flags(w, 1, 2).contains(NodeFlags::DISCONNECTED)
        })
        .unwrap()
        .unwrap();
    assert!(took < 5 * MS, "EOF path took {took:?}");
    assert!(quorate(&w, 0), "2 of 3 are a majority");
    w.run_for(3000 * MS).unwrap();
    w.apply(Fault::Start(2)).unwrap();
    let took = w
        .run_until_cond(Duration::from_secs(3), |w| w.all_connected())
        .unwrap()
        .unwrap();
    // The restarted node's incoming connections make the others connect back at once.
    assert!(took < 10 * MS, "rejoin took {took:?}");
}

#[test]
fn frozen_node_is_dead_after_keepalive_limit_then_rejoins_when_thawed() {
    let mut w = world(3);
    w.run_for(100 * MS).unwrap();
    assert!(w.all_connected());
    w.apply(Fault::Freeze(1)).unwrap();
    let took = w
        .run_until_cond(Duration::from_secs(2), |w| {
            flags(w, 0, 1).contains(NodeFlags::DISCONNECTED)
                && flags(w, 2, 1).contains(NodeFlags::DISCONNECTED)
        })
        .unwrap()
        .unwrap();
    // 3 silent intervals of 100 ms, seen at a tick: between 300 and 400 ms.
    assert!(took >= 200 * MS && took <= 410 * MS, "took {took:?}");
    assert!(
        !flags(&w, 0, 2).contains(NodeFlags::DISCONNECTED),
        "no false alarm on the live node"
    );
    w.run_for(500 * MS).unwrap();
    w.apply(Fault::Thaw(1)).unwrap();
    let took = w
        .run_until_cond(Duration::from_secs(5), |w| w.all_connected())
        .unwrap();
    assert!(took.is_some(), "thawed node never rejoined");
}

#[test]
fn minority_is_not_quorate() {
    let mut w = world(5);
    w.run_for(100 * MS).unwrap();
    w.apply(Fault::Crash(3)).unwrap();
    w.apply(Fault::Crash(4)).unwrap();
    w.run_for(10 * MS).unwrap();
    assert!(quorate(&w, 0));
    w.apply(Fault::Crash(2)).unwrap();
    w.run_for(10 * MS).unwrap();
    assert!(!quorate(&w, 0) && !quorate(&w, 1));
}

#[test]
fn deleted_slots_take_no_part() {
    // Nodes 127.0.0.1, #deleted, 127.0.0.3.
    let mut cfg = SimConfig::quiet(3).tunables(tunables());
    cfg.deleted = vec![1];
    let mut w = World::new(cfg);
    w.run_for(50 * MS).unwrap();
    assert!(w.node(1).is_none());
    assert_eq!(flags(&w, 0, 2), NodeFlags::empty());
    assert_eq!(flags(&w, 0, 1), NodeFlags::DELETED);
    assert!(quorate(&w, 0), "2 of 2 votes: deleted nodes have no vote");
}

#[test]
fn same_inputs_same_outputs() {
    let run = || {
        let mut w = world(4);
        w.run_for(200 * MS).unwrap();
        w.apply(Fault::Freeze(3)).unwrap();
        w.run_for(600 * MS).unwrap();
        w.apply(Fault::Thaw(3)).unwrap();
        w.apply(Fault::Crash(0)).unwrap();
        w.run_for(2000 * MS).unwrap();
        (0..4)
            .filter_map(|i| w.node(i).map(|n| (*n.stats(), n.status())))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn failed_connect_to_a_peer_that_connected_to_us_is_retried_at_once_but_only_once() {
    // The race of simultaneous start-up: the peer's connection is accepted while our own
    // connect to it (made before it listened) has not yet reported its failure.
    let mut n = node0();
    actions(&mut n);
    n.handle(
        t(5),
        Event::Accepted {
            conn: ConnId(7),
            addr: ip("127.0.0.2"),
        },
    )
    .unwrap();
    n.handle(
        t(5),
        Event::Frame {
            link: Link::In(ConnId(7)),
            bytes: &hello(1),
        },
    )
    .unwrap();
    assert!(
        actions(&mut n).is_empty(),
        "our first connect is still pending"
    );
    n.handle(t(6), Event::ConnectFailed { peer: Pnn(1) })
        .unwrap();
    assert!(actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(1), .. })));
    // A second failure on the same incoming connection waits like any other (20 ms first).
    n.handle(t(7), Event::ConnectFailed { peer: Pnn(1) })
        .unwrap();
    assert!(actions(&mut n).is_empty());
    n.handle(t(26), Event::Timeout).unwrap();
    assert!(!actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(1), .. })));
    n.handle(t(27), Event::Timeout).unwrap();
    assert!(actions(&mut n)
        .iter()
        .any(|a| matches!(a, Action::Connect { peer: Pnn(1), .. })));
}

#[test]
fn garbage_on_a_connecting_outgoing_link_counts_as_a_failed_connect() {
    let mut n = node0();
    actions(&mut n);
    n.handle(
        t(5),
        Event::BadStream {
            link: Link::Out(Pnn(1)),
        },
    )
    .unwrap();
    assert_eq!(
        actions(&mut n),
        vec![Action::Close {
            link: Link::Out(Pnn(1))
        }]
    );
    assert_eq!(n.stats().bad_streams, 1);
    // Retried soon (20 ms), not left waiting for the connect timeout.
    assert_eq!(n.out_state(Pnn(1)), OutState::Retry { at: t(25) });
}

/// Peer 1 is fully up on incoming connection 11; a second connection 12 comes from its address.
fn second_connection_from_peer1() -> Node {
    let mut n = node0();
    actions(&mut n);
    connect_peer1(&mut n, t(1));
    n.handle(
        t(10),
        Event::Accepted {
            conn: ConnId(12),
            addr: ip("127.0.0.2"),
        },
    )
    .unwrap();
    n
}

fn closes(a: &[Action], conn: u64) -> bool {
    a.contains(&Action::Close {
        link: Link::In(ConnId(conn)),
    })
}

#[test]
fn a_bare_connect_from_a_peer_address_does_not_cut_its_link() {
    // Issue 9.6: connect-and-close from 127.0.0.3 every 0.5 s cut node 3's real link each time.
    let mut n = second_connection_from_peer1();
    assert!(actions(&mut n).is_empty(), "the established link stays");
    n.handle(
        t(20),
        Event::Closed {
            link: Link::In(ConnId(12)),
        },
    )
    .unwrap();
    assert!(actions(&mut n).is_empty());
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    // Frames on the established link still count.
    n.handle(
        t(300),
        Event::Frame {
            link: Link::In(ConnId(11)),
            bytes: &keepalive(1),
        },
    )
    .unwrap();
    n.handle(t(600), Event::Timeout).unwrap();
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
}

#[test]
fn a_silent_or_garbled_second_connection_is_closed_alone() {
    // Silent: closed after ConnectTimeout (1 s), the peer untouched.
    let mut n = second_connection_from_peer1();
    for ms in (100..=1100).step_by(100) {
        n.handle(
            t(ms - 50),
            Event::Frame {
                link: Link::In(ConnId(11)),
                bytes: &keepalive(1),
            },
        )
        .unwrap();
        n.handle(t(ms), Event::Timeout).unwrap();
    }
    let a = actions(&mut n);
    assert!(closes(&a, 12) && !closes(&a, 11), "{a:?}");
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    assert_eq!(n.stats().unproven_connections, 1);
    // Garbage, or a first frame that is not a Hello: closed at once, the peer untouched.
    let mut n = second_connection_from_peer1();
    n.handle(
        t(20),
        Event::BadStream {
            link: Link::In(ConnId(12)),
        },
    )
    .unwrap();
    let a = actions(&mut n);
    assert!(closes(&a, 12) && !closes(&a, 11), "{a:?}");
    let mut n = second_connection_from_peer1();
    n.handle(
        t(20),
        Event::Frame {
            link: Link::In(ConnId(12)),
            bytes: &keepalive(1),
        },
    )
    .unwrap();
    let a = actions(&mut n);
    assert!(closes(&a, 12) && !closes(&a, 11), "{a:?}");
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
}

#[test]
fn many_connections_from_a_peer_address_keep_only_a_few_waiting() {
    let mut n = second_connection_from_peer1();
    for c in 13..20 {
        n.handle(
            t(20),
            Event::Accepted {
                conn: ConnId(c),
                addr: ip("127.0.0.2"),
            },
        )
        .unwrap();
    }
    let a = actions(&mut n);
    // Two wait (18, 19); the older ones were closed; the real link was never touched.
    let closed: Vec<u64> = (12..20).filter(|&c| closes(&a, c)).collect();
    assert_eq!(closed, vec![12, 13, 14, 15, 16, 17]);
    assert!(!closes(&a, 11));
}

#[test]
fn a_restarted_peer_replaces_its_old_link_with_a_hello_from_a_newer_life() {
    let mut n = second_connection_from_peer1();
    let newer = frame(
        1,
        0,
        Message::Hello(Hello {
            incarnation: 10,
            flags: NodeFlags::empty(),
            capabilities: CAP_RECMASTER,
            start_stamp: 5,
            liveness: crate::wire::Liveness {
                interval_ms: 100,
                limit: 3,
            },
        }),
    );
    n.handle(
        t(20),
        Event::Frame {
            link: Link::In(ConnId(12)),
            bytes: &newer,
        },
    )
    .unwrap();
    let a = actions(&mut n);
    assert!(closes(&a, 11) && !closes(&a, 12), "{a:?}");
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
    // The new link is the peer's now: EOF on it is a death.
    n.handle(
        t(30),
        Event::Closed {
            link: Link::In(ConnId(12)),
        },
    )
    .unwrap();
    assert!(n.flags_of(Pnn(1)).contains(NodeFlags::DISCONNECTED));
}

#[test]
fn a_hello_from_an_older_life_does_not_displace_the_link() {
    let mut n = second_connection_from_peer1();
    // connect_peer1's Hello: incarnation 9, start stamp 0. A stranger replaying another life
    // with the same (or an older) start stamp is refused.
    let other = frame(
        1,
        0,
        Message::Hello(Hello {
            incarnation: 77,
            flags: NodeFlags::empty(),
            capabilities: CAP_RECMASTER,
            start_stamp: 0,
            liveness: crate::wire::Liveness {
                interval_ms: 100,
                limit: 3,
            },
        }),
    );
    n.handle(
        t(20),
        Event::Frame {
            link: Link::In(ConnId(12)),
            bytes: &other,
        },
    )
    .unwrap();
    let a = actions(&mut n);
    assert!(closes(&a, 12) && !closes(&a, 11), "{a:?}");
    assert_eq!(n.flags_of(Pnn(1)), NodeFlags::empty());
}

#[test]
fn refused_connections_are_counted_and_their_warnings_rate_limited() {
    let mut n = node0();
    actions(&mut n);
    for i in 0..10_000u64 {
        n.handle(
            t(i / 100),
            Event::Accepted {
                conn: ConnId(100 + i),
                addr: ip("10.9.9.9"),
            },
        )
        .unwrap();
    }
    assert_eq!(n.stats().refused_connections, 10_000);
    assert_eq!(
        n.transport.refusals.logged,
        transport::RefusalLog::LINES_PER_WINDOW,
        "a few lines, then only a count"
    );
    assert_eq!(
        n.transport.refusals.suppressed,
        10_000 - transport::RefusalLog::LINES_PER_WINDOW as u64
    );
    // The window ends with one summary line and a fresh budget.
    n.handle(t(10_000), Event::Timeout).unwrap();
    assert_eq!(n.transport.refusals.suppressed, 0);
    assert_eq!(n.transport.refusals.logged, 0);
}
