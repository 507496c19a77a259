//! The cluster lock with real `pharosd` processes on 127.0.0.x: a deleted lock file is noticed
//! by its holder, and a lock provider that blocks does not stall the event loop.

mod common;

use common::*;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn args(lock: &Path) -> Vec<String> {
    [
        "--tunable",
        "KeepaliveInterval=100ms",
        "--tunable",
        "KeepaliveLimit=3",
        "--cluster-lock",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("fcntl:{}", lock.display())])
    .collect()
}

fn start(name: &str, lock: &Path) -> Cluster {
    let a = args(lock);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut c = Cluster::new(name, 3, &a);
    c.start_all();
    c
}

/// The node that says it is recmaster and holds the lock, if exactly one does and every node
/// follows it.
fn lock_holding_recmaster(c: &Cluster) -> Option<usize> {
    let views: Vec<_> = (0..3).map(|i| c.status(i)).collect::<Option<_>>()?;
    let holders: Vec<usize> = (0..3)
        .filter(|&i| views[i]["holds_lock"].as_bool() == Some(true))
        .collect();
    let [h] = holders[..] else { return None };
    views
        .iter()
        .all(|v| v["recmaster"].as_i64() == Some(h as i64))
        .then_some(h)
}

fn holds_lock(c: &Cluster, i: usize) -> Option<bool> {
    c.status(i)?["holds_lock"].as_bool()
}

/// Issue 9 item 2: `rm cluster.lock` under a holder used to go unnoticed (and a second node
/// could then lock a new file at the same path).
#[test]
fn a_deleted_lock_file_is_reported_lost_and_a_new_holder_follows() {
    let dir = Scratch::new("lock-deleted-dir");
    let lock = dir.0.join("cluster.lock");
    let mut c = start("lock-deleted", &lock);
    let took = wait_for(Duration::from_secs(10), || {
        lock_holding_recmaster(&c).is_some()
    });
    assert!(
        took.is_some(),
        "no recmaster holding the lock\n{}",
        c.logs()
    );
    let holder = lock_holding_recmaster(&c).unwrap();
    assert_eq!(lock_holder(&lock), Some(c.pid(holder)));

    std::fs::remove_file(&lock).unwrap();
    let removed = Instant::now();
    // The holder reports the lock lost and gives it up (holds_lock false); the next election
    // may follow within milliseconds (the lock is free), so the log is the reliable witness.
    let noticed = wait_for(Duration::from_secs(5), || {
        c.log(holder).contains("cluster lock lost: ")
            && c.log(holder).contains("gave up the cluster lock")
    });
    assert!(
        noticed.is_some(),
        "the holder never reported the lock lost\n{}",
        c.logs()
    );
    eprintln!("lock reported lost {:?} after rm", removed.elapsed());

    // A recmaster takes the lock again, on the new file at that path, and it is the only one.
    let again = wait_for(Duration::from_secs(10), || {
        lock_holding_recmaster(&c).is_some_and(|h| lock_holder(&lock) == Some(c.pid(h)))
    });
    assert!(
        again.is_some(),
        "nobody holds the new lock file\n{}",
        c.logs()
    );
    eprintln!(
        "a recmaster holds the new lock file {:?} after rm",
        removed.elapsed()
    );
    for i in 0..3 {
        assert!(c.running(i), "node {i} died\n{}", c.logs());
    }
}

/// A lock provider that blocks (an fcntl lock file whose `open` hangs, as on a hung shared
/// file system; here a FIFO, whose write-only open waits for a reader) runs off the event
/// loop: for 5 s, keepalives keep flowing (nobody is ever DISCONNECTED) and the blocked node
/// answers `pharos ping`.
#[test]
fn a_blocking_lock_provider_does_not_delay_keepalives() {
    let dir = Scratch::new("lock-blocked-dir");
    let fifo = dir.0.join("cluster.lock");
    let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let c = start("lock-blocked", &fifo);
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2])).is_some(),
        "{}",
        c.logs()
    );
    // The election winner asks for the lock, and its provider blocks in open(). Its peers
    // name it (it is asked nothing here, so that a stalled winner fails below, not here).
    let elected = || {
        let r: Vec<i64> = (0..3)
            .filter_map(|i| c.status(i)?["recmaster"].as_i64())
            .collect();
        (r.len() >= 2 && r[0] >= 0 && r.iter().all(|&x| x == r[0])).then(|| r[0] as usize)
    };
    let elect = wait_for(Duration::from_secs(10), || elected().is_some());
    assert!(
        elect.is_some(),
        "no recmaster-elect its peers agree on (a stalled loop?)\n{}",
        c.logs()
    );
    let r = elected().unwrap();

    let blocked_since = Instant::now();
    let mut checks = 0;
    let mut slowest_ping = Duration::ZERO;
    while blocked_since.elapsed() < Duration::from_secs(5) {
        for i in 0..3 {
            let s = c
                .status(i)
                .unwrap_or_else(|| panic!("node {i} did not answer\n{}", c.logs()));
            for n in s["nodes"].as_array().unwrap() {
                let flags = n["flags"].as_array().unwrap();
                assert!(
                    flags.is_empty(),
                    "node {i} sees node {} as {flags:?} while node {r}'s lock blocks\n{}",
                    n["pnn"],
                    c.logs()
                );
            }
            assert_eq!(
                s["holds_lock"].as_bool(),
                Some(false),
                "the open did not block"
            );
        }
        let t = Instant::now();
        let out = c.pharos(r, &["-T", "2", "ping"]);
        slowest_ping = slowest_ping.max(t.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("{checks} rounds of status x3 + ping in 5 s of a blocked lock; slowest ping {slowest_ping:?}");

    // A reader unblocks the open: the lock is taken at once, so it was the open that waited.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let granted = wait_for(Duration::from_secs(5), || holds_lock(&c, r) == Some(true));
    assert!(granted.is_some(), "{}", c.logs());
    drop(reader);
}
