//! Event scripts in real `pharosd` processes on 127.0.0.1-3: the events and their order at
//! start, the environment, a failing monitor marking the node UNHEALTHY everywhere and back,
//! a hung monitor killed at EventScriptTimeout while keepalives go on, `scriptstatus`, and
//! `shutdown` on a clean stop. (takeip/releaseip need public addresses: tests/netns_events.rs.)

mod common;

use common::*;
use std::path::Path;
use std::time::Duration;

const ARGS: &[&str] = &[
    "--tunable",
    "KeepaliveInterval=100ms",
    "--tunable",
    "KeepaliveLimit=3",
    "--tunable",
    "MonitorInterval=200ms",
    "--tunable",
    "EventScriptTimeout=1s",
];

/// Records every event with its arguments and `CTDB_BASE` in `$CTDB_BASE/log.<daemon pid>`;
/// its monitor fails while `fail.<pid>` exists and hangs (with a child) while `hang.<pid>`
/// does. The daemon is the script's parent: one directory serves every node.
const RECORDER: &str = r#"#!/bin/sh
d="$CTDB_BASE"
p=$PPID
echo "$* base=$CTDB_BASE" >> "$d/log.$p"
case "$1" in
monitor)
    if [ -e "$d/fail.$p" ]; then echo "failing on purpose"; exit 1; fi
    if [ -e "$d/hang.$p" ]; then
        sleep 30 &
        echo $! > "$d/sleeper.$p"
        wait
    fi
    ;;
esac
exit 0
"#;

fn setup(name: &str) -> (Cluster, std::path::PathBuf) {
    let probe = Cluster::new(name, 3, &[]);
    let base = probe.dir.0.clone();
    let events = base.join("events").join("legacy");
    std::fs::create_dir_all(&events).unwrap();
    let script = events.join("10.recorder.script");
    write(&script, RECORDER);
    make_executable(&script);
    // Not executable: listed as DISABLED, never run.
    write(&events.join("20.off.script"), "#!/bin/sh\nexit 1\n");
    let mut args: Vec<String> = ARGS.iter().map(|s| s.to_string()).collect();
    args.push("--event-dir".into());
    args.push(events.display().to_string());
    let mut c = probe;
    c.extra_args = args;
    (c, base)
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn events_of(base: &Path, pid: i32) -> Vec<String> {
    std::fs::read_to_string(base.join(format!("log.{pid}")))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn names(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect()
}

fn unhealthy(c: &Cluster, seen_by: usize, of: usize) -> bool {
    c.flags(seen_by, of)
        .is_some_and(|f| f.contains(&"UNHEALTHY".to_string()))
}

#[test]
fn events_run_in_ctdb_order_and_monitor_decides_health() {
    let (mut c, base) = setup("events-order");
    c.start_all();
    // Every node is UNHEALTHY until its startup and a first monitor passed.
    let healthy = wait_for(Duration::from_secs(10), || c.all_ok(&[0, 1, 2]));
    assert!(healthy.is_some(), "never all healthy\n{}", c.logs());
    for i in 0..3 {
        let lines = events_of(&base, c.pid(i));
        let ev = names(&lines);
        assert_eq!(&ev[..2], ["init", "setup"], "node {i}: {lines:?}");
        let pos = |e: &str| ev.iter().position(|x| x == e);
        let (recovered, startup, monitor) = (pos("recovered"), pos("startup"), pos("monitor"));
        assert!(
            pos("startrecovery") < recovered && recovered < startup && startup < monitor,
            "node {i}: startup after the first recovery, monitor after startup: {lines:?}"
        );
        assert!(pos("ipreallocated").is_some(), "node {i}: {lines:?}");
        // CTDB_BASE is the directory that holds events/legacy.
        let want = format!("base={}", base.display());
        assert!(lines.iter().all(|l| l.ends_with(&want)), "{lines:?}");
        // Nothing of the disabled script ran (it would have failed the events).
        let status = c.pharos(i, &["scriptstatus"]);
        let text = String::from_utf8_lossy(&status.stdout).to_string();
        assert!(status.status.success(), "{text}");
        assert!(
            text.contains("10.recorder") && text.contains("OK"),
            "{text}"
        );
        assert!(
            text.contains("20.off") && text.contains("DISABLED"),
            "{text}"
        );
    }

    // A failing monitor on node 1: UNHEALTHY everywhere, the output in scriptstatus.
    let p1 = c.pid(1);
    write(&base.join(format!("fail.{p1}")), "");
    let seen = wait_for(Duration::from_secs(5), || {
        unhealthy(&c, 0, 1) && unhealthy(&c, 2, 1)
    });
    assert!(seen.is_some(), "failing monitor not seen\n{}", c.log(1));
    eprintln!("UNHEALTHY seen after {:?}", seen.unwrap());
    let out = c.pharos(1, &["scriptstatus", "monitor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("ERROR") && text.contains("failing on purpose"),
        "{text}"
    );
    let json = c.pharos(1, &["--json", "scriptstatus"]);
    assert!(
        String::from_utf8_lossy(&json.stdout).contains("failing on purpose"),
        "{json:?}"
    );
    std::fs::remove_file(base.join(format!("fail.{p1}"))).unwrap();
    let back = wait_for(Duration::from_secs(5), || c.all_ok(&[0, 1, 2]));
    assert!(back.is_some(), "never healthy again\n{}", c.log(1));

    // A hung monitor on node 2: killed with its child at EventScriptTimeout (1 s), the node
    // keeps its keepalives (never DISCONNECTED) and, one timeout being below
    // MonitorTimeoutCount, stays healthy.
    let p2 = c.pid(2);
    write(&base.join(format!("hang.{p2}")), "");
    let mut seen_timeout = false;
    let done = wait_for(Duration::from_secs(6), || {
        assert!(
            c.all_ok(&[0, 1, 2]),
            "a hung monitor cost the cluster\n{}",
            c.logs()
        );
        let out = c.pharos(2, &["scriptstatus", "monitor"]);
        seen_timeout |= String::from_utf8_lossy(&out.stdout).contains("TIMEDOUT");
        seen_timeout
    });
    assert!(done.is_some(), "no TIMEDOUT monitor\n{}", c.log(2));
    std::fs::remove_file(base.join(format!("hang.{p2}"))).unwrap();
    let sleeper: i32 = std::fs::read_to_string(base.join(format!("sleeper.{p2}")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = wait_for(Duration::from_secs(3), || {
        !Path::new(&format!("/proc/{sleeper}")).exists()
            || std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(
        gone.is_some(),
        "the hung script's child {sleeper} was not killed"
    );

    // A clean stop runs shutdown last.
    let p0 = c.pid(0);
    c.signal(0, libc::SIGTERM);
    let stopped = wait_for(Duration::from_secs(5), || !c.running(0));
    assert!(stopped.is_some(), "no clean stop\n{}", c.log(0));
    let ev = names(&events_of(&base, p0));
    assert_eq!(ev.last().map(String::as_str), Some("shutdown"), "{ev:?}");
}

#[test]
fn a_failing_init_ends_the_daemon_with_a_clear_error() {
    let (mut c, base) = setup("events-init");
    let script = base.join("events").join("legacy").join("05.init.script");
    write(
        &script,
        "#!/bin/sh\n[ \"$1\" = init ] && { echo no; exit 3; }\nexit 0\n",
    );
    make_executable(&script);
    c.start(0);
    let ended = wait_for(Duration::from_secs(5), || !c.running(0));
    assert!(ended.is_some(), "daemon kept running\n{}", c.log(0));
    let log = c.log(0);
    assert!(log.contains("init") && log.contains("05.init"), "{log}");
}
