//! The event-script runner with real scripts in a temporary directory: order, arguments and
//! environment as a script sees them, DISABLED scripts, a failure and what follows it, a
//! timeout that kills the whole process group, bounded output, a hung script that does not
//! block the caller, queued events, and monitor giving way to other events.
//!
//! The tests take a lock and run one at a time: a script file being written while another
//! test's runner forks would be open in that child until it execs, and exec of a file open
//! for writing fails (ETXTBSY).

use pharos_core::control::{Response, ScriptState};
use pharos_host::scratch::Scratch;
use pharos_host::scripts::{Event, EventDone, EventRunner, Outcome, RunnerConfig, TERM_GRACE};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Long enough for anything in these tests on a loaded machine; only hit on failure.
const PATIENCE: Duration = Duration::from_secs(20);
const TIMEOUT: Duration = Duration::from_secs(20);

fn take_ip() -> Event {
    Event::TakeIp {
        iface: "eth1".into(),
        ip: "10.0.0.1".parse().unwrap(),
        maskbits: 24,
    }
}

fn write_script(dir: &Path, name: &str, body: &str, mode: u32) {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Waits (bounded) until `cond` holds.
fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` is gone (a zombie nobody reaped counts as gone).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "PID (comm) STATE ...": the state follows the last ')'.
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

struct Rig {
    runner: EventRunner,
    woken: Receiver<()>,
    scratch: Scratch,
    dir: PathBuf,
}

impl Rig {
    /// A runner on `NAME/events/legacy` in a fresh scratch directory, scripts written by
    /// `setup` before it starts.
    fn new(name: &str, setup: impl FnOnce(&Path, &Path)) -> Rig {
        Rig::with(name, setup, |_| {})
    }

    fn with(
        name: &str,
        setup: impl FnOnce(&Path, &Path),
        tune: impl FnOnce(&mut RunnerConfig),
    ) -> Rig {
        let scratch = Scratch::new(&format!("scripts-{name}"));
        let dir = scratch.join("etc/events/legacy");
        std::fs::create_dir_all(&dir).unwrap();
        setup(&dir, &scratch.0);
        let mut config = RunnerConfig::new(dir.clone());
        config.script_vardir = Some(scratch.join("state"));
        tune(&mut config);
        let (tx, woken) = mpsc::channel();
        let tx = Mutex::new(tx);
        let runner = EventRunner::start(
            config,
            Box::new(move || {
                let _ = tx.lock().unwrap().send(());
            }),
        )
        .unwrap();
        Rig {
            runner,
            woken,
            scratch,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// The next finished run, as a loop would take it after a wake-up.
    fn next(&mut self) -> EventDone {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(d) = self.runner.try_recv() {
                return d;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("no result from the runner");
            let _ = self.woken.recv_timeout(left);
        }
    }
}

fn states(d: &EventDone) -> Vec<(String, ScriptState)> {
    d.scripts
        .iter()
        .map(|l| (l.name.clone(), l.state.clone()))
        .collect()
}

fn named(v: &[(&str, ScriptState)]) -> Vec<(String, ScriptState)> {
    v.iter().map(|(n, s)| (n.to_string(), s.clone())).collect()
}

#[test]
fn scripts_run_in_order_with_ctdbs_arguments_and_environment() {
    let _g = serial();
    let log_line = r#"echo "$(basename "$0") $*" >> "$CTDB_SCRIPT_VARDIR/../log""#;
    let mut r = Rig::new("order", |dir, _| {
        write_script(
            dir,
            "10.first.script",
            &format!(
                "{log_line}\n\
                 {{ echo \"0=$0\"; echo \"BASE=$CTDB_BASE\"; echo \"VARDIR=$CTDB_SCRIPT_VARDIR\"; \
                    echo \"LOGGING=$CTDB_LOGGING\"; echo \"PATH=$PATH\"; \
                    echo \"STDIN=$(readlink /proc/$$/fd/0)\"; \
                    echo \"PGID=$(cut -d' ' -f5 /proc/$$/stat) PID=$$\"; \
                 }} > \"$CTDB_SCRIPT_VARDIR/../env\""
            ),
            0o755,
        );
        write_script(
            dir,
            "15.disabled.script",
            &log_line.replace("log", "never"),
            0o644,
        );
        write_script(dir, "20.second", log_line, 0o755); // the CTDB 4.8 spelling
        write_script(dir, "30.backup~", &log_line.replace("log", "never"), 0o755);
        write_script(
            dir,
            "40.second.rpmnew",
            &log_line.replace("log", "never"),
            0o755,
        );
        std::fs::write(dir.join("README"), "not a script\n").unwrap();
    });
    std::fs::create_dir_all(r.path("state")).unwrap();
    let id = r.runner.run(take_ip(), TIMEOUT);
    let d = r.next();
    assert_eq!(d.id, id);
    assert_eq!(d.outcome, Outcome::Ok);
    assert_eq!(
        states(&d),
        named(&[
            ("10.first", ScriptState::Ok),
            ("15.disabled", ScriptState::Disabled),
            ("20.second", ScriptState::Ok),
        ])
    );
    let log = std::fs::read_to_string(r.path("log")).unwrap();
    assert_eq!(
        log,
        "10.first.script takeip eth1 10.0.0.1 24\n20.second takeip eth1 10.0.0.1 24\n"
    );
    assert!(
        !r.path("never").exists(),
        "a disabled or ignored script ran"
    );

    let env = std::fs::read_to_string(r.path("env")).unwrap();
    let var = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {env}"))
            .to_string()
    };
    // $0 is the script's path (absolute), as under CTDB.
    assert_eq!(
        var("0"),
        r.dir.join("10.first.script").display().to_string()
    );
    match std::env::var_os("CTDB_BASE") {
        None => assert_eq!(var("BASE"), r.path("etc").display().to_string()),
        Some(b) => println!("CTDB_BASE={b:?} in the test's environment, passed through"),
    }
    assert_eq!(var("VARDIR"), r.path("state").display().to_string());
    if std::env::var_os("CTDB_LOGGING").is_none() {
        assert_eq!(var("LOGGING"), "file:");
    }
    assert!(!var("PATH").is_empty());
    assert_eq!(var("STDIN"), "/dev/null");
    // Its own process group.
    let ids = var("PGID");
    let (pgid, pid) = ids.split_once(" PID=").unwrap();
    assert_eq!(pgid, pid);
    // Durations and start times are recorded.
    let first = &d.scripts[0];
    assert!(first.start_ms > 1_600_000_000_000, "{}", first.start_ms);
    assert!(first.duration > Duration::ZERO);
}

#[test]
fn a_failing_script_stops_the_run_and_is_kept_for_scriptstatus() {
    let _g = serial();
    let mut r = Rig::new("fail", |dir, root| {
        let root = root.display();
        write_script(dir, "10.ok.script", "echo fine", 0o755);
        write_script(
            dir,
            "20.fail.script",
            "echo one; echo 'it broke' >&2; exit 3",
            0o755,
        );
        write_script(
            dir,
            "30.after.script",
            &format!("touch {root}/after"),
            0o755,
        );
    });
    assert!(
        matches!(r.runner.script_status("monitor"), Response::Error(e) if e.contains("never run"))
    );
    r.runner.run(Event::Monitor, TIMEOUT);
    let d = r.next();
    assert_eq!(d.outcome, Outcome::Failed("20.fail".into()));
    assert_eq!(
        states(&d),
        named(&[
            ("10.ok", ScriptState::Ok),
            ("20.fail", ScriptState::Error(3)),
            ("30.after", ScriptState::NotRun),
        ])
    );
    assert_eq!(d.scripts[0].output, "fine\n");
    assert_eq!(d.scripts[1].output, "one\nit broke\n");
    assert!(!r.path("after").exists());
    match r.runner.script_status("monitor") {
        Response::ScriptStatus(s) => {
            assert_eq!(s.event, "monitor");
            assert_eq!(s.scripts, d.scripts);
        }
        other => panic!("{other:?}"),
    }
    // Fixed: the next run replaces it.
    write_script(&r.dir, "20.fail.script", "exit 0", 0o755);
    r.runner.run(Event::Monitor, TIMEOUT);
    assert_eq!(r.next().outcome, Outcome::Ok);
    let Response::ScriptStatus(s) = r.runner.script_status("monitor") else {
        panic!()
    };
    assert!(s.scripts.iter().all(|l| l.state == ScriptState::Ok));
    assert!(r.path("after").exists());
    // Another event's status is its own.
    assert!(matches!(
        r.runner.script_status("takeip"),
        Response::Error(_)
    ));
}

/// The script and the child it forked are both killed at the timeout; the result says
/// which script timed out and keeps what it printed.
#[test]
fn a_script_past_its_timeout_is_killed_with_its_process_group() {
    let _g = serial();
    let mut r = Rig::new("timeout", |dir, root| {
        let root = root.display();
        write_script(
            dir,
            "10.hang.script",
            &format!("sleep 60 & echo $! > {root}/child.pid; echo $$ > {root}/main.pid; echo started; sleep 60"),
            0o755,
        );
        write_script(
            dir,
            "20.after.script",
            &format!("touch {root}/after"),
            0o755,
        );
    });
    let timeout = Duration::from_millis(300);
    let t = Instant::now();
    r.runner.run(Event::Monitor, timeout);
    let d = r.next();
    let took = t.elapsed();
    assert_eq!(d.outcome, Outcome::TimedOut("10.hang".into()));
    assert_eq!(
        states(&d),
        named(&[
            ("10.hang", ScriptState::TimedOut),
            ("20.after", ScriptState::NotRun)
        ])
    );
    assert_eq!(d.scripts[0].output, "started\n");
    assert!(took >= timeout, "{took:?}");
    let (child, main) = (
        read_pid(&r.path("child.pid")),
        read_pid(&r.path("main.pid")),
    );
    until("the forked child to be killed", || gone(child));
    until("the script to be killed", || gone(main));
    assert!(!r.path("after").exists());
    println!("timeout {timeout:?}: reported after {took:?}");
}

/// A script that ignores SIGTERM (and so does its child) gets SIGKILL after the grace.
#[test]
fn a_script_ignoring_sigterm_is_killed_after_the_grace() {
    let _g = serial();
    let mut r = Rig::new("term", |dir, root| {
        let root = root.display();
        write_script(
            dir,
            "10.stubborn.script",
            &format!(
                "trap '' TERM; sleep 60 & echo $! > {root}/child.pid; \
                 while :; do sleep 1; done"
            ),
            0o755,
        );
    });
    let timeout = Duration::from_millis(200);
    let t = Instant::now();
    r.runner.run(Event::Monitor, timeout);
    let d = r.next();
    let took = t.elapsed();
    assert_eq!(d.outcome, Outcome::TimedOut("10.stubborn".into()));
    assert!(took >= timeout + TERM_GRACE, "{took:?}");
    let child = read_pid(&r.path("child.pid"));
    until("the child that ignored SIGTERM to be killed", || {
        gone(child)
    });
    println!("timeout {timeout:?} + grace {TERM_GRACE:?}: reported after {took:?}");
}

#[test]
fn output_is_captured_and_bounded_without_blocking_the_script() {
    let _g = serial();
    let mut r = Rig::with(
        "output",
        |dir, _| {
            // 1 MiB: far more than a pipe holds, so the runner must keep reading.
            write_script(
                dir,
                "10.chatty.script",
                "head -c 1048576 /dev/zero | tr '\\0' x; echo tail >&2",
                0o755,
            );
            write_script(dir, "20.quiet.script", "exit 0", 0o755);
        },
        |c| c.output_limit = 1000,
    );
    r.runner.run(Event::Monitor, TIMEOUT);
    let d = r.next();
    assert_eq!(d.outcome, Outcome::Ok);
    let chatty = &d.scripts[0];
    assert_eq!(chatty.output, "x".repeat(1000));
    assert_eq!(chatty.output_dropped, 1_048_576 + 5 - 1000);
    assert_eq!(d.scripts[1].output, "");
    assert_eq!(d.scripts[1].output_dropped, 0);
}

/// `run` returns while the script is still running: the script waits for a file that this
/// test creates only after `run` returned, and would time out if `run` waited for it.
#[test]
fn a_hung_script_does_not_block_the_caller() {
    let _g = serial();
    let mut r = Rig::new("noblock", |dir, root| {
        let root = root.display();
        write_script(
            dir,
            "10.wait.script",
            &format!(
                "touch {root}/started; n=0; \
                 while [ ! -e {root}/go ]; do sleep 0.01; n=$((n+1)); [ $n -lt 1000 ] || exit 9; done"
            ),
            0o755,
        );
    });
    let t = Instant::now();
    r.runner.run(Event::Startup, TIMEOUT);
    let returned = t.elapsed();
    until("the script to start", || r.path("started").exists());
    assert!(r.runner.try_recv().is_none());
    std::fs::write(r.path("go"), "").unwrap();
    let d = r.next();
    assert_eq!(d.outcome, Outcome::Ok);
    println!(
        "run() returned after {returned:?}; the script ran {:?}",
        d.scripts[0].duration
    );
}

#[test]
fn queued_events_run_one_at_a_time_in_order() {
    let _g = serial();
    let mut r = Rig::new("queue", |dir, root| {
        let root = root.display();
        // Each run notes its start and end, so an overlap would show.
        write_script(
            dir,
            "10.log.script",
            &format!("echo \"begin $*\" >> {root}/log; sleep 0.05; echo \"end $1\" >> {root}/log"),
            0o755,
        );
    });
    let release = Event::ReleaseIp {
        iface: "eth2".into(),
        ip: "fd00::5".parse().unwrap(),
        maskbits: 64,
    };
    let events = [
        Event::Startup,
        take_ip(),
        release,
        Event::IpReallocated,
        Event::Shutdown,
    ];
    let ids: Vec<_> = events
        .iter()
        .map(|e| r.runner.run(e.clone(), TIMEOUT))
        .collect();
    for (e, id) in events.iter().zip(&ids) {
        let d = r.next();
        assert_eq!((&d.event, d.id, &d.outcome), (e, *id, &Outcome::Ok));
    }
    let log = std::fs::read_to_string(r.path("log")).unwrap();
    assert_eq!(
        log,
        "begin startup\nend startup\n\
         begin takeip eth1 10.0.0.1 24\nend takeip\n\
         begin releaseip eth2 fd00::5 64\nend releaseip\n\
         begin ipreallocated\nend ipreallocated\n\
         begin shutdown\nend shutdown\n"
    );
}

/// CTDB's rule: another event cancels a running monitor (its process group is killed, it is
/// not kept for scriptstatus), and a monitor asked for while another event runs is cancelled
/// at once rather than queued.
#[test]
fn monitor_gives_way_to_other_events() {
    let _g = serial();
    let mut r = Rig::new("monitor", |dir, root| {
        let root = root.display();
        write_script(
            dir,
            "10.svc.script",
            &format!(
                "case \"$1\" in \
                 monitor) echo $$ > {root}/monitor.pid; sleep 60 ;; \
                 takeip) touch {root}/take.started; n=0; \
                   while [ ! -e {root}/go ]; do sleep 0.01; n=$((n+1)); [ $n -lt 1000 ] || exit 9; done ;; \
                 esac; echo \"$1\" >> {root}/log"
            ),
            0o755,
        );
    });
    // A running monitor is cancelled by takeip.
    let monitor = r.runner.run(Event::Monitor, TIMEOUT);
    until("the monitor to start", || r.path("monitor.pid").exists());
    let pid = read_pid(&r.path("monitor.pid"));
    let take = r.runner.run(take_ip(), TIMEOUT);
    let d = r.next();
    assert_eq!((d.id, &d.outcome), (monitor, &Outcome::Cancelled));
    until("the cancelled monitor to be killed", || gone(pid));
    // A monitor asked for while takeip runs is cancelled at once: takeip cannot finish
    // before `go` exists.
    until("takeip to start", || r.path("take.started").exists());
    let late = r.runner.run(Event::Monitor, TIMEOUT);
    let d = r.next();
    assert_eq!((d.id, &d.outcome), (late, &Outcome::Cancelled));
    std::fs::write(r.path("go"), "").unwrap();
    let d = r.next();
    assert_eq!((d.id, &d.outcome), (take, &Outcome::Ok));
    assert!(matches!(
        r.runner.script_status("monitor"),
        Response::Error(_)
    ));
    assert!(matches!(
        r.runner.script_status("takeip"),
        Response::ScriptStatus(_)
    ));
    // A newer monitor cancels a running one and runs.
    std::fs::remove_file(r.path("monitor.pid")).unwrap();
    let first = r.runner.run(Event::Monitor, TIMEOUT);
    until("the monitor to start", || r.path("monitor.pid").exists());
    let second = r.runner.run(Event::Monitor, Duration::from_millis(100));
    let d = r.next();
    assert_eq!((d.id, &d.outcome), (first, &Outcome::Cancelled));
    let d = r.next();
    assert_eq!(
        (d.id, &d.outcome),
        (second, &Outcome::TimedOut("10.svc".into()))
    );
    assert_eq!(std::fs::read_to_string(r.path("log")).unwrap(), "takeip\n");
}

#[test]
fn dropping_the_runner_kills_a_running_script() {
    let _g = serial();
    let mut r = Rig::new("drop", |dir, root| {
        let root = root.display();
        write_script(
            dir,
            "10.hang.script",
            &format!("echo $$ > {root}/main.pid; sleep 60"),
            0o755,
        );
    });
    r.runner.run(Event::Monitor, TIMEOUT);
    until("the script to start", || r.path("main.pid").exists());
    let pid = read_pid(&r.path("main.pid"));
    let Rig {
        runner, scratch, ..
    } = r;
    drop(runner);
    until("the script to be killed", || gone(pid));
    drop(scratch);
}

#[test]
fn a_missing_event_directory_is_an_error_not_a_panic() {
    let _g = serial();
    let mut r = Rig::new("missing", |_, _| {});
    assert!(EventRunner::start(RunnerConfig::new(r.path("nowhere")), Box::new(|| {})).is_err());
    let file = r.path("file");
    std::fs::write(&file, "").unwrap();
    let e = EventRunner::start(RunnerConfig::new(file), Box::new(|| {}))
        .err()
        .unwrap();
    assert!(e.contains("not a directory"), "{e}");
    // Removed while the runner runs: each event reports it, and the runner carries on.
    std::fs::remove_dir(&r.dir).unwrap();
    r.runner.run(Event::Monitor, TIMEOUT);
    let d = r.next();
    assert!(
        matches!(&d.outcome, Outcome::Error(e) if e.contains("cannot read event directory")),
        "{:?}",
        d.outcome
    );
    std::fs::create_dir_all(&r.dir).unwrap();
    write_script(&r.dir, "10.ok.script", "exit 0", 0o755);
    r.runner.run(Event::Monitor, TIMEOUT);
    assert_eq!(r.next().outcome, Outcome::Ok);
}

/// The whole path of `pharos scriptstatus`: the runner's answer, encoded as the daemon
/// writes it, read by the real `pharos` binary from a socket, printed like `ctdb
/// scriptstatus` (and as JSON with `--json`).
#[test]
fn pharos_scriptstatus_prints_the_runners_answer() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    let _g = serial();
    let mut r = Rig::new("cli", |dir, _| {
        write_script(dir, "00.ok.script", "exit 0", 0o755);
        write_script(dir, "05.off.script", "exit 0", 0o644);
        write_script(
            dir,
            "10.bad.script",
            "echo 'port 445 is not responding'; exit 1",
            0o755,
        );
        write_script(dir, "20.later.script", "exit 0", 0o755);
    });
    r.runner.run(Event::Monitor, TIMEOUT);
    assert_eq!(r.next().outcome, Outcome::Failed("10.bad".into()));
    let answer = pharos_host::schema::encode(&r.runner.script_status("monitor"));
    let never = pharos_host::schema::encode(&r.runner.script_status("takeip"));

    let sock = r.path("pharosd.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for reply in [&answer, &answer, &never] {
            let (mut c, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&c).read_line(&mut line).unwrap();
            requests.push(line);
            c.write_all(format!("{reply}\n").as_bytes()).unwrap();
        }
        requests
    });
    let pharos = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pharos"))
            .arg("--socket")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let text = pharos(&["scriptstatus"]);
    assert_eq!(text.status.code(), Some(0));
    let text = String::from_utf8(text.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("00.ok                OK         0.0"),
        "{text}"
    );
    assert_eq!(lines[1], "05.off               DISABLED  ");
    assert!(
        lines[2].starts_with("10.bad               ERROR      0.0"),
        "{text}"
    );
    assert_eq!(lines[3], "  OUTPUT: port 445 is not responding");
    let json = pharos(&["--json", "scriptstatus", "monitor"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["scripts"][2]["exit_code"], 1);
    assert_eq!(v["scripts"][3]["status"], "NOT RUN");
    let none = pharos(&["scriptstatus", "takeip"]);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&none.stderr),
        "pharos: event takeip has never run\n"
    );
    let requests = server.join().unwrap();
    assert_eq!(
        requests,
        [
            "scriptstatus monitor\n",
            "scriptstatus monitor\n",
            "scriptstatus takeip\n"
        ]
    );
    print!("{text}");
}
