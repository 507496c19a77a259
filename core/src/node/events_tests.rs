//! Health, interface carrier and the notifications behind CTDB's events, one rule per test,
//! on the in-memory network with explicit time.

use super::*;
use crate::testing::Net;
use alloc::vec;
use core::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn tunables() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t.set("KeepaliveLimit", "3").unwrap();
    t.set("RerecoveryTimeout", "0").unwrap();
    t
}

/// Six addresses every node may host, on `eth0` (node 0 also lists `eth1` for the last one).
fn addresses() -> Vec<IpAddr> {
    (1..=6)
        .map(|i| IpAddr::from([10, 215, 44, 100 + i]))
        .collect()
}

/// Three nodes with the six addresses, run until each is hosted once.
fn cluster() -> Net {
    let mut text = String::new();
    for a in addresses() {
        text.push_str(&format!("{a}/24 eth0\n"));
    }
    let mut net = Net::idle_n(3, tunables());
    net.public_addresses = PublicAddresses::parse(&text).unwrap();
    for i in 0..3 {
        net.start(i);
    }
    let settled = net.run_until_cond(Duration::from_secs(5), |n| each_once(n, &[0, 1, 2]));
    assert!(
        settled.is_some(),
        "every address hosted once: {:?}",
        net.hosted
    );
    // The run's answers and its announcement.
    net.run_for(100 * MS);
    assert!(each_once(&net, &[0, 1, 2]));
    net
}

/// Every address is configured on exactly one node, and that node is one of `on`, with each
/// of `on` hosting at least one.
fn each_once(net: &Net, on: &[usize]) -> bool {
    addresses().iter().all(|&a| {
        let h = net.holders(a);
        h.len() == 1 && on.contains(&h[0])
    }) && on.iter().all(|&i| !net.hosted[i].is_empty())
}

/// No address on two hosts, checked at every step of `run`.
fn never_twice(net: &mut Net, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> Duration {
    let took = net.run_until_cond(limit, |n| {
        for a in addresses() {
            assert!(n.holders(a).len() <= 1, "{a} on {:?}", n.holders(a));
        }
        done(n)
    });
    took.unwrap_or_else(|| panic!("not reached within {limit:?}: {:?}", net.hosted))
}

#[test]
fn an_unhealthy_node_is_flagged_everywhere_and_its_addresses_move_away_and_back() {
    let mut net = cluster();
    net.input(1, Event::Health { healthy: false });
    assert!(net.node(1).flags_of(Pnn(1)).contains(NodeFlags::UNHEALTHY));
    let took = never_twice(&mut net, Duration::from_secs(2), |n| {
        n.flags(0, 1).contains(NodeFlags::UNHEALTHY)
            && n.flags(2, 1).contains(NodeFlags::UNHEALTHY)
            && each_once(n, &[0, 2])
    });
    // The flag travels in the next keepalive; the run follows it.
    assert!(took <= 150 * MS, "moved away after {took:?}");
    // Repeating a verdict changes nothing.
    net.input(1, Event::Health { healthy: false });
    net.run_for(500 * MS);
    assert!(each_once(&net, &[0, 2]));
    net.input(1, Event::Health { healthy: true });
    let took = never_twice(&mut net, Duration::from_secs(2), |n| {
        !n.flags(0, 1).contains(NodeFlags::UNHEALTHY) && each_once(n, &[0, 1, 2])
    });
    assert!(took <= 150 * MS, "back after {took:?}");
}

#[test]
fn when_every_node_is_unhealthy_they_all_host() {
    let mut net = cluster();
    net.input(0, Event::Health { healthy: false });
    net.input(1, Event::Health { healthy: false });
    never_twice(&mut net, Duration::from_secs(2), |n| each_once(n, &[2]));
    // The last healthy node fails too: nothing is left unhosted (NoIPHostOnAllDisabled=0).
    net.input(2, Event::Health { healthy: false });
    never_twice(&mut net, Duration::from_secs(2), |n| {
        (0..3).all(|i| n.flags(0, i).contains(NodeFlags::UNHEALTHY)) && each_once(n, &[0, 1, 2])
    });
    net.run_for(Duration::from_secs(1));
    assert!(each_once(&net, &[0, 1, 2]), "{:?}", net.hosted);
}

#[test]
fn carrier_loss_releases_at_once_and_the_addresses_return_with_it() {
    let mut net = cluster();
    let had = net.hosted[1].clone();
    assert!(!had.is_empty());
    net.input(
        1,
        Event::Carrier {
            iface: "eth0",
            up: false,
        },
    );
    // Released in the same instant: no round trip to the recovery master first.
    assert!(net.hosted[1].is_empty(), "{:?}", net.hosted[1]);
    assert_eq!(
        net.node(1).interfaces(),
        vec![(String::from("eth0"), false, 0)]
    );
    let took = never_twice(&mut net, Duration::from_secs(2), |n| each_once(n, &[0, 2]));
    assert!(took <= 20 * MS, "hosted elsewhere after {took:?}");
    // While the link is down the node lists them unavailable: they stay away.
    net.run_for(Duration::from_secs(2));
    assert!(net.hosted[1].is_empty());
    net.input(
        1,
        Event::Carrier {
            iface: "eth0",
            up: true,
        },
    );
    never_twice(&mut net, Duration::from_secs(2), |n| {
        each_once(n, &[0, 1, 2])
    });
    let (name, up, n) = net.node(1).interfaces().remove(0);
    assert_eq!((name.as_str(), up), ("eth0", true));
    assert_eq!(n as usize, net.hosted[1].len());
}

#[test]
fn carrier_of_another_interface_changes_nothing() {
    let mut net = cluster();
    let before = net.hosted.clone();
    net.input(
        1,
        Event::Carrier {
            iface: "eth9",
            up: false,
        },
    );
    net.run_for(Duration::from_secs(1));
    assert_eq!(net.hosted, before);
}

#[test]
fn every_node_hears_of_recoveries_and_reallocations_in_order() {
    let net = cluster();
    for i in 0..3 {
        let mine: Vec<&Notification> = net
            .notes
            .iter()
            .filter(|(_, n, _)| *n == i)
            .map(|(_, _, n)| n)
            .filter(|n| {
                matches!(
                    n,
                    Notification::RecoveryStarted { .. }
                        | Notification::GenerationChanged { .. }
                        | Notification::IpReallocated
                )
            })
            .collect();
        let first = |f: fn(&Notification) -> bool| mine.iter().position(|n| f(n));
        let started = first(|n| matches!(n, Notification::RecoveryStarted { .. }));
        let recovered = first(|n| matches!(n, Notification::GenerationChanged { .. }));
        let reallocated = first(|n| matches!(n, Notification::IpReallocated));
        assert!(
            started.is_some() && started < recovered && recovered < reallocated,
            "node {i}: {mine:?}"
        );
        // The recovery that was told as started ends in the generation it named.
        let g = mine.iter().find_map(|n| match n {
            Notification::RecoveryStarted { generation } => Some(*generation),
            _ => None,
        });
        let g2 = mine.iter().find_map(|n| match n {
            Notification::GenerationChanged { generation, .. } => Some(*generation),
            _ => None,
        });
        assert_eq!(g, g2, "node {i}");
    }
}

#[test]
fn a_node_whose_releases_keep_failing_is_banned() {
    let mut net = cluster();
    // Node 1's releaseip fails every time (the address still goes).
    net.release_errno[1] = Some(5);
    let mut cycles = 0;
    while !net.flags(0, 1).contains(NodeFlags::BANNED) {
        cycles += 1;
        assert!(cycles <= 4, "not banned after {} cycles", cycles - 1);
        net.input(1, Event::Health { healthy: false });
        never_twice(&mut net, Duration::from_secs(2), |n| each_once(n, &[0, 2]));
        net.input(1, Event::Health { healthy: true });
        net.run_until_cond(Duration::from_secs(2), |n| {
            each_once(n, &[0, 1, 2]) || n.flags(0, 1).contains(NodeFlags::BANNED)
        });
        net.run_for(50 * MS);
    }
    // Two releases per cycle, banned at 2 x 3 nodes = 6 credits: the third cycle.
    assert_eq!(cycles, 3);
    never_twice(&mut net, Duration::from_secs(2), |n| each_once(n, &[0, 2]));
    // A node whose releases succeed is never banned.
    net.release_errno[1] = None;
    let mut net = cluster();
    for _ in 0..4 {
        net.input(1, Event::Health { healthy: false });
        never_twice(&mut net, Duration::from_secs(2), |n| each_once(n, &[0, 2]));
        net.input(1, Event::Health { healthy: true });
        never_twice(&mut net, Duration::from_secs(2), |n| {
            each_once(n, &[0, 1, 2])
        });
    }
    assert!(!net.flags(0, 1).contains(NodeFlags::BANNED));
}
