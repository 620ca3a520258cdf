//! `OrderLedger`: each SKU's order attempts by outcome since the node
//! started, counted where the order's outcome is counted
//! (`RequestMetrics::order_outcome`, both front ends), for the sales report.
//! Bounded: at most `skus_max` SKUs (`Config::report_skus_max`); refusals
//! that name no SKU the node has (`unknown_sku`, `invalid_field`) are not
//! kept per SKU, and attempts past the bound are counted as `overflow`.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

/// Outcomes not kept per SKU: they do not name a SKU this node sells, so a
/// client could otherwise fill the table with made-up ids.
const NOT_PER_SKU: &[&str] = &["unknown_sku", "invalid_field", "malformed_json"];

/// One SKU's attempts: how many, the first one's time, and each outcome's
/// count (indexed like `OrderLedger::outcomes`).
pub struct SkuAttempts {
    pub first_attempt_ms: AtomicU64,
    pub attempts: AtomicU64,
    pub by_outcome: Box<[AtomicU64]>,
}

/// One SKU's attempts as read at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    /// Milliseconds since the Unix epoch of the first attempt on this node.
    pub first_attempt_ms: u64,
    pub attempts: u64,
    /// `(outcome, count)` for every outcome seen at least once.
    pub by_outcome: Vec<(&'static str, u64)>,
}

pub struct OrderLedger {
    skus_max: usize,
    outcomes: Box<[&'static str]>,
    skus: DashMap<Box<str>, SkuAttempts, foldhash::fast::RandomState>,
    overflow: AtomicU64,
}

impl OrderLedger {
    /// A ledger of at most `skus_max` SKUs over the outcomes listed (an
    /// outcome not listed is counted as an attempt only).
    pub fn new(skus_max: usize, outcomes: Box<[&'static str]>) -> OrderLedger {
        OrderLedger {
            skus_max,
            outcomes,
            skus: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            overflow: AtomicU64::new(0),
        }
    }

    /// Counts one attempt for `sku` with `outcome`. On the order path: a
    /// shared look-up and two relaxed adds; the clock is read only for a
    /// SKU's first attempt (`now_ms`).
    pub fn record(&self, sku: &str, outcome: &str, now_ms: impl FnOnce() -> u64) {
        if NOT_PER_SKU.contains(&outcome) {
            return;
        }
        let index = self.outcomes.iter().position(|known| *known == outcome);
        let count = |attempts: &SkuAttempts| {
            attempts.attempts.fetch_add(1, Ordering::Relaxed);
            if let Some(index) = index {
                attempts.by_outcome[index].fetch_add(1, Ordering::Relaxed);
            }
        };
        if let Some(found) = self.skus.get(sku) {
            return count(found.value());
        }
        if self.skus.len() >= self.skus_max {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let entry = self.skus.entry(sku.into()).or_insert_with(|| SkuAttempts {
            first_attempt_ms: AtomicU64::new(now_ms()),
            attempts: AtomicU64::new(0),
            by_outcome: self.outcomes.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        count(entry.value());
    }

    /// Every SKU's counts, sorted by SKU.
    pub fn read(&self) -> Vec<(String, AttemptCounts)> {
        let mut all: Vec<(String, AttemptCounts)> = self
            .skus
            .iter()
            .map(|entry| {
                let attempts = entry.value();
                let by_outcome = self
                    .outcomes
                    .iter()
                    .zip(attempts.by_outcome.iter())
                    .map(|(outcome, count)| (*outcome, count.load(Ordering::Relaxed)))
                    .filter(|(_, count)| *count > 0)
                    .collect();
                (
                    entry.key().to_string(),
                    AttemptCounts {
                        first_attempt_ms: attempts.first_attempt_ms.load(Ordering::Relaxed),
                        attempts: attempts.attempts.load(Ordering::Relaxed),
                        by_outcome,
                    },
                )
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Attempts not kept per SKU because the table was full.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attempts are kept per SKU and outcome; made-up SKUs are not kept; the
    /// table stops at its bound and counts what it turned away.
    #[test]
    fn counts_per_sku_and_outcome_within_the_bound() {
        let ledger = OrderLedger::new(2, vec!["created", "sold_out"].into());
        ledger.record("A", "created", || 10);
        ledger.record("A", "sold_out", || 20);
        ledger.record("A", "overloaded", || 30);
        ledger.record("ghost", "unknown_sku", || 30);
        ledger.record("B", "created", || 40);
        ledger.record("C", "created", || 50);
        let read = ledger.read();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].0, "A");
        assert_eq!(read[0].1.attempts, 3);
        assert_eq!(read[0].1.first_attempt_ms, 10);
        assert_eq!(read[0].1.by_outcome, vec![("created", 1), ("sold_out", 1)]);
        assert_eq!(read[1].0, "B");
        assert_eq!(ledger.overflow(), 1);
    }
}
