//! `BoundedStore`: governor's keyed GCRA state, in a table that never holds
//! more than `keys_max` keys. governor decides (its `RateLimiter` and GCRA);
//! this store only keeps each key's theoretical arrival time, as governor's own
//! in-memory state does (one `AtomicU64`, replaced by compare-and-swap), and:
//! - a key that is not tracked while the table is full shares one overflow
//!   cell with every other such key: a flood of distinct keys (spoofed
//!   customer ids, many addresses) is limited as one client, costs no memory,
//!   and is counted;
//! - `forget_idle` drops keys whose state has fully replenished (a key seen
//!   again starts afresh, which is what its state said anyway).

use std::hash::Hash;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::StateStore;

/// Cheap to clone: clones share the table (the limiter owns one, the
/// housekeeping another).
pub struct BoundedStore<K: Hash + Eq> {
    inner: Arc<Inner<K>>,
}

impl<K: Hash + Eq> Clone for BoundedStore<K> {
    fn clone(&self) -> Self {
        BoundedStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<K: Hash + Eq> {
    cells: DashMap<K, AtomicU64, foldhash::fast::RandomState>,
    tracked: AtomicUsize,
    keys_max: usize,
    /// The cell every key shares that found the table full.
    overflow: AtomicU64,
    overflowed: AtomicU64,
    /// When the limiter this store serves was made: its states count
    /// nanoseconds from about then.
    start: Instant,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// A store for a limiter made right after, holding at most `keys_max`
    /// keys (at least 1).
    pub fn new(keys_max: usize) -> BoundedStore<K> {
        let inner = Inner {
            cells: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            tracked: AtomicUsize::new(0),
            keys_max: keys_max.max(1),
            overflow: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
            start: Instant::now(),
        };
        BoundedStore {
            inner: Arc::new(inner),
        }
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.inner.tracked.load(Ordering::Relaxed)
    }

    /// Requests of untracked keys that found the table full, since the start.
    pub fn overflowed(&self) -> u64 {
        self.inner.overflowed.load(Ordering::Relaxed)
    }

    /// Drops the keys whose state has fully replenished by `now`: a request
    /// of theirs would find a full burst either way.
    pub fn forget_idle(&self, now: Instant) {
        let inner = &self.inner;
        let now = now.saturating_duration_since(inner.start).as_nanos() as u64;
        let before = inner.cells.len();
        inner
            .cells
            .retain(|_, cell| cell.load(Ordering::Relaxed) > now);
        let dropped = before.saturating_sub(inner.cells.len());
        inner.tracked.fetch_sub(dropped, Ordering::Relaxed);
        inner.cells.shrink_to_fit();
    }
}

/// governor's compare-and-swap on one state: `f` decides from the previous
/// theoretical arrival time (`None` the first time).
fn measure_and_replace_one<T, F, E>(cell: &AtomicU64, f: F) -> Result<T, E>
where
    F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
{
    let mut previous = cell.load(Ordering::Acquire);
    loop {
        let (result, next) = f(NonZeroU64::new(previous).map(|n| Nanos::from(n.get())))?;
        match cell.compare_exchange_weak(
            previous,
            u64::from(next),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Ok(result),
            Err(current) => previous = current,
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let inner = &self.inner;
        if let Some(cell) = inner.cells.get(key) {
            return measure_and_replace_one(&cell, f);
        }
        // Take a place in the table, or share the overflow cell.
        let taken = inner
            .tracked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tracked| {
                (tracked < inner.keys_max).then_some(tracked + 1)
            });
        if taken.is_err() {
            inner.overflowed.fetch_add(1, Ordering::Relaxed);
            return measure_and_replace_one(&inner.overflow, f);
        }
        let entry = inner.cells.entry(key.clone());
        if matches!(entry, dashmap::Entry::Occupied(_)) {
            // Another request of this key got there first.
            inner.tracked.fetch_sub(1, Ordering::Relaxed);
        }
        let cell = entry.or_insert_with(|| AtomicU64::new(0));
        measure_and_replace_one(&cell, f)
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use governor::clock::MonotonicClock;
    use governor::{Quota, RateLimiter};

    use super::*;

    fn limiter(burst: u32, keys_max: usize) -> RateLimiter<u32, BoundedStore<u32>, MonotonicClock> {
        let quota = Quota::per_hour(NonZeroU32::new(burst).unwrap());
        let store = BoundedStore::new(keys_max);
        RateLimiter::new(quota, store, MonotonicClock)
    }

    #[test]
    fn each_tracked_key_has_its_own_burst() {
        let limiter = limiter(2, 10);
        for key in 0..5 {
            assert!(limiter.check_key(&key).is_ok());
            assert!(limiter.check_key(&key).is_ok());
            assert!(limiter.check_key(&key).is_err(), "key {key} over its burst");
        }
    }

    #[test]
    fn a_full_table_puts_new_keys_in_one_shared_cell() {
        let limiter = limiter(3, 2);
        assert!(limiter.check_key(&1).is_ok());
        assert!(limiter.check_key(&2).is_ok());
        // Keys 3.. share one burst of 3.
        assert!(limiter.check_key(&3).is_ok());
        assert!(limiter.check_key(&4).is_ok());
        assert!(limiter.check_key(&5).is_ok());
        assert!(limiter.check_key(&6).is_err());
        // The tracked keys keep their own.
        assert!(limiter.check_key(&1).is_ok());
    }
}
