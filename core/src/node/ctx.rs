//! What every layer of the node shares: the clock, who this node is, its tunables, the timer
//! table, the view its keepalives announce, and the output queues. Layers write outputs here;
//! none of them reaches into another layer.

use super::io::{Action, Notification, Stats};
use super::timer::TimerTable;
use crate::config::{NodesFile, Tunables};
use crate::time::Instant;
use crate::types::{Generation, NodeSet, Pnn};
use crate::wire::{self, Header, Keepalive, Message};
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// This node, as its Hello describes it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Identity {
    pub pnn: Pnn,
    /// Random per start: tells a restarted node from a reconnected one.
    pub incarnation: u64,
    /// When it started, on the scale all nodes share (the election prefers the earliest).
    pub start_stamp: u64,
    /// May be recovery master.
    pub recmaster_capable: bool,
}

/// A frame waiting to be encoded.
#[derive(Clone, Copy, Debug)]
pub(super) struct Queued {
    pub peer: Pnn,
    pub header: Header,
    pub message: Message,
    /// Its encoded entries, in `Ctx::entries` (for a message with entries).
    entries: (u32, u32),
}

/// The shared context.
#[derive(Debug)]
pub(super) struct Ctx {
    pub now: Instant,
    pub me: Identity,
    pub port: u16,
    pub nodes: NodesFile,
    pub tunables: Tunables,
    pub timers: TimerTable,
    /// The generation every frame's header carries (the recovery layer moves it).
    pub generation: Generation,
    /// What our keepalives say now; each layer keeps its part current, and the node tells the
    /// peers at the end of the event in which it changed.
    pub view: Keepalive,
    /// Peers whose outgoing connection is established: the only ones frames can go to.
    pub writable: NodeSet,
    pub stats: Stats,
    transmits: VecDeque<Queued>,
    /// Encoded entries of queued messages that have them (a cold path: lists change rarely).
    entries: Vec<u8>,
    actions: VecDeque<Action>,
    notifications: VecDeque<Notification>,
}

impl Ctx {
    pub fn new(
        now: Instant,
        me: Identity,
        port: u16,
        nodes: NodesFile,
        tunables: Tunables,
        view: Keepalive,
    ) -> Self {
        let n = nodes.len();
        Ctx {
            now,
            me,
            port,
            nodes,
            tunables,
            timers: TimerTable::default(),
            generation: Generation(1),
            view,
            writable: NodeSet::new(),
            stats: Stats::default(),
            // Room for a few frames per peer per event: the steady state never grows these.
            transmits: VecDeque::with_capacity(4 * n + 8),
            entries: Vec::new(),
            actions: VecDeque::with_capacity(2 * n + 8),
            notifications: VecDeque::with_capacity(2 * n + 8),
        }
    }

    /// Queues `message` for `peer` with the current generation in its header.
    pub fn send(&mut self, peer: Pnn, message: Message) {
        self.send_in(peer, message, self.generation);
    }

    /// Queues `message` for `peer` with an explicit header generation (recovery frames carry
    /// the new one).
    pub fn send_in(&mut self, peer: Pnn, message: Message, generation: Generation) {
        self.queue(peer, message, generation, (0, 0));
    }

    fn queue(&mut self, peer: Pnn, message: Message, generation: Generation, entries: (u32, u32)) {
        self.transmits.push_back(Queued {
            peer,
            header: Header {
                op: message.op(),
                src: self.me.pnn,
                dst: peer,
                generation,
                request_id: 0,
            },
            message,
            entries,
        });
    }

    /// Queues `message` for every peer we can write to.
    pub fn broadcast(&mut self, message: Message) {
        let writable = self.writable;
        for p in writable.iter() {
            self.send(p, message);
        }
    }

    /// Queues a message with entries for `peers`: `fill` appends the encoded entries and
    /// returns their count, which becomes the message's (`make` builds it from the count).
    pub fn send_entries(
        &mut self,
        peers: NodeSet,
        make: impl Fn(u32) -> Message,
        fill: impl FnOnce(&mut Vec<u8>) -> u32,
    ) {
        if peers.is_empty() {
            return;
        }
        if self.transmits.is_empty() {
            self.entries.clear();
        }
        let start = self.entries.len();
        let count = fill(&mut self.entries);
        let len = self.entries.len() - start;
        let message = make(count);
        for p in peers.iter() {
            self.queue(p, message, self.generation, (start as u32, len as u32));
        }
    }

    /// Withdraws every queued frame for `peer` (its connection is going away).
    pub fn forget_transmits(&mut self, peer: Pnn) {
        self.transmits.retain(|t| t.peer != peer);
    }

    pub fn act(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    pub fn notify(&mut self, n: Notification) {
        self.notifications.push_back(n);
    }

    /// The peer of the next queued frame.
    pub fn next_transmit(&self) -> Option<Pnn> {
        self.transmits.front().map(|t| t.peer)
    }

    /// Appends the next queued frame to `out`; returns its peer.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> Option<Pnn> {
        let t = self.transmits.pop_front()?;
        let (start, len) = (t.entries.0 as usize, t.entries.1 as usize);
        let entries = self.entries.get(start..start + len).unwrap_or(&[]);
        wire::encode_with(&t.header, &t.message, entries, out);
        Some(t.peer)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_notification(&mut self) -> Option<Notification> {
        self.notifications.pop_front()
    }

    /// Whether `pnn` is a live slot of the nodes file other than us.
    pub fn is_remote(&self, pnn: Pnn) -> bool {
        pnn != self.me.pnn && self.nodes.address_of(pnn).is_some()
    }
}
