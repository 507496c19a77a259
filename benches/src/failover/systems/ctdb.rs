//! CTDB (Debian's `ctdb`): one real `ctdbd` per node namespace in normal mode. Each runs in a
//! private mount namespace where the node's own directories are bind-mounted over the paths
//! compiled into the package (/etc/ctdb, /var/lib/ctdb, /var/log/ctdb, /run/ctdb) and one shared
//! directory on /mnt holds the cluster lock. CTDB_TEST_MODE would be simpler but turns off the
//! public-IP check, which breaks takeover (FINDINGS-ctdb-keepalived.md, gotcha 1); it is used
//! only for the `ctdb` CLI's path lookup.

use super::{mkdir, nodes_file, public_addresses_file, write, Ctx, System};
use crate::failover::netns;
use crate::failover::procs;
use crate::failover::profile::Profile;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

const SCRIPTS: [&str; 4] = ["00.ctdb", "01.reclock", "05.system", "10.interface"];
const COPIED: [&str; 4] = [
    "functions",
    "notify.sh",
    "debug-hung-script.sh",
    "script.options",
];

/// The CTDB runner.
pub struct Ctdb {
    tunables: Vec<(String, String)>,
    leader_timeout: String,
    /// `ctdb shutdown` commands still running, by node.
    stopping: HashMap<usize, Child>,
}

impl Ctdb {
    /// The runner for a `system = ctdb` profile.
    pub fn new(p: &Profile) -> Result<Self, String> {
        let lt = p.option("leader_timeout").unwrap_or("5").to_string();
        if lt.parse::<u32>().is_err() {
            return Err(format!("{}: leader_timeout must be whole seconds", p.name));
        }
        Ok(Ctdb {
            tunables: p.tunables.clone(),
            leader_timeout: lt,
            stopping: HashMap::new(),
        })
    }

    fn base(ctx: &Ctx, i: usize) -> PathBuf {
        ctx.state.join(format!("n{i}"))
    }

    fn conf(&self) -> String {
        format!(
            "[logging]\n\tlocation = file:/var/log/ctdb/log.ctdb\n\tlog level = INFO\n\n\
             [cluster]\n\t# /mnt is the shared cluster file system (one directory for all nodes)\n\
             \tcluster lock = !/usr/libexec/ctdb/ctdb_mutex_fcntl_helper /mnt/cluster.lock\n\
             \tleader timeout = {}\n",
            self.leader_timeout
        )
    }

    fn tunables_file(&self) -> String {
        self.tunables
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }

    /// The `ctdb` CLI against node `i`, run in its namespace.
    fn cli(&self, ctx: &Ctx, i: usize, args: &[&str]) -> Command {
        let b = Self::base(ctx, i);
        let mut c = ctx.in_ns(i, "/usr/bin/ctdb");
        c.args(args)
            .env("CTDB_TEST_MODE", "yes")
            .env("CTDB_BASE", &b)
            .env("CTDB_SOCKET", b.join("run/ctdbd.socket"));
        c
    }

    fn ask(&self, ctx: &Ctx, i: usize, args: &[&str]) -> Result<String, String> {
        let r = ctx.run(&mut self.cli(ctx, i, args), Duration::from_secs(5))?;
        if r.ok() {
            Ok(r.stdout)
        } else {
            Err(format!("ctdb {} on node {i}: {}", args.join(" "), r.why()))
        }
    }

    fn ctdbd_pid(ctx: &Ctx, i: usize) -> Option<i32> {
        let p = std::fs::read_to_string(Self::base(ctx, i).join("run/ctdbd.pid")).ok()?;
        let pid = p.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "ctdbd" && procs::alive(pid)).then_some(pid)
    }

    /// Every ctdb process in node `i`'s namespace (ctdbd, ctdb-eventd, ctdb-recoverd, the
    /// lock helpers, event scripts' ctdb calls).
    fn all_pids(ctx: &Ctx, i: usize) -> Vec<i32> {
        netns::pids(&ctx.ns(i))
            .unwrap_or_default()
            .into_iter()
            .filter(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.starts_with("ctdb"))
            })
            .collect()
    }
}

impl System for Ctdb {
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&ctx.state);
        mkdir(&ctx.state.join("shared"))?;
        for i in 0..ctx.nodes {
            let b = Self::base(ctx, i);
            for d in [
                "run",
                "var/scripts",
                "var/volatile",
                "var/persistent",
                "var/state",
                "log",
                "events/legacy",
                "events/notification",
            ] {
                mkdir(&b.join(d))?;
            }
            write(&b.join("nodes"), &nodes_file(ctx))?;
            write(&b.join("public_addresses"), &public_addresses_file(ctx))?;
            write(&b.join("ctdb.conf"), &self.conf())?;
            write(&b.join("ctdb.tunables"), &self.tunables_file())?;
            for f in COPIED {
                std::fs::copy(PathBuf::from("/etc/ctdb").join(f), b.join(f))
                    .map_err(|e| format!("/etc/ctdb/{f}: {e} (is the ctdb package installed?)"))?;
            }
            // Enabled the way `ctdb event script enable legacy X` does it: a symlink.
            for s in SCRIPTS {
                let target = format!("/usr/share/ctdb/events/legacy/{s}.script");
                std::os::unix::fs::symlink(&target, b.join(format!("events/legacy/{s}.script")))
                    .map_err(|e| format!("{target}: {e}"))?;
            }
        }
        Ok(())
    }

    fn settings(&self, ctx: &Ctx) -> String {
        format!(
            "ctdbd (normal mode, one private mount namespace per node)\n\
             ctdb.conf:\n{}ctdb.tunables:\n{}nodes:\n{}public_addresses:\n{}\
             event scripts: {}\n",
            self.conf(),
            if self.tunables.is_empty() {
                "(empty: CTDB's defaults)\n".to_string()
            } else {
                self.tunables_file()
            },
            nodes_file(ctx),
            public_addresses_file(ctx),
            SCRIPTS.join(" ")
        )
    }

    fn start(&mut self, ctx: &Ctx, i: usize) -> Result<(), String> {
        self.reap(ctx, i);
        let b = Self::base(ctx, i);
        let _ = std::fs::remove_file(b.join("run/ctdbd.pid"));
        let shared = ctx.state.join("shared");
        let script = format!(
            "mount --bind '{b}' /etc/ctdb\n\
             mount --bind '{b}/var' /var/lib/ctdb\n\
             mount --bind '{b}/log' /var/log/ctdb\n\
             mount -t tmpfs -o size=16m,mode=755 pforun /run\n\
             mkdir -p /run/ctdb /run/lock\n\
             mount --bind '{b}/run' /run/ctdb\n\
             mount --bind '{s}' /mnt\n\
             exec /usr/sbin/ctdbd",
            b = b.display(),
            s = shared.display()
        );
        let mut c = ctx.in_ns(i, "unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-ec",
            &script,
        ]);
        // ctdbd forks into the background; the command returns once it has.
        let r = ctx.run(&mut c, Duration::from_secs(20))?;
        if !r.ok() {
            return Err(format!("ctdbd on node {i}: {}", r.why()));
        }
        for _ in 0..200 {
            if let Some(p) = Self::ctdbd_pid(ctx, i) {
                ctx.pids.record(p);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("ctdbd on node {i} wrote no PID file"))
    }

    fn daemon_pids(&self, ctx: &Ctx, i: usize) -> Vec<i32> {
        Self::ctdbd_pid(ctx, i).into_iter().collect()
    }

    fn stop(&mut self, ctx: &Ctx, i: usize) -> Result<(), String> {
        // What the packaged service runs as ExecStop (SIGTERM is no graceful stop for ctdbd:
        // FINDINGS gotcha 7).
        let mut c = self.cli(ctx, i, &["shutdown"]);
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let child = procs::spawn(&mut c, &ctx.pids).map_err(|e| format!("ctdb shutdown: {e}"))?;
        self.stopping.insert(i, child);
        Ok(())
    }

    fn reap(&mut self, ctx: &Ctx, i: usize) {
        if let Some(mut c) = self.stopping.remove(&i) {
            procs::kill_child(&mut c);
        }
        for _ in 0..100 {
            let left = Self::all_pids(ctx, i);
            if left.is_empty() {
                return;
            }
            for p in left {
                procs::signal(p, libc::SIGCONT);
                procs::signal(p, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn has_leader(&self) -> bool {
        true
    }

    fn leader(&self, ctx: &Ctx, live: &[usize]) -> Option<usize> {
        let &i = live.first()?;
        self.ask(ctx, i, &["leader"]).ok()?.trim().parse().ok()
    }

    fn healthy(&self, ctx: &Ctx, live: &[usize]) -> Result<(), String> {
        let &q = live.first().ok_or("no live node")?;
        let out = self.ask(ctx, q, &["-X", "status"])?;
        // |Node|IP|Disconnected|Unknown|Banned|Disabled|Unhealthy|Stopped|Inactive|...|
        for &i in live {
            let row = out.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.trim().trim_matches('|').split('|').collect();
                (f.first() == Some(&i.to_string().as_str())).then_some(f)
            });
            match row {
                Some(f) if f.len() >= 10 && f[2..10].iter().all(|x| *x == "0") => {}
                Some(f) => return Err(format!("node {i} is not OK: {}", f.join("|"))),
                None => return Err(format!("node {i} missing from ctdb status")),
            }
        }
        Ok(())
    }

    fn address_view(&self, ctx: &Ctx, live: &[usize]) -> String {
        match live.first() {
            Some(&i) => self
                .ask(ctx, i, &["-X", "ip"])
                .unwrap_or_else(|e| e)
                .replace('\n', " "),
            None => "no live node".into(),
        }
    }

    fn allocation(
        &self,
        ctx: &Ctx,
        live: &[usize],
    ) -> Option<Result<Vec<(std::net::Ipv4Addr, i64)>, String>> {
        let &i = live.first()?;
        Some(
            self.ask(ctx, i, &["-X", "ip"])
                .and_then(|t| super::parse_ctdb_ip(&t)),
        )
    }

    fn collect_logs(&self, ctx: &Ctx) {
        for i in 0..ctx.nodes {
            let from = Self::base(ctx, i).join("log/log.ctdb");
            let _ = std::fs::copy(from, ctx.logs.join(format!("n{i}.log.ctdb")));
        }
    }
}
