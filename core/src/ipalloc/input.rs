//! The allocator's input: nodes' states and views merged into one ordered address list.

use super::{sort_key, AllocError, Allocation, MAX_ADDRESSES, MAX_CELLS};
use crate::types::{NodeFlags, Pnn};
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

/// What the allocator needs to know about a node besides its addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeState {
    /// CTDB node flags.
    pub flags: NodeFlags,
    /// Whether the node's runstate is RUNNING (a node still starting up hosts nothing).
    pub running: bool,
}

impl NodeState {
    /// Flags that keep a node from hosting addresses: CTDB's `INACTIVE | DISABLED`
    /// (disconnected, banned, stopped, deleted, unhealthy, administratively disabled).
    pub const CANNOT_HOST: NodeFlags = NodeFlags(0x3f);

    /// A running node with no flag set.
    pub const fn healthy() -> Self {
        NodeState {
            flags: NodeFlags::empty(),
            running: true,
        }
    }

    /// A running node with these flags.
    pub const fn with_flags(flags: NodeFlags) -> Self {
        NodeState {
            flags,
            running: true,
        }
    }

    /// Whether the node may host public addresses: running, and healthy and active.
    pub const fn can_host_ips(&self) -> bool {
        self.running && !self.flags.intersects(Self::CANNOT_HOST)
    }
}

/// One node's report, as a takeover run gathers it (CTDB's known and available lists).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// The node's configured addresses, each with the holder this node believes in. When views
    /// are merged only a node's claim that it holds an address *itself* is trusted.
    pub known: Vec<(IpAddr, Option<Pnn>)>,
    /// The addresses the node can host right now: empty for a node that cannot host; in the
    /// daemon, also without addresses whose interfaces are all down.
    pub available: Vec<IpAddr>,
}

impl NodeView {
    /// The view of a node in `state` that lists `known`: every known address is available if
    /// the node can host addresses at all, none otherwise.
    pub fn new(state: NodeState, known: Vec<(IpAddr, Option<Pnn>)>) -> Self {
        let available = if state.can_host_ips() {
            known.iter().map(|(a, _)| *a).collect()
        } else {
            Vec::new()
        };
        NodeView { known, available }
    }
}

/// An address of a cluster-wide list, for [`AllocInput::from_nodes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfiguredAddress {
    /// The address.
    pub addr: IpAddr,
    /// Who holds it now, as every node that lists it reports.
    pub current: Option<Pnn>,
    /// The nodes that list it in their public_addresses file; `None` = every node.
    pub nodes: Option<Vec<Pnn>>,
}

impl ConfiguredAddress {
    /// An address every node lists.
    pub fn everywhere(addr: IpAddr, current: Option<Pnn>) -> Self {
        ConfiguredAddress {
            addr,
            current,
            nodes: None,
        }
    }

    /// An address only `nodes` list.
    pub fn on(addr: IpAddr, current: Option<Pnn>, nodes: Vec<Pnn>) -> Self {
        ConfiguredAddress {
            addr,
            current,
            nodes: Some(nodes),
        }
    }
}

/// One address as the allocator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressInput {
    /// The address.
    pub addr: IpAddr,
    /// Its holder now (`None` = nobody).
    pub current: Option<Pnn>,
    /// Nodes that list the address (they are told about every move of it). Always includes
    /// `available_on`.
    pub known_on: Vec<Pnn>,
    /// Nodes that can host it now. The allocator only ever gives it to one of these.
    pub available_on: Vec<Pnn>,
}

/// A validated allocator input: `node_count` nodes (PNN 0..n-1, including deleted and
/// disconnected ones) and the addresses in CTDB's order (descending [`sort_key`]). The order in
/// which addresses were given does not matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocInput {
    node_count: usize,
    addresses: Vec<AddressInput>,
    keys: Vec<u128>,
}

impl AllocInput {
    /// From per-address facts. PNN lists may be in any order and hold duplicates; `known_on` is
    /// widened to include `available_on`. Errors: a PNN not below `node_count`, an address
    /// listed twice, or a problem too large for the allocator's tables.
    pub fn new(node_count: usize, mut addresses: Vec<AddressInput>) -> Result<Self, AllocError> {
        let too_large = match node_count.checked_mul(addresses.len()) {
            Some(cells) => cells > MAX_CELLS || addresses.len() > MAX_ADDRESSES,
            None => true,
        };
        if too_large {
            return Err(AllocError::TooLarge {
                nodes: node_count,
                addresses: addresses.len(),
            });
        }
        for a in &mut addresses {
            let pnns = a.current.iter().chain(&a.known_on).chain(&a.available_on);
            if let Some(&pnn) = pnns.into_iter().find(|p| p.index() >= node_count) {
                return Err(AllocError::PnnOutOfRange {
                    addr: a.addr,
                    pnn,
                    nodes: node_count,
                });
            }
            a.available_on.sort_unstable();
            a.available_on.dedup();
            a.known_on.extend_from_slice(&a.available_on);
            a.known_on.sort_unstable();
            a.known_on.dedup();
        }
        // Descending key: CTDB's iteration order, which every tie-break depends on.
        addresses.sort_by_key(|a| core::cmp::Reverse(sort_key(a.addr)));
        let keys: Vec<u128> = addresses.iter().map(|a| sort_key(a.addr)).collect();
        if let Some(i) = keys.windows(2).position(|w| w[0] == w[1]) {
            return Err(AllocError::DuplicateAddress(addresses[i + 1].addr));
        }
        Ok(AllocInput {
            node_count,
            addresses,
            keys,
        })
    }

    /// CTDB's merge of the nodes' views (`create_merged_ip_list`); PNN = index in `views`.
    ///
    /// The addresses are those some node knows. An address's holder is the highest-numbered
    /// node that lists it and claims to hold it itself; claims about other nodes are ignored,
    /// since only the holder knows. Addresses are identified by their CTDB key, so duplicates
    /// across (and within) views merge.
    pub fn merge(views: &[NodeView]) -> Result<Self, AllocError> {
        let n = views.len();
        let mut index: BTreeMap<u128, usize> = BTreeMap::new();
        let mut merged: Vec<(AddressInput, Vec<bool>, Vec<bool>)> = Vec::new();
        for (i, view) in views.iter().enumerate() {
            let me = Pnn(i as u32);
            for &(addr, claim) in &view.known {
                let slot = *index.entry(sort_key(addr)).or_insert_with(|| {
                    merged.push((
                        AddressInput {
                            addr,
                            current: None,
                            known_on: Vec::new(),
                            available_on: Vec::new(),
                        },
                        vec![false; n],
                        vec![false; n],
                    ));
                    merged.len() - 1
                });
                let (entry, known, _) = &mut merged[slot];
                // A later node's "unknown" keeps the earlier value; its own claim replaces it.
                if claim == Some(me) {
                    entry.current = Some(me);
                }
                known[i] = true;
            }
        }
        for (i, view) in views.iter().enumerate() {
            for addr in &view.available {
                if let Some(&slot) = index.get(&sort_key(*addr)) {
                    merged[slot].2[i] = true;
                }
            }
        }
        let addresses = merged
            .into_iter()
            .map(|(mut entry, known, available)| {
                let pnns = |bits: Vec<bool>| {
                    bits.iter()
                        .enumerate()
                        .filter(|(_, b)| **b)
                        .map(|(i, _)| Pnn(i as u32))
                        .collect()
                };
                entry.known_on = pnns(known);
                entry.available_on = pnns(available);
                entry
            })
            .collect();
        Self::new(n, addresses)
    }

    /// From node states and one cluster-wide address list (each node that lists an address
    /// reports the same holder): builds every node's [`NodeView`] and [`merge`](Self::merge)s
    /// them, so a holder that does not list the address is not trusted. Errors: an address
    /// listed twice, a PNN outside `nodes`.
    pub fn from_nodes(
        nodes: &[NodeState],
        addresses: &[ConfiguredAddress],
    ) -> Result<Self, AllocError> {
        let n = nodes.len();
        let mut seen = BTreeMap::new();
        let mut views: Vec<NodeView> = vec![NodeView::default(); n];
        for a in addresses {
            if seen.insert(sort_key(a.addr), ()).is_some() {
                return Err(AllocError::DuplicateAddress(a.addr));
            }
            let listed: Vec<Pnn> = match &a.nodes {
                Some(list) => list.clone(),
                None => (0..n as u32).map(Pnn).collect(),
            };
            for pnn in listed {
                let view = views
                    .get_mut(pnn.index())
                    .ok_or(AllocError::PnnOutOfRange {
                        addr: a.addr,
                        pnn,
                        nodes: n,
                    })?;
                view.known.push((a.addr, a.current));
                if nodes[pnn.index()].can_host_ips() {
                    view.available.push(a.addr);
                }
            }
        }
        Self::merge(&views)
    }

    /// The number of nodes (PNN 0..n-1).
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// The addresses, in CTDB's order.
    pub fn addresses(&self) -> &[AddressInput] {
        &self.addresses
    }

    /// The same input with the holders taken from `result` (a run's output fed back in, as the
    /// next takeover run would see it after all takeovers succeeded). Addresses `result` does
    /// not mention keep their holder.
    pub fn with_allocation(&self, result: &Allocation) -> Self {
        let mut next = self.clone();
        for a in &mut next.addresses {
            if let Some(owner) = result.owner_of(a.addr) {
                a.current = owner;
            }
        }
        next
    }

    pub(super) fn keys(&self) -> &[u128] {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn node_states() {
        assert!(NodeState::healthy().can_host_ips());
        for bit in 0..6 {
            assert!(!NodeState::with_flags(NodeFlags(1 << bit)).can_host_ips());
        }
        let starting = NodeState {
            flags: NodeFlags::empty(),
            running: false,
        };
        assert!(!starting.can_host_ips());
    }

    #[test]
    fn merge_trusts_only_self_claims_highest_wins() {
        let a = ip("10.0.0.1");
        let b = ip("10.0.0.2");
        let views = [
            NodeView::new(
                NodeState::healthy(),
                vec![(a, Some(Pnn(0))), (b, Some(Pnn(2)))],
            ),
            NodeView::new(
                NodeState::with_flags(NodeFlags::UNHEALTHY),
                vec![(a, Some(Pnn(1))), (b, None)],
            ),
            NodeView::new(NodeState::healthy(), vec![(a, Some(Pnn(0)))]),
        ];
        let input = AllocInput::merge(&views).unwrap();
        let [first, second] = input.addresses() else {
            panic!("two addresses expected")
        };
        // Descending order: 10.0.0.2 first. Node 0's claim that node 2 holds it is ignored.
        assert_eq!(first.addr, b);
        assert_eq!(first.current, None);
        assert_eq!(first.known_on, vec![Pnn(0), Pnn(1)]);
        assert_eq!(first.available_on, vec![Pnn(0)]);
        // Nodes 0 and 1 both claim 10.0.0.1 for themselves: the higher PNN wins; node 2's
        // claim about node 0 keeps that value.
        assert_eq!(second.current, Some(Pnn(1)));
        assert_eq!(second.available_on, vec![Pnn(0), Pnn(2)]);
    }

    #[test]
    fn from_nodes_ignores_holder_that_does_not_list_it() {
        let nodes = [NodeState::healthy(); 3];
        let addrs = [
            ConfiguredAddress::on(ip("10.0.0.1"), Some(Pnn(2)), vec![Pnn(0), Pnn(1)]),
            ConfiguredAddress::everywhere(ip("10.0.0.2"), Some(Pnn(2))),
        ];
        let input = AllocInput::from_nodes(&nodes, &addrs).unwrap();
        assert_eq!(input.addresses()[0].current, Some(Pnn(2)));
        assert_eq!(input.addresses()[1].current, None);
    }

    #[test]
    fn validation_errors() {
        let a = ip("10.0.0.1");
        let entry = |current, avail: Vec<Pnn>| AddressInput {
            addr: a,
            current,
            known_on: Vec::new(),
            available_on: avail,
        };
        assert!(matches!(
            AllocInput::new(2, vec![entry(Some(Pnn(2)), vec![])]),
            Err(AllocError::PnnOutOfRange { pnn: Pnn(2), .. })
        ));
        assert!(matches!(
            AllocInput::new(2, vec![entry(None, vec![Pnn(5)])]),
            Err(AllocError::PnnOutOfRange { pnn: Pnn(5), .. })
        ));
        assert_eq!(
            AllocInput::new(2, vec![entry(None, vec![]), entry(None, vec![])]),
            Err(AllocError::DuplicateAddress(a))
        );
        // ::10.0.0.1 has the same CTDB key as 10.0.0.1; the later one is named.
        let mut other = entry(None, vec![]);
        other.addr = ip("::10.0.0.1");
        assert_eq!(
            AllocInput::new(2, vec![entry(None, vec![]), other]),
            Err(AllocError::DuplicateAddress(ip("::10.0.0.1")))
        );
        assert!(matches!(
            AllocInput::new(usize::MAX, vec![entry(None, vec![]); 2]),
            Err(AllocError::TooLarge { .. })
        ));
        let nodes = [NodeState::healthy()];
        assert!(matches!(
            AllocInput::from_nodes(&nodes, &[ConfiguredAddress::on(a, None, vec![Pnn(1)])]),
            Err(AllocError::PnnOutOfRange { pnn: Pnn(1), .. })
        ));
        assert_eq!(
            AllocInput::from_nodes(
                &nodes,
                &[
                    ConfiguredAddress::everywhere(a, None),
                    ConfiguredAddress::everywhere(a, None)
                ]
            ),
            Err(AllocError::DuplicateAddress(a))
        );
    }

    #[test]
    fn known_on_includes_available_on_and_lists_are_normalised() {
        let input = AllocInput::new(
            3,
            vec![AddressInput {
                addr: ip("10.0.0.1"),
                current: None,
                known_on: vec![Pnn(2)],
                available_on: vec![Pnn(1), Pnn(0), Pnn(1)],
            }],
        )
        .unwrap();
        assert_eq!(input.addresses()[0].available_on, vec![Pnn(0), Pnn(1)]);
        assert_eq!(input.addresses()[0].known_on, vec![Pnn(0), Pnn(1), Pnn(2)]);
    }
}
