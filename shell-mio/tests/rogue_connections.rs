//! Issue 9.6: connections from a live peer's address that never prove themselves (a bare
//! connect, garbage, a frame that is not a Hello) must not cut that peer's real link.

mod common;

use common::*;
use pharos_core::control::RecoveryMode;
use pharos_core::wire::{self, Header, Keepalive, Liveness, Message};
use pharos_core::{Generation, NodeFlags, Pnn};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const FAST: &[&str] = &[
    "--tunable",
    "KeepaliveInterval=100ms",
    "--tunable",
    "KeepaliveLimit=3",
];

/// A TCP connection to `to` from `from` (an address of a live node: anyone on its host can).
fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    s.bind(&SockAddr::from(SocketAddr::new(from, 0))).unwrap();
    s.connect(&SockAddr::from(to)).unwrap();
    s.into()
}

/// A keepalive "from node 2 to node 0": a valid frame, but not a Hello.
fn keepalive_frame() -> Vec<u8> {
    let m = Message::Keepalive(Keepalive {
        flags: NodeFlags::empty(),
        recmaster: Pnn::NONE,
        recovery_mode: RecoveryMode::Normal,
        liveness: Liveness {
            interval_ms: 100,
            limit: 3,
        },
        stamp: 1,
        echo: 0,
    });
    let h = Header {
        op: m.op(),
        src: Pnn(2),
        dst: Pnn(0),
        generation: Generation(1),
        request_id: 0,
    };
    let mut v = Vec::new();
    wire::encode(&h, &m, &mut v);
    v
}

#[test]
fn connections_that_never_say_hello_do_not_cut_a_peers_link() {
    let mut c = Cluster::new("rogue", 3, FAST);
    c.start_all();
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2])).is_some(),
        "cluster did not form\n{}",
        c.logs()
    );
    let recmaster = wait_for(Duration::from_secs(5), || {
        c.status(0)
            .is_some_and(|s| s["recmaster"].as_i64() != Some(-1))
    });
    assert!(recmaster.is_some(), "no recmaster\n{}", c.logs());
    let master = c.status(0).unwrap()["recmaster"].clone();
    let node0: SocketAddr = ([127, 0, 0, 1], c.port).into();
    let from: IpAddr = [127, 0, 0, 3].into();
    let garbage = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    let keepalive = keepalive_frame();
    let end = Instant::now() + Duration::from_secs(3);
    let mut round = 0;
    while Instant::now() < end {
        // Today's main: each of these replaced node 2's incoming link on node 0 and cut it.
        let mut s = connect_from(from, node0);
        match round % 3 {
            0 => {}
            1 => {
                let _ = s.write_all(&garbage);
            }
            _ => {
                let _ = s.write_all(&keepalive);
            }
        }
        drop(s);
        round += 1;
        std::thread::sleep(Duration::from_millis(30));
        let st = c.status(0).expect("node 0 answers");
        assert_eq!(
            st["nodes"][2]["flags"],
            serde_json::json!([]),
            "node 0 lost node 2 after {round} rogue connections\n{}",
            c.logs()
        );
        assert_eq!(st["quorate"], true);
        assert_eq!(st["recmaster"], master, "the recmaster changed");
    }
    assert!(
        !c.log(0).contains("node 2 (127.0.0.3) is dead"),
        "{}",
        c.log(0)
    );
}

#[test]
fn connects_from_strangers_are_refused_with_a_bounded_log() {
    // Issue 9.8: 10,000 connects from a non-node address wrote 10,000 WARN lines.
    let mut c = Cluster::new("strangers", 3, FAST);
    c.start(0);
    assert!(
        wait_for(Duration::from_secs(5), || c.status(0).is_some()).is_some(),
        "{}",
        c.logs()
    );
    let node0: SocketAddr = ([127, 0, 0, 1], c.port).into();
    for _ in 0..2000 {
        drop(connect_from([127, 0, 0, 9].into(), node0));
    }
    // Every one was refused (the daemon closes them) and it still answers.
    let mut last = connect_from([127, 0, 0, 9].into(), node0);
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(std::io::Read::read(&mut last, &mut buf).unwrap_or(0), 0);
    assert!(c.status(0).is_some());
    let lines = c
        .log(0)
        .lines()
        .filter(|l| l.contains("refusing connection from 127.0.0.9"))
        .count();
    assert!((1..=5).contains(&lines), "{lines} warnings\n{}", c.log(0));
}
