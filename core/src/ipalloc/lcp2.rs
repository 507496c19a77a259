//! LCP2 (`IPAllocAlgorithm=2`, CTDB's `ipalloc_lcp2.c`).
//!
//! A node's *imbalance* is the sum over pairs of its addresses of `distance²` (long common
//! prefixes cost more). Unassigned addresses go, one at a time, to the (address, node) pair that
//! adds the least; then addresses move from the most imbalanced nodes to nodes that held nothing
//! at the start of the run (or are forced), while a move lowers both ends' cost.
//!
//! CTDB recomputes every sum from scratch at each step (cubic time). Here the sums
//! ("dsum": what an address costs, or would cost, on a node) are kept in tables, one row per
//! address, and brought up to date lazily, only when a decision reads them, with the same
//! 32-bit wrapping arithmetic: every decision is CTDB's. Only the sums a phase can read are
//! computed: every node's for the addresses to assign; for rebalancing, each address's holder's
//! and the candidates'. The property tests compare this with a literal transcription of CTDB.

use super::common::{Work, NONE};
use super::{key_distance, Event, Options};
use crate::types::Pnn;
use alloc::collections::BinaryHeap;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Reverse;

/// An address key with LCP2's pair cost (`distance²`).
trait Key: Copy {
    fn cost(self, other: Self) -> u32;
}

/// Keys that differ in one word only (all IPv4; IPv6 within one /96), that word alone: the
/// other three add 32 each, so the distance is `96 + clz32(a ^ b)`, the cost one table lookup.
impl Key for u32 {
    fn cost(self, other: u32) -> u32 {
        V4_COST[(self ^ other).leading_zeros() as usize]
    }
}

const V4_COST: [u32; 33] = {
    let mut t = [0u32; 33];
    let mut k = 0;
    while k < 33 {
        t[k] = (96 + k as u32) * (96 + k as u32);
        k += 1;
    }
    t
};

/// Keys that differ in at most two words, packed: the other two add 32 each.
impl Key for u64 {
    fn cost(self, other: u64) -> u32 {
        let x = self ^ other;
        let d = 64 + ((x >> 32) as u32).leading_zeros() + (x as u32).leading_zeros();
        d * d
    }
}

impl Key for u128 {
    fn cost(self, other: u128) -> u32 {
        let d = key_distance(self, other);
        d * d
    }
}

pub(super) fn run(w: &mut Work<'_>, options: &Options) {
    w.unassign_unsuitable();
    // A distance is a sum over the four 32-bit words, and a word on which all keys agree adds
    // 32 to every pair: keep only the words that vary, in a narrower key when one or two do
    // (all IPv4; IPv6 within one prefix).
    let first = w.keys.first().copied().unwrap_or(0);
    let spread = w.keys.iter().fold(0u128, |acc, &k| acc | (k ^ first));
    let word = |k: u128, i: usize| (k >> (96 - 32 * i)) as u32;
    let varying: Vec<usize> = (0..4).filter(|&i| word(spread, i) != 0).collect();
    match varying[..] {
        [] | [_] => {
            let i = varying.first().copied().unwrap_or(3);
            let keys: Vec<u32> = w.keys.iter().map(|&k| word(k, i)).collect();
            run_with(w, options, &keys);
        }
        [i, j] => {
            let keys: Vec<u64> = w
                .keys
                .iter()
                .map(|&k| (u64::from(word(k, i)) << 32) | u64::from(word(k, j)))
                .collect();
            run_with(w, options, &keys);
        }
        _ => {
            let keys = w.keys.to_vec();
            run_with(w, options, &keys);
        }
    }
}

fn run_with<K: Key>(w: &mut Work<'_>, options: &Options, keys: &[K]) {
    let n = w.n;
    let mut imbalance = initial_imbalances(w, keys);
    // Candidates are the nodes that hold nothing now (they must have just become usable), plus
    // forced ones; fixed for the whole run.
    let mut candidates = vec![true; n];
    for &o in &w.owner {
        if o != NONE {
            candidates[o as usize] = false;
        }
    }
    for &p in &options.force_rebalance {
        match candidates.get_mut(p.index()) {
            Some(c) => *c = true,
            None => w.events.push(Event::UnknownRebalanceNode { pnn: p }),
        }
    }
    let assigned = allocate_unassigned(w, keys, &mut imbalance);
    if options.no_ip_failback || !candidates.contains(&true) {
        return;
    }
    failback(w, keys, &mut imbalance, &candidates, assigned);
}

/// Each node's imbalance from the current holders.
fn initial_imbalances<K: Key>(w: &Work<'_>, keys: &[K]) -> Vec<u32> {
    let mut held: Vec<Vec<K>> = vec![Vec::new(); w.n];
    for (ip, &o) in w.owner.iter().enumerate() {
        if o != NONE {
            held[o as usize].push(keys[ip]);
        }
    }
    held.iter()
        .map(|ks| {
            let mut sum = 0u32;
            for (i, &a) in ks.iter().enumerate() {
                for &b in &ks[i + 1..] {
                    sum = sum.wrapping_add(a.cost(b));
                }
            }
            sum
        })
        .collect()
}

/// What phase 1 leaves for rebalancing: the addresses that were unassigned at the start of the
/// run, with their sums (row `r`, column `node` = Σ cost(ips[r], t) over t held by `node`,
/// t ≠ ips[r]), each up to date with the first `synced[r]` entries of `log`.
struct Phase1<K> {
    ips: Vec<usize>,
    /// Row-major: `dsum[r * n + node]`.
    dsum: Vec<u32>,
    log: Log<K>,
    synced: Vec<usize>,
    /// Each row's own place in the log (`usize::MAX`: never assigned).
    own: Vec<usize>,
}

/// The cheapest node for an address given its row of sums: lowest cost, lowest PNN on ties.
///
/// `everywhere`: every node can take the address (then eligibility need not be checked).
/// With `hint` = (old minimum, old best node), when sums have only grown since that best was
/// computed: a node now at the old minimum has not changed (nothing was below it), and nodes
/// before the old best were strictly above it, so the first such node from the old best on is
/// the answer. One pass either way: from the old best to the end (stopping there if found),
/// then the nodes before it.
fn best_node(
    w: &Work<'_>,
    ip: usize,
    row: &[u32],
    everywhere: bool,
    hint: Option<(u32, u32)>,
) -> Option<(u32, u32)> {
    if everywhere {
        // Every node may take the address: plain searches, which the compiler vectorises.
        if let Some((v, b)) = hint {
            if let Some(p) = row[b as usize..].iter().position(|&c| c == v) {
                return Some((v, b + p as u32));
            }
        }
        let min = row.iter().copied().min()?;
        return row.iter().position(|&c| c == min).map(|p| (min, p as u32));
    }
    let (start, target) = match hint {
        Some((v, b)) => (b as usize, Some(v)),
        None => (0, None),
    };
    let mut high: Option<(u32, u32)> = None;
    for (node, &c) in row.iter().enumerate().skip(start) {
        if w.can_takeover(node, ip) {
            if Some(c) == target {
                return Some((c, node as u32));
            }
            if high.is_none_or(|(b, _)| c < b) {
                high = Some((c, node as u32));
            }
        }
    }
    let mut low: Option<(u32, u32)> = None;
    for (node, &c) in row.iter().enumerate().take(start) {
        if w.can_takeover(node, ip) && low.is_none_or(|(b, _)| c < b) {
            low = Some((c, node as u32));
        }
    }
    // Lower PNNs win ties.
    match (low, high) {
        (Some(l), Some(h)) => Some(if l.0 <= h.0 { l } else { h }),
        (l, h) => l.or(h),
    }
}

/// Assigns unassigned addresses one by one, each time the (address, node) pair of least added
/// cost: first address in CTDB order, then lowest PNN, on ties.
///
/// Lazily: a row's sums only grow (they cannot wrap, see [`super::MAX_ADDRESSES`]), so a best
/// computed earlier is a lower bound, and still exact while its node has received nothing since.
/// Rows wait in a min-heap on (best cost, row); a popped row whose best node has received
/// something is brought up to date from the log of assignments and pushed back. The first
/// up-to-date row popped is CTDB's choice: every other row's true key is at least its key in
/// the heap.
fn allocate_unassigned<K: Key>(w: &mut Work<'_>, keys: &[K], imbalance: &mut [u32]) -> Phase1<K> {
    let n = w.n;
    let ips: Vec<usize> = (0..w.len()).filter(|&ip| w.owner[ip] == NONE).collect();
    let rows = ips.len();
    let row_keys: Vec<K> = ips.iter().map(|&ip| keys[ip]).collect();
    let mut dsum = vec![0u32; n * rows];
    // Assignments made in this phase, in order (keys and nodes apart: the hot loop reads both).
    let mut log = Log {
        keys: Vec::with_capacity(rows),
        nodes: Vec::with_capacity(rows),
    };
    // Each row's own place in the log, once assigned (it must not count itself).
    let mut own = vec![usize::MAX; rows];
    // How many log entries each row's sums include.
    let mut synced = vec![0usize; rows];
    if n == 0 {
        // No node at all (possible for a caller's input, never in CTDB): nothing to place on.
        for &ip in &ips {
            w.events.push(Event::Uncovered { addr: w.addr(ip) });
        }
    }
    if rows == 0 || n == 0 {
        return Phase1 {
            ips,
            dsum,
            log,
            synced,
            own,
        };
    }
    // Contributions of the addresses already held.
    let held: Vec<(K, usize)> = (0..w.len())
        .filter(|&t| w.owner[t] != NONE)
        .map(|t| (keys[t], w.owner[t] as usize))
        .collect();
    for (row, &k) in dsum.chunks_exact_mut(n).zip(&row_keys) {
        for &(kt, o) in &held {
            row[o] = row[o].wrapping_add(k.cost(kt));
        }
    }
    // Per node, 1 + the log index of its latest assignment (0: none yet).
    let mut last_to = vec![0usize; n];
    let everywhere: Vec<bool> = ips
        .iter()
        .map(|&ip| (0..n).all(|node| w.can_takeover(node, ip)))
        .collect();
    let mut best: Vec<Option<(u32, u32)>> = Vec::with_capacity(rows);
    let mut heap = BinaryHeap::with_capacity(rows);
    for (r, row) in dsum.chunks_exact(n).enumerate() {
        let b = best_node(w, ips[r], row, everywhere[r], None);
        if let Some((c, _)) = b {
            heap.push(Reverse((c, r)));
        }
        best.push(b);
    }
    let mut alive = vec![true; rows];
    while let Some(Reverse((_, r))) = heap.pop() {
        let Some((c, node)) = best[r] else { continue };
        if last_to[node as usize] > synced[r] {
            let row = &mut dsum[r * n..(r + 1) * n];
            log.sync(row, row_keys[r], synced[r], own[r]);
            synced[r] = log.len();
            best[r] = best_node(w, ips[r], row, everywhere[r], Some((c, node)));
            if let Some((c, _)) = best[r] {
                heap.push(Reverse((c, r)));
            }
            continue;
        }
        alive[r] = false;
        let ip = ips[r];
        w.set_owner(ip, node);
        imbalance[node as usize] = imbalance[node as usize].wrapping_add(c);
        w.events.push(Event::Assigned {
            addr: w.addr(ip),
            to: Pnn(node),
            cost: Some(c),
        });
        own[r] = log.len();
        log.keys.push(row_keys[r]);
        log.nodes.push(node);
        last_to[node as usize] = log.len();
    }
    for r in (0..rows).filter(|&r| alive[r]) {
        w.events.push(Event::Uncovered {
            addr: w.addr(ips[r]),
        });
    }
    Phase1 {
        ips,
        dsum,
        log,
        synced,
        own,
    }
}

/// Phase 1's assignments, in order.
struct Log<K> {
    keys: Vec<K>,
    nodes: Vec<u32>,
}

impl<K: Key> Log<K> {
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// Adds the costs of the entries from `from` on to a row (of the address with `key`), except
    /// the address's own assignment at `own`: an address does not cost itself. Subtracting it
    /// afterwards keeps the loop free of branches.
    fn sync(&self, row: &mut [u32], key: K, from: usize, own: usize) {
        for (&k, &node) in self.keys[from..].iter().zip(&self.nodes[from..]) {
            let c = &mut row[node as usize];
            *c = c.wrapping_add(key.cost(k));
        }
        if (from..self.len()).contains(&own) {
            let c = &mut row[self.nodes[own] as usize];
            *c = c.wrapping_sub(key.cost(key));
        }
    }
}

/// A move found by [`Rebalance::best_move`]: (address, destination, new source imbalance, new
/// destination imbalance).
type Move = (usize, usize, u32, u32);

/// How far an address's row of sums is from being usable by rebalancing.
#[derive(Clone, Copy)]
enum Row {
    /// Up to date for its holder's column and every candidate's.
    Ready,
    /// Assigned in phase 1: complete once the log entries from this index on are added.
    Sync(usize),
    /// Held before the run: to be computed from the current holders.
    Compute,
}

/// Rebalancing state. Rows are brought up to date only when read: the sums are additive (with
/// wrapping arithmetic, so in any order), hence moves can be applied to every row at once and
/// the rest added later.
struct Rebalance<'k, K> {
    n: usize,
    keys: &'k [K],
    cands: Vec<usize>,
    /// Row-major: `dsum[x * n + node]` = Σ cost(x, t) over t held by node, t ≠ x; read only for
    /// x's holder and the candidates (a move only goes to a candidate).
    dsum: Vec<u32>,
    rows: Vec<Row>,
    log: Log<K>,
    /// Per address, its place in phase 1's log (`usize::MAX`: none).
    own: Vec<usize>,
    /// Per node, the addresses it holds, in CTDB order.
    by_node: Vec<Vec<usize>>,
    /// The least possible cost of a pair of these addresses.
    min_cost: u32,
}

impl<K: Key> Rebalance<'_, K> {
    fn ensure(&mut self, x: usize) {
        let n = self.n;
        let row = &mut self.dsum[x * n..(x + 1) * n];
        match self.rows[x] {
            Row::Ready => return,
            Row::Sync(from) => self.log.sync(row, self.keys[x], from, self.own[x]),
            Row::Compute => {
                let holder = self
                    .by_node
                    .iter()
                    .position(|h| h.binary_search(&x).is_ok());
                for node in holder.into_iter().chain(self.cands.iter().copied()) {
                    let mut sum = 0u32;
                    for &t in &self.by_node[node] {
                        if t != x {
                            sum = sum.wrapping_add(self.keys[x].cost(self.keys[t]));
                        }
                    }
                    row[node] = sum;
                }
            }
        }
        self.rows[x] = Row::Ready;
    }

    /// The best move of one of `src`'s addresses to a candidate: it must leave the destination
    /// below the source's current imbalance and cost the destination less than it costs the
    /// source; among those, least total resulting imbalance, first found on ties.
    fn best_move(&mut self, w: &Work<'_>, imbalance: &[u32], src: usize) -> Option<Move> {
        let n = self.n;
        let src_now = imbalance[src];
        // A destination d gains at least count(d) × min_cost; where CTDB's 32-bit sum cannot
        // wrap, that rules d out if it reaches the source's imbalance, without reading rows.
        let possible: Vec<usize> = self
            .cands
            .iter()
            .copied()
            .filter(|&d| {
                let count = self.by_node[d].len() as u64;
                let now = u64::from(imbalance[d]);
                let cannot_wrap = now + count * 16384 <= u64::from(u32::MAX);
                !(cannot_wrap && now + count * u64::from(self.min_cost) >= u64::from(src_now))
            })
            .collect();
        if possible.is_empty() {
            return None;
        }
        let mut best: Option<Move> = None;
        for i in 0..self.by_node[src].len() {
            let x = self.by_node[src][i];
            if !possible.iter().any(|&d| w.can_takeover(d, x)) {
                continue;
            }
            self.ensure(x);
            let row = &self.dsum[x * n..(x + 1) * n];
            let src_dsum = row[src];
            let src_imbl = src_now.wrapping_sub(src_dsum);
            for &d in &possible {
                if !w.can_takeover(d, x) {
                    continue;
                }
                let dst_dsum = row[d];
                let dst_imbl = imbalance[d].wrapping_add(dst_dsum);
                if dst_imbl < src_now
                    && dst_dsum < src_dsum
                    && best.is_none_or(|(_, _, bs, bd)| {
                        src_imbl.wrapping_add(dst_imbl) < bs.wrapping_add(bd)
                    })
                {
                    best = Some((x, d, src_imbl, dst_imbl));
                }
            }
        }
        best
    }

    /// Moves x from s to d in every row's sums and in the holder lists.
    fn apply(&mut self, x: usize, s: usize, d: usize) {
        let n = self.n;
        let kx = self.keys[x];
        for (row, &k) in self.dsum.chunks_exact_mut(n).zip(self.keys) {
            let c = k.cost(kx);
            row[s] = row[s].wrapping_sub(c);
            row[d] = row[d].wrapping_add(c);
        }
        // x never costs itself: undo its own entries.
        let own = kx.cost(kx);
        self.dsum[x * n + s] = self.dsum[x * n + s].wrapping_add(own);
        self.dsum[x * n + d] = self.dsum[x * n + d].wrapping_sub(own);
        if let Ok(i) = self.by_node[s].binary_search(&x) {
            self.by_node[s].remove(i);
        }
        if let Err(i) = self.by_node[d].binary_search(&x) {
            self.by_node[d].insert(i, x);
        }
    }
}

/// A lower bound of every pair's distance: the words' leading bits that all keys share.
fn min_cost(keys: &[u128]) -> u32 {
    let first = keys.first().copied().unwrap_or(0);
    let spread = keys.iter().fold(0u128, |acc, &k| acc | (k ^ first));
    let d = key_distance(spread, 0);
    d * d
}

/// Moves addresses from the most imbalanced nodes to candidates while that lowers both ends.
fn failback<K: Key>(
    w: &mut Work<'_>,
    keys: &[K],
    imbalance: &mut [u32],
    candidates: &[bool],
    phase1: Phase1<K>,
) {
    let (n, a) = (w.n, w.len());
    let cands: Vec<usize> = (0..n).filter(|&d| candidates[d]).collect();
    let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); n];
    for x in 0..a {
        if w.owner[x] != NONE {
            by_node[w.owner[x] as usize].push(x);
        }
    }
    // Every move goes to a candidate that can take the address: if there is none, CTDB's loop
    // finds nothing, so skip building the tables.
    let movable = by_node
        .iter()
        .flatten()
        .any(|&x| cands.iter().any(|&d| w.can_takeover(d, x)));
    if !movable {
        return;
    }
    let mut rows = vec![Row::Compute; a];
    let mut own = vec![usize::MAX; a];
    let mut dsum = vec![0u32; n * a];
    for (r, &x) in phase1.ips.iter().enumerate() {
        rows[x] = Row::Sync(phase1.synced[r]);
        own[x] = phase1.own[r];
        dsum[x * n..(x + 1) * n].copy_from_slice(&phase1.dsum[r * n..(r + 1) * n]);
    }
    let mut rb = Rebalance {
        n,
        keys,
        cands,
        dsum,
        rows,
        log: phase1.log,
        own,
        by_node,
        min_cost: min_cost(w.keys),
    };
    // Every move lowers the sum of two imbalances, so CTDB's loop ends; the cap only guards
    // against the 32-bit imbalance sums wrapping, where that argument fails.
    let limit = a.saturating_mul(64).saturating_add(1 << 16);
    let mut moves = 0usize;
    let mut order: Vec<usize> = Vec::with_capacity(n);
    loop {
        // Most imbalanced first, ties by PNN (CTDB's stable qsort of nodes in PNN order).
        order.clear();
        order.extend(0..n);
        order.sort_by(|&p, &q| imbalance[q].cmp(&imbalance[p]).then(p.cmp(&q)));
        let mut found = None;
        for &s in &order {
            if imbalance[s] == 0 {
                break; // the rest are 0 too: nothing to gain
            }
            if let Some(m) = rb.best_move(w, imbalance, s) {
                found = Some((s, m));
                break;
            }
        }
        let Some((s, (x, d, src_imbl, dst_imbl))) = found else {
            break;
        };
        let (old_s, old_d) = (imbalance[s], imbalance[d]);
        imbalance[s] = src_imbl;
        imbalance[d] = dst_imbl;
        w.set_owner(x, d as u32);
        w.events.push(Event::Moved {
            addr: w.addr(x),
            from: Pnn(s as u32),
            to: Pnn(d as u32),
            imbalance: Some((
                src_imbl.wrapping_sub(old_s) as i32,
                dst_imbl.wrapping_sub(old_d) as i32,
            )),
        });
        rb.apply(x, s, d);
        moves += 1;
        if moves >= limit {
            w.events.push(Event::RebalanceLimit);
            break;
        }
    }
}
