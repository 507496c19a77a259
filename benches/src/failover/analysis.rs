//! What the probe and the sampler saw, and the figures taken from it: when an address answered
//! again and from which node, how many samples had an address on two nodes, and the summary
//! statistics of the report. Pure functions over recorded data, so they are unit-tested.

use super::probe::ProbeRecord;
use super::sampler::Sample;
use std::net::IpAddr;

/// Everything observed during one system run.
#[derive(Clone, Debug, Default)]
pub struct Observations {
    /// The public addresses, in the sampler's order.
    pub addrs: Vec<IpAddr>,
    /// Probe attempts, in the order they finished.
    pub probes: Vec<ProbeRecord>,
    /// Sampler rounds, in time order.
    pub samples: Vec<Sample>,
    /// Sampler rounds seen over the whole run (kept when old samples are dropped).
    pub samples_seen: usize,
    /// Of those, rounds with an address on two or more nodes.
    pub doubled_seen: usize,
}

impl Observations {
    /// Index of `addr` in [`Observations::addrs`].
    pub fn index(&self, addr: IpAddr) -> Option<usize> {
        self.addrs.iter().position(|&a| a == addr)
    }

    /// The earliest attempt started at or after `t0` on `addr` that a node accepted by `from`
    /// answered (attempts finish out of start order, so this scans them all).
    pub fn first_ok(&self, addr: IpAddr, t0: u64, from: impl Fn(&str) -> bool) -> Option<u64> {
        self.probes
            .iter()
            .filter(|r| r.addr == addr && r.t_ns >= t0)
            .filter(|r| matches!(&r.result, Ok(node) if from(node)))
            .map(|r| r.t_ns)
            .min()
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.last()
    }

    /// Samples taken in `[from, to)`: (how many, how many had an address on two or more nodes).
    pub fn doubled(&self, from: u64, to: u64) -> (usize, usize) {
        let window = self
            .samples
            .iter()
            .filter(|s| s.t_ns >= from && s.t_ns < to);
        window.fold((0, 0), |(n, d), s| {
            (n + 1, d + usize::from(s.doubled().next().is_some()))
        })
    }

    /// The addresses (indices) that node `node` holds in the latest sample.
    pub fn held_by(&self, node: usize) -> Vec<usize> {
        self.latest()
            .map(|s| {
                (0..s.holders.len())
                    .filter(|&k| s.holders[k] & (1 << node) != 0)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the latest sample shows every address on exactly one node.
    pub fn single_holders(&self) -> bool {
        self.latest()
            .is_some_and(|s| s.holders.iter().all(|h| h.count_ones() == 1))
    }

    /// Adds a sampler round, counting it in the whole-run totals.
    pub fn push_sample(&mut self, s: Sample) {
        self.samples_seen += 1;
        self.doubled_seen += usize::from(s.doubled().next().is_some());
        self.samples.push(s);
    }

    /// Drops probe records and samples older than `t` (long runs stay small).
    pub fn forget_before(&mut self, t: u64) {
        self.probes.retain(|r| r.t_ns >= t);
        self.samples.retain(|s| s.t_ns >= t);
    }
}

/// min / median / p95 / max of a set of figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// How many figures.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Median (the mean of the two middle figures for an even count).
    pub median: f64,
    /// 95th percentile, nearest rank.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// The statistics of `values` (NaNs are ignored); `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Stats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let rank = (0.95 * n as f64).ceil() as usize;
        Some(Stats {
            n,
            min: v[0],
            median,
            p95: v[rank.clamp(1, n) - 1],
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: u64, a: &str, node: &str) -> ProbeRecord {
        ProbeRecord {
            t_ns: t,
            addr: a.parse().unwrap(),
            result: Ok(node.into()),
        }
    }

    fn fail(t: u64, a: &str) -> ProbeRecord {
        ProbeRecord {
            t_ns: t,
            addr: a.parse().unwrap(),
            result: Err("timeout".into()),
        }
    }

    fn sample(t: u64, holders: &[u64]) -> Sample {
        Sample {
            t_ns: t,
            dur_ns: 1,
            holders: holders.to_vec(),
        }
    }

    #[test]
    fn first_answer_from_another_node_counts_not_the_old_holder() {
        let a = "10.0.0.100";
        let obs = Observations {
            addrs: vec![a.parse().unwrap()],
            // Finished out of order: the attempt of t=40 finished before that of t=30.
            probes: vec![
                ok(10, a, "n1"),
                ok(20, a, "n1"),
                fail(25, a),
                ok(40, a, "n2"),
                ok(30, a, "n2"),
                ok(35, a, "n1"),
            ],
            ..Default::default()
        };
        let ip = obs.addrs[0];
        assert_eq!(obs.first_ok(ip, 15, |n| n != "n1"), Some(30));
        assert_eq!(obs.first_ok(ip, 15, |n| n == "n1"), Some(20));
        assert_eq!(obs.first_ok(ip, 41, |_| true), None);
        let other: IpAddr = "10.0.0.101".parse().unwrap();
        assert_eq!(obs.first_ok(other, 0, |_| true), None);
    }

    #[test]
    fn counts_samples_with_an_address_on_two_nodes() {
        let obs = Observations {
            addrs: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
            probes: vec![],
            samples: vec![
                sample(0, &[1, 2]),
                sample(10, &[0b11, 2]),
                sample(20, &[1, 0b110]),
                sample(30, &[1, 2]),
                sample(40, &[0b11, 2]),
            ],
            ..Default::default()
        };
        assert_eq!(obs.doubled(0, 40), (4, 2));
        let mut whole = Observations::default();
        for s in &obs.samples {
            whole.push_sample(s.clone());
        }
        whole.forget_before(1000);
        assert_eq!(
            (whole.samples_seen, whole.doubled_seen, whole.samples.len()),
            (5, 3, 0)
        );
        assert_eq!(obs.doubled(15, 100), (3, 2));
        assert_eq!(obs.doubled(30, 40), (1, 0));
        assert_eq!(obs.held_by(0), vec![0]);
        assert_eq!(obs.held_by(1), vec![0, 1]);
        assert!(!obs.single_holders());
    }

    #[test]
    fn stats_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Stats::of(&v).unwrap();
        assert_eq!(
            (s.n, s.min, s.median, s.p95, s.max),
            (20, 1.0, 10.5, 19.0, 20.0)
        );
        let s = Stats::of(&[3.0, f64::NAN, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.median, s.p95), (3, 2.0, 3.0));
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(Stats::of(&[5.0]).unwrap().p95, 5.0);
    }
}
