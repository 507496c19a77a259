//! A node without quorum hosts nothing after its release deadline.
//!
//! "Without quorum" is the ground truth, not the node's belief, with the slack a node needs to
//! notice: a peer it lost (a cut path, a dead or frozen daemon) may still count as a vote for
//! up to [`super::Bounds::detect`], and a daemon that was just started or thawed may hold stale
//! views for as long. So a running daemon must host nothing from
//! `max(L, since) + detect` on, where `since` is when it last started or was thawed and `L`
//! is when the last vote it needs for a majority was lost (the k-th most recent loss, k being
//! how many lost peers it would need besides those it can still reach). A frozen or dead
//! daemon owes nothing: its addresses lapse by themselves at the end of their lease.

use super::{majority_lost_deadline, votes_text, Invariant, Snapshot};
use crate::sim::trace::{Dur, Secs};
use crate::time::Instant;
use alloc::format;
use alloc::string::String;
use core::fmt::Write;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReleaseWithoutQuorum;

impl Invariant for ReleaseWithoutQuorum {
    fn name(&self) -> &'static str {
        "release-without-quorum"
    }

    fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        (0..s.nodes.len())
            .filter(|&i| s.nodes[i].active() && s.hosting.hosts_any(i))
            .filter_map(|i| majority_lost_deadline(s, i))
            .min()
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, o) in s.nodes.iter().enumerate() {
            if !o.active() || !s.hosting.hosts_any(i) {
                continue;
            }
            let Some(deadline) = majority_lost_deadline(s, i) else {
                continue;
            };
            if s.now < deadline {
                continue;
            }
            let mut ips = String::new();
            for (ip, _) in s.hosting.hosted_by(i) {
                let _ = write!(ips, " {ip}");
            }
            let votes = votes_text(s, i);
            return Err(format!(
                "n{i} cannot count on a majority (votes:{votes}; running since {}s, believes \
                 quorate={}) and still hosts{ips} at {}s, past its release deadline {}s \
                 (detect bound {})",
                Secs(o.since).to_string_trimmed(),
                o.quorate,
                Secs(s.now).to_string_trimmed(),
                Secs(deadline).to_string_trimmed(),
                Dur(s.bounds.detect)
            ));
        }
        Ok(())
    }
}
