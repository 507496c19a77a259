//! Public-IP allocation scenarios: clusters of healthy nodes with public addresses spread over
//! /24 subnets, in the states a takeover run meets.

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

/// Harder LCP2 inputs than the usual life of a cluster, for 64 nodes and 1024 addresses.
pub struct Stress {
    /// A fresh cluster with IPv6 addresses varying in two 32-bit words (no narrow keys).
    pub ipv6_fresh: AllocInput,
    /// Node 0 holds every address; the 63 others become healthy at once (1008 moves).
    pub all_on_one: AllocInput,
}

/// Builds the [`Stress`] inputs.
pub fn stress() -> Stress {
    let healthy = vec![NodeState::healthy(); 64];
    let v6: Vec<IpAddr> = (0..1024u16)
        .map(|i| {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0xfd00,
                0,
                0,
                i / 64,
                0,
                0,
                0,
                i % 64 + 1,
            ))
        })
        .collect();
    let everywhere = |addrs: &[IpAddr], holder: Option<Pnn>| -> Vec<ConfiguredAddress> {
        addrs
            .iter()
            .map(|&a| ConfiguredAddress::everywhere(a, holder))
            .collect()
    };
    Stress {
        ipv6_fresh: AllocInput::from_nodes(&healthy, &everywhere(&v6, None)).expect("valid"),
        all_on_one: AllocInput::from_nodes(&healthy, &everywhere(&addresses(1024), Some(Pnn(0))))
            .expect("valid"),
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
        let st = stress();
        assert!(st.ipv6_fresh.addresses().iter().all(|a| a.addr.is_ipv6()));
        assert!(holds_any(&st.all_on_one, Pnn(0)) && !holds_any(&st.all_on_one, Pnn(1)));
    }
}
