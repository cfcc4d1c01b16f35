//! Every deadline of the reactor in one queue: connections, shim exchanges,
//! the fetch round and the periodic jobs.
//!
//! Owns: which key is due when. Each key has at most one deadline, set with
//! [`Timers::set`] after every call into the state machine it belongs to.
//! A wake-up costs O(log n) per expired or moved deadline, never a scan of
//! every connection: moving a deadline *later* (the common case, e.g. write
//! progress) only updates the key's record, and its heap entry, when it
//! surfaces, is pushed back to the new time; moving it *earlier* pushes a new
//! entry and turns the old one stale (skipped by its generation). Stale
//! entries are bounded: the heap is rebuilt when they outnumber live ones.
//!
//! Must not: read the clock (`now` is passed in), allocate per wake-up.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Armed {
    /// When the key is due.
    at: Instant,
    /// Time of the key's live heap entry (`<= at`).
    entry: Instant,
    /// Generation of the live heap entry.
    generation: u64,
}

/// A deadline queue keyed by `K`.
pub struct Timers<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    armed: HashMap<K, Armed>,
    next_gen: u64,
}

impl<K: Copy + Eq + Hash + Ord> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            armed: HashMap::new(),
            next_gen: 0,
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> Timers<K> {
    /// Set (`Some`) or clear (`None`) the deadline of `key`.
    pub fn set(&mut self, key: K, at: Option<Instant>) {
        let Some(at) = at else {
            self.armed.remove(&key);
            return;
        };
        match self.armed.get_mut(&key) {
            Some(a) if at >= a.entry => a.at = at,
            _ => {
                let generation = self.next_gen;
                self.next_gen += 1;
                self.heap.push(Reverse((at, generation, key)));
                self.armed.insert(
                    key,
                    Armed {
                        at,
                        entry: at,
                        generation,
                    },
                );
                self.compact();
            }
        }
    }

    /// The deadline of `key`, if set.
    pub fn get(&self, key: K) -> Option<Instant> {
        self.armed.get(&key).map(|a| a.at)
    }

    /// The earliest deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.settle();
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Remove and return one key whose deadline is `<= now`. Call until
    /// `None`; an expired key's deadline is cleared.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        self.settle();
        let Reverse((at, _, key)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.armed.remove(&key);
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.armed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }

    /// Make the heap's top a live entry at its key's real deadline.
    fn settle(&mut self) {
        while let Some(&Reverse((at, generation, key))) = self.heap.peek() {
            match self.armed.get_mut(&key) {
                Some(a) if a.generation == generation => {
                    if a.at == at {
                        return;
                    }
                    // Moved later since this entry was pushed.
                    self.heap.pop();
                    a.entry = a.at;
                    self.heap.push(Reverse((a.at, generation, key)));
                }
                _ => {
                    self.heap.pop();
                }
            }
        }
    }

    /// Rebuild the heap when stale entries outnumber live ones.
    fn compact(&mut self) {
        if self.heap.len() <= 2 * self.armed.len() + 64 {
            return;
        }
        let mut v = std::mem::take(&mut self.heap).into_vec();
        v.retain(|Reverse((_, g, k))| self.armed.get(k).is_some_and(|a| a.generation == *g));
        self.heap = BinaryHeap::from(v);
    }

    #[cfg(test)]
    fn heap_len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t0() -> Instant {
        Instant::now()
    }
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(t: &mut Timers<u32>, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| t.pop_expired(now)).collect()
    }

    #[test]
    fn fires_in_order_and_only_when_due() {
        let now = t0();
        let mut t = Timers::default();
        t.set(1, Some(now + ms(30)));
        t.set(2, Some(now + ms(10)));
        t.set(3, Some(now + ms(20)));
        assert_eq!(t.next_deadline(), Some(now + ms(10)));
        assert_eq!(drain(&mut t, now + ms(5)), Vec::<u32>::new());
        assert_eq!(drain(&mut t, now + ms(20)), vec![2, 3]);
        assert_eq!(t.get(2), None, "an expired deadline is cleared");
        assert_eq!(t.next_deadline(), Some(now + ms(30)));
        assert_eq!(drain(&mut t, now + ms(100)), vec![1]);
        assert_eq!(t.next_deadline(), None);
        assert!(t.is_empty());
    }

    #[test]
    fn moving_later_does_not_fire_early() {
        let now = t0();
        let mut t = Timers::default();
        t.set(1, Some(now + ms(10)));
        // Write progress pushes a stall deadline out, many times.
        for i in 1..=1000 {
            t.set(1, Some(now + ms(10 + i)));
        }
        assert_eq!(t.heap_len(), 1, "later moves push nothing");
        assert_eq!(t.next_deadline(), Some(now + ms(1010)));
        assert_eq!(drain(&mut t, now + ms(1009)), Vec::<u32>::new());
        assert_eq!(drain(&mut t, now + ms(1010)), vec![1]);
    }

    #[test]
    fn moving_earlier_and_clearing() {
        let now = t0();
        let mut t = Timers::default();
        t.set(1, Some(now + ms(100)));
        t.set(1, Some(now + ms(10)));
        t.set(2, Some(now + ms(5)));
        t.set(2, None);
        assert_eq!(t.get(2), None);
        assert_eq!(t.next_deadline(), Some(now + ms(10)));
        assert_eq!(
            drain(&mut t, now + ms(1000)),
            vec![1],
            "stale entries skipped"
        );
        // Re-set after clearing works with a fresh generation.
        t.set(2, Some(now + ms(7)));
        assert_eq!(drain(&mut t, now + ms(7)), vec![2]);
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let now = t0();
        let mut t = Timers::default();
        for round in 0..10_000u64 {
            // Keys come and go (connections), each leaving a stale entry.
            let k = (round % 50) as u32;
            t.set(k, Some(now + ms(10_000 - round % 1000)));
            t.set(k, None);
            t.set(k, Some(now + ms(1)));
        }
        assert!(t.heap_len() <= 2 * t.len() + 64 + 1, "{}", t.heap_len());
        assert_eq!(drain(&mut t, now + ms(1)).len(), 50);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn equal_deadlines_all_fire() {
        let now = t0();
        let mut t = Timers::default();
        for k in 0..10 {
            t.set(k, Some(now));
        }
        let mut got = drain(&mut t, now);
        got.sort();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }
}
