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

use super::{Invariant, Snapshot};
use crate::sim::trace::{Dur, Secs};
use crate::time::Instant;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReleaseWithoutQuorum;

/// When node `i` must host nothing any more (if it cannot count on a majority), given the
/// ground truth in `s`; `None` while it may still count on one.
pub fn release_deadline(s: &Snapshot<'_>, i: usize) -> Option<Instant> {
    let n = s.nodes.len();
    let needed = n / 2; // others, besides itself, for a strict majority
    let mut reachable = 0;
    let mut lost: Vec<Instant> = Vec::new();
    for j in 0..n {
        if j == i {
            continue;
        }
        match s.votes_lost[i][j] {
            None => reachable += 1,
            Some(t) => lost.push(t),
        }
    }
    if reachable >= needed {
        return None;
    }
    let k = needed - reachable;
    // Most recent first: the k-th is the last loss that still leaves a majority possible.
    lost.sort_unstable_by(|a, b| b.cmp(a));
    let last = *lost.get(k - 1)?;
    Some(last.max(s.nodes[i].since) + s.bounds.detect)
}

impl Invariant for ReleaseWithoutQuorum {
    fn name(&self) -> &'static str {
        "release-without-quorum"
    }

    fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        (0..s.nodes.len())
            .filter(|&i| s.nodes[i].active() && s.hosting.hosts_any(i))
            .filter_map(|i| release_deadline(s, i))
            .min()
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, o) in s.nodes.iter().enumerate() {
            if !o.active() || !s.hosting.hosts_any(i) {
                continue;
            }
            let Some(deadline) = release_deadline(s, i) else {
                continue;
            };
            if s.now < deadline {
                continue;
            }
            let mut ips = String::new();
            for (ip, _) in s.hosting.hosted_by(i) {
                let _ = write!(ips, " {ip}");
            }
            let mut votes = String::new();
            for (j, l) in s.votes_lost[i].iter().enumerate() {
                if j != i {
                    let _ = match l {
                        None => write!(votes, " n{j}:reachable"),
                        Some(t) => write!(votes, " n{j}:lost@{}", Secs(*t).to_string_trimmed()),
                    };
                }
            }
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
