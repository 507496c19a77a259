//! A node shows a peer it cannot hear DISCONNECTED within the detection bound.
//!
//! Sources: seed 001, CTDB's dead-node detection (every KeepaliveInterval a peer from which no
//! frame arrived gets a strike; KeepaliveLimit strikes in a row and `ctdb_node_dead` marks it
//! DISCONNECTED and tears its connections down; EOF or a reset kills it at once), which the
//! design card keeps ("a peer with no frame received for KeepaliveLimit consecutive
//! KeepaliveIntervals is dead"); seed 003, corosync's totem, where a processor that
//! receives no token within `token` starts the membership protocol that drops the silent. Everything above the
//! transport counts on it: votes, candidates and recovery members are the connected peers.
//!
//! Ground truth ([`super::Snapshot::unheard_since`]): node i cannot hear node j while j's
//! daemon does not run (frozen, dead, host down) or the path j -> i is cut. A one-way cut
//! i -> j leaves i hearing j, so i owes nothing there (j owes it: it cannot hear i). From
//! `max(H, since) + detect` on, `H` being when i stopped hearing j and `since` when i last
//! started or was thawed (a thawed node needs as long again to count its strikes), a running
//! node must not show j connected. `detect` covers the frames j sent before it fell silent
//! and still in flight (`max_delay`), the strikes (`(KeepaliveLimit + 1) x
//! KeepaliveInterval`: a frame just after a tick clears the next one), and both nodes' slowness
//! (`2 x max_slow`). A frozen or dead node owes nothing; a node that hears the peer again (a
//! heal, a thaw, a restart) starts afresh. Showing a peer it can hear DISCONNECTED is fine:
//! that is liveness, checked once the faults stop.

use super::{Invariant, NodeState, Snapshot};
use crate::sim::trace::{Dur, Secs};
use crate::time::Instant;
use crate::types::Pnn;
use alloc::format;
use alloc::string::String;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct SilentPeerDisconnected;

/// When node `i` must show `j` DISCONNECTED, if it cannot hear it; `None` while it can.
pub fn disconnect_deadline(s: &Snapshot<'_>, i: usize, j: usize) -> Option<Instant> {
    let since = s.unheard_since[i][j]?;
    Some(since.max(s.nodes[i].since) + s.bounds.detect)
}

/// The (node, peer) pairs to look at: running nodes and the peers they show connected.
fn shown_connected<'a>(s: &'a Snapshot<'_>) -> impl Iterator<Item = (usize, usize)> + 'a {
    let n = s.nodes.len();
    (0..n)
        .filter(|&i| s.nodes[i].active() && !s.nodes[i].connected.is_empty())
        .flat_map(move |i| {
            (0..n).filter_map(move |j| {
                (j != i && s.nodes[i].connected.contains(Pnn(j as u32))).then_some((i, j))
            })
        })
}

impl Invariant for SilentPeerDisconnected {
    fn name(&self) -> &'static str {
        "silent-peer-disconnected"
    }

    fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        shown_connected(s)
            .filter_map(|(i, j)| disconnect_deadline(s, i, j))
            .min()
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, j) in shown_connected(s) {
            let Some(deadline) = disconnect_deadline(s, i, j) else {
                continue;
            };
            if s.now < deadline {
                continue;
            }
            let peer = &s.nodes[j];
            let why = if peer.state == NodeState::Running {
                format!("the path n{j}->n{i} is cut")
            } else {
                format!(
                    "n{j} is {:?} since {}s",
                    peer.state,
                    Secs(peer.since).to_string_trimmed()
                )
            };
            let heard = s.unheard_since[i][j].unwrap_or(deadline);
            return Err(format!(
                "n{i} still shows n{j} connected at {}s but cannot hear it since {}s ({why}); \
                 n{i} runs since {}s; deadline {}s (detect bound {})",
                Secs(s.now).to_string_trimmed(),
                Secs(heard).to_string_trimmed(),
                Secs(s.nodes[i].since).to_string_trimmed(),
                Secs(deadline).to_string_trimmed(),
                Dur(s.bounds.detect)
            ));
        }
        Ok(())
    }
}
