//! One drive path for every shell, the simulator, the benches and the fuzz driver.
//!
//! [`Driver::drive`] feeds one input to a [`Node`], then carries out what the node asks in the
//! contract's order (frames first, then actions, then notifications), feeds back at once what
//! the host learned while acting (a connect that failed before it started, a lock answer it had
//! at hand), and goes on until the node has nothing more to say. [`Driver::frames`] splits a
//! connection's received bytes into frames and feeds them one by one, with a bound on the work
//! per call and without reading past the point where the node closed the link. No shell needs
//! a loop over `poll_*` of its own.
//!
//! ```
//! use pharos_core::config::{NodesFile, Tunables};
//! use pharos_core::drive::{Driver, Feedback, Host};
//! use pharos_core::{Action, Event, Instant, Node, NodeConfig, Notification, Pnn};
//!
//! /// A host that records what it was asked.
//! #[derive(Default)]
//! struct Recorder { frames: Vec<(Pnn, usize)>, actions: Vec<Action>, told: Vec<Notification> }
//!
//! impl Host for Recorder {
//!     fn transmit(&mut self, peer: Pnn, frame: &[u8]) { self.frames.push((peer, frame.len())) }
//!     fn act(&mut self, action: Action, feedback: &mut Feedback) {
//!         // A connect that fails before it starts is reported back at once.
//!         if let Action::Connect { peer, .. } = action { feedback.push(Event::ConnectFailed { peer }) }
//!         self.actions.push(action);
//!     }
//!     fn notify(&mut self, n: Notification) { self.told.push(n) }
//! }
//!
//! let nodes = NodesFile::parse("127.0.0.1\n127.0.0.2\n").unwrap();
//! let config = NodeConfig::new(nodes, Pnn(0), 4379, Tunables::default()).unwrap();
//! let now = Instant::from_nanos(0);
//! let mut node = Node::new(config, 1, now);
//! let (mut driver, mut host) = (Driver::new(), Recorder::default());
//! driver.drain(&mut node, now, &mut host);
//! assert!(matches!(host.actions[0], Action::Connect { peer: Pnn(1), .. }));
//! // The failure was fed back: the node waits for ReconnectInterval before the next try.
//! assert_eq!(host.actions.len(), 1);
//! ```

use crate::error::Error;
use crate::node::{Action, Event, Node, Notification};
use crate::time::Instant;
use crate::types::{Link, Pnn};
use crate::wire::{self, MAX_FRAME_LEN};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// What a shell provides to the [`Driver`].
pub trait Host {
    /// A frame for our outgoing connection to `peer`: append it to that connection's write
    /// buffer, or drop it if there is no established connection.
    fn transmit(&mut self, peer: Pnn, frame: &[u8]);
    /// Carry out `action`. What the host learns at once goes into `feedback`; it reaches the
    /// node as soon as the node's current outputs are drained, before any other input.
    fn act(&mut self, action: Action, feedback: &mut Feedback);
    /// Something happened: log it, tell the embedder. Nothing by default.
    fn notify(&mut self, _notification: Notification) {}
}

/// Inputs a host learned while carrying out actions (no frames: those come with
/// [`Driver::frames`] or [`Driver::drive`]).
#[derive(Debug, Default)]
pub struct Feedback {
    queue: VecDeque<Event<'static>>,
}

impl Feedback {
    /// Queues `event` for the node.
    pub fn push(&mut self, event: Event<'static>) {
        self.queue.push_back(event);
    }
}

/// How [`Driver::frames`] left the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frames {
    /// Every whole frame was fed; what is left is the start of the next one.
    Drained,
    /// The frame budget ran out with whole frames left: call again (next loop turn).
    Budget,
    /// The node closed the link (or the stream could not be framed and the node was told):
    /// drop the connection and whatever it still holds.
    Closed,
}

/// Received bytes of one connection, reassembled into frames. Grows only for a frame larger
/// than it is (up to the largest frame), and is reused for the connection's whole life.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
    start: usize,
    filled: usize,
}

impl FrameBuffer {
    /// A buffer with room for `capacity` bytes at first.
    pub fn with_capacity(capacity: usize) -> Self {
        FrameBuffer {
            buf: alloc::vec![0; capacity.clamp(wire::HEADER_LEN, MAX_FRAME_LEN)],
            start: 0,
            filled: 0,
        }
    }

    /// The free room to read into (call [`FrameBuffer::filled`] with what was read). Empty only
    /// if a whole largest frame is already waiting, which [`Driver::frames`] never leaves.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.filled == self.buf.len() && self.start > 0 {
            // Move the partial frame to the front instead of growing.
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.filled == self.buf.len() && self.buf.len() < MAX_FRAME_LEN {
            let len = (self.buf.len() * 2).clamp(wire::HEADER_LEN, MAX_FRAME_LEN);
            self.buf.resize(len, 0);
        }
        &mut self.buf[self.filled..]
    }

    /// `n` bytes were read into [`FrameBuffer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// Bytes received and not yet fed.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.filled]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.filled);
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        }
    }

    /// Forgets everything received.
    pub fn clear(&mut self) {
        self.start = 0;
        self.filled = 0;
    }
}

/// Feeds a node and carries out its outputs, for any [`Host`].
#[derive(Debug)]
pub struct Driver {
    /// Each frame is encoded here, then handed to the host.
    scratch: Vec<u8>,
    feedback: Feedback,
    /// The link whose frames are being fed, and whether the node closed it meanwhile.
    watching: Option<Link>,
    watched_closed: bool,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    /// A driver with room for the common frames.
    pub fn new() -> Self {
        Driver {
            scratch: Vec::with_capacity(512),
            feedback: Feedback {
                queue: VecDeque::with_capacity(16),
            },
            watching: None,
            watched_closed: false,
        }
    }

    /// Feeds `event` at `now`, then drains. The node's answer to the event itself (an error
    /// for misuse); what it says to fed-back inputs is only logged.
    pub fn drive<H: Host>(
        &mut self,
        node: &mut Node,
        now: Instant,
        event: Event<'_>,
        host: &mut H,
    ) -> Result<(), Error> {
        let r = node.handle(now, event);
        self.drain(node, now, host);
        r
    }

    /// Carries out everything the node has to say (after [`Node::new`], or after a `handle`),
    /// feeding back what the host learned, until the node is quiet.
    pub fn drain<H: Host>(&mut self, node: &mut Node, now: Instant, host: &mut H) {
        loop {
            loop {
                self.scratch.clear();
                let Some(peer) = node.poll_transmit(&mut self.scratch) else {
                    break;
                };
                host.transmit(peer, &self.scratch);
            }
            while let Some(action) = node.poll_action() {
                if let Action::Close { link } = action {
                    if self.watching == Some(link) {
                        self.watched_closed = true;
                    }
                }
                host.act(action, &mut self.feedback);
            }
            while let Some(n) = node.poll_notification() {
                host.notify(n);
            }
            let Some(event) = self.feedback.queue.pop_front() else {
                break;
            };
            if let Err(e) = node.handle(now, event) {
                log::debug!("fed-back input refused: {e}");
            }
        }
    }

    /// Feeds the whole frames waiting in `buf`, which arrived on `link`, at most `budget` of
    /// them, draining after each. A stream that cannot be framed is reported to the node as
    /// [`Event::BadStream`]; once the node closes the link nothing more of it is fed.
    pub fn frames<H: Host>(
        &mut self,
        node: &mut Node,
        now: Instant,
        link: Link,
        buf: &mut FrameBuffer,
        budget: usize,
        host: &mut H,
    ) -> Frames {
        self.watching = Some(link);
        self.watched_closed = false;
        let mut fed = 0;
        let outcome = loop {
            match wire::frame_len(buf.pending()) {
                Ok(Some(len)) => {
                    if fed == budget {
                        break Frames::Budget;
                    }
                    fed += 1;
                    let r = node.handle(
                        now,
                        Event::Frame {
                            link,
                            bytes: &buf.pending()[..len],
                        },
                    );
                    if let Err(e) = r {
                        log::debug!("frame refused: {e}");
                    }
                    buf.consume(len);
                    self.drain(node, now, host);
                    if self.watched_closed {
                        break Frames::Closed;
                    }
                }
                Ok(None) => break Frames::Drained,
                Err(e) => {
                    log::warn!("closing {link:?}: {e}");
                    let r = self.drive(node, now, Event::BadStream { link }, host);
                    if let Err(e) = r {
                        log::debug!("bad stream refused: {e}");
                    }
                    break Frames::Closed;
                }
            }
        };
        if outcome == Frames::Closed {
            buf.clear();
        }
        self.watching = None;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodesFile, Tunables};
    use crate::node::NodeConfig;
    use crate::types::ConnId;
    use crate::wire::{Header, Message};
    use core::net::IpAddr;

    #[derive(Default)]
    struct Recorder {
        frames: Vec<Pnn>,
        actions: Vec<Action>,
    }

    impl Host for Recorder {
        fn transmit(&mut self, peer: Pnn, _frame: &[u8]) {
            self.frames.push(peer);
        }
        fn act(&mut self, action: Action, _feedback: &mut Feedback) {
            self.actions.push(action);
        }
    }

    fn node() -> Node {
        let nodes = NodesFile::parse("127.0.0.1\n127.0.0.2\n").unwrap();
        let config = NodeConfig::new(nodes, Pnn(0), 4379, Tunables::default()).unwrap();
        Node::new(config, 1, Instant::ZERO)
    }

    fn goodbye_from(src: u32) -> Vec<u8> {
        let m = Message::Goodbye;
        let h = Header {
            op: m.op(),
            src: Pnn(src),
            dst: Pnn(0),
            generation: crate::Generation(1),
            request_id: 0,
        };
        let mut v = Vec::new();
        wire::encode(&h, &m, &mut v);
        v
    }

    #[test]
    fn frame_buffer_reassembles_and_grows_only_for_large_frames() {
        let mut b = FrameBuffer::with_capacity(64);
        let f = goodbye_from(1);
        // Three frames, fed byte by byte.
        for byte in f.iter().chain(&f).chain(&f) {
            b.spare()[0] = *byte;
            b.filled(1);
        }
        assert_eq!(b.pending().len(), 3 * f.len());
        assert_eq!(b.buf.len(), 128, "grown once, for the third frame");
        b.consume(f.len());
        assert_eq!(b.pending(), &[&f[..], &f[..]].concat()[..]);
        b.consume(2 * f.len());
        assert!(b.pending().is_empty());
    }

    #[test]
    fn frames_are_fed_within_the_budget_and_not_past_a_close() {
        let mut n = node();
        let (mut d, mut h) = (Driver::new(), Recorder::default());
        d.drain(&mut n, Instant::ZERO, &mut h);
        let link = Link::In(ConnId(7));
        n.handle(
            Instant::ZERO,
            Event::Accepted {
                conn: ConnId(7),
                addr: IpAddr::from([127, 0, 0, 2]),
            },
        )
        .unwrap();
        // A Goodbye before its Hello: the pending connection is closed; the second frame is
        // never fed.
        let mut b = FrameBuffer::with_capacity(1024);
        let two = [goodbye_from(1), goodbye_from(1)].concat();
        b.spare()[..two.len()].copy_from_slice(&two);
        b.filled(two.len());
        let r = d.frames(&mut n, Instant::ZERO, link, &mut b, 8, &mut h);
        assert_eq!(r, Frames::Closed);
        assert!(b.pending().is_empty());
        assert_eq!(n.stats().unproven_connections, 1);
        // Budget: 0 frames allowed, one waiting.
        let mut b = FrameBuffer::with_capacity(1024);
        let one = goodbye_from(1);
        b.spare()[..one.len()].copy_from_slice(&one);
        b.filled(one.len());
        let r = d.frames(&mut n, Instant::ZERO, link, &mut b, 0, &mut h);
        assert_eq!(r, Frames::Budget);
        assert_eq!(b.pending().len(), one.len());
        // Garbage: the node hears of it, the buffer is dropped.
        let mut b = FrameBuffer::with_capacity(1024);
        b.spare()[..8].copy_from_slice(b"GET / HT");
        b.filled(8);
        let bad = n.stats().bad_streams;
        let r = d.frames(&mut n, Instant::ZERO, link, &mut b, 8, &mut h);
        assert_eq!(r, Frames::Closed);
        assert_eq!(n.stats().bad_streams, bad + 1);
    }
}
