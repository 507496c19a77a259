//! The `Node` state machine: one per daemon.
//!
//! # Contract (the quinn-proto / str0m sans-IO rules)
//!
//! - Feed every input to [`Node::handle`] with the current monotonic `now`; `now` never goes
//!   backwards ([`Error::TimeWentBackwards`] otherwise, and the input is ignored).
//! - After every `handle`, drain [`Node::poll_transmit`] until `None`, then [`Node::poll_action`]
//!   until `None`, then read [`Node::poll_timeout`] and call `handle(now, Event::Timeout)` when it
//!   is reached. Calling `Timeout` early is harmless.
//! - Transmits always go on the node's outgoing connection to `Transmit::peer`; a transmit for a
//!   peer without an established outgoing connection is dropped by the shell.
//! - Ordering: a `Close` for a link is emitted after any transmit meant for it has been withdrawn,
//!   and before any `Connect` that replaces it.
//!
//! The steady-state path (a keepalive frame in, keepalive ticks, keepalives out) allocates
//! nothing once the queues have reached their working size.

mod election;
mod health;
mod recovery;
mod transport;

use crate::config::{ConfigError, NodesFile, Tunables};
use crate::control::{
    self, AdminCommand, NodeStatus, RecoveryMode, Request, Response, StatusReport,
};
use crate::error::Error;
use crate::quorum;
use crate::rng::Rng;
use crate::time::Instant;
use crate::types::{ClientId, ConnId, Generation, Link, NodeFlags, NodeSet, Pnn};
use crate::wire::{self, Header, Keepalive, Message};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use health::Promise;
pub use recovery::Recovery;
pub use transport::OutState;

/// A validated node configuration.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    nodes: NodesFile,
    pnn: Pnn,
    port: u16,
    tunables: Tunables,
    start_stamp: u64,
    recmaster_capable: bool,
}

impl NodeConfig {
    /// Checks that `pnn` is a live (not deleted) slot of `nodes`.
    pub fn new(
        nodes: NodesFile,
        pnn: Pnn,
        port: u16,
        tunables: Tunables,
    ) -> Result<Self, ConfigError> {
        if nodes.address_of(pnn).is_none() {
            return Err(ConfigError::at(
                0,
                format!("pnn {pnn} is not a live node of the nodes file"),
            ));
        }
        Ok(NodeConfig {
            nodes,
            pnn,
            port,
            tunables,
            start_stamp: 0,
            recmaster_capable: true,
        })
    }

    /// When this node started, on a scale all nodes share (shells use milliseconds since the
    /// Unix epoch, like CTDB's election "priority time"). The election prefers the earliest.
    pub fn with_start_stamp(mut self, stamp: u64) -> Self {
        self.start_stamp = stamp;
        self
    }

    /// Whether this node may become recovery master (CTDB's `--no-recmaster` when false).
    pub fn with_recmaster_capable(mut self, capable: bool) -> Self {
        self.recmaster_capable = capable;
        self
    }

    /// The nodes file.
    pub fn nodes(&self) -> &NodesFile {
        &self.nodes
    }

    /// This node's PNN.
    pub fn pnn(&self) -> Pnn {
        self.pnn
    }
}

/// An input to the node.
#[derive(Debug)]
pub enum Event<'a> {
    /// Time passed (the deadline from [`Node::poll_timeout`] was reached, or any wake-up).
    Timeout,
    /// Our outgoing connection to `peer` (asked for with [`Action::Connect`]) is established.
    Connected {
        /// The peer.
        peer: Pnn,
    },
    /// Our outgoing connection to `peer` failed; the shell has already dropped the socket.
    ConnectFailed {
        /// The peer.
        peer: Pnn,
    },
    /// The shell accepted a connection from `addr` and named it `conn`.
    Accepted {
        /// The shell's name for the connection.
        conn: ConnId,
        /// The remote address.
        addr: IpAddr,
    },
    /// One whole frame (delimited with [`wire::frame_len`]) arrived on `link`.
    Frame {
        /// Where it arrived.
        link: Link,
        /// The frame's bytes, header included.
        bytes: &'a [u8],
    },
    /// The byte stream on `link` cannot be split into frames ([`wire::frame_len`] failed).
    BadStream {
        /// The link.
        link: Link,
    },
    /// `link` was closed by the other side (EOF) or reset; the shell has dropped the socket.
    Closed {
        /// The link.
        link: Link,
    },
    /// The cluster lock service answered an [`Action::AcquireLock`], or lost a held lock.
    Lock(LockResult),
    /// A control-socket request; the answer comes as [`Action::Reply`].
    Control {
        /// The shell's name for the client.
        client: ClientId,
        /// The request.
        request: Request,
    },
}

/// Something the node wants the shell to do (besides transmitting frames).
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Open our outgoing TCP connection to `peer` at `addr`, bound to our own address `local`
    /// (so the peer recognises us), non-blocking; report [`Event::Connected`] or
    /// [`Event::ConnectFailed`]. Replaces any existing outgoing socket to that peer.
    Connect {
        /// The peer.
        peer: Pnn,
        /// Its address and cluster port.
        addr: SocketAddr,
        /// Our node address, to bind the socket to.
        local: IpAddr,
    },
    /// Close this connection without reporting it back.
    Close {
        /// The link.
        link: Link,
    },
    /// Take the cluster lock (fcntl lock file, etcd lease); answer with [`Event::Lock`]. While
    /// held, report [`LockResult::Lost`] if the lock service takes it away.
    AcquireLock,
    /// Give the cluster lock up (no answer expected).
    ReleaseLock,
    /// Release every public IP this node hosts, at once (quorum lost, node banned or stopped).
    ReleaseAllIps,
    /// Send this response to a control client.
    Reply {
        /// The client.
        client: ClientId,
        /// The answer.
        response: Response,
    },
}

/// What the cluster lock service says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockResult {
    /// The lock is ours until we release it or report it lost.
    Granted,
    /// Someone else holds it.
    Contended,
    /// We held it and no longer do (lease expired, lock file gone, service unreachable).
    Lost,
    /// The service could not be asked (I/O error, timeout).
    Failed,
}

/// One frame to send on the outgoing connection to `peer`. Encode it into the connection's
/// write buffer with [`Transmit::encode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The destination.
    pub peer: Pnn,
    header: Header,
    message: Message,
}

impl Transmit {
    /// Appends the encoded frame to `out` (no allocation if `out` has room).
    pub fn encode(&self, out: &mut Vec<u8>) {
        wire::encode(&self.header, &self.message, out)
    }

    /// The message carried.
    pub fn message(&self) -> &Message {
        &self.message
    }
}

/// Counters of inputs that were dropped or refused. Never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames accepted.
    pub frames_received: u64,
    /// Frames that did not decode.
    pub malformed_frames: u64,
    /// Frames whose source PNN is not the connection's peer.
    pub wrong_source: u64,
    /// Frames addressed to another node.
    pub wrong_destination: u64,
    /// Frames on a connection the node does not know (already closed).
    pub unknown_link: u64,
    /// Connections refused because the address is not a configured node.
    pub refused_connections: u64,
    /// Connections from a node's address closed before they proved themselves with a Hello
    /// (silent too long, garbage, an older life, or too many at once).
    pub unproven_connections: u64,
    /// Streams closed because they could not be split into frames.
    pub bad_streams: u64,
    /// Keepalive ticks (for observability).
    pub keepalive_ticks: u64,
    /// Generation-scoped frames refused because their generation is older than ours.
    pub stale_generation: u64,
    /// Times this node became recovery master.
    pub elections_won: u64,
    /// Recoveries this node completed as recovery master.
    pub recoveries: u64,
    /// Takeover runs started by this node (the hook the public-IP takeover fills in).
    pub takeover_runs: u64,
}

/// One row of the node table: what this node knows of every slot.
#[derive(Clone, Debug)]
struct Peer {
    /// `None` for a deleted slot.
    address: Option<IpAddr>,
    out: OutState,
    /// The incoming connection it proved with a Hello (a new one is pending until it does).
    incoming: Option<ConnId>,
    /// A failed connect was retried at once for the current incoming connection.
    fast_retried: bool,
    /// Both directions are up and the peer said Hello: not DISCONNECTED.
    connected: bool,
    /// When its last frame arrived (or it became connected).
    last_rx: Instant,
    /// What it promised about its keepalives (its Hello and keepalives say).
    promise: Promise,
    /// The administrative flags the peer last told us.
    flags: NodeFlags,
    incarnation: u64,
    /// From its Hello.
    start_stamp: u64,
    /// From its Hello: may be recovery master.
    capable: bool,
    /// What its last keepalive said.
    reported_recmaster: Pnn,
    reported_mode: RecoveryMode,
    /// The generation in its last frame's header.
    generation: Generation,
    /// Connected at least once since we started (wait_for_all).
    ever_connected: bool,
}

/// Where this node stands with the cluster lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LockState {
    /// Not held, not asked for.
    Free,
    /// Asked for, no answer yet.
    Pending,
    /// Held.
    Held,
}

/// A pharos cluster node, without I/O. See the module documentation for the contract.
#[derive(Debug)]
pub struct Node {
    nodes: NodesFile,
    pnn: Pnn,
    port: u16,
    tunables: Tunables,
    now: Instant,
    incarnation: u64,
    /// Our own administrative flags.
    own_flags: NodeFlags,
    generation: Generation,
    recovery_mode: RecoveryMode,
    /// When recovery mode last became ACTIVE (a follower leaves it after RecoverTimeout).
    recovery_mode_since: Instant,
    /// Who put this node in recovery mode.
    recovery_mode_by: Pnn,
    /// The active nodes of the current generation.
    vnnmap: NodeSet,
    start_stamp: u64,
    recmaster_capable: bool,
    recmaster: Pnn,
    lock: LockState,
    /// Lock failures (Failed or Lost) since `lock_failures_since`; three within
    /// RecoveryGracePeriod ban this node.
    lock_failures: u32,
    lock_failures_since: Instant,
    lock_retry_at: Option<Instant>,
    /// While no recmaster is agreed: when to claim (or look again).
    election_until: Option<Instant>,
    /// The recmaster's monitor loop.
    monitor_at: Option<Instant>,
    /// The first monitor run after winning always recovers (CTDB does the same).
    need_recovery: bool,
    /// A recovery this node runs as recovery master.
    recovery: Option<Recovery>,
    rerecovery_until: Instant,
    ban_until: Option<Instant>,
    was_quorate: bool,
    peers: Vec<Peer>,
    /// Accepted connections from node addresses that have not said Hello yet, oldest first.
    pending_in: Vec<transport::PendingIn>,
    /// Warnings about refused connections, rate-limited.
    refusals: transport::RefusalLog,
    transmits: VecDeque<Transmit>,
    actions: VecDeque<Action>,
    next_keepalive: Instant,
    /// When the next connected peer could be dead of silence.
    silence_check_at: Instant,
    stats: Stats,
}

impl Node {
    /// A node that starts connecting to its peers at once.
    pub fn new(config: NodeConfig, seed: u64, now: Instant) -> Self {
        let mut rng = Rng::new(seed);
        let NodeConfig {
            nodes,
            pnn,
            port,
            tunables,
            start_stamp,
            recmaster_capable,
        } = config;
        let peers = nodes
            .entries()
            .iter()
            .map(|e| Peer {
                address: e.address,
                out: OutState::Idle,
                incoming: None,
                fast_retried: false,
                connected: e.pnn == pnn,
                last_rx: now,
                promise: Promise::own(&tunables),
                flags: NodeFlags::empty(),
                incarnation: 0,
                start_stamp: u64::MAX,
                capable: false,
                reported_recmaster: Pnn::NONE,
                reported_mode: RecoveryMode::Normal,
                generation: Generation(0),
                ever_connected: e.pnn == pnn,
            })
            .collect();
        let n = nodes.len();
        let mut node = Node {
            nodes,
            pnn,
            port,
            now,
            incarnation: rng.next_u64(),
            own_flags: NodeFlags::empty(),
            generation: Generation(1),
            recovery_mode: RecoveryMode::Normal,
            recovery_mode_since: now,
            recovery_mode_by: Pnn::NONE,
            vnnmap: NodeSet::new(),
            start_stamp,
            recmaster_capable,
            recmaster: Pnn::NONE,
            lock: LockState::Free,
            lock_failures: 0,
            lock_failures_since: now,
            lock_retry_at: None,
            election_until: Some(now + tunables.election_timeout),
            monitor_at: None,
            need_recovery: false,
            recovery: None,
            rerecovery_until: now,
            ban_until: None,
            was_quorate: false,
            peers,
            pending_in: Vec::with_capacity(transport::PENDING_PER_PEER * n + 1),
            refusals: transport::RefusalLog::new(now),
            // Room for a few frames per peer per event: the steady state never grows these.
            transmits: VecDeque::with_capacity(4 * n + 8),
            actions: VecDeque::with_capacity(2 * n + 8),
            next_keepalive: now + tunables.keepalive_interval,
            silence_check_at: Instant::MAX,
            tunables,
            stats: Stats::default(),
        };
        for i in 0..n {
            let p = Pnn(i as u32);
            if node.is_remote(p) {
                node.start_connect(p);
            }
        }
        node
    }

    /// Feeds one input. Returns an error only for misuse (see [`Error`]); bad peer input is
    /// dropped and counted in [`Node::stats`].
    pub fn handle(&mut self, now: Instant, event: Event<'_>) -> Result<(), Error> {
        if now < self.now {
            return Err(Error::TimeWentBackwards);
        }
        // Misuse is refused before anything changes.
        if let Event::Connected { peer } | Event::ConnectFailed { peer } = event {
            self.check_remote(peer)?;
        }
        // The shell wakes us at least every keepalive interval: a much longer gap means this
        // node itself stalled, and its peers' silence is its own.
        if now - self.now > 2 * self.tunables.keepalive_interval {
            self.now = now;
            self.forgive_own_stall();
        }
        self.now = now;
        match event {
            Event::Timeout => {}
            Event::Connected { peer } => self.on_connected(peer),
            Event::ConnectFailed { peer } => self.on_connect_failed(peer),
            Event::Accepted { conn, addr } => self.on_accepted(conn, addr),
            Event::Frame { link, bytes } => self.on_frame(link, bytes),
            Event::BadStream { link } => self.on_bad_stream(link),
            Event::Closed { link } => self.on_closed(link),
            Event::Lock(result) => self.on_lock(result),
            Event::Control { client, request } => {
                let response = self.control(&request);
                self.actions.push_back(Action::Reply { client, response });
            }
        }
        self.run_timers();
        self.reconcile();
        Ok(())
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When the node next needs [`Event::Timeout`]: the earliest of the keepalive tick and the
    /// connect deadlines and retries.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_keepalive.min(self.silence_check_at);
        for p in &self.peers {
            if let Some(d) = p.out.deadline() {
                t = t.min(d);
            }
        }
        for x in &self.pending_in {
            t = t.min(x.until);
        }
        let timers = [
            self.election_until,
            self.lock_retry_at,
            self.monitor_at,
            self.ban_until,
            self.recovery.as_ref().map(|r| r.deadline),
            self.follower_recovery_deadline(),
        ];
        for d in timers.into_iter().flatten() {
            t = t.min(d);
        }
        Some(t)
    }

    /// This node's PNN.
    pub fn pnn(&self) -> Pnn {
        self.pnn
    }

    /// The recovery master this node follows, [`Pnn::NONE`] while none is agreed.
    pub fn recmaster(&self) -> Pnn {
        self.recmaster
    }

    /// Whether this node acts as recovery master: it is the recmaster, quorate, and holds the
    /// cluster lock (or runs without one). Only an acting recmaster runs recoveries.
    pub fn is_acting_recmaster(&self) -> bool {
        self.recmaster == self.pnn && self.quorate() && self.lock == LockState::Held
    }

    /// Whether this node holds the cluster lock.
    pub fn holds_lock(&self) -> bool {
        self.lock == LockState::Held
    }

    /// The current generation.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The current recovery mode.
    pub fn recovery_mode(&self) -> RecoveryMode {
        self.recovery_mode
    }

    /// The nodes file the node runs with.
    pub fn nodes(&self) -> &NodesFile {
        &self.nodes
    }

    /// Current tunables.
    pub fn tunables(&self) -> &Tunables {
        &self.tunables
    }

    /// Input counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The flags of `pnn` as this node sees them (DISCONNECTED for an unknown PNN).
    pub fn flags_of(&self, pnn: Pnn) -> NodeFlags {
        let Some(p) = self.peers.get(pnn.index()) else {
            return NodeFlags::DISCONNECTED;
        };
        if p.address.is_none() {
            return NodeFlags::DELETED;
        }
        if pnn == self.pnn {
            return self.own_flags;
        }
        let mut f = p.flags;
        f.set(NodeFlags::DISCONNECTED, !p.connected);
        f
    }

    /// Whether this node's partition has quorum (votequorum rules: one vote per non-deleted
    /// node, a strict majority; `TwoNode`: one of two while holding the cluster lock;
    /// `WaitForAll`: never before every node has been seen once).
    pub fn quorate(&self) -> bool {
        let (votes, expected) = self.votes();
        if !self.seen_all() {
            return false;
        }
        quorum::has_majority(votes, expected)
            || (self.two_node_alone(votes, expected) && self.lock == LockState::Held)
    }

    /// Connected votes (self included) and expected votes.
    fn votes(&self) -> (usize, usize) {
        let live = self.peers.iter().filter(|p| p.address.is_some());
        let expected = live.clone().count();
        let votes = live.filter(|p| p.connected).count();
        (votes, expected)
    }

    /// `WaitForAll` is satisfied (or not asked for).
    fn seen_all(&self) -> bool {
        !self.tunables.wait_for_all
            || self
                .peers
                .iter()
                .all(|p| p.address.is_none() || p.ever_connected)
    }

    fn two_node_alone(&self, votes: usize, expected: usize) -> bool {
        self.tunables.two_node && expected == 2 && votes == 1
    }

    /// Whether this node could be quorate if it held the lock, so it may run for recmaster.
    fn may_lead(&self) -> bool {
        let (votes, expected) = self.votes();
        self.seen_all()
            && (quorum::has_majority(votes, expected) || self.two_node_alone(votes, expected))
    }

    /// The status report `pharos status` shows.
    pub fn status(&self) -> StatusReport {
        StatusReport {
            pnn: self.pnn,
            generation: self.generation,
            recmaster: self.recmaster,
            recovery_mode: self.recovery_mode,
            quorate: self.quorate(),
            holds_lock: self.holds_lock(),
            nodes: (0..self.peers.len())
                .map(|i| {
                    let pnn = Pnn(i as u32);
                    NodeStatus {
                        pnn,
                        address: self.peers[i]
                            .address
                            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                        flags: self.flags_of(pnn),
                        this_node: pnn == self.pnn,
                    }
                })
                .collect(),
        }
    }

    fn control(&mut self, request: &Request) -> Response {
        let before = Promise::own(&self.tunables);
        if let Some(r) = control::tunables_request(&mut self.tunables, request) {
            let after = Promise::own(&self.tunables);
            if after.interval < before.interval {
                // A shorter interval takes effect now, not after the old, longer one.
                self.next_keepalive = self.next_keepalive.min(self.now + after.interval);
            }
            if after != before {
                // Peers judge our silence by our promise: tell them the new one at once.
                self.push_view();
            }
            return r;
        }
        match request {
            Request::Status => Response::Status(self.status()),
            Request::NodeStatus(None) => Response::Status(self.status()),
            Request::NodeStatus(Some(p)) => {
                let mut s = self.status();
                if p.index() >= s.nodes.len() {
                    return Response::Error(format!("node {p} does not exist"));
                }
                s.nodes.retain(|n| n.pnn == *p);
                Response::Status(s)
            }
            Request::Pnn => Response::Pnn(self.pnn),
            Request::Recmaster => Response::Recmaster(self.recmaster),
            Request::Ping => Response::Pong(self.pnn),
            Request::Admin(cmd) => {
                self.admin(*cmd);
                Response::Done(None)
            }
            Request::ListVars | Request::GetVar(_) | Request::SetVar(..) => {
                Response::Error(format!("{request:?} not handled"))
            }
        }
    }

    fn is_remote(&self, pnn: Pnn) -> bool {
        pnn != self.pnn
            && self
                .peers
                .get(pnn.index())
                .is_some_and(|p| p.address.is_some())
    }

    fn check_remote(&self, pnn: Pnn) -> Result<(), Error> {
        if self.is_remote(pnn) {
            Ok(())
        } else {
            Err(Error::UnknownPeer)
        }
    }

    fn address(&self, pnn: Pnn) -> IpAddr {
        self.peers[pnn.index()]
            .address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn send(&mut self, peer: Pnn, message: Message) {
        self.send_in(peer, message, self.generation);
    }

    /// Sends with an explicit header generation (recovery frames carry the new one).
    fn send_in(&mut self, peer: Pnn, message: Message, generation: Generation) {
        self.transmits.push_back(Transmit {
            peer,
            header: Header {
                op: message.op(),
                src: self.pnn,
                dst: peer,
                generation,
                request_id: 0,
            },
            message,
        });
    }

    /// Our view, as every keepalive carries it.
    fn view(&self) -> Keepalive {
        Keepalive {
            flags: self.own_flags,
            recmaster: self.recmaster,
            recovery_mode: self.recovery_mode,
            liveness: Promise::own(&self.tunables).to_wire(),
        }
    }

    /// Tells every peer we can write to our view at once (after a change), rather than at the
    /// next keepalive tick.
    fn push_view(&mut self) {
        let view = Message::Keepalive(self.view());
        for i in 0..self.peers.len() {
            if self.peers[i].out == OutState::Up {
                self.send(Pnn(i as u32), view);
            }
        }
    }

    fn admin(&mut self, cmd: AdminCommand) {
        let before = self.own_flags;
        match cmd {
            AdminCommand::Disable => self.own_flags.set(NodeFlags::DISABLED, true),
            AdminCommand::Enable => self.own_flags.set(NodeFlags::DISABLED, false),
            AdminCommand::Stop => self.own_flags.set(NodeFlags::STOPPED, true),
            AdminCommand::Continue => self.own_flags.set(NodeFlags::STOPPED, false),
            AdminCommand::Ban(secs) => self.ban(core::time::Duration::from_secs(secs as u64)),
            AdminCommand::Unban => {
                self.own_flags.set(NodeFlags::BANNED, false);
                self.ban_until = None;
            }
        }
        self.flags_changed(before);
    }

    /// After our own flags changed: release addresses when we may no longer host, tell peers.
    fn flags_changed(&mut self, before: NodeFlags) {
        if self.own_flags == before {
            return;
        }
        log::info!("node {} flags: {} -> {}", self.pnn, before, self.own_flags);
        let no_hosting = NodeFlags::DISABLED
            .union(NodeFlags::STOPPED)
            .union(NodeFlags::BANNED);
        if self.own_flags.intersects(no_hosting) && !before.intersects(no_hosting) {
            self.actions.push_back(Action::ReleaseAllIps);
        }
        self.push_view();
    }

    fn ban(&mut self, period: core::time::Duration) {
        self.own_flags.set(NodeFlags::BANNED, true);
        self.ban_until = Some(self.now + period);
        log::warn!("node {} banned for {} s", self.pnn, period.as_secs());
    }

    fn run_timers(&mut self) {
        self.transport_timers();
        if self.now >= self.silence_check_at {
            self.check_silence();
        }
        if self.now >= self.next_keepalive {
            self.keepalive_tick();
        }
        if self.ban_until.is_some_and(|t| self.now >= t) {
            let before = self.own_flags;
            self.ban_until = None;
            self.own_flags.set(NodeFlags::BANNED, false);
            log::info!("node {} ban expired", self.pnn);
            self.flags_changed(before);
        }
        self.election_timers();
        self.recovery_timers();
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod election_tests;
