//! Checkpoints: a snapshot of the whole node's state as opaque chunks, and the LSN
//! up to which the snapshot covers the log. Written as a new generation beside
//! the old one; a single pointer update makes it current, so a crash at any
//! point leaves one complete checkpoint.
//!
//! Keys in the `checkpoints` tree: `current` → generation (u64 BE), covered LSN
//! (u64 BE), chunk count (u32 BE), CRC32 of those 20 bytes (u32 BE);
//! generation (u64 BE) + chunk index (u32 BE) → CRC32 (u32 BE) + chunk bytes.

use crate::error::StorageError;
use crate::record::Lsn;
use crate::store::Storage;

const CURRENT: &[u8] = b"current";

/// A checkpoint as read back: chunks in the order they were written.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// Every log record with an LSN up to this one is reflected in the chunks.
    pub covers_lsn: Lsn,
    pub chunks: Vec<Vec<u8>>,
}

fn chunk_key(generation: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&generation.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

struct Pointer {
    generation: u64,
    covers_lsn: Lsn,
    chunk_count: u32,
}

impl Storage {
    fn checkpoint_pointer(&self) -> Result<Option<Pointer>, StorageError> {
        let Some(bytes) = self.checkpoint_tree().get(CURRENT)? else {
            return Ok(None);
        };
        if bytes.len() != 24 {
            return Err(StorageError::CorruptCheckpoint(format!(
                "pointer is {} bytes, not 24",
                bytes.len()
            )));
        }
        let crc = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
        if crc32fast::hash(&bytes[..20]) != crc {
            return Err(StorageError::CorruptCheckpoint(
                "pointer checksum mismatch".into(),
            ));
        }
        Ok(Some(Pointer {
            generation: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
            covers_lsn: u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")),
            chunk_count: u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")),
        }))
    }

    /// The LSN the current checkpoint covers (0 without one), without reading it.
    pub fn checkpoint_covers_lsn(&self) -> Result<Lsn, StorageError> {
        Ok(self
            .checkpoint_pointer()?
            .map_or(0, |pointer| pointer.covers_lsn))
    }

    /// The current checkpoint, every chunk checked, or `None` if none was written.
    pub fn read_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        let Some(pointer) = self.checkpoint_pointer()? else {
            return Ok(None);
        };
        let chunk_bytes_max = self.config().chunk_bytes_max;
        let mut chunks = Vec::with_capacity(pointer.chunk_count as usize);
        for index in 0..pointer.chunk_count {
            let stored = self
                .checkpoint_tree()
                .get(chunk_key(pointer.generation, index))?
                .ok_or_else(|| {
                    StorageError::CorruptCheckpoint(format!(
                        "chunk {index} of generation {} is missing",
                        pointer.generation
                    ))
                })?;
            if stored.len() < 4 || stored.len() - 4 > chunk_bytes_max {
                return Err(StorageError::CorruptCheckpoint(format!(
                    "chunk {index} is {} bytes; the limit is {chunk_bytes_max}",
                    stored.len()
                )));
            }
            let crc = u32::from_be_bytes(stored[..4].try_into().expect("4 bytes"));
            if crc32fast::hash(&stored[4..]) != crc {
                return Err(StorageError::CorruptCheckpoint(format!(
                    "chunk {index} checksum mismatch"
                )));
            }
            chunks.push(stored[4..].to_vec());
        }
        Ok(Some(Checkpoint {
            covers_lsn: pointer.covers_lsn,
            chunks,
        }))
    }

    /// Writes a checkpoint and makes it current; returns only after it is durable.
    /// Then drops the old generation and the log entries it covers.
    /// `covers_lsn` must be a batch boundary whose records are durable.
    pub fn write_checkpoint(
        &self,
        covers_lsn: Lsn,
        chunks: &[Vec<u8>],
    ) -> Result<(), StorageError> {
        let _one_at_a_time = self.checkpoint_lock();
        let old = self.checkpoint_pointer()?;
        let generation = old.as_ref().map_or(1, |pointer| pointer.generation + 1);
        let chunk_count = u32::try_from(chunks.len()).expect("fewer than 2^32 chunks");
        let tree = self.checkpoint_tree();
        for (index, chunk) in chunks.iter().enumerate() {
            assert!(
                chunk.len() <= self.config().chunk_bytes_max,
                "checkpoint chunk over the limit"
            );
            let mut stored = Vec::with_capacity(chunk.len() + 4);
            stored.extend_from_slice(&crc32fast::hash(chunk).to_be_bytes());
            stored.extend_from_slice(chunk);
            tree.insert(chunk_key(generation, index as u32), stored)?;
        }
        self.barrier()?;

        let mut pointer = Vec::with_capacity(24);
        pointer.extend_from_slice(&generation.to_be_bytes());
        pointer.extend_from_slice(&covers_lsn.to_be_bytes());
        pointer.extend_from_slice(&chunk_count.to_be_bytes());
        let crc = crc32fast::hash(&pointer);
        pointer.extend_from_slice(&crc.to_be_bytes());
        tree.insert(CURRENT, pointer)?;
        self.barrier()?;

        if let Some(old) = old {
            let mut batch = sled::Batch::default();
            for index in 0..old.chunk_count {
                batch.remove(&chunk_key(old.generation, index));
            }
            tree.apply_batch(batch)?;
        }
        let trimmed = self.trim_log(covers_lsn)?;
        // Losing these removals in a crash is harmless: reading skips what the
        // checkpoint covers. No barrier needed.
        tracing::debug!(generation, covers_lsn, trimmed, "checkpoint written");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StorageConfig;

    #[test]
    fn the_latest_checkpoint_wins_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
            assert!(storage.read_checkpoint().unwrap().is_none());
            storage.write_checkpoint(0, &[b"first".to_vec()]).unwrap();
            storage
                .write_checkpoint(0, &[b"second".to_vec(), Vec::new(), b"third".to_vec()])
                .unwrap();
        }
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let checkpoint = storage.read_checkpoint().unwrap().unwrap();
        assert_eq!(
            checkpoint.chunks,
            vec![b"second".to_vec(), Vec::new(), b"third".to_vec()]
        );
        // The old generation is gone: the pointer plus three chunks remain.
        assert_eq!(storage.checkpoint_tree().len(), 4);
    }

    #[test]
    fn a_damaged_chunk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        storage.write_checkpoint(0, &[b"state".to_vec()]).unwrap();
        let key = chunk_key(1, 0);
        let mut stored = storage
            .checkpoint_tree()
            .get(key)
            .unwrap()
            .unwrap()
            .to_vec();
        *stored.last_mut().unwrap() ^= 0x40;
        storage.checkpoint_tree().insert(key, stored).unwrap();
        let error = storage.read_checkpoint().unwrap_err();
        assert!(error.to_string().contains("checksum"), "{error}");
    }
}
