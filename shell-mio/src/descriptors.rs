//! File descriptors: the limit pharosd runs under, how many control clients that leaves room
//! for, a spare descriptor held in reserve so that a listener can still accept (and close) a
//! connection when the process has run out, and warnings logged once per burst instead of once
//! per attempt.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

/// Most control clients served at once, whatever the descriptor limit.
pub const MAX_CONTROL_CLIENTS: usize = 256;

/// Within this time after a recurring warning, further ones are only counted.
pub const BURST_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The soft `RLIMIT_NOFILE` of this process (`u64::MAX` if unlimited or unknown).
pub fn nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; it has no other effect.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    if rc != 0 || r.rlim_cur == libc::RLIM_INFINITY {
        return u64::MAX;
    }
    r.rlim_cur
}

/// How many control clients to serve at once under a descriptor limit of `nofile`: a quarter
/// of it (the rest is for peer connections, the listeners, the lock file and the spare), at
/// least 1 and at most [`MAX_CONTROL_CLIENTS`].
pub fn control_client_limit(nofile: u64) -> usize {
    usize::try_from(nofile / 4)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONTROL_CLIENTS)
}

/// Whether an error means "no descriptor left" (for the process or the whole system).
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// One descriptor (`/dev/null`) kept open so that it can be given up for a moment: with it
/// closed, a listener can accept a connection it has no room for, and close it at once, rather
/// than leaving it queued (and, with edge-triggered readiness, the listener stuck).
pub struct Spare(Option<File>);

impl Spare {
    /// Opens the spare (if even that fails, the daemon runs without one).
    pub fn open() -> Spare {
        Spare(File::open("/dev/null").ok())
    }

    /// Runs `f` with the spare descriptor closed, then takes it back. `None` (and `f` is not
    /// run) if there was no spare to give up.
    pub fn without<T>(&mut self, f: impl FnOnce() -> T) -> Option<T> {
        self.0.take()?;
        let result = f();
        self.0 = File::open("/dev/null").ok();
        Some(result)
    }
}

/// A warning that may recur in bursts (descriptor exhaustion, a full client table): logged at
/// most once per [`BURST_LOG_INTERVAL`], with a count of the occurrences in between.
#[derive(Default)]
pub struct BurstLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl BurstLog {
    /// Counts one occurrence at `now`. `Some(n)`: log it now, and say that `n` more happened
    /// since the last warning; `None`: stay quiet.
    pub fn occurred(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < BURST_LOG_INTERVAL)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// ", N more since the last warning", or nothing.
pub fn more_since(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more since the last warning)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_limit_follows_the_descriptor_limit() {
        assert_eq!(control_client_limit(64), 16);
        assert_eq!(control_client_limit(1024), 256);
        assert_eq!(control_client_limit(u64::MAX), MAX_CONTROL_CLIENTS);
        assert_eq!(control_client_limit(3), 1);
        assert!(nofile_limit() > 0);
    }

    #[test]
    fn exhaustion_is_recognised() {
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_exhaustion(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_exhaustion(&io::Error::from_raw_os_error(libc::EAGAIN)));
    }

    #[test]
    fn the_spare_is_given_up_and_taken_back() {
        let mut s = Spare::open();
        assert_eq!(s.without(|| 7), Some(7));
        assert!(s.0.is_some());
        s.0 = None;
        assert_eq!(s.without(|| 7), None);
    }

    #[test]
    fn a_burst_is_logged_once() {
        let mut l = BurstLog::default();
        let t = Instant::now();
        assert_eq!(l.occurred(t), Some(0));
        for i in 0..5 {
            assert_eq!(l.occurred(t + Duration::from_millis(i)), None);
        }
        assert_eq!(l.occurred(t + BURST_LOG_INTERVAL), Some(5));
        assert_eq!(l.occurred(t + BURST_LOG_INTERVAL), None);
        assert_eq!(more_since(0), "");
        assert_eq!(more_since(5), " (5 more since the last warning)");
    }
}
