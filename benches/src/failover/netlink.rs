//! The one netlink request the sampler needs: dump the addresses of a namespace (RTM_GETADDR),
//! on a NETLINK_ROUTE socket made inside that namespace. Hand-written (a few dozen lines) so the
//! harness needs no netlink crates; the parser checks every length and never panics.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDR: usize = 16;
const IFADDRMSG: usize = 8;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// An RTM_GETADDR dump request for every address family.
pub fn dump_request(seq: u32) -> [u8; NLMSG_HDR + IFADDRMSG] {
    let mut b = [0u8; NLMSG_HDR + IFADDRMSG];
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    b[0..4].copy_from_slice(&((NLMSG_HDR + IFADDRMSG) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&RTM_GETADDR.to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0: the kernel; ifaddrmsg all zero: AF_UNSPEC, every interface.
    b
}

/// What one received buffer of a dump said.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// More messages follow.
    More,
    /// NLMSG_DONE: the dump is complete.
    Done,
}

/// A reply that cannot be a well-formed dump.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    /// A length field points past the buffer or below the header.
    Truncated,
    /// The kernel answered with an error (errno).
    Kernel(i32),
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Parses one buffer of a dump reply with sequence number `seq`, appending every address
/// (IFA_LOCAL, else IFA_ADDRESS) to `out`. Messages of other sequence numbers are skipped.
pub fn parse_dump(buf: &[u8], seq: u32, out: &mut Vec<IpAddr>) -> Result<Chunk, ParseError> {
    let mut at = 0;
    while at + NLMSG_HDR <= buf.len() {
        let len = u32_at(buf, at).ok_or(ParseError::Truncated)? as usize;
        let kind = u16_at(buf, at + 4).ok_or(ParseError::Truncated)?;
        let mseq = u32_at(buf, at + 8).ok_or(ParseError::Truncated)?;
        if len < NLMSG_HDR || at + len > buf.len() {
            return Err(ParseError::Truncated);
        }
        let body = &buf[at + NLMSG_HDR..at + len];
        if mseq == seq {
            match kind {
                NLMSG_DONE => return Ok(Chunk::Done),
                NLMSG_ERROR => {
                    let code = u32_at(body, 0).ok_or(ParseError::Truncated)? as i32;
                    return Err(ParseError::Kernel(-code));
                }
                RTM_NEWADDR => {
                    if let Some(a) = address(body)? {
                        out.push(a);
                    }
                }
                _ => {}
            }
        }
        at += align4(len);
    }
    Ok(Chunk::More)
}

/// The address of one RTM_NEWADDR body (ifaddrmsg + attributes).
fn address(body: &[u8]) -> Result<Option<IpAddr>, ParseError> {
    let family = *body.first().ok_or(ParseError::Truncated)?;
    if body.len() < IFADDRMSG {
        return Err(ParseError::Truncated);
    }
    let (mut local, mut addr) = (None, None);
    let mut at = IFADDRMSG;
    while at + 4 <= body.len() {
        let len = u16_at(body, at).ok_or(ParseError::Truncated)? as usize;
        let kind = u16_at(body, at + 2).ok_or(ParseError::Truncated)?;
        if len < 4 || at + len > body.len() {
            return Err(ParseError::Truncated);
        }
        let data = &body[at + 4..at + len];
        let ip = match (family as i32, data.len()) {
            (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (libc::AF_INET6, 16) => {
                let o: [u8; 16] = data.try_into().map_err(|_| ParseError::Truncated)?;
                Some(IpAddr::V6(Ipv6Addr::from(o)))
            }
            _ => None,
        };
        match kind {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => addr = ip,
            _ => {}
        }
        at += align4(len);
    }
    Ok(local.or(addr))
}

/// A NETLINK_ROUTE socket, in the namespace of the thread that made it.
pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl RouteSocket {
    /// Opens the socket (with a 1 s receive timeout, so a stuck kernel never hangs the sampler).
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket(2) with constant arguments; the result is checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setsockopt reads one timeval from a valid pointer of the given size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RouteSocket {
            fd,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Every address configured in the socket's namespace (appended to `out`).
    pub fn addresses(&mut self, out: &mut Vec<IpAddr>) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let req = dump_request(self.seq);
        // SAFETY: send(2) reads `req.len()` bytes from a valid buffer.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            // SAFETY: recv(2) writes at most `buf.len()` bytes into our buffer.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            match parse_dump(&self.buf[..n as usize], self.seq, out) {
                Ok(Chunk::Done) => return Ok(()),
                Ok(Chunk::More) if n > 0 => {}
                Ok(Chunk::More) => return Err(io::Error::other("netlink: empty reply")),
                Err(e) => return Err(io::Error::other(format!("netlink: {e:?}"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        while a.len() % 4 != 0 {
            a.push(0);
        }
        a
    }

    fn v4(local: [u8; 4], address: [u8; 4]) -> Vec<u8> {
        let mut b = vec![libc::AF_INET as u8, 24, 0, 0, 2, 0, 0, 0];
        b.extend(attr(IFA_ADDRESS, &address));
        b.extend(attr(3, b"eth0\0"));
        b.extend(attr(IFA_LOCAL, &local));
        b
    }

    #[test]
    fn reads_local_addresses_until_done() {
        let mut buf = msg(RTM_NEWADDR, 7, &v4([10, 0, 0, 1], [10, 0, 0, 9]));
        let mut v6 = vec![libc::AF_INET6 as u8, 64, 0, 0, 2, 0, 0, 0];
        v6.extend(attr(IFA_ADDRESS, &Ipv6Addr::LOCALHOST.octets()));
        buf.extend(msg(RTM_NEWADDR, 7, &v6));
        buf.extend(msg(RTM_NEWADDR, 6, &v4([1, 1, 1, 1], [1, 1, 1, 1]))); // other request
        let mut out = Vec::new();
        assert_eq!(parse_dump(&buf, 7, &mut out), Ok(Chunk::More));
        assert_eq!(
            out,
            vec![IpAddr::from([10, 0, 0, 1]), IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
        let done = msg(NLMSG_DONE, 7, &[0, 0, 0, 0]);
        assert_eq!(parse_dump(&done, 7, &mut out), Ok(Chunk::Done));
    }

    #[test]
    fn kernel_error_is_reported() {
        let err = msg(NLMSG_ERROR, 1, &(-1i32).to_ne_bytes());
        assert_eq!(
            parse_dump(&err, 1, &mut Vec::new()),
            Err(ParseError::Kernel(1))
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_ignored_never_a_panic() {
        let mut full = msg(RTM_NEWADDR, 3, &v4([10, 0, 0, 1], [10, 0, 0, 1]));
        full.extend(msg(NLMSG_DONE, 3, &[0; 4]));
        for cut in 0..full.len() {
            let _ = parse_dump(&full[..cut], 3, &mut Vec::new());
        }
        // Corrupt every byte in turn: no panic either.
        for i in 0..full.len() {
            let mut b = full.clone();
            b[i] ^= 0xff;
            let _ = parse_dump(&b, 3, &mut Vec::new());
        }
        // A message length beyond the buffer is Truncated.
        let mut b = full.clone();
        b[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(
            parse_dump(&b, 3, &mut Vec::new()),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn request_is_a_dump() {
        let r = dump_request(5);
        assert_eq!(u32_at(&r, 0), Some(24));
        assert_eq!(u16_at(&r, 4), Some(RTM_GETADDR));
        assert_eq!(u32_at(&r, 8), Some(5));
    }
}
