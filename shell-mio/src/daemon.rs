//! `pharosd`'s event loop: one thread, one `mio::Poll`, the core's deadline as the poll timeout.
//!
//! The loop only moves bytes and translates: socket readiness becomes core events, core
//! actions become socket operations. Every protocol decision is the core's.
//!
//! No source may hold the loop: a peer connection is read for at most [`READ_BUDGET`] bytes
//! and a listener accepts at most [`ACCEPT_BUDGET`] connections per turn. What is left is
//! served next turn, which then polls without waiting (mio is edge-triggered: no new readiness
//! would announce bytes that are already there). Control clients are bounded in number (by
//! the descriptor limit) and in time ([`CLIENT_TIMEOUT`]).

use crate::control_socket::ControlSocket;
use crate::descriptors::{self, BurstLog, Spare};
use crate::netio::{last_word, ClientConn, ClientRead, PeerConn, ReadOutcome, CLIENT_TIMEOUT};
use mio::net::{TcpListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use pharos_core::control::{Request, Response};
use pharos_core::drive::{Driver, Feedback, Frames, Host};
use pharos_core::node::Disconnect;
use pharos_core::{
    Action, ClientId, ConnId, Event, Instant, Link, Node, NodeConfig, Notification, Pnn,
};
use pharos_host::lock::LockService;
use pharos_host::settings::Settings;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
use signal_hook_mio::v1_0::Signals;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const LISTENER: Token = Token(0);
const CONTROL: Token = Token(1);
const SIGNALS: Token = Token(2);
/// The cluster lock's worker thread has answers.
const LOCK: Token = Token(3);
/// Peer connection tokens start here; control clients start at [`CLIENT_BASE`].
const PEER_BASE: usize = 1 << 10;
const CLIENT_BASE: usize = 1 << 30;
/// Readiness events handled per turn.
const EVENTS: usize = 256;
/// Bytes read from one peer connection per turn: one maximal frame, or 1,638 keepalives. A
/// peer that sends more waits for the next turn, after every other source had its turn.
pub const READ_BUDGET: usize = 64 * 1024;
/// Connections accepted from one listener per turn.
pub const ACCEPT_BUDGET: usize = 64;

/// What a signal means to the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SignalEvent {
    /// SIGTERM, SIGINT: close everything, remove the socket, exit 0.
    Shutdown,
    /// SIGHUP: re-read what can be re-read.
    Reload,
    /// SIGUSR1, SIGUSR2: logged, nothing else.
    Ignore,
}

/// The signals pharosd handles (SIGPIPE is ignored outright by `pharosd`'s `main`).
const SIGNALS_HANDLED: [i32; 5] = [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2];

fn signal_event(sig: i32) -> SignalEvent {
    match sig {
        SIGTERM | SIGINT => SignalEvent::Shutdown,
        SIGHUP => SignalEvent::Reload,
        _ => SignalEvent::Ignore,
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGHUP => "SIGHUP",
        SIGUSR1 => "SIGUSR1",
        SIGUSR2 => "SIGUSR2",
        _ => "a signal",
    }
}

/// A running daemon: sockets bound, node created. The node is fed through the one drive path
/// ([`Driver`]); `Io` is what it acts on.
pub struct Daemon {
    node: Node,
    driver: Driver,
    io: Io,
}

/// Everything of the daemon but its node: sockets, clients, the lock. The drive path's
/// [`Host`]: frames into connection buffers, actions onto sockets, notifications into the log.
struct Io {
    poll: Poll,
    origin: std::time::Instant,
    listener: TcpListener,
    control: ControlSocket,
    signals: Signals,
    peers: Vec<Option<PeerConn>>,
    free_peers: Vec<usize>,
    out_slot: Vec<Option<usize>>,
    in_slot: HashMap<ConnId, usize>,
    /// Peer connections (slot, serial) left with unread bytes, to be read next turn; and the
    /// previous turn's list while it is served (two vectors swapped: no allocation).
    backlog: Vec<(usize, u64)>,
    retry: Vec<(usize, u64)>,
    /// A listener that may have connections waiting after its accept budget ran out.
    listener_pending: bool,
    control_pending: bool,
    clients: Vec<Option<ClientConn>>,
    free_clients: Vec<usize>,
    /// Open control clients, and how many may be (from the descriptor limit).
    client_count: usize,
    client_limit: usize,
    /// Given up when descriptors run out, to accept-and-close what cannot be served.
    spare: Spare,
    /// Recurring warnings: out of descriptors; client table full.
    shortage: BurstLog,
    crowding: BurstLog,
    /// The cluster lock, run on its own thread; it wakes the loop through [`LOCK`].
    lock: LockService,
    /// The node said it is done (after a shutdown).
    exited: bool,
    next_serial: u64,
    events: Events,
    /// Readiness of the current turn: (token, writable, readable).
    ready: Vec<(Token, bool, bool)>,
}

/// Binds the cluster listener: the configured node address, or the first node address of the
/// nodes file that this host can bind (CTDB's automatic bind; several daemons on one host
/// each find their own slot because a listening address can be bound only once).
fn bind_cluster(s: &Settings) -> Result<(Pnn, TcpListener), String> {
    if let Some(addr) = s.node_address {
        let pnn = s
            .nodes
            .pnn_of(addr)
            .ok_or_else(|| format!("{addr} is not a node"))?;
        let l = TcpListener::bind(SocketAddr::new(addr, s.port))
            .map_err(|e| format!("cannot listen on {addr} port {}: {e}", s.port))?;
        return Ok((pnn, l));
    }
    let mut last = None;
    for e in s.nodes.entries() {
        let Some(addr) = e.address else { continue };
        match TcpListener::bind(SocketAddr::new(addr, s.port)) {
            Ok(l) => return Ok((e.pnn, l)),
            Err(err) => last = Some(format!("{addr}: {err}")),
        }
    }
    Err(format!(
        "could not bind any address of {} on port {} (last: {})",
        s.nodes_path.display(),
        s.port,
        last.unwrap_or_default()
    ))
}

impl Daemon {
    /// Binds everything and creates the node. Errors are one line, ready to print.
    pub fn new(settings: &Settings) -> Result<Daemon, String> {
        // Everything that can be refused is checked before anything is bound.
        let provider = settings.cluster_lock.provider()?;
        let (pnn, mut listener) = bind_cluster(settings)?;
        // From here on, an error drops `control`, which removes the socket file again.
        let mut control = ControlSocket::bind(&settings.socket)?;
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let mut signals = Signals::new(SIGNALS_HANDLED).map_err(|e| format!("signals: {e}"))?;
        // The lock provider may block (a hung shared file system): it runs on its own thread
        // and wakes the loop when it has an answer.
        let waker = Waker::new(poll.registry(), LOCK).map_err(|e| format!("epoll waker: {e}"))?;
        let lock = LockService::start(
            provider,
            Box::new(move || {
                let _ = waker.wake();
            }),
        )?;
        let reg = poll.registry();
        reg.register(&mut listener, LISTENER, Interest::READABLE)
            .and_then(|_| reg.register(&mut control.listener, CONTROL, Interest::READABLE))
            .and_then(|_| reg.register(&mut signals, SIGNALS, Interest::READABLE))
            .map_err(|e| format!("epoll register: {e}"))?;
        // The election's "longest running": wall-clock start in ms, comparable across nodes
        // (CTDB's priority time).
        let start_stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let config = NodeConfig::new(
            settings.nodes.clone(),
            pnn,
            settings.port,
            settings.tunables.clone(),
        )
        .map_err(|e| e.to_string())?
        .with_start_stamp(start_stamp)
        .with_recmaster_capable(settings.recmaster_capable);
        let origin = std::time::Instant::now();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ ((std::process::id() as u64) << 32);
        let n = settings.nodes.len();
        let nofile = descriptors::nofile_limit();
        let client_limit = descriptors::control_client_limit(nofile);
        log::info!(
            "pnn {pnn} listening on {} port {}, control socket {}",
            settings
                .nodes
                .address_of(pnn)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            settings.port,
            settings.socket.display()
        );
        log::info!(
            "descriptor limit {nofile}: at most {client_limit} control clients at once, \
             {} s each",
            CLIENT_TIMEOUT.as_secs()
        );
        let node = Node::new(config, seed, Instant::from_std(origin, origin));
        let io = Io {
            poll,
            origin,
            listener,
            control,
            signals,
            peers: Vec::with_capacity(2 * n),
            free_peers: Vec::with_capacity(2 * n),
            out_slot: vec![None; n],
            in_slot: HashMap::with_capacity(2 * n),
            backlog: Vec::with_capacity(2 * n),
            retry: Vec::with_capacity(2 * n),
            listener_pending: false,
            control_pending: false,
            clients: Vec::new(),
            free_clients: Vec::new(),
            client_count: 0,
            client_limit,
            spare: Spare::open(),
            shortage: BurstLog::default(),
            crowding: BurstLog::default(),
            lock,
            exited: false,
            next_serial: 1,
            events: Events::with_capacity(EVENTS),
            ready: Vec::with_capacity(EVENTS),
        };
        let mut d = Daemon {
            node,
            driver: Driver::new(),
            io,
        };
        let now = d.io.now();
        d.driver.drain(&mut d.node, now, &mut d.io);
        d.flush_writes();
        Ok(d)
    }

    /// This node's PNN.
    pub fn pnn(&self) -> Pnn {
        self.node.pnn()
    }

    /// The core node (for status in tests and embedders).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Feeds `event` through the drive path, then writes what it queued.
    fn feed(&mut self, event: Event<'_>) {
        let now = self.io.now();
        if let Err(e) = self.driver.drive(&mut self.node, now, event, &mut self.io) {
            log::error!("core refused an event: {e}");
        }
        self.flush_writes();
    }

    /// Writes what the drive path queued on every outgoing connection.
    fn flush_writes(&mut self) {
        for peer in 0..self.io.out_slot.len() {
            if let Some(slot) = self.io.out_slot[peer] {
                if self.io.peers[slot]
                    .as_ref()
                    .is_some_and(|c| c.has_pending_write())
                {
                    self.flush_peer(slot);
                }
            }
        }
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly.
    pub fn run(mut self) -> io::Result<()> {
        while self.run_once(None)? {}
        Ok(())
    }

    /// One turn of the loop: wait for readiness (at most until the core's deadline or a control
    /// client's, at most `max_wait` if given, and not at all while a source has work left from
    /// the previous turn), handle it, then let time pass in the core. Returns `false` once a
    /// shutdown signal was handled. Allocation-free in the steady state (tested).
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<bool> {
        let now = self.io.now();
        let mut timeout = self
            .node
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        if let Some(c) = self.io.expire_clients() {
            timeout = Some(timeout.map_or(c, |t| t.min(c)));
        }
        if let Some(m) = max_wait {
            timeout = Some(timeout.map_or(m, |t| t.min(m)));
        }
        let io = &mut self.io;
        if !io.backlog.is_empty() || io.listener_pending || io.control_pending {
            timeout = Some(Duration::ZERO);
        }
        if let Err(e) = io.poll.poll(&mut io.events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(true);
            }
            return Err(e);
        }
        // Copy the readiness out (into reused storage) so handlers may borrow `self`.
        io.ready.clear();
        for ev in io.events.iter() {
            io.ready.push((
                ev.token(),
                ev.is_writable(),
                ev.is_readable() || ev.is_read_closed(),
            ));
        }
        // Last turn's leftovers are served after this turn's readiness (fresh sources first).
        std::mem::swap(&mut io.backlog, &mut io.retry);
        for i in 0..io.retry.len() {
            let (slot, serial) = io.retry[i];
            if let Some(c) = io.peers.get_mut(slot).and_then(Option::as_mut) {
                if c.serial == serial {
                    c.backlogged = false;
                }
            }
        }
        let mut accept_peers = std::mem::take(&mut io.listener_pending);
        let mut accept_clients = std::mem::take(&mut io.control_pending);
        for i in 0..self.io.ready.len() {
            let (token, writable, readable) = self.io.ready[i];
            match token {
                LISTENER => accept_peers = true,
                CONTROL => accept_clients = true,
                LOCK => {
                    while let Some(result) = self.io.lock.try_recv() {
                        self.feed(Event::Lock(result));
                    }
                }
                SIGNALS => {
                    if self.handle_signals() == Some(SignalEvent::Shutdown) {
                        self.shutdown();
                        return Ok(false);
                    }
                }
                Token(t) if t >= CLIENT_BASE => self.client_ready(t - CLIENT_BASE),
                Token(t) if t >= PEER_BASE => self.peer_ready(t - PEER_BASE, writable, readable),
                Token(_) => {}
            }
        }
        if accept_peers {
            self.accept_peers();
        }
        if accept_clients {
            self.accept_clients();
        }
        for i in 0..self.io.retry.len() {
            let (slot, serial) = self.io.retry[i];
            // Skip a connection that went, or that this turn's readiness served to its budget.
            let due = self
                .io
                .peers
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.serial == serial && !c.backlogged && !c.connecting);
            if due {
                self.read_peer(slot);
            }
        }
        self.io.retry.clear();
        // Reads first, then time: a node that was itself stopped sees its peers' frames
        // before it counts their silence.
        self.feed(Event::Timeout);
        Ok(true)
    }

    /// Handles every pending signal; returns the strongest meaning among them.
    fn handle_signals(&mut self) -> Option<SignalEvent> {
        let (mut shutdown, mut reload) = (None, false);
        for sig in self.io.signals.pending() {
            match signal_event(sig) {
                SignalEvent::Shutdown => shutdown = Some(sig),
                SignalEvent::Reload => reload = true,
                SignalEvent::Ignore => log::info!(
                    "received {}: pharosd has no use for it, carrying on",
                    signal_name(sig)
                ),
            }
        }
        if reload {
            self.reload();
        }
        if let Some(sig) = shutdown {
            log::info!("received {}: shutting down", signal_name(sig));
            return Some(SignalEvent::Shutdown);
        }
        reload.then_some(SignalEvent::Reload)
    }

    /// SIGHUP: re-reads what may change while running. Nothing can yet: the nodes file needs
    /// `reloadnodes`, and the public addresses file will be re-read here once the daemon
    /// hosts addresses (`reloadips`, issue 11).
    fn reload(&mut self) {
        log::info!("received SIGHUP: nothing to re-read yet, carrying on");
    }

    /// A clean stop through the core (releases, goodbyes, closes), then the sockets go.
    fn shutdown(&mut self) {
        self.feed(Event::Shutdown);
        if !self.io.exited {
            log::warn!("the core did not finish its shutdown; closing everything");
        }
        // Dropping the sockets closes them: peers see EOF and mark us dead at once.
        self.io.peers.clear();
        self.io.clients.clear();
        self.io.client_count = 0;
        self.io.control.remove();
    }

    // --- peer connections ---

    /// The connection in `slot` ended on its own: drop it and tell the core.
    fn peer_gone(&mut self, slot: usize) {
        if let Some(conn) = self.io.remove_peer(slot) {
            let event = match conn.link {
                Link::Out(peer) if conn.connecting => Event::ConnectFailed { peer },
                link => Event::Closed { link },
            };
            self.feed(event);
        }
    }

    /// Accepts up to [`ACCEPT_BUDGET`] cluster connections.
    fn accept_peers(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            match self.io.listener.accept() {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let serial = self.io.next_serial;
                    let conn_id = ConnId(serial);
                    let conn = PeerConn::new(stream, Link::In(conn_id), false, serial);
                    self.io.next_serial += 1;
                    match self.io.insert_peer(conn, Interest::READABLE) {
                        Ok(slot) => {
                            self.io.in_slot.insert(conn_id, slot);
                            self.feed(Event::Accepted {
                                conn: conn_id,
                                addr: addr.ip(),
                            });
                        }
                        Err(e) => log::warn!("cannot register connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_retryable(&e) => continue,
                Err(e) if descriptors::is_exhaustion(&e) => {
                    self.io.out_of_descriptors("cluster accept", &e);
                    if self
                        .io
                        .evict_idle_client("the daemon is out of descriptors")
                    {
                        continue;
                    }
                    // Nothing to give up: refuse the connection rather than leave it queued.
                    let io = &mut self.io;
                    let listener = &io.listener;
                    match io.spare.without(|| listener.accept()) {
                        Some(Ok(_refused)) => continue,
                        _ => return,
                    }
                }
                Err(e) => {
                    log::warn!("accept: {e}");
                    return;
                }
            }
        }
        self.io.listener_pending = true;
    }

    fn peer_ready(&mut self, slot: usize, writable: bool, readable: bool) {
        let Some(conn) = self.io.peers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if conn.connecting {
            if !writable && !readable {
                return;
            }
            match conn.finish_connect() {
                Ok(true) => {
                    let Link::Out(peer) = conn.link else { return };
                    self.feed(Event::Connected { peer });
                }
                Ok(false) => return,
                Err(e) => {
                    log::debug!("connect failed: {e}");
                    self.peer_gone(slot);
                    return;
                }
            }
        }
        if writable {
            self.flush_peer(slot);
        }
        if readable {
            self.read_peer(slot);
        }
    }

    /// Reads and handles what the connection has, up to [`READ_BUDGET`] bytes; a connection
    /// with more is put on the backlog for the next turn.
    fn read_peer(&mut self, slot: usize) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.io.peers.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            let serial = conn.serial;
            match conn.read(budget) {
                ReadOutcome::Data(n) => {
                    if !self.process_frames(slot) {
                        return;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        if let Some(c) = self.io.peers.get_mut(slot).and_then(Option::as_mut) {
                            if c.serial == serial {
                                c.backlogged = true;
                                self.io.backlog.push((slot, serial));
                            }
                        }
                        return;
                    }
                }
                ReadOutcome::WouldBlock => return,
                ReadOutcome::Closed => {
                    self.peer_gone(slot);
                    return;
                }
            }
        }
    }

    /// Hands the complete frames in the connection's buffer to the core through the drive
    /// path. `false` if the connection is gone (the core closed it, or its stream was bad).
    fn process_frames(&mut self, slot: usize) -> bool {
        let Some(conn) = self.io.peers.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let (link, serial) = (conn.link, conn.serial);
        // Take the buffer out so the core can be fed from it while connections change.
        let mut buf = conn.take_read_buffer();
        let now = self.io.now();
        // Every whole frame that arrived: the byte budget bounds the work per turn.
        let fed = self.driver.frames(
            &mut self.node,
            now,
            link,
            &mut buf,
            usize::MAX,
            &mut self.io,
        );
        self.flush_writes();
        if fed == Frames::Closed {
            // The core closed the link (garbage, an unproven connection); make sure of it
            // whatever it decided.
            if self.io.is_current(slot, serial) {
                self.io.remove_peer(slot);
                self.feed(Event::Closed { link });
            }
            return false;
        }
        match self.io.peers.get_mut(slot).and_then(Option::as_mut) {
            Some(conn) if conn.serial == serial => {
                conn.put_read_buffer(buf);
                true
            }
            _ => false,
        }
    }

    fn flush_peer(&mut self, slot: usize) {
        if let Err(e) = self.io.flush_peer(slot) {
            log::debug!("write to slot {slot}: {e}");
            self.peer_gone(slot);
        }
    }

    // --- control clients ---

    /// Accepts up to [`ACCEPT_BUDGET`] control clients.
    fn accept_clients(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            match self.io.control.listener.accept() {
                Ok((stream, _)) => {
                    if let Some(slot) = self.io.add_client(stream) {
                        // The request is usually there already (the CLI writes as soon as it
                        // is connected).
                        self.client_ready(slot);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_retryable(&e) => continue,
                Err(e) if descriptors::is_exhaustion(&e) => {
                    self.io.out_of_descriptors("control accept", &e);
                    if self
                        .io
                        .evict_idle_client("the daemon is out of descriptors")
                    {
                        continue;
                    }
                    let io = &mut self.io;
                    let listener = &io.control.listener;
                    match io.spare.without(|| listener.accept()) {
                        Some(Ok((mut refused, _))) => {
                            last_word(&mut refused, "pharosd is out of file descriptors")
                        }
                        _ => return,
                    }
                }
                Err(e) => {
                    log::warn!("control accept: {e}");
                    return;
                }
            }
        }
        self.io.control_pending = true;
    }

    fn client_ready(&mut self, slot: usize) {
        let Some(client) = self.io.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if client.replied() {
            self.io.flush_client(slot);
            return;
        }
        let id = client.id;
        match client.read_request() {
            ClientRead::Pending => {}
            ClientRead::Line(line) => match Request::parse(&line) {
                Ok(request) => self.feed(Event::Control {
                    client: id,
                    request,
                }),
                Err(e) => self.io.reply(id, &Response::Error(e.to_string())),
            },
            ClientRead::Bad(e) => self.io.reply(id, &Response::Error(e.to_string())),
            ClientRead::Gone => {
                self.io.remove_client(slot);
            }
        }
    }
}

impl Host for Io {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        let slot = self.out_slot.get(peer.index()).copied().flatten();
        if let Some(conn) = slot.and_then(|s| self.peers[s].as_mut()) {
            if !conn.connecting {
                conn.write_buffer().extend_from_slice(frame);
            }
        }
    }

    fn act(&mut self, action: Action, feedback: &mut Feedback) {
        match action {
            Action::Connect { peer, addr, local } => {
                if !self.connect(peer, addr, local) {
                    feedback.push(Event::ConnectFailed { peer });
                }
            }
            Action::Close { link } => self.close_link(link),
            Action::Reply { client, response } => self.reply(client, &response),
            Action::AcquireLock => self.lock.acquire(),
            Action::ReleaseLock => self.lock.release(),
            Action::ReleaseAllIps => log::info!("releasing all public IPs"),
            Action::Exit => self.exited = true,
        }
    }

    fn notify(&mut self, n: Notification) {
        match n {
            Notification::PeerConnected { pnn, address } => {
                log::info!("node {pnn} ({address}) is connected")
            }
            Notification::PeerDisconnected {
                pnn,
                address,
                reason,
            } => {
                let why = match reason {
                    Disconnect::Closed => "connection closed".to_string(),
                    Disconnect::BadStream => "garbage on its connection".to_string(),
                    Disconnect::Silent { after } => {
                        format!("keepalive timeout (silent for {} ms)", after.as_millis())
                    }
                    Disconnect::Goodbye => "it shut down".to_string(),
                };
                log::info!("node {pnn} ({address}) is dead: {why}");
            }
            Notification::FlagsChanged { pnn, flags } => log::info!("node {pnn} flags: {flags}"),
            Notification::RecmasterChanged { recmaster } => {
                log::info!("recovery master is now {recmaster}")
            }
            Notification::Quorum { quorate: true } => log::info!("quorate"),
            Notification::Quorum { quorate: false } => log::warn!("lost quorum"),
            Notification::Lock { held } => {
                if held {
                    log::info!("holds the cluster lock")
                } else {
                    log::info!("gave up the cluster lock")
                }
            }
            Notification::GenerationChanged { generation, vnnmap } => {
                log::info!("generation {} (vnnmap {vnnmap:?})", generation.0)
            }
        }
    }
}

impl Io {
    fn now(&self) -> Instant {
        Instant::from_std(self.origin, std::time::Instant::now())
    }

    fn insert_peer(&mut self, mut conn: PeerConn, interest: Interest) -> io::Result<usize> {
        let slot = self.free_peers.pop().unwrap_or_else(|| {
            self.peers.push(None);
            self.peers.len() - 1
        });
        self.poll
            .registry()
            .register(&mut conn.stream, Token(PEER_BASE + slot), interest)?;
        self.peers[slot] = Some(conn);
        Ok(slot)
    }

    /// Drops the connection in `slot` (closing it) without telling the core.
    fn remove_peer(&mut self, slot: usize) -> Option<PeerConn> {
        let mut conn = self.peers.get_mut(slot)?.take()?;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        match conn.link {
            Link::Out(p) => {
                if self.out_slot[p.index()] == Some(slot) {
                    self.out_slot[p.index()] = None;
                }
            }
            Link::In(c) => {
                self.in_slot.remove(&c);
            }
        }
        self.free_peers.push(slot);
        Some(conn)
    }

    fn is_current(&self, slot: usize, serial: u64) -> bool {
        self.peers
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.serial == serial)
    }

    /// Opens the outgoing connection to `peer`; `false` if it failed at once.
    fn connect(&mut self, peer: Pnn, addr: SocketAddr, local: IpAddr) -> bool {
        if let Some(old) = self.out_slot[peer.index()] {
            self.remove_peer(old);
        }
        let stream = match crate::netio::connect_from(local, addr) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("connect to node {peer} at {addr}: {e}");
                return false;
            }
        };
        let conn = PeerConn::new(stream, Link::Out(peer), true, self.next_serial);
        self.next_serial += 1;
        match self.insert_peer(conn, Interest::READABLE | Interest::WRITABLE) {
            Ok(slot) => {
                self.out_slot[peer.index()] = Some(slot);
                true
            }
            Err(e) => {
                log::warn!("cannot register connection to {addr}: {e}");
                false
            }
        }
    }

    /// Writes what the socket takes; the registration follows whether bytes remain.
    fn flush_peer(&mut self, slot: usize) -> io::Result<()> {
        let Some(conn) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(());
        };
        let pending = conn.flush()?;
        let want = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if want != conn.interest {
            conn.interest = want;
            let token = Token(PEER_BASE + slot);
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, want)
            {
                log::warn!("reregister: {e}");
            }
        }
        Ok(())
    }

    /// Closes a link the core is done with, after one try at writing what is queued for it
    /// (a goodbye, the last keepalive).
    fn close_link(&mut self, link: Link) {
        let slot = match link {
            Link::Out(p) => self.out_slot.get(p.index()).copied().flatten(),
            Link::In(c) => self.in_slot.get(&c).copied(),
        };
        if let Some(mut conn) = slot.and_then(|s| self.remove_peer(s)) {
            if conn.has_pending_write() {
                let _ = conn.flush();
            }
        }
    }

    /// Warns (once per burst) that `what` failed for lack of descriptors.
    fn out_of_descriptors(&mut self, what: &str, e: &io::Error) {
        if let Some(more) = self.shortage.occurred(std::time::Instant::now()) {
            log::warn!(
                "{what}: {e} (descriptor limit {}): closing idle control clients, refusing \
                 connections that do not fit{}",
                descriptors::nofile_limit(),
                descriptors::more_since(more)
            );
        }
    }

    /// Registers a new control client; its slot, or `None` if it was refused.
    fn add_client(&mut self, mut stream: UnixStream) -> Option<usize> {
        if self.client_count >= self.client_limit {
            if let Some(more) = self.crowding.occurred(std::time::Instant::now()) {
                log::warn!(
                    "{} control clients open (the limit): closing the oldest idle one for each \
                     new one{}",
                    self.client_limit,
                    descriptors::more_since(more)
                );
            }
        }
        if self.client_count >= self.client_limit
            && !self.evict_idle_client("too many control clients")
        {
            // Every client has its request in and waits for its answer: refuse this one.
            let busy = format!("busy: {} control clients already", self.client_limit);
            last_word(&mut stream, &busy);
            return None;
        }
        let slot = self.free_clients.pop().unwrap_or_else(|| {
            self.clients.push(None);
            self.clients.len() - 1
        });
        let token = Token(CLIENT_BASE + slot);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log::warn!("control client: {e}");
            self.free_clients.push(slot);
            return None;
        }
        // The id carries a serial so a late reply never reaches a reused slot.
        let id = ClientId((self.next_serial << 24) | slot as u64);
        self.next_serial += 1;
        let now = std::time::Instant::now();
        self.clients[slot] = Some(ClientConn::new(stream, id, now));
        self.client_count += 1;
        Some(slot)
    }

    /// Closes the oldest client that has not sent its request yet, to make room; `false` if
    /// every client has (those are answered at once and leave by themselves).
    fn evict_idle_client(&mut self, why: &str) -> bool {
        let oldest = self
            .clients
            .iter()
            .enumerate()
            .filter_map(|(slot, c)| {
                c.as_ref()
                    .filter(|c| !c.replied())
                    .map(|c| (c.deadline, slot))
            })
            .min();
        let Some((_, slot)) = oldest else {
            return false;
        };
        if let Some(c) = self.remove_client(slot) {
            log::debug!("closing idle control client: {why}");
            c.close_with(&format!("closed: {why}"));
        }
        true
    }

    /// Closes the clients whose time is up; returns how long until the next one's is.
    fn expire_clients(&mut self) -> Option<Duration> {
        if self.client_count == 0 {
            return None;
        }
        let now = std::time::Instant::now();
        let mut next: Option<std::time::Instant> = None;
        for slot in 0..self.clients.len() {
            let Some(deadline) = self.clients[slot].as_ref().map(|c| c.deadline) else {
                continue;
            };
            if deadline > now {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                continue;
            }
            if let Some(c) = self.remove_client(slot) {
                log::debug!("control client timed out");
                let timeout = CLIENT_TIMEOUT.as_secs();
                c.close_with(&format!("no complete request within {timeout} s"));
            }
        }
        next.map(|n| n.saturating_duration_since(now))
    }

    fn remove_client(&mut self, slot: usize) -> Option<ClientConn> {
        let mut c = self.clients.get_mut(slot).and_then(Option::take)?;
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.free_clients.push(slot);
        self.client_count -= 1;
        Some(c)
    }

    fn reply(&mut self, client: ClientId, response: &Response) {
        let slot = (client.0 & 0xff_ffff) as usize;
        let Some(c) = self
            .clients
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|c| c.id == client)
        else {
            return;
        };
        c.set_reply(pharos_host::schema::encode(response));
        let token = Token(CLIENT_BASE + slot);
        let _ = self
            .poll
            .registry()
            .reregister(&mut c.stream, token, Interest::WRITABLE);
        self.flush_client(slot);
    }

    fn flush_client(&mut self, slot: usize) {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match c.flush() {
            Ok(true) => {}
            // Done, or the client went away: either way it is finished.
            Ok(false) | Err(_) => {
                self.remove_client(slot);
            }
        }
    }
}

/// Errors after which accepting again makes sense at once (the next connection is fine).
fn is_retryable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::ConnectionAborted
}
