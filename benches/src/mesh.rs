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
use pharos_core::drive::{Driver, Feedback, Host};
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
    /// The connections, the lock service and the counters.
    pub net: Fabric,
    driver: Driver,
}

/// Everything of the mesh but its nodes: what a node's shell acts on.
pub struct Fabric {
    n: usize,
    /// `out[i * n + j]`: node i's outgoing connection to j is established.
    out: Vec<bool>,
    /// `incoming[j * n + i]`: the id j knows its accepted connection from i by, if open.
    incoming: Vec<Option<ConnId>>,
    next_conn: u64,
    queue: VecDeque<Input>,
    lock_holder: Option<usize>,
    /// Frames delivered so far.
    pub frames: u64,
    /// `Event::Timeout`s handled so far.
    pub timeouts: u64,
    /// Connects, closes and lock requests so far: none in a steady state.
    pub disturbances: u64,
    /// Frames sent so far.
    pub sent: u64,
}

/// Node `i`'s shell on the mesh.
struct MeshShell<'f> {
    net: &'f mut Fabric,
    i: usize,
}

impl Host for MeshShell<'_> {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        self.net.transmit(self.i, peer, frame);
    }

    fn act(&mut self, action: Action, _feedback: &mut Feedback) {
        self.net.act(self.i, action);
    }
}

/// A shell that drops everything (for measuring one node alone), counting frames and keeping
/// the last control reply.
#[derive(Default)]
pub struct Detached {
    /// Frames the node sent.
    pub sent: usize,
    /// The last reply to a control request.
    pub reply: Option<pharos_core::control::Response>,
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
            net: Fabric {
                n,
                out: vec![false; n * n],
                incoming: vec![None; n * n],
                next_conn: 1,
                queue: VecDeque::with_capacity(QUEUE_PER_LINK * n * n),
                lock_holder: None,
                frames: 0,
                timeouts: 0,
                disturbances: 0,
                sent: 0,
            },
            driver: Driver::new(),
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
        self.net.n
    }

    /// Whether the mesh has no node.
    pub fn is_empty(&self) -> bool {
        self.net.n == 0
    }

    /// Every node sees every other connected, all follow the same recovery master, which holds
    /// the lock, share one generation after at least one recovery, and are out of recovery.
    pub fn settled(&self) -> bool {
        let recmaster = self.nodes[0].recmaster();
        let generation = self.nodes[0].generation();
        recmaster != Pnn::NONE
            && generation.0 > 1
            && self.net.lock_holder == Some(recmaster.index())
            && self.nodes.iter().all(|node| {
                node.recmaster() == recmaster
                    && node.generation() == generation
                    && node.recovery_mode() == RecoveryMode::Normal
                    && (0..self.net.n).all(|j| node.flags_of(Pnn(j as u32)) == NodeFlags::empty())
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
        let next = self
            .nodes
            .iter()
            .filter_map(|n| n.poll_timeout())
            .min()
            .expect("nodes always have a deadline");
        self.now = self.now.max(next);
        for i in 0..self.nodes.len() {
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                self.handle(i, Event::Timeout);
                self.net.timeouts += 1;
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
        while let Some(input) = self.net.queue.pop_front() {
            match input {
                Input::Frame {
                    to,
                    conn,
                    len,
                    ref bytes,
                } => {
                    self.net.frames += 1;
                    let link = Link::In(conn);
                    self.handle(
                        to,
                        Event::Frame {
                            link,
                            bytes: &bytes[..len],
                        },
                    );
                }
                Input::Connected { to, peer, conn } => {
                    let j = peer.index();
                    let n = self.net.n;
                    let event = if self.net.incoming[j * n + to] == Some(conn) {
                        self.net.out[to * n + j] = true;
                        Event::Connected { peer }
                    } else {
                        // Closed before it completed.
                        Event::ConnectFailed { peer }
                    };
                    self.handle(to, event);
                }
                Input::Accepted { to, conn, addr } => {
                    self.handle(to, Event::Accepted { conn, addr })
                }
                Input::Lock { to, result } => self.handle(to, Event::Lock(result)),
                Input::Closed { to, link } => self.handle(to, Event::Closed { link }),
            }
        }
    }

    /// Node `i` handles `event` now, through the drive path.
    fn handle(&mut self, i: usize, event: Event<'_>) {
        let shell = &mut MeshShell {
            net: &mut self.net,
            i,
        };
        self.driver
            .drive(&mut self.nodes[i], self.now, event, shell)
            .expect("valid input");
    }

    /// Drains node `i`'s outputs (after its start).
    fn drain(&mut self, i: usize) {
        let shell = &mut MeshShell {
            net: &mut self.net,
            i,
        };
        self.driver.drain(&mut self.nodes[i], self.now, shell);
    }

    /// Closes node i's outgoing connection to j (if any); j sees EOF on its side.
    pub fn close_out(&mut self, i: usize, j: usize) {
        self.net.close_out(i, j);
    }

    /// Node `i`'s outgoing connection to `j` breaks (as on a reset): both ends see EOF.
    pub fn break_link(&mut self, i: usize, j: usize) {
        self.net.break_link(i, j);
    }

    /// The id node `to` knows its accepted connection from `from` by.
    pub fn incoming_conn(&self, to: usize, from: usize) -> Option<ConnId> {
        self.net.incoming[to * self.net.n + from]
    }

    /// Runs node `i` alone: handles `event` and drains its outputs, encoding every frame and
    /// dropping it, and dropping every action. For measuring one node without the rest of the
    /// mesh reacting. Returns what the node sent and answered.
    pub fn handle_detached(&mut self, i: usize, event: Event<'_>) -> Detached {
        let mut shell = Detached::default();
        self.driver
            .drive(&mut self.nodes[i], self.now, event, &mut shell)
            .expect("valid input");
        shell
    }

    /// Runs two keepalive intervals and returns the last keepalive `to` received from each
    /// peer: `(sender, connection, bytes)`, for replaying to a detached node.
    pub fn capture_to(&mut self, to: usize) -> Vec<(usize, ConnId, Vec<u8>)> {
        let n = self.net.n;
        let mut got: Vec<(usize, ConnId, Vec<u8>)> = Vec::new();
        let until = self.now + self.nodes[to].tunables().keepalive_interval * 2;
        while self.now < until {
            self.deliver_all();
            let next = self
                .nodes
                .iter()
                .filter_map(|x| x.poll_timeout())
                .min()
                .expect("a deadline");
            self.now = self.now.max(next);
            for i in 0..n {
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.handle(i, Event::Timeout);
                }
            }
            for input in &self.net.queue {
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
                        let from = (0..n)
                            .find(|&k| self.net.incoming[to * n + k] == Some(*conn))
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

impl Fabric {
    fn push(&mut self, input: Input) {
        self.queue.push_back(input);
    }

    /// A frame of node `i` for `peer`: the receiver's read path cuts the stream into frames.
    fn transmit(&mut self, i: usize, peer: Pnn, frame: &[u8]) {
        let n = self.n;
        let j = peer.index();
        let Some(conn) = self.incoming[j * n + i].filter(|_| self.out[i * n + j]) else {
            return;
        };
        let len = wire::frame_len(frame)
            .expect("our own frame")
            .expect("a whole frame");
        assert!(len <= MAX_FRAME, "frame of {len} bytes");
        let mut bytes = [0u8; MAX_FRAME];
        bytes[..len].copy_from_slice(&frame[..len]);
        self.sent += 1;
        self.push(Input::Frame {
            to: j,
            conn,
            len,
            bytes,
        });
    }

    fn act(&mut self, i: usize, a: Action) {
        let n = self.n;
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
            // The mesh hosts no addresses (its nodes have none configured).
            Action::ReleaseAllIps
            | Action::Reply { .. }
            | Action::Exit
            | Action::TakeIp { .. }
            | Action::ReleaseIp { .. }
            | Action::RenewIps { .. }
            | Action::ReloadIps => {}
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
}
