//! Three real `pharosd` processes on 127.0.0.1-3: formation, death by EOF, death by silence,
//! rejoin, strangers and garbage.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const FAST: &[&str] = &[
    "--tunable",
    "KeepaliveInterval=100ms",
    "--tunable",
    "KeepaliveLimit=3",
];

#[test]
fn three_daemons_detect_kill_and_stop_and_rejoin() {
    let mut c = Cluster::new("kill-stop", 3, FAST);
    // Automatic bind: every daemon finds its own address among the three.
    for i in 0..3 {
        c.start_with(i, None);
    }
    let formed = wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2]));
    assert!(formed.is_some(), "cluster did not form\n{}", c.logs());
    eprintln!("formed in {:?}", formed.unwrap());
    let mut pnns: Vec<i64> = (0..3)
        .map(|i| c.status(i).unwrap()["pnn"].as_i64().unwrap())
        .collect();
    pnns.sort();
    assert_eq!(
        pnns,
        vec![0, 1, 2],
        "automatic bind gave every daemon its own slot"
    );
    // Map processes to PNNs (automatic bind may have raced).
    let by_pnn: Vec<usize> = (0..3)
        .map(|p| {
            (0..3)
                .find(|&i| c.status(i).unwrap()["pnn"].as_i64() == Some(p))
                .unwrap()
        })
        .collect();
    let (a, b, victim) = (by_pnn[0], by_pnn[1], by_pnn[2]);

    // kill -9: the victim promises a 5 s keepalive timeout (its peers judge its silence by
    // its own KeepaliveLimit), so only the EOF path can see it within 3 s.
    assert!(c
        .pharos(victim, &["setvar", "KeepaliveLimit", "50"])
        .status
        .success());
    c.kill(victim);
    let seen = wait_for(Duration::from_secs(3), || {
        [a, b].iter().all(|&i| {
            c.flags(i, 2)
                .is_some_and(|f| f.contains(&"DISCONNECTED".to_string()))
        })
    });
    assert!(seen.is_some(), "kill -9 not seen through EOF\n{}", c.logs());
    eprintln!("kill -9 seen in {:?}", seen.unwrap());

    // SIGSTOP: connections stay open, only keepalives can tell (3.5 x 100 ms).
    let start = std::time::Instant::now();
    c.signal(b, libc::SIGSTOP);
    let seen = wait_for(Duration::from_secs(5), || {
        c.flags(a, 1)
            .is_some_and(|f| f.contains(&"DISCONNECTED".to_string()))
    });
    let took = start.elapsed();
    c.signal(b, libc::SIGCONT);
    assert!(seen.is_some(), "SIGSTOP not seen\n{}", c.logs());
    assert!(
        took >= Duration::from_millis(150),
        "seen after {took:?}: too soon for a keepalive timeout"
    );
    eprintln!("SIGSTOP seen in {took:?}");
    assert!(c.flags(a, 0).is_some_and(|f| f.is_empty()));

    // SIGCONT and restart: all OK again.
    c.start_with(victim, Some(2));
    let back = wait_for(Duration::from_secs(10), || c.all_ok(&[a, b, victim]));
    assert!(back.is_some(), "cluster did not heal\n{}", c.logs());
    eprintln!("healed in {:?}", back.unwrap());
}

/// Reads until EOF or reset; `true` if the daemon closed the connection within 5 s.
fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&format!("{local}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

#[test]
fn strangers_are_refused_and_garbage_is_survived() {
    let mut c = Cluster::new("garbage", 3, FAST);
    c.start_all();
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2])).is_some(),
        "{}",
        c.logs()
    );
    let target: SocketAddr = format!("127.0.0.1:{}", c.port).parse().unwrap();

    // An address that is not in the nodes file: closed at once.
    let mut stranger = connect_from("127.0.0.9", target);
    assert!(
        closed_by_peer(&mut stranger),
        "connection from 127.0.0.9 was not closed"
    );
    assert!(
        c.log(0).contains("refusing connection from 127.0.0.9"),
        "{}",
        c.log(0)
    );

    // Garbage from a stranger and from a configured node's address; an oversized length prefix.
    let mut g = connect_from("127.0.0.9", target);
    let _ = g.write_all(&[0xde; 4096]);
    let mut g2 = connect_from("127.0.0.2", target);
    let _ = g2.write_all(b"GET / HTTP/1.0\r\n\r\n");
    assert!(closed_by_peer(&mut g2), "garbage stream was not closed");
    let mut g3 = connect_from("127.0.0.3", target);
    let mut big = (1u32 << 30).to_le_bytes().to_vec();
    big.extend_from_slice(b"PHRS");
    let _ = g3.write_all(&big);
    assert!(closed_by_peer(&mut g3), "oversized frame was not refused");

    // Bad control requests get an error and change nothing.
    let out = c.pharos(0, &["getvar", "NoSuchThing"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tunable"));
    {
        use std::os::unix::net::UnixStream;
        let mut s = UnixStream::connect(c.socket(0)).unwrap();
        s.write_all(b"\xff\xfe\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.contains("error"), "{answer}");
        // A client that connects and leaves without a word.
        drop(UnixStream::connect(c.socket(0)).unwrap());
        let mut s = UnixStream::connect(c.socket(0)).unwrap();
        s.write_all(b"frobnicate\n").unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.contains("unknown command"), "{answer}");
    }

    for i in 0..3 {
        assert!(c.running(i), "node {i} died\n{}", c.logs());
    }
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2])).is_some(),
        "cluster did not recover from garbage\n{}",
        c.logs()
    );
    let out = c.pharos(0, &["ping"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("response from 0 time="));
}

#[test]
fn sigterm_removes_socket_and_peers_see_eof() {
    let mut c = Cluster::new("sigterm", 2, &["--tunable", "KeepaliveLimit=100"]);
    c.start_all();
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1])).is_some(),
        "{}",
        c.logs()
    );
    c.signal(1, libc::SIGTERM);
    let status = c.procs[1].as_mut().unwrap().wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    c.procs[1] = None;
    assert!(!c.socket(1).exists(), "socket file left behind");
    // KeepaliveLimit=100 (100 s): only the clean close can explain a quick detection.
    let seen = wait_for(Duration::from_secs(3), || {
        c.flags(0, 1)
            .is_some_and(|f| f.contains(&"DISCONNECTED".to_string()))
    });
    assert!(seen.is_some(), "{}", c.logs());
    let out = c.pharos(1, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("pharos: no control socket at") && err.lines().count() == 1,
        "{err}"
    );
}
