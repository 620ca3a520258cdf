//! Epoch history: which epoch wrote which part of the log. Every promotion starts
//! a new epoch at the LSN after the last record the promoted node had, so two
//! nodes can find where their logs part ways by comparing histories, the way a
//! returning primary finds the tail it must discard.
//!
//! Stored in the meta tree under `epochs` as 16-byte entries (epoch, first LSN,
//! both u64 BE) followed by a CRC32 (u32 BE) of those bytes.

use crate::error::StorageError;
use crate::record::Lsn;
use crate::store::Storage;

const META_EPOCHS: &[u8] = b"epochs";
const META_EPOCH: &[u8] = b"epoch";
/// Most entries a history keeps; older ones are dropped (they only matter to a
/// node that was away for that many promotions, which then resyncs in full).
/// The stored history (16 bytes an entry and a CRC32) stays under
/// `SLED_VALUE_BYTES_MAX`.
pub const EPOCH_HISTORY_MAX: usize = 128;

const _: () = assert!(EPOCH_HISTORY_MAX * 16 + 4 <= crate::inline::SLED_VALUE_BYTES_MAX);

/// The first LSN written in an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: u64,
    pub first_lsn: Lsn,
}

/// How far a follower's log agrees with the primary's: every record up to the
/// returned LSN is the same on both; the follower must discard what it has
/// after it. Pure.
///
/// `primary` and `follower` are epoch histories (epochs increasing, first LSNs
/// non-decreasing); `*_last` the last LSN each holds. The common point is the
/// newest epoch both histories start at the same LSN: the records of that epoch
/// agree up to where the earlier of the two ends. Without a common epoch nothing
/// is known to agree, and the answer is 0.
pub fn agreed_through(
    primary: &[EpochStart],
    primary_last: Lsn,
    follower: &[EpochStart],
    follower_last: Lsn,
) -> Lsn {
    let end_of = |history: &[EpochStart], index: usize, last: Lsn| match history.get(index + 1) {
        Some(next) => next.first_lsn.saturating_sub(1).min(last),
        None => last,
    };
    for (follower_index, start) in follower.iter().enumerate().rev() {
        if let Some(primary_index) = primary.iter().position(|p| p == start) {
            let primary_end = end_of(primary, primary_index, primary_last);
            let follower_end = end_of(follower, follower_index, follower_last);
            return primary_end.min(follower_end);
        }
    }
    0
}

pub(crate) fn encode_history(history: &[EpochStart]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(history.len() * 16 + 4);
    for start in history {
        bytes.extend_from_slice(&start.epoch.to_be_bytes());
        bytes.extend_from_slice(&start.first_lsn.to_be_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

pub(crate) fn decode_history(bytes: &[u8]) -> Result<Vec<EpochStart>, StorageError> {
    let corrupt =
        |reason: String| StorageError::CorruptCheckpoint(format!("epoch history: {reason}"));
    if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(16) {
        return Err(corrupt(format!("{} bytes", bytes.len())));
    }
    let (entries, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(entries).to_be_bytes() != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let history: Vec<EpochStart> = entries
        .chunks_exact(16)
        .map(|entry| EpochStart {
            epoch: u64::from_be_bytes(entry[..8].try_into().expect("8 bytes")),
            first_lsn: u64::from_be_bytes(entry[8..].try_into().expect("8 bytes")),
        })
        .collect();
    if history
        .windows(2)
        .any(|pair| pair[1].epoch <= pair[0].epoch || pair[1].first_lsn < pair[0].first_lsn)
    {
        return Err(corrupt("entries out of order".into()));
    }
    Ok(history)
}

impl Storage {
    /// The node's epoch: the newest it has started or adopted. 0 for a new data dir.
    pub fn epoch(&self) -> Result<u64, StorageError> {
        Ok(self.meta_u64(META_EPOCH)?.unwrap_or(0))
    }

    /// The epoch history, oldest first; empty for a new data dir.
    pub fn epoch_history(&self) -> Result<Vec<EpochStart>, StorageError> {
        match self.meta_bytes(META_EPOCHS)? {
            None => Ok(Vec::new()),
            Some(bytes) => decode_history(&bytes),
        }
    }

    /// Replaces the epoch history and sets the node's epoch to `epoch` (at least
    /// the newest entry's), in one atomic, durable write: both are true after a
    /// crash, or neither.
    pub fn set_epoch_history(
        &self,
        history: &[EpochStart],
        epoch: u64,
    ) -> Result<(), StorageError> {
        self.stage_epoch_history(history, epoch)?;
        self.barrier()
    }

    /// As `set_epoch_history`, durable with the next barrier: a standby stages a
    /// new epoch's start with the records that begin it.
    pub fn stage_epoch_history(
        &self,
        history: &[EpochStart],
        epoch: u64,
    ) -> Result<(), StorageError> {
        let newest = history.last().expect("a history has at least one epoch");
        let kept = &history[history.len().saturating_sub(EPOCH_HISTORY_MAX)..];
        let epoch = newest.epoch.max(epoch).to_be_bytes();
        self.apply_meta_values(&[(META_EPOCHS, &encode_history(kept)), (META_EPOCH, &epoch)])
    }

    /// Format 1 → 2: a history stored with more than `EPOCH_HISTORY_MAX`
    /// entries (format 1 kept up to 1,024) keeps its newest ones; not durable
    /// until `barrier`.
    pub(crate) fn upgrade_epoch_history(&self) -> Result<(), StorageError> {
        let history = self.epoch_history()?;
        if history.len() > EPOCH_HISTORY_MAX {
            let kept = encode_history(&history[history.len() - EPOCH_HISTORY_MAX..]);
            self.apply_meta_values(&[(META_EPOCHS, &kept)])?;
        }
        Ok(())
    }

    /// Starts a new epoch at `first_lsn`, durably, before anything is written in
    /// it. Returns the new epoch, one above every epoch this node has seen.
    pub fn start_epoch(&self, first_lsn: Lsn) -> Result<u64, StorageError> {
        let mut history = self.epoch_history()?;
        let epoch = self.epoch()?.max(history.last().map_or(0, |s| s.epoch)) + 1;
        history.push(EpochStart { epoch, first_lsn });
        self.set_epoch_history(&history, epoch)?;
        Ok(epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(u64, Lsn)]) -> Vec<EpochStart> {
        entries
            .iter()
            .map(|&(epoch, first_lsn)| EpochStart { epoch, first_lsn })
            .collect()
    }

    #[test]
    fn a_follower_of_the_same_epoch_agrees_up_to_the_shorter_log() {
        let both = history(&[(1, 1)]);
        assert_eq!(agreed_through(&both, 100, &both, 40), 40);
        // A follower cannot be ahead of its primary in the same epoch; if it is,
        // the extra records are not the primary's.
        assert_eq!(agreed_through(&both, 100, &both, 120), 100);
    }

    #[test]
    fn an_old_primary_discards_what_it_wrote_after_the_promotion_point() {
        // The standby had 70 records when it was promoted to epoch 2; the old
        // primary went on to 90 in epoch 1.
        let new_primary = history(&[(1, 1), (2, 71)]);
        let old_primary = history(&[(1, 1)]);
        assert_eq!(agreed_through(&new_primary, 200, &old_primary, 90), 70);
        assert_eq!(agreed_through(&new_primary, 200, &old_primary, 60), 60);
    }

    #[test]
    fn two_failovers_back_and_forth_keep_the_shared_prefix() {
        let primary = history(&[(1, 1), (2, 71), (3, 151)]);
        let follower = history(&[(1, 1), (2, 71)]);
        assert_eq!(agreed_through(&primary, 300, &follower, 160), 150);
        // Nothing in common: nothing agrees.
        assert_eq!(agreed_through(&primary, 300, &history(&[(5, 1)]), 10), 0);
    }

    #[test]
    fn the_history_round_trips_and_damage_is_caught() {
        let entries = history(&[(1, 1), (2, 71)]);
        let mut bytes = encode_history(&entries);
        assert_eq!(decode_history(&bytes).unwrap(), entries);
        bytes[3] ^= 1;
        assert!(decode_history(&bytes).is_err());
    }

    #[test]
    fn a_new_epoch_is_durable_and_above_every_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage =
                Storage::open(dir.path(), crate::store::StorageConfig::default()).unwrap();
            storage.set_epoch_history(&history(&[(1, 1)]), 1).unwrap();
            assert_eq!(storage.start_epoch(51).unwrap(), 2);
        }
        let storage = Storage::open(dir.path(), crate::store::StorageConfig::default()).unwrap();
        assert_eq!(storage.epoch().unwrap(), 2);
        assert_eq!(
            storage.epoch_history().unwrap(),
            history(&[(1, 1), (2, 51)])
        );
    }
}
