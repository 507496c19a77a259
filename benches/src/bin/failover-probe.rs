//! `failover-probe`: connects to every public address every 10 ms from the client namespace
//! and prints one line per attempt (see `pharos_benches::failover::probe`).

use clap::Parser;
use pharos_benches::failover::{child, netns, probe};
use std::net::{IpAddr, SocketAddr};

/// Probe public addresses over TCP and read the banner naming the node that answered.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Run inside this network namespace (a name from `ip netns`).
    #[arg(long)]
    netns: Option<String>,
    /// Comma-separated addresses to probe.
    #[arg(long, value_delimiter = ',', required = true)]
    addresses: Vec<IpAddr>,
    /// TCP port of the banner responders.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Time between rounds.
    #[arg(long, default_value = "10ms", value_parser = child::duration_ns)]
    interval: u64,
    /// Connect timeout (below the interval: one attempt in flight per address while silent).
    #[arg(long, default_value = "9ms", value_parser = child::duration_ns)]
    connect_timeout: u64,
    /// Time allowed for the banner once connected.
    #[arg(long, default_value = "200ms", value_parser = child::duration_ns)]
    read_timeout: u64,
    /// Stop after this long.
    #[arg(long, default_value = "3600s", value_parser = child::duration_ns)]
    duration: u64,
}

fn main() {
    let a = Args::parse();
    child::die_with_parent().unwrap_or_else(|e| child::fail("failover-probe", e));
    if let Some(ns) = &a.netns {
        netns::enter(ns).unwrap_or_else(|e| child::fail("failover-probe", e));
    }
    if a.interval == 0 {
        child::fail("failover-probe", "the interval must be positive");
    }
    let opts = probe::ProbeOptions {
        targets: a
            .addresses
            .iter()
            .map(|&ip| SocketAddr::new(ip, a.port))
            .collect(),
        interval_ns: a.interval,
        connect_timeout_ns: a.connect_timeout,
        read_timeout_ns: a.read_timeout,
        duration_ns: a.duration,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match probe::run(&opts, &mut out) {
        Ok(()) => {}
        // The reader went away: that is how the harness stops us, too.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => child::fail("failover-probe", e),
    }
}
