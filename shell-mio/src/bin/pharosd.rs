//! `pharosd`: the pharos cluster daemon (foreground, logs to stderr, `RUST_LOG` sets the level).

use clap::Parser;
use pharos_host::settings::{Overrides, Settings};
use pharos_mio::daemon::Daemon;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

/// pharos cluster daemon: keeps the nodes of the nodes file in one cluster.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// pharos.toml (relative paths in it are relative to the file).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// CTDB-format nodes file.
    #[arg(long, value_name = "FILE")]
    nodes: Option<PathBuf>,
    /// CTDB-format public_addresses file.
    #[arg(long, value_name = "FILE")]
    public_addresses: Option<PathBuf>,
    /// This node's address (default: the first node address this host can bind).
    #[arg(long, value_name = "IP")]
    node_address: Option<IpAddr>,
    /// Cluster TCP port (default 4379).
    #[arg(long, value_name = "N")]
    port: Option<u16>,
    /// Control socket (default /run/pharos/pharosd.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Cluster lock: none, fcntl:PATH or etcd:HOST:PORT[,HOST:PORT...]/KEY.
    #[arg(long, value_name = "SPEC")]
    cluster_lock: Option<String>,
    /// Event script directory.
    #[arg(long, value_name = "DIR")]
    event_dir: Option<PathBuf>,
    /// Set a tunable, e.g. KeepaliveInterval=100ms (repeatable).
    #[arg(long = "tunable", value_name = "NAME=VALUE")]
    tunables: Vec<String>,
    /// Never become recovery master (CTDB's --no-recmaster).
    #[arg(long)]
    no_recmaster: bool,
}

fn main() {
    // A client or peer that goes away mid-write must cost an EPIPE, never the daemon. (Rust
    // binaries start with SIGPIPE ignored today; say so here rather than rely on it.)
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code; nothing else
    // runs yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let args = Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            writeln!(
                buf,
                "{} pharosd[{}] {}: {}",
                buf.timestamp_millis(),
                std::process::id(),
                record.level(),
                record.args()
            )
        })
        .init();
    let overrides = Overrides {
        config: args.config,
        nodes: args.nodes,
        public_addresses: args.public_addresses,
        node_address: args.node_address,
        port: args.port,
        socket: args.socket,
        cluster_lock: args.cluster_lock,
        event_dir: args.event_dir,
        tunables: args.tunables,
        no_recmaster: args.no_recmaster,
    };
    let settings = match Settings::load(&overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pharosd: {e}");
            std::process::exit(2);
        }
    };
    let daemon = match Daemon::new(&settings) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("pharosd: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = daemon.run() {
        eprintln!("pharosd: event loop failed: {e}");
        std::process::exit(1);
    }
}
