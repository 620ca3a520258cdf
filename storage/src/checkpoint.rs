//! Checkpoints: a snapshot of the whole node's state as opaque chunks, and the LSN
//! up to which the snapshot covers the log. Written as a new generation beside
//! the old one; a single pointer update makes it current, so a crash at any
//! point leaves one complete checkpoint.
//!
//! A chunk may be megabytes; sled would store a value that large in a file of
//! its own that the barrier does not fsync. So each chunk is stored as pages of
//! at most `SLED_VALUE_BYTES_MAX` bytes, each checksummed, reassembled and
//! checked on read.
//!
//! Keys in the `checkpoints` tree (storage format 2):
//! - `current` → generation (u64 BE), covered LSN (u64 BE), chunk count
//!   (u32 BE), layout (u32 BE, `LAYOUT_PAGES`), CRC32 of those 24 bytes (u32 BE).
//! - generation (u64 BE) + chunk index (u32 BE) + page index (u32 BE) → CRC32
//!   (u32 BE) of the key and the rest of the value, the chunk's page count
//!   (u32 BE), then at most `PAGE_PAYLOAD_BYTES_MAX` bytes of the chunk. A
//!   chunk is its pages' payloads in order; an empty chunk is one empty page.
//!
//! Storage format 1, still read (a data dir of format 1 is rewritten as pages
//! when opened): `current` → the same without the layout field (24 bytes);
//! generation (u64 BE) + chunk index (u32 BE) → CRC32 (u32 BE) + chunk bytes.

use crate::error::StorageError;
use crate::inline::{check_value, SLED_VALUE_BYTES_MAX};
use crate::record::Lsn;
use crate::store::Storage;

const CURRENT: &[u8] = b"current";
/// The pointer's layout field for chunks stored as pages.
const LAYOUT_PAGES: u32 = 2;
/// CRC32 and page count before a page's payload.
const PAGE_HEADER_BYTES: usize = 8;
/// Most chunk bytes in one page.
const PAGE_PAYLOAD_BYTES_MAX: usize = SLED_VALUE_BYTES_MAX - PAGE_HEADER_BYTES;

/// A checkpoint as read back: chunks in the order they were written.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// Every log record with an LSN up to this one is reflected in the chunks.
    pub covers_lsn: Lsn,
    pub chunks: Vec<Vec<u8>>,
}

/// How a generation's chunks are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Storage format 1: one value per chunk, of any size. Read only.
    WholeChunks,
    /// One or more pages per chunk, each under the value limit.
    Pages,
}

fn chunk_key(generation: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&generation.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

fn page_key(generation: u64, chunk: u32, page: u32) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..12].copy_from_slice(&chunk_key(generation, chunk));
    key[12..].copy_from_slice(&page.to_be_bytes());
    key
}

/// The stored value of one page: checksum over the key and the rest.
fn encode_page(key: &[u8], page_count: u32, payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(PAGE_HEADER_BYTES + payload.len());
    value.extend_from_slice(&[0; 4]);
    value.extend_from_slice(&page_count.to_be_bytes());
    value.extend_from_slice(payload);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(&value[4..]);
    value[..4].copy_from_slice(&hasher.finalize().to_be_bytes());
    value
}

/// A stored page checked against its key: its page count and payload.
fn decode_page<'a>(key: &[u8], value: &'a [u8]) -> Result<(u32, &'a [u8]), String> {
    if value.len() < PAGE_HEADER_BYTES || value.len() > SLED_VALUE_BYTES_MAX {
        return Err(format!("is {} bytes", value.len()));
    }
    let crc = u32::from_be_bytes(value[..4].try_into().expect("4 bytes"));
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(&value[4..]);
    if hasher.finalize() != crc {
        return Err("checksum mismatch".into());
    }
    let page_count = u32::from_be_bytes(value[4..8].try_into().expect("4 bytes"));
    Ok((page_count, &value[PAGE_HEADER_BYTES..]))
}

/// A chunk cut into page payloads; an empty chunk is one empty page.
fn pages_of(chunk: &[u8]) -> Vec<&[u8]> {
    if chunk.is_empty() {
        return vec![chunk];
    }
    chunk.chunks(PAGE_PAYLOAD_BYTES_MAX).collect()
}

struct Pointer {
    generation: u64,
    covers_lsn: Lsn,
    chunk_count: u32,
    layout: Layout,
}

/// The `current` pointer's stored value, checked.
fn decode_pointer(bytes: &[u8]) -> Result<Pointer, StorageError> {
    // 24 bytes: format 1, no layout field; 28: the layout before the CRC.
    let fields = match bytes.len() {
        24 => 20,
        28 => 24,
        other => {
            return Err(StorageError::CorruptCheckpoint(format!(
                "pointer is {other} bytes, not 24 or 28"
            )))
        }
    };
    let crc = u32::from_be_bytes(bytes[fields..fields + 4].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..fields]) != crc {
        return Err(StorageError::CorruptCheckpoint(
            "pointer checksum mismatch".into(),
        ));
    }
    let layout = if fields == 20 {
        Layout::WholeChunks
    } else {
        match u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes")) {
            LAYOUT_PAGES => Layout::Pages,
            other => {
                return Err(StorageError::CorruptCheckpoint(format!(
                    "pointer names chunk layout {other}; this build reads {LAYOUT_PAGES}"
                )))
            }
        }
    };
    Ok(Pointer {
        generation: u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
        covers_lsn: u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes")),
        chunk_count: u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes")),
        layout,
    })
}

/// The stored value of the `current` pointer (format 2).
fn encode_pointer(generation: u64, covers_lsn: Lsn, chunk_count: u32) -> Vec<u8> {
    let mut pointer = Vec::with_capacity(28);
    pointer.extend_from_slice(&generation.to_be_bytes());
    pointer.extend_from_slice(&covers_lsn.to_be_bytes());
    pointer.extend_from_slice(&chunk_count.to_be_bytes());
    pointer.extend_from_slice(&LAYOUT_PAGES.to_be_bytes());
    let crc = crc32fast::hash(&pointer);
    pointer.extend_from_slice(&crc.to_be_bytes());
    pointer
}

/// Every chunk `pointer` names, each checked, read through `get` (a key of
/// the `checkpoints` tree → its value). Never allocates more than the chunks
/// found hold: a damaged pointer may claim any chunk count.
fn read_chunks<V: AsRef<[u8]>>(
    pointer: &Pointer,
    chunk_bytes_max: usize,
    mut get: impl FnMut(&[u8]) -> Result<Option<V>, StorageError>,
) -> Result<Checkpoint, StorageError> {
    let mut chunks = Vec::new();
    for index in 0..pointer.chunk_count {
        chunks.push(match pointer.layout {
            Layout::WholeChunks => {
                read_whole_chunk(pointer.generation, index, chunk_bytes_max, &mut get)?
            }
            Layout::Pages => {
                read_paged_chunk(pointer.generation, index, chunk_bytes_max, &mut get)?
            }
        });
    }
    Ok(Checkpoint {
        covers_lsn: pointer.covers_lsn,
        chunks,
    })
}

/// One chunk of format 1: CRC32 and the whole chunk in one value.
fn read_whole_chunk<V: AsRef<[u8]>>(
    generation: u64,
    index: u32,
    chunk_bytes_max: usize,
    get: &mut impl FnMut(&[u8]) -> Result<Option<V>, StorageError>,
) -> Result<Vec<u8>, StorageError> {
    let stored = get(&chunk_key(generation, index))?.ok_or_else(|| {
        StorageError::CorruptCheckpoint(format!(
            "chunk {index} of generation {generation} is missing"
        ))
    })?;
    let stored = stored.as_ref();
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
    Ok(stored[4..].to_vec())
}

/// One chunk of format 2: its pages, each checked, in order.
fn read_paged_chunk<V: AsRef<[u8]>>(
    generation: u64,
    index: u32,
    chunk_bytes_max: usize,
    get: &mut impl FnMut(&[u8]) -> Result<Option<V>, StorageError>,
) -> Result<Vec<u8>, StorageError> {
    let damaged = |page: u32, reason: String| {
        StorageError::CorruptCheckpoint(format!(
            "page {page} of chunk {index} of generation {generation} {reason}"
        ))
    };
    let mut chunk = Vec::new();
    let mut page_count = 1;
    let mut page = 0;
    while page < page_count {
        let key = page_key(generation, index, page);
        let stored = get(&key)?.ok_or_else(|| damaged(page, "is missing".into()))?;
        let (count, payload) =
            decode_page(&key, stored.as_ref()).map_err(|reason| damaged(page, reason))?;
        if page == 0 {
            // Every page but the last is full: more pages than this would
            // hold more than the limit.
            let full_pages = (count as usize).saturating_sub(1);
            if count == 0 || full_pages.saturating_mul(PAGE_PAYLOAD_BYTES_MAX) > chunk_bytes_max {
                return Err(damaged(
                    page,
                    format!("claims {count} pages; the chunk limit is {chunk_bytes_max} bytes"),
                ));
            }
            page_count = count;
            chunk.reserve((count as usize * PAGE_PAYLOAD_BYTES_MAX).min(chunk_bytes_max));
        } else if count != page_count {
            return Err(damaged(
                page,
                format!("belongs to a chunk of {count} pages, page 0 to one of {page_count}"),
            ));
        }
        chunk.extend_from_slice(payload);
        page += 1;
    }
    if chunk.len() > chunk_bytes_max {
        return Err(StorageError::CorruptCheckpoint(format!(
            "chunk {index} is {} bytes; the limit is {chunk_bytes_max}",
            chunk.len()
        )));
    }
    Ok(chunk)
}

/// The checkpoint that a `current` pointer value and the values `get` finds
/// under their keys hold, read and checked as `Storage::read_checkpoint` reads
/// a data dir's. For the fuzz targets (fuzz/).
#[doc(hidden)]
pub fn read_checkpoint_values<V: AsRef<[u8]>>(
    current: Option<&[u8]>,
    chunk_bytes_max: usize,
    get: impl FnMut(&[u8]) -> Result<Option<V>, StorageError>,
) -> Result<Option<Checkpoint>, StorageError> {
    let Some(current) = current else {
        return Ok(None);
    };
    let pointer = decode_pointer(current)?;
    read_chunks(&pointer, chunk_bytes_max, get).map(Some)
}

/// The (key, value) pairs `Storage::write_checkpoint` stores for `chunks` as
/// generation `generation`: every page, then the `current` pointer. For the
/// fuzz targets (fuzz/).
#[doc(hidden)]
pub fn checkpoint_values(
    generation: u64,
    covers_lsn: Lsn,
    chunks: &[Vec<u8>],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut values = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let pages = pages_of(chunk);
        let page_count = u32::try_from(pages.len()).expect("fewer than 2^32 pages");
        for (page, payload) in pages.into_iter().enumerate() {
            let key = page_key(generation, index as u32, page as u32);
            let value = encode_page(&key, page_count, payload);
            values.push((key.to_vec(), value));
        }
    }
    let chunk_count = u32::try_from(chunks.len()).expect("fewer than 2^32 chunks");
    values.push((
        CURRENT.to_vec(),
        encode_pointer(generation, covers_lsn, chunk_count),
    ));
    values
}

impl Storage {
    fn checkpoint_pointer(&self) -> Result<Option<Pointer>, StorageError> {
        match self.checkpoint_tree().get(CURRENT)? {
            None => Ok(None),
            Some(bytes) => decode_pointer(&bytes).map(Some),
        }
    }

    /// The LSN the current checkpoint covers (0 without one), without reading it.
    pub fn checkpoint_covers_lsn(&self) -> Result<Lsn, StorageError> {
        Ok(self
            .checkpoint_pointer()?
            .map_or(0, |pointer| pointer.covers_lsn))
    }

    /// The current checkpoint, every page (or format 1 chunk) checked, or `None`
    /// if none was written.
    pub fn read_checkpoint(&self) -> Result<Option<Checkpoint>, StorageError> {
        let Some(pointer) = self.checkpoint_pointer()? else {
            return Ok(None);
        };
        let tree = self.checkpoint_tree();
        read_chunks(&pointer, self.config().chunk_bytes_max, |key| {
            Ok(tree.get(key)?)
        })
        .map(Some)
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
        // Pages an earlier attempt at this generation left (it crashed before
        // its pointer was written) must not mix with this one's.
        self.remove_generation(generation)?;
        for (index, chunk) in chunks.iter().enumerate() {
            assert!(
                chunk.len() <= self.config().chunk_bytes_max,
                "checkpoint chunk over the limit"
            );
            let pages = pages_of(chunk);
            let page_count = u32::try_from(pages.len()).expect("fewer than 2^32 pages");
            for (page, payload) in pages.into_iter().enumerate() {
                let key = page_key(generation, index as u32, page as u32);
                let value = encode_page(&key, page_count, payload);
                check_value("checkpoints", &key, &value)?;
                tree.insert(key, value)?;
            }
        }
        self.barrier()?;

        let pointer = encode_pointer(generation, covers_lsn, chunk_count);
        check_value("checkpoints", CURRENT, &pointer)?;
        tree.insert(CURRENT, pointer)?;
        self.barrier()?;

        if let Some(old) = old {
            self.remove_generation(old.generation)?;
        }
        let trimmed = self.trim_log(covers_lsn)?;
        // Losing these removals in a crash is harmless: reading skips what the
        // checkpoint covers. No barrier needed.
        tracing::debug!(generation, covers_lsn, trimmed, "checkpoint written");
        Ok(())
    }

    /// Removes every key of one generation, in either layout; not durable until
    /// a barrier.
    fn remove_generation(&self, generation: u64) -> Result<(), StorageError> {
        let tree = self.checkpoint_tree();
        let mut batch = sled::Batch::default();
        for key in tree.scan_prefix(generation.to_be_bytes()).keys() {
            batch.remove(key?);
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    /// Format 1 → 2: writes a checkpoint of format 1 again as pages (same
    /// chunks, same LSN) and drops the old values. Returns whether there was
    /// one to rewrite.
    pub(crate) fn upgrade_checkpoint(&self) -> Result<bool, StorageError> {
        match self.checkpoint_pointer()? {
            Some(pointer) if pointer.layout == Layout::WholeChunks => {
                let Some(checkpoint) = self.read_checkpoint()? else {
                    return Ok(false);
                };
                self.write_checkpoint(checkpoint.covers_lsn, &checkpoint.chunks)?;
                Ok(true)
            }
            _ => Ok(false),
        }
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
        let key = page_key(1, 0, 0);
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

    fn chunk_of(seed: u8, bytes: usize) -> Vec<u8> {
        (0..bytes)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn large_chunks_are_stored_as_pages_under_the_limit_and_reassembled() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let chunks = vec![
            chunk_of(1, PAGE_PAYLOAD_BYTES_MAX * 3),
            chunk_of(2, PAGE_PAYLOAD_BYTES_MAX * 2 + 1),
            Vec::new(),
            chunk_of(3, 1_000_000),
        ];
        storage.write_checkpoint(0, &chunks).unwrap();
        for entry in storage.checkpoint_tree().iter() {
            let (key, value) = entry.unwrap();
            assert!(value.len() <= SLED_VALUE_BYTES_MAX, "{} bytes", value.len());
            assert!(key.len() <= crate::inline::SLED_KEY_BYTES_MAX);
        }
        let pages = 3 + 3 + 1 + 1_000_000usize.div_ceil(PAGE_PAYLOAD_BYTES_MAX);
        assert_eq!(storage.checkpoint_tree().len(), pages + 1);
        assert!(storage.read_checkpoint().unwrap().unwrap().chunks == chunks);

        // A second generation replaces the first and leaves none of its pages.
        storage.write_checkpoint(0, &chunks[..1]).unwrap();
        assert_eq!(storage.checkpoint_tree().len(), 3 + 1);
        assert!(storage.read_checkpoint().unwrap().unwrap().chunks == chunks[..1]);
    }

    #[test]
    fn a_damaged_missing_or_misplaced_page_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let chunks = vec![
            chunk_of(1, PAGE_PAYLOAD_BYTES_MAX * 2 + 10),
            chunk_of(2, 10),
        ];
        storage.write_checkpoint(0, &chunks).unwrap();
        let tree = storage.checkpoint_tree();
        let middle = page_key(1, 0, 1);
        let stored = tree.get(middle).unwrap().unwrap();

        let mut damaged = stored.to_vec();
        damaged[100] ^= 1;
        tree.insert(middle, damaged).unwrap();
        let error = storage.read_checkpoint().unwrap_err().to_string();
        assert!(
            error.contains("page 1 of chunk 0") && error.contains("checksum"),
            "{error}"
        );

        // A page stored under another page's key fails its checksum too.
        tree.insert(middle, tree.get(page_key(1, 0, 0)).unwrap().unwrap())
            .unwrap();
        assert!(storage.read_checkpoint().is_err());

        tree.remove(middle).unwrap();
        let error = storage.read_checkpoint().unwrap_err().to_string();
        assert!(
            error.contains("page 1 of chunk 0") && error.contains("missing"),
            "{error}"
        );

        tree.insert(middle, stored).unwrap();
        assert!(storage.read_checkpoint().unwrap().unwrap().chunks == chunks);
    }

    #[test]
    fn a_page_count_beyond_the_chunk_limit_is_refused_before_reading_on() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        storage.write_checkpoint(0, &[b"state".to_vec()]).unwrap();
        let key = page_key(1, 0, 0);
        storage
            .checkpoint_tree()
            .insert(key, encode_page(&key, u32::MAX, b"state"))
            .unwrap();
        let error = storage.read_checkpoint().unwrap_err().to_string();
        assert!(error.contains("claims 4294967295 pages"), "{error}");
    }

    /// A damaged pointer (checksum intact) claiming 2^32 - 1 chunks is refused
    /// at the first missing chunk: reading allocates for the chunks found, not
    /// for the count claimed, which aborted the process (out of memory).
    #[test]
    fn a_pointer_claiming_more_chunks_than_stored_is_refused_without_allocating_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        storage.write_checkpoint(7, &[b"state".to_vec()]).unwrap();
        storage
            .checkpoint_tree()
            .insert(CURRENT, encode_pointer(1, 7, u32::MAX))
            .unwrap();
        let error = storage.read_checkpoint().unwrap_err().to_string();
        assert!(
            error.contains("page 0 of chunk 1 of generation 1 is missing"),
            "{error}"
        );
    }

    /// A data dir of storage format 1 (a log entry per group commit, a value
    /// per chunk, both of any size) is rewritten under the value limit when
    /// opened, and reads back the same.
    #[test]
    fn a_format_1_data_dir_is_upgraded_to_values_under_the_limit() {
        use crate::record::{encode_record, RECORD_HEADER_BYTES};
        let dir = tempfile::tempdir().unwrap();
        let chunks = vec![chunk_of(7, 500_000), b"header".to_vec()];
        let body = |lsn: Lsn| vec![lsn as u8; 200];
        {
            let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
            // Format 1's layout, written by hand: one entry of 1,000 records
            // (LSNs 1..=1000), one of 1,000 more, a whole-chunk checkpoint
            // covering the first.
            for first in [1u64, 1001] {
                let mut entry = Vec::new();
                for lsn in first..first + 1000 {
                    encode_record(&mut entry, 1, lsn, &body(lsn));
                }
                assert!(entry.len() > 1000 * (RECORD_HEADER_BYTES + 200) - 1);
                storage
                    .log_tree()
                    .insert(first.to_be_bytes(), entry)
                    .unwrap();
            }
            let tree = storage.checkpoint_tree();
            for (index, chunk) in chunks.iter().enumerate() {
                let mut stored = crc32fast::hash(chunk).to_be_bytes().to_vec();
                stored.extend_from_slice(chunk);
                tree.insert(chunk_key(5, index as u32), stored).unwrap();
            }
            let mut pointer = Vec::new();
            pointer.extend_from_slice(&5u64.to_be_bytes());
            pointer.extend_from_slice(&1000u64.to_be_bytes());
            pointer.extend_from_slice(&2u32.to_be_bytes());
            let crc = crc32fast::hash(&pointer);
            pointer.extend_from_slice(&crc.to_be_bytes());
            tree.insert(CURRENT, pointer).unwrap();
            storage.set_meta_u64(b"format_version", 1).unwrap();
            // Format 1 is still read as it is.
            assert!(storage.read_checkpoint().unwrap().unwrap().chunks == chunks);
        }
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        assert_eq!(storage.meta_u64(b"format_version").unwrap(), Some(2));
        for tree in [storage.log_tree(), storage.checkpoint_tree()] {
            for entry in tree.iter() {
                let (_, value) = entry.unwrap();
                assert!(value.len() <= SLED_VALUE_BYTES_MAX, "{} bytes", value.len());
            }
        }
        let checkpoint = storage.read_checkpoint().unwrap().unwrap();
        assert_eq!(checkpoint.covers_lsn, 1000);
        assert!(checkpoint.chunks == chunks);
        let pointer = storage.checkpoint_pointer().unwrap().unwrap();
        assert_eq!((pointer.generation, pointer.layout), (6, Layout::Pages));
        let mut next = 1001;
        storage
            .read_log_after::<StorageError>(1000, |record| {
                assert_eq!((record.lsn, &record.body), (next, &body(next)));
                next += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(next, 2001);
        assert_eq!(storage.last_lsn().unwrap(), Some(2000));
    }
}
