//! A flood of small valid frames from one connection must not stall pharosd's loop (issue 9,
//! item 5): three nodes, node 2 (127.0.0.2) not started, a client bound to 127.0.0.2 floods
//! node 1's cluster port with keepalives (64 bytes) while node 1 keeps answering its control socket,
//! keeps node 3 connected and stays quorate. And what the read budget leaves unread is read on
//! later turns, although no new readiness announces it.

mod common;

use common::*;
use pharos_core::control::RecoveryMode;
use pharos_core::wire::{self, Header, Hello, Keepalive, Liveness, Message, Op};
use pharos_core::{Generation, NodeFlags, Pnn};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(4);

/// The size of a keepalive frame on the wire.
const KEEPALIVE_LEN: usize = wire::HEADER_LEN + 36;

/// A Hello from PNN 1 to PNN 0, then `count` keepalives ([`KEEPALIVE_LEN`] bytes each), as one
/// buffer.
fn frames(count: usize) -> Vec<u8> {
    frames_with_last_flags(count, NodeFlags::empty())
}

/// As [`frames`], the last keepalive carrying `last` as the sender's flags.
fn frames_with_last_flags(count: usize, last: NodeFlags) -> Vec<u8> {
    let header = |op| Header {
        op,
        src: Pnn(1),
        dst: Pnn(0),
        generation: Generation(1),
        request_id: 0,
    };
    let mut out = Vec::new();
    let hello = Hello {
        incarnation: 42,
        flags: NodeFlags::empty(),
        capabilities: 0,
        start_stamp: u64::MAX,
        liveness: Liveness {
            interval_ms: 100,
            limit: 3,
        },
    };
    wire::encode(&header(Op::Hello), &Message::Hello(hello), &mut out);
    let keepalive = Message::Keepalive(Keepalive {
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
    let start = out.len();
    for _ in 1..count {
        wire::encode(&header(Op::Keepalive), &keepalive, &mut out);
    }
    let keepalive = Message::Keepalive(Keepalive {
        flags: last,
        recmaster: Pnn::NONE,
        recovery_mode: RecoveryMode::Normal,
        liveness: Liveness {
            interval_ms: 100,
            limit: 3,
        },
        stamp: 1,
        echo: 0,
    });
    wire::encode(&header(Op::Keepalive), &keepalive, &mut out);
    assert_eq!(
        out.len() - start,
        count * KEEPALIVE_LEN,
        "keepalive frames are {KEEPALIVE_LEN} bytes"
    );
    out
}

#[test]
fn a_flood_of_small_frames_does_not_stall_the_loop() {
    let mut c = Cluster::new("flood", 3, FAST);
    c.start(0);
    c.start(2);
    let settled = wait_for(Duration::from_secs(10), || {
        c.flags(0, 2).is_some_and(|f| f.is_empty())
            && c.flags(2, 0).is_some_and(|f| f.is_empty())
            && c.status(0).is_some_and(|s| s["quorate"] == true)
    });
    assert!(
        settled.is_some(),
        "nodes 1 and 3 did not form\n{}",
        c.logs()
    );

    let target: SocketAddr = format!("127.0.0.1:{}", c.port).parse().unwrap();
    let mut stream = connect_from("127.0.0.2", target);
    let flooding = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (flooding, sent) = (flooding.clone(), sent.clone());
        std::thread::spawn(move || {
            let all = frames(1024);
            let hello_len = all.len() - 1024 * KEEPALIVE_LEN;
            let keepalives = &all[hello_len..];
            let _ = stream.write_all(&all[..hello_len]);
            let start = Instant::now();
            while start.elapsed() < FLOOD {
                if stream.write_all(keepalives).is_err() {
                    break;
                }
                sent.fetch_add(keepalives.len() as u64, Ordering::Relaxed);
            }
            flooding.store(false, Ordering::SeqCst);
            stream
        })
    };

    // While the flood lasts: node 1 answers, sees node 3, stays quorate.
    let mut answered_during_flood = 0;
    let mut slowest = Duration::ZERO;
    let mut problems = Vec::new();
    // The flooder's end (also a panic) ends this loop.
    while flooding.load(Ordering::SeqCst) && !flooder.is_finished() {
        let asked = Instant::now();
        let status = c.status(0);
        let took = asked.elapsed();
        if !flooding.load(Ordering::SeqCst) {
            // Answered only once the flood was over: that is the stall this test is about.
            break;
        }
        answered_during_flood += 1;
        slowest = slowest.max(took);
        match status {
            None => problems.push("no answer".to_string()),
            Some(s) => {
                if s["quorate"] != true {
                    problems.push(format!("not quorate: {s}"));
                }
                if s["nodes"][2]["flags"] != serde_json::json!([]) {
                    problems.push(format!("127.0.0.3 not OK: {s}"));
                }
            }
        }
        if c.flags(2, 0).is_some_and(|f| !f.is_empty()) {
            problems.push("node 3 lost node 1".to_string());
        }
    }
    let stream = flooder.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {:.1} MB in {FLOOD:?} ({} frames); {answered_during_flood} status answers during \
         it, slowest {slowest:?}",
        sent as f64 / 1e6,
        sent / KEEPALIVE_LEN as u64
    );
    assert!(
        sent >= 1_000_000,
        "the flood must be a flood: {sent} bytes sent\n{}",
        c.logs()
    );
    assert!(
        answered_during_flood >= 3,
        "node 1 answered {answered_during_flood} status requests during the flood\n{}",
        c.logs()
    );
    assert!(problems.is_empty(), "{problems:?}\n{}", c.logs());
    drop(stream);
    for i in [0, 2] {
        assert!(c.running(i), "node {i} died\n{}", c.logs());
    }
    for (i, line) in [
        (0, "(127.0.0.3) is dead"),
        (0, "lost quorum"),
        (2, "(127.0.0.1) is dead"),
    ] {
        assert!(!c.log(i).contains(line), "{line:?} logged\n{}", c.logs());
    }
}

/// Bytes written on `s` that the peer has not acknowledged (TIOCOUTQ).
fn unacked(s: &TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ on a TCP socket this test owns writes one int into `n`.
    let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0, "ioctl(TIOCOUTQ)");
    n
}

#[test]
fn a_burst_beyond_the_read_budget_is_read_to_its_end() {
    let mut c = Cluster::new("burst", 2, &[]);
    c.start(0);
    assert!(c.answers_within(0, Duration::from_secs(5)), "{}", c.logs());
    let target: SocketAddr = format!("127.0.0.1:{}", c.port).parse().unwrap();
    let mut fake = connect_from("127.0.0.2", target);

    // While the daemon is stopped, more than one turn's read budget (64 KiB) of keepalives
    // lands in its receive queue, the last one saying DISABLED. Then nothing more is sent: no
    // new readiness will tell the daemon that bytes are left after its first turn's read.
    // A little more than one budget: the receive queue of a stopped daemon holds about 100 KiB.
    let burst = frames_with_last_flags(
        pharos_mio::daemon::READ_BUDGET / KEEPALIVE_LEN + 200,
        NodeFlags::DISABLED,
    );
    assert!(burst.len() > pharos_mio::daemon::READ_BUDGET);
    c.signal(0, libc::SIGSTOP);
    fake.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let written = fake.write_all(&burst);
    let delivered = wait_for(Duration::from_secs(5), || unacked(&fake) == 0);
    c.signal(0, libc::SIGCONT);
    written.unwrap();
    assert!(
        delivered.is_some(),
        "the burst ({} bytes) did not fit in the daemon's receive queue",
        burst.len()
    );

    let seen = wait_for(Duration::from_secs(10), || {
        c.flags(0, 1)
            .is_some_and(|f| f.contains(&"DISABLED".to_string()))
    });
    assert!(
        seen.is_some(),
        "the last frame of the burst was never read: {:?}\n{}",
        c.flags(0, 1),
        c.logs()
    );
    drop(fake);
}
