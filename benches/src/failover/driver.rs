//! The driver: for each settings profile, a fresh lab, the helpers (a banner responder per
//! node, the probe, the sampler), the system, then the events, each repeated; every figure is
//! taken from what the probe and the sampler recorded, identically for every system.
//!
//! A trial: wait until the cluster is healthy (the system says so, every address is on exactly
//! one node, every live node holds one, every address answered from its holder in the last
//! 300 ms) and quiet (`settle`); choose the victim from the latest sample; inject the fault at
//! t0; wait until every address the victim held answers from another node (the outage of each);
//! hold a moment, note what the victim still holds (stale); restore the node; wait until healthy
//! again. Samples with an address on two nodes are counted from t0 until healthy again.

use super::analysis::Observations;
use super::clock::{now_ns, secs};
use super::event::Event;
use super::netns::{self, ProcInfo};
use super::probe::ProbeRecord;
use super::procs::{self, PidLog};
use super::profile::Profile;
use super::sampler::Sample;
use super::systems::{self, Ctx, System};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a whole run does.
#[derive(Clone, Debug)]
pub struct Options {
    /// The settings profiles to run, in order.
    pub profiles: Vec<Profile>,
    /// The events, in run order.
    pub events: Vec<Event>,
    /// Repetitions of each event.
    pub reps: usize,
    /// Node count.
    pub nodes: usize,
    /// Public address count.
    pub addresses: usize,
    /// Namespace prefix.
    pub prefix: String,
    /// First three octets of the lab's /24.
    pub subnet: [u8; 3],
    /// Banner port.
    pub port: u16,
    /// Idle time for the RSS and CPU figures (0: skip).
    pub idle_secs: f64,
    /// How long to hold after a failover before looking for stale addresses.
    pub hold_secs: f64,
    /// Results directory (kept).
    pub out: PathBuf,
    /// Scratch directory (removed by run.sh at the end).
    pub state: PathBuf,
    /// benches/failover/lab.sh.
    pub lab_sh: PathBuf,
    /// Directory of the helper binaries, pharosd and pharos.
    pub bin_dir: PathBuf,
}

/// Why a run stopped early.
#[derive(Debug)]
pub enum Abort {
    /// SIGINT or SIGTERM.
    Interrupted,
    /// Something the harness could not do.
    Error(String),
}

impl From<String> for Abort {
    fn from(s: String) -> Self {
        Abort::Error(s)
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Makes SIGINT and SIGTERM stop the run at the next wait (everything is then cleaned up).
pub fn catch_signals() -> Result<(), String> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let flag = FLAG
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).map_err(|e| e.to_string())?;
    }
    std::thread::spawn(move || loop {
        if flag.load(Ordering::Relaxed) {
            INTERRUPTED.store(true, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(20));
    });
    Ok(())
}

fn check() -> Result<(), Abort> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Abort::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps, waking early on a signal.
fn pause(s: f64) -> Result<(), Abort> {
    let end = now_ns() + (s * 1e9) as u64;
    while now_ns() < end {
        check()?;
        std::thread::sleep(Duration::from_millis(10).min(Duration::from_nanos(end - now_ns())));
    }
    Ok(())
}

/// Polls `f` every `poll_ms` until it gives a value or `s` seconds pass (`None`).
fn wait_for<T>(s: f64, poll_ms: u64, mut f: impl FnMut() -> Option<T>) -> Result<Option<T>, Abort> {
    let end = now_ns() + (s * 1e9) as u64;
    loop {
        check()?;
        if let Some(v) = f() {
            return Ok(Some(v));
        }
        if now_ns() >= end {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(poll_ms));
    }
}

/// One repetition of one event.
#[derive(Clone, Debug, Default)]
pub struct Trial {
    /// The event's name.
    pub event: String,
    /// Repetition number (from 0).
    pub rep: usize,
    /// The node the fault hit.
    pub victim: Option<usize>,
    /// The leader before the fault (systems that have one).
    pub leader: Option<usize>,
    /// Each affected address and when it answered again (s after the event; None: never).
    pub per_addr: Vec<(String, Option<f64>)>,
    /// The trial's figure: when the last affected address answered (s), None if one never did.
    pub value: Option<f64>,
    /// Samples taken from the event until healthy again, and those with an address on 2 nodes.
    pub samples: usize,
    /// See `samples`.
    pub doubled: usize,
    /// Addresses the victim still held after the failover (None: not applicable).
    pub stale: Option<Vec<String>>,
    /// Anything unusual.
    pub notes: Vec<String>,
}

/// RSS and idle CPU of one node's processes of the system.
#[derive(Clone, Debug, Default)]
pub struct NodeFootprint {
    /// Node number.
    pub node: usize,
    /// Sum of VmRSS over the system's processes on the node, kB.
    pub rss_kb: u64,
    /// CPU over the idle window (own and reaped children's), % of one core.
    pub cpu_pct: f64,
    /// Each process: command name, RSS kB.
    pub procs: Vec<(String, u64)>,
}

/// Everything one profile's run produced.
#[derive(Clone, Debug, Default)]
pub struct ProfileResult {
    /// The profile.
    pub profile: Option<Profile>,
    /// Every setting in force (files as written).
    pub settings: String,
    /// `ok`, `not hosted: ...`, `failed: ...`, `interrupted`.
    pub status: String,
    /// The trials, in run order.
    pub trials: Vec<Trial>,
    /// Per node, after the first cold start.
    pub footprint: Vec<NodeFootprint>,
    /// Idle window actually measured, s.
    pub idle_secs: f64,
    /// Sampler rounds over the whole run (setup and waits included), and those with an
    /// address on two or more nodes.
    pub samples_seen: usize,
    /// See `samples_seen`.
    pub doubled_seen: usize,
}

/// The helpers of one profile run: banner responders, probe, sampler, and their readers.
struct Helpers {
    children: Vec<Child>,
    banner_pids: Vec<i32>,
}

impl Drop for Helpers {
    fn drop(&mut self) {
        for c in &mut self.children {
            procs::kill_child(c);
        }
    }
}

/// One profile run. Dropping it ends everything it started and removes its lab.
struct Run<'a> {
    opts: &'a Options,
    profile: &'a Profile,
    sys: Box<dyn System>,
    ctx: Ctx,
    obs: Arc<Mutex<Observations>>,
    helpers: Option<Helpers>,
    live: Vec<bool>,
    stopped: Vec<i32>,
    cut: Option<usize>,
    lab_up: bool,
}

fn lab_env(opts: &Options) -> Vec<(&'static str, String)> {
    let [a, b, c] = opts.subnet;
    vec![
        ("LAB_PREFIX", opts.prefix.clone()),
        ("LAB_SUBNET", format!("{a}.{b}.{c}")),
    ]
}

fn lab(opts: &Options, args: &[&str]) -> Result<(), String> {
    let mut c = Command::new("bash");
    c.arg(&opts.lab_sh).args(args).envs(lab_env(opts));
    let r = procs::run(&mut c, Duration::from_secs(60)).map_err(|e| e.to_string())?;
    if r.ok() {
        Ok(())
    } else {
        Err(format!("lab.sh {}: {}", args.join(" "), r.why()))
    }
}

impl<'a> Run<'a> {
    fn new(opts: &'a Options, profile: &'a Profile) -> Result<Self, String> {
        let sys = systems::for_profile(profile)?;
        let [a, b, c] = opts.subnet;
        let ip = |d: u8| Ipv4Addr::new(a, b, c, d);
        let logs = opts.out.join("logs").join(&profile.name);
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let ctx = Ctx {
            prefix: opts.prefix.clone(),
            nodes: opts.nodes,
            node_ips: (0..opts.nodes).map(|i| ip(i as u8 + 1)).collect(),
            public: (0..opts.addresses).map(|k| ip(100 + k as u8)).collect(),
            mask_bits: 24,
            state: opts.state.join(&profile.name),
            logs,
            bin_dir: opts.bin_dir.clone(),
            pids: PidLog(opts.state.join("pids")),
        };
        let obs = Observations {
            addrs: ctx.public.iter().map(|&a| a.into()).collect(),
            ..Default::default()
        };
        Ok(Run {
            opts,
            profile,
            sys,
            ctx,
            obs: Arc::new(Mutex::new(obs)),
            helpers: None,
            live: vec![false; opts.nodes],
            stopped: Vec::new(),
            cut: None,
            lab_up: false,
        })
    }

    fn name(i: usize) -> String {
        format!("n{i}")
    }

    fn live_nodes(&self) -> Vec<usize> {
        (0..self.opts.nodes).filter(|&i| self.live[i]).collect()
    }

    fn obs(&self) -> std::sync::MutexGuard<'_, Observations> {
        self.obs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lab and the helpers.
    fn setup(&mut self) -> Result<(), String> {
        lab(self.opts, &["destroy"])?;
        lab(self.opts, &["create", &self.opts.nodes.to_string()])?;
        self.lab_up = true;
        let raw = self.ctx.logs.clone();
        let mut h = Helpers {
            children: Vec::new(),
            banner_pids: Vec::new(),
        };
        let bin = |n: &str| self.opts.bin_dir.join(n);
        for i in 0..self.opts.nodes {
            let mut c = Command::new(bin("failover-banner"));
            c.args(["--netns", &self.ctx.ns(i), "--name", &Self::name(i)])
                .args(["--port", &self.opts.port.to_string()])
                .stdout(Stdio::null())
                .stderr(procs::log_file(&raw.join("banner.log")).map_err(|e| e.to_string())?);
            let child = procs::spawn(&mut c, &self.ctx.pids).map_err(|e| format!("banner: {e}"))?;
            h.banner_pids.push(child.id() as i32);
            h.children.push(child);
        }
        let addrs: Vec<String> = self.ctx.public.iter().map(|a| a.to_string()).collect();
        let mut probe = Command::new(bin("failover-probe"));
        probe
            .args(["--netns", &format!("{}-client", self.opts.prefix)])
            .args(["--addresses", &addrs.join(",")])
            .args(["--port", &self.opts.port.to_string()])
            .stdout(Stdio::piped())
            .stderr(procs::log_file(&raw.join("probe.stderr")).map_err(|e| e.to_string())?);
        let mut probe =
            procs::spawn(&mut probe, &self.ctx.pids).map_err(|e| format!("probe: {e}"))?;
        let out = probe.stdout.take().ok_or("probe: no stdout")?;
        h.children.push(probe);
        self.read_lines(out, raw.join("probe.log"), |obs, line| {
            if let Some(r) = ProbeRecord::parse(line) {
                obs.probes.push(r);
            }
        })?;
        let ns: Vec<String> = (0..self.opts.nodes).map(|i| self.ctx.ns(i)).collect();
        let mut sampler = Command::new(bin("failover-sampler"));
        sampler
            .args(["--netns", &ns.join(",")])
            .args(["--addresses", &addrs.join(",")])
            .stdout(Stdio::piped())
            .stderr(procs::log_file(&raw.join("sampler.stderr")).map_err(|e| e.to_string())?);
        let mut sampler =
            procs::spawn(&mut sampler, &self.ctx.pids).map_err(|e| format!("sampler: {e}"))?;
        let out = sampler.stdout.take().ok_or("sampler: no stdout")?;
        h.children.push(sampler);
        let n = self.opts.addresses;
        self.read_lines(out, raw.join("sampler.log"), move |obs, line| {
            if let Some(s) = Sample::parse(line, n) {
                obs.push_sample(s);
            }
        })?;
        self.helpers = Some(h);
        // The helpers are up when both streams flow.
        let ok = wait_for(5.0, 10, || {
            let o = self.obs();
            (o.probes.len() >= self.opts.addresses && !o.samples.is_empty()).then_some(())
        })
        .map_err(|_| "interrupted".to_string())?;
        ok.ok_or_else(|| "the probe or the sampler produced nothing in 5 s".to_string())
    }

    /// A thread that tees a helper's stdout into a raw log and the observations.
    fn read_lines(
        &self,
        from: impl std::io::Read + Send + 'static,
        raw: PathBuf,
        mut f: impl FnMut(&mut Observations, &str) + Send + 'static,
    ) -> Result<(), String> {
        let obs = self.obs.clone();
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(&raw).map_err(|e| format!("{}: {e}", raw.display()))?,
        );
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(file, "{line}");
                let mut o = obs.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut o, &line);
            }
            let _ = file.flush();
        });
        Ok(())
    }

    /// Removes the public addresses node `i`'s kernel still holds (returns them).
    fn clear_addresses(&self, i: usize) -> Vec<String> {
        let held = self.obs().held_by(i);
        let mut gone = Vec::new();
        for k in held {
            let a = format!("{}/{}", self.ctx.public[k], self.ctx.mask_bits);
            let mut c = Command::new("ip");
            c.args(["-n", &self.ctx.ns(i), "addr", "del", &a, "dev", "eth0"]);
            let _ = self.ctx.run(&mut c, Duration::from_secs(5));
            gone.push(self.ctx.public[k].to_string());
        }
        gone
    }

    /// Why the cluster is not ready for a fault, or Ok.
    fn ready(&self, live: &[usize]) -> Result<(), String> {
        let now = now_ns();
        {
            let o = self.obs();
            let s = o.latest().ok_or("no sample yet")?;
            if now.saturating_sub(s.t_ns) > 500_000_000 {
                return Err("the sampler is late".into());
            }
            for (k, &h) in s.holders.iter().enumerate() {
                let holders: Vec<usize> = (0..64).filter(|n| h & (1 << n) != 0).collect();
                match holders[..] {
                    [n] if live.contains(&n) => {
                        let name = Self::name(n);
                        if o.first_ok(o.addrs[k], now - 300_000_000, |b| b == name)
                            .is_none()
                        {
                            return Err(format!("{} does not answer from n{n}", o.addrs[k]));
                        }
                    }
                    _ => return Err(format!("{} is on nodes {holders:?}", o.addrs[k])),
                }
            }
            if self.opts.addresses >= live.len() {
                if let Some(&n) = live.iter().find(|&&n| o.held_by(n).is_empty()) {
                    return Err(format!("n{n} holds no address"));
                }
            }
        }
        self.sys.healthy(&self.ctx, live)?;
        // The system's own view agrees with the kernel (CTDB and pharos say where each is).
        if let Some(alloc) = self.sys.allocation(&self.ctx, live) {
            let alloc = alloc?;
            let o = self.obs();
            let s = o.latest().ok_or("no sample yet")?;
            for (k, a) in self.ctx.public.iter().enumerate() {
                let said = alloc.iter().find(|(x, _)| x == a).map(|&(_, p)| p);
                let kernel = s.holders[k].trailing_zeros() as i64;
                if said != Some(kernel) {
                    return Err(format!(
                        "{a}: the system says {said:?}, the kernel n{kernel}"
                    ));
                }
            }
        }
        Ok(())
    }

    fn wait_ready(&self, s: f64) -> Result<Result<(), String>, Abort> {
        let live = self.live_nodes();
        let mut why = String::new();
        let r = wait_for(s, 50, || match self.ready(&live) {
            Ok(()) => Some(()),
            Err(e) => {
                why = e;
                None
            }
        })?;
        Ok(r.ok_or(why))
    }

    fn start_node(&mut self, i: usize) -> Result<(), String> {
        self.sys.start(&self.ctx, i)?;
        self.live[i] = true;
        Ok(())
    }

    fn reap_all(&mut self) {
        for p in self.stopped.drain(..) {
            procs::signal(p, libc::SIGCONT);
        }
        if let Some(v) = self.cut.take() {
            let _ = lab(self.opts, &["heal", &v.to_string()]);
        }
        for i in 0..self.opts.nodes {
            self.sys.reap(&self.ctx, i);
            self.live[i] = false;
        }
    }

    /// Everything stopped, every address removed, fresh configuration, every node started.
    /// Returns t0 (just before the first start).
    fn fresh_start(&mut self) -> Result<u64, Abort> {
        self.reap_all();
        pause(0.1)?;
        for i in 0..self.opts.nodes {
            self.clear_addresses(i);
        }
        self.sys.prepare(&self.ctx)?;
        pause(0.1)?;
        let t0 = now_ns();
        for i in 0..self.opts.nodes {
            self.start_node(i)?;
        }
        Ok(t0)
    }

    /// A cold start, measured: from the first launch until every address has answered.
    fn cold_start(&mut self, rep: usize) -> Result<Trial, Abort> {
        let mut t = Trial {
            event: Event::Start.name().into(),
            rep,
            ..Default::default()
        };
        let t0 = self.fresh_start()?;
        let addrs = self.obs().addrs.clone();
        let served = wait_for(self.profile.secs("start_timeout", 60.0), 10, || {
            let o = self.obs();
            let firsts: Option<Vec<u64>> =
                addrs.iter().map(|&a| o.first_ok(a, t0, |_| true)).collect();
            firsts.map(|f| f.into_iter().max().unwrap_or(t0))
        })?;
        let o = self.obs();
        t.per_addr = addrs
            .iter()
            .map(|&a| {
                (
                    a.to_string(),
                    o.first_ok(a, t0, |_| true).map(|x| secs(t0, x)),
                )
            })
            .collect();
        drop(o);
        t.value = served.map(|x| secs(t0, x));
        let ready = self.wait_ready(if served.is_some() {
            self.profile.secs("ready_timeout", 60.0)
        } else {
            1.0
        })?;
        if let Err(why) = ready {
            t.notes.push(format!("not healthy after the start: {why}"));
        }
        let (n, d) = self.obs().doubled(t0, now_ns());
        (t.samples, t.doubled) = (n, d);
        Ok(t)
    }

    /// Picks the victim for `event` from the latest sample.
    fn victim(&self, event: Event, rep: usize, leader: Option<usize>) -> Result<usize, String> {
        let live = self.live_nodes();
        let o = self.obs();
        let holders: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&n| !o.held_by(n).is_empty())
            .collect();
        if event == Event::Kill9Leader {
            let l = leader.ok_or("no leader known")?;
            return if holders.contains(&l) {
                Ok(l)
            } else {
                Err(format!("the leader n{l} holds no address"))
            };
        }
        let others: Vec<usize> = holders
            .iter()
            .copied()
            .filter(|&n| Some(n) != leader)
            .collect();
        let pool = if others.is_empty() { &holders } else { &others };
        pool.get(rep % pool.len().max(1))
            .copied()
            .ok_or_else(|| "no node holds an address".into())
    }

    fn inject(&mut self, event: Event, v: usize) -> Result<(), String> {
        match event {
            Event::Kill9 | Event::Kill9Leader => {
                for p in self.sys.daemon_pids(&self.ctx, v) {
                    procs::signal(p, libc::SIGKILL);
                }
                self.live[v] = false;
            }
            Event::Sigstop => {
                let pids = self.sys.daemon_pids(&self.ctx, v);
                for &p in &pids {
                    procs::signal(p, libc::SIGSTOP);
                }
                self.stopped = pids;
            }
            Event::Cut => {
                lab(self.opts, &["cut", &v.to_string()])?;
                self.cut = Some(v);
            }
            Event::Stop => {
                self.sys.stop(&self.ctx, v)?;
                self.live[v] = false;
            }
            Event::Start | Event::Return => unreachable!("not a fault"),
        }
        Ok(())
    }

    /// One fault trial (for `kill9`, also the node-return trial that follows it).
    fn fault(&mut self, event: Event, rep: usize) -> Result<Vec<Trial>, Abort> {
        let mut t = Trial {
            event: event.name().into(),
            rep,
            ..Default::default()
        };
        if let Err(why) = self.wait_ready(self.profile.secs("ready_timeout", 60.0))? {
            t.notes
                .push(format!("not healthy before the fault ({why}); restarted"));
            self.fresh_start()?;
            if let Err(why) = self.wait_ready(self.profile.secs("ready_timeout", 60.0))? {
                t.notes
                    .push(format!("still not healthy ({why}): trial skipped"));
                return Ok(vec![t]);
            }
        }
        pause(self.profile.secs("settle", 1.0))?;
        self.obs()
            .forget_before(now_ns().saturating_sub(5_000_000_000));
        let leader = if self.sys.has_leader() {
            self.sys.leader(&self.ctx, &self.live_nodes())
        } else {
            None
        };
        t.leader = leader;
        let v = match self.victim(event, rep, leader) {
            Ok(v) => v,
            Err(why) => {
                t.notes.push(format!("no victim: {why}"));
                return Ok(vec![t]);
            }
        };
        t.victim = Some(v);
        let affected: Vec<usize> = self.obs().held_by(v);
        let t0 = now_ns();
        self.inject(event, v)?;
        let vname = Self::name(v);
        let addrs: Vec<_> = affected.iter().map(|&k| self.obs().addrs[k]).collect();
        let moved = |o: &Observations, a| o.first_ok(a, t0, |b| b != vname);
        let done = wait_for(self.profile.secs("failover_timeout", 60.0), 10, || {
            let o = self.obs();
            addrs.iter().all(|&a| moved(&o, a).is_some()).then_some(())
        })?;
        {
            let o = self.obs();
            t.per_addr = addrs
                .iter()
                .map(|&a| (a.to_string(), moved(&o, a).map(|x| secs(t0, x))))
                .collect();
        }
        t.value = done.and_then(|_| t.per_addr.iter().filter_map(|p| p.1).reduce(f64::max));
        if done.is_none() {
            t.notes.push(format!(
                "failover incomplete; the system's view: {}",
                self.sys.address_view(&self.ctx, &self.live_nodes())
            ));
        }
        pause(self.opts.hold_secs)?;
        let stale: Vec<String> = {
            let o = self.obs();
            o.held_by(v)
                .iter()
                .map(|&k| o.addrs[k].to_string())
                .collect()
        };
        t.stale = Some(stale);
        // Restore the node.
        let mut trials = Vec::new();
        match event {
            Event::Kill9 | Event::Kill9Leader | Event::Stop => {
                self.sys.reap(&self.ctx, v);
                let removed = self.clear_addresses(v);
                if !removed.is_empty() {
                    t.notes.push(format!(
                        "removed {} stale before restart",
                        removed.join(" ")
                    ));
                }
                let t1 = now_ns();
                self.start_node(v)?;
                if event == Event::Kill9 {
                    let back = wait_for(self.profile.secs("ready_timeout", 60.0), 10, || {
                        let o = self.obs();
                        let answered = o
                            .addrs
                            .iter()
                            .filter_map(|&a| o.first_ok(a, t1, |b| b == vname))
                            .min();
                        answered.filter(|_| !o.held_by(v).is_empty())
                    })?;
                    let (n, d) = self.obs().doubled(t0, t1);
                    (t.samples, t.doubled) = (n, d);
                    let mut r = Trial {
                        event: Event::Return.name().into(),
                        rep,
                        victim: Some(v),
                        leader,
                        value: back.map(|x| secs(t1, x)),
                        ..Default::default()
                    };
                    if let Err(why) = self.wait_ready(self.profile.secs("ready_timeout", 60.0))? {
                        r.notes
                            .push(format!("not healthy after the return: {why}; restarted"));
                        self.fresh_start()?;
                    }
                    let (n, d) = self.obs().doubled(t1, now_ns());
                    (r.samples, r.doubled) = (n, d);
                    trials.push(t);
                    trials.push(r);
                    return Ok(trials);
                }
            }
            Event::Sigstop => {
                for p in self.stopped.drain(..) {
                    procs::signal(p, libc::SIGCONT);
                }
                // pharos's guardian kills a daemon that stays frozen past its timeout (a thawed
                // daemon must not act on decisions made before the freeze): restart it, as its
                // supervisor would.
                if self.sys.daemon_pids(&self.ctx, v).is_empty() {
                    t.notes
                        .push("the daemon did not survive the stop; restarted".into());
                    self.sys.reap(&self.ctx, v);
                    self.start_node(v)?;
                }
            }
            Event::Cut => {
                lab(self.opts, &["heal", &v.to_string()])?;
                self.cut = None;
            }
            Event::Start | Event::Return => unreachable!("not a fault"),
        }
        if let Err(why) = self.wait_ready(self.profile.secs("ready_timeout", 60.0))? {
            t.notes
                .push(format!("not healthy after the restore: {why}; restarted"));
            self.fresh_start()?;
        }
        let (n, d) = self.obs().doubled(t0, now_ns());
        (t.samples, t.doubled) = (n, d);
        trials.push(t);
        Ok(trials)
    }

    /// RSS now, and CPU over `s` idle seconds, of every process of the system on each node
    /// (every process in the node's namespace but our banner responder).
    fn footprint(&self, s: f64) -> Result<Vec<NodeFootprint>, Abort> {
        let banners: Vec<i32> = self
            .helpers
            .as_ref()
            .map(|h| h.banner_pids.clone())
            .unwrap_or_default();
        let snap = |i: usize| -> HashMap<i32, ProcInfo> {
            netns::pids(&self.ctx.ns(i))
                .unwrap_or_default()
                .into_iter()
                .filter(|p| !banners.contains(p))
                .filter_map(|p| netns::proc_info(p).map(|info| (p, info)))
                .collect()
        };
        let before: Vec<_> = (0..self.opts.nodes).map(snap).collect();
        let t0 = now_ns();
        pause(s)?;
        let dt = secs(t0, now_ns()).max(1e-9);
        let hz = netns::ticks_per_second() as f64;
        let mut out = Vec::new();
        for (i, b) in before.iter().enumerate() {
            let after = snap(i);
            let mut f = NodeFootprint {
                node: i,
                ..Default::default()
            };
            let mut ticks = 0u64;
            for (pid, a) in &after {
                let prev = b.get(pid).filter(|p| p.comm == a.comm);
                let (t, c) = prev.map_or((0, 0), |p| (p.ticks, p.child_ticks));
                ticks += a.ticks.saturating_sub(t) + a.child_ticks.saturating_sub(c);
                if prev.is_some() {
                    f.rss_kb += a.rss_kb;
                    f.procs.push((a.comm.clone(), a.rss_kb));
                }
            }
            f.procs.sort();
            f.cpu_pct = 100.0 * ticks as f64 / hz / dt;
            out.push(f);
        }
        Ok(out)
    }

    fn execute(&mut self, result: &mut ProfileResult) -> Result<(), Abort> {
        self.setup()?;
        self.sys.prepare(&self.ctx)?;
        result.settings = self.sys.settings(&self.ctx);
        let first = self.cold_start(0)?;
        report_trial(self.profile, &first);
        let hosted = first.value.is_some();
        let wanted_start = self.opts.events.contains(&Event::Start);
        if !hosted {
            let health = match self.sys.healthy(&self.ctx, &self.live_nodes()) {
                Ok(()) => "every node OK".to_string(),
                Err(e) => format!("cluster not healthy ({e})"),
            };
            result.status = format!(
                "not hosted: {health}, but {} of {} addresses never answered within {} s; the \
                 system's view: {}",
                first.per_addr.iter().filter(|p| p.1.is_none()).count(),
                self.opts.addresses,
                self.profile.secs("start_timeout", 60.0),
                self.sys.address_view(&self.ctx, &self.live_nodes())
            );
            println!("  {}: {}", self.profile.name, result.status);
        }
        if wanted_start || !hosted {
            result.trials.push(first);
        }
        if self.opts.idle_secs > 0.0 {
            pause(self.profile.secs("settle", 1.0))?;
            result.footprint = self.footprint(self.opts.idle_secs)?;
            result.idle_secs = self.opts.idle_secs;
        }
        if !hosted {
            return Ok(());
        }
        if wanted_start {
            for rep in 1..self.opts.reps {
                let t = self.cold_start(rep)?;
                report_trial(self.profile, &t);
                result.trials.push(t);
            }
        }
        for &e in &self.opts.events {
            if matches!(e, Event::Start)
                || (e == Event::Return && self.opts.events.contains(&Event::Kill9))
            {
                continue;
            }
            if e == Event::Kill9Leader && !self.sys.has_leader() {
                continue;
            }
            let fault = if e == Event::Return { Event::Kill9 } else { e };
            for rep in 0..self.opts.reps {
                for t in self.fault(fault, rep)? {
                    report_trial(self.profile, &t);
                    result.trials.push(t);
                }
            }
        }
        Ok(())
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.reap_all();
        self.sys.collect_logs(&self.ctx);
        self.helpers = None;
        if self.lab_up {
            if let Err(e) = lab(self.opts, &["destroy"]) {
                eprintln!("failover: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.ctx.state);
    }
}

fn report_trial(p: &Profile, t: &Trial) {
    let v = t
        .value
        .map_or("not completed".to_string(), |x| format!("{x:.3} s"));
    let victim = t.victim.map_or("-".into(), |v| format!("n{v}"));
    let stale = t
        .stale
        .as_ref()
        .filter(|s| !s.is_empty())
        .map_or(String::new(), |s| {
            format!(", stale on victim: {}", s.join(" "))
        });
    println!(
        "  {} {} #{}: {v} (victim {victim}), {} of {} samples on two nodes{stale}{}",
        p.name,
        t.event,
        t.rep + 1,
        t.doubled,
        t.samples,
        if t.notes.is_empty() {
            String::new()
        } else {
            format!(" [{}]", t.notes.join("; "))
        }
    );
}

/// Runs one profile; the result says how far it got.
pub fn run_profile(opts: &Options, profile: &Profile) -> ProfileResult {
    let mut result = ProfileResult {
        profile: Some(profile.clone()),
        status: "ok".into(),
        ..Default::default()
    };
    println!("== {} ({})", profile.label, profile.name);
    let mut run = match Run::new(opts, profile) {
        Ok(r) => r,
        Err(e) => {
            result.status = format!("failed: {e}");
            return result;
        }
    };
    let outcome = run.execute(&mut result);
    {
        let o = run.obs();
        (result.samples_seen, result.doubled_seen) = (o.samples_seen, o.doubled_seen);
    }
    match outcome {
        Ok(()) => {}
        Err(Abort::Interrupted) => result.status = "interrupted".into(),
        Err(Abort::Error(e)) => {
            println!("  {}: failed: {e}", profile.name);
            result.status = format!("failed: {e}");
        }
    }
    drop(run);
    result
}

/// Whether a signal asked the run to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
