//! `node_inputs`: one [`Node`] fed an arbitrary sequence of inputs by a model of its shell.
//!
//! The fuzzer's bytes are a program: a [`Setup`] (cluster shape, local PNN, tunables), then
//! [`Op`]s: time steps (monotonic), timeouts at the node's deadline, connect results, accepted
//! connections from configured and unknown addresses, frames of every kind (with current, old
//! and future generations, claims to be recovery master, recovery steps) and weird and garbage
//! frames on current, stale and unknown links, stream errors, closes, cluster-lock results
//! (asked for or not), and control requests (admin commands and tunables included).
//!
//! After every input the harness drains the node as a shell does and checks:
//! - `handle` fails only for misuse it was actually given (an unknown peer), and then changes
//!   nothing the shell can see;
//! - after every accepted input the node has a deadline, strictly after `now` (so handling a
//!   deadline makes progress);
//! - every transmit goes to a live remote peer over an outgoing connection the shell has up, and
//!   encodes to a frame that decodes to itself, from us, to that peer;
//! - no transmit is left for a link the node closes in the same batch, and the node closes an
//!   outgoing connection before it asks for a new one (the contract's ordering rules);
//! - `Connect` names the peer's configured address and our own as the local one;
//! - exactly one `Reply`, to the right client, per control request, and none otherwise;
//! - a peer the node reports connected has, in the shell's books, an established outgoing
//!   connection and an open accepted connection from its address;
//! - flags of self, deleted and unknown slots are what they must be; quorum needs a majority of
//!   connected nodes (or TwoNode and the lock); losing quorum releases the public addresses
//!   (unless a DISABLED, STOPPED or BANNED flag already did);
//! - the node holds the cluster lock only if the lock service granted it and did not take it
//!   back; it acts as recovery master only while recmaster, quorate and holding the lock;
//! - `status` agrees with the accessors; the generation and the counters never go down.

use crate::Reader;
use pharos_core::config::{NodesFile, Tunables};
use pharos_core::drive::{Driver, Feedback, Host};
use pharos_core::node::IpResult;
use pharos_core::wire::IpOp;
use pharos_core::control::{RecoveryMode, Request, Response};
use pharos_core::node::Stats;
use pharos_core::types::NodeSet;
use pharos_core::wire::{self, Header, Hello, Keepalive, Liveness, Message, CAP_RECMASTER};
use pharos_core::{
    quorum, Action, ClientId, ConnId, Error, Event, Generation, Instant, Link, LockResult, Node,
    NodeConfig, NodeFlags, Pnn,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

const PORT: u16 = 4379;

/// Cluster shapes: IPv4, a deleted slot, IPv6, a single node, a mix.
const SHAPES: &[&str] = &[
    "10.0.0.1\n10.0.0.2\n10.0.0.3\n",
    "10.0.0.1\n10.0.0.2\n#10.0.0.3\n10.0.0.4\n",
    "fd00::1\nfd00::2\n",
    "127.0.0.1\n",
    "10.0.0.1\nfd00::2\n10.0.0.3\n#gone\n10.0.0.5\n",
];

/// Control requests the harness sends (by index); a higher index reads a line from the input.
const REQUESTS: &[&str] = &[
    "status",
    "nodestatus",
    "nodestatus 1",
    "nodestatus 99",
    "pnn",
    "recmaster",
    "listvars",
    "ping",
    "getvar KeepaliveInterval",
    "setvar KeepaliveInterval 10ms",
    "setvar KeepaliveInterval 1s",
    "setvar KeepaliveLimit 1",
    "setvar ConnectTimeout 10ms",
    "setvar ReconnectInterval 10ms",
    "setvar NoIPHostOnAllDisabled 1",
    "setvar KeepaliveLimit 0",
    "setvar TwoNode 1",
    "setvar WaitForAll 1",
    "setvar ElectionTimeout 10ms",
    "setvar RecoverInterval 10ms",
    "setvar RecoverTimeout 10ms",
    "disable",
    "enable",
    "stop",
    "continue",
    "ban 1",
    "unban",
];

/// The node's configuration, from the first bytes of the input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Setup {
    /// Index into the cluster shapes.
    pub shape: u8,
    /// Local PNN (modulo the number of slots; a deleted slot means the first live one).
    pub pnn: u8,
    /// KeepaliveInterval in units of 10 ms, plus one.
    pub keepalive: u8,
    /// KeepaliveLimit, minus one (modulo 5).
    pub limit: u8,
    /// ConnectTimeout in units of 10 ms, plus one.
    pub connect_timeout: u8,
    /// ReconnectInterval in units of 10 ms, plus one.
    pub reconnect: u8,
    /// The node's random seed; bit 7 set: not recovery-master capable; bits 0-6: start stamp.
    pub seed: u8,
}

/// A link as the harness names it: an outgoing connection to a slot (perhaps not a peer), or
/// the `k`-th connection accepted so far (perhaps closed since), or one never accepted.
#[derive(Clone, Copy, Debug)]
pub enum LinkSel {
    /// `Link::Out(Pnn(slot))`; slots past the end are unknown PNNs.
    Out(u8),
    /// The `k`-th accepted connection (modulo their number).
    Accepted(u8),
    /// A connection id the shell never reported.
    Unknown,
}

/// One step of the program.
#[derive(Clone, Debug)]
pub enum Op {
    /// `now += ms` milliseconds (no event).
    Step(u8),
    /// `now += s` seconds (no event).
    Leap(u8),
    /// `now = max(now, deadline)`, then `Event::Timeout`.
    Deadline,
    /// `Event::Connected` for a slot (the slot past the end is an unknown PNN).
    Connected(u8),
    /// `Event::ConnectFailed`.
    ConnectFailed(u8),
    /// `Event::Accepted` from a slot's address; past the end, an unknown address, an
    /// IPv4-mapped form, or loopback IPv6.
    Accepted(u8),
    /// A well-formed frame. `src`/`dst`: low two bits 0 means "slot `byte >> 2`", otherwise the
    /// link's peer / us.
    Frame {
        /// Where it arrives.
        link: LinkSel,
        /// Source selector.
        src: u8,
        /// Destination selector.
        dst: u8,
        /// Header generation: the node's own plus this (signed) offset.
        gen: u8,
        /// Message kind (modulo 6: hello, keepalive, recovery start, ack, commit, reconfigured).
        kind: u8,
        /// Hello: bit 0 capable, bits 1-7 start stamp. Keepalive: bits 0-1 recmaster (0 none,
        /// 1 the sender, else slot `bits 2-6`), bit 7 recovery mode active.
        arg: u8,
        /// Flags carried (hello, keepalive); the vnnmap's first 32 bits (commit).
        flags: u32,
        /// Payload bytes past the message.
        extra: Vec<u8>,
    },
    /// Arbitrary bytes as a frame.
    Garbage {
        /// Where it arrives.
        link: LinkSel,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A well-formed keepalive from the link's peer with one byte changed.
    Mutated {
        /// Where it arrives.
        link: LinkSel,
        /// Which byte (modulo the length).
        at: u8,
        /// XORed into it.
        xor: u8,
    },
    /// `Event::BadStream`.
    BadStream(LinkSel),
    /// `Event::Closed`.
    Closed(LinkSel),
    /// `Event::Control` with a request from the list, or parsed from `line`.
    Control {
        /// Index into the request list.
        which: u8,
        /// Used past the end of the list.
        line: Vec<u8>,
    },
    /// `Event::Lock`: granted, contended, lost or failed (modulo 4), asked for or not.
    Lock(u8),
}

const OPS: u8 = 13;

impl Setup {
    fn read(r: &mut Reader<'_>) -> Self {
        Setup {
            shape: r.u8(),
            pnn: r.u8(),
            keepalive: r.u8(),
            limit: r.u8(),
            connect_timeout: r.u8(),
            reconnect: r.u8(),
            seed: r.u8(),
        }
    }

    /// Appends the bytes [`Setup::read`] reads back as `self`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[
            self.shape,
            self.pnn,
            self.keepalive,
            self.limit,
            self.connect_timeout,
            self.reconnect,
            self.seed,
        ]);
    }
}

impl LinkSel {
    fn read(r: &mut Reader<'_>) -> Self {
        let b = r.u8();
        match b >> 6 {
            0 | 1 => LinkSel::Out(b & 0x3f),
            2 => LinkSel::Accepted(b & 0x3f),
            _ => LinkSel::Unknown,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.push(match *self {
            LinkSel::Out(s) => s & 0x3f,
            LinkSel::Accepted(k) => 0x80 | (k & 0x3f),
            LinkSel::Unknown => 0xc0,
        });
    }
}

impl Op {
    fn read(r: &mut Reader<'_>) -> Self {
        match r.u8() % OPS {
            0 => Op::Step(r.u8()),
            1 => Op::Leap(r.u8()),
            2 => Op::Deadline,
            3 => Op::Connected(r.u8()),
            4 => Op::ConnectFailed(r.u8()),
            5 => Op::Accepted(r.u8()),
            6 => {
                let link = LinkSel::read(r);
                let (src, dst, gen, kind, arg) = (r.u8(), r.u8(), r.u8(), r.u8(), r.u8());
                let flags = r.u32();
                let n = (r.u8() % 8) as usize;
                Op::Frame {
                    link,
                    src,
                    dst,
                    gen,
                    kind,
                    arg,
                    flags,
                    extra: r.take(n).to_vec(),
                }
            }
            7 => {
                let link = LinkSel::read(r);
                let n = r.u8() as usize;
                Op::Garbage {
                    link,
                    bytes: r.take(n).to_vec(),
                }
            }
            8 => Op::Mutated {
                link: LinkSel::read(r),
                at: r.u8(),
                xor: r.u8(),
            },
            9 => Op::BadStream(LinkSel::read(r)),
            10 => Op::Closed(LinkSel::read(r)),
            12 => Op::Lock(r.u8()),
            _ => {
                let which = r.u8();
                let line = if which as usize >= REQUESTS.len() {
                    let n = r.u8() as usize;
                    r.take(n).to_vec()
                } else {
                    Vec::new()
                };
                Op::Control { which, line }
            }
        }
    }

    /// Appends the bytes [`Op::read`] reads back as `self` (for seeds).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Op::Step(ms) => out.extend_from_slice(&[0, *ms]),
            Op::Leap(s) => out.extend_from_slice(&[1, *s]),
            Op::Deadline => out.push(2),
            Op::Connected(s) => out.extend_from_slice(&[3, *s]),
            Op::ConnectFailed(s) => out.extend_from_slice(&[4, *s]),
            Op::Accepted(s) => out.extend_from_slice(&[5, *s]),
            Op::Frame {
                link,
                src,
                dst,
                gen,
                kind,
                arg,
                flags,
                extra,
            } => {
                out.push(6);
                link.write(out);
                out.extend_from_slice(&[*src, *dst, *gen, *kind, *arg]);
                out.extend_from_slice(&flags.to_le_bytes());
                out.push(extra.len() as u8);
                out.extend_from_slice(extra);
            }
            Op::Garbage { link, bytes } => {
                out.push(7);
                link.write(out);
                out.push(bytes.len() as u8);
                out.extend_from_slice(bytes);
            }
            Op::Mutated { link, at, xor } => {
                out.push(8);
                link.write(out);
                out.extend_from_slice(&[*at, *xor]);
            }
            Op::BadStream(l) => {
                out.push(9);
                l.write(out);
            }
            Op::Closed(l) => {
                out.push(10);
                l.write(out);
            }
            Op::Control { which, line } => {
                out.extend_from_slice(&[11, *which]);
                if *which as usize >= REQUESTS.len() {
                    out.push(line.len() as u8);
                    out.extend_from_slice(line);
                }
            }
            Op::Lock(r) => out.extend_from_slice(&[12, *r]),
        }
    }
}

/// The shell's view of an outgoing connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    None,
    Connecting,
    Up,
}

/// The harness: the node and what a shell would know.
struct Shell {
    node: Node,
    driver: Driver,
    nodes: NodesFile,
    pnn: Pnn,
    now: Instant,
    out: Vec<Out>,
    /// Accepted connections still open, with their remote address.
    open: BTreeMap<u64, IpAddr>,
    /// Every connection accepted so far, open or not, in order.
    accepted: Vec<(ConnId, IpAddr)>,
    next_conn: u64,
    next_client: u64,
    stats: Stats,
    generation: Generation,
    /// The lock service granted the lock, and neither took it back nor saw it released since.
    lock_granted: bool,
    /// Quorum as of the last check.
    quorate: bool,
    /// The last drain held a `ReleaseAllIps`.
    released_ips: bool,
}

fn slot_addr_v6_mapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(a),
        v4 => v4,
    }
}

impl Shell {
    fn new(s: Setup) -> Self {
        let nodes = NodesFile::parse(SHAPES[s.shape as usize % SHAPES.len()]).unwrap();
        let n = nodes.len();
        let mut pnn = Pnn(s.pnn as u32 % n as u32);
        if nodes.address_of(pnn).is_none() {
            pnn = nodes
                .entries()
                .iter()
                .find(|e| e.address.is_some())
                .unwrap()
                .pnn;
        }
        let ms = |units: u8| format!("{}ms", 10 * (units as u64 + 1));
        let mut t = Tunables::default();
        t.set("KeepaliveInterval", &ms(s.keepalive)).unwrap();
        t.set("KeepaliveLimit", &format!("{}", s.limit % 5 + 1))
            .unwrap();
        t.set("ConnectTimeout", &ms(s.connect_timeout)).unwrap();
        t.set("ReconnectInterval", &ms(s.reconnect)).unwrap();
        let public = pharos_core::config::PublicAddresses::parse(
            "10.9.0.1/24 eth0\n10.9.0.2/24 eth0\nfd00::9/64 eth1\n",
        )
        .unwrap();
        let config = NodeConfig::new(nodes.clone(), pnn, PORT, t)
            .unwrap()
            .with_public_addresses(public)
            .with_recmaster_capable(s.seed & 0x80 == 0)
            .with_start_stamp(u64::from(s.seed & 0x7f));
        let now = Instant::from_nanos(1_000_000_000);
        let node = Node::new(config, s.seed as u64, now);
        let stats = *node.stats();
        let generation = node.generation();
        let mut shell = Shell {
            node,
            driver: Driver::new(),
            nodes,
            pnn,
            now,
            out: vec![Out::None; n],
            open: BTreeMap::new(),
            accepted: Vec::new(),
            next_conn: 1,
            next_client: 1,
            stats,
            generation,
            lock_granted: false,
            quorate: false,
            released_ips: false,
        };
        shell.drain(None);
        shell
    }

    fn slots(&self) -> usize {
        self.nodes.len()
    }

    fn is_remote(&self, p: Pnn) -> bool {
        p != self.pnn && self.nodes.address_of(p).is_some()
    }

    fn link(&self, sel: LinkSel) -> Link {
        match sel {
            LinkSel::Out(s) => Link::Out(Pnn(s as u32 % (self.slots() as u32 + 1))),
            LinkSel::Accepted(k) if !self.accepted.is_empty() => {
                Link::In(self.accepted[k as usize % self.accepted.len()].0)
            }
            _ => Link::In(ConnId(u64::MAX)),
        }
    }

    /// Who a frame on `link` would honestly come from.
    fn link_peer(&self, link: Link) -> Pnn {
        match link {
            Link::Out(p) => p,
            Link::In(c) => self
                .accepted
                .iter()
                .find(|(id, _)| *id == c)
                .and_then(|(_, a)| self.nodes.pnn_of(canonical(*a)))
                .unwrap_or(Pnn(77)),
        }
    }

    fn slot_pnn(&self, b: u8) -> Pnn {
        Pnn(b as u32 % (self.slots() as u32 + 1))
    }

    fn frame(
        &self,
        src: Pnn,
        dst: Pnn,
        generation: Generation,
        message: Message,
        extra: &[u8],
    ) -> Vec<u8> {
        let header = Header {
            op: message.op(),
            src,
            dst,
            generation,
            request_id: 0,
        };
        let mut v = Vec::new();
        crate::wire::encode_with_extra(&header, &message, extra, &mut v);
        v
    }

    fn run(&mut self, op: Op) {
        let event = match op {
            Op::Step(ms) => {
                self.now += Duration::from_millis(ms as u64);
                return;
            }
            Op::Leap(s) => {
                self.now += Duration::from_secs(s as u64);
                return;
            }
            Op::Deadline => {
                let deadline = self.node.poll_timeout().expect("a deadline");
                self.now = self.now.max(deadline);
                self.handle(Event::Timeout);
                return;
            }
            Op::Connected(s) => {
                let peer = self.slot_pnn(s);
                if self.out.get(peer.index()) == Some(&Out::Connecting) {
                    self.out[peer.index()] = Out::Up;
                }
                self.handle(Event::Connected { peer });
                return;
            }
            Op::ConnectFailed(s) => {
                let peer = self.slot_pnn(s);
                if self.out.get(peer.index()) == Some(&Out::Connecting) {
                    self.out[peer.index()] = Out::None;
                }
                self.handle(Event::ConnectFailed { peer });
                return;
            }
            Op::Accepted(s) => {
                let n = self.slots();
                let i = s as usize % (n + 3);
                let addr = match i {
                    _ if i < n => self
                        .nodes
                        .address_of(Pnn(i as u32))
                        .unwrap_or(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                    _ if i == n => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
                    _ if i == n + 1 => {
                        // The IPv4-mapped form of some node's address (a dual-stack listener).
                        let a = self.nodes.entries()[s as usize % n].address;
                        slot_addr_v6_mapped(a.unwrap_or(IpAddr::V6(Ipv6Addr::LOCALHOST)))
                    }
                    _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
                };
                let conn = ConnId(self.next_conn);
                self.next_conn += 1;
                self.open.insert(conn.0, addr);
                self.accepted.push((conn, addr));
                self.handle(Event::Accepted { conn, addr });
                return;
            }
            Op::Frame {
                link,
                src,
                dst,
                gen,
                kind,
                arg,
                flags,
                extra,
            } => {
                let link = self.link(link);
                let src = if src & 3 == 0 {
                    self.slot_pnn(src >> 2)
                } else {
                    self.link_peer(link)
                };
                let dst = if dst & 3 == 0 {
                    self.slot_pnn(dst >> 2)
                } else {
                    self.pnn
                };
                let message = match kind % 7 {
                    0 => Message::Hello(Hello {
                        incarnation: u64::from(kind),
                        flags: NodeFlags(flags),
                        capabilities: if arg & 1 == 1 { CAP_RECMASTER } else { 0 },
                        start_stamp: u64::from(arg >> 1),
                        liveness: promise(arg),
                    }),
                    1 => Message::Keepalive(Keepalive {
                        flags: NodeFlags(flags),
                        recmaster: match arg & 3 {
                            0 => Pnn::NONE,
                            1 => src,
                            _ => self.slot_pnn((arg >> 2) & 0x1f),
                        },
                        recovery_mode: if arg & 0x80 == 0 {
                            RecoveryMode::Normal
                        } else {
                            RecoveryMode::Active
                        },
                        liveness: promise(arg),
                        stamp: u64::from(arg) << 20,
                        echo: u64::from(flags) << 10,
                    }),
                    2 => Message::RecoveryStart {
                        members: NodeSet::from_bytes(&flags.to_le_bytes()),
                    },
                    3 => Message::RecoveryAck,
                    4 => Message::RecoveryCommit {
                        vnnmap: NodeSet::from_bytes(&flags.to_le_bytes()),
                    },
                    5 => Message::Reconfigured,
                    _ => Message::Goodbye,
                };
                let generation = i64::from(self.node.generation().0) + i64::from(gen as i8);
                let generation = Generation(generation.clamp(0, u32::MAX.into()) as u32);
                let bytes = self.frame(src, dst, generation, message, &extra);
                self.handle(Event::Frame {
                    link,
                    bytes: &bytes,
                });
                return;
            }
            Op::Garbage { link, bytes } => {
                let link = self.link(link);
                self.handle(Event::Frame {
                    link,
                    bytes: &bytes,
                });
                return;
            }
            Op::Mutated { link, at, xor } => {
                let link = self.link(link);
                let m = Message::Keepalive(Keepalive {
                    flags: NodeFlags::empty(),
                    recmaster: Pnn::NONE,
                    recovery_mode: RecoveryMode::Normal,
                    liveness: promise(0),
                    stamp: 1,
                    echo: 0,
                });
                let generation = self.node.generation();
                let mut bytes = self.frame(self.link_peer(link), self.pnn, generation, m, &[]);
                let i = at as usize % bytes.len();
                bytes[i] ^= xor;
                self.handle(Event::Frame {
                    link,
                    bytes: &bytes,
                });
                return;
            }
            Op::BadStream(l) => {
                let link = self.link(l);
                if let Link::Out(p) = link {
                    if self.out.get(p.index()) == Some(&Out::Connecting) {
                        // No byte can arrive on a socket still connecting: a shell never
                        // reports this, and the shell model would go out of step.
                        return;
                    }
                }
                Event::BadStream { link }
            }
            Op::Closed(l) => {
                let link = self.link(l);
                match link {
                    Link::Out(p) => {
                        if let Some(o) = self.out.get_mut(p.index()) {
                            *o = Out::None;
                        }
                    }
                    Link::In(c) => {
                        self.open.remove(&c.0);
                    }
                }
                Event::Closed { link }
            }
            Op::Lock(r) => {
                let result = match r % 4 {
                    0 => LockResult::Granted,
                    1 => LockResult::Contended,
                    2 => LockResult::Lost,
                    _ => LockResult::Failed,
                };
                match result {
                    LockResult::Granted => self.lock_granted = true,
                    LockResult::Lost => self.lock_granted = false,
                    LockResult::Contended | LockResult::Failed => {}
                }
                Event::Lock(result)
            }
            Op::Control { which, line } => {
                let request = match REQUESTS.get(which as usize) {
                    Some(l) => Request::parse(l).unwrap(),
                    None => match Request::parse(&String::from_utf8_lossy(&line)) {
                        Ok(r) => r,
                        Err(_) => return,
                    },
                };
                let client = ClientId(self.next_client);
                self.next_client += 1;
                self.node
                    .handle(self.now, Event::Control { client, request })
                    .expect("control never fails");
                self.drain(Some(client));
                return;
            }
        };
        self.handle(event);
    }

    fn handle(&mut self, event: Event<'_>) {
        let misuse = match event {
            Event::Connected { peer } | Event::ConnectFailed { peer } => !self.is_remote(peer),
            _ => false,
        };
        let deadline = self.node.poll_timeout();
        let r = self.node.handle(self.now, event);
        if misuse {
            assert_eq!(r, Err(Error::UnknownPeer));
            // Refused input changes nothing: no output, same deadline, same counters. (The
            // deadline may now be due: the node did not run its timers for it.)
            assert_eq!(self.node.poll_timeout(), deadline);
            assert!(self.node.next_transmit().is_none());
            assert!(self.node.poll_action().is_none());
            assert!(self.node.poll_notification().is_none());
            assert_eq!(*self.node.stats(), self.stats);
        } else {
            assert_eq!(r, Ok(()));
            self.drain(None);
        }
    }

    /// The shell's drain (the one drive path), checking everything the node hands out.
    fn drain(&mut self, control: Option<ClientId>) {
        let mut host = Checks {
            nodes: &self.nodes,
            pnn: self.pnn,
            out: &mut self.out,
            open: &mut self.open,
            lock_granted: &mut self.lock_granted,
            sent_to: Vec::new(),
            replies: 0,
            control,
            released_ips: false,
        };
        self.driver.drain(&mut self.node, self.now, &mut host);
        let (replies, released) = (host.replies, host.released_ips);
        self.released_ips = released;
        assert_eq!(replies, usize::from(control.is_some()), "replies");
        self.check();
    }

    fn check(&mut self) {
        let deadline = self.node.poll_timeout().expect("always a deadline");
        assert!(
            deadline > self.now,
            "deadline {deadline:?} not after {:?}",
            self.now
        );

        let n = self.slots();
        let mut votes = 0;
        let mut expected = 0;
        for i in 0..=n {
            let p = Pnn(i as u32);
            let f = self.node.flags_of(p);
            if i == n {
                assert_eq!(f, NodeFlags::DISCONNECTED, "unknown slot");
                continue;
            }
            let Some(addr) = self.nodes.address_of(p) else {
                assert_eq!(f, NodeFlags::DELETED, "deleted slot {p}");
                continue;
            };
            expected += 1;
            assert!(
                !f.intersects(NodeFlags::DELETED),
                "live slot {p} flagged {f}"
            );
            if f.contains(NodeFlags::DISCONNECTED) {
                continue;
            }
            votes += 1;
            if p == self.pnn {
                continue;
            }
            assert_eq!(self.out[i], Out::Up, "{p} connected without our connection");
            assert!(
                self.open.values().any(|a| canonical(*a) == addr),
                "{p} connected without an open connection from {addr}"
            );
        }
        assert!(!self
            .node
            .flags_of(self.pnn)
            .contains(NodeFlags::DISCONNECTED));

        let node = &self.node;
        let quorate = node.quorate();
        let majority = quorum::has_majority(votes, expected);
        let tunables = node.tunables();
        let two_node_alone = tunables.two_node && expected == 2 && votes == 1;
        assert!(
            !quorate || majority || (two_node_alone && node.holds_lock()),
            "quorate with {votes} of {expected} votes"
        );
        if majority && !tunables.wait_for_all {
            assert!(quorate, "{votes} of {expected} votes but not quorate");
        }
        if self.quorate && !quorate {
            assert!(
                self.released_ips,
                "quorum lost without releasing the addresses"
            );
        }
        self.quorate = quorate;
        assert!(
            !node.holds_lock() || self.lock_granted,
            "holds a lock the service did not grant, or took back"
        );
        if node.is_acting_recmaster() {
            assert!(node.recmaster() == self.pnn && quorate && node.holds_lock());
        }
        assert!(node.generation() >= self.generation, "generation went back");
        self.generation = node.generation();

        let status = self.node.status();
        assert_eq!(status.nodes.len(), n);
        assert_eq!(status.quorate, quorate);
        assert_eq!(status.holds_lock, self.node.holds_lock());
        assert_eq!(status.recmaster, self.node.recmaster());
        assert_eq!(status.generation, self.generation);
        assert_eq!(status.recovery_mode, self.node.recovery_mode());
        for (i, s) in status.nodes.iter().enumerate() {
            assert_eq!(s.pnn, Pnn(i as u32));
            assert_eq!(s.flags, self.node.flags_of(s.pnn));
            assert_eq!(s.this_node, s.pnn == self.pnn);
        }

        let (a, b) = (self.stats, *self.node.stats());
        for (was, is) in [
            (a.frames_received, b.frames_received),
            (a.malformed_frames, b.malformed_frames),
            (a.wrong_source, b.wrong_source),
            (a.wrong_destination, b.wrong_destination),
            (a.unknown_link, b.unknown_link),
            (a.refused_connections, b.refused_connections),
            (a.bad_streams, b.bad_streams),
            (a.keepalive_ticks, b.keepalive_ticks),
            (a.stale_generation, b.stale_generation),
            (a.elections_won, b.elections_won),
            (a.recoveries, b.recoveries),
            (a.takeover_runs, b.takeover_runs),
        ] {
            assert!(is >= was, "a counter went down");
        }
        self.stats = b;
    }
}

/// `node_inputs`: see the module documentation.
pub fn node_inputs(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut shell = Shell::new(Setup::read(&mut r));
    while !r.is_empty() {
        let op = Op::read(&mut r);
        shell.run(op);
    }
}

/// A peer's keepalive promise: usually the tunables the fuzzed node runs with (100 ms x 3),
/// sometimes a long, a zero or an absurd one (the node clamps what it reads).
fn promise(arg: u8) -> Liveness {
    match arg >> 5 {
        0 => Liveness {
            interval_ms: 0,
            limit: 0,
        },
        1 => Liveness {
            interval_ms: u32::MAX,
            limit: u32::MAX,
        },
        2 => Liveness {
            interval_ms: 3_600_000,
            limit: 3,
        },
        _ => Liveness {
            interval_ms: 100,
            limit: 3,
        },
    }
}

/// What the harness checks as the drive path hands the node's outputs over.
struct Checks<'a> {
    nodes: &'a NodesFile,
    pnn: Pnn,
    out: &'a mut Vec<Out>,
    open: &'a mut BTreeMap<u64, IpAddr>,
    lock_granted: &'a mut bool,
    sent_to: Vec<Pnn>,
    replies: usize,
    control: Option<ClientId>,
    released_ips: bool,
}

impl Checks<'_> {
    fn is_remote(&self, p: Pnn) -> bool {
        p != self.pnn && self.nodes.address_of(p).is_some()
    }
}

impl Host for Checks<'_> {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        assert!(self.is_remote(peer), "transmit to {peer}");
        assert_eq!(
            self.out[peer.index()],
            Out::Up,
            "transmit to {peer} without an established connection"
        );
        assert_eq!(wire::frame_len(frame), Ok(Some(frame.len())));
        let (h, _) = wire::decode(frame).expect("our own frame decodes");
        assert_eq!((h.src, h.dst), (self.pnn, peer));
        self.sent_to.push(peer);
    }

    fn act(&mut self, a: Action, feedback: &mut Feedback) {
        match a {
            // The shell adds and removes at once, as netlink does.
            Action::TakeIp { addr, .. } => feedback.push(Event::IpResult(IpResult {
                addr,
                op: IpOp::Take,
                error: None,
            })),
            Action::ReleaseIp { addr, .. } => feedback.push(Event::IpResult(IpResult {
                addr,
                op: IpOp::Release,
                error: None,
            })),
            Action::RenewIps { lifetime_secs } => assert!(lifetime_secs >= 1),
            Action::ReloadIps => {}
            Action::AcquireLock => {}
            Action::ReleaseLock => *self.lock_granted = false,
            Action::ReleaseAllIps => self.released_ips = true,
            Action::Exit => {}
            Action::Connect { peer, addr, local } => {
                assert!(self.is_remote(peer), "connect to {peer}");
                assert_eq!(
                    addr,
                    SocketAddr::new(self.nodes.address_of(peer).unwrap(), PORT)
                );
                assert_eq!(Some(local), self.nodes.address_of(self.pnn));
                assert_eq!(
                    self.out[peer.index()],
                    Out::None,
                    "connect to {peer} without closing the current connection first"
                );
                self.out[peer.index()] = Out::Connecting;
            }
            Action::Close { link: Link::Out(p) } => {
                assert!(
                    !self.sent_to.contains(&p),
                    "transmit to {p} left before its Close"
                );
                if let Some(o) = self.out.get_mut(p.index()) {
                    *o = Out::None;
                }
            }
            Action::Close { link: Link::In(c) } => {
                self.open.remove(&c.0);
            }
            Action::Reply { client, response } => {
                assert_eq!(Some(client), self.control, "unexpected reply");
                self.replies += 1;
                // The daemon's JSON for it reads back as the CLI reads it.
                let json = pharos_host::schema::encode(&response);
                assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
                match &response {
                    Response::Status(s) => {
                        assert_eq!(s.pnn, self.pnn);
                        let back: pharos_host::schema::Status =
                            pharos_host::schema::decode(&json).expect("status reads back");
                        assert_eq!(back, pharos_host::schema::Status::from(s));
                    }
                    Response::Error(e) => {
                        let back = pharos_host::schema::decode::<serde_json::Value>(&json);
                        assert_eq!(back.as_ref(), Err(e), "{json}");
                    }
                    _ => {
                        pharos_host::schema::decode::<serde_json::Value>(&json)
                            .expect("valid JSON");
                    }
                }
            }
        }
    }
}
