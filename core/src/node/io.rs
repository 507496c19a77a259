//! The node's vocabulary with its shell: what goes in ([`Event`]), what it asks for
//! ([`Action`]), what it tells ([`Notification`]), and its counters ([`Stats`]).

use crate::config::PublicAddresses;
use crate::control::{Request, Response};
use crate::time::Instant;
use crate::types::{ClientId, ConnId, Generation, Link, NodeFlags, NodeSet, Pnn};
use crate::wire::IpOp;
use alloc::string::String;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

/// An input to the node.
#[derive(Debug)]
pub enum Event<'a> {
    /// Time passed (the deadline from [`super::Node::poll_timeout`] was reached, or any wake-up).
    Timeout,
    /// Our outgoing connection to `peer` (asked for with [`Action::Connect`]) is established.
    Connected {
        /// The peer.
        peer: Pnn,
    },
    /// Our outgoing connection to `peer` failed; the shell has already dropped the socket.
    ConnectFailed {
        /// The peer.
        peer: Pnn,
    },
    /// The shell accepted a connection from `addr` and named it `conn`.
    Accepted {
        /// The shell's name for the connection.
        conn: ConnId,
        /// The remote address.
        addr: IpAddr,
    },
    /// One whole frame (delimited with [`crate::wire::frame_len`]) arrived on `link`.
    Frame {
        /// Where it arrived.
        link: Link,
        /// The frame's bytes, header included.
        bytes: &'a [u8],
    },
    /// The byte stream on `link` cannot be split into frames ([`crate::wire::frame_len`] failed).
    BadStream {
        /// The link.
        link: Link,
    },
    /// `link` was closed by the other side (EOF) or reset; the shell has dropped the socket.
    Closed {
        /// The link.
        link: Link,
    },
    /// The cluster lock service answered an [`Action::AcquireLock`], or lost a held lock.
    Lock(LockResult),
    /// A control-socket request; the answer comes as [`Action::Reply`].
    Control {
        /// The shell's name for the client.
        client: ClientId,
        /// The request.
        request: Request,
    },
    /// Stop: release what this node holds, say goodbye to the peers, close every connection,
    /// then [`Action::Exit`]. Every shell's SIGTERM comes here, so the order is the same for all.
    Shutdown,
    /// The shell carried out an [`Action::TakeIp`] or [`Action::ReleaseIp`] (or failed to).
    IpResult(IpResult),
    /// This node's public addresses (re-read for [`Action::ReloadIps`], or on SIGHUP).
    PublicAddresses(PublicAddresses),
    /// The guardian removed every public address of this node while the daemon did not run
    /// (it was frozen), and told the peers so.
    Fenced,
    /// The shell's health check (the `monitor` event, and `startup` until it succeeded)
    /// judged this node healthy or not. An unhealthy node carries UNHEALTHY in its flags,
    /// which every peer learns from its keepalives; the recovery master then moves its
    /// addresses away (unless every node is unhealthy: CTDB's rule). Repeating the current
    /// state changes nothing.
    Health {
        /// Healthy now.
        healthy: bool,
    },
    /// Interface `iface` lost (`up == false`) or regained its carrier (or was set down or
    /// up). An address whose interface goes down is released at once, and this node lists it
    /// as unavailable while none of its interfaces is up, so the recovery master moves it;
    /// when carrier returns the address may come back. Interfaces this node never heard of
    /// are up.
    Carrier {
        /// The interface name.
        iface: &'a str,
        /// Carrier present (and the link administratively up).
        up: bool,
    },
}

/// What became of an address change the node asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpResult {
    /// The address.
    pub addr: IpAddr,
    /// What was asked.
    pub op: IpOp,
    /// `None` if done; the errno otherwise (an address that was already gone counts as
    /// released, not as an error).
    pub error: Option<i32>,
}

/// Something the node wants the shell to do (besides transmitting frames).
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Open our outgoing TCP connection to `peer` at `addr`, bound to our own address `local`
    /// (so the peer recognises us), non-blocking; report [`Event::Connected`] or
    /// [`Event::ConnectFailed`]. Replaces any existing outgoing socket to that peer.
    Connect {
        /// The peer.
        peer: Pnn,
        /// Its address and cluster port.
        addr: SocketAddr,
        /// Our node address, to bind the socket to.
        local: IpAddr,
    },
    /// Close this connection without reporting it back (after writing what is already queued
    /// for it, if the socket takes it at once).
    Close {
        /// The link.
        link: Link,
    },
    /// Take the cluster lock (fcntl lock file, etcd lease); answer with [`Event::Lock`]. While
    /// held, report [`LockResult::Lost`] if the lock service takes it away.
    AcquireLock,
    /// Give the cluster lock up (no answer expected).
    ReleaseLock,
    /// Release every public IP this node hosts, at once (quorum lost, node banned or stopped,
    /// lease lost, shutting down), before carrying out the next action. No answer.
    ReleaseAllIps,
    /// Add `addr/prefix` on `iface` with a kernel lifetime of `lifetime_secs` (its valid and
    /// preferred lifetime), announce it (gratuitous ARP, unsolicited neighbour advertisement),
    /// and answer with [`Event::IpResult`]. Do not add it after `not_after` on the shell's
    /// clock (the daemon was frozen meanwhile): answer with an error instead.
    TakeIp {
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// The interface.
        iface: String,
        /// Kernel lifetime, whole seconds.
        lifetime_secs: u32,
        /// Too late to add it after this.
        not_after: Instant,
    },
    /// Remove `addr/prefix` from `iface`; answer with [`Event::IpResult`].
    ReleaseIp {
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// The interface.
        iface: String,
    },
    /// Renew the kernel lifetime of every address this node hosts to `lifetime_secs`, never
    /// re-creating one that is gone. No answer.
    RenewIps {
        /// Kernel lifetime, whole seconds.
        lifetime_secs: u32,
    },
    /// Re-read the public addresses file and answer with [`Event::PublicAddresses`]
    /// (`pharos reloadips`).
    ReloadIps,
    /// Send this response to a control client.
    Reply {
        /// The client.
        client: ClientId,
        /// The answer.
        response: Response,
    },
    /// The node has shut down (after [`Event::Shutdown`]): nothing more will come from it.
    Exit,
}

/// What the cluster lock service says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockResult {
    /// The lock is ours until we release it or report it lost.
    Granted,
    /// Someone else holds it.
    Contended,
    /// We held it and no longer do (lease expired, lock file gone, service unreachable).
    Lost,
    /// The service could not be asked (I/O error, timeout).
    Failed,
}

/// Why a peer stopped counting as connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// One of its connections ended (EOF, reset): the daemon died or closed.
    Closed,
    /// Its byte stream could not be framed.
    BadStream,
    /// No frame for longer than it promised.
    Silent {
        /// How long it was silent.
        after: Duration,
    },
    /// It said goodbye (a clean stop).
    Goodbye,
    /// Its guardian said the daemon died or hung, and removed its addresses.
    Fenced,
}

/// Something that happened, for the shell's log and for embedders. Drained with
/// [`super::Node::poll_notification`]; fixed-size, so the steady state never allocates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notification {
    /// Both connections to `pnn` are up and it said Hello.
    PeerConnected {
        /// The peer.
        pnn: Pnn,
        /// Its address.
        address: IpAddr,
    },
    /// `pnn` no longer counts as connected.
    PeerDisconnected {
        /// The peer.
        pnn: Pnn,
        /// Its address.
        address: IpAddr,
        /// Why.
        reason: Disconnect,
    },
    /// The administrative flags of `pnn` (this node's own included) changed.
    FlagsChanged {
        /// The node.
        pnn: Pnn,
        /// Its flags now.
        flags: NodeFlags,
    },
    /// The recovery master this node follows changed ([`Pnn::NONE`]: none agreed).
    RecmasterChanged {
        /// The new one.
        recmaster: Pnn,
    },
    /// This node's partition gained or lost quorum.
    Quorum {
        /// Quorate now.
        quorate: bool,
    },
    /// This node took or gave up the cluster lock.
    Lock {
        /// Held now.
        held: bool,
    },
    /// A recovery completed on this node: the cluster moved to a new generation.
    GenerationChanged {
        /// The generation.
        generation: Generation,
        /// Its active nodes.
        vnnmap: NodeSet,
    },
    /// This node now hosts `addr`.
    IpTaken {
        /// The address.
        addr: IpAddr,
    },
    /// This node no longer hosts `addr`.
    IpReleased {
        /// The address.
        addr: IpAddr,
    },
    /// This node lost its hosting lease (no majority vouches for it): it released everything.
    LeaseLost,
    /// A recovery started on this node (as recovery master, or on the master's word): the
    /// shell runs the `startrecovery` event. [`Notification::GenerationChanged`] marks its
    /// end (`recovered`).
    RecoveryStarted {
        /// The generation it recovers into.
        generation: Generation,
    },
    /// The recovery master announced the allocation of a takeover run (on the master: it
    /// announced it): the shell runs the `ipreallocated` event. Every node of the cluster
    /// hears it after every run.
    IpReallocated,
    /// A takeover run of this node (as recovery master) ended.
    TakeoverRun {
        /// Addresses that moved.
        moved: u32,
        /// Addresses that could not be placed this time.
        failed: u32,
    },
}

/// Counters of inputs that were dropped or refused. Never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames accepted.
    pub frames_received: u64,
    /// Frames that did not decode.
    pub malformed_frames: u64,
    /// Frames whose source PNN is not the connection's peer.
    pub wrong_source: u64,
    /// Frames addressed to another node.
    pub wrong_destination: u64,
    /// Frames on a connection the node does not know (already closed).
    pub unknown_link: u64,
    /// Connections refused because the address is not a configured node.
    pub refused_connections: u64,
    /// Connections from a node's address closed before they proved themselves with a Hello
    /// (silent too long, garbage, an older life, or too many at once).
    pub unproven_connections: u64,
    /// Streams closed because they could not be split into frames.
    pub bad_streams: u64,
    /// Keepalive ticks (for observability).
    pub keepalive_ticks: u64,
    /// Generation-scoped frames refused because their generation is older than ours.
    pub stale_generation: u64,
    /// Times this node became recovery master.
    pub elections_won: u64,
    /// Recoveries this node completed as recovery master.
    pub recoveries: u64,
    /// Takeover runs started by this node (the hook the public-IP takeover fills in).
    pub takeover_runs: u64,
}
