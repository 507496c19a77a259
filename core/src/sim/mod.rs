//! Deterministic simulation of a pharos cluster, with fault injection and invariant checks.
//!
//! A [`World`] holds N [`Node`]s, a virtual clock, a virtual network of TCP connections over
//! links with latency, jitter, loss, duplication, reordering and cuts ([`net`]), process faults
//! (crash, host down, clean stop, restart, freeze and thaw, slow node), a cluster lock service
//! ([`lock`]: fcntl-like or an etcd-like lease) and the hosts' public addresses ([`hosting`]).
//! Everything happens in one event queue ordered by `(time, sequence number)`, and every random
//! draw comes from the run's seed: the same seed gives the same trace, byte for byte
//! ([`trace`]). After every step the safety [`invariants`] are checked; after the faults stop,
//! liveness is.
//!
//! ```
//! use pharos_core::sim::{Fault, SimConfig, World};
//! use core::time::Duration;
//!
//! let mut w = World::new(SimConfig::new(3).seed(7));
//! w.run_for(Duration::from_secs(2)).unwrap();
//! assert!(w.all_connected());
//! w.apply(Fault::Crash(2)).unwrap();
//! // A crashed daemon's kernel closes its sockets: the others see EOF at once.
//! w.run_for(Duration::from_millis(10)).unwrap();
//! assert!(!w.sees_connected(0, 2));
//! assert!(w.node(0).unwrap().quorate());
//! ```
//!
//! The shells' duties are modelled as the mio shell performs them: frames only on a node's
//! outgoing connection, socket events before timeouts after a stall, the lock client's news
//! before anything else when a frozen daemon is thawed. See `docs/SIMULATION.md`.

pub mod faults;
pub mod hosting;
pub mod invariants;
pub mod lock;
pub mod net;
mod queue;
pub mod runner;
pub mod trace;

pub use faults::{Fault, Limits, Mix, Schedule};
pub use hosting::{Hosted, Hosting};
pub use invariants::{BoundInputs, Bounds, NodeObs, NodeState, Violation};
pub use lock::{Holder, LockConfig, LockKind};
pub use net::{LinkParams, NetConfig, NetStats};
pub use runner::{run, RunOutcome, RunSpec};

use crate::config::{NodesFile, Tunables};
use crate::control::{Request, Response};
use crate::drive::{Driver, Feedback, Host};
use crate::node::{Action, Event, LockResult, Node, NodeConfig, Notification};
use crate::rng::Rng;
use crate::time::Instant;
use crate::types::{ClientId, ConnId, Link, NodeFlags, NodeSet, Pnn};
use crate::wire::{self, Message};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr};
use core::time::Duration;
use invariants::{Checker, Liveness, Snapshot, View};
use net::{Arrival, Frame, Net, Segment};
use queue::Queue;
use trace::Trace;

/// What the node under test implements; the checks that need more stay off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Recovery-master election, cluster lock requests, generations bumped by recovery, and
    /// public addresses released when quorum is lost (issue 3).
    pub election: bool,
    /// Takeover runs that host public addresses.
    pub takeover: bool,
}

impl Capabilities {
    /// What the node does: transport, keepalives, quorum, election, lock and recovery.
    ///
    /// When takeover runs land: feed their actions to [`Hosting`] in `World::action` and set
    /// `takeover: true`.
    pub const CURRENT: Capabilities = Capabilities {
        election: true,
        takeover: true,
    };
}

/// What a starting daemon is told besides its PNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo {
    /// Its PNN.
    pub pnn: Pnn,
    /// Its start time on the shared scale (milliseconds of virtual time, as shells use
    /// milliseconds since the epoch): the election prefers the earliest.
    pub start_stamp: u64,
    /// Its life (unique in the run).
    pub life: u64,
    /// Whether it may become recovery master.
    pub recmaster_capable: bool,
}

/// The default [`SimConfig::configure`]: the node configuration every daemon starts with.
pub fn configure_node(config: NodeConfig, start: &StartInfo) -> NodeConfig {
    config
        .with_start_stamp(start.start_stamp)
        .with_recmaster_capable(start.recmaster_capable)
}

/// The public_addresses file every simulated node has: all of the cluster's addresses, on
/// `eth0` (/24 for IPv4, /64 for IPv6).
pub fn public_addresses(ips: &[IpAddr]) -> crate::config::PublicAddresses {
    let text: String = ips
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(_) => format!("{ip}/24 eth0\n"),
            IpAddr::V6(_) => format!("{ip}/64 eth0\n"),
        })
        .collect();
    crate::config::PublicAddresses::parse(&text).expect("valid addresses")
}

/// How a world is set up.
#[derive(Clone)]
pub struct SimConfig {
    /// Number of nodes (PNN 0..n, addresses 127.0.0.1..).
    pub nodes: usize,
    /// The seed every random draw comes from.
    pub seed: u64,
    /// Every node's tunables.
    pub tunables: Tunables,
    /// The network.
    pub net: NetConfig,
    /// The lock service.
    pub lock: LockConfig,
    /// The cluster's public addresses.
    pub ips: Vec<IpAddr>,
    /// How long an address outlives the daemon that stopped renewing it.
    pub ip_lease: Duration,
    /// Stand-in for takeover runs, until they exist: address k has home node k mod n, which
    /// hosts it whenever it runs, believes itself quorate and may host (not banned, stopped or
    /// disabled). It never moves addresses, so it exercises only the release rules.
    pub home_hosting: bool,
    /// What the node implements.
    pub caps: Capabilities,
    /// The worst faults will do (the bounds are derived from it).
    pub limits: Limits,
    /// Per node: may become recovery master.
    pub recmaster_capable: Vec<bool>,
    /// Whether the trace is recorded at all (off: no line is formatted, the digest stays at
    /// its starting value, failure reports have no trace).
    pub trace: bool,
    /// Trace lines kept for failure reports.
    pub trace_tail: usize,
    /// Keep the whole trace (to compare runs line by line).
    pub keep_trace: bool,
    /// The command that replays this world, printed with a violation.
    pub replay: String,
    /// Interval of the liveness probes once the faults stopped.
    pub probe_every: Duration,
    /// Builds each daemon's configuration ([`configure_node`] unless a test says otherwise).
    pub configure: fn(NodeConfig, &StartInfo) -> NodeConfig,
    /// Whether the safety invariants are checked after every step, and every frame a node
    /// sends is decoded to check it (off for measurements; the cheap checks of the node's
    /// contract stay on).
    pub checks: bool,
    /// PNNs whose line of the nodes file is deleted (`#`): they are never started. The
    /// invariants count them as nodes that are down.
    pub deleted: Vec<usize>,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("nodes", &self.nodes)
            .field("seed", &self.seed)
            .field("lock", &self.lock)
            .field("caps", &self.caps)
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// `n` nodes with default tunables, a quiet LAN, an fcntl lock, `n` public addresses
    /// (10.0.0.1..), the address lease equal to KeepaliveInterval x KeepaliveLimit.
    pub fn new(n: usize) -> Self {
        let tunables = Tunables::default();
        let caps = Capabilities::CURRENT;
        SimConfig {
            nodes: n,
            seed: 0,
            ip_lease: tunables.dead_after(),
            limits: Limits::for_tunables(&tunables),
            tunables,
            net: NetConfig::default(),
            lock: LockConfig::default(),
            ips: (0..n)
                .map(|k| IpAddr::V4(Ipv4Addr::new(10, 0, (k / 250) as u8, (k % 250) as u8 + 1)))
                .collect(),
            home_hosting: caps.election && !caps.takeover,
            caps,
            recmaster_capable: alloc::vec![true; n],
            trace: true,
            trace_tail: 80,
            keep_trace: false,
            replay: String::new(),
            probe_every: Duration::from_millis(100),
            configure: configure_node,
            checks: true,
            deleted: Vec::new(),
        }
    }

    /// The preset for tests that assert exact timings: a network with a fixed 100 us latency
    /// (no jitter, no loss), the lock service as far, every invariant checked.
    pub fn quiet(n: usize) -> Self {
        let mut c = SimConfig::new(n);
        c.net.default = LinkParams {
            latency: Duration::from_micros(100),
            jitter: Duration::ZERO,
            ..LinkParams::LAN
        };
        c.lock.latency = Duration::from_micros(100);
        c
    }

    /// The preset for measurements of a steady state: zero latency, a lock service that
    /// answers at once, no trace and no invariant checks, so that what costs is the nodes and
    /// the drive path. Once the cluster has settled it allocates nothing
    /// (`core/tests/zero_alloc.rs`).
    pub fn bench(n: usize) -> Self {
        let mut c = SimConfig::new(n);
        c.net.default = LinkParams {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            ..LinkParams::LAN
        };
        c.lock.latency = Duration::ZERO;
        c.trace = false;
        c.checks = false;
        c
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the tunables (and the address lease and fault limits that follow from them).
    pub fn tunables(mut self, t: Tunables) -> Self {
        self.ip_lease = t.dead_after();
        self.limits = Limits::for_tunables(&t);
        self.tunables = t;
        self
    }

    /// Sets the lock service kind.
    pub fn lock(mut self, kind: LockKind) -> Self {
        self.lock.kind = kind;
        self
    }

    /// Keeps the whole trace.
    pub fn keep_trace(mut self) -> Self {
        self.keep_trace = true;
        self
    }

    /// Sets the replay command.
    pub fn replay(mut self, cmd: impl Into<String>) -> Self {
        self.replay = cmd.into();
        self
    }

    /// Sets what the node implements (and the hosting stand-in that follows from it).
    pub fn caps(mut self, caps: Capabilities) -> Self {
        self.caps = caps;
        self.home_hosting = caps.election && !caps.takeover;
        self
    }

    /// The bounds for this configuration.
    pub fn bounds(&self) -> Bounds {
        let max_delay = self
            .net
            .worst_delay(&self.net.default)
            .max(self.net.worst_delay(&self.limits.worst_link));
        Bounds::derive(BoundInputs {
            tunables: &self.tunables,
            max_delay,
            max_slow: self.limits.max_slow,
            ip_lease: self.ip_lease,
            lock: self.lock,
            caps: self.caps,
        })
    }
}

/// An input on its way to a node, as its shell would hand it over.
#[derive(Debug)]
enum Input {
    Accepted {
        conn: u64,
        from: usize,
        addr: IpAddr,
    },
    Connected {
        conn: u64,
        peer: usize,
    },
    ConnectFailed {
        conn: u64,
        peer: usize,
    },
    Frame {
        conn: u64,
        from: usize,
        frame: Frame,
    },
    ClosedIn {
        conn: u64,
    },
    ClosedOut {
        conn: u64,
        peer: usize,
    },
    Lock(LockResult),
    /// A peer's guardian connects (`conn`, a connection of its own) and says the peer is
    /// fenced.
    Fenced {
        conn: u64,
        from: usize,
        bytes: Vec<u8>,
    },
}

#[derive(Debug)]
enum Pending {
    /// An input whose processing a slow node delayed.
    Input {
        to: usize,
        life: u64,
        input: Input,
    },
    /// Process the next held input of a thawed node.
    Drain {
        node: usize,
        life: u64,
    },
    /// The node's deadline.
    Timer {
        node: usize,
        life: u64,
        at: Instant,
    },
    /// A segment reaches the far end of `dir`.
    Segment {
        conn: u64,
        dir: usize,
        seg: Segment,
    },
    Fault(Fault),
    ToService {
        node: usize,
        life: u64,
        req: u64,
        op: lock::Op,
    },
    ToClient {
        node: usize,
        life: u64,
        req: u64,
        reply: lock::Reply,
    },
    LockTimer {
        node: usize,
        life: u64,
        at: Instant,
    },
    /// Addresses of dead or frozen daemons may have lapsed.
    Lapse,
    /// Node `node`'s guardian acts: its daemon died (`hang` false) or has been silent for the
    /// guardian's timeout (`hang` true, if it is still frozen).
    Guardian {
        node: usize,
        life: u64,
        hang: bool,
    },
    /// An input that reaches `to` (if still in life `life`) through its shell's normal path.
    Notice {
        to: usize,
        life: u64,
        input: Input,
    },
    /// Liveness probe.
    Probe,
    /// An invariant's deadline.
    Check,
}

struct Slot {
    /// Boxed: a daemon is taken out of its slot for every input, and a `Node` is large.
    node: Option<Box<Node>>,
    state: NodeState,
    life: u64,
    /// Inputs held while frozen, and while they are being drained after a thaw.
    inbox: VecDeque<Input>,
    /// Lock answers that reached a frozen client.
    held_lock: Vec<(u64, lock::Reply)>,
    /// When `state` began.
    since: Instant,
    slow: Duration,
    /// Processing of delayed inputs stays in order: none before this.
    floor: Instant,
    /// Delayed inputs in the queue.
    queued: u32,
    timer: Option<Instant>,
    lock_timer: Option<Instant>,
    /// Its guardian fenced it while it was frozen: it hears so first when thawed.
    fenced: bool,
    /// What its guardian tells each peer when it fences the node (the daemon hands these over
    /// at start): (peer, frame).
    fencing: Vec<(usize, Vec<u8>)>,
    /// `Action::AcquireLock`s of this life.
    lock_requests: u32,
}

/// How soon a guardian acts after its daemon's death (it sees their socket close).
const GUARDIAN_REACTION: Duration = Duration::from_millis(1);

/// Names a node in the trace.
#[derive(Clone, Copy)]
struct N(usize);

impl fmt::Display for N {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A simulated cluster. See the module documentation.
pub struct World {
    cfg: SimConfig,
    bounds: Bounds,
    nodes_file: NodesFile,
    now: Instant,
    queue: Queue<Pending>,
    slots: Vec<Slot>,
    obs: Vec<NodeObs>,
    /// `votes_lost[i][j]`: `None` while j counts as a vote for i (running, both paths up),
    /// else since when it does not.
    votes_lost: Vec<Vec<Option<Instant>>>,
    /// `unheard_since[i][j]`: `None` while i can hear j (j's daemon runs, the path j -> i is
    /// up), else since when it cannot (see [`Snapshot::unheard_since`]).
    unheard_since: Vec<Vec<Option<Instant>>>,
    net: Net,
    lock: LockService,
    hosting: Hosting,
    trace: Trace,
    checker: Checker,
    liveness: Option<Liveness>,
    net_rng: Rng,
    node_rng: Rng,
    lives: u64,
    steps: u64,
    events: u64,
    violation: Option<Violation>,
    replies: Vec<(usize, Response)>,
    lock_outs: Vec<lock::Out>,
    /// An invariant deadline is queued for then.
    check_at: Option<Instant>,
    /// Every fault applied, for reports.
    faults: Vec<(Instant, Fault)>,
    /// The one drive path, shared by every node's shell (taken out while it runs, so its
    /// buffers are reused rather than made anew).
    driver: Option<Driver>,
    /// Connections guardians opened so far (their ids are outside the network's).
    guardian_conns: u64,
    /// Every `ReleaseAllIps` a node asked for: when, and which node.
    released: Vec<(Instant, usize)>,
    /// Frames delivered to one node, kept while a test or bench asks ([`World::capture`]).
    capture: Option<Capture>,
}

use lock::LockService;

/// A frame delivered to the node under [`World::capture`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// When it was handed to the node.
    pub at: Instant,
    /// The node that sent it.
    pub from: usize,
    /// The connection it came on, as the receiving node knows it.
    pub link: Link,
    /// The frame.
    pub bytes: Vec<u8>,
}

#[derive(Debug)]
struct Capture {
    node: usize,
    frames: Vec<Captured>,
}

/// A node's shell, as the drive path sees it: frames onto the simulated network, actions to
/// the world's models, notifications into the trace.
struct Shell<'w> {
    w: &'w mut World,
    i: usize,
}

impl Host for Shell<'_> {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        self.w.transmit(self.i, peer, frame);
    }

    fn act(&mut self, action: Action, feedback: &mut Feedback) {
        self.w.action(self.i, action, feedback);
    }

    fn notify(&mut self, n: Notification) {
        self.w
            .trace
            .record(self.w.now, &N(self.i), format_args!("-- {n:?}"));
    }
}

impl fmt::Debug for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("nodes", &self.obs)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

impl World {
    /// A world with every node started at time zero.
    pub fn new(cfg: SimConfig) -> Self {
        let mut w = Self::idle(cfg);
        for i in 0..w.cfg.nodes {
            w.start(i);
        }
        w
    }

    /// A world with no daemon started yet ([`Fault::Start`] starts them).
    pub fn idle(cfg: SimConfig) -> Self {
        let n = cfg.nodes;
        assert!(n > 0, "a cluster needs a node");
        if let LockKind::Lease { margin, ttl, .. } = cfg.lock.kind {
            // The client's margin must cover the slowest node, or its Lost would arrive after
            // the service could have granted the lock to someone else.
            assert!(
                margin > cfg.limits.max_slow + cfg.lock.latency && margin < ttl,
                "lease margin {margin:?} must exceed max_slow + lock latency and stay below the TTL"
            );
        }
        let addrs: Vec<Option<IpAddr>> = (0..n)
            .map(|i| {
                let ip = IpAddr::V4(Ipv4Addr::new(127, (i / 250) as u8, 0, (i % 250) as u8 + 1));
                (!cfg.deleted.contains(&i)).then_some(ip)
            })
            .collect();
        let nodes_file = NodesFile::from_addresses(&addrs).expect("valid nodes");
        let slots = (0..n)
            .map(|_| Slot {
                node: None,
                state: NodeState::Down,
                life: 0,
                inbox: VecDeque::new(),
                held_lock: Vec::new(),
                since: Instant::ZERO,
                slow: Duration::ZERO,
                floor: Instant::ZERO,
                queued: 0,
                timer: None,
                lock_timer: None,
                fenced: false,
                fencing: Vec::new(),
                lock_requests: 0,
            })
            .collect();
        let bounds = cfg.bounds();
        let mut seeds = Rng::new(cfg.seed);
        let trace = if cfg.trace {
            Trace::new(cfg.trace_tail, cfg.keep_trace)
        } else {
            Trace::off()
        };
        World {
            bounds,
            nodes_file,
            now: Instant::ZERO,
            // Room for a timer per node and a few segments per link (within reason for big
            // worlds): a steady state never grows the queue (growing allocates).
            queue: Queue::with_capacity((64 + 8 * n * n).min(1 << 14)),
            slots,
            obs: alloc::vec![NodeObs::DOWN; n],
            votes_lost: alloc::vec![alloc::vec![Some(Instant::ZERO); n]; n],
            unheard_since: alloc::vec![alloc::vec![Some(Instant::ZERO); n]; n],
            net: Net::new(n, cfg.net.clone()),
            lock: LockService::new(n, cfg.lock),
            hosting: Hosting::new(n, cfg.ips.clone(), cfg.ip_lease),
            trace,
            checker: Checker::safety(n),
            liveness: None,
            net_rng: Rng::new(seeds.next_u64()),
            node_rng: Rng::new(seeds.next_u64()),
            lives: 0,
            steps: 0,
            events: 0,
            violation: None,
            replies: Vec::new(),
            lock_outs: Vec::new(),
            check_at: None,
            faults: Vec::new(),
            driver: Some(Driver::new()),
            guardian_conns: 0,
            released: Vec::new(),
            capture: None,
            cfg,
        }
    }

    // ----- what tests look at -----

    /// Virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// The bounds the invariants use.
    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Node `i`'s daemon, if it runs (frozen or not).
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.slots[i].node.as_deref()
    }

    /// Node `i`'s process state.
    pub fn state(&self, i: usize) -> NodeState {
        self.slots[i].state
    }

    /// What node `i` said about itself after its last step.
    pub fn obs(&self, i: usize) -> NodeObs {
        self.obs[i]
    }

    /// Whether node `a` (running) sees node `b` connected.
    pub fn sees_connected(&self, a: usize, b: usize) -> bool {
        self.node(a).is_some_and(|n| {
            !n.flags_of(Pnn(b as u32))
                .contains(crate::types::NodeFlags::DISCONNECTED)
        })
    }

    /// Whether every running, unfrozen node sees every other one connected.
    pub fn all_connected(&self) -> bool {
        let up: Vec<usize> = (0..self.cfg.nodes)
            .filter(|&i| self.slots[i].state == NodeState::Running)
            .collect();
        up.iter()
            .all(|&a| up.iter().all(|&b| a == b || self.sees_connected(a, b)))
    }

    /// The hosting model.
    pub fn hosting(&self) -> &Hosting {
        &self.hosting
    }

    /// Who holds the cluster lock at the service now.
    pub fn lock_holder(&self) -> Option<Holder> {
        self.lock.holder(self.now)
    }

    /// Grants the lock service made.
    pub fn lock_grants(&self) -> u64 {
        self.lock.grants
    }

    /// The trace.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The digest of the trace so far.
    pub fn digest(&self) -> u64 {
        self.trace.digest()
    }

    /// Inputs handed to nodes so far (`Node::handle` calls).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Queue entries processed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Network counters.
    pub fn net_stats(&self) -> NetStats {
        self.net.stats
    }

    /// The first violation, if any (the world stops at it).
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The liveness checker, once [`World::check_liveness_from`] set it up.
    pub fn liveness(&self) -> Option<&Liveness> {
        self.liveness.as_ref()
    }

    /// The report printed for a violation: what broke, how to replay it, the bounds, and the
    /// trace leading to it.
    pub fn report(&self, v: &Violation) -> String {
        let mut s = format!("{v}\n");
        if !self.cfg.replay.is_empty() {
            s += &format!("replay: {}\n", self.cfg.replay);
        }
        s += &format!("bounds: {}\n", self.bounds);
        let skip = self.faults.len().saturating_sub(40);
        s += &format!(
            "faults ({} in all, the last {}):\n",
            self.faults.len(),
            self.faults.len() - skip
        );
        for (t, f) in &self.faults[skip..] {
            s += &format!("{} * {f}\n", trace::Secs(*t));
        }
        for (i, o) in self.obs.iter().enumerate() {
            s += &format!("  n{i}: {o}\n");
        }
        s += &format!(
            "last {} of {} trace lines:\n",
            self.trace.tail().count(),
            self.trace.len()
        );
        for l in self.trace.tail() {
            s += l;
            s.push('\n');
        }
        s
    }

    // ----- what tests do -----

    /// Queues every fault of `s` at its time.
    pub fn schedule(&mut self, s: &Schedule) {
        for (at, f) in s.entries() {
            self.push((*at).max(self.now), Pending::Fault(f.clone()));
        }
    }

    /// Applies `fault` now (as one step, invariants checked).
    pub fn apply(&mut self, fault: Fault) -> Result<(), Violation> {
        self.steps += 1;
        self.fault(fault);
        self.check();
        self.result()
    }

    /// Puts `ip` on host `i` now, as a takeover run would (a test hook until takeover runs
    /// exist).
    pub fn host_ip(&mut self, i: usize, ip: IpAddr) -> Result<(), Violation> {
        self.steps += 1;
        self.hosting.take(i, ip, self.now);
        self.trace
            .record(self.now, &"host", format_args!("n{i} + {ip} (by hand)"));
        self.check();
        self.result()
    }

    /// Someone outside the cluster takes the cluster lock now, if it is free, and keeps it
    /// until [`Fault::BreakLock`]; [`World::lock_holder`] then names [`Holder::OUTSIDE`].
    /// Returns whether it took it.
    pub fn seize_lock(&mut self) -> Result<bool, Violation> {
        self.steps += 1;
        let took = self.lock.seize(self.now);
        self.trace.record(
            self.now,
            &"lock",
            format_args!("seized from outside: {took}"),
        );
        self.check();
        self.result().map(|()| took)
    }

    /// Resets node `a`'s outgoing connection to `b` now (a reset from the network: both ends
    /// see EOF once it reaches them). Nothing if there is none.
    pub fn reset(&mut self, a: usize, b: usize) -> Result<(), Violation> {
        self.steps += 1;
        if let Some(conn) = self.net.out[a][b] {
            self.trace
                .record(self.now, &"*", format_args!("reset n{a}->n{b} c{conn}"));
            self.send_seg(conn, 0, Segment::Rst);
            self.send_seg(conn, 1, Segment::Rst);
        }
        self.check();
        self.result()
    }

    /// Every `ReleaseAllIps` the nodes asked for so far: when, and which node.
    pub fn released_all(&self) -> &[(Instant, usize)] {
        &self.released
    }

    /// From now on, keeps every frame handed to node `i` (see [`World::take_captured`]);
    /// forgets what an earlier capture kept.
    pub fn capture(&mut self, i: usize) {
        self.capture = Some(Capture {
            node: i,
            frames: Vec::new(),
        });
    }

    /// The frames kept since [`World::capture`], oldest first; the capture ends.
    pub fn take_captured(&mut self) -> Vec<Captured> {
        self.capture.take().map(|c| c.frames).unwrap_or_default()
    }

    /// Ends the world, keeping node `i`'s daemon, to drive it alone (the hot-path bench
    /// replays captured frames to it through its own drive path).
    pub fn into_node(mut self, i: usize) -> Option<Node> {
        self.slots[i].node.take().map(|n| *n)
    }

    /// Whether the cluster is in its steady state: every daemon runs and sees every other
    /// connected with no flag set, all follow one recovery master, which holds the lock, in one
    /// generation made by a recovery, out of recovery mode.
    pub fn settled(&self) -> bool {
        let live = || (0..self.cfg.nodes).filter(|i| !self.cfg.deleted.contains(i));
        let Some(first) = live().next().and_then(|i| self.node(i)) else {
            return false;
        };
        let (r, g) = (first.recmaster(), first.generation());
        r != Pnn::NONE
            && g > crate::types::Generation(1)
            && self.lock_holder().is_some_and(|h| h.node == r.index())
            && live().all(|i| {
                self.slots[i].state == NodeState::Running
                    && self.node(i).is_some_and(|n| {
                        n.recmaster() == r
                            && n.generation() == g
                            && n.recovery_mode() == crate::control::RecoveryMode::Normal
                            && live().all(|j| n.flags_of(Pnn(j as u32)) == NodeFlags::empty())
                    })
            })
    }

    /// Sends a control request to node `i` now; returns its answer.
    pub fn control(&mut self, i: usize, request: Request) -> Option<Response> {
        let now = self.now;
        let mut node = self.slots[i].node.take()?;
        self.steps += 1;
        self.trace
            .record(now, &N(i), format_args!("<- control {request:?}"));
        let r = node.handle(
            now,
            Event::Control {
                client: ClientId(0),
                request,
            },
        );
        self.after_handle(i, node, r);
        self.check();
        self.replies.pop().map(|(_, r)| r)
    }

    /// Checks liveness from `from` on (the end of the faults), probing periodically. A later
    /// call moves the start.
    pub fn check_liveness_from(&mut self, from: Instant) {
        let armed = self.liveness.is_some();
        self.liveness = Some(Liveness::new(from, self.cfg.caps));
        if !armed {
            self.push(from.max(self.now), Pending::Probe);
        }
    }

    /// Runs until `t` (or the first violation).
    pub fn run_until(&mut self, t: Instant) -> Result<(), Violation> {
        while self.violation.is_none() {
            match self.queue.next_at() {
                Some(at) if at <= t => self.step(),
                _ => break,
            }
        }
        self.result()?;
        self.now = self.now.max(t);
        Ok(())
    }

    /// Runs for `d` more.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        self.run_until(self.now + d)
    }

    /// Runs until `cond` holds (checked after every step) or `limit` passes; returns how long
    /// it took, or `None`.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&World) -> bool,
    ) -> Result<Option<Duration>, Violation> {
        let start = self.now;
        let end = start + limit;
        loop {
            self.result()?;
            if cond(self) {
                return Ok(Some(self.now - start));
            }
            match self.queue.next_at() {
                Some(at) if at <= end => self.step(),
                _ => {
                    self.now = self.now.max(end);
                    return Ok(None);
                }
            }
        }
    }

    fn result(&self) -> Result<(), Violation> {
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    // ----- the machinery -----

    fn push(&mut self, at: Instant, p: Pending) {
        self.queue.push(at, p);
    }

    fn step(&mut self) {
        let Some((at, p)) = self.queue.pop() else {
            return;
        };
        self.now = self.now.max(at);
        self.steps += 1;
        match p {
            Pending::Input { to, life, input } => {
                let s = &mut self.slots[to];
                if s.life != life || s.node.is_none() {
                    return;
                }
                s.queued = s.queued.saturating_sub(1);
                self.accept_input(to, input);
            }
            Pending::Drain { node, life } => self.drain_one(node, life),
            Pending::Timer { node, life, at } => self.on_timer(node, life, at),
            Pending::Segment { conn, dir, seg } => self.on_segment(conn, dir, seg),
            Pending::Fault(f) => self.fault(f),
            Pending::ToService {
                node,
                life,
                req,
                op,
            } => {
                let mut outs = core::mem::take(&mut self.lock_outs);
                self.lock
                    .at_service(self.now, node, life, req, op, &mut |o| outs.push(o));
                self.lock_outs = outs;
                self.flush_lock();
            }
            Pending::ToClient {
                node,
                life,
                req,
                reply,
            } => {
                let s = &mut self.slots[node];
                if s.life != life || s.node.is_none() {
                    return;
                }
                if s.state == NodeState::Frozen {
                    s.held_lock.push((req, reply));
                    return;
                }
                let mut outs = core::mem::take(&mut self.lock_outs);
                self.lock
                    .at_client(self.now, node, life, req, reply, &mut |o| outs.push(o));
                self.lock_outs = outs;
                self.flush_lock();
                self.arm_lock_timer(node);
            }
            Pending::LockTimer { node, life, at } => {
                let s = &mut self.slots[node];
                if s.life != life || s.lock_timer != Some(at) {
                    return;
                }
                s.lock_timer = None;
                if s.state != NodeState::Running {
                    return;
                }
                let mut outs = core::mem::take(&mut self.lock_outs);
                self.lock
                    .client_timers(self.now, node, &mut |o| outs.push(o));
                self.lock_outs = outs;
                self.flush_lock();
                self.arm_lock_timer(node);
            }
            Pending::Lapse => {
                for (i, ip) in self.hosting.expire(self.now) {
                    self.trace.record(
                        self.now,
                        &"host",
                        format_args!("n{i} - {ip} (lease lapsed)"),
                    );
                }
            }
            Pending::Guardian { node, life, hang } => self.guardian(node, life, hang),
            Pending::Notice { to, life, input } => self.deliver(to, life, input),
            Pending::Check => self.check_at = None,
            Pending::Probe => {
                self.probe();
                let next = self.now + self.cfg.probe_every;
                self.push(next, Pending::Probe);
            }
        }
        self.check();
    }

    fn check(&mut self) {
        if self.violation.is_some() || !self.cfg.checks {
            return;
        }
        let snap = Snapshot {
            now: self.now,
            nodes: &self.obs,
            lock: self.lock.holder(self.now),
            hosting: &self.hosting,
            votes_lost: &self.votes_lost,
            unheard_since: &self.unheard_since,
            bounds: &self.bounds,
        };
        if let Err((rule, message)) = self.checker.check(&snap) {
            self.violate(rule, message);
            return;
        }
        if let Some(t) = self.checker.next_deadline(&snap) {
            if self.check_at.is_none_or(|c| t < c) {
                self.check_at = Some(t);
                self.push(t, Pending::Check);
            }
        }
    }

    fn violate(&mut self, rule: &'static str, message: String) {
        if self.violation.is_none() {
            self.trace
                .record(self.now, &"!!", format_args!("[{rule}] {message}"));
            self.violation = Some(Violation {
                rule,
                at: self.now,
                step: self.steps,
                message,
            });
        }
    }

    fn probe(&mut self) {
        let Some(mut l) = self.liveness.take() else {
            return;
        };
        let n = self.cfg.nodes;
        let views: Vec<View> = (0..n)
            .map(|a| View {
                obs: self.obs[a],
                connected: (0..n)
                    .map(|b| a == b || self.sees_connected(a, b))
                    .collect(),
            })
            .collect();
        let r = l.probe(self.now, &views, &self.hosting, &self.bounds);
        self.liveness = Some(l);
        if let Err(m) = r {
            self.violate("liveness", m);
        }
    }

    /// Ground truth: which running daemons each node can exchange segments with both ways (a
    /// frozen daemon is no vote: it sends nothing), which it can hear, and since when not.
    fn update_reach(&mut self) {
        let n = self.cfg.nodes;
        let now = self.now;
        let since = |v: &mut Option<Instant>, ok: bool| {
            if ok {
                *v = None;
            } else if v.is_none() {
                *v = Some(now);
            }
        };
        for i in 0..n {
            for j in 0..n {
                let runs = self.slots[j].state == NodeState::Running;
                let hears = i != j && runs && self.net.path(j, i);
                since(&mut self.unheard_since[i][j], hears);
                since(&mut self.votes_lost[i][j], hears && self.net.path(i, j));
            }
        }
    }

    fn observe(&mut self, i: usize) {
        let s = &self.slots[i];
        let o = match &s.node {
            None => NodeObs {
                state: s.state,
                since: s.since,
                life: s.life,
                ..NodeObs::DOWN
            },
            Some(n) => NodeObs {
                state: s.state,
                since: s.since,
                life: s.life,
                holds_lock: n.holds_lock(),
                acting: n.is_acting_recmaster(),
                recmaster: n.recmaster(),
                generation: n.generation(),
                vnnmap: n.vnnmap(),
                quorate: n.quorate(),
                flags: n.flags_of(n.pnn()),
                lock_requests: s.lock_requests,
                connected: {
                    let mut c = NodeSet::new();
                    for j in (0..self.cfg.nodes).map(|j| Pnn(j as u32)) {
                        if j != n.pnn() && !n.flags_of(j).contains(NodeFlags::DISCONNECTED) {
                            c.insert(j);
                        }
                    }
                    c
                },
            },
        };
        if o != self.obs[i] {
            self.trace
                .record(self.now, &N(i), format_args!("state {o}"));
            self.obs[i] = o;
        }
        if self.cfg.home_hosting && o.state == NodeState::Running && o.quorate {
            let barred = NodeFlags::BANNED
                .union(NodeFlags::STOPPED)
                .union(NodeFlags::DISABLED);
            if !o.flags.intersects(barred) {
                let n = self.cfg.nodes;
                for k in (i..self.hosting.ips.len()).step_by(n) {
                    let ip = self.hosting.ips[k];
                    if !self.hosting.hosted_by(i).any(|(a, _)| a == ip) {
                        self.hosting.take(i, ip, self.now);
                        self.trace
                            .record(self.now, &"host", format_args!("n{i} + {ip} (home)"));
                    }
                }
            }
        }
    }

    // ----- processes -----

    fn start(&mut self, i: usize) {
        if self.slots[i].node.is_some() || self.cfg.deleted.contains(&i) {
            return;
        }
        self.lives += 1;
        let life = self.lives;
        if self.hosting.release_all(i) > 0 {
            self.trace.record(
                self.now,
                &"host",
                format_args!("n{i} - all (left over by its previous life)"),
            );
        }
        self.lock.client_started(i, life);
        let start = StartInfo {
            pnn: Pnn(i as u32),
            start_stamp: self.now.as_nanos() / 1_000_000,
            life,
            recmaster_capable: self.cfg.recmaster_capable.get(i).copied().unwrap_or(true),
        };
        let config = NodeConfig::new(
            self.nodes_file.clone(),
            Pnn(i as u32),
            4379,
            self.cfg.tunables.clone(),
        )
        .expect("live node");
        let mut config = (self.cfg.configure)(config, &start);
        if self.cfg.caps.takeover {
            config = config.with_public_addresses(public_addresses(&self.cfg.ips));
        }
        let seed = self.node_rng.next_u64();
        let node = Node::new(config, seed, self.now);
        let fencing: Vec<(usize, Vec<u8>)> = node
            .fencing_frames()
            .into_iter()
            .filter_map(|(_, peer, frame)| {
                Some((self.nodes_file.pnn_of(peer.ip())?.index(), frame))
            })
            .collect();
        let s = &mut self.slots[i];
        s.fencing = fencing;
        s.node = Some(Box::new(node));
        s.state = NodeState::Running;
        s.since = self.now;
        s.life = life;
        s.fenced = false;
        s.inbox.clear();
        s.held_lock.clear();
        s.floor = self.now;
        s.queued = 0;
        s.timer = None;
        s.lock_timer = None;
        s.lock_requests = 0;
        self.trace
            .record(self.now, &N(i), format_args!("started (life {life})"));
        self.update_reach();
        self.drain(i);
        self.observe(i);
        self.arm_timer(i);
    }

    fn kill(&mut self, i: usize, how: Kill) {
        let s = &self.slots[i];
        let had_daemon = s.node.is_some();
        if !had_daemon && (how != Kill::Host || s.state == NodeState::HostDown) {
            return;
        }
        match how {
            Kill::Stop => {
                // SIGTERM: a running daemon shuts down through its core (releases, goodbyes,
                // closes), then the process exits and the kernel does the rest.
                if self.slots[i].state == NodeState::Running {
                    if let Some(mut node) = self.slots[i].node.take() {
                        let r = node.handle(self.now, Event::Shutdown);
                        self.after_handle(i, node, r);
                    }
                }
                if self.hosting.release_all(i) > 0 {
                    self.trace
                        .record(self.now, &"host", format_args!("n{i} - all (clean stop)"));
                }
                let mut outs = core::mem::take(&mut self.lock_outs);
                self.lock.release(self.now, i, &mut |o| outs.push(o));
                self.lock_outs = outs;
                // The process exits: an fcntl lock goes with it even if the release was lost.
                self.lock.holder_died(i);
            }
            Kill::Crash => {
                self.lock.holder_died(i);
                if let Some(t) = self.hosting.daemon_gone(i, self.now) {
                    self.push(t, Pending::Lapse);
                }
                if self.cfg.caps.takeover {
                    // Its guardian sees the daemon's end of their socket close.
                    let life = self.slots[i].life;
                    let at = self.now + GUARDIAN_REACTION;
                    self.push(
                        at,
                        Pending::Guardian {
                            node: i,
                            life,
                            hang: false,
                        },
                    );
                }
            }
            Kill::Host => {
                self.lock.holder_died(i);
                if self.hosting.release_all(i) > 0 {
                    self.trace
                        .record(self.now, &"host", format_args!("n{i} - all (host down)"));
                }
            }
        }
        let s = &mut self.slots[i];
        s.node = None;
        s.state = if how == Kill::Host {
            NodeState::HostDown
        } else {
            NodeState::Down
        };
        s.since = self.now;
        s.inbox.clear();
        s.held_lock.clear();
        s.queued = 0;
        s.timer = None;
        s.lock_timer = None;
        for (conn, end) in self.net.endpoints_of(i) {
            if how == Kill::Host {
                // No kernel left to say goodbye.
                self.net.close(conn, end);
            } else {
                self.close_end(conn, end);
            }
        }
        for o in self.net.out[i].iter_mut() {
            *o = None;
        }
        self.flush_lock();
        self.observe(i);
    }

    /// A guardian fences its node: it removes every address of the host, then tells each
    /// peer it can reach (on a connection of its own) that the node's addresses are gone.
    fn guardian(&mut self, i: usize, life: u64, hang: bool) {
        let s = &self.slots[i];
        let due = s.life == life
            && if hang {
                s.state == NodeState::Frozen
            } else {
                s.node.is_none()
            };
        if !due {
            return;
        }
        let k = self.hosting.release_all(i);
        self.trace.record(
            self.now,
            &"host",
            format_args!("n{i} - all ({k} hosted): its guardian fenced it"),
        );
        if hang {
            self.slots[i].fenced = true;
        }
        let frames = self.slots[i].fencing.clone();
        for (j, bytes) in frames {
            if !self.net.path(i, j) || self.slots[j].node.is_none() {
                continue;
            }
            self.guardian_conns += 1;
            let conn = (1 << 48) + self.guardian_conns;
            let at = self.now + self.cfg.net.default.latency;
            let life = self.slots[j].life;
            let input = Input::Fenced {
                conn,
                from: i,
                bytes,
            };
            self.push(at, Pending::Notice { to: j, life, input });
        }
    }

    fn freeze(&mut self, i: usize) {
        if self.slots[i].state != NodeState::Running {
            return;
        }
        self.slots[i].state = NodeState::Frozen;
        self.slots[i].since = self.now;
        if let Some(t) = self.hosting.daemon_gone(i, self.now) {
            self.push(t, Pending::Lapse);
        }
        if self.cfg.caps.takeover {
            // The guardian misses the daemon's heartbeats from now on.
            let life = self.slots[i].life;
            let wait = self.slots[i]
                .node
                .as_ref()
                .map_or(Duration::ZERO, |n| n.guardian_timeout());
            self.push(
                self.now + wait,
                Pending::Guardian {
                    node: i,
                    life,
                    hang: true,
                },
            );
        }
        self.observe(i);
    }

    fn thaw(&mut self, i: usize) {
        if self.slots[i].state != NodeState::Frozen {
            return;
        }
        self.slots[i].state = NodeState::Running;
        self.slots[i].since = self.now;
        self.hosting.daemon_back(i, self.now);
        let life = self.slots[i].life;
        // The guardian's word first, as pharosd reads it before anything else: it removed the
        // addresses while the daemon was stopped.
        if core::mem::take(&mut self.slots[i].fenced) {
            if let Some(node) = self.slots[i].node.take() {
                let mut node = node;
                self.trace
                    .record(self.now, &N(i), format_args!("<- fenced by its guardian"));
                let r = node.handle(self.now, Event::Fenced);
                self.after_handle(i, node, r);
            }
        }
        // The lock client first, as the shell would: what it heard while stopped, then its
        // clock (a lease that ran out); the node learns before any other input.
        let held: Vec<Input> = {
            let s = &mut self.slots[i];
            let (lock, rest): (VecDeque<Input>, VecDeque<Input>) =
                s.inbox.drain(..).partition(|x| matches!(x, Input::Lock(_)));
            s.inbox = rest;
            lock.into_iter().collect()
        };
        for x in held {
            self.handle_input(i, x);
        }
        let replies = core::mem::take(&mut self.slots[i].held_lock);
        let mut outs = core::mem::take(&mut self.lock_outs);
        for (req, reply) in replies {
            self.lock
                .at_client(self.now, i, life, req, reply, &mut |o| outs.push(o));
        }
        self.lock.client_timers(self.now, i, &mut |o| outs.push(o));
        self.lock_outs = outs;
        self.flush_lock();
        self.arm_lock_timer(i);
        if !self.slots[i].inbox.is_empty() {
            self.push(self.now, Pending::Drain { node: i, life });
        }
        self.slots[i].timer = None;
        self.arm_timer(i);
        self.observe(i);
    }

    fn drain_one(&mut self, i: usize, life: u64) {
        let s = &mut self.slots[i];
        if s.life != life || s.node.is_none() || s.state != NodeState::Running {
            return;
        }
        let Some(input) = s.inbox.pop_front() else {
            return;
        };
        self.handle_input(i, input);
        if !self.slots[i].inbox.is_empty() {
            self.push(self.now, Pending::Drain { node: i, life });
        } else {
            self.slots[i].timer = None;
            self.arm_timer(i);
        }
    }

    fn arm_timer(&mut self, i: usize) {
        let s = &mut self.slots[i];
        let Some(n) = &s.node else { return };
        let Some(d) = n.poll_timeout() else { return };
        let at = d.max(self.now) + s.slow;
        if s.timer != Some(at) {
            s.timer = Some(at);
            let life = s.life;
            self.push(at, Pending::Timer { node: i, life, at });
        }
    }

    fn arm_lock_timer(&mut self, i: usize) {
        let s = &mut self.slots[i];
        let Some(at) = self.lock.next_client_timer(i) else {
            s.lock_timer = None;
            return;
        };
        let at = at.max(self.now);
        if s.lock_timer != Some(at) {
            s.lock_timer = Some(at);
            let life = s.life;
            self.push(at, Pending::LockTimer { node: i, life, at });
        }
    }

    fn on_timer(&mut self, i: usize, life: u64, at: Instant) {
        let s = &mut self.slots[i];
        if s.life != life || s.timer != Some(at) {
            return;
        }
        s.timer = None;
        // A stopped process has no timers; after a thaw, queued input goes first.
        if s.state != NodeState::Running || !s.inbox.is_empty() {
            return;
        }
        let Some(mut node) = s.node.take() else {
            return;
        };
        let now = self.now;
        self.trace.record(now, &N(i), format_args!("<- timeout"));
        let r = node.handle(now, Event::Timeout);
        if node.poll_timeout().is_some_and(|d| d <= now) {
            self.violate(
                "node-progress",
                format!("n{i} asks to be woken at or before now after handling a timeout"),
            );
        }
        self.after_handle(i, node, r);
    }

    // ----- inputs -----

    /// An input for daemon `life` of node `i`, through its processing delay.
    fn deliver(&mut self, i: usize, life: u64, input: Input) {
        let now = self.now;
        let s = &mut self.slots[i];
        if s.node.is_none() || s.life != life {
            return;
        }
        if !s.slow.is_zero() || s.queued > 0 {
            let at = (now + s.slow).max(s.floor);
            s.floor = at;
            s.queued += 1;
            self.push(at, Pending::Input { to: i, life, input });
            return;
        }
        self.accept_input(i, input);
    }

    fn accept_input(&mut self, i: usize, input: Input) {
        let s = &mut self.slots[i];
        if s.state == NodeState::Frozen || !s.inbox.is_empty() {
            s.inbox.push_back(input);
            return;
        }
        self.handle_input(i, input);
    }

    fn handle_input(&mut self, i: usize, input: Input) {
        let now = self.now;
        if let Input::Fenced { conn, from, bytes } = &input {
            // The guardian's connection is accepted, then its one frame arrives.
            let addr = self
                .nodes_file
                .address_of(Pnn(*from as u32))
                .expect("live node");
            self.trace.record(
                now,
                &N(i),
                format_args!("<- fencing notice from n{from}'s guardian"),
            );
            for event in [
                Event::Accepted {
                    conn: ConnId(*conn),
                    addr,
                },
                Event::Frame {
                    link: Link::In(ConnId(*conn)),
                    bytes,
                },
            ] {
                let Some(node) = self.slots[i].node.take() else {
                    return;
                };
                let r = {
                    let mut node = node;
                    let r = node.handle(now, event);
                    (node, r)
                };
                self.after_handle(i, r.0, r.1);
            }
            return;
        }
        // Only what a shell would still hand over: sockets it has not closed.
        let event = match &input {
            Input::Accepted { conn, from, addr } => {
                if !self.net.is_open(*conn, 1) {
                    return;
                }
                self.trace
                    .record(now, &N(i), format_args!("<- accepted c{conn} from n{from}"));
                Event::Accepted {
                    conn: ConnId(*conn),
                    addr: *addr,
                }
            }
            Input::Connected { conn, peer } => {
                if self.net.out[i][*peer] != Some(*conn) || !self.net.is_open(*conn, 0) {
                    return;
                }
                self.trace
                    .record(now, &N(i), format_args!("<- connected n{peer} c{conn}"));
                Event::Connected {
                    peer: Pnn(*peer as u32),
                }
            }
            Input::ConnectFailed { conn, peer } => {
                if self.net.out[i][*peer] != Some(*conn) {
                    return;
                }
                self.net.out[i][*peer] = None;
                self.net.close(*conn, 0);
                self.trace.record(
                    now,
                    &N(i),
                    format_args!("<- connect-failed n{peer} c{conn}"),
                );
                Event::ConnectFailed {
                    peer: Pnn(*peer as u32),
                }
            }
            Input::Frame { conn, from, frame } => {
                if !self.net.is_open(*conn, 1) {
                    return;
                }
                let bytes = frame.bytes();
                if self.trace.is_on() {
                    let msg = Msg(wire::decode(bytes).ok().map(|(_, m)| m));
                    self.trace
                        .record(now, &N(i), format_args!("<- n{from} c{conn} {msg}"));
                }
                if let Some(c) = self.capture.as_mut().filter(|c| c.node == i) {
                    c.frames.push(Captured {
                        at: now,
                        from: *from,
                        link: Link::In(ConnId(*conn)),
                        bytes: bytes.to_vec(),
                    });
                }
                Event::Frame {
                    link: Link::In(ConnId(*conn)),
                    bytes,
                }
            }
            Input::ClosedIn { conn } => {
                if !self.net.is_open(*conn, 1) {
                    return;
                }
                self.close_end(*conn, 1);
                self.trace
                    .record(now, &N(i), format_args!("<- closed c{conn} (in)"));
                Event::Closed {
                    link: Link::In(ConnId(*conn)),
                }
            }
            Input::ClosedOut { conn, peer } => {
                if self.net.out[i][*peer] != Some(*conn) {
                    return;
                }
                self.net.out[i][*peer] = None;
                self.close_end(*conn, 0);
                self.trace.record(
                    now,
                    &N(i),
                    format_args!("<- closed c{conn} (out to n{peer})"),
                );
                Event::Closed {
                    link: Link::Out(Pnn(*peer as u32)),
                }
            }
            Input::Lock(r) => {
                self.trace.record(now, &N(i), format_args!("<- lock {r:?}"));
                Event::Lock(*r)
            }
            // Handled above.
            Input::Fenced { .. } => return,
        };
        let Some(mut node) = self.slots[i].node.take() else {
            return;
        };
        let r = node.handle(now, event);
        self.after_handle(i, node, r);
    }

    fn after_handle(&mut self, i: usize, mut node: Box<Node>, r: Result<(), crate::Error>) {
        self.events += 1;
        if let Err(e) = r {
            self.violate(
                "node-contract",
                format!("n{i} refused an input the simulator gave it: {e:?}"),
            );
        }
        self.drain_node(i, &mut node);
        self.slots[i].node = Some(node);
        self.flush_lock();
        // The node may have asked the lock client for something that sent nothing (cut).
        self.arm_lock_timer(i);
        self.observe(i);
        self.arm_timer(i);
    }

    /// Carries out what node `i` (out of its slot) has to say, through the drive path.
    fn drain_node(&mut self, i: usize, node: &mut Node) {
        let mut driver = self.driver.take().unwrap_or_default();
        let now = self.now;
        driver.drain(node, now, &mut Shell { w: self, i });
        self.driver = Some(driver);
    }

    /// Drains a node's outputs outside `handle` (after a start).
    fn drain(&mut self, i: usize) {
        let Some(mut node) = self.slots[i].node.take() else {
            return;
        };
        self.drain_node(i, &mut node);
        self.slots[i].node = Some(node);
        self.flush_lock();
        self.arm_lock_timer(i);
    }

    fn transmit(&mut self, i: usize, peer: Pnn, frame: &[u8]) {
        let j = peer.index();
        // Decoded only for the checks and the trace: a measurement pays for neither.
        let msg = if self.cfg.checks || self.trace.is_on() {
            match wire::decode(frame) {
                Ok((_, msg)) => Some(msg),
                Err(_) => {
                    self.violate(
                        "node-contract",
                        format!("n{i} produced a frame that does not decode: {frame:?}"),
                    );
                    return;
                }
            }
        } else {
            None
        };
        let msg = Msg(msg);
        let now = self.now;
        let Some(conn) = self.net.out[i].get(j).copied().flatten() else {
            // The contract: the shell drops a transmit without an outgoing connection.
            self.trace.record(
                now,
                &N(i),
                format_args!("=> n{j} {msg} dropped: not connected"),
            );
            return;
        };
        if !self.net.is_open(conn, 0) {
            return;
        }
        if let Some((at, m)) = self.net.send(&mut self.net_rng, conn, 0, now) {
            let extra = Mishaps(m);
            self.trace
                .record(now, &N(i), format_args!("=> n{j} c{conn} {msg}{extra}"));
            self.push(
                at,
                Pending::Segment {
                    conn,
                    dir: 0,
                    seg: Segment::Data(Frame::new(frame)),
                },
            );
        }
    }

    fn action(&mut self, i: usize, a: Action, feedback: &mut Feedback) {
        let now = self.now;
        match a {
            Action::Connect { peer, local, .. } => {
                let j = peer.index();
                if let Some(old) = self.net.out[i][j].take() {
                    self.close_end(old, 0);
                }
                let conn = self.net.open(i, j);
                self.net.out[i][j] = Some(conn);
                self.trace
                    .record(now, &N(i), format_args!("-> connect n{j} c{conn}"));
                self.send_seg(conn, 0, Segment::Syn { local });
            }
            Action::Close { link } => {
                self.trace
                    .record(now, &N(i), format_args!("-> close {link:?}"));
                match link {
                    Link::Out(p) => {
                        if let Some(c) = self.net.out[i].get_mut(p.index()).and_then(|c| c.take()) {
                            self.close_end(c, 0);
                        }
                    }
                    Link::In(ConnId(c)) => {
                        if self.net.conns.get(&c).is_some_and(|x| x.ends[1] == i) {
                            self.close_end(c, 1);
                        }
                    }
                }
            }
            Action::AcquireLock => {
                self.slots[i].lock_requests += 1;
                self.trace
                    .record(now, &N(i), format_args!("-> acquire-lock"));
                let mut outs = core::mem::take(&mut self.lock_outs);
                self.lock.acquire(now, i, &mut |o| outs.push(o));
                self.lock_outs = outs;
            }
            Action::ReleaseLock => {
                self.trace
                    .record(now, &N(i), format_args!("-> release-lock"));
                let mut outs = core::mem::take(&mut self.lock_outs);
                self.lock.release(now, i, &mut |o| outs.push(o));
                self.lock_outs = outs;
            }
            Action::ReleaseAllIps => {
                self.released.push((now, i));
                let k = self.hosting.release_all(i);
                self.trace
                    .record(now, &N(i), format_args!("-> release-all-ips ({k} hosted)"));
            }
            Action::Reply { client, response } => {
                self.trace
                    .record(now, &N(i), format_args!("-> reply {client:?} {response:?}"));
                self.replies.push((i, response));
            }
            Action::Exit => {
                self.trace.record(now, &N(i), format_args!("-> exit"));
            }
            Action::TakeIp {
                addr,
                lifetime_secs,
                not_after,
                ..
            } => {
                // The kernel adds it (netlink answers within the step) unless the daemon was
                // stopped between deciding and doing it.
                let error = if now > not_after {
                    Some(62) // ETIME
                } else {
                    let lifetime = Duration::from_secs(u64::from(lifetime_secs));
                    let until = self.hosting.add(i, addr, now, lifetime);
                    self.push(until, Pending::Lapse);
                    self.trace
                        .record(now, &"host", format_args!("n{i} + {addr}"));
                    None
                };
                self.trace
                    .record(now, &N(i), format_args!("-> take {addr} ({error:?})"));
                feedback.push(Event::IpResult(crate::node::IpResult {
                    addr,
                    op: crate::wire::IpOp::Take,
                    error,
                }));
            }
            Action::ReleaseIp { addr, .. } => {
                let had = self.hosting.release(i, addr);
                self.trace.record(
                    now,
                    &N(i),
                    format_args!("-> release {addr} (had it: {had})"),
                );
                feedback.push(Event::IpResult(crate::node::IpResult {
                    addr,
                    op: crate::wire::IpOp::Release,
                    error: None,
                }));
            }
            Action::RenewIps { lifetime_secs } => {
                let lifetime = Duration::from_secs(u64::from(lifetime_secs));
                if let Some(until) = self.hosting.renew(i, now, lifetime) {
                    self.push(until, Pending::Lapse);
                }
            }
            Action::ReloadIps => {
                feedback.push(Event::PublicAddresses(public_addresses(&self.cfg.ips)));
            }
        }
    }

    /// Hands the lock service's output on: requests and answers on their way, results to
    /// the nodes (after the node that caused them is back in its slot).
    fn flush_lock(&mut self) {
        while !self.lock_outs.is_empty() {
            let outs = core::mem::take(&mut self.lock_outs);
            let mut touched: Vec<usize> = Vec::new();
            for o in outs {
                match o {
                    lock::Out::ToService {
                        at,
                        node,
                        incarnation,
                        req,
                        op,
                    } => self.push(
                        at,
                        Pending::ToService {
                            node,
                            life: incarnation,
                            req,
                            op,
                        },
                    ),
                    lock::Out::ToClient {
                        at,
                        node,
                        incarnation,
                        req,
                        reply,
                    } => self.push(
                        at,
                        Pending::ToClient {
                            node,
                            life: incarnation,
                            req,
                            reply,
                        },
                    ),
                    lock::Out::Result { node, result } => {
                        self.trace
                            .record(self.now, &"lock", format_args!("n{node} {result:?}"));
                        self.lock_now(node, result);
                    }
                }
                let node = match o {
                    lock::Out::ToService { node, .. }
                    | lock::Out::ToClient { node, .. }
                    | lock::Out::Result { node, .. } => node,
                };
                if !touched.contains(&node) {
                    touched.push(node);
                }
            }
            for i in touched {
                self.arm_lock_timer(i);
            }
        }
    }

    // ----- network -----

    fn send_seg(&mut self, conn: u64, dir: usize, seg: Segment) {
        if let Some((at, _)) = self.net.send(&mut self.net_rng, conn, dir, self.now) {
            self.push(at, Pending::Segment { conn, dir, seg });
        }
    }

    /// Closes endpoint `end` of `conn`, sending a FIN if the other end is still open.
    fn close_end(&mut self, conn: u64, end: usize) {
        if self.net.is_open(conn, end) && self.net.close(conn, end) {
            self.send_seg(conn, end, Segment::Fin);
        }
    }

    fn on_segment(&mut self, conn: u64, dir: usize, seg: Segment) {
        let Some(c) = self.net.conns.get(&conn) else {
            return;
        };
        let (src, dst) = (c.ends[dir], c.ends[1 - dir]);
        let host_up = self.slots[dst].state != NodeState::HostDown;
        let life = self.slots[dst].life;
        match self.net.arrive(conn, dir, seg, host_up) {
            Arrival::Deliver(seg) => match seg {
                Segment::Syn { local } => {
                    if !host_up {
                        // Nobody answers.
                    } else if self.slots[dst].node.is_none() {
                        // Nobody listens: the kernel refuses.
                        self.send_seg(conn, 1, Segment::Refused);
                    } else {
                        // The kernel accepts even for a stopped process.
                        self.net.accept(conn);
                        self.send_seg(conn, 1, Segment::SynAck);
                        self.deliver(
                            dst,
                            life,
                            Input::Accepted {
                                conn,
                                from: src,
                                addr: local,
                            },
                        );
                    }
                }
                Segment::SynAck => self.deliver(dst, life, Input::Connected { conn, peer: src }),
                Segment::Refused => {
                    self.deliver(dst, life, Input::ConnectFailed { conn, peer: src })
                }
                Segment::Data(frame) => self.deliver(
                    dst,
                    life,
                    Input::Frame {
                        conn,
                        from: src,
                        frame,
                    },
                ),
                Segment::Fin | Segment::Rst => {
                    let input = if dir == 0 {
                        Input::ClosedIn { conn }
                    } else {
                        Input::ClosedOut { conn, peer: src }
                    };
                    self.deliver(dst, life, input);
                }
            },
            Arrival::Closed { reset: true } => self.send_seg(conn, 1 - dir, Segment::Rst),
            Arrival::Closed { reset: false } | Arrival::Stalled | Arrival::Lost => {}
        }
    }

    /// The path `a -> b` came up: what waited on it goes now (after a retransmission timer).
    fn resume(&mut self, a: usize, b: usize) {
        let rto = self.net.cfg.rto_min;
        if let Some(t) = self.unheard_since[b][a].as_mut() {
            // What `a` sent before it fell silent may arrive now: b hears it until then.
            *t = self.now + rto;
        }
        for (conn, dir, segs) in self.net.take_stalled(a, b) {
            let wait = Duration::from_nanos(self.net_rng.below(rto.as_nanos() as u64 + 1));
            for seg in segs {
                let (d, _) = self.net.sample(&mut self.net_rng, a, b);
                let at = self.net.resend(conn, dir, self.now + wait + d);
                self.push(at, Pending::Segment { conn, dir, seg });
            }
        }
    }

    fn cross_pairs(groups: &[Vec<usize>]) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        for (gi, ga) in groups.iter().enumerate() {
            for (gj, gb) in groups.iter().enumerate() {
                if gi != gj {
                    for &a in ga {
                        for &b in gb {
                            v.push((a, b));
                        }
                    }
                }
            }
        }
        v
    }

    // ----- faults -----

    fn fault(&mut self, f: Fault) {
        let now = self.now;
        self.trace.record(now, &"*", format_args!("{f}"));
        self.faults.push((now, f.clone()));
        let n = self.cfg.nodes;
        match f {
            Fault::Crash(i) => self.kill(i, Kill::Crash),
            Fault::HostDown(i) => self.kill(i, Kill::Host),
            Fault::Stop(i) => self.kill(i, Kill::Stop),
            Fault::Start(i) => self.start(i),
            Fault::Freeze(i) => self.freeze(i),
            Fault::Thaw(i) => self.thaw(i),
            Fault::Slow(i, d) => self.slots[i].slow = d,
            Fault::Partition(g) => {
                for (a, b) in Self::cross_pairs(&g) {
                    self.net.cut(a, b);
                }
            }
            Fault::Unpartition(g) => {
                for (a, b) in Self::cross_pairs(&g) {
                    if self.net.restore(a, b) {
                        self.resume(a, b);
                    }
                }
            }
            Fault::Cut { from, to } => self.net.cut(from, to),
            Fault::Restore { from, to } => {
                if self.net.restore(from, to) {
                    self.resume(from, to);
                }
            }
            Fault::Heal => {
                for (a, b) in self.net.heal_all() {
                    self.resume(a, b);
                }
            }
            Fault::Link { from, to, params } => self.net.set_params(from, to, params),
            Fault::ResetLinks => self.net.reset_params(),
            Fault::LockCut(i, cut) => self.lock.set_cut(i, cut),
            Fault::LockOutage(d) => self.lock.outage(now + d),
            Fault::BreakLock => {
                if let Some(i) = self.lock.break_lock(now) {
                    self.trace
                        .record(now, &"lock", format_args!("n{i} Lost (broken)"));
                    self.lock_now(i, LockResult::Lost);
                }
            }
            Fault::AllClear { keep_down } => {
                for (a, b) in self.net.heal_all() {
                    self.resume(a, b);
                }
                self.net.reset_params();
                for i in 0..n {
                    self.lock.set_cut(i, false);
                    self.slots[i].slow = Duration::ZERO;
                    self.thaw(i);
                    if keep_down.contains(&i) {
                        self.kill(i, Kill::Crash);
                    } else {
                        self.start(i);
                    }
                }
            }
        }
        self.update_reach();
        for i in 0..n {
            self.observe(i);
        }
    }

    /// The lock client tells node `i` something: lock news cannot wait behind frames held
    /// during a freeze (the node would act on a lock it no longer has), but it keeps its place
    /// behind earlier news still in a slow node's pipeline.
    fn lock_now(&mut self, i: usize, r: LockResult) {
        let s = &self.slots[i];
        if s.node.is_none() {
            return;
        }
        let life = s.life;
        if s.queued > 0 || s.state == NodeState::Frozen {
            // Behind earlier lock news still in the pipeline, or held for the thaw (where lock
            // news goes first).
            self.deliver(i, life, Input::Lock(r));
        } else {
            self.handle_input(i, Input::Lock(r));
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    Crash,
    Host,
    Stop,
}

/// Prints a frame's message for the trace, as `{:?}` would (`?` when it was not decoded).
struct Msg(Option<Message>);

impl fmt::Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(m) => write!(f, "{m:?}"),
            None => f.write_str("?"),
        }
    }
}

/// Prints a segment's mishaps for the trace.
struct Mishaps(net::Mishaps);

impl fmt::Display for Mishaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        if m.retransmits > 0 {
            write!(f, " [retx {}]", m.retransmits)?;
        }
        if m.reordered {
            f.write_str(" [reordered]")?;
        }
        if m.duplicated {
            f.write_str(" [dup discarded]")?;
        }
        Ok(())
    }
}
