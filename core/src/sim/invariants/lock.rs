//! At most one node holds the cluster lock.
//!
//! Checked on beliefs, which is what matters (a node acts on `holds_lock()`): at most one
//! running node believes it holds the lock, and no node believes so while the lock service has
//! given the lock to another node (or another life of the same node). A belief that merely
//! outlives the lock by a step (the service broke it and the `Lost` is on its way, with nobody
//! else holding it) is tolerated. A frozen node's belief is not counted: it can do nothing with
//! it, and when thawed its lock client reports any lapse before anything else reaches it.

use super::{names, Invariant, Snapshot};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct LockExclusive;

impl Invariant for LockExclusive {
    fn name(&self) -> &'static str {
        "one-lock-holder"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let believes = |i: &usize| s.nodes[*i].active() && s.nodes[*i].holds_lock;
        // The common case, without allocating: nobody, or the service's holder.
        let mut count = 0;
        let mut fine = true;
        for i in (0..s.nodes.len()).filter(believes) {
            count += 1;
            let life = s.nodes[i].life;
            fine &= !s.lock.is_some_and(|h| h.node != i || h.incarnation != life);
        }
        if count == 0 || (count == 1 && fine) {
            return Ok(());
        }
        let believers: Vec<usize> = (0..s.nodes.len()).filter(believes).collect();
        let service = match s.lock {
            Some(h) => format!("n{} (life {})", h.node, h.incarnation),
            None => String::from("nobody"),
        };
        if believers.len() > 1 {
            return Err(format!(
                "{} all believe they hold the cluster lock; the lock service says {service}",
                names(believers)
            ));
        }
        if let Some(&b) = believers.first() {
            let life = s.nodes[b].life;
            if s.lock.is_some_and(|h| h.node != b || h.incarnation != life) {
                return Err(format!(
                    "n{b} (life {life}) believes it holds the cluster lock but the lock service \
                     says {service}"
                ));
            }
        }
        Ok(())
    }
}
