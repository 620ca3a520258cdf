//! `DueQueue`: orders by the instant something is due for them (a reservation's
//! expiry, an order's leaving memory), read in `(instant, order id)` order.
//!
//! Orders mostly arrive in that order already: a shard's clock moves forward
//! and one SKU's reservations share one TTL, so each is due after the one
//! before. Those go on a sorted deque (an append, no tree search); removing
//! one marks it, and marks are dropped from the front and compacted away once
//! they are half the deque. An entry that arrives earlier than the deque's last
//! (another TTL, a clock stepped back, a restore in another order) goes to an
//! ordered set beside it. Reading merges the two, so the order is exactly the
//! ordered set's whatever the arrival order was.

use std::collections::{BTreeSet, VecDeque};

use super::types::{OrderId, Timestamp};

/// Marks tolerated before a compaction is considered, so a small queue is
/// never rewritten for a few removals.
const REMOVED_BEFORE_COMPACTION_MIN: usize = 64;

/// An entry's key: when it is due, then which order.
pub type DueKey = (Timestamp, OrderId);

/// A key and its removal mark in 32 bytes (a `(DueKey, bool)` takes 40).
#[derive(Clone, Copy, Debug)]
struct Entry {
    at: Timestamp,
    epoch: u64,
    number: u64,
    shard: u32,
    removed: bool,
}

impl Entry {
    fn new((at, id): DueKey) -> Entry {
        Entry {
            at,
            epoch: id.epoch,
            number: id.number,
            shard: id.shard,
            removed: false,
        }
    }

    fn key(&self) -> DueKey {
        (
            self.at,
            OrderId {
                epoch: self.epoch,
                shard: self.shard,
                number: self.number,
            },
        )
    }
}

/// Entries `(instant, order id)`, each at most once, read in key order.
///
/// Guarantees: `first` and `due` see exactly the inserted and not removed
/// keys, in ascending order; the deque holds at most twice the live entries
/// (plus `REMOVED_BEFORE_COMPACTION_MIN`); an insert in order is O(1), a
/// removal O(log n) and O(1) at the front.
#[derive(Clone, Debug, Default)]
pub struct DueQueue {
    /// Strictly ascending keys; `removed` ones are skipped when read.
    in_order: VecDeque<Entry>,
    /// Entries of `in_order` marked removed.
    removed: usize,
    /// Keys that arrived below `in_order`'s last.
    out_of_order: BTreeSet<DueKey>,
}

impl DueQueue {
    pub fn new() -> DueQueue {
        DueQueue::default()
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.in_order.len() - self.removed + self.out_of_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `key`; it must not be in the queue.
    pub fn insert(&mut self, key: DueKey) {
        match self.in_order.back() {
            Some(last) if last.key() >= key => {
                let added = self.out_of_order.insert(key);
                debug_assert!(added, "a due key is inserted once");
            }
            _ => self.in_order.push_back(Entry::new(key)),
        }
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &DueKey) -> bool {
        if let Some(first) = self.in_order.front() {
            if first.key() == *key {
                // Due things leave in order: the common case.
                self.in_order.pop_front();
                self.drop_removed_front();
                return true;
            }
        }
        if let Ok(index) = self.in_order.binary_search_by(|entry| entry.key().cmp(key)) {
            let entry = &mut self.in_order[index];
            if !entry.removed {
                entry.removed = true;
                self.removed += 1;
                self.compact_if_half_removed();
                return true;
            }
        }
        self.out_of_order.remove(key)
    }

    /// The smallest live key.
    pub fn first(&self) -> Option<DueKey> {
        // The deque's front is never a removed entry (see `drop_removed_front`).
        let in_order = self.in_order.front().map(Entry::key);
        let out_of_order = self.out_of_order.first().copied();
        match (in_order, out_of_order) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Live keys due at or before `now`, ascending.
    pub fn due(&self, now: Timestamp) -> impl Iterator<Item = DueKey> + '_ {
        self.iter().take_while(move |(at, _)| *at <= now)
    }

    /// Every live key, ascending.
    pub fn iter(&self) -> Merged<'_> {
        Merged {
            in_order: self.in_order.iter().peekable(),
            out_of_order: self.out_of_order.iter().peekable(),
        }
    }

    fn drop_removed_front(&mut self) {
        while self.in_order.front().is_some_and(|entry| entry.removed) {
            self.in_order.pop_front();
            self.removed -= 1;
        }
    }

    fn compact_if_half_removed(&mut self) {
        self.drop_removed_front();
        if self.removed >= REMOVED_BEFORE_COMPACTION_MIN && self.removed * 2 >= self.in_order.len()
        {
            // The capacity stays, as a hash table's does: the queue will
            // likely hold as many again.
            self.in_order.retain(|entry| !entry.removed);
            self.removed = 0;
        }
    }
}

/// The live keys of both halves of a `DueQueue`, merged in ascending order.
pub struct Merged<'a> {
    in_order: std::iter::Peekable<std::collections::vec_deque::Iter<'a, Entry>>,
    out_of_order: std::iter::Peekable<std::collections::btree_set::Iter<'a, DueKey>>,
}

impl Iterator for Merged<'_> {
    type Item = DueKey;

    fn next(&mut self) -> Option<DueKey> {
        while self.in_order.peek().is_some_and(|entry| entry.removed) {
            self.in_order.next();
        }
        match (self.in_order.peek(), self.out_of_order.peek()) {
            (Some(a), Some(b)) if a.key() < **b => self.in_order.next().map(Entry::key),
            (Some(_), Some(_)) | (None, Some(_)) => self.out_of_order.next().copied(),
            (Some(_), None) => self.in_order.next().map(Entry::key),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn key(at: u64, number: u64) -> DueKey {
        (
            Timestamp(at),
            OrderId {
                epoch: 1,
                shard: 0,
                number,
            },
        )
    }

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u64, u64),
        /// Removes the n-th live key (modulo the count), or a key not there.
        Remove(usize),
        RemoveAbsent(u64, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u64..40, 0u64..400).prop_map(|(at, n)| Step::Insert(at, n)),
            // Mostly in order: the case the deque serves.
            6 => (0u64..400).prop_map(|n| Step::Insert(1_000 + n, n)),
            5 => (0usize..1_000).prop_map(Step::Remove),
            1 => (0u64..2_000, 0u64..400).prop_map(|(at, n)| Step::RemoveAbsent(at, n)),
        ]
    }

    proptest! {
        /// Whatever the order of inserts and removals, the queue reads exactly
        /// as an ordered set of the same keys: expiry and retirement events are
        /// decided in the same order as before, on every node.
        #[test]
        fn reads_as_an_ordered_set(steps in proptest::collection::vec(step(), 0..600)) {
            let mut queue = DueQueue::new();
            let mut model = BTreeSet::new();
            for step in steps {
                match step {
                    Step::Insert(at, n) => {
                        let k = key(at, n);
                        if model.insert(k) {
                            queue.insert(k);
                        }
                    }
                    Step::Remove(n) => {
                        if let Some(k) = model.iter().nth(n % model.len().max(1)).copied() {
                            model.remove(&k);
                            prop_assert!(queue.remove(&k));
                        }
                    }
                    Step::RemoveAbsent(at, n) => {
                        let k = key(at, n);
                        prop_assert_eq!(queue.remove(&k), model.remove(&k));
                    }
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.first(), model.first().copied());
                prop_assert!(queue.in_order.len() <= 2 * queue.len() + REMOVED_BEFORE_COMPACTION_MIN + 1);
            }
            let read: Vec<DueKey> = queue.iter().collect();
            let expected: Vec<DueKey> = model.iter().copied().collect();
            prop_assert_eq!(read, expected);
            let due: Vec<DueKey> = queue.due(Timestamp(1_100)).collect();
            let expected: Vec<DueKey> = model.iter().copied().take_while(|(at, _)| at.0 <= 1_100).collect();
            prop_assert_eq!(due, expected);
        }
    }

    #[test]
    fn an_entry_takes_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn in_order_entries_stay_off_the_tree_and_marks_are_compacted() {
        let mut queue = DueQueue::new();
        for n in 0..1_000 {
            queue.insert(key(n, n));
        }
        assert!(queue.out_of_order.is_empty());
        for n in (1..1_000).step_by(2) {
            assert!(queue.remove(&key(n, n)));
        }
        assert_eq!(queue.len(), 500);
        assert!(queue.in_order.len() <= 2 * 500 + REMOVED_BEFORE_COMPACTION_MIN);
        assert!(queue.remove(&key(0, 0)));
        assert_eq!(queue.first(), Some(key(2, 2)));
        assert!(!queue.remove(&key(1, 1)), "a removed key is gone");
    }
}
