//! The archive: values kept beside the log, under keys the caller chooses (the
//! actors keep there the last state of orders that left a shard's memory).
//! Storage knows them as bytes only. Every key is at most `SLED_KEY_BYTES_MAX`
//! bytes and every value at most `SLED_VALUE_BYTES_MAX`, checked on each
//! insert, so they stay in sled's data file like everything else.
//!
//! Durability: an insert is not durable by itself; it is made durable by the
//! next barrier, which every later log write passes (a barrier flushes the
//! whole database). So a caller that inserts a value and then appends a log
//! record has both durable once the record is.

use crate::error::StorageError;
use crate::inline::check_value;
use crate::store::Storage;

/// A key and its value.
pub type ArchiveEntry = (Vec<u8>, Vec<u8>);

/// Most values one `archive_page` returns.
pub const ARCHIVE_PAGE_VALUES_MAX: usize = 8_192;

impl Storage {
    /// Inserts (or replaces) values in one atomic batch; durable with the next
    /// barrier. Refuses a key or value over the limits, inserting none.
    pub fn archive_insert(&self, values: &[ArchiveEntry]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (key, value) in values {
            check_value("archive", key, value)?;
            batch.insert(key.as_slice(), value.as_slice());
        }
        let _wait = self.disk_wait("archive write");
        self.archive_tree().apply_batch(batch)?;
        Ok(())
    }

    /// The value under `key`, if any. May read the disk; the wait is watched
    /// like every other (`oldest_disk_wait`).
    pub fn archive_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let _wait = self.disk_wait("archive read");
        Ok(self.archive_tree().get(key)?.map(|value| value.to_vec()))
    }

    /// Up to `ARCHIVE_PAGE_VALUES_MAX` entries with keys after `after` (from
    /// the first when `None`), in key order: for copying the archive to a
    /// standby a page at a time.
    pub fn archive_page(&self, after: Option<&[u8]>) -> Result<Vec<ArchiveEntry>, StorageError> {
        let _wait = self.disk_wait("archive read");
        let range = match after {
            Some(after) => self
                .archive_tree()
                .range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => self.archive_tree().iter(),
        };
        range
            .take(ARCHIVE_PAGE_VALUES_MAX)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// Entries in the archive (counts every entry: for reports and tests).
    pub fn archive_len(&self) -> usize {
        self.archive_tree().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StorageConfig, SLED_VALUE_BYTES_MAX};

    #[test]
    fn values_survive_a_reopen_after_a_barrier_and_oversized_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
            let values: Vec<(Vec<u8>, Vec<u8>)> = (0u64..3)
                .map(|n| (n.to_be_bytes().to_vec(), vec![n as u8; 10]))
                .collect();
            storage.archive_insert(&values).unwrap();
            let too_large = vec![(vec![9], vec![0; SLED_VALUE_BYTES_MAX + 1])];
            assert!(storage.archive_insert(&too_large).is_err());
            assert_eq!(storage.archive_get(&[9]).unwrap(), None);
            storage.barrier().unwrap();
        }
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        assert_eq!(
            storage.archive_get(&1u64.to_be_bytes()).unwrap(),
            Some(vec![1; 10])
        );
        let first = storage.archive_page(None).unwrap();
        assert_eq!(first.len(), 3);
        let rest = storage.archive_page(Some(&first[0].0)).unwrap();
        assert_eq!(rest, first[1..].to_vec());
        assert_eq!(storage.archive_len(), 3);
    }
}
