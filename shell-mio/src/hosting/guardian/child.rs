//! The guardian process: set-up right after the fork, the watch loop, and fencing. Blocking is
//! fine here; nothing else runs in this process.

use super::wire::{Delivery, FenceReason, FenceReport, FromGuardian, ToGuardian, MAX_MESSAGE};
use super::{monotonic_ns, GuardianConfig, OnHang, KILL_WAIT, NETLINK_WAIT};
use crate::hosting::netlink::{Netlink, Reply};
use crate::hosting::{iface, IfaceAddr};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// The descriptor the guardian keeps its socket on; every other one above stderr is closed.
const SOCK_FD: RawFd = 3;

/// Runs the guardian; never returns.
pub(super) fn main(sock: OwnedFd, cfg: GuardianConfig, daemon: libc::pid_t) -> ! {
    detach(sock);
    let mut w = Watch {
        cfg,
        daemon: Daemon::open(daemon),
        held: Vec::new(),
        deliveries: Vec::new(),
        last_life: monotonic_ns(),
        armed: true,
        killed: false,
        eof: false,
        rbuf: vec![0; MAX_MESSAGE],
    };
    w.run();
    // SAFETY: _exit ends the process without running the parent's atexit handlers or flushing
    // its inherited stdio buffers twice.
    unsafe { libc::_exit(0) }
}

/// Own session, ignored signals, nothing inherited but the socket and stderr.
fn detach(sock: OwnedFd) {
    // SAFETY: plain libc calls on this (single-threaded, just forked) process and descriptors
    // it owns; failures leave the default, which is only less tidy.
    unsafe {
        libc::setsid();
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        let raw = sock.into_raw_fd();
        let high = libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 10);
        libc::close(raw);
        let devnull = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if devnull >= 0 {
            libc::dup2(devnull, 0);
            libc::dup2(devnull, 1);
            if libc::fcntl(2, libc::F_GETFD) < 0 {
                libc::dup2(devnull, 2);
            }
        }
        libc::dup2(high, SOCK_FD);
        if libc::syscall(libc::SYS_close_range, SOCK_FD + 1, u32::MAX, 0) != 0 {
            for fd in SOCK_FD + 1..4096 {
                libc::close(fd);
            }
        }
        libc::prctl(libc::PR_SET_NAME, c"pharos-guardian".as_ptr());
    }
}

struct Watch {
    cfg: GuardianConfig,
    daemon: Daemon,
    /// Every address the daemon may hold: grows by Hold, shrinks only by Released.
    held: Vec<IfaceAddr>,
    deliveries: Vec<Delivery>,
    /// Latest send time (CLOCK_MONOTONIC ns) of a daemon message.
    last_life: u64,
    /// A hang fences once per silence; any message re-arms.
    armed: bool,
    /// We killed the daemon (OnHang::Kill): its addresses are removed, nothing more can come.
    killed: bool,
    eof: bool,
    rbuf: Vec<u8>,
}

impl Watch {
    fn run(&mut self) {
        self.send(&FromGuardian::Ready);
        loop {
            let timeout = if self.armed {
                let deadline = self.last_life + self.cfg.heartbeat_timeout.as_nanos() as u64;
                let left = deadline.saturating_sub(monotonic_ns());
                left.div_ceil(1_000_000).min(i32::MAX as u64) as i32
            } else {
                -1
            };
            poll_in(timeout);
            self.read_all();
            if self.eof {
                if !self.killed && !self.held.is_empty() {
                    let report = self.fence(FenceReason::Gone);
                    log::warn!("guardian: the daemon is gone; fenced: {report:?}");
                }
                return;
            }
            let silence = monotonic_ns().saturating_sub(self.last_life);
            if self.armed && silence >= self.cfg.heartbeat_timeout.as_nanos() as u64 {
                self.hang(Duration::from_nanos(silence));
            }
        }
    }

    fn hang(&mut self, silence: Duration) {
        self.armed = false;
        match self.cfg.on_hang {
            OnHang::Kill => {
                log::warn!("guardian: no word from the daemon for {silence:?}; killing it");
                self.daemon.kill();
                self.killed = true;
                let deadline = monotonic_ns() + KILL_WAIT.as_nanos() as u64;
                while !self.eof {
                    let left = deadline.saturating_sub(monotonic_ns());
                    if left == 0 {
                        log::warn!("guardian: the daemon did not exit within {KILL_WAIT:?}");
                        break;
                    }
                    poll_in(left.div_ceil(1_000_000) as i32);
                    self.read_all();
                }
                let report = self.fence(FenceReason::Hung);
                log::warn!("guardian: fenced: {report:?}");
            }
            OnHang::Report => {
                log::warn!("guardian: no word from the daemon for {silence:?}; fencing");
                let report = self.fence(FenceReason::Hung);
                self.send(&FromGuardian::Fenced(report));
            }
        }
    }

    /// Reads every queued message (non-blocking); notes EOF.
    fn read_all(&mut self) {
        while !self.eof {
            // SAFETY: recv into our own buffer of its own size.
            let n = unsafe {
                libc::recv(
                    SOCK_FD,
                    self.rbuf.as_mut_ptr().cast(),
                    self.rbuf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                match io::Error::last_os_error().raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) => return,
                    _ => {}
                }
            }
            if n <= 0 {
                self.eof = true;
                return;
            }
            let Ok((sent, msg)) = ToGuardian::decode(&self.rbuf[..n as usize]) else {
                continue;
            };
            self.last_life = self.last_life.max(sent);
            self.armed = true;
            match msg {
                ToGuardian::Hold(a) => {
                    if !self.held.contains(&a) {
                        self.held.push(a);
                    }
                }
                ToGuardian::Released(a) => self.held.retain(|h| *h != a),
                ToGuardian::Deliveries(d) => self.deliveries = d,
                ToGuardian::Ping => self.send(&FromGuardian::Pong),
                ToGuardian::Heartbeat => {}
            }
        }
    }

    /// Removes every held address; delivers only if all of them are now gone.
    fn fence(&mut self, reason: FenceReason) -> FenceReport {
        let mut r = FenceReport {
            reason,
            removed: 0,
            absent: 0,
            failed: 0,
            delivered: 0,
            undelivered: 0,
        };
        if self.held.is_empty() {
            return r;
        }
        match Netlink::open() {
            Err(e) => {
                log::error!("guardian: cannot open netlink: {e}");
                r.failed = self.held.len() as u32;
            }
            Ok(mut nl) => {
                // Removing a primary IPv4 address must not take secondaries it was not told
                // about with it.
                let mut v4_ifaces: Vec<u32> = self
                    .held
                    .iter()
                    .filter(|a| a.addr.is_ipv4())
                    .map(|a| a.ifindex)
                    .collect();
                v4_ifaces.dedup();
                for i in v4_ifaces {
                    if let Err(e) = iface::promote_secondaries(i) {
                        log::warn!("guardian: {e}");
                    }
                }
                for a in &self.held {
                    nl.remove(a);
                }
                if let Err(e) = nl.wait(Instant::now() + NETLINK_WAIT) {
                    log::error!("guardian: netlink: {e}");
                }
                while let Some(c) = nl.poll_completion() {
                    match c.result {
                        Ok(Reply::Absent) => r.absent += 1,
                        Ok(_) => r.removed += 1,
                        Err(e) => {
                            log::error!("guardian: removing an address failed: {e}");
                            r.failed += 1;
                        }
                    }
                }
                // Answers that never came (socket failure) count as failures.
                let answered = r.removed + r.absent + r.failed;
                r.failed += (self.held.len() as u32).saturating_sub(answered);
            }
        }
        if r.failed == 0 {
            let timeout = self.cfg.connect_timeout;
            let results: Vec<io::Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = self
                    .deliveries
                    .iter()
                    .map(|d| s.spawn(move || deliver(d, timeout)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(io::Error::other("panicked")))
                    })
                    .collect()
            });
            for (d, res) in self.deliveries.iter().zip(results) {
                match res {
                    Ok(()) => r.delivered += 1,
                    Err(e) => {
                        log::warn!("guardian: delivery to {} failed: {e}", d.peer);
                        r.undelivered += 1;
                    }
                }
            }
        }
        r
    }

    fn send(&self, msg: &FromGuardian) {
        let mut buf = Vec::with_capacity(32);
        msg.encode(&mut buf);
        // SAFETY: send our own buffer; MSG_NOSIGNAL: a gone daemon is EPIPE, not SIGPIPE. A
        // failure only means the daemon is not there to hear it.
        unsafe {
            libc::send(
                SOCK_FD,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
    }
}

/// The daemon process, through a pidfd when the kernel has them: a signal then reaches exactly
/// that process even if it has died and its pid was reused.
struct Daemon {
    pid: libc::pid_t,
    pidfd: Option<RawFd>,
}

impl Daemon {
    fn open(pid: libc::pid_t) -> Self {
        // SAFETY: pidfd_open(2) has no memory arguments; the result is checked.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: getppid cannot fail.
        let still_parent = unsafe { libc::getppid() } == pid;
        let pidfd = (fd >= 0 && still_parent).then_some(fd as RawFd);
        Daemon { pid, pidfd }
    }

    fn kill(&self) {
        // SAFETY: signal syscalls without memory arguments (the siginfo pointer is null).
        unsafe {
            match self.pidfd {
                Some(fd) => {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd,
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                }
                None => {
                    libc::kill(self.pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// Waits until the socket is readable (or closed), at most `timeout_ms` (-1: no limit).
fn poll_in(timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd: SOCK_FD,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd; EINTR is as good as a timeout here.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// Connects from `d.local` to `d.peer` and writes `d.bytes`, each step within `timeout`; then
/// waits (up to `timeout` again) for the peer to close. Delivered once written; the wait is so
/// that our close never resets the connection (which can discard the bytes before the peer's
/// application read them) and so that "fenced" is reported once the peers have the news.
fn deliver(d: &Delivery, timeout: Duration) -> io::Result<()> {
    let sock = Socket::new(
        Domain::for_address(d.peer),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    sock.bind(&SocketAddr::new(d.local, 0).into())?;
    sock.connect_timeout(&d.peer.into(), timeout)?;
    sock.set_write_timeout(Some(timeout))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_tcp_nodelay(true)?;
    let mut stream: TcpStream = sock.into();
    stream.write_all(&d.bytes)?;
    stream.shutdown(Shutdown::Write)?;
    let mut sink = [0u8; 256];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}
