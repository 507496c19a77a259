//! Dead-peer detection (seed 001's rule, judged by the peer's own promise): a connected peer
//! that sent no frame for its KeepaliveLimit keepalive intervals, plus half an interval for
//! scheduling and network jitter, is dead. Any frame counts as life. Every peer tells its
//! KeepaliveInterval and KeepaliveLimit in its Hello and keepalives, so a node whose own
//! interval differs (a `setvar` on one node) is never declared dead for it.
//!
//! Keepalives go to every peer we can write to every (own) KeepaliveInterval. The silence
//! check runs at the earliest instant a peer could be dead, not at our own ticks, so a node with
//! a long interval still notices a silent peer on time.

use super::{Node, OutState};
use crate::config::Tunables;
use crate::time::Instant;
use crate::types::Pnn;
use crate::wire::{Liveness, Message};
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

impl Node {
    pub(super) fn keepalive_tick(&mut self) {
        self.stats.keepalive_ticks += 1;
        let interval = self.tunables.keepalive_interval;
        // Keep the phase; after a long stall (a frozen process) restart from now.
        self.next_keepalive += interval;
        if self.next_keepalive <= self.now {
            self.next_keepalive = self.now + interval;
        }
        let view = Message::Keepalive(self.view());
        for i in 0..self.peers.len() {
            if self.peers[i].out == OutState::Up && self.is_remote(Pnn(i as u32)) {
                self.send(Pnn(i as u32), view);
            }
        }
    }

    /// Declares dead every connected peer silent past its promise, and schedules the next check
    /// at the earliest instant another could be.
    pub(super) fn check_silence(&mut self) {
        let mut next = Instant::MAX;
        for i in 0..self.peers.len() {
            let peer = Pnn(i as u32);
            let p = &self.peers[i];
            if !p.connected || peer == self.pnn {
                continue;
            }
            let dead_at = p.last_rx + p.promise.dead_after();
            if self.now >= dead_at {
                log::info!(
                    "node {peer}: no frame for {} ms (it promises one every {} ms, limit {})",
                    (self.now - p.last_rx).as_millis(),
                    p.promise.interval.as_millis(),
                    p.promise.limit
                );
                self.peer_dead(peer, "keepalive timeout");
            } else {
                next = next.min(dead_at);
            }
        }
        self.silence_check_at = next;
    }

    /// After this node itself stalled (a frozen process, a long pause of the host): its peers'
    /// silence is ours, so each gets one more of its intervals to show it is alive instead of
    /// being declared dead at once.
    pub(super) fn forgive_own_stall(&mut self) {
        let now = self.now;
        for p in self.peers.iter_mut().filter(|p| p.connected) {
            let fresh = now + p.promise.interval;
            let dead_after = p.promise.dead_after();
            // last_rx such that the peer is dead one interval from now at the earliest.
            if let Some(t) = fresh.checked_sub(dead_after) {
                p.last_rx = p.last_rx.max(t);
            }
        }
    }

    /// A peer told its promise (maybe a shorter one): check its silence on time.
    pub(super) fn promise_changed(&mut self, peer: Pnn) {
        let p = &self.peers[peer.index()];
        if p.connected {
            self.silence_check_at = self.silence_check_at.min(p.last_rx + p.promise.dead_after());
        }
    }

    /// A peer's frame arrived now: it is alive.
    pub(super) fn peer_alive(&mut self, peer: Pnn) {
        self.peers[peer.index()].last_rx = self.now;
    }
}
