//! A node without quorum hosts nothing after its release deadline.
//!
//! "Without quorum" is the ground truth, not the node's belief: a running daemon that cannot
//! exchange segments both ways with enough running peers to make a majority of the cluster.
//! From the instant it is so cut off (or is thawed or started while cut off), it has
//! [`super::Bounds::release`] to notice and release its addresses. A frozen or dead daemon owes
//! nothing: its addresses lapse by themselves at the end of their lease.

use super::{Invariant, Snapshot};
use crate::sim::trace::{Dur, Secs};
use crate::time::Instant;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct ReleaseWithoutQuorum {
    /// Per node: since when its running daemon has been cut off from a majority.
    cut_since: Vec<Option<(u64, Instant)>>,
}

impl ReleaseWithoutQuorum {
    /// For `n` nodes.
    pub fn new(n: usize) -> Self {
        ReleaseWithoutQuorum {
            cut_since: alloc::vec![None; n],
        }
    }
}

impl Invariant for ReleaseWithoutQuorum {
    fn name(&self) -> &'static str {
        "release-without-quorum"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        for (i, o) in s.nodes.iter().enumerate() {
            if !o.active() || s.reach_quorum[i] {
                self.cut_since[i] = None;
                continue;
            }
            let since = match self.cut_since[i] {
                Some((life, t)) if life == o.life => t,
                _ => {
                    self.cut_since[i] = Some((o.life, s.now));
                    s.now
                }
            };
            let deadline = since + s.bounds.release;
            if s.now >= deadline && s.hosting.hosts_any(i) {
                let mut ips = String::new();
                for (ip, _) in s.hosting.hosted_by(i) {
                    let _ = write!(ips, " {ip}");
                }
                return Err(format!(
                    "n{i} has been cut off from a majority since {}s (it believes quorate={}) and \
                     still hosts{ips} at {}s, past its release deadline {}s (release bound {} = \
                     max(detect {}, ip_lease {}))",
                    Secs(since),
                    o.quorate,
                    Secs(s.now),
                    Secs(deadline),
                    Dur(s.bounds.release),
                    Dur(s.bounds.detect),
                    Dur(s.bounds.ip_lease)
                ));
            }
        }
        Ok(())
    }
}
