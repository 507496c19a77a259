//! No public address is hosted on two hosts at the same instant (counting addresses that
//! outlive a dead or frozen daemon until their lease ends).

use super::{names, Invariant, Snapshot};
use crate::sim::trace::Secs;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::IpAddr;

/// See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct NoAddressTwice {
    /// The hosting version last scanned: nothing moved, nothing to scan.
    seen: Option<u64>,
}

impl Invariant for NoAddressTwice {
    fn name(&self) -> &'static str {
        "no-address-twice"
    }

    fn check(&mut self, s: &Snapshot<'_>) -> Result<(), String> {
        let v = s.hosting.version();
        if self.seen == Some(v) {
            return Ok(());
        }
        self.seen = Some(v);
        let mut by_ip: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
        for i in 0..s.hosting.hosts() {
            for (ip, _) in s.hosting.hosted_by(i) {
                by_ip.entry(ip).or_default().push(i);
            }
        }
        for (ip, hosts) in by_ip {
            if hosts.len() > 1 {
                let mut detail = String::new();
                for &h in &hosts {
                    let x = s
                        .hosting
                        .hosted_by(h)
                        .find(|(a, _)| *a == ip)
                        .map(|(_, x)| x)
                        .expect("listed");
                    let _ = write!(
                        detail,
                        " n{h}: since {}s, daemon {:?}{};",
                        Secs(x.since),
                        s.nodes[h].state,
                        match x.expires {
                            Some(e) => format!(", lapses at {}s", Secs(e)),
                            None => String::new(),
                        }
                    );
                }
                return Err(format!(
                    "{ip} is hosted by {} at once:{detail}",
                    names(hosts.iter().copied())
                ));
            }
        }
        Ok(())
    }
}
