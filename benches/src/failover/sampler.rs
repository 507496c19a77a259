//! The sampler: every interval it asks each node namespace's kernel (one netlink address dump
//! per namespace, no `ip` forked) which of the public addresses it holds.
//!
//! Output: a header `# addresses A B ...` and `# nodes NS0 NS1 ...`, then one line per round:
//! `T_NS DUR_NS H_A H_B ...`, where `H_X` lists the indices of the namespaces holding address X
//! (`0,2`) or is `-`; T_NS is when the round started and DUR_NS how long the dumps took.

use super::clock::{now_ns, sleep_until};
use super::netlink::RouteSocket;
use super::netns;
use std::io::{self, Write};
use std::net::IpAddr;

/// One round of the sampler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When the round started (CLOCK_MONOTONIC ns).
    pub t_ns: u64,
    /// How long the round took.
    pub dur_ns: u64,
    /// For every address (in the header's order), a bit set of the nodes holding it.
    pub holders: Vec<u64>,
}

impl Sample {
    /// The line format (no newline).
    pub fn to_line(&self) -> String {
        let mut s = format!("{} {}", self.t_ns, self.dur_ns);
        for &h in &self.holders {
            s.push(' ');
            if h == 0 {
                s.push('-');
            } else {
                let nodes: Vec<String> = (0..64)
                    .filter(|i| h & (1 << i) != 0)
                    .map(|i| i.to_string())
                    .collect();
                s.push_str(&nodes.join(","));
            }
        }
        s
    }

    /// Parses a line of [`Sample::to_line`] for `n_addrs` addresses; `None` otherwise.
    pub fn parse(line: &str, n_addrs: usize) -> Option<Self> {
        let mut f = line.split_whitespace();
        let t_ns = f.next()?.parse().ok()?;
        let dur_ns = f.next()?.parse().ok()?;
        let mut holders = Vec::with_capacity(n_addrs);
        for word in f {
            let mut set = 0u64;
            if word != "-" {
                for n in word.split(',') {
                    let i: u32 = n.parse().ok()?;
                    if i >= 64 {
                        return None;
                    }
                    set |= 1 << i;
                }
            }
            holders.push(set);
        }
        (holders.len() == n_addrs).then_some(Sample {
            t_ns,
            dur_ns,
            holders,
        })
    }

    /// Addresses (indices) held by two or more nodes in this sample.
    pub fn doubled(&self) -> impl Iterator<Item = usize> + '_ {
        self.holders
            .iter()
            .enumerate()
            .filter(|(_, h)| h.count_ones() >= 2)
            .map(|(i, _)| i)
    }
}

/// Sampler settings.
#[derive(Clone, Debug)]
pub struct SamplerOptions {
    /// The node namespaces, by name; their index is the node number.
    pub namespaces: Vec<String>,
    /// The public addresses to look for.
    pub addresses: Vec<IpAddr>,
    /// Time between the starts of two rounds.
    pub interval_ns: u64,
    /// The sampler stops by itself after this long.
    pub duration_ns: u64,
}

/// Runs the sampler until `duration_ns` has passed or `out` is closed.
pub fn run(opts: &SamplerOptions, out: &mut impl Write) -> io::Result<()> {
    if opts.namespaces.len() > 64 {
        return Err(io::Error::other("at most 64 namespaces"));
    }
    // One socket per namespace, each made inside its namespace; this thread goes back home.
    let mut socks = Vec::new();
    for ns in &opts.namespaces {
        socks.push(netns::within(ns, RouteSocket::open)?);
    }
    let addrs: Vec<String> = opts.addresses.iter().map(|a| a.to_string()).collect();
    writeln!(out, "# addresses {}", addrs.join(" "))?;
    writeln!(out, "# nodes {}", opts.namespaces.join(" "))?;
    out.flush()?;
    let begin = now_ns();
    let mut next = begin;
    let mut found = Vec::new();
    while next < begin + opts.duration_ns {
        sleep_until(next);
        let t_ns = now_ns();
        let mut holders = vec![0u64; opts.addresses.len()];
        for (i, s) in socks.iter_mut().enumerate() {
            found.clear();
            // A namespace that is gone (or a failed dump) holds nothing this round.
            if s.addresses(&mut found).is_ok() {
                for (k, a) in opts.addresses.iter().enumerate() {
                    if found.contains(a) {
                        holders[k] |= 1 << i;
                    }
                }
            }
        }
        let sample = Sample {
            t_ns,
            dur_ns: now_ns() - t_ns,
            holders,
        };
        writeln!(out, "{}", sample.to_line())?;
        out.flush()?;
        let now = now_ns();
        while next <= now {
            next += opts.interval_ns;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let s = Sample {
            t_ns: 5,
            dur_ns: 1,
            holders: vec![0, 1, 0b101, 1 << 63],
        };
        assert_eq!(s.to_line(), "5 1 - 0 0,2 63");
        assert_eq!(Sample::parse(&s.to_line(), 4), Some(s.clone()));
        assert_eq!(s.doubled().collect::<Vec<_>>(), vec![2]);
        for bad in [
            "",
            "5",
            "5 1 - 0",
            "5 1 - 0 0,x 1",
            "5 1 - 0 64 1",
            "x 1 - - - -",
        ] {
            assert_eq!(Sample::parse(bad, 4), None, "{bad:?}");
        }
    }
}
