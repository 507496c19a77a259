//! `failover-banner`: the tiny TCP responder of a node namespace. It listens on every address
//! of the namespace (so on the public addresses the node holds, too) and answers each connection
//! with its name and a newline, then closes.

use clap::Parser;
use pharos_benches::failover::{child, netns};
use std::io::Write;
use std::net::{Ipv4Addr, Shutdown, TcpListener};

/// Answer every TCP connection with NAME.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// Run inside this network namespace.
    #[arg(long)]
    netns: Option<String>,
    /// The name to answer with (e.g. n0).
    #[arg(long)]
    name: String,
    /// TCP port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

fn main() {
    let a = Args::parse();
    child::die_with_parent().unwrap_or_else(|e| child::fail("failover-banner", e));
    if let Some(ns) = &a.netns {
        netns::enter(ns).unwrap_or_else(|e| child::fail("failover-banner", e));
    }
    if a.name.is_empty() || a.name.contains(char::is_whitespace) {
        child::fail("failover-banner", "the name must be one word");
    }
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, a.port))
        .unwrap_or_else(|e| child::fail("failover-banner", format!("bind port {}: {e}", a.port)));
    let banner = format!("{}\n", a.name);
    for conn in l.incoming() {
        // A client that reset the connection first is no reason to stop.
        let Ok(mut c) = conn else { continue };
        let _ = c.write_all(banner.as_bytes());
        let _ = c.shutdown(Shutdown::Write);
    }
}
