//! Properties of the IP allocator over random clusters, beyond CTDB's own cases:
//! coverage, order independence, stability, "only the failed node's addresses move", and
//! agreement with a naive, literal transcription of CTDB's C code (the allocator keeps
//! incremental tables instead of recomputing sums; the reference recomputes everything).

use pharos_core::ipalloc::{
    allocate, Algorithm, AllocInput, Allocation, ConfiguredAddress, HomeNode, NodeState, Options,
};
use pharos_core::rng::Rng;
use pharos_core::{NodeFlags, Pnn};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const ALGORITHMS: [Algorithm; 3] = [
    Algorithm::Lcp2,
    Algorithm::Deterministic,
    Algorithm::NonDeterministic,
];

/// A random cluster: node states and a shared address list.
#[derive(Clone, Debug)]
struct Cluster {
    nodes: Vec<NodeState>,
    addrs: Vec<ConfiguredAddress>,
}

impl Cluster {
    fn input(&self) -> AllocInput {
        AllocInput::from_nodes(&self.nodes, &self.addrs).expect("generated clusters are valid")
    }

    /// Whether `pnn` lists `addr` and can host addresses.
    fn eligible(&self, addr: IpAddr, pnn: Pnn) -> bool {
        let a = self.addrs.iter().find(|a| a.addr == addr).unwrap();
        let listed = a.nodes.as_ref().is_none_or(|l| l.contains(&pnn));
        listed && self.nodes[pnn.index()].can_host_ips()
    }
}

fn node_state() -> impl Strategy<Value = NodeState> {
    let flag = prop_oneof![
        6 => Just(0u32),
        1 => Just(0x01),
        1 => Just(0x02),
        1 => Just(0x04),
        1 => Just(0x08),
        1 => Just(0x20),
        1 => Just(0x10),
    ];
    (flag, prop::bool::weighted(0.92)).prop_map(|(f, running)| NodeState {
        flags: NodeFlags(f),
        running,
    })
}

/// Addresses clustered in a few IPv4 and IPv6 subnets, so that LCP2's distances vary. `mode`
/// picks the mix, so that each of the allocator's key widths is exercised: 0 = anything,
/// 1 = IPv4 (one varying word), 2 = IPv6 varying in two words, 3 = IPv6 in one /96.
fn address(mode: u8) -> BoxedStrategy<IpAddr> {
    let v4 = (0u8..3, any::<u8>())
        .prop_map(|(net, host)| IpAddr::V4(Ipv4Addr::new(192, 168, 20 + net, host)));
    let v4b = (any::<u8>(), any::<u8>()).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, a, 0, b)));
    let v6 = (0u16..3, any::<u16>())
        .prop_map(|(net, host)| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, net, 0, 0, 0, host)));
    let v6_96 = (any::<u16>(), any::<u16>())
        .prop_map(|(a, b)| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 7, 0, 0, a, b)));
    let any6 = any::<u128>().prop_map(|x| IpAddr::V6(Ipv6Addr::from(x)));
    match mode {
        1 => prop_oneof![v4, v4b].boxed(),
        2 => v6.boxed(),
        3 => v6_96.boxed(),
        _ => prop_oneof![4 => v4, 2 => v4b, 2 => v6, 1 => v6_96, 1 => any6].boxed(),
    }
}

fn cluster(max_nodes: usize, max_addrs: usize) -> impl Strategy<Value = Cluster> {
    (prop::collection::vec(node_state(), 1..=max_nodes), 0u8..4).prop_flat_map(
        move |(nodes, mode)| {
            let n = nodes.len() as u32;
            let entry = (
                address(mode),
                prop::option::weighted(0.7, 0..n + 1), // n = "a node that does not exist"
                prop::option::weighted(0.4, prop::collection::vec(0..n, 0..=n as usize)),
            );
            (Just(nodes), prop::collection::vec(entry, 0..=max_addrs)).prop_map(
                move |(nodes, raw)| {
                    let mut seen = std::collections::BTreeSet::new();
                    let addrs = raw
                        .into_iter()
                        .filter(|(a, _, _)| seen.insert(pharos_core::ipalloc::sort_key(*a)))
                        .map(|(addr, cur, on)| ConfiguredAddress {
                            addr,
                            // A holder past the last node: no node claims it, so it is unassigned.
                            current: cur.map(Pnn),
                            nodes: on.map(|l| l.into_iter().map(Pnn).collect()),
                        })
                        .collect();
                    Cluster { nodes, addrs }
                },
            )
        },
    )
}

fn options(n: usize) -> impl Strategy<Value = Options> {
    (
        any::<bool>(),
        prop::bool::weighted(0.15),
        prop::collection::vec(0..n as u32 + 2, 0..3),
    )
        .prop_map(|(no_ip_failback, no_ip_takeover, force)| Options {
            no_ip_failback,
            no_ip_takeover,
            force_rebalance: force.into_iter().map(Pnn).collect(),
            home_nodes: Vec::new(),
        })
}

fn shuffled<T: Clone>(v: &[T], seed: u64) -> Vec<T> {
    let mut out = v.to_vec();
    let mut rng = Rng::new(seed);
    for i in (1..out.len()).rev() {
        out.swap(i, rng.below(i as u64 + 1) as usize);
    }
    out
}

fn holders(a: &Allocation) -> Vec<(IpAddr, Option<Pnn>)> {
    a.assignments().iter().map(|x| (x.addr, x.pnn)).collect()
}

// ---------------------------------------------------------------------------------------------
// The reference: CTDB's C functions transcribed line by line, recomputing every sum.

// Index loops on purpose: this mirrors the C code loop for loop.
#[allow(clippy::needless_range_loop)]
mod reference {
    use super::*;

    const NONE: i64 = -1;

    pub struct Ctdb {
        n: usize,
        keys: Vec<[u32; 4]>,
        addrs: Vec<IpAddr>,
        pub pnn: Vec<i64>,
        available: Vec<Vec<bool>>,
        no_ip_takeover: bool,
        no_ip_failback: bool,
        force_rebalance: Vec<u32>,
        home: Vec<(IpAddr, u32)>,
    }

    fn ip_key(a: IpAddr) -> [u32; 4] {
        match a {
            IpAddr::V4(v) => [0, 0, 0, u32::from_be_bytes(v.octets())],
            IpAddr::V6(v) => {
                let o = v.octets();
                let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
                [w(0), w(4), w(8), w(12)]
            }
        }
    }

    fn ip_distance(a: &[u32; 4], b: &[u32; 4]) -> u32 {
        let mut distance = 0;
        for i in 0..4 {
            let mut x = a[i] ^ b[i];
            if x == 0 {
                distance += 32;
            } else {
                while x & (1 << 31) == 0 {
                    x <<= 1;
                    distance += 1;
                }
            }
        }
        distance
    }

    impl Ctdb {
        pub fn new(input: &AllocInput, o: &Options) -> Self {
            let n = input.node_count();
            let list = input.addresses();
            // all_ips in descending key order (the input is already in that order; check it).
            let keys: Vec<[u32; 4]> = list.iter().map(|a| ip_key(a.addr)).collect();
            assert!(
                keys.windows(2).all(|w| w[0] > w[1]),
                "input not in CTDB order"
            );
            Ctdb {
                n,
                keys,
                addrs: list.iter().map(|a| a.addr).collect(),
                pnn: list
                    .iter()
                    .map(|a| a.current.map_or(NONE, |p| i64::from(p.0)))
                    .collect(),
                available: list
                    .iter()
                    .map(|a| {
                        (0..n)
                            .map(|i| a.available_on.contains(&Pnn(i as u32)))
                            .collect()
                    })
                    .collect(),
                no_ip_takeover: o.no_ip_takeover,
                no_ip_failback: o.no_ip_failback,
                force_rebalance: o.force_rebalance.iter().map(|p| p.0).collect(),
                home: o.home_nodes.iter().map(|h| (h.addr, h.pnn.0)).collect(),
            }
        }

        pub fn result(&self) -> Vec<(IpAddr, Option<Pnn>)> {
            self.addrs
                .iter()
                .zip(&self.pnn)
                .map(|(a, &p)| (*a, (p >= 0).then_some(Pnn(p as u32))))
                .collect()
        }

        fn node_ip_coverage(&self, pnn: i64) -> i64 {
            self.pnn.iter().filter(|&&p| p == pnn).count() as i64
        }

        fn can_node_host_ip(&self, pnn: usize, t: usize) -> bool {
            self.available[t][pnn]
        }

        fn can_node_takeover_ip(&self, pnn: usize, t: usize) -> bool {
            !self.no_ip_takeover && self.can_node_host_ip(pnn, t)
        }

        fn find_takeover_node(&mut self, t: usize) -> bool {
            let (mut pnn, mut min) = (NONE, 0);
            for i in 0..self.n {
                if !self.can_node_takeover_ip(i, t) {
                    continue;
                }
                let num = self.node_ip_coverage(i as i64);
                if pnn == NONE || num < min {
                    pnn = i as i64;
                    min = num;
                }
            }
            if pnn == NONE {
                return false;
            }
            self.pnn[t] = pnn;
            true
        }

        fn basic_allocate_unassigned(&mut self) {
            for t in 0..self.pnn.len() {
                if self.pnn[t] == NONE {
                    self.find_takeover_node(t);
                }
            }
        }

        fn unassign_unsuitable_ips(&mut self) {
            for t in 0..self.pnn.len() {
                if self.pnn[t] != NONE && !self.can_node_host_ip(self.pnn[t] as usize, t) {
                    self.pnn[t] = NONE;
                }
            }
        }

        fn ip_distance_2_sum(&self, ip: usize, from: usize, pnn: i64) -> u32 {
            let mut sum = 0u32;
            for t in from..self.pnn.len() {
                if self.pnn[t] != pnn || t == ip {
                    continue;
                }
                let d = ip_distance(&self.keys[ip], &self.keys[t]);
                sum = sum.wrapping_add(d * d);
            }
            sum
        }

        fn lcp2_imbalance(&self, pnn: i64) -> u32 {
            let mut imbalance = 0u32;
            for t in 0..self.pnn.len() {
                if self.pnn[t] == pnn {
                    imbalance = imbalance.wrapping_add(self.ip_distance_2_sum(t, t + 1, pnn));
                }
            }
            imbalance
        }

        pub fn lcp2(&mut self) {
            self.unassign_unsuitable_ips();
            let n = self.n;
            let mut imb: Vec<u32> = (0..n).map(|i| self.lcp2_imbalance(i as i64)).collect();
            let mut cand = vec![true; n];
            for &p in &self.pnn {
                if p != NONE {
                    cand[p as usize] = false;
                }
            }
            for &p in &self.force_rebalance {
                if (p as usize) < n {
                    cand[p as usize] = true;
                }
            }
            // lcp2_allocate_unassigned
            let (mut should_loop, mut have_unassigned) = (true, true);
            while have_unassigned && should_loop {
                should_loop = false;
                let (mut minnode, mut mindsum, mut minip) = (NONE, 0u32, 0usize);
                let mut minimbl = 0u32;
                for t in 0..self.pnn.len() {
                    if self.pnn[t] != NONE {
                        continue;
                    }
                    for dst in 0..n {
                        if !self.can_node_takeover_ip(dst, t) {
                            continue;
                        }
                        let dstdsum = self.ip_distance_2_sum(t, 0, dst as i64);
                        let dstimbl = imb[dst].wrapping_add(dstdsum);
                        if minnode == NONE || dstdsum < mindsum {
                            minnode = dst as i64;
                            minimbl = dstimbl;
                            mindsum = dstdsum;
                            minip = t;
                            should_loop = true;
                        }
                    }
                }
                if minnode != NONE {
                    self.pnn[minip] = minnode;
                    imb[minnode as usize] = minimbl;
                }
                have_unassigned = self.pnn.contains(&NONE);
            }
            if self.no_ip_failback || !cand.contains(&true) {
                return;
            }
            // lcp2_failback
            loop {
                let mut lips: Vec<(u32, usize)> = (0..n).map(|i| (imb[i], i)).collect();
                lips.sort_by_key(|l| std::cmp::Reverse(l.0)); // stable, like glibc's merge sort
                let mut again = false;
                for &(imbalance, src) in &lips {
                    if imbalance == 0 {
                        break;
                    }
                    if self.lcp2_failback_candidate(src, &mut imb, &cand) {
                        again = true;
                        break;
                    }
                }
                if !again {
                    break;
                }
            }
        }

        fn lcp2_failback_candidate(&mut self, src: usize, imb: &mut [u32], cand: &[bool]) -> bool {
            let mut minip = None;
            let (mut minsrcimbl, mut mindstnode, mut mindstimbl) = (0u32, NONE, 0u32);
            for t in 0..self.pnn.len() {
                if self.pnn[t] != src as i64 {
                    continue;
                }
                let srcdsum = self.ip_distance_2_sum(t, 0, src as i64);
                let srcimbl = imb[src].wrapping_sub(srcdsum);
                for dst in 0..self.n {
                    if !cand[dst] || !self.can_node_takeover_ip(dst, t) {
                        continue;
                    }
                    let dstdsum = self.ip_distance_2_sum(t, 0, dst as i64);
                    let dstimbl = imb[dst].wrapping_add(dstdsum);
                    if dstimbl < imb[src]
                        && dstdsum < srcdsum
                        && (mindstnode == NONE
                            || srcimbl.wrapping_add(dstimbl) < minsrcimbl.wrapping_add(mindstimbl))
                    {
                        minip = Some(t);
                        minsrcimbl = srcimbl;
                        mindstnode = dst as i64;
                        mindstimbl = dstimbl;
                    }
                }
            }
            match minip {
                Some(t) => {
                    imb[src] = minsrcimbl;
                    imb[mindstnode as usize] = mindstimbl;
                    self.pnn[t] = mindstnode;
                    true
                }
                None => false,
            }
        }

        pub fn deterministic(&mut self) {
            let n = self.n as i64;
            for t in 0..self.pnn.len() {
                let mut p = if n == 0 { NONE } else { t as i64 % n };
                if let Some(&(_, h)) = self.home.iter().find(|(a, _)| *a == self.addrs[t]) {
                    if i64::from(h) < n {
                        p = i64::from(h);
                    }
                }
                self.pnn[t] = p;
            }
            self.unassign_unsuitable_ips();
            self.basic_allocate_unassigned();
        }

        pub fn nondeterministic(&mut self) {
            let num_ips = self.pnn.len() as i64;
            self.unassign_unsuitable_ips();
            self.basic_allocate_unassigned();
            if self.no_ip_failback {
                return;
            }
            let mut retries = 0;
            'try_again: loop {
                for t in 0..self.pnn.len() {
                    if self.pnn[t] == NONE {
                        continue;
                    }
                    let (mut maxnode, mut minnode, mut maxnum, mut minnum) = (NONE, NONE, 0, 0);
                    for i in 0..self.n {
                        if !self.can_node_takeover_ip(i, t) {
                            continue;
                        }
                        let num = self.node_ip_coverage(i as i64);
                        if maxnode == NONE || num > maxnum {
                            maxnode = i as i64;
                            maxnum = num;
                        }
                        if minnode == NONE || num < minnum {
                            minnode = i as i64;
                            minnum = num;
                        }
                    }
                    if maxnode == NONE {
                        continue;
                    }
                    if maxnum > minnum + 1 && retries < num_ips + 5 {
                        for tt in 0..self.pnn.len() {
                            if self.pnn[tt] == maxnode {
                                self.find_takeover_node(tt);
                                retries += 1;
                                continue 'try_again;
                            }
                        }
                    }
                }
                break;
            }
        }
    }

    pub fn run(input: &AllocInput, alg: Algorithm, o: &Options) -> Vec<(IpAddr, Option<Pnn>)> {
        let mut c = Ctdb::new(input, o);
        match alg {
            Algorithm::Lcp2 => c.lcp2(),
            Algorithm::Deterministic => c.deterministic(),
            Algorithm::NonDeterministic => c.nondeterministic(),
        }
        c.result()
    }
}

// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The allocator gives exactly what CTDB's code gives, for every algorithm and option.
    #[test]
    fn agrees_with_literal_ctdb_transcription(
        (c, o) in cluster(9, 40).prop_flat_map(|c| { let n = c.nodes.len(); (Just(c), options(n)) }),
        home_seed in any::<u64>(),
    ) {
        let input = c.input();
        for alg in ALGORITHMS {
            let mut o = o.clone();
            if alg == Algorithm::Deterministic {
                // Home nodes for about a third of the addresses, some out of range.
                let mut rng = Rng::new(home_seed);
                o.home_nodes.clear();
                for a in &c.addrs {
                    if rng.below(3) == 0 {
                        let pnn = Pnn(rng.below(c.nodes.len() as u64 + 2) as u32);
                        o.home_nodes.push(HomeNode { addr: a.addr, pnn });
                    }
                }
            }
            let got = holders(&allocate(&input, alg, &o));
            prop_assert_eq!(got, reference::run(&input, alg, &o), "{}", alg);
        }
    }

    /// Every address some eligible healthy node can take is assigned, and only to such a node.
    #[test]
    fn covers_everything_coverable_and_only_on_eligible_healthy_nodes(
        (c, mut o) in cluster(9, 40).prop_flat_map(|c| { let n = c.nodes.len(); (Just(c), options(n)) }),
    ) {
        o.no_ip_takeover = false;
        let input = c.input();
        for alg in ALGORITHMS {
            for a in allocate(&input, alg, &o).assignments() {
                let coverable = (0..c.nodes.len()).any(|i| c.eligible(a.addr, Pnn(i as u32)));
                match a.pnn {
                    Some(p) => prop_assert!(c.eligible(a.addr, p), "{alg}: {} on {p}", a.addr),
                    None => prop_assert!(!coverable, "{alg}: {} left unassigned", a.addr),
                }
            }
        }
    }

    /// Shuffling the address list (and each address's node list) changes nothing.
    #[test]
    fn independent_of_input_order(
        (c, o) in cluster(9, 40).prop_flat_map(|c| { let n = c.nodes.len(); (Just(c), options(n)) }),
        seed in any::<u64>(),
    ) {
        let mut s = c.clone();
        s.addrs = shuffled(&c.addrs, seed);
        for (i, a) in s.addrs.iter_mut().enumerate() {
            if let Some(l) = &mut a.nodes {
                *l = shuffled(l, seed ^ i as u64);
            }
        }
        let (a, b) = (c.input(), s.input());
        prop_assert_eq!(&a, &b);
        for alg in ALGORITHMS {
            prop_assert_eq!(holders(&allocate(&a, alg, &o)), holders(&allocate(&b, alg, &o)));
        }
    }

    /// Running again on the result moves nothing (LCP2 and deterministic always; the
    /// non-deterministic algorithm when every healthy node may host every address, since with
    /// uneven eligibility CTDB's version can oscillate until its retry budget runs out).
    #[test]
    fn result_is_a_fixed_point(
        (c, o) in cluster(9, 40).prop_flat_map(|c| { let n = c.nodes.len(); (Just(c), options(n)) }),
    ) {
        let input = c.input();
        for alg in ALGORITHMS {
            if alg == Algorithm::NonDeterministic && c.addrs.iter().any(|a| a.nodes.is_some()) {
                continue;
            }
            let first = allocate(&input, alg, &o);
            let again = allocate(&input.with_allocation(&first), alg, &o);
            prop_assert_eq!(again.moved().count(), 0, "{}: {:?}", alg, again.moved().collect::<Vec<_>>());
        }
    }

    /// With NoIPFailback, when a node fails only its addresses move.
    #[test]
    fn only_the_failed_nodes_addresses_move(
        c in cluster(9, 40),
        victim in any::<prop::sample::Index>(),
    ) {
        let o = Options { no_ip_failback: true, ..Options::default() };
        for alg in [Algorithm::Lcp2, Algorithm::NonDeterministic] {
            let before = allocate(&c.input(), alg, &o);
            let holding: Vec<Pnn> = before.assignments().iter().filter_map(|a| a.pnn).collect();
            if holding.is_empty() {
                continue;
            }
            let failed = *victim.get(&holding);
            let mut after_cluster = c.clone();
            after_cluster.nodes[failed.index()].flags = NodeFlags::UNHEALTHY;
            for a in &mut after_cluster.addrs {
                // An address no node lists is not in the input at all.
                a.current = before.owner_of(a.addr).flatten();
            }
            let after = allocate(&after_cluster.input(), alg, &o);
            for a in after.assignments() {
                if a.previous == Some(failed) {
                    prop_assert_ne!(a.pnn, Some(failed));
                } else {
                    prop_assert_eq!(a.pnn, a.previous, "{}: {} moved", alg, a.addr);
                }
            }
        }
    }
}

/// Larger clusters than proptest explores, against the reference (fixed seeds).
#[test]
fn agrees_with_reference_on_larger_clusters() {
    for seed in 0..6u64 {
        let mut rng = Rng::new(seed);
        let n = 6 + rng.below(10) as usize;
        let nodes: Vec<NodeState> = (0..n)
            .map(|_| match rng.below(6) {
                0 => NodeState::with_flags(NodeFlags::UNHEALTHY),
                _ => NodeState::healthy(),
            })
            .collect();
        let count = 60 + rng.below(60) as usize;
        let addrs: Vec<ConfiguredAddress> = (0..count)
            .map(|i| {
                let addr = IpAddr::V4(Ipv4Addr::new(10, 1 + (i % 3) as u8, 0, (i / 3) as u8));
                let current = (rng.below(4) != 0).then(|| Pnn(rng.below(n as u64) as u32));
                if rng.below(5) == 0 {
                    let on = (0..n as u32)
                        .filter(|_| rng.below(2) == 0)
                        .map(Pnn)
                        .collect();
                    ConfiguredAddress::on(addr, current, on)
                } else {
                    ConfiguredAddress::everywhere(addr, current)
                }
            })
            .collect();
        let input = AllocInput::from_nodes(&nodes, &addrs).unwrap();
        for alg in ALGORITHMS {
            let o = Options::default();
            assert_eq!(
                holders(&allocate(&input, alg, &o)),
                reference::run(&input, alg, &o),
                "seed {seed} {alg}"
            );
        }
    }
}

/// The reference itself reproduces a CTDB case (lcp2.004: node 1 held everything, 0 and 2 come
/// back), so the comparisons above are against something that is right.
#[test]
fn reference_reproduces_a_ctdb_case() {
    let nodes = [NodeState::healthy(); 3];
    let addrs: Vec<ConfiguredAddress> = [
        "192.168.21.254",
        "192.168.21.253",
        "192.168.21.252",
        "192.168.20.254",
        "192.168.20.253",
        "192.168.20.252",
        "192.168.20.251",
        "192.168.20.250",
        "192.168.20.249",
    ]
    .iter()
    .map(|a| ConfiguredAddress::everywhere(a.parse().unwrap(), Some(Pnn(1))))
    .collect();
    let input = AllocInput::from_nodes(&nodes, &addrs).unwrap();
    let want: Vec<u32> = vec![2, 0, 1, 2, 0, 1, 2, 0, 1];
    let got: Vec<u32> = reference::run(&input, Algorithm::Lcp2, &Options::default())
        .iter()
        .map(|(_, p)| p.unwrap().0)
        .collect();
    assert_eq!(got, want);
}

/// The life of a cluster, against the reference: start, two nodes fail, they come back (with and
/// without a forced rebalance); this is where LCP2 rebalances most.
#[test]
fn agrees_with_reference_through_failure_and_return() {
    let (n, count) = (8usize, 96usize);
    let addrs: Vec<IpAddr> = (0..count)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, (i / 32) as u8, (i % 32 + 1) as u8)))
        .collect();
    let healthy = vec![NodeState::healthy(); n];
    let mut down = healthy.clone();
    down[0] = NodeState::with_flags(NodeFlags::UNHEALTHY);
    down[5] = NodeState::with_flags(NodeFlags::STOPPED);
    let at = |nodes: &[NodeState], holders: Option<&Allocation>| {
        let list: Vec<ConfiguredAddress> = addrs
            .iter()
            .map(|&a| {
                ConfiguredAddress::everywhere(a, holders.and_then(|h| h.owner_of(a).flatten()))
            })
            .collect();
        AllocInput::from_nodes(nodes, &list).unwrap()
    };
    for alg in ALGORITHMS {
        for force in [vec![], vec![Pnn(3)]] {
            let o = Options {
                force_rebalance: force,
                ..Options::default()
            };
            let check = |input: &AllocInput| {
                let got = allocate(input, alg, &o);
                assert_eq!(holders(&got), reference::run(input, alg, &o), "{alg}");
                got
            };
            let start = check(&at(&healthy, None));
            let failed = check(&at(&down, Some(&start)));
            let back = check(&at(&healthy, Some(&failed)));
            assert!(back.moved().count() > 0, "{alg}: nothing moved back");
        }
    }
}
