//! `failover-sampler`: every 10 ms, which node namespace holds each public address (netlink
//! address dumps; see `pharos_benches::failover::sampler`).

use clap::Parser;
use pharos_benches::failover::{child, sampler};
use std::net::IpAddr;

/// Record which namespace holds each address, every interval.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Comma-separated node namespaces (their order gives the node numbers).
    #[arg(long, value_delimiter = ',', required = true)]
    netns: Vec<String>,
    /// Comma-separated addresses to look for.
    #[arg(long, value_delimiter = ',', required = true)]
    addresses: Vec<IpAddr>,
    /// Time between rounds.
    #[arg(long, default_value = "10ms", value_parser = child::duration_ns)]
    interval: u64,
    /// Stop after this long.
    #[arg(long, default_value = "3600s", value_parser = child::duration_ns)]
    duration: u64,
}

fn main() {
    let a = Args::parse();
    child::die_with_parent().unwrap_or_else(|e| child::fail("failover-sampler", e));
    if a.interval == 0 {
        child::fail("failover-sampler", "the interval must be positive");
    }
    let opts = sampler::SamplerOptions {
        namespaces: a.netns,
        addresses: a.addresses,
        interval_ns: a.interval,
        duration_ns: a.duration,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match sampler::run(&opts, &mut out) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => child::fail("failover-sampler", e),
    }
}
