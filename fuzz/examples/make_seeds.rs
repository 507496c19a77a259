//! Writes the checked-in seed corpora: `cargo run --example make_seeds` (from `fuzz/`).
//!
//! Seeds are small valid inputs that reach deep states at once (a connected peer, a stream of
//! several frames, a tunables file), which random mutation would take long to find. They are
//! built with the encoders the targets decode with, so they stay meaningful when a format
//! changes: rerun this and commit the result.

use pharos_core::control::RecoveryMode;
use pharos_core::types::NodeSet;
use pharos_core::wire::{self, Header, Hello, Keepalive, Message, CAP_RECMASTER};
use pharos_core::{Generation, NodeFlags, Pnn};
use pharos_fuzz::{BadTail, LinkSel, NodeOp as Op, NodeSetup, StreamSpec};
use std::fs;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn header(m: &Message, src: u32, dst: u32) -> Header {
    Header {
        op: m.op(),
        src: Pnn(src),
        dst: Pnn(dst),
        generation: Generation(3),
        request_id: 0,
    }
}

fn hello() -> Message {
    Message::Hello(Hello {
        incarnation: 0x1122_3344_5566_7788,
        flags: NodeFlags::empty(),
        capabilities: CAP_RECMASTER,
        start_stamp: 1_700_000_000_000,
        liveness: wire::Liveness {
            interval_ms: 100,
            limit: 3,
        },
    })
}

fn keepalive(flags: NodeFlags) -> Message {
    Message::Keepalive(Keepalive {
        flags,
        recmaster: Pnn(2),
        recovery_mode: RecoveryMode::Normal,
        liveness: wire::Liveness {
            interval_ms: 100,
            limit: 3,
        },
        stamp: 1,
        echo: 0,
    })
}

fn encoded(m: &Message) -> Vec<u8> {
    let mut v = Vec::new();
    wire::encode(&header(m, 1, 0), m, &mut v);
    v
}

fn wire_seeds() {
    write("frame_decode", "hello", &encoded(&hello()));
    write(
        "frame_decode",
        "keepalive",
        &encoded(&keepalive(NodeFlags::BANNED)),
    );
    let mut extra = encoded(&keepalive(NodeFlags::empty()));
    extra.extend_from_slice(&[0xaa; 6]);
    let len = extra.len() as u32;
    extra[..4].copy_from_slice(&len.to_le_bytes());
    write("frame_decode", "keepalive-extra", &extra);
    write("frame_decode", "truncated", &encoded(&hello())[..20]);
    let mut vnnmap = NodeSet::new();
    vnnmap.insert(Pnn(0));
    vnnmap.insert(Pnn(2));
    write(
        "frame_decode",
        "recovery-commit",
        &encoded(&Message::RecoveryCommit { vnnmap }),
    );
    write(
        "frame_decode",
        "recovery-start",
        &encoded(&Message::RecoveryStart { members: vnnmap }),
    );
    // Messages about public addresses, one with entries after its fixed part.
    let ip = wire::WireIp {
        addr: "10.0.0.7".parse().unwrap(),
        prefix: 24,
    };
    write("frame_decode", "take-ip", &encoded(&Message::TakeIp { ip }));
    let mut entries = Vec::new();
    for (addr, value) in [("10.0.0.7", wire::IP_AVAILABLE), ("fd00::7", wire::IP_HELD)] {
        let ip = wire::WireIp {
            addr: addr.parse().unwrap(),
            prefix: if addr.contains(':') { 64 } else { 24 },
        };
        wire::Entry { ip, value }.write(&mut entries);
    }
    let list = Message::IpList { entries: 2 };
    let mut frame = Vec::new();
    wire::encode_with(&header(&list, 1, 0), &list, &entries, &mut frame);
    write("frame_decode", "ip-list", &frame);

    let frames = vec![
        (header(&hello(), 1, 0), hello(), vec![]),
        (
            header(&keepalive(NodeFlags::DISABLED), 1, 0),
            keepalive(NodeFlags::DISABLED),
            vec![1, 2, 3],
        ),
        (
            header(&keepalive(NodeFlags::empty()), 1, 0),
            keepalive(NodeFlags::empty()),
            vec![],
        ),
        (
            header(&Message::RecoveryAck, 1, 0),
            Message::RecoveryAck,
            vec![],
        ),
    ];
    let spec = |tail, chunks: Vec<u8>| StreamSpec {
        frames: frames.clone(),
        tail,
        chunks,
    };
    write("stream_reassembly", "whole", &spec(None, vec![]).to_bytes());
    write(
        "stream_reassembly",
        "bytewise",
        &spec(None, vec![0; 200]).to_bytes(),
    );
    write(
        "stream_reassembly",
        "odd-reads",
        &spec(Some(BadTail::Oversize), vec![2, 30, 0, 40, 7]).to_bytes(),
    );
    write(
        "stream_reassembly",
        "bad-magic",
        &spec(Some(BadTail::BadMagic), vec![27, 27]).to_bytes(),
    );
}

fn text_seeds() {
    write(
        "config_parsers",
        "nodes",
        b"10.0.0.1\n#10.0.0.2\n  fd00::3  \n\n10.0.0.4\n",
    );
    write(
        "config_parsers",
        "tunables",
        b"# pharos tunables\nKeepaliveInterval=250ms\nKeepaliveLimit = 4\nNoIPFailback=1\nRecoverTimeout=30\n",
    );
    write(
        "config_parsers",
        "public-addresses",
        b"# public addresses\n192.168.1.10/24 eth1,eth2\n  fd00::10/64\teth1 # IPv6\n\n10.0.0.1/32 bond0\r\n",
    );
    write(
        "config_parsers",
        "bad-line",
        b"KeepaliveInterval=5\nnonsense\n",
    );
    for (name, line) in [
        ("status", "status\n"),
        ("nodestatus", "nodestatus 2"),
        ("setvar", "setvar KeepaliveInterval 100ms\n"),
        ("getvar", "getvar keepalivelimit"),
        ("leader", "  leader  "),
    ] {
        write("control_request", name, line.as_bytes());
    }
    // The longest request the parser accepts (its `to_line` once failed to parse back).
    let longest = format!(
        "getvar {}",
        "x".repeat(pharos_core::control::MAX_REQUEST_LEN - 7)
    );
    write("control_request", "longest", longest.as_bytes());
}

/// Node 0 of three, 100 ms keepalives, limit 3.
fn setup(shape: u8) -> Vec<u8> {
    let mut v = Vec::new();
    NodeSetup {
        shape,
        pnn: 0,
        keepalive: 9,
        limit: 2,
        connect_timeout: 99,
        reconnect: 9,
        seed: 1,
    }
    .write(&mut v);
    v
}

fn program(shape: u8, ops: &[Op]) -> Vec<u8> {
    let mut v = setup(shape);
    for op in ops {
        op.write(&mut v);
    }
    v
}

/// A well-formed frame from the link's peer to us, in our generation (`gen` 0) or a later one.
/// Hellos say "capable, start stamp 1" (as node 0's setup), keepalives claim the role for their
/// sender.
fn frame_gen(link: LinkSel, kind: u8, gen: u8) -> Op {
    Op::Frame {
        link,
        src: 1,
        dst: 1,
        gen,
        kind,
        arg: if kind == 0 { 0b11 } else { 1 },
        flags: 0,
        extra: vec![],
    }
}

fn frame(link: LinkSel, kind: u8) -> Op {
    frame_gen(link, kind, 0)
}

const HELLO: u8 = 0;
const KEEPALIVE: u8 = 1;
const RECOVERY_START: u8 = 2;
const RECOVERY_ACK: u8 = 3;
const RECOVERY_COMMIT: u8 = 4;
const RECONFIGURED: u8 = 5;

fn node_seeds() {
    use LinkSel::{Accepted, Out, Unknown};
    // Peer 1 comes up (both connections, Hello), keepalives flow across ticks.
    let up = vec![
        Op::Connected(1),
        Op::Accepted(1),
        frame(Accepted(0), HELLO),
        Op::Step(50),
        frame(Accepted(0), KEEPALIVE),
        Op::Deadline,
        Op::Step(50),
        frame(Accepted(0), KEEPALIVE),
        Op::Deadline,
    ];
    write("node_inputs", "peer-up", &program(0, &up));

    // Then it goes silent and dies, and is reconnected.
    let mut dies = up.clone();
    dies.extend([
        Op::Deadline,
        Op::Deadline,
        Op::Deadline,
        Op::Deadline,
        Op::Deadline,
        Op::Connected(1),
        Op::Accepted(1),
        frame(Accepted(1), HELLO),
        Op::Deadline,
    ]);
    write("node_inputs", "peer-dies", &program(0, &dies));

    // Garbage, wrong sources, stream errors, EOF, unknown and mapped addresses.
    let mut rough = up.clone();
    rough.extend([
        Op::Garbage {
            link: Accepted(0),
            bytes: vec![0x20, 0, 0, 0, b'P', b'H', b'R', b'S', 1, 0, 2, 0],
        },
        Op::Mutated {
            link: Accepted(0),
            at: 12,
            xor: 2,
        },
        Op::Frame {
            link: Accepted(0),
            src: 8,
            dst: 1,
            gen: 0xff,
            kind: 1,
            arg: 0x80,
            flags: 0xffff_ffff,
            extra: vec![9; 5],
        },
        frame(Unknown, KEEPALIVE),
        frame(Out(1), KEEPALIVE),
        Op::Accepted(3),
        Op::Accepted(4),
        Op::Accepted(5),
        Op::BadStream(Accepted(0)),
        Op::Leap(2),
        Op::Deadline,
        Op::Connected(1),
        Op::Accepted(1),
        frame(Accepted(4), HELLO),
        Op::Closed(Out(1)),
        Op::ConnectFailed(2),
        Op::Connected(7),
        Op::Deadline,
    ]);
    write("node_inputs", "rough", &program(4, &rough));

    // Every control request, and one read from the input.
    let mut control: Vec<Op> = (0..27)
        .map(|which| Op::Control {
            which,
            line: vec![],
        })
        .collect();
    control.push(Op::Control {
        which: 200,
        line: b"nodestatus all".to_vec(),
    });
    control.push(Op::Deadline);
    write("node_inputs", "control", &program(1, &control));

    // IPv6 pair, both directions up.
    write("node_inputs", "ipv6", &program(2, &up));

    // Node 2 of three (the biggest PNN: it wins the election) with both peers up: it claims
    // the role, gets the lock, runs a recovery (both peers acknowledge) and commits.
    let both_up = [
        Op::Connected(0),
        Op::Accepted(0),
        frame(Accepted(0), HELLO),
        Op::Connected(1),
        Op::Accepted(1),
        frame(Accepted(1), HELLO),
    ];
    let mut leader = both_up.to_vec();
    leader.extend([
        Op::Leap(1),
        Op::Deadline,
        Op::Lock(0),
        Op::Deadline,
        frame_gen(Accepted(0), RECOVERY_ACK, 1),
        frame_gen(Accepted(1), RECOVERY_ACK, 1),
        Op::Deadline,
        Op::Deadline,
        Op::Lock(2),
        Op::Deadline,
    ]);
    let mut v = setup(0);
    v[1] = 2;
    for op in &leader {
        op.write(&mut v);
    }
    write("node_inputs", "leader", &v);

    // Node 0 follows node 2, which runs a recovery into the next generation.
    let mut follower = both_up.to_vec();
    let from2 = |kind, gen| Op::Frame {
        link: Accepted(1),
        src: 1,
        dst: 1,
        gen,
        kind,
        arg: 1,
        flags: 0b111,
        extra: vec![],
    };
    follower[0] = Op::Connected(1);
    follower[1] = Op::Accepted(1);
    follower[3] = Op::Connected(2);
    follower[4] = Op::Accepted(2);
    follower.extend([
        from2(KEEPALIVE, 0),
        frame(Accepted(0), KEEPALIVE),
        Op::Deadline,
        from2(RECOVERY_START, 1),
        from2(RECOVERY_COMMIT, 1),
        from2(RECONFIGURED, 1),
        from2(KEEPALIVE, 0),
        Op::Deadline,
        Op::Deadline,
    ]);
    write("node_inputs", "follower", &program(0, &follower));

    // A two-node cluster with TwoNode, alone: it wins, takes the lock, is disabled, then
    // stopped, which steps it down and drops TwoNode quorum (found by the fuzzer).
    let mut v = Vec::new();
    NodeSetup {
        shape: 2,
        pnn: 0,
        keepalive: 9,
        limit: 3,
        connect_timeout: 11,
        reconnect: 11,
        seed: 15,
    }
    .write(&mut v);
    for op in [
        Op::Control {
            which: 16,
            line: vec![],
        },
        Op::Leap(11),
        Op::Control {
            which: 21,
            line: vec![],
        },
        Op::Lock(0),
        Op::Control {
            which: 23,
            line: vec![],
        },
        Op::Deadline,
    ] {
        op.write(&mut v);
    }
    write("node_inputs", "two-node-stop", &v);
}

fn main() {
    wire_seeds();
    text_seeds();
    node_seeds();
    println!("seeds written under {}/corpus", env!("CARGO_MANIFEST_DIR"));
}
