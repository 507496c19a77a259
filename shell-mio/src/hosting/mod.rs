//! The host side of public addresses: putting them on an interface and taking them off again
//! (`netlink`), telling the neighbours where they now live (`announce`), noticing links go down
//! (`link`), and making sure they never outlive the daemon (`guardian`).
//!
//! Every piece is non-blocking and fits the daemon's single-threaded mio loop: requests are sent
//! at once and their answers come back later, as completions or events the loop polls for; timed
//! repeats (announcements, heartbeats) are deadlines the loop sleeps until, never sleeps.
//! Only the guardian, a separate process, blocks, and only while it fences.

pub mod announce;
pub mod guardian;
pub mod iface;
pub mod link;
pub mod netlink;

use std::fmt;
use std::net::IpAddr;

/// One address on one interface: what the core asks to host, and what the guardian is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfaceAddr {
    /// Interface index (see [`iface::index`]).
    pub ifindex: u32,
    /// The address itself.
    pub addr: IpAddr,
    /// Prefix length (0-32 for IPv4, 0-128 for IPv6).
    pub prefix_len: u8,
}

impl IfaceAddr {
    /// `None` when the prefix length is too long for the address family.
    pub fn new(ifindex: u32, addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(IfaceAddr {
            ifindex,
            addr,
            prefix_len,
        })
    }
}

impl fmt::Display for IfaceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on ifindex {}",
            self.addr, self.prefix_len, self.ifindex
        )
    }
}
