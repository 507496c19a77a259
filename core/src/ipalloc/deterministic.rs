//! Deterministic allocation (`IPAllocAlgorithm=0`, CTDB's `ipalloc_deterministic.c`) and its
//! `home_nodes` file.

use super::common::{Work, NONE};
use super::{Event, Options};
use crate::types::Pnn;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::IpAddr;

/// One line of CTDB's `home_nodes` file: `addr` belongs on node `pnn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HomeNode {
    /// The address.
    pub addr: IpAddr,
    /// Its home node.
    pub pnn: Pnn,
}

/// Reads a `home_nodes` file as CTDB does: `ADDR PNN` per line, whitespace separated; lines with
/// fewer than two words are skipped, words after the second are ignored. If any address or PNN
/// does not parse, CTDB ignores the whole file: so does this (`None`). (A `#` comment of two or
/// more words therefore voids the file, as in CTDB.)
pub fn parse_home_nodes(text: &str) -> Option<Vec<HomeNode>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        let (Some(addr), Some(pnn)) = (words.next(), words.next()) else {
            continue;
        };
        let addr: IpAddr = addr.parse().ok()?;
        if !pnn.bytes().all(|b| b.is_ascii_digit()) {
            return None; // u32's parser would accept a leading '+'
        }
        out.push(HomeNode {
            addr,
            pnn: Pnn(pnn.parse().ok()?),
        });
    }
    Some(out)
}

pub(super) fn run(w: &mut Work<'_>, options: &Options) {
    let n = w.n;
    // First entry per address wins.
    let mut home: BTreeMap<IpAddr, Pnn> = BTreeMap::new();
    for h in &options.home_nodes {
        home.entry(h.addr).or_insert(h.pnn);
    }
    // Current holders are ignored: address k goes to node k mod n, or its home node.
    for ip in 0..w.len() {
        let mut node = if n == 0 { NONE } else { (ip % n) as u32 };
        if let Some(&pnn) = home.get(&w.addr(ip)) {
            if pnn.index() < n {
                node = pnn.0;
            } else {
                w.events.push(Event::HomeNodeOutOfRange {
                    addr: w.addr(ip),
                    pnn,
                });
            }
        }
        w.set_owner(ip, node);
    }
    if options.no_ip_failback {
        w.events.push(Event::NoIpFailbackIgnored);
    }
    w.unassign_unsuitable();
    w.basic_allocate_unassigned();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_nodes_file_rules() {
        let h = parse_home_nodes("10.0.0.1 2\n\n  fd00::1\t0 extra\nlonely\n").unwrap();
        assert_eq!(
            h,
            [
                HomeNode {
                    addr: "10.0.0.1".parse().unwrap(),
                    pnn: Pnn(2)
                },
                HomeNode {
                    addr: "fd00::1".parse().unwrap(),
                    pnn: Pnn(0)
                },
            ]
        );
        // One bad line voids the file, as in CTDB.
        assert_eq!(parse_home_nodes("10.0.0.1 2\n# a comment\n"), None);
        assert_eq!(parse_home_nodes("10.0.0.1 -1\n"), None);
        assert_eq!(parse_home_nodes("10.0.0.1 +1\n"), None);
        assert_eq!(parse_home_nodes("10.0.0.1 99999999999\n"), None);
        assert_eq!(parse_home_nodes("#comment\n"), Some(Vec::new()));
    }
}
