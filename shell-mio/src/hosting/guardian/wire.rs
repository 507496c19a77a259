//! The messages between the daemon and its guardian: one `SOCK_SEQPACKET` datagram each, so
//! there is no framing; fixed little-endian layouts; decoding never panics.
//!
//! Every message from the daemon starts with its type and the daemon's `CLOCK_MONOTONIC` time at
//! sending (nanoseconds). Both processes run on one host and read the same clock, so the guardian
//! measures the daemon's silence from when the daemon last *sent*, not from when the guardian
//! happened to read: a guardian that was itself delayed does not mistake old news for new.

use crate::hosting::IfaceAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest message either side sends (a delivery set must fit).
pub const MAX_MESSAGE: usize = 64 * 1024;

const HOLD: u8 = 1;
const RELEASED: u8 = 2;
const HEARTBEAT: u8 = 3;
const DELIVERIES: u8 = 4;
const PING: u8 = 5;
const READY: u8 = 101;
const PONG: u8 = 102;
const FENCED: u8 = 103;

/// Bytes to hand to one peer when fencing: connect from `local` to `peer`, write `bytes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Address to bind before connecting (the node address, so the peer knows who speaks).
    pub local: IpAddr,
    /// Where to connect.
    pub peer: SocketAddr,
    /// What to write (opaque here; the daemon passes one encoded frame).
    pub bytes: Vec<u8>,
}

/// Daemon to guardian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToGuardian {
    /// The daemon may hold this address from now on: sent *before* adding it.
    Hold(IfaceAddr),
    /// The daemon no longer holds it: sent *after* removing it (or after an add that failed).
    Released(IfaceAddr),
    /// Still alive.
    Heartbeat,
    /// Replaces the set of deliveries made when fencing.
    Deliveries(Vec<Delivery>),
    /// Asks for a [`FromGuardian::Pong`].
    Ping,
}

/// Why the guardian fenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceReason {
    /// No message from the daemon within the heartbeat timeout.
    Hung,
    /// The daemon's end of the socket closed (it exited or was killed).
    Gone,
}

/// What a fence did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceReport {
    /// Why.
    pub reason: FenceReason,
    /// Addresses removed.
    pub removed: u32,
    /// Addresses that were already gone.
    pub absent: u32,
    /// Addresses that could not be removed (then nothing is delivered).
    pub failed: u32,
    /// Deliveries written.
    pub delivered: u32,
    /// Deliveries that failed (connect refused or timed out, write failed).
    pub undelivered: u32,
}

/// Guardian to daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromGuardian {
    /// Set up and listening; the daemon may start adding addresses.
    Ready,
    /// Answer to [`ToGuardian::Ping`].
    Pong,
    /// The guardian removed the addresses (the daemon is still there: it was hung).
    Fenced(FenceReport),
}

/// A message that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub &'static str);

impl ToGuardian {
    /// Appends the encoding, stamped with `sent_ns` (`CLOCK_MONOTONIC`); `None` when a delivery
    /// set does not fit in [`MAX_MESSAGE`].
    pub fn encode(&self, sent_ns: u64, out: &mut Vec<u8>) -> Option<()> {
        let start = out.len();
        let kind = match self {
            ToGuardian::Hold(_) => HOLD,
            ToGuardian::Released(_) => RELEASED,
            ToGuardian::Heartbeat => HEARTBEAT,
            ToGuardian::Deliveries(_) => DELIVERIES,
            ToGuardian::Ping => PING,
        };
        out.push(kind);
        out.extend_from_slice(&sent_ns.to_le_bytes());
        match self {
            ToGuardian::Hold(a) | ToGuardian::Released(a) => {
                out.extend_from_slice(&a.ifindex.to_le_bytes());
                out.push(a.prefix_len);
                put_ip(out, a.addr);
            }
            ToGuardian::Heartbeat | ToGuardian::Ping => {}
            ToGuardian::Deliveries(ds) => {
                out.extend_from_slice(&u16::try_from(ds.len()).ok()?.to_le_bytes());
                for d in ds {
                    put_ip(out, d.local);
                    put_ip(out, d.peer.ip());
                    out.extend_from_slice(&d.peer.port().to_le_bytes());
                    out.extend_from_slice(&u16::try_from(d.bytes.len()).ok()?.to_le_bytes());
                    out.extend_from_slice(&d.bytes);
                }
            }
        }
        (out.len() - start <= MAX_MESSAGE).then_some(())
    }

    /// Reads one message and its sending time.
    pub fn decode(buf: &[u8]) -> Result<(u64, Self), WireError> {
        let mut r = Reader(buf);
        let kind = r.u8()?;
        let sent = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| SHORT)?);
        let msg = match kind {
            HOLD | RELEASED => {
                let ifindex = r.u32()?;
                let prefix_len = r.u8()?;
                let addr = r.ip()?;
                let a = IfaceAddr::new(ifindex, addr, prefix_len)
                    .ok_or(WireError("prefix length too long"))?;
                if kind == HOLD {
                    ToGuardian::Hold(a)
                } else {
                    ToGuardian::Released(a)
                }
            }
            HEARTBEAT => ToGuardian::Heartbeat,
            PING => ToGuardian::Ping,
            DELIVERIES => {
                let n = r.u16()?;
                let mut ds = Vec::with_capacity(n.min(256) as usize);
                for _ in 0..n {
                    let local = r.ip()?;
                    let ip = r.ip()?;
                    let port = r.u16()?;
                    let len = r.u16()? as usize;
                    let bytes = r.take(len)?.to_vec();
                    ds.push(Delivery {
                        local,
                        peer: SocketAddr::new(ip, port),
                        bytes,
                    });
                }
                ToGuardian::Deliveries(ds)
            }
            _ => return Err(WireError("unknown message type")),
        };
        Ok((sent, msg))
    }
}

impl FromGuardian {
    /// Appends the encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FromGuardian::Ready => out.push(READY),
            FromGuardian::Pong => out.push(PONG),
            FromGuardian::Fenced(f) => {
                out.push(FENCED);
                out.push(match f.reason {
                    FenceReason::Hung => 1,
                    FenceReason::Gone => 2,
                });
                for n in [f.removed, f.absent, f.failed, f.delivered, f.undelivered] {
                    out.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
    }

    /// Reads one message.
    pub fn decode(buf: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader(buf);
        match r.u8()? {
            READY => Ok(FromGuardian::Ready),
            PONG => Ok(FromGuardian::Pong),
            FENCED => {
                let reason = match r.u8()? {
                    1 => FenceReason::Hung,
                    2 => FenceReason::Gone,
                    _ => return Err(WireError("unknown fence reason")),
                };
                Ok(FromGuardian::Fenced(FenceReport {
                    reason,
                    removed: r.u32()?,
                    absent: r.u32()?,
                    failed: r.u32()?,
                    delivered: r.u32()?,
                    undelivered: r.u32()?,
                }))
            }
            _ => Err(WireError("unknown message type")),
        }
    }
}

const SHORT: WireError = WireError("message too short");

fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.0.len() < n {
            return Err(SHORT);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| SHORT)?,
        ))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| SHORT)?,
        ))
    }

    fn ip(&mut self) -> Result<IpAddr, WireError> {
        match self.u8()? {
            4 => {
                let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| SHORT)?;
                Ok(IpAddr::V4(Ipv4Addr::from(b)))
            }
            6 => {
                let b: [u8; 16] = self.take(16)?.try_into().map_err(|_| SHORT)?;
                Ok(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => Err(WireError("unknown address family")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: ToGuardian) {
        let mut buf = Vec::new();
        m.encode(42, &mut buf).unwrap();
        assert_eq!(ToGuardian::decode(&buf), Ok((42, m.clone())));
        // Every truncation is an error, never a panic.
        for n in 0..buf.len() {
            assert!(ToGuardian::decode(&buf[..n]).is_err(), "{m:?} cut at {n}");
        }
    }

    #[test]
    fn daemon_messages_roundtrip() {
        let v4 = IfaceAddr::new(3, "10.213.1.10".parse().unwrap(), 24).unwrap();
        let v6 = IfaceAddr::new(7, "fd00:213::10".parse().unwrap(), 64).unwrap();
        roundtrip(ToGuardian::Hold(v4));
        roundtrip(ToGuardian::Released(v6));
        roundtrip(ToGuardian::Heartbeat);
        roundtrip(ToGuardian::Ping);
        roundtrip(ToGuardian::Deliveries(vec![]));
        roundtrip(ToGuardian::Deliveries(vec![
            Delivery {
                local: "10.213.1.1".parse().unwrap(),
                peer: "10.213.1.2:4379".parse().unwrap(),
                bytes: b"released".to_vec(),
            },
            Delivery {
                local: "fd00:213::1".parse().unwrap(),
                peer: "[fd00:213::2]:4379".parse().unwrap(),
                bytes: vec![],
            },
        ]));
    }

    #[test]
    fn guardian_messages_roundtrip() {
        let f = FromGuardian::Fenced(FenceReport {
            reason: FenceReason::Hung,
            removed: 1,
            absent: 2,
            failed: 3,
            delivered: 4,
            undelivered: 5,
        });
        for m in [FromGuardian::Ready, FromGuardian::Pong, f] {
            let mut buf = Vec::new();
            m.encode(&mut buf);
            assert_eq!(FromGuardian::decode(&buf), Ok(m));
            for n in 0..buf.len() {
                assert!(FromGuardian::decode(&buf[..n]).is_err());
            }
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(ToGuardian::decode(&[99; 20]).is_err());
        // Hold with prefix length 33 for IPv4.
        let mut buf = vec![HOLD];
        buf.extend_from_slice(&0u64.to_le_bytes());
        buf.extend_from_slice(&1u32.to_le_bytes());
        buf.push(33);
        buf.extend_from_slice(&[4, 10, 0, 0, 1]);
        assert_eq!(
            ToGuardian::decode(&buf),
            Err(WireError("prefix length too long"))
        );
        assert!(FromGuardian::decode(&[FENCED, 9]).is_err());
    }

    #[test]
    fn oversized_delivery_sets_are_refused() {
        let d = Delivery {
            local: "10.0.0.1".parse().unwrap(),
            peer: "10.0.0.2:1".parse().unwrap(),
            bytes: vec![0; 40_000],
        };
        let mut buf = Vec::new();
        assert!(ToGuardian::Deliveries(vec![d.clone()])
            .encode(0, &mut buf)
            .is_some());
        buf.clear();
        assert!(ToGuardian::Deliveries(vec![d.clone(), d])
            .encode(0, &mut buf)
            .is_none());
    }
}
