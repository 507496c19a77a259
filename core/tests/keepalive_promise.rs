//! Issue 9.4: a node is never declared dead because its own keepalive settings differ from its
//! peers', and KeepaliveLimit=1 raises no false alarm (at start or under jitter).

use core::time::Duration;
use pharos_core::config::Tunables;
use pharos_core::control::{Request, Response};
use pharos_core::sim::{LinkParams, SimConfig, World};
use pharos_core::{NodeFlags, Pnn};

fn fast(limit: u32) -> Tunables {
    let mut t = Tunables::default();
    t.set("KeepaliveInterval", "100ms").unwrap();
    t.set("KeepaliveLimit", &limit.to_string()).unwrap();
    t
}

#[test]
fn one_node_with_a_long_interval_is_not_declared_dead() {
    let mut w = World::new(SimConfig::quiet(3).tunables(fast(3)));
    w.run_for(Duration::from_secs(3)).unwrap();
    assert!(w.all_connected());
    let recmaster = w.node(0).unwrap().recmaster();
    assert_ne!(recmaster, Pnn::NONE);
    let setvar = Request::parse("setvar KeepaliveInterval 3600").unwrap();
    assert_eq!(w.control(2, setvar), Some(Response::Done(None)));
    // Today's main declared node 2 dead every ~1.4 s from here on and the recmaster changed.
    let end = w.now() + Duration::from_secs(30);
    while w.now() < end {
        w.run_for(Duration::from_millis(50)).unwrap();
        for i in 0..3 {
            let n = w.node(i).unwrap();
            for j in 0..3 {
                assert!(
                    !n.flags_of(Pnn(j)).contains(NodeFlags::DISCONNECTED),
                    "node {i} sees node {j} disconnected at {:?}",
                    w.now()
                );
            }
            assert_eq!(n.recmaster(), recmaster);
        }
    }
}

#[test]
fn keepalive_limit_1_raises_no_false_alarm_at_start_or_under_jitter() {
    // Link delay jitter of a third of the interval: with KeepaliveLimit=1 one late keepalive
    // must not be a death.
    for seed in 0..20 {
        let mut cfg = SimConfig::new(3).seed(seed).tunables(fast(1));
        cfg.net.default = LinkParams {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(33),
            ..cfg.net.default
        };
        let mut w = World::new(cfg);
        // Formed within a second, then never a disconnection.
        w.run_until_cond(Duration::from_secs(2), |w| w.all_connected())
            .unwrap();
        assert!(w.all_connected(), "seed {seed}: not formed");
        for _ in 0..1000 {
            w.run_for(Duration::from_millis(10)).unwrap();
            assert!(
                w.all_connected(),
                "seed {seed}: a false death at {:?}",
                w.now()
            );
        }
    }
}
