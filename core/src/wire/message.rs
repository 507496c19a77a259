//! Operations and their payloads. Every message is `Copy`: decoding and encoding never
//! allocate. Two messages carry a list of entries after their fixed part ([`Op::IpList`],
//! [`Op::IpReallocated`]); the message holds the count, and the entries stay in the frame
//! ([`super::entries`] reads them, [`super::encode_with`] writes them).

use super::{u32_at as read_u32, u64_at as read_u64, WireError};
use crate::types::RecoveryMode;
use crate::types::{NodeFlags, NodeSet, Pnn};
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Frame operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Op {
    /// First frame on a new connection: who the sender is.
    Hello = 1,
    /// Periodic sign of life, carrying the sender's view of the cluster.
    Keepalive = 2,
    /// The recovery master starts a recovery into the header's generation.
    RecoveryStart = 3,
    /// A node entered recovery mode for the header's generation.
    RecoveryAck = 4,
    /// The recovery master ends the recovery: new generation (header) and vnnmap.
    RecoveryCommit = 5,
    /// The cluster was reconfigured (after a recovery and takeover run).
    Reconfigured = 6,
    /// The sender is shutting down cleanly: what it hosted is released.
    Goodbye = 7,
    /// The public addresses the sender can host, and which it hosts (entries follow).
    IpList = 8,
    /// The recovery master asks the receiver to host an address.
    TakeIp = 9,
    /// The recovery master asks the receiver to give an address up.
    ReleaseIp = 10,
    /// A node answers a [`Op::TakeIp`] or [`Op::ReleaseIp`].
    IpDone = 11,
    /// A takeover run ended: who hosts what (entries follow).
    IpReallocated = 12,
    /// A node asks the recovery master for a takeover run.
    TakeoverRequest = 13,
    /// Move an address to a node (`pharos moveip`), to the recovery master.
    MoveIp = 14,
    /// Re-read the public addresses file (`pharos reloadips` on every node).
    ReloadIps = 15,
    /// A node's guardian removed every address of the node's life named in the payload
    /// (the daemon died or hung). Sent on a fresh connection, without a Hello.
    Fenced = 16,
}

impl Op {
    /// The operation with this wire number.
    pub fn from_u16(v: u16) -> Option<Op> {
        Some(match v {
            1 => Op::Hello,
            2 => Op::Keepalive,
            3 => Op::RecoveryStart,
            4 => Op::RecoveryAck,
            5 => Op::RecoveryCommit,
            6 => Op::Reconfigured,
            7 => Op::Goodbye,
            8 => Op::IpList,
            9 => Op::TakeIp,
            10 => Op::ReleaseIp,
            11 => Op::IpDone,
            12 => Op::IpReallocated,
            13 => Op::TakeoverRequest,
            14 => Op::MoveIp,
            15 => Op::ReloadIps,
            16 => Op::Fenced,
            _ => return None,
        })
    }

    /// Whether frames of this operation belong to one generation: a frame whose header
    /// generation is older than the receiver's is refused.
    pub fn generation_scoped(self) -> bool {
        matches!(
            self,
            Op::RecoveryStart
                | Op::RecoveryAck
                | Op::RecoveryCommit
                | Op::Reconfigured
                | Op::TakeIp
                | Op::ReleaseIp
                | Op::IpDone
                | Op::IpReallocated
        )
    }

    /// Whether entries follow the fixed payload.
    pub fn has_entries(self) -> bool {
        matches!(self, Op::IpList | Op::IpReallocated)
    }
}

/// Capability bit: the node may become recovery master.
pub const CAP_RECMASTER: u32 = 1;

/// What a node promises about its own keepalives: one at least every `interval_ms`, and how
/// many intervals its peers should wait before they call it dead. Peers judge its silence by
/// this promise, not by their own tunables, so a node whose KeepaliveInterval differs is never
/// declared dead for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The sender's KeepaliveInterval in milliseconds.
    pub interval_ms: u32,
    /// The sender's KeepaliveLimit.
    pub limit: u32,
}

impl Liveness {
    /// Encoded size.
    pub const BYTES: usize = 8;

    fn read(p: &[u8], at: usize) -> Liveness {
        Liveness {
            interval_ms: read_u32(p, at),
            limit: read_u32(p, at + 4),
        }
    }

    fn write(&self, put: &mut dyn FnMut(&[u8])) {
        put(&self.interval_ms.to_le_bytes());
        put(&self.limit.to_le_bytes());
    }
}

/// The payload of a [`Op::Hello`] frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Random per daemon start: tells a restarted peer from a reconnected one.
    pub incarnation: u64,
    /// The sender's administrative flags.
    pub flags: NodeFlags,
    /// Capability bits ([`CAP_RECMASTER`]).
    pub capabilities: u32,
    /// When the sender started, on a scale every node shares (the election's "longest
    /// running" compares these).
    pub start_stamp: u64,
    /// The sender's keepalive promise.
    pub liveness: Liveness,
}

/// The payload of a [`Op::Keepalive`] frame: the sender's view, so that every node can check
/// agreement without asking. A keepalive naming its own sender as recmaster is that node's
/// claim to the role; it is pushed at once whenever the view changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// The sender's administrative flags.
    pub flags: NodeFlags,
    /// The recovery master the sender follows ([`Pnn::NONE`] if none).
    pub recmaster: Pnn,
    /// The sender's recovery mode.
    pub recovery_mode: RecoveryMode,
    /// The sender's keepalive promise (it may change at run time with `setvar`).
    pub liveness: Liveness,
    /// The sender's clock when it sent this (nanoseconds of its own origin): the receiver
    /// echoes it back.
    pub stamp: u64,
    /// The receiver's latest `stamp` the sender heard, 0 if none or if the sender does not
    /// count the receiver among the members of its generation. A node whose stamps a majority
    /// echoes holds a hosting lease (see the node's health layer).
    pub echo: u64,
}

/// A public address with its prefix length, as frames carry it (20 bytes: family 4 or 6,
/// prefix, two reserved bytes, 16 address bytes with an IPv4 address in the first 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WireIp {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

impl WireIp {
    /// Encoded size.
    pub const BYTES: usize = 20;

    fn read(p: &[u8], at: usize) -> Option<WireIp> {
        let b = p.get(at..at + Self::BYTES)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[4..20]);
        // One encoding per address: the reserved bytes and an IPv4 address's unused twelve
        // are zero, so a frame re-encodes to the bytes it came in.
        if b[2..4] != [0, 0] || (b[0] == 4 && a[4..].iter().any(|&x| x != 0)) {
            return None;
        }
        let (addr, max) = match b[0] {
            4 => (IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), 32),
            6 => (IpAddr::V6(Ipv6Addr::from(a)), 128),
            _ => return None,
        };
        (b[1] <= max).then_some(WireIp { addr, prefix: b[1] })
    }

    fn write(&self, put: &mut dyn FnMut(&[u8])) {
        let mut a = [0u8; 16];
        let family = match self.addr {
            IpAddr::V4(v4) => {
                a[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                a = v6.octets();
                6
            }
        };
        put(&[family, self.prefix, 0, 0]);
        put(&a);
    }
}

/// Entry flag of [`Op::IpList`]: the sender can host the address now (an interface is up).
pub const IP_AVAILABLE: u32 = 1;
/// Entry flag of [`Op::IpList`]: the sender hosts the address.
pub const IP_HELD: u32 = 2;

/// One entry of a list: an address and a 32-bit value (the flags of an [`Op::IpList`]
/// entry, the holder's PNN of an [`Op::IpReallocated`] one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The address.
    pub ip: WireIp,
    /// Flags or PNN.
    pub value: u32,
}

impl Entry {
    /// Encoded size.
    pub const BYTES: usize = WireIp::BYTES + 4;

    /// Reads entry `i` of an entry block.
    pub(super) fn read(p: &[u8], i: usize) -> Option<Entry> {
        let at = i.checked_mul(Self::BYTES)?;
        Some(Entry {
            ip: WireIp::read(p, at)?,
            value: read_u32(p, at + WireIp::BYTES),
        })
    }

    /// Appends the entry.
    pub fn write(&self, out: &mut Vec<u8>) {
        self.ip.write(&mut |b| out.extend_from_slice(b));
        out.extend_from_slice(&self.value.to_le_bytes());
    }
}

/// Which request an [`Op::IpDone`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpOp {
    /// A [`Op::TakeIp`].
    Take,
    /// A [`Op::ReleaseIp`].
    Release,
}

/// A decoded frame payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Keepalive`].
    Keepalive(Keepalive),
    /// Enter recovery mode for the header's generation, and acknowledge. `members` will be the
    /// vnnmap; from now on the receiver echoes only their stamps.
    RecoveryStart {
        /// The nodes taking part.
        members: NodeSet,
    },
    /// Recovery mode entered for the header's generation.
    RecoveryAck,
    /// Take the header's generation and this vnnmap; leave recovery mode.
    RecoveryCommit {
        /// The active nodes of the new generation.
        vnnmap: NodeSet,
    },
    /// The recovery and takeover run of the header's generation are complete.
    Reconfigured,
    /// The sender shuts down: it released its public addresses and closes its connections.
    Goodbye,
    /// The sender's public addresses, with [`IP_AVAILABLE`] and [`IP_HELD`] flags.
    IpList {
        /// How many entries follow.
        entries: u32,
    },
    /// Host this address (the recovery master, after its last holder released it).
    TakeIp {
        /// The address.
        ip: WireIp,
    },
    /// Give this address up.
    ReleaseIp {
        /// The address.
        ip: WireIp,
    },
    /// The answer to a take or a release.
    IpDone {
        /// The address.
        ip: WireIp,
        /// What was asked.
        op: IpOp,
        /// Whether it was done.
        ok: bool,
    },
    /// Who hosts what after a takeover run: one entry per address with the holder's PNN
    /// ([`Pnn::NONE`]: nobody).
    IpReallocated {
        /// How many entries follow.
        entries: u32,
    },
    /// Please run a takeover run (the sender's addresses disagree with the last allocation,
    /// or its list changed).
    TakeoverRequest,
    /// `pharos moveip`: host `ip` on `pnn` from now on.
    MoveIp {
        /// The address.
        ip: WireIp,
        /// Its new holder.
        pnn: Pnn,
    },
    /// Re-read your public addresses file (`pharos reloadips`).
    ReloadIps,
    /// The sender's guardian removed every address of this life of the node.
    Fenced {
        /// The life (the incarnation of its Hello).
        incarnation: u64,
    },
}

const HELLO_LEN: usize = 24 + Liveness::BYTES;
const KEEPALIVE_LEN: usize = 12 + Liveness::BYTES + 16;
const IP_DONE_LEN: usize = WireIp::BYTES + 4;

fn mode_to_u32(m: RecoveryMode) -> u32 {
    match m {
        RecoveryMode::Normal => 0,
        RecoveryMode::Active => 1,
    }
}

impl Message {
    /// The operation that carries this message.
    pub fn op(&self) -> Op {
        match self {
            Message::Hello(_) => Op::Hello,
            Message::Keepalive(_) => Op::Keepalive,
            Message::RecoveryStart { .. } => Op::RecoveryStart,
            Message::RecoveryAck => Op::RecoveryAck,
            Message::RecoveryCommit { .. } => Op::RecoveryCommit,
            Message::Reconfigured => Op::Reconfigured,
            Message::Goodbye => Op::Goodbye,
            Message::IpList { .. } => Op::IpList,
            Message::TakeIp { .. } => Op::TakeIp,
            Message::ReleaseIp { .. } => Op::ReleaseIp,
            Message::IpDone { .. } => Op::IpDone,
            Message::IpReallocated { .. } => Op::IpReallocated,
            Message::TakeoverRequest => Op::TakeoverRequest,
            Message::MoveIp { .. } => Op::MoveIp,
            Message::ReloadIps => Op::ReloadIps,
            Message::Fenced { .. } => Op::Fenced,
        }
    }

    /// The number of entries that follow the fixed payload.
    pub fn entries(&self) -> usize {
        match self {
            Message::IpList { entries } | Message::IpReallocated { entries } => *entries as usize,
            _ => 0,
        }
    }

    /// Size of the fixed payload (without entries).
    fn fixed_len(op: Op) -> usize {
        match op {
            Op::Hello => HELLO_LEN,
            Op::Keepalive => KEEPALIVE_LEN,
            Op::RecoveryAck
            | Op::Reconfigured
            | Op::Goodbye
            | Op::TakeoverRequest
            | Op::ReloadIps => 0,
            Op::RecoveryStart | Op::RecoveryCommit => NodeSet::BYTES,
            Op::IpList | Op::IpReallocated => 4,
            Op::TakeIp | Op::ReleaseIp => WireIp::BYTES,
            Op::IpDone => IP_DONE_LEN,
            Op::MoveIp => WireIp::BYTES + 4,
            Op::Fenced => 8,
        }
    }

    /// Encoded payload size, entries included.
    pub fn payload_len(&self) -> usize {
        Self::fixed_len(self.op()) + self.entries() * Entry::BYTES
    }

    /// Decodes a payload. Trailing bytes are ignored, so later versions may append fields;
    /// for messages with entries, every announced entry must be there and valid.
    pub fn decode(op: Op, p: &[u8]) -> Result<Message, WireError> {
        let bad = WireError::BadPayload(op);
        if p.len() < Self::fixed_len(op) {
            return Err(bad);
        }
        let ip_at = |at| WireIp::read(p, at).ok_or(bad);
        Ok(match op {
            Op::Hello => Message::Hello(Hello {
                incarnation: read_u64(p, 0),
                flags: NodeFlags(read_u32(p, 8)),
                capabilities: read_u32(p, 12),
                start_stamp: read_u64(p, 16),
                liveness: Liveness::read(p, 24),
            }),
            Op::Keepalive => Message::Keepalive(Keepalive {
                flags: NodeFlags(read_u32(p, 0)),
                recmaster: Pnn(read_u32(p, 4)),
                recovery_mode: match read_u32(p, 8) {
                    0 => RecoveryMode::Normal,
                    1 => RecoveryMode::Active,
                    _ => return Err(bad),
                },
                liveness: Liveness::read(p, 12),
                stamp: read_u64(p, 20),
                echo: read_u64(p, 28),
            }),
            Op::RecoveryStart => Message::RecoveryStart {
                members: NodeSet::from_bytes(&p[..NodeSet::BYTES]),
            },
            Op::RecoveryAck => Message::RecoveryAck,
            Op::RecoveryCommit => Message::RecoveryCommit {
                vnnmap: NodeSet::from_bytes(&p[..NodeSet::BYTES]),
            },
            Op::Reconfigured => Message::Reconfigured,
            Op::Goodbye => Message::Goodbye,
            Op::IpList | Op::IpReallocated => {
                let n = read_u32(p, 0);
                let block = &p[4..];
                let fits = (n as usize)
                    .checked_mul(Entry::BYTES)
                    .is_some_and(|len| len <= block.len());
                if !fits || (0..n as usize).any(|i| Entry::read(block, i).is_none()) {
                    return Err(bad);
                }
                if op == Op::IpList {
                    Message::IpList { entries: n }
                } else {
                    Message::IpReallocated { entries: n }
                }
            }
            Op::TakeIp => Message::TakeIp { ip: ip_at(0)? },
            Op::ReleaseIp => Message::ReleaseIp { ip: ip_at(0)? },
            // The two bytes after `op` and `ok` are reserved and zero (one encoding per frame).
            Op::IpDone if p[WireIp::BYTES + 2..WireIp::BYTES + 4] != [0, 0] => return Err(bad),
            Op::IpDone => Message::IpDone {
                ip: ip_at(0)?,
                op: match p[WireIp::BYTES] {
                    0 => IpOp::Take,
                    1 => IpOp::Release,
                    _ => return Err(bad),
                },
                ok: match p[WireIp::BYTES + 1] {
                    0 => false,
                    1 => true,
                    _ => return Err(bad),
                },
            },
            Op::TakeoverRequest => Message::TakeoverRequest,
            Op::MoveIp => Message::MoveIp {
                ip: ip_at(0)?,
                pnn: Pnn(read_u32(p, WireIp::BYTES)),
            },
            Op::ReloadIps => Message::ReloadIps,
            Op::Fenced => Message::Fenced {
                incarnation: read_u64(p, 0),
            },
        })
    }

    /// Writes the fixed payload (entries are the caller's).
    pub(super) fn write_payload(&self, put: &mut dyn FnMut(&[u8])) {
        match self {
            Message::Hello(h) => {
                put(&h.incarnation.to_le_bytes());
                put(&h.flags.0.to_le_bytes());
                put(&h.capabilities.to_le_bytes());
                put(&h.start_stamp.to_le_bytes());
                h.liveness.write(put);
            }
            Message::Keepalive(k) => {
                put(&k.flags.0.to_le_bytes());
                put(&k.recmaster.0.to_le_bytes());
                put(&mode_to_u32(k.recovery_mode).to_le_bytes());
                k.liveness.write(put);
                put(&k.stamp.to_le_bytes());
                put(&k.echo.to_le_bytes());
            }
            Message::RecoveryAck
            | Message::Reconfigured
            | Message::Goodbye
            | Message::TakeoverRequest
            | Message::ReloadIps => {}
            Message::RecoveryStart { members: s } | Message::RecoveryCommit { vnnmap: s } => {
                put(s.as_bytes())
            }
            Message::IpList { entries } | Message::IpReallocated { entries } => {
                put(&entries.to_le_bytes())
            }
            Message::TakeIp { ip } | Message::ReleaseIp { ip } => ip.write(put),
            Message::IpDone { ip, op, ok } => {
                ip.write(put);
                let op = match op {
                    IpOp::Take => 0,
                    IpOp::Release => 1,
                };
                put(&[op, *ok as u8, 0, 0]);
            }
            Message::MoveIp { ip, pnn } => {
                ip.write(put);
                put(&pnn.0.to_le_bytes());
            }
            Message::Fenced { incarnation } => put(&incarnation.to_le_bytes()),
        }
    }
}
