//! Where publishing resumes: the pure decision from what this node saved, what
//! the stream's last message says, and this node's epoch history.
//!
//! Both sources name a record by (epoch, LSN). A record is known published
//! only when this node's log holds the same record: same position, same epoch.
//! The epoch history says which positions of this log were written in which
//! epoch, so a position published under an epoch this log left (a tail it
//! discarded on rejoin, or another primary's after an async failover) counts
//! only up to where this log's records of that epoch end. Resuming too early
//! costs duplicates (dropped by JetStream within its window, and recognised by
//! id after it); resuming too late would lose events, so every doubt resolves
//! toward the earlier position.

use flashgate_storage::{EpochStart, Lsn};

/// A published record: its epoch and position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub epoch: u64,
    pub lsn: Lsn,
}

/// How far `published` is also published as far as this log goes: its
/// position, cut to the last record this log holds of the same epoch's
/// history.
pub fn agreed(history: &[EpochStart], published: Published) -> Lsn {
    match history
        .iter()
        .position(|start| start.epoch == published.epoch)
    {
        Some(index) => match history.get(index + 1) {
            // This log's records of that epoch end where the next epoch starts.
            Some(next) => published.lsn.min(next.first_lsn.saturating_sub(1)),
            None => published.lsn,
        },
        // An epoch this log never wrote: the published record is not this
        // log's, and where that epoch began is unknown, so nothing of it is
        // known to be this log's.
        None => 0,
    }
}

/// The LSN after which to publish: the further of the two sources, each cut
/// to what this log agrees with, never past `durable` (what this log holds).
/// Without either, `log_start` (the oldest record the log holds is the first
/// published; what came before is a gap the caller reports).
pub fn resume_after(
    history: &[EpochStart],
    saved: Option<Published>,
    stream_last: Option<Published>,
    log_start: Lsn,
    durable: Lsn,
) -> Lsn {
    let known = [saved, stream_last]
        .into_iter()
        .flatten()
        .map(|published| agreed(history, published))
        .max();
    known.unwrap_or(log_start).min(durable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(epoch: u64, first_lsn: Lsn) -> EpochStart {
        EpochStart { epoch, first_lsn }
    }

    fn published(epoch: u64, lsn: Lsn) -> Option<Published> {
        Some(Published { epoch, lsn })
    }

    /// The normal case: one epoch; the further source wins.
    #[test]
    fn the_further_source_wins_within_one_epoch() {
        let history = [start(1, 1)];
        assert_eq!(
            resume_after(&history, published(1, 40), published(1, 55), 0, 100),
            55
        );
        assert_eq!(
            resume_after(&history, published(1, 70), published(1, 55), 0, 100),
            70
        );
        assert_eq!(
            resume_after(&history, None, None, 0, 100),
            0,
            "from the start"
        );
        assert_eq!(
            resume_after(&history, None, None, 30, 100),
            30,
            "from the log's start"
        );
        assert_eq!(
            resume_after(&history, published(1, 140), None, 0, 100),
            100,
            "never past the log"
        );
    }

    /// After a failover: the new primary's epoch began at 101; the old one
    /// published up to 110 in epoch 1, which this log holds only up to 100.
    #[test]
    fn a_published_tail_this_log_never_had_is_published_again() {
        let history = [start(1, 1), start(2, 101)];
        assert_eq!(agreed(&history, Published { epoch: 1, lsn: 110 }), 100);
        assert_eq!(resume_after(&history, None, published(1, 110), 0, 150), 100);
        // Its own records of epoch 2 that were published count in full.
        assert_eq!(resume_after(&history, None, published(2, 120), 0, 150), 120);
    }

    /// An epoch this log never wrote (another node's, between two of ours):
    /// nothing of it counts; what this node saved still does.
    #[test]
    fn an_unknown_epoch_counts_for_nothing() {
        let history = [start(1, 1), start(3, 201)];
        assert_eq!(agreed(&history, Published { epoch: 2, lsn: 150 }), 0);
        assert_eq!(
            resume_after(&history, published(1, 120), published(2, 150), 0, 250),
            120
        );
    }
}
