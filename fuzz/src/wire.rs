//! The frame codec: single frames and TCP-style byte streams.

use crate::Reader;
use pharos_core::control::RecoveryMode;
use pharos_core::types::NodeSet;
use pharos_core::wire::{
    self, Header, Hello, IpOp, Keepalive, Liveness, Message, WireError, WireIp, HEADER_LEN,
    MAGIC, MAX_FRAME_LEN,
};
use pharos_core::{Generation, NodeFlags, Pnn};

fn read_ip(r: &mut Reader<'_>) -> WireIp {
    let (v6, prefix) = (r.u8() & 1 == 1, r.u8());
    let b = r.take(16);
    let mut a = [0u8; 16];
    a[..b.len()].copy_from_slice(b);
    if v6 {
        WireIp {
            addr: std::net::IpAddr::from(a),
            prefix: prefix % 129,
        }
    } else {
        WireIp {
            addr: std::net::IpAddr::from([a[0], a[1], a[2], a[3]]),
            prefix: prefix % 33,
        }
    }
}

fn write_ip(ip: &WireIp, out: &mut Vec<u8>) {
    let mut a = [0u8; 16];
    match ip.addr {
        std::net::IpAddr::V4(v4) => {
            out.push(0);
            a[..4].copy_from_slice(&v4.octets());
        }
        std::net::IpAddr::V6(v6) => {
            out.push(1);
            a = v6.octets();
        }
    }
    out.push(ip.prefix);
    out.extend_from_slice(&a);
}

/// Reads a message of any kind: a kind byte, then that kind's fields (messages with entries
/// have none here: their entries are the frame's, not the message's).
pub fn read_message(r: &mut Reader<'_>) -> Message {
    match r.u8() % 17 {
        0 => Message::Hello(Hello {
            incarnation: r.u64(),
            flags: NodeFlags(r.u32()),
            capabilities: r.u32(),
            start_stamp: r.u64(),
            liveness: read_liveness(r),
        }),
        1 => Message::Keepalive(Keepalive {
            flags: NodeFlags(r.u32()),
            recmaster: Pnn(r.u32()),
            recovery_mode: if r.u8() & 1 == 0 {
                RecoveryMode::Normal
            } else {
                RecoveryMode::Active
            },
            liveness: read_liveness(r),
            stamp: r.u64(),
            echo: r.u64(),
        }),
        2 => Message::RecoveryStart {
            members: NodeSet::from_bytes(r.take(NodeSet::BYTES)),
        },
        3 => Message::RecoveryAck,
        4 => Message::RecoveryCommit {
            vnnmap: NodeSet::from_bytes(r.take(NodeSet::BYTES)),
        },
        5 => Message::Reconfigured,
        6 => Message::Goodbye,
        7 => Message::IpList { entries: 0 },
        8 => Message::TakeIp { ip: read_ip(r) },
        9 => Message::ReleaseIp { ip: read_ip(r) },
        10 => Message::IpDone {
            ip: read_ip(r),
            op: if r.u8() & 1 == 0 {
                IpOp::Take
            } else {
                IpOp::Release
            },
            ok: r.u8() & 1 == 1,
        },
        11 => Message::IpReallocated { entries: 0 },
        12 => Message::TakeoverRequest,
        13 => Message::MoveIp {
            ip: read_ip(r),
            pnn: Pnn(r.u32()),
        },
        14 => Message::ReloadIps,
        15 => Message::Ban { secs: r.u32() },
        _ => Message::Fenced {
            incarnation: r.u64(),
        },
    }
}

fn read_liveness(r: &mut Reader<'_>) -> Liveness {
    Liveness {
        interval_ms: r.u32(),
        limit: r.u32(),
    }
}

fn write_liveness(l: &Liveness, out: &mut Vec<u8>) {
    out.extend_from_slice(&l.interval_ms.to_le_bytes());
    out.extend_from_slice(&l.limit.to_le_bytes());
}

/// Appends the bytes [`read_message`] reads back as `m`.
pub fn write_message(m: &Message, out: &mut Vec<u8>) {
    match m {
        Message::Hello(h) => {
            out.push(0);
            out.extend_from_slice(&h.incarnation.to_le_bytes());
            out.extend_from_slice(&h.flags.0.to_le_bytes());
            out.extend_from_slice(&h.capabilities.to_le_bytes());
            out.extend_from_slice(&h.start_stamp.to_le_bytes());
            write_liveness(&h.liveness, out);
        }
        Message::Keepalive(k) => {
            out.push(1);
            out.extend_from_slice(&k.flags.0.to_le_bytes());
            out.extend_from_slice(&k.recmaster.0.to_le_bytes());
            out.push(u8::from(k.recovery_mode == RecoveryMode::Active));
            write_liveness(&k.liveness, out);
            out.extend_from_slice(&k.stamp.to_le_bytes());
            out.extend_from_slice(&k.echo.to_le_bytes());
        }
        Message::RecoveryStart { members } => {
            out.push(2);
            out.extend_from_slice(members.as_bytes());
        }
        Message::RecoveryAck => out.push(3),
        Message::RecoveryCommit { vnnmap } => {
            out.push(4);
            out.extend_from_slice(vnnmap.as_bytes());
        }
        Message::Reconfigured => out.push(5),
        Message::Goodbye => out.push(6),
        Message::IpList { .. } => out.push(7),
        Message::TakeIp { ip } => {
            out.push(8);
            write_ip(ip, out);
        }
        Message::ReleaseIp { ip } => {
            out.push(9);
            write_ip(ip, out);
        }
        Message::IpDone { ip, op, ok } => {
            out.push(10);
            write_ip(ip, out);
            out.push(u8::from(*op == IpOp::Release));
            out.push(u8::from(*ok));
        }
        Message::IpReallocated { .. } => out.push(11),
        Message::TakeoverRequest => out.push(12),
        Message::MoveIp { ip, pnn } => {
            out.push(13);
            write_ip(ip, out);
            out.extend_from_slice(&pnn.0.to_le_bytes());
        }
        Message::ReloadIps => out.push(14),
        Message::Ban { secs } => {
            out.push(15);
            out.extend_from_slice(&secs.to_le_bytes());
        }
        Message::Fenced { incarnation } => {
            out.push(16);
            out.extend_from_slice(&incarnation.to_le_bytes());
        }
    }
}

/// `frame_decode`: arbitrary bytes as one frame.
///
/// Never panics; whatever decodes is a frame whose length prefix matches, and re-encoding the
/// decoded header and message gives the same bytes (except the reserved byte and payload bytes
/// past the message, which the decoder ignores by design) and decodes to the same value.
pub fn frame_decode(data: &[u8]) {
    let len = wire::frame_len(data);
    let Ok((header, message)) = wire::decode(data) else {
        return;
    };
    assert_eq!(len, Ok(Some(data.len())));
    assert_eq!(header.op, message.op());
    let mut again = Vec::new();
    let entries = wire::entry_bytes(data, &message);
    wire::encode_with(&header, &message, entries, &mut again);
    let n = again.len();
    assert_eq!(n, HEADER_LEN + message.payload_len());
    assert!(n <= data.len() && n <= MAX_FRAME_LEN);
    assert_eq!(again[4..9], data[4..9], "magic and version");
    assert_eq!(again[10..n], data[10..n], "header fields and payload");
    assert_eq!(wire::decode(&again), Ok((header, message)));
    assert_eq!(
        wire::entries(&again, &message).count(),
        message.entries(),
        "every announced entry reads back"
    );
    if message.entries() == 0 {
        let mut slice = [0u8; 128];
        assert_eq!(wire::encode_to_slice(&header, &message, &mut slice), Ok(n));
        assert_eq!(slice[..n], again[..]);
    }
}

/// How a stream that goes bad ends, after its valid frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadTail {
    /// A length prefix above [`MAX_FRAME_LEN`].
    Oversize,
    /// A length prefix below the header size.
    Undersize,
    /// Good length, wrong magic.
    BadMagic,
}

/// The input of `stream_reassembly`, decoded from (or encoded to) fuzzer bytes.
#[derive(Clone, Debug, Default)]
pub struct StreamSpec {
    /// Valid frames, each with payload bytes past its message (a later protocol version's
    /// fields, which this version must skip).
    pub frames: Vec<(Header, Message, Vec<u8>)>,
    /// Garbage after the frames.
    pub tail: Option<BadTail>,
    /// Sizes of the reads the bytes arrive in (each byte gives 1..=256); what is left after the
    /// last arrives in one read.
    pub chunks: Vec<u8>,
}

const MAX_FRAMES: u8 = 8;
const MAX_EXTRA: u8 = 32;

impl StreamSpec {
    /// Decodes a spec; any bytes are a valid spec.
    pub fn read(r: &mut Reader<'_>) -> Self {
        let n = r.u8() % (MAX_FRAMES + 1);
        let mut frames = Vec::new();
        for _ in 0..n {
            let header_fields = (r.u32(), r.u32(), r.u32(), r.u32());
            let message = read_message(r);
            let header = Header {
                op: message.op(),
                src: Pnn(header_fields.0),
                dst: Pnn(header_fields.1),
                generation: Generation(header_fields.2),
                request_id: header_fields.3,
            };
            let extra_len = (r.u8() % MAX_EXTRA) as usize;
            let mut extra = r.take(extra_len).to_vec();
            extra.resize(extra_len, 0);
            frames.push((header, message, extra));
        }
        let tail = match r.u8() % 5 {
            1 => Some(BadTail::Oversize),
            2 => Some(BadTail::Undersize),
            3 => Some(BadTail::BadMagic),
            _ => None,
        };
        let chunks = r.take(usize::MAX).to_vec();
        StreamSpec {
            frames,
            tail,
            chunks,
        }
    }

    /// The fuzzer bytes that [`StreamSpec::read`] turns into `self` (for seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.frames.len() as u8];
        for (h, m, extra) in &self.frames {
            for v in [h.src.0, h.dst.0, h.generation.0, h.request_id] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            write_message(m, &mut out);
            out.push(extra.len() as u8);
            out.extend_from_slice(extra);
        }
        out.push(match self.tail {
            None => 0,
            Some(BadTail::Oversize) => 1,
            Some(BadTail::Undersize) => 2,
            Some(BadTail::BadMagic) => 3,
        });
        out.extend_from_slice(&self.chunks);
        out
    }
}

/// One encoded frame with `extra` payload bytes appended (length prefix patched).
pub fn encode_with_extra(h: &Header, m: &Message, extra: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    wire::encode(h, m, out);
    out.extend_from_slice(extra);
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// `stream_reassembly`: valid frames, then maybe garbage, arriving in arbitrary pieces and
/// reassembled the way a shell's read path does, with [`wire::frame_len`].
///
/// The reassembler yields exactly the original frames, byte for byte, each decoding to what was
/// encoded; garbage is reported as a stream error only after every valid frame came out, and a
/// clean stream leaves nothing behind.
pub fn stream_reassembly(data: &[u8]) {
    let spec = StreamSpec::read(&mut Reader::new(data));
    let mut stream = Vec::new();
    let mut bounds = Vec::new();
    for (h, m, extra) in &spec.frames {
        let start = stream.len();
        encode_with_extra(h, m, extra, &mut stream);
        bounds.push(start..stream.len());
    }
    let good_len = stream.len();
    match spec.tail {
        None => {}
        Some(BadTail::Oversize) => {
            stream.extend_from_slice(&(MAX_FRAME_LEN as u32 + 1).to_le_bytes());
            stream.extend_from_slice(&MAGIC);
        }
        Some(BadTail::Undersize) => {
            stream.extend_from_slice(&(HEADER_LEN as u32 - 1).to_le_bytes());
            stream.extend_from_slice(&MAGIC);
        }
        Some(BadTail::BadMagic) => {
            stream.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
            stream.extend_from_slice(b"CTDB");
        }
    }

    // The shell's read buffer: bytes arrive, whole frames leave from the front.
    let mut buf: Vec<u8> = Vec::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut error: Option<WireError> = None;
    let mut sizes = spec.chunks.iter().map(|&c| c as usize + 1);
    let mut at = 0;
    while at < stream.len() && error.is_none() {
        let n = sizes
            .next()
            .unwrap_or(stream.len() - at)
            .min(stream.len() - at);
        buf.extend_from_slice(&stream[at..at + n]);
        at += n;
        let mut start = 0;
        loop {
            match wire::frame_len(&buf[start..]) {
                Ok(Some(len)) => {
                    got.push(buf[start..start + len].to_vec());
                    start += len;
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        buf.drain(..start);
    }

    assert_eq!(got.len(), spec.frames.len(), "frame count");
    for ((frame, range), (h, m, _)) in got.iter().zip(&bounds).zip(&spec.frames) {
        assert_eq!(frame[..], stream[range.clone()]);
        assert_eq!(wire::decode(frame), Ok((*h, *m)));
    }
    match spec.tail {
        None => {
            assert_eq!(error, None);
            assert!(buf.is_empty(), "{} bytes left over", buf.len());
        }
        Some(BadTail::Oversize) => {
            assert_eq!(error, Some(WireError::BadLength(MAX_FRAME_LEN as u32 + 1)))
        }
        Some(BadTail::Undersize) => {
            assert_eq!(error, Some(WireError::BadLength(HEADER_LEN as u32 - 1)))
        }
        Some(BadTail::BadMagic) => assert_eq!(error, Some(WireError::BadMagic)),
    }
    // Every byte up to the garbage was consumed as frames.
    let consumed: usize = got.iter().map(Vec::len).sum();
    assert_eq!(consumed, good_len);
}
