//! The trace of a run: one text line per event, action, fault and state change, with its virtual
//! time. Every line is folded into a 64-bit FNV-1a digest, so two runs can be compared byte for
//! byte without keeping their traces; the last few lines are kept for failure reports, and the
//! whole trace on request. A trace that is off ([`Trace::off`]) formats nothing: the benches
//! measure the nodes, not the text.

use crate::time::Instant;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds `bytes` into an FNV-1a 64 state.
pub fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= b as u64;
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// Virtual time as the trace prints it: seconds with microseconds, right-aligned.
#[derive(Clone, Copy, Debug)]
pub struct Secs(pub Instant);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        write!(
            f,
            "{:>4}.{:06}",
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000
        )
    }
}

impl Secs {
    /// Without the alignment padding.
    pub fn to_string_trimmed(self) -> alloc::string::String {
        alloc::format!("{self}").trim_start().into()
    }
}

/// A duration as the reports print it (`1.250s`, `3ms`).
#[derive(Clone, Copy, Debug)]
pub struct Dur(pub core::time::Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.as_nanos() % 1_000_000 == 0 && d < core::time::Duration::from_secs(1) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{}.{:03}s", d.as_secs(), d.subsec_millis())
        }
    }
}

/// The trace of one run.
#[derive(Debug)]
pub struct Trace {
    on: bool,
    digest: u64,
    lines: u64,
    tail: VecDeque<String>,
    tail_cap: usize,
    all: Option<Vec<String>>,
    buf: String,
}

impl Trace {
    /// A trace that keeps its last `tail` lines, and every line if `keep_all`.
    pub fn new(tail: usize, keep_all: bool) -> Self {
        Trace {
            on: true,
            digest: FNV_OFFSET,
            lines: 0,
            tail: VecDeque::with_capacity(tail),
            tail_cap: tail,
            all: keep_all.then(Vec::new),
            buf: String::with_capacity(128),
        }
    }

    /// A trace that records nothing: no line, no digest (it stays at [`FNV_OFFSET`]).
    pub fn off() -> Self {
        Trace {
            on: false,
            ..Trace::new(0, false)
        }
    }

    /// Whether lines are recorded (callers skip work that only feeds the trace).
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Appends the line `TIME WHO WHAT`.
    #[inline]
    pub fn record(&mut self, now: Instant, who: &dyn fmt::Display, what: fmt::Arguments<'_>) {
        if self.on {
            self.write(now, who, what);
        }
    }

    fn write(&mut self, now: Instant, who: &dyn fmt::Display, what: fmt::Arguments<'_>) {
        self.buf.clear();
        // Writing into a String cannot fail.
        let _ = write!(self.buf, "{} ", Secs(now));
        let start = self.buf.len();
        let _ = write!(self.buf, "{who}");
        // Pad by hand: a Display impl may ignore the width.
        while self.buf.len() < start + 4 {
            self.buf.push(' ');
        }
        let _ = write!(self.buf, " {what}");
        self.digest = fnv1a(self.digest, self.buf.as_bytes());
        self.digest = fnv1a(self.digest, b"\n");
        self.lines += 1;
        if let Some(all) = &mut self.all {
            all.push(self.buf.clone());
        }
        if self.tail_cap == 0 {
            return;
        }
        // Reuse the oldest line's allocation once the tail is full.
        let mut line = if self.tail.len() == self.tail_cap {
            self.tail.pop_front().unwrap_or_default()
        } else {
            String::new()
        };
        line.clear();
        line.push_str(&self.buf);
        self.tail.push_back(line);
    }

    /// The digest of every line so far.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// How many lines were recorded.
    pub fn len(&self) -> u64 {
        self.lines
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// The last lines kept, oldest first.
    pub fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }

    /// Every line, when the trace was created with `keep_all`.
    pub fn lines(&self) -> Option<&[String]> {
        self.all.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use core::time::Duration;

    #[test]
    fn fnv1a_known_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn tail_keeps_the_last_lines_and_digest_covers_all() {
        let mut t = Trace::new(2, true);
        for i in 0..5 {
            t.record(
                Instant::from_nanos(i * 1_500_000),
                &"n1",
                format_args!("line {i}"),
            );
        }
        let tail: Vec<&str> = t.tail().collect();
        assert_eq!(tail, ["   0.004500 n1   line 3", "   0.006000 n1   line 4"]);
        assert_eq!(t.len(), 5);
        assert_eq!(t.lines().unwrap().len(), 5);
        let mut d = FNV_OFFSET;
        for l in t.lines().unwrap() {
            d = fnv1a(d, l.as_bytes());
            d = fnv1a(d, b"\n");
        }
        assert_eq!(d, t.digest());
        assert_eq!(format!("{}", Dur(Duration::from_millis(3))), "3ms");
        assert_eq!(format!("{}", Dur(Duration::from_millis(1250))), "1.250s");
    }
}
