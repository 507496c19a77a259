//! Real `pharosd` processes on 127.0.0.x for process tests. Every process is ended by PID when
//! the cluster is dropped, and the scratch directory is removed.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PHAROSD: &str = env!("CARGO_BIN_EXE_pharosd");

/// Runs the `pharos` tool with `args`. The binary belongs to `pharos-host`, whose built binaries
/// these tests cannot name, so this runs the binary's whole code path in-process
/// (`pharos_host::cli::run`: argument parsing, the request, rendering, the exit code); only
/// `main`'s two print calls are skipped.
pub fn pharos_cli(args: &[&std::ffi::OsStr]) -> Output {
    use std::os::unix::process::ExitStatusExt;
    let out = pharos_host::cli::run(
        std::iter::once(std::ffi::OsStr::new("pharos")).chain(args.iter().copied()),
    );
    Output {
        status: std::process::ExitStatus::from_raw(i32::from(out.code) << 8),
        stdout: out.stdout.into_bytes(),
        stderr: out.stderr.into_bytes(),
    }
}

/// Fast failure detection: keepalives every 100 ms, dead after 3 silent intervals.
pub const FAST: &[&str] = &[
    "--tunable",
    "KeepaliveInterval=100ms",
    "--tunable",
    "KeepaliveLimit=3",
];

/// A blocking TCP connection to `to` from `local` (port 0), as a peer at that address would
/// open it.
pub fn connect_from(local: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&format!("{local}:0").parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.connect(&to.into()).unwrap();
    s.into()
}

/// A port free on 127.0.0.1 to 127.0.0.n.
pub fn free_port(n: u8) -> u16 {
    for _ in 0..100 {
        let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        let others: Vec<_> = (2..=n)
            .map(|i| TcpListener::bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, i), port))))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1-{n}");
}

pub use pharos_host::scratch::Scratch;

pub struct Cluster {
    pub dir: Scratch,
    pub port: u16,
    pub size: u8,
    pub procs: Vec<Option<Child>>,
    pub extra_args: Vec<String>,
}

impl Cluster {
    /// Writes a nodes file for 127.0.0.1..=size; starts nothing.
    pub fn new(name: &str, size: u8, extra_args: &[&str]) -> Self {
        let dir = Scratch::new(name);
        let nodes: String = (1..=size).map(|i| format!("127.0.0.{i}\n")).collect();
        std::fs::write(dir.0.join("nodes"), nodes).unwrap();
        Cluster {
            dir,
            port: free_port(size),
            size,
            procs: (0..size).map(|_| None).collect(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn socket(&self, i: usize) -> PathBuf {
        self.dir.0.join(format!("node{i}.sock"))
    }

    /// Starts process slot `i` as PNN `i` (explicit node address 127.0.0.(i+1)).
    pub fn start(&mut self, i: usize) {
        self.start_with(i, Some(i))
    }

    /// Starts process slot `i` as PNN `pnn`, or with automatic bind when `pnn` is `None`.
    pub fn start_with(&mut self, i: usize, pnn: Option<usize>) {
        let cmd = self.pharosd_command(i, pnn, None);
        self.spawn(i, cmd);
    }

    /// Starts process slot `i` as PNN `i` under a descriptor limit (`ulimit -n nofile`; the
    /// shell execs pharosd, so the PID is the daemon's).
    pub fn start_with_nofile(&mut self, i: usize, nofile: u32) {
        let cmd = self.pharosd_command(i, Some(i), Some(nofile));
        self.spawn(i, cmd);
    }

    fn spawn(&mut self, i: usize, mut cmd: Command) {
        self.procs[i] = Some(cmd.spawn().expect("spawn pharosd"));
    }

    /// The command line of process slot `i`, logging to `node{i}.log`.
    fn pharosd_command(&self, i: usize, pnn: Option<usize>, nofile: Option<u32>) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join(format!("node{i}.log")))
            .unwrap();
        let mut cmd = match nofile {
            None => Command::new(PHAROSD),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(PHAROSD);
                sh
            }
        };
        cmd.arg("--nodes")
            .arg(self.dir.0.join("nodes"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--socket")
            .arg(self.socket(i))
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("PHAROS_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(p) = pnn {
            cmd.arg("--node-address").arg(format!("127.0.0.{}", p + 1));
        }
        cmd
    }

    pub fn start_all(&mut self) {
        for i in 0..self.size as usize {
            self.start(i);
        }
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.procs[i].as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, i: usize, sig: i32) {
        // SAFETY: kill(2) on the PID of a child this test spawned and has not reaped.
        let rc = unsafe { libc::kill(self.pid(i), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid(i));
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether node `i` is still running.
    pub fn running(&mut self, i: usize) -> bool {
        self.procs[i]
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// `pharos --socket SOCKET(i) ARGS...`.
    pub fn pharos(&self, i: usize, args: &[&str]) -> Output {
        let socket = self.socket(i);
        let mut argv: Vec<&std::ffi::OsStr> = vec!["--socket".as_ref(), socket.as_os_str()];
        argv.extend(args.iter().map(std::ffi::OsStr::new));
        pharos_cli(&argv)
    }

    /// `pharos --json status` on node `i`, parsed; `None` if it does not answer.
    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let out = self.pharos(i, &["--json", "status"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Flags of node `of` as node `seen_by` reports them.
    pub fn flags(&self, seen_by: usize, of: usize) -> Option<Vec<String>> {
        let s = self.status(seen_by)?;
        let flags = s["nodes"][of]["flags"].as_array()?;
        Some(
            flags
                .iter()
                .map(|f| f.as_str().unwrap_or("").to_string())
                .collect(),
        )
    }

    /// Polls until node `i` answers `pharos ping` (at most `limit`); `false` if it never did.
    pub fn answers_within(&self, i: usize, limit: Duration) -> bool {
        wait_for(limit, || self.pharos(i, &["ping"]).status.success()).is_some()
    }

    pub fn all_ok(&self, nodes: &[usize]) -> bool {
        nodes.iter().all(|&a| {
            nodes
                .iter()
                .all(|&b| self.flags(a, b).is_some_and(|f| f.is_empty()))
        })
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.0.join(format!("node{i}.log"))).unwrap_or_default()
    }

    pub fn logs(&self) -> String {
        (0..self.size as usize)
            .map(|i| format!("--- node{i}.log\n{}", self.log(i)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            if let Some(c) = self.procs[i].as_mut() {
                // A stopped process must be continued to die of SIGTERM; SIGKILL needs nothing.
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Polls `cond` every 10 ms until it holds; returns the time it took, or `None` at `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The PID of the process holding an fcntl write lock on `path`'s first byte, if any.
pub fn lock_holder(path: &Path) -> Option<i32> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new().read(true).open(path).ok()?;
    // SAFETY: a zeroed flock is valid; F_GETLK with a valid fd and pointer only reads the lock
    // table (it never takes or drops a lock of this process).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_len = 1;
    // SAFETY: as above.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    assert_eq!(rc, 0, "F_GETLK {}", path.display());
    (fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}
