//! What this node hosts: its own public addresses (its public_addresses file), the state of
//! each on this host, and the rules for changing it. An address is added only when the
//! recovery master asks ([`Op::TakeIp`](crate::wire::Op::TakeIp)) while this node holds a
//! hosting lease; everything goes when the lease runs out, quorum is lost, the node may no
//! longer host (banned, stopped, disabled) or shuts down. The kernel lifetime of every address
//! is renewed only while the lease holds, so a host whose daemon and guardian are both frozen
//! loses its addresses by itself. See docs/ADDRESSES.md.

use super::ctx::Ctx;
use super::io::{Action, IpResult};
use super::timer::Timer;
use crate::config::PublicAddresses;
use crate::time::Instant;
use crate::types::{Generation, Pnn};
use crate::wire::{Entry, IpOp, Message, WireIp, IP_AVAILABLE, IP_HELD};
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

/// Where one of our addresses stands on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostState {
    /// Not configured here.
    Free,
    /// Being added (the shell has not answered yet).
    Taking,
    /// Configured here.
    Held,
    /// Being removed.
    Releasing,
}

/// One of this node's public addresses.
#[derive(Clone, Debug)]
pub(super) struct Local {
    pub ip: WireIp,
    /// Interfaces it may go on, in the file's order.
    pub interfaces: Vec<String>,
    /// The interface it is on (or going on).
    pub on: Option<usize>,
    pub state: HostState,
    /// Who asked for the change under way, to answer when the shell has done it.
    asked_by: Option<(Pnn, Generation)>,
}

/// The hosting layer.
#[derive(Debug)]
pub(super) struct Hosting {
    addrs: Vec<Local>,
    /// Our list changed since peers last heard it.
    pub list_changed: bool,
    /// The lease ran out, or hosting is not allowed: takes are refused.
    allowed: bool,
    /// Answers owed to whoever asked for a change that was cut short by everything going at
    /// once, for the dispatcher to deliver (a run must not wait for them until its timeout).
    pub answers: Vec<Done>,
    /// Interfaces without carrier (or set down), as the shell reported them.
    down: Vec<String>,
}

/// How long a hosting lease lasts after the stamp a majority echoed: long enough to be
/// renewed twice in a row by keepalives (each needs a round trip and the echo waits for the
/// peer's next tick), short enough that a node cut off gives its addresses up soon.
pub(super) fn lease_len(ctx: &Ctx) -> Duration {
    let t = &ctx.tunables;
    t.keepalive_interval * (t.keepalive_limit + 2)
}

/// The kernel lifetime given to hosted addresses, in whole seconds (the kernel's unit for
/// IPv4): at least the lease, at least 1.
pub(super) fn kernel_lifetime(ctx: &Ctx) -> u32 {
    let l = lease_len(ctx);
    (l.as_secs() + u64::from(l.subsec_nanos() > 0)).clamp(1, u32::MAX as u64) as u32
}

impl Hosting {
    pub fn new(list: &PublicAddresses) -> Self {
        let mut h = Hosting {
            addrs: Vec::new(),
            list_changed: true,
            allowed: false,
            answers: Vec::new(),
            down: Vec::new(),
        };
        h.set_list(list);
        h
    }

    /// This node's addresses.
    pub fn addrs(&self) -> &[Local] {
        &self.addrs
    }

    /// The state of `addr` here, `None` if it is not one of ours.
    pub fn state_of(&self, addr: core::net::IpAddr) -> Option<HostState> {
        self.addrs
            .iter()
            .find(|a| a.ip.addr == addr)
            .map(|a| a.state)
    }

    fn find(&self, ip: WireIp) -> Option<usize> {
        self.addrs.iter().position(|a| a.ip.addr == ip.addr)
    }

    /// Whether anything is configured or being configured here.
    pub fn hosts_any(&self) -> bool {
        self.addrs.iter().any(|a| a.state != HostState::Free)
    }

    /// Replaces our list (start, `reloadips`): addresses no longer listed are released, new
    /// ones wait for a takeover run. Returns the removed addresses still held.
    fn set_list(&mut self, list: &PublicAddresses) -> Vec<Local> {
        let mut gone = Vec::new();
        let old = core::mem::take(&mut self.addrs);
        for a in old {
            let kept = list
                .get(a.ip.addr)
                .is_some_and(|p| p.prefix_len == a.ip.prefix);
            if kept {
                self.addrs.push(a);
            } else if a.state != HostState::Free {
                gone.push(a);
            }
        }
        for p in &list.addresses {
            let ip = WireIp {
                addr: p.addr,
                prefix: p.prefix_len,
            };
            match self.find(ip) {
                Some(i) => self.addrs[i].interfaces = p.interfaces.clone(),
                None => self.addrs.push(Local {
                    ip,
                    interfaces: p.interfaces.clone(),
                    on: None,
                    state: HostState::Free,
                    asked_by: None,
                }),
            }
        }
        self.addrs.sort_by_key(|a| a.ip);
        self.list_changed = true;
        gone
    }

    /// A new list (`reloadips`): what left it is released now.
    pub fn reload(&mut self, ctx: &mut Ctx, list: &PublicAddresses) {
        for a in self.set_list(list) {
            let (iface, prefix) = (iface_of(&a), a.ip.prefix);
            ctx.act(Action::ReleaseIp {
                addr: a.ip.addr,
                prefix,
                iface,
            });
        }
    }

    /// Whether hosting is allowed now (lease held, quorate, not barred). When it stops being
    /// allowed, everything is released at once.
    pub fn set_allowed(&mut self, ctx: &mut Ctx, allowed: bool, why: &str) {
        if self.allowed && !allowed {
            self.release_all(ctx, why);
        }
        self.allowed = allowed;
    }

    /// Releases everything at once (the lease or quorum is gone, the node may no longer host,
    /// or it stops). A take or release under way is answered now (in [`Hosting::answers`]):
    /// the address is gone, so a release is done and a take failed.
    pub fn release_all(&mut self, ctx: &mut Ctx, why: &str) {
        if self.hosts_any() {
            log::warn!("node {}: releasing every public address: {why}", ctx.me.pnn);
        }
        ctx.act(Action::ReleaseAllIps);
        for a in &mut self.addrs {
            if a.state != HostState::Free {
                if let Some((to, generation)) = a.asked_by.take() {
                    let op = if a.state == HostState::Releasing {
                        IpOp::Release
                    } else {
                        IpOp::Take
                    };
                    self.answers.push(Done {
                        to,
                        generation,
                        ip: a.ip,
                        op,
                        ok: op == IpOp::Release,
                    });
                }
                a.state = HostState::Free;
                a.on = None;
                self.list_changed = true;
            }
        }
        ctx.timers.stop(Timer::Renew);
    }

    /// The recovery master `from` asks us to host `ip` (in `generation`). An answer now, or
    /// later from [`Hosting::result`].
    pub fn take(
        &mut self,
        ctx: &mut Ctx,
        from: Pnn,
        generation: Generation,
        ip: WireIp,
    ) -> Option<Done> {
        let done = |ok| {
            Some(Done {
                to: from,
                generation,
                ip,
                op: IpOp::Take,
                ok,
            })
        };
        let Some(i) = self.find(ip).filter(|_| self.allowed) else {
            log::info!(
                "node {}: refusing to take {} (not ours, or no lease)",
                ctx.me.pnn,
                ip.addr
            );
            return done(false);
        };
        let Some(up) = first_up(&self.addrs[i], &self.down) else {
            log::info!(
                "node {}: refusing to take {} (none of its interfaces has carrier)",
                ctx.me.pnn,
                ip.addr
            );
            return done(false);
        };
        let a = &mut self.addrs[i];
        match a.state {
            HostState::Held => return done(true),
            HostState::Taking => a.asked_by = Some((from, generation)),
            HostState::Free | HostState::Releasing => {
                a.state = HostState::Taking;
                a.on = Some(up);
                a.asked_by = Some((from, generation));
                let lifetime_secs = kernel_lifetime(ctx);
                ctx.act(Action::TakeIp {
                    addr: ip.addr,
                    prefix: ip.prefix,
                    iface: iface_of(a),
                    lifetime_secs,
                    not_after: ctx.now + lease_len(ctx),
                });
                ctx.timers.set_earliest(Timer::Renew, renew_at(ctx));
            }
        }
        None
    }

    /// The recovery master `from` asks us to give `ip` up. An answer now, or later.
    pub fn release(
        &mut self,
        ctx: &mut Ctx,
        from: Pnn,
        generation: Generation,
        ip: WireIp,
    ) -> Option<Done> {
        let done = Some(Done {
            to: from,
            generation,
            ip,
            op: IpOp::Release,
            ok: true,
        });
        let Some(i) = self.find(ip) else {
            return done;
        };
        let a = &mut self.addrs[i];
        match a.state {
            HostState::Free => return done,
            HostState::Releasing => a.asked_by = Some((from, generation)),
            HostState::Held | HostState::Taking => {
                a.state = HostState::Releasing;
                a.asked_by = Some((from, generation));
                ctx.act(Action::ReleaseIp {
                    addr: ip.addr,
                    prefix: ip.prefix,
                    iface: iface_of(a),
                });
            }
        }
        None
    }

    /// The shell did what we asked (or could not): the answer for whoever asked.
    pub fn result(&mut self, ctx: &mut Ctx, r: IpResult) -> Option<Done> {
        let i = self.addrs.iter().position(|a| a.ip.addr == r.addr)?;
        let a = &mut self.addrs[i];
        let ok = r.error.is_none();
        let (expected, op) = match r.op {
            IpOp::Take => (HostState::Taking, IpOp::Take),
            IpOp::Release => (HostState::Releasing, IpOp::Release),
        };
        if a.state != expected {
            // A result overtaken by a later decision (released meanwhile): nothing to answer.
            return None;
        }
        if let Some(e) = r.error {
            log::warn!(
                "node {}: could not {} {}: error {e}",
                ctx.me.pnn,
                if op == IpOp::Take { "take" } else { "release" },
                r.addr
            );
        }
        a.state = match (op, ok) {
            (IpOp::Take, true) => HostState::Held,
            (IpOp::Take, false) => HostState::Free,
            (IpOp::Release, _) => HostState::Free,
        };
        if a.state == HostState::Free {
            a.on = None;
        }
        self.list_changed = true;
        let (to, generation) = a.asked_by.take()?;
        // A failed release (its releaseip script failed) leaves the address off this host all
        // the same; the recovery master hears of the failure and counts it against us.
        Some(Done {
            to,
            generation,
            ip: a.ip,
            op,
            ok,
        })
    }

    /// Renews the kernel lifetime of what we hold (the lease holds: the caller checked).
    pub fn renew(&mut self, ctx: &mut Ctx) {
        if !self.hosts_any() {
            return;
        }
        ctx.act(Action::RenewIps {
            lifetime_secs: kernel_lifetime(ctx),
        });
        ctx.timers.set(Timer::Renew, renew_at(ctx));
    }

    /// Our list as the recovery master sees it: every address, whether we can host it
    /// (an interface for it; hosting itself may be paused) and whether it is here.
    pub fn view(&self) -> impl Iterator<Item = Entry> + '_ {
        self.addrs.iter().map(|a| {
            let mut value = 0;
            if first_up(a, &self.down).is_some() {
                value |= IP_AVAILABLE;
            }
            if a.state != HostState::Free {
                value |= IP_HELD;
            }
            Entry { ip: a.ip, value }
        })
    }

    /// Our list as entries of an [`Message::IpList`].
    pub fn entries(&self, out: &mut Vec<u8>) -> u32 {
        let mut n = 0;
        for e in self.view() {
            e.write(out);
            n += 1;
        }
        n
    }

    /// The shell says an earlier life, or the guardian, left nothing configured.
    pub fn forget_all(&mut self) {
        for a in &mut self.addrs {
            a.state = HostState::Free;
            a.on = None;
            a.asked_by = None;
        }
        self.list_changed = true;
    }
}

impl Hosting {
    /// Interface `iface` lost or regained carrier. What is on it (or being put on it) is
    /// released at once, with no answer to anyone: our list, which now shows the addresses
    /// that have no interface left as unavailable, tells the recovery master to move them.
    /// A take under way on it fails (the answer is returned).
    pub fn set_carrier(&mut self, ctx: &mut Ctx, iface: &str, up: bool) -> Vec<Done> {
        let mut failed = Vec::new();
        let known = self.down.iter().position(|d| d == iface);
        match (up, known) {
            (true, Some(i)) => {
                self.down.swap_remove(i);
            }
            (false, None) => self.down.push(String::from(iface)),
            _ => return failed,
        }
        log::warn!(
            "node {}: interface {iface} is {}",
            ctx.me.pnn,
            if up { "up" } else { "down (no carrier)" }
        );
        self.list_changed = true;
        if up {
            return failed;
        }
        for a in &mut self.addrs {
            let on_it =
                a.on.and_then(|i| a.interfaces.get(i))
                    .is_some_and(|n| n == iface);
            if on_it && matches!(a.state, HostState::Held | HostState::Taking) {
                if let (HostState::Taking, Some((to, generation))) = (a.state, a.asked_by) {
                    failed.push(Done {
                        to,
                        generation,
                        ip: a.ip,
                        op: IpOp::Take,
                        ok: false,
                    });
                }
                a.asked_by = None;
                a.state = HostState::Releasing;
                ctx.act(Action::ReleaseIp {
                    addr: a.ip.addr,
                    prefix: a.ip.prefix,
                    iface: String::from(iface),
                });
            }
        }
        failed
    }

    /// Whether `iface` has carrier, as far as this node was told.
    pub fn link_up(&self, iface: &str) -> bool {
        !self.down.iter().any(|d| d == iface)
    }
}

/// The first of `a`'s interfaces that has carrier.
fn first_up(a: &Local, down: &[String]) -> Option<usize> {
    a.interfaces
        .iter()
        .position(|i| !down.iter().any(|d| d == i))
}

fn iface_of(a: &Local) -> String {
    a.on.and_then(|i| a.interfaces.get(i))
        .or_else(|| a.interfaces.first())
        .cloned()
        .unwrap_or_default()
}

/// Renewals come three times per kernel lifetime.
fn renew_at(ctx: &Ctx) -> Instant {
    ctx.now + Duration::from_secs(u64::from(kernel_lifetime(ctx))) / 3
}

/// An answer to a take or release, for the recovery master that asked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Done {
    pub to: Pnn,
    pub generation: Generation,
    pub ip: WireIp,
    pub op: IpOp,
    pub ok: bool,
}

impl Done {
    /// The frame that carries it.
    pub fn message(&self) -> Message {
        Message::IpDone {
            ip: self.ip,
            op: self.op,
            ok: self.ok,
        }
    }
}
