//! A non-blocking rtnetlink client for addresses: add, renew, remove, list.
//!
//! [`Netlink`] owns one `NETLINK_ROUTE` socket (register it with mio through `SourceFd`).
//! Each request is sent at once and gets a [`RequestId`] (its netlink sequence number); several may
//! be in flight. When the socket is readable, [`Netlink::receive`] matches the kernel's answers to
//! the requests by sequence number, and [`Netlink::poll_completion`] hands out exactly one
//! [`Completion`] per request, in the order they complete. The kernel handles an rtnetlink request
//! inside `sendto` (it only takes the rtnl mutex, it never waits for I/O), so the answer is already
//! queued when `sendto` returns; the loop still reads it on the next readable event, like any other.
//!
//! Requests, as `ip address` would send them:
//! - **add**: `RTM_NEWADDR` with `NLM_F_CREATE|NLM_F_EXCL` (an address already there is `EEXIST`:
//!   it is someone else's, never adopt it). IPv4 carries `IFA_LOCAL`, `IFA_ADDRESS` and, for
//!   prefixes up to /30, the broadcast address (what `ip address add ... brd +` and CTDB do). IPv6
//!   carries `IFA_F_NODAD`, so the address is usable at once instead of after duplicate address
//!   detection (about a second, and the kernel refuses to bind a tentative address). A lifetime
//!   becomes `IFA_CACHEINFO` with valid = preferred = the lifetime; the kernel removes the address
//!   when it runs out (IPv4 counts whole seconds: a kernel lease is at least 1 s).
//! - **renew**: `RTM_NEWADDR` with `NLM_F_REPLACE`, a new `IFA_CACHEINFO`, and `IFA_F_MCAUTOJOIN`.
//!   Why the last flag: *`NLM_F_REPLACE` without `NLM_F_CREATE` re-creates an address that has
//!   meanwhile expired or been removed* (checked on Linux 6.18, both families, with
//!   `ip address change` and with this module; the kernel comments "It would be best to check for
//!   !NLM_F_CREATE here but userspace already relies on not having to provide this"). A renewal
//!   that arrives late (the daemon was frozen just before `sendto`) would then resurrect an
//!   address that has moved to another node. With `IFA_F_MCAUTOJOIN` on a unicast address the
//!   kernel's *create* path fails (`EINVAL`: it tries to join the address as a multicast group),
//!   while its *modify* path of an existing address only updates the lifetime (IPv4 ignores the
//!   flag there; IPv6 records it, and `ip address` then shows `autojoin`, which is harmless: the
//!   leave on deletion is only done for multicast addresses). So a renewal updates an address
//!   that is there and can never create one: it answers [`Reply::Absent`] instead. The test
//!   `renew_never_resurrects` in `tests/hosting.rs` checks this kernel behaviour, both families.
//! - **remove**: `RTM_DELADDR` naming address, prefix length and interface exactly (an address with
//!   another prefix length is not touched). `EADDRNOTAVAIL`, `ENOENT` (and `ENODEV`: the interface
//!   is gone, and its addresses with it) are [`Reply::Absent`], "already gone".
//! - **list**: an `RTM_GETADDR` dump (strict checking on, filtered by interface).
//!
//! Errors carry the errno and a readable message: `strerror` plus the kernel's extended-ack text
//! when it gives one (`NETLINK_EXT_ACK`). If the kernel drops answers because the receive buffer
//! overflowed (`ENOBUFS` on receive), every request in flight completes with `ENOBUFS`: its outcome
//! is unknown and the caller should list the interface to find out.

use super::IfaceAddr;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope, CacheInfo,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// Netlink message header length.
const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// In an error message's flags: the echoed request was cut to its header (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// In an error message's flags: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// Extended-ack attribute: a NUL-terminated message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Receive buffer: bigger than any datagram the kernel builds (dumps use at most 32 KiB).
const RECV_BUF: usize = 64 * 1024;
/// Socket receive buffer asked for, so that many answers in flight are not dropped.
const SOCKET_RCVBUF: usize = 1024 * 1024;

/// How long the kernel keeps an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until removed.
    Permanent,
    /// Removed by the kernel after this many seconds unless renewed (valid = preferred).
    Seconds(NonZeroU32),
}

/// Names one request; it is the request's netlink sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u32);

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The address was added, renewed or removed.
    Done,
    /// Remove: the address was already gone. Renew: the address is not there (it expired or was
    /// removed) and was **not** re-created.
    Absent,
    /// List: the addresses of the interface.
    Addresses(Vec<AddressInfo>),
}

/// A failed request: the errno and a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetlinkError {
    /// The errno (positive), e.g. `libc::EEXIST`.
    pub errno: i32,
    /// `strerror` text, then the kernel's own explanation when it gave one.
    pub message: String,
}

impl NetlinkError {
    /// An error from an errno and, optionally, the kernel's extended-ack text.
    pub fn new(errno: i32, detail: Option<&str>) -> Self {
        let mut message = io::Error::from_raw_os_error(errno).to_string();
        if let Some(d) = detail.filter(|d| !d.is_empty()) {
            message.push_str(": ");
            message.push_str(d);
        }
        NetlinkError { errno, message }
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NetlinkError {}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Which request.
    pub id: RequestId,
    /// What came of it.
    pub result: Result<Reply, NetlinkError>,
}

/// One address as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressInfo {
    /// Interface, address and prefix length.
    pub addr: IfaceAddr,
    /// Seconds left before the kernel removes it; `None` for a permanent address.
    pub valid_lft: Option<u32>,
    /// Seconds left before it is deprecated; `None` for forever.
    pub preferred_lft: Option<u32>,
    /// `IFA_F_*` flags (e.g. `IFA_F_NODAD` = 0x2, `IFA_F_PERMANENT` = 0x80).
    pub flags: u32,
}

/// What a request in flight was.
enum Pending {
    Change,
    Renew,
    Remove,
    List {
        ifindex: u32,
        found: Vec<AddressInfo>,
    },
}

/// The non-blocking rtnetlink client (see the module docs).
pub struct Netlink {
    socket: Socket,
    next_seq: u32,
    pending: HashMap<u32, Pending>,
    done: VecDeque<Completion>,
    sbuf: Vec<u8>,
    rbuf: Vec<u8>,
}

impl Netlink {
    /// Opens a non-blocking rtnetlink socket in the current network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.set_non_blocking(true)?;
        // Best effort: without them errors lose the kernel's text, or dumps are not filtered in
        // the kernel (we filter again anyway), or fewer answers fit in flight.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_netlink_get_strict_chk(true);
        let _ = socket.set_rx_buf_sz(SOCKET_RCVBUF);
        Ok(Netlink {
            socket,
            next_seq: 1,
            pending: HashMap::new(),
            done: VecDeque::new(),
            sbuf: Vec::with_capacity(256),
            rbuf: vec![0; RECV_BUF],
        })
    }

    /// Adds `a` with `lifetime`. `EEXIST` when it is already there.
    pub fn add(&mut self, a: &IfaceAddr, lifetime: Lifetime) -> RequestId {
        let msg = address_message(a, lifetime, false);
        self.submit(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_EXCL,
            Pending::Change,
        )
    }

    /// Sets the lifetime of `a`, which must be there: [`Reply::Absent`] (and nothing created)
    /// when it is not. See the module docs for why this cannot resurrect a removed address.
    pub fn renew(&mut self, a: &IfaceAddr, lifetime: Lifetime) -> RequestId {
        let msg = address_message(a, lifetime, true);
        self.submit(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_REPLACE,
            Pending::Renew,
        )
    }

    /// Removes `a` (exactly that prefix length); [`Reply::Absent`] when it was already gone.
    pub fn remove(&mut self, a: &IfaceAddr) -> RequestId {
        let mut msg = AddressMessage::default();
        fill_header(&mut msg, a);
        push_address_attributes(&mut msg, a);
        self.submit(RouteNetlinkMessage::DelAddress(msg), 0, Pending::Remove)
    }

    /// Lists the addresses of interface `ifindex` (both families).
    pub fn list(&mut self, ifindex: u32) -> RequestId {
        let mut msg = AddressMessage::default();
        msg.header.index = ifindex;
        self.submit(
            RouteNetlinkMessage::GetAddress(msg),
            NLM_F_DUMP,
            Pending::List {
                ifindex,
                found: Vec::new(),
            },
        )
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The next answer, if any has arrived.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }

    /// Reads every answer queued on the socket (call when it is readable). An error only for a
    /// failure of the socket itself; the answers' own errors are completions.
    pub fn receive(&mut self) -> io::Result<()> {
        loop {
            // SAFETY: recv into our own buffer of rbuf.len() bytes; MSG_TRUNC makes it return
            // the datagram's real length, which is checked against the buffer below.
            let n = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    self.rbuf.as_mut_ptr().cast(),
                    self.rbuf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(()),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        self.fail_all(libc::ENOBUFS, "netlink answers were lost (receive buffer overflowed); list the interface to see what happened");
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            let n = n as usize;
            if n > self.rbuf.len() {
                self.fail_all(libc::EMSGSIZE, "a netlink answer was truncated");
                continue;
            }
            // Taken out for the walk, so that handling a message may borrow `self` mutably.
            let buf = std::mem::take(&mut self.rbuf);
            let mut off = 0;
            while let Some((msg, next)) = next_message(&buf[..n], off) {
                self.handle_message(msg);
                off = next;
            }
            self.rbuf = buf;
        }
    }

    /// Waits (blocking, with `poll(2)`) until nothing is in flight or `deadline` passes; what is
    /// still in flight then completes with `ETIMEDOUT`. For the guardian, which may block.
    pub fn wait(&mut self, deadline: Instant) -> io::Result<()> {
        while !self.pending.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.fail_all(libc::ETIMEDOUT, "no answer from the kernel in time");
                break;
            }
            let mut pfd = libc::pollfd {
                fd: self.socket.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: poll on one valid pollfd that lives across the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(e);
                }
            }
            self.receive()?;
        }
        Ok(())
    }

    fn submit(&mut self, msg: RouteNetlinkMessage, flags: u16, what: Pending) -> RequestId {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1).max(1);
        let id = RequestId(seq);
        let mut nl = NetlinkMessage::from(msg);
        nl.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        nl.header.sequence_number = seq;
        nl.finalize();
        self.sbuf.clear();
        self.sbuf.resize(nl.buffer_len(), 0);
        nl.serialize(&mut self.sbuf);
        self.pending.insert(seq, what);
        loop {
            // SAFETY: send our own initialised buffer on our socket.
            let rc = unsafe {
                libc::send(
                    self.socket.as_raw_fd(),
                    self.sbuf.as_ptr().cast(),
                    self.sbuf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if rc >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            self.pending.remove(&seq);
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            self.done.push_back(Completion {
                id,
                result: Err(NetlinkError::new(errno, Some("sending the request failed"))),
            });
            break;
        }
        id
    }

    fn fail_all(&mut self, errno: i32, why: &str) {
        let mut seqs: Vec<u32> = self.pending.keys().copied().collect();
        seqs.sort_unstable();
        for seq in seqs {
            self.pending.remove(&seq);
            self.done.push_back(Completion {
                id: RequestId(seq),
                result: Err(NetlinkError::new(errno, Some(why))),
            });
        }
    }

    fn complete(&mut self, seq: u32, result: Result<Reply, NetlinkError>) {
        self.pending.remove(&seq);
        self.done.push_back(Completion {
            id: RequestId(seq),
            result,
        });
    }

    fn handle_message(&mut self, msg: &[u8]) {
        let Some(raw) = RawHeader::parse(msg) else {
            return;
        };
        let Some(pending) = self.pending.get_mut(&raw.seq) else {
            return; // not ours (a late answer to a request we gave up on)
        };
        let parsed = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
            Ok(m) => m,
            Err(e) => {
                let err =
                    NetlinkError::new(libc::EBADMSG, Some(&format!("unreadable answer: {e}")));
                self.complete(raw.seq, Err(err));
                return;
            }
        };
        match parsed.payload {
            NetlinkPayload::Error(e) => {
                let result = match e.code {
                    None => Ok(match pending {
                        Pending::List { found, .. } => Reply::Addresses(std::mem::take(found)),
                        _ => Reply::Done,
                    }),
                    Some(code) => {
                        let errno = code.get().checked_neg().unwrap_or(libc::EIO);
                        error_reply(pending, errno, extack_message(msg).as_deref())
                    }
                };
                self.complete(raw.seq, result);
            }
            NetlinkPayload::Done(d) => {
                let result = if d.code < 0 {
                    Err(NetlinkError::new(
                        d.code.checked_neg().unwrap_or(libc::EIO),
                        None,
                    ))
                } else if raw.flags & NLM_F_DUMP_INTR != 0 {
                    Err(NetlinkError::new(
                        libc::EINTR,
                        Some("the address dump was interrupted by a change; list again"),
                    ))
                } else if let Pending::List { found, .. } = pending {
                    Ok(Reply::Addresses(std::mem::take(found)))
                } else {
                    Ok(Reply::Done)
                };
                self.complete(raw.seq, result);
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(m)) => {
                if let Pending::List { ifindex, found } = pending {
                    if m.header.index == *ifindex {
                        if let Some(info) = address_info(&m) {
                            found.push(info);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

impl AsRawFd for Netlink {
    /// Register this with mio as `SourceFd(&nl.as_raw_fd())`, for readability.
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// How an errno answers each kind of request.
fn error_reply(pending: &Pending, errno: i32, detail: Option<&str>) -> Result<Reply, NetlinkError> {
    match (pending, errno) {
        (Pending::Remove, libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV) => Ok(Reply::Absent),
        // The create path refused IFA_F_MCAUTOJOIN on a unicast address: the address was not
        // there (module docs). ENODEV: neither is the interface.
        (Pending::Renew, libc::EINVAL | libc::ENODEV) => Ok(Reply::Absent),
        _ => Err(NetlinkError::new(errno, detail)),
    }
}

/// The fixed fields of a netlink message header.
struct RawHeader {
    flags: u16,
    seq: u32,
}

impl RawHeader {
    fn parse(msg: &[u8]) -> Option<Self> {
        let flags = u16::from_ne_bytes(msg.get(6..8)?.try_into().ok()?);
        let seq = u32::from_ne_bytes(msg.get(8..12)?.try_into().ok()?);
        Some(RawHeader { flags, seq })
    }
}

/// The message starting at `off` in a received datagram and where the next one starts; `None` at
/// the end or on a length that does not fit (the rest of the datagram is then unreadable).
pub(crate) fn next_message(buf: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let len = u32::from_ne_bytes(buf.get(off..off + 4)?.try_into().ok()?) as usize;
    if len < NLMSG_HDRLEN {
        return None;
    }
    let msg = buf.get(off..off.checked_add(len)?)?;
    Some((msg, off + align4(len)))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The kernel's extended-ack text in an `NLMSG_ERROR` message, if any.
fn extack_message(msg: &[u8]) -> Option<String> {
    let raw = RawHeader::parse(msg)?;
    let kind = u16::from_ne_bytes(msg.get(4..6)?.try_into().ok()?);
    if kind != NLMSG_ERROR || raw.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // After our header: the errno (4 bytes) and the echoed request, whole or cut to its header.
    let echoed = NLMSG_HDRLEN + 4;
    let echoed_len = u32::from_ne_bytes(msg.get(echoed..echoed + 4)?.try_into().ok()?) as usize;
    let mut off = if raw.flags & NLM_F_CAPPED != 0 {
        echoed + NLMSG_HDRLEN
    } else {
        echoed + align4(echoed_len)
    };
    while let Some(hdr) = msg.get(off..off + 4) {
        let len = u16::from_ne_bytes([hdr[0], hdr[1]]) as usize;
        let kind = u16::from_ne_bytes([hdr[2], hdr[3]]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = msg.get(off + 4..off + len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|&b| b == 0).next().unwrap_or(&[]);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        off += align4(len);
    }
    None
}

fn fill_header(msg: &mut AddressMessage, a: &IfaceAddr) {
    msg.header.family = match a.addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.header.prefix_len = a.prefix_len;
    msg.header.index = a.ifindex;
}

fn push_address_attributes(msg: &mut AddressMessage, a: &IfaceAddr) {
    if a.addr.is_ipv4() {
        msg.attributes.push(AddressAttribute::Local(a.addr));
    }
    msg.attributes.push(AddressAttribute::Address(a.addr));
}

/// The `RTM_NEWADDR` body for an add (`renew` false) or a renewal.
fn address_message(a: &IfaceAddr, lifetime: Lifetime, renew: bool) -> AddressMessage {
    let mut msg = AddressMessage::default();
    fill_header(&mut msg, a);
    msg.header.scope = AddressScope::Universe;
    push_address_attributes(&mut msg, a);
    let mut flags = AddressFlags::empty();
    match a.addr {
        IpAddr::V4(v4) => {
            if let Some(brd) = broadcast(v4, a.prefix_len) {
                msg.attributes.push(AddressAttribute::Broadcast(brd));
            }
        }
        IpAddr::V6(_) => {
            flags |= AddressFlags::Nodad;
            msg.header.flags = AddressHeaderFlags::Nodad;
        }
    }
    if renew {
        flags |= AddressFlags::Mcautojoin;
    }
    if !flags.is_empty() {
        msg.attributes.push(AddressAttribute::Flags(flags));
    }
    if let Lifetime::Seconds(s) = lifetime {
        let mut ci = CacheInfo::default();
        ci.ifa_valid = s.get();
        ci.ifa_preferred = s.get();
        msg.attributes.push(AddressAttribute::CacheInfo(ci));
    }
    msg
}

/// The broadcast address `ip address add ... brd +` sets: host bits all ones, for /30 and
/// shorter (a /31 or /32 has none).
pub fn broadcast(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Addr> {
    if prefix_len > 30 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(prefix_len as u32).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(addr) | host_bits))
}

fn address_info(m: &AddressMessage) -> Option<AddressInfo> {
    let mut local = None;
    let mut address = None;
    let mut flags = m.header.flags.bits() as u32;
    let mut lifetimes = (None, None);
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => flags = f.bits(),
            AddressAttribute::CacheInfo(ci) => {
                let finite = |v: u32| (v != u32::MAX).then_some(v);
                lifetimes = (finite(ci.ifa_valid), finite(ci.ifa_preferred));
            }
            _ => {}
        }
    }
    // IPv4 names the address IFA_LOCAL (IFA_ADDRESS is the peer on point-to-point links).
    let addr = local.or(address)?;
    Some(AddressInfo {
        addr: IfaceAddr::new(m.header.index, addr, m.header.prefix_len)?,
        valid_lft: lifetimes.0,
        preferred_lft: lifetimes.1,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_like_ip_brd_plus() {
        let a = Ipv4Addr::new(10, 213, 9, 5);
        assert_eq!(broadcast(a, 24), Some(Ipv4Addr::new(10, 213, 9, 255)));
        assert_eq!(broadcast(a, 30), Some(Ipv4Addr::new(10, 213, 9, 7)));
        assert_eq!(broadcast(a, 0), Some(Ipv4Addr::BROADCAST));
        assert_eq!(broadcast(a, 31), None);
        assert_eq!(broadcast(a, 32), None);
    }

    #[test]
    fn message_walk_stops_on_bad_lengths() {
        let mut buf = vec![0u8; 40];
        buf[0..4].copy_from_slice(&20u32.to_ne_bytes());
        buf[20..24].copy_from_slice(&200u32.to_ne_bytes()); // runs past the end
        let (m, next) = next_message(&buf, 0).unwrap();
        assert_eq!((m.len(), next), (20, 20));
        assert!(next_message(&buf, next).is_none());
        buf[20..24].copy_from_slice(&3u32.to_ne_bytes()); // shorter than a header
        assert!(next_message(&buf, 20).is_none());
        assert!(next_message(&buf, 38).is_none());
        assert!(next_message(&[], 0).is_none());
    }

    #[test]
    fn extack_text_is_found_in_capped_and_whole_errors() {
        // header(16) errno(4) echoed header(16) then attribute MSG "nope\0"
        let mut m = vec![0u8; 16 + 4 + 16];
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m[6..8].copy_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        m[20..24].copy_from_slice(&60u32.to_ne_bytes()); // the echoed request was 60 bytes
        m.extend_from_slice(&9u16.to_ne_bytes());
        m.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        m.extend_from_slice(b"nope\0\0\0\0");
        assert_eq!(extack_message(&m).as_deref(), Some("nope"));
        // Not capped: the attributes follow the whole echoed request; here garbage, no panic.
        m[6..8].copy_from_slice(&NLM_F_ACK_TLVS.to_ne_bytes());
        assert_eq!(extack_message(&m), None);
        assert_eq!(extack_message(&m[..10]), None);
    }

    #[test]
    fn errors_read_as_text() {
        let e = NetlinkError::new(libc::EEXIST, Some("kernel says so"));
        assert!(e.message.starts_with("File exists"), "{e}");
        assert!(e.message.ends_with(": kernel says so"), "{e}");
        assert_eq!(NetlinkError::new(libc::EPERM, None).errno, libc::EPERM);
    }

    #[test]
    fn renew_carries_mcautojoin_and_add_does_not() {
        let a = IfaceAddr::new(3, "fd00::5".parse().unwrap(), 64).unwrap();
        let life = Lifetime::Seconds(NonZeroU32::new(5).unwrap());
        let flags = |m: &AddressMessage| {
            m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Flags(f) => Some(*f),
                _ => None,
            })
        };
        let add = address_message(&a, life, false);
        assert_eq!(flags(&add), Some(AddressFlags::Nodad));
        let renew = address_message(&a, life, true);
        assert_eq!(
            flags(&renew),
            Some(AddressFlags::Nodad | AddressFlags::Mcautojoin)
        );
        let v4 = IfaceAddr::new(3, "10.213.9.5".parse().unwrap(), 24).unwrap();
        let add4 = address_message(&v4, Lifetime::Permanent, false);
        assert_eq!(flags(&add4), None);
        assert!(add4
            .attributes
            .contains(&AddressAttribute::Broadcast(Ipv4Addr::new(10, 213, 9, 255))));
        assert!(!add4
            .attributes
            .iter()
            .any(|a| matches!(a, AddressAttribute::CacheInfo(_))));
    }
}
