//! The archive: values kept beside the log, under keys the caller chooses (the
//! actors keep there the last state of orders that left a shard's memory).
//! Storage knows them as bytes only. Every key is at most `SLED_KEY_BYTES_MAX`
//! bytes and every value at most `SLED_VALUE_BYTES_MAX`, checked on each
//! insert, so they stay in sled's data file like everything else.
//!
//! Beside the values, the archive keeps an index: keys without values, in key
//! order, that the caller builds so that it can find values by something other
//! than their key (the actors index archived orders by customer and time).
//! Keys follow the same limit. An index key is written before or with the value
//! it leads to and never removed; a reader must treat one whose value is
//! missing or does not match as a miss.
//!
//! Durability: an insert is not durable by itself; it is made durable by the
//! next barrier, which every later log write passes (a barrier flushes the
//! whole database). So a caller that inserts a value and then appends a log
//! record has both durable once the record is.

use crate::error::StorageError;
use crate::inline::check_value;
use crate::store::{apply_in_batches, Storage};

/// A key and its value.
pub type ArchiveEntry = (Vec<u8>, Vec<u8>);

/// Most values one `archive_page` returns.
pub const ARCHIVE_PAGE_VALUES_MAX: usize = 8_192;

impl Storage {
    /// Inserts (or replaces) values, in order, `SLED_BATCH_KEYS_MAX` per sled
    /// batch: a crash may keep some of them (harmless: a value is only read
    /// once the order has left memory, which its log record says); durable
    /// with the next barrier. Refuses a key or value over the limits,
    /// inserting none.
    pub fn archive_insert(&self, values: &[ArchiveEntry]) -> Result<(), StorageError> {
        for (key, value) in values {
            check_value("archive", key, value)?;
        }
        let _wait = self.disk_wait("archive write");
        apply_in_batches(self.archive_tree(), values, |batch, (key, value)| {
            batch.insert(key.as_slice(), value.as_slice())
        })
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

    /// Inserts index keys, `SLED_BATCH_KEYS_MAX` per sled batch (a crash may
    /// keep some: a reader treats a key without its value as a miss); durable
    /// with the next barrier. Refuses a key over the limit, inserting none.
    pub fn archive_index_insert(&self, keys: &[Vec<u8>]) -> Result<(), StorageError> {
        for key in keys {
            check_value("archive index", key, &[])?;
        }
        let _wait = self.disk_wait("archive index write");
        apply_in_batches(self.archive_index_tree(), keys, |batch, key| {
            batch.insert(key.as_slice(), &[][..])
        })
    }

    /// Up to `limit` index keys that start with `prefix` and sort strictly
    /// before `before` (any, when `None`), greatest first.
    pub fn archive_index_before(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        use std::ops::Bound;
        let _wait = self.disk_wait("archive index read");
        let upper = match before {
            Some(before) => Bound::Excluded(before.to_vec()),
            None => match prefix_end(prefix) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            },
        };
        self.archive_index_tree()
            .range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), upper))
            .rev()
            .take(limit)
            .map(|entry| Ok(entry?.0.to_vec()))
            .collect()
    }

    /// Keys in the archive's index (for reports and tests).
    pub fn archive_index_len(&self) -> usize {
        self.archive_index_tree().len()
    }

    /// Entries in the archive (counts every entry: for reports and tests).
    pub fn archive_len(&self) -> usize {
        self.archive_tree().len()
    }
}

/// The least key greater than every key that starts with `prefix`; `None`
/// when there is none (the prefix is all 0xff bytes, or empty).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
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

    #[test]
    fn index_keys_are_read_back_greatest_first_within_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let keys: Vec<Vec<u8>> = [[1, 0], [1, 5], [1, 9], [2, 0], [0, 7], [1, 0xff]]
            .iter()
            .map(|key| key.to_vec())
            .collect();
        storage.archive_index_insert(&keys).unwrap();
        assert!(storage.archive_index_insert(&[vec![0; 33]]).is_err());
        assert_eq!(
            storage.archive_index_before(&[1], None, 10).unwrap(),
            [vec![1, 0xff], vec![1, 9], vec![1, 5], vec![1, 0]]
        );
        assert_eq!(
            storage
                .archive_index_before(&[1], Some(&[1, 9]), 2)
                .unwrap(),
            [vec![1, 5], vec![1, 0]]
        );
        assert_eq!(
            storage.archive_index_before(&[0xff], None, 10).unwrap(),
            Vec::<Vec<u8>>::new()
        );
        assert_eq!(storage.archive_index_len(), 6);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
