//! Per-connection buffers and socket helpers for the event loop. Buffers are allocated when a
//! connection opens and reused for its whole life: the steady state does not allocate.

use mio::net::{TcpStream, UnixStream};
use mio::Interest;
use pharos_core::control::MAX_REQUEST_LEN;
use pharos_core::wire::MAX_FRAME_LEN;
use pharos_core::{ClientId, Link};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};

/// Initial read buffer size; it grows (up to a maximal frame) only for larger frames.
const INITIAL_READ: usize = 16 * 1024;
/// Unsent bytes beyond which a peer is considered stuck and its connection is closed.
pub const MAX_PENDING_WRITE: usize = 4 * 1024 * 1024;

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

/// A read buffer: bytes `[0, filled)` are received and not yet consumed.
#[derive(Debug, Default)]
pub struct ReadBuffer {
    buf: Vec<u8>,
    filled: usize,
}

impl ReadBuffer {
    /// Received bytes from `start` on.
    pub fn pending(&self, start: usize) -> &[u8] {
        self.buf.get(start..self.filled).unwrap_or(&[])
    }

    /// Drops the first `n` received bytes, keeping the rest at the front.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.filled);
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }
}

/// How a read went.
pub enum ReadOutcome {
    /// New bytes are in the buffer.
    Data,
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
    rbuf: ReadBuffer,
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
            rbuf: ReadBuffer {
                buf: vec![0; INITIAL_READ],
                filled: 0,
            },
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

    /// Reads what the socket has, growing the buffer only if a frame needs more room.
    pub fn read(&mut self) -> ReadOutcome {
        let b = &mut self.rbuf;
        if b.filled == b.buf.len() {
            if b.buf.len() >= MAX_FRAME_LEN + 4 {
                // Cannot happen with a valid stream: frame_len rejects longer frames first.
                return ReadOutcome::Closed;
            }
            let new_len = (b.buf.len() * 2).min(MAX_FRAME_LEN + 4);
            b.buf.resize(new_len, 0);
        }
        loop {
            match self.stream.read(&mut b.buf[b.filled..]) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    b.filled += n;
                    return ReadOutcome::Data;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Moves the read buffer out (no allocation), to be given back with
    /// [`PeerConn::put_read_buffer`].
    pub fn take_read_buffer(&mut self) -> ReadBuffer {
        std::mem::take(&mut self.rbuf)
    }

    /// Gives the read buffer back.
    pub fn put_read_buffer(&mut self, b: ReadBuffer) {
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

/// One control-socket client: one request line in, one JSON line out, then closed.
pub struct ClientConn {
    /// The socket.
    pub stream: UnixStream,
    /// The core's name for it.
    pub id: ClientId,
    rbuf: Vec<u8>,
    reply: Option<(Vec<u8>, usize)>,
}

impl ClientConn {
    /// Wraps an accepted client.
    pub fn new(stream: UnixStream, id: ClientId) -> Self {
        ClientConn {
            stream,
            id,
            rbuf: Vec::with_capacity(256),
            reply: None,
        }
    }

    /// Whether the reply has been set (the request was read).
    pub fn replied(&self) -> bool {
        self.reply.is_some()
    }

    /// Reads until a whole line is there. `Ok(None)`: not yet; `Err`: the client is gone or
    /// misbehaving (too long without a newline, not UTF-8).
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut chunk = [0u8; 512];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = self.rbuf.iter().position(|&b| b == b'\n') {
                        let line = String::from_utf8(self.rbuf[..pos].to_vec()).map_err(|_| {
                            io::Error::new(io::ErrorKind::InvalidData, "request is not UTF-8")
                        })?;
                        return Ok(Some(line));
                    }
                    if self.rbuf.len() > MAX_REQUEST_LEN {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request too long",
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Sets the reply (one JSON line).
    pub fn set_reply(&mut self, json: String) {
        let mut bytes = json.into_bytes();
        bytes.push(b'\n');
        self.reply = Some((bytes, 0));
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
