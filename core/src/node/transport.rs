//! The TCP mesh as CTDB runs it (seed 001): one outgoing connection to every other live node
//! (we write there), one accepted connection from each (we read there), connect timeout and
//! retry, death at once on EOF/RST, reconnection after a delay. It decides who is *connected*
//! (our outgoing link is up and the peer's incoming link proved itself with a Hello) and hands
//! every decoded frame of a proven link up; it knows nothing of what the frames mean.

use super::ctx::Ctx;
use super::io::{Action, Disconnect, Notification};
use super::timer::Timer;
use crate::time::Instant;
use crate::types::{ConnId, Link, NodeSet, Pnn};
use crate::wire::{self, Header, Hello, Keepalive, Message};
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use hashbrown::HashMap;

/// State of our outgoing connection to one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    /// No connection wanted (this node, or a deleted slot).
    Idle,
    /// A connect is under way; it is abandoned at `deadline`.
    Connecting {
        /// When the attempt times out.
        deadline: Instant,
    },
    /// Established.
    Up,
    /// Waiting to connect again at `at`.
    Retry {
        /// When to try again.
        at: Instant,
    },
}

impl OutState {
    /// The instant this state needs attention, if any.
    pub fn deadline(self) -> Option<Instant> {
        match self {
            OutState::Connecting { deadline } => Some(deadline),
            OutState::Retry { at } => Some(at),
            OutState::Idle | OutState::Up => None,
        }
    }
}

/// Unproven incoming connections that may wait per peer.
pub(super) const PENDING_PER_PEER: usize = 2;
/// The first reconnect wait, doubled on every failure in a row.
const FIRST_RETRY: core::time::Duration = core::time::Duration::from_millis(20);

/// An accepted connection from a node's address that has not said Hello yet.
#[derive(Clone, Copy, Debug)]
struct PendingIn {
    conn: ConnId,
    peer: Pnn,
    /// Closed if no Hello came by then.
    until: Instant,
}

/// What a link is to the node.
enum LinkRole {
    /// A peer's current link.
    Peer(Pnn),
    /// An incoming connection waiting for its Hello (index in `pending`).
    Pending(usize),
    /// Closed or never known.
    Unknown,
}

/// A decoded frame from a proven link (or a guardian's fencing notice), for the layers above.
#[derive(Clone, Copy, Debug)]
pub(super) struct Routed<'a> {
    pub peer: Pnn,
    pub header: Header,
    pub message: Message,
    /// The whole frame (entries are read from it).
    pub frame: &'a [u8],
}

/// The links to one peer.
#[derive(Clone, Copy, Debug)]
struct PeerLinks {
    out: OutState,
    /// The incoming connection it proved with a Hello (a new one is pending until it does).
    incoming: Option<ConnId>,
    /// What its Hello on `incoming` said (a newer connection must not come from an older life).
    incarnation: u64,
    start_stamp: u64,
    /// A failed connect was retried at once for the current incoming connection.
    fast_retried: bool,
    /// Failed connects in a row: the next retry waits `ReconnectInterval / 2^(16 - n)` at
    /// first, doubling up to ReconnectInterval (a peer that is just starting is found fast).
    failures: u32,
}

/// Warnings about connections from addresses that are not nodes: a few per window, then a
/// count (10,000 connects from a stranger must not write 10,000 lines).
#[derive(Clone, Copy, Debug)]
pub(super) struct RefusalLog {
    window_start: Instant,
    pub logged: u32,
    pub suppressed: u64,
}

impl RefusalLog {
    const WINDOW: core::time::Duration = core::time::Duration::from_secs(10);
    pub const LINES_PER_WINDOW: u32 = 5;

    fn new(now: Instant) -> Self {
        RefusalLog {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }
}

/// The transport layer.
#[derive(Debug)]
pub(super) struct Transport {
    peers: Vec<PeerLinks>,
    /// Established incoming connections, for an O(1) lookup of every frame's link.
    incoming: HashMap<ConnId, Pnn>,
    /// Accepted connections from node addresses that have not said Hello yet, oldest first.
    pending: Vec<PendingIn>,
    pub refusals: RefusalLog,
    connected: NodeSet,
    /// Peers that became connected or disconnected since the last [`Transport::take_changes`].
    went_up: NodeSet,
    went_down: NodeSet,
    /// Of those that went down, the ones that certainly died or left (EOF, goodbye, fenced),
    /// not merely fell silent.
    died: NodeSet,
    changed: bool,
}

impl Transport {
    /// Connects to every remote live slot at once.
    pub fn new(ctx: &mut Ctx) -> Self {
        let n = ctx.nodes.len();
        let mut t = Transport {
            peers: alloc::vec![
                PeerLinks {
                    out: OutState::Idle,
                    incoming: None,
                    incarnation: 0,
                    start_stamp: 0,
                    fast_retried: false,
                    failures: 0,
                };
                n
            ],
            incoming: HashMap::with_capacity(n),
            pending: Vec::with_capacity(PENDING_PER_PEER * n + 1),
            refusals: RefusalLog::new(ctx.now),
            connected: NodeSet::new(),
            went_up: NodeSet::new(),
            went_down: NodeSet::new(),
            died: NodeSet::new(),
            changed: false,
        };
        for i in 0..n {
            let p = Pnn(i as u32);
            if ctx.is_remote(p) {
                t.start_connect(ctx, p);
            }
        }
        t
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: Pnn) -> bool {
        self.connected.contains(peer)
    }

    /// Our outgoing connection to `peer`.
    pub fn out_state(&self, peer: Pnn) -> OutState {
        self.peers
            .get(peer.index())
            .map_or(OutState::Idle, |p| p.out)
    }

    /// Whether any peer became connected or disconnected since the last call of
    /// [`Transport::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.changed
    }

    /// The peers that went (up, down, down for certain) since the last call.
    pub fn take_changes(&mut self) -> (NodeSet, NodeSet, NodeSet) {
        self.changed = false;
        (
            core::mem::take(&mut self.went_up),
            core::mem::take(&mut self.went_down),
            core::mem::take(&mut self.died),
        )
    }

    fn start_connect(&mut self, ctx: &mut Ctx, peer: Pnn) {
        let (Some(to), Some(local)) =
            (ctx.nodes.address_of(peer), ctx.nodes.address_of(ctx.me.pnn))
        else {
            return;
        };
        self.set_out(
            ctx,
            peer,
            OutState::Connecting {
                deadline: ctx.now + Self::connect_timeout(ctx),
            },
        );
        ctx.act(Action::Connect {
            peer,
            addr: SocketAddr::new(to, ctx.port),
            local,
        });
    }

    /// Changes our outgoing state to `peer`, keeping the writable set and the Connect timer
    /// in step.
    fn set_out(&mut self, ctx: &mut Ctx, peer: Pnn, out: OutState) {
        self.peers[peer.index()].out = out;
        if out == OutState::Up {
            ctx.writable.insert(peer);
        } else {
            ctx.writable.remove(peer);
        }
        self.rearm_connect(ctx);
    }

    /// The Connect timer: the earliest connect deadline or retry among the peers. Only out
    /// states change it, and they change rarely.
    fn rearm_connect(&self, ctx: &mut Ctx) {
        match self.peers.iter().filter_map(|p| p.out.deadline()).min() {
            Some(t) => ctx.timers.set(Timer::Connect, t),
            None => ctx.timers.stop(Timer::Connect),
        }
    }

    /// Sends our Hello and our view on a link that just came up.
    fn greet(ctx: &mut Ctx, peer: Pnn) {
        let hello = Hello {
            incarnation: ctx.me.incarnation,
            flags: ctx.view.flags,
            capabilities: if ctx.me.recmaster_capable {
                wire::CAP_RECMASTER
            } else {
                0
            },
            start_stamp: ctx.me.start_stamp,
            liveness: ctx.view.liveness,
        };
        ctx.send(peer, Message::Hello(hello));
        // Our view right away: the peer learns whom we follow without waiting for a tick.
        let stamp = ctx.now.as_nanos().saturating_add(1);
        ctx.send(peer, Message::Keepalive(Keepalive { stamp, ..ctx.view }));
    }

    pub fn on_connected(&mut self, ctx: &mut Ctx, peer: Pnn) {
        if !matches!(self.peers[peer.index()].out, OutState::Connecting { .. }) {
            // A late answer for an attempt we gave up on: that socket is already closed.
            return;
        }
        self.peers[peer.index()].failures = 0;
        self.set_out(ctx, peer, OutState::Up);
        Self::greet(ctx, peer);
        self.update_connected(ctx, peer);
    }

    pub fn on_connect_failed(&mut self, ctx: &mut Ctx, peer: Pnn) {
        let p = &mut self.peers[peer.index()];
        if !matches!(p.out, OutState::Connecting { .. }) {
            return;
        }
        if p.incoming.is_some() && !p.fast_retried {
            // The peer is connected to us, so it listens: this attempt raced its start-up.
            // Try again now, once per incoming connection (no busy loop if it keeps failing).
            p.fast_retried = true;
            self.start_connect(ctx, peer);
            return;
        }
        p.failures = p.failures.saturating_add(1);
        let at = ctx.now + Self::backoff(ctx, p.failures);
        self.set_out(ctx, peer, OutState::Retry { at });
    }

    /// The wait before the `failures`-th retry in a row: 20 ms, doubling, up to
    /// ReconnectInterval but never beyond the detection time (KeepaliveInterval ×
    /// KeepaliveLimit), so that a node coming back (a healed link) is seen about as fast as
    /// one dying.
    fn backoff(ctx: &Ctx, failures: u32) -> core::time::Duration {
        let d = FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        d.min(ctx.tunables.reconnect_interval)
            .min(Self::detection(ctx))
    }

    /// How long an outgoing connect may take: ConnectTimeout, but never beyond the detection
    /// time (a SYN lost while a link was cut is not waited on for longer than a silent peer).
    fn connect_timeout(ctx: &Ctx) -> core::time::Duration {
        ctx.tunables.connect_timeout.min(Self::detection(ctx))
    }

    /// KeepaliveInterval × KeepaliveLimit, at least [`FIRST_RETRY`].
    fn detection(ctx: &Ctx) -> core::time::Duration {
        let t = &ctx.tunables;
        t.keepalive_interval
            .saturating_mul(t.keepalive_limit.max(1))
            .max(FIRST_RETRY)
    }

    pub fn on_accepted(&mut self, ctx: &mut Ctx, conn: ConnId, addr: IpAddr) {
        let peer = match ctx.nodes.pnn_of(addr) {
            Some(p) if p != ctx.me.pnn => p,
            _ => {
                ctx.stats.refused_connections += 1;
                self.refused(ctx, addr);
                ctx.act(Action::Close {
                    link: Link::In(conn),
                });
                return;
            }
        };
        // The connection proves itself with a Hello before it may replace the established one
        // (a bare connect from a peer's address must not cut its real link). A few may wait
        // per peer; a newer one pushes the oldest out.
        let waiting = self.pending.iter().filter(|x| x.peer == peer).count();
        if waiting >= PENDING_PER_PEER {
            if let Some(i) = self.pending.iter().position(|x| x.peer == peer) {
                let old = self.pending.remove(i);
                Self::drop_unproven(ctx, old.conn, "replaced by a newer connection");
            }
        }
        let until = ctx.now + ctx.tunables.connect_timeout;
        self.pending.push(PendingIn { conn, peer, until });
        ctx.timers.set_earliest(Timer::PendingHello, until);
    }

    fn refused(&mut self, ctx: &mut Ctx, addr: IpAddr) {
        let r = &mut self.refusals;
        if r.logged < RefusalLog::LINES_PER_WINDOW {
            if r.logged == 0 {
                ctx.timers
                    .set(Timer::RefusalLog, r.window_start + RefusalLog::WINDOW);
            }
            r.logged += 1;
            log::warn!("refusing connection from {addr}: not a node of the cluster");
        } else {
            r.suppressed += 1;
        }
    }

    /// The refusal log's window ended: one line for what it did not log, and a new window.
    pub fn refusal_window_ended(&mut self, ctx: &mut Ctx) {
        let r = &self.refusals;
        if r.suppressed > 0 {
            log::warn!(
                "refused {} more connections from addresses that are not nodes in the last {} s",
                r.suppressed,
                (ctx.now - r.window_start).as_secs()
            );
        }
        self.refusals = RefusalLog::new(ctx.now);
    }

    /// Closes a pending incoming connection that did not prove itself.
    fn drop_unproven(ctx: &mut Ctx, conn: ConnId, why: &str) {
        ctx.stats.unproven_connections += 1;
        log::debug!("closing unproven connection {conn:?}: {why}");
        ctx.act(Action::Close {
            link: Link::In(conn),
        });
    }

    /// Pending connections that stayed silent past their deadline are closed.
    pub fn pending_timeouts(&mut self, ctx: &mut Ctx) {
        while let Some(i) = self.pending.iter().position(|x| ctx.now >= x.until) {
            let x = self.pending.remove(i);
            Self::drop_unproven(ctx, x.conn, "no Hello within ConnectTimeout");
        }
        if let Some(t) = self.pending.iter().map(|x| x.until).min() {
            ctx.timers.set(Timer::PendingHello, t);
        }
    }

    /// A pending connection said Hello: it becomes the peer's incoming connection, unless it
    /// is from an older life of the peer than the established one. `true` if it did.
    fn promote(&mut self, ctx: &mut Ctx, at: usize, hello: &Hello) -> bool {
        let PendingIn { conn, peer, .. } = self.pending.remove(at);
        let p = &mut self.peers[peer.index()];
        if let Some(old) = p.incoming {
            let same_life = hello.incarnation == p.incarnation;
            if !same_life && hello.start_stamp <= p.start_stamp {
                Self::drop_unproven(
                    ctx,
                    conn,
                    "a Hello from an older life than the established link",
                );
                return false;
            }
            self.incoming.remove(&old);
            ctx.act(Action::Close {
                link: Link::In(old),
            });
        }
        let p = &mut self.peers[peer.index()];
        p.incoming = Some(conn);
        p.incarnation = hello.incarnation;
        p.start_stamp = hello.start_stamp;
        p.fast_retried = false;
        self.incoming.insert(conn, peer);
        if matches!(p.out, OutState::Retry { .. }) {
            // The peer is evidently up: do not wait for the retry timer.
            self.start_connect(ctx, peer);
        }
        true
    }

    /// What a link is to us now.
    fn role(&self, link: Link) -> LinkRole {
        match link {
            Link::Out(p) => match self.peers.get(p.index()) {
                Some(x) if x.out == OutState::Up => LinkRole::Peer(p),
                _ => LinkRole::Unknown,
            },
            Link::In(conn) => {
                if let Some(&p) = self.incoming.get(&conn) {
                    return LinkRole::Peer(p);
                }
                match self.pending.iter().position(|x| x.conn == conn) {
                    Some(i) => LinkRole::Pending(i),
                    None => LinkRole::Unknown,
                }
            }
        }
    }

    /// Checks a frame and its link; a frame of a proven link (or the Hello that proves one)
    /// goes up as [`Routed`]. Bad frames are dropped and counted.
    pub fn on_frame<'a>(
        &mut self,
        ctx: &mut Ctx,
        link: Link,
        bytes: &'a [u8],
    ) -> Option<Routed<'a>> {
        let (peer, pending) = match self.role(link) {
            LinkRole::Peer(p) => (p, None),
            LinkRole::Pending(i) => (self.pending[i].peer, Some(i)),
            LinkRole::Unknown => {
                ctx.stats.unknown_link += 1;
                return None;
            }
        };
        let (header, message) = match wire::decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                ctx.stats.malformed_frames += 1;
                log::debug!("dropping malformed frame from node {peer}: {e}");
                return None;
            }
        };
        if header.src != peer {
            ctx.stats.wrong_source += 1;
            log::debug!(
                "dropping frame claiming to be from node {} on node {peer}'s connection",
                header.src
            );
            return None;
        }
        if header.dst != ctx.me.pnn {
            ctx.stats.wrong_destination += 1;
            return None;
        }
        if header.op.generation_scoped() && header.generation < ctx.generation {
            ctx.stats.stale_generation += 1;
            log::debug!(
                "dropping {:?} of generation {} from node {peer}",
                header.op,
                header.generation.0
            );
            return None;
        }
        if let Some(i) = pending {
            // A guardian's notice comes alone on a fresh connection: it must name the life we
            // know of that peer (only its guardian knows it).
            if let Message::Fenced { incarnation } = message {
                let x = self.pending.remove(i);
                ctx.act(Action::Close {
                    link: Link::In(x.conn),
                });
                if incarnation == 0 || incarnation != self.peers[peer.index()].incarnation {
                    ctx.stats.unproven_connections += 1;
                    log::warn!("ignoring a fencing notice for node {peer} of another life");
                    return None;
                }
                ctx.stats.frames_received += 1;
                return Some(Routed {
                    peer,
                    header,
                    message,
                    frame: bytes,
                });
            }
            // A node says Hello first on every connection it opens; anything else is not one.
            let Message::Hello(h) = message else {
                let x = self.pending.remove(i);
                Self::drop_unproven(ctx, x.conn, "first frame is not a Hello");
                return None;
            };
            if !self.promote(ctx, i, &h) {
                return None;
            }
            self.update_connected(ctx, peer);
        } else if let Message::Hello(h) = message {
            // Again on an established link: the same life says who it is.
            let p = &mut self.peers[peer.index()];
            p.incarnation = h.incarnation;
            p.start_stamp = h.start_stamp;
        }
        ctx.stats.frames_received += 1;
        Some(Routed {
            peer,
            header,
            message,
            frame: bytes,
        })
    }

    pub fn on_bad_stream(&mut self, ctx: &mut Ctx, link: Link) {
        ctx.stats.bad_streams += 1;
        match self.role(link) {
            LinkRole::Pending(i) => {
                let x = self.pending.remove(i);
                Self::drop_unproven(ctx, x.conn, "garbage before its Hello");
            }
            LinkRole::Peer(peer) => self.peer_dead(ctx, peer, Disconnect::BadStream),
            LinkRole::Unknown => {
                ctx.act(Action::Close { link });
                // An outgoing connection still connecting: that attempt has failed.
                if let Link::Out(p) = link {
                    if ctx.is_remote(p) {
                        self.on_connect_failed(ctx, p);
                    }
                }
            }
        }
    }

    pub fn on_closed(&mut self, ctx: &mut Ctx, link: Link) {
        let peer = match link {
            Link::Out(p) if ctx.is_remote(p) => match self.peers[p.index()].out {
                OutState::Up => {
                    // The shell dropped the socket already: nothing to close.
                    self.set_out(ctx, p, OutState::Idle);
                    p
                }
                OutState::Connecting { .. } => {
                    // Same as a failed connect.
                    self.on_connect_failed(ctx, p);
                    return;
                }
                _ => return,
            },
            Link::Out(_) => return,
            Link::In(conn) => match self.role(link) {
                LinkRole::Peer(p) => {
                    // The socket is gone already: no Close for it.
                    self.incoming.remove(&conn);
                    self.peers[p.index()].incoming = None;
                    p
                }
                LinkRole::Pending(i) => {
                    // A connection that never said Hello ended: nobody died.
                    self.pending.remove(i);
                    return;
                }
                LinkRole::Unknown => return,
            },
        };
        self.peer_dead(ctx, peer, Disconnect::Closed);
    }

    /// Tears down both connections to `peer` and schedules a reconnect.
    pub fn peer_dead(&mut self, ctx: &mut Ctx, peer: Pnn, reason: Disconnect) {
        ctx.forget_transmits(peer);
        if matches!(
            self.peers[peer.index()].out,
            OutState::Up | OutState::Connecting { .. }
        ) {
            ctx.act(Action::Close {
                link: Link::Out(peer),
            });
        }
        // It may be back soon (a restart): look again after a short wait, then less often.
        self.peers[peer.index()].failures = 1;
        let at = ctx.now + Self::backoff(ctx, 1);
        self.set_out(ctx, peer, OutState::Retry { at });
        if let Some(conn) = self.peers[peer.index()].incoming.take() {
            self.incoming.remove(&conn);
            ctx.act(Action::Close {
                link: Link::In(conn),
            });
        }
        self.set_connected(ctx, peer, false, reason);
    }

    /// Recomputes whether `peer` counts as connected.
    fn update_connected(&mut self, ctx: &mut Ctx, peer: Pnn) {
        let p = &self.peers[peer.index()];
        let now_connected = p.out == OutState::Up && p.incoming.is_some();
        self.set_connected(ctx, peer, now_connected, Disconnect::Closed);
    }

    fn set_connected(&mut self, ctx: &mut Ctx, peer: Pnn, on: bool, reason: Disconnect) {
        if on == self.connected.contains(peer) {
            return;
        }
        let address = ctx
            .nodes
            .address_of(peer)
            .unwrap_or(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED));
        self.changed = true;
        if on {
            self.connected.insert(peer);
            self.went_up.insert(peer);
            ctx.notify(Notification::PeerConnected { pnn: peer, address });
        } else {
            self.connected.remove(peer);
            self.went_down.insert(peer);
            if !matches!(reason, Disconnect::Silent { .. }) {
                self.died.insert(peer);
            }
            ctx.notify(Notification::PeerDisconnected {
                pnn: peer,
                address,
                reason,
            });
        }
    }

    /// Connect timeouts and retries that are due.
    pub fn connect_timers(&mut self, ctx: &mut Ctx) {
        for i in 0..self.peers.len() {
            let peer = Pnn(i as u32);
            match self.peers[i].out {
                OutState::Connecting { deadline } if ctx.now >= deadline => {
                    log::debug!("connect to node {peer} timed out");
                    ctx.act(Action::Close {
                        link: Link::Out(peer),
                    });
                    let p = &mut self.peers[i];
                    p.failures = p.failures.saturating_add(1);
                    let at = ctx.now + Self::backoff(ctx, p.failures);
                    self.peers[i].out = OutState::Retry { at };
                }
                OutState::Retry { at } if ctx.now >= at => self.start_connect(ctx, peer),
                _ => {}
            }
        }
        self.rearm_connect(ctx);
    }

    /// Closes every link (shutdown): pending ones too. Peers see EOF.
    pub fn close_all(&mut self, ctx: &mut Ctx) {
        for x in self.pending.drain(..) {
            ctx.act(Action::Close {
                link: Link::In(x.conn),
            });
        }
        for i in 0..self.peers.len() {
            let peer = Pnn(i as u32);
            if !ctx.is_remote(peer) {
                continue;
            }
            if matches!(
                self.peers[i].out,
                OutState::Up | OutState::Connecting { .. }
            ) {
                ctx.act(Action::Close {
                    link: Link::Out(peer),
                });
            }
            self.set_out(ctx, peer, OutState::Idle);
            if let Some(conn) = self.peers[i].incoming.take() {
                self.incoming.remove(&conn);
                ctx.act(Action::Close {
                    link: Link::In(conn),
                });
            }
            // We are the one leaving: nobody died, nothing to tell.
            if self.connected.contains(peer) {
                self.connected.remove(peer);
                self.went_down.insert(peer);
                self.changed = true;
            }
        }
        ctx.timers.stop(Timer::Connect);
        ctx.timers.stop(Timer::PendingHello);
    }
}
