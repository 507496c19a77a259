//! The systems under test, behind one trait: how to configure, start, kill, stop and ask each of
//! them. The driver does the rest (faults, probing, timing) identically for all.

mod ctdb;
mod keepalived;
mod pharos;

pub use ctdb::Ctdb;
pub use keepalived::Keepalived;
pub use pharos::Pharos;

use super::procs::{self, PidLog, Ran};
use super::profile::Profile;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// What every system needs to know about the lab and the run.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// Namespace prefix (`pfo`): nodes are `PREFIX-nI`.
    pub prefix: String,
    /// Number of nodes.
    pub nodes: usize,
    /// The lab's node addresses, by node.
    pub node_ips: Vec<Ipv4Addr>,
    /// The public addresses.
    pub public: Vec<Ipv4Addr>,
    /// Prefix length of the lab's subnet.
    pub mask_bits: u8,
    /// This system's scratch directory (removed at the end of the run).
    pub state: PathBuf,
    /// Where daemon logs go (kept with the results).
    pub logs: PathBuf,
    /// Directory of `pharosd` and `pharos`.
    pub bin_dir: PathBuf,
    /// The run's PID file.
    pub pids: PidLog,
}

impl Ctx {
    /// Node `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// `ip netns exec NS PROGRAM`: a command run inside node `i`'s namespace.
    pub fn in_ns(&self, i: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(i), program]);
        c
    }

    /// Runs a short command (a CLI query) with a timeout.
    pub fn run(&self, cmd: &mut Command, timeout: Duration) -> Result<Ran, String> {
        procs::run(cmd, timeout).map_err(|e| format!("{cmd:?}: {e}"))
    }
}

/// A system under test.
pub trait System {
    /// Writes the configuration of every node (a fresh state directory).
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String>;
    /// Every setting in force, as printed with the results (files as written, command lines).
    fn settings(&self, ctx: &Ctx) -> String;
    /// Starts node `i`'s daemon (returns once it is launched, not once it is ready).
    fn start(&mut self, ctx: &Ctx, i: usize) -> Result<(), String>;
    /// The daemon process(es) of node `i` that kill -9 and SIGSTOP are sent to, in order.
    fn daemon_pids(&self, ctx: &Ctx, i: usize) -> Vec<i32>;
    /// Starts the system's graceful stop of node `i` (returns at once).
    fn stop(&mut self, ctx: &Ctx, i: usize) -> Result<(), String>;
    /// Ends whatever is left of node `i`'s processes (by PID) and reaps them.
    fn reap(&mut self, ctx: &Ctx, i: usize);
    /// Whether the system has a leader (CTDB's leader, pharos's recovery master).
    fn has_leader(&self) -> bool;
    /// The current leader as seen by a node in `live`.
    fn leader(&self, ctx: &Ctx, live: &[usize]) -> Option<usize>;
    /// The system's own view says every node in `live` is healthy (addresses are checked by
    /// the driver, from the kernel and the probe).
    fn healthy(&self, ctx: &Ctx, live: &[usize]) -> Result<(), String>;
    /// The system's view of the public addresses (for messages), asked of a node in `live`.
    fn address_view(&self, ctx: &Ctx, live: &[usize]) -> String;
    /// Where the system believes each address is hosted (address, PNN; -1 unassigned), for
    /// the systems that say (CTDB, pharos); `None` for those that do not (keepalived).
    fn allocation(
        &self,
        _ctx: &Ctx,
        _live: &[usize],
    ) -> Option<Result<Vec<(Ipv4Addr, i64)>, String>> {
        None
    }
    /// Copies the system's own logs into `ctx.logs` (at the end of a run).
    fn collect_logs(&self, _ctx: &Ctx) {}
}

/// Parses `ctdb -X ip` (`|Public IP|Node|` then `|10.0.0.1|2|` rows).
pub fn parse_ctdb_ip(text: &str) -> Result<Vec<(Ipv4Addr, i64)>, String> {
    let mut v = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        match (
            f.first().and_then(|a| a.parse().ok()),
            f.get(1).and_then(|p| p.parse().ok()),
        ) {
            (Some(a), Some(p)) => v.push((a, p)),
            _ => return Err(format!("ctdb -X ip: unexpected line {line:?}")),
        }
    }
    Ok(v)
}

/// Parses `pharos --json ip` (DESIGN.md: `{"ips":[{"address":"10.0.0.1","pnn":1,...}]}`; an
/// address written with its `/BITS` is accepted too).
pub fn parse_pharos_ip(v: &serde_json::Value) -> Result<Vec<(Ipv4Addr, i64)>, String> {
    let ips = v
        .get("ips")
        .and_then(|x| x.as_array())
        .ok_or("pharos ip: no \"ips\" list")?;
    ips.iter()
        .map(|e| {
            let a = e.get("address").and_then(|a| a.as_str()).unwrap_or("");
            let a = a
                .split('/')
                .next()
                .unwrap_or("")
                .parse()
                .map_err(|_| format!("pharos ip: bad address in {e}"))?;
            let p = e
                .get("pnn")
                .and_then(|p| p.as_i64())
                .ok_or(format!("pharos ip: no pnn in {e}"))?;
            Ok((a, p))
        })
        .collect()
}

/// Builds the system of a profile.
pub fn for_profile(p: &Profile) -> Result<Box<dyn System>, String> {
    match p.system.as_str() {
        "pharos" => Ok(Box::new(Pharos::new(p))),
        "ctdb" => Ok(Box::new(Ctdb::new(p)?)),
        "keepalived" => Ok(Box::new(Keepalived::new(p)?)),
        s => Err(format!("unknown system {s}")),
    }
}

/// The CTDB-format public_addresses file for the lab (`ADDRESS/BITS eth0` per line), which
/// pharos and CTDB both read.
pub fn public_addresses_file(ctx: &Ctx) -> String {
    ctx.public
        .iter()
        .map(|a| format!("{a}/{} eth0\n", ctx.mask_bits))
        .collect()
}

/// The CTDB-format nodes file for the lab.
pub fn nodes_file(ctx: &Ctx) -> String {
    ctx.node_ips.iter().map(|a| format!("{a}\n")).collect()
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn mkdir(path: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_systems_address_views() {
        let c = parse_ctdb_ip("|Public IP|Node|\n|10.0.0.2|1|\n|10.0.0.1|-1|\n").unwrap();
        assert_eq!(
            c,
            vec![
                ("10.0.0.2".parse().unwrap(), 1),
                ("10.0.0.1".parse().unwrap(), -1)
            ]
        );
        assert!(parse_ctdb_ip("|Public IP|Node|\nnonsense\n").is_err());
        let j = serde_json::json!({"ips":[{"address":"10.0.0.1","pnn":2,"interfaces":["eth0"]},
                                          {"address":"10.0.0.3/24","pnn":-1}]});
        let p = parse_pharos_ip(&j).unwrap();
        assert_eq!(
            p,
            vec![
                ("10.0.0.1".parse().unwrap(), 2),
                ("10.0.0.3".parse().unwrap(), -1)
            ]
        );
        assert!(parse_pharos_ip(&serde_json::json!({"ips":[{"address":"x","pnn":1}]})).is_err());
        assert!(parse_pharos_ip(&serde_json::json!({})).is_err());
    }
}
