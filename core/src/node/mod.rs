//! The `Node` state machine: one per daemon.
//!
//! # Contract (the quinn-proto / str0m sans-IO rules)
//!
//! - Feed every input to [`Node::handle`] with the current monotonic `now`; `now` never goes
//!   backwards ([`Error::TimeWentBackwards`] otherwise, and the input is ignored).
//! - After every `handle`, drain [`Node::poll_transmit`] until `None`, then [`Node::poll_action`]
//!   until `None`, then [`Node::poll_notification`], then read [`Node::poll_timeout`] and call
//!   `handle(now, Event::Timeout)` when it is reached. Calling `Timeout` early is harmless.
//!   [`crate::drive::Driver`] does exactly this for every shell; use it.
//! - Frames always go on the node's outgoing connection to the peer `poll_transmit` names; a
//!   frame for a peer without an established outgoing connection is dropped by the shell.
//! - Ordering: a `Close` for a link is emitted after any frame meant for it has been withdrawn,
//!   and before any `Connect` that replaces it.
//!
//! The steady-state path (a keepalive frame in, keepalive ticks, keepalives out) allocates
//! nothing once the queues have reached their working size, and a keepalive that repeats what
//! its sender said before costs no pass over the node table.
//!
//! # Layers
//!
//! Each concern owns its state; this module alone routes inputs, decoded frames and expired
//! timers to them, in one direction (lower layers never call higher ones):
//!
//! ```text
//!   Node (dispatch) ──▶ Transport ─▶ Health ─▶ Members ─▶ Election ─▶ Recoveries ─▶ Takeover
//!        every layer reads and writes only the shared Ctx (now, tunables, timers, outputs)
//!        and reads the layers to its left
//! ```

mod ctx;
mod election;
mod health;
mod io;
mod members;
mod recovery;
mod takeover;
mod timer;
mod transport;

pub use io::{Action, Disconnect, Event, LockResult, Notification, Stats};
pub use recovery::{next_generation, Recovery};
pub use transport::OutState;

use crate::config::{ConfigError, NodesFile, Tunables};
use crate::control::{self, NodeStatus, Request, Response, StatusReport};
use crate::error::Error;
use crate::rng::Rng;
use crate::time::Instant;
use crate::types::{Generation, NodeFlags, NodeSet, Pnn, RecoveryMode};
use crate::wire::{Keepalive, Message};
use alloc::format;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};
use ctx::{Ctx, Identity};
use election::Election;
use health::{Health, Promise};
use members::{Members, NO_HOSTING};
use recovery::{Recoveries, Verdict};
use takeover::Takeover;
use timer::Timer;
use transport::{Routed, Transport};

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

/// A pharos cluster node, without I/O. See the module documentation for the contract.
#[derive(Debug)]
pub struct Node {
    ctx: Ctx,
    transport: Transport,
    health: Health,
    members: Members,
    election: Election,
    recoveries: Recoveries,
    takeover: Takeover,
    /// The view last told to the peers.
    told: Keepalive,
    quorate: bool,
    /// Quorate and not barred by its flags: may host public addresses.
    may_host: bool,
    stopped: bool,
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
        let me = Identity {
            pnn,
            incarnation: rng.next_u64(),
            start_stamp,
            recmaster_capable,
        };
        let view = Keepalive {
            flags: NodeFlags::empty(),
            recmaster: Pnn::NONE,
            recovery_mode: RecoveryMode::Normal,
            liveness: Promise::own(&tunables).to_wire(),
        };
        let mut ctx = Ctx::new(now, me, port, nodes, tunables, view);
        let transport = Transport::new(&mut ctx);
        let health = Health::new(&mut ctx);
        let members = Members::new(&ctx);
        let election = Election::new(&mut ctx);
        let recoveries = Recoveries::new(&ctx);
        Node {
            ctx,
            transport,
            health,
            members,
            election,
            recoveries,
            takeover: Takeover::default(),
            told: view,
            quorate: false,
            may_host: false,
            stopped: false,
        }
    }

    /// Feeds one input. Returns an error only for misuse (see [`Error`]); bad peer input is
    /// dropped and counted in [`Node::stats`].
    pub fn handle(&mut self, now: Instant, event: Event<'_>) -> Result<(), Error> {
        if now < self.ctx.now {
            return Err(Error::TimeWentBackwards);
        }
        if self.stopped {
            return Err(Error::Stopped);
        }
        // Misuse is refused before anything changes.
        if let Event::Connected { peer } | Event::ConnectFailed { peer } = event {
            if !self.ctx.is_remote(peer) {
                return Err(Error::UnknownPeer);
            }
        }
        // The shell wakes us at least every keepalive interval: a much longer gap means this
        // node itself stalled, and its peers' silence is its own.
        let stalled = now - self.ctx.now > 2 * self.ctx.tunables.keepalive_interval;
        self.ctx.now = now;
        if stalled {
            self.health.forgive_own_stall(&mut self.ctx);
        }
        let (t, c) = (&mut self.transport, &mut self.ctx);
        let mut dirty = match event {
            Event::Timeout => false,
            Event::Connected { peer } => {
                t.on_connected(c, peer);
                false
            }
            Event::ConnectFailed { peer } => {
                t.on_connect_failed(c, peer);
                false
            }
            Event::Accepted { conn, addr } => {
                t.on_accepted(c, conn, addr);
                false
            }
            Event::Frame { link, bytes } => match t.on_frame(c, link, bytes) {
                Some(r) => self.route(r),
                None => false,
            },
            Event::BadStream { link } => {
                t.on_bad_stream(c, link);
                false
            }
            Event::Closed { link } => {
                t.on_closed(c, link);
                false
            }
            Event::Lock(result) => {
                self.on_lock(result);
                true
            }
            Event::Control { client, request } => {
                let response = self.control(&request);
                self.ctx.act(Action::Reply { client, response });
                true
            }
            Event::Shutdown => {
                self.shutdown();
                return Ok(());
            }
        };
        dirty |= self.take_transport_changes();
        dirty |= self.run_timers();
        if dirty {
            self.reconcile();
        }
        self.finish_event();
        Ok(())
    }

    /// A decoded frame of a proven link, to the layer it concerns. `true` if something the
    /// reconcile pass reads may have changed.
    fn route(&mut self, r: Routed) -> bool {
        let Routed {
            peer,
            header,
            message,
        } = r;
        let c = &mut self.ctx;
        // Any frame is a sign of life.
        self.health.alive(c, peer);
        let mut dirty = false;
        if !header.op.generation_scoped() {
            dirty |= self.members.generation_seen(peer, header.generation);
        }
        let recmaster = self.election.recmaster();
        match message {
            Message::Hello(h) => {
                self.health.promised(c, peer, h.liveness);
                dirty |= self.members.hello(c, peer, &h);
            }
            Message::Keepalive(k) => {
                self.health.promised(c, peer, k.liveness);
                dirty |= self.members.keepalive(c, peer, &k);
            }
            Message::RecoveryStart => {
                self.recoveries
                    .on_start(c, recmaster, peer, header.generation);
                dirty = true;
            }
            Message::RecoveryAck => {
                self.recoveries.on_ack(c, peer, header.generation);
                dirty = true;
            }
            Message::RecoveryCommit { vnnmap } => {
                self.recoveries
                    .on_commit(c, recmaster, peer, header.generation, vnnmap);
                dirty = true;
            }
            Message::Reconfigured => {}
            Message::Goodbye => {
                self.transport.peer_dead(c, peer, Disconnect::Goodbye);
            }
        }
        dirty
    }

    /// Connection changes the transport decided, to the layers above. `true` if any.
    fn take_transport_changes(&mut self) -> bool {
        if !self.transport.has_changes() {
            return false;
        }
        let (up, down) = self.transport.take_changes();
        for set in [down, up] {
            for p in set.iter() {
                let on = self.transport.is_connected(p);
                self.members.set_connected(p, on);
                if on {
                    self.health.watch(&mut self.ctx, p);
                } else {
                    self.health.unwatch(p);
                }
            }
        }
        true
    }

    /// Runs every expired timer. `true` if one of them may have changed what the reconcile
    /// pass reads (the keepalive tick never does).
    fn run_timers(&mut self) -> bool {
        let mut dirty = false;
        while let Some((timer, due)) = self.ctx.timers.take_due(self.ctx.now) {
            let c = &mut self.ctx;
            match timer {
                Timer::Keepalive => {
                    self.health.tick(c, due);
                    continue;
                }
                Timer::Silence => {
                    let dead = self.health.silent(c);
                    for p in dead.iter() {
                        let after = self.health.silent_for(c, p);
                        self.transport.peer_dead(c, p, Disconnect::Silent { after });
                    }
                }
                Timer::Connect => self.transport.connect_timers(c),
                Timer::PendingHello => self.transport.pending_timeouts(c),
                Timer::RefusalLog => {
                    self.transport.refusal_window_ended(c);
                    continue;
                }
                Timer::Ban => {
                    self.members.ban_expired(c);
                }
                Timer::Election => self.election.round_ended(c, &self.members),
                Timer::LockRetry => self.election.retry_lock(c),
                Timer::RecoveryRun => self.recoveries.run_timed_out(c),
                Timer::Monitor => self.monitor(),
                Timer::FollowerRecovery => {
                    let r = self.election.recmaster();
                    self.recoveries.check_follower(c, r, true);
                }
            }
            self.take_transport_changes();
            dirty = true;
        }
        dirty
    }

    fn monitor(&mut self) {
        if self.election.recmaster() != self.ctx.me.pnn {
            return;
        }
        let acting = self.is_acting_recmaster();
        let verdict = self
            .recoveries
            .monitor(&mut self.ctx, &self.members, acting);
        if verdict == Verdict::StepDown {
            self.step_down("the active nodes disagree on the recovery master");
        }
    }

    fn step_down(&mut self, reason: &str) {
        if self.election.step_down(&mut self.ctx, reason) {
            self.recoveries.stop_monitoring(&mut self.ctx);
        }
    }

    fn on_lock(&mut self, result: crate::node::LockResult) {
        let out = self.election.on_lock(&mut self.ctx, result);
        if out.stepped_down {
            self.recoveries.stop_monitoring(&mut self.ctx);
        }
        if out.acquired {
            log::info!("node {} holds the cluster lock", self.ctx.me.pnn);
            self.recoveries.start_monitoring(&mut self.ctx);
        }
        if out.ban {
            let period = self.ctx.tunables.recovery_ban_period;
            self.members.ban(&mut self.ctx, period);
        }
    }

    /// Brings quorum, recmaster, recovery mode and hosting in line with what changed. Runs only
    /// after an event that may have changed one of its inputs.
    fn reconcile(&mut self) {
        self.reconcile_quorum();
        if self.election.reconcile(&mut self.ctx, &self.members) {
            self.recoveries.stop_monitoring(&mut self.ctx);
        }
        // Stepping down releases the lock, which ends a TwoNode node's quorum: see it now.
        self.reconcile_quorum();
        let r = self.election.recmaster();
        self.recoveries.check_follower(&mut self.ctx, r, false);
        let may_host = self.quorate && !self.members.own_flags().intersects(NO_HOSTING);
        if self.may_host && !may_host {
            log::warn!(
                "node {}: may no longer host public addresses, releasing them",
                self.ctx.me.pnn
            );
            self.ctx.act(Action::ReleaseAllIps);
        }
        self.may_host = may_host;
    }

    fn reconcile_quorum(&mut self) {
        let q = self.members.quorate(&self.ctx, self.election.holds_lock());
        if q != self.quorate {
            self.quorate = q;
            self.ctx.notify(Notification::Quorum { quorate: q });
            if !q {
                // Losing quorum releases at once, whatever the flags say.
                self.may_host = true;
            }
        }
    }

    /// The end of every event: a committed recovery's takeover run, and the view to the
    /// peers if it changed.
    fn finish_event(&mut self) {
        if self.recoveries.take_committed() {
            self.takeover.run(&mut self.ctx);
            self.recoveries
                .announce_reconfigured(&mut self.ctx, &self.members);
        }
        if self.ctx.view != self.told {
            self.told = self.ctx.view;
            self.ctx.broadcast(Message::Keepalive(self.told));
        }
    }

    /// A clean stop: give up the recmaster role and the lock, release the public addresses,
    /// tell the peers, close every connection, exit.
    fn shutdown(&mut self) {
        log::info!("node {}: shutting down", self.ctx.me.pnn);
        self.step_down("shutting down");
        self.ctx.act(Action::ReleaseAllIps);
        self.ctx.broadcast(Message::Goodbye);
        self.transport.close_all(&mut self.ctx);
        self.take_transport_changes();
        self.ctx.act(Action::Exit);
        self.stopped = true;
    }

    /// The peer of the next frame [`Node::poll_transmit`] would give, if any.
    pub fn next_transmit(&self) -> Option<Pnn> {
        self.ctx.next_transmit()
    }

    /// Appends the next frame to send to `out` (no allocation if `out` has room) and returns
    /// the peer whose outgoing connection it goes on.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Pnn> {
        self.ctx.poll_transmit(out)
    }

    /// The next action, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.ctx.poll_action()
    }

    /// The next notification, if any.
    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.ctx.poll_notification()
    }

    /// When the node next needs [`Event::Timeout`] (`None` once it has shut down).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        self.ctx.timers.next()
    }

    /// This node's PNN.
    pub fn pnn(&self) -> Pnn {
        self.ctx.me.pnn
    }

    /// The recovery master this node follows, [`Pnn::NONE`] while none is agreed.
    pub fn recmaster(&self) -> Pnn {
        self.election.recmaster()
    }

    /// Whether this node acts as recovery master: it is the recmaster, quorate, and holds the
    /// cluster lock (or runs without one). Only an acting recmaster runs recoveries.
    pub fn is_acting_recmaster(&self) -> bool {
        self.election.recmaster() == self.ctx.me.pnn && self.quorate() && self.holds_lock()
    }

    /// Whether this node holds the cluster lock.
    pub fn holds_lock(&self) -> bool {
        self.election.holds_lock()
    }

    /// The current generation.
    pub fn generation(&self) -> Generation {
        self.ctx.generation
    }

    /// The current recovery mode.
    pub fn recovery_mode(&self) -> RecoveryMode {
        self.recoveries.mode()
    }

    /// The vnnmap of the current generation.
    pub fn vnnmap(&self) -> NodeSet {
        self.recoveries.vnnmap()
    }

    /// The recovery this node runs as recovery master, if any.
    pub fn recovery(&self) -> Option<&Recovery> {
        self.recoveries.running()
    }

    /// The candidate that should win the election, in this node's view.
    pub fn best_candidate(&self) -> Option<Pnn> {
        Election::best_candidate(&self.ctx, &self.members)
    }

    /// Our outgoing connection to `peer`.
    pub fn out_state(&self, peer: Pnn) -> OutState {
        self.transport.out_state(peer)
    }

    /// The nodes file the node runs with.
    pub fn nodes(&self) -> &NodesFile {
        &self.ctx.nodes
    }

    /// Current tunables.
    pub fn tunables(&self) -> &Tunables {
        &self.ctx.tunables
    }

    /// Input counters.
    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// Whether this node has shut down.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The flags of `pnn` as this node sees them (DISCONNECTED for an unknown PNN).
    pub fn flags_of(&self, pnn: Pnn) -> NodeFlags {
        self.members.flags_of(&self.ctx, pnn)
    }

    /// Whether this node's partition has quorum (votequorum rules: one vote per non-deleted
    /// node, a strict majority; `TwoNode`: one of two while holding the cluster lock;
    /// `WaitForAll`: never before every node has been seen once).
    pub fn quorate(&self) -> bool {
        self.members.quorate(&self.ctx, self.holds_lock())
    }

    /// The status report `pharos status` shows.
    pub fn status(&self) -> StatusReport {
        StatusReport {
            pnn: self.ctx.me.pnn,
            generation: self.ctx.generation,
            recmaster: self.recmaster(),
            recovery_mode: self.recovery_mode(),
            quorate: self.quorate(),
            holds_lock: self.holds_lock(),
            nodes: self
                .members
                .pnns()
                .map(|pnn| NodeStatus {
                    pnn,
                    address: self
                        .ctx
                        .nodes
                        .address_of(pnn)
                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    flags: self.flags_of(pnn),
                    this_node: pnn == self.ctx.me.pnn,
                })
                .collect(),
        }
    }

    fn control(&mut self, request: &Request) -> Response {
        let before = Promise::own(&self.ctx.tunables);
        if let Some(r) = control::tunables_request(&mut self.ctx.tunables, request) {
            let after = Promise::own(&self.ctx.tunables);
            if after.interval < before.interval {
                // A shorter interval takes effect now, not after the old, longer one.
                self.health.interval_changed(&mut self.ctx);
            }
            // Peers judge our silence by our promise: they learn a new one at once.
            self.ctx.view.liveness = after.to_wire();
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
            Request::Pnn => Response::Pnn(self.ctx.me.pnn),
            Request::Recmaster => Response::Recmaster(self.recmaster()),
            Request::Ping => Response::Pong(self.ctx.me.pnn),
            Request::Admin(cmd) => {
                self.members.admin(&mut self.ctx, *cmd);
                Response::Done(None)
            }
            Request::ListVars | Request::GetVar(_) | Request::SetVar(..) => {
                Response::Error(format!("{request:?} not handled"))
            }
            // Scripts are the shell's: it answers from its event runner before the node sees
            // the request. One that gets here came from a shell without a runner.
            Request::ScriptStatus(_) => {
                Response::Error("scriptstatus: this daemon runs no event scripts".into())
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod election_tests;
