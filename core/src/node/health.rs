//! Dead-peer detection, CTDB's rule: every KeepaliveInterval, a connected peer from which no
//! frame arrived during the interval gets one more strike; KeepaliveLimit consecutive strikes
//! and it is dead. Any frame clears the strikes. Keepalives go to every peer we can write to.

use super::{Node, OutState};
use crate::types::Pnn;
use crate::wire::Message;

impl Node {
    pub(super) fn keepalive_tick(&mut self) {
        self.stats.keepalive_ticks += 1;
        let interval = self.tunables.keepalive_interval;
        // Keep the phase; after a long stall (a frozen process) restart from now.
        self.next_keepalive += interval;
        if self.next_keepalive <= self.now {
            self.next_keepalive = self.now + interval;
        }
        let limit = self.tunables.keepalive_limit;
        let view = Message::Keepalive(self.view());
        for i in 0..self.peers.len() {
            let peer = Pnn(i as u32);
            if !self.is_remote(peer) {
                continue;
            }
            let p = &mut self.peers[i];
            if p.connected {
                if p.rx_count == 0 {
                    p.silent_intervals += 1;
                } else {
                    p.silent_intervals = 0;
                }
                p.rx_count = 0;
                if p.silent_intervals >= limit {
                    log::info!(
                        "node {peer}: no frame for {limit} keepalive intervals of {} ms",
                        interval.as_millis()
                    );
                    self.peer_dead(peer, "keepalive timeout");
                    continue;
                }
            }
            if self.peers[i].out == OutState::Up {
                self.send(peer, view);
            }
        }
    }
}
