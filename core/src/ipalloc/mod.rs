//! Public-IP allocation: CTDB's three algorithms, bit for bit.
//!
//! Given the public addresses of a cluster, who holds each one now, and which nodes can host
//! which addresses, [`allocate`] decides who holds each address next, exactly as CTDB's
//! recovery master does in a takeover run:
//!
//! * [`Algorithm::Lcp2`] (`IPAllocAlgorithm=2`, the default): assigns by least added
//!   "imbalance" (squared common-prefix lengths between addresses on a node), then moves
//!   addresses to nodes that held nothing at the start of the run.
//! * [`Algorithm::Deterministic`] (`0`): address *k* (in CTDB's order) goes to node *k mod n*
//!   (or its `home_nodes` entry), whatever holds it now.
//! * [`Algorithm::NonDeterministic`] (`1`): keeps current owners, balances by address count.
//!
//! Everything is a pure function of its input: no clock, no randomness (CTDB's
//! "non-deterministic" algorithm is history-dependent, not random), no hashing. The input is
//! an [`AllocInput`] (built from per-node views with [`AllocInput::merge`], from a shared
//! address list with [`AllocInput::from_nodes`], or from ready-made per-address facts with
//! [`AllocInput::new`]); the tunables are in [`Options`]. The result is an [`Allocation`]: one
//! [`Assignment`] per address in CTDB's order (descending address, IPv4 in the low 32 bits of
//! a 128-bit key), and the [`Event`]s CTDB would log on the way.
//!
//! ```
//! use core::net::IpAddr;
//! use pharos_core::ipalloc::{allocate, AllocInput, Algorithm, ConfiguredAddress, NodeState, Options};
//! use pharos_core::{NodeFlags, Pnn};
//!
//! let nodes = [NodeState::healthy(), NodeState::healthy(), NodeState::with_flags(NodeFlags::UNHEALTHY)];
//! let addrs: Vec<ConfiguredAddress> = (1..=6)
//!     .map(|i| ConfiguredAddress::everywhere(IpAddr::from([10, 0, 0, i]), Some(Pnn(u32::from(i) % 3))))
//!     .collect();
//! let input = AllocInput::from_nodes(&nodes, &addrs).unwrap();
//! let result = allocate(&input, Algorithm::Lcp2, &Options::default());
//! // Node 2 is unhealthy: its two addresses move, nothing else does.
//! assert!(result.assignments().iter().all(|a| a.pnn.is_some() && a.pnn != Some(Pnn(2))));
//! assert_eq!(result.moved().count(), 2);
//! ```

mod common;
mod deterministic;
mod input;
mod lcp2;
mod nondeterministic;

pub use deterministic::{parse_home_nodes, HomeNode};
pub use input::{AddressInput, AllocInput, ConfiguredAddress, NodeState, NodeView};

use crate::config::Tunables;
use crate::types::Pnn;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

/// Which of CTDB's algorithms to run (the `IPAllocAlgorithm` tunable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `0`: modulo placement (plus `home_nodes`), ignoring current owners.
    Deterministic,
    /// `1`: keep current owners, balance by count.
    NonDeterministic,
    /// `2`: LCP2, CTDB's default.
    #[default]
    Lcp2,
}

impl Algorithm {
    /// The algorithm for a value of `IPAllocAlgorithm`; as in CTDB, anything but 0 and 1 is LCP2.
    pub fn from_tunable(value: u32) -> Self {
        match value {
            0 => Algorithm::Deterministic,
            1 => Algorithm::NonDeterministic,
            _ => Algorithm::Lcp2,
        }
    }

    /// The algorithm selected by a set of tunables.
    pub fn from_tunables(tunables: &Tunables) -> Self {
        Self::from_tunable(tunables.ip_alloc_algorithm)
    }

    /// The `IPAllocAlgorithm` value that selects this algorithm.
    pub fn tunable_value(self) -> u32 {
        match self {
            Algorithm::Deterministic => 0,
            Algorithm::NonDeterministic => 1,
            Algorithm::Lcp2 => 2,
        }
    }

    /// Lower-case name: `deterministic`, `nondeterministic` or `lcp2`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Deterministic => "deterministic",
            Algorithm::NonDeterministic => "nondeterministic",
            Algorithm::Lcp2 => "lcp2",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a name (`lcp2`, `deterministic`, `nondeterministic`, also `non-deterministic`, any
/// case) or a tunable value (`0`, `1`, `2`).
impl FromStr for Algorithm {
    type Err = AllocError;

    fn from_str(s: &str) -> Result<Self, AllocError> {
        let t = s.trim();
        let by_value = match t {
            "0" => Some(Algorithm::Deterministic),
            "1" => Some(Algorithm::NonDeterministic),
            "2" => Some(Algorithm::Lcp2),
            _ => None,
        };
        let by_name = [
            Algorithm::Deterministic,
            Algorithm::NonDeterministic,
            Algorithm::Lcp2,
        ]
        .into_iter()
        .find(|a| t.eq_ignore_ascii_case(a.name()));
        by_value
            .or(by_name)
            .or_else(|| {
                t.eq_ignore_ascii_case("non-deterministic")
                    .then_some(Algorithm::NonDeterministic)
            })
            .ok_or(AllocError::UnknownAlgorithm)
    }
}

/// The knobs of one allocation run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `NoIPFailback`: never move an address that has a healthy holder (LCP2 and
    /// non-deterministic skip rebalancing; deterministic ignores it, with a warning event).
    pub no_ip_failback: bool,
    /// `NoIPTakeover`: no node takes an address it does not hold (addresses on nodes that can no
    /// longer host them are still released).
    pub no_ip_takeover: bool,
    /// Nodes LCP2 may move addresses to even though they hold some (CTDB's list after
    /// `ctdb reloadips`). PNNs outside the cluster are ignored with a warning event.
    pub force_rebalance: Vec<Pnn>,
    /// Deterministic only: the `home_nodes` file, in file order (see [`parse_home_nodes`]).
    pub home_nodes: Vec<HomeNode>,
}

impl Options {
    /// `NoIPFailback` and `NoIPTakeover` from a set of tunables; no forced nodes, no home nodes.
    ///
    /// `NoIPHostOnAllDisabled` is obsolete in current CTDB and deliberately not read: callers
    /// that accept it should warn (its [`crate::config::TUNABLES`] entry is marked obsolete).
    pub fn from_tunables(tunables: &Tunables) -> Self {
        Options {
            no_ip_failback: tunables.no_ip_failback,
            no_ip_takeover: tunables.no_ip_takeover,
            force_rebalance: Vec::new(),
            home_nodes: Vec::new(),
        }
    }
}

/// The new holder of one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The address.
    pub addr: IpAddr,
    /// Who holds it after the run; `None` = nobody can (CTDB's -1).
    pub pnn: Option<Pnn>,
    /// Who held it before the run (after merging the nodes' views).
    pub previous: Option<Pnn>,
}

impl Assignment {
    /// Whether the holder changes (including becoming unassigned).
    pub fn is_move(&self) -> bool {
        self.pnn != self.previous
    }
}

/// Something CTDB logs during an allocation; a shell may log or show these.
///
/// The `Display` form is CTDB's log line (without the timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The holder can no longer host the address, which is taken from it before allocating
    /// (CTDB debug: `Unassign IP: ADDR from PNN`).
    Released {
        /// The address.
        addr: IpAddr,
        /// Its former holder.
        from: Pnn,
    },
    /// An unassigned address was given to a node. `cost` is LCP2's added imbalance
    /// (CTDB info: ` ADDR -> PNN [+COST]`); `None` for the other algorithms.
    Assigned {
        /// The address.
        addr: IpAddr,
        /// Its new holder.
        to: Pnn,
        /// LCP2 only: how much the holder's imbalance grew.
        cost: Option<u32>,
    },
    /// Rebalancing moved an address from one node to another. For LCP2, `imbalance` holds the
    /// change of the source's and the destination's imbalance, as CTDB prints them
    /// (`SRC [-X] -> ADDR -> DST [+Y]`).
    Moved {
        /// The address.
        addr: IpAddr,
        /// Its former holder.
        from: Pnn,
        /// Its new holder.
        to: Pnn,
        /// LCP2 only: (source change, destination change), as signed 32-bit values.
        imbalance: Option<(i32, i32)>,
    },
    /// No node can take the address; it stays unassigned (CTDB warning: `Failed to find node to
    /// cover ip ADDR`).
    Uncovered {
        /// The address.
        addr: IpAddr,
    },
    /// A force-rebalance PNN is not a node of the cluster and was ignored.
    UnknownRebalanceNode {
        /// The PNN given.
        pnn: Pnn,
    },
    /// A `home_nodes` entry names a PNN outside the cluster; the modulo placement was kept.
    HomeNodeOutOfRange {
        /// The address.
        addr: IpAddr,
        /// The PNN given.
        pnn: Pnn,
    },
    /// `NoIPFailback` is set but the deterministic algorithm ignores it.
    NoIpFailbackIgnored,
    /// LCP2 stopped rebalancing after an implausible number of moves (only reachable when
    /// CTDB's 32-bit imbalance sums wrap around, which needs hundreds of addresses on one node).
    RebalanceLimit,
}

impl Event {
    /// Whether CTDB logs this at warning level or above (the rest is info/debug).
    pub fn is_warning(&self) -> bool {
        !matches!(
            self,
            Event::Released { .. } | Event::Assigned { .. } | Event::Moved { .. }
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Event::Released { addr, from } => write!(f, "Unassign IP: {addr} from {from}"),
            Event::Assigned {
                addr,
                to,
                cost: Some(c),
            } => write!(f, " {addr} -> {to} [+{c}]"),
            Event::Assigned {
                addr,
                to,
                cost: None,
            } => write!(f, "{addr} -> {to}"),
            Event::Moved {
                addr,
                from,
                to,
                imbalance: Some((s, d)),
            } => {
                write!(f, "{from} [{s}] -> {addr} -> {to} [+{d}]")
            }
            Event::Moved {
                addr,
                from,
                to,
                imbalance: None,
            } => {
                write!(f, "{from} -> {addr} -> {to}")
            }
            Event::Uncovered { addr } => write!(f, "Failed to find node to cover ip {addr}"),
            Event::UnknownRebalanceNode { pnn } => {
                write!(f, "Ignoring force-rebalance of unknown node {pnn}")
            }
            Event::HomeNodeOutOfRange { addr, pnn } => {
                write!(
                    f,
                    "home_nodes: node {pnn} for {addr} is not in the cluster, ignored"
                )
            }
            Event::NoIpFailbackIgnored => f.write_str(
                "WARNING: 'NoIPFailback' set but ignored - incompatible with 'Deterministic IPs",
            ),
            Event::RebalanceLimit => f.write_str("LCP2: rebalancing stopped at the move limit"),
        }
    }
}

/// The result of an allocation run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    assignments: Vec<Assignment>,
    keys: Vec<u128>,
    events: Vec<Event>,
}

impl Allocation {
    /// One entry per address, in CTDB's order (descending [`sort_key`]).
    pub fn assignments(&self) -> &[Assignment] {
        &self.assignments
    }

    /// What CTDB would have logged, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The new holder of `addr`: `None` if the address is not in the input, `Some(None)` if it is
    /// left unassigned.
    pub fn owner_of(&self, addr: IpAddr) -> Option<Option<Pnn>> {
        let key = sort_key(addr);
        self.keys
            .binary_search_by(|k| key.cmp(k))
            .ok()
            .map(|i| self.assignments[i].pnn)
    }

    /// The addresses whose holder changes.
    pub fn moved(&self) -> impl Iterator<Item = &Assignment> {
        self.assignments.iter().filter(|a| a.is_move())
    }

    /// How many addresses each node holds afterwards (index = PNN).
    pub fn counts(&self, node_count: usize) -> Vec<usize> {
        let mut c = alloc::vec![0; node_count];
        for a in &self.assignments {
            if let Some(p) = a.pnn {
                if let Some(slot) = c.get_mut(p.index()) {
                    *slot += 1;
                }
            }
        }
        c
    }
}

/// Why an [`AllocInput`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The same address (same CTDB key) appears twice in one list.
    DuplicateAddress(IpAddr),
    /// A PNN (holder or eligible node) is not below the node count.
    PnnOutOfRange {
        /// The address it was given for.
        addr: IpAddr,
        /// The PNN.
        pnn: Pnn,
        /// The node count.
        nodes: usize,
    },
    /// Nodes × addresses exceeds [`MAX_CELLS`], or addresses exceed [`MAX_ADDRESSES`].
    TooLarge {
        /// The node count.
        nodes: usize,
        /// The address count.
        addresses: usize,
    },
    /// Not an algorithm name or number.
    UnknownAlgorithm,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AllocError::DuplicateAddress(a) => write!(f, "address {a} is listed twice"),
            AllocError::PnnOutOfRange { addr, pnn, nodes } => write!(
                f,
                "address {addr}: node {pnn} is not in the cluster (which has {nodes} nodes)"
            ),
            AllocError::TooLarge { nodes, addresses } => write!(
                f,
                "{nodes} nodes x {addresses} addresses is too large (at most {MAX_ADDRESSES} \
                 addresses and {MAX_CELLS} node-address pairs)"
            ),
            AllocError::UnknownAlgorithm => f.write_str(
                "unknown IP allocation algorithm (expected lcp2, deterministic, nondeterministic, \
                 or 0, 1, 2)",
            ),
        }
    }
}

impl core::error::Error for AllocError {}

/// The largest nodes × addresses an [`AllocInput`] accepts (the allocator keeps per-pair tables;
/// 256 nodes × 65536 addresses fit).
pub const MAX_CELLS: usize = 1 << 24;

/// The most addresses an [`AllocInput`] accepts: below this, LCP2's per-node sums of squared
/// distances (at most (addresses - 1) × 128²) cannot wrap around 32 bits, in CTDB or here,
/// which the allocator relies on.
pub const MAX_ADDRESSES: usize = 1 << 18;

/// Runs `algorithm` on `input` with `options`. Never fails: every input invariant was checked
/// when the [`AllocInput`] was built.
pub fn allocate(input: &AllocInput, algorithm: Algorithm, options: &Options) -> Allocation {
    let mut work = common::Work::new(input, options.no_ip_takeover);
    match algorithm {
        Algorithm::Lcp2 => lcp2::run(&mut work, options),
        Algorithm::Deterministic => deterministic::run(&mut work, options),
        Algorithm::NonDeterministic => nondeterministic::run(&mut work, options),
    }
    work.finish()
}

/// CTDB's 128-bit ordering key of an address: IPv4 `a.b.c.d` is the 32-bit number in the low
/// bits, IPv6 is its 128-bit value. CTDB iterates addresses in descending key order.
pub fn sort_key(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// LCP2's "distance" (really a similarity) between two keys: the sum over the four 32-bit words
/// of the leading zeros of their XOR. CTDB visits all four words, so for IPv6 addresses that
/// differ in more than one word this over-counts the common prefix; reproduced as is.
pub fn key_distance(a: u128, b: u128) -> u32 {
    let x = a ^ b;
    // leading_zeros(0) is 32, which is exactly CTDB's "add 32 for an equal word".
    ((x >> 96) as u32).leading_zeros()
        + ((x >> 64) as u32).leading_zeros()
        + ((x >> 32) as u32).leading_zeros()
        + (x as u32).leading_zeros()
}

/// [`key_distance`] of two addresses.
pub fn distance(a: IpAddr, b: IpAddr) -> u32 {
    key_distance(sort_key(a), sort_key(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::NodeFlags;
    use alloc::string::ToString;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn distances_match_ctdb_examples() {
        assert_eq!(distance(v4("192.168.20.249"), v4("192.168.20.250")), 126);
        assert_eq!(distance(v4("192.168.21.1"), v4("192.168.20.1")), 119);
        assert_eq!(distance(v4("10.0.0.1"), v4("10.0.0.1")), 128);
        // IPv6 differing in words 0 and 3: clz(w0) + 32 + 32 + clz(w3), not a prefix length.
        let a: IpAddr = "8000::1".parse().unwrap();
        let b: IpAddr = "::3".parse().unwrap();
        // Word 0 differs in its top bit (clz 0), words 1-2 are equal, word 3 gives clz(2) = 30.
        assert_eq!(distance(a, b), 32 + 32 + 30);
        // Mixed families compare the IPv6 words against zeros.
        assert_eq!(distance(v4("0.0.0.1"), "::1".parse().unwrap()), 128);
    }

    #[test]
    fn keys_order_v6_above_v4() {
        assert!(sort_key("::1:0:0:0".parse().unwrap()) > sort_key(v4("255.255.255.255")));
        assert!(sort_key(v4("10.0.0.2")) > sort_key(v4("10.0.0.1")));
    }

    #[test]
    fn algorithm_names_and_values() {
        for a in [
            Algorithm::Deterministic,
            Algorithm::NonDeterministic,
            Algorithm::Lcp2,
        ] {
            assert_eq!(a.name().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.tunable_value().to_string().parse::<Algorithm>(), Ok(a));
            assert_eq!(Algorithm::from_tunable(a.tunable_value()), a);
        }
        assert_eq!(Algorithm::from_tunable(7), Algorithm::Lcp2);
        assert_eq!("LCP2".parse::<Algorithm>(), Ok(Algorithm::Lcp2));
        assert_eq!(
            "bogus".parse::<Algorithm>(),
            Err(AllocError::UnknownAlgorithm)
        );
        assert_eq!("3".parse::<Algorithm>(), Err(AllocError::UnknownAlgorithm));
    }

    fn cluster(states: &[NodeState], count: u8, holder: Option<u32>) -> AllocInput {
        let addrs: Vec<ConfiguredAddress> = (1..=count)
            .map(|i| ConfiguredAddress::everywhere(IpAddr::from([10, 0, 0, i]), holder.map(Pnn)))
            .collect();
        AllocInput::from_nodes(states, &addrs).unwrap()
    }

    #[test]
    fn warnings_are_events() {
        let healthy = [NodeState::healthy(); 2];
        let input = cluster(&healthy, 4, None);
        let o = Options {
            no_ip_failback: true,
            force_rebalance: alloc::vec![Pnn(7)],
            home_nodes: alloc::vec![HomeNode {
                addr: IpAddr::from([10, 0, 0, 1]),
                pnn: Pnn(9)
            }],
            ..Options::default()
        };
        let lcp2 = allocate(&input, Algorithm::Lcp2, &o);
        assert!(lcp2
            .events()
            .contains(&Event::UnknownRebalanceNode { pnn: Pnn(7) }));
        let det = allocate(&input, Algorithm::Deterministic, &o);
        assert!(det.events().contains(&Event::NoIpFailbackIgnored));
        assert!(det.events().contains(&Event::HomeNodeOutOfRange {
            addr: IpAddr::from([10, 0, 0, 1]),
            pnn: Pnn(9)
        }));
        assert!(det
            .events()
            .iter()
            .all(|e| !matches!(e, Event::Uncovered { .. })));
        assert_eq!(det.counts(2), [2, 2]);
    }

    #[test]
    fn no_ip_takeover_releases_but_never_takes() {
        let states = [
            NodeState::with_flags(NodeFlags::UNHEALTHY),
            NodeState::healthy(),
        ];
        let input = cluster(&states, 3, Some(0));
        let o = Options {
            no_ip_takeover: true,
            ..Options::default()
        };
        for alg in [Algorithm::Lcp2, Algorithm::NonDeterministic] {
            let r = allocate(&input, alg, &o);
            assert!(r.assignments().iter().all(|a| a.pnn.is_none()), "{alg}");
            let released = r
                .events()
                .iter()
                .filter(|e| matches!(e, Event::Released { .. }));
            assert_eq!(released.count(), 3, "{alg}");
            assert!(r.events().iter().any(|e| e.is_warning()), "{alg}");
        }
    }

    #[test]
    fn forced_rebalance_lets_a_busy_node_receive() {
        // Node 0 holds all four; node 1 holds one: neither is a candidate unless forced.
        let healthy = [NodeState::healthy(); 2];
        let mut addrs: Vec<ConfiguredAddress> = (1..=4)
            .map(|i| ConfiguredAddress::everywhere(IpAddr::from([10, 0, 0, i]), Some(Pnn(0))))
            .collect();
        addrs.push(ConfiguredAddress::everywhere(
            IpAddr::from([10, 0, 1, 1]),
            Some(Pnn(1)),
        ));
        let input = AllocInput::from_nodes(&healthy, &addrs).unwrap();
        let plain = allocate(&input, Algorithm::Lcp2, &Options::default());
        assert_eq!(plain.moved().count(), 0);
        let forced = Options {
            force_rebalance: alloc::vec![Pnn(1)],
            ..Options::default()
        };
        let r = allocate(&input, Algorithm::Lcp2, &forced);
        assert!(r.moved().count() > 0);
        assert!(r.moved().all(|a| a.pnn == Some(Pnn(1))));
        assert_eq!(
            allocate(&input.with_allocation(&r), Algorithm::Lcp2, &forced)
                .moved()
                .count(),
            0
        );
    }

    #[test]
    fn owner_of_and_empty_inputs() {
        let input = cluster(&[NodeState::healthy()], 2, None);
        let r = allocate(&input, Algorithm::Lcp2, &Options::default());
        assert_eq!(r.owner_of(IpAddr::from([10, 0, 0, 2])), Some(Some(Pnn(0))));
        assert_eq!(r.owner_of(IpAddr::from([10, 0, 0, 3])), None);
        // No nodes at all: everything stays unassigned, nothing panics (k mod 0).
        let none = AllocInput::new(
            0,
            alloc::vec![AddressInput {
                addr: IpAddr::from([10, 0, 0, 1]),
                current: None,
                known_on: alloc::vec![],
                available_on: alloc::vec![],
            }],
        )
        .unwrap();
        for alg in [
            Algorithm::Lcp2,
            Algorithm::Deterministic,
            Algorithm::NonDeterministic,
        ] {
            let r = allocate(&none, alg, &Options::default());
            assert_eq!(r.assignments()[0].pnn, None);
            assert_eq!(
                r.events(),
                [Event::Uncovered {
                    addr: IpAddr::from([10, 0, 0, 1])
                }]
            );
        }
    }

    #[test]
    fn options_from_tunables() {
        let mut t = Tunables::default();
        assert_eq!(Options::from_tunables(&t), Options::default());
        assert_eq!(Algorithm::from_tunables(&t), Algorithm::Lcp2);
        t.set("NoIPFailback", "1").unwrap();
        t.set("NoIPTakeover", "1").unwrap();
        t.set("IPAllocAlgorithm", "1").unwrap();
        let o = Options::from_tunables(&t);
        assert!(o.no_ip_failback && o.no_ip_takeover);
        assert_eq!(Algorithm::from_tunables(&t), Algorithm::NonDeterministic);
    }
}
