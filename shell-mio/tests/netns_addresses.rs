//! Issue 11: public addresses that move, with real daemons in network namespaces (a bridge
//! namespace, one namespace per node on it). Every address is hosted exactly once; kill -9,
//! SIGSTOP of the daemon, SIGSTOP of its process group and a cut link each move the addresses;
//! a sampler over all node namespaces never sees an address on two nodes; a stopped node keeps
//! nothing that moved; stopping every daemon leaves nothing configured. Skipped (with a
//! printed reason) without root and `ip netns`. Addresses: 10.213.77.0/24, inside the
//! namespaces only.

mod common;
mod netns;

use common::*;
use netns::{veth, Netns};
use pharos_mio::hosting::iface;
use pharos_mio::hosting::netlink::{Netlink, Reply};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NODES: usize = 3;
const ADDRS: usize = 8;
const PORT: u16 = 4379;

fn node_ip(i: usize) -> String {
    format!("10.213.77.{}", i + 1)
}

fn public_ip(k: usize) -> IpAddr {
    format!("10.213.77.{}", 100 + k).parse().unwrap()
}

/// What the sampler saw: per address, the node namespaces that had it, sample by sample.
#[derive(Default)]
struct Seen {
    samples: u64,
    /// (address, nodes, when) of every sample with an address on two nodes.
    doubles: Vec<(IpAddr, Vec<usize>, Duration)>,
}

struct Lab {
    dir: Scratch,
    _bridge: Netns,
    nodes: Vec<Netns>,
    procs: Vec<Option<Child>>,
    /// One netlink socket inside each node namespace, for the sampler and the checks.
    probes: Arc<Vec<Mutex<(Netlink, u32)>>>,
    seen: Arc<Mutex<Seen>>,
    sampling: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Lab {
    fn new() -> Lab {
        let bridge = Netns::new("addr-br");
        bridge.ip(&["link", "add", "br0", "type", "bridge"]);
        bridge.ip(&["link", "set", "br0", "up"]);
        let mut nodes = Vec::new();
        for i in 0..NODES {
            let n = Netns::new(&format!("addr-n{i}"));
            let port = format!("vn{i}");
            veth(&n, "eth0", &bridge, &port);
            bridge.ip(&["link", "set", &port, "master", "br0"]);
            n.ip(&["addr", "add", &format!("{}/24", node_ip(i)), "dev", "eth0"]);
            nodes.push(n);
        }
        let dir = Scratch::new("netns-addresses");
        let list: String = (0..NODES).map(|i| format!("{}\n", node_ip(i))).collect();
        write(&dir.0.join("nodes"), &list);
        let public: String = (0..ADDRS)
            .map(|k| format!("{}/24 eth0\n", public_ip(k)))
            .collect();
        write(&dir.0.join("public_addresses"), &public);
        let probes = nodes
            .iter()
            .map(|n| {
                Mutex::new(n.enter(|| {
                    let nl = Netlink::open().expect("netlink in the namespace");
                    (nl, iface::index("eth0").expect("eth0"))
                }))
            })
            .collect();
        Lab {
            dir,
            _bridge: bridge,
            nodes,
            procs: (0..NODES).map(|_| None).collect(),
            probes: Arc::new(probes),
            seen: Arc::new(Mutex::new(Seen::default())),
            sampling: Arc::new(AtomicBool::new(true)),
            sampler: None,
            started: Instant::now(),
        }
    }

    fn socket(&self, i: usize) -> std::path::PathBuf {
        self.dir.0.join(format!("n{i}.sock"))
    }

    /// Starts node `i`'s daemon inside its namespace, in a process group of its own.
    fn start(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join(format!("n{i}.log")))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.nodes[i].name, PHAROSD])
            .arg("--nodes")
            .arg(self.dir.0.join("nodes"))
            .arg("--public-addresses")
            .arg(self.dir.0.join("public_addresses"))
            .arg("--socket")
            .arg(self.socket(i))
            .args(["--port", &PORT.to_string(), "--cluster-lock", "none"])
            .args(FAST)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn pharosd");
        self.procs[i] = Some(child);
    }

    fn pid(&self, i: usize) -> i32 {
        self.procs[i].as_ref().expect("running").id() as i32
    }

    fn signal(&self, target: i32, sig: i32) {
        // SAFETY: kill(2) on a PID (or, negative, the process group) of a child we spawned.
        let rc = unsafe { libc::kill(target, sig) };
        assert_eq!(rc, 0, "kill({target}, {sig})");
    }

    /// Whether node `i`'s daemon has exited (reaped if so).
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The public addresses configured in node `i`'s namespace now.
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

    /// Who has each public address now.
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

    /// Every address on exactly one of `nodes`, each of them with 2 or 3.
    fn spread_over(&self, nodes: &[usize]) -> bool {
        let h = self.holders();
        let once = h.values().all(|v| v.len() == 1 && nodes.contains(&v[0]));
        let per = |i| h.values().filter(|v| v.contains(&i)).count();
        let even = nodes.iter().all(|&i| {
            let k = per(i);
            let n = nodes.len();
            k >= ADDRS / n && k <= ADDRS.div_ceil(n)
        });
        once && even
    }

    /// Samples every 20 ms, all node namespaces, until the lab ends.
    fn start_sampler(&mut self) {
        let (probes, seen, on, start) = (
            self.probes.clone(),
            self.seen.clone(),
            self.sampling.clone(),
            self.started,
        );
        self.sampler = Some(std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                let mut by: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
                for i in 0..NODES {
                    for a in Lab::addresses(&probes, i) {
                        by.entry(a).or_default().push(i);
                    }
                }
                let mut s = seen.lock().unwrap();
                s.samples += 1;
                for (a, v) in by {
                    if v.len() > 1 {
                        s.doubles.push((a, v, start.elapsed()));
                    }
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(20));
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

    fn recmaster(&self, i: usize) -> Option<i64> {
        let out = pharos_cli(&[
            "--socket".as_ref(),
            self.socket(i).as_os_str(),
            "--json".as_ref(),
            "recmaster".as_ref(),
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["recmaster"].as_i64()
    }

    fn assert_never_doubled(&self) {
        let s = self.seen.lock().unwrap();
        assert!(
            s.doubles.is_empty(),
            "an address on two nodes at once ({} of {} samples): {:?}\n{}",
            s.doubles.len(),
            s.samples,
            s.doubles,
            self.logs()
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::Relaxed);
        if let Some(t) = self.sampler.take() {
            let _ = t.join();
        }
        for i in 0..NODES {
            if let Some(c) = self.procs[i].as_mut() {
                // A stopped process must be continued to die of SIGTERM; SIGKILL needs nothing.
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // The namespaces go with their Netns guards; a guardian still inside dies with its
        // daemon's socket (it exits after fencing).
    }
}

/// Waits for `cond`, failing the test with the logs at `limit`.
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
fn addresses_move_and_are_never_on_two_nodes() {
    if netns::skip("addresses_move_and_are_never_on_two_nodes") {
        return;
    }
    let mut lab = Lab::new();
    for i in 0..NODES {
        lab.start(i);
    }
    lab.start_sampler();
    let all = [0, 1, 2];
    settle(
        &lab,
        "every address hosted once, 2-3 per node",
        Duration::from_secs(10),
        || lab.spread_over(&all),
    );
    let master = lab.recmaster(0).expect("a recovery master") as usize;
    let holder = (0..NODES).find(|&i| i != master).unwrap();

    // kill -9 of a holder that is not the recovery master.
    lab.kill(holder);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != holder).collect();
    settle(
        &lab,
        "kill -9: addresses moved",
        Duration::from_secs(5),
        || lab.spread_over(&others),
    );
    lab.start(holder);
    settle(
        &lab,
        "restarted: its share is back",
        Duration::from_secs(10),
        || lab.spread_over(&all),
    );

    // SIGSTOP of the daemon: its guardian kills it and removes its addresses.
    let pid = lab.pid(holder);
    lab.signal(pid, libc::SIGSTOP);
    settle(
        &lab,
        "SIGSTOP: addresses moved",
        Duration::from_secs(5),
        || lab.spread_over(&others),
    );
    let _ = unsafe { libc::kill(pid, libc::SIGCONT) };
    // The guardian killed the hung daemon: thawed, it keeps nothing.
    settle(
        &lab,
        "SIGSTOP: the hung daemon was ended",
        Duration::from_secs(5),
        || lab.exited_ref(holder),
    );
    assert!(Lab::addresses(&lab.probes, holder).is_empty());
    lab.start(holder);
    settle(&lab, "restarted again", Duration::from_secs(10), || {
        lab.spread_over(&all)
    });

    // SIGSTOP of the daemon's whole process group (the guardian has a session of its own).
    let pid = lab.pid(holder);
    lab.signal(-pid, libc::SIGSTOP);
    settle(
        &lab,
        "SIGSTOP of the group: addresses moved",
        Duration::from_secs(5),
        || lab.spread_over(&others),
    );
    let _ = unsafe { libc::kill(-pid, libc::SIGCONT) };
    settle(
        &lab,
        "the stopped group's daemon was ended",
        Duration::from_secs(5),
        || lab.exited_ref(holder),
    );
    assert!(Lab::addresses(&lab.probes, holder).is_empty());
    lab.start(holder);
    settle(
        &lab,
        "restarted a third time",
        Duration::from_secs(10),
        || lab.spread_over(&all),
    );

    // A cut link (the node's port on the bridge goes down): no FIN, no RST.
    let port = format!("vn{holder}");
    lab._bridge.ip(&["link", "set", &port, "down"]);
    settle(
        &lab,
        "link cut: addresses moved",
        Duration::from_secs(10),
        || {
            let h = lab.holders();
            // The cut node gave everything up (its lease ran out) and the others host all.
            h.values().all(|v| v.len() == 1 && v[0] != holder)
        },
    );
    lab._bridge.ip(&["link", "set", &port, "up"]);
    settle(
        &lab,
        "link back: its share is back",
        Duration::from_secs(15),
        || lab.spread_over(&all),
    );

    // kill -9 of the recovery master while it hosts addresses.
    let master = lab.recmaster(holder).expect("a recovery master") as usize;
    lab.kill(master);
    let rest: Vec<usize> = all.iter().copied().filter(|&i| i != master).collect();
    settle(
        &lab,
        "kill -9 of the recovery master: addresses moved",
        Duration::from_secs(5),
        || lab.spread_over(&rest),
    );
    lab.start(master);
    settle(&lab, "the old master back", Duration::from_secs(10), || {
        lab.spread_over(&all)
    });

    // A clean stop of every daemon leaves no address anywhere.
    for i in 0..NODES {
        lab.signal(lab.pid(i), libc::SIGTERM);
    }
    settle(&lab, "all stopped", Duration::from_secs(5), || {
        (0..NODES).all(|i| lab.exited_ref(i))
    });
    assert!(
        lab.holders().values().all(Vec::is_empty),
        "addresses left after a clean stop: {:?}",
        lab.holders()
    );
    lab.sampling.store(false, Ordering::Relaxed);
    if let Some(t) = lab.sampler.take() {
        t.join().unwrap();
    }
    eprintln!("samples: {}", lab.seen.lock().unwrap().samples);
    lab.assert_never_doubled();
}

impl Lab {
    /// [`Lab::exited`] through a shared reference, for polling closures.
    fn exited_ref(&self, i: usize) -> bool {
        let pid = match self.procs[i].as_ref() {
            Some(c) => c.id() as i32,
            None => return true,
        };
        // SAFETY: waitpid on our own child, without reaping it (WNOWAIT).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        rc == 0 && unsafe { info.si_pid() } == pid
    }
}
