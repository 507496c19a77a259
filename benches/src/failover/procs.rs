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
    /// Records a running process `pid` under its current command name.
    pub fn record(&self, pid: i32) {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        self.record_as(pid, comm.trim());
    }

    /// Records `pid` under command name `comm` (so a reused PID is never mistaken for ours).
    pub fn record_as(&self, pid: i32, comm: &str) {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(&self.0) {
            let _ = writeln!(f, "{pid} {comm}");
        }
    }
}

/// The command name `cmd` will run under once exec'd: its program's file name (the one after
/// `ip netns exec NS`, which execs it), cut to the kernel's 15 characters.
pub fn comm_of(cmd: &Command) -> String {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let prog = match args.as_slice() {
        [netns, exec, _ns, p, ..] if prog == "ip" && netns == "netns" && exec == "exec" => {
            p.clone()
        }
        _ => prog,
    };
    let name = prog.rsplit('/').next().unwrap_or("").to_string();
    name.chars().take(15).collect()
}

/// Spawns `cmd` in its own process group with stdin closed, and records its PID.
pub fn spawn(cmd: &mut Command, log: &PidLog) -> io::Result<Child> {
    let child = spawn_unrecorded(cmd)?;
    log.record_as(child.id() as i32, &comm_of(cmd));
    Ok(child)
}

/// Spawns a short-lived command (a CLI query, killed by [`run`]'s timeout): not recorded.
fn spawn_unrecorded(cmd: &mut Command) -> io::Result<Child> {
    cmd.process_group(0).stdin(Stdio::null());
    cmd.spawn()
}

/// An append-mode log file for a child's stdout/stderr.
pub fn log_file(path: &Path) -> io::Result<Stdio> {
    Ok(OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .into())
}

/// Sends `sig` to `pid`; false if there is no such process.
pub fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a PID the harness started (or read from that system's PID file).
    pid > 0 && unsafe { libc::kill(pid, sig) } == 0
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            s.rfind(')')
                .and_then(|i| s[i + 1..].trim_start().chars().next())
                != Some('Z')
        }
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
/// comes back with `code: None`. Not written to the PID file: it ends by itself or by the
/// timeout, and `ip netns exec` commands end with the lab anyway.
pub fn run(cmd: &mut Command, timeout: Duration) -> io::Result<Ran> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn_unrecorded(cmd)?;
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
    fn comm_is_the_program_exec_runs() {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", "pfo-n0", "/usr/sbin/keepalived", "-n"]);
        assert_eq!(comm_of(&c), "keepalived");
        assert_eq!(
            comm_of(&Command::new("/x/failover-sampler")),
            "failover-sample"
        );
        let mut c = Command::new("ip");
        c.args(["-n", "pfo-n0", "addr"]);
        assert_eq!(comm_of(&c), "ip");
    }

    #[test]
    fn run_times_out_and_reports_exit_codes() {
        let dir = std::env::temp_dir().join(format!("pfo-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = PidLog(dir.join("pids"));
        let r = run(
            Command::new("sh").args(["-c", "echo hi; echo oops >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            (r.code, r.stdout.trim(), r.why()),
            (Some(3), "hi", "oops".into())
        );
        let t = std::time::Instant::now();
        let r = run(Command::new("sleep").arg("5"), Duration::from_millis(100)).unwrap();
        assert_eq!(r.code, None);
        assert!(t.elapsed() < Duration::from_secs(3));
        let mut c = Command::new("sleep");
        c.arg("0");
        let mut child = spawn(&mut c, &log).unwrap();
        child.wait().unwrap();
        let pids = std::fs::read_to_string(&log.0).unwrap();
        assert_eq!(pids, format!("{} sleep\n", child.id()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
