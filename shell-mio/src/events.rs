//! pharosd's event scripts: when each of CTDB's events runs, and what its result does to the
//! node. The scripts themselves run on [`EventRunner`]'s thread; nothing here blocks the loop
//! except `init`/`setup` before the loop starts and `shutdown` after it ends (CTDB blocks the
//! same way).
//!
//! - `init`, `setup`: once at start, before the node talks to anyone; a failure ends the
//!   daemon with the failing script's name.
//! - The node says it is UNHEALTHY from its start until a `monitor` passes (CTDB's start).
//! - `startup`: after the first recovery this daemon sees; retried every MonitorInterval until
//!   it succeeds. A `monitor` follows at once, then one every MonitorInterval after the
//!   previous one ended. A failing (or unrunnable) monitor marks the node UNHEALTHY, a passing
//!   one clears it; a timed-out one counts, and MonitorTimeoutCount of them in a row mark it
//!   UNHEALTHY (CTDB's rule). A monitor cancelled by another event changes nothing.
//! - `takeip IFACE IP MASKBITS`: after the netlink add, before the core hears of the take. A
//!   failure fails the take (the address is removed again); a timeout counts as success, as
//!   in ctdbd.
//! - `releaseip IFACE IP MASKBITS`: before the netlink remove. The address goes whatever the
//!   script says (no address may stay behind); a failure is reported to the recovery master
//!   with the release's answer. When the core releases everything at once (quorum or lease
//!   lost, banned, shutting down), the addresses go first and `releaseip` runs for each
//!   afterwards: safety comes before the services' order (**differs from CTDB**, which runs
//!   `releaseip` first in every case).
//! - `startrecovery`, `recovered`, `ipreallocated`: from the core's notifications, on every
//!   node.
//! - `shutdown`: on a clean stop, after the addresses are released.
//! - `updateip` never runs: an address whose interface fails is released and taken again
//!   (possibly on another node), not moved between interfaces.

use pharos_core::config::Tunables;
use pharos_core::node::IpResult;
use pharos_core::wire::IpOp;
use pharos_core::{Event, Notification};
use pharos_host::scripts::{Event as Script, EventDone, EventRunner, Outcome, RunId, RunnerConfig};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The errno reported for a take or release whose script failed.
pub const SCRIPT_FAILED: i32 = libc::EIO;

/// An address as the scripts name it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Place {
    prefix: u8,
    iface: String,
}

/// What the loop must do after a script finished.
#[derive(Debug)]
pub enum Then {
    /// Feed this to the core.
    Feed(Event<'static>),
    /// Remove the address through netlink (its answer goes to the core as usual).
    Remove {
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// The interface.
        iface: String,
    },
}

/// The event scripts of one daemon.
pub struct Scripts {
    runner: EventRunner,
    /// Where each address the core asked to take is going, until its takeip ran.
    placing: HashMap<IpAddr, Place>,
    /// Addresses whose takeip ran, for `releaseip` after a release of everything.
    hosted: HashMap<IpAddr, Place>,
    /// takeip runs waiting, with the netlink answer they hold back.
    takes: Vec<(RunId, IpAddr, Place)>,
    /// releaseip runs waiting, before their netlink remove.
    releases: Vec<(RunId, IpAddr, Place)>,
    /// Addresses whose releaseip failed: their release's answer says so.
    release_failed: Vec<IpAddr>,
    startup: Option<RunId>,
    started: bool,
    monitor: Option<RunId>,
    monitor_timeouts: u32,
    /// When the next startup attempt or monitor is due.
    next: Option<Instant>,
}

impl Scripts {
    /// Starts the runner and runs `init` then `setup`, waiting for each. `wake` is called
    /// (on the runner's thread) whenever a result waits; `waiting` every few milliseconds
    /// while the daemon waits (the guardian's heartbeat must go on).
    pub fn start(
        dir: PathBuf,
        tunables: &Tunables,
        wake: Box<dyn Fn() + Send>,
        waiting: &mut dyn FnMut(),
    ) -> Result<Scripts, String> {
        let runner = EventRunner::start(RunnerConfig::new(dir), wake)?;
        let mut s = Scripts {
            runner,
            placing: HashMap::new(),
            hosted: HashMap::new(),
            takes: Vec::new(),
            releases: Vec::new(),
            release_failed: Vec::new(),
            startup: None,
            started: false,
            monitor: None,
            monitor_timeouts: 0,
            next: None,
        };
        for event in [Script::Init, Script::Setup] {
            let name = event.name();
            let done = s.run_and_wait(event, tunables.event_script_timeout, waiting);
            match done.map(|d| d.outcome) {
                Some(Outcome::Ok) => log::info!("event {name}: OK"),
                Some(o) => return Err(format!("event script {name}: {o}")),
                None => return Err(format!("event script {name}: no answer from the runner")),
            }
        }
        Ok(s)
    }

    /// Runs `event` and waits for its result (before and after the loop only), at most its
    /// timeout and a second more. Results of other runs that arrive meanwhile are dropped.
    fn run_and_wait(
        &mut self,
        event: Script,
        timeout: Duration,
        waiting: &mut dyn FnMut(),
    ) -> Option<EventDone> {
        let id = self.runner.run(event, timeout);
        let deadline = Instant::now() + timeout + Duration::from_secs(1);
        while Instant::now() < deadline {
            while let Some(done) = self.runner.try_recv() {
                if done.id == id {
                    return Some(done);
                }
            }
            waiting();
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    /// When [`Scripts::on_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Runs a due startup attempt or monitor.
    pub fn on_timeout(&mut self, now: Instant, tunables: &Tunables) {
        if self.next.is_none_or(|t| now < t) {
            return;
        }
        self.next = None;
        if !self.started {
            if self.startup.is_none() {
                self.startup = Some(
                    self.runner
                        .run(Script::Startup, tunables.event_script_timeout),
                );
            }
        } else if self.monitor.is_none() {
            self.monitor = Some(
                self.runner
                    .run(Script::Monitor, tunables.event_script_timeout),
            );
        }
    }

    /// The core asked to take `addr`: remember where, for its takeip.
    pub fn taking(&mut self, addr: IpAddr, prefix: u8, iface: &str) {
        self.placing.insert(
            addr,
            Place {
                prefix,
                iface: iface.to_string(),
            },
        );
    }

    /// The core asked to release `addr`: its releaseip runs first; the removal follows.
    pub fn releasing(&mut self, addr: IpAddr, prefix: u8, iface: &str, tunables: &Tunables) {
        let place = Place {
            prefix,
            iface: iface.to_string(),
        };
        let id = self.runner.run(
            Script::ReleaseIp {
                iface: place.iface.clone(),
                ip: addr,
                maskbits: prefix,
            },
            tunables.event_script_timeout,
        );
        self.releases.push((id, addr, place));
    }

    /// Everything was removed at once: releaseip runs for what was hosted.
    pub fn released_all(&mut self, tunables: &Tunables) {
        let mut gone: Vec<(IpAddr, Place)> = self.hosted.drain().collect();
        gone.sort_by_key(|(a, _)| *a);
        for (ip, p) in gone {
            self.runner.run(
                Script::ReleaseIp {
                    iface: p.iface,
                    ip,
                    maskbits: p.prefix,
                },
                tunables.event_script_timeout,
            );
        }
        self.placing.clear();
    }

    /// A netlink answer on its way to the core: a completed take is held back for its takeip
    /// (`None`), a release whose script failed says so.
    pub fn filter(&mut self, event: Event<'static>, tunables: &Tunables) -> Option<Event<'static>> {
        let Event::IpResult(mut r) = event else {
            return Some(event);
        };
        match (r.op, r.error) {
            (IpOp::Take, None) => {
                let Some(place) = self.placing.remove(&r.addr) else {
                    return Some(event);
                };
                let id = self.runner.run(
                    Script::TakeIp {
                        iface: place.iface.clone(),
                        ip: r.addr,
                        maskbits: place.prefix,
                    },
                    tunables.event_script_timeout,
                );
                self.takes.push((id, r.addr, place));
                None
            }
            (IpOp::Take, Some(_)) => {
                self.placing.remove(&r.addr);
                Some(event)
            }
            (IpOp::Release, _) => {
                if let Some(i) = self.release_failed.iter().position(|a| *a == r.addr) {
                    self.release_failed.swap_remove(i);
                    r.error = Some(SCRIPT_FAILED);
                }
                Some(Event::IpResult(r))
            }
        }
    }

    /// A notification of the core: the events that follow the cluster's life.
    pub fn notified(&mut self, n: &Notification, tunables: &Tunables) {
        let event = match n {
            Notification::RecoveryStarted { .. } => Script::StartRecovery,
            Notification::GenerationChanged { .. } => {
                if !self.started && self.startup.is_none() && self.next.is_none() {
                    // CTDB runs startup after the first recovery.
                    self.next = Some(Instant::now());
                }
                Script::Recovered
            }
            Notification::IpReallocated => Script::IpReallocated,
            _ => return,
        };
        self.runner.run(event, tunables.event_script_timeout);
    }

    /// Every finished run: what the loop must do about each.
    pub fn collect(&mut self, tunables: &Tunables, out: &mut Vec<Then>) {
        while let Some(done) = self.runner.try_recv() {
            self.finished(done, tunables, out);
        }
    }

    fn finished(&mut self, done: EventDone, tunables: &Tunables, out: &mut Vec<Then>) {
        let name = done.event.name();
        let ok = done.outcome == Outcome::Ok;
        if let Some(i) = self.takes.iter().position(|(id, ..)| *id == done.id) {
            let (_, addr, place) = self.takes.swap_remove(i);
            // ctdbd counts a timed-out takeip as done.
            let took = ok || matches!(done.outcome, Outcome::TimedOut(_));
            if took {
                self.hosted.insert(addr, place);
                out.push(Then::Feed(Event::IpResult(IpResult {
                    addr,
                    op: IpOp::Take,
                    error: None,
                })));
            } else {
                log::warn!(
                    "event takeip {addr}: {}: giving the address up",
                    done.outcome
                );
                out.push(Then::Feed(Event::IpResult(IpResult {
                    addr,
                    op: IpOp::Take,
                    error: Some(SCRIPT_FAILED),
                })));
                out.push(Then::Remove {
                    addr,
                    prefix: place.prefix,
                    iface: place.iface,
                });
            }
            return;
        }
        if let Some(i) = self.releases.iter().position(|(id, ..)| *id == done.id) {
            let (_, addr, place) = self.releases.swap_remove(i);
            self.hosted.remove(&addr);
            if !ok && !matches!(done.outcome, Outcome::TimedOut(_)) {
                log::warn!(
                    "event releaseip {addr}: {}: removing it anyway",
                    done.outcome
                );
                self.release_failed.push(addr);
            }
            out.push(Then::Remove {
                addr,
                prefix: place.prefix,
                iface: place.iface,
            });
            return;
        }
        let now = Instant::now();
        if self.startup == Some(done.id) {
            self.startup = None;
            if ok {
                log::info!("event startup: OK");
                self.started = true;
                self.next = Some(now);
            } else {
                log::warn!(
                    "event startup: {}: retrying after MonitorInterval",
                    done.outcome
                );
                self.next = Some(now + tunables.monitor_interval);
            }
            return;
        }
        if self.monitor == Some(done.id) {
            self.monitor = None;
            self.next = Some(now + tunables.monitor_interval);
            let healthy = match &done.outcome {
                Outcome::Ok => {
                    self.monitor_timeouts = 0;
                    Some(true)
                }
                Outcome::Cancelled => None,
                Outcome::TimedOut(_) => {
                    self.monitor_timeouts += 1;
                    log::warn!(
                        "event monitor: {} ({} in a row)",
                        done.outcome,
                        self.monitor_timeouts
                    );
                    (self.monitor_timeouts >= tunables.monitor_timeout_count).then_some(false)
                }
                Outcome::Failed(_) | Outcome::Error(_) => {
                    self.monitor_timeouts = 0;
                    Some(false)
                }
            };
            if healthy == Some(false) {
                log::warn!("event monitor: {}", done.outcome);
            }
            if let Some(healthy) = healthy {
                out.push(Then::Feed(Event::Health { healthy }));
            }
            return;
        }
        if !ok {
            log::warn!("event {name}: {}", done.outcome);
        }
    }

    /// `scriptstatus EVENT`.
    pub fn script_status(&self, event: &str) -> pharos_core::control::Response {
        self.runner.script_status(event)
    }

    /// A clean stop: waits for what is queued (the releaseip runs), then runs `shutdown`.
    pub fn shut_down(mut self, tunables: &Tunables) {
        match self.run_and_wait(Script::Shutdown, tunables.event_script_timeout, &mut || {}) {
            Some(d) if d.outcome == Outcome::Ok => log::info!("event shutdown: OK"),
            Some(d) => log::warn!("event shutdown: {}", d.outcome),
            None => log::warn!("event shutdown: no answer in time"),
        }
    }
}
