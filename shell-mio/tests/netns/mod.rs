//! Network namespaces for tests: made with `ip netns`, deleted on drop (also when a test panics),
//! and threads that run inside one (`setns` moves only the calling thread, and a socket stays in
//! the namespace it was created in, so sockets opened inside can be used from anywhere).
//! Addresses used inside: 10.213.x.x and fd00:213::/32, never anything outside the namespaces.

#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Why namespace tests cannot run here (not root, no `ip netns`), or `None` when they can.
pub fn unavailable() -> Option<String> {
    static REASON: OnceLock<Option<String>> = OnceLock::new();
    REASON
        .get_or_init(|| {
            // SAFETY: geteuid cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                return Some("not root".into());
            }
            let probe = format!("pht-probe-{}", std::process::id());
            match Command::new("ip").args(["netns", "add", &probe]).output() {
                Ok(o) if o.status.success() => {
                    let _ = Command::new("ip").args(["netns", "del", &probe]).output();
                    None
                }
                Ok(o) => Some(format!(
                    "`ip netns add` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Some(format!("no `ip` command: {e}")),
            }
        })
        .clone()
}

/// Prints the skip line and returns true when namespace tests cannot run.
pub fn skip(test: &str) -> bool {
    match unavailable() {
        Some(why) => {
            println!("SKIPPED {test}: {why} (needs root and `ip netns`)");
            true
        }
        None => false,
    }
}

/// One network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace named after `tag`, this process and a counter, with `lo` up.
    pub fn new(tag: &str) -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "pht-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS...`, which must succeed; its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run(&all)
    }

    /// `ip -n NAME ARGS...`, whatever comes of it.
    pub fn ip_output(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip")
    }

    /// Runs `f` on a thread inside this namespace and returns its result.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).expect("open the namespace");
                // SAFETY: setns with a namespace descriptor we own; it moves only this thread.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A veth pair between `a` (interface `a_if`) and `b` (`b_if`), both up.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

fn run(args: &[&str]) -> String {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
