//! The acting recovery master holds the cluster lock.
//!
//! Sources: the design card ("the winner acts only while it holds the cluster lock"); seed 000,
//! CTDB's recovery daemon, whose recovery master checks that it still holds the recovery lock
//! before anything else and recovers when it does not; the style guide's list of simulator
//! invariants ("the leader holds the cluster lock, or its lease is provably unexpired").
//!
//! At every step, a running node that acts (`is_acting_recmaster()`) believes it holds the lock
//! (`holds_lock()`: what `pharos status` shows) and the lock service has not given the lock to
//! another node or another life of the same node. That the service holds nobody's lock is
//! tolerated for the step in which a broken or expired lock's `Lost` is on its way, as in
//! [`super::lock`]; a lease the client still believes in has not expired at the service (its
//! margin sees to it).

use super::{Invariant, Snapshot};
use alloc::format;
use alloc::string::String;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ActingHoldsLock;

impl Invariant for ActingHoldsLock {
    fn name(&self) -> &'static str {
        "acting-holds-lock"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, o) in s.nodes.iter().enumerate() {
            if !o.active() || !o.acting {
                continue;
            }
            if !o.holds_lock {
                return Err(format!(
                    "n{i} (life {}) acts as recovery master but does not believe it holds the \
                     cluster lock",
                    o.life
                ));
            }
            if let Some(h) = s.lock.filter(|h| h.node != i || h.incarnation != o.life) {
                return Err(format!(
                    "n{i} (life {}) acts as recovery master but the lock service gave the lock \
                     to n{} (life {})",
                    o.life, h.node, h.incarnation
                ));
            }
        }
        Ok(())
    }
}
