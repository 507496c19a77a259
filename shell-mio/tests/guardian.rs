//! The guardian for real. A "daemon" (this test binary re-executed with `--daemon-role` inside a
//! network namespace via `ip netns exec`, so it is single-threaded when it forks the guardian)
//! adds addresses with netlink after telling its guardian, heartbeats from a mio loop, and obeys
//! commands on stdin. The test then kills it, stops it, or shuts it down cleanly, and checks in
//! the namespace that the told addresses are gone (and an untold one is not) and whether the
//! guardian's bytes reached a listener in the peer namespace.
//!
//! `harness = false` (libtest runs tests on threads; the daemon role must not). Accepts libtest's
//! `--list`, `--exact` and name filters; other flags are ignored. Skips with a printed reason
//! without root or `ip netns`.

mod netns;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use netns::{veth, Netns};
use pharos_mio::hosting::guardian::{Delivery, Guardian, GuardianConfig, GuardianEvent, OnHang};
use pharos_mio::hosting::netlink::{Lifetime, Netlink, Reply};
use pharos_mio::hosting::{iface, IfaceAddr};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// The IPv4 one is the first in its subnet on d0 (its primary): the untold address added after
/// it is its secondary, which the kernel would remove with it unless promote_secondaries is set.
const HELD: [&str; 2] = ["10.213.2.10/24", "fd00:213:1::10/64"];
const UNTOLD: &str = "10.213.2.20/24";
const NODE: &str = "10.213.1.1";
const PEER: &str = "10.213.1.2";
const MESSAGE: &[u8] = b"released by the guardian of node 0";
const DEADLINE: Duration = Duration::from_secs(5);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--daemon-role") {
        daemon_role(&args[2..]);
        return;
    }
    let cases: [(&str, fn()); 6] = [
        ("kill9_fences_and_delivers", kill9_fences_and_delivers),
        ("sigstop_kills_then_fences", sigstop_kills_then_fences),
        (
            "group_sigstop_report_keeps_daemon",
            group_sigstop_report_keeps_daemon,
        ),
        ("clean_close_delivers_nothing", clean_close_delivers_nothing),
        (
            "spawn_refuses_a_threaded_process",
            spawn_refuses_a_threaded_process,
        ),
        ("measure_fencing", measure_fencing),
    ];
    let mut filters = Vec::new();
    let mut exact = false;
    let mut list = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--list" => list = true,
            "--exact" => exact = true,
            "--format" | "--test-threads" | "--color" | "--logfile" | "--skip" => {
                it.next();
            }
            f if f.starts_with('-') => {}
            f => filters.push(f.to_string()),
        }
    }
    let selected: Vec<_> = cases
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    if let Some(why) = netns::unavailable() {
        println!("SKIPPED guardian tests: {why} (needs root and `ip netns`)");
        return;
    }
    let mut failed = 0;
    for (name, f) in &selected {
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!(
        "guardian: {} passed, {failed} failed",
        selected.len() - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon role: runs inside the node namespace.

/// `--daemon-role IFACE LOCAL PEER:PORT TIMEOUT_MS kill|report`
fn daemon_role(args: &[String]) {
    let ifname = &args[0];
    let local: IpAddr = args[1].parse().unwrap();
    let peer: SocketAddr = args[2].parse().unwrap();
    let timeout = Duration::from_millis(args[3].parse().unwrap());
    let on_hang = if args[4] == "kill" {
        OnHang::Kill
    } else {
        OnHang::Report
    };
    let cfg = GuardianConfig {
        heartbeat_timeout: timeout,
        connect_timeout: Duration::from_millis(500),
        on_hang,
    };
    let mut g = Guardian::spawn(&cfg).expect("spawn the guardian");
    say(&format!("guardian {}", g.pid()));
    g.set_deliveries(&[Delivery {
        local,
        peer,
        bytes: MESSAGE.to_vec(),
    }])
    .unwrap();

    let ifindex = iface::index(ifname).unwrap();
    let held: Vec<IfaceAddr> = HELD.iter().map(|s| parse_cidr(ifindex, s)).collect();
    let mut nl = Netlink::open().unwrap();
    for a in &held {
        g.hold(a).unwrap();
        nl.add(a, Lifetime::Permanent);
    }
    let mut adds_left = held.len();
    let mut removes_left = 0;

    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut SourceFd(&nl.as_raw_fd()), Token(0), Interest::READABLE)
        .unwrap();
    poll.registry()
        .register(&mut SourceFd(&g.as_raw_fd()), Token(1), Interest::READABLE)
        .unwrap();
    // SAFETY: fcntl on our own stdin.
    unsafe {
        libc::fcntl(
            0,
            libc::F_SETFL,
            libc::fcntl(0, libc::F_GETFL) | libc::O_NONBLOCK,
        )
    };
    poll.registry()
        .register(&mut SourceFd(&0), Token(2), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(8);
    let mut line = Vec::new();
    loop {
        let now = Instant::now();
        g.tick(now).unwrap();
        let wait = g.next_heartbeat().saturating_duration_since(now);
        match poll.poll(&mut events, Some(wait)) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {} // SIGSTOP/SIGCONT
            r => r.unwrap(),
        }
        nl.receive().unwrap();
        while let Some(c) = nl.poll_completion() {
            match c.result {
                Ok(Reply::Done) | Ok(Reply::Absent) if adds_left > 0 => {
                    adds_left -= 1;
                    if adds_left == 0 {
                        say("held");
                    }
                }
                Ok(_) if removes_left > 0 => {
                    removes_left -= 1;
                    if removes_left == 0 {
                        for a in &held {
                            g.released(a).unwrap();
                        }
                        say("released");
                    }
                }
                other => panic!("netlink: {other:?}"),
            }
        }
        g.receive().unwrap();
        while let Some(e) = g.poll_event() {
            match e {
                GuardianEvent::Fenced(r) => say(&format!("fenced {r:?}")),
                GuardianEvent::Pong => say("pong"),
                GuardianEvent::Gone => say("guardian gone"),
            }
        }
        let mut buf = [0u8; 256];
        loop {
            match std::io::stdin().lock().read(&mut buf) {
                Ok(0) => std::process::exit(3), // the test went away: behave like a crash
                Ok(n) => line.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        while let Some(pos) = line.iter().position(|&b| b == b'\n') {
            let cmd: Vec<u8> = line.drain(..=pos).collect();
            match String::from_utf8_lossy(&cmd).trim() {
                "release" => {
                    // As pharosd must on a public interface before removing anything there.
                    // (Only here: the kill and stop cases rely on the guardian doing it.)
                    iface::promote_secondaries(ifindex).unwrap();
                    removes_left = held.len();
                    for a in &held {
                        nl.remove(a);
                    }
                }
                "ping" => g.ping().unwrap(),
                "exit" => {
                    let status = g.close().unwrap();
                    say(&format!("bye {status}"));
                    return;
                }
                other => panic!("unknown command {other:?}"),
            }
        }
    }
}

fn say(s: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").unwrap();
    out.flush().unwrap();
}

fn parse_cidr(ifindex: u32, s: &str) -> IfaceAddr {
    let (ip, len) = s.split_once('/').unwrap();
    IfaceAddr::new(ifindex, ip.parse().unwrap(), len.parse().unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The test side.

/// Node and peer namespaces, a listener in the peer's, and the daemon role running in the node's.
struct Setup {
    daemon: Daemon,
    listener: TcpListener,
    node: Netns,
    _peer: Netns,
}

impl Setup {
    fn new(tag: &str, on_hang: &str, timeout_ms: u64) -> Setup {
        let node = Netns::new(&format!("{tag}-n"));
        let peer = Netns::new(&format!("{tag}-p"));
        veth(&node, "d0", &peer, "d0p");
        node.ip(&["addr", "add", &format!("{NODE}/24"), "dev", "d0"]);
        peer.ip(&["addr", "add", &format!("{PEER}/24"), "dev", "d0p"]);
        let listener = peer.enter(|| TcpListener::bind((PEER, 0)).unwrap());
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.name])
            .arg(std::env::current_exe().unwrap())
            .args(["--daemon-role", "d0", NODE, &format!("{PEER}:{port}")])
            .arg(timeout_ms.to_string())
            .arg(on_hang)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0); // its own group, so the test can stop "the daemon's group"
        let daemon = Daemon::start(cmd);
        let mut s = Setup {
            daemon,
            listener,
            node,
            _peer: peer,
        };
        s.daemon.expect("held");
        s.node.ip(&["addr", "add", UNTOLD, "dev", "d0"]);
        assert!(s.has(HELD[0]) && s.has(HELD[1]) && s.has(UNTOLD));
        s
    }

    /// Whether `cidr` is configured on the node's d0.
    fn has(&self, cidr: &str) -> bool {
        let shown = self.node.ip(&["addr", "show", "dev", "d0"]);
        shown.split_whitespace().any(|w| w == cidr)
    }

    /// The first connection's bytes and when it was accepted, within the deadline; and the
    /// connection, still open: the guardian waits for us to close it, so anything it would do
    /// after delivering cannot have happened yet.
    fn delivery(&self) -> (Instant, Vec<u8>, TcpStream) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.listener.accept() {
                Ok((mut s, _)) => {
                    let at = Instant::now();
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(DEADLINE)).unwrap();
                    let mut bytes = Vec::new();
                    s.read_to_end(&mut bytes).unwrap();
                    return (at, bytes, s);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    assert!(!left.is_zero(), "nothing delivered within {DEADLINE:?}");
                    poll_fd(self.listener.as_raw_fd(), left);
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    fn nothing_delivered(&self) {
        match self.listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("unexpected delivery: {other:?}"),
        }
    }

    /// After a fence: the told addresses are gone, the untold ones are still there.
    fn fenced_exactly(&self) {
        assert!(
            !self.has(HELD[0]) && !self.has(HELD[1]),
            "held addresses still configured"
        );
        assert!(
            self.has(UNTOLD),
            "an address the guardian was not told about was removed"
        );
        assert!(self.has(&format!("{NODE}/24")));
    }
}

/// The daemon role process; killed by pid on drop, and its guardian after it if need be.
struct Daemon {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    guardian: i32,
}

impl Daemon {
    fn start(mut cmd: Command) -> Daemon {
        let mut child = cmd.spawn().expect("start the daemon role");
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut d = Daemon {
            child,
            stdin,
            lines,
            guardian: 0,
        };
        let g = d.expect("guardian ");
        d.guardian = g.trim_start_matches("guardian ").parse().unwrap();
        d
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The next line starting with `prefix` (others are skipped), within the deadline.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(e) => panic!("daemon role: no line {prefix:?} within {DEADLINE:?} ({e})"),
            }
        }
    }

    fn command(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on the process this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits (within the deadline) for the daemon role to end; its exit status.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon role did not end");
            std::thread::sleep(Duration::from_millis(2)); // sampling period
        }
    }

    /// Waits until the guardian has exited (gone, or a zombie of whoever adopted it).
    fn guardian_exits(&self) {
        let deadline = Instant::now() + DEADLINE;
        while !exited(self.guardian) {
            assert!(
                Instant::now() < deadline,
                "guardian {} did not exit",
                self.guardian
            );
            std::thread::sleep(Duration::from_millis(2)); // sampling period
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own child; SIGCONT in case a test left it stopped.
            unsafe {
                libc::kill(self.pid(), libc::SIGKILL);
                libc::kill(self.pid(), libc::SIGCONT);
            }
            let _ = self.child.wait();
        }
        // The guardian fences and exits by itself on the daemon's death; make sure.
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.guardian > 0 && !exited(self.guardian) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.guardian > 0 && !exited(self.guardian) {
            // SAFETY: kill(2) on the guardian our daemon role started.
            unsafe { libc::kill(self.guardian, libc::SIGKILL) };
        }
    }
}

/// Gone, or a zombie.
fn exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn poll_fd(fd: i32, left: Duration) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, left.as_millis().clamp(1, 60_000) as i32) };
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// (a) kill -9 of the daemon: addresses gone before the bytes arrive; the untold one stays.
fn kill9_fences_and_delivers() {
    let mut s = Setup::new("k9", "kill", 300);
    let t0 = Instant::now();
    s.daemon.signal(libc::SIGKILL);
    let (at, bytes, _conn) = s.delivery();
    assert_eq!(bytes, MESSAGE);
    // Removal comes before delivery (and the guardian is waiting for us to close): no waiting.
    s.fenced_exactly();
    println!(
        "  kill -9 -> addresses removed and bytes at the peer: {:?}",
        at - t0
    );
    assert_eq!(s.daemon.wait().signal(), Some(libc::SIGKILL));
    s.daemon.guardian_exits();
}

/// (b) SIGSTOP of the daemon: after the heartbeat timeout the guardian kills it, then fences.
fn sigstop_kills_then_fences() {
    let mut s = Setup::new("stop", "kill", 300);
    let t0 = Instant::now();
    s.daemon.signal(libc::SIGSTOP);
    let (at, bytes, _conn) = s.delivery();
    assert_eq!(bytes, MESSAGE);
    s.fenced_exactly();
    let took = at - t0;
    println!("  SIGSTOP (heartbeat timeout 300 ms) -> fenced and bytes at the peer: {took:?}");
    // Silence counts from the last heartbeat, sent at most a quarter timeout before the stop.
    assert!(
        took >= Duration::from_millis(225),
        "fenced before the timeout: {took:?}"
    );
    // The stopped daemon was killed (so it can never re-add an address when thawed).
    assert_eq!(s.daemon.wait().signal(), Some(libc::SIGKILL));
    s.daemon.guardian_exits();
}

/// (b') SIGSTOP of the daemon's whole process group with OnHang::Report: the guardian (in its
/// own session) is not stopped, fences, and tells the daemon when it thaws; the daemon releases
/// and exits cleanly, and nothing more is delivered.
fn group_sigstop_report_keeps_daemon() {
    let mut s = Setup::new("grp", "report", 300);
    // SAFETY: kill(2) on the process group of the process this test started.
    assert_eq!(unsafe { libc::kill(-s.daemon.pid(), libc::SIGSTOP) }, 0);
    let (_, bytes, _conn) = s.delivery();
    assert_eq!(bytes, MESSAGE);
    s.fenced_exactly();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(-s.daemon.pid(), libc::SIGCONT) }, 0);
    let report = s.daemon.expect("fenced");
    assert!(
        report.contains("reason: Hung")
            && report.contains("removed: 2")
            && report.contains("delivered: 1"),
        "{report}"
    );
    s.daemon.command("ping");
    s.daemon.expect("pong");
    s.daemon.command("release");
    s.daemon.expect("released");
    s.daemon.command("exit");
    s.daemon.expect("bye exit status: 0");
    assert!(s.daemon.wait().success());
    s.daemon.guardian_exits();
    s.nothing_delivered();
    assert!(s.has(UNTOLD));
}

/// (c) Clean shutdown after removal: nothing delivered. Also: the guardian ignores SIGTERM,
/// SIGINT and SIGHUP (a ping answered after them proves it is still running).
fn clean_close_delivers_nothing() {
    let mut s = Setup::new("cln", "kill", 300);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: kill(2) on the guardian our daemon role started.
        assert_eq!(unsafe { libc::kill(s.daemon.guardian, sig) }, 0);
    }
    s.daemon.command("ping");
    s.daemon.expect("pong");
    assert!(
        s.has(HELD[0]) && s.has(HELD[1]),
        "the guardian fenced on a signal"
    );
    s.daemon.command("release");
    s.daemon.expect("released");
    assert!(!s.has(HELD[0]) && !s.has(HELD[1]));
    s.daemon.command("exit");
    s.daemon.expect("bye exit status: 0");
    assert!(s.daemon.wait().success());
    // `close` waited for the guardian, which would have delivered before exiting.
    s.nothing_delivered();
    assert!(s.has(UNTOLD));
}

/// The guardian must be forked before any thread exists.
fn spawn_refuses_a_threaded_process() {
    let (tx, rx) = mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let err = Guardian::spawn(&GuardianConfig::default())
        .err()
        .expect("spawn must refuse");
    assert!(err.to_string().contains("before any thread"), "{err}");
    drop(tx);
    t.join().unwrap();
}

/// Cost of fencing after kill -9 (removing 2 addresses, delivering to 1 peer), over 20 runs.
fn measure_fencing() {
    let mut took = Vec::new();
    for _ in 0..20 {
        let mut s = Setup::new("mes", "kill", 300);
        let t0 = Instant::now();
        s.daemon.signal(libc::SIGKILL);
        let (at, bytes, _conn) = s.delivery();
        assert_eq!(bytes, MESSAGE);
        took.push(at - t0);
        s.fenced_exactly();
        s.daemon.wait();
        s.daemon.guardian_exits();
    }
    took.sort();
    println!(
        "  kill -9 -> 2 addresses removed + bytes at the peer, 20 runs (debug build, shared machine): p50 {:?} p90 {:?} max {:?}",
        took[10], took[18], took[19]
    );
}
