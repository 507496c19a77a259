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

/// Calls `f(i, j, deadline)` for every running node i that cannot hear a peer j it shows
/// connected (`deadline`: `max(H, since) + detect`), until `f` says stop. Plain loops: this runs at every step, and nobody is
/// silent most of the time.
fn each_owing(s: &Snapshot<'_>, mut f: impl FnMut(usize, usize, Instant) -> bool) {
    for (i, row) in s.unheard_since.iter().enumerate() {
        let o = &s.nodes[i];
        if !o.active() {
            continue;
        }
        for (j, h) in row.iter().enumerate() {
            let Some(h) = *h else { continue };
            if j != i
                && o.connected.contains(Pnn(j as u32))
                && !f(i, j, h.max(o.since) + s.bounds.detect)
            {
                return;
            }
        }
    }
}

impl Invariant for SilentPeerDisconnected {
    fn name(&self) -> &'static str {
        "silent-peer-disconnected"
    }

    fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        each_owing(s, |_, _, d| {
            next = Some(next.map_or(d, |n| n.min(d)));
            true
        });
        next
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let mut late = None;
        each_owing(s, |i, j, d| {
            if s.now >= d {
                late = Some((i, j, d));
            }
            late.is_none()
        });
        if let Some((i, j, deadline)) = late {
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
