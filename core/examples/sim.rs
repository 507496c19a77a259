//! Runs simulated clusters under random faults.
//!
//! ```text
//! cargo run --release -p pharos-core --features sim --example sim -- \
//!     --seed S --nodes N --faults MIX --seconds T        # one run
//!     --seeds A..B --nodes N --faults MIX --seconds T    # a sweep of seeds A..B (B excluded)
//! ```
//! MIX is one of none, crash, freeze, partition, lossy, mixed. One run prints
//! `seed=S nodes=N faults=MIX events=E digest=HEX violations=V`; a violation also prints the
//! report (the replay command and the trace before it) and makes the exit status 1. `--trace`
//! prints the whole trace of a single run.

use pharos_core::sim::{self, Mix, RunSpec, SimConfig, World};
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    seeds: std::ops::Range<u64>,
    nodes: usize,
    mix: Mix,
    seconds: u64,
    trace: bool,
}

fn usage() -> String {
    "usage: sim (--seed S | --seeds A..B) [--nodes N] [--faults none|crash|freeze|partition|lossy|mixed] [--seconds T] [--trace]".into()
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        seeds: 0..1,
        nodes: 5,
        mix: Mix::Mixed,
        seconds: 120,
        trace: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--seed" => {
                let s: u64 = value()?.parse().map_err(|e| format!("--seed: {e}"))?;
                a.seeds = s..s + 1;
            }
            "--seeds" => {
                let v = value()?;
                let (lo, hi) = v
                    .split_once("..")
                    .ok_or_else(|| format!("--seeds wants A..B, got {v:?}"))?;
                let lo: u64 = lo.parse().map_err(|e| format!("--seeds: {e}"))?;
                let hi: u64 = hi.parse().map_err(|e| format!("--seeds: {e}"))?;
                if hi <= lo {
                    return Err(format!("--seeds: empty range {v}"));
                }
                a.seeds = lo..hi;
            }
            "--nodes" => {
                a.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?;
                if a.nodes == 0 || a.nodes > 250 {
                    return Err("--nodes: 1 to 250".into());
                }
            }
            "--faults" => {
                let v = value()?;
                a.mix = Mix::parse(&v)
                    .ok_or_else(|| format!("--faults: unknown mix {v:?}\n{}", usage()))?;
            }
            "--seconds" => a.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--trace" => a.trace = true,
            "-h" | "--help" => return Err(usage()),
            _ => return Err(format!("unknown argument {flag:?}\n{}", usage())),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let single = a.seeds.end - a.seeds.start == 1;
    if single && a.trace {
        let spec = RunSpec {
            seed: a.seeds.start,
            nodes: a.nodes,
            mix: a.mix,
            seconds: a.seconds,
        };
        let (cfg, schedule): (SimConfig, _) = spec.build();
        let mut w = World::new(cfg.keep_trace());
        w.schedule(&schedule);
        w.check_liveness_from(schedule.end());
        let r = w.run_until(pharos_core::Instant::ZERO + std::time::Duration::from_secs(a.seconds));
        for l in w.trace().lines().unwrap_or(&[]) {
            println!("{l}");
        }
        if let Err(v) = r {
            println!("{}", w.report(&v));
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    let started = Instant::now();
    let (mut runs, mut violations, mut sim_secs) = (0u64, 0u64, 0f64);
    for seed in a.seeds.clone() {
        let spec = RunSpec {
            seed,
            nodes: a.nodes,
            mix: a.mix,
            seconds: a.seconds,
        };
        let out = sim::run(&spec);
        runs += 1;
        sim_secs += out.simulated.as_secs_f64();
        if out.violation.is_some() {
            violations += 1;
        }
        if single || out.violation.is_some() {
            println!("{out}");
        }
        if let Some(r) = &out.report {
            println!("{r}");
        }
    }
    let wall = started.elapsed().as_secs_f64();
    if !single {
        println!(
            "runs={runs} violations={violations} nodes={} faults={} simulated={:.0}s wall={:.2}s sim_seconds_per_wall_second={:.0} node_seconds_per_wall_second={:.0}",
            a.nodes,
            a.mix,
            sim_secs,
            wall,
            sim_secs / wall,
            sim_secs * a.nodes as f64 / wall
        );
    }
    if violations > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
