//! The cluster wire protocol: length-prefixed frames over TCP.
//!
//! Every frame starts with a 28-byte header, all integers little-endian:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 4 | length of the whole frame, header included |
//! | 4 | 4 | magic `PHRS` |
//! | 8 | 1 | protocol version ([`PROTOCOL_VERSION`]) |
//! | 9 | 1 | reserved, 0 |
//! | 10 | 2 | operation ([`Op`]) |
//! | 12 | 4 | source PNN |
//! | 16 | 4 | destination PNN |
//! | 20 | 4 | generation |
//! | 24 | 4 | request id |
//!
//! then the operation's payload. Frames are at most [`MAX_FRAME_LEN`] bytes. Decoding borrows the
//! input, never allocates and never panics; encoding appends to a caller's buffer.

mod message;

pub use message::{
    Entry, Hello, IpOp, Keepalive, Liveness, Message, Op, WireIp, CAP_RECMASTER, IP_AVAILABLE,
    IP_HELD,
};

use crate::types::{Generation, Pnn};
use alloc::vec::Vec;
use core::fmt;

/// The four magic bytes that open every frame after the length.
pub const MAGIC: [u8; 4] = *b"PHRS";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 28;
/// Largest frame accepted or produced; a longer length prefix is a stream error.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// The fixed header fields of a frame (everything but length and magic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the payload is.
    pub op: Op,
    /// Sender.
    pub src: Pnn,
    /// Receiver.
    pub dst: Pnn,
    /// The sender's cluster generation.
    pub generation: Generation,
    /// Matches replies to requests; 0 when unused.
    pub request_id: u32,
}

/// Why bytes are not a valid frame. Every variant leaves the decoder's input untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than a header, or than the length prefix announces.
    Truncated,
    /// The length prefix is below [`HEADER_LEN`] or above [`MAX_FRAME_LEN`].
    BadLength(u32),
    /// The length prefix disagrees with the number of bytes given.
    LengthMismatch,
    /// The magic bytes are wrong: not a pharos stream.
    BadMagic,
    /// A protocol version this build does not speak.
    BadVersion(u8),
    /// An operation this build does not know.
    UnknownOp(u16),
    /// The payload is too short for its operation.
    BadPayload(Op),
    /// The output buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated frame"),
            WireError::BadLength(n) => write!(
                f,
                "bad frame length {n} (allowed {HEADER_LEN}..={MAX_FRAME_LEN})"
            ),
            WireError::LengthMismatch => {
                f.write_str("frame length does not match its length prefix")
            }
            WireError::BadMagic => f.write_str("bad magic (not a pharos peer)"),
            WireError::BadVersion(v) => write!(f, "unsupported protocol version {v}"),
            WireError::UnknownOp(op) => write!(f, "unknown operation {op}"),
            WireError::BadPayload(op) => write!(f, "malformed payload for {op:?}"),
            WireError::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for WireError {}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    // Callers check lengths first; fall back to 0 rather than panic.
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// Stream reassembly: the length of the first frame in `buf` if all of it is there, `None` if
/// more bytes are needed, an error if the stream cannot be a pharos stream (the connection
/// should then be closed: there is no way to find the next frame).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32_at(buf, 0);
    if (len as usize) < HEADER_LEN || len as usize > MAX_FRAME_LEN {
        return Err(WireError::BadLength(len));
    }
    if buf.len() >= 8 && buf[4..8] != MAGIC {
        return Err(WireError::BadMagic);
    }
    Ok((buf.len() >= len as usize).then_some(len as usize))
}

/// Decodes exactly one frame (as delimited by [`frame_len`]).
pub fn decode(frame: &[u8]) -> Result<(Header, Message), WireError> {
    if frame.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    match frame_len(frame)? {
        Some(n) if n == frame.len() => {}
        Some(_) => return Err(WireError::LengthMismatch),
        None => return Err(WireError::Truncated),
    }
    if frame[8] != PROTOCOL_VERSION {
        return Err(WireError::BadVersion(frame[8]));
    }
    let raw_op = u16_at(frame, 10);
    let op = Op::from_u16(raw_op).ok_or(WireError::UnknownOp(raw_op))?;
    let header = Header {
        op,
        src: Pnn(u32_at(frame, 12)),
        dst: Pnn(u32_at(frame, 16)),
        generation: Generation(u32_at(frame, 20)),
        request_id: u32_at(frame, 24),
    };
    let message = Message::decode(op, &frame[HEADER_LEN..])?;
    Ok((header, message))
}

/// Appends the encoded frame to `out`. Allocates only if `out` lacks capacity. For a message
/// with entries, use [`encode_with`].
pub fn encode(header: &Header, message: &Message, out: &mut Vec<u8>) {
    encode_with(header, message, &[], out)
}

/// Appends the encoded frame with `entries` (already encoded with [`Entry::write`], exactly
/// as many as the message announces) after its fixed payload.
pub fn encode_with(header: &Header, message: &Message, entries: &[u8], out: &mut Vec<u8>) {
    debug_assert_eq!(entries.len(), message.entries() * Entry::BYTES);
    let len = HEADER_LEN + message.payload_len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.push(0);
    out.extend_from_slice(&(message.op() as u16).to_le_bytes());
    out.extend_from_slice(&header.src.0.to_le_bytes());
    out.extend_from_slice(&header.dst.0.to_le_bytes());
    out.extend_from_slice(&header.generation.0.to_le_bytes());
    out.extend_from_slice(&header.request_id.to_le_bytes());
    message.write_payload(&mut |b| out.extend_from_slice(b));
    out.extend_from_slice(entries);
}

/// The entries of a decoded frame (empty for a message without): `frame` is the frame that
/// [`decode`] accepted, so every entry is there and valid.
pub fn entries<'a>(frame: &'a [u8], message: &Message) -> impl Iterator<Item = Entry> + 'a {
    let n = message.entries();
    let block = frame.get(HEADER_LEN + 4..).unwrap_or(&[]);
    (0..n).filter_map(move |i| Entry::read(block, i))
}

/// The encoded entries of a decoded frame, as [`encode_with`] takes them.
pub fn entry_bytes<'a>(frame: &'a [u8], message: &Message) -> &'a [u8] {
    let len = message.entries() * Entry::BYTES;
    frame
        .get(HEADER_LEN + 4..HEADER_LEN + 4 + len)
        .unwrap_or(&[])
}

/// Encodes into a fixed buffer; returns the frame length.
pub fn encode_to_slice(
    header: &Header,
    message: &Message,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let len = HEADER_LEN + message.payload_len();
    let dst = out.get_mut(..len).ok_or(WireError::BufferTooSmall)?;
    let mut w = SliceWriter { buf: dst, at: 0 };
    w.put(&(len as u32).to_le_bytes());
    w.put(&MAGIC);
    w.put(&[PROTOCOL_VERSION, 0]);
    w.put(&(message.op() as u16).to_le_bytes());
    w.put(&header.src.0.to_le_bytes());
    w.put(&header.dst.0.to_le_bytes());
    w.put(&header.generation.0.to_le_bytes());
    w.put(&header.request_id.to_le_bytes());
    message.write_payload(&mut |b| w.put(b));
    if message.entries() > 0 {
        // Entries live outside the message: this encoder has none to write.
        return Err(WireError::BufferTooSmall);
    }
    Ok(len)
}

struct SliceWriter<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl SliceWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            d.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }
}

#[cfg(test)]
mod tests;
