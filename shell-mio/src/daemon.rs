//! `pharosd`'s event loop: one thread, one `mio::Poll`, the core's deadline as the poll timeout.
//!
//! The loop only moves bytes and translates: socket readiness becomes core events, core
//! actions become socket operations. Every protocol decision is the core's.

use crate::netio::{ClientConn, PeerConn, ReadOutcome};
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use pharos_core::control::{Request, Response};
use pharos_core::{Action, ClientId, ConnId, Event, Instant, Link, Node, NodeConfig, Pnn};
use pharos_host::lock::LockService;
use pharos_host::settings::Settings;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
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

/// A running daemon: sockets bound, node created.
pub struct Daemon {
    poll: Poll,
    node: Node,
    origin: std::time::Instant,
    listener: TcpListener,
    control: UnixListener,
    socket_path: PathBuf,
    signals: Signals,
    peers: Vec<Option<PeerConn>>,
    free_peers: Vec<usize>,
    out_slot: Vec<Option<usize>>,
    in_slot: HashMap<ConnId, usize>,
    clients: Vec<Option<ClientConn>>,
    free_clients: Vec<usize>,
    /// Connects that failed synchronously, reported after the current drain.
    failed_connects: VecDeque<Pnn>,
    /// The cluster lock, run on its own thread; it wakes the loop through [`LOCK`].
    lock: LockService,
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

/// Binds the control socket with mode 0600, refusing to steal one a live daemon uses.
fn bind_control(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("another pharosd is running on {}", path.display()));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    // SAFETY: umask only changes this process's file-creation mask; it is restored at once and
    // the daemon is single-threaded here, so no other file creation can observe it.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    bound.map_err(|e| format!("cannot bind control socket {}: {e}", path.display()))
}

impl Daemon {
    /// Binds everything and creates the node. Errors are one line, ready to print.
    pub fn new(settings: &Settings) -> Result<Daemon, String> {
        let (pnn, mut listener) = bind_cluster(settings)?;
        let mut control = bind_control(&settings.socket)?;
        let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
        let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("signals: {e}"))?;
        // The lock provider may block (a hung shared file system): it runs on its own thread
        // and wakes the loop when it has an answer.
        let waker = Waker::new(poll.registry(), LOCK).map_err(|e| format!("epoll waker: {e}"))?;
        let provider = settings.cluster_lock.provider()?;
        let lock = LockService::start(
            provider,
            Box::new(move || {
                let _ = waker.wake();
            }),
        )?;
        let reg = poll.registry();
        reg.register(&mut listener, LISTENER, Interest::READABLE)
            .and_then(|_| reg.register(&mut control, CONTROL, Interest::READABLE))
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
        let node = Node::new(config, seed, Instant::from_std(origin, origin));
        let mut d = Daemon {
            poll,
            node,
            origin,
            listener,
            control,
            socket_path: settings.socket.clone(),
            signals,
            peers: Vec::with_capacity(2 * n),
            free_peers: Vec::with_capacity(2 * n),
            out_slot: vec![None; n],
            in_slot: HashMap::with_capacity(2 * n),
            clients: Vec::new(),
            free_clients: Vec::new(),
            failed_connects: VecDeque::with_capacity(n),
            lock,
            next_serial: 1,
            events: Events::with_capacity(EVENTS),
            ready: Vec::with_capacity(EVENTS),
        };
        d.drain();
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

    fn now(&self) -> Instant {
        Instant::from_std(self.origin, std::time::Instant::now())
    }

    fn feed(&mut self, event: Event<'_>) {
        let now = self.now();
        if let Err(e) = self.node.handle(now, event) {
            log::error!("core refused an event: {e}");
        }
        self.drain();
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly.
    pub fn run(mut self) -> io::Result<()> {
        while self.run_once(None)? {}
        Ok(())
    }

    /// One turn of the loop: wait for readiness (at most until the core's deadline, and at most
    /// `max_wait` if given), handle it, then let time pass in the core. Returns `false` once a
    /// shutdown signal was handled. Allocation-free in the steady state (tested).
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<bool> {
        let now = self.now();
        let mut timeout = self
            .node
            .poll_timeout()
            .map(|t| t.saturating_duration_since(now));
        if let Some(m) = max_wait {
            timeout = Some(timeout.map_or(m, |t| t.min(m)));
        }
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(true);
            }
            return Err(e);
        }
        // Copy the readiness out (into reused storage) so handlers may borrow `self`.
        self.ready.clear();
        for ev in self.events.iter() {
            self.ready.push((
                ev.token(),
                ev.is_writable(),
                ev.is_readable() || ev.is_read_closed(),
            ));
        }
        for i in 0..self.ready.len() {
            let (token, writable, readable) = self.ready[i];
            match token {
                LISTENER => self.accept_peers(),
                CONTROL => self.accept_clients(),
                LOCK => {
                    while let Some(result) = self.lock.try_recv() {
                        self.feed(Event::Lock(result));
                    }
                }
                SIGNALS => {
                    if let Some(sig) = self.signals.pending().next() {
                        log::info!("signal {sig}: shutting down");
                        self.shutdown();
                        return Ok(false);
                    }
                }
                Token(t) if t >= CLIENT_BASE => self.client_ready(t - CLIENT_BASE),
                Token(t) if t >= PEER_BASE => self.peer_ready(t - PEER_BASE, writable, readable),
                Token(_) => {}
            }
        }
        // Reads first, then time: a node that was itself stopped sees its peers' frames
        // before it counts their silence.
        self.feed(Event::Timeout);
        Ok(true)
    }

    fn shutdown(&mut self) {
        // Dropping the sockets closes them: peers see EOF and mark us dead at once.
        self.peers.clear();
        self.clients.clear();
        if let Err(e) = std::fs::remove_file(&self.socket_path) {
            log::warn!("cannot remove {}: {e}", self.socket_path.display());
        }
    }

    // --- peer connections ---

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

    /// The connection in `slot` ended on its own: drop it and tell the core.
    fn peer_gone(&mut self, slot: usize) {
        if let Some(conn) = self.remove_peer(slot) {
            let event = match conn.link {
                Link::Out(peer) if conn.connecting => Event::ConnectFailed { peer },
                link => Event::Closed { link },
            };
            self.feed(event);
        }
    }

    fn accept_peers(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let conn_id = ConnId(self.next_serial);
                    let conn = PeerConn::new(stream, Link::In(conn_id), false, self.next_serial);
                    self.next_serial += 1;
                    match self.insert_peer(conn, Interest::READABLE) {
                        Ok(slot) => {
                            self.in_slot.insert(conn_id, slot);
                            self.feed(Event::Accepted {
                                conn: conn_id,
                                addr: addr.ip(),
                            });
                        }
                        Err(e) => log::warn!("cannot register connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: log, and try again at the next readiness.
                    log::warn!("accept: {e}");
                    return;
                }
            }
        }
    }

    fn connect(&mut self, peer: Pnn, addr: SocketAddr, local: IpAddr) {
        if let Some(old) = self.out_slot[peer.index()] {
            self.remove_peer(old);
        }
        let stream = match crate::netio::connect_from(local, addr) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("connect to node {peer} at {addr}: {e}");
                self.failed_connects.push_back(peer);
                return;
            }
        };
        let conn = PeerConn::new(stream, Link::Out(peer), true, self.next_serial);
        self.next_serial += 1;
        match self.insert_peer(conn, Interest::READABLE | Interest::WRITABLE) {
            Ok(slot) => self.out_slot[peer.index()] = Some(slot),
            Err(e) => {
                log::warn!("cannot register connection to {addr}: {e}");
                self.failed_connects.push_back(peer);
            }
        }
    }

    fn peer_ready(&mut self, slot: usize, writable: bool, readable: bool) {
        let Some(conn) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
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

    fn read_peer(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
                return;
            };
            match conn.read() {
                ReadOutcome::Data => self.process_frames(slot),
                ReadOutcome::WouldBlock => return,
                ReadOutcome::Closed => {
                    self.peer_gone(slot);
                    return;
                }
            }
        }
    }

    /// Hands every complete frame in the connection's buffer to the core.
    fn process_frames(&mut self, slot: usize) {
        let Some(conn) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let (link, serial) = (conn.link, conn.serial);
        // Take the buffer out so the core can be fed from it while connections change.
        let mut buf = conn.take_read_buffer();
        let mut start = 0;
        let mut bad = false;
        loop {
            match pharos_core::wire::frame_len(buf.pending(start)) {
                Ok(Some(len)) => {
                    let now = self.now();
                    let frame = &buf.pending(start)[..len];
                    if let Err(e) = self.node.handle(now, Event::Frame { link, bytes: frame }) {
                        log::error!("core refused a frame: {e}");
                    }
                    start += len;
                    self.drain();
                    if !self.is_current(slot, serial) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::warn!("closing {link:?}: {e}");
                    bad = true;
                    break;
                }
            }
        }
        buf.consume(start);
        if bad {
            self.feed(Event::BadStream { link });
            // The core closes the link; make sure of it whatever it decided.
            if self.is_current(slot, serial) {
                self.remove_peer(slot);
                self.feed(Event::Closed { link });
            }
            return;
        }
        if let Some(conn) = self.peers.get_mut(slot).and_then(Option::as_mut) {
            conn.put_read_buffer(buf);
        }
    }

    fn is_current(&self, slot: usize, serial: u64) -> bool {
        self.peers
            .get(slot)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.serial == serial)
    }

    fn flush_peer(&mut self, slot: usize) {
        let Some(conn) = self.peers.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        match conn.flush() {
            Ok(pending) => {
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
            }
            Err(e) => {
                log::debug!("write to {:?}: {e}", conn.link);
                self.peer_gone(slot);
            }
        }
    }

    fn close_link(&mut self, link: Link) {
        let slot = match link {
            Link::Out(p) => self.out_slot.get(p.index()).copied().flatten(),
            Link::In(c) => self.in_slot.get(&c).copied(),
        };
        if let Some(slot) = slot {
            self.remove_peer(slot);
        }
    }

    /// Carries out everything the core asked for, until it has nothing more to say.
    fn drain(&mut self) {
        loop {
            while let Some(t) = self.node.poll_transmit() {
                let slot = self.out_slot.get(t.peer.index()).copied().flatten();
                if let Some(conn) = slot.and_then(|s| self.peers[s].as_mut()) {
                    if !conn.connecting {
                        t.encode(conn.write_buffer());
                    }
                }
            }
            let mut acted = false;
            while let Some(a) = self.node.poll_action() {
                acted = true;
                match a {
                    Action::Connect { peer, addr, local } => self.connect(peer, addr, local),
                    Action::Close { link } => self.close_link(link),
                    Action::Reply { client, response } => self.reply(client, &response),
                    Action::AcquireLock => self.lock.acquire(),
                    Action::ReleaseLock => self.lock.release(),
                    Action::ReleaseAllIps => log::info!("releasing all public IPs"),
                }
            }
            if let Some(peer) = self.failed_connects.pop_front() {
                let now = self.now();
                let _ = self.node.handle(now, Event::ConnectFailed { peer });
                continue;
            }
            if !acted {
                break;
            }
        }
        for i in 0..self.out_slot.len() {
            if let Some(slot) = self.out_slot[i] {
                if self.peers[slot]
                    .as_ref()
                    .is_some_and(|c| c.has_pending_write())
                {
                    self.flush_peer(slot);
                }
            }
        }
    }

    // --- control clients ---

    fn accept_clients(&mut self) {
        loop {
            match self.control.accept() {
                Ok((mut stream, _)) => {
                    let slot = self.free_clients.pop().unwrap_or_else(|| {
                        self.clients.push(None);
                        self.clients.len() - 1
                    });
                    let token = Token(CLIENT_BASE + slot);
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        log::warn!("control client: {e}");
                        self.free_clients.push(slot);
                        continue;
                    }
                    // The id carries a serial so a late reply never reaches a reused slot.
                    let id = ClientId((self.next_serial << 24) | slot as u64);
                    self.next_serial += 1;
                    self.clients[slot] = Some(ClientConn::new(stream, id));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("control accept: {e}");
                    return;
                }
            }
        }
    }

    fn remove_client(&mut self, slot: usize) {
        if let Some(mut c) = self.clients.get_mut(slot).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut c.stream);
            self.free_clients.push(slot);
        }
    }

    fn client_ready(&mut self, slot: usize) {
        let Some(client) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if client.replied() {
            self.flush_client(slot);
            return;
        }
        match client.read_line() {
            Ok(None) => {}
            Ok(Some(line)) => {
                let id = client.id;
                match Request::parse(&line) {
                    Ok(request) => self.feed(Event::Control {
                        client: id,
                        request,
                    }),
                    Err(e) => self.reply(id, &Response::Error(e.to_string())),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let id = client.id;
                self.reply(id, &Response::Error(e.to_string()));
            }
            Err(e) => {
                log::debug!("control client: {e}");
                self.remove_client(slot);
            }
        }
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
            Ok(false) | Err(_) => self.remove_client(slot),
        }
    }
}
