//! pharos: one `pharosd` per node namespace, with the contract of DESIGN.md
//! (`--nodes`, `--public-addresses`, `--tunable`), asked through `pharos --json status|ip`.

use super::{mkdir, nodes_file, public_addresses_file, write, Ctx, System};
use crate::failover::procs;
use crate::failover::profile::Profile;
use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

/// The pharos runner.
pub struct Pharos {
    tunables: Vec<(String, String)>,
    children: HashMap<usize, Child>,
}

impl Pharos {
    /// The runner for a `system = pharos` profile.
    pub fn new(p: &Profile) -> Self {
        Pharos {
            tunables: p.tunables.clone(),
            children: HashMap::new(),
        }
    }

    fn socket(ctx: &Ctx, i: usize) -> std::path::PathBuf {
        ctx.state.join(format!("n{i}.sock"))
    }

    fn args(&self, ctx: &Ctx, i: usize) -> Vec<String> {
        let mut a = vec![
            "--nodes".into(),
            ctx.state.join("nodes").display().to_string(),
            "--public-addresses".into(),
            ctx.state.join("public_addresses").display().to_string(),
            "--node-address".into(),
            ctx.node_ips[i].to_string(),
            "--socket".into(),
            Self::socket(ctx, i).display().to_string(),
            "--cluster-lock".into(),
            format!("fcntl:{}", ctx.state.join("cluster.lock").display()),
        ];
        for (k, v) in &self.tunables {
            a.push("--tunable".into());
            a.push(format!("{k}={v}"));
        }
        a
    }

    /// `pharos --json ARGS` against node `i`: the parsed JSON, or a one-line reason.
    fn cli(&self, ctx: &Ctx, i: usize, args: &[&str]) -> Result<serde_json::Value, String> {
        let mut c = std::process::Command::new(ctx.bin_dir.join("pharos"));
        c.arg("--socket")
            .arg(Self::socket(ctx, i))
            .arg("--json")
            .args(args);
        let r = ctx.run(&mut c, Duration::from_secs(3))?;
        if !r.ok() {
            return Err(format!("pharos {}: {}", args.join(" "), r.why()));
        }
        serde_json::from_str(r.stdout.trim())
            .map_err(|e| format!("pharos {}: not JSON ({e})", args.join(" ")))
    }
}

impl System for Pharos {
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        mkdir(&ctx.state)?;
        write(&ctx.state.join("nodes"), &nodes_file(ctx))?;
        write(
            &ctx.state.join("public_addresses"),
            &public_addresses_file(ctx),
        )
    }

    fn settings(&self, ctx: &Ctx) -> String {
        format!(
            "pharosd {} (node 0; the others differ in --node-address and --socket)\n\
             nodes:\n{}public_addresses:\n{}",
            self.args(ctx, 0).join(" "),
            nodes_file(ctx),
            public_addresses_file(ctx)
        )
    }

    fn start(&mut self, ctx: &Ctx, i: usize) -> Result<(), String> {
        self.reap(ctx, i);
        let log =
            procs::log_file(&ctx.logs.join(format!("n{i}.log"))).map_err(|e| e.to_string())?;
        let mut c = ctx.in_ns(i, &ctx.bin_dir.join("pharosd").display().to_string());
        c.args(self.args(ctx, i))
            .env(
                "RUST_LOG",
                std::env::var("PHAROS_LOG").unwrap_or("info".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let child = procs::spawn(&mut c, &ctx.pids).map_err(|e| format!("pharosd: {e}"))?;
        self.children.insert(i, child);
        Ok(())
    }

    fn daemon_pids(&self, _ctx: &Ctx, i: usize) -> Vec<i32> {
        self.children
            .get(&i)
            .map(|c| c.id() as i32)
            .filter(|&p| procs::alive(p))
            .into_iter()
            .collect()
    }

    fn stop(&mut self, ctx: &Ctx, i: usize) -> Result<(), String> {
        // DESIGN.md: SIGTERM releases the public addresses, says goodbye and exits 0.
        for p in self.daemon_pids(ctx, i) {
            procs::signal(p, libc::SIGTERM);
        }
        Ok(())
    }

    fn reap(&mut self, ctx: &Ctx, i: usize) {
        if let Some(mut c) = self.children.remove(&i) {
            procs::kill_child(&mut c);
        }
        let _ = std::fs::remove_file(Self::socket(ctx, i));
    }

    fn has_leader(&self) -> bool {
        true
    }

    fn leader(&self, ctx: &Ctx, live: &[usize]) -> Option<usize> {
        let &i = live.first()?;
        let s = self.cli(ctx, i, &["status"]).ok()?;
        let r = s.get("recmaster")?.as_i64()?;
        usize::try_from(r).ok()
    }

    fn healthy(&self, ctx: &Ctx, live: &[usize]) -> Result<(), String> {
        for &i in live {
            let s = self.cli(ctx, i, &["status"])?;
            let rm = s.get("recmaster").and_then(|v| v.as_i64()).unwrap_or(-1);
            if rm < 0 || !live.contains(&(rm as usize)) {
                return Err(format!("node {i}: no recovery master among the live nodes"));
            }
            if s.get("recovery_mode").and_then(|v| v.as_str()) != Some("NORMAL") {
                return Err(format!("node {i}: in recovery"));
            }
            let nodes = s
                .get("nodes")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            for &j in live {
                let flags = nodes
                    .iter()
                    .find(|n| n.get("pnn").and_then(|p| p.as_u64()) == Some(j as u64))
                    .and_then(|n| n.get("flags"))
                    .and_then(|f| f.as_array());
                if flags.is_none_or(|f| !f.is_empty()) {
                    return Err(format!("node {i} does not see node {j} OK"));
                }
            }
        }
        Ok(())
    }

    fn allocation(
        &self,
        ctx: &Ctx,
        live: &[usize],
    ) -> Option<Result<Vec<(std::net::Ipv4Addr, i64)>, String>> {
        let &i = live.first()?;
        Some(
            self.cli(ctx, i, &["ip"])
                .and_then(|v| super::parse_pharos_ip(&v)),
        )
    }

    fn address_view(&self, ctx: &Ctx, live: &[usize]) -> String {
        let Some(&i) = live.first() else {
            return "no live node".into();
        };
        match self.cli(ctx, i, &["ip"]) {
            Ok(v) => v.to_string(),
            Err(e) => e,
        }
    }
}
