//! Takeover runs (issue 11, items 2, 6 and 8) on a small cluster of real nodes wired through the
//! one drive path (`node/lab.rs`), with explicit virtual time. After every step the lab checks that
//! no address is configured on two hosts (as the hosts' kernels see it, lifetimes included);
//! the tests check the order of releases, acknowledgements and takes, the waits for a silent
//! holder's lease, and what the admin commands, `moveip` and `reloadips` do.

use super::lab::{IpMode, Lab, Rec};
use super::*;
use crate::wire::{Entry, Header};
use alloc::vec;

const MS: Duration = Duration::from_millis(1);
const ADDRS: usize = 6;

/// KeepaliveInterval=100ms, KeepaliveLimit=3: a silent peer is dead after 350 ms.
fn tunables() -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t.set("KeepaliveLimit", "3").unwrap();
    t
}

/// How long after a silent holder left the vnnmap its addresses may still be configured, with
/// these tunables: its lease (5 intervals), the kernel lifetime of its last renewal (whole
/// seconds: 1 s), the kernel's lateness (1 s + 250 ms + 32 ms) and 1 % of both
/// (docs/ADDRESSES.md).
const EXPIRY_WAIT: Duration = Duration::from_millis(500 + 1000 + 1282 + 15);

fn addr(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 214, 66, 100 + k as u8))
}

/// A public_addresses file with the addresses `ks`, all on eth0.
fn list(ks: impl IntoIterator<Item = usize>) -> PublicAddresses {
    let text: String = ks
        .into_iter()
        .map(|k| format!("{}/24 eth0\n", addr(k)))
        .collect();
    PublicAddresses::parse(&text).unwrap()
}

/// 3 nodes that can each host all 6 addresses.
fn lab3(t: Tunables) -> Lab {
    Lab::new(vec![list(0..ADDRS), list(0..ADDRS), list(0..ADDRS)], t)
}

/// The one host that has `a` configured, if exactly one has.
fn holder(lab: &Lab, a: IpAddr) -> Option<usize> {
    match lab.holders(a)[..] {
        [h] => Some(h),
        _ => None,
    }
}

/// Every address of `ks` on exactly one of `nodes`, spread evenly over them.
fn spread(lab: &Lab, ks: &[usize], nodes: &[usize]) -> bool {
    let once = ks
        .iter()
        .all(|&k| holder(lab, addr(k)).is_some_and(|h| nodes.contains(&h)));
    let per = |i: usize| ks.iter().filter(|&&k| lab.holders(addr(k)) == [i]).count();
    let (lo, hi) = (ks.len() / nodes.len(), ks.len().div_ceil(nodes.len()));
    once && nodes.iter().all(|&i| (lo..=hi).contains(&per(i)))
}

/// No run under way on the recovery master, and the kernels and every node's `ip` agree.
fn quiet(lab: &Lab) -> bool {
    let r = lab.node(0).recmaster();
    if r == Pnn::NONE || !lab.is_running(r.index()) {
        return false;
    }
    let m = lab.node(r.index());
    if !m.is_acting_recmaster() || m.takeover.running() || m.takeover.wanted() {
        return false;
    }
    (0..3).filter(|&i| lab.is_running(i)).all(|i| {
        lab.node(i)
            .ips(true)
            .iter()
            .all(|s| lab.holders(s.address) == pnn_hosts(s.pnn))
    })
}

fn pnn_hosts(p: Pnn) -> Vec<usize> {
    if p == Pnn::NONE {
        vec![]
    } else {
        vec![p.index()]
    }
}

/// Runs until `cond` (at most `limit`), failing with the recent log otherwise.
fn settle(lab: &mut Lab, what: &str, limit: Duration, cond: impl Fn(&Lab) -> bool) -> Duration {
    match lab.run_until_cond(limit, |l| cond(l)) {
        Some(d) => d,
        None => panic!(
            "{what}: not within {limit:?}\n{}\n{}",
            lab.tail(60),
            state(lab)
        ),
    }
}

/// What each node believes and each host has, for failure messages.
fn state(lab: &Lab) -> String {
    let mut out = String::new();
    for i in 0..3 {
        if !lab.is_running(i) {
            out += &format!("node {i}: not running\n");
            continue;
        }
        let n = lab.node(i);
        out += &format!(
            "node {i}: recmaster {} acting {} running {} wanted {} flags {:?} kernel {:?}\n  ip: {:?}\n",
            n.recmaster(),
            n.is_acting_recmaster(),
            n.takeover.running(),
            n.takeover.wanted(),
            n.flags_of(Pnn(i as u32)),
            lab.kernel(i),
            n.ips(true).iter().map(|s| (s.address, s.pnn)).collect::<Vec<_>>()
        );
    }
    out
}

/// A 3-node cluster settled: every address hosted once, 2 per node, node 0 recovery master.
fn settled_lab3(t: Tunables) -> Lab {
    let mut lab = lab3(t);
    let all: Vec<usize> = (0..ADDRS).collect();
    let took = settle(&mut lab, "start", 3000 * MS, |l| {
        spread(l, &all, &[0, 1, 2]) && quiet(l)
    });
    // Every node is connected at once: no ElectionTimeout, and no failed run's backoff (the
    // first takes can be refused while a node's lease is not echoed yet).
    assert!(took < 100 * MS, "start took {took:?}");
    assert_eq!(lab.node(1).recmaster(), Pnn(0));
    lab
}

/// The first address node `i` hosts.
fn one_of(lab: &Lab, i: usize) -> IpAddr {
    lab.kernel(i)[0]
}

/// When each matching frame was sent, from `since` on.
fn sent(lab: &Lab, since: Instant, want: impl Fn(usize, usize, &Message) -> bool) -> Vec<Instant> {
    lab.log()
        .iter()
        .filter(|(t, _)| *t >= since)
        .filter_map(|(t, r)| match r {
            Rec::Frame { from, to, msg } if want(*from, *to, msg) => Some(*t),
            _ => None,
        })
        .collect()
}

/// When host `node` added (`true`) or removed `a`, from `since` on.
fn kernel_changes(lab: &Lab, since: Instant, a: IpAddr) -> Vec<(Instant, usize, bool)> {
    lab.log()
        .iter()
        .filter(|(t, _)| *t >= since)
        .filter_map(|(t, r)| match r {
            Rec::Added { node, addr } if *addr == a => Some((*t, *node, true)),
            Rec::Removed { node, addr } | Rec::Expired { node, addr } if *addr == a => {
                Some((*t, *node, false))
            }
            _ => None,
        })
        .collect()
}

/// When `a` was first added by a host other than `not`, from `since` on.
fn first_take(lab: &Lab, since: Instant, a: IpAddr, not: usize) -> Option<Instant> {
    kernel_changes(lab, since, a)
        .into_iter()
        .find(|&(_, n, added)| added && n != not)
        .map(|(t, _, _)| t)
}

fn is_take(a: IpAddr) -> impl Fn(usize, usize, &Message) -> bool {
    move |_, _, m| matches!(m, Message::TakeIp { ip } if ip.addr == a)
}

fn is_release(a: IpAddr) -> impl Fn(usize, usize, &Message) -> bool {
    move |_, _, m| matches!(m, Message::ReleaseIp { ip } if ip.addr == a)
}

fn is_release_ack(a: IpAddr) -> impl Fn(usize, usize, &Message) -> bool {
    move |_, _, m| matches!(m, Message::IpDone { ip, op: IpOp::Release, .. } if ip.addr == a)
}

fn done(r: Response) {
    assert_eq!(r, Response::Done(None));
}

fn error(r: Response) -> String {
    match r {
        Response::Error(e) => {
            assert!(!e.contains('\n'), "one line: {e:?}");
            e
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

// --- Release before take ---

#[test]
fn a_move_releases_first_and_takes_only_after_the_ack() {
    let mut lab = settled_lab3(tunables());
    let a = one_of(&lab, 1);
    // Node 1's host takes 300 ms to remove an address.
    lab.set_mode(1, IpMode::Delay(300 * MS));
    let t0 = lab.now();
    done(lab.control(2, &format!("moveip {a} 2")));
    settle(&mut lab, "moved", 2000 * MS, |l| holder(l, a) == Some(2));
    let release = sent(&lab, t0, is_release(a));
    let ack = sent(&lab, t0, is_release_ack(a));
    let take = sent(&lab, t0, is_take(a));
    assert_eq!(
        (release.len(), ack.len(), take.len()),
        (1, 1, 1),
        "{}",
        lab.tail(40)
    );
    assert!(
        ack[0] >= release[0] + 300 * MS,
        "the ack comes when the host is done"
    );
    assert!(take[0] > ack[0], "take before the release was acknowledged");
    let changes = kernel_changes(&lab, t0, a);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!((changes[0].1, changes[0].2), (1, false));
    assert_eq!((changes[1].1, changes[1].2), (2, true));
    // And the move did not disturb any other address.
    for k in (0..ADDRS).map(addr).filter(|&x| x != a) {
        assert!(kernel_changes(&lab, t0, k).is_empty(), "{k} moved");
    }
}

#[test]
fn a_rebalance_waits_for_each_release_ack_before_its_take() {
    let mut lab = settled_lab3(tunables());
    let all: Vec<usize> = (0..ADDRS).collect();
    lab.kill9(2);
    settle(&mut lab, "node 2 gone", 2000 * MS, |l| {
        spread(l, &all, &[0, 1]) && quiet(l)
    });
    // The recovery master's own host is slow, node 1's slower.
    lab.set_mode(0, IpMode::Delay(200 * MS));
    lab.set_mode(1, IpMode::Delay(500 * MS));
    let t0 = lab.now();
    lab.start(2);
    settle(&mut lab, "node 2's share back", 3000 * MS, |l| {
        spread(l, &all, &[0, 1, 2]) && quiet(l)
    });
    let moved: Vec<IpAddr> = lab.kernel(2);
    assert_eq!(moved.len(), 2);
    let mut from = Vec::new();
    for &a in &moved {
        let changes = kernel_changes(&lab, t0, a);
        let (removed_at, old, _) = *changes.iter().find(|c| !c.2).expect("released");
        from.push(old);
        let take = sent(&lab, t0, is_take(a));
        assert_eq!(take.len(), 1, "{a}: {}", lab.tail(40));
        assert!(
            take[0] >= removed_at,
            "{a} taken before node {old} removed it"
        );
        if old != 0 {
            // A peer's release: the take waits for its acknowledgement.
            let ack = sent(&lab, t0, is_release_ack(a));
            assert!(take[0] > ack[0], "{a}: take before the ack");
        }
    }
    from.sort();
    assert_eq!(from, [0, 1], "one address from each of the other nodes");
    // The run ended (everyone told who hosts what) only after the slowest acknowledgement.
    let last_ack = sent(&lab, t0, |_, _, m| {
        matches!(
            m,
            Message::IpDone {
                op: IpOp::Release,
                ..
            }
        )
    });
    let announced = sent(&lab, t0, |f, _, m| {
        f == 0 && matches!(m, Message::IpReallocated { .. })
    });
    assert!(announced.iter().any(|&t| t > *last_ack.last().unwrap()));
}

// --- A holder that goes silent ---

/// The recovery master's first new generation after `since`.
fn next_generation_at(lab: &Lab, since: Instant) -> Instant {
    lab.log()
        .iter()
        .find(|(t, r)| {
            *t >= since
                && matches!(
                    r,
                    Rec::Told {
                        node: 0,
                        what: Notification::GenerationChanged { .. }
                    }
                )
        })
        .map(|(t, _)| *t)
        .expect("a recovery")
}

#[test]
fn a_releaser_that_goes_silent_is_waited_out_until_its_lease_is_over() {
    let mut lab = settled_lab3(tunables());
    let held = lab.kernel(1);
    let a = held[0];
    // Node 1 freezes as its host is asked to release: the address stays, no ack ever comes.
    lab.set_mode(1, IpMode::FreezeOnRelease);
    let t0 = lab.now();
    done(lab.control(2, &format!("moveip {a} 2")));
    settle(&mut lab, "node 1 froze", 100 * MS, |l| l.is_frozen(1));
    let frozen_at = lab.now();
    settle(&mut lab, "node 1's addresses moved", 4000 * MS, |l| {
        held.iter().all(|&x| holder(l, x).is_some_and(|h| h != 1))
    });
    // Node 1 was dead 350 ms after its last frame, out of the vnnmap one recovery later; from
    // then on nothing renews its lease, and its addresses are taken only once it is over.
    let excluded = next_generation_at(&lab, frozen_at);
    assert!(
        excluded <= frozen_at + 400 * MS,
        "death seen late: {excluded:?}"
    );
    for &x in &held {
        let taken = first_take(&lab, t0, x, 1).unwrap();
        assert!(
            taken >= excluded + EXPIRY_WAIT,
            "{x} taken {:?} after node 1 left, before its lease was over\n{}",
            taken - excluded,
            lab.tail(40)
        );
        assert!(
            taken <= excluded + EXPIRY_WAIT + 50 * MS,
            "{x}: waited too long"
        );
        // Its own host had dropped it by then (the kernel lifetime was not renewed).
        let gone = kernel_changes(&lab, t0, x)
            .into_iter()
            .find(|&(_, n, added)| n == 1 && !added)
            .expect("expired on node 1");
        assert!(gone.0 <= taken);
    }
    // Thawed, it keeps nothing that moved, and the cluster settles again.
    lab.thaw(1);
    lab.set_mode(1, IpMode::Instant);
    let all: Vec<usize> = (0..ADDRS).collect();
    settle(&mut lab, "node 1 back", 5000 * MS, |l| {
        spread(l, &all, &[0, 1, 2]) && quiet(l)
    });
}

#[test]
fn a_fencing_notice_ends_the_wait_at_once() {
    let mut lab = settled_lab3(tunables());
    let held = lab.kernel(1);
    let a = held[0];
    lab.set_mode(1, IpMode::FreezeOnRelease);
    let t0 = lab.now();
    done(lab.control(2, &format!("moveip {a} 2")));
    settle(&mut lab, "node 1 froze", 100 * MS, |l| l.is_frozen(1));
    lab.run_for(150 * MS);
    // Its guardian sees the daemon hang: it removes the addresses and tells the peers.
    let fenced_at = lab.now();
    lab.fence(1);
    settle(&mut lab, "moved", 1000 * MS, |l| {
        held.iter().all(|&x| holder(l, x).is_some())
    });
    for &x in &held {
        let taken = first_take(&lab, t0, x, 1).unwrap();
        assert!(taken >= fenced_at, "{x} taken before node 1 was fenced");
        assert!(
            taken <= fenced_at + 20 * MS,
            "{x}: the notice did not end the wait ({:?})",
            taken - fenced_at
        );
    }
}

#[test]
fn a_holder_that_never_answers_is_given_up_after_takeover_timeout() {
    let mut t = tunables();
    t.set("TakeoverTimeout", "2").unwrap();
    let mut lab = settled_lab3(t);
    let a = one_of(&lab, 1);
    // Node 1 is alive (keepalives flow) but its host never carries out a release.
    lab.set_mode(1, IpMode::Stuck);
    let t0 = lab.now();
    done(lab.control(0, &format!("moveip {a} 2")));
    // Never on two nodes (the lab checks every step), and never taken while node 1 has it.
    lab.run_for(1900 * MS);
    assert_eq!(lab.holders(a), [1]);
    assert!(sent(&lab, t0, is_take(a)).is_empty());
    // At TakeoverTimeout the run gives up, says so, and bans the silent node (CTDB's rule):
    // banned, it drops everything itself, and the next run places its addresses elsewhere.
    settle(&mut lab, "node 1 banned", 500 * MS, |l| {
        l.node(1).flags_of(Pnn(1)).contains(NodeFlags::BANNED)
    });
    let gave_up = lab.log().iter().find_map(|(at, r)| match r {
        Rec::Told {
            node: 0,
            what: Notification::TakeoverRun { failed, .. },
        } if *at > t0 && *failed > 0 => Some(*at),
        _ => None,
    });
    let gave_up = gave_up.expect("the run ended with a failure");
    assert!(
        gave_up >= t0 + 2000 * MS && gave_up <= t0 + 2010 * MS,
        "{gave_up:?}"
    );
    let ban = sent(&lab, t0, |from, to, m| {
        from == 0 && to == 1 && matches!(m, Message::Ban { .. })
    });
    assert_eq!(ban.len(), 1, "one ban, at the timeout: {ban:?}");
    assert!(ban[0] >= gave_up);
    settle(
        &mut lab,
        "the banned node's addresses moved",
        1000 * MS,
        |l| (0..ADDRS).all(|k| holder(l, addr(k)).is_some_and(|h| h != 1)) && quiet(l),
    );
    assert_eq!(
        lab.holders(a),
        [2],
        "the moveip went through once node 1 was out"
    );
}

// --- A node dying mid-run ---

#[test]
fn the_releasing_node_dies_mid_run() {
    let mut lab = settled_lab3(tunables());
    let held = lab.kernel(1);
    let a = held[0];
    lab.set_mode(1, IpMode::Delay(300 * MS));
    let t0 = lab.now();
    done(lab.control(0, &format!("moveip {a} 2")));
    lab.run_for(100 * MS);
    assert!(sent(&lab, t0, is_release_ack(a)).is_empty());
    let killed_at = lab.now();
    lab.kill9(1);
    settle(&mut lab, "moved", 1000 * MS, |l| {
        spread(l, &(0..ADDRS).collect::<Vec<_>>(), &[0, 2]) && quiet(l)
    });
    for &x in &held {
        let taken = first_take(&lab, t0, x, 1).unwrap();
        assert!(
            taken >= killed_at && taken <= killed_at + 20 * MS,
            "{x}: {taken:?}"
        );
    }
}

#[test]
fn the_releasing_host_freezes_whole_mid_run_and_its_lease_is_waited_out() {
    // SIGSTOP of the daemon's whole process group: no guardian notice either.
    let mut lab = settled_lab3(tunables());
    let held = lab.kernel(1);
    let a = held[0];
    lab.set_mode(1, IpMode::Delay(300 * MS));
    let t0 = lab.now();
    done(lab.control(0, &format!("moveip {a} 2")));
    lab.run_for(100 * MS);
    let frozen_at = lab.now();
    lab.freeze(1);
    settle(&mut lab, "moved", 4000 * MS, |l| {
        held.iter().all(|&x| holder(l, x).is_some_and(|h| h != 1))
    });
    let excluded = next_generation_at(&lab, frozen_at);
    for &x in &held {
        let taken = first_take(&lab, t0, x, 1).unwrap();
        assert!(
            taken >= excluded + EXPIRY_WAIT,
            "{x} taken early\n{}",
            lab.tail(40)
        );
    }
}

#[test]
fn the_take_target_dies_mid_run() {
    let mut lab = settled_lab3(tunables());
    let a = one_of(&lab, 1);
    // Node 2's host is slow to add: it dies (kill -9) with the take under way.
    lab.set_mode(2, IpMode::Delay(300 * MS));
    let t0 = lab.now();
    done(lab.control(0, &format!("moveip {a} 2")));
    settle(&mut lab, "take sent", 100 * MS, |l| {
        !sent(l, t0, is_take(a)).is_empty()
    });
    lab.kill9(2);
    settle(&mut lab, "every address on 0 and 1", 2000 * MS, |l| {
        spread(l, &(0..ADDRS).collect::<Vec<_>>(), &[0, 1]) && quiet(l)
    });
}

#[test]
fn a_take_target_that_freezes_before_it_answers_is_waited_out() {
    let mut lab = settled_lab3(tunables());
    let a = one_of(&lab, 1);
    // Node 2's kernel adds the address, then node 2 freezes before it can say so: the
    // recovery master never hears the take's answer, and must count the address as possibly
    // on node 2 (the lab panics if it ever is on two hosts).
    lab.set_mode(2, IpMode::FreezeOnTake);
    done(lab.control(0, &format!("moveip {a} 2")));
    settle(&mut lab, "node 2 froze", 100 * MS, |l| l.is_frozen(2));
    let frozen_at = lab.now();
    assert_eq!(lab.holders(a), [2]);
    settle(&mut lab, "the address left node 2", 4000 * MS, |l| {
        holder(l, a).is_some_and(|h| h != 2)
    });
    let excluded = next_generation_at(&lab, frozen_at);
    let taken = first_take(&lab, frozen_at, a, 2).unwrap();
    assert!(
        taken >= excluded + EXPIRY_WAIT,
        "{a} taken {:?} after node 2 left, before its lease was over\n{}",
        taken - excluded,
        lab.tail(40)
    );
    // Thawed (its late answer is for a take long overtaken), the cluster settles again: every
    // address once (the moveip pin puts the address back on node 2).
    lab.thaw(2);
    lab.set_mode(2, IpMode::Instant);
    settle(&mut lab, "node 2 back", 5000 * MS, |l| {
        (0..ADDRS).all(|k| holder(l, addr(k)).is_some()) && holder(l, a) == Some(2) && quiet(l)
    });
}

#[test]
fn the_recovery_master_dies_mid_run() {
    let mut lab = settled_lab3(tunables());
    let a = one_of(&lab, 1);
    lab.set_mode(1, IpMode::Delay(300 * MS));
    done(lab.control(0, &format!("moveip {a} 2")));
    lab.run_for(100 * MS);
    lab.kill9(0);
    // A new master (an election: ElectionTimeout), then its own run places everything.
    let took = settle(&mut lab, "every address on 1 and 2", 3000 * MS, |l| {
        let r = l.node(1).recmaster();
        r != Pnn::NONE
            && r != Pnn(0)
            && l.node(r.index()).is_acting_recmaster()
            && spread(l, &(0..ADDRS).collect::<Vec<_>>(), &[1, 2])
    });
    assert!(took < 2000 * MS, "{took:?}");
}

// --- Flags changing mid-run ---

/// Moves an address of node 1 to node 2 with node 1's release slowed down, changes node 2's
/// flags with `command` while the release is under way; the address never reaches node 2
/// and ends on node 0 or 1.
fn target_flag_changes_mid_run(command: &str) {
    let mut lab = settled_lab3(tunables());
    let a = one_of(&lab, 1);
    lab.set_mode(1, IpMode::Delay(300 * MS));
    let t0 = lab.now();
    done(lab.control(0, &format!("moveip {a} 2")));
    lab.run_for(100 * MS);
    let changed_at = lab.now();
    done(lab.control(2, command));
    settle(&mut lab, "settled without node 2", 3000 * MS, |l| {
        spread(l, &(0..ADDRS).collect::<Vec<_>>(), &[0, 1]) && quiet(l)
    });
    assert!(
        kernel_changes(&lab, changed_at, a)
            .iter()
            .all(|&(_, n, _)| n != 2),
        "{command}: node 2 took {a}\n{}",
        lab.tail(40)
    );
    assert!(first_take(&lab, t0, a, 2).is_some() || holder(&lab, a) == Some(1));
}

#[test]
fn the_take_target_disabled_mid_run_gets_nothing() {
    target_flag_changes_mid_run("disable");
}

#[test]
fn the_take_target_banned_mid_run_gets_nothing() {
    target_flag_changes_mid_run("ban 60");
}

#[test]
fn the_take_target_stopped_mid_run_gets_nothing() {
    target_flag_changes_mid_run("stop");
}

#[test]
fn the_releasing_node_disabled_mid_run_gives_up_everything() {
    let mut lab = settled_lab3(tunables());
    let a = one_of(&lab, 1);
    lab.set_mode(1, IpMode::Delay(300 * MS));
    done(lab.control(0, &format!("moveip {a} 2")));
    lab.run_for(100 * MS);
    done(lab.control(1, "disable"));
    // A disabled node releases everything at once (ReleaseAllIps), whatever is under way.
    assert!(lab.kernel(1).is_empty());
    // It answers the release under way at once (the address is gone): the run does not sit
    // waiting for an acknowledgement until TakeoverTimeout.
    let took = settle(&mut lab, "settled without node 1", 3000 * MS, |l| {
        spread(l, &(0..ADDRS).collect::<Vec<_>>(), &[0, 2]) && quiet(l)
    });
    assert!(took < 50 * MS, "{took:?}\n{}", lab.tail(40));
    assert_eq!(holder(&lab, a), Some(2), "the pin still holds");
}

// --- Admin commands move addresses away and back ---

/// `away` on node 1 moves its addresses to 0 and 2; `back` returns its share when NoIPFailback
/// is 0 and leaves everything where it is when it is 1.
fn away_and_back(away: &str, back: &str, no_failback: bool) {
    let mut t = tunables();
    t.set("NoIPFailback", if no_failback { "1" } else { "0" })
        .unwrap();
    let mut lab = settled_lab3(t);
    let all: Vec<usize> = (0..ADDRS).collect();
    done(lab.control(1, away));
    let took = settle(&mut lab, away, 2000 * MS, |l| {
        spread(l, &all, &[0, 2]) && quiet(l)
    });
    // Node 1 dropped them at once: they are back on the others in a few round trips, not
    // after a failed run's backoff (RecoverInterval).
    assert!(took < 50 * MS, "{away}: {took:?}\n{}", lab.tail(40));
    let t0 = lab.now();
    done(lab.control(1, back));
    if no_failback {
        lab.run_for(3000 * MS);
        assert!(quiet(&lab));
        assert!(spread(&lab, &all, &[0, 2]), "{back}: addresses moved back");
        assert!(lab
            .log()
            .iter()
            .all(|(at, r)| *at < t0 || !matches!(r, Rec::Added { .. } | Rec::Removed { .. })));
    } else {
        settle(&mut lab, back, 2000 * MS, |l| {
            spread(l, &all, &[0, 1, 2]) && quiet(l)
        });
    }
}

#[test]
fn disable_and_enable_move_addresses_away_and_back() {
    away_and_back("disable", "enable", false);
}

#[test]
fn stop_and_continue_move_addresses_away_and_back() {
    away_and_back("stop", "continue", false);
}

#[test]
fn ban_and_unban_move_addresses_away_and_back() {
    away_and_back("ban 60", "unban", false);
}

#[test]
fn with_no_ip_failback_enable_continue_and_unban_leave_addresses_where_they_are() {
    away_and_back("disable", "enable", true);
    away_and_back("stop", "continue", true);
    away_and_back("ban 60", "unban", true);
}

#[test]
fn no_ip_failback_decides_whether_a_returning_node_gets_its_share() {
    for no_failback in [false, true] {
        let mut t = tunables();
        t.set("NoIPFailback", if no_failback { "1" } else { "0" })
            .unwrap();
        let mut lab = settled_lab3(t);
        let all: Vec<usize> = (0..ADDRS).collect();
        lab.kill9(2);
        settle(&mut lab, "node 2 gone", 2000 * MS, |l| {
            spread(l, &all, &[0, 1]) && quiet(l)
        });
        let t0 = lab.now();
        lab.start(2);
        if no_failback {
            lab.run_for(3000 * MS);
            assert!(quiet(&lab) && spread(&lab, &all, &[0, 1]));
            assert!(lab.kernel(2).is_empty());
            for k in (0..ADDRS).map(addr) {
                assert!(kernel_changes(&lab, t0, k).is_empty(), "{k} moved");
            }
        } else {
            let took = settle(&mut lab, "share back", 2000 * MS, |l| {
                spread(l, &all, &[0, 1, 2]) && quiet(l)
            });
            assert!(took < 1000 * MS, "{took:?}");
        }
    }
}

// --- moveip ---

#[test]
fn moveip_moves_and_pins_and_refuses_with_one_line_errors() {
    // Node 2 cannot host address 5.
    let lists = vec![list(0..ADDRS), list(0..ADDRS), list(0..ADDRS - 1)];
    let mut lab = Lab::new(lists, tunables());
    // No recovery master yet (the first election takes ElectionTimeout).
    lab.run_for(10 * MS);
    assert_eq!(lab.node(0).recmaster(), Pnn::NONE);
    let e = error(lab.control(0, &format!("moveip {} 1", addr(0))));
    assert_eq!(e, "no recovery master: try again later");
    let all: Vec<usize> = (0..ADDRS).collect();
    settle(&mut lab, "start", 3000 * MS, |l| {
        spread(l, &all, &[0, 1, 2]) && quiet(l)
    });

    assert_eq!(
        error(lab.control(1, "moveip 10.214.66.250 1")),
        "10.214.66.250 is not a public address of the cluster"
    );
    assert_eq!(
        error(lab.control(1, &format!("moveip {} 7", addr(0)))),
        "node 7 does not exist"
    );
    assert_eq!(
        error(lab.control(1, &format!("moveip {} 2", addr(5)))),
        format!("node 2 cannot host {}", addr(5))
    );
    assert!(holder(&lab, addr(5)).is_some_and(|h| h != 2));

    // Accepted on a node that is not the recovery master: it asks the master.
    let a = one_of(&lab, 0);
    let t0 = lab.now();
    done(lab.control(1, &format!("moveip {a} 2")));
    settle(&mut lab, "moved", 500 * MS, |l| {
        holder(l, a) == Some(2) && quiet(l)
    });
    assert_eq!(
        kernel_changes(&lab, t0, a).len(),
        2,
        "one release, one take"
    );
    // Pinned: later runs (node 1 leaves and comes back) keep it on node 2.
    lab.kill9(1);
    lab.run_for(2000 * MS);
    lab.start(1);
    lab.run_for(3000 * MS);
    assert!(quiet(&lab));
    assert_eq!(holder(&lab, a), Some(2));
    // Moving it where it already is changes nothing.
    let t1 = lab.now();
    done(lab.control(0, &format!("moveip {a} 2")));
    lab.run_for(500 * MS);
    assert!(kernel_changes(&lab, t1, a).is_empty());
}

// --- reloadips ---

#[test]
fn reloadips_adds_and_removes_addresses_without_disturbing_the_others() {
    let mut lab = settled_lab3(tunables());
    // Address 0 leaves every file, address 6 joins.
    for i in 0..3 {
        lab.set_list(i, list(1..=ADDRS));
    }
    let t0 = lab.now();
    done(lab.control(1, "reloadips"));
    let kept: Vec<usize> = (1..ADDRS).collect();
    settle(&mut lab, "reloaded", 1000 * MS, |l| {
        l.holders(addr(0)).is_empty() && holder(l, addr(ADDRS)).is_some() && quiet(l)
    });
    for &k in &kept {
        assert!(
            kernel_changes(&lab, t0, addr(k)).is_empty(),
            "{} moved",
            addr(k)
        );
    }
    // Every node's `ip all` knows the new address and no longer the old one.
    for i in 0..3 {
        let ips: Vec<IpAddr> = lab.node(i).ips(true).iter().map(|s| s.address).collect();
        assert_eq!(ips, (1..=ADDRS).map(addr).collect::<Vec<_>>(), "node {i}");
    }
    // One node can no longer host an address it holds: it gives it up, another takes it.
    // The allocator may rebalance onto the node that lost one (LCP2 weighs addresses, not
    // only counts), but nothing else moves: no address goes anywhere but to node 2.
    let b = one_of(&lab, 2);
    let k = (1..=ADDRS).find(|&k| addr(k) == b).unwrap();
    lab.set_list(2, list((1..=ADDRS).filter(|&j| j != k)));
    let t1 = lab.now();
    done(lab.control(0, "reloadips"));
    settle(&mut lab, "moved off node 2", 1000 * MS, |l| {
        holder(l, b).is_some_and(|h| h != 2) && quiet(l)
    });
    for j in (1..=ADDRS).filter(|&j| j != k) {
        let changes = kernel_changes(&lab, t1, addr(j));
        assert!(
            changes.is_empty() || holder(&lab, addr(j)) == Some(2) && changes.len() == 2,
            "{}: {changes:?}\n{}",
            addr(j),
            state(&lab)
        );
    }
    for j in 1..=ADDRS {
        assert!(holder(&lab, addr(j)).is_some(), "{} hosted once", addr(j));
    }
}

// --- A node's mismatch report ---

/// An IpReallocated frame from node 0 to `to`, with `entries` (address, holder).
fn reallocated(lab: &Lab, to: usize, entries: &[(IpAddr, u32)]) -> Vec<u8> {
    let mut body = Vec::new();
    for &(a, p) in entries {
        Entry {
            ip: WireIp {
                addr: a,
                prefix: 24,
            },
            value: p,
        }
        .write(&mut body);
    }
    let m = Message::IpReallocated {
        entries: entries.len() as u32,
    };
    let h = Header {
        op: m.op(),
        src: Pnn(0),
        dst: Pnn(to as u32),
        generation: lab.node(to).generation(),
        request_id: 0,
    };
    let mut out = Vec::new();
    wire::encode_with(&h, &m, &body, &mut out);
    out
}

#[test]
fn a_mismatch_report_triggers_a_takeover_run() {
    let mut lab = settled_lab3(tunables());
    let mine = one_of(&lab, 1);
    let theirs = one_of(&lab, 2);
    // The allocation node 1 hears says it should not hold `mine` (node 2 should), then that it
    // should hold `theirs`: each time it asks for a run, and the run puts things right.
    for wrong in [vec![(mine, 2)], vec![(theirs, 1), (mine, 1)]] {
        let runs = lab.node(0).stats().takeover_runs;
        let t0 = lab.now();
        let frame = reallocated(&lab, 1, &wrong);
        lab.inject(0, 1, frame);
        assert_eq!(
            sent(&lab, t0, |f, to, m| f == 1
                && to == 0
                && *m == Message::TakeoverRequest)
            .len(),
            1,
            "{}",
            lab.tail(20)
        );
        settle(&mut lab, "run", 500 * MS, |l| {
            l.node(0).stats().takeover_runs > runs && quiet(l)
        });
        // Nothing had to move: the run found every address where it is.
        assert_eq!(holder(&lab, mine), Some(1));
        assert_eq!(holder(&lab, theirs), Some(2));
        assert_eq!(
            lab.node(1).takeover.holder(WireIp {
                addr: mine,
                prefix: 24
            }),
            Pnn(1)
        );
    }
}

/// A node that was banned echoes nobody's stamps once unbanned until the next recovery names
/// its members again (docs/ADDRESSES.md, rule 4: a node excluded while this one was banned must
/// not get its lease renewed by it).
#[test]
fn an_unbanned_node_echoes_nobody_until_the_next_recovery() {
    let mut lab = settled_lab3(tunables());
    done(lab.control(1, "ban 100"));
    lab.run_for(500 * MS);
    let unbanned = lab.now();
    done(lab.control(1, "unban"));
    lab.run_for(500 * MS);
    let start = sent(&lab, unbanned, |from, to, m| {
        from == 0 && to == 1 && matches!(m, Message::RecoveryStart { .. })
    });
    let next_start = *start.first().expect("no recovery after unban");
    let echoes: Vec<u64> = lab
        .log()
        .iter()
        .filter(|(t, _)| *t >= unbanned && *t < next_start)
        .filter_map(|(_, r)| match r {
            Rec::Frame {
                from: 1,
                msg: Message::Keepalive(k),
                ..
            } => Some(k.echo),
            _ => None,
        })
        .collect();
    assert!(
        !echoes.is_empty(),
        "no keepalive of node 1 before the recovery"
    );
    assert!(
        echoes.iter().all(|&e| e == 0),
        "node 1 echoed stamps of an old recovery: {echoes:?}"
    );
}
