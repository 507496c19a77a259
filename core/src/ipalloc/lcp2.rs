//! LCP2 (`IPAllocAlgorithm=2`, CTDB's `ipalloc_lcp2.c`).
//!
//! A node's *imbalance* is the sum over pairs of its addresses of `distance²` (long common
//! prefixes cost more). Unassigned addresses go, one at a time, to the (address, node) pair that
//! adds the least; then addresses move from the most imbalanced nodes to nodes that held nothing
//! at the start of the run (or are forced), while a move lowers both ends' cost.
//!
//! CTDB recomputes every sum from scratch at each step; here the sums are kept in tables and
//! updated incrementally, with the same 32-bit wrapping arithmetic, so every decision is CTDB's.

use super::common::{Work, NONE};
use super::{key_distance, Event, Options};
use crate::types::Pnn;
use alloc::vec;
use alloc::vec::Vec;

/// Squared distance, CTDB's per-pair cost (at most 128² = 16384).
fn cost(a: u128, b: u128) -> u32 {
    let d = key_distance(a, b);
    d * d
}

pub(super) fn run(w: &mut Work<'_>, options: &Options) {
    w.unassign_unsuitable();
    let n = w.n;
    let mut imbalance = initial_imbalances(w);
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
    allocate_unassigned(w, &mut imbalance);
    if options.no_ip_failback || !candidates.contains(&true) {
        return;
    }
    failback(w, &mut imbalance, &candidates);
}

/// Each node's imbalance from the current holders.
fn initial_imbalances(w: &Work<'_>) -> Vec<u32> {
    let mut held: Vec<Vec<u128>> = vec![Vec::new(); w.n];
    for (ip, &o) in w.owner.iter().enumerate() {
        if o != NONE {
            held[o as usize].push(w.keys[ip]);
        }
    }
    held.iter()
        .map(|keys| {
            let mut sum = 0u32;
            for (i, &a) in keys.iter().enumerate() {
                for &b in &keys[i + 1..] {
                    sum = sum.wrapping_add(cost(a, b));
                }
            }
            sum
        })
        .collect()
}

/// The cheapest node for one address: lowest cost, lowest PNN on ties. With `hint` =
/// (old minimum, old best node) after only the old best node's cost grew, any later node still
/// at the old minimum is the answer (earlier nodes were strictly above it).
fn best_node(w: &Work<'_>, ip: usize, row: &[u32], hint: Option<(u32, u32)>) -> Option<(u32, u32)> {
    if let Some((v, after)) = hint {
        // A zero-cost pair (possible between IPv6 addresses) leaves the old best as it was.
        if row[after as usize] == v {
            return Some((v, after));
        }
        for node in after as usize + 1..w.n {
            if row[node] == v && w.can_takeover(node, ip) {
                return Some((v, node as u32));
            }
        }
    }
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
fn allocate_unassigned(w: &mut Work<'_>, imbalance: &mut [u32]) {
    let n = w.n;
    let pending: Vec<usize> = (0..w.len()).filter(|&ip| w.owner[ip] == NONE).collect();
    if pending.is_empty() {
        return;
    }
    // dsum[r * n + node]: cost of adding pending[r] to node = Σ cost to what node holds.
    let mut dsum = vec![0u32; pending.len() * n];
    let held: Vec<(u128, usize)> = (0..w.len())
        .filter(|&t| w.owner[t] != NONE)
        .map(|t| (w.keys[t], w.owner[t] as usize))
        .collect();
    for (r, &ip) in pending.iter().enumerate() {
        let row = &mut dsum[r * n..(r + 1) * n];
        for &(key, node) in &held {
            row[node] = row[node].wrapping_add(cost(w.keys[ip], key));
        }
    }
    let mut best: Vec<Option<(u32, u32)>> = pending
        .iter()
        .enumerate()
        .map(|(r, &ip)| best_node(w, ip, &dsum[r * n..(r + 1) * n], None))
        .collect();
    // Rows still unassigned, in CTDB order.
    let mut live: Vec<usize> = (0..pending.len()).collect();
    loop {
        let mut choice: Option<(u32, u32, usize)> = None;
        for (pos, &r) in live.iter().enumerate() {
            if let Some((c, node)) = best[r] {
                if choice.map_or(true, |(min, _, _)| c < min) {
                    choice = Some((c, node, pos));
                }
            }
        }
        let Some((c, node, pos)) = choice else { break };
        let ip = pending[live.remove(pos)];
        w.set_owner(ip, node);
        imbalance[node as usize] = imbalance[node as usize].wrapping_add(c);
        w.events.push(Event::Assigned {
            addr: w.addr(ip),
            to: Pnn(node),
            cost: Some(c),
        });
        // Only `node`'s column grows; only rows whose best was `node` can change their best,
        // unless a sum wrapped around (then all are recomputed, as CTDB's sums wrap too).
        let key = w.keys[ip];
        let mut wrapped = false;
        for &r in &live {
            let cell = &mut dsum[r * n + node as usize];
            let old = *cell;
            *cell = old.wrapping_add(cost(w.keys[pending[r]], key));
            wrapped |= *cell < old;
        }
        for &r in &live {
            let hint = match best[r] {
                _ if wrapped => None,
                Some((v, b)) if b == node => Some((v, b)),
                _ => continue,
            };
            best[r] = best_node(w, pending[r], &dsum[r * n..(r + 1) * n], hint);
        }
    }
    for &r in &live {
        w.events.push(Event::Uncovered {
            addr: w.addr(pending[r]),
        });
    }
}

/// A move found by [`best_move`]: (index into the held list, destination, new source
/// imbalance, new destination imbalance).
type Move = (usize, usize, u32, u32);

/// Moves addresses from the most imbalanced nodes to candidates while that lowers both ends.
fn failback(w: &mut Work<'_>, imbalance: &mut [u32], candidates: &[bool]) {
    let n = w.n;
    let cands: Vec<usize> = (0..n).filter(|&d| candidates[d]).collect();
    let held: Vec<usize> = (0..w.len()).filter(|&x| w.owner[x] != NONE).collect();
    // Every move goes to a candidate that can take the address: if there is none, CTDB's loop
    // finds nothing, so skip building the tables.
    if !held
        .iter()
        .any(|&x| cands.iter().any(|&d| w.can_takeover(d, x)))
    {
        return;
    }
    // dsum[h * n + node] = Σ cost(held[h], t) over t held by node, t != held[h].
    let mut dsum = vec![0u32; held.len() * n];
    for (i, &x) in held.iter().enumerate() {
        for (j, &y) in held.iter().enumerate().skip(i + 1) {
            let c = cost(w.keys[x], w.keys[y]);
            let (ox, oy) = (w.owner[x] as usize, w.owner[y] as usize);
            dsum[i * n + oy] = dsum[i * n + oy].wrapping_add(c);
            dsum[j * n + ox] = dsum[j * n + ox].wrapping_add(c);
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
        let Some((s, (h, d, src_imbl, dst_imbl))) = found else {
            break;
        };
        let x = held[h];
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
        for (r, &y) in held.iter().enumerate() {
            if y != x {
                let c = cost(w.keys[x], w.keys[y]);
                dsum[r * n + s] = dsum[r * n + s].wrapping_sub(c);
                dsum[r * n + d] = dsum[r * n + d].wrapping_add(c);
            }
        }
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
    for (h, &x) in held.iter().enumerate() {
        if w.owner[x] as usize != src {
            continue;
        }
        let src_dsum = dsum[h * n + src];
        let src_imbl = src_now.wrapping_sub(src_dsum);
        for &d in cands {
            if !w.can_takeover(d, x) {
                continue;
            }
            let dst_dsum = dsum[h * n + d];
            let dst_imbl = imbalance[d].wrapping_add(dst_dsum);
            if dst_imbl < src_now
                && dst_dsum < src_dsum
                && best.map_or(true, |(_, _, bs, bd)| {
                    src_imbl.wrapping_add(dst_imbl) < bs.wrapping_add(bd)
                })
            {
                best = Some((h, d, src_imbl, dst_imbl));
            }
        }
    }
    best
}
