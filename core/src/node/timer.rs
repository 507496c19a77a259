//! The node's deadlines, one slot per kind (quinn-proto's `TimerTable`): a fixed array, no
//! allocation, and one place that knows when the node next needs to run.

use crate::time::Instant;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// Our next keepalive tick.
    Keepalive,
    /// The earliest instant a connected peer could be dead of silence.
    Silence,
    /// The earliest connect timeout or reconnect among the peers (their own deadlines stay in
    /// the transport's peer table).
    Connect,
    /// The earliest pending incoming connection that must have said Hello by then.
    PendingHello,
    /// The rate-limited refusal log's window ends.
    RefusalLog,
    /// No recovery master is agreed: when to claim, or look again.
    Election,
    /// Ask for the contended cluster lock again.
    LockRetry,
    /// The recovery master's monitor loop.
    Monitor,
    /// A recovery this node runs gives up waiting for acknowledgements.
    RecoveryRun,
    /// A follower in recovery mode gives up on its recovery master.
    FollowerRecovery,
    /// This node's ban ends.
    Ban,
    /// The hosting lease may have run out.
    Lease,
    /// Renew the kernel lifetime of the hosted addresses.
    Renew,
    /// The takeover run under way has something to look at (a lease wait over, its deadline).
    Takeover,
}

impl Timer {
    /// Every kind, in the order expired timers are handled.
    pub const ALL: [Timer; 14] = [
        Timer::Keepalive,
        Timer::Silence,
        Timer::Connect,
        Timer::PendingHello,
        Timer::RefusalLog,
        Timer::Ban,
        Timer::Election,
        Timer::LockRetry,
        Timer::RecoveryRun,
        Timer::Monitor,
        Timer::FollowerRecovery,
        Timer::Lease,
        Timer::Renew,
        Timer::Takeover,
    ];
    const COUNT: usize = Timer::ALL.len();
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TimerTable {
    at: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms `timer` for `at` (replacing any earlier setting).
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    /// Arms `timer` for `at` unless it is already armed earlier.
    pub fn set_earliest(&mut self, timer: Timer, at: Instant) {
        let slot = &mut self.at[timer as usize];
        *slot = Some(slot.map_or(at, |t| t.min(at)));
    }

    /// Disarms `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    /// When `timer` fires, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// Whether `timer` is armed and due at `now`.
    pub fn is_due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|t| now >= t)
    }

    /// The first armed timer that is due at `now`, in [`Timer::ALL`] order, with the instant
    /// it was due; it is disarmed.
    pub fn take_due(&mut self, now: Instant) -> Option<(Timer, Instant)> {
        let t = Timer::ALL.into_iter().find(|&t| self.is_due(t, now))?;
        let at = self.get(t)?;
        self.stop(t);
        Some((t, at))
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Instant {
        Instant::from_nanos(n)
    }

    #[test]
    fn earliest_and_due_in_order() {
        let mut tt = TimerTable::default();
        assert_eq!(tt.next(), None);
        tt.set(Timer::Monitor, t(50));
        tt.set(Timer::Keepalive, t(70));
        tt.set_earliest(Timer::Keepalive, t(90));
        assert_eq!(tt.get(Timer::Keepalive), Some(t(70)));
        tt.set_earliest(Timer::Keepalive, t(60));
        assert_eq!(tt.next(), Some(t(50)));
        assert_eq!(tt.take_due(t(40)), None);
        // Both due: Keepalive comes first in the handling order.
        assert_eq!(tt.take_due(t(80)), Some((Timer::Keepalive, t(60))));
        assert_eq!(tt.take_due(t(80)), Some((Timer::Monitor, t(50))));
        assert_eq!(tt.take_due(t(80)), None);
        assert_eq!(tt.next(), None);
    }
}
