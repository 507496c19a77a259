//! State and steps shared by the three algorithms (CTDB's `ipalloc_common.c`).

use super::{AllocInput, Allocation, Assignment, Event};
use crate::types::Pnn;
use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

/// "No holder" in [`Work::owner`] (CTDB's -1).
pub(super) const NONE: u32 = u32::MAX;

/// One allocation run in progress: the addresses in CTDB's order, their holders, and who may
/// host what.
pub(super) struct Work<'a> {
    /// Node count.
    pub n: usize,
    input: &'a AllocInput,
    /// CTDB keys, index = address index.
    pub keys: &'a [u128],
    /// Holder per address, [`NONE`] if unassigned.
    pub owner: Vec<u32>,
    /// `available[ip * n + node]`: a flat table because the algorithms probe it in inner loops.
    available: Vec<bool>,
    /// Addresses held per node (CTDB's `node_ip_coverage`, kept up to date instead of counted).
    pub coverage: Vec<u32>,
    no_ip_takeover: bool,
    /// What CTDB would log, in order.
    pub events: Vec<Event>,
}

impl<'a> Work<'a> {
    pub fn new(input: &'a AllocInput, no_ip_takeover: bool) -> Self {
        let n = input.node_count();
        let addresses = input.addresses();
        let mut available = vec![false; n * addresses.len()];
        let mut owner = Vec::with_capacity(addresses.len());
        let mut coverage = vec![0u32; n];
        for (ip, a) in addresses.iter().enumerate() {
            for p in &a.available_on {
                available[ip * n + p.index()] = true;
            }
            let o = a.current.map_or(NONE, |p| p.0);
            if o != NONE {
                coverage[o as usize] += 1;
            }
            owner.push(o);
        }
        Work {
            n,
            input,
            keys: input.keys(),
            owner,
            available,
            coverage,
            no_ip_takeover,
            events: Vec::new(),
        }
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        self.owner.len()
    }

    pub fn addr(&self, ip: usize) -> IpAddr {
        self.input.addresses()[ip].addr
    }

    /// CTDB's `can_node_host_ip`.
    pub fn can_host(&self, node: usize, ip: usize) -> bool {
        self.available[ip * self.n + node]
    }

    /// CTDB's `can_node_takeover_ip`: hosting allowed and NoIPTakeover unset.
    pub fn can_takeover(&self, node: usize, ip: usize) -> bool {
        !self.no_ip_takeover && self.can_host(node, ip)
    }

    pub fn set_owner(&mut self, ip: usize, node: u32) {
        let old = self.owner[ip];
        if old != NONE {
            self.coverage[old as usize] -= 1;
        }
        if node != NONE {
            self.coverage[node as usize] += 1;
        }
        self.owner[ip] = node;
    }

    /// Takes every address from a holder that cannot host it (uses can_host, not
    /// can_takeover: NoIPTakeover never keeps an address on a node that cannot host it).
    pub fn unassign_unsuitable(&mut self) {
        for ip in 0..self.len() {
            let o = self.owner[ip];
            if o != NONE && !self.can_host(o as usize, ip) {
                self.events.push(Event::Released {
                    addr: self.addr(ip),
                    from: Pnn(o),
                });
                self.set_owner(ip, NONE);
            }
        }
    }

    /// The least-loaded node that can take `ip`, lowest PNN on ties.
    pub fn find_takeover_node(&self, ip: usize) -> Option<usize> {
        let mut best: Option<(u32, usize)> = None;
        for node in 0..self.n {
            if !self.can_takeover(node, ip) {
                continue;
            }
            let c = self.coverage[node];
            // Strict `<`: the first (lowest) PNN wins ties.
            if best.is_none_or(|(b, _)| c < b) {
                best = Some((c, node));
            }
        }
        best.map(|(_, node)| node)
    }

    /// Gives each unassigned address, in order, to [`Self::find_takeover_node`].
    pub fn basic_allocate_unassigned(&mut self) {
        for ip in 0..self.len() {
            if self.owner[ip] != NONE {
                continue;
            }
            match self.find_takeover_node(ip) {
                Some(node) => {
                    self.set_owner(ip, node as u32);
                    self.events.push(Event::Assigned {
                        addr: self.addr(ip),
                        to: Pnn(node as u32),
                        cost: None,
                    });
                }
                None => self.events.push(Event::Uncovered {
                    addr: self.addr(ip),
                }),
            }
        }
    }

    pub fn finish(self) -> Allocation {
        let assignments = self
            .input
            .addresses()
            .iter()
            .zip(&self.owner)
            .map(|(a, &o)| Assignment {
                addr: a.addr,
                pnn: (o != NONE).then_some(Pnn(o)),
                previous: a.current,
            })
            .collect();
        Allocation {
            assignments,
            keys: self.keys.to_vec(),
            events: self.events,
        }
    }
}
