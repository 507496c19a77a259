//! A small cluster for the takeover and event tests: real [`Node`]s driven through
//! [`crate::drive::Driver`] on virtual time, TCP connections between them, a model fcntl lock,
//! and a model of each host's kernel addresses (with their lifetimes), so that a test can check
//! after every step that no address is configured on two hosts.
//!
//! Kept apart from `crate::testing` and `crate::sim` on purpose: this is what the takeover tests
//! need and no more (faults are scripted by the test, not drawn at random).
//!
//! What a host does with the node's address actions is set per node ([`IpMode`]): at once, after
//! a delay, never (a hung netlink), or "the daemon freezes as it is asked to release". A frozen
//! node processes nothing and renews nothing: its addresses stay on its host until their kernel
//! lifetime runs out, unless its guardian fences it ([`Lab::fence`]).

use crate::config::{NodesFile, PublicAddresses, Tunables};
use crate::control::{Request, Response};
use crate::drive::{Driver, Feedback, Host};
use crate::node::{Action, Event, IpResult, LockResult, Node, NodeConfig, Notification};
use crate::time::Instant;
use crate::types::{ClientId, ConnId, Link, Pnn};
use crate::wire::{self, IpOp, Message};
use alloc::collections::{BTreeMap, BinaryHeap};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

/// How a host carries out its node's take and release actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpMode {
    /// Done and answered at once.
    Instant,
    /// Done and answered this long after the action.
    Delay(Duration),
    /// Never done, never answered (netlink hung); renewals still work.
    Stuck,
    /// Takes at once; on a release the daemon freezes before doing anything (it goes silent with
    /// the address still configured).
    FreezeOnRelease,
    /// On a take the kernel adds the address at once, and the daemon freezes before it reads
    /// the kernel's answer (it answers the recovery master only once thawed).
    FreezeOnTake,
    /// Takes at once; a release removes the address but reports this errno (a failing
    /// `releaseip` script: the address still goes).
    FailRelease(i32),
}

/// Something that happened, with its time, for the tests' assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rec {
    /// A frame `from` sent to `to` (recorded when sent).
    Frame {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
        /// The frame, decoded.
        msg: Message,
    },
    /// Host `node` added `addr` to its kernel.
    Added { node: usize, addr: IpAddr },
    /// Host `node` removed `addr` from its kernel (asked to, by ReleaseAllIps, or by its
    /// guardian).
    Removed { node: usize, addr: IpAddr },
    /// The kernel of `node` dropped `addr`: its lifetime ran out.
    Expired { node: usize, addr: IpAddr },
    /// A notification of `node`.
    Told { node: usize, what: Notification },
}

#[derive(Debug)]
enum Input {
    /// Our outgoing connection `id` to the peer is up.
    Connected(Pnn, u64),
    ConnectFailed(Pnn),
    Accepted(u64, IpAddr),
    Frame(u64, Vec<u8>),
    /// EOF on our incoming connection `id`.
    ClosedIn(u64),
    /// EOF on our outgoing connection `id` to the peer.
    ClosedOut(Pnn, u64),
    /// A delayed take or release is done now.
    HostOp(IpOp, IpAddr, u8, Option<(u32, Instant)>),
    /// The kernel's answer to a take or release done earlier reaches the daemon.
    Answer(IpResult),
}

#[derive(Debug)]
struct Conn {
    from: usize,
    to: usize,
    established: bool,
    closed_by_sender: bool,
    closed_by_receiver: bool,
    /// A guardian's one-frame connection (not a node's outgoing link).
    guardian: bool,
}

/// Everything but the nodes: what the hosts share (the network, the lock, the kernels).
struct World {
    now: Instant,
    latency: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    inputs: BTreeMap<u64, (usize, u64, Input)>,
    epoch: Vec<u64>,
    running: Vec<bool>,
    frozen: Vec<bool>,
    /// Inputs for frozen nodes, in order.
    held: Vec<u64>,
    next_conn: u64,
    conns: BTreeMap<u64, Conn>,
    out: Vec<Vec<Option<u64>>>,
    nodes_file: NodesFile,
    lock: Option<usize>,
    kernel: Vec<BTreeMap<IpAddr, Instant>>,
    modes: Vec<IpMode>,
    lists: Vec<PublicAddresses>,
    replies: Vec<(usize, Response)>,
    /// Nodes to freeze once their current drain is over.
    freeze_now: Vec<usize>,
    /// Nodes that shut down during their current drain.
    exited: Vec<usize>,
    log: Vec<(Instant, Rec)>,
}

/// A host: the world as node `me` sees it while it is being driven.
struct HostOf<'a> {
    world: &'a mut World,
    me: usize,
}

/// The cluster.
pub struct Lab {
    nodes: Vec<Option<Node>>,
    drivers: Vec<Driver>,
    /// What each node's guardian sends its peers when it fences (taken at start).
    fencing: Vec<Vec<(IpAddr, SocketAddr, Vec<u8>)>>,
    world: World,
    tunables: Tunables,
    starts: u64,
}

/// Kernel errno for a take that came too late (the shell's `not_after` passed).
const ETIME: i32 = 62;

impl World {
    fn push(&mut self, at: Instant, to: usize, input: Input) {
        self.seq += 1;
        self.inputs.insert(self.seq, (to, self.epoch[to], input));
        self.queue.push(Reverse((at, self.seq)));
    }

    fn later(&self) -> Instant {
        self.now + self.latency
    }

    fn pnn_at(&self, addr: IpAddr) -> Option<usize> {
        self.nodes_file.pnn_of(addr).map(Pnn::index)
    }

    fn record(&mut self, r: Rec) {
        self.log.push((self.now, r));
    }

    /// Drops what ran out of lifetime by now.
    fn expire(&mut self) {
        let now = self.now;
        for node in 0..self.kernel.len() {
            let gone: Vec<IpAddr> = self.kernel[node]
                .iter()
                .filter(|(_, until)| **until <= now)
                .map(|(a, _)| *a)
                .collect();
            for addr in gone {
                self.kernel[node].remove(&addr);
                self.record(Rec::Expired { node, addr });
            }
        }
    }

    fn remove(&mut self, node: usize, addr: IpAddr) {
        if self.kernel[node].remove(&addr).is_some() {
            self.record(Rec::Removed { node, addr });
        }
    }

    fn remove_all(&mut self, node: usize) {
        let all: Vec<IpAddr> = self.kernel[node].keys().copied().collect();
        for addr in all {
            self.remove(node, addr);
        }
    }

    /// Carries out a take or release on host `node` now; the node's answer.
    fn host_op(
        &mut self,
        node: usize,
        op: IpOp,
        addr: IpAddr,
        take: Option<(u32, Instant)>,
    ) -> IpResult {
        self.expire();
        let error = match (op, take) {
            (IpOp::Take, Some((_, not_after))) if self.now > not_after => Some(ETIME),
            (IpOp::Take, Some((lifetime, _))) => {
                let until = self.now + Duration::from_secs(u64::from(lifetime));
                if self.kernel[node].insert(addr, until).is_none() {
                    self.record(Rec::Added { node, addr });
                }
                None
            }
            _ => {
                self.remove(node, addr);
                None
            }
        };
        IpResult { addr, op, error }
    }

    /// Closes every connection of `node` as the kernel does when its process dies.
    fn close_all_of(&mut self, node: usize) {
        let later = self.later();
        let mut tell = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            if c.from == node && !c.closed_by_sender {
                c.closed_by_sender = true;
                tell.push((c.to, Input::ClosedIn(*id)));
            }
            if c.to == node && !c.closed_by_receiver {
                c.closed_by_receiver = true;
                if !c.guardian {
                    tell.push((c.from, Input::ClosedOut(Pnn(node as u32), *id)));
                }
            }
        }
        for (to, input) in tell {
            if to != node {
                self.push(later, to, input);
            }
        }
        for o in self.out[node].iter_mut() {
            *o = None;
        }
        if self.lock == Some(node) {
            self.lock = None;
        }
    }
}

impl Host for HostOf<'_> {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        let me = self.me;
        let Some(id) = self.world.out[me].get(peer.index()).copied().flatten() else {
            return;
        };
        let ok = self
            .world
            .conns
            .get(&id)
            .is_some_and(|c| c.established && !c.closed_by_receiver);
        if !ok {
            return;
        }
        if let Ok((_, msg)) = wire::decode(frame) {
            self.world.record(Rec::Frame {
                from: me,
                to: peer.index(),
                msg,
            });
        }
        let later = self.world.later();
        self.world
            .push(later, peer.index(), Input::Frame(id, frame.to_vec()));
    }

    fn act(&mut self, action: Action, feedback: &mut Feedback) {
        let (w, me) = (&mut *self.world, self.me);
        match action {
            Action::Connect { peer, .. } => {
                let later = w.later();
                let j = peer.index();
                if !w.running[j] {
                    w.push(later, me, Input::ConnectFailed(peer));
                    return;
                }
                w.next_conn += 1;
                let id = w.next_conn;
                w.conns.insert(
                    id,
                    Conn {
                        from: me,
                        to: j,
                        established: false,
                        closed_by_sender: false,
                        closed_by_receiver: false,
                        guardian: false,
                    },
                );
                if let Some(old) = w.out[me][j].replace(id) {
                    close_out(w, old);
                }
                let local = w.nodes_file.address_of(Pnn(me as u32)).expect("live");
                w.push(later, me, Input::Connected(peer, id));
                w.push(later, j, Input::Accepted(id, local));
            }
            Action::Close {
                link: Link::Out(peer),
            } => {
                if let Some(id) = w.out[me][peer.index()].take() {
                    close_out(w, id);
                }
            }
            Action::Close {
                link: Link::In(ConnId(id)),
            } => {
                let later = w.later();
                if let Some(c) = w.conns.get_mut(&id) {
                    if !c.closed_by_receiver {
                        c.closed_by_receiver = true;
                        if !c.guardian && !c.closed_by_sender {
                            let from = c.from;
                            w.push(later, from, Input::ClosedOut(Pnn(me as u32), id));
                        }
                    }
                }
            }
            Action::AcquireLock => {
                let r = match w.lock {
                    None => {
                        w.lock = Some(me);
                        LockResult::Granted
                    }
                    Some(h) if h == me => LockResult::Granted,
                    Some(_) => LockResult::Contended,
                };
                feedback.push(Event::Lock(r));
            }
            Action::ReleaseLock => {
                if w.lock == Some(me) {
                    w.lock = None;
                }
            }
            Action::ReleaseAllIps => w.remove_all(me),
            Action::TakeIp {
                addr,
                prefix,
                lifetime_secs,
                not_after,
                ..
            } => {
                let take = Some((lifetime_secs, not_after));
                match w.modes[me] {
                    IpMode::Instant | IpMode::FreezeOnRelease | IpMode::FailRelease(_) => {
                        let r = w.host_op(me, IpOp::Take, addr, take);
                        feedback.push(Event::IpResult(r));
                    }
                    IpMode::Delay(d) => {
                        let at = w.now + d;
                        w.push(at, me, Input::HostOp(IpOp::Take, addr, prefix, take));
                    }
                    IpMode::Stuck => {}
                    IpMode::FreezeOnTake => {
                        let r = w.host_op(me, IpOp::Take, addr, take);
                        let now = w.now;
                        w.push(now, me, Input::Answer(r));
                        w.freeze_now.push(me);
                    }
                }
            }
            Action::ReleaseIp { addr, prefix, .. } => match w.modes[me] {
                IpMode::Instant | IpMode::FreezeOnTake => {
                    let r = w.host_op(me, IpOp::Release, addr, None);
                    feedback.push(Event::IpResult(r));
                }
                IpMode::Delay(d) => {
                    let at = w.now + d;
                    w.push(at, me, Input::HostOp(IpOp::Release, addr, prefix, None));
                }
                IpMode::Stuck => {}
                IpMode::FreezeOnRelease => w.freeze_now.push(me),
                IpMode::FailRelease(errno) => {
                    let mut r = w.host_op(me, IpOp::Release, addr, None);
                    r.error = Some(errno);
                    feedback.push(Event::IpResult(r));
                }
            },
            Action::RenewIps { lifetime_secs } => {
                w.expire();
                let until = w.now + Duration::from_secs(u64::from(lifetime_secs));
                for t in w.kernel[me].values_mut() {
                    *t = until;
                }
            }
            Action::ReloadIps => {
                feedback.push(Event::PublicAddresses(w.lists[me].clone()));
            }
            Action::Reply { response, .. } => w.replies.push((me, response)),
            Action::Exit => w.exited.push(me),
        }
    }

    fn notify(&mut self, what: Notification) {
        let node = self.me;
        self.world.record(Rec::Told { node, what });
    }
}

/// The sender closes its outgoing connection `id`: the receiver reads what is in flight, then
/// EOF.
fn close_out(w: &mut World, id: u64) {
    let later = w.later();
    if let Some(c) = w.conns.get_mut(&id) {
        if !c.closed_by_sender {
            c.closed_by_sender = true;
            let to = c.to;
            w.push(later, to, Input::ClosedIn(id));
        }
    }
}

impl Lab {
    /// `lists.len()` nodes on 127.0.0.1..=n, each with its public addresses, all started at 0.
    /// Node 0 starts first (it is the longest running, so it wins the election).
    pub fn new(lists: Vec<PublicAddresses>, tunables: Tunables) -> Lab {
        let n = lists.len();
        let text: String = (1..=n).map(|i| format!("127.0.0.{i}\n")).collect();
        let nodes_file = NodesFile::parse(&text).expect("nodes");
        let mut lab = Lab {
            nodes: (0..n).map(|_| None).collect(),
            drivers: (0..n).map(|_| Driver::new()).collect(),
            fencing: alloc::vec![Vec::new(); n],
            world: World {
                now: Instant::ZERO,
                latency: Duration::from_micros(200),
                seq: 0,
                queue: BinaryHeap::new(),
                inputs: BTreeMap::new(),
                epoch: alloc::vec![0; n],
                running: alloc::vec![false; n],
                frozen: alloc::vec![false; n],
                held: Vec::new(),
                next_conn: 0,
                conns: BTreeMap::new(),
                out: alloc::vec![alloc::vec![None; n]; n],
                nodes_file,
                lock: None,
                kernel: alloc::vec![BTreeMap::new(); n],
                modes: alloc::vec![IpMode::Instant; n],
                lists,
                replies: Vec::new(),
                freeze_now: Vec::new(),
                exited: Vec::new(),
                log: Vec::new(),
            },
            tunables,
            starts: 0,
        };
        for i in 0..n {
            lab.start(i);
        }
        lab
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        self.world.now
    }

    /// Running node `i`.
    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("running")
    }

    /// Whether node `i` runs (frozen or not).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_some()
    }

    /// How host `i` carries out take and release from now on.
    pub fn set_mode(&mut self, i: usize, mode: IpMode) {
        self.world.modes[i] = mode;
    }

    /// Node `i`'s public addresses file, for the next `reloadips`.
    pub fn set_list(&mut self, i: usize, list: PublicAddresses) {
        self.world.lists[i] = list;
    }

    /// Everything recorded so far.
    pub fn log(&self) -> &[(Instant, Rec)] {
        &self.world.log
    }

    /// What host `i` has configured now.
    pub fn kernel(&self, i: usize) -> Vec<IpAddr> {
        self.world.kernel[i].keys().copied().collect()
    }

    /// The hosts that have `addr` configured now.
    pub fn holders(&self, addr: IpAddr) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.world.kernel[i].contains_key(&addr))
            .collect()
    }

    /// Starts (or restarts) node `i` now; it begins by removing whatever its host has (the
    /// core asks for that at start).
    pub fn start(&mut self, i: usize) {
        self.starts += 1;
        let config = NodeConfig::new(
            self.world.nodes_file.clone(),
            Pnn(i as u32),
            4379,
            self.tunables.clone(),
        )
        .expect("live node")
        // Earliest start first: node 0 of the first start is the longest running.
        .with_start_stamp(self.world.now.as_nanos() * 10 + i as u64)
        .with_public_addresses(self.world.lists[i].clone());
        let node = Node::new(config, self.starts * 100 + i as u64, self.world.now);
        self.fencing[i] = node.fencing_frames();
        self.world.epoch[i] += 1;
        self.world.running[i] = true;
        self.world.frozen[i] = false;
        self.nodes[i] = Some(node);
        self.drain(i);
    }

    /// `kill -9` of node `i`'s daemon: the kernel closes its connections, and its guardian
    /// (which sees the daemon die) removes its addresses and tells the peers.
    pub fn kill9(&mut self, i: usize) {
        self.fence(i);
    }

    /// Node `i`'s guardian fences it (the daemon died or hung): it removes every address, tells
    /// each running peer on a connection of its own, and kills the daemon.
    pub fn fence(&mut self, i: usize) {
        self.world.remove_all(i);
        let later = self.world.later();
        for (local, peer, bytes) in self.fencing[i].clone() {
            let Some(j) = self.world.pnn_at(peer.ip()) else {
                continue;
            };
            if !self.world.running[j] {
                continue;
            }
            self.world.next_conn += 1;
            let id = self.world.next_conn;
            self.world.conns.insert(
                id,
                Conn {
                    from: i,
                    to: j,
                    established: true,
                    closed_by_sender: true,
                    closed_by_receiver: false,
                    guardian: true,
                },
            );
            self.world.push(later, j, Input::Accepted(id, local));
            self.world.push(later, j, Input::Frame(id, bytes));
        }
        self.crash(i);
    }

    /// The daemon of node `i` dies and nothing removes its addresses (they stay until their
    /// kernel lifetime runs out).
    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.world.running[i] = false;
        self.world.frozen[i] = false;
        self.world.epoch[i] += 1;
        let inputs = &self.world.inputs;
        self.world
            .held
            .retain(|seq| inputs.get(seq).is_some_and(|(to, _, _)| *to != i));
        self.world.close_all_of(i);
    }

    /// SIGSTOP of node `i`'s daemon and guardian: its connections stay open, it processes and
    /// renews nothing.
    pub fn freeze(&mut self, i: usize) {
        self.world.frozen[i] = true;
    }

    /// SIGCONT: it processes what queued up meanwhile, in order.
    pub fn thaw(&mut self, i: usize) {
        self.world.frozen[i] = false;
        let now = self.world.now;
        let held = core::mem::take(&mut self.world.held);
        for seq in held {
            if self
                .world
                .inputs
                .get(&seq)
                .is_some_and(|(to, _, _)| *to == i)
            {
                self.world.queue.push(Reverse((now, seq)));
            } else {
                self.world.held.push(seq);
            }
        }
    }

    /// Whether node `i` is frozen.
    pub fn is_frozen(&self, i: usize) -> bool {
        self.world.frozen[i]
    }

    /// Sends a control request line to node `i` now; its answer.
    pub fn control(&mut self, i: usize, line: &str) -> Response {
        let request = Request::parse(line).expect("a valid request line");
        self.drive(
            i,
            Event::Control {
                client: ClientId(1),
                request,
            },
        );
        let k = self
            .world
            .replies
            .iter()
            .rposition(|(n, _)| *n == i)
            .expect("an answer");
        self.world.replies.remove(k).1
    }

    /// Hands node `i` a frame as if `from` had sent it on its connection (a hand-made frame).
    pub fn inject(&mut self, from: usize, to: usize, frame: Vec<u8>) {
        let id = self.world.out[from][to].expect("connected");
        let at = self.world.now;
        self.world.push(at, to, Input::Frame(id, frame));
        self.step_until(at);
    }

    /// Runs until `t`.
    pub fn run_until(&mut self, t: Instant) {
        self.step_until(t);
        self.world.now = self.world.now.max(t);
        self.check();
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.world.now + d;
        self.run_until(t);
    }

    /// Runs in 1 ms steps until `cond` holds or `limit` passed; how long it took.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&Lab) -> bool,
    ) -> Option<Duration> {
        let start = self.world.now;
        while self.world.now - start <= limit {
            if cond(self) {
                return Some(self.world.now - start);
            }
            self.run_for(Duration::from_millis(1));
        }
        None
    }

    fn step_until(&mut self, t: Instant) {
        loop {
            let next_input = self.world.queue.peek().map(|Reverse((at, _))| *at);
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
            self.world.now = self.world.now.max(next);
            if next_input == Some(next) {
                if !self.deliver_next() {
                    // All of it was for frozen nodes: look again.
                    continue;
                }
            } else if let Some((_, i)) = next_timer {
                self.drive(i, Event::Timeout);
            }
            self.check();
        }
    }

    /// Delivers the earliest input due now that is not for a frozen node (those wait for their
    /// node to thaw); `false` if there is none.
    fn deliver_next(&mut self) -> bool {
        let now = self.world.now;
        while let Some(&Reverse((at, seq))) = self.world.queue.peek() {
            if at > now {
                break;
            }
            self.world.queue.pop();
            let to = self.world.inputs[&seq].0;
            if self.world.frozen[to] {
                self.world.held.push(seq);
                continue;
            }
            let (to, epoch, input) = self.world.inputs.remove(&seq).expect("queued");
            if epoch == self.world.epoch[to] && self.nodes[to].is_some() {
                self.input(to, input);
            }
            return true;
        }
        false
    }

    fn input(&mut self, to: usize, input: Input) {
        match input {
            Input::Connected(peer, id) => {
                if self.world.out[to][peer.index()] != Some(id) {
                    return;
                }
                if let Some(c) = self.world.conns.get_mut(&id) {
                    c.established = true;
                }
                self.drive(to, Event::Connected { peer });
            }
            Input::ConnectFailed(peer) => self.drive(to, Event::ConnectFailed { peer }),
            Input::Accepted(id, addr) => self.drive(
                to,
                Event::Accepted {
                    conn: ConnId(id),
                    addr,
                },
            ),
            Input::Frame(id, bytes) => {
                if self
                    .world
                    .conns
                    .get(&id)
                    .is_some_and(|c| !c.closed_by_receiver)
                {
                    self.drive(
                        to,
                        Event::Frame {
                            link: Link::In(ConnId(id)),
                            bytes: &bytes,
                        },
                    );
                }
            }
            Input::ClosedIn(id) => {
                let open = self.world.conns.get_mut(&id).is_some_and(|c| {
                    let was = !c.closed_by_receiver;
                    c.closed_by_receiver = true;
                    was
                });
                if open {
                    self.drive(
                        to,
                        Event::Closed {
                            link: Link::In(ConnId(id)),
                        },
                    );
                }
            }
            Input::ClosedOut(peer, id) => {
                if self.world.out[to][peer.index()] == Some(id) {
                    self.world.out[to][peer.index()] = None;
                    self.drive(
                        to,
                        Event::Closed {
                            link: Link::Out(peer),
                        },
                    );
                }
            }
            Input::HostOp(op, addr, _prefix, take) => {
                let r = self.world.host_op(to, op, addr, take);
                self.drive(to, Event::IpResult(r));
            }
            Input::Answer(r) => self.drive(to, Event::IpResult(r)),
        }
    }

    fn next_timer(&self) -> Option<(Instant, usize)> {
        let mut best: Option<(Instant, usize)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if self.world.frozen[i] {
                continue;
            }
            if let Some(t) = n.as_ref().and_then(Node::poll_timeout) {
                let t = t.max(self.world.now);
                if best.is_none_or(|(b, _)| t < b) {
                    best = Some((t, i));
                }
            }
        }
        best
    }

    /// Feeds node `i` one event now (a health verdict, a carrier change...) and carries out
    /// everything it asks.
    pub fn event(&mut self, i: usize, event: Event<'_>) {
        self.drive(i, event);
        self.check();
    }

    /// Feeds node `i` one event and carries out everything it asks.
    fn drive(&mut self, i: usize, event: Event<'_>) {
        let now = self.world.now;
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        let mut host = HostOf {
            world: &mut self.world,
            me: i,
        };
        if let Err(e) = self.drivers[i].drive(node, now, event, &mut host) {
            panic!("node {i} refused an input at {now:?}: {e}");
        }
        self.drain_after(i);
    }

    fn drain(&mut self, i: usize) {
        let now = self.world.now;
        if let Some(node) = self.nodes[i].as_mut() {
            let mut host = HostOf {
                world: &mut self.world,
                me: i,
            };
            self.drivers[i].drain(node, now, &mut host);
        }
        self.drain_after(i);
    }

    fn drain_after(&mut self, i: usize) {
        for f in core::mem::take(&mut self.world.freeze_now) {
            self.world.frozen[f] = true;
        }
        if core::mem::take(&mut self.world.exited).contains(&i) {
            self.crash(i);
        }
    }

    /// The hosting invariant, after every step: no address on two hosts.
    fn check(&mut self) {
        self.world.expire();
        let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (i, k) in self.world.kernel.iter().enumerate() {
            for addr in k.keys() {
                if let Some(j) = seen.insert(*addr, i) {
                    panic!(
                        "{addr} configured on hosts {j} and {i} at {:?}\n{}",
                        self.world.now,
                        self.tail(40)
                    );
                }
            }
        }
    }

    /// The last `n` records, one per line, for failure messages (keepalives left out).
    pub fn tail(&self, n: usize) -> String {
        let log: Vec<&(Instant, Rec)> = self
            .world
            .log
            .iter()
            .filter(|(_, r)| {
                !matches!(
                    r,
                    Rec::Frame {
                        msg: Message::Keepalive(_),
                        ..
                    }
                )
            })
            .collect();
        log[log.len().saturating_sub(n)..]
            .iter()
            .map(|(t, r)| format!("{:>10.3} ms  {r:?}\n", t.as_nanos() as f64 / 1e6))
            .collect()
    }
}
