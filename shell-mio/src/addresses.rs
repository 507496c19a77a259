//! Carrying out the core's address actions on this host: netlink requests whose answers come
//! back as [`Event::IpResult`]s, announcements after each add, the guardian told before every
//! add and after every removal, kernel lifetimes renewed on request.
//!
//! Nothing here decides anything: the core says what to host; this module only does it and
//! says how it went. Requests are non-blocking, except [`Addresses::release_all`], which the
//! core's contract makes complete before the next action (it waits a bounded time for the
//! kernel, which answers address requests at once).

use crate::hosting::announce::Announcer;
use crate::hosting::guardian::{Delivery, Guardian, GuardianConfig, GuardianEvent, OnHang};
use crate::hosting::netlink::{Completion, Lifetime, Netlink, Reply, RequestId};
use crate::hosting::{iface, IfaceAddr};
use pharos_core::config::PublicAddresses;
use pharos_core::node::IpResult;
use pharos_core::wire::IpOp;
use pharos_core::Event;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// How long a blocking release waits for the kernel.
const RELEASE_WAIT: Duration = Duration::from_secs(1);

/// What a request in flight was for.
#[derive(Clone, Copy, Debug)]
enum Asked {
    Take(IfaceAddr),
    Release(IfaceAddr),
    Renew(IfaceAddr),
}

/// The host side of the node's public addresses.
pub struct Addresses {
    netlink: Netlink,
    announcer: Option<Announcer>,
    guardian: Option<Guardian>,
    asked: HashMap<RequestId, Asked>,
    /// What this host has configured, as far as we did it.
    held: Vec<IfaceAddr>,
    /// Interfaces whose `promote_secondaries` is set.
    promoted: Vec<u32>,
    events: VecDeque<Event<'static>>,
}

impl Addresses {
    /// Opens netlink and starts the guardian. Must run before any thread exists (the guardian
    /// is forked). `heartbeat_timeout`: how long the daemon may be silent before the guardian
    /// kills it and removes its addresses.
    pub fn start(heartbeat_timeout: Duration) -> Result<Self, String> {
        let netlink = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
        let guardian = Guardian::spawn(&GuardianConfig {
            heartbeat_timeout,
            connect_timeout: Duration::from_millis(250),
            on_hang: OnHang::Kill,
        })
        .map_err(|e| format!("cannot start the guardian: {e}"))?;
        let announcer = match Announcer::open() {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("no gratuitous ARP / neighbour advertisements: {e}");
                None
            }
        };
        log::info!(
            "guardian {} watches this daemon (it fences after {} ms of silence)",
            guardian.pid(),
            heartbeat_timeout.as_millis()
        );
        Ok(Addresses {
            netlink,
            announcer,
            guardian: Some(guardian),
            asked: HashMap::new(),
            held: Vec::new(),
            promoted: Vec::new(),
            events: VecDeque::new(),
        })
    }

    /// The netlink socket (register it for readability).
    pub fn netlink_fd(&self) -> RawFd {
        self.netlink.as_raw_fd()
    }

    /// The guardian's socket (register it for readability), if the guardian runs.
    pub fn guardian_fd(&self) -> Option<RawFd> {
        self.guardian.as_ref().map(|g| g.as_raw_fd())
    }

    /// What the guardian tells each peer when it fences (the core's fencing frames).
    pub fn set_fencing(&mut self, frames: Vec<(IpAddr, SocketAddr, Vec<u8>)>) {
        let deliveries: Vec<Delivery> = frames
            .into_iter()
            .map(|(local, peer, bytes)| Delivery { local, peer, bytes })
            .collect();
        if let Some(g) = self.guardian.as_mut() {
            if let Err(e) = g.set_deliveries(&deliveries) {
                log::warn!("cannot tell the guardian whom to notify: {e}");
            }
        }
    }

    fn iface_addr(addr: IpAddr, prefix: u8, name: &str) -> Result<IfaceAddr, i32> {
        let ifindex = iface::index(name).map_err(|e| e.raw_os_error().unwrap_or(libc::ENODEV))?;
        IfaceAddr::new(ifindex, addr, prefix).ok_or(libc::EINVAL)
    }

    fn fail(&mut self, addr: IpAddr, op: IpOp, errno: i32) {
        self.events.push_back(Event::IpResult(IpResult {
            addr,
            op,
            error: Some(errno),
        }));
    }

    /// Adds `addr/prefix` on `iface` with a kernel lifetime, unless `not_after` has passed
    /// (the daemon was stopped between the decision and now).
    pub fn take(
        &mut self,
        addr: IpAddr,
        prefix: u8,
        name: &str,
        lifetime_secs: u32,
        not_after: Instant,
    ) {
        if Instant::now() > not_after {
            log::warn!("not adding {addr}: decided too long ago (was this daemon stopped?)");
            return self.fail(addr, IpOp::Take, libc::ETIME);
        }
        let a = match Self::iface_addr(addr, prefix, name) {
            Ok(a) => a,
            Err(errno) => {
                log::warn!("cannot add {addr}/{prefix} on {name:?}: no such interface");
                return self.fail(addr, IpOp::Take, errno);
            }
        };
        // The guardian must know before the kernel has it.
        if let Some(g) = self.guardian.as_mut() {
            if let Err(e) = g.hold(&a) {
                log::warn!("not adding {addr}: the guardian could not be told ({e})");
                return self.fail(addr, IpOp::Take, e.raw_os_error().unwrap_or(libc::EIO));
            }
        }
        self.promote(a.ifindex);
        let lifetime =
            NonZeroU32::new(lifetime_secs).map_or(Lifetime::Permanent, Lifetime::Seconds);
        let id = self.netlink.add(&a, lifetime);
        self.asked.insert(id, Asked::Take(a));
    }

    /// Removing a primary address must not take its secondaries with it (CTDB sets the same).
    fn promote(&mut self, ifindex: u32) {
        if self.promoted.contains(&ifindex) {
            return;
        }
        match iface::promote_secondaries(ifindex) {
            Ok(()) => self.promoted.push(ifindex),
            Err(e) => log::warn!("cannot set promote_secondaries on ifindex {ifindex}: {e}"),
        }
    }

    /// Removes `addr/prefix` from `iface`.
    pub fn release(&mut self, addr: IpAddr, prefix: u8, name: &str) {
        let a = match Self::iface_addr(addr, prefix, name) {
            Ok(a) => a,
            // No such interface: nothing of it can be configured.
            Err(_) => {
                self.events.push_back(Event::IpResult(IpResult {
                    addr,
                    op: IpOp::Release,
                    error: None,
                }));
                return;
            }
        };
        self.promote(a.ifindex);
        if let Some(an) = self.announcer.as_mut() {
            an.cancel(addr);
        }
        let id = self.netlink.remove(&a);
        self.asked.insert(id, Asked::Release(a));
    }

    /// Renews the kernel lifetime of everything held (never re-creating what is gone).
    pub fn renew(&mut self, lifetime_secs: u32) {
        let Some(secs) = NonZeroU32::new(lifetime_secs) else {
            return;
        };
        for a in self.held.clone() {
            let id = self.netlink.renew(&a, Lifetime::Seconds(secs));
            self.asked.insert(id, Asked::Renew(a));
        }
    }

    /// Removes everything held, and every address of `list` still configured on its
    /// interfaces (an earlier life's, after a crash of daemon and guardian both), now: it
    /// returns when the kernel has answered (or after a bounded wait).
    pub fn release_all(&mut self, list: &PublicAddresses) {
        let mut targets: Vec<IfaceAddr> = self.held.clone();
        let mut ifindexes: Vec<u32> = Vec::new();
        for p in &list.addresses {
            for name in &p.interfaces {
                if let Ok(i) = iface::index(name) {
                    if !ifindexes.contains(&i) {
                        ifindexes.push(i);
                    }
                }
            }
        }
        // What the interfaces have of ours, whoever added it.
        let mut lists = Vec::new();
        for &i in &ifindexes {
            lists.push(self.netlink.list(i));
        }
        let _ = self.netlink.wait(Instant::now() + RELEASE_WAIT);
        while let Some(c) = self.netlink.poll_completion() {
            match (self.asked.remove(&c.id), c.result) {
                (None, Ok(Reply::Addresses(found))) if lists.contains(&c.id) => {
                    for f in found {
                        let ours = list
                            .addresses
                            .iter()
                            .any(|p| p.addr == f.addr.addr && p.prefix_len == f.addr.prefix_len);
                        if ours && !targets.contains(&f.addr) {
                            targets.push(f.addr);
                        }
                    }
                }
                (Some(asked), result) => self.complete(asked, result.map(|_| ())),
                _ => {}
            }
        }
        for a in &targets {
            self.promote(a.ifindex);
            if let Some(an) = self.announcer.as_mut() {
                an.cancel(a.addr);
            }
            let id = self.netlink.remove(a);
            self.asked.insert(id, Asked::Release(*a));
        }
        let _ = self.netlink.wait(Instant::now() + RELEASE_WAIT);
        self.drain_completions();
        // Whatever the answers, the core counts these as released; nothing is held any more.
        for a in targets {
            self.forget(&a);
        }
        if !self.held.is_empty() {
            log::warn!("could not release {} address(es)", self.held.len());
        }
        // Their results were for the core's earlier requests; it released everything anyway.
        self.events.retain(|e| !matches!(e, Event::IpResult(_)));
    }

    fn forget(&mut self, a: &IfaceAddr) {
        self.held.retain(|h| h != a);
        if let Some(g) = self.guardian.as_mut() {
            if let Err(e) = g.released(a) {
                log::warn!("cannot tell the guardian {a} is released: {e}");
            }
        }
    }

    /// Reads netlink's answers (its socket is readable).
    pub fn on_netlink_readable(&mut self) {
        if let Err(e) = self.netlink.receive() {
            log::warn!("netlink: {e}");
        }
        self.drain_completions();
    }

    fn drain_completions(&mut self) {
        while let Some(Completion { id, result }) = self.netlink.poll_completion() {
            if let Some(asked) = self.asked.remove(&id) {
                self.complete(asked, result.map(|_| ()));
            }
        }
    }

    fn complete(
        &mut self,
        asked: Asked,
        result: Result<(), crate::hosting::netlink::NetlinkError>,
    ) {
        match (asked, result) {
            (Asked::Take(a), Ok(())) => {
                self.held.push(a);
                if let Some(an) = self.announcer.as_mut() {
                    if let Err(e) = an.start(Instant::now(), &a) {
                        log::warn!("cannot announce {a}: {e}");
                    }
                }
                self.events.push_back(Event::IpResult(IpResult {
                    addr: a.addr,
                    op: IpOp::Take,
                    error: None,
                }));
            }
            (Asked::Take(a), Err(e)) => {
                // EEXIST: someone else configured it; it is not ours to remove.
                log::warn!("cannot add {a}: {e}");
                if let Some(g) = self.guardian.as_mut() {
                    let _ = g.released(&a);
                }
                self.fail(a.addr, IpOp::Take, e.errno);
            }
            (Asked::Release(a), result) => {
                if let Err(e) = &result {
                    log::warn!("cannot remove {a}: {e}");
                }
                // Gone, or not ours to keep trying: the guardian need not remove it later
                // only if the kernel confirmed.
                if result.is_ok() {
                    self.forget(&a);
                }
                self.events.push_back(Event::IpResult(IpResult {
                    addr: a.addr,
                    op: IpOp::Release,
                    error: result.err().map(|e| e.errno),
                }));
            }
            (Asked::Renew(a), Ok(())) => {
                // `Absent` is an Ok too: the address expired meanwhile and was not re-created.
                let _ = a;
            }
            (Asked::Renew(a), Err(e)) => log::warn!("cannot renew {a}: {e}"),
        }
    }

    /// Reads what the guardian reports (its socket is readable).
    pub fn on_guardian_readable(&mut self) {
        let Some(g) = self.guardian.as_mut() else {
            return;
        };
        if let Err(e) = g.receive() {
            log::warn!("guardian: {e}");
        }
        while let Some(ev) = self.guardian.as_mut().and_then(Guardian::poll_event) {
            match ev {
                GuardianEvent::Fenced(report) => {
                    log::warn!("the guardian fenced this node while it was stopped: {report:?}");
                    self.held.clear();
                    self.events.push_back(Event::Fenced);
                }
                GuardianEvent::Pong => {}
                GuardianEvent::Gone => {
                    log::error!(
                        "the guardian is gone: only the kernel lifetimes protect the \
                         addresses now"
                    );
                    self.guardian = None;
                }
            }
        }
    }

    /// The next result for the core.
    pub fn poll_event(&mut self) -> Option<Event<'static>> {
        self.events.pop_front()
    }

    /// When this module next needs [`Addresses::on_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        let announce = self.announcer.as_ref().and_then(Announcer::poll_timeout);
        let beat = self.guardian.as_ref().map(Guardian::next_heartbeat);
        match (announce, beat) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Heartbeat to the guardian, announcements due.
    pub fn on_timeout(&mut self, now: Instant) {
        if let Some(g) = self.guardian.as_mut() {
            if let Err(e) = g.tick(now) {
                log::warn!("guardian heartbeat: {e}");
            }
        }
        if let Some(an) = self.announcer.as_mut() {
            for (a, e) in an.on_timeout(now) {
                log::debug!("announcement of {a}: {e}");
            }
        }
    }

    /// A clean stop: everything was released (the core asked first); the guardian goes.
    pub fn close(mut self) {
        if let Some(g) = self.guardian.take() {
            if let Err(e) = g.close() {
                log::warn!("guardian: {e}");
            }
        }
    }
}

impl Drop for Addresses {
    fn drop(&mut self) {
        if !self.asked.is_empty() {
            log::debug!("{} address request(s) unanswered at exit", self.asked.len());
        }
    }
}

/// `io::Error` from an errno, for logs.
pub fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}
