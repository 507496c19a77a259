//! Invariants, one property per file, checked after every step of a run.
//!
//! Safety properties see a [`Snapshot`] of plain data (what each node's accessors say, the lock
//! service's holder, the hosting model, the ground-truth reachability), so they can be fed
//! fabricated states in tests. Liveness ([`liveness`]) is checked from the moment the faults
//! stop, against bounds derived from the tunables ([`Bounds`]).

pub mod acting_lock;
pub mod barred;
pub mod detection;
pub mod generation;
pub mod hosting;
pub mod lead;
pub mod liveness;
pub mod lock;
pub mod quorum;
pub mod recmaster;

use super::hosting::Hosting;
use super::lock::Holder;
use crate::time::Instant;
use crate::types::{Generation, NodeFlags, NodeSet, Pnn};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

pub use liveness::{Liveness, View};

/// What the simulator knows of a node's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// The daemon runs.
    Running,
    /// The daemon is stopped (SIGSTOP): it processes nothing.
    Frozen,
    /// No daemon (crashed, or stopped cleanly); the host is up.
    Down,
    /// The host is down.
    HostDown,
}

/// What one node says about itself (its accessors), as of the last step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeObs {
    /// Process state.
    pub state: NodeState,
    /// When that state began (start, freeze, thaw, death).
    pub since: Instant,
    /// Which life of the daemon (unique across the run; bumped at every start).
    pub life: u64,
    /// `Node::holds_lock`.
    pub holds_lock: bool,
    /// `Node::is_acting_recmaster`.
    pub acting: bool,
    /// `Node::recmaster`.
    pub recmaster: Pnn,
    /// `Node::generation`.
    pub generation: Generation,
    /// `Node::quorate`.
    pub quorate: bool,
    /// Its own administrative flags.
    pub flags: NodeFlags,
    /// How many times this life asked for the cluster lock (`Action::AcquireLock`).
    pub lock_requests: u32,
    /// The peers it shows connected (`flags_of(p)` without DISCONNECTED), itself excluded.
    pub connected: NodeSet,
    /// `Node::vnnmap`: the active nodes of its generation.
    pub vnnmap: NodeSet,
}

impl NodeObs {
    /// A node with no daemon.
    pub const DOWN: NodeObs = NodeObs {
        state: NodeState::Down,
        since: Instant::ZERO,
        life: 0,
        holds_lock: false,
        acting: false,
        recmaster: Pnn::NONE,
        generation: Generation(0),
        quorate: false,
        flags: NodeFlags::empty(),
        lock_requests: 0,
        connected: NodeSet::new(),
        vnnmap: NodeSet::new(),
    };

    /// Whether the daemon can act now (running, not frozen).
    pub fn active(&self) -> bool {
        self.state == NodeState::Running
    }
}

impl fmt::Display for NodeObs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} life={} recmaster={} gen={} vnnmap={:?} quorate={} lock={} acting={} flags={} \
             connected={:?}",
            self.state,
            self.life,
            self.recmaster,
            self.generation.0,
            self.vnnmap,
            self.quorate,
            self.holds_lock,
            self.acting,
            self.flags,
            self.connected
        )
    }
}

/// Everything a safety invariant may look at after a step.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Virtual time.
    pub now: Instant,
    /// Per node.
    pub nodes: &'a [NodeObs],
    /// The lock service's holder now.
    pub lock: Option<Holder>,
    /// Which host has which address.
    pub hosting: &'a Hosting,
    /// Ground truth: `votes_lost[i][j]` is `None` while node j's running daemon can exchange
    /// segments with node i both ways (a vote i may count), else since when it cannot.
    pub votes_lost: &'a [Vec<Option<Instant>>],
    /// Ground truth: `unheard_since[i][j]` is `None` while node j's daemon runs (not frozen)
    /// and the path j -> i is up (i can hear j), else the instant from which nothing more
    /// leaves j for i (what is under way arrives within `max_delay`): when j stopped or the
    /// path was cut, or, when the path heals while j is still silent, the end of the
    /// retransmission wait after which what the cut held back is sent on.
    pub unheard_since: &'a [Vec<Option<Instant>>],
    /// The bounds of this run.
    pub bounds: &'a Bounds,
}

/// A safety property.
pub trait Invariant {
    /// Short name, printed with violations.
    fn name(&self) -> &'static str;
    /// Checks the property after a step; `Err` explains the violation precisely.
    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String>;

    /// The next instant at which the property could break with nothing else happening (a
    /// deadline), so that the world checks exactly then.
    fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        let _ = s;
        None
    }
}

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which property.
    pub rule: &'static str,
    /// When.
    pub at: Instant,
    /// At which step of the run.
    pub step: u64,
    /// What exactly.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VIOLATION [{}] at {}s (step {}): {}",
            self.rule,
            super::trace::Secs(self.at),
            self.step,
            self.message
        )
    }
}

/// The safety invariants.
pub struct Checker {
    list: Vec<Box<dyn Invariant>>,
}

impl fmt::Debug for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|i| i.name()))
            .finish()
    }
}

impl Checker {
    /// Every safety invariant, for `n` nodes.
    pub fn safety(n: usize) -> Self {
        Checker {
            list: alloc::vec![
                Box::new(lock::LockExclusive) as Box<dyn Invariant>,
                Box::new(acting_lock::ActingHoldsLock),
                Box::new(recmaster::OneRecmasterPerGeneration::new(n)),
                Box::new(generation::GenerationsGrow::new(n)),
                Box::new(hosting::NoAddressTwice::default()),
                Box::new(quorum::ReleaseWithoutQuorum),
                Box::new(lead::NoLeadWithoutQuorum::new(n)),
                Box::new(detection::SilentPeerDisconnected),
                Box::new(barred::ObeysOwnFlags),
            ],
        }
    }

    /// Adds an invariant (tests may add their own).
    pub fn push(&mut self, inv: Box<dyn Invariant>) {
        self.list.push(inv);
    }

    /// The earliest deadline of any invariant after `s.now`.
    pub fn next_deadline(&self, s: &Snapshot<'_>) -> Option<Instant> {
        self.list
            .iter()
            .filter_map(|i| i.next_deadline(s))
            .filter(|&t| t > s.now)
            .min()
    }

    /// Checks every invariant; the first broken one wins.
    pub fn check(&mut self, s: &Snapshot<'_>) -> Result<(), (&'static str, String)> {
        for inv in self.list.iter_mut() {
            inv.check(s).map_err(|m| (inv.name(), m))?;
        }
        Ok(())
    }
}

/// Bounds derived from the tunables and the fault limits; see `docs/SIMULATION.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Worst one-way delay of a segment on the worst link faults set up.
    pub max_delay: Duration,
    /// Slowest node's processing delay.
    pub max_slow: Duration,
    /// How long after its addresses' daemon stopped renewing they lapse.
    pub ip_lease: Duration,
    /// A node notices that it lost a peer (it stops counting it) within this:
    /// `(KeepaliveLimit + 1) x KeepaliveInterval + max_delay + 2 x max_slow`. A running node
    /// that cannot count on a majority any more releases its addresses within it too.
    pub detect: Duration,
    /// After the faults stop, every running node is connected to every other within this:
    /// `detect + ConnectTimeout + ReconnectInterval + KeepaliveInterval + 4 x max_delay +
    /// 2 x max_slow`.
    pub reconnect: Duration,
    /// Once they are, they agree (recmaster, generation, addresses) within this; see
    /// [`Bounds::converge_formula`].
    pub converge: Duration,
}

/// What goes into [`Bounds::derive`].
#[derive(Clone, Copy, Debug)]
pub struct BoundInputs<'a> {
    /// The nodes' tunables.
    pub tunables: &'a crate::config::Tunables,
    /// Worst one-way delay.
    pub max_delay: Duration,
    /// Slowest processing delay.
    pub max_slow: Duration,
    /// Address lease.
    pub ip_lease: Duration,
    /// Lock service.
    pub lock: super::lock::LockConfig,
    /// What the node implements.
    pub caps: super::Capabilities,
}

impl Bounds {
    /// The bounds for a run.
    pub fn derive(x: BoundInputs<'_>) -> Self {
        let t = x.tunables;
        let detect = t.keepalive_interval * (t.keepalive_limit + 1) + x.max_delay + x.max_slow * 2;
        let reconnect = detect
            + t.connect_timeout
            + t.reconnect_interval
            + t.keepalive_interval
            + x.max_delay * 4
            + x.max_slow * 2;
        let mut converge = t.keepalive_interval * 2 + x.max_delay * 2 + x.max_slow * 2;
        if x.caps.election {
            let lease = match x.lock.kind {
                super::lock::LockKind::Fcntl => Duration::ZERO,
                super::lock::LockKind::Lease { ttl, .. } => ttl,
            };
            let lock_wait = x.lock.timeout + t.recover_interval + lease + x.lock.latency * 2;
            converge += t.election_timeout * 2
                + lock_wait
                + t.recover_interval
                + t.rerecovery_timeout
                + x.max_delay * 4;
            if t.enable_bans {
                // Lock failures during the faults may have banned every candidate.
                converge += t.recovery_ban_period;
            }
        }
        if x.caps.takeover {
            converge += t.takeover_timeout + x.ip_lease;
        }
        Bounds {
            max_delay: x.max_delay,
            max_slow: x.max_slow,
            ip_lease: x.ip_lease,
            detect,
            reconnect,
            converge,
        }
    }

    /// The convergence bound as a formula (for reports).
    pub fn converge_formula(caps: super::Capabilities) -> &'static str {
        match (caps.election, caps.takeover) {
            (false, _) => "2 x KeepaliveInterval + 2 x max_delay + 2 x max_slow",
            (true, false) => {
                "2 x KeepaliveInterval + 2 x ElectionTimeout + (lock timeout + RecoverInterval + \
                 lease TTL + 2 x lock latency) + RecoverInterval + RerecoveryTimeout + \
                 RecoveryBanPeriod (if EnableBans) + 6 x max_delay + 2 x max_slow"
            }
            (true, true) => {
                "2 x KeepaliveInterval + 2 x ElectionTimeout + (lock timeout + RecoverInterval + \
                 lease TTL + 2 x lock latency) + RecoverInterval + RerecoveryTimeout + \
                 RecoveryBanPeriod (if EnableBans) + TakeoverTimeout + ip_lease + \
                 6 x max_delay + 2 x max_slow"
            }
        }
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::trace::Dur;
        write!(
            f,
            "detect={} reconnect={} converge={} (max_delay={} max_slow={} ip_lease={})",
            Dur(self.detect),
            Dur(self.reconnect),
            Dur(self.converge),
            Dur(self.max_delay),
            Dur(self.max_slow),
            Dur(self.ip_lease)
        )
    }
}

/// When node `i`, unless it can count on a majority again, must have noticed that it cannot:
/// `max(L, since) + detect`, where `L` is when it lost the last vote it needs (the k-th most
/// recent loss, k being how many lost peers it would need besides those it can still reach;
/// ground truth from [`Snapshot::votes_lost`]) and `since` when it last started or was
/// thawed. `None` while it can count on a majority. From then on it releases its addresses
/// ([`quorum`]) and does not lead ([`lead`]).
pub fn majority_lost_deadline(s: &Snapshot<'_>, i: usize) -> Option<Instant> {
    let row = &s.votes_lost[i];
    let needed = row.len() / 2; // others, besides itself, for a strict majority
    if needed == 0 {
        return None;
    }
    // The common case, checked for every node at every step: a majority is reachable.
    let mut reachable = 0;
    for (j, l) in row.iter().enumerate() {
        if j != i && l.is_none() {
            reachable += 1;
            if reachable == needed {
                return None;
            }
        }
    }
    let k = needed - reachable;
    let mut lost: Vec<Instant> = (row.iter().enumerate())
        .filter_map(|(j, l)| if j == i { None } else { *l })
        .collect();
    // Most recent first: the k-th is the last loss that still leaves a majority possible.
    lost.sort_unstable_by(|a, b| b.cmp(a));
    let last = *lost.get(k - 1)?;
    Some(last.max(s.nodes[i].since) + s.bounds.detect)
}

/// ` n1:reachable n2:lost@12.5` for error messages: node `i`'s votes, from the ground truth.
pub(crate) fn votes_text(s: &Snapshot<'_>, i: usize) -> String {
    let mut votes = String::new();
    for (j, l) in s.votes_lost[i].iter().enumerate() {
        if j != i {
            let _ = match l {
                None => fmt::Write::write_fmt(&mut votes, format_args!(" n{j}:reachable")),
                Some(t) => fmt::Write::write_fmt(
                    &mut votes,
                    format_args!(" n{j}:lost@{}", super::trace::Secs(*t).to_string_trimmed()),
                ),
            };
        }
    }
    votes
}

/// `n0,n3` for error messages.
pub(crate) fn names(nodes: impl IntoIterator<Item = usize>) -> String {
    let mut s = String::new();
    for (k, i) in nodes.into_iter().enumerate() {
        if k > 0 {
            s.push(',');
        }
        let _ = fmt::Write::write_fmt(&mut s, format_args!("n{i}"));
    }
    s
}
