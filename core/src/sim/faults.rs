//! Faults, schedules of faults, and their generation from a seed.
//!
//! A generated schedule is a sequence of episodes (a fault, then its undoing after a short or a
//! long while) separated by quiet periods, inside a fault window; at the end of the window one
//! [`Fault::AllClear`] puts everything right (links healed and reset, processes thawed and at
//! full speed, daemons started), possibly leaving a minority down for good, so that liveness
//! can be checked afterwards.

use super::net::LinkParams;
use crate::config::Tunables;
use crate::rng::Rng;
use crate::time::Instant;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

/// One thing that happens to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The daemon dies (`kill -9`): its kernel closes its connections (peers see EOF at once);
    /// its addresses stay until their lease ends; an fcntl lock dies with it, a lease lives on.
    Crash(usize),
    /// The host dies (power off): no EOF for anyone, its addresses vanish with it.
    HostDown(usize),
    /// Clean stop (SIGTERM): addresses and lock released, connections closed.
    Stop(usize),
    /// Starts the daemon (bringing its host up if it was down): a new start time, the same PNN.
    /// Nothing if it runs.
    Start(usize),
    /// SIGSTOP: the daemon processes nothing; its connections stay open (the kernel still
    /// accepts and buffers); its addresses lapse after their lease.
    Freeze(usize),
    /// SIGCONT: the daemon processes what queued up (lock client first).
    Thaw(usize),
    /// Every input of the node is processed this much later (zero: back to normal).
    Slow(usize, Duration),
    /// Cuts every path between nodes of different groups (both ways).
    Partition(Vec<Vec<usize>>),
    /// Undoes one [`Fault::Partition`] with the same groups.
    Unpartition(Vec<Vec<usize>>),
    /// Cuts one direction only.
    Cut {
        /// Sender side.
        from: usize,
        /// Receiver side.
        to: usize,
    },
    /// Undoes one [`Fault::Cut`].
    Restore {
        /// Sender side.
        from: usize,
        /// Receiver side.
        to: usize,
    },
    /// Restores every path.
    Heal,
    /// Sets the parameters of one directed link (`None`: back to the default).
    Link {
        /// Sender side.
        from: usize,
        /// Receiver side.
        to: usize,
        /// The new parameters.
        params: Option<LinkParams>,
    },
    /// Every link back to the default parameters.
    ResetLinks,
    /// Cuts (true) or restores the node's path to the lock service.
    LockCut(usize, bool),
    /// The lock service answers nothing for this long (its store re-elects a leader).
    LockOutage(Duration),
    /// Someone breaks the cluster lock; the holder (if any) learns at once.
    BreakLock,
    /// End of the faults: heal and reset every link, restore lock paths, end outages, thaw and
    /// un-slow everyone, start every daemon except those in `keep_down`, which are crashed.
    AllClear {
        /// Nodes left down for good.
        keep_down: Vec<usize>,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = |f: &mut fmt::Formatter<'_>, g: &[Vec<usize>]| {
            for (k, grp) in g.iter().enumerate() {
                if k > 0 {
                    f.write_str("|")?;
                }
                for (m, n) in grp.iter().enumerate() {
                    write!(f, "{}{n}", if m > 0 { "," } else { "" })?;
                }
            }
            Ok(())
        };
        match self {
            Fault::Crash(i) => write!(f, "crash n{i}"),
            Fault::HostDown(i) => write!(f, "host-down n{i}"),
            Fault::Stop(i) => write!(f, "stop n{i}"),
            Fault::Start(i) => write!(f, "start n{i}"),
            Fault::Freeze(i) => write!(f, "freeze n{i}"),
            Fault::Thaw(i) => write!(f, "thaw n{i}"),
            Fault::Slow(i, d) => write!(f, "slow n{i} {}", super::trace::Dur(*d)),
            Fault::Partition(g) => {
                f.write_str("partition ")?;
                groups(f, g)
            }
            Fault::Unpartition(g) => {
                f.write_str("unpartition ")?;
                groups(f, g)
            }
            Fault::Cut { from, to } => write!(f, "cut n{from}->n{to}"),
            Fault::Restore { from, to } => write!(f, "restore n{from}->n{to}"),
            Fault::Heal => f.write_str("heal"),
            Fault::Link {
                from,
                to,
                params: None,
            } => write!(f, "link n{from}->n{to} default"),
            Fault::Link {
                from,
                to,
                params: Some(p),
            } => write!(
                f,
                "link n{from}->n{to} latency={} jitter={} loss={:.3} dup={:.3} reorder={:.3}",
                super::trace::Dur(p.latency),
                super::trace::Dur(p.jitter),
                p.loss,
                p.dup,
                p.reorder
            ),
            Fault::ResetLinks => f.write_str("reset-links"),
            Fault::LockCut(i, true) => write!(f, "lock-cut n{i}"),
            Fault::LockCut(i, false) => write!(f, "lock-restore n{i}"),
            Fault::LockOutage(d) => write!(f, "lock-outage {}", super::trace::Dur(*d)),
            Fault::BreakLock => f.write_str("break-lock"),
            Fault::AllClear { keep_down } => write!(f, "all-clear keep_down={keep_down:?}"),
        }
    }
}

/// A fault mix for generated schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mix {
    /// No fault at all.
    None,
    /// Daemon crashes, host crashes, clean stops, each followed by a restart.
    Crash,
    /// Freezes (SIGSTOP) and slow nodes.
    Freeze,
    /// Symmetric partitions, one-way cuts, flapping links, nodes cut from the lock service.
    Partition,
    /// Links with latency, jitter, loss, duplication and reordering.
    Lossy,
    /// All of the above, overlapping at times, plus lock-service outages and broken locks.
    Mixed,
}

impl Mix {
    /// Every mix, in CLI order.
    pub const ALL: [Mix; 6] = [
        Mix::None,
        Mix::Crash,
        Mix::Freeze,
        Mix::Partition,
        Mix::Lossy,
        Mix::Mixed,
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Mix::None => "none",
            Mix::Crash => "crash",
            Mix::Freeze => "freeze",
            Mix::Partition => "partition",
            Mix::Lossy => "lossy",
            Mix::Mixed => "mixed",
        }
    }

    /// The mix with this CLI name.
    pub fn parse(s: &str) -> Option<Mix> {
        Mix::ALL.into_iter().find(|m| m.name() == s)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Faults at given virtual times.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schedule {
    entries: Vec<(Instant, Fault)>,
}

/// The kinds of episode a generated schedule draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Episode {
    Crash,
    HostDown,
    Stop,
    Freeze,
    Slow,
    Partition,
    OneWay,
    Flap,
    Lossy,
    LockCut,
    LockOutage,
    BreakLock,
}

/// Limits of generated faults, so that the invariants' bounds can be derived from them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Slowest processing delay of a slow node.
    pub max_slow: Duration,
    /// The worst link a lossy episode sets up.
    pub worst_link: LinkParams,
    /// Longest lock-service outage.
    pub max_outage: Duration,
}

impl Limits {
    /// The limits the generator uses with `t`.
    pub fn for_tunables(t: &Tunables) -> Self {
        Limits {
            max_slow: Duration::from_millis(100),
            worst_link: LinkParams {
                latency: Duration::from_millis(20),
                jitter: Duration::from_millis(20),
                loss: 0.3,
                dup: 0.1,
                reorder: 0.2,
                reorder_window: Duration::from_millis(50),
            },
            max_outage: t.dead_after() * 4,
        }
    }
}

impl Schedule {
    /// An empty schedule.
    pub fn new() -> Self {
        Schedule::default()
    }

    /// Adds `fault` at `at` from the start of the run (builder style).
    pub fn at(mut self, at: Duration, fault: Fault) -> Self {
        self.push(Instant::ZERO + at, fault);
        self
    }

    /// Adds `fault` at `at`; entries stay in time order (stable for equal times).
    pub fn push(&mut self, at: Instant, fault: Fault) {
        let pos = self.entries.partition_point(|(t, _)| *t <= at);
        self.entries.insert(pos, (at, fault));
    }

    /// The entries in time order.
    pub fn entries(&self) -> &[(Instant, Fault)] {
        &self.entries
    }

    /// When the last fault happens (zero if none).
    pub fn end(&self) -> Instant {
        self.entries.last().map_or(Instant::ZERO, |(t, _)| *t)
    }

    /// Generates the schedule of `mix` for `n` nodes from `seed`, with faults between `from`
    /// and `until`, closed by [`Fault::AllClear`] at `until`.
    pub fn generate(
        seed: u64,
        n: usize,
        mix: Mix,
        from: Instant,
        until: Instant,
        t: &Tunables,
    ) -> Schedule {
        let mut s = Schedule::new();
        if mix == Mix::None || n == 0 || until <= from {
            return s;
        }
        let mut g = Gen {
            rng: Rng::new(seed ^ 0x5c4e_d01e_fa17_0000),
            n,
            dead: t.dead_after(),
            limits: Limits::for_tunables(t),
        };
        let kinds: &[Episode] = match mix {
            Mix::None => &[],
            Mix::Crash => &[Episode::Crash, Episode::HostDown, Episode::Stop],
            Mix::Freeze => &[Episode::Freeze, Episode::Slow],
            Mix::Partition => &[
                Episode::Partition,
                Episode::OneWay,
                Episode::Flap,
                Episode::LockCut,
            ],
            Mix::Lossy => &[Episode::Lossy],
            Mix::Mixed => &[
                Episode::Crash,
                Episode::HostDown,
                Episode::Stop,
                Episode::Freeze,
                Episode::Slow,
                Episode::Partition,
                Episode::OneWay,
                Episode::Flap,
                Episode::Lossy,
                Episode::LockCut,
                Episode::LockOutage,
                Episode::BreakLock,
            ],
        };
        let mut at = from;
        while at < until {
            let kind = kinds[g.rng.below(kinds.len() as u64) as usize];
            let end = g.episode(&mut s, kind, at, until);
            // Mostly one episode after another with a quiet period between; in the mixed bag,
            // sometimes the next one starts while this one is still on.
            let overlap = mix == Mix::Mixed && g.rng.below(10) < 3;
            at = if overlap {
                at + g.between(Duration::ZERO, end - at)
            } else {
                end + g.quiet()
            };
        }
        let mut keep_down = Vec::new();
        if matches!(mix, Mix::Crash | Mix::Mixed) && n >= 3 && g.rng.below(5) == 0 {
            keep_down.push(g.node());
        }
        s.push(until, Fault::AllClear { keep_down });
        s
    }
}

struct Gen {
    rng: Rng,
    n: usize,
    dead: Duration,
    limits: Limits,
}

impl Gen {
    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_micros() as u64;
        lo + Duration::from_micros(self.rng.below(span + 1))
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn node(&mut self) -> usize {
        self.rng.below(self.n as u64) as usize
    }

    /// Shorter than detection (should go unnoticed) or longer (must be noticed).
    fn duration(&mut self) -> Duration {
        if self.chance(0.5) {
            self.between(self.dead / 5, self.dead * 9 / 10)
        } else {
            self.between(self.dead * 6 / 5, self.dead * 5)
        }
    }

    fn quiet(&mut self) -> Duration {
        match self.rng.below(10) {
            0..=1 => Duration::ZERO,
            2..=8 => self.between(Duration::ZERO, self.dead * 4),
            _ => self.between(self.dead * 5, self.dead * 10),
        }
    }

    fn groups(&mut self) -> Vec<Vec<usize>> {
        let k = if self.n >= 4 && self.chance(0.4) {
            3
        } else {
            2
        };
        let mut groups: Vec<Vec<usize>> = alloc::vec![Vec::new(); k];
        for i in 0..self.n {
            let g = self.rng.below(k as u64) as usize;
            groups[g].push(i);
        }
        groups.retain(|g| !g.is_empty());
        groups
    }

    /// Schedules one episode starting at `at` (ending by `until`); returns when it ends.
    fn episode(&mut self, s: &mut Schedule, kind: Episode, at: Instant, until: Instant) -> Instant {
        let end = (at + self.duration()).min(until);
        let i = self.node();
        match kind {
            Episode::Crash | Episode::HostDown | Episode::Stop => {
                s.push(
                    at,
                    match kind {
                        Episode::Crash => Fault::Crash(i),
                        Episode::HostDown => Fault::HostDown(i),
                        _ => Fault::Stop(i),
                    },
                );
                s.push(end, Fault::Start(i));
            }
            Episode::Freeze => {
                s.push(at, Fault::Freeze(i));
                s.push(end, Fault::Thaw(i));
            }
            Episode::Slow => {
                let d = self.between(Duration::from_millis(1), self.limits.max_slow);
                s.push(at, Fault::Slow(i, d));
                s.push(end, Fault::Slow(i, Duration::ZERO));
            }
            Episode::Partition => {
                let g = self.groups();
                s.push(at, Fault::Partition(g.clone()));
                s.push(end, Fault::Unpartition(g));
            }
            Episode::OneWay => {
                let to_all = self.chance(0.5);
                for j in 0..self.n {
                    if j != i && (to_all || j == (i + 1) % self.n) {
                        let (from, to) = if self.chance(0.5) { (i, j) } else { (j, i) };
                        s.push(at, Fault::Cut { from, to });
                        s.push(end, Fault::Restore { from, to });
                    }
                }
            }
            Episode::Flap => {
                let j = (i + 1 + self.rng.below(self.n.max(2) as u64 - 1) as usize) % self.n;
                let cycles = 2 + self.rng.below(6);
                let mut t = at;
                for _ in 0..cycles {
                    let down = self.between(self.dead / 10, self.dead * 2);
                    let up = self.between(self.dead / 10, self.dead * 2);
                    let back = (t + down).min(until);
                    for (from, to) in [(i, j), (j, i)] {
                        s.push(t, Fault::Cut { from, to });
                        s.push(back, Fault::Restore { from, to });
                    }
                    t = back + up;
                    if t >= until {
                        break;
                    }
                }
                return t.min(until);
            }
            Episode::Lossy => {
                let w = self.limits.worst_link;
                let links = 1 + self.rng.below((self.n * (self.n - 1)) as u64 / 2 + 1) as usize;
                for _ in 0..links {
                    let a = self.node();
                    let b = (a + 1 + self.rng.below(self.n.max(2) as u64 - 1) as usize) % self.n;
                    let p = LinkParams {
                        latency: self.between(Duration::from_micros(100), w.latency),
                        jitter: self.between(Duration::ZERO, w.jitter),
                        loss: w.loss * self.rng.below(1001) as f64 / 1000.0,
                        dup: w.dup * self.rng.below(1001) as f64 / 1000.0,
                        reorder: w.reorder * self.rng.below(1001) as f64 / 1000.0,
                        reorder_window: w.reorder_window,
                    };
                    for (from, to) in [(a, b), (b, a)] {
                        s.push(
                            at,
                            Fault::Link {
                                from,
                                to,
                                params: Some(p),
                            },
                        );
                        s.push(
                            end,
                            Fault::Link {
                                from,
                                to,
                                params: None,
                            },
                        );
                    }
                }
            }
            Episode::LockCut => {
                s.push(at, Fault::LockCut(i, true));
                s.push(end, Fault::LockCut(i, false));
            }
            Episode::LockOutage => {
                let d = self.between(self.dead / 5, self.limits.max_outage);
                s.push(at, Fault::LockOutage(d));
                return (at + d).min(until);
            }
            Episode::BreakLock => {
                s.push(at, Fault::BreakLock);
                return at;
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Instant {
        Instant::from_nanos(s * 1_000_000_000)
    }

    #[test]
    fn generated_schedules_are_reproducible_ordered_and_bounded() {
        let t = Tunables::default();
        for mix in Mix::ALL {
            let a = Schedule::generate(7, 5, mix, secs(3), secs(60), &t);
            let b = Schedule::generate(7, 5, mix, secs(3), secs(60), &t);
            assert_eq!(a, b, "{mix}");
            let e = a.entries();
            assert!(e.windows(2).all(|w| w[0].0 <= w[1].0), "{mix}: in order");
            assert!(e.iter().all(|(at, _)| *at >= secs(3) && *at <= secs(60)));
            if mix == Mix::None {
                assert!(e.is_empty());
            } else {
                assert!(e.len() > 2, "{mix}: {} faults", e.len());
                assert!(matches!(e.last(), Some((_, Fault::AllClear { .. }))));
                assert_eq!(a.end(), secs(60));
            }
        }
        let c = Schedule::generate(8, 5, Mix::Mixed, secs(3), secs(60), &t);
        assert_ne!(
            c,
            Schedule::generate(7, 5, Mix::Mixed, secs(3), secs(60), &t)
        );
    }

    #[test]
    fn mixes_parse_and_print() {
        for m in Mix::ALL {
            assert_eq!(Mix::parse(m.name()), Some(m));
        }
        assert_eq!(Mix::parse("chaos"), None);
        let p = Fault::Partition(alloc::vec![alloc::vec![0, 1], alloc::vec![2]]);
        assert_eq!(alloc::format!("{p}"), "partition 0,1|2");
    }
}
