//! Network namespaces by name (`ip netns` keeps them in /run/netns), and the processes inside
//! one (for RSS and CPU figures, and for ending what a lab still runs).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Where `ip netns` binds a namespace called `name`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

fn setns(file: &File) -> io::Result<()> {
    // SAFETY: setns(2) on a descriptor we own; it changes only this thread's namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Moves the calling thread into network namespace `name`. Call it before starting threads to
/// move the whole process.
pub fn enter(name: &str) -> io::Result<()> {
    let f = File::open(path(name))
        .map_err(|e| io::Error::new(e.kind(), format!("network namespace {name}: {e}")))?;
    setns(&f).map_err(|e| io::Error::new(e.kind(), format!("setns into {name}: {e}")))
}

/// Runs `f` with the calling thread inside namespace `name`, then moves it back. Sockets made
/// by `f` stay in `name` for their whole life: that is how one process samples many namespaces.
pub fn within<T>(name: &str, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let home = File::open("/proc/thread-self/ns/net")?;
    enter(name)?;
    let r = f();
    setns(&home)?;
    r
}

/// The inode that identifies namespace `name`.
pub fn inode(name: &str) -> io::Result<u64> {
    Ok(std::fs::metadata(path(name))?.ino())
}

/// PIDs of the processes whose network namespace is `name` (their threads are not listed).
pub fn pids(name: &str) -> io::Result<Vec<i32>> {
    let want = format!("net:[{}]", inode(name)?);
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // A process may exit meanwhile: skip it.
        if let Ok(link) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            if link.to_str() == Some(want.as_str()) {
                out.push(pid);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What /proc says about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// The command name (`comm`, at most 15 characters).
    pub comm: String,
    /// Resident set size, kB.
    pub rss_kb: u64,
    /// utime + stime, clock ticks.
    pub ticks: u64,
    /// cutime + cstime: children it has reaped (CTDB's event scripts), clock ticks.
    pub child_ticks: u64,
    /// The parent's PID.
    pub ppid: i32,
    /// The process state letter (`T` when stopped).
    pub state: char,
}

/// Reads /proc/PID/stat and /proc/PID/status; `None` if the process is gone.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_proc(&stat, &status)
}

/// Parses the text of /proc/PID/stat and /proc/PID/status (kernel threads have no VmRSS: 0).
pub fn parse_proc(stat: &str, status: &str) -> Option<ProcInfo> {
    // comm is in parentheses and may itself contain ") ": split at the last one.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, so rest[11].
    let field = |i: usize| rest.get(i).and_then(|s| s.parse::<u64>().ok());
    let state = rest.first()?.chars().next()?;
    let ppid = rest.get(1)?.parse::<i32>().ok()?;
    let ticks = field(11)? + field(12)?;
    let child_ticks = field(13)? + field(14)?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(ProcInfo {
        comm,
        rss_kb,
        ticks,
        child_ticks,
        ppid,
        state,
    })
}

/// Clock ticks per second (for CPU shares from [`ProcInfo::ticks`]).
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_tricky_comm() {
        let stat = "4242 (ctdb) x (y)) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 3 2 20 0 1 0 \
                    100 1000 200 18446744073709551615";
        let status = "Name:\tctdbd\nVmRSS:\t   55640 kB\nThreads:\t1\n";
        let p = parse_proc(stat, status).unwrap();
        assert_eq!(p.comm, "ctdb) x (y)");
        assert_eq!(p.state, 'S');
        assert_eq!(p.ppid, 1);
        assert_eq!(p.ticks, 12);
        assert_eq!(p.child_ticks, 5);
        assert_eq!(p.rss_kb, 55640);
    }

    #[test]
    fn short_or_garbled_stat_is_none() {
        assert_eq!(parse_proc("", ""), None);
        assert_eq!(parse_proc("1 (a) S 1 2", ""), None);
        assert_eq!(parse_proc("1 )a( S", ""), None);
    }
}
