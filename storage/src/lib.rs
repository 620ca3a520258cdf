//! flashgate's storage: a write-ahead log and checkpoints on sled. It knows bytes,
//! LSNs, epochs and checksums; it does not know what an order is.
//!
//! # Layout
//! - `record`: the record format (version, epoch, LSN, CRC32, body) and its checks.
//! - `store`: `Storage`, the sled database of a data dir, its durability barrier
//!   (sled flush + fsync of the data file) and persistent node facts.
//! - `writer`: the group-commit writer thread and its bounded queue;
//!   `DurableBatch`, a durable group commit's entries handed on in memory.
//! - `archive`: values kept beside the log under the caller's keys (the last
//!   state of what left the caller's memory), read back one key at a time.
//! - `checkpoint`: snapshots as checksummed chunks stored as pages, swapped in
//!   atomically.
//! - `inline`: the value limit that keeps everything in sled's data file, the
//!   one file the barrier fsyncs, and its check against sled's segment size.
//! - `epochs`: which epoch wrote which part of the log, and where two logs part.
//! - `backup`: backup frames and files as bytes, and the log between two LSNs
//!   for a backup.
//! - `error`: `StorageError`.
//! - `fault`: test-only fault points, in debug builds only.

mod archive;
pub mod backup;
mod checkpoint;
mod epochs;
mod error;
#[cfg(debug_assertions)]
pub mod fault;
mod inline;
mod record;
mod store;
mod writer;

pub use archive::{ArchiveEntry, ARCHIVE_PAGE_VALUES_MAX};
pub use checkpoint::Checkpoint;

/// Entry points for the fuzz targets (fuzz/): the pure readers of what a data
/// dir holds, without sled. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::checkpoint::{checkpoint_values, read_checkpoint_values};

    /// A replicated log entry as a standby stores it: its records checked, cut
    /// into entries under the value limit (first LSN, bytes).
    pub fn split_replicated_entry(
        bytes: &[u8],
        first: crate::Lsn,
        record_bytes_max: usize,
    ) -> Result<Vec<(crate::Lsn, Vec<u8>)>, crate::StorageError> {
        let entries = crate::store::split_entry(bytes, first, record_bytes_max)?;
        Ok(entries
            .iter()
            .map(|(lsn, bytes)| (lsn, bytes.to_vec()))
            .collect())
    }
}
pub use epochs::{agreed_through, EpochStart, EPOCH_HISTORY_MAX};
pub use error::StorageError;
pub use inline::{
    check_values_stay_inline, flashgate_node_bytes_max, sled_inline_item_bytes_max,
    RECORD_BODY_BYTES_MAX, SLED_KEY_BYTES_MAX, SLED_SEGMENT_BYTES_DEFAULT, SLED_VALUE_BYTES_MAX,
};
pub use record::{
    decode_entry, encode_record, verify_entry, Lsn, Record, RECORD_HEADER_BYTES, RECORD_VERSION,
};
pub use store::{
    DiskWait, EntryBytes, Storage, StorageConfig, CACHE_BYTES_MAX_DEFAULT, FORMAT_VERSION,
    SLED_BATCH_KEYS_MAX,
};
pub use writer::{
    Append, Completion, DurableBatch, LogProgress, LogSender, LogWriter, WriterConfig,
};
