//! Health, interface carrier and the notifications behind CTDB's events, one rule per test,
//! on the node lab (`node/lab.rs`: real nodes through the drive path, each host's kernel
//! addresses modelled; it panics if an address is ever configured on two hosts) with explicit
//! time.

use super::lab::{IpMode, Lab, Rec};
use super::*;
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

/// Six addresses every node may host, on `eth0`.
fn addresses() -> Vec<IpAddr> {
    (1..=6)
        .map(|i| IpAddr::from([10, 215, 44, 100 + i]))
        .collect()
}

/// Three nodes with the six addresses, run until each is hosted once.
fn cluster() -> Lab {
    let mut text = String::new();
    for a in addresses() {
        text.push_str(&format!("{a}/24 eth0\n"));
    }
    let list = PublicAddresses::parse(&text).unwrap();
    let mut lab = Lab::new(vec![list.clone(), list.clone(), list], tunables());
    let settled = lab.run_until_cond(Duration::from_secs(5), |l| each_once(l, &[0, 1, 2]));
    assert!(
        settled.is_some(),
        "every address hosted once: {}",
        hosted(&lab)
    );
    // The run's answers and its announcement.
    lab.run_for(100 * MS);
    assert!(each_once(&lab, &[0, 1, 2]));
    lab
}

/// What each host's kernel has, for failure messages.
fn hosted(lab: &Lab) -> String {
    format!("{:?}", (0..3).map(|i| lab.kernel(i)).collect::<Vec<_>>())
}

/// How node `seen_by` sees node `of`'s flags.
fn flags(lab: &Lab, seen_by: usize, of: usize) -> NodeFlags {
    lab.node(seen_by).flags_of(Pnn(of as u32))
}

/// Every address is configured on exactly one node, and that node is one of `on`, with each
/// of `on` hosting at least one.
fn each_once(lab: &Lab, on: &[usize]) -> bool {
    addresses().iter().all(|&a| {
        let h = lab.holders(a);
        h.len() == 1 && on.contains(&h[0])
    }) && on.iter().all(|&i| !lab.kernel(i).is_empty())
}

/// Runs until `done` (the lab itself checks at every step that no address is on two hosts).
fn never_twice(lab: &mut Lab, limit: Duration, done: impl Fn(&Lab) -> bool) -> Duration {
    let took = lab.run_until_cond(limit, |l| done(l));
    took.unwrap_or_else(|| panic!("not reached within {limit:?}: {}", hosted(lab)))
}

#[test]
fn an_unhealthy_node_is_flagged_everywhere_and_its_addresses_move_away_and_back() {
    let mut lab = cluster();
    lab.event(1, Event::Health { healthy: false });
    assert!(lab.node(1).flags_of(Pnn(1)).contains(NodeFlags::UNHEALTHY));
    let took = never_twice(&mut lab, Duration::from_secs(2), |l| {
        flags(l, 0, 1).contains(NodeFlags::UNHEALTHY)
            && flags(l, 2, 1).contains(NodeFlags::UNHEALTHY)
            && each_once(l, &[0, 2])
    });
    // The flag travels in the next keepalive; the run follows it.
    assert!(took <= 150 * MS, "moved away after {took:?}");
    // Repeating a verdict changes nothing.
    lab.event(1, Event::Health { healthy: false });
    lab.run_for(500 * MS);
    assert!(each_once(&lab, &[0, 2]));
    lab.event(1, Event::Health { healthy: true });
    let took = never_twice(&mut lab, Duration::from_secs(2), |l| {
        !flags(l, 0, 1).contains(NodeFlags::UNHEALTHY) && each_once(l, &[0, 1, 2])
    });
    assert!(took <= 150 * MS, "back after {took:?}");
}

#[test]
fn when_every_node_is_unhealthy_they_all_host() {
    let mut lab = cluster();
    lab.event(0, Event::Health { healthy: false });
    lab.event(1, Event::Health { healthy: false });
    never_twice(&mut lab, Duration::from_secs(2), |l| each_once(l, &[2]));
    // The last healthy node fails too: nothing is left unhosted (NoIPHostOnAllDisabled=0).
    lab.event(2, Event::Health { healthy: false });
    never_twice(&mut lab, Duration::from_secs(2), |l| {
        (0..3).all(|i| flags(l, 0, i).contains(NodeFlags::UNHEALTHY)) && each_once(l, &[0, 1, 2])
    });
    lab.run_for(Duration::from_secs(1));
    assert!(each_once(&lab, &[0, 1, 2]), "{}", hosted(&lab));
}

#[test]
fn carrier_loss_releases_at_once_and_the_addresses_return_with_it() {
    let mut lab = cluster();
    let had = lab.kernel(1);
    assert!(!had.is_empty());
    lab.event(
        1,
        Event::Carrier {
            iface: "eth0",
            up: false,
        },
    );
    // Released in the same instant: no round trip to the recovery master first.
    assert!(lab.kernel(1).is_empty(), "{:?}", lab.kernel(1));
    assert_eq!(
        lab.node(1).interfaces(),
        vec![(String::from("eth0"), false, 0)]
    );
    let took = never_twice(&mut lab, Duration::from_secs(2), |l| each_once(l, &[0, 2]));
    assert!(took <= 20 * MS, "hosted elsewhere after {took:?}");
    // While the link is down the node lists them unavailable: they stay away.
    lab.run_for(Duration::from_secs(2));
    assert!(lab.kernel(1).is_empty());
    lab.event(
        1,
        Event::Carrier {
            iface: "eth0",
            up: true,
        },
    );
    never_twice(&mut lab, Duration::from_secs(2), |l| {
        each_once(l, &[0, 1, 2])
    });
    let (name, up, n) = lab.node(1).interfaces().remove(0);
    assert_eq!((name.as_str(), up), ("eth0", true));
    assert_eq!(n as usize, lab.kernel(1).len());
}

#[test]
fn carrier_of_another_interface_changes_nothing() {
    let mut lab = cluster();
    let before = hosted(&lab);
    lab.event(
        1,
        Event::Carrier {
            iface: "eth9",
            up: false,
        },
    );
    lab.run_for(Duration::from_secs(1));
    assert_eq!(hosted(&lab), before);
}

#[test]
fn every_node_hears_of_recoveries_and_reallocations_in_order() {
    let lab = cluster();
    for i in 0..3 {
        let mine: Vec<&Notification> = lab
            .log()
            .iter()
            .filter_map(|(_, r)| match r {
                Rec::Told { node, what } if *node == i => Some(what),
                _ => None,
            })
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
    let mut lab = cluster();
    // Node 1's releaseip fails every time (the address still goes).
    lab.set_mode(1, IpMode::FailRelease(5));
    let mut cycles = 0;
    while !flags(&lab, 0, 1).contains(NodeFlags::BANNED) {
        cycles += 1;
        assert!(cycles <= 4, "not banned after {} cycles", cycles - 1);
        lab.event(1, Event::Health { healthy: false });
        never_twice(&mut lab, Duration::from_secs(2), |l| each_once(l, &[0, 2]));
        lab.event(1, Event::Health { healthy: true });
        lab.run_until_cond(Duration::from_secs(2), |l| {
            each_once(l, &[0, 1, 2]) || flags(l, 0, 1).contains(NodeFlags::BANNED)
        });
        lab.run_for(50 * MS);
    }
    // Two releases per cycle, banned at 2 x 3 nodes = 6 credits: the third cycle.
    assert_eq!(cycles, 3);
    never_twice(&mut lab, Duration::from_secs(2), |l| each_once(l, &[0, 2]));
    // A node whose releases succeed is never banned.
    let mut lab = cluster();
    for _ in 0..4 {
        lab.event(1, Event::Health { healthy: false });
        never_twice(&mut lab, Duration::from_secs(2), |l| each_once(l, &[0, 2]));
        lab.event(1, Event::Health { healthy: true });
        never_twice(&mut lab, Duration::from_secs(2), |l| {
            each_once(l, &[0, 1, 2])
        });
    }
    assert!(!flags(&lab, 0, 1).contains(NodeFlags::BANNED));
}
