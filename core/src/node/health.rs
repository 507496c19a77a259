//! Dead-peer detection (seed 001's rule, judged by the peer's own promise): a connected peer
//! that sent no frame for its KeepaliveLimit keepalive intervals, plus half an interval for
//! scheduling and network jitter, is dead. Any frame counts as life. Every peer tells its
//! KeepaliveInterval and KeepaliveLimit in its Hello and keepalives, so a node whose own
//! interval differs (a `setvar` on one node) is never declared dead for it.
//!
//! Keepalives go to every peer we can write to every (own) KeepaliveInterval. The silence
//! check runs at the earliest instant a peer could be dead, not at our own ticks, so a node with
//! a long interval still notices a silent peer on time.

use super::ctx::Ctx;
use super::timer::Timer;
use crate::config::Tunables;
use crate::time::Instant;
use crate::types::{NodeSet, Pnn};
use crate::wire::{Liveness, Message};
use alloc::vec::Vec;
use core::time::Duration;

/// A peer's keepalive promise, as durations, clamped to what a tunable may be (a peer cannot
/// make us wait for ever, or call itself dead by announcing 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Promise {
    pub interval: Duration,
    pub limit: u32,
}

impl Promise {
    const MIN_INTERVAL: Duration = Duration::from_millis(10);
    const MAX_INTERVAL: Duration = Duration::from_secs(3600);
    const MAX_LIMIT: u32 = 1000;

    /// What we promise, from our tunables.
    pub fn own(t: &Tunables) -> Promise {
        Promise {
            interval: t.keepalive_interval,
            limit: t.keepalive_limit,
        }
    }

    /// What a peer promised on the wire.
    pub fn from_wire(l: Liveness) -> Promise {
        Promise {
            interval: Duration::from_millis(l.interval_ms as u64)
                .clamp(Self::MIN_INTERVAL, Self::MAX_INTERVAL),
            limit: l.limit.clamp(1, Self::MAX_LIMIT),
        }
    }

    /// On the wire.
    pub fn to_wire(self) -> Liveness {
        Liveness {
            interval_ms: self.interval.as_millis().min(u32::MAX as u128) as u32,
            limit: self.limit,
        }
    }

    /// Silence after which the peer is dead: its limit of intervals, and half an interval of
    /// allowance so that one late keepalive (timer or network jitter) is no death even with a
    /// limit of 1.
    pub fn dead_after(self) -> Duration {
        self.interval * self.limit + self.interval / 2
    }
}

#[derive(Clone, Copy, Debug)]
struct PeerHealth {
    /// When its last frame arrived (or it became connected).
    last_rx: Instant,
    /// What it promised about its keepalives.
    promise: Promise,
}

/// The health layer: every peer's last sign of life and promise.
#[derive(Debug)]
pub(super) struct Health {
    peers: Vec<PeerHealth>,
    /// Peers whose silence is watched (the connected ones).
    watched: NodeSet,
}

impl Health {
    pub fn new(ctx: &mut Ctx) -> Self {
        let own = Promise::own(&ctx.tunables);
        ctx.timers
            .set(Timer::Keepalive, ctx.now + ctx.tunables.keepalive_interval);
        Health {
            peers: alloc::vec![
                PeerHealth {
                    last_rx: ctx.now,
                    promise: own,
                };
                ctx.nodes.len()
            ],
            watched: NodeSet::new(),
        }
    }

    /// A frame of `peer` arrived now.
    pub fn alive(&mut self, ctx: &Ctx, peer: Pnn) {
        self.peers[peer.index()].last_rx = ctx.now;
    }

    /// `peer` told its promise (maybe a shorter one): its silence is checked on time.
    pub fn promised(&mut self, ctx: &mut Ctx, peer: Pnn, l: Liveness) {
        let p = &mut self.peers[peer.index()];
        p.promise = Promise::from_wire(l);
        if self.watched.contains(peer) {
            let at = p.last_rx + p.promise.dead_after();
            ctx.timers.set_earliest(Timer::Silence, at);
        }
    }

    /// `peer` became connected: its silence counts from now (the frames that made it
    /// connected may be older than our own last step).
    pub fn watch(&mut self, ctx: &mut Ctx, peer: Pnn) {
        let p = &mut self.peers[peer.index()];
        p.last_rx = ctx.now;
        self.watched.insert(peer);
        ctx.timers
            .set_earliest(Timer::Silence, ctx.now + p.promise.dead_after());
    }

    /// `peer` is no longer connected.
    pub fn unwatch(&mut self, peer: Pnn) {
        self.watched.remove(peer);
    }

    /// The watched peers silent past their promise (with how long they were silent), and the
    /// next check armed at the earliest instant another could be.
    pub fn silent(&mut self, ctx: &mut Ctx) -> NodeSet {
        let mut dead = NodeSet::new();
        let mut next: Option<Instant> = None;
        for peer in self.watched.iter() {
            let p = &self.peers[peer.index()];
            let dead_at = p.last_rx + p.promise.dead_after();
            if ctx.now >= dead_at {
                dead.insert(peer);
            } else {
                next = Some(next.map_or(dead_at, |t| t.min(dead_at)));
            }
        }
        if let Some(t) = next {
            ctx.timers.set(Timer::Silence, t);
        }
        dead
    }

    /// How long `peer` has been silent.
    pub fn silent_for(&self, ctx: &Ctx, peer: Pnn) -> Duration {
        ctx.now - self.peers[peer.index()].last_rx
    }

    /// The keepalive tick that was due at `due`: our view to every peer we can write to.
    pub fn tick(&mut self, ctx: &mut Ctx, due: Instant) {
        ctx.stats.keepalive_ticks += 1;
        let interval = ctx.tunables.keepalive_interval;
        // Keep the phase; after a long stall (a frozen process) restart from now.
        let mut next = due + interval;
        if next <= ctx.now {
            next = ctx.now + interval;
        }
        ctx.timers.set(Timer::Keepalive, next);
        ctx.broadcast(Message::Keepalive(ctx.view));
    }

    /// Our interval got shorter: the next tick comes no later than one new interval from now.
    pub fn interval_changed(&mut self, ctx: &mut Ctx) {
        ctx.timers
            .set_earliest(Timer::Keepalive, ctx.now + ctx.tunables.keepalive_interval);
    }

    /// After this node itself stalled (a frozen process, a long pause of the host): its peers'
    /// silence is ours, so each gets one more of its intervals to show it is alive instead of
    /// being declared dead at once.
    pub fn forgive_own_stall(&mut self, ctx: &mut Ctx) {
        for peer in self.watched.iter() {
            let p = &mut self.peers[peer.index()];
            // last_rx such that the peer is dead one interval from now at the earliest.
            if let Some(t) = (ctx.now + p.promise.interval).checked_sub(p.promise.dead_after()) {
                p.last_rx = p.last_rx.max(t);
            }
        }
        ctx.timers.stop(Timer::Silence);
        self.silent(ctx);
    }
}
