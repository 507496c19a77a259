//! Test-only: an in-memory network of [`Node`]s on virtual time, the seed of the simulator,
//! kept for the event-sequencing tests (`node/events_tests.rs`) until they move onto the
//! simulator's quiet preset.
//!
//! It models what the shells do with real sockets: an outgoing connect reaches a running node
//! (even a frozen one: the kernel accepts), frames flow in order with a fixed latency, a close
//! or a crash is seen by the other end as EOF, a frozen node processes nothing until thawed.
//! Everything is deterministic: same calls, same results.

// Only part of it is used by the one test module left on it.
#![allow(dead_code)]

use crate::config::{NodesFile, PublicAddresses, Tunables};
use crate::drive::{Driver, Feedback, Host};
use crate::node::{Action, Event, IpResult, LockResult, Node, NodeConfig, Notification};
use crate::time::Instant;
use crate::types::{ConnId, Link, NodeFlags, Pnn};
use crate::wire;
use crate::wire::IpOp;
use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::net::IpAddr;
use core::time::Duration;

#[derive(Debug)]
enum Input {
    /// Our outgoing connection `id` to the peer is established.
    Connected(Pnn, u64),
    ConnectFailed(Pnn),
    Accepted(ConnId, IpAddr),
    Frame(Link, Vec<u8>),
    /// EOF on a link; for `Link::Out`, the id of the outgoing connection that ended.
    Closed(Link, u64),
    Lock(LockResult),
    /// The model host did what the node asked with an address.
    IpResult(IpResult),
}

#[derive(Debug)]
struct Conn {
    from: usize,
    to: usize,
}

/// N nodes, a virtual clock and the TCP connections between them.
pub struct Net {
    /// The nodes; `None` while crashed.
    pub nodes: Vec<Option<Node>>,
    frozen: Vec<bool>,
    now: Instant,
    /// One-way delivery latency.
    pub latency: Duration,
    nodes_file: NodesFile,
    tunables: Tunables,
    port: u16,
    conns: BTreeMap<u64, Conn>,
    /// `out[i][j]`: node i's outgoing connection to j.
    out: Vec<Vec<Option<u64>>>,
    next_conn: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    /// Queued inputs by sequence number, with the incarnation of the node they are for.
    inputs: BTreeMap<u64, (u64, Input)>,
    /// Inputs held for frozen nodes.
    held: Vec<(u64, usize)>,
    /// Per node: bumped at every start and crash, so a restarted node gets nothing meant for
    /// its previous life.
    epoch: Vec<u64>,
    restarts: u64,
    /// Who holds the model cluster lock (released when the holder crashes, like fcntl).
    /// `Some(usize::MAX)` models a holder outside the cluster.
    pub lock_holder: Option<usize>,
    /// Per node: may become recovery master (applied at its next start).
    pub capable: Vec<bool>,
    /// Control replies, by node, in order.
    pub replies: Vec<(usize, crate::control::Response)>,
    /// Every `ReleaseAllIps` a node asked for, with the time.
    pub released_all: Vec<(Instant, usize)>,
    /// Pairs that cannot reach each other: frames are lost, connects go unanswered.
    blocked: alloc::collections::BTreeSet<(usize, usize)>,
    driver: Driver,
    /// The public addresses every node is started with (none by default).
    pub public_addresses: PublicAddresses,
    /// What each node's model host has configured (added on `TakeIp`, removed on
    /// `ReleaseIp`/`ReleaseAllIps` and when the node crashes, as its guardian would).
    pub hosted: Vec<BTreeSet<IpAddr>>,
    /// Per node: its host fails every `ReleaseIp` with this errno (the address still goes:
    /// a failing `releaseip` script).
    pub release_errno: Vec<Option<i32>>,
    /// Every notification, with the time and the node.
    pub notes: Vec<(Instant, usize, Notification)>,
}

/// A model fcntl lock, as the in-memory clusters use it: `holder` asks; free, or already
/// theirs, means granted. (The simulator has a fuller lock service, with latency and leases.)
pub fn fcntl_acquire(holder: &mut Option<usize>, who: usize) -> LockResult {
    match *holder {
        None => {
            *holder = Some(who);
            LockResult::Granted
        }
        Some(h) if h == who => LockResult::Granted,
        Some(_) => LockResult::Contended,
    }
}

/// Releases the model fcntl lock if `who` holds it (a crash releases it the same way).
pub fn fcntl_release(holder: &mut Option<usize>, who: usize) {
    if *holder == Some(who) {
        *holder = None;
    }
}

/// A nodes file of `n` nodes on 127.0.0.1..=n.
pub fn loopback_nodes(n: usize) -> NodesFile {
    let addrs: Vec<Option<IpAddr>> = (0..n)
        .map(|i| Some(IpAddr::V4(core::net::Ipv4Addr::new(127, 0, 0, i as u8 + 1))))
        .collect();
    NodesFile::from_addresses(&addrs).expect("valid nodes")
}

impl Net {
    /// `n` nodes on 127.0.0.1..=n, all started at time 0.
    pub fn new(n: usize, tunables: Tunables) -> Self {
        Self::with_nodes(loopback_nodes(n), tunables)
    }

    /// One node per live slot of `nodes_file`, all started now.
    pub fn with_nodes(nodes_file: NodesFile, tunables: Tunables) -> Self {
        let mut net = Self::idle(nodes_file, tunables);
        for i in 0..net.nodes.len() {
            if net.nodes_file.address_of(Pnn(i as u32)).is_some() {
                net.start(i);
            }
        }
        net
    }

    /// The network with no node started yet: start them with [`Net::start`].
    pub fn idle(nodes_file: NodesFile, tunables: Tunables) -> Self {
        let n = nodes_file.len();
        Net {
            nodes: (0..n).map(|_| None).collect(),
            frozen: alloc::vec![false; n],
            now: Instant::ZERO,
            latency: Duration::from_micros(100),
            nodes_file,
            tunables,
            port: 4379,
            conns: BTreeMap::new(),
            out: alloc::vec![alloc::vec![None; n]; n],
            next_conn: 1,
            seq: 0,
            queue: BinaryHeap::new(),
            inputs: BTreeMap::new(),
            held: Vec::new(),
            epoch: alloc::vec![0; n],
            restarts: 0,
            lock_holder: None,
            capable: alloc::vec![true; n],
            replies: Vec::new(),
            released_all: Vec::new(),
            blocked: alloc::collections::BTreeSet::new(),
            driver: Driver::new(),
            public_addresses: PublicAddresses::default(),
            hosted: alloc::vec![BTreeSet::new(); n],
            release_errno: alloc::vec![None; n],
            notes: Vec::new(),
        }
    }

    /// `n` nodes on 127.0.0.1..=n, none started.
    pub fn idle_n(n: usize, tunables: Tunables) -> Self {
        Self::idle(loopback_nodes(n), tunables)
    }

    /// Cuts the network between the groups (each node in one group): traffic between groups is
    /// lost and connects go unanswered, but nobody sees EOF (as with a pulled cable).
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.blocked.clear();
        for (gi, a) in groups.iter().enumerate() {
            for (gj, b) in groups.iter().enumerate() {
                if gi != gj {
                    for &x in a.iter() {
                        for &y in b.iter() {
                            self.blocked.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts one direction only: frames from `from` to `to` are lost.
    pub fn block_one_way(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    /// Sends a control request line to node `i` now and returns its answer.
    pub fn control(&mut self, i: usize, line: &str) -> crate::control::Response {
        let request = crate::control::Request::parse(line).expect("valid request");
        let now = self.now;
        self.nodes[i]
            .as_mut()
            .expect("running")
            .handle(
                now,
                Event::Control {
                    client: crate::types::ClientId(0),
                    request,
                },
            )
            .expect("monotonic");
        self.drain(i);
        self.replies.pop().map(|(_, r)| r).expect("a reply")
    }

    /// The lock service tells node `i` something now (e.g. that its lock is lost).
    pub fn lock_event(&mut self, i: usize, result: LockResult) {
        if result == LockResult::Lost {
            fcntl_release(&mut self.lock_holder, i);
        }
        // Told in the same instant, so holder and belief never disagree between steps.
        let now = self.now;
        if let Some(n) = self.nodes[i].as_mut() {
            n.handle(now, Event::Lock(result)).expect("monotonic");
        }
        self.drain(i);
    }

    /// Restores full connectivity.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.blocked.contains(&(a, b))
    }

    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The running node `i`.
    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Starts (or restarts) node `i` now.
    pub fn start(&mut self, i: usize) {
        let config = NodeConfig::new(
            self.nodes_file.clone(),
            Pnn(i as u32),
            self.port,
            self.tunables.clone(),
        )
        .expect("live node")
        .with_start_stamp(self.now.as_nanos())
        .with_recmaster_capable(self.capable[i])
        .with_public_addresses(self.public_addresses.clone());
        self.restarts += 1;
        self.epoch[i] += 1;
        self.nodes[i] = Some(Node::new(config, 1000 * self.restarts + i as u64, self.now));
        self.frozen[i] = false;
        self.drain(i);
    }

    /// Kills node `i` like `kill -9`: its connections are closed by the kernel.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.hosted[i].clear();
        self.frozen[i] = false;
        self.epoch[i] += 1;
        self.held.retain(|(_, to)| *to != i);
        fcntl_release(&mut self.lock_holder, i);
        let ids: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| c.from == i || c.to == i)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close_conn(id, i);
        }
        for row in self.out[i].iter_mut() {
            *row = None;
        }
    }

    /// Freezes node `i` like SIGSTOP: its connections stay open, it processes nothing.
    pub fn freeze(&mut self, i: usize) {
        self.frozen[i] = true;
    }

    /// Thaws node `i` (SIGCONT): it processes what queued up.
    pub fn thaw(&mut self, i: usize) {
        self.frozen[i] = false;
        self.wake(i, self.now);
    }

    /// Runs until `t`.
    pub fn run_until(&mut self, t: Instant) {
        loop {
            // Deliver queued inputs and timeouts in time order.
            let next_input = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let next_timer = self.next_timer();
            let next = match (next_input, next_timer) {
                (Some(a), Some((b, _))) => a.min(b),
                (Some(a), None) => a,
                (None, Some((b, _))) => b,
                (None, None) => break,
            };
            if next > t {
                break;
            }
            self.now = self.now.max(next);
            if next_input == Some(next) {
                let Reverse((_, seq, to)) = self.queue.pop().expect("peeked");
                if self.frozen[to] {
                    // Held until thawed.
                    self.held.push((seq, to));
                    continue;
                }
                let (epoch, input) = self.inputs.remove(&seq).expect("input");
                if epoch == self.epoch[to] {
                    self.deliver(to, input);
                }
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                if let Some(n) = self.nodes[i].as_mut() {
                    n.handle(now, Event::Timeout).expect("monotonic");
                }
                self.drain(i);
            }
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs until `cond` holds (checked after every step) or `limit` passes; returns the time it
    /// took, or `None`.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Net) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let step = Duration::from_millis(1);
        while self.now - start <= limit {
            if cond(self) {
                return Some(self.now - start);
            }
            self.run_for(step);
        }
        None
    }

    /// Feeds `event` to node `i` now (a shell's input: health, carrier, ...) and drains it.
    pub fn input(&mut self, i: usize, event: Event<'_>) {
        let now = self.now;
        if let Some(n) = self.nodes[i].as_mut() {
            n.handle(now, event).expect("accepted");
        }
        self.drain(i);
    }

    /// Which nodes' hosts have `addr` configured.
    pub fn holders(&self, addr: IpAddr) -> Vec<usize> {
        (0..self.hosted.len())
            .filter(|&i| self.hosted[i].contains(&addr))
            .collect()
    }

    /// Flags of `of` as node `seen_by` sees them.
    pub fn flags(&self, seen_by: usize, of: usize) -> NodeFlags {
        self.node(seen_by).flags_of(Pnn(of as u32))
    }

    /// Whether every running, unfrozen node sees every other running, unfrozen node connected.
    pub fn all_connected(&self) -> bool {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_some() && !self.frozen[i])
            .collect();
        live.iter().all(|&a| {
            live.iter()
                .all(|&b| !self.flags(a, b).contains(NodeFlags::DISCONNECTED))
        })
    }

    fn next_timer(&self) -> Option<(Instant, usize)> {
        let mut best: Option<(Instant, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if self.frozen[i] {
                continue;
            }
            if let Some(t) = n.as_ref().and_then(|n| n.poll_timeout()) {
                let t = t.max(self.now);
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, i));
                }
            }
        }
        best
    }

    fn push_lock(&mut self, at: Instant, to: usize, result: LockResult) {
        self.push(at, to, Input::Lock(result));
    }

    fn push(&mut self, at: Instant, to: usize, input: Input) {
        self.seq += 1;
        self.inputs.insert(self.seq, (self.epoch[to], input));
        self.queue.push(Reverse((at, self.seq, to)));
    }

    fn wake(&mut self, i: usize, now: Instant) {
        let held: Vec<(u64, usize)> = self
            .held
            .iter()
            .copied()
            .filter(|(_, to)| *to == i)
            .collect();
        self.held.retain(|(_, to)| *to != i);
        for (seq, to) in held {
            self.queue.push(Reverse((now, seq, to)));
        }
    }

    fn deliver(&mut self, to: usize, input: Input) {
        let now = self.now;
        let Some(node) = self.nodes[to].as_mut() else {
            return;
        };
        let ev = match &input {
            Input::Connected(p, id) => {
                if self.out[to][p.index()] != Some(*id) {
                    return;
                }
                Event::Connected { peer: *p }
            }
            Input::ConnectFailed(p) => Event::ConnectFailed { peer: *p },
            Input::Accepted(c, a) => Event::Accepted { conn: *c, addr: *a },
            Input::Frame(l, b) => Event::Frame { link: *l, bytes: b },
            Input::Closed(Link::Out(p), id) => {
                // Only the end of the current outgoing connection is news to the node.
                if self.out[to][p.index()] != Some(*id) {
                    return;
                }
                self.out[to][p.index()] = None;
                Event::Closed {
                    link: Link::Out(*p),
                }
            }
            Input::Closed(l, _) => Event::Closed { link: *l },
            Input::Lock(r) => Event::Lock(*r),
            Input::IpResult(r) => Event::IpResult(*r),
        };
        node.handle(now, ev).expect("monotonic");
        self.drain(to);
    }

    /// Drains node `i`'s outputs into the network, through the drive path.
    fn drain(&mut self, i: usize) {
        let Some(mut node) = self.nodes[i].take() else {
            return;
        };
        let mut driver = core::mem::take(&mut self.driver);
        let now = self.now;
        driver.drain(&mut node, now, &mut NetShell { net: self, i });
        self.driver = driver;
        self.nodes[i] = Some(node);
    }

    fn transmit(&mut self, i: usize, peer: Pnn, frame: &[u8]) {
        let now = self.now;
        let lat = self.latency;
        let j = peer.index();
        let Some(id) = self.out[i][j] else { return };
        if !self.conns.contains_key(&id) || !self.reachable(i, j) {
            return;
        }
        debug_assert_eq!(wire::frame_len(frame), Ok(Some(frame.len())));
        self.push(
            now + lat,
            j,
            Input::Frame(Link::In(ConnId(id)), frame.to_vec()),
        );
    }

    fn action(&mut self, i: usize, a: Action) {
        let now = self.now;
        let lat = self.latency;
        match a {
            Action::Connect { peer, local, .. } => {
                let j = peer.index();
                if let Some(old) = self.out[i][j].take() {
                    self.close_conn(old, i);
                }
                // A frozen or running process accepts (the kernel does); a dead one refuses;
                // across a partition nothing answers (the node's connect timeout fires).
                if !self.reachable(i, j) || !self.reachable(j, i) {
                    return;
                }
                if self.nodes[j].is_some() {
                    let id = self.next_conn;
                    self.next_conn += 1;
                    self.conns.insert(id, Conn { from: i, to: j });
                    self.out[i][j] = Some(id);
                    self.push(now + lat, j, Input::Accepted(ConnId(id), local));
                    self.push(now + lat + lat, i, Input::Connected(peer, id));
                } else {
                    self.push(now + lat, i, Input::ConnectFailed(peer));
                }
            }
            Action::Close { link } => {
                let id = match link {
                    Link::Out(p) => self.out[i][p.index()],
                    Link::In(c) => Some(c.0),
                };
                if let Some(id) = id {
                    self.close_conn(id, i);
                }
                if let Link::Out(p) = link {
                    self.out[i][p.index()] = None;
                }
            }
            Action::AcquireLock => {
                let result = fcntl_acquire(&mut self.lock_holder, i);
                self.push_lock(now + lat, i, result);
            }
            Action::ReleaseLock => fcntl_release(&mut self.lock_holder, i),
            Action::Reply { response, .. } => self.replies.push((i, response)),
            Action::ReleaseAllIps => {
                self.released_all.push((now, i));
                self.hosted[i].clear();
            }
            Action::TakeIp { addr, .. } => {
                self.hosted[i].insert(addr);
                let r = IpResult {
                    addr,
                    op: IpOp::Take,
                    error: None,
                };
                self.push(now + lat, i, Input::IpResult(r));
            }
            Action::ReleaseIp { addr, .. } => {
                self.hosted[i].remove(&addr);
                let r = IpResult {
                    addr,
                    op: IpOp::Release,
                    error: self.release_errno[i],
                };
                self.push(now + lat, i, Input::IpResult(r));
            }
            // Lifetimes are not modelled (the simulator does that).
            Action::Exit | Action::RenewIps { .. } | Action::ReloadIps => {}
        }
    }

    /// Closes connection `id` from `by`'s side; the other side sees EOF.
    fn close_conn(&mut self, id: u64, by: usize) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        let lat = self.latency;
        let now = self.now;
        let other = if by == c.from { c.to } else { c.from };
        if !self.reachable(by, other) {
            // The FIN is lost in the partition; the other side finds out by keepalive.
            return;
        }
        if by == c.from {
            self.push(now + lat, c.to, Input::Closed(Link::In(ConnId(id)), id));
        } else {
            self.push(
                now + lat,
                c.from,
                Input::Closed(Link::Out(Pnn(c.to as u32)), id),
            );
        }
    }
}

/// Node `i`'s shell in the in-memory network.
struct NetShell<'n> {
    net: &'n mut Net,
    i: usize,
}

impl Host for NetShell<'_> {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        self.net.transmit(self.i, peer, frame);
    }

    fn act(&mut self, action: Action, _feedback: &mut Feedback) {
        self.net.action(self.i, action);
    }

    fn notify(&mut self, n: Notification) {
        let now = self.net.now;
        self.net.notes.push((now, self.i, n));
    }
}
