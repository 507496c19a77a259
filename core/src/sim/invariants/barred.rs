//! A node obeys its own administrative flags at once: banned, stopped or disabled, it hosts
//! no public address; banned or stopped, it does not lead (no recovery master claim, no
//! cluster lock, not acting).
//!
//! Sources: seed 001, CTDB's node flags (a DISABLED node stays in the cluster but hosts no
//! public address; a STOPPED node is inactive; a BANNED one is kept out for the ban period);
//! seed 000, CTDB's recovery daemon (banned or stopped nodes are no candidates, and the
//! recovery master steps down when it no longer is one); the design card's election ("the
//! candidates are nodes that are ... not banned, not stopped"). The node releases and steps
//! down in the step that sets the flag (`Action::ReleaseAllIps`), so there is no grace period.
//! A frozen node cannot change its flags; a dead one has none.

use super::{Invariant, Snapshot};
use crate::types::{NodeFlags, Pnn};
use alloc::format;
use alloc::string::String;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ObeysOwnFlags;

impl Invariant for ObeysOwnFlags {
    fn name(&self) -> &'static str {
        "own-flags-obeyed"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let no_hosting = NodeFlags::BANNED
            .union(NodeFlags::STOPPED)
            .union(NodeFlags::DISABLED);
        let no_leading = NodeFlags::BANNED.union(NodeFlags::STOPPED);
        for (i, o) in s.nodes.iter().enumerate() {
            if !o.active() || !o.flags.intersects(no_hosting) {
                continue;
            }
            if s.hosting.hosts_any(i) {
                let mut ips = String::new();
                for (ip, _) in s.hosting.hosted_by(i) {
                    ips += &format!(" {ip}");
                }
                return Err(format!("n{i} is {} and still hosts{ips}", o.flags));
            }
            let leads = o.recmaster == Pnn(i as u32) || o.holds_lock || o.acting;
            if o.flags.intersects(no_leading) && leads {
                return Err(format!(
                    "n{i} is {} and still leads (recmaster={}, holds lock={}, acting={})",
                    o.flags, o.recmaster, o.holds_lock, o.acting
                ));
            }
        }
        Ok(())
    }
}
