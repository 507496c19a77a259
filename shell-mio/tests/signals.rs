//! Signals an operator (or a careless script) may send must not kill pharosd (issue 9, item 3):
//! SIGHUP, SIGUSR1 and SIGUSR2 are logged and survived, SIGPIPE is ignored (also when a control
//! client leaves before its answer is written); SIGTERM still ends the daemon cleanly.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// After a signal: still running, still answering, still seeing both peers.
fn still_serving(c: &mut Cluster, what: &str) {
    assert!(c.running(0), "{what} killed pharosd\n{}", c.logs());
    let out = c.pharos(0, &["ping"]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("response from 0"),
        "no ping answer after {what}: {out:?}\n{}",
        c.logs()
    );
    assert!(
        wait_for(Duration::from_secs(5), || c.all_ok(&[0, 1, 2])).is_some(),
        "peers lost after {what}\n{}",
        c.logs()
    );
}

#[test]
fn hup_usr1_usr2_and_pipe_do_not_kill_the_daemon() {
    let mut c = Cluster::new("signals", 3, FAST);
    c.start_all();
    assert!(
        wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2])).is_some(),
        "{}",
        c.logs()
    );

    for (sig, name) in [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
    ] {
        c.signal(0, sig);
        let logged = wait_for(Duration::from_secs(5), || {
            c.log(0).contains(&format!("received {name}"))
        });
        let status = c.procs[0].as_mut().unwrap().try_wait().unwrap();
        assert!(
            logged.is_some(),
            "no log line for {name} (exit status {status:?})\n{}",
            c.logs()
        );
        still_serving(&mut c, name);
    }

    // SIGPIPE, sent by hand and caused by a client that leaves before its answer.
    c.signal(0, libc::SIGPIPE);
    for _ in 0..20 {
        let mut s = UnixStream::connect(c.socket(0)).unwrap();
        s.write_all(b"status\n").unwrap();
        drop(s);
    }
    still_serving(&mut c, "SIGPIPE");

    // SIGTERM keeps its meaning: clean exit 0, socket removed.
    c.signal(0, libc::SIGTERM);
    let status = c.procs[0].as_mut().unwrap().wait().unwrap();
    c.procs[0] = None;
    assert!(status.success(), "SIGTERM: exit status {status:?}");
    assert!(!c.socket(0).exists(), "socket left behind after SIGTERM");
}
