//! Takeover runs (seed 000): the recovery master moves public addresses so that each is
//! hosted by exactly one node that can host it, and never by two.
//!
//! Every node tells every peer its list of public addresses (what it can host, what it
//! hosts). The acting recovery master runs the allocator on those lists, then for every
//! address that must move: it asks each reachable holder to release it and waits for the
//! acknowledgement; for a holder it cannot reach it waits for proof that the address is gone
//! (the holder's guardian fenced it, or it said goodbye) or for the holder's hosting lease and
//! kernel lifetime to have run out; only then it tells the new holder to take it. When every
//! step is done (or TakeoverTimeout passed) it tells everyone who hosts what. Every node keeps
//! that last allocation, answers `pharos ip` from it, and asks for a new run when what it hosts
//! disagrees with it.

use super::ctx::Ctx;
use super::members::{Members, NO_HOSTING};
use super::timer::Timer;
use crate::ipalloc::{self, AddressInput, Algorithm, AllocInput, Options};
use crate::time::Instant;
use crate::types::{Generation, NodeFlags, NodeSet, Pnn};
use crate::wire::{Entry, IpOp, Message, WireIp, IP_AVAILABLE, IP_HELD};
use alloc::vec::Vec;
use core::time::Duration;

/// One address of a run.
#[derive(Clone, Debug)]
struct Step {
    ip: WireIp,
    /// Reachable holders asked to release it, not answered yet.
    releasing: NodeSet,
    /// Holders out of reach: the address is gone from them once they are fenced or their
    /// lease has run out.
    unreachable: NodeSet,
    /// Its new holder.
    to: Option<Pnn>,
    phase: Phase,
    /// Already where it belongs when the run was planned.
    settled: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the old holders.
    Release,
    /// TakeIp sent, waiting for the answer.
    Take,
    /// Done.
    Done,
    /// Could not be done in this run.
    Failed,
}

/// A run in progress.
#[derive(Clone, Debug)]
struct Run {
    generation: Generation,
    steps: Vec<Step>,
    deadline: Instant,
}

/// What a run asks of this node's own hosting layer (the recovery master may host too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Local {
    Take(WireIp),
    Release(WireIp),
}

/// The takeover layer.
#[derive(Debug)]
pub(super) struct Takeover {
    /// Every node's list, as it last told it (this node's own is set by the dispatcher).
    views: Vec<Vec<Entry>>,
    /// The last allocation a recovery master announced (address, holder), sorted.
    allocation: Vec<(WireIp, Pnn)>,
    /// Recovery master only: a run is wanted, not before `run_at`.
    need_run: bool,
    run_at: Instant,
    run: Option<Run>,
    /// When each node left the vnnmap while out of our reach (a recovery we committed), for
    /// the lease wait; `None` while it is a member or reachable.
    excluded_at: Vec<Option<Instant>>,
    /// Nodes known to host nothing: their guardian fenced them, or they said goodbye.
    fenced: NodeSet,
    /// Takes asked of other nodes and not answered: from the moment a TakeIp is sent, its
    /// kernel may have the address (the node can freeze or die between the add and its
    /// answer), so until it answers (or is fenced) it counts as a holder.
    unanswered: Vec<(WireIp, Pnn)>,
    /// `moveip` pins: the address stays on that node while it can host it.
    pins: Vec<(WireIp, Pnn)>,
    /// Local steps for the dispatcher to hand to the hosting layer.
    pub local: Vec<Local>,
    /// Runs in a row that left something undone (their retry backs off).
    failed_runs: u32,
    /// Something new asked for a run while one was under way: if that run fails, the next
    /// one is for the new cause and starts at once, not after the failure backoff.
    news_during_run: bool,
    /// The flags that decide hosting (disabled, unhealthy...) of every node, as the last
    /// plan saw them: a change asks for a run.
    hosting_flags: Vec<NodeFlags>,
    /// A run ended and its allocation is still to be announced: (moved, failed).
    finished: Option<(u32, u32)>,
    /// Per node: failed releases (CTDB's banning credits) and when the last one came.
    culprits: Vec<(u32, Instant)>,
    /// A node that earned a ban, for the dispatcher to ban.
    pub ban: Option<Pnn>,
}

impl Takeover {
    pub fn new(ctx: &Ctx) -> Self {
        let n = ctx.nodes.len();
        Takeover {
            views: alloc::vec![Vec::new(); n],
            allocation: Vec::new(),
            need_run: false,
            run_at: ctx.now,
            run: None,
            excluded_at: alloc::vec![None; n],
            fenced: NodeSet::new(),
            unanswered: Vec::new(),
            pins: Vec::new(),
            local: Vec::new(),
            failed_runs: 0,
            news_during_run: false,
            hosting_flags: alloc::vec![NodeFlags::empty(); n],
            finished: None,
            culprits: alloc::vec![(0, Instant::ZERO); n],
            ban: None,
        }
    }

    /// Who hosts `ip` according to the last allocation.
    pub fn holder(&self, ip: WireIp) -> Pnn {
        self.allocation
            .iter()
            .find(|(a, _)| a.addr == ip.addr)
            .map_or(Pnn::NONE, |(_, p)| *p)
    }

    /// Every address some node lists.
    pub fn known(&self) -> Vec<WireIp> {
        let mut all: Vec<WireIp> = self.views.iter().flatten().map(|e| e.ip).collect();
        all.sort();
        all.dedup_by(|a, b| a.addr == b.addr);
        all
    }

    /// The list node `pnn` told.
    pub fn view(&self, pnn: Pnn) -> &[Entry] {
        self.views.get(pnn.index()).map_or(&[], |v| v.as_slice())
    }

    /// Whether `pnn` lists `ip` as available.
    pub fn can_host(&self, pnn: Pnn, ip: WireIp) -> bool {
        self.view(pnn)
            .iter()
            .any(|e| e.ip.addr == ip.addr && e.value & IP_AVAILABLE != 0)
    }

    /// Node `pnn` told its list (or this node's own changed). `true` if it differs.
    pub fn set_view(&mut self, pnn: Pnn, entries: impl Iterator<Item = Entry>) -> bool {
        let Some(v) = self.views.get_mut(pnn.index()) else {
            return false;
        };
        let new: Vec<Entry> = entries.collect();
        if *v == new {
            return false;
        }
        if new.iter().any(|e| e.value & IP_HELD != 0) {
            // It hosts something again: any earlier fencing is history.
            self.fenced.remove(pnn);
        }
        *v = new;
        self.want_run();
        true
    }

    /// `pnn` is connected again: what it hosts from now on is told by its own list and
    /// answers, not by an old fencing.
    pub fn node_back(&mut self, pnn: Pnn) {
        self.fenced.remove(pnn);
    }

    /// `pnn` hosts nothing any more (its guardian fenced it, or it said goodbye).
    pub fn node_fenced(&mut self, pnn: Pnn) {
        self.fenced.insert(pnn);
        self.unanswered.retain(|&(_, p)| p != pnn);
        if let Some(v) = self.views.get_mut(pnn.index()) {
            for e in v.iter_mut() {
                e.value &= !IP_HELD;
            }
        }
        self.want_run();
    }

    /// A recovery master announced an allocation.
    pub fn set_allocation(&mut self, entries: impl Iterator<Item = Entry>) {
        self.allocation = entries.map(|e| (e.ip, Pnn(e.value))).collect();
        self.allocation.sort();
    }

    /// Something changed that may change the allocation.
    pub fn want_run(&mut self) {
        self.need_run = true;
        if self.run.is_some() {
            self.news_during_run = true;
        }
    }

    /// Asks for a run if a node's hosting flags (disabled, stopped, banned, unhealthy...)
    /// changed since the last look: enabling a node gives it its share back even though no
    /// recovery happens (a disabled node stays in the vnnmap).
    pub fn watch_flags(&mut self, ctx: &Ctx, members: &Members) {
        let relevant = NO_HOSTING.union(NodeFlags::UNHEALTHY);
        let mut changed = false;
        for (i, f) in self.hosting_flags.iter_mut().enumerate() {
            let now = members.flags_of(ctx, Pnn(i as u32)).intersection(relevant);
            if *f != now {
                *f = now;
                changed = true;
            }
        }
        if changed {
            self.want_run();
        }
    }

    /// `pharos moveip`: `ip` goes to `pnn` and stays there while it can host it.
    pub fn pin(&mut self, ip: WireIp, pnn: Pnn) {
        self.pins.retain(|(a, _)| a.addr != ip.addr);
        self.pins.push((ip, pnn));
        self.want_run();
    }

    /// A recovery we run committed `vnnmap`. Nodes outside it that were out of reach when it
    /// started stop being echoed by every member from then on: their lease runs out at the
    /// latest one lease after now.
    pub fn committed(&mut self, ctx: &mut Ctx, vnnmap: NodeSet, reachable: NodeSet) {
        for i in 0..self.excluded_at.len() {
            let p = Pnn(i as u32);
            if vnnmap.contains(p) || reachable.contains(p) {
                self.excluded_at[i] = None;
            } else if self.excluded_at[i].is_none() {
                self.excluded_at[i] = Some(ctx.now);
            }
        }
        self.abort(ctx);
        self.need_run = true;
    }

    /// A run under way stops (a new recovery, or this node no longer leads).
    pub fn abort(&mut self, ctx: &mut Ctx) {
        if self.run.take().is_some() {
            log::info!("node {}: takeover run abandoned", ctx.me.pnn);
        }
        ctx.timers.stop(Timer::Takeover);
    }

    /// How long after a node was excluded its addresses can still be configured: its lease,
    /// then the kernel lifetime of its last renewal, then a margin for the kernel's own
    /// timers and the clocks' drift (docs/ADDRESSES.md).
    fn expiry_wait(ctx: &Ctx) -> Duration {
        let lease = super::hosting::lease_len(ctx);
        let kernel = Duration::from_secs(u64::from(super::hosting::kernel_lifetime(ctx)));
        // The kernel removes an expired address only when its periodic check runs: rounded up
        // by up to 250 ms, never sooner than 1 s after any address change in the namespace,
        // plus the timer wheel's slack (32 ms below 3 s, 256 ms from 3 s up, at HZ=250); the
        // 1 % is for the clocks' drift (docs/ADDRESSES.md, "The kernel's lifetime granularity").
        let slack = if kernel >= Duration::from_secs(3) {
            256
        } else {
            32
        };
        let margin = Duration::from_millis(1250 + slack) + (lease + kernel) / 100;
        lease + kernel + margin
    }

    /// When `pnn`'s addresses are certainly gone: at once if it was fenced, else a lease
    /// wait after it was excluded; `None` while it was not excluded yet.
    fn gone_at(
        fenced: &NodeSet,
        excluded_at: &[Option<Instant>],
        ctx: &Ctx,
        pnn: Pnn,
    ) -> Option<Instant> {
        if fenced.contains(pnn) {
            return Some(Instant::ZERO);
        }
        excluded_at[pnn.index()].map(|t| t + Self::expiry_wait(ctx))
    }

    /// Starts a run if one is wanted and this node may run it (`acting`, not in recovery).
    pub fn maybe_run(&mut self, ctx: &mut Ctx, members: &Members, vnnmap: NodeSet) {
        if !self.need_run || self.run.is_some() {
            return;
        }
        if ctx.now < self.run_at {
            ctx.timers.set_earliest(Timer::Takeover, self.run_at);
            return;
        }
        self.need_run = false;
        self.news_during_run = false;
        ctx.stats.takeover_runs += 1;
        let steps = self.plan(ctx, members, vnnmap);
        log::info!(
            "node {}: takeover run in generation {}: {} address(es) to move",
            ctx.me.pnn,
            ctx.generation.0,
            steps.iter().filter(|s| s.phase != Phase::Done).count()
        );
        let me = ctx.me.pnn;
        for s in &steps {
            for p in s.releasing.iter() {
                if p == me {
                    self.local.push(Local::Release(s.ip));
                } else {
                    ctx.send(p, Message::ReleaseIp { ip: s.ip });
                }
            }
        }
        self.run = Some(Run {
            generation: ctx.generation,
            steps,
            deadline: ctx.now + ctx.tunables.takeover_timeout,
        });
        self.advance(ctx, members);
    }

    /// Computes the allocation and the steps that reach it.
    fn plan(&self, ctx: &Ctx, members: &Members, vnnmap: NodeSet) -> Vec<Step> {
        let me = ctx.me.pnn;
        let n = ctx.nodes.len();
        let reachable = |p: Pnn| p == me || members.is_connected(p);
        let active = |p: Pnn| {
            vnnmap.contains(p) && reachable(p) && !members.flags_of(ctx, p).intersects(NO_HOSTING)
        };
        let unhealthy = |p: Pnn| members.flags_of(ctx, p).contains(NodeFlags::UNHEALTHY);
        // CTDB's rule (`set_ipflags_internal`, NoIPHostOnAllDisabled at its default 0): an
        // unhealthy node hosts nothing while a healthy one can, and when every node is
        // unhealthy they all host, so the addresses stay reachable.
        let all_unhealthy = (0..n)
            .map(|i| Pnn(i as u32))
            .filter(|&p| active(p))
            .all(unhealthy);
        let may_host = |p: Pnn| active(p) && (all_unhealthy || !unhealthy(p));
        let mut inputs: Vec<AddressInput> = Vec::new();
        let mut holders: Vec<(NodeSet, NodeSet)> = Vec::new();
        for ip in self.known() {
            let mut input = AddressInput {
                addr: ip.addr,
                current: None,
                known_on: Vec::new(),
                available_on: Vec::new(),
            };
            // `held`: may have it configured (for the releases to wait for); `confirmed`: said
            // it holds it (only that makes a step settled: an unanswered take is asked again).
            let (mut held, mut confirmed) = (NodeSet::new(), NodeSet::new());
            for p in (0..n).map(|i| Pnn(i as u32)) {
                // A node out of reach whose addresses are not certainly gone may hold this one
                // whatever our (possibly stale) view of it says: with a link cut that is not
                // transitive, another master may have given it the address while we could not
                // hear it. It counts as a holder until fenced or its lease wait is over.
                let entry = self.view(p).iter().find(|e| e.ip.addr == ip.addr);
                if !reachable(p)
                    && (entry.is_some() || self.view(p).is_empty())
                    && ctx.nodes.address_of(p).is_some()
                    && Self::gone_at(&self.fenced, &self.excluded_at, ctx, p)
                        .is_none_or(|t| ctx.now < t)
                {
                    held.insert(p);
                }
                let Some(e) = entry else {
                    continue;
                };
                input.known_on.push(p);
                if e.value & IP_AVAILABLE != 0 && may_host(p) {
                    input.available_on.push(p);
                }
                let asked = self
                    .unanswered
                    .iter()
                    .any(|&(a, q)| q == p && a.addr == ip.addr);
                if e.value & IP_HELD != 0 {
                    confirmed.insert(p);
                }
                if e.value & IP_HELD != 0 || asked {
                    held.insert(p);
                    if reachable(p) && input.current.is_none() {
                        input.current = Some(p);
                    }
                }
            }
            // A `moveip` pin is an input of the allocation, not an override after it: the
            // allocator sees the address already on its node, and balances the others
            // around it.
            if let Some(&(_, pin)) = self.pins.iter().find(|(a, _)| a.addr == ip.addr) {
                if input.available_on.contains(&pin) {
                    input.available_on = alloc::vec![pin];
                    input.current = Some(pin);
                }
            }
            inputs.push(input);
            holders.push((held, confirmed));
        }
        let by_addr: Vec<(WireIp, (NodeSet, NodeSet))> = self
            .known()
            .into_iter()
            .zip(holders.iter().copied())
            .collect();
        let algorithm = Algorithm::from_tunables(&ctx.tunables);
        let options = Options::from_tunables(&ctx.tunables);
        let assignments = match AllocInput::new(n, inputs) {
            Ok(input) => ipalloc::allocate(&input, algorithm, &options)
                .assignments()
                .iter()
                .map(|a| (a.addr, a.pnn))
                .collect::<Vec<_>>(),
            Err(e) => {
                log::warn!("node {}: cannot allocate public addresses: {e}", me);
                Vec::new()
            }
        };
        let mut steps = Vec::new();
        for (ip, (held, confirmed)) in by_addr {
            let mut to = assignments
                .iter()
                .find(|(a, _)| *a == ip.addr)
                .and_then(|(_, p)| *p);
            if let Some(&(_, pin)) = self.pins.iter().find(|(a, _)| a.addr == ip.addr) {
                if may_host(pin) && self.can_host(pin, ip) {
                    to = Some(pin);
                }
            }
            let mut releasing = NodeSet::new();
            let mut unreachable = NodeSet::new();
            for p in held.iter().filter(|&p| Some(p) != to) {
                if reachable(p) {
                    releasing.insert(p);
                } else {
                    unreachable.insert(p);
                }
            }
            let settled =
                to.is_none_or(|t| confirmed.contains(t)) && held.iter().all(|p| Some(p) == to);
            steps.push(Step {
                ip,
                releasing,
                unreachable,
                to,
                phase: if settled { Phase::Done } else { Phase::Release },
                settled,
            });
        }
        steps
    }

    /// Moves every step as far as it can go now; finishes the run when all are done.
    pub fn advance(&mut self, ctx: &mut Ctx, members: &Members) {
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let me = ctx.me.pnn;
        let expired = ctx.now >= run.deadline;
        let mut next_check = run.deadline;
        for s in &mut run.steps {
            if s.phase == Phase::Release {
                // Out-of-reach holders drop out as their addresses are certainly gone.
                let mut still = NodeSet::new();
                for p in s.unreachable.iter() {
                    match Self::gone_at(&self.fenced, &self.excluded_at, ctx, p) {
                        Some(t) if ctx.now >= t => {}
                        Some(t) => {
                            next_check = next_check.min(t);
                            still.insert(p);
                        }
                        None => {
                            still.insert(p);
                        }
                    }
                }
                s.unreachable = still;
                if s.releasing.is_empty() && s.unreachable.is_empty() {
                    match s.to {
                        None => s.phase = Phase::Done,
                        Some(t) if t == me => {
                            self.local.push(Local::Take(s.ip));
                            s.phase = Phase::Take;
                        }
                        Some(t) if members.is_connected(t) => {
                            if !self
                                .unanswered
                                .iter()
                                .any(|&(a, p)| p == t && a.addr == s.ip.addr)
                            {
                                self.unanswered.push((s.ip, t));
                            }
                            ctx.send(t, Message::TakeIp { ip: s.ip });
                            s.phase = Phase::Take;
                        }
                        Some(_) => s.phase = Phase::Failed,
                    }
                }
            }
            if expired && matches!(s.phase, Phase::Release | Phase::Take) {
                log::warn!(
                    "node {me}: takeover of {} did not complete within TakeoverTimeout",
                    s.ip.addr
                );
                // A reachable node that never answered is treated as failed and banned
                // (CTDB's takeover_fail_callback): banned, it releases everything itself, and
                // the next run moves its addresses. One ban per run; the others follow.
                let silent = s.releasing.iter().next().or(match s.phase {
                    Phase::Take => s.to.filter(|&t| t != me),
                    _ => None,
                });
                if let Some(p) = silent {
                    if ctx.tunables.enable_bans && self.ban.is_none() {
                        log::warn!(
                            "node {me}: node {p} did not answer within TakeoverTimeout: banning it"
                        );
                        self.ban = Some(p);
                    }
                }
                s.phase = Phase::Failed;
            }
        }
        if run
            .steps
            .iter()
            .all(|s| matches!(s.phase, Phase::Done | Phase::Failed))
        {
            self.finish(ctx);
        } else {
            ctx.timers.set(Timer::Takeover, next_check);
        }
    }

    /// An answer to a take or release of the current run.
    pub fn done(
        &mut self,
        ctx: &mut Ctx,
        members: &Members,
        from: Pnn,
        ip: WireIp,
        op: IpOp,
        ok: bool,
    ) {
        // Answered: from now on `from`'s list and answers say whether it holds `ip`. Not a
        // failed take: the node may still be removing it (carrier lost mid-take), so it stays
        // a possible holder until it answers a release (the next run asks it for one).
        if ok || op == IpOp::Release {
            self.unanswered
                .retain(|&(a, p)| !(p == from && a.addr == ip.addr));
        }
        // The answer is news about `from`'s host, whether or not a run still waits for it:
        // its next list may be on its way behind the answer, and the next plan must not miss
        // an address it just took.
        if let Some(e) = self
            .views
            .get_mut(from.index())
            .and_then(|v| v.iter_mut().find(|e| e.ip.addr == ip.addr))
        {
            match (op, ok) {
                (IpOp::Take, true) => {
                    e.value |= IP_HELD;
                    // It hosts something again: any earlier fencing is history.
                    self.fenced.remove(from);
                }
                (IpOp::Release, _) => e.value &= !IP_HELD,
                (IpOp::Take, false) => {}
            }
        }
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let Some(s) = run.steps.iter_mut().find(|s| s.ip.addr == ip.addr) else {
            return;
        };
        match (op, s.phase) {
            (IpOp::Release, Phase::Release) if s.releasing.contains(from) => {
                s.releasing.remove(from);
                if !ok {
                    log::warn!("node {from} could not release {}", ip.addr);
                    self.culprit(ctx, from);
                }
            }
            (IpOp::Take, Phase::Take) if s.to == Some(from) => {
                s.phase = if ok { Phase::Done } else { Phase::Failed };
            }
            _ => return,
        }
        self.advance(ctx, members);
    }

    /// `pnn` failed a release: one credit (CTDB's `ctdb_set_culprit_count`: credits older
    /// than RecoveryGracePeriod are forgiven first). At twice the number of nodes it is banned
    /// for RecoveryBanPeriod (CTDB's `ban_misbehaving_nodes`), if EnableBans.
    fn culprit(&mut self, ctx: &Ctx, pnn: Pnn) {
        let n = self.culprits.len() as u32;
        let Some(c) = self.culprits.get_mut(pnn.index()) else {
            return;
        };
        if c.0 > 0 && ctx.now - c.1 > ctx.tunables.recovery_grace_period {
            c.0 = 0;
        }
        c.0 += 1;
        c.1 = ctx.now;
        if c.0 >= 2 * n && ctx.tunables.enable_bans {
            log::warn!(
                "node {}: node {pnn} failed {} releases: banning it",
                ctx.me.pnn,
                c.0
            );
            c.0 = 0;
            self.ban = Some(pnn);
        }
    }

    /// The run is over: everyone learns who hosts what.
    fn finish(&mut self, ctx: &mut Ctx) {
        let Some(run) = self.run.take() else {
            return;
        };
        ctx.timers.stop(Timer::Takeover);
        let failed = run
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Failed)
            .count();
        let moved = run
            .steps
            .iter()
            .filter(|s| s.phase == Phase::Done && !s.settled)
            .count();
        // Two runs can end in one event: count both.
        let (m, f) = self.finished.unwrap_or((0, 0));
        self.finished = Some((m + moved as u32, f + failed as u32));
        self.allocation = run
            .steps
            .iter()
            .map(|s| {
                let holder = match s.phase {
                    Phase::Done => s.to.unwrap_or(Pnn::NONE),
                    _ => Pnn::NONE,
                };
                (s.ip, holder)
            })
            .collect();
        self.allocation.sort();
        if failed > 0 && core::mem::take(&mut self.news_during_run) {
            // It failed on what changed under it (a target disabled, a holder gone): the
            // next run plans with the news, now.
            self.run_at = ctx.now;
        } else if failed > 0 {
            // Try again soon, backing off while failures repeat. The first retry comes after
            // one KeepaliveInterval: the usual refusal is a node that just joined and whose
            // lease the next echo renews (a 1 s wait there made 1 start in ~9 slow).
            self.failed_runs = self.failed_runs.saturating_add(1);
            let backoff = match self.failed_runs {
                1 => ctx.tunables.keepalive_interval,
                n => ctx.tunables.recover_interval * (n - 1).min(8),
            };
            self.run_at = ctx.now + backoff;
            self.need_run = true;
            ctx.timers.set_earliest(Timer::Takeover, self.run_at);
        } else {
            self.failed_runs = 0;
        }
        log::info!(
            "node {}: takeover run complete in generation {} ({failed} failed)",
            ctx.me.pnn,
            run.generation.0
        );
    }

    /// The allocation as entries of an [`Message::IpReallocated`].
    pub fn allocation_entries(&self, out: &mut Vec<u8>) -> u32 {
        for (ip, pnn) in &self.allocation {
            Entry {
                ip: *ip,
                value: pnn.0,
            }
            .write(out);
        }
        self.allocation.len() as u32
    }

    /// Whether a run is under way.
    pub fn running(&self) -> bool {
        self.run.is_some()
    }

    /// Whether a run is wanted and not started yet (tests wait for this to settle).
    #[cfg(test)]
    pub fn wanted(&self) -> bool {
        self.need_run
    }

    /// A run that ended since the last call, to be announced: (moved, failed).
    pub fn take_finished(&mut self) -> Option<(u32, u32)> {
        self.finished.take()
    }
}
