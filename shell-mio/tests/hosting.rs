//! Netlink, link watch and announcements for real, in network namespaces this test creates: a
//! "node" namespace with `d0` and a "peer" namespace with `d0p`, joined by a veth pair. Skipped
//! with a printed reason without root or `ip netns`.

mod netns;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use netns::{skip, veth, Netns};
use pharos_mio::hosting::announce::{self, Announcer, SCHEDULE};
use pharos_mio::hosting::link::{LinkEvent, LinkWatch};
use pharos_mio::hosting::netlink::{
    AddressInfo, Lifetime, Netlink, NetlinkError, Reply, RequestId,
};
use pharos_mio::hosting::{iface, IfaceAddr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const V4: &str = "10.213.1.10";
const V6: &str = "fd00:213:1::10";

fn secs(n: u32) -> Lifetime {
    Lifetime::Seconds(NonZeroU32::new(n).unwrap())
}

/// Node and peer namespaces joined by d0 (node) <-> d0p (peer); the peer has 10.213.1.2/24 and
/// fd00:213:1::2/64 so that it has routes (and neighbour entries) for the node's subnet.
struct Pair {
    node: Netns,
    peer: Netns,
}

impl Pair {
    fn new(tag: &str) -> Pair {
        let node = Netns::new(&format!("{tag}-n"));
        let peer = Netns::new(&format!("{tag}-p"));
        veth(&node, "d0", &peer, "d0p");
        peer.ip(&["addr", "add", "10.213.1.2/24", "dev", "d0p"]);
        peer.ip(&["addr", "add", "fd00:213:1::2/64", "dev", "d0p", "nodad"]);
        Pair { node, peer }
    }
}

/// A netlink client driven by a mio poll, as the daemon will drive it.
struct Client {
    nl: Netlink,
    poll: Poll,
}

impl Client {
    fn open() -> Client {
        let nl = Netlink::open().unwrap();
        let poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut SourceFd(&nl.as_raw_fd()), Token(0), Interest::READABLE)
            .unwrap();
        Client { nl, poll }
    }

    /// Waits (deadline 5 s) for the answers to `ids`, in that order.
    fn wait(&mut self, ids: &[RequestId]) -> Vec<Result<Reply, NetlinkError>> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        let mut events = Events::with_capacity(8);
        loop {
            while let Some(c) = self.nl.poll_completion() {
                got.push(c);
            }
            if ids.iter().all(|id| got.iter().any(|c| c.id == *id)) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no netlink answer within 5 s");
            self.poll.poll(&mut events, Some(left)).unwrap();
            self.nl.receive().unwrap();
        }
        ids.iter()
            .map(|id| got.iter().find(|c| c.id == *id).unwrap().result.clone())
            .collect()
    }

    fn one(&mut self, id: RequestId) -> Result<Reply, NetlinkError> {
        self.wait(&[id]).remove(0)
    }

    fn list(&mut self, ifindex: u32) -> Vec<AddressInfo> {
        let id = self.nl.list(ifindex);
        match self.one(id) {
            Ok(Reply::Addresses(v)) => v,
            other => panic!("list: {other:?}"),
        }
    }

    fn find(&mut self, a: &IfaceAddr) -> Option<AddressInfo> {
        self.list(a.ifindex).into_iter().find(|i| i.addr == *a)
    }
}

fn addrs(ifindex: u32) -> (IfaceAddr, IfaceAddr) {
    (
        IfaceAddr::new(ifindex, V4.parse().unwrap(), 24).unwrap(),
        IfaceAddr::new(ifindex, V6.parse().unwrap(), 64).unwrap(),
    )
}

#[test]
fn add_list_remove_both_families() {
    if skip("add_list_remove_both_families") {
        return;
    }
    let pair = Pair::new("alr");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        assert_eq!(iface::name(d0).unwrap(), "d0");
        let (v4, v6) = addrs(d0);
        let mut c = Client::open();
        let ids = [c.nl.add(&v4, Lifetime::Permanent), c.nl.add(&v6, secs(30))];
        assert_eq!(c.nl.in_flight(), 2);
        assert_eq!(c.wait(&ids), vec![Ok(Reply::Done), Ok(Reply::Done)]);

        // IPv6 without DAD is usable at once: a tentative address cannot be bound.
        UdpSocket::bind((V6.parse::<Ipv6Addr>().unwrap(), 0)).expect("bind the new IPv6 address");

        let i4 = c.find(&v4).expect("IPv4 listed");
        assert_eq!((i4.valid_lft, i4.preferred_lft), (None, None));
        let i6 = c.find(&v6).expect("IPv6 listed");
        assert!(matches!(i6.valid_lft, Some(25..=30)), "{i6:?}");
        assert_ne!(i6.flags & 0x02, 0, "IFA_F_NODAD: {i6:?}");
        assert_eq!(i6.flags & 0x40, 0, "not tentative: {i6:?}");
        // Cross-check with ip: the IPv4 broadcast is set as `brd +` would.
        let shown = pair.node.ip(&["addr", "show", "dev", "d0"]);
        assert!(
            shown.contains("inet 10.213.1.10/24 brd 10.213.1.255"),
            "{shown}"
        );
        assert!(shown.contains("inet6 fd00:213:1::10/64"), "{shown}");

        // A second add is EEXIST with a readable message.
        let again = c.nl.add(&v4, Lifetime::Permanent);
        let err = c.one(again).unwrap_err();
        assert_eq!(err.errno, libc::EEXIST);
        assert!(err.message.starts_with("File exists"), "{err}");
        // An interface that does not exist: ENODEV, not a panic or a hang.
        let nowhere = IfaceAddr::new(999_999, V4.parse().unwrap(), 24).unwrap();
        let id = c.nl.add(&nowhere, Lifetime::Permanent);
        assert_eq!(c.one(id).unwrap_err().errno, libc::ENODEV);

        let ids = [c.nl.remove(&v4), c.nl.remove(&v6)];
        assert_eq!(c.wait(&ids), vec![Ok(Reply::Done), Ok(Reply::Done)]);
        let ids = [c.nl.remove(&v4), c.nl.remove(&v6)];
        assert_eq!(c.wait(&ids), vec![Ok(Reply::Absent), Ok(Reply::Absent)]);
        assert!(c.find(&v4).is_none() && c.find(&v6).is_none());
        assert_eq!(c.nl.in_flight(), 0);
    });
}

#[test]
fn remove_touches_only_the_exact_prefix() {
    if skip("remove_touches_only_the_exact_prefix") {
        return;
    }
    let pair = Pair::new("rex");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        // Someone else's address: same IP, another prefix length.
        pair.node
            .ip(&["addr", "add", "10.213.1.10/16", "dev", "d0"]);
        let mine = IfaceAddr::new(d0, V4.parse().unwrap(), 24).unwrap();
        let mut c = Client::open();
        let id = c.nl.remove(&mine);
        assert_eq!(c.one(id), Ok(Reply::Absent));
        let theirs = IfaceAddr::new(d0, V4.parse().unwrap(), 16).unwrap();
        assert!(c.find(&theirs).is_some(), "the /16 must survive");
    });
}

#[test]
fn removing_a_primary_keeps_its_secondaries_once_promoted() {
    if skip("removing_a_primary_keeps_its_secondaries_once_promoted") {
        return;
    }
    let pair = Pair::new("pri");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        let mine = IfaceAddr::new(d0, V4.parse().unwrap(), 24).unwrap();
        let theirs = IfaceAddr::new(d0, "10.213.1.20".parse().unwrap(), 24).unwrap();
        let mut c = Client::open();
        iface::promote_secondaries(d0).unwrap();
        let id = c.nl.add(&mine, Lifetime::Permanent);
        assert_eq!(c.one(id), Ok(Reply::Done));
        // Someone else's address in the same subnet: the secondary of ours.
        pair.node
            .ip(&["addr", "add", "10.213.1.20/24", "dev", "d0"]);
        let id = c.nl.remove(&mine);
        assert_eq!(c.one(id), Ok(Reply::Done));
        assert!(
            c.find(&theirs).is_some(),
            "removing our primary took their secondary with it"
        );
        assert!(c.find(&mine).is_none());
    });
}

#[test]
fn renew_extends_and_never_resurrects() {
    if skip("renew_extends_and_never_resurrects") {
        return;
    }
    let pair = Pair::new("ren");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        let (v4, v6) = addrs(d0);
        let mut c = Client::open();
        for a in [v4, v6] {
            let id = c.nl.add(&a, secs(5));
            assert_eq!(c.one(id), Ok(Reply::Done));
            assert!(matches!(c.find(&a).unwrap().valid_lft, Some(1..=5)));
            let id = c.nl.renew(&a, secs(600));
            assert_eq!(c.one(id), Ok(Reply::Done), "renew {a}");
            let info = c.find(&a).unwrap();
            assert!(matches!(info.valid_lft, Some(590..=600)), "{info:?}");
            assert!(matches!(info.preferred_lft, Some(590..=600)), "{info:?}");
            assert_eq!(
                info.flags & 0x40,
                0,
                "a renewal must not start DAD: {info:?}"
            );

            // Removed meanwhile (by the guardian, an operator, or expiry): a renewal must not
            // bring it back.
            let id = c.nl.remove(&a);
            assert_eq!(c.one(id), Ok(Reply::Done));
            let id = c.nl.renew(&a, secs(600));
            assert_eq!(c.one(id), Ok(Reply::Absent), "renew of removed {a}");
            assert!(c.find(&a).is_none(), "renewal resurrected {a}");
        }
        // No interface at all: absent too.
        let gone = IfaceAddr::new(999_999, V4.parse().unwrap(), 24).unwrap();
        let id = c.nl.renew(&gone, secs(5));
        assert_eq!(c.one(id), Ok(Reply::Absent));
    });
}

#[test]
fn lifetimes_expire() {
    if skip("lifetimes_expire") {
        return;
    }
    let pair = Pair::new("exp");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        let (v4, v6) = addrs(d0);
        let mut c = Client::open();
        let t0 = Instant::now();
        let ids = [c.nl.add(&v4, secs(1)), c.nl.add(&v6, secs(1))];
        assert_eq!(c.wait(&ids), vec![Ok(Reply::Done), Ok(Reply::Done)]);
        let mut gone = [None, None];
        let deadline = t0 + Duration::from_secs(6);
        while gone.iter().any(Option::is_none) {
            assert!(
                Instant::now() < deadline,
                "a 1 s lifetime did not expire within 6 s"
            );
            let listed = c.list(d0);
            for (slot, a) in gone.iter_mut().zip([v4, v6]) {
                if slot.is_none() && !listed.iter().any(|i| i.addr == a) {
                    *slot = Some(t0.elapsed());
                }
            }
            std::thread::sleep(Duration::from_millis(10)); // sampling period, not a wait for an outcome
        }
        println!(
            "lifetime 1 s: IPv4 gone after {:?}, IPv6 after {:?}",
            gone[0].unwrap(),
            gone[1].unwrap()
        );
        assert!(gone
            .iter()
            .all(|g| g.unwrap() >= Duration::from_millis(900)));
    });
}

#[test]
fn link_watch_reports_carrier() {
    if skip("link_watch_reports_carrier") {
        return;
    }
    let pair = Pair::new("lnk");
    let (mut watch, d0) = pair
        .node
        .enter(|| (LinkWatch::open().unwrap(), iface::index("d0").unwrap()));
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(
            &mut SourceFd(&watch.as_raw_fd()),
            Token(1),
            Interest::READABLE,
        )
        .unwrap();
    let mut wait_for = |want: &dyn Fn(&LinkEvent) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Events::with_capacity(4);
        loop {
            if watch.receive().unwrap().iter().any(want) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "link event did not come");
            poll.poll(&mut events, Some(left)).unwrap();
        }
    };
    // The initial dump.
    wait_for(&|e| e.ifindex == d0 && e.name == "d0" && e.up && e.carrier);
    // The peer end going down takes the carrier away from d0 (it stays administratively up).
    pair.peer.ip(&["link", "set", "d0p", "down"]);
    wait_for(&|e| e.ifindex == d0 && e.up && !e.carrier);
    pair.peer.ip(&["link", "set", "d0p", "up"]);
    wait_for(&|e| e.ifindex == d0 && e.up && e.carrier);
    pair.node.ip(&["link", "set", "d0", "down"]);
    wait_for(&|e| e.ifindex == d0 && !e.up);
}

/// A packet socket capturing every frame that arrives on `ifname` (created inside the namespace).
fn capture(ns: &Netns, ifname: &str) -> OwnedFd {
    ns.enter(|| {
        let ifindex = iface::index(ifname).unwrap();
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call, checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto as i32,
            )
        };
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is fresh and ours.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; all-zero is valid before we set the fields.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: bind with a sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::bind(
                sock.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0);
        sock
    })
}

/// The next captured frame matching `want`, within 5 s.
fn next_frame(sock: &OwnedFd, want: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "expected frame not captured within 5 s");
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pollfd; recv into a local buffer of its own size.
        let n = unsafe {
            libc::poll(&mut pfd, 1, left.as_millis() as i32);
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 && want(&buf[..n as usize]) {
            return buf[..n as usize].to_vec();
        }
    }
}

fn is_arp(f: &[u8], op: u16, ip: Ipv4Addr) -> bool {
    f.len() >= 42
        && f[12..14] == [0x08, 0x06]
        && f[20..22] == op.to_be_bytes()
        && f[28..32] == ip.octets()
}

fn is_na(f: &[u8], target: Ipv6Addr) -> bool {
    f.len() >= 14 + announce::NA_LEN
        && f[12..14] == [0x86, 0xdd]
        && f[14 + 40] == 136
        && f[14 + 48..14 + 64] == target.octets()
}

fn neighbour_mac(ns: &Netns, ip: &str) -> String {
    ns.ip(&["neigh", "show", ip, "dev", "d0p"])
}

#[test]
fn announcements_reach_the_peer_and_update_its_neighbours() {
    if skip("announcements_reach_the_peer_and_update_its_neighbours") {
        return;
    }
    let pair = Pair::new("ann");
    // The peer believes the addresses are elsewhere.
    for ip in [V4, V6] {
        pair.peer.ip(&[
            "neigh",
            "replace",
            ip,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "d0p",
            "nud",
            "stale",
        ]);
    }
    let cap = capture(&pair.peer, "d0p");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        let mac = iface::mac(d0).unwrap();
        let (v4, v6) = addrs(d0);
        let mut c = Client::open();
        let ids = [
            c.nl.add(&v4, Lifetime::Permanent),
            c.nl.add(&v6, Lifetime::Permanent),
        ];
        assert_eq!(c.wait(&ids), vec![Ok(Reply::Done), Ok(Reply::Done)]);

        let mut ann = Announcer::open().unwrap();
        let start = Instant::now();
        ann.start(start, &v4).unwrap();
        ann.start(start, &v6).unwrap();
        let ip4: Ipv4Addr = V4.parse().unwrap();
        let ip6: Ipv6Addr = V6.parse().unwrap();
        let check_round = || {
            for op in [announce::ARP_REQUEST, announce::ARP_REPLY] {
                let f = next_frame(&cap, |f| is_arp(f, op, ip4));
                assert_eq!(f[0..6], [0xff; 6], "to broadcast");
                assert_eq!(f[6..12], mac, "from d0");
                assert_eq!(f[22..28], mac, "sender MAC");
                assert_eq!(f[38..42], ip4.octets(), "target IP = sender IP");
            }
            let f = next_frame(&cap, |f| is_na(f, ip6));
            assert_eq!(f[0..6], [0x33, 0x33, 0, 0, 0, 1]);
            let ip = &f[14..];
            assert_eq!(ip[7], 255, "hop limit");
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
            assert_eq!((src, dst), (ip6, "ff02::1".parse().unwrap()));
            assert_eq!(
                announce::icmpv6_checksum(&src, &dst, &ip[40..72]),
                0,
                "checksum"
            );
            assert_eq!(ip[44], 0x20, "override, not solicited");
            assert_eq!(
                ip[64..72],
                [2, 1, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]]
            );
        };
        check_round();
        // The peer's kernel took them: its neighbour entries now name d0's MAC.
        let want = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        for ip in [V4, V6] {
            while !neighbour_mac(&pair.peer, ip).contains(&want) {
                assert!(
                    Instant::now() < deadline,
                    "peer neighbour {ip}: {}",
                    neighbour_mac(&pair.peer, ip)
                );
                std::thread::sleep(Duration::from_millis(5)); // sampling period
            }
        }
        // The repeats are deadlines, handled without sleeping: explicit times drive them.
        assert_eq!(ann.poll_timeout(), Some(start + SCHEDULE[1]));
        assert!(ann
            .on_timeout(start + SCHEDULE[1] - Duration::from_millis(1))
            .is_empty());
        assert!(ann.on_timeout(start + SCHEDULE[1]).is_empty());
        check_round();
        assert_eq!(ann.poll_timeout(), Some(start + SCHEDULE[2]));
        ann.cancel(v6.addr);
        assert!(ann.on_timeout(start + SCHEDULE[2]).is_empty());
        for op in [announce::ARP_REQUEST, announce::ARP_REPLY] {
            next_frame(&cap, |f| is_arp(f, op, ip4));
        }
        assert_eq!(ann.poll_timeout(), None, "three rounds, then done");

        // Not an Ethernet interface: a clear error and nothing planned.
        let lo = IfaceAddr::new(
            iface::index("lo").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            8,
        )
        .unwrap();
        let err = ann.start(Instant::now(), &lo).unwrap_err();
        assert!(
            err.to_string().contains("not an Ethernet interface"),
            "{err}"
        );
        assert_eq!(ann.poll_timeout(), None);
    });
}

/// Cost of add + first announcement round (and of the remove), measured, not asserted.
#[test]
fn measure_add_and_announce() {
    if skip("measure_add_and_announce") {
        return;
    }
    let pair = Pair::new("mes");
    pair.node.enter(|| {
        let d0 = iface::index("d0").unwrap();
        let (v4, v6) = addrs(d0);
        let mut c = Client::open();
        let mut ann = Announcer::open().unwrap();
        for (name, a) in [("IPv4", v4), ("IPv6", v6)] {
            let mut add = Vec::new();
            let mut total = Vec::new();
            let mut remove = Vec::new();
            for _ in 0..200 {
                let t0 = Instant::now();
                let id = c.nl.add(&a, secs(60));
                assert_eq!(c.one(id), Ok(Reply::Done));
                let t1 = Instant::now();
                ann.start(t1, &a).unwrap();
                let t2 = Instant::now();
                ann.cancel(a.addr);
                let id = c.nl.remove(&a);
                assert_eq!(c.one(id), Ok(Reply::Done));
                add.push(t1 - t0);
                total.push(t2 - t0);
                remove.push(t2.elapsed());
            }
            let show = |v: &mut Vec<Duration>| {
                v.sort();
                format!("p50 {:?} p90 {:?} max {:?}", v[v.len() / 2], v[v.len() * 9 / 10], v[v.len() - 1])
            };
            println!(
                "{name} (200 runs, debug build, shared machine): add+ack {}; add+ack+announce {}; remove+ack {}",
                show(&mut add),
                show(&mut total),
                show(&mut remove)
            );
        }
    });
}
