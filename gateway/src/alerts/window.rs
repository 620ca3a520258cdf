//! `CounterWindow`: how much cumulative counters grew over the last N
//! milliseconds, from samples taken at each evaluation (pure: callers pass
//! `now`).

use std::collections::VecDeque;

/// Counters a node keeps since it started; the alert rules look at how much
/// each grew over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Orders taken by either front end, whatever their outcome.
    pub orders: u64,
    /// Orders answered with an existing order for their idempotency key.
    pub replayed: u64,
    /// Orders refused with `idempotency_key_reused`.
    pub key_reused: u64,
    /// Orders refused with `limit_exceeded` (a customer over its limit).
    pub limit_exceeded: u64,
    /// Orders refused with `overloaded` (503: a shard's queue was full).
    pub overloaded: u64,
    /// Reservations ended by payment, by cancellation, by expiry (unpaid).
    pub confirmed: u64,
    pub cancelled: u64,
    pub expired: u64,
    /// Calls to the admin API that sent a credential and were refused for it
    /// (401, 403, 429).
    pub admin_auth_refused: u64,
}

impl Counters {
    /// Each counter's growth from `earlier` to `self` (a counter never
    /// shrinks within one process; if one did, its growth is 0).
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            orders: self.orders.saturating_sub(earlier.orders),
            replayed: self.replayed.saturating_sub(earlier.replayed),
            key_reused: self.key_reused.saturating_sub(earlier.key_reused),
            limit_exceeded: self.limit_exceeded.saturating_sub(earlier.limit_exceeded),
            overloaded: self.overloaded.saturating_sub(earlier.overloaded),
            confirmed: self.confirmed.saturating_sub(earlier.confirmed),
            cancelled: self.cancelled.saturating_sub(earlier.cancelled),
            expired: self.expired.saturating_sub(earlier.expired),
            admin_auth_refused: self
                .admin_auth_refused
                .saturating_sub(earlier.admin_auth_refused),
        }
    }
}

/// Samples of `Counters`, kept for `span_ms` (the longest window a rule
/// asks about) and at most `samples_max` of them (older ones go first).
#[derive(Debug)]
pub struct CounterWindow {
    span_ms: u64,
    samples_max: usize,
    samples: VecDeque<(u64, Counters)>,
}

impl CounterWindow {
    pub fn new(span_ms: u64, samples_max: usize) -> CounterWindow {
        assert!(
            samples_max >= 2,
            "a window needs two samples to measure growth"
        );
        CounterWindow {
            span_ms,
            samples_max,
            samples: VecDeque::new(),
        }
    }

    /// Records the counters as they are at `now_ms` (non-decreasing).
    pub fn record(&mut self, now_ms: u64, counters: Counters) {
        self.samples.push_back((now_ms, counters));
        // Keep one sample at or before the span's start, so a window of the
        // whole span has its base.
        while self.samples.len() > 2 && self.samples[1].0 <= now_ms.saturating_sub(self.span_ms) {
            self.samples.pop_front();
        }
        while self.samples.len() > self.samples_max {
            self.samples.pop_front();
        }
    }

    /// How much the counters grew over the last `window_ms` before the newest
    /// sample: from the newest sample at or before its start (or the oldest
    /// kept, while the node has run for less than the window).
    pub fn growth(&self, window_ms: u64) -> Counters {
        let Some(&(newest_ms, newest)) = self.samples.back() else {
            return Counters::default();
        };
        let start = newest_ms.saturating_sub(window_ms);
        let base = self
            .samples
            .iter()
            .rev()
            .find(|(at, _)| *at <= start)
            .or(self.samples.front())
            .map_or(newest, |(_, counters)| *counters);
        newest.since(&base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(n: u64) -> Counters {
        Counters {
            orders: n,
            ..Counters::default()
        }
    }

    /// Growth is measured from the newest sample at or before the window's
    /// start; older samples are let go; the sample count is bounded.
    #[test]
    fn growth_over_a_window_and_the_samples_it_keeps() {
        let mut window = CounterWindow::new(10_000, 100);
        assert_eq!(window.growth(10_000), Counters::default());
        for second in 0..=30u64 {
            window.record(second * 1000, orders(second * 5));
        }
        // 30 s: 150; at 20 s: 100.
        assert_eq!(window.growth(10_000).orders, 50);
        assert_eq!(window.growth(1_000).orders, 5);
        // Longer than what is kept: from the oldest sample (at 20 s).
        assert_eq!(window.growth(60_000).orders, 50);
        assert!(window.samples.len() <= 12, "{}", window.samples.len());
        let mut bounded = CounterWindow::new(1_000_000, 3);
        for second in 0..10u64 {
            bounded.record(second * 1000, orders(second));
        }
        assert_eq!(bounded.samples.len(), 3);
        assert_eq!(bounded.growth(1_000_000).orders, 2);
    }
}
