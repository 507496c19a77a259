//! The cluster lock, run off the event-loop thread.
//!
//! A lock provider may block for as long as its storage likes (an fcntl lock file on a hung
//! shared file system blocks in `open`, `fcntl` or `stat`; an etcd request waits for the
//! network). CTDB runs its lock in a helper process for that reason; pharos runs the provider
//! on a worker thread ([`LockService`]): the event loop sends requests and gets
//! [`LockResult`]s back through a channel, and a wake-up callback the shell supplies (mio: a
//! `Waker`; tokio: a `Notify`) tells it to look. Nothing here can stall the loop.
//!
//! Providers: `none` (always granted) and `fcntl:PATH` ([`fcntl`]). `etcd:...` is refused
//! when the settings are validated: the etcd provider comes with the tokio shell and drops in
//! as one more [`LockProvider`] (its `acquire` takes the lease and the key, its `check`
//! renews the lease and reports whether it still holds it).

pub mod fcntl;

use pharos_core::LockResult;
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

/// A configured cluster lock, as `--cluster-lock` or `cluster_lock` name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockSpec {
    /// No lock: quorum alone protects. Always granted.
    None,
    /// A POSIX fcntl write lock on this file (on storage every node shares).
    Fcntl(PathBuf),
    /// An etcd lease lock: `etcd:HOST:PORT[,HOST:PORT...]/KEY`, kept as written.
    Etcd(String),
}

impl LockSpec {
    /// Parses `none`, `fcntl:PATH` or `etcd:HOST:PORT[,HOST:PORT...]/KEY` (syntax only; see
    /// [`LockSpec::provider`] for whether this build can provide it).
    pub fn parse(spec: &str) -> Result<LockSpec, String> {
        if spec == "none" {
            return Ok(LockSpec::None);
        }
        if let Some(path) = spec.strip_prefix("fcntl:").filter(|p| !p.is_empty()) {
            return Ok(LockSpec::Fcntl(PathBuf::from(path)));
        }
        if let Some((hosts, key)) = spec.strip_prefix("etcd:").and_then(|r| r.split_once('/')) {
            if !hosts.is_empty() && !key.is_empty() {
                return Ok(LockSpec::Etcd(spec.to_string()));
            }
        }
        Err(format!(
            "invalid cluster lock {spec:?}: expected none, fcntl:PATH or etcd:HOST:PORT[,HOST:PORT...]/KEY"
        ))
    }

    /// A provider for this lock. Constructing one does no I/O, so settings validation calls
    /// this to refuse a lock this build cannot provide before anything is bound.
    pub fn provider(&self) -> Result<Box<dyn LockProvider>, String> {
        match self {
            LockSpec::None => Ok(Box::new(NoLock)),
            LockSpec::Fcntl(path) => Ok(Box::new(fcntl::FcntlLock::new(path.clone()))),
            LockSpec::Etcd(spec) => Err(format!(
                "cluster lock {spec:?}: the etcd lock comes with the tokio shell, which is not \
                 built yet; pharosd provides none and fcntl:PATH"
            )),
        }
    }
}

impl fmt::Display for LockSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockSpec::None => f.write_str("none"),
            LockSpec::Fcntl(p) => write!(f, "fcntl:{}", p.display()),
            LockSpec::Etcd(s) => f.write_str(s),
        }
    }
}

/// One way of holding the cluster lock. Every method runs on the lock worker thread and may
/// block; none is ever called on the event loop.
pub trait LockProvider: Send {
    /// Tries to take the lock: `Granted`, `Contended` (someone else holds it) or `Failed`.
    /// Called only while the lock is not held.
    fn acquire(&mut self) -> LockResult;
    /// Gives the lock up. Called only while it is held.
    fn release(&mut self);
    /// While held, how often to call [`LockProvider::check`] (`None`: never).
    fn check_interval(&self) -> Option<Duration>;
    /// While held: whether it still is (the fcntl lock file is still the file we locked; a
    /// lease was renewed). `Err` says why not; the service then releases and reports `Lost`.
    fn check(&mut self) -> Result<(), String>;
}

/// `none`: always granted, never lost.
pub struct NoLock;

impl LockProvider for NoLock {
    fn acquire(&mut self) -> LockResult {
        LockResult::Granted
    }
    fn release(&mut self) {}
    fn check_interval(&self) -> Option<Duration> {
        None
    }
    fn check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

enum Command {
    Acquire(u64),
    Release,
    Stop,
}

/// The event loop's handle on the lock worker thread.
///
/// The core asks with `AcquireLock` / `ReleaseLock` and expects one answer per acquire, for the
/// acquire it is waiting on. Requests and answers cross a queue, so an answer can arrive after
/// the core has moved on (released, or asked again); each acquire therefore carries a serial
/// number, and [`LockService::try_recv`] drops answers to anything but the latest acquire not
/// yet followed by a release. What the worker holds always follows the last request it read.
pub struct LockService {
    commands: Sender<Command>,
    results: Receiver<(u64, LockResult)>,
    /// Serial of the latest acquire; 0 before the first.
    serial: u64,
    /// Whether that acquire still wants its answer (no release since).
    wanted: bool,
}

impl LockService {
    /// Starts the worker thread for `provider`; `wake` is called (on the worker thread) after
    /// every answer it queues, so that the loop calls [`LockService::try_recv`].
    pub fn start(
        mut provider: Box<dyn LockProvider>,
        wake: Box<dyn Fn() + Send>,
    ) -> Result<LockService, String> {
        let (commands, inbox) = mpsc::channel();
        let (outbox, results) = mpsc::channel();
        std::thread::Builder::new()
            .name("pharos-lock".into())
            .spawn(move || worker(&mut *provider, &inbox, &outbox, &*wake))
            .map_err(|e| format!("cannot start the cluster lock thread: {e}"))?;
        Ok(LockService {
            commands,
            results,
            serial: 0,
            wanted: false,
        })
    }

    /// Asks for the lock; the answer comes through [`LockService::try_recv`].
    pub fn acquire(&mut self) {
        self.serial += 1;
        self.wanted = true;
        let _ = self.commands.send(Command::Acquire(self.serial));
    }

    /// Gives the lock up (or stops wanting it); no answer follows.
    pub fn release(&mut self) {
        self.wanted = false;
        let _ = self.commands.send(Command::Release);
    }

    /// The next answer for the core, if one is waiting. Never blocks.
    pub fn try_recv(&mut self) -> Option<LockResult> {
        while let Ok((serial, result)) = self.results.try_recv() {
            if self.wanted && serial == self.serial {
                if result != LockResult::Granted {
                    // Contended, Failed or Lost: nothing is held for this acquire any more.
                    self.wanted = false;
                }
                return Some(result);
            }
        }
        None
    }
}

impl Drop for LockService {
    /// Tells the worker to release and end. It is not waited for: a provider blocked in the
    /// file system must not hold up the daemon's exit (the kernel drops an fcntl lock when
    /// the process ends anyway).
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
    }
}

/// The worker thread: requests in order, and while the lock is held, a check every
/// `check_interval`.
fn worker(
    provider: &mut dyn LockProvider,
    inbox: &Receiver<Command>,
    outbox: &Sender<(u64, LockResult)>,
    wake: &dyn Fn(),
) {
    // The serial of the acquire the lock is held for.
    let mut held: Option<u64> = None;
    let answer = |serial: u64, result: LockResult| {
        let _ = outbox.send((serial, result));
        wake();
    };
    loop {
        let first = match (held, provider.check_interval()) {
            (Some(_), Some(every)) => inbox.recv_timeout(every),
            _ => inbox.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let mut command = match first {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) => {
                if let (Some(serial), Err(why)) = (held, provider.check()) {
                    log::warn!("cluster lock lost: {why}");
                    provider.release();
                    held = None;
                    answer(serial, LockResult::Lost);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => Command::Stop,
        };
        // Requests that queued up while the provider blocked: only the last one matters
        // (acquire, release, acquire while held is "keep it"), except that a stop is final.
        while !matches!(command, Command::Stop) {
            match inbox.try_recv() {
                Ok(next) => command = next,
                Err(_) => break,
            }
        }
        match command {
            Command::Acquire(serial) if held.is_some() => {
                held = Some(serial);
                answer(serial, LockResult::Granted);
            }
            Command::Acquire(serial) => {
                let result = provider.acquire();
                if result == LockResult::Granted {
                    held = Some(serial);
                }
                answer(serial, result);
            }
            Command::Release => {
                if held.take().is_some() {
                    provider.release();
                }
            }
            Command::Stop => {
                if held.is_some() {
                    provider.release();
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// A provider whose acquire waits for the test to say what it returns.
    struct Scripted {
        calls: Arc<Mutex<Vec<&'static str>>>,
        answers: Receiver<LockResult>,
        still_held: Arc<AtomicBool>,
    }

    impl LockProvider for Scripted {
        fn acquire(&mut self) -> LockResult {
            self.calls.lock().unwrap().push("acquire");
            self.answers.recv().unwrap_or(LockResult::Failed)
        }
        fn release(&mut self) {
            self.calls.lock().unwrap().push("release");
        }
        fn check_interval(&self) -> Option<Duration> {
            Some(Duration::from_millis(5))
        }
        fn check(&mut self) -> Result<(), String> {
            if self.still_held.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err("gone".into())
            }
        }
    }

    struct Rig {
        service: LockService,
        answers: Sender<LockResult>,
        woken: Receiver<()>,
        calls: Arc<Mutex<Vec<&'static str>>>,
        still_held: Arc<AtomicBool>,
    }

    impl Rig {
        fn new() -> Rig {
            let (answers, script) = mpsc::channel();
            let (wake, woken) = mpsc::channel();
            let calls = Arc::new(Mutex::new(Vec::new()));
            let still_held = Arc::new(AtomicBool::new(true));
            let provider = Scripted {
                calls: calls.clone(),
                answers: script,
                still_held: still_held.clone(),
            };
            let wake = Mutex::new(wake);
            let service = LockService::start(
                Box::new(provider),
                Box::new(move || {
                    let _ = wake.lock().unwrap().send(());
                }),
            )
            .unwrap();
            Rig {
                service,
                answers,
                woken,
                calls,
                still_held,
            }
        }

        /// The next answer the loop would see after a wake-up (bounded wait).
        fn next(&mut self) -> Option<LockResult> {
            self.next_within(Duration::from_secs(5))
        }

        fn next_within(&mut self, limit: Duration) -> Option<LockResult> {
            let deadline = std::time::Instant::now() + limit;
            loop {
                if let Some(r) = self.service.try_recv() {
                    return Some(r);
                }
                let left = deadline.checked_duration_since(std::time::Instant::now())?;
                self.woken.recv_timeout(left).ok()?;
            }
        }

        /// Waits until the provider has been called `n` times in all.
        fn calls(&self, n: usize) -> Vec<&'static str> {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let c = self.calls.lock().unwrap().clone();
                if c.len() >= n || std::time::Instant::now() > deadline {
                    return c;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    #[test]
    fn a_blocked_provider_never_blocks_the_caller() {
        let mut r = Rig::new();
        let t = std::time::Instant::now();
        r.service.acquire();
        assert_eq!(r.calls(1), ["acquire"]);
        // The provider is stuck in acquire; asking, releasing and polling return at once.
        r.service.release();
        r.service.acquire();
        assert_eq!(r.service.try_recv(), None);
        assert!(t.elapsed() < Duration::from_secs(1));
        // The first acquire's answer is stale (released since); the queued release and
        // acquire collapse into "keep it", answered for the latest acquire.
        r.answers.send(LockResult::Granted).unwrap();
        assert_eq!(r.next(), Some(LockResult::Granted));
        assert_eq!(r.service.try_recv(), None);
        assert_eq!(r.calls(1), ["acquire"]);
    }

    #[test]
    fn answers_to_released_requests_are_dropped() {
        let mut r = Rig::new();
        // Asked and given up before the worker got to it: the provider is never called.
        r.service.acquire();
        r.service.release();
        r.service.acquire();
        r.service.release();
        assert_eq!(r.next_within(Duration::from_millis(50)), None);
        // Given up while the provider works on it: its answer is dropped.
        r.service.acquire();
        assert_eq!(r.calls(1), ["acquire"]);
        r.service.release();
        r.answers.send(LockResult::Contended).unwrap();
        assert_eq!(r.next_within(Duration::from_millis(50)), None);
        r.service.acquire();
        r.answers.send(LockResult::Contended).unwrap();
        assert_eq!(r.next(), Some(LockResult::Contended));
        assert_eq!(r.calls(2), ["acquire", "acquire"]);
    }

    #[test]
    fn a_failed_check_releases_and_reports_lost_once() {
        let mut r = Rig::new();
        r.service.acquire();
        r.answers.send(LockResult::Granted).unwrap();
        assert_eq!(r.next(), Some(LockResult::Granted));
        r.still_held.store(false, Ordering::SeqCst);
        assert_eq!(r.next(), Some(LockResult::Lost));
        assert_eq!(r.calls(2), ["acquire", "release"]);
        // The core's release after the loss finds nothing to release.
        r.service.release();
        r.service.acquire();
        r.still_held.store(true, Ordering::SeqCst);
        r.answers.send(LockResult::Granted).unwrap();
        assert_eq!(r.next(), Some(LockResult::Granted));
        assert_eq!(r.calls(3), ["acquire", "release", "acquire"]);
    }

    #[test]
    fn a_loss_after_release_is_not_reported() {
        let mut r = Rig::new();
        r.service.acquire();
        r.answers.send(LockResult::Granted).unwrap();
        assert_eq!(r.next(), Some(LockResult::Granted));
        r.service.release();
        assert_eq!(r.calls(2), ["acquire", "release"]);
        r.still_held.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(r.service.try_recv(), None);
    }

    #[test]
    fn specs() {
        assert_eq!(LockSpec::parse("none"), Ok(LockSpec::None));
        assert_eq!(
            LockSpec::parse("fcntl:/a/b"),
            Ok(LockSpec::Fcntl("/a/b".into()))
        );
        let etcd = LockSpec::parse("etcd:127.0.0.1:2379,127.0.0.2:2379/pharos/lock").unwrap();
        assert!(matches!(etcd, LockSpec::Etcd(_)));
        let e = etcd.provider().err().unwrap();
        assert!(e.contains("etcd lock comes with the tokio shell"), "{e}");
        for bad in ["", "fcntl:", "flock", "etcd:", "etcd:/key", "etcd:h:1/"] {
            assert!(LockSpec::parse(bad).is_err(), "{bad:?}");
        }
        assert!(LockSpec::None.provider().is_ok());
        assert_eq!(LockSpec::Fcntl("/x".into()).to_string(), "fcntl:/x");
    }
}
