//! The `pharos` tool against a real `pharosd` on 127.0.0.1: what it says when the daemon is
//! stopped, when a request is refused, and when a tunable is obsolete.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn one_node(name: &str) -> Cluster {
    let mut c = Cluster::new(name, 1, &[]);
    c.start(0);
    let up = wait_for(Duration::from_secs(10), || {
        c.pharos(0, &["ping"]).status.success()
    });
    assert!(up.is_some(), "{}", c.logs());
    c
}

/// Issue 9 item 10: a SIGSTOPped daemon made the CLI wait 10 s and print
/// "Resource temporarily unavailable (os error 11)".
#[test]
fn a_stopped_daemon_is_no_answer_within_the_time_limit() {
    let c = one_node("cli-stopped");
    c.signal(0, libc::SIGSTOP);
    let t = Instant::now();
    let out = c.pharos(0, &["-T", "1", "ping"]);
    let took = t.elapsed();
    c.signal(0, libc::SIGCONT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "pharos: no answer from pharosd at {} within 1 s (is it stopped or hung?)\n",
            c.socket(0).display()
        )
    );
    eprintln!("gave up after {took:?}");
    // The default limit applies without -T, and the daemon answers again once continued.
    let out = c.pharos(0, &["ping"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn refused_requests_name_what_was_typed() {
    let c = one_node("cli-refused");
    let out = c.pharos(0, &["nodestatus", "4294967295"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(!err.contains("-1"), "{err}");
    assert!(
        err.contains("\"4294967295\"") && err.contains("from 0 to 255"),
        "{err}"
    );
    let out = c.pharos(0, &["nodestatus", "7"]);
    assert_eq!(text(&out.stderr), "pharos: node 7 does not exist\n");
    let out = c.pharos(0, &["setvar", "KeepaliveInterval", "1 s"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "pharos: setvar: invalid duration \"1 s\" (expected e.g. 250ms, 2s or 2)\n"
    );
    let out = c.pharos(0, &["getvar", "KeepaliveInterval"]);
    assert_eq!(text(&out.stdout), "KeepaliveInterval = 1\n", "unchanged");
}

/// The obsolete-tunable warning used to be shown only with --json.
#[test]
fn the_obsolete_tunable_warning_is_shown_in_text_mode() {
    let c = one_node("cli-obsolete");
    let out = c.pharos(0, &["setvar", "NoIPHostOnAllDisabled", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "pharos: warning: NoIPHostOnAllDisabled is obsolete and has no effect\n"
    );
    let out = c.pharos(0, &["--json", "setvar", "NoIPHostOnAllDisabled", "0"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["warning"].as_str().unwrap().contains("obsolete"));
    let out = c.pharos(0, &["setvar", "KeepaliveLimit", "4"]);
    assert!(out.status.success() && out.stderr.is_empty());
}
