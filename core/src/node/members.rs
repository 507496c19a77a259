//! The node table: what this node knows of every slot of the nodes file — whether it is
//! connected (as the transport decided), what it told in its Hello and keepalives (flags, start
//! stamp, capability, the recovery master it follows, its recovery mode, its generation) — and
//! this node's own administrative flags. Quorum (votequorum) is counted here.

use super::ctx::Ctx;
use super::io::Notification;
use super::timer::Timer;
use crate::control::AdminCommand;
use crate::quorum;
use crate::types::{Generation, NodeFlags, Pnn, RecoveryMode};
use crate::wire::{Hello, Keepalive, CAP_RECMASTER};
use alloc::vec::Vec;
use core::time::Duration;

/// What one peer told us.
#[derive(Clone, Copy, Debug)]
struct Member {
    connected: bool,
    /// Connected at least once since we started (wait_for_all).
    ever_connected: bool,
    /// The administrative flags it last told us.
    flags: NodeFlags,
    /// From its Hello.
    start_stamp: u64,
    /// From its Hello: may be recovery master.
    capable: bool,
    /// What its last keepalive said.
    recmaster: Pnn,
    mode: RecoveryMode,
    /// The generation in its last frame's header.
    generation: Generation,
}

/// Flags that keep a node from hosting public addresses.
pub(super) const NO_HOSTING: NodeFlags = NodeFlags::DISABLED
    .union(NodeFlags::STOPPED)
    .union(NodeFlags::BANNED);
/// Flags the allocation reads: a change of one of them (on any node) calls for a takeover run.
const ALLOCATION_FLAGS: NodeFlags = NO_HOSTING.union(NodeFlags::UNHEALTHY);
/// Flags that keep a node out of the election.
const NOT_CANDIDATE: NodeFlags = NodeFlags::BANNED.union(NodeFlags::STOPPED);
/// Flags that keep a node out of the vnnmap.
const INACTIVE: NodeFlags = NodeFlags::BANNED.union(NodeFlags::STOPPED);

/// The membership layer.
#[derive(Debug)]
pub(super) struct Members {
    nodes: Vec<Member>,
    /// Our own administrative flags.
    own_flags: NodeFlags,
    /// A flag that decides where addresses go (ours or a peer's) changed since the
    /// dispatcher last looked: the allocation may change.
    pub hosting_flags_changed: bool,
    /// Connected votes, self included, and expected votes (one per live slot).
    votes: usize,
    expected: usize,
    /// Live slots never connected since we started (wait_for_all).
    never_seen: usize,
}

impl Members {
    pub fn new(ctx: &Ctx) -> Self {
        let me = ctx.me.pnn;
        let nodes: Vec<Member> = ctx
            .nodes
            .entries()
            .iter()
            .map(|e| Member {
                connected: e.pnn == me,
                ever_connected: e.pnn == me,
                flags: NodeFlags::empty(),
                start_stamp: u64::MAX,
                capable: false,
                recmaster: Pnn::NONE,
                mode: RecoveryMode::Normal,
                generation: Generation(0),
            })
            .collect();
        let expected = ctx
            .nodes
            .entries()
            .iter()
            .filter(|e| e.address.is_some())
            .count();
        Members {
            nodes,
            own_flags: NodeFlags::empty(),
            hosting_flags_changed: false,
            votes: 1,
            expected,
            never_seen: expected - 1,
        }
    }

    fn get(&self, pnn: Pnn) -> Option<&Member> {
        self.nodes.get(pnn.index())
    }

    /// The transport's verdict on `peer`.
    pub fn set_connected(&mut self, peer: Pnn, on: bool) {
        let m = &mut self.nodes[peer.index()];
        if m.connected == on {
            return;
        }
        m.connected = on;
        if on {
            self.votes += 1;
            if !m.ever_connected {
                m.ever_connected = true;
                self.never_seen -= 1;
            }
        } else {
            self.votes -= 1;
            // What it told us is stale from now on.
            m.recmaster = Pnn::NONE;
            m.mode = RecoveryMode::Normal;
        }
    }

    /// Whether `pnn` is connected (this node always is).
    pub fn is_connected(&self, pnn: Pnn) -> bool {
        self.get(pnn).is_some_and(|m| m.connected)
    }

    /// What a Hello of `peer` says. `true` if anything the layers above use changed.
    pub fn hello(&mut self, ctx: &mut Ctx, peer: Pnn, h: &Hello) -> bool {
        let m = &mut self.nodes[peer.index()];
        let capable = h.capabilities & CAP_RECMASTER != 0;
        let changed = m.start_stamp != h.start_stamp || m.capable != capable;
        m.start_stamp = h.start_stamp;
        m.capable = capable;
        self.told_flags(ctx, peer, h.flags) || changed
    }

    /// What a keepalive of `peer` says. `true` if anything the layers above use changed: a
    /// keepalive that repeats the peer's view costs nothing more.
    pub fn keepalive(&mut self, ctx: &mut Ctx, peer: Pnn, k: &Keepalive) -> bool {
        let m = &mut self.nodes[peer.index()];
        let changed = m.recmaster != k.recmaster || m.mode != k.recovery_mode;
        m.recmaster = k.recmaster;
        m.mode = k.recovery_mode;
        self.told_flags(ctx, peer, k.flags) || changed
    }

    fn told_flags(&mut self, ctx: &mut Ctx, peer: Pnn, flags: NodeFlags) -> bool {
        // Only administrative flags travel: DISCONNECTED and DELETED are each node's own view.
        let flags = NodeFlags(flags.0 & NodeFlags::ADMIN.0);
        let m = &mut self.nodes[peer.index()];
        if m.flags == flags {
            return false;
        }
        if (m.flags.0 ^ flags.0) & ALLOCATION_FLAGS.0 != 0 {
            self.hosting_flags_changed = true;
        }
        m.flags = flags;
        ctx.notify(Notification::FlagsChanged { pnn: peer, flags });
        true
    }

    /// The generation in a frame of `peer` (frames that are not generation-scoped).
    pub fn generation_seen(&mut self, peer: Pnn, g: Generation) -> bool {
        let m = &mut self.nodes[peer.index()];
        let changed = m.generation != g;
        m.generation = g;
        changed
    }

    /// The flags of `pnn` as this node sees them (DISCONNECTED for an unknown PNN).
    pub fn flags_of(&self, ctx: &Ctx, pnn: Pnn) -> NodeFlags {
        let Some(m) = self.get(pnn) else {
            return NodeFlags::DISCONNECTED;
        };
        if ctx.nodes.address_of(pnn).is_none() {
            return NodeFlags::DELETED;
        }
        if pnn == ctx.me.pnn {
            return self.own_flags;
        }
        let mut f = m.flags;
        f.set(NodeFlags::DISCONNECTED, !m.connected);
        f
    }

    /// Our own administrative flags.
    pub fn own_flags(&self) -> NodeFlags {
        self.own_flags
    }

    /// Whether `pnn` may be recovery master, as this node sees it: connected (or us),
    /// recmaster-capable, neither banned nor stopped.
    pub fn is_candidate(&self, ctx: &Ctx, pnn: Pnn) -> bool {
        if pnn == ctx.me.pnn {
            return ctx.me.recmaster_capable && !self.own_flags.intersects(NOT_CANDIDATE);
        }
        self.get(pnn)
            .is_some_and(|m| m.connected && m.capable && !m.flags.intersects(NOT_CANDIDATE))
    }

    /// Whether `pnn` is active: this node or a connected peer, neither banned nor stopped.
    pub fn is_active(&self, ctx: &Ctx, pnn: Pnn) -> bool {
        if pnn == ctx.me.pnn {
            return !self.own_flags.intersects(INACTIVE);
        }
        self.get(pnn)
            .is_some_and(|m| m.connected && !m.flags.intersects(INACTIVE))
    }

    /// When `pnn` started, as it told us (this node's own for itself).
    pub fn start_stamp(&self, ctx: &Ctx, pnn: Pnn) -> u64 {
        if pnn == ctx.me.pnn {
            ctx.me.start_stamp
        } else {
            self.get(pnn).map_or(u64::MAX, |m| m.start_stamp)
        }
    }

    /// The recovery master `pnn` says it follows ([`Pnn::NONE`] for us: ask the election).
    pub fn reported_recmaster(&self, pnn: Pnn) -> Pnn {
        self.get(pnn).map_or(Pnn::NONE, |m| m.recmaster)
    }

    /// The recovery mode `pnn` reported.
    pub fn reported_mode(&self, pnn: Pnn) -> RecoveryMode {
        self.get(pnn).map_or(RecoveryMode::Normal, |m| m.mode)
    }

    /// The generation `pnn` last showed.
    pub fn generation_of(&self, pnn: Pnn) -> Generation {
        self.get(pnn).map_or(Generation(0), |m| m.generation)
    }

    /// The highest generation any node showed.
    pub fn top_generation(&self) -> Generation {
        self.nodes
            .iter()
            .map(|m| m.generation)
            .max()
            .unwrap_or_default()
    }

    /// Every slot's PNN.
    pub fn pnns(&self) -> impl Iterator<Item = Pnn> {
        (0..self.nodes.len()).map(|i| Pnn(i as u32))
    }

    /// Expected votes: one per live slot.
    pub fn expected(&self) -> usize {
        self.expected
    }

    /// Whether every live slot is connected.
    pub fn all_connected(&self) -> bool {
        self.votes == self.expected
    }

    /// `WaitForAll` is satisfied (or not asked for).
    fn seen_all(&self, ctx: &Ctx) -> bool {
        !ctx.tunables.wait_for_all || self.never_seen == 0
    }

    fn two_node_alone(&self, ctx: &Ctx) -> bool {
        ctx.tunables.two_node && self.expected == 2 && self.votes == 1
    }

    /// Whether this node's partition has quorum (votequorum rules: one vote per non-deleted
    /// node, a strict majority; `TwoNode`: one of two while holding the cluster lock;
    /// `WaitForAll`: never before every node has been seen once). O(1).
    pub fn quorate(&self, ctx: &Ctx, holds_lock: bool) -> bool {
        self.seen_all(ctx)
            && (quorum::has_majority(self.votes, self.expected)
                || (self.two_node_alone(ctx) && holds_lock))
    }

    /// Whether this node could be quorate if it held the lock, so it may run for recmaster.
    pub fn may_lead(&self, ctx: &Ctx) -> bool {
        self.seen_all(ctx)
            && (quorum::has_majority(self.votes, self.expected) || self.two_node_alone(ctx))
    }

    /// Applies an administrative command to our own flags. `true` if they changed.
    pub fn admin(&mut self, ctx: &mut Ctx, cmd: AdminCommand) -> bool {
        let before = self.own_flags;
        match cmd {
            AdminCommand::Disable => self.own_flags.set(NodeFlags::DISABLED, true),
            AdminCommand::Enable => self.own_flags.set(NodeFlags::DISABLED, false),
            AdminCommand::Stop => self.own_flags.set(NodeFlags::STOPPED, true),
            AdminCommand::Continue => self.own_flags.set(NodeFlags::STOPPED, false),
            AdminCommand::Ban(secs) => return self.ban(ctx, Duration::from_secs(secs as u64)),
            AdminCommand::Unban => {
                self.own_flags.set(NodeFlags::BANNED, false);
                ctx.timers.stop(Timer::Ban);
            }
        }
        self.own_flags_changed(ctx, before)
    }

    /// Bans this node for `period` (CTDB's culprit handling, or `pharos ban`).
    pub fn ban(&mut self, ctx: &mut Ctx, period: Duration) -> bool {
        let before = self.own_flags;
        self.own_flags.set(NodeFlags::BANNED, true);
        ctx.timers.set(Timer::Ban, ctx.now + period);
        log::warn!("node {} banned for {} s", ctx.me.pnn, period.as_secs());
        self.own_flags_changed(ctx, before)
    }

    /// The ban ran out.
    pub fn ban_expired(&mut self, ctx: &mut Ctx) -> bool {
        let before = self.own_flags;
        self.own_flags.set(NodeFlags::BANNED, false);
        log::info!("node {} ban expired", ctx.me.pnn);
        self.own_flags_changed(ctx, before)
    }

    /// The health check's verdict on this node (UNHEALTHY set or cleared). `true` if the
    /// flags changed.
    pub fn set_healthy(&mut self, ctx: &mut Ctx, healthy: bool) -> bool {
        let before = self.own_flags;
        self.own_flags.set(NodeFlags::UNHEALTHY, !healthy);
        if self.own_flags != before {
            if healthy {
                log::info!("node {} is healthy", ctx.me.pnn);
            } else {
                log::warn!("node {} is unhealthy", ctx.me.pnn);
            }
        }
        self.own_flags_changed(ctx, before)
    }

    fn own_flags_changed(&mut self, ctx: &mut Ctx, before: NodeFlags) -> bool {
        if self.own_flags == before {
            return false;
        }
        if (self.own_flags.0 ^ before.0) & ALLOCATION_FLAGS.0 != 0 {
            self.hosting_flags_changed = true;
        }
        ctx.view.flags = self.own_flags;
        ctx.notify(Notification::FlagsChanged {
            pnn: ctx.me.pnn,
            flags: self.own_flags,
        });
        true
    }
}
