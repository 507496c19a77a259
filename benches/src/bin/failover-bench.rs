//! `failover-bench`: the failover benchmark driver. `benches/failover/run.sh` checks root and
//! packages, reaps a stale lab, builds, and starts this; see benches/failover/README.md.

use clap::Parser;
use pharos_benches::failover::driver::{self, Options};
use pharos_benches::failover::event::Event;
use pharos_benches::failover::profile::Profile;
use pharos_benches::failover::report;
use serde_json::json;
use std::path::PathBuf;

/// Failover benchmark: pharos, CTDB and keepalived in one namespace lab.
#[derive(Parser)]
#[command(about)]
struct Args {
    /// pharos, ctdb, keepalived or all (comma-separated for several).
    #[arg(long, default_value = "all")]
    system: String,
    /// Settings profiles by name (default: every profile of the chosen systems).
    #[arg(long, value_delimiter = ',')]
    profiles: Vec<String>,
    /// Repetitions of each event.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Events: start,kill9,kill9-leader,sigstop,cut,stop,return or all.
    #[arg(long, default_value = "all")]
    events: String,
    /// CI mode: pharos fast profile, 2 repetitions of start, kill9 (and return), kill9-leader,
    /// sigstop, cut, stop; exits 1 if an address is ever on two nodes, a failover does not
    /// complete or the victim keeps an address.
    #[arg(long)]
    smoke: bool,
    /// Results directory.
    #[arg(long, default_value = "failover-results")]
    out: PathBuf,
    /// Scratch directory (configurations, sockets, databases).
    #[arg(long)]
    state: PathBuf,
    /// benches/failover (lab.sh and profiles/).
    #[arg(long)]
    dir: PathBuf,
    /// Directory with pharosd, pharos and the failover-* helpers (default: this binary's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Node count.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Public address count.
    #[arg(long, default_value_t = 8)]
    addresses: usize,
    /// Idle seconds for the CPU figure (0 skips RSS and CPU).
    #[arg(long, default_value_t = 60.0)]
    idle: f64,
    /// Namespace prefix.
    #[arg(long, default_value = "pfo")]
    prefix: String,
    /// The lab's /24, as its first three octets.
    #[arg(long, default_value = "10.218.0")]
    subnet: String,
    /// Banner port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Text put at the top of the report (run.sh passes the command, date and load).
    #[arg(long, default_value = "")]
    header: String,
}

fn die(e: impl std::fmt::Display) -> ! {
    eprintln!("failover-bench: {e}");
    std::process::exit(2)
}

fn main() {
    let mut a = Args::parse();
    if a.smoke {
        a.system = "pharos".into();
        a.profiles = vec!["pharos-fast".into()];
        a.reps = 2;
        a.events = "start,kill9,kill9-leader,sigstop,cut,stop".into();
        a.idle = 0.0;
    }
    let events = Event::parse_list(&a.events).unwrap_or_else(|e| die(e));
    if a.reps == 0 || !(1..=50).contains(&a.nodes) || !(1..=99).contains(&a.addresses) {
        die("--reps must be at least 1, --nodes 1..50, --addresses 1..99");
    }
    let subnet: Vec<u8> = a.subnet.split('.').filter_map(|x| x.parse().ok()).collect();
    let subnet: [u8; 3] = subnet.try_into().unwrap_or_else(|_| {
        die(format!(
            "--subnet {}: want three octets like 10.218.0",
            a.subnet
        ))
    });
    let systems: Vec<String> = if a.system == "all" {
        vec!["pharos".into(), "ctdb".into(), "keepalived".into()]
    } else {
        a.system.split(',').map(|s| s.trim().to_string()).collect()
    };
    let pdir = a.dir.join("profiles");
    let names: Vec<String> = if a.profiles.is_empty() {
        let mut v: Vec<String> = std::fs::read_dir(&pdir)
            .unwrap_or_else(|e| die(format!("{}: {e}", pdir.display())))
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".profile")
                    .map(String::from)
            })
            .collect();
        v.sort();
        v
    } else {
        a.profiles.clone()
    };
    let mut profiles = Vec::new();
    for sys in &systems {
        for n in &names {
            let p = Profile::load(&pdir, n).unwrap_or_else(|e| die(e));
            if &p.system == sys {
                profiles.push(p);
            }
        }
    }
    // Fixed order within a system: defaults first, then faster.
    profiles.sort_by_key(|p| {
        let s = systems.iter().position(|s| *s == p.system).unwrap_or(0);
        let speed = p
            .option("advert_int")
            .and_then(|x| x.parse::<f64>().ok())
            .map(|x| -x);
        let fast = p.name.contains("fast") as i32;
        (s, fast, speed.map(|x| (x * 1000.0) as i64).unwrap_or(0))
    });
    if profiles.is_empty() {
        die(format!(
            "no profile in {} for {}",
            pdir.display(),
            systems.join(",")
        ));
    }
    let bin_dir = a.bin_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .unwrap_or_else(|| die("cannot find my own directory"))
    });
    std::fs::create_dir_all(&a.out).unwrap_or_else(|e| die(format!("{}: {e}", a.out.display())));
    std::fs::create_dir_all(&a.state)
        .unwrap_or_else(|e| die(format!("{}: {e}", a.state.display())));
    driver::catch_signals().unwrap_or_else(|e| die(e));
    let opts = Options {
        profiles,
        events,
        reps: a.reps,
        nodes: a.nodes,
        addresses: a.addresses,
        prefix: a.prefix.clone(),
        subnet,
        port: a.port,
        idle_secs: a.idle,
        hold_secs: 1.0,
        out: a.out.clone(),
        state: a.state.clone(),
        lab_sh: a.dir.join("lab.sh"),
        bin_dir,
    };
    let meta = json!({
        "header": a.header, "reps": a.reps, "nodes": a.nodes, "addresses": a.addresses,
        "events": opts.events.iter().map(|e| e.name()).collect::<Vec<_>>(),
        "probe": {"interval_ms": 10, "connect_timeout_ms": 9, "read_timeout_ms": 200},
        "sampler": {"interval_ms": 10}, "idle_seconds": a.idle, "smoke": a.smoke,
    });
    let mut results = Vec::new();
    for p in &opts.profiles {
        results.push(driver::run_profile(&opts, p));
        let md = report::markdown(&results, &a.header);
        let js = report::json(&results, meta.clone());
        let _ = std::fs::write(a.out.join("results.md"), &md);
        let _ = std::fs::write(
            a.out.join("results.json"),
            serde_json::to_string_pretty(&js).unwrap_or_default(),
        );
        if driver::interrupted() {
            break;
        }
    }
    println!("\n{}", report::markdown(&results, &a.header));
    println!(
        "results: {}/results.md, {}/results.json",
        a.out.display(),
        a.out.display()
    );
    if driver::interrupted() {
        eprintln!("failover-bench: interrupted");
        std::process::exit(130);
    }
    if a.smoke {
        let mut bad = Vec::new();
        for r in &results {
            if r.status != "ok" {
                bad.push(format!(
                    "{}: {}",
                    r.profile.as_ref().map_or("?", |p| &p.name),
                    r.status
                ));
            }
            if r.doubled_seen > 0 {
                bad.push(format!(
                    "{} of {} samples over the whole run had an address on two nodes",
                    r.doubled_seen, r.samples_seen
                ));
            }
            for t in &r.trials {
                if t.doubled > 0 {
                    bad.push(format!(
                        "{} #{}: {} samples with an address on two nodes",
                        t.event,
                        t.rep + 1,
                        t.doubled
                    ));
                }
                if t.value.is_none() {
                    bad.push(format!("{} #{}: did not complete", t.event, t.rep + 1));
                }
                if let Some(s) = t.stale.as_ref().filter(|s| !s.is_empty()) {
                    bad.push(format!(
                        "{} #{}: the victim kept {}",
                        t.event,
                        t.rep + 1,
                        s.join(" ")
                    ));
                }
            }
        }
        if !bad.is_empty() {
            for b in &bad {
                eprintln!("smoke: FAIL {b}");
            }
            std::process::exit(1);
        }
        println!("smoke: OK");
    }
}
