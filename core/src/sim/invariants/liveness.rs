//! Liveness: once the faults stop, the cluster heals and agrees within bounds.
//!
//! From the end of the faults, every running daemon must be connected to every other (in every
//! node's own view) within [`Bounds::reconnect`], and the running daemons must form a
//! majority; from the moment they are all connected, within [`Bounds::converge`], the active
//! ones (not banned or stopped) agree on the recovery master and the generation and, when the
//! node runs elections, that master is one of them and acts (holds the lock) and every active
//! node's vnnmap holds exactly the active nodes; when it runs takeovers, every public address
//! is hosted by exactly one running node that may host. After
//! that, all of it must keep holding: nothing fails any more, so nothing should change.

use super::{names, Bounds, NodeObs};
use crate::sim::hosting::Hosting;
use crate::sim::trace::{Dur, Secs};
use crate::sim::Capabilities;
use crate::time::Instant;
use crate::types::{NodeFlags, NodeSet, Pnn};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// One node's view, for the liveness probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Its accessors.
    pub obs: NodeObs,
    /// `connected[j]`: it sees node j connected (its own entry is true).
    pub connected: Vec<bool>,
}

/// The liveness checker of one run.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// When the faults stopped.
    pub from: Instant,
    caps: Capabilities,
    connected_since: Option<Instant>,
    converged_at: Option<Instant>,
}

impl Liveness {
    /// Checks from `from` on, for a node with `caps`.
    pub fn new(from: Instant, caps: Capabilities) -> Self {
        Liveness {
            from,
            caps,
            connected_since: None,
            converged_at: None,
        }
    }

    /// When every running node was first seen connected to every other, after the faults.
    pub fn connected_since(&self) -> Option<Instant> {
        self.connected_since
    }

    /// When agreement was first seen, after the faults.
    pub fn converged_at(&self) -> Option<Instant> {
        self.converged_at
    }

    /// One probe at `now`.
    pub fn probe(
        &mut self,
        now: Instant,
        views: &[View],
        hosting: &Hosting,
        bounds: &Bounds,
    ) -> Result<(), String> {
        if now < self.from {
            return Ok(());
        }
        let n = views.len();
        let up: Vec<usize> = (0..n).filter(|&i| views[i].obs.active()).collect();
        let mut missing = None;
        'outer: for &a in &up {
            for &b in &up {
                if a != b && !views[a].connected[b] {
                    missing = Some((a, b));
                    break 'outer;
                }
            }
        }
        let majority = up.len() * 2 > n;
        if missing.is_none() && majority {
            self.connected_since.get_or_insert(now);
        } else {
            self.connected_since = None;
            self.converged_at = None;
        }
        let deadline = self.from + bounds.reconnect;
        if now >= deadline && self.connected_since.is_none() {
            let why = match missing {
                Some((a, b)) => format!("n{a} does not see n{b} connected"),
                None => format!("only {} of {n} daemons run ({})", up.len(), names(up)),
            };
            return Err(format!(
                "faults stopped at {}s; at {}s, past the reconnect bound {} ({}s), {why}",
                Secs(self.from),
                Secs(now),
                Dur(bounds.reconnect),
                Secs(deadline)
            ));
        }
        let Some(t0) = self.connected_since else {
            return Ok(());
        };
        match self.agreement(views, &up, hosting) {
            Ok(()) => {
                self.converged_at.get_or_insert(now);
                Ok(())
            }
            Err(e) if now >= t0 + bounds.converge => Err(format!(
                "all running nodes connected since {}s, but at {}s, past the convergence bound {} \
                 ({}s): {e}",
                Secs(t0),
                Secs(now),
                Dur(bounds.converge),
                Secs(t0 + bounds.converge)
            )),
            Err(_) => {
                self.converged_at = None;
                Ok(())
            }
        }
    }

    fn agreement(&self, views: &[View], up: &[usize], hosting: &Hosting) -> Result<(), String> {
        let inactive = NodeFlags::BANNED.union(NodeFlags::STOPPED);
        let active: Vec<usize> = up
            .iter()
            .copied()
            .filter(|&i| !views[i].obs.flags.intersects(inactive))
            .collect();
        let table = || {
            let mut s = String::new();
            for &i in up {
                let o = &views[i].obs;
                let _ = write!(
                    s,
                    " n{i}:recmaster={},gen={},acting={},flags={};",
                    o.recmaster, o.generation.0, o.acting, o.flags
                );
            }
            s
        };
        let Some(&first) = active.first() else {
            return Err(format!("no active node:{}", table()));
        };
        let (rm, gen) = (views[first].obs.recmaster, views[first].obs.generation);
        if active
            .iter()
            .any(|&i| views[i].obs.recmaster != rm || views[i].obs.generation != gen)
        {
            return Err(format!(
                "the nodes disagree on recmaster or generation:{}",
                table()
            ));
        }
        if self.caps.election {
            let ok = rm != Pnn::NONE && up.contains(&rm.index()) && views[rm.index()].obs.acting;
            if !ok {
                return Err(format!(
                    "no acting recovery master (all follow {rm}):{}",
                    table()
                ));
            }
            // CTDB's recovery master recovers until every active node has one vnnmap and it
            // holds exactly the active nodes (seed 000).
            let mut want = NodeSet::new();
            for &i in &active {
                want.insert(Pnn(i as u32));
            }
            if let Some(&i) = active.iter().find(|&&i| views[i].obs.vnnmap != want) {
                return Err(format!(
                    "n{i}'s vnnmap is {:?}, not the active nodes {want:?}:{}",
                    views[i].obs.vnnmap,
                    table()
                ));
            }
        }
        if self.caps.takeover {
            let barred = NodeFlags::BANNED
                .union(NodeFlags::STOPPED)
                .union(NodeFlags::DISABLED)
                .union(NodeFlags::UNHEALTHY);
            for &ip in &hosting.ips {
                let holders: Vec<usize> = hosting.holders(ip).collect();
                let ok = holders.len() == 1
                    && up.contains(&holders[0])
                    && !views[holders[0]].obs.flags.intersects(barred);
                if !ok {
                    return Err(format!(
                        "{ip} is hosted by [{}], not by exactly one eligible running node",
                        names(holders)
                    ));
                }
            }
        }
        Ok(())
    }
}
