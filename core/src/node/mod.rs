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
//!   Node (dispatch) ──▶ Transport ─▶ Health ─▶ Members ─▶ Election ─▶ Recoveries
//!                                                                          ─▶ Hosting ─▶ Takeover
//!        every layer reads and writes only the shared Ctx (now, tunables, timers, outputs)
//!        and reads the layers to its left; the dispatcher hands data from one to another
//! ```

mod ctx;
mod election;
mod health;
mod hosting;
mod io;
mod members;
mod recovery;
mod takeover;
mod timer;
mod transport;

pub use hosting::HostState;
pub use io::{Action, Disconnect, Event, IpResult, LockResult, Notification, Stats};
pub use recovery::{next_generation, Recovery};
pub use transport::OutState;

use crate::config::{ConfigError, NodesFile, PublicAddresses, Tunables};
use crate::control::{self, IpStatus, NodeStatus, Request, Response, StatusReport};
use crate::error::Error;
use crate::rng::Rng;
use crate::time::Instant;
use crate::types::{Generation, NodeFlags, NodeSet, Pnn, RecoveryMode};
use crate::wire::{self, IpOp, Keepalive, Message, WireIp};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use ctx::{Ctx, Identity};
use election::Election;
use health::{Health, Promise};
use hosting::{Done, Hosting};
use members::{Members, NO_HOSTING};
use recovery::{Recoveries, Verdict};
use takeover::{Local, Takeover};
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
    public_addresses: PublicAddresses,
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
            public_addresses: PublicAddresses::default(),
        })
    }

    /// The public addresses this node may host (its public_addresses file).
    pub fn with_public_addresses(mut self, list: PublicAddresses) -> Self {
        self.public_addresses = list;
        self
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
    hosting: Hosting,
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
            public_addresses,
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
            stamp: 0,
            echo: 0,
        };
        let mut ctx = Ctx::new(now, me, port, nodes, tunables, view);
        let transport = Transport::new(&mut ctx);
        let health = Health::new(&mut ctx);
        let members = Members::new(&ctx);
        let election = Election::new(&mut ctx);
        let recoveries = Recoveries::new(&ctx);
        let takeover = Takeover::new(&ctx);
        // Whatever an earlier life of this daemon left configured goes first (CTDB's startup
        // does the same).
        if !public_addresses.is_empty() {
            ctx.act(Action::ReleaseAllIps);
        }
        Node {
            hosting: Hosting::new(&public_addresses),
            ctx,
            transport,
            health,
            members,
            election,
            recoveries,
            takeover,
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
            Event::IpResult(r) => {
                self.ip_result(r);
                false
            }
            Event::PublicAddresses(list) => {
                self.hosting.reload(&mut self.ctx, &list);
                true
            }
            Event::Fenced => {
                log::warn!(
                    "node {}: its guardian removed every public address while it was stopped",
                    self.ctx.me.pnn
                );
                self.hosting.forget_all();
                true
            }
            Event::Health { healthy } => self.members.set_healthy(&mut self.ctx, healthy),
            Event::Carrier { iface, up } => {
                for done in self.hosting.set_carrier(&mut self.ctx, iface, up) {
                    self.deliver(Some(done));
                }
                false
            }
        };
        dirty |= self.take_transport_changes();
        dirty |= self.run_timers();
        if dirty {
            self.reconcile();
            // Reconciling may arm a timer for now (the monitor, after a membership change).
            if self.run_timers() {
                self.reconcile();
            }
        }
        self.finish_event();
        Ok(())
    }

    /// A decoded frame of a proven link, to the layer it concerns. `true` if something the
    /// reconcile pass reads may have changed.
    fn route(&mut self, r: Routed<'_>) -> bool {
        let Routed {
            peer,
            header,
            message,
            frame,
        } = r;
        let c = &mut self.ctx;
        // Any frame is a sign of life.
        self.health.alive(c, peer);
        let mut dirty = false;
        if !header.op.generation_scoped() {
            dirty |= self.members.generation_seen(peer, header.generation);
        }
        let recmaster = self.election.recmaster();
        let from_master = peer == recmaster && header.generation == c.generation;
        match message {
            Message::Hello(h) => {
                self.health.promised(c, peer, h.liveness);
                dirty |= self.members.hello(c, peer, &h);
            }
            Message::Keepalive(k) => {
                self.health.promised(c, peer, k.liveness);
                self.health.stamps(peer, &k);
                dirty |= self.members.keepalive(c, peer, &k);
            }
            Message::RecoveryStart { members } => {
                self.recoveries
                    .on_start(c, recmaster, peer, header.generation, members);
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
                // A clean stop releases before it says goodbye.
                self.takeover.node_fenced(peer);
                self.transport.peer_dead(c, peer, Disconnect::Goodbye);
            }
            Message::Fenced { .. } => {
                log::warn!("node {peer}: its guardian fenced it (its addresses are gone)");
                self.takeover.node_fenced(peer);
                if self.transport.is_connected(peer) {
                    self.transport.peer_dead(c, peer, Disconnect::Fenced);
                }
            }
            Message::IpList { .. } => {
                self.takeover.set_view(peer, wire::entries(frame, &message));
            }
            Message::TakeIp { ip } => {
                let done = if from_master && self.refresh_hosting() {
                    self.hosting
                        .take(&mut self.ctx, peer, header.generation, ip)
                } else {
                    log::info!(
                        "node {}: refusing to take {} from node {peer} ({})",
                        self.ctx.me.pnn,
                        ip.addr,
                        if from_master {
                            "no hosting lease yet, or hosting not allowed"
                        } else {
                            "not our recovery master"
                        }
                    );
                    Some(Done {
                        to: peer,
                        generation: header.generation,
                        ip,
                        op: IpOp::Take,
                        ok: false,
                    })
                };
                self.deliver(done);
            }
            Message::ReleaseIp { ip } => {
                // Any recovery master of this generation may ask for less: giving up is safe.
                let done = self
                    .hosting
                    .release(&mut self.ctx, peer, header.generation, ip);
                self.deliver(done);
            }
            Message::IpDone { ip, op, ok } => {
                if self.is_acting_recmaster() {
                    self.takeover
                        .done(&mut self.ctx, &self.members, peer, ip, op, ok);
                }
            }
            Message::IpReallocated { .. } => {
                // Any generation: a node outside the vnnmap (stopped, banned, disabled while
                // out) keeps its old generation but must still know who hosts what. The
                // master's frames arrive in order, so the last one is its latest word.
                if peer == recmaster {
                    self.takeover.set_allocation(wire::entries(frame, &message));
                    self.ctx.notify(Notification::IpReallocated);
                    self.check_allocation();
                }
            }
            Message::TakeoverRequest => {
                if self.is_acting_recmaster() {
                    self.takeover.want_run();
                }
            }
            Message::MoveIp { ip, pnn } => {
                if self.is_acting_recmaster() {
                    if let Err(e) = self.move_ip(ip, pnn) {
                        log::warn!("moveip from node {peer} refused: {e}");
                    }
                }
            }
            Message::ReloadIps => self.ctx.act(Action::ReloadIps),
            Message::Ban { secs } => {
                if from_master && self.ctx.tunables.enable_bans {
                    log::warn!("node {}: its recovery master bans it", self.ctx.me.pnn);
                    let period = Duration::from_secs(u64::from(secs));
                    dirty |= self.members.ban(&mut self.ctx, period);
                }
            }
        }
        dirty
    }

    /// An answer to a take or release for the recovery master that asked (maybe this node).
    fn deliver(&mut self, done: Option<Done>) {
        let Some(d) = done else {
            return;
        };
        if d.to == self.ctx.me.pnn {
            let me = self.ctx.me.pnn;
            self.takeover
                .done(&mut self.ctx, &self.members, me, d.ip, d.op, d.ok);
        } else {
            self.ctx.send_in(d.to, d.message(), d.generation);
        }
    }

    fn ip_result(&mut self, r: IpResult) {
        let done = self.hosting.result(&mut self.ctx, r);
        match (r.op, r.error, self.hosting.state_of(r.addr)) {
            (IpOp::Take, None, Some(HostState::Held)) => {
                self.ctx.notify(Notification::IpTaken { addr: r.addr });
                self.arm_lease();
            }
            (IpOp::Release, _, Some(HostState::Free)) => {
                self.ctx.notify(Notification::IpReleased { addr: r.addr })
            }
            _ => {}
        }
        self.deliver(done);
    }

    /// Compares what this node hosts with the allocation its recovery master announced, and
    /// asks for a takeover run when they disagree (seed 000: "pnn == self and don't have ip",
    /// "pnn != self and have ip").
    fn check_allocation(&mut self) {
        let me = self.ctx.me.pnn;
        let mismatch = self.hosting.addrs().iter().any(|a| {
            let assigned = self.takeover.holder(a.ip);
            let held = a.state == HostState::Held;
            (assigned == me && !held) || (assigned != me && held)
        });
        let r = self.election.recmaster();
        if mismatch && r != Pnn::NONE && r != me {
            log::info!(
                "node {me}: what it hosts differs from the allocation: asking for a takeover run"
            );
            self.ctx.send(r, Message::TakeoverRequest);
        }
    }

    /// `moveip`, on the acting recovery master: valid if `pnn` lists the address available.
    fn move_ip(&mut self, ip: WireIp, pnn: Pnn) -> Result<(), String> {
        let known = self.takeover.known();
        let Some(ip) = known.into_iter().find(|k| k.addr == ip.addr) else {
            return Err(format!(
                "{} is not a public address of the cluster",
                ip.addr
            ));
        };
        if !self.takeover.can_host(pnn, ip) {
            return Err(format!("node {pnn} cannot host {}", ip.addr));
        }
        self.takeover.pin(ip, pnn);
        Ok(())
    }

    /// Whether this node may host now (quorate, not barred, lease held); hosting is switched
    /// off (everything released) when it may not.
    fn refresh_hosting(&mut self) -> bool {
        let lease = self.lease_valid();
        let allowed = self.may_host && lease;
        if !lease && self.hosting.hosts_any() {
            self.ctx.notify(Notification::LeaseLost);
        }
        self.hosting
            .set_allowed(&mut self.ctx, allowed, "the hosting lease ran out");
        allowed
    }

    /// The hosting lease: a majority vouches for this node (TwoNode: or it holds the lock).
    fn lease_valid(&self) -> bool {
        if self.ctx.tunables.two_node && self.holds_lock() {
            return true;
        }
        self.lease_until().is_some_and(|t| self.ctx.now < t)
    }

    fn lease_until(&self) -> Option<Instant> {
        let lease = hosting::lease_len(&self.ctx);
        self.health.lease_until(self.members.expected(), lease)
    }

    /// Watches the lease while anything is hosted: at its end, or (a lease that holds by
    /// other means, TwoNode's lock) one lease from now; never in the past.
    fn arm_lease(&mut self) {
        let next = hosting::lease_len(&self.ctx);
        let at = self
            .lease_until()
            .filter(|&t| t > self.ctx.now)
            .unwrap_or(self.ctx.now + next);
        self.ctx.timers.set(Timer::Lease, at);
    }

    /// Connection changes the transport decided, to the layers above. `true` if any.
    fn take_transport_changes(&mut self) -> bool {
        if !self.transport.has_changes() {
            return false;
        }
        let (up, down, died) = self.transport.take_changes();
        let mut stale = NodeSet::new();
        for set in [down, up] {
            for p in set.iter() {
                let on = self.transport.is_connected(p);
                if on && !self.health.watch(&mut self.ctx, p) {
                    stale.insert(p);
                    continue;
                }
                self.members.set_connected(p, on);
                if on {
                    self.takeover.node_back(p);
                    self.send_ip_list(p);
                } else {
                    self.health.unwatch(p);
                }
            }
        }
        for p in died.iter() {
            self.election.recmaster_died(&mut self.ctx, p);
        }
        // Connected by a Hello that went stale: silent past its promise already, so dead now,
        // before anything above counts it.
        for p in stale.iter() {
            let after = self.health.silent_for(&self.ctx, p);
            self.transport
                .peer_dead(&mut self.ctx, p, Disconnect::Silent { after });
        }
        if !stale.is_empty() {
            self.take_transport_changes();
        }
        true
    }

    /// Our list of public addresses to `peer`.
    fn send_ip_list(&mut self, peer: Pnn) {
        let mut to = NodeSet::new();
        to.insert(peer);
        let hosting = &self.hosting;
        self.ctx.send_entries(
            to,
            |entries| Message::IpList { entries },
            |out| hosting.entries(out),
        );
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
                Timer::Lease => {
                    if self.refresh_hosting() {
                        self.arm_lease();
                    }
                }
                Timer::Renew => {
                    if self.refresh_hosting() {
                        self.hosting.renew(&mut self.ctx);
                    }
                    continue;
                }
                Timer::Takeover => {
                    self.takeover.advance(&mut self.ctx, &self.members);
                    continue;
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
            self.takeover.abort(&mut self.ctx);
        }
    }

    fn on_lock(&mut self, result: crate::node::LockResult) {
        let out = self.election.on_lock(&mut self.ctx, result);
        if out.stepped_down {
            self.recoveries.stop_monitoring(&mut self.ctx);
            self.takeover.abort(&mut self.ctx);
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
            self.takeover.abort(&mut self.ctx);
        }
        // Stepping down releases the lock, which ends a TwoNode node's quorum: see it now.
        self.reconcile_quorum();
        let r = self.election.recmaster();
        self.recoveries.check_follower(&mut self.ctx, r, false);
        if self.is_acting_recmaster() {
            self.recoveries
                .membership_changed(&mut self.ctx, &self.members);
        }
        let may_host = self.quorate && !self.members.own_flags().intersects(NO_HOSTING);
        if self.may_host && !may_host {
            self.hosting
                .release_all(&mut self.ctx, "lost quorum, or banned, stopped or disabled");
        }
        self.may_host = may_host;
        if !may_host {
            self.hosting
                .set_allowed(&mut self.ctx, false, "may not host");
        }
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

    /// The end of every event: a committed recovery's takeover run, the takeover run's
    /// progress, our list and our view to the peers if they changed.
    fn finish_event(&mut self) {
        for d in core::mem::take(&mut self.hosting.answers) {
            self.deliver(Some(d));
        }
        let acting = self.is_acting_recmaster();
        if let Some((vnnmap, reachable)) = self.recoveries.take_committed() {
            if acting {
                self.takeover.committed(&mut self.ctx, vnnmap, reachable);
            }
            self.recoveries
                .announce_reconfigured(&mut self.ctx, &self.members);
        }
        // Only members of our generation (and only while we may be in it) get their leases
        // renewed by us.
        let inactive = NodeFlags::BANNED.union(NodeFlags::STOPPED);
        let echo = if self.members.own_flags().intersects(inactive) {
            // Forgotten, not only paused: a recovery that excluded a node ran without us, and
            // echoing the old members once unbanned would renew that node's lease.
            self.recoveries.forget_members();
            NodeSet::new()
        } else {
            self.recoveries.members()
        };
        self.health.set_echo_set(echo);
        if let Some(p) = self.takeover.ban.take() {
            let period = self.ctx.tunables.recovery_ban_period;
            if p == self.ctx.me.pnn {
                self.members.ban(&mut self.ctx, period);
            } else {
                let secs = period.as_secs().min(u64::from(u32::MAX)) as u32;
                self.ctx.send(p, Message::Ban { secs });
            }
        }
        if core::mem::take(&mut self.members.hosting_flags_changed) {
            self.takeover.want_run();
        }
        if acting && self.recoveries.mode() == RecoveryMode::Normal {
            self.takeover.watch_flags(&self.ctx, &self.members);
            let was_running = self.takeover.running();
            self.takeover
                .maybe_run(&mut self.ctx, &self.members, self.recoveries.vnnmap());
            self.run_local_steps();
            if was_running || self.takeover.running() {
                self.takeover.advance(&mut self.ctx, &self.members);
                self.run_local_steps();
            }
            if let Some((moved, failed)) = self.takeover.take_finished() {
                self.ctx.notify(Notification::TakeoverRun { moved, failed });
                self.announce_allocation();
            }
        } else if self.takeover.running() {
            self.takeover.abort(&mut self.ctx);
        }
        if self.hosting.list_changed {
            self.hosting.list_changed = false;
            let me = self.ctx.me.pnn;
            self.takeover.set_view(me, self.hosting.view());
            let (writable, hosting) = (self.ctx.writable, &self.hosting);
            self.ctx.send_entries(
                writable,
                |entries| Message::IpList { entries },
                |out| hosting.entries(out),
            );
        }
        if self.ctx.view != self.told {
            self.told = self.ctx.view;
            self.health.broadcast(&mut self.ctx);
        }
    }

    /// Hands the takeover run's steps for this node to its own hosting layer.
    fn run_local_steps(&mut self) {
        while !self.takeover.local.is_empty() {
            let steps = core::mem::take(&mut self.takeover.local);
            let (me, g) = (self.ctx.me.pnn, self.ctx.generation);
            for step in steps {
                let done = match step {
                    Local::Take(ip) if self.refresh_hosting() => {
                        self.hosting.take(&mut self.ctx, me, g, ip)
                    }
                    Local::Take(ip) => Some(Done {
                        to: me,
                        generation: g,
                        ip,
                        op: IpOp::Take,
                        ok: false,
                    }),
                    Local::Release(ip) => self.hosting.release(&mut self.ctx, me, g, ip),
                };
                self.deliver(done);
            }
        }
    }

    /// Tells every peer (and this node) who hosts what after a takeover run.
    fn announce_allocation(&mut self) {
        let mut to = NodeSet::new();
        for p in self.members.pnns() {
            if p != self.ctx.me.pnn && self.members.is_connected(p) {
                to.insert(p);
            }
        }
        let takeover = &self.takeover;
        self.ctx.send_entries(
            to,
            |entries| Message::IpReallocated { entries },
            |out| takeover.allocation_entries(out),
        );
        self.ctx.notify(Notification::IpReallocated);
        self.check_allocation();
    }

    /// A clean stop: give up the recmaster role and the lock, release the public addresses
    /// (the shell removes them before it carries out the next action), tell the peers, close
    /// every connection, exit.
    fn shutdown(&mut self) {
        log::info!("node {}: shutting down", self.ctx.me.pnn);
        self.step_down("shutting down");
        self.hosting.release_all(&mut self.ctx, "shutting down");
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

    /// The public addresses for `ip`: this node's own, or every one the cluster knows.
    fn ips(&self, all: bool) -> Vec<IpStatus> {
        let own = self.hosting.addrs();
        let mut list: Vec<WireIp> = own.iter().map(|a| a.ip).collect();
        if all {
            list = self.takeover.known();
            for a in own {
                if !list.iter().any(|k| k.addr == a.ip.addr) {
                    list.push(a.ip);
                }
            }
            list.sort();
        }
        list.into_iter()
            .map(|ip| {
                let mine = own.iter().find(|a| a.ip.addr == ip.addr);
                let active = mine
                    .filter(|a| a.state == HostState::Held)
                    .and_then(|a| a.on.and_then(|i| a.interfaces.get(i)).cloned());
                IpStatus {
                    address: ip.addr,
                    prefix: ip.prefix,
                    pnn: self.takeover.holder(ip),
                    interfaces: mine.map(|a| a.interfaces.clone()).unwrap_or_default(),
                    active,
                }
            })
            .collect()
    }

    /// `moveip`: checked here, carried out by the recovery master.
    fn request_move(&mut self, addr: IpAddr, pnn: Pnn) -> Response {
        let Some(ip) = self.takeover.known().into_iter().find(|k| k.addr == addr) else {
            return Response::Error(format!("{addr} is not a public address of the cluster"));
        };
        if self.ctx.nodes.address_of(pnn).is_none() {
            return Response::Error(format!("node {pnn} does not exist"));
        }
        // Before the lists: without a recovery master this node may not have heard `pnn`'s.
        let r = self.election.recmaster();
        if r == Pnn::NONE {
            return Response::Error("no recovery master: try again later".into());
        }
        if !self.takeover.can_host(pnn, ip) {
            return Response::Error(format!("node {pnn} cannot host {addr}"));
        }
        if r == self.ctx.me.pnn {
            if let Err(e) = self.move_ip(ip, pnn) {
                return Response::Error(e);
            }
        } else {
            self.ctx.send(r, Message::MoveIp { ip, pnn });
        }
        Response::Done(None)
    }

    /// The frames this node's guardian sends to each peer when it fences the node: the
    /// address to connect from, the peer's address, and the frame (for the shell to hand over
    /// at start; they name this life of the node).
    pub fn fencing_frames(&self) -> Vec<(IpAddr, SocketAddr, Vec<u8>)> {
        let me = self.ctx.me.pnn;
        let Some(local) = self.ctx.nodes.address_of(me) else {
            return Vec::new();
        };
        let m = Message::Fenced {
            incarnation: self.ctx.me.incarnation,
        };
        self.ctx
            .nodes
            .entries()
            .iter()
            .filter(|e| e.pnn != me)
            .filter_map(|e| {
                let addr = e.address?;
                let header = wire::Header {
                    op: m.op(),
                    src: me,
                    dst: e.pnn,
                    generation: Generation(0),
                    request_id: 0,
                };
                let mut frame = Vec::new();
                wire::encode(&header, &m, &mut frame);
                Some((local, SocketAddr::new(addr, self.ctx.port), frame))
            })
            .collect()
    }

    /// How long the guardian may go without hearing from the daemon before it fences the
    /// node: as long as the peers wait before they call it dead.
    pub fn guardian_timeout(&self) -> Duration {
        Promise::own(&self.ctx.tunables).dead_after()
    }

    /// Every interface this node's public addresses may go on, in first-listed order: its
    /// name, whether it has carrier (as the shell last said), and how many addresses are on
    /// it now (`pharos ifaces`).
    pub fn interfaces(&self) -> Vec<(String, bool, u32)> {
        let mut out: Vec<(String, bool, u32)> = Vec::new();
        for a in self.hosting.addrs() {
            for name in &a.interfaces {
                if !out.iter().any(|(n, _, _)| n == name) {
                    out.push((name.clone(), self.hosting.link_up(name), 0));
                }
            }
            let on = a.on.and_then(|i| a.interfaces.get(i));
            if let (HostState::Held, Some(on)) = (a.state, on) {
                if let Some(e) = out.iter_mut().find(|(n, _, _)| n == on) {
                    e.2 += 1;
                }
            }
        }
        out
    }

    /// What this node hosts, by address.
    pub fn hosted(&self) -> impl Iterator<Item = (IpAddr, HostState)> + '_ {
        self.hosting.addrs().iter().map(|a| (a.ip.addr, a.state))
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
            Request::Ip { all } => Response::Ips(self.ctx.me.pnn, self.ips(*all)),
            Request::IpInfo(addr) => {
                match self.ips(true).into_iter().find(|i| i.address == *addr) {
                    Some(i) => Response::IpInfo(self.ctx.me.pnn, i),
                    None => {
                        Response::Error(format!("{addr} is not a public address of the cluster"))
                    }
                }
            }
            Request::MoveIp(addr, pnn) => self.request_move(*addr, *pnn),
            Request::ReloadIps => {
                self.ctx.act(Action::ReloadIps);
                self.ctx.broadcast(Message::ReloadIps);
                Response::Done(None)
            }
            Request::Ifaces => Response::Ifaces(
                self.ctx.me.pnn,
                self.interfaces()
                    .into_iter()
                    .map(|(name, link_up, references)| control::IfaceStatus {
                        name,
                        link_up,
                        references,
                    })
                    .collect(),
            ),
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
mod lab;
#[cfg(test)]
mod takeover_tests;

#[cfg(test)]
mod election_tests;

#[cfg(test)]
mod events_tests;
