//! Scenarios shared by the benchmarks: clusters of healthy nodes with public addresses spread
//! over /24 subnets, in the states a takeover run meets.

use pharos_core::ipalloc::{
    allocate, Algorithm, AllocInput, ConfiguredAddress, NodeState, Options,
};
use pharos_core::{NodeFlags, Pnn};
use std::net::{IpAddr, Ipv4Addr};

/// The three inputs measured for one cluster size and algorithm.
pub struct Scenario {
    /// Cluster start: every address unassigned.
    pub fresh: AllocInput,
    /// The steady state (the result of `fresh`), with node 0 now unhealthy.
    pub node_fails: AllocInput,
    /// Node 0 was down and its addresses spread over the others; now it is healthy again.
    pub node_returns: AllocInput,
}

/// `count` addresses, 64 per subnet: 10.0.0.1-64, 10.0.1.1-64, ...
pub fn addresses(count: usize) -> Vec<IpAddr> {
    (0..count)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, (i / 64) as u8, (i % 64 + 1) as u8)))
        .collect()
}

fn input(
    nodes: &[NodeState],
    addrs: &[IpAddr],
    holders: Option<&pharos_core::ipalloc::Allocation>,
) -> AllocInput {
    let list: Vec<ConfiguredAddress> = addrs
        .iter()
        .map(|&a| ConfiguredAddress::everywhere(a, holders.and_then(|h| h.owner_of(a).flatten())))
        .collect();
    AllocInput::from_nodes(nodes, &list).expect("valid scenario")
}

/// Builds the scenarios for `nodes` nodes and `count` addresses under `algorithm`.
pub fn scenario(nodes: usize, count: usize, algorithm: Algorithm) -> Scenario {
    let o = Options::default();
    let addrs = addresses(count);
    let healthy = vec![NodeState::healthy(); nodes];
    let mut first_down = healthy.clone();
    first_down[0] = NodeState::with_flags(NodeFlags::UNHEALTHY);

    let fresh = input(&healthy, &addrs, None);
    let steady = allocate(&fresh, algorithm, &o);
    let node_fails = input(&first_down, &addrs, Some(&steady));
    let degraded = allocate(&input(&first_down, &addrs, None), algorithm, &o);
    let node_returns = input(&healthy, &addrs, Some(&degraded));
    Scenario {
        fresh,
        node_fails,
        node_returns,
    }
}

/// Whether node `pnn` holds anything in `input` (a sanity check of the scenarios).
pub fn holds_any(input: &AllocInput, pnn: Pnn) -> bool {
    input.addresses().iter().any(|a| a.current == Some(pnn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_what_they_say() {
        let s = scenario(4, 40, Algorithm::Lcp2);
        assert!(s.fresh.addresses().iter().all(|a| a.current.is_none()));
        assert!(holds_any(&s.node_fails, Pnn(0)));
        assert!(!holds_any(&s.node_returns, Pnn(0)));
        assert!(holds_any(&s.node_returns, Pnn(1)));
        assert_eq!(addresses(65)[64], IpAddr::V4(Ipv4Addr::new(10, 0, 1, 1)));
    }
}
