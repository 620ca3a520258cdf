//! `LogHold`: a reader of the log that is not done with it yet (the events
//! publisher), and how much of the log a checkpoint keeps for it.
//!
//! The log is that reader's queue: it reads records after `through_lsn` from
//! the disk, never from the order path. A checkpoint trims the log only up to
//! `trim_floor`, so what the reader has not handled stays, unless it is further
//! behind than `retention_records_max`: then the log is trimmed anyway and the
//! reader finds a gap (it reports one; orders never wait for it).

use std::sync::atomic::{AtomicU64, Ordering};

use flashgate_storage::Lsn;

#[derive(Debug, Default)]
pub struct LogHold {
    /// Every record up to this LSN is handled; the log after it is kept.
    pub through_lsn: AtomicU64,
    /// Records the log keeps for a reader that is behind.
    pub retention_records_max: AtomicU64,
    /// Gaps the reader found (records trimmed before it read them).
    pub gaps: AtomicU64,
}

impl LogHold {
    pub fn new(through_lsn: Lsn, retention_records_max: u64) -> LogHold {
        LogHold {
            through_lsn: AtomicU64::new(through_lsn),
            retention_records_max: AtomicU64::new(retention_records_max),
            gaps: AtomicU64::new(0),
        }
    }

    /// The LSN up to which a checkpoint may trim the log, of `durable`: the
    /// handled one, unless the reader is further behind than the retention.
    pub fn trim_floor(&self, durable: Lsn) -> Lsn {
        let through = self.through_lsn.load(Ordering::Acquire);
        let retention = self.retention_records_max.load(Ordering::Acquire);
        if durable.saturating_sub(through) > retention {
            durable
        } else {
            through.min(durable)
        }
    }

    /// Records behind `durable`.
    pub fn lag(&self, durable: Lsn) -> u64 {
        durable.saturating_sub(self.through_lsn.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log is kept for a reader up to its retention, never beyond.
    #[test]
    fn the_log_is_kept_up_to_the_retention() {
        let hold = LogHold::new(100, 50);
        assert_eq!(hold.trim_floor(120), 100, "behind: kept");
        assert_eq!(hold.trim_floor(150), 100, "at the retention: kept");
        assert_eq!(hold.trim_floor(151), 151, "past it: trimmed anyway");
        assert_eq!(hold.trim_floor(90), 90, "never above what is durable");
        assert_eq!(hold.lag(151), 51);
    }
}
