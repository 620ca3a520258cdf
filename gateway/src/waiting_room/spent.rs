//! The admissions already used to order, so each orders once: a set bounded
//! by `spent_tickets_max` that forgets an admission once it has expired (an
//! expired admission is refused by its own expiry, so it need not be kept).
//! Pure: `now` is passed in.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// An admission: the room instance and the queue number.
pub type AdmissionId = (u64, u32);

/// Why an admission may not order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendError {
    /// It ordered already (under another idempotency key, or none).
    Used,
    /// The set holds `spent_tickets_max` live admissions: refused rather
    /// than forgetting one that could then order twice.
    Full,
}

/// The used admissions that have not expired yet.
pub struct SpentTickets {
    max: usize,
    /// The idempotency key each was used with.
    used: HashMap<AdmissionId, Option<String>>,
    /// When each may be forgotten, soonest first.
    expiries: BinaryHeap<Reverse<(u64, AdmissionId)>>,
}

impl SpentTickets {
    pub fn new(max: usize) -> SpentTickets {
        SpentTickets {
            max,
            used: HashMap::new(),
            expiries: BinaryHeap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// Marks `admission` (valid until `expires_at_ms`) used by an order with
    /// `idempotency_key`. The same admission again is refused as `Used`,
    /// unless both carry the same idempotency key: that is a retry of the
    /// same order, which the node answers with the order it placed.
    pub fn spend(
        &mut self,
        admission: AdmissionId,
        expires_at_ms: u64,
        idempotency_key: Option<&str>,
        now_ms: u64,
    ) -> Result<(), SpendError> {
        while let Some(Reverse((expires, id))) = self.expiries.peek().copied() {
            if expires > now_ms {
                break;
            }
            self.expiries.pop();
            self.used.remove(&id);
        }
        if let Some(key) = self.used.get(&admission) {
            return match (key.as_deref(), idempotency_key) {
                (Some(used), Some(retry)) if used == retry => Ok(()),
                _ => Err(SpendError::Used),
            };
        }
        if self.used.len() >= self.max {
            return Err(SpendError::Full);
        }
        self.used
            .insert(admission, idempotency_key.map(str::to_owned));
        self.expiries.push(Reverse((expires_at_ms, admission)));
        debug_assert_eq!(self.used.len(), self.expiries.len());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admission_orders_once_and_a_retry_under_its_key_passes() {
        let mut spent = SpentTickets::new(10);
        assert_eq!(spent.spend((1, 0), 100, Some("k"), 0), Ok(()));
        assert_eq!(spent.spend((1, 0), 100, Some("k"), 1), Ok(()));
        assert_eq!(
            spent.spend((1, 0), 100, Some("other"), 2),
            Err(SpendError::Used)
        );
        assert_eq!(spent.spend((1, 0), 100, None, 3), Err(SpendError::Used));
        assert_eq!(spent.spend((1, 1), 100, None, 3), Ok(()));
        assert_eq!(spent.spend((1, 1), 100, None, 4), Err(SpendError::Used));
        assert_eq!(spent.spend((2, 0), 100, None, 4), Ok(()), "another room");
    }

    #[test]
    fn the_set_is_bounded_and_forgets_expired_admissions() {
        let mut spent = SpentTickets::new(2);
        spent.spend((1, 0), 100, None, 0).unwrap();
        spent.spend((1, 1), 200, None, 0).unwrap();
        assert_eq!(spent.spend((1, 2), 300, None, 50), Err(SpendError::Full));
        assert_eq!(spent.spend((1, 2), 300, None, 100), Ok(()));
        assert_eq!(spent.len(), 2);
    }
}
