//! One seeded run of a random fault mix: what the `sim` example and the CI sweep execute.
//!
//! Everything about a run follows from `(seed, nodes, mix, seconds)`: the lock service (fcntl
//! or lease with a 5 s TTL, drawn from the seed), the tunables (the defaults, but a 5 s
//! RecoveryBanPeriod so that bans end within a run), the fault schedule (faults from 3 s, a warm-up in which the
//! cluster forms, until `seconds - settle`, then all clear), and every random draw of the
//! network. The last `settle = reconnect + converge + 2 s` are quiet, so that liveness is
//! checked within every run long enough to hold it.

use super::{Fault, LockKind, Mix, Schedule, SimConfig, Violation, World};
use crate::rng::Rng;
use crate::time::Instant;
use alloc::format;
use alloc::string::String;
use core::fmt;
use core::time::Duration;

/// What defines a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSpec {
    /// The seed.
    pub seed: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// The fault mix.
    pub mix: Mix,
    /// Virtual seconds to run.
    pub seconds: u64,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// What ran.
    pub spec: RunSpec,
    /// Inputs handed to nodes.
    pub events: u64,
    /// Digest of the whole trace.
    pub digest: u64,
    /// Faults injected.
    pub faults: usize,
    /// The violation, if any.
    pub violation: Option<Violation>,
    /// The failure report (replay command, bounds, trace tail), with a violation.
    pub report: Option<String>,
    /// How long after the faults stopped the cluster agreed (when it was seen to).
    pub settled_after: Option<Duration>,
    /// Virtual time simulated.
    pub simulated: Duration,
}

impl RunSpec {
    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        format!(
            "cargo run --release -p pharos-core --features sim --example sim -- --seed {} \
             --nodes {} --faults {} --seconds {}",
            self.seed, self.nodes, self.mix, self.seconds
        )
    }

    /// The world configuration and the fault schedule of this run.
    pub fn build(&self) -> (SimConfig, Schedule) {
        let mut rng = Rng::new(self.seed ^ 0x10c4_5e1e_c7ed_0001);
        let lock = if rng.below(2) == 0 {
            LockKind::Fcntl
        } else {
            LockKind::lease(Duration::from_secs(5))
        };
        // CTDB's 300 s ban would outlast most runs; a ban still has to end within the run.
        let t = crate::config::Tunables {
            recovery_ban_period: Duration::from_secs(5),
            ..Default::default()
        };
        let cfg = SimConfig::new(self.nodes)
            .tunables(t)
            .seed(self.seed)
            .lock(lock)
            .replay(self.replay_command());
        let b = cfg.bounds();
        let settle = b.reconnect + b.converge + Duration::from_secs(2);
        let total = Duration::from_secs(self.seconds);
        let from = Duration::from_secs(3);
        let schedule = if total > from + settle {
            Schedule::generate(
                self.seed,
                self.nodes,
                self.mix,
                Instant::ZERO + from,
                Instant::ZERO + (total - settle),
                &cfg.tunables,
            )
        } else {
            Schedule::new()
        };
        (cfg, schedule)
    }
}

impl fmt::Display for RunOutcome {
    /// `seed=S nodes=N faults=MIX events=E digest=HEX violations=V`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed={} nodes={} faults={} events={} digest={:016x} violations={}",
            self.spec.seed,
            self.spec.nodes,
            self.spec.mix,
            self.events,
            self.digest,
            self.violation.is_some() as u32
        )
    }
}

/// Runs `spec` to its end or its first violation.
pub fn run(spec: &RunSpec) -> RunOutcome {
    run_with(spec, |_| {})
}

/// Runs `spec`, letting `tweak` adjust the world first (tests plant bugs this way).
pub fn run_with(spec: &RunSpec, tweak: impl FnOnce(&mut World)) -> RunOutcome {
    let (cfg, schedule) = spec.build();
    let mut w = World::new(cfg);
    w.schedule(&schedule);
    let faults_end = schedule.end();
    w.check_liveness_from(faults_end);
    tweak(&mut w);
    let end = Instant::ZERO + Duration::from_secs(spec.seconds);
    let r = w.run_until(end);
    let report = r.as_ref().err().map(|v| w.report(v));
    let settled_after = w
        .liveness()
        .and_then(|l| l.converged_at())
        .map(|t| t - faults_end);
    RunOutcome {
        spec: *spec,
        events: w.events(),
        digest: w.digest(),
        faults: schedule
            .entries()
            .iter()
            .filter(|(_, f)| !matches!(f, Fault::AllClear { .. }))
            .count(),
        violation: r.err(),
        report,
        settled_after,
        simulated: w.now() - Instant::ZERO,
    }
}
