//! Embedding pharos-core: three nodes in one process, wired by an in-memory network on a
//! virtual clock. Every input goes through the one drive path (`Driver`); frames, actions and
//! notifications come back through `Host`. Node 2 loses power (falls silent), then comes back.
//!
//!     cargo run -p pharos-examples --example embed
use pharos_core::config::{NodesFile, Tunables};
use pharos_core::drive::{Driver, Feedback, Host};
use pharos_core::{Action, ConnId, Event, Instant, Link, LockResult, Node, NodeConfig};
use pharos_core::{Notification, Pnn};
use std::collections::VecDeque;

/// In flight: (from, to, a frame, or `None` for a connect).
type Wire = VecDeque<(usize, usize, Option<Vec<u8>>)>;

/// Node `me`'s shell: what it sends becomes another node's input.
struct Shell<'a>(usize, Instant, &'a mut Wire);

impl Host for Shell<'_> {
    fn transmit(&mut self, peer: Pnn, frame: &[u8]) {
        self.2
            .push_back((self.0, peer.index(), Some(frame.to_vec())));
    }
    fn act(&mut self, action: Action, feedback: &mut Feedback) {
        match action {
            Action::Connect { peer, .. } => self.2.push_back((self.0, peer.index(), None)),
            // No lock service: every request is granted (pharosd's `--cluster-lock none`).
            Action::AcquireLock => feedback.push(Event::Lock(LockResult::Granted)),
            _ => {} // closes, replies, address releases: nothing to do in memory
        }
    }
    fn notify(&mut self, n: Notification) {
        let secs = self.1.as_nanos() as f64 / 1e9;
        println!("{secs:7.2}s node {}: {n:?}", self.0);
    }
}

fn main() {
    let nodes = NodesFile::parse("10.0.0.1\n10.0.0.2\n10.0.0.3\n").unwrap();
    let mut tunables = Tunables::default();
    tunables.set("KeepaliveInterval", "100ms").unwrap();
    let start = |i: usize, at: Instant| {
        let c = NodeConfig::new(nodes.clone(), Pnn(i as u32), 4379, tunables.clone()).unwrap();
        Node::new(c.with_start_stamp(at.as_nanos() / 1_000_000), i as u64, at)
    };
    let (mut driver, mut wire, mut up) = (Driver::new(), Wire::new(), [true; 3]);
    let mut node: Vec<Node> = (0..3).map(|i| start(i, Instant::ZERO)).collect();
    for (i, n) in node.iter_mut().enumerate() {
        driver.drain(n, Instant::ZERO, &mut Shell(i, Instant::ZERO, &mut wire));
    }
    for step in 0..3000u64 {
        let at = Instant::from_nanos(step * 10_000_000); // every 10 ms of virtual time
        if step == 1000 || step == 2000 {
            up[2] = step == 2000;
            let what = if up[2] { "comes back" } else { "loses power" };
            println!("--- node 2 {what}");
            if up[2] {
                node[2] = start(2, at);
                driver.drain(&mut node[2], at, &mut Shell(2, at, &mut wire));
            }
        }
        // Deliver what was in flight (a connect: Accepted there, Connected here), then timers.
        for _ in 0..wire.len() {
            let (from, to, frame) = wire.pop_front().unwrap();
            if !up[from] || !up[to] {
                continue; // a dead node neither answers nor sends
            }
            let conn = ConnId((from * 10 + to) as u64);
            let mut feed = |me: usize, event| {
                let _ = driver.drive(&mut node[me], at, event, &mut Shell(me, at, &mut wire));
            };
            let (link, peer) = (Link::In(conn), Pnn(to as u32));
            match &frame {
                Some(bytes) => feed(to, Event::Frame { link, bytes }),
                None => {
                    let addr = [10, 0, 0, from as u8 + 1].into();
                    feed(to, Event::Accepted { conn, addr });
                    feed(from, Event::Connected { peer });
                }
            }
        }
        for (me, n) in node.iter_mut().enumerate() {
            if up[me] && n.poll_timeout().is_some_and(|d| d <= at) {
                let _ = driver.drive(n, at, Event::Timeout, &mut Shell(me, at, &mut wire));
            }
        }
    }
    let agreed = (0..3).all(|i| node[i].quorate() && node[i].recmaster() == node[0].recmaster());
    println!(
        "all quorate, following recovery master {}",
        node[0].recmaster()
    );
    assert!(agreed, "the cluster did not settle again");
}
