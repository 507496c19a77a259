//! The runner's thread: a queue of events, one running at a time, each script a child
//! process waited for with `poll` (its pidfd, its output pipe, the handle's eventfd), so the
//! thread reacts at once to an exit, to output, to a new command and to a deadline.

use super::discover::{self, Script};
use super::event::Event;
use super::process::{self, kill_group, readable, Bell, Child, Finished, NO_PIDFD_TICK};
use super::{EventDone, Outcome, RunId};
use pharos_core::control::{ScriptLine, ScriptState};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a timed-out script's process group has between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_millis(500);

pub(crate) enum Command {
    Run {
        id: RunId,
        event: Event,
        timeout: Duration,
    },
    Stop,
}

struct Job {
    id: RunId,
    event: Event,
    timeout: Duration,
}

/// The event being run.
struct Run {
    job: Job,
    scripts: Vec<Script>,
    /// The script running (or next to start).
    index: usize,
    lines: Vec<ScriptLine>,
    /// When the event's time is up (`None`: a timeout of 0, no limit).
    deadline: Option<Instant>,
    child: Option<Child>,
    /// Set at the deadline, after SIGTERM: when SIGKILL follows.
    kill_at: Option<Instant>,
}

pub(crate) struct Worker {
    pub dir: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub output_limit: usize,
    pub inbox: Receiver<Command>,
    pub bell: Arc<Bell>,
    pub outbox: Sender<EventDone>,
    pub wake: Box<dyn Fn() + Send>,
    pub stopped: Sender<()>,
}

/// What the worker holds between turns.
struct State {
    queue: VecDeque<Job>,
    running: Option<Run>,
    /// Killed scripts not yet reaped (one in uninterruptible sleep can take its time; the
    /// runner never waits for it).
    reaping: Vec<Child>,
}

fn line(name: &str, state: ScriptState, f: Option<&Finished>) -> ScriptLine {
    ScriptLine {
        name: name.to_string(),
        state,
        start_ms: f.map_or(0, |f| f.start_ms),
        duration: f.map_or(Duration::ZERO, |f| f.duration),
        output: f.map_or_else(String::new, |f| {
            String::from_utf8_lossy(&f.output).into_owned()
        }),
        output_dropped: f.map_or(0, |f| f.dropped),
    }
}

impl Worker {
    pub fn run(self) {
        let mut st = State {
            queue: VecDeque::new(),
            running: None,
            reaping: Vec::new(),
        };
        loop {
            if st.running.is_none() {
                if let Some(job) = st.queue.pop_front() {
                    self.begin(&mut st, job);
                    continue;
                }
            }
            // Wait for a command, the running script's exit or output, a killed script's
            // exit, or the next deadline.
            let mut fds = vec![readable(self.bell.fd())];
            let mut timeout: Option<Duration> = None;
            let mut tick = false;
            let now = Instant::now();
            if let Some(run) = &st.running {
                if let Some(c) = &run.child {
                    match c.pidfd() {
                        Some(fd) => fds.push(readable(fd)),
                        None => tick = true,
                    }
                    if let Some(fd) = c.out_fd() {
                        fds.push(readable(fd));
                    }
                }
                for at in [run.deadline, run.kill_at].into_iter().flatten() {
                    let left = at.saturating_duration_since(now);
                    timeout = Some(timeout.map_or(left, |t| t.min(left)));
                }
            }
            for c in &st.reaping {
                match c.pidfd() {
                    Some(fd) => fds.push(readable(fd)),
                    None => tick = true,
                }
            }
            if tick {
                timeout = Some(timeout.map_or(NO_PIDFD_TICK, |t| t.min(NO_PIDFD_TICK)));
            }
            process::poll(&mut fds, timeout);
            if fds[0].revents != 0 {
                self.bell.clear();
            }
            if !self.commands(&mut st) {
                self.stop(&mut st);
                return;
            }
            st.reaping
                .retain_mut(|c| !(c.has_exited() && c.reap_if_exited()));
            self.step(&mut st);
        }
    }

    /// Takes every queued command; false on Stop (or when the handle is gone).
    fn commands(&self, st: &mut State) -> bool {
        loop {
            match self.inbox.try_recv() {
                Ok(Command::Run { id, event, timeout }) => {
                    self.submit(st, Job { id, event, timeout })
                }
                Ok(Command::Stop) => return false,
                Err(std::sync::mpsc::TryRecvError::Empty) => return true,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// CTDB's rule (`run_event_send`): a running monitor is cancelled by any new event (a newer
    /// monitor included); a monitor asked for while another event runs or waits is cancelled
    /// at once, not queued. Everything else waits its turn, in order.
    fn submit(&self, st: &mut State, job: Job) {
        let monitor_running = st
            .running
            .as_ref()
            .is_some_and(|r| r.job.event.is_monitor());
        let other_busy = st
            .running
            .as_ref()
            .is_some_and(|r| !r.job.event.is_monitor())
            || st.queue.iter().any(|j| !j.event.is_monitor());
        if job.event.is_monitor() && other_busy && !monitor_running {
            self.report(job, Outcome::Cancelled, Vec::new());
            return;
        }
        if monitor_running {
            self.cancel_running(st);
        }
        // A monitor still waiting (only ever at the head, behind nothing) gives way as well.
        let (monitors, others): (VecDeque<Job>, VecDeque<Job>) =
            st.queue.drain(..).partition(|j| j.event.is_monitor());
        st.queue = others;
        for m in monitors {
            self.report(m, Outcome::Cancelled, Vec::new());
        }
        st.queue.push_back(job);
    }

    fn cancel_running(&self, st: &mut State) {
        let Some(mut run) = st.running.take() else {
            return;
        };
        if let Some(mut c) = run.child.take() {
            // As CTDB: SIGKILL to the group at once; reaped when it is gone.
            kill_group(c.pid(), libc::SIGKILL);
            let f = c.snapshot();
            let name = &run.scripts[run.index].name;
            run.lines.push(line(name, ScriptState::NotRun, Some(&f)));
            st.reaping.push(c);
        }
        log::info!("event {}: cancelled", run.job.event);
        self.report(run.job, Outcome::Cancelled, run.lines);
    }

    fn begin(&self, st: &mut State, job: Job) {
        let scripts = match discover::list(&self.dir) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("cannot read event directory {}: {e}", self.dir.display());
                log::warn!("event {}: {why}", job.event);
                self.report(job, Outcome::Error(why), Vec::new());
                return;
            }
        };
        log::debug!("event {}: {} scripts", job.event, scripts.len());
        let deadline = (!job.timeout.is_zero()).then(|| Instant::now() + job.timeout);
        st.running = Some(Run {
            job,
            scripts,
            index: 0,
            lines: Vec::new(),
            deadline,
            child: None,
            kill_at: None,
        });
        self.advance(st);
    }

    /// Starts the next enabled script, recording disabled ones on the way; ends the event
    /// when none is left or one cannot be started.
    fn advance(&self, st: &mut State) {
        let Some(run) = st.running.as_mut() else {
            return;
        };
        while run.index < run.scripts.len() {
            let script = &run.scripts[run.index];
            if !script.enabled {
                run.lines
                    .push(line(&script.name, ScriptState::Disabled, None));
                run.index += 1;
                continue;
            }
            match Child::spawn(script, &run.job.event, &self.env, self.output_limit) {
                Ok(c) => {
                    run.child = Some(c);
                    return;
                }
                // CTDB maps these to DISABLED: a script disabled (or its link removed) between
                // the listing and the start.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::ENOENT)) => {
                    run.lines
                        .push(line(&script.name, ScriptState::Disabled, None));
                    run.index += 1;
                }
                Err(e) => {
                    let name = script.name.clone();
                    run.lines
                        .push(line(&name, ScriptState::CannotRun(e.to_string()), None));
                    self.fail(st, Outcome::Failed(name));
                    return;
                }
            }
        }
        self.end(st, Outcome::Ok);
    }

    /// After a wake-up: the running script's output, exit, deadline.
    fn step(&self, st: &mut State) {
        let Some(run) = st.running.as_mut() else {
            return;
        };
        let Some(child) = run.child.as_mut() else {
            return;
        };
        child.read_output();
        let now = Instant::now();
        if child.has_exited() {
            let timed_out = run.kill_at.is_some();
            if timed_out {
                // Whatever it started goes too; the zombie still holds the group's id.
                kill_group(child.pid(), libc::SIGKILL);
            }
            let Some(child) = run.child.take() else {
                return;
            };
            let name = run.scripts[run.index].name.clone();
            let f = child.finish();
            let state = if timed_out {
                ScriptState::TimedOut
            } else {
                match f.code_or_signal() {
                    (Some(0), _) => ScriptState::Ok,
                    (Some(code), _) => ScriptState::Error(code),
                    (None, Some(sig)) => ScriptState::Signalled(sig),
                    (None, None) => ScriptState::CannotRun("lost track of the process".into()),
                }
            };
            let ok = state == ScriptState::Ok;
            run.lines.push(line(&name, state, Some(&f)));
            if timed_out {
                self.fail(st, Outcome::TimedOut(name));
            } else if ok {
                run.index += 1;
                self.advance(st);
            } else {
                self.fail(st, Outcome::Failed(name));
            }
            return;
        }
        match (run.deadline, run.kill_at) {
            (_, Some(kill_at)) if now >= kill_at => {
                // It ignored SIGTERM for TERM_GRACE.
                kill_group(child.pid(), libc::SIGKILL);
                let Some(mut child) = run.child.take() else {
                    return;
                };
                let name = run.scripts[run.index].name.clone();
                let f = child.snapshot();
                run.lines.push(line(&name, ScriptState::TimedOut, Some(&f)));
                st.reaping.push(child);
                self.fail(st, Outcome::TimedOut(name));
            }
            (Some(deadline), None) if now >= deadline => {
                log::warn!(
                    "event {}: {} timed out after {:?}, killing its process group",
                    run.job.event,
                    run.scripts[run.index].name,
                    run.job.timeout
                );
                kill_group(child.pid(), libc::SIGTERM);
                run.kill_at = Some(now + TERM_GRACE);
            }
            _ => {}
        }
    }

    /// Ends the run after a failed script: the ones after it are not run.
    fn fail(&self, st: &mut State, outcome: Outcome) {
        if let Some(run) = st.running.as_mut() {
            for s in &run.scripts[(run.index + 1).min(run.scripts.len())..] {
                run.lines.push(line(&s.name, ScriptState::NotRun, None));
            }
        }
        self.end(st, outcome);
    }

    fn end(&self, st: &mut State, outcome: Outcome) {
        let Some(run) = st.running.take() else {
            return;
        };
        match &outcome {
            Outcome::Ok => log::debug!("event {}: OK", run.job.event),
            other => {
                log::warn!("event {}: {other}", run.job.event);
                for l in run.lines.iter().filter(|l| !l.output.is_empty()) {
                    if l.state != ScriptState::Ok {
                        for text in l.output.lines() {
                            log::warn!("{}: {text}", l.name);
                        }
                    }
                }
            }
        }
        self.report(run.job, outcome, run.lines);
    }

    fn report(&self, job: Job, outcome: Outcome, scripts: Vec<ScriptLine>) {
        let _ = self.outbox.send(EventDone {
            id: job.id,
            event: job.event,
            outcome,
            scripts,
        });
        (self.wake)();
    }

    /// The handle is gone or asked to stop: kill what runs (CTDB's event daemon kills its
    /// children when it ends), say so, and end the thread.
    fn stop(&self, st: &mut State) {
        if let Some(c) = st.running.as_ref().and_then(|r| r.child.as_ref()) {
            kill_group(c.pid(), libc::SIGKILL);
        }
        if let Some(mut run) = st.running.take() {
            if let Some(mut c) = run.child.take() {
                let _ = c.snapshot();
                st.reaping.push(c);
            }
        }
        // Killed children die at once unless stuck in the kernel: reap those that are gone.
        st.reaping
            .retain_mut(|c| !(c.has_exited() && c.reap_if_exited()));
        let _ = self.stopped.send(());
    }
}
