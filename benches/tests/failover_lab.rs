//! The failover harness on a real lab: lab.sh's namespaces, the banner responders, the probe and
//! the sampler (netlink in each namespace), run.sh's stale-lab cleanup, and the pharos runner.
//! Needs root and `ip netns`; without them each test says why and passes. Every namespace and
//! process is removed by a guard, also when an assertion fails. Traffic stays inside the
//! namespaces these tests create.

use pharos_benches::failover::analysis::Observations;
use pharos_benches::failover::clock::now_ns;
use pharos_benches::failover::probe::ProbeRecord;
use pharos_benches::failover::sampler::Sample;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BANNER: &str = env!("CARGO_BIN_EXE_failover-banner");
const PROBE: &str = env!("CARGO_BIN_EXE_failover-probe");
const SAMPLER: &str = env!("CARGO_BIN_EXE_failover-sampler");
const BENCH: &str = env!("CARGO_BIN_EXE_failover-bench");

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("failover")
}

/// Why these tests cannot run here, if they cannot.
fn unsupported() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces)".into());
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip netns` is not available".into()),
    }
}

macro_rules! need_netns {
    () => {
        if let Some(why) = unsupported() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A lab made by lab.sh with its own prefix and subnet; destroyed on drop.
struct Lab {
    prefix: String,
    subnet: String,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str, octet: u8, nodes: usize) -> Lab {
        let lab = Lab {
            prefix: format!("pft{tag}{}", std::process::id() % 100_000),
            subnet: format!("10.{octet}.0"),
            children: Vec::new(),
        };
        assert!(lab.sh(&["create", &nodes.to_string()]), "lab.sh create");
        lab
    }

    fn sh(&self, args: &[&str]) -> bool {
        Command::new("bash")
            .arg(dir().join("lab.sh"))
            .args(args)
            .env("LAB_PREFIX", &self.prefix)
            .env("LAB_SUBNET", &self.subnet)
            .status()
            .unwrap()
            .success()
    }

    fn ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    fn ip(&self, args: &[&str]) {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    }

    fn public(&self) -> IpAddr {
        format!("{}.100", self.subnet).parse().unwrap()
    }

    fn add(&self, i: usize) {
        let a = format!("{}/24", self.public());
        self.ip(&["-n", &self.ns(i), "addr", "add", &a, "dev", "eth0"]);
    }

    fn del(&self, i: usize) {
        let a = format!("{}/24", self.public());
        self.ip(&["-n", &self.ns(i), "addr", "del", &a, "dev", "eth0"]);
    }

    /// What a gratuitous ARP from the new holder does: the client forgets the old MAC.
    fn forget_arp(&self) {
        let client = format!("{}-client", self.prefix);
        self.ip(&["-n", &client, "neigh", "flush", "dev", "eth0"]);
    }

    /// Starts a helper whose stdout lines go to `f`.
    fn reader(
        &mut self,
        cmd: &mut Command,
        obs: &Arc<Mutex<Observations>>,
        f: fn(&mut Observations, &str),
    ) {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let obs = obs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                f(&mut obs.lock().unwrap(), &line);
            }
        });
        self.children.push(child);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.sh(&["destroy"]);
    }
}

fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn namespaces(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .map(String::from)
        .collect()
}

#[test]
fn probe_and_sampler_follow_an_address_between_namespaces() {
    need_netns!();
    let mut lab = Lab::new("a", 231, 2);
    let obs = Arc::new(Mutex::new(Observations {
        addrs: vec![lab.public()],
        ..Default::default()
    }));
    for i in 0..2 {
        let mut c = Command::new(BANNER);
        c.args([
            "--netns",
            &lab.ns(i),
            "--name",
            &format!("n{i}"),
            "--port",
            "8080",
        ]);
        lab.children.push(c.spawn().unwrap());
    }
    let addr = lab.public().to_string();
    let ns = format!("{},{}", lab.ns(0), lab.ns(1));
    let client = format!("{}-client", lab.prefix);
    lab.reader(
        Command::new(SAMPLER).args(["--netns", &ns, "--addresses", &addr, "--duration", "60s"]),
        &obs,
        |o, l| o.samples.extend(Sample::parse(l, 1)),
    );
    lab.reader(
        Command::new(PROBE).args([
            "--netns",
            &client,
            "--addresses",
            &addr,
            "--duration",
            "60s",
        ]),
        &obs,
        |o, l| o.probes.extend(ProbeRecord::parse(l)),
    );
    let a = lab.public();
    let held = |mask: u64, since: u64| {
        let o = obs.lock().unwrap();
        o.samples
            .iter()
            .any(|s| s.t_ns >= since && s.holders == [mask])
    };
    let answered = |node: &str, since: u64| {
        let o = obs.lock().unwrap();
        o.first_ok(a, since, |b| b == node).is_some()
    };

    // Nobody holds it: the sampler says so, and the probe fails.
    until("a sample with no holder", 5, || held(0, 0));
    lab.add(0);
    let t = now_ns();
    until("n0 holds it and answers", 5, || {
        held(1, t) && answered("n0", t)
    });

    lab.del(0);
    lab.add(1);
    lab.forget_arp();
    let t = now_ns();
    until("n1 holds it and answers", 5, || {
        held(2, t) && answered("n1", t)
    });
    assert!(!answered("n0", t), "n0 answered after it lost the address");

    // On both nodes at once: the sampler sees two holders.
    lab.add(0);
    let t = now_ns();
    until("the address on both nodes", 5, || held(3, t));
    lab.del(0);

    // The holder's link cut: attempts time out; healed: it answers again.
    let before_cut = now_ns();
    until("an answer from n1", 5, || answered("n1", before_cut));
    assert!(lab.sh(&["cut", "1"]));
    let t = now_ns();
    until("failed attempts during the cut", 5, || {
        let o = obs.lock().unwrap();
        o.probes
            .iter()
            .filter(|r| r.t_ns > t + 50_000_000 && r.result.is_err())
            .count()
            >= 3
    });
    let during: Vec<ProbeRecord> = {
        let o = obs.lock().unwrap();
        o.probes
            .iter()
            .filter(|r| r.t_ns > t + 50_000_000)
            .cloned()
            .collect()
    };
    assert!(
        during.iter().all(|r| r.result.is_err()),
        "answers through a cut link: {during:?}"
    );
    assert!(lab.sh(&["heal", "1"]));
    let t = now_ns();
    until("n1 answers after the heal", 5, || answered("n1", t));

    // Probe cadence: attempts start every 10 ms (a few late rounds on a loaded machine).
    let o = obs.lock().unwrap();
    let mut starts: Vec<u64> = o.probes.iter().map(|r| r.t_ns).collect();
    starts.sort_unstable();
    starts.dedup();
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let on_time = gaps.iter().filter(|&&g| g < 15_000_000).count();
    eprintln!("probe rounds: {} gaps, {on_time} under 15 ms", gaps.len());
    assert!(on_time * 2 > gaps.len(), "most rounds are 10 ms apart");
    drop(o);
    let prefix = lab.prefix.clone();
    drop(lab);
    assert!(
        namespaces(&prefix).is_empty(),
        "namespaces left: {:?}",
        namespaces(&prefix)
    );
}

/// Children killed (by PID) and reaped on drop, also when an assertion fails.
struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn run_sh(prefix: &str, state: &Path, args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(dir().join("run.sh"))
        .args(args)
        .env("FAILOVER_PREFIX", prefix)
        .env("FAILOVER_STATE", state)
        .env("FAILOVER_SUBNET", "10.232.0")
        .output()
        .unwrap()
}

#[test]
fn run_sh_removes_a_stale_lab_and_refuses_a_foreign_one() {
    need_netns!();
    let lab = Lab::new("s", 232, 1);
    let state = std::env::temp_dir().join(format!("pft-state-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    // Namespaces without a PID file: not ours to remove.
    let out = run_sh(&lab.prefix, &state, &["--cleanup-only"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no harness PID file"));
    assert_eq!(namespaces(&lab.prefix).len(), 3);

    // A harness that died: its PID is gone; a process it recorded and one it did not (like a
    // daemon's forked child) still run in the lab.
    let mut dead = Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    std::fs::write(state.join("harness.pid"), format!("{}\n", dead.id())).unwrap();
    let sleep = || {
        Command::new("ip")
            .args(["netns", "exec", &lab.ns(0), "sleep", "300"])
            .spawn()
            .unwrap()
    };
    let mut sleepers = Killed(vec![sleep(), sleep()]);
    std::fs::write(
        state.join("pids"),
        format!("{} sleep\n", sleepers.0[0].id()),
    )
    .unwrap();
    for p in sleepers.0.iter().map(|c| c.id()) {
        until("the sleepers run", 5, || {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
    }
    let out = run_sh(&lab.prefix, &state, &["--cleanup-only"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("removing the lab left by a harness that died"));
    assert!(namespaces(&lab.prefix).is_empty());
    assert!(!state.exists(), "the scratch directory is removed");
    // Both were killed: the recorded one, and the unrecorded one by lab_destroy.
    for (i, what) in ["the recorded process", "the unrecorded process"]
        .iter()
        .enumerate()
    {
        until(&format!("{what} killed"), 10, || {
            sleepers.0[i]
                .try_wait()
                .unwrap()
                .is_some_and(|st| !st.success())
        });
    }
    let _ = std::fs::remove_dir_all(&state);
}

/// pharos in the lab: the cluster forms, every address is served and the start is measured (a
/// pharosd that hosts nothing is reported as "not hosted" instead of hanging). Either way it
/// ends and leaves nothing behind.
#[test]
fn pharos_runner_forms_the_cluster_and_reports_cleanly() {
    need_netns!();
    let bin = Path::new(BENCH).parent().unwrap().to_path_buf();
    if !bin.join("pharosd").exists() || !bin.join("pharos").exists() {
        eprintln!(
            "skipped: pharosd is not built next to failover-bench (cargo build -p pharos-mio -p pharos-host)"
        );
        return;
    }
    let tag = std::process::id() % 100_000;
    let prefix = format!("pftp{tag}");
    let root = std::env::temp_dir().join(format!("pft-pharos-{tag}"));
    let (state, out) = (root.join("state"), root.join("out"));
    let run = Command::new(BENCH)
        .args([
            "--system",
            "pharos",
            "--profiles",
            "pharos-fast",
            "--events",
            "start",
        ])
        .args([
            "--reps", "1", "--idle", "1", "--prefix", &prefix, "--subnet", "10.233.0",
        ])
        .arg("--dir")
        .arg(dir())
        .arg("--state")
        .arg(&state)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let left = namespaces(&prefix);
    let json = std::fs::read_to_string(out.join("results.json")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&root);
    assert!(run.status.success(), "{run:?}");
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let v: serde_json::Value = serde_json::from_str(&json).expect("results.json");
    let p = &v["profiles"][0];
    let status = p["status"].as_str().unwrap();
    let start = &p["trials"][0];
    eprintln!("pharos: {status}; start {}", start["seconds"]);
    if start["seconds"].is_null() {
        assert!(
            status.starts_with("not hosted: every node OK"),
            "{status}\n{stdout}"
        );
    } else {
        assert_eq!(status, "ok", "{stdout}");
    }
    // RSS was measured for pharosd on every node.
    let fp = p["footprint"].as_array().unwrap();
    assert_eq!(fp.len(), 3);
    assert!(
        fp.iter().all(|f| f["rss_kb"].as_u64().unwrap() > 0),
        "{fp:?}"
    );
}
