//! Election, cluster lock, quorum, generations and recovery on the in-memory network, with
//! explicit virtual time.

use super::*;
use crate::control::Response;
use crate::testing::Net;
use crate::types::{ConnId, Link};
use crate::wire::{self, Header};
use alloc::vec;
use core::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn tunables() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t.set("KeepaliveLimit", "3").unwrap();
    t
}

fn running(net: &Net) -> Vec<usize> {
    (0..net.nodes.len())
        .filter(|&i| net.nodes[i].is_some())
        .collect()
}

/// The recmaster and generation every listed node agrees on, if they do and one is acting.
fn agreed(net: &Net, nodes: &[usize]) -> Option<(Pnn, Generation)> {
    let first = net.node(nodes[0]);
    let (r, g) = (first.recmaster(), first.generation());
    let same = nodes
        .iter()
        .all(|&i| net.node(i).recmaster() == r && net.node(i).generation() == g);
    let acting = r != Pnn::NONE
        && net.nodes[r.index()]
            .as_ref()
            .is_some_and(|n| n.is_acting_recmaster());
    (same
        && acting
        && nodes
            .iter()
            .all(|&i| net.node(i).recovery_mode() == RecoveryMode::Normal))
    .then_some((r, g))
}

fn acting(net: &Net) -> Vec<usize> {
    running(net)
        .into_iter()
        .filter(|&i| net.node(i).is_acting_recmaster())
        .collect()
}

/// Runs in 1 ms steps until `cond`, asserting after every step that at most one node acts as
/// recovery master and that the model lock's holder is the only one who thinks it holds it.
fn run_safely(
    net: &mut Net,
    limit: Duration,
    mut cond: impl FnMut(&Net) -> bool,
) -> Option<Duration> {
    let start = net.now();
    while net.now() - start <= limit {
        let a = acting(net);
        assert!(
            a.len() <= 1,
            "two acting recovery masters: {a:?} at {:?}",
            net.now()
        );
        for i in running(net) {
            if net.node(i).holds_lock() {
                assert_eq!(
                    net.lock_holder,
                    Some(i),
                    "node {i} believes it holds a lock it does not"
                );
            }
        }
        if cond(net) {
            return Some(net.now() - start);
        }
        net.run_for(MS);
    }
    None
}

#[test]
fn election_converges_for_1_to_7_nodes_with_staggered_starts() {
    for n in 1..=7usize {
        let mut net = Net::idle_n(n, tunables());
        // Start in a rotated order, 50 ms apart: the first started is the longest running.
        let order: Vec<usize> = (0..n).map(|k| (k + n / 2) % n).collect();
        for &i in &order {
            net.start(i);
            net.run_for(50 * MS);
        }
        let all: Vec<usize> = (0..n).collect();
        let took = run_safely(&mut net, Duration::from_secs(5), |net| {
            agreed(net, &all).is_some()
        });
        assert!(took.is_some(), "{n} nodes did not converge");
        let (r, g) = agreed(&net, &all).unwrap();
        assert_eq!(
            r,
            Pnn(order[0] as u32),
            "{n} nodes: the longest running node wins"
        );
        assert!(g > Generation(1), "a recovery followed the election");
        assert_eq!(net.node(r.index()).vnnmap().len(), n);
        assert_eq!(net.node(0).vnnmap(), net.node(n - 1).vnnmap());
    }
}

#[test]
fn equal_start_times_biggest_pnn_wins() {
    let mut net = Net::new(4, tunables());
    let all = [0, 1, 2, 3];
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    assert_eq!(agreed(&net, &all).unwrap().0, Pnn(3));
}

#[test]
fn recmaster_crash_new_one_within_election_timeout_plus_detection() {
    let mut net = Net::new(5, tunables());
    let all = [0, 1, 2, 3, 4];
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    let (old, gen) = agreed(&net, &all).unwrap();
    net.crash(old.index());
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != old.index()).collect();
    let took = run_safely(&mut net, Duration::from_secs(5), |net| {
        agreed(net, &survivors).is_some_and(|(r, _)| r != old)
    })
    .expect("no new recovery master");
    // EOF detection is immediate; then one ElectionTimeout (1 s), the lock, one recovery.
    assert!(took <= Duration::from_millis(1100), "took {took:?}");
    let (_, new_gen) = agreed(&net, &survivors).unwrap();
    assert!(new_gen > gen, "generations only grow");
}

#[test]
fn frozen_recmaster_keeps_the_lock_until_it_wakes_and_steps_down() {
    let mut net = Net::new(3, tunables());
    let all = [0, 1, 2];
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    let (old, _) = agreed(&net, &all).unwrap();
    net.freeze(old.index());
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != old.index()).collect();
    // They elect a new recmaster, but it cannot act: the frozen one still holds the lock.
    run_safely(&mut net, Duration::from_secs(3), |net| {
        let r = net.node(others[0]).recmaster();
        r != Pnn::NONE && r != old && net.node(others[1]).recmaster() == r
    })
    .expect("no new recmaster elected");
    net.run_for(Duration::from_secs(2));
    assert!(others.iter().all(|&i| !net.node(i).is_acting_recmaster()));
    assert_eq!(net.lock_holder, Some(old.index()));
    // Thawed, it finds itself alone (its peers closed its connections), steps down and lets go.
    net.thaw(old.index());
    let took = run_safely(&mut net, Duration::from_secs(5), |net| {
        agreed(net, &all).is_some_and(|(r, _)| r != old)
    });
    assert!(took.is_some(), "cluster did not settle after the thaw");
}

#[test]
fn lock_contention_nobody_acts_until_the_lock_is_free() {
    let mut net = Net::new(3, tunables());
    net.lock_holder = Some(usize::MAX); // held by someone outside the cluster
    net.run_for(Duration::from_secs(3));
    let r = net.node(0).recmaster();
    assert_ne!(r, Pnn::NONE, "the election still happens");
    assert!(acting(&net).is_empty());
    assert_eq!(
        net.node(0).generation(),
        Generation(1),
        "no recovery without the lock"
    );
    net.lock_holder = None;
    // The recmaster retries every RecoverInterval (1 s).
    let took = run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &[0, 1, 2]).is_some()
    })
    .unwrap();
    assert!(took <= Duration::from_millis(1100), "{took:?}");
    assert_eq!(acting(&net), vec![r.index()]);
}

#[test]
fn lost_lock_means_step_down_and_repeated_failures_ban() {
    let mut net = Net::new(3, tunables());
    let all = [0, 1, 2];
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    let (r, _) = agreed(&net, &all).unwrap();
    net.lock_event(r.index(), LockResult::Lost);
    net.run_for(MS);
    assert!(!net.node(r.index()).is_acting_recmaster());
    // A new election follows; the same node may win again, and takes the lock again.
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    assert_eq!(
        agreed(&net, &all).unwrap().0,
        r,
        "equal start times: the same node wins again"
    );
    net.lock_event(r.index(), LockResult::Lost);
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    assert!(
        !net.node(0).flags_of(r).contains(NodeFlags::BANNED),
        "two losses: not yet"
    );
    // The third loss within RecoveryGracePeriod bans it, so somebody else leads.
    net.lock_event(r.index(), LockResult::Lost);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != r.index()).collect();
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &others).is_some_and(|(x, _)| x != r)
    })
    .unwrap();
    for i in all {
        assert!(
            net.node(i).flags_of(r).contains(NodeFlags::BANNED),
            "node {i}"
        );
    }
}

#[test]
fn partition_3_2_only_the_majority_leads_then_heal_gives_one_recmaster() {
    let mut net = Net::new(5, tunables());
    let all = [0, 1, 2, 3, 4];
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    assert_eq!(
        agreed(&net, &all).unwrap().0,
        Pnn(4),
        "the old master is in the minority below"
    );
    let gen_before = net.node(0).generation();
    net.partition(&[&[0, 1, 2], &[3, 4]]);
    let took = run_safely(&mut net, Duration::from_secs(5), |net| {
        agreed(net, &[0, 1, 2]).is_some_and(|(r, _)| r == Pnn(2))
    });
    assert!(took.is_some(), "majority did not elect");
    for i in [3, 4] {
        assert!(
            !net.node(i).quorate(),
            "node {i} in the minority is quorate"
        );
        assert!(!net.node(i).is_acting_recmaster());
    }
    assert!(
        net.released_all.iter().any(|&(_, i)| i == 4),
        "the minority released its addresses"
    );
    assert!(net.node(0).generation() > gen_before);
    // Stay partitioned a while: nothing changes, the minority never acts.
    run_safely(&mut net, Duration::from_secs(3), |_| false);
    net.heal();
    let took = run_safely(&mut net, Duration::from_secs(10), |net| {
        agreed(net, &all).is_some()
    });
    assert!(took.is_some(), "no single recmaster after heal");
    let (_, g) = agreed(&net, &all).unwrap();
    assert!(all
        .iter()
        .all(|&i| net.node(i).generation() == g && net.node(i).quorate()));
}

#[test]
fn two_node_survivor_stays_quorate_only_with_the_lock() {
    for two_node in [false, true] {
        let mut t = tunables();
        t.set("TwoNode", if two_node { "1" } else { "0" }).unwrap();
        let mut net = Net::new(2, t);
        run_safely(&mut net, Duration::from_secs(3), |net| {
            agreed(net, &[0, 1]).is_some()
        })
        .unwrap();
        let (r, _) = agreed(&net, &[0, 1]).unwrap();
        // The recmaster dies: its lock goes with it (fcntl).
        net.crash(r.index());
        let other = 1 - r.index();
        let took = run_safely(&mut net, Duration::from_secs(3), |net| {
            net.node(other).is_acting_recmaster()
        });
        if two_node {
            assert!(took.is_some(), "two_node survivor did not take over");
            assert!(net.node(other).quorate() && net.node(other).holds_lock());
        } else {
            assert!(took.is_none());
            assert!(!net.node(other).quorate());
            assert_eq!(net.node(other).recmaster(), Pnn::NONE);
        }
    }
}

#[test]
fn wait_for_all_needs_every_node_once() {
    let mut t = tunables();
    t.set("WaitForAll", "1").unwrap();
    let mut net = Net::idle_n(3, t);
    net.start(0);
    net.start(1);
    net.run_for(Duration::from_secs(3));
    assert!(!net.node(0).quorate(), "2 of 3 but node 2 was never seen");
    assert_eq!(net.node(0).recmaster(), Pnn::NONE);
    net.start(2);
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &[0, 1, 2]).is_some()
    })
    .unwrap();
    net.crash(2);
    net.run_for(50 * MS);
    assert!(net.node(0).quorate(), "seen once is enough; 2 of 3 remain");
}

#[test]
fn ban_is_seen_cluster_wide_and_a_banned_node_never_leads() {
    let mut net = Net::new(3, tunables());
    let all = [0, 1, 2];
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    assert_eq!(agreed(&net, &all).unwrap().0, Pnn(2));
    assert_eq!(net.control(2, "ban 5"), Response::Done(None));
    net.run_for(5 * MS);
    for i in all {
        assert!(
            net.node(i).flags_of(Pnn(2)).contains(NodeFlags::BANNED),
            "node {i}"
        );
    }
    assert!(
        net.released_all.iter().any(|&(_, i)| i == 2),
        "a banned node releases its addresses"
    );
    // Nodes 0 and 1 agree on a new recmaster; the banned node follows it but, inactive, is left
    // out of the new generation's vnnmap (as in CTDB).
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &[0, 1]).is_some_and(|(r, _)| r == Pnn(1)) && net.node(2).recmaster() == Pnn(1)
    })
    .unwrap();
    assert!(!net.node(1).vnnmap().contains(Pnn(2)));
    // The ban survives the recovery that followed, then expires after 5 s.
    assert!(net.node(0).flags_of(Pnn(2)).contains(NodeFlags::BANNED));
    net.run_for(Duration::from_secs(5));
    assert!(!net.node(0).flags_of(Pnn(2)).contains(NodeFlags::BANNED));
    // Unbanned, it follows the current recmaster rather than forcing an election, and the next
    // recovery (after RerecoveryTimeout) brings it back into the vnnmap.
    net.run_for(Duration::from_secs(2));
    assert!(all.iter().all(|&i| net.node(i).recmaster() == Pnn(1)));
    run_safely(&mut net, Duration::from_secs(12), |net| {
        agreed(net, &all).is_some()
    })
    .unwrap();
    assert!(net.node(1).vnnmap().contains(Pnn(2)));
    assert_eq!(agreed(&net, &all).unwrap().0, Pnn(1));
}

#[test]
fn stop_disable_and_their_undo_propagate() {
    let mut net = Net::new(3, tunables());
    net.run_for(Duration::from_secs(2));
    for (cmd, flag) in [
        ("disable", NodeFlags::DISABLED),
        ("stop", NodeFlags::STOPPED),
    ] {
        net.control(0, cmd);
        net.run_for(5 * MS);
        assert!(net.node(1).flags_of(Pnn(0)).contains(flag), "{cmd}");
    }
    net.control(0, "enable");
    net.control(0, "continue");
    net.run_for(5 * MS);
    assert_eq!(net.node(2).flags_of(Pnn(0)), NodeFlags::empty());
}

#[test]
fn non_recmaster_capable_nodes_never_lead() {
    let mut net = Net::idle_n(3, tunables());
    net.capable[2] = false;
    for i in 0..3 {
        net.start(i);
    }
    run_safely(&mut net, Duration::from_secs(3), |net| {
        agreed(net, &[0, 1, 2]).is_some()
    })
    .unwrap();
    assert_eq!(
        agreed(&net, &[0, 1, 2]).unwrap().0,
        Pnn(1),
        "2 would win on PNN but cannot lead"
    );
}

#[test]
fn follower_leaves_recovery_mode_when_its_master_dies_mid_recovery() {
    // Three nodes; the recmaster's recovery start reaches the others, then it crashes before
    // committing. Driven by hand: node 0 alone, peers faked with frames.
    let nodes = NodesFile::parse("127.0.0.1\n127.0.0.2\n127.0.0.3\n").unwrap();
    let t0 = Instant::ZERO;
    let mut n = Node::new(
        NodeConfig::new(nodes, Pnn(0), 4379, tunables()).unwrap(),
        1,
        t0,
    );
    let hello = |src: u32| {
        let mut v = Vec::new();
        let h = Header {
            op: wire::Op::Hello,
            src: Pnn(src),
            dst: Pnn(0),
            generation: Generation(1),
            request_id: 0,
        };
        let m = Message::Hello(wire::Hello {
            incarnation: 1,
            flags: NodeFlags::empty(),
            capabilities: wire::CAP_RECMASTER,
            start_stamp: 0,
            liveness: crate::wire::Liveness {
                interval_ms: 100,
                limit: 3,
            },
        });
        wire::encode(&h, &m, &mut v);
        v
    };
    let frame = |src: u32, gen: u32, m: Message| {
        let mut v = Vec::new();
        let h = Header {
            op: m.op(),
            src: Pnn(src),
            dst: Pnn(0),
            generation: Generation(gen),
            request_id: 0,
        };
        wire::encode(&h, &m, &mut v);
        v
    };
    let at = |ms: u64| Instant::from_nanos(ms * 1_000_000);
    for (p, c) in [(1u32, 11u64), (2, 12)] {
        n.handle(at(1), Event::Connected { peer: Pnn(p) }).unwrap();
        n.handle(
            at(1),
            Event::Accepted {
                conn: ConnId(c),
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, p as u8 + 1)),
            },
        )
        .unwrap();
        n.handle(
            at(1),
            Event::Frame {
                link: Link::In(ConnId(c)),
                bytes: &hello(p),
            },
        )
        .unwrap();
    }
    // Node 2 claims the role.
    let claim = Message::Keepalive(Keepalive {
        flags: NodeFlags::empty(),
        recmaster: Pnn(2),
        recovery_mode: RecoveryMode::Normal,
        liveness: crate::wire::Liveness {
            interval_ms: 100,
            limit: 3,
        },
        stamp: 1,
        echo: 0,
    });
    n.handle(
        at(2),
        Event::Frame {
            link: Link::In(ConnId(12)),
            bytes: &frame(2, 1, claim),
        },
    )
    .unwrap();
    assert_eq!(n.recmaster(), Pnn(2));
    // A recovery start of an older generation is refused.
    n.handle(
        at(3),
        Event::Frame {
            link: Link::In(ConnId(12)),
            bytes: &frame(
                2,
                0,
                Message::RecoveryStart {
                    members: members_0_2(),
                },
            ),
        },
    )
    .unwrap();
    assert_eq!(n.stats().stale_generation, 1);
    assert_eq!(n.recovery_mode(), RecoveryMode::Normal);
    // A current one puts us in recovery mode, and we acknowledge in that generation.
    super::tests::transmits(&mut n);
    n.handle(
        at(4),
        Event::Frame {
            link: Link::In(ConnId(12)),
            bytes: &frame(
                2,
                2,
                Message::RecoveryStart {
                    members: members_0_2(),
                },
            ),
        },
    )
    .unwrap();
    assert_eq!(n.recovery_mode(), RecoveryMode::Active);
    let mut buf = Vec::new();
    let ack = core::iter::from_fn(|| {
        buf.clear();
        let peer = n.poll_transmit(&mut buf)?;
        Some((peer, wire::decode(&buf).unwrap()))
    })
    .find(|(_, (_, m))| *m == Message::RecoveryAck)
    .unwrap();
    assert_eq!((ack.0, ack.1 .0.generation), (Pnn(2), Generation(2)));
    // The master dies before committing: we leave recovery mode by ourselves, at once.
    n.handle(
        at(5),
        Event::Closed {
            link: Link::In(ConnId(12)),
        },
    )
    .unwrap();
    assert_eq!(n.recmaster(), Pnn::NONE);
    assert_eq!(n.recovery_mode(), RecoveryMode::Normal);
    assert_eq!(n.generation(), Generation(1), "never committed");
}

/// Nodes 0 and 2, as a recovery's members.
fn members_0_2() -> crate::types::NodeSet {
    let mut m = crate::types::NodeSet::new();
    m.insert(crate::types::Pnn(0));
    m.insert(crate::types::Pnn(2));
    m
}
