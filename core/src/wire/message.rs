//! Operations and their payloads.

use super::{u32_at as read_u32, u64_at as read_u64, WireError};
use crate::types::NodeFlags;
use alloc::vec::Vec;

/// Frame operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Op {
    /// First frame on a new connection: who the sender is.
    Hello = 1,
    /// Periodic sign of life, carrying the sender's administrative flags.
    Keepalive = 2,
}

impl Op {
    /// The operation with this wire number.
    pub fn from_u16(v: u16) -> Option<Op> {
        match v {
            1 => Some(Op::Hello),
            2 => Some(Op::Keepalive),
            _ => None,
        }
    }
}

/// The payload of a [`Op::Hello`] frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Random per daemon start: tells a restarted peer from a reconnected one.
    pub incarnation: u64,
    /// The sender's administrative flags.
    pub flags: NodeFlags,
    /// Capability bits (reserved for the recovery-master capability).
    pub capabilities: u32,
}

/// A decoded frame payload. Every variant is fixed-size: decoding and encoding never allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// A keepalive with the sender's administrative flags.
    Keepalive {
        /// The sender's administrative flags.
        flags: NodeFlags,
    },
}

impl Message {
    /// The operation that carries this message.
    pub fn op(&self) -> Op {
        match self {
            Message::Hello(_) => Op::Hello,
            Message::Keepalive { .. } => Op::Keepalive,
        }
    }

    /// Encoded payload size.
    pub fn payload_len(&self) -> usize {
        match self {
            Message::Hello(_) => 16,
            Message::Keepalive { .. } => 4,
        }
    }

    /// Decodes a payload. Trailing bytes are ignored, so later versions may append fields.
    pub fn decode(op: Op, p: &[u8]) -> Result<Message, WireError> {
        match op {
            Op::Hello if p.len() >= 16 => Ok(Message::Hello(Hello {
                incarnation: read_u64(p, 0),
                flags: NodeFlags(read_u32(p, 8)),
                capabilities: read_u32(p, 12),
            })),
            Op::Keepalive if p.len() >= 4 => Ok(Message::Keepalive {
                flags: NodeFlags(read_u32(p, 0)),
            }),
            _ => Err(WireError::BadPayload(op)),
        }
    }

    pub(super) fn write_payload(&self, put: &mut dyn FnMut(&[u8])) {
        match self {
            Message::Hello(h) => {
                put(&h.incarnation.to_le_bytes());
                put(&h.flags.0.to_le_bytes());
                put(&h.capabilities.to_le_bytes());
            }
            Message::Keepalive { flags } => put(&flags.0.to_le_bytes()),
        }
    }

    pub(super) fn encode_payload(&self, out: &mut Vec<u8>) {
        self.write_payload(&mut |b| out.extend_from_slice(b));
    }
}
