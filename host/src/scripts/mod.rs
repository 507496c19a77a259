//! Event scripts: CTDB's legacy event scripts, run unchanged, off the event loop.
//!
//! # What CTDB does, and where pharos matches it
//!
//! Read from Samba's source (master 4614f04b, 2026): `ctdb/common/event_script.c` (the
//! listing), `ctdb/common/run_event.c` (one event: the scripts in order, the queue, monitor
//! cancellation), `ctdb/common/run_proc.c` (one script as a child process),
//! `ctdb/event/event_cmd.c` and `event_context.c` (the event daemon: timeouts, what is kept
//! for `scriptstatus`), `ctdb/event/event_tool.c` (the `ctdb event status` text),
//! `ctdb/server/eventscript.c` (ctdbd's side: arguments, timeouts turned into success),
//! `ctdb/server/ctdbd.c` (the environment), `ctdb/config/functions`,
//! `ctdb/config/events/README`, `ctdb/config/events/legacy/10.interface.script`, and
//! `ctdb-tunables(7)`, `ctdb(1)`.
//!
//! **Layout.** CTDB 4.9+ runs `$CTDB_BASE/events/legacy/NN.NAME.script` (usually symbolic
//! links into `/usr/share/ctdb/events/legacy/`), CTDB 4.8 and earlier
//! `$CTDB_BASE/events.d/NN.NAME`. pharos reads either spelling from `event_dir`, with each
//! release's filter ([`discover`]): other files are ignored, scripts run in file-name order,
//! and one without the owner-execute bit is DISABLED: listed, not run, never a failure.
//!
//! **Events and arguments** (`argv[1]` is the event, the arguments follow; `argv[0]` is the
//! script's name and the program its path, so a `#!/bin/sh` script sees `$0` = its path):
//! `init`, `setup`, `startup`, `startrecovery`, `recovered`, `takeip IFACE IP MASKBITS`,
//! `releaseip IFACE IP MASKBITS`, `monitor`, `shutdown`,
//! `updateip OLDIFACE NEWIFACE IP MASKBITS`, `ipreallocated`, and `startipreallocate` (CTDB
//! 4.21+): [`Event`]. When CTDB runs each (init and setup once at start, their failure ending
//! the daemon; startup retried until it succeeds; monitor every MonitorInterval; the IP events
//! around a takeover run) is the caller's business: this module runs what it is asked to.
//!
//! **One event at a time.** CTDB's event daemon queues events (`tevent_queue`) and runs one at
//! a time, its scripts one after the other; so does [`EventRunner`] (the README's "takeip
//! events can run in parallel" predates the event daemon). **Monitor gives way**
//! (`run_event_send`): a new event of any kind cancels a running `monitor` (its process
//! group gets SIGKILL, the run is reported [`Outcome::Cancelled`], and its results are not
//! kept), and a `monitor` asked for while another event runs or waits is cancelled at once
//! rather than queued, so a monitor never delays a `takeip` and never piles up behind one.
//! A queued `monitor` that a `takeip` overtakes is cancelled the same way.
//!
//! **What stops a run.** The first script that fails: a non-zero exit status, a signal, a
//! timeout, or a script that cannot be started (CTDB: "CANNOT RUN"). The scripts after it do
//! not run (`NOT RUN`; CTDB's "no data", which `ctdb event status` hides; CTDB carries older
//! results forward for them and hides those too, so the text is the same). A DISABLED script
//! does not stop anything. CTDB's `ctdb event run --all` (continue after a failure) is not
//! offered: ctdbd itself never uses it.
//!
//! **Exit codes.** 0 is success, anything else failure; there is no "disabled" exit code
//! (DISABLED means not executable; a start that fails with EACCES or ENOENT, a script
//! disabled or unlinked between the listing and the start, also counts as DISABLED, as CTDB
//! maps it). CTDB's child reports its own `execv` failure as exit 64 + errno; pharos gets
//! exec errors from the spawn itself, so an exit code is always the script's own.
//!
//! **Timeouts.** The caller passes the event's timeout (the tunable `EventScriptTimeout`,
//! CTDB's default 30 s; 0: no limit). As in CTDB it bounds the whole event, all its scripts
//! together, not each script. At the deadline the running script's process group gets SIGTERM,
//! and SIGKILL [`TERM_GRACE`] later or as soon as the script itself has exited (so that what
//! it forked goes too); the script is TIMEDOUT, the event [`Outcome::TimedOut`].
//! **Differs from CTDB:** CTDB starts the clock when the event is *queued* (a `takeip`
//! behind a slow `startup` gets what is left), and at the deadline runs its optional debug
//! script and then sends SIGTERM only (a script that ignores it runs on); pharos starts the
//! clock when the event starts and always kills the group. ctdbd then treats a timed-out
//! `takeip`, `releaseip`, `startrecovery` or `recovered` as success ("their callers have
//! their own timeout"), and counts monitor timeouts against `MonitorTimeoutCount` (20)
//! before it marks the node UNHEALTHY: that policy belongs to the caller, which sees
//! `TimedOut` here.
//!
//! **The child.** Its own process group (`setpgid(0, 0)` in CTDB; `process_group(0)` here),
//! stdin from `/dev/null` (CTDB passes the event daemon's stdin, which is `/dev/null` under
//! systemd), stdout and stderr into one pipe (the output interleaves as written), the rest of
//! the descriptors closed (close-on-exec), signal dispositions reset to default. A script has
//! finished when its process exits, not when the pipe closes: a background daemon it started
//! (a `takeip` that starts a service) may keep the pipe open forever. Its output is what
//! was in the pipe by then, kept up to [`RunnerConfig::output_limit`] bytes per script (CTDB
//! keeps it all; here the rest is read, counted and dropped, so a chatty script neither
//! blocks on a full pipe nor grows the daemon). A script's successful exit kills nothing: the
//! services it started keep running.
//!
//! **Environment.** CTDB's scripts get ctdbd's environment, where ctdbd sets `CTDB_BASE` (to
//! its configuration directory unless already set), `CTDB_LOGGING` and `CTDB_DEBUGLEVEL`; the
//! `functions` file defaults `CTDB_SCRIPT_VARDIR` (state), `CTDB_VARDIR` and
//! `CTDB_HELPER_BINDIR` itself, and a script finds `CTDB_BASE` from `$0`
//! (`dirname $0`/../..) when it is unset. pharos passes its own environment and sets:
//! - `CTDB_BASE`: [`RunnerConfig::ctdb_base`] if given, else the one pharosd was started
//!   with, else derived from `event_dir`: the directory that holds `events/legacy` (for
//!   `.../events/legacy`) or `events.d`; for any other `event_dir`, its parent. So
//!   `event_dir = "/etc/ctdb/events/legacy"` gives `/etc/ctdb`, where the scripts find
//!   `functions` and `script.options`.
//! - `CTDB_SCRIPT_VARDIR`: [`RunnerConfig::script_vardir`] if given (one per daemon when
//!   several run on a host), else left alone (the scripts' default).
//! - `CTDB_LOGGING=file:` (CTDB's "log to stderr", what ctdbd sets when it logs to stderr, as
//!   pharosd does: a script's `script_log` then writes into its captured output) and
//!   `CTDB_DEBUGLEVEL=NOTICE` (CTDB's default level) unless pharosd's environment has them.
//! - `PATH`: pharosd's; when it has none, `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`.
//!
//! Not provided: `$CTDB` (scripts call `ctdb` for `ctdb pnn`, `setifacelink`, ...; pointing
//! it at `pharos` would answer only what pharos has), `CTDB_INTERACTIVE`.
//!
//! **`scriptstatus`.** For each event, the scripts of its last run that completed (cancelled
//! runs are not kept): name, OK / ERROR / TIMEDOUT / DISABLED / CANNOT RUN, duration, start
//! time, output. `ctdb scriptstatus [EVENT]` (an alias of `ctdb event status legacy EVENT`,
//! `monitor` by default) prints
//! `00.ctdb              OK         0.004 Mon Nov 23 16:18:10 2026`, the output indented
//! under a failing script, nothing for the scripts after it; `pharos scriptstatus` prints the
//! same from [`EventRunner::script_status`] (rendering in `render::scriptstatus`). **Differs
//! from CTDB:** a script ended by a signal it was not sent by the runner is `ERROR` with
//! `(ended by signal N)` (CTDB: `CANNOT RUN (Interrupted system call)`), and output beyond the
//! limit is noted as `(N more bytes of output not kept)`. `ctdb scriptstatus` exits 0 whatever
//! the scripts did; so does `pharos scriptstatus`, except for an event that has never run
//! (an error, exit 1; ctdb prints `Event monitor has never run in legacy`).
//!
//! # Using it from a shell
//!
//! ```no_run
//! # use pharos_host::scripts::{EventRunner, RunnerConfig, Event};
//! # use std::time::Duration;
//! let mut runner = EventRunner::start(
//!     RunnerConfig::new("/etc/ctdb/events/legacy".into()),
//!     Box::new(|| { /* mio: waker.wake(); tokio: notify.notify_one() */ }),
//! )?;
//! let id = runner.run(Event::Monitor, Duration::from_secs(30)); // returns at once
//! // ... on the wake-up, on the loop's thread:
//! while let Some(done) = runner.try_recv() {
//!     // done.id == id, done.outcome: Ok / Failed / TimedOut / Cancelled / Error
//! }
//! // A `scriptstatus [EVENT]` request is answered without the core:
//! let answer = runner.script_status("monitor"); // a control::Response
//! # Ok::<(), String>(())
//! ```

pub mod discover;
pub mod event;
mod process;
mod worker;

pub use discover::Script;
pub use event::Event;
pub use worker::TERM_GRACE;

use pharos_core::control::{Response, ScriptLine, ScriptStatusReport};
use process::Bell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;
use worker::{Command, Worker};

/// Output kept per script by default: enough for any diagnosis a script prints, small enough
/// that a `scriptstatus` of dozens of scripts stays far below the CLI's 1 MiB answer limit.
pub const DEFAULT_OUTPUT_LIMIT: usize = 8 * 1024;

/// `PATH` for the scripts when pharosd has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the runner runs scripts.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The event directory (`event_dir`, `--event-dir`).
    pub event_dir: PathBuf,
    /// `CTDB_BASE` for the scripts; `None`: pharosd's own, else derived (see the module docs).
    pub ctdb_base: Option<PathBuf>,
    /// `CTDB_SCRIPT_VARDIR` for the scripts; `None`: not set.
    pub script_vardir: Option<PathBuf>,
    /// Bytes of output kept per script.
    pub output_limit: usize,
}

impl RunnerConfig {
    /// The defaults for `event_dir`.
    pub fn new(event_dir: PathBuf) -> RunnerConfig {
        RunnerConfig {
            event_dir,
            ctdb_base: None,
            script_vardir: None,
            output_limit: DEFAULT_OUTPUT_LIMIT,
        }
    }
}

/// `CTDB_BASE` as derived from the event directory: the directory holding `events/legacy` or
/// `events.d`, else the event directory's parent.
pub fn derived_ctdb_base(event_dir: &Path) -> PathBuf {
    let parts: Vec<Component<'_>> = event_dir.components().collect();
    let names: Vec<&std::ffi::OsStr> = parts.iter().map(|c| c.as_os_str()).collect();
    let up = match names.as_slice() {
        [.., a, b] if *a == "events" && *b == "legacy" => 2,
        _ => 1,
    };
    let mut base = event_dir.to_path_buf();
    for _ in 0..up {
        if !base.pop() {
            break;
        }
    }
    base
}

/// The variables the runner adds to the inherited environment (see the module docs).
fn script_env(config: &RunnerConfig, event_dir: &Path) -> Vec<(OsString, OsString)> {
    let inherited = |k: &str| std::env::var_os(k);
    let mut env = Vec::new();
    let base = config
        .ctdb_base
        .clone()
        .map(PathBuf::into_os_string)
        .or_else(|| inherited("CTDB_BASE"))
        .unwrap_or_else(|| derived_ctdb_base(event_dir).into_os_string());
    env.push(("CTDB_BASE".into(), base));
    if let Some(v) = &config.script_vardir {
        env.push(("CTDB_SCRIPT_VARDIR".into(), v.clone().into_os_string()));
    }
    for (k, default) in [
        ("CTDB_LOGGING", "file:"),
        ("CTDB_DEBUGLEVEL", "NOTICE"),
        ("PATH", DEFAULT_PATH),
    ] {
        if inherited(k).is_none() {
            env.push((k.into(), default.into()));
        }
    }
    env
}

/// Identifies one [`EventRunner::run`] call in its [`EventDone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub u64);

/// How an event's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every enabled script exited 0 (none at all counts).
    Ok,
    /// This script failed (an exit status, a signal, or it could not be started); the ones
    /// after it did not run.
    Failed(String),
    /// This script was still running when the event's time was up; it was killed with its
    /// process group, the ones after it did not run.
    TimedOut(String),
    /// A `monitor` that gave way to another event (see the module docs); not kept for
    /// `scriptstatus`.
    Cancelled,
    /// Nothing could run: the event directory could not be read.
    Error(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("OK"),
            Outcome::Failed(s) => write!(f, "{s} failed"),
            Outcome::TimedOut(s) => write!(f, "timed out in {s}"),
            Outcome::Cancelled => f.write_str("cancelled"),
            Outcome::Error(e) => f.write_str(e),
        }
    }
}

/// One finished (or cancelled) run, as [`EventRunner::try_recv`] hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDone {
    /// What [`EventRunner::run`] returned for it.
    pub id: RunId,
    /// The event, with its arguments.
    pub event: Event,
    /// How it ended.
    pub outcome: Outcome,
    /// Each script's result, in order (for a cancelled run: those that ran).
    pub scripts: Vec<ScriptLine>,
}

/// The event loop's handle on the runner thread. Nothing here blocks: [`EventRunner::run`]
/// queues, [`EventRunner::try_recv`] takes what has finished, and the wake-up given to
/// [`EventRunner::start`] says when to look.
pub struct EventRunner {
    commands: Sender<Command>,
    bell: Arc<Bell>,
    results: Receiver<EventDone>,
    stopped: Receiver<()>,
    next: u64,
    /// The last completed run of each event, by name, for `scriptstatus`.
    book: BTreeMap<&'static str, ScriptStatusReport>,
}

impl EventRunner {
    /// Starts the runner thread for `config.event_dir`, which must be a directory (it is
    /// read again before every event, so scripts can be added, enabled and disabled at run
    /// time, as in CTDB). `wake` is called on the runner thread after every result it
    /// queues.
    pub fn start(config: RunnerConfig, wake: Box<dyn Fn() + Send>) -> Result<EventRunner, String> {
        let dir = std::path::absolute(&config.event_dir)
            .map_err(|e| format!("event directory {}: {e}", config.event_dir.display()))?;
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "event directory {} is not a directory",
                    dir.display()
                ))
            }
            Err(e) => return Err(format!("event directory {}: {e}", dir.display())),
        }
        let env = script_env(&config, &dir);
        let bell = Arc::new(Bell::new().map_err(|e| format!("cannot create an eventfd: {e}"))?);
        let (commands, inbox) = mpsc::channel();
        let (outbox, results) = mpsc::channel();
        let (stopped_tx, stopped) = mpsc::channel();
        let worker = Worker {
            dir,
            env,
            output_limit: config.output_limit,
            inbox,
            bell: bell.clone(),
            outbox,
            wake,
            stopped: stopped_tx,
        };
        std::thread::Builder::new()
            .name("pharos-scripts".into())
            .spawn(move || worker.run())
            .map_err(|e| format!("cannot start the event script thread: {e}"))?;
        Ok(EventRunner {
            commands,
            bell,
            results,
            stopped,
            next: 0,
            book: BTreeMap::new(),
        })
    }

    /// Queues `event` with this much time for all its scripts (`EventScriptTimeout`; zero:
    /// no limit). Returns at once; the result comes through [`EventRunner::try_recv`].
    pub fn run(&mut self, event: Event, timeout: Duration) -> RunId {
        self.next += 1;
        let id = RunId(self.next);
        let _ = self.commands.send(Command::Run { id, event, timeout });
        self.bell.ring();
        id
    }

    /// The next finished run, if one is waiting. Never blocks. A completed run (anything
    /// but `Cancelled` and `Error`) becomes its event's `scriptstatus`.
    pub fn try_recv(&mut self) -> Option<EventDone> {
        let done = self.results.try_recv().ok()?;
        if !matches!(done.outcome, Outcome::Cancelled | Outcome::Error(_)) {
            self.book.insert(
                done.event.name(),
                ScriptStatusReport {
                    event: done.event.name(),
                    scripts: done.scripts.clone(),
                },
            );
        }
        Some(done)
    }

    /// The last completed run of `event` (a name of `control::EVENT_NAMES`).
    pub fn last_run(&self, event: &str) -> Option<&ScriptStatusReport> {
        self.book.get(event)
    }

    /// The answer to `scriptstatus EVENT`.
    pub fn script_status(&self, event: &str) -> Response {
        match self.last_run(event) {
            Some(r) => Response::ScriptStatus(r.clone()),
            None => Response::Error(format!("event {event} has never run")),
        }
    }
}

impl Drop for EventRunner {
    /// Stops the thread, which kills a running script's process group first. Waits a moment
    /// for that (a script killed by SIGKILL is gone in microseconds), never longer: a start
    /// stuck in a hung file system must not hold up the daemon's exit.
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        self.bell.ring();
        let _ = self.stopped.recv_timeout(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctdb_base_follows_the_layout() {
        let d = |p: &str| derived_ctdb_base(Path::new(p));
        assert_eq!(d("/etc/ctdb/events/legacy"), Path::new("/etc/ctdb"));
        assert_eq!(d("/etc/ctdb/events/legacy/"), Path::new("/etc/ctdb"));
        assert_eq!(d("/etc/ctdb/events.d"), Path::new("/etc/ctdb"));
        assert_eq!(d("/srv/pharos/scripts"), Path::new("/srv/pharos"));
        assert_eq!(d("/legacy"), Path::new("/"));
    }
}
