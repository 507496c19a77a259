//! The real `pharos` binary without a daemon: what it says about a bad socket path, a daemon
//! that does not answer, and requests it refuses before sending.

use pharos_host::scratch::Scratch;
use std::os::unix::net::UnixListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const PHAROS: &str = env!("CARGO_BIN_EXE_pharos");

fn pharos(socket: &std::path::Path, args: &[&str]) -> Output {
    Command::new(PHAROS)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("PHAROS_SOCKET")
        .output()
        .unwrap()
}

/// Exit 1 and exactly one line on stderr, returned.
fn one_line_failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(out.stdout.is_empty());
    err
}

#[test]
fn socket_path_that_is_not_a_socket_says_what_it_is() {
    let d = Scratch::new("kinds");
    let file = d.0.join("nodes");
    std::fs::write(&file, "127.0.0.1\n").unwrap();
    let err = one_line_failure(&pharos(&file, &["status"]));
    assert_eq!(
        err,
        format!(
            "pharos: {} is a regular file, not a pharosd control socket\n",
            file.display()
        )
    );
    // Nothing was done to the file.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "127.0.0.1\n");
    let err = one_line_failure(&pharos(&d.0, &["status"]));
    assert!(
        err.contains("is a directory, not a pharosd control socket"),
        "{err}"
    );
    let err = one_line_failure(&pharos(&d.0.join("none.sock"), &["status"]));
    assert!(err.contains("no control socket at") && err.contains("is pharosd running?"));
    let stale = d.0.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let err = one_line_failure(&pharos(&stale, &["ping"]));
    assert!(
        err.contains("nothing listens on") && err.contains("stale"),
        "{err}"
    );
}

/// A listener that never answers is what a SIGSTOPped daemon looks like from outside (the
/// kernel queues the connection); the real daemon stopped is tested in pharos-mio.
#[test]
fn a_silent_daemon_is_no_answer_within_the_time_limit() {
    let d = Scratch::new("silent");
    let path = d.0.join("s.sock");
    let _listener = UnixListener::bind(&path).unwrap();
    let started = Instant::now();
    let err = one_line_failure(&pharos(&path, &["-T", "1", "ping"]));
    let took = started.elapsed();
    assert_eq!(
        err,
        format!(
            "pharos: no answer from pharosd at {} within 1 s (is it stopped or hung?)\n",
            path.display()
        )
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let err = one_line_failure(&pharos(&path, &["--timelimit", "0.5", "--json", "status"]));
    assert!(err.contains("within 0.5 s"), "{err}");
}

#[test]
fn requests_the_daemon_would_refuse_are_refused_with_its_words() {
    let d = Scratch::new("refused");
    let s = d.0.join("none.sock");
    let err = one_line_failure(&pharos(&s, &["nodestatus", "4294967295"]));
    assert!(!err.contains("\"-1\""), "{err}");
    assert_eq!(
        err,
        "pharos: nodestatus: invalid PNN \"4294967295\" (expected a node number from 0 to 255), or all\n"
    );
    let err = one_line_failure(&pharos(&s, &["nodestatus", "x"]));
    assert!(err.contains("invalid PNN \"x\""), "{err}");
    let err = one_line_failure(&pharos(&s, &["setvar", "KeepaliveInterval", "1 s"]));
    assert_eq!(
        err,
        "pharos: setvar: invalid duration \"1 s\" (expected e.g. 250ms, 2s or 2)\n"
    );
    let err = one_line_failure(&pharos(&s, &["ban", "0"]));
    assert!(err.contains("invalid ban time \"0\""), "{err}");
    let out = Command::new(PHAROS).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
