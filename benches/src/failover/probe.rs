//! The client probe: every interval it opens one TCP connection to every public address (all in
//! parallel, non-blocking) and reads the banner that names the node that answered. An attempt is
//! stamped with its start (CLOCK_MONOTONIC), so a probe every 10 ms resolves 10 ms whatever the
//! timeouts; the connect timeout is kept below the interval so that a silent address costs one
//! attempt, not several overlapping ones.
//!
//! Output, one line per attempt (in the order attempts finish):
//! `T_NS ADDRESS ok NODE` or `T_NS ADDRESS fail REASON`.

use super::clock::now_ns;
use socket2::{Domain, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

/// One probe attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRecord {
    /// When the attempt started (CLOCK_MONOTONIC ns).
    pub t_ns: u64,
    /// The address probed.
    pub addr: IpAddr,
    /// `Ok(node name)` from the banner, or `Err(reason)`.
    pub result: Result<String, String>,
}

impl ProbeRecord {
    /// The line format (no newline).
    pub fn to_line(&self) -> String {
        match &self.result {
            Ok(node) => format!("{} {} ok {}", self.t_ns, self.addr, node),
            Err(why) => format!("{} {} fail {}", self.t_ns, self.addr, why),
        }
    }

    /// Parses a line of [`ProbeRecord::to_line`]; `None` for anything else.
    pub fn parse(line: &str) -> Option<Self> {
        let mut f = line.split_whitespace();
        let t_ns = f.next()?.parse().ok()?;
        let addr = f.next()?.parse().ok()?;
        let kind = f.next()?;
        let word = f.next()?.to_string();
        if f.next().is_some() {
            return None;
        }
        let result = match kind {
            "ok" => Ok(word),
            "fail" => Err(word),
            _ => return None,
        };
        Some(ProbeRecord { t_ns, addr, result })
    }
}

/// Probe settings.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Addresses to connect to (address and port).
    pub targets: Vec<SocketAddr>,
    /// Time between the starts of two rounds.
    pub interval_ns: u64,
    /// A connect not done by then fails with `timeout`.
    pub connect_timeout_ns: u64,
    /// After the connect, a banner not read by then fails with `nobanner-timeout`.
    pub read_timeout_ns: u64,
    /// The probe stops by itself after this long.
    pub duration_ns: u64,
}

struct Attempt {
    addr: IpAddr,
    start: u64,
    deadline: u64,
    sock: Socket,
    connected: bool,
    banner: Vec<u8>,
}

fn errno_word(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused".into(),
        Some(libc::EHOSTUNREACH) => "unreachable".into(),
        Some(libc::ENETUNREACH) => "netunreachable".into(),
        Some(libc::ECONNRESET) => "reset".into(),
        Some(libc::ETIMEDOUT) => "timeout".into(),
        Some(libc::EADDRNOTAVAIL) => "addrnotavail".into(),
        Some(n) => format!("errno{n}"),
        None => "error".into(),
    }
}

fn start(target: SocketAddr, now: u64, timeout: u64) -> Result<Attempt, String> {
    let sock =
        Socket::new(Domain::for_address(target), Type::STREAM, None).map_err(|e| errno_word(&e))?;
    sock.set_nonblocking(true).map_err(|e| errno_word(&e))?;
    match sock.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(errno_word(&e)),
    }
    Ok(Attempt {
        addr: target.ip(),
        start: now,
        deadline: now + timeout,
        sock,
        connected: false,
        banner: Vec::new(),
    })
}

/// What happened to an attempt on a poll event.
enum Step {
    Wait,
    Done(Result<String, String>),
}

fn step(a: &mut Attempt, revents: i16, now: u64, read_timeout: u64) -> Step {
    if !a.connected {
        match a.sock.take_error() {
            Ok(None) if revents & libc::POLLOUT != 0 => {
                a.connected = true;
                a.deadline = now + read_timeout;
                return Step::Wait;
            }
            Ok(None) => return Step::Wait,
            Ok(Some(e)) | Err(e) => return Step::Done(Err(errno_word(&e))),
        }
    }
    let mut buf = [0u8; 64];
    loop {
        match (&a.sock).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                a.banner.extend_from_slice(&buf[..n]);
                if a.banner.contains(&b'\n') || a.banner.len() > 64 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) => return Step::Done(Err(errno_word(&e))),
        }
    }
    let text = String::from_utf8_lossy(&a.banner);
    let name = text.split_whitespace().next().unwrap_or("");
    if name.is_empty() {
        Step::Done(Err("nobanner".into()))
    } else {
        Step::Done(Ok(name.to_string()))
    }
}

/// Runs the probe, writing one line per attempt to `out` (flushed after each batch), until
/// `duration_ns` has passed or `out` is closed.
pub fn run(opts: &ProbeOptions, out: &mut impl Write) -> io::Result<()> {
    let begin = now_ns();
    let end = begin + opts.duration_ns;
    let mut next_round = begin;
    let mut live: Vec<Attempt> = Vec::new();
    let mut done: Vec<ProbeRecord> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        let now = now_ns();
        if now >= next_round {
            if now >= end {
                break;
            }
            for &t in &opts.targets {
                match start(t, now, opts.connect_timeout_ns) {
                    Ok(a) => live.push(a),
                    Err(why) => done.push(ProbeRecord {
                        t_ns: now,
                        addr: t.ip(),
                        result: Err(why),
                    }),
                }
            }
            // Skip rounds we are too late for rather than bunching them up.
            while next_round <= now {
                next_round += opts.interval_ns;
            }
        }
        // Time-outs.
        let now = now_ns();
        let mut i = 0;
        while i < live.len() {
            if live[i].deadline <= now {
                let a = live.swap_remove(i);
                let why = if a.connected {
                    "nobanner-timeout"
                } else {
                    "timeout"
                };
                done.push(finish(a, Err(why.into())));
            } else {
                i += 1;
            }
        }
        for r in done.drain(..) {
            writeln!(out, "{}", r.to_line())?;
        }
        out.flush()?;
        let wake = live.iter().map(|a| a.deadline).fold(next_round, u64::min);
        let wait_ms = wake.saturating_sub(now_ns()).div_ceil(1_000_000);
        fds.clear();
        fds.extend(live.iter().map(|a| libc::pollfd {
            fd: a.sock.as_raw_fd(),
            events: if a.connected {
                libc::POLLIN
            } else {
                libc::POLLOUT
            },
            revents: 0,
        }));
        // SAFETY: poll(2) on a valid array of `fds.len()` pollfd structs that we own.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait_ms as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        let now = now_ns();
        // Walk backwards so swap_remove keeps the unvisited indices valid.
        for k in (0..fds.len()).rev() {
            if fds[k].revents == 0 {
                continue;
            }
            if let Step::Done(result) =
                step(&mut live[k], fds[k].revents, now, opts.read_timeout_ns)
            {
                let a = live.swap_remove(k);
                done.push(finish(a, result));
            }
        }
    }
    Ok(())
}

/// Closes an attempt's socket with a reset (linger 0): the responder closed first, and the reset
/// clears its TIME_WAIT entry, so 100 connections a second per address never run out of ports.
fn finish(a: Attempt, result: Result<String, String>) -> ProbeRecord {
    let _ = a.sock.set_linger(Some(std::time::Duration::ZERO));
    ProbeRecord {
        t_ns: a.start,
        addr: a.addr,
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for r in [
            ProbeRecord {
                t_ns: 12,
                addr: "10.0.0.1".parse().unwrap(),
                result: Ok("n1".into()),
            },
            ProbeRecord {
                t_ns: 13,
                addr: "::1".parse().unwrap(),
                result: Err("timeout".into()),
            },
        ] {
            assert_eq!(ProbeRecord::parse(&r.to_line()), Some(r));
        }
        for bad in [
            "",
            "1",
            "1 10.0.0.1",
            "x 10.0.0.1 ok n",
            "1 10.0.0.1 maybe n",
            "1 a ok n",
        ] {
            assert_eq!(ProbeRecord::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn probes_a_loopback_banner_and_a_closed_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let closed = {
            let c = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            c.local_addr().unwrap()
        };
        // The server answers until the probe is done: a loaded machine may fit fewer rounds in
        // the probe's 25 ms, and a server waiting for a fixed count would then wait for ever.
        l.set_nonblocking(true).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let server = std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let _ = c.write_all(b"n7\n");
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
                }
            }
        });
        let opts = ProbeOptions {
            targets: vec![SocketAddr::from(([127, 0, 0, 1], port)), closed],
            interval_ns: 10_000_000,
            connect_timeout_ns: 9_000_000,
            read_timeout_ns: 500_000_000,
            duration_ns: 25_000_000,
        };
        let mut out = Vec::new();
        run(&opts, &mut out).unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        server.join().unwrap();
        let recs: Vec<ProbeRecord> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| ProbeRecord::parse(l).unwrap())
            .collect();
        // Up to three rounds (at 0, 10 and 20 ms; fewer when the machine is loaded), two
        // attempts each: one answered, one refused.
        let rounds = recs.len() / 2;
        assert!(recs.len() % 2 == 0 && (1..=3).contains(&rounds), "{recs:?}");
        let count = |want: Result<String, String>| recs.iter().filter(|r| r.result == want).count();
        assert_eq!(count(Ok("n7".into())), rounds, "{recs:?}");
        assert_eq!(count(Err("refused".into())), rounds, "{recs:?}");
        assert!(recs.windows(2).all(|w| w[0].t_ns <= w[1].t_ns + 30_000_000));
    }
}
