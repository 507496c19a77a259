//! Which host has which public address configured, as the kernel sees it (not as any daemon
//! believes it).
//!
//! A running daemon keeps what it took until it releases it. When the daemon crashes or is
//! frozen, its addresses stay on the host's interface until their lease ends (`lease` after
//! the daemon stopped renewing), as a real host keeps an address nobody removes; a thawed daemon
//! renews what has not lapsed yet. A clean stop releases everything; a host going down takes
//! its addresses with it; a restarted daemon starts by releasing whatever its previous life
//! left behind (CTDB's startup does the same).
//!
//! Addresses arrive here from the nodes' `TakeIp` actions, with a kernel lifetime that only
//! their `RenewIps` extends: a host whose daemon and guardian are both gone or frozen loses them
//! when it runs out, whatever the daemon believes. Tests may also place addresses by hand
//! ([`crate::sim::World::host_ip`]) or through the stand-in of
//! [`crate::sim::SimConfig::home_hosting`]; those live as long as their daemon (plus `lease`).

use crate::time::Instant;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::net::IpAddr;
use core::time::Duration;

/// One address on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hosted {
    /// When the host took it.
    pub since: Instant,
    /// When it lapses (its daemon is dead or frozen); `None` while the daemon runs.
    pub expires: Option<Instant>,
    /// Added by the node with a kernel lifetime (it lapses at `expires` unless renewed),
    /// rather than by hand.
    pub kernel: bool,
}

/// The addresses every host has.
#[derive(Clone, Debug)]
pub struct Hosting {
    /// The cluster's public addresses.
    pub ips: Vec<IpAddr>,
    /// How long an address outlives the daemon that stopped renewing it.
    pub lease: Duration,
    hosted: Vec<BTreeMap<IpAddr, Hosted>>,
    /// Bumped at every change, so checkers rescan only when something moved.
    version: u64,
}

impl Hosting {
    /// `n` hosts, none hosting anything.
    pub fn new(n: usize, ips: Vec<IpAddr>, lease: Duration) -> Self {
        Hosting {
            ips,
            lease,
            hosted: alloc::vec![BTreeMap::new(); n],
            version: 0,
        }
    }

    /// Counter of changes.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Host `node` adds `ip` at `now` (by hand: it lives as long as its daemon).
    pub fn take(&mut self, node: usize, ip: IpAddr, now: Instant) {
        self.hosted[node].insert(
            ip,
            Hosted {
                since: now,
                expires: None,
                kernel: false,
            },
        );
        self.version += 1;
    }

    /// Host `node` adds `ip` at `now` with a kernel lifetime; returns when it lapses. An
    /// address it already has only gets the new lifetime (the kernel refuses a second add).
    pub fn add(&mut self, node: usize, ip: IpAddr, now: Instant, lifetime: Duration) -> Instant {
        let until = now + lifetime;
        let h = self.hosted[node].entry(ip).or_insert(Hosted {
            since: now,
            expires: None,
            kernel: true,
        });
        h.expires = Some(until);
        h.kernel = true;
        self.version += 1;
        until
    }

    /// Host `node` renews the lifetime of what it has (never re-creating a lapsed address);
    /// returns the new expiry if it has anything.
    pub fn renew(&mut self, node: usize, now: Instant, lifetime: Duration) -> Option<Instant> {
        self.expire(now);
        let until = now + lifetime;
        let mut any = false;
        for h in self.hosted[node].values_mut().filter(|h| h.kernel) {
            h.expires = Some(until);
            any = true;
        }
        any.then_some(until)
    }

    /// Host `node` removes `ip`; true if it had it.
    pub fn release(&mut self, node: usize, ip: IpAddr) -> bool {
        let had = self.hosted[node].remove(&ip).is_some();
        self.version += had as u64;
        had
    }

    /// Host `node` removes every address; returns how many it had.
    pub fn release_all(&mut self, node: usize) -> usize {
        let n = self.hosted[node].len();
        self.hosted[node].clear();
        self.version += (n > 0) as u64;
        n
    }

    /// The daemon on `node` stopped renewing (crash, freeze): its addresses lapse at
    /// `now + lease`. Returns that instant if it hosts anything.
    pub fn daemon_gone(&mut self, node: usize, now: Instant) -> Option<Instant> {
        let until = now + self.lease;
        let mut any = false;
        for h in self.hosted[node].values_mut().filter(|h| !h.kernel) {
            if h.expires.is_none() {
                h.expires = Some(until);
            }
            any = true;
        }
        self.version += any as u64;
        any.then_some(until)
    }

    /// The daemon on `node` renews again (thawed): what has not lapsed stays.
    pub fn daemon_back(&mut self, node: usize, now: Instant) {
        self.expire(now);
        for h in self.hosted[node].values_mut().filter(|h| !h.kernel) {
            h.expires = None;
        }
        self.version += 1;
    }

    /// Removes what lapsed by `now`; returns `(node, ip)` for each.
    pub fn expire(&mut self, now: Instant) -> Vec<(usize, IpAddr)> {
        let mut gone = Vec::new();
        for (i, m) in self.hosted.iter_mut().enumerate() {
            m.retain(|ip, h| {
                let keep = h.expires.is_none_or(|e| now < e);
                if !keep {
                    gone.push((i, *ip));
                }
                keep
            });
        }
        self.version += (!gone.is_empty()) as u64;
        gone
    }

    /// What host `node` has configured now.
    pub fn hosted_by(&self, node: usize) -> impl Iterator<Item = (IpAddr, Hosted)> + '_ {
        self.hosted[node].iter().map(|(ip, h)| (*ip, *h))
    }

    /// Whether host `node` has anything configured.
    pub fn hosts_any(&self, node: usize) -> bool {
        !self.hosted[node].is_empty()
    }

    /// The hosts that have `ip`, in PNN order.
    pub fn holders(&self, ip: IpAddr) -> impl Iterator<Item = usize> + '_ {
        self.hosted
            .iter()
            .enumerate()
            .filter(move |(_, m)| m.contains_key(&ip))
            .map(|(i, _)| i)
    }

    /// Number of hosts.
    pub fn hosts(&self) -> usize {
        self.hosted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_outlive_a_dead_daemon_until_their_lease_ends() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t = |s: u64| Instant::from_nanos(s * 1_000_000_000);
        let mut h = Hosting::new(2, alloc::vec![ip], Duration::from_secs(3));
        h.take(0, ip, t(1));
        assert_eq!(h.daemon_gone(0, t(2)), Some(t(5)));
        assert!(h.expire(t(4)).is_empty());
        assert_eq!(h.holders(ip).collect::<Vec<_>>(), [0]);
        // Thawed in time: renewed.
        h.daemon_back(0, t(4));
        assert!(h.expire(t(100)).is_empty());
        h.daemon_gone(0, t(100));
        assert_eq!(h.expire(t(103)), [(0, ip)]);
        assert!(!h.hosts_any(0));
        let v = h.version();
        assert!(!h.release(0, ip));
        assert_eq!(h.version(), v, "no change, no new version");
    }
}
