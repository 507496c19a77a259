//! LCP2 (`IPAllocAlgorithm=2`, CTDB's `ipalloc_lcp2.c`).
//!
//! A node's *imbalance* is the sum over pairs of its addresses of `distance²` (long common
//! prefixes cost more). Unassigned addresses go, one at a time, to the (address, node) pair that
//! adds the least; then addresses move from the most imbalanced nodes to nodes that held nothing
//! at the start of the run (or are forced), while a move lowers both ends' cost.
//!
//! CTDB recomputes every sum from scratch at each step (cubic time). Here the sums
//! ("dsum": what an address costs, or would cost, on a node) are kept in node-major tables and
//! updated incrementally with the same 32-bit wrapping arithmetic, so every decision is CTDB's.
//! Only the sums a phase can read are computed: all columns for the addresses to assign; for
//! rebalancing, each address's own node and the candidate nodes.

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

/// Keys below 2³² (all IPv4): the three upper words are equal, so the distance is
/// `96 + clz32(a ^ b)` and the cost one table lookup.
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

impl Key for u128 {
    fn cost(self, other: u128) -> u32 {
        let d = key_distance(self, other);
        d * d
    }
}

pub(super) fn run(w: &mut Work<'_>, options: &Options) {
    w.unassign_unsuitable();
    if w.keys.iter().all(|&k| k <= u128::from(u32::MAX)) {
        let keys: Vec<u32> = w.keys.iter().map(|&k| k as u32).collect();
        run_with(w, options, &keys);
    } else {
        let keys = w.keys.to_vec();
        run_with(w, options, &keys);
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
    // Rebalancing runs unless NoIPFailback or no candidate; then it reuses phase 1's sums.
    let rebalance = !options.no_ip_failback && candidates.contains(&true);
    let assigned = allocate_unassigned(w, keys, &mut imbalance, rebalance);
    if !rebalance {
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

/// The addresses that were unassigned at the start of the run, with their sums: row `r`,
/// column `node` = Σ cost(ips[r], t) over every t that `node` holds at the end of phase 1,
/// t ≠ ips[r]. Complete for every row when `keep_all` was set (phase 2 then reuses them).
struct Phase1 {
    ips: Vec<usize>,
    /// Row-major: `dsum[r * n + node]`.
    dsum: Vec<u32>,
}

/// The cheapest node for an address given its row of sums: lowest cost, lowest PNN on ties.
fn best_node(w: &Work<'_>, ip: usize, row: &[u32]) -> Option<(u32, u32)> {
    let mut best: Option<(u32, u32)> = None;
    for (node, &c) in row.iter().enumerate() {
        if w.can_takeover(node, ip) && best.map_or(true, |(b, _)| c < b) {
            best = Some((c, node as u32));
        }
    }
    best
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
fn allocate_unassigned<K: Key>(
    w: &mut Work<'_>,
    keys: &[K],
    imbalance: &mut [u32],
    keep_all: bool,
) -> Phase1 {
    let n = w.n;
    let ips: Vec<usize> = (0..w.len()).filter(|&ip| w.owner[ip] == NONE).collect();
    let rows = ips.len();
    let row_keys: Vec<K> = ips.iter().map(|&ip| keys[ip]).collect();
    let mut dsum = vec![0u32; n * rows];
    if n == 0 {
        // No node at all (possible for a caller's input, never in CTDB): nothing to place on.
        for &ip in &ips {
            w.events.push(Event::Uncovered { addr: w.addr(ip) });
        }
    }
    if rows == 0 || n == 0 {
        return Phase1 { ips, dsum };
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
    // Assignments made in this phase, in order: (key, node, row).
    let mut log: Vec<(K, usize, usize)> = Vec::new();
    // How many log entries each row's sums include.
    let mut synced = vec![0usize; rows];
    // Per node, 1 + the log index of its latest assignment (0: none yet).
    let mut last_to = vec![0usize; n];
    let mut best: Vec<Option<(u32, u32)>> = Vec::with_capacity(rows);
    let mut heap = BinaryHeap::with_capacity(rows);
    for (r, row) in dsum.chunks_exact(n).enumerate() {
        let b = best_node(w, ips[r], row);
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
            sync_row(row, row_keys[r], r, &log[synced[r]..]);
            synced[r] = log.len();
            best[r] = best_node(w, ips[r], row);
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
        log.push((row_keys[r], node as usize, r));
        last_to[node as usize] = log.len();
    }
    for r in (0..rows).filter(|&r| alive[r]) {
        w.events.push(Event::Uncovered {
            addr: w.addr(ips[r]),
        });
    }
    if keep_all {
        for (r, row) in dsum.chunks_exact_mut(n).enumerate() {
            sync_row(row, row_keys[r], r, &log[synced[r]..]);
        }
    }
    Phase1 { ips, dsum }
}

/// Adds the costs of `entries` (assignments made since the row was last brought up to date) to
/// row `r`, except the row's own assignment: an address does not cost itself.
fn sync_row<K: Key>(row: &mut [u32], key: K, r: usize, entries: &[(K, usize, usize)]) {
    for &(k, node, q) in entries {
        if q != r {
            row[node] = row[node].wrapping_add(key.cost(k));
        }
    }
}

/// A move found by [`best_move`]: (address, destination, new source imbalance, new
/// destination imbalance).
type Move = (usize, usize, u32, u32);

/// Moves addresses from the most imbalanced nodes to candidates while that lowers both ends.
fn failback<K: Key>(
    w: &mut Work<'_>,
    keys: &[K],
    imbalance: &mut [u32],
    candidates: &[bool],
    phase1: Phase1,
) {
    let (n, a) = (w.n, w.len());
    let cands: Vec<usize> = (0..n).filter(|&d| candidates[d]).collect();
    let held: Vec<usize> = (0..a).filter(|&x| w.owner[x] != NONE).collect();
    // Every move goes to a candidate that can take the address: if there is none, CTDB's loop
    // finds nothing, so skip building the tables.
    if !held
        .iter()
        .any(|&x| cands.iter().any(|&d| w.can_takeover(d, x)))
    {
        return;
    }
    // dsum[x * n + node] = Σ cost(x, t) over t held by node, t ≠ x. Only read for x's own node
    // and the candidates; a move only goes to a candidate, so those stay the only ones needed.
    let mut dsum = vec![0u32; n * a];
    let mut from_phase1 = vec![false; a];
    for (r, &x) in phase1.ips.iter().enumerate() {
        from_phase1[x] = true;
        dsum[x * n..(x + 1) * n].copy_from_slice(&phase1.dsum[r * n..(r + 1) * n]);
    }
    let mut by_node: Vec<Vec<(usize, K)>> = vec![Vec::new(); n];
    for &x in &held {
        by_node[w.owner[x] as usize].push((x, keys[x]));
    }
    for &x in held.iter().filter(|&&x| !from_phase1[x]) {
        let own = w.owner[x] as usize;
        for node in core::iter::once(own).chain(cands.iter().copied().filter(|&d| d != own)) {
            let mut sum = 0u32;
            for &(t, k) in &by_node[node] {
                if t != x {
                    sum = sum.wrapping_add(keys[x].cost(k));
                }
            }
            dsum[x * n + node] = sum;
        }
    }
    // Every move lowers the sum of two imbalances, so CTDB's loop ends; the cap only guards
    // against the 32-bit sums wrapping, where that argument fails.
    let limit = held.len().saturating_mul(64).saturating_add(1 << 16);
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
            if let Some(m) = best_move(w, imbalance, &held, &dsum, &cands, s) {
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
        let kx = keys[x];
        for (row, &k) in dsum.chunks_exact_mut(n).zip(keys) {
            let c = k.cost(kx);
            row[s] = row[s].wrapping_sub(c);
            row[d] = row[d].wrapping_add(c);
        }
        // x never costs itself: undo its own entries.
        let own = kx.cost(kx);
        dsum[x * n + s] = dsum[x * n + s].wrapping_add(own);
        dsum[x * n + d] = dsum[x * n + d].wrapping_sub(own);
        moves += 1;
        if moves >= limit {
            w.events.push(Event::RebalanceLimit);
            break;
        }
    }
}

/// The best move of one of `src`'s addresses to a candidate: it must leave the destination
/// below the source's current imbalance and cost the destination less than it costs the
/// source; among those, least total resulting imbalance, first found on ties.
fn best_move(
    w: &Work<'_>,
    imbalance: &[u32],
    held: &[usize],
    dsum: &[u32],
    cands: &[usize],
    src: usize,
) -> Option<Move> {
    let n = w.n;
    let src_now = imbalance[src];
    let mut best: Option<Move> = None;
    for &x in held {
        if w.owner[x] as usize != src {
            continue;
        }
        let src_dsum = dsum[x * n + src];
        let src_imbl = src_now.wrapping_sub(src_dsum);
        for &d in cands {
            if !w.can_takeover(d, x) {
                continue;
            }
            let dst_dsum = dsum[x * n + d];
            let dst_imbl = imbalance[d].wrapping_add(dst_dsum);
            if dst_imbl < src_now
                && dst_dsum < src_dsum
                && best.map_or(true, |(_, _, bs, bd)| {
                    src_imbl.wrapping_add(dst_imbl) < bs.wrapping_add(bd)
                })
            {
                best = Some((x, d, src_imbl, dst_imbl));
            }
        }
    }
    best
}
