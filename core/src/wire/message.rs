//! Operations and their payloads. Every message is fixed-size and `Copy`: decoding and encoding
//! never allocate.

use super::{u32_at as read_u32, u64_at as read_u64, WireError};
use crate::types::RecoveryMode;
use crate::types::{NodeFlags, NodeSet, Pnn};
use alloc::vec::Vec;

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
            _ => return None,
        })
    }

    /// Whether frames of this operation belong to one generation: a frame whose header
    /// generation is older than the receiver's is refused.
    pub fn generation_scoped(self) -> bool {
        matches!(
            self,
            Op::RecoveryStart | Op::RecoveryAck | Op::RecoveryCommit | Op::Reconfigured
        )
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
}

/// A decoded frame payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Keepalive`].
    Keepalive(Keepalive),
    /// Enter recovery mode for the header's generation, and acknowledge.
    RecoveryStart,
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
}

const HELLO_LEN: usize = 24 + Liveness::BYTES;
const KEEPALIVE_LEN: usize = 12 + Liveness::BYTES;

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
            Message::RecoveryStart => Op::RecoveryStart,
            Message::RecoveryAck => Op::RecoveryAck,
            Message::RecoveryCommit { .. } => Op::RecoveryCommit,
            Message::Reconfigured => Op::Reconfigured,
            Message::Goodbye => Op::Goodbye,
        }
    }

    /// Encoded payload size.
    pub fn payload_len(&self) -> usize {
        match self {
            Message::Hello(_) => HELLO_LEN,
            Message::Keepalive(_) => KEEPALIVE_LEN,
            Message::RecoveryStart
            | Message::RecoveryAck
            | Message::Reconfigured
            | Message::Goodbye => 0,
            Message::RecoveryCommit { .. } => NodeSet::BYTES,
        }
    }

    /// Decodes a payload. Trailing bytes are ignored, so later versions may append fields.
    pub fn decode(op: Op, p: &[u8]) -> Result<Message, WireError> {
        let need = match op {
            Op::Hello => HELLO_LEN,
            Op::Keepalive => KEEPALIVE_LEN,
            Op::RecoveryStart | Op::RecoveryAck | Op::Reconfigured | Op::Goodbye => 0,
            Op::RecoveryCommit => NodeSet::BYTES,
        };
        if p.len() < need {
            return Err(WireError::BadPayload(op));
        }
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
                    _ => return Err(WireError::BadPayload(op)),
                },
                liveness: Liveness::read(p, 12),
            }),
            Op::RecoveryStart => Message::RecoveryStart,
            Op::RecoveryAck => Message::RecoveryAck,
            Op::RecoveryCommit => Message::RecoveryCommit {
                vnnmap: NodeSet::from_bytes(&p[..NodeSet::BYTES]),
            },
            Op::Reconfigured => Message::Reconfigured,
            Op::Goodbye => Message::Goodbye,
        })
    }

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
            }
            Message::RecoveryStart
            | Message::RecoveryAck
            | Message::Reconfigured
            | Message::Goodbye => {}
            Message::RecoveryCommit { vnnmap } => put(vnnmap.as_bytes()),
        }
    }

    pub(super) fn encode_payload(&self, out: &mut Vec<u8>) {
        self.write_payload(&mut |b| out.extend_from_slice(b));
    }
}
