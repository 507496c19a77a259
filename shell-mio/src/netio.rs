//! Per-connection buffers and socket helpers for the event loop. Buffers are allocated when a
//! connection opens and reused for its whole life: the steady state does not allocate.

use mio::net::{TcpStream, UnixStream};
use mio::Interest;
use pharos_core::control::{Response, MAX_REQUEST_LEN};
use pharos_core::drive::FrameBuffer;
use pharos_core::{ClientId, Link};
use pharos_host::line::{LineError, LineFramer};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Initial read buffer size; it grows (up to a maximal frame) only for larger frames.
const INITIAL_READ: usize = 16 * 1024;
/// Unsent bytes beyond which a peer is considered stuck and its connection is closed.
pub const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;
/// A control client must send its request and read the answer within this time of being
/// accepted; an idle or slow one is closed (with an error line, if it can take one).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a non-blocking TCP connection to `to` from our node address `from` (so the peer
/// recognises us by source address, as CTDB does).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let domain = Domain::for_address(to);
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&SockAddr::from(SocketAddr::new(from, 0)))?;
    match socket.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// How a read went.
pub enum ReadOutcome {
    /// This many new bytes are in the buffer.
    Data(usize),
    /// Nothing more for now.
    WouldBlock,
    /// EOF or an error: the connection is over.
    Closed,
}

/// One TCP connection to or from a peer.
pub struct PeerConn {
    /// The socket.
    pub stream: TcpStream,
    /// Which link it is for the core.
    pub link: Link,
    /// An outgoing connect not yet finished.
    pub connecting: bool,
    /// Unique per connection, to detect slot reuse.
    pub serial: u64,
    /// Current registration.
    pub interest: Interest,
    /// Left with unread bytes when its read budget for the turn ran out: the loop reads it
    /// again next turn without waiting for new readiness (mio is edge-triggered).
    pub backlogged: bool,
    rbuf: FrameBuffer,
    wbuf: Vec<u8>,
    wpos: usize,
}

impl PeerConn {
    /// Wraps a socket.
    pub fn new(stream: TcpStream, link: Link, connecting: bool, serial: u64) -> Self {
        PeerConn {
            stream,
            link,
            connecting,
            serial,
            interest: if connecting {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            },
            backlogged: false,
            rbuf: FrameBuffer::with_capacity(INITIAL_READ),
            wbuf: Vec::with_capacity(INITIAL_READ),
            wpos: 0,
        }
    }

    /// After a writable event on a connecting socket: `Ok(true)` connected, `Ok(false)` not
    /// yet, `Err` failed.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads at most `limit` bytes (at least 1) of what the socket has into the frame
    /// buffer, which grows only if a frame needs more room.
    pub fn read(&mut self, limit: usize) -> ReadOutcome {
        let spare = self.rbuf.spare();
        if spare.is_empty() {
            // Cannot happen with a valid stream: frame_len rejects longer frames first.
            return ReadOutcome::Closed;
        }
        let end = spare.len().min(limit.max(1));
        loop {
            match self.stream.read(&mut self.rbuf.spare()[..end]) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    self.rbuf.filled(n);
                    return ReadOutcome::Data(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Moves the read buffer out (no allocation), to be given back with
    /// [`PeerConn::put_read_buffer`].
    pub fn take_read_buffer(&mut self) -> FrameBuffer {
        std::mem::take(&mut self.rbuf)
    }

    /// Gives the read buffer back.
    pub fn put_read_buffer(&mut self, b: FrameBuffer) {
        self.rbuf = b;
    }

    /// The buffer to encode frames into.
    pub fn write_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.wbuf
    }

    /// Whether bytes wait to be written.
    pub fn has_pending_write(&self) -> bool {
        self.wpos < self.wbuf.len()
    }

    /// Writes what the socket takes. `Ok(true)` if bytes remain (wait for writable).
    pub fn flush(&mut self) -> io::Result<bool> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            return Ok(false);
        }
        if self.wbuf.len() - self.wpos > MAX_PENDING_WRITE {
            return Err(io::Error::other("peer is not reading (write queue full)"));
        }
        Ok(true)
    }
}

/// What a control client has sent so far.
pub enum ClientRead {
    /// Not a whole request yet.
    Pending,
    /// The request line (ended by a newline, or by the client's half-close).
    Line(String),
    /// Bytes that cannot be a request: answer with this error.
    Bad(LineError),
    /// The client left without a request, or the socket failed.
    Gone,
}

/// One control-socket client: one request line in, one JSON line out, then closed.
pub struct ClientConn {
    /// The socket.
    pub stream: UnixStream,
    /// The core's name for it.
    pub id: ClientId,
    /// By when the request must be in and the answer out ([`CLIENT_TIMEOUT`] after accept).
    pub deadline: Instant,
    request: LineFramer,
    reply: Option<(Vec<u8>, usize)>,
}

impl ClientConn {
    /// Wraps a client accepted at `now`.
    pub fn new(stream: UnixStream, id: ClientId, now: Instant) -> Self {
        ClientConn {
            stream,
            id,
            deadline: now + CLIENT_TIMEOUT,
            request: LineFramer::new(MAX_REQUEST_LEN),
            reply: None,
        }
    }

    /// Whether the reply has been set (the request was read).
    pub fn replied(&self) -> bool {
        self.reply.is_some()
    }

    /// Reads what the client sent, until a whole request line is there or the socket is empty.
    pub fn read_request(&mut self) -> ClientRead {
        let mut chunk = [0u8; 512];
        loop {
            let framed = match self.stream.read(&mut chunk) {
                Ok(0) => self.request.finish().map(|l| l.map(str::to_string)),
                Ok(n) => self
                    .request
                    .push(&chunk[..n])
                    .map(|l| l.map(str::to_string)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ClientRead::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ClientRead::Gone,
            };
            match framed {
                Ok(Some(line)) => return ClientRead::Line(line),
                Err(e) => return ClientRead::Bad(e),
                // End of input with nothing (more) to answer.
                Ok(None) if self.request.is_done() => return ClientRead::Gone,
                Ok(None) => {}
            }
        }
    }

    /// Sets the reply (one JSON line).
    pub fn set_reply(&mut self, json: String) {
        let mut bytes = json.into_bytes();
        bytes.push(b'\n');
        self.reply = Some((bytes, 0));
    }

    /// Closes the connection with an error line (a timeout, no room), unless a reply was
    /// already (partly) written.
    pub fn close_with(mut self, error: &str) {
        if self.reply.is_none() {
            last_word(&mut self.stream, error);
        }
    }
    /// Writes the reply. `Ok(true)`: more to write; `Ok(false)`: done.
    pub fn flush(&mut self) -> io::Result<bool> {
        let Some((bytes, pos)) = self.reply.as_mut() else {
            return Ok(true);
        };
        while *pos < bytes.len() {
            match self.stream.write(&bytes[*pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => *pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

/// Writes `error` as the protocol's error line to a client about to be dropped, if the socket
/// takes it at once (never blocks; a fresh connection's buffer is empty, so it usually does).
pub fn last_word(stream: &mut UnixStream, error: &str) {
    let line = format!(
        "{}\n",
        pharos_host::schema::encode(&Response::Error(error.to_string()))
    );
    let _ = stream.write(line.as_bytes());
}
