//! Recovery-master election and the cluster lock (seed 000, seed 003).
//!
//! Every node knows each connected peer's start stamp and capability (from its Hello) and the
//! recmaster it follows (from its keepalives). Candidates are connected, recmaster-capable
//! nodes that are neither banned nor stopped; the best is the longest running (earliest start
//! stamp), then the biggest PNN (CTDB's rule). A node follows the best candidate that claims
//! the role (a keepalive naming itself); when none does, an election round of ElectionTimeout
//! lets views settle, after which the best candidate claims if it may lead (quorum). The
//! recmaster acts only while it also holds the cluster lock.

use super::ctx::Ctx;
use super::io::{Action, LockResult, Notification};
use super::members::Members;
use super::timer::Timer;
use crate::time::Instant;
use crate::types::Pnn;

/// Lock failures (not contention) within RecoveryGracePeriod after which a node bans itself.
const LOCK_FAILURES_BEFORE_BAN: u32 = 3;

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

/// What a lock answer changed, for the layers that follow from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct LockOutcome {
    /// This node now acts as recovery master: its monitor loop starts.
    pub acquired: bool,
    /// It gave up the role (recovery aborted).
    pub stepped_down: bool,
    /// Too many failures: it must ban itself.
    pub ban: bool,
}

/// The election layer.
#[derive(Debug)]
pub(super) struct Election {
    recmaster: Pnn,
    lock: LockState,
    /// Lock failures (Failed or Lost) since `failures_since`.
    failures: u32,
    failures_since: Instant,
}

impl Election {
    pub fn new(ctx: &mut Ctx) -> Self {
        ctx.timers
            .set(Timer::Election, ctx.now + ctx.tunables.election_timeout);
        Election {
            recmaster: Pnn::NONE,
            lock: LockState::Free,
            failures: 0,
            failures_since: ctx.now,
        }
    }

    /// The recovery master this node follows.
    pub fn recmaster(&self) -> Pnn {
        self.recmaster
    }

    /// Whether this node holds the cluster lock.
    pub fn holds_lock(&self) -> bool {
        self.lock == LockState::Held
    }

    fn set_recmaster(&mut self, ctx: &mut Ctx, r: Pnn) {
        if self.recmaster == r {
            return;
        }
        self.recmaster = r;
        ctx.view.recmaster = r;
        ctx.notify(Notification::RecmasterChanged { recmaster: r });
    }

    /// CTDB's order: earlier start wins, then the bigger PNN.
    fn better(ctx: &Ctx, members: &Members, a: Pnn, b: Pnn) -> bool {
        let (sa, sb) = (members.start_stamp(ctx, a), members.start_stamp(ctx, b));
        sa < sb || (sa == sb && a.0 > b.0)
    }

    fn best_where(ctx: &Ctx, members: &Members, mut keep: impl FnMut(Pnn) -> bool) -> Option<Pnn> {
        let mut best: Option<Pnn> = None;
        for p in members.pnns() {
            if keep(p) && best.is_none_or(|b| Self::better(ctx, members, p, b)) {
                best = Some(p);
            }
        }
        best
    }

    /// The candidate that should win, in this node's view.
    pub fn best_candidate(ctx: &Ctx, members: &Members) -> Option<Pnn> {
        Self::best_where(ctx, members, |p| members.is_candidate(ctx, p))
    }

    /// The best connected candidate that claims the role.
    fn best_claimant(ctx: &Ctx, members: &Members) -> Option<Pnn> {
        Self::best_where(ctx, members, |p| {
            p != ctx.me.pnn && members.is_candidate(ctx, p) && members.reported_recmaster(p) == p
        })
    }

    /// Brings the recmaster in line with what changed. `true` if this node stepped down.
    pub fn reconcile(&mut self, ctx: &mut Ctx, members: &Members) -> bool {
        let mut stepped_down = false;
        let me = ctx.me.pnn;
        if self.recmaster == me {
            if !members.is_candidate(ctx, me) || !members.may_lead(ctx) {
                stepped_down |= self.step_down(
                    ctx,
                    "no longer eligible (banned, stopped, or without quorum)",
                );
            }
        } else if self.recmaster != Pnn::NONE {
            let r = self.recmaster;
            if !(members.is_candidate(ctx, r) && members.reported_recmaster(r) == r) {
                log::info!("node {me}: recovery master {r} is gone");
                self.set_recmaster(ctx, Pnn::NONE);
            }
        }
        if let Some(c) = Self::best_claimant(ctx, members) {
            let current = self.recmaster;
            if current == Pnn::NONE || (current != c && Self::better(ctx, members, c, current)) {
                if current == me {
                    stepped_down |= self.step_down(ctx, "a better recovery master leads");
                }
                self.set_recmaster(ctx, c);
            }
        }
        if self.recmaster == Pnn::NONE {
            if ctx.timers.get(Timer::Election).is_none() {
                ctx.timers
                    .set(Timer::Election, ctx.now + ctx.tunables.election_timeout);
            }
            if members.all_connected() {
                // Every node's view is here: a short settle is enough.
                ctx.timers
                    .set_earliest(Timer::Election, ctx.now + Self::settle(ctx));
            }
        } else {
            ctx.timers.stop(Timer::Election);
        }
        stepped_down
    }

    /// How long views settle before a claim when there is nothing more to wait for (every node
    /// connected, or the recovery master certainly dead): not a whole ElectionTimeout.
    fn settle(ctx: &Ctx) -> core::time::Duration {
        ctx.tunables
            .election_timeout
            .min(ctx.tunables.keepalive_interval / 4)
    }

    /// The recovery master died for certain (EOF, goodbye, fenced): the round that follows
    /// need not wait a full ElectionTimeout.
    pub fn recmaster_died(&mut self, ctx: &mut Ctx, pnn: Pnn) {
        if pnn == self.recmaster {
            ctx.timers.set(Timer::Election, ctx.now + Self::settle(ctx));
        }
    }

    /// The election round ended: claim the role if this node should win and may lead.
    pub fn round_ended(&mut self, ctx: &mut Ctx, members: &Members) {
        // Look again after another round unless we win now.
        ctx.timers
            .set(Timer::Election, ctx.now + ctx.tunables.election_timeout);
        let me = ctx.me.pnn;
        if self.recmaster == Pnn::NONE
            && Self::best_candidate(ctx, members) == Some(me)
            && members.may_lead(ctx)
        {
            log::info!("node {me} wins the election");
            ctx.stats.elections_won += 1;
            self.set_recmaster(ctx, me);
            ctx.timers.stop(Timer::Election);
            self.request_lock(ctx);
        }
    }

    /// Asks for the contended lock again.
    pub fn retry_lock(&mut self, ctx: &mut Ctx) {
        if self.recmaster == ctx.me.pnn && self.lock == LockState::Free {
            self.request_lock(ctx);
        }
    }

    fn request_lock(&mut self, ctx: &mut Ctx) {
        self.lock = LockState::Pending;
        ctx.act(Action::AcquireLock);
    }

    fn set_lock(&mut self, ctx: &mut Ctx, lock: LockState) {
        let was = self.lock == LockState::Held;
        self.lock = lock;
        let held = lock == LockState::Held;
        if held != was {
            ctx.notify(Notification::Lock { held });
        }
    }

    pub fn on_lock(&mut self, ctx: &mut Ctx, result: LockResult) -> LockOutcome {
        let mut out = LockOutcome::default();
        let me = ctx.me.pnn;
        match (self.lock, result) {
            (LockState::Pending, LockResult::Granted) if self.recmaster == me => {
                self.set_lock(ctx, LockState::Held);
                out.acquired = true;
            }
            (LockState::Held, LockResult::Granted) => {}
            (_, LockResult::Granted) => {
                // An answer we no longer want (we stepped down meanwhile).
                self.set_lock(ctx, LockState::Free);
                ctx.act(Action::ReleaseLock);
            }
            (LockState::Pending, LockResult::Contended) => {
                // Someone else (an old recmaster) still holds it: not our fault, try again.
                log::info!("node {me}: cluster lock is held elsewhere, retrying");
                self.lock = LockState::Free;
                ctx.timers
                    .set(Timer::LockRetry, ctx.now + ctx.tunables.recover_interval);
            }
            (LockState::Pending | LockState::Held, LockResult::Failed | LockResult::Lost) => {
                self.set_lock(ctx, LockState::Free);
                if ctx.now - self.failures_since > ctx.tunables.recovery_grace_period {
                    self.failures = 0;
                    self.failures_since = ctx.now;
                }
                self.failures += 1;
                log::warn!(
                    "node {me}: cluster lock {result:?} ({} within the grace period)",
                    self.failures
                );
                out.stepped_down = self.step_down(ctx, "lost or could not take the cluster lock");
                if self.failures >= LOCK_FAILURES_BEFORE_BAN && ctx.tunables.enable_bans {
                    self.failures = 0;
                    out.ban = true;
                }
            }
            // Stale answers to requests we no longer have.
            _ => {}
        }
        out
    }

    /// Gives up the recmaster role: lock released, a new election follows. `true` if this node
    /// was recmaster (the caller aborts its recovery).
    pub fn step_down(&mut self, ctx: &mut Ctx, reason: &str) -> bool {
        if self.recmaster != ctx.me.pnn {
            return false;
        }
        log::info!(
            "node {} steps down as recovery master: {reason}",
            ctx.me.pnn
        );
        if matches!(self.lock, LockState::Held | LockState::Pending) {
            ctx.act(Action::ReleaseLock);
        }
        self.set_lock(ctx, LockState::Free);
        ctx.timers.stop(Timer::LockRetry);
        self.set_recmaster(ctx, Pnn::NONE);
        ctx.timers
            .set(Timer::Election, ctx.now + ctx.tunables.election_timeout);
        true
    }
}
