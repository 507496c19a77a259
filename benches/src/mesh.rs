//! A small cluster of [`Node`]s in one thread that, once warm, runs without heap allocation.
//!
//! Unlike `pharos_core::testing::Net` (which allocates a `Vec` per frame and is built for
//! fault injection), every buffer here is reserved up front: frames travel as fixed arrays in a
//! pre-sized queue, transmits are encoded into one reused write buffer and cut with
//! `wire::frame_len` as a shell's read path would. Delivery is immediate (zero latency); a
//! cluster lock service grants the lock to the first node that asks. That makes it the fixture
//! for the zero-allocation test (`core/tests/zero_alloc.rs` includes this file) and for the
//! steady-state benchmarks.

use pharos_core::config::{NodesFile, Tunables};
use pharos_core::control::RecoveryMode;
use pharos_core::node::LockResult;
use pharos_core::testing::{fcntl_acquire, fcntl_release};
use pharos_core::wire::{self, Op};
use pharos_core::{Action, ConnId, Event, Instant, Link, Node, NodeConfig, NodeFlags, Pnn};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

/// Largest frame the mesh carries; every current message fits.
pub const MAX_FRAME: usize = 128;

/// Inputs in flight reserved per link: formation bursts a few per link (connects, hellos,
/// keepalives); a steady state holds far fewer, so the queue never grows after warm-up (a growth
/// would be an allocation, which the zero-allocation test reports).
const QUEUE_PER_LINK: usize = 8;

enum Input {
    Frame {
        to: usize,
        conn: ConnId,
        len: usize,
        bytes: [u8; MAX_FRAME],
    },
    /// The connect that made `conn`, unless that connection was closed meanwhile.
    Connected {
        to: usize,
        peer: Pnn,
        conn: ConnId,
    },
    Accepted {
        to: usize,
        conn: ConnId,
        addr: IpAddr,
    },
    Lock {
        to: usize,
        result: LockResult,
    },
    Closed {
        to: usize,
        link: Link,
    },
}

/// The address of node `i`: 10.0.x.y.
pub fn mesh_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8 + 1))
}

/// N nodes, their connections, a lock service and a virtual clock.
pub struct Mesh {
    /// The nodes, by PNN.
    pub nodes: Vec<Node>,
    /// Current virtual time.
    pub now: Instant,
    n: usize,
    /// `out[i * n + j]`: node i's outgoing connection to j is established.
    out: Vec<bool>,
    /// `incoming[j * n + i]`: the id j knows its accepted connection from i by, if open.
    incoming: Vec<Option<ConnId>>,
    next_conn: u64,
    queue: VecDeque<Input>,
    lock_holder: Option<usize>,
    write_buf: Vec<u8>,
    /// Frames delivered so far.
    pub frames: u64,
    /// `Event::Timeout`s handled so far.
    pub timeouts: u64,
    /// Connects, closes and lock requests so far: none in a steady state.
    pub disturbances: u64,
}

impl Mesh {
    /// `n` nodes started at once with `tunables`; nothing delivered yet.
    pub fn new(n: usize, tunables: Tunables) -> Self {
        let addrs: Vec<Option<IpAddr>> = (0..n).map(|i| Some(mesh_addr(i))).collect();
        let nodes_file = NodesFile::from_addresses(&addrs).expect("valid nodes");
        let now = Instant::from_nanos(1_000_000_000);
        let nodes = (0..n)
            .map(|i| {
                let config =
                    NodeConfig::new(nodes_file.clone(), Pnn(i as u32), 4379, tunables.clone())
                        .expect("live node");
                Node::new(config, i as u64 + 1, now)
            })
            .collect();
        let mut mesh = Mesh {
            nodes,
            now,
            n,
            out: vec![false; n * n],
            incoming: vec![None; n * n],
            next_conn: 1,
            queue: VecDeque::with_capacity(QUEUE_PER_LINK * n * n),
            lock_holder: None,
            write_buf: Vec::with_capacity(MAX_FRAME),
            frames: 0,
            timeouts: 0,
            disturbances: 0,
        };
        for i in 0..n {
            mesh.drain(i);
        }
        mesh
    }

    /// `n` nodes, run until they settle (see [`Mesh::settled`]); panics if they do not within
    /// a minute of virtual time.
    pub fn settled_cluster(n: usize, tunables: Tunables) -> Self {
        let mut mesh = Mesh::new(n, tunables);
        let limit = mesh.now + std::time::Duration::from_secs(60);
        while !mesh.settled() {
            assert!(mesh.now < limit, "the mesh did not settle in 60 s");
            mesh.step();
        }
        mesh
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the mesh has no node.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Every node sees every other connected, all follow the same recovery master, which holds
    /// the lock, share one generation after at least one recovery, and are out of recovery.
    pub fn settled(&self) -> bool {
        let recmaster = self.nodes[0].recmaster();
        let generation = self.nodes[0].generation();
        recmaster != Pnn::NONE
            && generation.0 > 1
            && self.lock_holder == Some(recmaster.index())
            && self.nodes.iter().all(|node| {
                node.recmaster() == recmaster
                    && node.generation() == generation
                    && node.recovery_mode() == RecoveryMode::Normal
                    && (0..self.n).all(|j| node.flags_of(Pnn(j as u32)) == NodeFlags::empty())
            })
    }

    /// The node that acts as recovery master, if the mesh has settled.
    pub fn recmaster(&self) -> Option<usize> {
        self.settled().then(|| self.nodes[0].recmaster().index())
    }

    /// Delivers everything in flight, then moves time to the earliest deadline and handles
    /// `Timeout` on every node due.
    pub fn step(&mut self) {
        self.deliver_all();
        let next = (0..self.n)
            .filter_map(|i| self.nodes[i].poll_timeout())
            .min()
            .expect("nodes always have a deadline");
        self.now = self.now.max(next);
        for i in 0..self.n {
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.nodes[i]
                    .handle(self.now, Event::Timeout)
                    .expect("monotonic");
                self.timeouts += 1;
                self.drain(i);
            }
        }
        self.deliver_all();
    }

    /// Steps until virtual time reaches `t`.
    pub fn run_until(&mut self, t: Instant) {
        while self.now < t {
            self.step();
        }
    }

    /// Delivers every input in flight, and what it causes, at the current time.
    pub fn deliver_all(&mut self) {
        while let Some(input) = self.queue.pop_front() {
            let now = self.now;
            let to = match input {
                Input::Frame {
                    to,
                    conn,
                    len,
                    ref bytes,
                } => {
                    self.frames += 1;
                    self.nodes[to]
                        .handle(
                            now,
                            Event::Frame {
                                link: Link::In(conn),
                                bytes: &bytes[..len],
                            },
                        )
                        .expect("valid input");
                    to
                }
                Input::Connected { to, peer, conn } => {
                    let j = peer.index();
                    let event = if self.incoming[j * self.n + to] == Some(conn) {
                        self.out[to * self.n + j] = true;
                        Event::Connected { peer }
                    } else {
                        // Closed before it completed.
                        Event::ConnectFailed { peer }
                    };
                    self.nodes[to].handle(now, event).expect("valid input");
                    to
                }
                Input::Accepted { to, conn, addr } => {
                    self.nodes[to]
                        .handle(now, Event::Accepted { conn, addr })
                        .expect("valid input");
                    to
                }
                Input::Lock { to, result } => {
                    self.nodes[to]
                        .handle(now, Event::Lock(result))
                        .expect("valid input");
                    to
                }
                Input::Closed { to, link } => {
                    self.nodes[to]
                        .handle(now, Event::Closed { link })
                        .expect("valid input");
                    to
                }
            };
            self.drain(to);
        }
    }

    fn push(&mut self, input: Input) {
        self.queue.push_back(input);
    }

    /// Node `i`'s outputs become inputs of the others.
    fn drain(&mut self, i: usize) {
        let n = self.n;
        while let Some(t) = self.nodes[i].poll_transmit() {
            let j = t.peer.index();
            let Some(conn) = self.incoming[j * n + i].filter(|_| self.out[i * n + j]) else {
                continue;
            };
            self.write_buf.clear();
            t.encode(&mut self.write_buf);
            // The receiver's read path: cut the stream into frames.
            let len = wire::frame_len(&self.write_buf)
                .expect("our own frame")
                .expect("a whole frame");
            assert!(len <= MAX_FRAME, "frame of {len} bytes");
            let mut bytes = [0u8; MAX_FRAME];
            bytes[..len].copy_from_slice(&self.write_buf[..len]);
            self.push(Input::Frame {
                to: j,
                conn,
                len,
                bytes,
            });
        }
        while let Some(a) = self.nodes[i].poll_action() {
            match a {
                Action::Connect { peer, .. } => {
                    self.disturbances += 1;
                    let j = peer.index();
                    self.close_out(i, j);
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    self.incoming[j * n + i] = Some(conn);
                    let addr = mesh_addr(i);
                    self.push(Input::Accepted { to: j, conn, addr });
                    self.push(Input::Connected { to: i, peer, conn });
                }
                Action::Close { link: Link::Out(p) } => {
                    self.disturbances += 1;
                    self.close_out(i, p.index());
                }
                Action::Close { link: Link::In(c) } => {
                    self.disturbances += 1;
                    if let Some(from) = (0..n).find(|&k| self.incoming[i * n + k] == Some(c)) {
                        self.incoming[i * n + from] = None;
                        if std::mem::take(&mut self.out[from * n + i]) {
                            self.push(Input::Closed {
                                to: from,
                                link: Link::Out(Pnn(i as u32)),
                            });
                        }
                    }
                }
                Action::AcquireLock => {
                    self.disturbances += 1;
                    let result = fcntl_acquire(&mut self.lock_holder, i);
                    self.push(Input::Lock { to: i, result });
                }
                Action::ReleaseLock => {
                    self.disturbances += 1;
                    fcntl_release(&mut self.lock_holder, i);
                }
                Action::ReleaseAllIps | Action::Reply { .. } => {}
            }
        }
    }

    /// Closes node i's outgoing connection to j (if any); j sees EOF on its side.
    pub fn close_out(&mut self, i: usize, j: usize) {
        let n = self.n;
        self.out[i * n + j] = false;
        if let Some(conn) = self.incoming[j * n + i].take() {
            self.push(Input::Closed {
                to: j,
                link: Link::In(conn),
            });
        }
    }

    /// Node `i`'s outgoing connection to `j` breaks (as on a reset): both ends see EOF.
    pub fn break_link(&mut self, i: usize, j: usize) {
        if std::mem::take(&mut self.out[i * self.n + j]) {
            self.push(Input::Closed {
                to: i,
                link: Link::Out(Pnn(j as u32)),
            });
        }
        self.close_out(i, j);
    }

    /// The id node `to` knows its accepted connection from `from` by.
    pub fn incoming_conn(&self, to: usize, from: usize) -> Option<ConnId> {
        self.incoming[to * self.n + from]
    }

    /// Runs node `i` alone: handles `event` and drains its outputs, encoding every transmit into
    /// the write buffer and dropping it, and dropping every action. For measuring one node
    /// without the rest of the mesh reacting. Returns the number of transmits.
    pub fn handle_detached(&mut self, i: usize, event: Event<'_>) -> usize {
        self.nodes[i].handle(self.now, event).expect("valid input");
        let mut sent = 0;
        while let Some(t) = self.nodes[i].poll_transmit() {
            self.write_buf.clear();
            t.encode(&mut self.write_buf);
            std::hint::black_box(&self.write_buf);
            sent += 1;
        }
        while let Some(a) = self.nodes[i].poll_action() {
            std::hint::black_box(&a);
        }
        sent
    }

    /// Runs two keepalive intervals and returns the last keepalive `to` received from each
    /// peer: `(sender, connection, bytes)`, for replaying to a detached node.
    pub fn capture_to(&mut self, to: usize) -> Vec<(usize, ConnId, Vec<u8>)> {
        let mut got: Vec<(usize, ConnId, Vec<u8>)> = Vec::new();
        let until = self.now + self.nodes[to].tunables().keepalive_interval * 2;
        while self.now < until {
            self.deliver_all();
            let next = (0..self.n)
                .filter_map(|i| self.nodes[i].poll_timeout())
                .min()
                .expect("a deadline");
            self.now = self.now.max(next);
            for i in 0..self.n {
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i]
                        .handle(self.now, Event::Timeout)
                        .expect("monotonic");
                    self.drain(i);
                }
            }
            for input in &self.queue {
                if let Input::Frame {
                    to: t,
                    conn,
                    len,
                    bytes,
                } = input
                {
                    let bytes = &bytes[..*len];
                    let keepalive = wire::decode(bytes).is_ok_and(|(h, _)| h.op == Op::Keepalive);
                    if *t == to && keepalive {
                        let from = (0..self.n)
                            .find(|&k| self.incoming[to * self.n + k] == Some(*conn))
                            .expect("a current connection");
                        got.retain(|(f, _, _)| *f != from);
                        got.push((from, *conn, bytes.to_vec()));
                    }
                }
            }
        }
        self.deliver_all();
        got.sort_by_key(|(f, _, _)| *f);
        got
    }
}
