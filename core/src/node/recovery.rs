//! Generations and recovery: the recovery master's monitor loop (seed 000) and the recovery
//! protocol.
//!
//! Every RecoverInterval the acting recmaster checks that all active nodes follow it, that none
//! is in recovery mode, that all share its generation, and that the active set equals the
//! vnnmap. Any failure (or having just won) starts a recovery: RecoveryStart carries the new
//! generation (one above any known); each member enters recovery mode and acknowledges; with
//! every ack the master commits the generation and vnnmap, leaves recovery mode, runs the
//! takeover hook and broadcasts Reconfigured. No further recovery starts within
//! RerecoveryTimeout unless a new recmaster takes over.

use super::Node;
use crate::control::RecoveryMode;
use crate::time::Instant;
use crate::types::{Generation, NodeFlags, NodeSet, Pnn};
use crate::wire::Message;

/// A recovery the recovery master is running.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The generation it moves to.
    pub generation: Generation,
    /// The active nodes taking part (the new vnnmap).
    pub members: NodeSet,
    /// Members that entered recovery mode.
    pub acks: NodeSet,
    /// Given up after RecoverTimeout.
    pub deadline: Instant,
}

/// The generation a recovery by `creator` moves to: above `top` (so generations only grow),
/// and never equal to one another master makes at the same time out of the same `top` (two
/// masters can overlap when connectivity is not transitive). The counter is in the high 24
/// bits, the creator's PNN in the low 8; CTDB draws generations at random instead, which
/// avoids collisions but not going backwards.
pub fn next_generation(top: Generation, creator: Pnn) -> Generation {
    let counter = (top.0 >> 8).saturating_add(1).min(u32::MAX >> 8);
    Generation((counter << 8) | (creator.0 & 0xff))
}

impl Node {
    /// Whether `pnn` is active: this node or a connected peer, neither banned nor stopped.
    fn is_active(&self, pnn: Pnn) -> bool {
        let inactive = NodeFlags::BANNED.union(NodeFlags::STOPPED);
        if pnn == self.pnn {
            return !self.own_flags.intersects(inactive);
        }
        self.peers
            .get(pnn.index())
            .is_some_and(|p| p.connected && !p.flags.intersects(inactive))
    }

    /// The vnnmap of the current generation.
    pub fn vnnmap(&self) -> NodeSet {
        self.vnnmap
    }

    pub(super) fn recovery_timers(&mut self) {
        if self
            .recovery
            .as_ref()
            .is_some_and(|r| self.now >= r.deadline)
        {
            log::warn!(
                "node {}: recovery timed out waiting for acknowledgements",
                self.pnn
            );
            self.abort_recovery();
        }
        if self.monitor_at.is_some_and(|t| self.now >= t) {
            self.monitor_at = Some(self.now + self.tunables.recover_interval);
            self.monitor();
        }
    }

    fn monitor(&mut self) {
        if self.recmaster != self.pnn {
            self.monitor_at = None;
            return;
        }
        if !self.is_acting_recmaster() {
            return;
        }
        if let Some(r) = &self.recovery {
            // A member that left, or follows someone else, will never acknowledge: give up now
            // rather than at RecoverTimeout.
            let me = self.pnn;
            let lost = r.members.iter().find(|&p| {
                p != me
                    && (!self.is_active(p)
                        || !matches!(self.peers[p.index()].reported_recmaster, x if x == me || x == Pnn::NONE))
            });
            if let Some(p) = lost {
                log::info!("node {me}: recovery member {p} is gone");
                self.abort_recovery();
            } else {
                return;
            }
        }
        let mut active = NodeSet::new();
        for i in 0..self.peers.len() {
            let p = Pnn(i as u32);
            if !self.is_active(p) {
                continue;
            }
            if p != self.pnn {
                let follows = self.peers[i].reported_recmaster;
                // A peer that follows nobody yet takes part: our claim reaches it before the
                // recovery start, on the same connection.
                if follows != self.pnn && follows != Pnn::NONE {
                    log::info!(
                        "node {p} follows recovery master {follows}, not {}",
                        self.pnn
                    );
                    self.step_down("the active nodes disagree on the recovery master");
                    return;
                }
            }
            active.insert(p);
        }
        let reason = if self.need_recovery {
            Some("new recovery master")
        } else if active != self.vnnmap {
            Some("the active nodes changed")
        } else if active
            .iter()
            .any(|p| p != self.pnn && self.peers[p.index()].reported_mode == RecoveryMode::Active)
        {
            Some("a node is in recovery mode")
        } else if active
            .iter()
            .any(|p| p != self.pnn && self.peers[p.index()].generation != self.generation)
        {
            Some("generations differ")
        } else {
            None
        };
        if let Some(reason) = reason {
            if self.need_recovery || self.now >= self.rerecovery_until {
                self.start_recovery(active, reason);
            }
        }
    }

    fn start_recovery(&mut self, members: NodeSet, reason: &str) {
        let top = self
            .peers
            .iter()
            .map(|p| p.generation)
            .fold(self.generation, Generation::max);
        let generation = next_generation(top, self.pnn);
        log::info!(
            "node {}: recovery into generation {} ({reason})",
            self.pnn,
            generation.0
        );
        let mut acks = NodeSet::new();
        acks.insert(self.pnn);
        self.recovery = Some(super::Recovery {
            generation,
            members,
            acks,
            deadline: self.now + self.tunables.recover_timeout,
        });
        self.set_recovery_mode(RecoveryMode::Active, self.pnn);
        let me = self.pnn;
        for p in members.iter().filter(|&p| p != me) {
            self.send_in(p, Message::RecoveryStart, generation);
        }
        self.push_view();
        self.check_recovery_acks();
    }

    fn check_recovery_acks(&mut self) {
        let done = self
            .recovery
            .as_ref()
            .is_some_and(|r| r.members.iter().all(|p| r.acks.contains(p)));
        if done {
            self.commit_recovery();
        }
    }

    fn commit_recovery(&mut self) {
        let Some(r) = self.recovery.take() else {
            return;
        };
        self.generation = r.generation;
        self.vnnmap = r.members;
        let me = self.pnn;
        for p in r.members.iter().filter(|&p| p != me) {
            self.send_in(
                p,
                Message::RecoveryCommit { vnnmap: r.members },
                r.generation,
            );
        }
        self.set_recovery_mode(RecoveryMode::Normal, self.pnn);
        self.need_recovery = false;
        self.rerecovery_until = self.now + self.tunables.rerecovery_timeout;
        self.stats.recoveries += 1;
        self.takeover_run();
        for i in 0..self.peers.len() {
            let p = Pnn(i as u32);
            if p != self.pnn && self.peers[i].connected {
                self.send_in(p, Message::Reconfigured, r.generation);
            }
        }
        self.push_view();
        log::info!(
            "node {}: recovery complete, generation {}, vnnmap {:?}",
            self.pnn,
            r.generation.0,
            r.members
        );
    }

    /// The takeover run's place in the recovery; public-IP reallocation plugs in here.
    fn takeover_run(&mut self) {
        self.stats.takeover_runs += 1;
    }

    pub(super) fn abort_recovery(&mut self) {
        if let Some(r) = self.recovery.take() {
            log::info!(
                "node {}: recovery into generation {} abandoned",
                self.pnn,
                r.generation.0
            );
            self.set_recovery_mode(RecoveryMode::Normal, self.pnn);
        }
    }

    fn set_recovery_mode(&mut self, mode: RecoveryMode, by: Pnn) {
        if mode == RecoveryMode::Active {
            self.recovery_mode_since = self.now;
            self.recovery_mode_by = by;
        }
        self.recovery_mode = mode;
    }

    pub(super) fn on_recovery_start(&mut self, from: Pnn, generation: Generation) {
        if from != self.recmaster {
            log::debug!("ignoring recovery start from {from}, not our recovery master");
            return;
        }
        self.set_recovery_mode(RecoveryMode::Active, from);
        self.send_in(from, Message::RecoveryAck, generation);
    }

    pub(super) fn on_recovery_ack(&mut self, from: Pnn, generation: Generation) {
        if let Some(r) = self.recovery.as_mut() {
            if r.generation == generation && r.members.contains(from) {
                r.acks.insert(from);
            }
        }
        self.check_recovery_acks();
    }

    pub(super) fn on_recovery_commit(
        &mut self,
        from: Pnn,
        generation: Generation,
        vnnmap: NodeSet,
    ) {
        if from != self.recmaster {
            return;
        }
        // Generations only grow.
        self.generation = self.generation.max(generation);
        self.vnnmap = vnnmap;
        self.set_recovery_mode(RecoveryMode::Normal, from);
        self.push_view();
    }

    /// When a follower in recovery mode gives up on its recovery master.
    pub(super) fn follower_recovery_deadline(&self) -> Option<Instant> {
        (self.recovery_mode == RecoveryMode::Active && self.recovery.is_none())
            .then(|| self.recovery_mode_since + self.tunables.recover_timeout)
    }

    /// A follower leaves recovery mode by itself when the master that started the recovery is
    /// no longer its master, or after RecoverTimeout.
    pub(super) fn reconcile_follower_mode(&mut self) {
        let Some(deadline) = self.follower_recovery_deadline() else {
            return;
        };
        if self.recmaster != self.recovery_mode_by || self.now >= deadline {
            log::info!(
                "node {}: leaving recovery mode, its recovery master is gone",
                self.pnn
            );
            self.set_recovery_mode(RecoveryMode::Normal, Pnn::NONE);
            self.push_view();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_grow_and_two_masters_never_make_the_same_one() {
        let top = Generation(1);
        let (a, b) = (next_generation(top, Pnn(0)), next_generation(top, Pnn(2)));
        assert!(a > top && b > top && a != b);
        // From either, the next one is above both.
        let next = next_generation(a.max(b), Pnn(0));
        assert!(next > a && next > b);
        assert_eq!(next_generation(Generation(u32::MAX), Pnn(3)).0 & 0xff, 3);
    }
}
