//! The world's event queue: items ordered by `(time, order of queueing)`.
//!
//! The heap holds small keys only; the items wait in a slab whose slots are reused, so that
//! sifting moves 24 bytes rather than a whole event (a segment carries its frame inline), and a
//! queue that reached its working size allocates nothing more.

use crate::time::Instant;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::{Ordering, Reverse};

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    at: Instant,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        // `seq` is unique: `slot` never decides.
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Items by time, the first queued first among equal times.
pub(super) struct Queue<T> {
    heap: BinaryHeap<Reverse<Key>>,
    items: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u64,
}

impl<T> Queue<T> {
    /// A queue with room for `capacity` items before it grows.
    pub fn with_capacity(capacity: usize) -> Self {
        Queue {
            heap: BinaryHeap::with_capacity(capacity),
            items: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            seq: 0,
        }
    }

    /// Queues `item` for `at`.
    pub fn push(&mut self, at: Instant, item: T) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.items[s as usize] = Some(item);
                s
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.heap.push(Reverse(Key {
            at,
            seq: self.seq,
            slot,
        }));
    }

    /// When the next item is due.
    pub fn next_at(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(k)| k.at)
    }

    /// The next item and its time.
    pub fn pop(&mut self) -> Option<(Instant, T)> {
        let Reverse(k) = self.heap.pop()?;
        self.free.push(k.slot);
        let item = self.items[k.slot as usize].take()?;
        Some((k.at, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_first_queued_and_slots_are_reused() {
        let t = Instant::from_nanos;
        let mut q = Queue::with_capacity(2);
        q.push(t(5), 'a');
        q.push(t(3), 'b');
        q.push(t(5), 'c');
        assert_eq!(q.next_at(), Some(t(3)));
        assert_eq!(q.pop(), Some((t(3), 'b')));
        q.push(t(4), 'd');
        assert_eq!(q.items.len(), 3, "the freed slot was reused");
        let order: Vec<char> = core::iter::from_fn(|| q.pop().map(|(_, c)| c)).collect();
        assert_eq!(order, ['d', 'a', 'c']);
        assert_eq!(q.next_at(), None);
    }
}
