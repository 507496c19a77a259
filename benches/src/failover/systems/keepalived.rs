//! keepalived (Debian's `keepalived`): VRRPv3, one VRRP instance per public address, unicast
//! peers, preemption on (its default) with no delay; address K prefers node K mod N, so the
//! addresses spread like the other systems'. Each node runs `keepalived -n -P` (parent plus VRRP
//! child) with its own PID files; a keepalived killed with -9 leaves them behind and a new one
//! refuses to start, so they are removed before each start (FINDINGS gotcha 15).

use super::{mkdir, write, Ctx, System};
use crate::failover::procs;
use crate::failover::profile::Profile;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;

/// The keepalived runner.
pub struct Keepalived {
    advert_int: String,
    children: HashMap<usize, Child>,
}

impl Keepalived {
    /// The runner for a `system = keepalived` profile.
    pub fn new(p: &Profile) -> Result<Self, String> {
        let a = p.option("advert_int").unwrap_or("1").to_string();
        match a.parse::<f64>() {
            Ok(x) if (0.01..=255.0).contains(&x) => {}
            _ => return Err(format!("{}: advert_int must be 0.01..255 seconds", p.name)),
        }
        Ok(Keepalived {
            advert_int: a,
            children: HashMap::new(),
        })
    }

    fn conf_path(ctx: &Ctx, i: usize) -> PathBuf {
        ctx.state.join(format!("n{i}.conf"))
    }

    fn pid_files(ctx: &Ctx, i: usize) -> [PathBuf; 2] {
        [
            ctx.state.join(format!("n{i}.vrrp.pid")),
            ctx.state.join(format!("n{i}.pid")),
        ]
    }

    /// Priority of node `i` for address `k`: the preferred node k mod N highest, then the
    /// others in ring order.
    pub fn priority(nodes: usize, i: usize, k: usize) -> u32 {
        let rank = (i + nodes - k % nodes) % nodes;
        let step = (240 / nodes.max(1)).max(1) as u32;
        250u32.saturating_sub(step * rank as u32).max(1)
    }

    /// Node `i`'s keepalived.conf.
    pub fn conf(&self, ctx: &Ctx, i: usize) -> String {
        let mut s = format!(
            "global_defs {{\n    router_id {}\n    vrrp_version 3\n}}\n",
            ctx.ns(i)
        );
        let peers: String = (0..ctx.nodes)
            .filter(|&j| j != i)
            .map(|j| format!("        {}\n", ctx.node_ips[j]))
            .collect();
        for (k, a) in ctx.public.iter().enumerate() {
            s.push_str(&format!(
                "\nvrrp_instance VI_{k} {{\n    state BACKUP\n    interface eth0\n\
                 \x20   virtual_router_id {}\n    priority {}\n    advert_int {}\n\
                 \x20   unicast_src_ip {}\n    unicast_peer {{\n{peers}    }}\n\
                 \x20   virtual_ipaddress {{\n        {a}/{} dev eth0\n    }}\n}}\n",
                k + 1,
                Self::priority(ctx.nodes, i, k),
                self.advert_int,
                ctx.node_ips[i],
                ctx.mask_bits,
            ));
        }
        s
    }
}

impl System for Keepalived {
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&ctx.state);
        mkdir(&ctx.state)?;
        for i in 0..ctx.nodes {
            write(&Self::conf_path(ctx, i), &self.conf(ctx, i))?;
        }
        let mut t = ctx.in_ns(0, "/usr/sbin/keepalived");
        t.arg("-t").arg("-f").arg(Self::conf_path(ctx, 0));
        let r = ctx.run(&mut t, std::time::Duration::from_secs(10))?;
        if !r.ok() {
            return Err(format!(
                "keepalived -t rejects the configuration: {}",
                r.why()
            ));
        }
        Ok(())
    }

    fn settings(&self, ctx: &Ctx) -> String {
        format!(
            "keepalived -n -l -D -G -P -f nI.conf -p nI.pid -r nI.vrrp.pid (one per node)\n\
             n0.conf:\n{}",
            self.conf(ctx, 0)
        )
    }

    fn start(&mut self, ctx: &Ctx, i: usize) -> Result<(), String> {
        self.reap(ctx, i);
        let [vrrp, parent] = Self::pid_files(ctx, i);
        let _ = std::fs::remove_file(&vrrp);
        let _ = std::fs::remove_file(&parent);
        let log_path = ctx.logs.join(format!("n{i}.log"));
        let log = || procs::log_file(&log_path).map_err(|e| e.to_string());
        let mut c = ctx.in_ns(i, "/usr/sbin/keepalived");
        c.args(["-n", "-l", "-D", "-G", "-P", "-f"])
            .arg(Self::conf_path(ctx, i))
            .arg("-p")
            .arg(&parent)
            .arg("-r")
            .arg(&vrrp)
            .stdout(log()?)
            .stderr(log()?);
        let child = procs::spawn(&mut c, &ctx.pids).map_err(|e| format!("keepalived: {e}"))?;
        self.children.insert(i, child);
        // The VRRP child's PID, for kill -9 and the PID file.
        for _ in 0..200 {
            if let Some(&p) = self.daemon_pids(ctx, i).first() {
                if self.daemon_pids(ctx, i).len() == 2 {
                    ctx.pids.record(p);
                    return Ok(());
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(format!("keepalived on node {i}: no VRRP child after 2 s"))
    }

    fn daemon_pids(&self, ctx: &Ctx, i: usize) -> Vec<i32> {
        let Some(parent) = self.children.get(&i).map(|c| c.id() as i32) else {
            return Vec::new();
        };
        let mut v: Vec<i32> = std::fs::read_to_string(&Self::pid_files(ctx, i)[0])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|&p| p != parent && procs::alive(p))
            .into_iter()
            .collect();
        // The VRRP child first: killed first, it cannot send a priority-0 advert.
        if procs::alive(parent) {
            v.push(parent);
        }
        v
    }

    fn stop(&mut self, ctx: &Ctx, i: usize) -> Result<(), String> {
        if let Some(&parent) = self.daemon_pids(ctx, i).last() {
            procs::signal(parent, libc::SIGTERM);
        }
        Ok(())
    }

    fn reap(&mut self, ctx: &Ctx, i: usize) {
        for p in self.daemon_pids(ctx, i) {
            procs::signal(p, libc::SIGCONT);
            procs::signal(p, libc::SIGKILL);
        }
        if let Some(mut c) = self.children.remove(&i) {
            procs::kill_child(&mut c);
        }
    }

    fn has_leader(&self) -> bool {
        false
    }

    fn leader(&self, _ctx: &Ctx, _live: &[usize]) -> Option<usize> {
        None
    }

    fn healthy(&self, ctx: &Ctx, live: &[usize]) -> Result<(), String> {
        for &i in live {
            if self.daemon_pids(ctx, i).len() != 2 {
                return Err(format!("keepalived on node {i} is not running"));
            }
        }
        Ok(())
    }

    fn address_view(&self, _ctx: &Ctx, _live: &[usize]) -> String {
        "keepalived has no cluster view (the kernel's addresses are the only one)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::procs::PidLog;
    use std::net::Ipv4Addr;

    #[test]
    fn each_address_prefers_its_own_node_with_unicast_peers() {
        let ctx = Ctx {
            prefix: "x".into(),
            nodes: 3,
            node_ips: (1..=3).map(|d| Ipv4Addr::new(10, 0, 0, d)).collect(),
            public: (100..104).map(|d| Ipv4Addr::new(10, 0, 0, d)).collect(),
            mask_bits: 24,
            state: "/nonexistent".into(),
            logs: "/nonexistent".into(),
            bin_dir: "/nonexistent".into(),
            pids: PidLog("/nonexistent".into()),
        };
        // Address k: node k mod 3 first, then the next ones in ring order.
        let prio = |i, k| Keepalived::priority(3, i, k);
        assert!(prio(0, 0) > prio(1, 0) && prio(1, 0) > prio(2, 0));
        assert!(prio(1, 1) > prio(2, 1) && prio(2, 1) > prio(0, 1));
        assert!(prio(0, 3) > prio(1, 3));
        assert!((0..3).all(|i| (1..=254).contains(&prio(i, 0))));
        let p = Profile::parse("k", "system = keepalived\nadvert_int = 0.01\n").unwrap();
        let conf = Keepalived::new(&p).unwrap().conf(&ctx, 1);
        assert_eq!(conf.matches("vrrp_instance").count(), 4);
        assert!(conf.contains("unicast_src_ip 10.0.0.2"));
        assert!(conf.contains("        10.0.0.1\n        10.0.0.3\n"));
        assert!(
            !conf.contains("        10.0.0.2\n"),
            "a node is not its own peer"
        );
        assert!(conf.contains("advert_int 0.01") && conf.contains("10.0.0.103/24 dev eth0"));
        assert!(!conf.contains("nopreempt") && !conf.contains("preempt_delay"));
        let bad = Profile::parse("k", "system = keepalived\nadvert_int = 0.001\n").unwrap();
        assert!(Keepalived::new(&bad).is_err());
    }
}
