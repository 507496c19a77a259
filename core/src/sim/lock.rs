//! The cluster lock service and each node's lock client (the part of the shell that talks to
//! it), in two flavours:
//!
//! - **fcntl**: a lock file on a cluster file system. Held until released (an unlock completes
//!   in the holder's kernel: it needs no path to the service) or until the holding process
//!   dies (crash, clean stop, host down); a frozen holder keeps it. The service never takes it
//!   away by itself ([`crate::sim::Fault::BreakLock`] models someone breaking it).
//! - **lease** (etcd-like): granted with a TTL; the client renews it every `renew_every`; the
//!   service frees it when the TTL runs out without a renewal. The client counts the TTL from
//!   when it *sent* the request, minus a safety margin, so it always gives the lock up
//!   (reports [`LockResult::Lost`]) before the service can grant it to someone else, even when
//!   it cannot reach the service. A frozen process renews nothing; when thawed, its client
//!   reports the lapse before the node sees any other input.
//!
//! Requests travel with `latency` each way and are lost when the node's path to the service is
//! cut; during an outage (the store re-electing its leader) the service answers nothing until
//! it ends. A request the client has given up on (after `timeout`, reporting
//! [`LockResult::Failed`]) is never executed: a simplification that only makes the model more
//! forgiving about liveness, not about safety.

use crate::node::LockResult;
use crate::time::Instant;
use core::time::Duration;

/// Which lock service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// fcntl-like: held until released or the holder dies.
    Fcntl,
    /// etcd-like lease.
    Lease {
        /// Time to live of a lease without renewal.
        ttl: Duration,
        /// How often the client renews.
        renew_every: Duration,
        /// How much earlier than the TTL the client gives up (must exceed the slowest node's
        /// processing delay plus one lock latency).
        margin: Duration,
    },
}

impl LockKind {
    /// A lease with TTL `ttl`, renewed every `ttl / 5`, given up `ttl / 5` early.
    pub fn lease(ttl: Duration) -> Self {
        LockKind::Lease {
            ttl,
            renew_every: ttl / 5,
            margin: ttl / 5,
        }
    }
}

/// Lock service settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockConfig {
    /// fcntl or lease.
    pub kind: LockKind,
    /// One-way latency between a node and the service.
    pub latency: Duration,
    /// How long the client waits for an answer before reporting `Failed`.
    pub timeout: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            kind: LockKind::Fcntl,
            latency: Duration::from_millis(1),
            timeout: Duration::from_secs(2),
        }
    }
}

/// Who holds the lock at the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The node.
    pub node: usize,
    /// Which life of the node's daemon took it.
    pub incarnation: u64,
    /// When the lease runs out (never for fcntl).
    pub expires: Option<Instant>,
}

impl Holder {
    /// The `node` of a holder outside the cluster (see [`crate::sim::World::seize_lock`]).
    pub const OUTSIDE: usize = usize::MAX;
}

/// A request to the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Acquire,
    Renew,
    Release,
}

/// An answer from the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    Granted,
    Contended,
    Renewed,
    NotHolder,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    Idle,
    Acquiring {
        req: u64,
        sent: Instant,
    },
    Holding {
        /// When the client gives the lease up (lease only).
        deadline: Option<Instant>,
        next_renew: Option<Instant>,
        /// An outstanding renewal: its id and when it was sent.
        renewing: Option<(u64, Instant)>,
    },
}

/// Something the service or a client wants done: the world schedules these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Out {
    /// A request from `node` reaches the service at `at`.
    ToService {
        at: Instant,
        node: usize,
        incarnation: u64,
        req: u64,
        op: Op,
    },
    /// An answer reaches `node`'s client at `at`.
    ToClient {
        at: Instant,
        node: usize,
        incarnation: u64,
        req: u64,
        reply: Reply,
    },
    /// Tell the node.
    Result { node: usize, result: LockResult },
}

/// The service and every client.
#[derive(Debug)]
pub(super) struct LockService {
    pub cfg: LockConfig,
    holder: Option<Holder>,
    clients: alloc::vec::Vec<(u64, Client)>,
    /// Nodes whose path to the service is cut.
    cut: alloc::vec::Vec<bool>,
    outage_until: Option<Instant>,
    next_req: u64,
    /// Grants so far (for reports).
    pub grants: u64,
}

impl LockService {
    pub fn new(n: usize, cfg: LockConfig) -> Self {
        LockService {
            cfg,
            holder: None,
            clients: alloc::vec![(0, Client::Idle); n],
            cut: alloc::vec![false; n],
            outage_until: None,
            next_req: 1,
            grants: 0,
        }
    }

    /// The holder at `now` (an expired lease holds nothing).
    pub fn holder(&self, now: Instant) -> Option<Holder> {
        self.holder.filter(|h| h.expires.is_none_or(|e| now < e))
    }

    /// Cuts or restores `node`'s path to the service.
    pub fn set_cut(&mut self, node: usize, cut: bool) {
        self.cut[node] = cut;
    }

    /// The service answers nothing until `until`.
    pub fn outage(&mut self, until: Instant) {
        self.outage_until = Some(self.outage_until.map_or(until, |u| u.max(until)));
    }

    /// A new daemon life on `node`: its client starts idle.
    pub fn client_started(&mut self, node: usize, incarnation: u64) {
        self.clients[node] = (incarnation, Client::Idle);
    }

    fn request(&mut self, now: Instant, node: usize, op: Op, out: &mut impl FnMut(Out)) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        if !self.cut[node] {
            out(Out::ToService {
                at: now + self.cfg.latency,
                node,
                incarnation: self.clients[node].0,
                req,
                op,
            });
        }
        req
    }

    /// The node asked for the lock.
    pub fn acquire(&mut self, now: Instant, node: usize, out: &mut impl FnMut(Out)) {
        if let Client::Holding { .. } = self.clients[node].1 {
            // The shell knows it holds it already.
            out(Out::Result {
                node,
                result: LockResult::Granted,
            });
            return;
        }
        let req = self.request(now, node, Op::Acquire, out);
        self.clients[node].1 = Client::Acquiring { req, sent: now };
    }

    /// The node gave the lock up (or its daemon is stopping cleanly). An fcntl unlock
    /// completes in the caller's own kernel, cut from the service or not; a lease is revoked
    /// by a request that may be lost, in which case it runs out at its TTL.
    pub fn release(&mut self, now: Instant, node: usize, out: &mut impl FnMut(Out)) {
        let (inc, client) = self.clients[node];
        if client != Client::Idle {
            match self.cfg.kind {
                LockKind::Fcntl => {
                    if self
                        .holder
                        .is_some_and(|h| h.node == node && h.incarnation == inc)
                    {
                        self.holder = None;
                    }
                }
                LockKind::Lease { .. } => {
                    self.request(now, node, Op::Release, out);
                }
            }
        }
        self.clients[node].1 = Client::Idle;
    }

    /// The daemon on `node` died (crash, or its host went down): an fcntl lock dies with the
    /// process; a lease lives on until its TTL.
    pub fn holder_died(&mut self, node: usize) {
        self.clients[node].1 = Client::Idle;
        if self.cfg.kind == LockKind::Fcntl && self.holder.is_some_and(|h| h.node == node) {
            self.holder = None;
        }
    }

    /// Someone outside the cluster takes the lock, if it is free, and keeps it until it is
    /// broken. Returns whether it took it.
    pub fn seize(&mut self, now: Instant) -> bool {
        if self.holder(now).is_some() {
            return false;
        }
        self.holder = Some(Holder {
            node: Holder::OUTSIDE,
            incarnation: 0,
            expires: None,
        });
        true
    }

    /// Someone breaks the lock (deletes the lock file, revokes the lease): the holder's client
    /// learns it at once. Returns the node told, if any.
    pub fn break_lock(&mut self, now: Instant) -> Option<usize> {
        let h = self.holder(now)?;
        self.holder = None;
        let (inc, c) = *self.clients.get(h.node)?;
        if inc == h.incarnation && matches!(c, Client::Holding { .. }) {
            self.clients[h.node].1 = Client::Idle;
            return Some(h.node);
        }
        None
    }

    /// A request reaches the service.
    #[allow(clippy::too_many_arguments)]
    pub fn at_service(
        &mut self,
        now: Instant,
        node: usize,
        incarnation: u64,
        req: u64,
        op: Op,
        out: &mut impl FnMut(Out),
    ) {
        if let Some(until) = self.outage_until {
            if now < until {
                out(Out::ToService {
                    at: until,
                    node,
                    incarnation,
                    req,
                    op,
                });
                return;
            }
            self.outage_until = None;
        }
        let (cinc, client) = self.clients[node];
        let waiting = cinc == incarnation
            && match (op, client) {
                (Op::Acquire, Client::Acquiring { req: r, .. }) => r == req,
                (Op::Renew, Client::Holding { renewing, .. }) => {
                    renewing.is_some_and(|(r, _)| r == req)
                }
                // A release is executed even though nobody waits for an answer.
                (Op::Release, _) => true,
                _ => false,
            };
        if !waiting {
            return;
        }
        let current = self.holder(now);
        let mine = current.is_some_and(|h| h.node == node && h.incarnation == incarnation);
        let expires = match self.cfg.kind {
            LockKind::Fcntl => None,
            LockKind::Lease { ttl, .. } => Some(now + ttl),
        };
        let reply = match op {
            Op::Acquire if current.is_none() || mine => {
                self.holder = Some(Holder {
                    node,
                    incarnation,
                    expires,
                });
                self.grants += 1;
                Reply::Granted
            }
            Op::Acquire => Reply::Contended,
            Op::Renew if mine => {
                self.holder = Some(Holder {
                    node,
                    incarnation,
                    expires,
                });
                Reply::Renewed
            }
            Op::Renew => Reply::NotHolder,
            Op::Release => {
                if mine {
                    self.holder = None;
                }
                return;
            }
        };
        if !self.cut[node] {
            out(Out::ToClient {
                at: now + self.cfg.latency,
                node,
                incarnation,
                req,
                reply,
            });
        }
    }

    /// An answer reaches `node`'s client (which is running and not frozen).
    pub fn at_client(
        &mut self,
        now: Instant,
        node: usize,
        incarnation: u64,
        req: u64,
        reply: Reply,
        out: &mut impl FnMut(Out),
    ) {
        let (cinc, client) = self.clients[node];
        if cinc != incarnation {
            return;
        }
        match (client, reply) {
            (Client::Acquiring { req: r, sent }, Reply::Granted) if r == req => {
                let (deadline, next_renew) = match self.cfg.kind {
                    LockKind::Fcntl => (None, None),
                    LockKind::Lease {
                        ttl,
                        renew_every,
                        margin,
                    } => (Some(sent + (ttl - margin)), Some(now + renew_every)),
                };
                self.clients[node].1 = Client::Holding {
                    deadline,
                    next_renew,
                    renewing: None,
                };
                out(Out::Result {
                    node,
                    result: LockResult::Granted,
                });
            }
            (Client::Acquiring { req: r, .. }, Reply::Contended) if r == req => {
                self.clients[node].1 = Client::Idle;
                out(Out::Result {
                    node,
                    result: LockResult::Contended,
                });
            }
            (
                Client::Holding {
                    renewing: Some((r, sent)),
                    next_renew,
                    ..
                },
                Reply::Renewed,
            ) if r == req => {
                if let LockKind::Lease { ttl, margin, .. } = self.cfg.kind {
                    self.clients[node].1 = Client::Holding {
                        deadline: Some(sent + (ttl - margin)),
                        next_renew,
                        renewing: None,
                    };
                }
            }
            (
                Client::Holding {
                    renewing: Some((r, _)),
                    ..
                },
                Reply::NotHolder,
            ) if r == req => {
                self.clients[node].1 = Client::Idle;
                out(Out::Result {
                    node,
                    result: LockResult::Lost,
                });
            }
            _ => {}
        }
    }

    /// When `node`'s client next needs [`LockService::client_timers`].
    pub fn next_client_timer(&self, node: usize) -> Option<Instant> {
        match self.clients[node].1 {
            Client::Idle => None,
            Client::Acquiring { sent, .. } => Some(sent + self.cfg.timeout),
            Client::Holding {
                deadline,
                next_renew,
                ..
            } => match (deadline, next_renew) {
                (Some(d), Some(r)) => Some(d.min(r)),
                (d, r) => d.or(r),
            },
        }
    }

    /// Runs `node`'s client timers that are due: acquire timeout, lease deadline, renewal.
    pub fn client_timers(&mut self, now: Instant, node: usize, out: &mut impl FnMut(Out)) {
        match self.clients[node].1 {
            Client::Acquiring { sent, .. } if now >= sent + self.cfg.timeout => {
                self.clients[node].1 = Client::Idle;
                out(Out::Result {
                    node,
                    result: LockResult::Failed,
                });
            }
            Client::Holding {
                deadline: Some(d), ..
            } if now >= d => {
                self.clients[node].1 = Client::Idle;
                out(Out::Result {
                    node,
                    result: LockResult::Lost,
                });
            }
            Client::Holding {
                deadline,
                next_renew: Some(r),
                ..
            } if now >= r => {
                let LockKind::Lease { renew_every, .. } = self.cfg.kind else {
                    return;
                };
                let req = self.request(now, node, Op::Renew, out);
                self.clients[node].1 = Client::Holding {
                    deadline,
                    next_renew: Some(now + renew_every),
                    renewing: Some((req, now)),
                };
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    /// Runs requests and answers to completion, without cuts: returns what the nodes were told.
    fn settle(s: &mut LockService, mut pending: Vec<Out>) -> Vec<(usize, LockResult)> {
        let mut told = Vec::new();
        while !pending.is_empty() {
            pending.sort_by_key(|o| match o {
                Out::ToService { at, .. } | Out::ToClient { at, .. } => *at,
                Out::Result { .. } => Instant::ZERO,
            });
            let o = pending.remove(0);
            let mut more = Vec::new();
            match o {
                Out::ToService {
                    at,
                    node,
                    incarnation,
                    req,
                    op,
                } => s.at_service(at, node, incarnation, req, op, &mut |x| more.push(x)),
                Out::ToClient {
                    at,
                    node,
                    incarnation,
                    req,
                    reply,
                } => s.at_client(at, node, incarnation, req, reply, &mut |x| more.push(x)),
                Out::Result { node, result } => told.push((node, result)),
            }
            pending.extend(more);
        }
        told
    }

    #[test]
    fn fcntl_is_exclusive_and_dies_with_its_holder() {
        let mut s = LockService::new(2, LockConfig::default());
        let mut v = Vec::new();
        s.acquire(ms(0), 0, &mut |o| v.push(o));
        assert_eq!(settle(&mut s, v), [(0, LockResult::Granted)]);
        let mut v = Vec::new();
        s.acquire(ms(10), 1, &mut |o| v.push(o));
        assert_eq!(settle(&mut s, v), [(1, LockResult::Contended)]);
        assert_eq!(s.holder(ms(10_000)).unwrap().node, 0);
        s.holder_died(0);
        assert_eq!(s.holder(ms(20)), None);
        // An unlock needs no path to the service.
        let mut v = Vec::new();
        s.acquire(ms(30), 1, &mut |o| v.push(o));
        assert_eq!(settle(&mut s, v), [(1, LockResult::Granted)]);
        s.set_cut(1, true);
        s.release(ms(40), 1, &mut |_| panic!("nothing travels"));
        assert_eq!(s.holder(ms(40)), None);
        s.set_cut(1, false);
        let mut v = Vec::new();
        s.acquire(ms(50), 1, &mut |o| v.push(o));
        assert_eq!(settle(&mut s, v), [(1, LockResult::Granted)]);
    }

    #[test]
    fn lease_client_gives_up_before_the_service_expires_it() {
        let cfg = LockConfig {
            kind: LockKind::lease(Duration::from_secs(5)),
            ..LockConfig::default()
        };
        let mut s = LockService::new(2, cfg);
        let mut v = Vec::new();
        s.acquire(ms(0), 0, &mut |o| v.push(o));
        assert_eq!(settle(&mut s, v), [(0, LockResult::Granted)]);
        // Cut from the service: renewals are lost.
        s.set_cut(0, true);
        let mut told = Vec::new();
        let mut t = ms(2);
        while let Some(d) = s.next_client_timer(0) {
            t = d.max(t);
            s.client_timers(t, 0, &mut |o| told.push(o));
        }
        assert_eq!(
            told.last(),
            Some(&Out::Result {
                node: 0,
                result: LockResult::Lost
            })
        );
        // Given up at sent + (ttl - margin) = 4 s; the service holds it until 5.001 s.
        assert_eq!(t, ms(4000));
        assert_eq!(s.holder(ms(4999)).unwrap().node, 0);
        assert_eq!(s.holder(ms(5001)), None);
    }

    #[test]
    fn requests_wait_out_an_outage_and_late_ones_are_dropped() {
        let mut s = LockService::new(1, LockConfig::default());
        s.outage(ms(5000));
        let mut v = Vec::new();
        s.acquire(ms(0), 0, &mut |o| v.push(o));
        let Out::ToService {
            at,
            node,
            incarnation,
            req,
            op,
        } = v[0]
        else {
            panic!()
        };
        let mut deferred = Vec::new();
        s.at_service(at, node, incarnation, req, op, &mut |o| deferred.push(o));
        assert!(matches!(deferred[0], Out::ToService { at, .. } if at == ms(5000)));
        // The client gives up at 2 s ...
        let mut told = Vec::new();
        s.client_timers(ms(2000), 0, &mut |o| told.push(o));
        assert_eq!(
            told,
            [Out::Result {
                node: 0,
                result: LockResult::Failed
            }]
        );
        // ... so the deferred request does nothing.
        assert!(settle(&mut s, deferred).is_empty());
        assert_eq!(s.holder(ms(5001)), None);
    }
}
