//! Non-deterministic allocation (`IPAllocAlgorithm=1`, CTDB's `ipalloc_nondeterministic.c`).
//!
//! "Non-deterministic" because the result depends on the current holders (history), not
//! because it is random: it is a pure function of its input.

use super::common::{Work, NONE};
use super::{Event, Options};
use crate::types::Pnn;

pub(super) fn run(w: &mut Work<'_>, options: &Options) {
    let num_ips = w.len();
    w.unassign_unsuitable();
    w.basic_allocate_unassigned();
    if options.no_ip_failback {
        return;
    }
    basic_failback(w, num_ips);
}

/// While some address's eligible nodes differ in load by more than one, re-places the first
/// address held by the most loaded of them, restarting the scan each time; at most
/// `num_ips + 5` times (CTDB's retry budget).
fn basic_failback(w: &mut Work<'_>, num_ips: usize) {
    let budget = num_ips + 5;
    let mut retries = 0;
    'scan: while retries < budget {
        for t in 0..w.len() {
            if w.owner[t] == NONE {
                continue;
            }
            // Most and least loaded nodes that could take t; the lowest PNN wins ties.
            let mut max: Option<(u32, usize)> = None;
            let mut min: Option<(u32, usize)> = None;
            for node in 0..w.n {
                if !w.can_takeover(node, t) {
                    continue;
                }
                let c = w.coverage[node];
                if max.is_none_or(|(m, _)| c > m) {
                    max = Some((c, node));
                }
                if min.is_none_or(|(m, _)| c < m) {
                    min = Some((c, node));
                }
            }
            let (Some((max_num, max_node)), Some((min_num, _))) = (max, min) else {
                continue;
            };
            if max_num > min_num + 1 {
                // CTDB re-places the first address max_node holds, not necessarily t; it may
                // land on max_node again if that is least loaded among its eligible nodes.
                let Some(tt) = (0..w.len()).find(|&x| w.owner[x] == max_node as u32) else {
                    continue; // unreachable: max_node holds max_num > 1 addresses
                };
                if let Some(node) = w.find_takeover_node(tt) {
                    if node != max_node {
                        w.events.push(Event::Moved {
                            addr: w.addr(tt),
                            from: Pnn(max_node as u32),
                            to: Pnn(node as u32),
                            imbalance: None,
                        });
                    }
                    w.set_owner(tt, node as u32);
                }
                retries += 1;
                continue 'scan;
            }
        }
        break;
    }
}
