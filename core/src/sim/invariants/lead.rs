//! A node without quorum does not lead: past its deadline it neither claims the recovery
//! master role nor holds the cluster lock (and so neither acts nor starts a recovery).
//!
//! Sources: the design card ("a node in a minority partition never acts as recovery master");
//! seed 000, CTDB's recovery daemon, where everything from the election on ("down here only
//! run with recmaster": the recovery lock, recoveries, takeover runs) is the recovery master's
//! business; seed 003, votequorum, whose quorate state is a strict majority of the expected
//! votes. A minority node that keeps the role, or the lock, holds the majority back: its
//! claim competes in every election, and a lock it keeps makes every request of the
//! majority's candidate contended, so the majority goes without a recovery master.
//!
//! "Without quorum" is the ground truth, with the slack a node needs to notice, exactly as for
//! releasing addresses ([`super::majority_lost_deadline`]): a node steps down in the same step
//! in which it sees its quorum go. The checked beliefs are `recmaster() == itself`,
//! `holds_lock()` and `is_acting_recmaster()`, and the node's requests for the lock
//! (`Action::AcquireLock`: a claim made and withdrawn within one step never shows in the
//! accessors, but the lock service grants it all the same); a recovery starts only from the
//! monitor loop of a node that is recovery master and acts, so none starts either. A frozen or dead daemon owes
//! nothing: it can do nothing, and a frozen one gets its slack again from the thaw.
//!
//! Not modelled: votequorum's two_node (in a 2-node cluster one node alone may lead while it
//! holds the lock); the generated runs never set it.

use super::{majority_lost_deadline, votes_text, Invariant, NodeObs, Snapshot};
use crate::sim::trace::{Dur, Secs};
use crate::time::Instant;
use crate::types::Pnn;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct NoLeadWithoutQuorum {
    /// Per node: (life, lock requests) at the last step.
    last: Vec<(u64, u32)>,
}

impl NoLeadWithoutQuorum {
    /// For `n` nodes.
    pub fn new(n: usize) -> Self {
        NoLeadWithoutQuorum {
            last: alloc::vec![(0, 0); n],
        }
    }
}

/// Whether node `i`'s beliefs are those of a leader (or of a node on its way to be one).
fn leads(i: usize, o: &NodeObs) -> bool {
    o.recmaster == Pnn(i as u32) || o.holds_lock || o.acting
}

impl Invariant for NoLeadWithoutQuorum {
    fn name(&self) -> &'static str {
        "no-lead-without-quorum"
    }

    fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        (0..s.nodes.len())
            .filter(|&i| s.nodes[i].active() && leads(i, &s.nodes[i]))
            .filter_map(|i| majority_lost_deadline(s, i))
            .min()
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, o) in s.nodes.iter().enumerate() {
            let (life, requests) = self.last[i];
            self.last[i] = (o.life, o.lock_requests);
            // Asking for the lock is running for the role, even if it steps down in the same
            // step (a claim that never shows in the accessors still takes the lock).
            let asked = o.life == life && o.lock_requests > requests;
            if !o.active() || !(asked || leads(i, o)) {
                continue;
            }
            let Some(deadline) = majority_lost_deadline(s, i) else {
                continue;
            };
            if s.now < deadline {
                continue;
            }
            let votes = votes_text(s, i);
            return Err(format!(
                "n{i} cannot count on a majority (votes:{votes}; running since {}s, believes \
                 quorate={}) and still leads at {}s (recmaster={}, holds lock={}, acting={}, \
                 asked for the lock={asked}), past its deadline {}s (detect bound {})",
                Secs(o.since).to_string_trimmed(),
                o.quorate,
                Secs(s.now).to_string_trimmed(),
                o.recmaster,
                o.holds_lock,
                o.acting,
                Secs(deadline).to_string_trimmed(),
                Dur(s.bounds.detect)
            ));
        }
        Ok(())
    }
}
