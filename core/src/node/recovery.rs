//! Generations and recovery: the recovery master's monitor loop (seed 000) and the recovery
//! protocol.
//!
//! Every RecoverInterval the acting recmaster checks that all active nodes follow it, that none
//! is in recovery mode, that all share its generation, and that the active set equals the
//! vnnmap. Any failure (or having just won) starts a recovery: RecoveryStart carries the new
//! generation (one above any known); each member enters recovery mode and acknowledges; with
//! every ack the master commits the generation and vnnmap, leaves recovery mode, and the
//! takeover run follows; then it broadcasts Reconfigured. No further recovery starts within
//! RerecoveryTimeout unless a new recmaster takes over.

use super::ctx::Ctx;
use super::io::Notification;
use super::members::Members;
use super::timer::Timer;
use crate::time::Instant;
use crate::types::{Generation, NodeSet, Pnn, RecoveryMode};
use crate::wire::Message;
use alloc::vec;
use alloc::vec::Vec;

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
    /// The nodes connected to the master when it started (the takeover run's lease wait
    /// counts only for holders outside this set).
    pub reachable: NodeSet,
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

/// What the monitor loop decided that is not the recovery layer's to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// All is well, or a recovery started or goes on.
    Fine,
    /// An active node follows another master: this one must step down.
    StepDown,
}

/// The recovery layer. The generation itself is in the shared context (every frame carries
/// it); this layer alone moves it.
#[derive(Debug)]
pub(super) struct Recoveries {
    mode: RecoveryMode,
    /// Who put this node in recovery mode.
    mode_by: Pnn,
    /// The active nodes of the current generation.
    vnnmap: NodeSet,
    /// The first monitor run after winning always recovers (CTDB does the same).
    need_recovery: bool,
    /// A recovery this node runs as recovery master.
    running: Option<Recovery>,
    /// A recovery committed and its takeover run has not been asked for yet: its vnnmap and
    /// the nodes reachable when it started.
    committed: Option<(NodeSet, NodeSet)>,
    rerecovery_until: Instant,
    /// The members of the latest recovery this node took part in: the peers whose stamps it
    /// echoes (their hosting lease).
    members: NodeSet,
    /// Start stamps, by PNN, of the members of the running recovery (`starting`) and of the
    /// committed one (`stamps`): a member that restarted since lost its generation with it.
    starting: Vec<u64>,
    stamps: Vec<u64>,
}

impl Recoveries {
    pub fn new(ctx: &Ctx) -> Self {
        Recoveries {
            mode: RecoveryMode::Normal,
            mode_by: Pnn::NONE,
            vnnmap: NodeSet::new(),
            need_recovery: false,
            running: None,
            committed: None,
            rerecovery_until: ctx.now,
            members: NodeSet::new(),
            starting: vec![u64::MAX; ctx.nodes.entries().len()],
            stamps: vec![u64::MAX; ctx.nodes.entries().len()],
        }
    }

    pub fn mode(&self) -> RecoveryMode {
        self.mode
    }

    pub fn vnnmap(&self) -> NodeSet {
        self.vnnmap
    }

    /// The members of the latest recovery this node took part in.
    pub fn members(&self) -> NodeSet {
        self.members
    }

    /// Forgets them (the node is banned or stopped: outside every recovery until a new one
    /// names it, it must not renew anyone's lease, also not once it is back).
    pub fn forget_members(&mut self) {
        self.members = NodeSet::new();
    }

    /// The lock is ours: the monitor loop starts now, and its first run recovers.
    pub fn start_monitoring(&mut self, ctx: &mut Ctx) {
        self.need_recovery = true;
        ctx.timers.set(Timer::Monitor, ctx.now);
    }

    /// This node stepped down: no monitor loop, no recovery of its own.
    pub fn stop_monitoring(&mut self, ctx: &mut Ctx) {
        ctx.timers.stop(Timer::Monitor);
        self.abort(ctx);
    }

    /// A running recovery gave up waiting for acknowledgements.
    pub fn run_timed_out(&mut self, ctx: &mut Ctx) {
        if self.running.is_some() {
            log::warn!(
                "node {}: recovery timed out waiting for acknowledgements",
                ctx.me.pnn
            );
            self.abort(ctx);
        }
    }

    /// The monitor loop, every RecoverInterval while this node is recovery master; it does
    /// something only while `acting` (recmaster, quorate, holding the lock). A recovery that
    /// commits is reported through [`Recoveries::take_committed`].
    pub fn monitor(&mut self, ctx: &mut Ctx, members: &Members, acting: bool) -> Verdict {
        ctx.timers
            .set(Timer::Monitor, ctx.now + ctx.tunables.recover_interval);
        if !acting {
            return Verdict::Fine;
        }
        let me = ctx.me.pnn;
        if let Some(r) = &self.running {
            // A member that left, or follows someone else, will never acknowledge: give up now
            // rather than at RecoverTimeout.
            let lost = r.members.iter().find(|&p| {
                p != me
                    && (!members.is_active(ctx, p)
                        || !matches!(members.reported_recmaster(p), x if x == me || x == Pnn::NONE))
            });
            match lost {
                Some(p) => {
                    log::info!("node {me}: recovery member {p} is gone");
                    self.abort(ctx);
                }
                None => return Verdict::Fine,
            }
        }
        let mut active = NodeSet::new();
        for p in members.pnns() {
            if !members.is_active(ctx, p) {
                continue;
            }
            if p != me {
                let follows = members.reported_recmaster(p);
                // A peer that follows nobody yet takes part: our claim reaches it before the
                // recovery start, on the same connection.
                if follows != me && follows != Pnn::NONE {
                    log::info!("node {p} follows recovery master {follows}, not {me}");
                    return Verdict::StepDown;
                }
            }
            active.insert(p);
        }
        // A new master, a change of the active nodes or a member that restarted (it died and
        // came back between two monitor runs) recovers at once: addresses move only after it.
        // The other reasons wait out RerecoveryTimeout after the last recovery (a node that
        // keeps disagreeing must not keep the cluster in recovery).
        let restarted = self.restarted(ctx, members, active);
        let urgent = self.need_recovery || active != self.vnnmap || restarted;
        let reason = if self.need_recovery {
            Some("new recovery master")
        } else if active != self.vnnmap {
            Some("the active nodes changed")
        } else if restarted {
            Some("a node restarted")
        } else if active
            .iter()
            .any(|p| p != me && members.reported_mode(p) == RecoveryMode::Active)
        {
            Some("a node is in recovery mode")
        } else if active
            .iter()
            .any(|p| p != me && members.generation_of(p) != ctx.generation)
        {
            Some("generations differ")
        } else {
            None
        };
        if let Some(reason) = reason {
            if urgent || ctx.now >= self.rerecovery_until {
                self.start(ctx, members, active, reason);
            }
        }
        Verdict::Fine
    }

    /// A member of `active` whose start stamp is not the one it had in the last recovery.
    fn restarted(&self, ctx: &Ctx, members: &Members, active: NodeSet) -> bool {
        active
            .iter()
            .any(|p| self.stamps.get(p.index()) != Some(&members.start_stamp(ctx, p)))
    }

    /// Membership may have changed (called only while acting, so the monitor run this arms
    /// recovers): if the active nodes are no longer the vnnmap's (or one of them restarted),
    /// the monitor runs now rather than at its next RecoverInterval tick.
    pub fn membership_changed(&mut self, ctx: &mut Ctx, members: &Members) {
        if self.running.is_some() || ctx.timers.get(Timer::Monitor).is_none() {
            return;
        }
        let mut active = NodeSet::new();
        for p in members.pnns().filter(|&p| members.is_active(ctx, p)) {
            active.insert(p);
        }
        if active != self.vnnmap || self.restarted(ctx, members, active) {
            ctx.timers.set_earliest(Timer::Monitor, ctx.now);
        }
    }

    fn start(&mut self, ctx: &mut Ctx, members: &Members, active: NodeSet, reason: &str) {
        let generation = next_generation(members.top_generation().max(ctx.generation), ctx.me.pnn);
        log::info!(
            "node {}: recovery into generation {} ({reason})",
            ctx.me.pnn,
            generation.0
        );
        let mut acks = NodeSet::new();
        acks.insert(ctx.me.pnn);
        let mut reachable = NodeSet::new();
        for p in members.pnns().filter(|&p| members.is_connected(p)) {
            reachable.insert(p);
        }
        for p in members.pnns() {
            if let Some(s) = self.starting.get_mut(p.index()) {
                *s = if active.contains(p) {
                    members.start_stamp(ctx, p)
                } else {
                    u64::MAX
                };
            }
        }
        self.running = Some(Recovery {
            generation,
            members: active,
            acks,
            deadline: ctx.now + ctx.tunables.recover_timeout,
            reachable,
        });
        self.members = active;
        ctx.timers
            .set(Timer::RecoveryRun, ctx.now + ctx.tunables.recover_timeout);
        self.set_mode(ctx, RecoveryMode::Active, ctx.me.pnn);
        ctx.notify(Notification::RecoveryStarted { generation });
        let me = ctx.me.pnn;
        for p in active.iter().filter(|&p| p != me) {
            ctx.send_in(p, Message::RecoveryStart { members: active }, generation);
        }
        self.check_acks(ctx);
    }

    fn check_acks(&mut self, ctx: &mut Ctx) {
        let done = self
            .running
            .as_ref()
            .is_some_and(|r| r.members.iter().all(|p| r.acks.contains(p)));
        if done {
            self.commit(ctx);
        }
    }

    fn commit(&mut self, ctx: &mut Ctx) {
        let Some(r) = self.running.take() else {
            return;
        };
        ctx.timers.stop(Timer::RecoveryRun);
        ctx.generation = r.generation;
        self.vnnmap = r.members;
        core::mem::swap(&mut self.stamps, &mut self.starting);
        let me = ctx.me.pnn;
        for p in r.members.iter().filter(|&p| p != me) {
            ctx.send_in(
                p,
                Message::RecoveryCommit { vnnmap: r.members },
                r.generation,
            );
        }
        self.set_mode(ctx, RecoveryMode::Normal, me);
        self.need_recovery = false;
        self.rerecovery_until = ctx.now + ctx.tunables.rerecovery_timeout;
        ctx.stats.recoveries += 1;
        self.committed = Some((r.members, r.reachable));
        ctx.notify(Notification::GenerationChanged {
            generation: r.generation,
            vnnmap: r.members,
        });
        log::info!(
            "node {me}: recovery complete, generation {}, vnnmap {:?}",
            r.generation.0,
            r.members
        );
    }

    /// A recovery committed since the last call (its vnnmap, and the nodes reachable when it
    /// started): the takeover run follows, then [`Recoveries::announce_reconfigured`].
    pub fn take_committed(&mut self) -> Option<(NodeSet, NodeSet)> {
        self.committed.take()
    }

    /// Tells every connected member the reconfiguration is complete.
    pub fn announce_reconfigured(&self, ctx: &mut Ctx, members: &Members) {
        let me = ctx.me.pnn;
        for p in members.pnns() {
            if p != me && members.is_connected(p) {
                ctx.send(p, Message::Reconfigured);
            }
        }
    }

    fn abort(&mut self, ctx: &mut Ctx) {
        if let Some(r) = self.running.take() {
            log::info!(
                "node {}: recovery into generation {} abandoned",
                ctx.me.pnn,
                r.generation.0
            );
            ctx.timers.stop(Timer::RecoveryRun);
            self.set_mode(ctx, RecoveryMode::Normal, ctx.me.pnn);
        }
    }

    fn set_mode(&mut self, ctx: &mut Ctx, mode: RecoveryMode, by: Pnn) {
        if mode == RecoveryMode::Active {
            self.mode_by = by;
            if by != ctx.me.pnn {
                // A follower leaves recovery mode by itself after RecoverTimeout.
                ctx.timers.set(
                    Timer::FollowerRecovery,
                    ctx.now + ctx.tunables.recover_timeout,
                );
            }
        } else {
            ctx.timers.stop(Timer::FollowerRecovery);
        }
        self.mode = mode;
        ctx.view.recovery_mode = mode;
    }

    pub fn on_start(
        &mut self,
        ctx: &mut Ctx,
        recmaster: Pnn,
        from: Pnn,
        generation: Generation,
        members: NodeSet,
    ) {
        if from != recmaster {
            log::debug!("ignoring recovery start from {from}, not our recovery master");
            return;
        }
        // From the acknowledgement on, only the new members' leases are renewed by us.
        self.members = members;
        self.set_mode(ctx, RecoveryMode::Active, from);
        ctx.notify(Notification::RecoveryStarted { generation });
        ctx.send_in(from, Message::RecoveryAck, generation);
    }

    pub fn on_ack(&mut self, ctx: &mut Ctx, from: Pnn, generation: Generation) {
        if let Some(r) = self.running.as_mut() {
            if r.generation == generation && r.members.contains(from) {
                r.acks.insert(from);
            }
        }
        self.check_acks(ctx);
    }

    pub fn on_commit(
        &mut self,
        ctx: &mut Ctx,
        recmaster: Pnn,
        from: Pnn,
        generation: Generation,
        vnnmap: NodeSet,
    ) {
        if from != recmaster {
            return;
        }
        // Generations only grow.
        let before = ctx.generation;
        ctx.generation = ctx.generation.max(generation);
        self.vnnmap = vnnmap;
        self.members = vnnmap;
        self.set_mode(ctx, RecoveryMode::Normal, from);
        if ctx.generation != before {
            ctx.notify(Notification::GenerationChanged {
                generation: ctx.generation,
                vnnmap,
            });
        }
    }

    /// A follower leaves recovery mode by itself when the master that started the recovery is
    /// no longer its master, or after RecoverTimeout (`timed_out`).
    pub fn check_follower(&mut self, ctx: &mut Ctx, recmaster: Pnn, timed_out: bool) {
        let follower = self.mode == RecoveryMode::Active && self.running.is_none();
        if follower && (recmaster != self.mode_by || timed_out) {
            log::info!(
                "node {}: leaving recovery mode, its recovery master is gone",
                ctx.me.pnn
            );
            self.set_mode(ctx, RecoveryMode::Normal, Pnn::NONE);
        }
    }

    /// The recovery this node runs, if any.
    pub fn running(&self) -> Option<&Recovery> {
        self.running.as_ref()
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
