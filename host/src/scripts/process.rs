//! One script as a child process: its own process group, stdin from `/dev/null`, stdout and
//! stderr into one pipe (CTDB's `run_proc.c` does the same), the output kept up to a limit,
//! and the Linux calls the runner waits with (a pidfd, `poll`, an eventfd).

use super::discover::Script;
use super::event::Event;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A running (or exited, not yet reaped) script.
pub(crate) struct Child {
    child: std::process::Child,
    /// Readable once the process has exited (`None` where the kernel has no pidfds: then
    /// the runner looks every [`NO_PIDFD_TICK`]).
    pidfd: Option<OwnedFd>,
    /// The read end of the output pipe, non-blocking; `None` once closed.
    out: Option<File>,
    output: Vec<u8>,
    dropped: u64,
    limit: usize,
    /// When it was started (monotonic, for the duration).
    pub started: Instant,
    /// When it was started, in ms since the Unix epoch (for `scriptstatus`).
    pub start_ms: u64,
}

/// How often to look for an exit without a pidfd.
pub(crate) const NO_PIDFD_TICK: Duration = Duration::from_millis(10);

/// Milliseconds since the Unix epoch, now.
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A pipe, both ends close-on-exec (the child gets its end through dup2, which clears the
/// flag), the read end non-blocking (the write end stays blocking: a script writing a lot
/// must wait, not fail with EAGAIN).
fn output_pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array it is given.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just created by pipe2 and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_SETFL on a descriptor we own.
    cvt(unsafe { libc::fcntl(read.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) })?;
    Ok((File::from(read), write))
}

/// A descriptor that becomes readable when process `pid` (our child) exits.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just gave us this descriptor; nobody else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `signal` to every process of the group `pgid` (ESRCH, "nobody left", is fine).
pub(crate) fn kill_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill with a negative pid signals that process group; no memory involved.
        unsafe { libc::kill(-pgid, signal) };
    }
}

impl Child {
    /// Starts `script` for `event`: `argv[0]` is the script's name and the program its path
    /// (so `$0` in a `#!/bin/sh` script is the path, as under CTDB), then the event's name and
    /// arguments. `env` is added to the inherited environment.
    pub fn spawn(
        script: &Script,
        event: &Event,
        env: &[(OsString, OsString)],
        limit: usize,
    ) -> io::Result<Child> {
        let (out, write) = output_pipe()?;
        let write2 = write.try_clone()?;
        let mut cmd = Command::new(&script.path);
        cmd.arg0(&script.name)
            .arg(event.name())
            .args(event.args())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(write2))
            // Its own process group, so that a timeout kills what it started too.
            .process_group(0);
        let started = Instant::now();
        let start_ms = wall_ms();
        let child = cmd.spawn()?;
        // The write ends are closed with `cmd`: only the script (and what it starts) holds them.
        drop(cmd);
        let pidfd = pidfd_open(child.id());
        Ok(Child {
            child,
            pidfd,
            out: Some(out),
            output: Vec::new(),
            dropped: 0,
            limit,
            started,
            start_ms,
        })
    }

    /// The process (and process group) id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pidfd, for `poll`.
    pub fn pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The output pipe, for `poll`, while it is open.
    pub fn out_fd(&self) -> Option<RawFd> {
        self.out.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Reads what the pipe holds now, keeping up to the limit and counting the rest; closes
    /// the pipe at end of file or on an error.
    pub fn read_output(&mut self) {
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let mut buf = [0u8; 8192];
        loop {
            match out.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let keep = n.min(self.limit.saturating_sub(self.output.len()));
                    self.output.extend_from_slice(&buf[..keep]);
                    self.dropped += (n - keep) as u64;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => break,
            }
        }
        self.out = None;
    }

    /// Whether the process has exited, without reaping it: while it is a zombie its process
    /// group id cannot be reused, so the group can still be signalled safely.
    pub fn has_exited(&self) -> bool {
        let pid: libc::id_t = self.child.id();
        // SAFETY: siginfo_t is a plain C struct; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child, writing into a local siginfo_t; WNOWAIT leaves it
        // waitable, WNOHANG returns at once.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: reading si_pid of a siginfo_t that waitid filled (or left zeroed).
        rc != 0 || unsafe { info.si_pid() } != 0
    }

    /// Reaps an exited process: its exit status, the output it left in the pipe (read now;
    /// what a background child it started writes later is not waited for, as in CTDB), and
    /// how long it ran.
    pub fn finish(mut self) -> Finished {
        self.read_output();
        self.out = None;
        let status = self.child.wait().ok();
        Finished {
            status,
            duration: self.started.elapsed(),
            start_ms: self.start_ms,
            output: self.output,
            dropped: self.dropped,
        }
    }

    /// Where it stands without waiting: for a script abandoned while it still runs (killed,
    /// reaped later by [`Child::reap_if_exited`]).
    pub fn snapshot(&mut self) -> Finished {
        self.read_output();
        Finished {
            status: None,
            duration: self.started.elapsed(),
            start_ms: self.start_ms,
            output: std::mem::take(&mut self.output),
            dropped: self.dropped,
        }
    }

    /// Reaps it if it has exited; true when it is gone.
    pub fn reap_if_exited(&mut self) -> bool {
        self.out = None;
        matches!(self.child.try_wait(), Ok(Some(_)) | Err(_))
    }
}

/// A script's end as the process saw it.
pub(crate) struct Finished {
    /// Exit status (`None`: not reaped, or could not be).
    pub status: Option<ExitStatus>,
    pub duration: Duration,
    pub start_ms: u64,
    pub output: Vec<u8>,
    pub dropped: u64,
}

impl Finished {
    /// The exit code, or the signal that ended it.
    pub fn code_or_signal(&self) -> (Option<i32>, Option<i32>) {
        match self.status {
            Some(s) => (s.code(), s.signal()),
            None => (None, None),
        }
    }
}

/// An eventfd: the handle rings it after queueing a command, so the worker's `poll` wakes.
pub(crate) struct Bell(File);

impl Bell {
    pub fn new() -> io::Result<Bell> {
        // SAFETY: eventfd takes an initial value and flags and returns a new descriptor.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: the descriptor was just created and is owned by nobody else.
        Ok(Bell(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    /// Never blocks (a non-blocking eventfd only refuses at a count of 2^64 - 2).
    pub fn ring(&self) {
        let _ = std::io::Write::write(&mut &self.0, &1u64.to_ne_bytes());
    }

    /// Resets it after a wake-up.
    pub fn clear(&self) {
        let mut b = [0u8; 8];
        let _ = (&self.0).read(&mut b);
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Waits until one of `fds` is readable (or hung up) or `timeout` passes (`None`: no limit).
/// Fills each entry's `revents`.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: Option<Duration>) {
    // Rounded up, so that a deadline 0.3 ms away does not become a busy loop of 0 ms polls.
    let ms = timeout.map_or(-1, |d| {
        let ms = d.as_nanos().div_ceil(1_000_000);
        libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
    });
    let n = libc::nfds_t::try_from(fds.len()).unwrap_or(0);
    // SAFETY: fds is a valid, initialised slice of pollfd for the duration of the call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, ms) };
    if rc < 0 {
        // EINTR (a signal for the daemon): the caller looks at its clock and polls again.
        for f in fds.iter_mut() {
            f.revents = 0;
        }
    }
}

/// A `pollfd` asking for readability.
pub(crate) fn readable(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
