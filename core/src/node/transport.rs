//! The TCP mesh as CTDB runs it: one outgoing connection to every other live node (we write
//! there), one accepted connection from each (we read there), connect timeout and retry, death
//! at once on EOF/RST, reconnection after a delay.

use super::{Action, Node, Promise};
use crate::control::RecoveryMode;
use crate::time::Instant;
use crate::types::{ConnId, Link, Pnn};
use crate::wire::{self, Hello, Message, CAP_RECMASTER};

/// Unproven incoming connections that may wait per peer.
pub(super) const PENDING_PER_PEER: usize = 2;

/// An accepted connection from a node's address that has not said Hello yet.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingIn {
    pub conn: ConnId,
    pub peer: Pnn,
    /// Closed if no Hello came by then.
    pub until: Instant,
}

/// What a link is to the node.
enum LinkRole {
    /// A peer's current link.
    Peer(Pnn),
    /// An incoming connection waiting for its Hello (index in `pending_in`).
    Pending(usize),
    /// Closed or never known.
    Unknown,
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

    pub fn new(now: Instant) -> Self {
        RefusalLog {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    pub fn refused(&mut self, now: Instant, addr: IpAddr) {
        self.flush(now);
        if self.logged < Self::LINES_PER_WINDOW {
            self.logged += 1;
            log::warn!("refusing connection from {addr}: not a node of the cluster");
        } else {
            self.suppressed += 1;
        }
    }

    /// Ends the window if it is over, with one line for what it did not log.
    pub fn flush(&mut self, now: Instant) {
        if now - self.window_start < Self::WINDOW {
            return;
        }
        if self.suppressed > 0 {
            log::warn!(
                "refused {} more connections from addresses that are not nodes in the last {} s",
                self.suppressed,
                (now - self.window_start).as_secs()
            );
        }
        *self = RefusalLog::new(now);
    }
}
use core::net::{IpAddr, SocketAddr};

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

impl Node {
    pub(super) fn start_connect(&mut self, peer: Pnn) {
        let addr = SocketAddr::new(self.address(peer), self.port);
        let local = self.address(self.pnn);
        self.peers[peer.index()].out = OutState::Connecting {
            deadline: self.now + self.tunables.connect_timeout,
        };
        self.actions
            .push_back(Action::Connect { peer, addr, local });
    }

    pub(super) fn on_connected(&mut self, peer: Pnn) {
        let p = &mut self.peers[peer.index()];
        if !matches!(p.out, OutState::Connecting { .. }) {
            // A late answer for an attempt we gave up on: that socket is already closed.
            return;
        }
        p.out = OutState::Up;
        let hello = Hello {
            liveness: Promise::own(&self.tunables).to_wire(),
            incarnation: self.incarnation,
            flags: self.own_flags,
            capabilities: if self.recmaster_capable {
                CAP_RECMASTER
            } else {
                0
            },
            start_stamp: self.start_stamp,
        };
        self.send(peer, Message::Hello(hello));
        // Our view right away: the peer learns whom we follow without waiting for a tick.
        self.send(peer, Message::Keepalive(self.view()));
        self.update_connected(peer);
    }

    pub(super) fn on_connect_failed(&mut self, peer: Pnn) {
        let p = &mut self.peers[peer.index()];
        if !matches!(p.out, OutState::Connecting { .. }) {
            return;
        }
        if p.incoming.is_some() && !p.fast_retried {
            // The peer is connected to us, so it listens: this attempt raced its start-up.
            // Try again now, once per incoming connection (no busy loop if it keeps failing).
            p.fast_retried = true;
            self.start_connect(peer);
            return;
        }
        p.out = OutState::Retry {
            at: self.now + self.tunables.reconnect_interval,
        };
    }

    pub(super) fn on_accepted(&mut self, conn: ConnId, addr: IpAddr) {
        let peer = match self.nodes.pnn_of(addr) {
            Some(p) if p != self.pnn => p,
            _ => {
                self.stats.refused_connections += 1;
                self.refusals.refused(self.now, addr);
                self.actions.push_back(Action::Close {
                    link: Link::In(conn),
                });
                return;
            }
        };
        // The connection proves itself with a Hello before it may replace the established one
        // (a bare connect from a peer's address must not cut its real link). A few may wait
        // per peer; a newer one pushes the oldest out.
        let waiting = self.pending_in.iter().filter(|x| x.peer == peer).count();
        if waiting >= PENDING_PER_PEER {
            if let Some(i) = self.pending_in.iter().position(|x| x.peer == peer) {
                let old = self.pending_in.remove(i);
                self.drop_unproven(old.conn, "replaced by a newer connection");
            }
        }
        self.pending_in.push(PendingIn {
            conn,
            peer,
            until: self.now + self.tunables.connect_timeout,
        });
    }

    /// Closes a pending incoming connection that did not prove itself.
    fn drop_unproven(&mut self, conn: ConnId, why: &str) {
        self.stats.unproven_connections += 1;
        log::debug!("closing unproven connection {conn:?}: {why}");
        self.actions.push_back(Action::Close {
            link: Link::In(conn),
        });
    }

    /// A pending connection said Hello: it becomes the peer's incoming connection, unless it
    /// is from an older life of the peer than the established one.
    fn promote(&mut self, at: usize, hello: &Hello) {
        let PendingIn { conn, peer, .. } = self.pending_in.remove(at);
        let p = &mut self.peers[peer.index()];
        if let Some(old) = p.incoming {
            let same_life = hello.incarnation == p.incarnation;
            if !same_life && hello.start_stamp <= p.start_stamp {
                self.drop_unproven(conn, "a Hello from an older life than the established link");
                return;
            }
            self.actions.push_back(Action::Close {
                link: Link::In(old),
            });
        }
        let p = &mut self.peers[peer.index()];
        p.incoming = Some(conn);
        p.fast_retried = false;
        self.take_hello(peer, hello);
        if matches!(self.peers[peer.index()].out, OutState::Retry { .. }) {
            // The peer is evidently up: do not wait for the retry timer.
            self.start_connect(peer);
        }
        self.update_connected(peer);
    }

    /// What a Hello tells about its sender.
    fn take_hello(&mut self, peer: Pnn, h: &Hello) {
        let p = &mut self.peers[peer.index()];
        p.incarnation = h.incarnation;
        p.flags = h.flags.0.into_admin();
        p.start_stamp = h.start_stamp;
        p.capable = h.capabilities & CAP_RECMASTER != 0;
        p.promise = Promise::from_wire(h.liveness);
        self.promise_changed(peer);
    }

    /// What a link is to us now.
    fn link_role(&self, link: Link) -> LinkRole {
        match link {
            Link::Out(p) => match self.peers.get(p.index()) {
                Some(x) if x.out == OutState::Up => LinkRole::Peer(p),
                _ => LinkRole::Unknown,
            },
            Link::In(conn) => {
                if let Some(i) = self.peers.iter().position(|x| x.incoming == Some(conn)) {
                    return LinkRole::Peer(Pnn(i as u32));
                }
                match self.pending_in.iter().position(|x| x.conn == conn) {
                    Some(i) => LinkRole::Pending(i),
                    None => LinkRole::Unknown,
                }
            }
        }
    }

    /// The peer a link belongs to, if it is current (pending links belong to nobody yet).
    fn link_peer(&self, link: Link) -> Option<Pnn> {
        match self.link_role(link) {
            LinkRole::Peer(p) => Some(p),
            _ => None,
        }
    }

    pub(super) fn on_frame(&mut self, link: Link, bytes: &[u8]) {
        let (peer, pending) = match self.link_role(link) {
            LinkRole::Peer(p) => (p, None),
            LinkRole::Pending(i) => (self.pending_in[i].peer, Some(i)),
            LinkRole::Unknown => {
                self.stats.unknown_link += 1;
                return;
            }
        };
        let (header, message) = match wire::decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                self.stats.malformed_frames += 1;
                log::debug!("dropping malformed frame from node {peer}: {e}");
                return;
            }
        };
        if header.src != peer {
            self.stats.wrong_source += 1;
            log::debug!(
                "dropping frame claiming to be from node {} on node {peer}'s connection",
                header.src
            );
            return;
        }
        if header.dst != self.pnn {
            self.stats.wrong_destination += 1;
            return;
        }
        if let Some(i) = pending {
            // A node says Hello first on every connection it opens; anything else is not one.
            match message {
                Message::Hello(h) => {
                    self.stats.frames_received += 1;
                    self.peers[peer.index()].generation = header.generation;
                    self.promote(i, &h);
                    self.peer_alive(peer);
                }
                _ => {
                    let x = self.pending_in.remove(i);
                    self.drop_unproven(x.conn, "first frame is not a Hello");
                }
            }
            return;
        }
        if header.op.generation_scoped() && header.generation < self.generation {
            self.stats.stale_generation += 1;
            log::debug!(
                "dropping {:?} of generation {} from node {peer}",
                header.op,
                header.generation.0
            );
            return;
        }
        self.stats.frames_received += 1;
        // Any frame is a sign of life.
        self.peer_alive(peer);
        let p = &mut self.peers[peer.index()];
        if !header.op.generation_scoped() {
            p.generation = header.generation;
        }
        match message {
            Message::Hello(h) => {
                // Again on an established link: take what it says.
                self.take_hello(peer, &h);
                self.update_connected(peer);
            }
            Message::Keepalive(k) => {
                p.flags = k.flags.0.into_admin();
                p.reported_recmaster = k.recmaster;
                p.reported_mode = k.recovery_mode;
                p.promise = Promise::from_wire(k.liveness);
                self.promise_changed(peer);
            }
            Message::RecoveryStart => self.on_recovery_start(peer, header.generation),
            Message::RecoveryAck => self.on_recovery_ack(peer, header.generation),
            Message::RecoveryCommit { vnnmap } => {
                self.on_recovery_commit(peer, header.generation, vnnmap)
            }
            Message::Reconfigured => {}
        }
    }

    pub(super) fn on_bad_stream(&mut self, link: Link) {
        self.stats.bad_streams += 1;
        if let LinkRole::Pending(i) = self.link_role(link) {
            let x = self.pending_in.remove(i);
            self.drop_unproven(x.conn, "garbage before its Hello");
            return;
        }
        match self.link_peer(link) {
            Some(peer) => self.peer_dead(peer, "garbage on its connection"),
            None => {
                self.actions.push_back(Action::Close { link });
                // An outgoing connection still connecting: that attempt has failed.
                if let Link::Out(p) = link {
                    if self.is_remote(p) {
                        self.on_connect_failed(p);
                    }
                }
            }
        }
    }

    pub(super) fn on_closed(&mut self, link: Link) {
        let peer = match link {
            Link::Out(p) if self.is_remote(p) => {
                let x = &mut self.peers[p.index()];
                match x.out {
                    OutState::Up => {
                        // The shell dropped the socket already: nothing to close.
                        x.out = OutState::Idle;
                        p
                    }
                    OutState::Connecting { .. } => {
                        // Same as a failed connect.
                        self.on_connect_failed(p);
                        return;
                    }
                    _ => return,
                }
            }
            Link::Out(_) => return,
            Link::In(conn) => match self.link_role(Link::In(conn)) {
                LinkRole::Peer(p) => {
                    // The socket is gone already: no Close for it.
                    self.peers[p.index()].incoming = None;
                    p
                }
                LinkRole::Pending(i) => {
                    // A connection that never said Hello ended: nobody died.
                    self.pending_in.remove(i);
                    return;
                }
                LinkRole::Unknown => return,
            },
        };
        self.peer_dead(peer, "connection closed");
    }

    /// Tears down both connections to `peer` and schedules a reconnect.
    pub(super) fn peer_dead(&mut self, peer: Pnn, reason: &str) {
        let now = self.now;
        let retry = now + self.tunables.reconnect_interval;
        self.transmits.retain(|t| t.peer != peer);
        if matches!(
            self.peers[peer.index()].out,
            OutState::Up | OutState::Connecting { .. }
        ) {
            self.actions.push_back(Action::Close {
                link: Link::Out(peer),
            });
        }
        let p = &mut self.peers[peer.index()];
        p.out = OutState::Retry { at: retry };
        if let Some(conn) = p.incoming.take() {
            self.actions.push_back(Action::Close {
                link: Link::In(conn),
            });
        }
        // What it told us is stale from now on.
        p.reported_recmaster = Pnn::NONE;
        p.reported_mode = RecoveryMode::Normal;
        if p.connected {
            p.connected = false;
            log::info!("node {peer} ({}) is dead: {reason}", self.address(peer));
        }
    }

    /// Recomputes whether `peer` counts as connected, logging the transition.
    pub(super) fn update_connected(&mut self, peer: Pnn) {
        let p = &mut self.peers[peer.index()];
        let now_connected = p.out == OutState::Up && p.incoming.is_some();
        if now_connected == p.connected {
            return;
        }
        p.connected = now_connected;
        if now_connected {
            // Its silence counts from now: the frames that made it connected may be older
            // than our own last step (the Hello came before our connect finished).
            p.last_rx = self.now;
            let dead_at = self.now + p.promise.dead_after();
            self.silence_check_at = self.silence_check_at.min(dead_at);
            p.ever_connected = true;
            log::info!("node {peer} ({}) is connected", self.address(peer));
        } else {
            log::info!("node {peer} ({}) is disconnected", self.address(peer));
        }
    }

    /// Connect timeouts and retries that are due, and pending connections that stayed silent.
    pub(super) fn transport_timers(&mut self) {
        while let Some(i) = self.pending_in.iter().position(|x| self.now >= x.until) {
            let x = self.pending_in.remove(i);
            self.drop_unproven(x.conn, "no Hello within ConnectTimeout");
        }
        self.refusals.flush(self.now);
        for i in 0..self.peers.len() {
            let peer = Pnn(i as u32);
            match self.peers[i].out {
                OutState::Connecting { deadline } if self.now >= deadline => {
                    log::debug!("connect to node {peer} timed out");
                    self.actions.push_back(Action::Close {
                        link: Link::Out(peer),
                    });
                    self.peers[i].out = OutState::Retry {
                        at: self.now + self.tunables.reconnect_interval,
                    };
                }
                OutState::Retry { at } if self.now >= at => self.start_connect(peer),
                _ => {}
            }
        }
    }
}


trait IntoAdmin {
    fn into_admin(self) -> crate::types::NodeFlags;
}

impl IntoAdmin for u32 {
    /// Only administrative flags travel: DISCONNECTED and DELETED are each node's own view.
    fn into_admin(self) -> crate::types::NodeFlags {
        crate::types::NodeFlags(self & crate::types::NodeFlags::ADMIN.0)
    }
}
