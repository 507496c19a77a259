//! Recovery-master election, the cluster lock, and quorum transitions.
//!
//! Every node knows each connected peer's start stamp and capability (from its Hello) and the
//! recmaster it follows (from its keepalives). Candidates are connected, recmaster-capable
//! nodes that are neither banned nor stopped; the best is the longest running (earliest start
//! stamp), then the biggest PNN (CTDB's rule). A node follows the best candidate that claims
//! the role (a keepalive naming itself); when none does, an election round of ElectionTimeout
//! lets views settle, after which the best candidate claims if it may lead (quorum). The
//! recmaster acts only while it also holds the cluster lock.

use super::{Action, LockResult, LockState, Node};
use crate::types::{NodeFlags, Pnn};

/// Lock failures (not contention) within RecoveryGracePeriod after which a node bans itself.
const LOCK_FAILURES_BEFORE_BAN: u32 = 3;

impl Node {
    /// Whether `pnn` may be recovery master, as this node sees it.
    pub(super) fn is_candidate(&self, pnn: Pnn) -> bool {
        let barred = NodeFlags::BANNED.union(NodeFlags::STOPPED);
        if pnn == self.pnn {
            return self.recmaster_capable && !self.own_flags.intersects(barred);
        }
        self.peers
            .get(pnn.index())
            .is_some_and(|p| p.connected && p.capable && !p.flags.intersects(barred))
    }

    fn start_stamp_of(&self, pnn: Pnn) -> u64 {
        if pnn == self.pnn {
            self.start_stamp
        } else {
            self.peers[pnn.index()].start_stamp
        }
    }

    /// CTDB's order: earlier start wins, then the bigger PNN.
    pub(super) fn better(&self, a: Pnn, b: Pnn) -> bool {
        let (sa, sb) = (self.start_stamp_of(a), self.start_stamp_of(b));
        sa < sb || (sa == sb && a.0 > b.0)
    }

    fn best_where(&self, mut keep: impl FnMut(Pnn) -> bool) -> Option<Pnn> {
        let mut best: Option<Pnn> = None;
        for i in 0..self.peers.len() {
            let p = Pnn(i as u32);
            if keep(p) && best.is_none_or(|b| self.better(p, b)) {
                best = Some(p);
            }
        }
        best
    }

    /// The candidate that should win, in this node's view.
    pub fn best_candidate(&self) -> Option<Pnn> {
        self.best_where(|p| self.is_candidate(p))
    }

    /// The best connected candidate that claims the role.
    fn best_claimant(&self) -> Option<Pnn> {
        self.best_where(|p| {
            p != self.pnn && self.is_candidate(p) && self.peers[p.index()].reported_recmaster == p
        })
    }

    /// Brings quorum, recmaster and recovery mode in line with what changed. Runs after every
    /// event; cheap (a few passes over the node table) and allocation-free.
    pub(super) fn reconcile(&mut self) {
        self.reconcile_quorum();
        self.reconcile_recmaster();
        // Stepping down releases the lock, which ends a TwoNode node's quorum: see it now.
        self.reconcile_quorum();
        self.reconcile_follower_mode();
    }

    fn reconcile_quorum(&mut self) {
        let q = self.quorate();
        if q != self.was_quorate {
            self.was_quorate = q;
            if q {
                log::info!("node {}: quorate", self.pnn);
            } else {
                log::warn!("node {}: lost quorum, releasing public addresses", self.pnn);
                self.actions.push_back(Action::ReleaseAllIps);
            }
        }
    }

    fn reconcile_recmaster(&mut self) {
        let before = self.recmaster;
        if self.recmaster == self.pnn {
            if !self.is_candidate(self.pnn) || !self.may_lead() {
                self.step_down("no longer eligible (banned, stopped, or without quorum)");
            }
        } else if self.recmaster != Pnn::NONE {
            let r = self.recmaster;
            if !(self.is_candidate(r) && self.peers[r.index()].reported_recmaster == r) {
                log::info!("node {}: recovery master {r} is gone", self.pnn);
                self.recmaster = Pnn::NONE;
            }
        }
        if let Some(c) = self.best_claimant() {
            let current = self.recmaster;
            if current == Pnn::NONE || (current != c && self.better(c, current)) {
                if current == self.pnn {
                    self.step_down("a better recovery master leads");
                }
                self.recmaster = c;
            }
        }
        if self.recmaster == Pnn::NONE {
            if self.election_until.is_none() {
                self.election_until = Some(self.now + self.tunables.election_timeout);
            }
        } else {
            self.election_until = None;
        }
        if self.recmaster != before {
            log::info!(
                "node {}: recovery master {} -> {}",
                self.pnn,
                before,
                self.recmaster
            );
            self.push_view();
        }
    }

    pub(super) fn election_timers(&mut self) {
        if self.election_until.is_some_and(|t| self.now >= t) {
            // Look again after another round unless we win now.
            self.election_until = Some(self.now + self.tunables.election_timeout);
            if self.recmaster == Pnn::NONE
                && self.best_candidate() == Some(self.pnn)
                && self.may_lead()
            {
                self.win_election();
            }
        }
        if self.lock_retry_at.is_some_and(|t| self.now >= t) {
            self.lock_retry_at = None;
            if self.recmaster == self.pnn && self.lock == LockState::Free {
                self.request_lock();
            }
        }
    }

    fn win_election(&mut self) {
        log::info!("node {} wins the election", self.pnn);
        self.stats.elections_won += 1;
        self.recmaster = self.pnn;
        self.election_until = None;
        self.push_view();
        self.request_lock();
    }

    fn request_lock(&mut self) {
        self.lock = LockState::Pending;
        self.actions.push_back(Action::AcquireLock);
    }

    pub(super) fn on_lock(&mut self, result: LockResult) {
        match (self.lock, result) {
            (LockState::Pending, LockResult::Granted) if self.recmaster == self.pnn => {
                log::info!("node {} holds the cluster lock", self.pnn);
                self.lock = LockState::Held;
                self.need_recovery = true;
                self.monitor_at = Some(self.now);
            }
            (LockState::Held, LockResult::Granted) => {}
            (_, LockResult::Granted) => {
                // An answer we no longer want (we stepped down meanwhile).
                self.lock = LockState::Free;
                self.actions.push_back(Action::ReleaseLock);
            }
            (LockState::Pending, LockResult::Contended) => {
                // Someone else (an old recmaster) still holds it: not our fault, try again.
                log::info!(
                    "node {}: cluster lock is held elsewhere, retrying",
                    self.pnn
                );
                self.lock = LockState::Free;
                self.lock_retry_at = Some(self.now + self.tunables.recover_interval);
            }
            (LockState::Pending | LockState::Held, LockResult::Failed | LockResult::Lost) => {
                self.lock = LockState::Free;
                if self.now - self.lock_failures_since > self.tunables.recovery_grace_period {
                    self.lock_failures = 0;
                    self.lock_failures_since = self.now;
                }
                self.lock_failures += 1;
                log::warn!(
                    "node {}: cluster lock {:?} ({} within the grace period)",
                    self.pnn,
                    result,
                    self.lock_failures
                );
                self.step_down("lost or could not take the cluster lock");
                if self.lock_failures >= LOCK_FAILURES_BEFORE_BAN && self.tunables.enable_bans {
                    self.lock_failures = 0;
                    let before = self.own_flags;
                    self.ban(self.tunables.recovery_ban_period);
                    self.flags_changed(before);
                }
            }
            // Stale answers to requests we no longer have.
            _ => {}
        }
    }

    /// Gives up the recmaster role: lock released, recovery aborted, a new election follows.
    pub(super) fn step_down(&mut self, reason: &str) {
        if self.recmaster != self.pnn {
            return;
        }
        log::info!("node {} steps down as recovery master: {reason}", self.pnn);
        if matches!(self.lock, LockState::Held | LockState::Pending) {
            self.actions.push_back(Action::ReleaseLock);
        }
        self.lock = LockState::Free;
        self.lock_retry_at = None;
        self.monitor_at = None;
        self.abort_recovery();
        self.recmaster = Pnn::NONE;
        self.election_until = Some(self.now + self.tunables.election_timeout);
        self.push_view();
    }
}
