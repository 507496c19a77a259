//! Issue 12 in network namespaces: three daemons with event scripts and public addresses on a
//! public interface of their own (`eth1`, on a bridge; the cluster talks on `eth0`, another
//! bridge). takeip/releaseip run with CTDB's arguments around the netlink changes; setting a
//! holder's `eth1` down moves its addresses at once and `pharos ifaces` shows the link down;
//! a failing monitor moves a node's addresses away and back; a clean stop runs `shutdown`
//! last and leaves nothing configured; a sampler never sees an address on two nodes. Skipped
//! (with a printed reason) without root and `ip netns`. Addresses: 10.215.44.0/24 (cluster
//! 10.215.44.1-3, public .101-.106), inside the namespaces only.

mod common;
mod netns;

use common::*;
use netns::{veth, Netns};
use pharos_mio::hosting::iface;
use pharos_mio::hosting::netlink::{Netlink, Reply};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: usize = 3;

/// The two labs run one after the other (run side by side, one of them did not settle:
/// see the report; not understood yet).
static ONE_LAB: Mutex<()> = Mutex::new(());
const ADDRS: usize = 6;
const PORT: u16 = 4379;

const ARGS: &[&str] = &[
    "--tunable",
    "KeepaliveInterval=100ms",
    "--tunable",
    "KeepaliveLimit=3",
    "--tunable",
    "MonitorInterval=200ms",
    "--tunable",
    "EventScriptTimeout=2s",
    "--cluster-lock",
    "none",
];

/// Logs each event with its arguments to `$CTDB_BASE/log.<daemon pid>`; monitor fails while
/// `fail.<pid>` exists.
const RECORDER: &str = r#"#!/bin/sh
d="$CTDB_BASE"
p=$PPID
echo "$*" >> "$d/log.$p"
if [ "$1" = monitor ] && [ -e "$d/fail.$p" ]; then echo "service down"; exit 1; fi
exit 0
"#;

fn node_ip(i: usize) -> String {
    format!("10.215.44.{}", i + 1)
}

fn public_ip(k: usize) -> IpAddr {
    format!("10.215.44.{}", 101 + k).parse().unwrap()
}

/// Samples taken, and every (address, nodes) seen on more than one node.
type Doubles = Arc<Mutex<(u64, Vec<(IpAddr, Vec<usize>)>)>>;

struct Lab {
    dir: Scratch,
    _bridges: Netns,
    nodes: Vec<Netns>,
    procs: Vec<Option<Child>>,
    probes: Arc<Vec<Mutex<(Netlink, u32)>>>,
    doubles: Doubles,
    sampling: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl Lab {
    /// The lab with the recorder script.
    fn new() -> Lab {
        Lab::with_script("10.recorder.script", RECORDER)
    }

    /// The lab with one event script, `name` with `text`.
    fn with_script(name: &str, text: &str) -> Lab {
        let br = Netns::new("ev-br");
        for b in ["br0", "br1"] {
            br.ip(&["link", "add", b, "type", "bridge"]);
            br.ip(&["link", "set", b, "up"]);
        }
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let n = Netns::new(&format!("ev-n{i}"));
            for (inner, outer, b) in [
                ("eth0", format!("vc{i}"), "br0"),
                ("eth1", format!("vp{i}"), "br1"),
            ] {
                veth(&n, inner, &br, &outer);
                br.ip(&["link", "set", &outer, "master", b]);
            }
            n.ip(&["addr", "add", &format!("{}/24", node_ip(i)), "dev", "eth0"]);
            nodes.push(n);
        }
        let dir = Scratch::new("netns-events");
        let list: String = (0..NODES).map(|i| format!("{}\n", node_ip(i))).collect();
        write(&dir.0.join("nodes"), &list);
        let public: String = (0..ADDRS)
            .map(|k| format!("{}/24 eth1\n", public_ip(k)))
            .collect();
        write(&dir.0.join("public_addresses"), &public);
        let events = dir.0.join("events").join("legacy");
        std::fs::create_dir_all(&events).unwrap();
        let script = events.join(name);
        write(&script, text);
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let probes = nodes
            .iter()
            .map(|n| {
                Mutex::new(n.enter(|| {
                    let nl = Netlink::open().expect("netlink in the namespace");
                    (nl, iface::index("eth1").expect("eth1"))
                }))
            })
            .collect();
        Lab {
            dir,
            _bridges: br,
            nodes,
            procs: (0..NODES).map(|_| None).collect(),
            probes: Arc::new(probes),
            doubles: Arc::new(Mutex::new((0, Vec::new()))),
            sampling: Arc::new(AtomicBool::new(true)),
            sampler: None,
        }
    }

    fn socket(&self, i: usize) -> std::path::PathBuf {
        self.dir.0.join(format!("n{i}.sock"))
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join(format!("n{i}.log")))
            .unwrap();
        // `ip netns exec` execs pharosd: the child's PID is the daemon's.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.nodes[i].name, PHAROSD])
            .arg("--nodes")
            .arg(self.dir.0.join("nodes"))
            .arg("--public-addresses")
            .arg(self.dir.0.join("public_addresses"))
            .arg("--socket")
            .arg(self.socket(i))
            .arg("--event-dir")
            .arg(self.dir.0.join("events").join("legacy"))
            .args(["--port", &PORT.to_string()])
            .args(ARGS)
            .env("RUST_LOG", "info")
            .env("CTDB_SCRIPT_VARDIR", self.dir.0.join(format!("var{i}")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn pharosd");
        self.procs[i] = Some(child);
    }

    fn pid(&self, i: usize) -> i32 {
        self.procs[i].as_ref().expect("running").id() as i32
    }

    fn events(&self, i: usize) -> Vec<String> {
        std::fs::read_to_string(self.dir.0.join(format!("log.{}", self.pid(i))))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn pharos(&self, i: usize, args: &[&str]) -> String {
        let socket = self.socket(i);
        let mut argv: Vec<&std::ffi::OsStr> = vec!["--socket".as_ref(), socket.as_os_str()];
        argv.extend(args.iter().map(std::ffi::OsStr::new));
        String::from_utf8_lossy(&pharos_cli(&argv).stdout).into_owned()
    }

    fn addresses(probes: &[Mutex<(Netlink, u32)>], i: usize) -> Vec<IpAddr> {
        let mut p = probes[i].lock().unwrap();
        let (nl, ifindex) = &mut *p;
        let id = nl.list(*ifindex);
        let _ = nl.wait(Instant::now() + Duration::from_secs(2));
        let mut found = Vec::new();
        while let Some(c) = nl.poll_completion() {
            if c.id == id {
                if let Ok(Reply::Addresses(list)) = c.result {
                    found.extend(list.into_iter().map(|a| a.addr.addr));
                }
            }
        }
        found.retain(|a| (0..ADDRS).any(|k| public_ip(k) == *a));
        found
    }

    fn holders(&self) -> BTreeMap<IpAddr, Vec<usize>> {
        let mut m: BTreeMap<IpAddr, Vec<usize>> =
            (0..ADDRS).map(|k| (public_ip(k), Vec::new())).collect();
        for i in 0..NODES {
            for a in Self::addresses(&self.probes, i) {
                m.entry(a).or_default().push(i);
            }
        }
        m
    }

    /// Every address on exactly one of `nodes`, each of them with at least one.
    fn spread_over(&self, nodes: &[usize]) -> bool {
        let h = self.holders();
        h.values().all(|v| v.len() == 1 && nodes.contains(&v[0]))
            && nodes.iter().all(|&i| h.values().any(|v| v.contains(&i)))
    }

    fn start_sampler(&mut self) {
        let (probes, doubles, on) = (
            self.probes.clone(),
            self.doubles.clone(),
            self.sampling.clone(),
        );
        self.sampler = Some(std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                let mut by: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
                for i in 0..NODES {
                    for a in Lab::addresses(&probes, i) {
                        by.entry(a).or_default().push(i);
                    }
                }
                let mut d = doubles.lock().unwrap();
                d.0 += 1;
                d.1.extend(by.into_iter().filter(|(_, v)| v.len() > 1));
                drop(d);
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }

    fn logs(&self) -> String {
        (0..NODES)
            .map(|i| {
                let log = std::fs::read_to_string(self.dir.0.join(format!("n{i}.log")))
                    .unwrap_or_default();
                format!("--- n{i}.log\n{log}")
            })
            .collect()
    }

    fn exited(&mut self, i: usize) -> bool {
        self.procs[i]
            .as_mut()
            .is_none_or(|c| c.try_wait().unwrap().is_some())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn settle(lab: &Lab, what: &str, limit: Duration, cond: impl FnMut() -> bool) -> Duration {
    match wait_for(limit, cond) {
        Some(t) => {
            eprintln!("{what}: {t:?}");
            t
        }
        None => panic!(
            "{what}: not within {limit:?}; holders {:?}\n{}",
            lab.holders(),
            lab.logs()
        ),
    }
}

#[test]
fn scripts_follow_the_addresses_and_carrier_loss_moves_them() {
    if netns::skip("scripts_follow_the_addresses_and_carrier_loss_moves_them") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new();
    for i in 0..NODES {
        lab.start(i);
    }
    lab.start_sampler();
    let all = [0, 1, 2];
    settle(
        &lab,
        "every address hosted once",
        Duration::from_secs(15),
        || {
            lab.spread_over(&all)
                && (0..NODES).all(|i| lab.pharos(i, &["status"]).matches(" OK").count() == 3)
        },
    );
    settle(
        &lab,
        "balanced once all are healthy",
        Duration::from_secs(10),
        || {
            let h = lab.holders();
            all.iter()
                .all(|&i| h.values().filter(|v| v.contains(&i)).count() == 2)
        },
    );
    // Each holder ran takeip with CTDB's arguments for what it holds (after the netlink add:
    // the address may show before its script ran).
    let h = lab.holders();
    settle(
        &lab,
        "takeip ran for every hosted address",
        Duration::from_secs(5),
        || {
            h.iter()
                .all(|(a, v)| lab.events(v[0]).contains(&format!("takeip eth1 {a} 24")))
        },
    );
    let ifaces = lab.pharos(0, &["ifaces"]);
    assert!(
        ifaces.contains("name:eth1 link:up references:2"),
        "{ifaces}"
    );

    // eth1 of a holder goes down: its addresses move within a moment, releaseip ran for them.
    let victim = 1;
    let had: Vec<IpAddr> = h
        .iter()
        .filter(|(_, v)| v[0] == victim)
        .map(|(a, _)| *a)
        .collect();
    let t0 = Instant::now();
    lab.nodes[victim].ip(&["link", "set", "eth1", "down"]);
    let others = [0, 2];
    let moved = settle(
        &lab,
        "eth1 down: addresses moved",
        Duration::from_secs(5),
        || lab.spread_over(&others),
    );
    let took = t0.elapsed();
    eprintln!(
        "carrier loss to hosted elsewhere: {took:?} (target 0.2 s; settle saw it after {moved:?})"
    );
    let ifaces = lab.pharos(victim, &["ifaces"]);
    assert!(
        ifaces.contains("name:eth1 link:down references:0"),
        "{ifaces}"
    );
    let ev = lab.events(victim);
    for a in &had {
        let line = format!("releaseip eth1 {a} 24");
        assert!(ev.contains(&line), "no {line:?} in {ev:?}");
    }
    lab.nodes[victim].ip(&["link", "set", "eth1", "up"]);
    settle(
        &lab,
        "eth1 up: its share is back",
        Duration::from_secs(5),
        || lab.spread_over(&all),
    );

    // A failing monitor moves the node's addresses away, and back when it passes.
    let sick = 2;
    write(&lab.dir.0.join(format!("fail.{}", lab.pid(sick))), "");
    settle(
        &lab,
        "monitor failing: addresses moved",
        Duration::from_secs(5),
        || lab.spread_over(&[0, 1]),
    );
    let status = lab.pharos(0, &["status"]);
    assert!(status.contains("UNHEALTHY"), "{status}");
    std::fs::remove_file(lab.dir.0.join(format!("fail.{}", lab.pid(sick)))).unwrap();
    settle(
        &lab,
        "monitor passing: addresses back",
        Duration::from_secs(5),
        || lab.spread_over(&all),
    );

    // A clean stop: shutdown runs last, nothing stays configured.
    let pids: Vec<i32> = (0..NODES).map(|i| lab.pid(i)).collect();
    for &p in &pids {
        // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(p, libc::SIGTERM) }, 0);
    }
    let stopped = wait_for(Duration::from_secs(10), || {
        (0..NODES).all(|i| lab.exited(i))
    });
    assert!(stopped.is_some(), "daemons did not stop\n{}", lab.logs());
    for (i, p) in pids.iter().enumerate() {
        let ev: Vec<String> = std::fs::read_to_string(lab.dir.0.join(format!("log.{p}")))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(
            ev.last().map(String::as_str),
            Some("shutdown"),
            "node {i}: {ev:?}"
        );
    }
    assert!(
        lab.holders().values().all(Vec::is_empty),
        "{:?}",
        lab.holders()
    );
    lab.sampling.store(false, Ordering::Relaxed);
    if let Some(t) = lab.sampler.take() {
        t.join().unwrap();
    }
    let d = lab.doubles.lock().unwrap();
    eprintln!("samples: {}", d.0);
    assert!(
        d.1.is_empty(),
        "an address on two nodes: {:?}\n{}",
        d.1,
        lab.logs()
    );
}

/// The banner of the responder on `addr`:8080, asked from the bridge namespace.
fn banner(lab: &Lab, addr: IpAddr) -> Option<String> {
    use std::io::Read;
    lab._bridges.enter(|| {
        let to = std::net::SocketAddr::new(addr, 8080);
        let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_millis(200)).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
        let mut line = String::new();
        s.read_to_string(&mut line).ok()?;
        Some(line.trim().to_string())
    })
}

#[test]
fn a_killed_responder_moves_its_nodes_addresses() {
    if netns::skip("a_killed_responder_moves_its_nodes_addresses") {
        return;
    }
    let _one = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/events/legacy/50.responder.script"
    );
    let text = std::fs::read_to_string(sample).expect("the sample event script");
    let mut lab = Lab::with_script("50.responder.script", &text);
    lab._bridges
        .ip(&["addr", "add", "10.215.44.200/24", "dev", "br1"]);
    for i in 0..NODES {
        lab.start(i);
    }
    lab.start_sampler();
    let all = [0, 1, 2];
    settle(
        &lab,
        "every address answered by its holder's responder",
        Duration::from_secs(15),
        || {
            lab.spread_over(&all)
                && lab
                    .holders()
                    .iter()
                    .all(|(a, v)| banner(&lab, *a).is_some_and(|b| b == lab.nodes[v[0]].name))
        },
    );
    // Kill one node's responders (not the daemon): its next monitor fails.
    let victim = 1;
    let h = lab.holders();
    let had: Vec<IpAddr> = h
        .iter()
        .filter(|(_, v)| v[0] == victim)
        .map(|(a, _)| *a)
        .collect();
    assert!(!had.is_empty());
    let a = had[0];
    let pidfile = lab.dir.0.join(format!("var{victim}/responder/{a}.pid"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("responder pid file")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let t0 = Instant::now();
    // SAFETY: kill(2) on the responder our daemon's script started for this test.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    settle(
        &lab,
        "killed responder: its address answered elsewhere",
        Duration::from_secs(5),
        || {
            let h = lab.holders();
            h[&a].len() == 1
                && h[&a][0] != victim
                && banner(&lab, a).is_some_and(|b| b == lab.nodes[h[&a][0]].name)
        },
    );
    eprintln!(
        "responder kill to answered elsewhere: {:?} (MonitorInterval 200 ms)",
        t0.elapsed()
    );
    // It was UNHEALTHY meanwhile (it may be healthy again already: its responders went with
    // the addresses).
    let log = std::fs::read_to_string(lab.dir.0.join(format!("n{victim}.log"))).unwrap();
    assert!(log.contains("is unhealthy"), "{log}");
    // With its responders gone with the addresses, its monitor passes again: the share returns.
    settle(
        &lab,
        "healthy again: its share is back",
        Duration::from_secs(10),
        || lab.spread_over(&all),
    );
    lab.sampling.store(false, Ordering::Relaxed);
    if let Some(t) = lab.sampler.take() {
        t.join().unwrap();
    }
    let d = lab.doubles.lock().unwrap();
    assert!(
        d.1.is_empty(),
        "an address on two nodes: {:?}\n{}",
        d.1,
        lab.logs()
    );
}
