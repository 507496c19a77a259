//! The virtual network: directed links with latency, jitter, loss, duplication and reordering,
//! cuts (partitions, symmetric or one-way), and TCP connections over them.
//!
//! The nodes talk TCP, so packet-level faults are modelled beneath a reliable, in-order byte
//! stream, as a kernel would present them: a lost segment arrives late (retransmitted after the
//! retransmission timeout, doubling each time), a reordered segment holds back the ones behind
//! it (head-of-line blocking), a duplicated segment is discarded by the receiving TCP (counted,
//! never delivered twice). A cut path loses nothing either: segments wait in the sender's
//! queue and arrive after the path heals, unless an endpoint closed meanwhile; no endpoint sees
//! EOF because of a cut (a pulled cable), so only keepalives reveal it. A connection attempt
//! across a cut goes unanswered (the node's connect timeout fires). EOF comes from a FIN (the
//! other side closed, or its process died and the kernel closed its sockets) and a reset from a
//! segment reaching a closed socket on a host that is up.

use crate::rng::Rng;
use crate::time::Instant;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;
use core::time::Duration;

/// How one directed link behaves. Probabilities are per segment, in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkParams {
    /// One-way latency.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..jitter`.
    pub jitter: Duration,
    /// Probability that a transmission of a segment is lost (each retransmission draws again).
    pub loss: f64,
    /// Probability that a segment is duplicated in the network.
    pub dup: f64,
    /// Probability that a segment is overtaken: it is delayed by up to `reorder_window`.
    pub reorder: f64,
    /// The extra delay of a reordered segment is drawn from `0..reorder_window`.
    pub reorder_window: Duration,
}

impl LinkParams {
    /// A quiet LAN: 100 us latency, 50 us jitter, no loss.
    pub const LAN: LinkParams = LinkParams {
        latency: Duration::from_micros(100),
        jitter: Duration::from_micros(50),
        loss: 0.0,
        dup: 0.0,
        reorder: 0.0,
        reorder_window: Duration::from_millis(5),
    };
}

impl Default for LinkParams {
    fn default() -> Self {
        LinkParams::LAN
    }
}

/// Network-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfig {
    /// Every link's parameters unless overridden by a fault.
    pub default: LinkParams,
    /// TCP's minimum retransmission timeout (Linux: 200 ms); it doubles at each retransmission.
    pub rto_min: Duration,
    /// Most retransmissions drawn for one segment (a bound on the delay loss can add).
    pub max_retransmits: u32,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            default: LinkParams::LAN,
            rto_min: Duration::from_millis(200),
            max_retransmits: 4,
        }
    }
}

impl NetConfig {
    /// The longest one-way delay a segment can see on a link with `p` (latency, jitter,
    /// reordering and every retransmission), cuts aside.
    pub fn worst_delay(&self, p: &LinkParams) -> Duration {
        let mut d = p.latency + p.jitter;
        if p.reorder > 0.0 {
            d += p.reorder_window;
        }
        if p.loss > 0.0 {
            for k in 0..self.max_retransmits {
                d += self.rto_min * (1u32 << k.min(16));
            }
        }
        d
    }
}

/// The bytes of one frame on its way. A frame that fits (every frame the nodes send in a steady
/// state: keepalives are 48 bytes, hellos 60) travels inline, so carrying it allocates nothing;
/// a larger one (up to `wire::MAX_FRAME_LEN`) is boxed.
#[derive(Clone)]
pub(super) enum Frame {
    /// Up to [`Frame::INLINE`] bytes, in place.
    Inline {
        /// How many of `bytes` are the frame.
        len: u8,
        /// The frame, then padding.
        bytes: [u8; Frame::INLINE],
    },
    /// A larger frame.
    Boxed(Box<[u8]>),
}

impl Frame {
    /// The largest frame carried inline.
    pub const INLINE: usize = 64;

    /// A copy of `frame`.
    pub fn new(frame: &[u8]) -> Self {
        if frame.len() <= Self::INLINE {
            let mut bytes = [0; Self::INLINE];
            bytes[..frame.len()].copy_from_slice(frame);
            Frame::Inline {
                len: frame.len() as u8,
                bytes,
            }
        } else {
            Frame::Boxed(frame.into())
        }
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Frame::Inline { len, bytes } => &bytes[..*len as usize],
            Frame::Boxed(b) => b,
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({} bytes)", self.bytes().len())
    }
}

/// What is carried on a connection, in one direction.
#[derive(Clone, Debug)]
pub(super) enum Segment {
    /// Connection request, from the client's `local` address.
    Syn { local: IpAddr },
    /// The server's kernel accepted.
    SynAck,
    /// Nobody listens (the daemon is dead but its host is up).
    Refused,
    /// One frame.
    Data(Frame),
    /// The sender closed (or its process died).
    Fin,
    /// A segment reached a closed socket.
    Rst,
}

/// One direction of a connection.
#[derive(Clone, Debug, Default)]
pub(super) struct Dir {
    /// Arrival time of the last segment sent: later ones never arrive before it (TCP order).
    pub last_arrival: Instant,
    /// Segments held back by a cut path, in order.
    pub stalled: VecDeque<Segment>,
    /// Segments scheduled and not yet arrived.
    pub in_flight: u32,
}

/// A TCP connection. Endpoint 0 is the client (who connected), 1 the server; direction `d`
/// carries what endpoint `d` sends.
#[derive(Clone, Debug)]
pub(super) struct Conn {
    pub ends: [usize; 2],
    pub open: [bool; 2],
    pub dirs: [Dir; 2],
}

/// Packet-level things that happened to a segment (they only change its timing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mishaps {
    /// Times it was lost and retransmitted.
    pub retransmits: u32,
    /// A duplicate was discarded by the receiving TCP.
    pub duplicated: bool,
    /// It was overtaken by later segments in the network (and held them back).
    pub reordered: bool,
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Segments sent.
    pub segments: u64,
    /// Retransmissions after loss.
    pub retransmits: u64,
    /// Duplicates discarded.
    pub duplicates: u64,
    /// Segments reordered.
    pub reordered: u64,
    /// Segments that waited for a cut path to heal.
    pub stalled: u64,
    /// Connection attempts lost in a cut.
    pub unanswered_connects: u64,
    /// Connections opened (a steady cluster opens none).
    pub connections: u64,
}

/// What became of an arriving segment.
#[derive(Debug)]
pub(super) enum Arrival {
    /// Handed to the receiving endpoint.
    Deliver(Segment),
    /// Waiting for the path to heal.
    Stalled,
    /// Reached a closed socket: a reset goes back if the host is up (never for a FIN or RST).
    Closed { reset: bool },
    /// Lost for good (a handshake segment across a cut).
    Lost,
}

/// Links, cuts and connections.
#[derive(Debug)]
pub(super) struct Net {
    pub cfg: NetConfig,
    overrides: BTreeMap<(usize, usize), LinkParams>,
    /// Directed paths that are down, with how many faults cut them.
    cuts: BTreeMap<(usize, usize), u32>,
    pub conns: BTreeMap<u64, Conn>,
    /// `out[i][j]`: node i's current outgoing connection to j, as the node knows it.
    pub out: Vec<Vec<Option<u64>>>,
    /// Per directed path: the (connection, direction) pairs with stalled segments.
    stalled: BTreeMap<(usize, usize), alloc::collections::BTreeSet<(u64, usize)>>,
    next_conn: u64,
    pub stats: NetStats,
}

fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn frac(rng: &mut Rng, d: Duration) -> Duration {
    let n = d.as_nanos() as u64;
    Duration::from_nanos(rng.below(n.max(1)))
}

impl Net {
    pub fn new(n: usize, cfg: NetConfig) -> Self {
        Net {
            cfg,
            overrides: BTreeMap::new(),
            cuts: BTreeMap::new(),
            conns: BTreeMap::new(),
            out: alloc::vec![alloc::vec![None; n]; n],
            stalled: BTreeMap::new(),
            next_conn: 1,
            stats: NetStats::default(),
        }
    }

    /// Whether segments can go from `a` to `b` now.
    pub fn path(&self, a: usize, b: usize) -> bool {
        !self.cuts.contains_key(&(a, b))
    }

    /// Cuts `a -> b` once more.
    pub fn cut(&mut self, a: usize, b: usize) {
        *self.cuts.entry((a, b)).or_insert(0) += 1;
    }

    /// Undoes one cut of `a -> b`; true if the path is now up.
    pub fn restore(&mut self, a: usize, b: usize) -> bool {
        match self.cuts.get_mut(&(a, b)) {
            Some(c) if *c > 1 => {
                *c -= 1;
                false
            }
            Some(_) => {
                self.cuts.remove(&(a, b));
                true
            }
            None => false,
        }
    }

    /// Removes every cut; returns the paths that came up.
    pub fn heal_all(&mut self) -> Vec<(usize, usize)> {
        let up: Vec<(usize, usize)> = self.cuts.keys().copied().collect();
        self.cuts.clear();
        up
    }

    /// Sets (or, with `None`, resets) the parameters of `a -> b`.
    pub fn set_params(&mut self, a: usize, b: usize, p: Option<LinkParams>) {
        match p {
            Some(p) => {
                self.overrides.insert((a, b), p);
            }
            None => {
                self.overrides.remove(&(a, b));
            }
        }
    }

    /// Resets every link to the default parameters.
    pub fn reset_params(&mut self) {
        self.overrides.clear();
    }

    /// The parameters of `a -> b`.
    pub fn params(&self, a: usize, b: usize) -> LinkParams {
        self.overrides
            .get(&(a, b))
            .copied()
            .unwrap_or(self.cfg.default)
    }

    /// Draws the delay of one segment from `a` to `b`.
    pub fn sample(&mut self, rng: &mut Rng, a: usize, b: usize) -> (Duration, Mishaps) {
        let p = self.params(a, b);
        let mut m = Mishaps::default();
        let mut d = p.latency + frac(rng, p.jitter);
        // Draw only what the link can do, so a quiet link costs one random number.
        if p.reorder > 0.0 && unit(rng) < p.reorder {
            m.reordered = true;
            d += frac(rng, p.reorder_window);
        }
        if p.loss > 0.0 {
            while m.retransmits < self.cfg.max_retransmits && unit(rng) < p.loss {
                d += self.cfg.rto_min * (1u32 << m.retransmits.min(16));
                m.retransmits += 1;
            }
        }
        if p.dup > 0.0 && unit(rng) < p.dup {
            m.duplicated = true;
        }
        self.stats.segments += 1;
        self.stats.retransmits += m.retransmits as u64;
        self.stats.duplicates += m.duplicated as u64;
        self.stats.reordered += m.reordered as u64;
        (d, m)
    }

    /// Opens a connection from `client` to `server`; the caller sends the SYN. The server's
    /// end exists once the SYN reaches it ([`Net::accept`]).
    pub fn open(&mut self, client: usize, server: usize) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        self.stats.connections += 1;
        self.conns.insert(
            id,
            Conn {
                ends: [client, server],
                open: [true, false],
                dirs: [Dir::default(), Dir::default()],
            },
        );
        id
    }

    /// The server's kernel accepted the SYN: its end is open.
    pub fn accept(&mut self, conn: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.open[1] = true;
        }
    }

    /// Schedules `seg` on direction `dir` of `conn` sent at `now`; returns its arrival time (in
    /// order behind earlier segments), or `None` if the connection is gone.
    pub fn send(
        &mut self,
        rng: &mut Rng,
        conn: u64,
        dir: usize,
        now: Instant,
    ) -> Option<(Instant, Mishaps)> {
        let (a, b) = {
            let c = self.conns.get(&conn)?;
            (c.ends[dir], c.ends[1 - dir])
        };
        let (d, m) = self.sample(rng, a, b);
        let c = self.conns.get_mut(&conn)?;
        let dr = &mut c.dirs[dir];
        let at = (now + d).max(dr.last_arrival);
        dr.last_arrival = at;
        dr.in_flight += 1;
        Some((at, m))
    }

    /// A segment reaches the far end of `dir`. `host_up`: the receiving host is up (it resets
    /// segments for closed sockets).
    pub fn arrive(&mut self, conn: u64, dir: usize, seg: Segment, host_up: bool) -> Arrival {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Arrival::Lost;
        };
        let (a, b) = (c.ends[dir], c.ends[1 - dir]);
        c.dirs[dir].in_flight = c.dirs[dir].in_flight.saturating_sub(1);
        let cut = !self.cuts.is_empty() && self.cuts.contains_key(&(a, b));
        let handshake = matches!(
            seg,
            Segment::Syn { .. } | Segment::SynAck | Segment::Refused
        );
        if handshake && cut {
            // SYNs are not queued: the connect times out on the client.
            self.stats.unanswered_connects += 1;
            self.gc(conn);
            return Arrival::Lost;
        }
        if matches!(seg, Segment::Syn { .. }) {
            // Nothing listens on this connection yet: the listener decides.
            return Arrival::Deliver(seg);
        }
        if cut || !c.dirs[dir].stalled.is_empty() {
            c.dirs[dir].stalled.push_back(seg);
            self.stalled.entry((a, b)).or_default().insert((conn, dir));
            self.stats.stalled += 1;
            return Arrival::Stalled;
        }
        if !c.open[1 - dir] {
            let reset = host_up && !matches!(seg, Segment::Fin | Segment::Rst | Segment::Refused);
            self.gc(conn);
            return Arrival::Closed { reset };
        }
        Arrival::Deliver(seg)
    }

    /// Takes the segments stalled on `a -> b` (the path just healed), per connection and
    /// direction, in order.
    pub fn take_stalled(&mut self, a: usize, b: usize) -> Vec<(u64, usize, Vec<Segment>)> {
        let mut v = Vec::new();
        for (id, dir) in self.stalled.remove(&(a, b)).unwrap_or_default() {
            if let Some(c) = self.conns.get_mut(&id) {
                v.push((id, dir, c.dirs[dir].stalled.drain(..).collect()));
            }
        }
        v
    }

    /// Marks a stalled segment as rescheduled to arrive at `at` (in order).
    pub fn resend(&mut self, conn: u64, dir: usize, at: Instant) -> Instant {
        let Some(c) = self.conns.get_mut(&conn) else {
            return at;
        };
        let dr = &mut c.dirs[dir];
        let at = at.max(dr.last_arrival);
        dr.last_arrival = at;
        dr.in_flight += 1;
        at
    }

    /// Whether endpoint `end` of `conn` is open.
    pub fn is_open(&self, conn: u64, end: usize) -> bool {
        self.conns.get(&conn).is_some_and(|c| c.open[end])
    }

    /// Closes endpoint `end`; true if the other endpoint is still open (a FIN is worth sending).
    pub fn close(&mut self, conn: u64, end: usize) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        c.open[end] = false;
        let other = c.open[1 - end];
        self.gc(conn);
        other
    }

    /// The open endpoints on node `i`: `(conn, end)`.
    pub fn endpoints_of(&self, i: usize) -> Vec<(u64, usize)> {
        let mut v = Vec::new();
        for (&id, c) in &self.conns {
            for end in 0..2 {
                if c.ends[end] == i && c.open[end] {
                    v.push((id, end));
                }
            }
        }
        v
    }

    /// Forgets a connection once nothing can happen on it any more.
    fn gc(&mut self, conn: u64) {
        if let Some(c) = self.conns.get(&conn) {
            let idle = |d: &Dir| d.in_flight == 0 && d.stalled.is_empty();
            if !c.open[0] && !c.open[1] && idle(&c.dirs[0]) && idle(&c.dirs[1]) {
                self.conns.remove(&conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_arrive_in_order_even_when_reordered_or_lost() {
        let mut cfg = NetConfig::default();
        cfg.default.loss = 0.3;
        cfg.default.reorder = 0.3;
        let mut net = Net::new(2, cfg);
        let mut rng = Rng::new(5);
        let id = net.open(0, 1);
        let mut last = Instant::ZERO;
        let mut retx = 0;
        for i in 0..500u64 {
            let (at, m) = net
                .send(&mut rng, id, 0, Instant::from_nanos(i * 1000))
                .unwrap();
            assert!(at >= last);
            last = at;
            retx += m.retransmits;
        }
        assert!(retx > 50, "{retx}");
        assert_eq!(net.stats.segments, 500);
        let worst = net.cfg.worst_delay(&net.params(0, 1));
        assert_eq!(
            worst,
            Duration::from_micros(150) + Duration::from_millis(5 + 3000)
        );
    }

    #[test]
    fn cut_paths_stall_data_and_lose_handshakes() {
        let mut net = Net::new(2, NetConfig::default());
        let id = net.open(0, 1);
        net.cut(0, 1);
        net.cut(0, 1);
        assert!(matches!(
            net.arrive(id, 0, Segment::Fin, true),
            Arrival::Stalled
        ));
        assert!(matches!(
            net.arrive(
                id,
                0,
                Segment::Syn {
                    local: "127.0.0.1".parse().unwrap()
                },
                true
            ),
            Arrival::Lost
        ));
        assert!(!net.restore(0, 1), "cut twice, restored once");
        assert!(net.restore(0, 1));
        assert!(net.path(0, 1));
        let s = net.take_stalled(0, 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].2.len(), 1);
        // The other way was never cut.
        assert!(matches!(
            net.arrive(id, 1, Segment::SynAck, true),
            Arrival::Deliver(Segment::SynAck)
        ));
    }

    #[test]
    fn closed_sockets_reset_data_but_not_fins() {
        let mut net = Net::new(2, NetConfig::default());
        let id = net.open(0, 1);
        net.accept(id);
        assert!(net.close(id, 1));
        assert!(matches!(
            net.arrive(id, 0, Segment::Fin, true),
            Arrival::Closed { reset: false }
        ));
        // (Any segment but a FIN or a reset is answered like data.)
        assert!(matches!(
            net.arrive(id, 0, Segment::SynAck, true),
            Arrival::Closed { reset: true }
        ));
        // A host that is down answers nothing.
        assert!(matches!(
            net.arrive(id, 0, Segment::SynAck, false),
            Arrival::Closed { reset: false }
        ));
        assert!(!net.close(id, 0));
        assert!(net.conns.is_empty(), "both ends closed, nothing in flight");
    }
}
