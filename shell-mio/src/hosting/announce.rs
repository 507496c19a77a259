//! Telling the neighbours where an address now lives, right after it was added: gratuitous ARP
//! for IPv4, an unsolicited neighbour advertisement for IPv6.
//!
//! - **IPv4**: an ARP request *and* an ARP reply, both with sender = target = the address and the
//!   interface's MAC, to the Ethernet broadcast address (CTDB sends both: some stacks and switches
//!   update their tables only on one kind; Linux updates an existing entry on either).
//! - **IPv6**: a neighbour advertisement from the address to all-nodes `ff02::1` (hop limit 255,
//!   as RFC 4861 requires), Override flag set, Solicited clear, with the target link-layer address
//!   option (RFC 4861 7.2.6). Neighbours update an entry they already have (it becomes STALE and
//!   is re-confirmed on next use); they do not create one, which is fine: whoever had none will ask.
//!
//! **How often:** [`SCHEDULE`] = at once, then 100 ms and 1 s later (three rounds). The first round
//! moves the traffic; the repeats cover a lost frame and a switch or host that was busy. CTDB sends
//! 3 rounds 1 s apart; keepalived 5 at once and 5 more after 5 s. Three rounds in about a second is
//! enough on a LAN, and the 100 ms repeat keeps a single lost frame from costing a whole second.
//!
//! Frames go out through one `AF_PACKET`/`SOCK_DGRAM` socket (the kernel adds the Ethernet header)
//! that receives nothing (protocol 0). Sending never blocks: a full queue (`EAGAIN`) loses that
//! round, which the next covers. The repeats are deadlines: [`Announcer::poll_timeout`] says
//! when, [`Announcer::on_timeout`] sends what is due.

use super::{iface, IfaceAddr};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// When the announcement rounds go out, counted from the first.
pub const SCHEDULE: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(100),
    Duration::from_secs(1),
];

/// ARP operation: request.
pub const ARP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const ARP_REPLY: u16 = 2;
/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_LEN: usize = 28;
/// Length of the IPv6 packet carrying a neighbour advertisement with one link-layer option.
pub const NA_LEN: usize = 40 + 24 + 8;

const ETH_BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet address of the IPv6 all-nodes group ff02::1.
const ETH_ALL_NODES: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOUR_ADVERT: u8 = 136;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LL_ADDR: u8 = 2;

/// The ARP packet announcing that `ip` is at `mac` (ARP request: target MAC zero; reply: ours).
pub fn arp_packet(op: u16, mac: [u8; 6], ip: Ipv4Addr) -> [u8; ARP_LEN] {
    let mut p = [0u8; ARP_LEN];
    p[0..2].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    p[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    p[4] = 6;
    p[5] = 4;
    p[6..8].copy_from_slice(&op.to_be_bytes());
    p[8..14].copy_from_slice(&mac);
    p[14..18].copy_from_slice(&ip.octets());
    if op == ARP_REPLY {
        p[18..24].copy_from_slice(&mac);
    }
    p[24..28].copy_from_slice(&ip.octets());
    p
}

/// The IPv6 packet (header included) of an unsolicited neighbour advertisement: `ip` is at `mac`.
pub fn neighbour_advert(mac: [u8; 6], ip: Ipv6Addr) -> [u8; NA_LEN] {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut p = [0u8; NA_LEN];
    p[0] = 0x60; // version 6, traffic class and flow label 0
    p[4..6].copy_from_slice(&((NA_LEN - 40) as u16).to_be_bytes());
    p[6] = IPPROTO_ICMPV6;
    p[7] = 255; // hop limit: receivers drop ND packets that crossed a router
    p[8..24].copy_from_slice(&ip.octets());
    p[24..40].copy_from_slice(&all_nodes.octets());
    let icmp = &mut p[40..];
    icmp[0] = ICMPV6_NEIGHBOUR_ADVERT;
    icmp[4] = NA_FLAG_OVERRIDE;
    icmp[8..24].copy_from_slice(&ip.octets());
    icmp[24] = ND_OPT_TARGET_LL_ADDR;
    icmp[25] = 1; // option length in units of 8 bytes
    icmp[26..32].copy_from_slice(&mac);
    let sum = icmpv6_checksum(&ip, &all_nodes, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The ICMPv6 checksum (RFC 4443 2.3) of `msg` (checksum field zero) from `src` to `dst`.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for chunk in bytes.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += word as u32;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Announcements still to send for one address.
struct Planned {
    target: IfaceAddr,
    /// Index into [`SCHEDULE`] of the next round.
    round: usize,
    start: Instant,
}

/// Sends announcements and keeps the schedule of their repeats.
pub struct Announcer {
    socket: OwnedFd,
    planned: Vec<Planned>,
}

impl Announcer {
    /// Opens the packet socket (needs `CAP_NET_RAW`) in the current network namespace.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use. Protocol 0: the socket
        // receives nothing.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Announcer {
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
            planned: Vec::new(),
        })
    }

    /// Sends the first round for `target` now and plans the rest (replacing any plan for the
    /// same address). An error when the first round could not be sent at all (no MAC: not an
    /// Ethernet interface; no such interface); the repeats are planned anyway unless the
    /// interface has no MAC.
    pub fn start(&mut self, now: Instant, target: &IfaceAddr) -> io::Result<()> {
        self.cancel(target.addr);
        let sent = self.send_round(target);
        if sent.as_ref().err().map(io::Error::kind) != Some(io::ErrorKind::InvalidInput) {
            self.planned.push(Planned {
                target: *target,
                round: 1,
                start: now,
            });
        }
        sent
    }

    /// Forgets the planned repeats for `addr` (it was released).
    pub fn cancel(&mut self, addr: IpAddr) {
        self.planned.retain(|p| p.target.addr != addr);
    }

    /// When the next repeat is due, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.planned
            .iter()
            .map(|p| p.start + SCHEDULE[p.round])
            .min()
    }

    /// Sends every round due at `now`; returns the ones that failed (for the log).
    pub fn on_timeout(&mut self, now: Instant) -> Vec<(IfaceAddr, io::Error)> {
        let mut failed = Vec::new();
        let mut i = 0;
        while i < self.planned.len() {
            let p = &self.planned[i];
            if p.start + SCHEDULE[p.round] > now {
                i += 1;
                continue;
            }
            let target = p.target;
            if let Err(e) = self.send_round(&target) {
                failed.push((target, e));
            }
            let p = &mut self.planned[i];
            p.round += 1;
            if p.round >= SCHEDULE.len() {
                self.planned.swap_remove(i);
            } else {
                i += 1;
            }
        }
        failed
    }

    /// One round for `target`: ARP request and reply, or one neighbour advertisement.
    pub fn send_round(&self, target: &IfaceAddr) -> io::Result<()> {
        let mac = iface::mac(target.ifindex)?;
        match target.addr {
            IpAddr::V4(ip) => {
                let req = self.send(
                    target.ifindex,
                    libc::ETH_P_ARP,
                    ETH_BROADCAST,
                    &arp_packet(ARP_REQUEST, mac, ip),
                );
                let rep = self.send(
                    target.ifindex,
                    libc::ETH_P_ARP,
                    ETH_BROADCAST,
                    &arp_packet(ARP_REPLY, mac, ip),
                );
                req.and(rep)
            }
            IpAddr::V6(ip) => self.send(
                target.ifindex,
                libc::ETH_P_IPV6,
                ETH_ALL_NODES,
                &neighbour_advert(mac, ip),
            ),
        }
    }

    fn send(&self, ifindex: u32, ethertype: i32, dest: [u8; 6], frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is a plain C struct; all-zero is valid before we set the fields.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (ethertype as u16).to_be();
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&dest);
        // SAFETY: sendto with our own buffer and a sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("announce on ifindex {ifindex}: {e}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    #[test]
    fn arp_request_and_reply_layout() {
        let ip = Ipv4Addr::new(10, 213, 9, 5);
        let req = arp_packet(ARP_REQUEST, MAC, ip);
        assert_eq!(&req[..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&req[8..14], &MAC);
        assert_eq!(&req[14..18], &ip.octets());
        assert_eq!(&req[18..24], &[0; 6]);
        assert_eq!(&req[24..28], &ip.octets());
        let rep = arp_packet(ARP_REPLY, MAC, ip);
        assert_eq!(&rep[6..8], &[0, 2]);
        assert_eq!(&rep[18..24], &MAC);
    }

    #[test]
    fn neighbour_advert_layout_and_checksum() {
        let ip: Ipv6Addr = "fd00:213::5".parse().unwrap();
        let p = neighbour_advert(MAC, ip);
        assert_eq!(p[0] >> 4, 6);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]), 32);
        assert_eq!((p[6], p[7]), (58, 255));
        assert_eq!(&p[8..24], &ip.octets());
        assert_eq!(p[24..40], "ff02::1".parse::<Ipv6Addr>().unwrap().octets());
        let icmp = &p[40..];
        assert_eq!((icmp[0], icmp[1], icmp[4]), (136, 0, 0x20));
        assert_eq!(&icmp[8..24], &ip.octets());
        assert_eq!(&icmp[24..26], &[2, 1]);
        assert_eq!(&icmp[26..32], &MAC);
        // A correct checksum makes the whole sum (checksum included) verify to zero.
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(icmpv6_checksum(&ip, &all_nodes, icmp), 0);
    }

    #[test]
    fn checksum_of_a_known_message() {
        // RFC 1071 style check: an odd-length message is padded with a zero byte.
        let src = Ipv6Addr::LOCALHOST;
        let s1 = icmpv6_checksum(&src, &src, &[1, 2, 3]);
        let s2 = icmpv6_checksum(&src, &src, &[1, 2, 3, 0]);
        // Same words, but the length in the pseudo-header differs by one.
        assert_eq!(s1.wrapping_sub(s2), 1);
    }
}
