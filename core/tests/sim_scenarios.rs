//! Hand-written scenarios from the seeds: CTDB's clean stop and crash detection, the recovery
//! master dying mid-recovery or losing the lock, Curve's lease cases (leader exits, the lease
//! store re-elects, the lease expires on all, the leader is cut from the lock service), a
//! 2+2+1 partition of 5 nodes, and a flapping link.
//!
//! Each scenario asserts transport, detection and quorum, and a second version of it the
//! recovery master's behaviour (election, lock, generations), with every safety invariant
//! checked after every step.
#![cfg(feature = "sim")]

use core::time::Duration;
use pharos_core::config::Tunables;
use pharos_core::control::{AdminCommand, RecoveryMode, Request, Response};
use pharos_core::sim::{Capabilities, Fault, LockKind, NodeState, SimConfig, World};
use pharos_core::{Generation, NodeFlags, Pnn};

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const TODAY: Capabilities = Capabilities::CURRENT;
const ELECTION: Capabilities = Capabilities {
    election: true,
    takeover: false,
};

/// A world for scenario `name` (its replay command names the test).
fn world(n: usize, lock: LockKind, caps: Capabilities, name: &str) -> World {
    // Bans last seconds, not minutes, so that a scenario sees the cluster recover.
    let t = Tunables {
        recovery_ban_period: secs(5),
        ..Default::default()
    };
    let mut cfg = SimConfig::new(n)
        .tunables(t)
        .seed(1)
        .lock(lock)
        .caps(caps)
        .replay(format!(
            "cargo test -p pharos-core --test sim_scenarios -- --include-ignored {name}"
        ));
    // No lossy links in these scenarios: tight bounds.
    cfg.limits.worst_link = cfg.net.default;
    World::new(cfg)
}

fn lease() -> LockKind {
    LockKind::lease(secs(5))
}

fn ok<T>(r: Result<T, pharos_core::sim::Violation>, w: &World) -> T {
    r.unwrap_or_else(|v| panic!("{}", w.report(&v)))
}

/// Runs until `cond` or `limit`; panics with the report on a violation.
fn until(w: &mut World, limit: Duration, cond: impl FnMut(&World) -> bool) -> Option<Duration> {
    let r = w.run_until_cond(limit, cond);
    ok(r, w)
}

fn run_for(w: &mut World, d: Duration) {
    let r = w.run_for(d);
    ok(r, w)
}

fn apply(w: &mut World, f: Fault) {
    let r = w.apply(f);
    ok(r, w)
}

fn acting(w: &World) -> Vec<usize> {
    (0..w.config().nodes)
        .filter(|&i| w.state(i) == NodeState::Running && w.obs(i).acting)
        .collect()
}

/// The recmaster and generation every running node agrees on, if they do.
fn agreed(w: &World) -> Option<(Pnn, Generation)> {
    let mut it = (0..w.config().nodes)
        .filter(|&i| w.state(i) == NodeState::Running)
        .map(|i| (w.obs(i).recmaster, w.obs(i).generation));
    let first = it.next()?;
    it.all(|x| x == first).then_some(first)
}

/// Whether there is exactly one acting recovery master, followed by every running node.
fn led(w: &World) -> bool {
    let a = acting(w);
    a.len() == 1 && agreed(w).is_some_and(|(rm, _)| rm == Pnn(a[0] as u32))
}

// ----- CTDB: clean stop and crash -----

#[test]
fn ctdb_clean_stop_is_detected_at_once() {
    let mut w = world(5, LockKind::Fcntl, TODAY, "ctdb_clean_stop");
    run_for(&mut w, secs(3));
    assert!(w.all_connected());
    // The takeover run gave node 2 its share of the addresses.
    assert!(w.hosting().hosts_any(2), "node 2 hosts nothing");
    apply(&mut w, Fault::Stop(2));
    // SIGTERM: addresses released and connections closed at once; peers see EOF.
    assert!(!w.hosting().hosts_any(2));
    let t = until(&mut w, secs(1), |w| {
        (0..5).all(|i| i == 2 || !w.sees_connected(i, 2))
    });
    let t = t.expect("detected");
    assert!(
        t < MS,
        "one network latency, not a keepalive timeout: {t:?}"
    );
    for i in [0, 1, 3, 4] {
        assert!(w.node(i).unwrap().quorate());
    }
}

#[test]
fn ctdb_crash_is_detected_after_keepalive_interval_times_limit() {
    for (interval, limit) in [(1000, 3), (100, 3), (250, 5)] {
        let t = Tunables {
            keepalive_interval: Duration::from_millis(interval),
            keepalive_limit: limit,
            ..Default::default()
        };
        let mut cfg = SimConfig::new(3).tunables(t).seed(interval);
        cfg.limits.worst_link = cfg.net.default;
        let mut w = World::new(cfg);
        run_for(&mut w, secs(2));
        // The host dies: no FIN, no RST; only silence tells.
        apply(&mut w, Fault::HostDown(2));
        let d = until(&mut w, secs(30), |w| !w.sees_connected(0, 2)).expect("detected");
        let i = Duration::from_millis(interval);
        // KeepaliveInterval x KeepaliveLimit, give or take the interval's phase.
        assert!(
            d >= i * (limit - 1) && d <= i * (limit + 1),
            "{interval} ms x {limit}: {d:?}"
        );
        // kill -9 of the daemon instead: the kernel closes its sockets, EOF at once.
        apply(&mut w, Fault::Start(2));
        until(&mut w, secs(5), |w| w.all_connected()).expect("back");
        apply(&mut w, Fault::Crash(2));
        let d = until(&mut w, secs(1), |w| !w.sees_connected(0, 2)).expect("detected");
        assert!(d < MS, "{d:?}");
    }
}

// ----- the recovery master dies mid-recovery -----

fn recmaster_dies_mid_recovery(caps: Capabilities) {
    let mut w = world(5, LockKind::Fcntl, caps, "recmaster_dies_mid_recovery");
    let master = if caps.election {
        // Wait for the first recovery to be under way, then kill its master.
        until(&mut w, secs(10), |w| {
            (0..5).any(|i| {
                w.node(i)
                    .is_some_and(|n| n.recovery_mode() == RecoveryMode::Active)
            })
        })
        .expect("a recovery starts");
        let rm = (0..5)
            .map(|i| w.obs(i).recmaster)
            .find(|p| *p != Pnn::NONE)
            .expect("a recmaster runs it");
        rm.index()
    } else {
        // Same instant without an election: the node that would win (all started together:
        // the biggest PNN) dies a millisecond after the first election round.
        run_for(&mut w, secs(1) + MS);
        4
    };
    let before = (0..5).map(|i| w.obs(i).generation).max().unwrap();
    apply(&mut w, Fault::Crash(master));
    // The survivors see it at once and keep quorum (4 of 5).
    until(&mut w, secs(1), |w| {
        (0..5).all(|i| i == master || !w.sees_connected(i, master))
    })
    .expect("EOF");
    for i in (0..5).filter(|&i| i != master) {
        assert!(w.node(i).unwrap().quorate());
    }
    let converge = w.bounds().converge;
    if caps.election {
        // A new master acts (in the old generation at first), then recovers into a newer one.
        until(&mut w, converge, led).expect("a new recovery master acts");
        let new = acting(&w)[0];
        assert_ne!(new, master);
        until(&mut w, converge, |w| {
            led(w) && agreed(w).is_some_and(|(_, g)| g > before)
        })
        .expect("everyone recovered into a newer generation");
        assert_eq!(acting(&w), [new]);
    }
    // The dead master comes back: it follows, it does not take over by force.
    apply(&mut w, Fault::Start(master));
    let from = w.now();
    w.check_liveness_from(from);
    let settle = w.bounds().reconnect + converge;
    run_for(&mut w, settle);
    assert!(w.all_connected());
    assert!(agreed(&w).is_some());
    if caps.election {
        assert!(led(&w));
    }
}

#[test]
fn recmaster_dies_mid_recovery_transport() {
    recmaster_dies_mid_recovery(TODAY);
}

#[test]
fn recmaster_dies_mid_recovery_election() {
    recmaster_dies_mid_recovery(ELECTION);
}

// ----- the recovery master loses the lock -----

fn recmaster_loses_the_lock(caps: Capabilities) {
    let mut w = world(5, LockKind::Fcntl, caps, "recmaster_loses_the_lock");
    run_for(&mut w, secs(5));
    let old = acting(&w);
    if caps.election {
        assert_eq!(old.len(), 1, "one acting recmaster before");
    } else {
        assert!(old.is_empty() && w.lock_holder().is_none());
    }
    let before = agreed(&w).expect("agreement before").1;
    // Someone breaks the lock: the holder's lock client reports Lost at once.
    apply(&mut w, Fault::BreakLock);
    assert!(acting(&w).is_empty(), "nobody acts without the lock");
    assert!((0..5).all(|i| !w.obs(i).holds_lock));
    let converge = w.bounds().converge;
    w.check_liveness_from(w.now());
    if caps.election {
        // Whoever takes the lock next (possibly the same node) recovers into a newer
        // generation.
        until(&mut w, converge, |w| {
            led(w) && agreed(w).is_some_and(|(_, g)| g > before)
        })
        .expect("a recovery master acts again, in a newer generation");
        assert!(w.lock_grants() >= 2);
    } else {
        run_for(&mut w, converge);
        assert!(w.all_connected());
    }
}

#[test]
fn recmaster_loses_the_lock_transport() {
    recmaster_loses_the_lock(TODAY);
}

#[test]
fn recmaster_loses_the_lock_election() {
    recmaster_loses_the_lock(ELECTION);
}

// ----- Curve (seed 002): a leader elected on a lease -----

/// The leader exits: cleanly (its lease is revoked, a new leader within an election round)
/// or by crashing (its lease lives on until its TTL).
fn curve_leader_exits(caps: Capabilities) {
    for clean in [true, false] {
        let mut w = world(3, lease(), caps, "curve_leader_exits");
        run_for(&mut w, secs(5));
        let leader = if caps.election {
            assert!(led(&w));
            acting(&w)[0]
        } else {
            2
        };
        let at = w.now();
        apply(
            &mut w,
            if clean {
                Fault::Stop(leader)
            } else {
                Fault::Crash(leader)
            },
        );
        if !caps.election {
            let d = until(&mut w, secs(1), |w| !w.sees_connected(0, leader));
            assert!(d.expect("EOF either way") < MS);
            continue;
        }
        let d = until(&mut w, secs(30), led).expect("a new leader");
        assert_ne!(acting(&w)[0], leader);
        let ttl = secs(5);
        if clean {
            assert!(d < secs(3), "revoked lease: one election round ({d:?})");
        } else {
            assert!(
                d >= ttl - secs(1),
                "the crashed leader's lease had to run out ({d:?})"
            );
        }
        assert!(w.now() - at <= w.bounds().converge);
    }
}

#[test]
fn curve_leader_exits_transport() {
    curve_leader_exits(TODAY);
}

#[test]
fn curve_leader_exits_election() {
    curve_leader_exits(ELECTION);
}

/// The lease store re-elects its own leader (a short outage): renewals wait and succeed, the
/// leader keeps its lease and nothing changes.
fn curve_lease_store_reelects(caps: Capabilities) {
    let mut w = world(3, lease(), caps, "curve_lease_store_reelects");
    run_for(&mut w, secs(5));
    let before = (acting(&w), agreed(&w), w.lock_grants(), w.lock_holder());
    apply(&mut w, Fault::LockOutage(secs(2)));
    let unchanged = until(&mut w, secs(10), |w| {
        (acting(w), agreed(w), w.lock_grants()) != (before.0.clone(), before.1, before.2)
    });
    assert_eq!(unchanged, None, "the leader is not affected");
    assert_eq!(w.lock_holder().map(|h| h.node), before.3.map(|h| h.node));
    if caps.election {
        assert!(led(&w));
    }
}

#[test]
fn curve_lease_store_reelects_transport() {
    curve_lease_store_reelects(TODAY);
}

#[test]
fn curve_lease_store_reelects_election() {
    curve_lease_store_reelects(ELECTION);
}

/// The store is out for longer than the TTL: the leader gives its lease up before the store
/// could expire it, every lease lapses, nobody leads until the store is back, then one does.
fn curve_lease_expires_on_all(caps: Capabilities) {
    let mut w = world(3, lease(), caps, "curve_lease_expires_on_all");
    run_for(&mut w, secs(5));
    apply(&mut w, Fault::LockOutage(secs(12)));
    if caps.election {
        let d = until(&mut w, secs(12), |w| acting(w).is_empty()).expect("the leader gives up");
        assert!(d <= secs(5), "within the TTL: {d:?}");
    }
    run_for(&mut w, secs(6));
    assert!(
        acting(&w).is_empty(),
        "nobody can take the lease during the outage"
    );
    assert!(w.lock_holder().is_none(), "every lease lapsed");
    w.check_liveness_from(w.now() + secs(1));
    let converge = w.bounds().converge;
    if caps.election {
        until(&mut w, converge + secs(2), led).expect("a leader once the store is back");
    } else {
        run_for(&mut w, converge);
        assert!(w.all_connected());
    }
}

#[test]
fn curve_lease_expires_on_all_transport() {
    curve_lease_expires_on_all(TODAY);
}

#[test]
fn curve_lease_expires_on_all_election() {
    curve_lease_expires_on_all(ELECTION);
}

/// The leader is cut from the lock service (not from its peers): it gives the lease up by its
/// own deadline, the store expires it later, another node leads. At no instant do two nodes
/// believe they hold the lock (checked after every step).
fn curve_leader_cut_from_lock_service(caps: Capabilities) {
    let mut w = world(3, lease(), caps, "curve_leader_cut_from_lock_service");
    run_for(&mut w, secs(5));
    let leader = if caps.election { acting(&w)[0] } else { 2 };
    apply(&mut w, Fault::LockCut(leader, true));
    if caps.election {
        let d = until(&mut w, secs(10), |w| !w.obs(leader).holds_lock).expect("gives up");
        // Its last renewal was at most `renew_every` (1 s) ago; it gives up TTL - margin
        // (4 s) after sending it.
        assert!(d <= secs(4), "{d:?}");
        let converge = w.bounds().converge;
        until(&mut w, converge, |w| led(w) && acting(w)[0] != leader).expect("another node leads");
    } else {
        run_for(&mut w, secs(20));
        assert!(w.all_connected());
    }
    // Back in touch with the service: still one leader, still agreement.
    apply(&mut w, Fault::LockCut(leader, false));
    w.check_liveness_from(w.now());
    let converge = w.bounds().converge;
    run_for(&mut w, converge);
}

#[test]
fn curve_leader_cut_from_lock_service_transport() {
    curve_leader_cut_from_lock_service(TODAY);
}

#[test]
fn curve_leader_cut_from_lock_service_election() {
    curve_leader_cut_from_lock_service(ELECTION);
}

// ----- partitions -----

/// 5 nodes split 2+2+1: no group has a majority, so nobody is quorate, nobody leads, nobody
/// hosts; healed, they reconnect and agree.
fn partition_2_2_1(caps: Capabilities) {
    let mut w = world(5, LockKind::Fcntl, caps, "partition_2_2_1");
    run_for(&mut w, secs(5));
    let groups = vec![vec![0, 1], vec![2, 3], vec![4]];
    apply(&mut w, Fault::Partition(groups.clone()));
    let detect = w.bounds().detect;
    let d = until(&mut w, detect, |w| (0..5).all(|i| !w.obs(i).quorate))
        .expect("everyone notices it lost quorum");
    assert!(d >= secs(2), "{d:?}");
    run_for(&mut w, secs(10));
    for i in 0..5 {
        assert!(!w.obs(i).quorate);
        assert!(!w.hosting().hosts_any(i), "n{i} hosts without quorum");
    }
    assert!(acting(&w).is_empty(), "nobody leads without quorum");
    apply(&mut w, Fault::Unpartition(groups));
    w.check_liveness_from(w.now());
    let b = *w.bounds();
    until(&mut w, b.reconnect, |w| w.all_connected()).expect("reconnected");
    assert!((0..5).all(|i| w.obs(i).quorate));
    if caps.election {
        until(&mut w, b.converge, led).expect("one leader again");
    }
    run_for(&mut w, b.converge);
}

#[test]
fn partition_2_2_1_transport() {
    partition_2_2_1(TODAY);
}

#[test]
fn partition_2_2_1_election() {
    partition_2_2_1(ELECTION);
}

/// The link between nodes 0 and 1 goes down and up, sometimes for less than the keepalive
/// limit and sometimes for more; the others stay connected; when it stops, all agree again.
fn flapping_link(caps: Capabilities) {
    let mut w = world(5, LockKind::Fcntl, caps, "flapping_link");
    run_for(&mut w, secs(3));
    let pattern = [
        (500, 800),
        (4000, 300),
        (1500, 1500),
        (3500, 200),
        (200, 2000),
    ];
    for (down, up) in pattern.iter().cycle().take(12) {
        apply(&mut w, Fault::Cut { from: 0, to: 1 });
        apply(&mut w, Fault::Cut { from: 1, to: 0 });
        run_for(&mut w, Duration::from_millis(*down));
        apply(&mut w, Fault::Restore { from: 0, to: 1 });
        apply(&mut w, Fault::Restore { from: 1, to: 0 });
        run_for(&mut w, Duration::from_millis(*up));
        // The rest of the mesh never notices.
        assert!(w.sees_connected(2, 3) && w.sees_connected(0, 4) && w.sees_connected(1, 4));
        assert!((0..5).all(|i| w.obs(i).quorate), "4 of 5 at the very least");
    }
    w.check_liveness_from(w.now());
    let b = *w.bounds();
    until(&mut w, b.reconnect, |w| w.all_connected()).expect("reconnected");
    if caps.election {
        until(&mut w, b.converge, led).expect("one leader");
    }
    run_for(&mut w, b.converge);
}

#[test]
fn flapping_link_transport() {
    flapping_link(TODAY);
}

#[test]
fn flapping_link_election() {
    flapping_link(ELECTION);
}

// ----- found by silent-peer-disconnected -----

/// A Hello that arrived on an incoming connection long ago must not make a silent peer
/// connected when our outgoing connection finally gets through to its kernel. n0 thaws with
/// n1's new connection and Hello in its backlog, but its own connection to n1 cannot get
/// through (a one-way cut); n1 freezes; 20 s later the cut heals and n0's connection reaches
/// n1's kernel, which accepts for the stopped process. Without the fix n0 then shows n1
/// connected for a few more keepalive intervals, 20 s after n1 fell silent.
/// (The fix: `Health::watch` judges a newly connected peer by its last frame.)
#[test]
fn a_stale_hello_does_not_make_a_frozen_peer_connected() {
    let mut w = world(3, LockKind::Fcntl, TODAY, "a_stale_hello_does_not_make");
    run_for(&mut w, secs(3));
    assert!(w.all_connected());
    apply(&mut w, Fault::Freeze(0));
    // n1 and n2 drop n0, reconnect to its kernel and say Hello into its backlog.
    run_for(&mut w, secs(8));
    apply(&mut w, Fault::Cut { from: 0, to: 1 });
    apply(&mut w, Fault::Thaw(0));
    run_for(&mut w, secs(2));
    assert!(!w.sees_connected(0, 1), "n0 cannot reach n1 yet");
    apply(&mut w, Fault::Freeze(1));
    run_for(&mut w, secs(20));
    apply(&mut w, Fault::Restore { from: 0, to: 1 });
    // silent-peer-disconnected is checked at every step; n0 must not take n1 back.
    let back = until(&mut w, secs(10), |w| w.sees_connected(0, 1));
    assert_eq!(back, None, "n0 shows the frozen n1 connected again");
    // Thawed, n1 is connected again in both views.
    apply(&mut w, Fault::Thaw(1));
    let limit = w.bounds().reconnect;
    let t = until(&mut w, limit, |w| w.all_connected());
    assert!(t.is_some(), "reconnected after the thaw");
}

// ----- CTDB: who wins the election (seed 000) -----

/// CTDB's election: the longest-running candidate wins, then the biggest PNN; a node that
/// cannot be recovery master never does. Nodes start 100 ms apart in the order 2, 4, 0, 3, 1,
/// so the winner is neither the first nor the last PNN; then the winner dies and the next
/// longest-running takes over; with the same start, the bigger PNN wins.
#[test]
fn ctdb_election_prefers_the_longest_running_then_the_biggest_pnn() {
    let t = Tunables {
        recovery_ban_period: secs(5),
        ..Default::default()
    };
    let mut cfg = SimConfig::new(5)
        .tunables(t)
        .seed(9)
        .replay("cargo test -p pharos-core --test sim_scenarios ctdb_election_prefers".to_string());
    cfg.limits.worst_link = cfg.net.default;
    // Node 2 started first but may not lead (CTDB's --no-recmaster).
    cfg.recmaster_capable[2] = false;
    let mut w = World::idle(cfg);
    for i in [2, 4, 0, 3, 1] {
        apply(&mut w, Fault::Start(i));
        run_for(&mut w, 100 * MS);
    }
    assert!(until(&mut w, secs(30), led).is_some(), "a recovery master");
    assert_eq!(acting(&w), [4], "the longest-running capable node");
    apply(&mut w, Fault::Crash(4));
    assert!(
        until(&mut w, secs(30), led).is_some(),
        "a new recovery master"
    );
    assert_eq!(acting(&w), [0], "the next longest-running");
    // Restarted together, 3 and 1 tie on the start stamp: the bigger PNN wins.
    apply(&mut w, Fault::Crash(0));
    apply(&mut w, Fault::Crash(3));
    apply(&mut w, Fault::Crash(1));
    apply(&mut w, Fault::Start(1));
    apply(&mut w, Fault::Start(3));
    apply(&mut w, Fault::Start(4));
    assert!(
        until(&mut w, secs(60), led).is_some(),
        "a recovery master again"
    );
    assert_eq!(
        acting(&w),
        [4],
        "4 ties with 1 and 3 and has the biggest PNN"
    );
}

// ----- CTDB: node flags (seed 001) -----

fn admin(w: &mut World, i: usize, cmd: AdminCommand) {
    let r = w.control(i, Request::Admin(cmd));
    assert!(matches!(r, Some(Response::Done(_))), "n{i} {cmd:?}: {r:?}");
    if let Some(v) = w.violation() {
        panic!("{}", w.report(v));
    }
}

/// How many running nodes but `i` see `flag` on `i`, and how many run.
fn seen_by(w: &World, i: usize, flag: NodeFlags) -> (usize, usize) {
    let others: Vec<usize> = (0..w.config().nodes)
        .filter(|&j| j != i && w.state(j) == NodeState::Running)
        .collect();
    let seen = others
        .iter()
        .filter(|&&j| w.node(j).unwrap().flags_of(Pnn(i as u32)).contains(flag))
        .count();
    (seen, others.len())
}

/// `ctdb disable`, `stop`, `ban` and their undoing: the node gives up its addresses at once
/// (and, stopped or banned, the recovery master role: another takes over), every peer sees the
/// flag within a keepalive round, and undone, the node hosts again. `own-flags-obeyed` is
/// checked at every step.
#[test]
fn ctdb_admin_flags_release_at_once_and_are_seen_cluster_wide() {
    let mut w = world(5, LockKind::Fcntl, ELECTION, "ctdb_admin_flags");
    assert!(until(&mut w, secs(30), led).is_some(), "a recovery master");
    let round = w.config().tunables.keepalive_interval + 10 * MS;
    for (set, undo, flag) in [
        (
            AdminCommand::Disable,
            AdminCommand::Enable,
            NodeFlags::DISABLED,
        ),
        (
            AdminCommand::Stop,
            AdminCommand::Continue,
            NodeFlags::STOPPED,
        ),
        (
            AdminCommand::Ban(3600),
            AdminCommand::Unban,
            NodeFlags::BANNED,
        ),
    ] {
        // The recovery master itself: the case with the most to give up.
        let m = acting(&w)[0];
        assert!(w.hosting().hosts_any(m), "n{m} hosts its home address");
        admin(&mut w, m, set);
        assert!(!w.hosting().hosts_any(m), "n{m} {set:?}: released at once");
        assert!(w.obs(m).flags.contains(flag));
        let seen = until(&mut w, round, |w| {
            let (seen, of) = seen_by(w, m, flag);
            seen == of
        });
        assert!(seen.is_some(), "{flag} seen by all");
        if flag != NodeFlags::DISABLED {
            assert!(
                until(&mut w, secs(60), led).is_some(),
                "a new recovery master"
            );
            assert_ne!(acting(&w), vec![m], "n{m} {set:?} still leads");
        }
        admin(&mut w, m, undo);
        assert!(!w.obs(m).flags.contains(flag));
        let back = until(&mut w, round, |w| {
            seen_by(w, m, flag).0 == 0 && w.hosting().hosts_any(m)
        });
        assert!(
            back.is_some(),
            "n{m} {undo:?}: hosts again, flag gone everywhere"
        );
        assert!(until(&mut w, secs(60), led).is_some(), "led again");
    }
}

// ----- votequorum (seed 003) -----

/// votequorum's wait_for_all: after start, no quorum (no addresses, no recovery master) until
/// every node has been seen once; then the usual majority rule, a node lost or not.
#[test]
fn votequorum_wait_for_all_needs_every_node_once() {
    let t = Tunables {
        wait_for_all: true,
        recovery_ban_period: secs(5),
        ..Default::default()
    };
    let mut cfg = SimConfig::new(3).tunables(t).seed(5).replay(
        "cargo test -p pharos-core --test sim_scenarios votequorum_wait_for_all".to_string(),
    );
    cfg.limits.worst_link = cfg.net.default;
    let mut w = World::idle(cfg);
    apply(&mut w, Fault::Start(0));
    apply(&mut w, Fault::Start(1));
    run_for(&mut w, secs(10));
    assert!(w.sees_connected(0, 1), "2 of 3 connected");
    for i in [0, 1] {
        let o = w.obs(i);
        assert!(!o.quorate, "n{i}: quorate before n2 was ever seen");
        assert_eq!(o.recmaster, Pnn::NONE, "n{i} follows or claims a recmaster");
        assert!(!w.hosting().hosts_any(i), "n{i} hosts without quorum");
    }
    apply(&mut w, Fault::Start(2));
    let t = until(&mut w, secs(30), led);
    assert!(t.is_some(), "a recovery master once every node was seen");
    assert!((0..3).all(|i| w.obs(i).quorate));
    apply(&mut w, Fault::Crash(2));
    run_for(&mut w, secs(10));
    assert!(w.obs(0).quorate && w.obs(1).quorate, "seen once is enough");
    assert!(led(&w), "2 of 3 keep their recovery master");
}
