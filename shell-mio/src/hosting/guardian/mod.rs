//! The guardian: a tiny child process per daemon that makes sure the node's public addresses do
//! not outlive the daemon, whether it dies (kill -9, a crash) or hangs (SIGSTOP, a stall).
//!
//! # How it works
//!
//! [`Guardian::spawn`] forks the guardian at daemon start and connects the two with a
//! `SOCK_SEQPACKET` socketpair. The daemon tells it, in small non-blocking messages
//! ([`wire::ToGuardian`]):
//! - each address *before* adding it ([`Guardian::hold`]) and *after* removing it
//!   ([`Guardian::released`]); so at any moment the guardian's set covers every address the daemon
//!   may have configured (plus, briefly, ones it is about to add or has just removed);
//! - a heartbeat at a fixed period ([`Guardian::tick`], a quarter of the timeout);
//! - the deliveries to make when fencing ([`Guardian::set_deliveries`]): per peer, a local address
//!   to bind, the peer's socket address, and opaque bytes (one encoded "released" frame).
//!
//! The guardian **fences** when the daemon's end of the socket closes (EOF: the daemon exited or
//! was killed, whatever signal, whichever thread) while it still held addresses, or when it has
//! sent nothing for the heartbeat timeout (hung). Fencing: remove every address in the set (its
//! own netlink socket; blocking is fine here), then, if every removal succeeded or found the
//! address already gone, connect from each delivery's local address to its peer and write the
//! bytes (all peers in parallel, each with its own short connect timeout): the peers learn "this
//! node's addresses are gone" at once instead of waiting for a lease to run out. If any removal
//! failed, nothing is delivered (the bytes would be a lie); the peers then wait for the lease. A
//! clean shutdown releases everything first and then closes the socket ([`Guardian::close`]): EOF
//! with an empty set, so nothing is removed and nothing delivered. After EOF the guardian exits.
//!
//! # Why it is safe (and where it improves on the first design)
//!
//! - **EOF, not `PR_SET_PDEATHSIG`.** Death is seen as EOF on the socketpair, whose daemon end
//!   only the daemon holds (it is `SOCK_CLOEXEC`, so event scripts do not inherit it). EOF comes
//!   whenever the daemon process ends, however, and does not depend on which thread forked the
//!   guardian (`PR_SET_PDEATHSIG` follows the forking *thread*, ENVIRONMENT.md).
//! - **Forked, single-threaded, with nothing inherited.** `spawn` refuses to fork when the process
//!   has more than one thread (a forked child of a threaded process may inherit a held lock). The
//!   child closes every descriptor except its socket and stderr (stdin and stdout become
//!   `/dev/null`): a guardian holding the daemon's listener or peer connections open would hide the
//!   daemon's death from its peers, who detect it as EOF.
//! - **Out of reach of the daemon's signals.** The guardian calls `setsid`, so a signal to the
//!   daemon's process group (`kill -STOP -PGID`, a terminal's Ctrl-Z or Ctrl-C) does not reach it,
//!   and ignores SIGTERM, SIGINT, SIGHUP (the daemon's shutdown releases first, then closes), plus
//!   SIGPIPE and the job-control signals. Only SIGKILL or SIGSTOP aimed at its own PID stop it;
//!   the kernel address lifetimes are the defence left for that.
//! - **Silence measured on the daemon's clock.** Every message carries the daemon's
//!   `CLOCK_MONOTONIC` send time; the guardian, on the same host and clock, fences when
//!   `now - last send > timeout`. A guardian that was itself delayed reads old messages as old.
//! - **A hung daemon is killed before it is fenced (`OnHang::Kill`, the default).** A daemon
//!   frozen between deciding to add (or renew) an address and the `sendto` that does it would,
//!   when thawed, re-create an address the guardian removed and a peer has taken over: a duplicate
//!   no later message can prevent (the decision was made before the freeze). So on a missed
//!   heartbeat the guardian first sends SIGKILL to the daemon (it works on a stopped process) and
//!   waits for EOF (up to [`KILL_WAIT`]): after that the daemon runs no more instructions, and only
//!   then are the addresses removed. The daemon is restarted by its supervisor; its peers see its
//!   connections close, as after a crash, so they also notice it faster than by keepalives.
//!   `OnHang::Report` keeps the daemon alive instead and sends it [`FenceReport`] over the socket
//!   (it reads that when it thaws and must then treat every address as released); the small window
//!   above then remains. Renewals cannot resurrect in either mode (see `netlink`'s docs).
//! - **Only what it was told.** The set grows by `Hold` and shrinks only by `Released`; a fence
//!   does not clear it (an add may still be in flight), so a later fence or EOF removes again.
//!   Removal names address, prefix length and interface exactly; an address the daemon never
//!   announced is never touched. The daemon must send `Released` after an add that failed with
//!   `EEXIST` (the address is someone else's) *without* removing it.
//!
//! Costs: one process (measured, debug build: 1.6 MiB RSS, of which 124 KiB private; the rest is
//! shared with the daemon through the fork), one datagram per heartbeat period, one per address
//! change, nothing else until it fences.

mod child;
pub mod wire;

use super::IfaceAddr;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitStatus;
use std::time::{Duration, Instant};
pub use wire::{Delivery, FenceReason, FenceReport};
use wire::{FromGuardian, ToGuardian};

/// How long a guardian that killed a hung daemon waits for its end of the socket to close before
/// it removes the addresses anyway (a process stuck in the kernel dies on its way out).
pub const KILL_WAIT: Duration = Duration::from_secs(1);
/// How long [`Guardian::spawn`] waits for the child to say it is ready.
const READY_WAIT: Duration = Duration::from_secs(5);
/// How long the guardian waits for the kernel to answer its removals.
const NETLINK_WAIT: Duration = Duration::from_secs(2);

/// What the guardian does when the daemon stops sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnHang {
    /// SIGKILL the daemon, wait for its end of the socket to close, then fence (safe; default).
    Kill,
    /// Fence and tell the daemon ([`GuardianEvent::Fenced`]); it stays alive.
    Report,
}

/// The guardian's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardianConfig {
    /// Silence after which the daemon counts as hung.
    pub heartbeat_timeout: Duration,
    /// Connect (and write) timeout of each delivery.
    pub connect_timeout: Duration,
    /// What to do with a hung daemon.
    pub on_hang: OnHang,
}

impl Default for GuardianConfig {
    fn default() -> Self {
        GuardianConfig {
            heartbeat_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(250),
            on_hang: OnHang::Kill,
        }
    }
}

/// What the guardian reports to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardianEvent {
    /// The guardian fenced while the daemon was hung (only with [`OnHang::Report`]): every
    /// address is gone, treat them all as released.
    Fenced(FenceReport),
    /// Answer to [`Guardian::ping`].
    Pong,
    /// The guardian is gone (killed, crashed): nothing protects the addresses any more.
    Gone,
}

/// The daemon's end: sends what the guardian must know, reads what it reports. Register it with
/// mio for readability through `SourceFd`.
pub struct Guardian {
    sock: OwnedFd,
    pid: libc::pid_t,
    period: Duration,
    next_beat: Instant,
    events: VecDeque<GuardianEvent>,
    gone: bool,
    sbuf: Vec<u8>,
}

impl Guardian {
    /// Forks the guardian. Call from the main thread before any other thread exists (an error
    /// otherwise) and before opening sockets that peers watch (the child closes what it
    /// inherited, but only after the fork). Blocks until the child is ready (milliseconds).
    pub fn spawn(cfg: &GuardianConfig) -> io::Result<Guardian> {
        let threads = std::fs::read_dir("/proc/self/task")?.count();
        if threads != 1 {
            return Err(io::Error::other(format!(
                "the guardian must be forked before any thread starts ({threads} threads now)"
            )));
        }
        let mut fds = [0 as RawFd; 2];
        // SAFETY: socketpair writes two descriptors into the array we pass.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors are fresh and owned by nobody else.
        let (ours, theirs) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: getpid cannot fail.
        let daemon = unsafe { libc::getpid() };
        // SAFETY: the process is single-threaded (checked above), so the child may run ordinary
        // Rust code; it never returns from child::main.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid == 0 {
            drop(ours);
            child::main(theirs, *cfg, daemon);
        }
        drop(theirs);
        let mut g = Guardian {
            sock: ours,
            pid,
            period: cfg.heartbeat_timeout / 4,
            next_beat: Instant::now(),
            events: VecDeque::new(),
            gone: false,
            sbuf: Vec::with_capacity(128),
        };
        if let Err(e) = g.await_ready() {
            // SAFETY: kill and waitpid on the child we just forked.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
        set_nonblocking(g.sock.as_raw_fd())?;
        Ok(g)
    }

    fn await_ready(&mut self) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, READY_WAIT.as_millis() as i32) };
        if rc <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the guardian did not start",
            ));
        }
        let mut buf = [0u8; 16];
        // SAFETY: recv into a local buffer of its own size.
        let n = unsafe { libc::recv(self.sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match FromGuardian::decode(&buf[..n.max(0) as usize]) {
            Ok(FromGuardian::Ready) => Ok(()),
            _ => Err(io::Error::other("the guardian failed to start")),
        }
    }

    /// The guardian's process id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Tells the guardian that the daemon may hold `a` from now on. Call *before* adding it, and
    /// do not add it when this fails.
    pub fn hold(&mut self, a: &IfaceAddr) -> io::Result<()> {
        self.send(&ToGuardian::Hold(*a))
    }

    /// Tells the guardian that `a` is no longer held. Call *after* removing it, or after an add
    /// that failed (`EEXIST`: someone else's address, which must never be removed).
    pub fn released(&mut self, a: &IfaceAddr) -> io::Result<()> {
        self.send(&ToGuardian::Released(*a))
    }

    /// Replaces the deliveries made when fencing.
    pub fn set_deliveries(&mut self, deliveries: &[Delivery]) -> io::Result<()> {
        self.send(&ToGuardian::Deliveries(deliveries.to_vec()))
    }

    /// Asks for a [`GuardianEvent::Pong`] (a round trip proves the guardian is running).
    pub fn ping(&mut self) -> io::Result<()> {
        self.send(&ToGuardian::Ping)
    }

    /// Sends a heartbeat if one is due at `now`. Call every loop turn, or at
    /// [`Guardian::next_heartbeat`].
    pub fn tick(&mut self, now: Instant) -> io::Result<()> {
        if now < self.next_beat {
            return Ok(());
        }
        self.next_beat = now + self.period;
        match self.send(&ToGuardian::Heartbeat) {
            // A full socket means the guardian has not read for a while; what is queued already
            // shows that we are alive.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// When the next heartbeat is due.
    pub fn next_heartbeat(&self) -> Instant {
        self.next_beat
    }

    /// Reads what the guardian sent (call when readable).
    pub fn receive(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64];
        while !self.gone {
            // SAFETY: recv into a local buffer of its own size.
            let n = unsafe {
                libc::recv(
                    self.sock.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::EINTR) => continue,
                    Some(libc::ECONNRESET) => {}
                    _ => return Err(e),
                }
            }
            if n <= 0 {
                self.gone = true;
                self.events.push_back(GuardianEvent::Gone);
                break;
            }
            match FromGuardian::decode(&buf[..n as usize]) {
                Ok(FromGuardian::Fenced(f)) => self.events.push_back(GuardianEvent::Fenced(f)),
                Ok(FromGuardian::Pong) => self.events.push_back(GuardianEvent::Pong),
                Ok(FromGuardian::Ready) | Err(_) => {}
            }
        }
        Ok(())
    }

    /// The next report, if any.
    pub fn poll_event(&mut self) -> Option<GuardianEvent> {
        self.events.pop_front()
    }

    /// Reaps the guardian if it has exited (non-blocking).
    pub fn try_reap(&mut self) -> io::Result<Option<ExitStatus>> {
        wait_child(self.pid, libc::WNOHANG)
    }

    /// Clean shutdown, after every address was removed and reported [`Guardian::released`]:
    /// closes the socket and waits for the guardian to exit. It exits at once when it holds
    /// nothing; if it still holds addresses it fences first (bounded by the netlink and connect
    /// timeouts).
    pub fn close(self) -> io::Result<ExitStatus> {
        let pid = self.pid;
        drop(self.sock);
        wait_child(pid, 0).and_then(|s| s.ok_or_else(|| io::Error::other("guardian not reaped")))
    }

    fn send(&mut self, msg: &ToGuardian) -> io::Result<()> {
        if self.gone {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the guardian is gone",
            ));
        }
        self.sbuf.clear();
        msg.encode(monotonic_ns(), &mut self.sbuf).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "message too long for the guardian",
            )
        })?;
        loop {
            // SAFETY: send our own initialised buffer; MSG_NOSIGNAL: EPIPE instead of SIGPIPE.
            let rc = unsafe {
                libc::send(
                    self.sock.as_raw_fd(),
                    self.sbuf.as_ptr().cast(),
                    self.sbuf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EPIPE) | Some(libc::ECONNRESET) => {
                    self.gone = true;
                    self.events.push_back(GuardianEvent::Gone);
                    return Err(e);
                }
                _ => return Err(e),
            }
        }
    }
}

impl AsRawFd for Guardian {
    /// Register this with mio as `SourceFd(&x.as_raw_fd())`, for readability.
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock both processes stamp and compare.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn wait_child(pid: libc::pid_t, flags: i32) -> io::Result<Option<ExitStatus>> {
    use std::os::unix::process::ExitStatusExt;
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child, writing into a local int.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc == pid {
            return Ok(Some(ExitStatus::from_raw(status)));
        }
        if rc == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
