//! A run is a seed: the same seed gives the same trace, byte for byte; another seed another.
#![cfg(feature = "sim")]

use pharos_core::sim::{run, Mix, RunSpec, World};

fn spec(seed: u64, mix: Mix) -> RunSpec {
    RunSpec {
        seed,
        nodes: 5,
        mix,
        seconds: 90,
    }
}

/// The whole trace of a run.
fn trace(s: &RunSpec) -> (Vec<String>, u64) {
    let (cfg, schedule) = s.build();
    let mut w = World::new(cfg.keep_trace());
    w.schedule(&schedule);
    w.check_liveness_from(schedule.end());
    w.run_until(pharos_core::Instant::ZERO + core::time::Duration::from_secs(s.seconds))
        .unwrap();
    (w.trace().lines().unwrap().to_vec(), w.digest())
}

#[test]
fn the_same_seed_gives_the_same_trace_byte_for_byte() {
    for mix in [Mix::Mixed, Mix::Lossy] {
        let s = spec(2024, mix);
        let (a, da) = trace(&s);
        let (b, db) = trace(&s);
        assert!(a.len() > 1000, "{mix}: a real run ({} lines)", a.len());
        assert_eq!(a, b, "{mix}");
        assert_eq!(da, db);
        // The runner's digest is the same trace's.
        let out = run(&s);
        assert_eq!(out.digest, da);
        assert_eq!(format!("{out}"), format!("{}", run(&s)));
    }
}

#[test]
fn different_seeds_give_different_traces() {
    let mut digests: Vec<u64> = (0..8)
        .map(|seed| run(&spec(seed, Mix::Mixed)).digest)
        .collect();
    digests.sort_unstable();
    digests.dedup();
    assert_eq!(digests.len(), 8);
    // Even with no fault at all, the seed drives the network's jitter and the nodes' seeds.
    assert_ne!(
        run(&spec(1, Mix::None)).digest,
        run(&spec(2, Mix::None)).digest
    );
}

#[test]
fn the_summary_line_has_the_documented_shape() {
    let out = run(&spec(7, Mix::Crash));
    let line = format!("{out}");
    let words: Vec<&str> = line.split(' ').collect();
    let keys: Vec<&str> = words.iter().map(|w| w.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        ["seed", "nodes", "faults", "events", "digest", "violations"]
    );
    assert!(line.starts_with("seed=7 nodes=5 faults=crash events="));
    assert!(line.ends_with("violations=0"), "{line}");
    assert_eq!(words[4].len(), "digest=".len() + 16);
    assert_eq!(
        spec(7, Mix::Crash).replay_command(),
        "cargo run --release -p pharos-core --features sim --example sim -- --seed 7 --nodes 5 \
         --faults crash --seconds 90"
    );
}
