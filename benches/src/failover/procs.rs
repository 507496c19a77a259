//! Processes the harness starts: each in its own process group (a Ctrl-C reaches the harness
//! only, which then stops everything in order), each PID written to the run's PID file so that
//! `run.sh` can end them by PID if the harness itself dies.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The run's PID file: one `PID COMM` line per process started.
#[derive(Clone, Debug)]
pub struct PidLog(pub PathBuf);

impl PidLog {
    /// Records `pid` (with its command name, so a reused PID is never mistaken for ours).
    pub fn record(&self, pid: i32) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&self.0) {
            let _ = writeln!(f, "{pid} {}", comm.trim());
        }
    }
}

/// Spawns `cmd` in its own process group with stdin closed, and records its PID.
pub fn spawn(cmd: &mut Command, log: &PidLog) -> io::Result<Child> {
    cmd.process_group(0).stdin(Stdio::null());
    let child = cmd.spawn()?;
    log.record(child.id() as i32);
    Ok(child)
}

/// An append-mode log file for a child's stdout/stderr.
pub fn log_file(path: &Path) -> io::Result<Stdio> {
    Ok(OpenOptions::new().create(true).append(true).open(path)?.into())
}

/// Sends `sig` to `pid`; false if there is no such process.
pub fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a PID the harness started (or read from that system's PID file).
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s.rfind(')').and_then(|i| s[i + 1..].trim_start().chars().next()) != Some('Z'),
        Err(_) => false,
    }
}

/// A finished command's exit status and output.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (`None`: killed by a signal or by the timeout).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Ran {
    /// Exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The first line of stderr (or stdout), for one-line error messages.
    pub fn why(&self) -> String {
        let s = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        s.lines().next().unwrap_or("").trim().to_string()
    }
}

/// Runs `cmd` to completion, killing it (by PID) after `timeout`. A command that times out
/// comes back with `code: None`.
pub fn run(cmd: &mut Command, timeout: Duration, log: &PidLog) -> io::Result<Ran> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn(cmd, log)?;
    let pid = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(r) => r?,
        Err(_) => {
            signal(pid, libc::SIGKILL);
            let mut r = rx
                .recv()
                .map_err(|_| io::Error::other("lost the command"))??;
            r.status = std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL);
            r
        }
    };
    Ok(Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Ends a child: SIGCONT (it may be stopped), SIGKILL, and reaps it.
pub fn kill_child(child: &mut Child) {
    let pid = child.id() as i32;
    if let Ok(None) = child.try_wait() {
        signal(pid, libc::SIGCONT);
        signal(pid, libc::SIGKILL);
    }
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_times_out_and_reports_exit_codes() {
        let dir = std::env::temp_dir().join(format!("pfo-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = PidLog(dir.join("pids"));
        let r = run(
            Command::new("sh").args(["-c", "echo hi; echo oops >&2; exit 3"]),
            Duration::from_secs(5),
            &log,
        )
        .unwrap();
        assert_eq!((r.code, r.stdout.trim(), r.why()), (Some(3), "hi", "oops".into()));
        let t = std::time::Instant::now();
        let r = run(
            Command::new("sleep").arg("5"),
            Duration::from_millis(100),
            &log,
        )
        .unwrap();
        assert_eq!(r.code, None);
        assert!(t.elapsed() < Duration::from_secs(3));
        let pids = std::fs::read_to_string(&log.0).unwrap();
        assert_eq!(pids.lines().count(), 2, "{pids}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
