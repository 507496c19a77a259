//! The simulator's models, through the world: TCP over links (latency, cuts, loss,
//! duplication, reordering), processes (crash, host down, stop, restart, freeze, slow), the
//! hosting model, and scale.
#![cfg(feature = "sim")]

use core::net::IpAddr;
use core::time::Duration;
use pharos_core::control::{Request, Response};
use pharos_core::sim::{Capabilities, Fault, LinkParams, NetConfig, NodeState, SimConfig, World};
use pharos_core::Instant;

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn quiet_net(latency: Duration) -> NetConfig {
    NetConfig {
        default: LinkParams {
            latency,
            jitter: Duration::ZERO,
            ..LinkParams::LAN
        },
        ..NetConfig::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Frames received by node `i` so far.
fn received(w: &World, i: usize) -> u64 {
    w.node(i).unwrap().stats().frames_received
}

#[test]
fn connecting_takes_three_one_way_latencies() {
    let mut cfg = SimConfig::new(2);
    cfg.net = quiet_net(5 * MS);
    let mut w = World::new(cfg);
    // SYN (5 ms), SYN-ACK (10 ms), then the peer's Hello on its own connection (15 ms).
    let t = w
        .run_until_cond(secs(1), |w| w.sees_connected(0, 1))
        .unwrap()
        .unwrap();
    assert_eq!(t, 15 * MS);
    assert!(w.all_connected());
}

#[test]
fn a_short_cut_loses_nothing_and_kills_nobody() {
    let mut w = World::new(SimConfig::new(3).seed(1));
    w.run_for(secs(2)).unwrap();
    let before = received(&w, 1);
    // Shorter than detection (3 keepalive intervals): segments wait, then all arrive.
    w.apply(Fault::Cut { from: 0, to: 1 }).unwrap();
    w.run_for(1500 * MS).unwrap();
    let during = received(&w, 1);
    assert!(w.sees_connected(1, 0), "not noticed yet");
    w.apply(Fault::Restore { from: 0, to: 1 }).unwrap();
    w.run_for(secs(1)).unwrap();
    assert!(w.net_stats().stalled > 0);
    // Node 0's keepalives in the cut (one or two) arrived after it.
    assert!(
        received(&w, 1) >= during + 2,
        "{before} {during} {}",
        received(&w, 1)
    );
    assert!(w.all_connected());
}

#[test]
fn a_one_way_cut_is_noticed_by_the_deaf_side_then_by_both() {
    let mut w = World::new(SimConfig::new(2).seed(2));
    w.run_for(secs(2)).unwrap();
    w.apply(Fault::Cut { from: 0, to: 1 }).unwrap();
    let start = w.now();
    // Node 1 hears nothing from 0: dead after the keepalive limit.
    let t1 = w
        .run_until_cond(secs(10), |w| !w.sees_connected(1, 0))
        .unwrap()
        .unwrap();
    assert!(t1 >= secs(2) && t1 <= secs(4), "{t1:?}");
    // Node 1 closes both connections; its FIN reaches 0 (that way works): 0 notices at once.
    let t0 = w
        .run_until_cond(secs(1), |w| !w.sees_connected(0, 1))
        .unwrap()
        .unwrap();
    assert!(t0 < 10 * MS, "{t0:?}");
    // A connection needs both directions: no reconnection while cut.
    w.run_for(secs(5)).unwrap();
    assert!(!w.sees_connected(0, 1) && !w.sees_connected(1, 0));
    assert!(w.net_stats().unanswered_connects > 0);
    w.apply(Fault::Restore { from: 0, to: 1 }).unwrap();
    let back = w
        .run_until_cond(secs(5), |w| w.all_connected())
        .unwrap()
        .unwrap();
    assert!(back <= secs(3), "{back:?} after {:?}", w.now() - start);
}

#[test]
fn lossy_links_delay_frames_but_never_lose_duplicate_or_reorder_them() {
    let mut w = World::new(SimConfig::new(3).seed(3).keep_trace());
    w.run_for(secs(1)).unwrap();
    let bad = LinkParams {
        latency: 2 * MS,
        jitter: 3 * MS,
        loss: 0.2,
        dup: 0.2,
        reorder: 0.3,
        reorder_window: 20 * MS,
    };
    for (a, b) in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)] {
        w.apply(Fault::Link {
            from: a,
            to: b,
            params: Some(bad),
        })
        .unwrap();
    }
    w.run_for(secs(20)).unwrap();
    w.apply(Fault::ResetLinks).unwrap();
    // Half a keepalive interval past the last tick: nothing is in flight any more.
    w.run_for(4500 * MS).unwrap();
    let st = w.net_stats();
    assert!(
        st.retransmits > 10 && st.duplicates > 10 && st.reordered > 10,
        "{st:?}"
    );
    // Every frame sent on a connection arrived once, in order: compare, per connection, the
    // sequence of frames sent with the sequence received.
    let lines = w.trace().lines().unwrap();
    let strip = |s: &str| {
        s.split(" [")
            .next()
            .unwrap()
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (a, b) in [(0usize, 1usize), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)] {
        let sent: Vec<String> = lines
            .iter()
            .filter(|l| l.contains(&format!(" n{a}   => n{b} ")))
            .map(|l| strip(l).replacen(&format!("=> n{b} "), "", 1))
            .collect();
        let got: Vec<String> = lines
            .iter()
            .filter(|l| l.contains(&format!(" n{b}   <- n{a} c")))
            .map(|l| strip(l).replacen(&format!("<- n{a} "), "", 1))
            .collect();
        assert_eq!(sent, got, "n{a} -> n{b}");
        assert!(sent.len() > 20);
    }
    assert!(w.all_connected());
}

#[test]
fn a_killed_daemon_is_seen_at_once_a_dead_host_after_the_keepalive_limit() {
    let mut w = World::new(SimConfig::new(3).seed(4));
    w.run_for(secs(2)).unwrap();
    w.apply(Fault::Crash(2)).unwrap();
    let t = w
        .run_until_cond(secs(1), |w| !w.sees_connected(0, 2))
        .unwrap()
        .unwrap();
    assert!(t < MS, "EOF after one latency: {t:?}");
    // It refuses connections while its host is up.
    w.run_for(secs(3)).unwrap();
    assert_eq!(w.state(2), NodeState::Down);
    w.apply(Fault::Start(2)).unwrap();
    w.run_until_cond(secs(1), |w| w.all_connected())
        .unwrap()
        .expect("a restarted daemon is back within a round trip or two");
    w.apply(Fault::HostDown(2)).unwrap();
    let t = w
        .run_until_cond(secs(10), |w| !w.sees_connected(0, 2))
        .unwrap()
        .unwrap();
    assert!(
        t >= secs(2) && t <= secs(4),
        "no EOF from a dead host: {t:?}"
    );
}

#[test]
fn a_restarted_daemon_is_a_new_life_of_the_same_pnn() {
    let mut w = World::new(SimConfig::new(3).seed(5));
    w.run_for(secs(2)).unwrap();
    let life = w.obs(1).life;
    w.apply(Fault::Crash(1)).unwrap();
    w.run_for(secs(2)).unwrap();
    w.apply(Fault::Start(1)).unwrap();
    assert!(w.obs(1).life > life);
    assert_eq!(w.obs(1).since, w.now());
    assert_eq!(w.node(1).unwrap().pnn().0, 1);
    // Its peers were waiting to retry; its connection to them cuts the wait short.
    let t = w
        .run_until_cond(secs(2), |w| w.all_connected())
        .unwrap()
        .unwrap();
    assert!(t < 10 * MS, "{t:?}");
}

#[test]
fn a_short_freeze_goes_unnoticed_and_the_backlog_comes_first() {
    let mut w = World::new(SimConfig::new(3).seed(6));
    w.run_for(secs(2)).unwrap();
    w.apply(Fault::Freeze(2)).unwrap();
    w.run_for(1500 * MS).unwrap();
    assert!(
        w.sees_connected(0, 2),
        "1.5 s is shorter than the keepalive limit"
    );
    let before = received(&w, 2);
    w.apply(Fault::Thaw(2)).unwrap();
    w.run_for(10 * MS).unwrap();
    // What queued up while stopped was processed, and the frozen node saw no one die: its
    // peers' frames are read before it counts their silence.
    assert!(received(&w, 2) >= before + 2);
    assert!(w.all_connected());
}

#[test]
fn a_long_freeze_is_noticed_and_the_kernel_still_accepts() {
    let mut w = World::new(SimConfig::new(3).seed(7));
    w.run_for(secs(2)).unwrap();
    w.apply(Fault::Freeze(2)).unwrap();
    let t = w
        .run_until_cond(secs(10), |w| !w.sees_connected(0, 2))
        .unwrap()
        .unwrap();
    assert!(t >= secs(2) && t <= secs(4), "{t:?}");
    // The peers reconnect: a frozen process's kernel accepts; nothing more happens.
    w.run_for(secs(5)).unwrap();
    assert!(!w.sees_connected(0, 2));
    w.apply(Fault::Thaw(2)).unwrap();
    let t = w
        .run_until_cond(secs(5), |w| w.all_connected())
        .unwrap()
        .unwrap();
    assert!(t < secs(2), "{t:?}");
}

#[test]
fn a_slow_node_processes_everything_later_in_order() {
    let connect_time = |slow: Duration| {
        let mut cfg = SimConfig::new(2).seed(8);
        cfg.net = quiet_net(MS);
        let mut w = World::idle(cfg);
        w.apply(Fault::Slow(1, slow)).unwrap();
        w.apply(Fault::Start(0)).unwrap();
        w.apply(Fault::Start(1)).unwrap();
        w.run_until_cond(secs(5), |w| {
            w.sees_connected(0, 1) && w.sees_connected(1, 0)
        })
        .unwrap()
        .unwrap()
    };
    let fast = connect_time(Duration::ZERO);
    let slow = connect_time(80 * MS);
    // Node 1 handles the SYN-ACK and the Hello later, and sends its Hello later.
    assert_eq!(fast, 3 * MS);
    assert!(
        slow >= fast + 80 * MS && slow <= fast + 240 * MS,
        "{slow:?}"
    );
}

#[test]
fn addresses_outlive_a_dead_or_frozen_daemon_until_their_lease_ends() {
    // Addresses placed by hand, as a host without takeover runs has them (no guardian, no
    // kernel lifetimes: they live as long as their daemon, plus the lease).
    let caps = Capabilities {
        election: true,
        takeover: false,
    };
    let mut w = World::new(SimConfig::new(3).seed(9).caps(caps));
    let lease = w.config().ip_lease;
    w.run_for(secs(1)).unwrap();
    for (i, a) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        w.host_ip(i, ip(a)).unwrap();
    }
    // kill -9: the address stays on the host until its lease ends.
    w.apply(Fault::Crash(0)).unwrap();
    w.run_for(lease - MS).unwrap();
    assert!(w.hosting().hosts_any(0));
    w.run_for(2 * MS).unwrap();
    assert!(!w.hosting().hosts_any(0));
    // A frozen daemon thawed in time keeps it.
    w.apply(Fault::Freeze(1)).unwrap();
    w.run_for(lease / 2).unwrap();
    w.apply(Fault::Thaw(1)).unwrap();
    w.run_for(lease * 2).unwrap();
    assert!(w.hosting().hosts_any(1));
    // A dead host takes its addresses with it; so does a clean stop.
    w.apply(Fault::HostDown(2)).unwrap();
    assert!(!w.hosting().hosts_any(2));
    w.apply(Fault::Stop(1)).unwrap();
    assert!(!w.hosting().hosts_any(1));
    // A restarted daemon starts by releasing what its previous life left.
    w.apply(Fault::Start(1)).unwrap();
    w.host_ip(1, ip("10.0.0.2")).unwrap();
    w.apply(Fault::Crash(1)).unwrap();
    w.apply(Fault::Start(1)).unwrap();
    assert!(!w.hosting().hosts_any(1));
}

#[test]
fn partitions_heal_and_everyone_reconnects() {
    let mut w = World::new(SimConfig::new(5).seed(10));
    w.run_for(secs(2)).unwrap();
    let groups = vec![vec![0, 1, 2], vec![3, 4]];
    w.apply(Fault::Partition(groups.clone())).unwrap();
    w.run_for(secs(5)).unwrap();
    assert!(w.node(0).unwrap().quorate());
    assert!(!w.node(3).unwrap().quorate());
    assert!(!w.sees_connected(0, 3) && w.sees_connected(0, 2) && w.sees_connected(3, 4));
    w.apply(Fault::Unpartition(groups)).unwrap();
    let b = w.bounds().reconnect;
    w.run_until_cond(b, |w| w.all_connected())
        .unwrap()
        .expect("reconnected within the bound");
    assert!(w.node(3).unwrap().quorate());
}

#[test]
fn control_requests_get_the_nodes_answer() {
    let mut w = World::new(SimConfig::new(3));
    w.run_for(secs(1)).unwrap();
    match w.control(1, Request::Pnn) {
        Some(Response::Pnn(p)) => assert_eq!(p.0, 1),
        other => panic!("{other:?}"),
    }
    w.apply(Fault::Crash(1)).unwrap();
    assert!(w.control(1, Request::Pnn).is_none(), "nobody to ask");
}

#[test]
fn sixty_four_nodes_form_a_full_mesh() {
    let mut w = World::new(SimConfig::new(64).seed(11));
    w.run_for(secs(3)).unwrap();
    assert!(w.all_connected());
    for i in [0, 31, 63] {
        assert!(w.node(i).unwrap().quorate());
    }
    w.apply(Fault::Partition(vec![
        (0..20).collect(),
        (20..64).collect(),
    ]))
    .unwrap();
    w.run_for(secs(5)).unwrap();
    assert!(!w.node(0).unwrap().quorate());
    assert!(w.node(63).unwrap().quorate());
    assert_eq!(w.now(), Instant::ZERO + secs(8));
}

#[test]
fn a_hand_written_schedule_runs_at_its_times() {
    use pharos_core::sim::Schedule;
    // A regression scenario, as a schedule: node 1 is killed at 2 s and back at 4 s; node 2
    // is cut off from everyone from 5 s to 9 s.
    let s = Schedule::new()
        .at(secs(2), Fault::Crash(1))
        .at(secs(4), Fault::Start(1))
        .at(secs(5), Fault::Partition(vec![vec![0, 1], vec![2]]))
        .at(secs(9), Fault::Heal);
    assert_eq!(s.end(), Instant::ZERO + secs(9));
    let mut w = World::new(SimConfig::new(3).seed(12));
    w.schedule(&s);
    w.run_until(Instant::ZERO + secs(3)).unwrap();
    assert_eq!(w.state(1), NodeState::Down);
    w.run_until(Instant::ZERO + secs(4) + 10 * MS).unwrap();
    assert!(w.all_connected());
    w.run_until(Instant::ZERO + secs(8) + 500 * MS).unwrap();
    assert!(!w.sees_connected(0, 2) && !w.node(2).unwrap().quorate());
    w.check_liveness_from(s.end());
    let settle = w.bounds().reconnect;
    w.run_for(settle).unwrap();
    assert!(w.all_connected());
}
