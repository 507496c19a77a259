//! Dead-peer detection (seed 001's rule, judged by the peer's own promise): a connected peer
//! that sent no frame for its KeepaliveLimit keepalive intervals, plus half an interval for
//! scheduling and network jitter, is dead. Any frame counts as life. Every peer tells its
//! KeepaliveInterval and KeepaliveLimit in its Hello and keepalives, so a node whose own
//! interval differs (a `setvar` on one node) is never declared dead for it.
//!
//! Keepalives go to every peer we can write to every (own) KeepaliveInterval. The silence
//! check runs at the earliest instant a peer could be dead, not at our own ticks, so a node with
//! a long interval still notices a silent peer on time.
//!
//! The hosting lease lives here too, because it is a liveness fact: every keepalive carries its
//! sender's clock (`stamp`) and echoes the receiver's latest stamp if the receiver is a member
//! of the sender's generation. A node whose stamp `s` a majority of the cluster (itself
//! included) has echoed may host public addresses until `s + lease` on its own clock. A node
//! cut off from the majority, or left out of a new generation by it, cannot renew: its lease
//! runs out on its own clock, with no message needed (see docs/ADDRESSES.md).

use super::ctx::Ctx;
use super::timer::Timer;
use crate::config::Tunables;
use crate::time::Instant;
use crate::types::{NodeSet, Pnn};
use crate::wire::{Keepalive, Liveness, Message};
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
    /// Its latest stamp (its clock), to echo back.
    their_stamp: u64,
    /// Our latest stamp it echoed (our clock), 0 if none since it became connected.
    echoed: u64,
}

/// The health layer: every peer's last sign of life and promise, and the echoes that make the
/// hosting lease.
#[derive(Debug)]
pub(super) struct Health {
    peers: Vec<PeerHealth>,
    /// Peers whose silence is watched (the connected ones).
    watched: NodeSet,
    /// Peers whose stamps we echo: the members of our generation (or of the recovery that
    /// proposed it).
    echo_set: NodeSet,
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
                    their_stamp: 0,
                    echoed: 0,
                };
                ctx.nodes.len()
            ],
            watched: NodeSet::new(),
            echo_set: NodeSet::new(),
        }
    }

    /// Our stamp now: the clock plus one, so that no stamp is 0 ("none").
    fn stamp(ctx: &Ctx) -> u64 {
        ctx.now.as_nanos().saturating_add(1)
    }

    /// A keepalive for `peer`: our view, our stamp, and its stamp echoed if it is a member.
    pub fn keepalive(&self, ctx: &Ctx, peer: Pnn) -> Message {
        let echo = if self.echo_set.contains(peer) && self.watched.contains(peer) {
            self.peers[peer.index()].their_stamp
        } else {
            0
        };
        Message::Keepalive(Keepalive {
            stamp: Self::stamp(ctx),
            echo,
            ..ctx.view
        })
    }

    /// Sends our view to every peer we can write to.
    pub fn broadcast(&self, ctx: &mut Ctx) {
        let writable = ctx.writable;
        for p in writable.iter() {
            let k = self.keepalive(ctx, p);
            ctx.send(p, k);
        }
    }

    /// What a keepalive of `peer` says about stamps.
    pub fn stamps(&mut self, peer: Pnn, k: &Keepalive) {
        let p = &mut self.peers[peer.index()];
        p.their_stamp = k.stamp;
        // An echo is of one of our stamps: it only ever moves forward.
        p.echoed = p.echoed.max(k.echo);
    }

    /// From now on we echo only these peers' stamps (the members of a new generation).
    pub fn set_echo_set(&mut self, members: NodeSet) {
        self.echo_set = members;
    }

    /// Until when a majority of `expected` votes (this node's own included) vouches for this
    /// node: our latest stamp that a majority echoed, plus `lease`. `None` if no majority
    /// does. A single-node cluster needs nobody.
    pub fn lease_until(&self, expected: usize, lease: Duration) -> Option<Instant> {
        let need = expected / 2; // peers, besides ourselves, for a strict majority
        if need == 0 {
            return Some(Instant::MAX);
        }
        // The `need`-th largest echo among the watched peers.
        let mut best = [0u64; crate::config::MAX_NODES];
        let mut n = 0;
        for peer in self.watched.iter() {
            let e = self.peers[peer.index()].echoed;
            if e > 0 && n < best.len() {
                best[n] = e;
                n += 1;
            }
        }
        if n < need {
            return None;
        }
        let echoes = &mut best[..n];
        echoes.sort_unstable_by(|a, b| b.cmp(a));
        let s = echoes[need - 1];
        Some(Instant::from_nanos(s.saturating_sub(1)) + lease)
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

    /// `peer` became connected: its silence counts from now (issue 9.4: the Hello that made
    /// it connected may have come a while before our own connect finished). Unless it is
    /// silent past its promise already: a live peer writes to us whether or not we count it
    /// connected (its keepalives go over its own connection), so it fell silent before our
    /// connection got through (its Hello went stale on the incoming connection). `false`
    /// then: it is dead, and not watched.
    pub fn watch(&mut self, ctx: &mut Ctx, peer: Pnn) -> bool {
        let p = &mut self.peers[peer.index()];
        if ctx.now >= p.last_rx + p.promise.dead_after() {
            return false;
        }
        p.last_rx = ctx.now;
        // Echoes count only from the connection it has now.
        p.echoed = 0;
        p.their_stamp = 0;
        self.watched.insert(peer);
        ctx.timers
            .set_earliest(Timer::Silence, ctx.now + p.promise.dead_after());
        true
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
        self.broadcast(ctx);
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
        // Every peer, not only the watched ones: one that becomes connected soon after is
        // judged by its last frame too ([`Health::watch`]).
        for p in self.peers.iter_mut() {
            // last_rx such that the peer is dead one interval from now at the earliest.
            if let Some(t) = (ctx.now + p.promise.interval).checked_sub(p.promise.dead_after()) {
                p.last_rx = p.last_rx.max(t);
            }
        }
        ctx.timers.stop(Timer::Silence);
        self.silent(ctx);
    }
}
