//! `Storage`: the sled database in a data directory, its durability barrier, and
//! the node's small persistent facts (format version, epoch, shard count).
//!
//! Every value goes through a check against `SLED_VALUE_BYTES_MAX` before it
//! reaches sled, so sled keeps all of them in its data file, which the barrier
//! fsyncs (see `inline`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::inline::{
    check_value, check_values_stay_inline, RECORD_BODY_BYTES_MAX, SLED_VALUE_BYTES_MAX,
};
use crate::record::{decode_entry, decode_entry_spans, verify_entry, LogEntries, Lsn, Record};

/// The storage format this build writes and the newest it reads.
///
/// - 1: a log entry per group commit and a sled value per checkpoint chunk, of
///   any size (sled wrote the large ones to `sled/blobs/`, never fsynced).
/// - 2: every value at most `SLED_VALUE_BYTES_MAX` bytes: a group commit is one
///   or more log entries, a checkpoint chunk one or more pages. A data dir of
///   format 1 is upgraded when opened (`upgrade_to_inline_values`).
pub const FORMAT_VERSION: u32 = 2;

const META_FORMAT_VERSION: &[u8] = b"format_version";

/// Limits of the storage layer.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Largest record body written or read back. At most
    /// `RECORD_BODY_BYTES_MAX`, so a record always fits one log entry
    /// (`Storage::open` refuses more).
    pub record_bytes_max: usize,
    /// Largest checkpoint chunk accepted when reading a checkpoint back.
    pub chunk_bytes_max: usize,
    /// Most bytes of sled's page cache. Everything written stays cached up to
    /// it (the log, the archive of finished orders), so it bounds how much
    /// memory the data dir's history takes; sled's own default is 1 GiB.
    pub cache_bytes_max: u64,
}

/// Default size of sled's page cache.
pub const CACHE_BYTES_MAX_DEFAULT: u64 = 64 << 20;

/// Most keys in one sled batch where the whole need not be atomic (archive
/// writes, log trims). sled 0.34 copies a node for every key a batch changes
/// and keeps what a large batch allocated: archiving 16,384 orders per batch
/// left 5–7 KB of RSS per order behind for good, 256 per batch about 0.7 KB
/// (docs/PERFORMANCE.md, "Memory").
pub const SLED_BATCH_KEYS_MAX: usize = 256;

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            record_bytes_max: RECORD_BODY_BYTES_MAX,
            chunk_bytes_max: 64 << 20,
            cache_bytes_max: CACHE_BYTES_MAX_DEFAULT,
        }
    }
}

/// One log entry as stored: records `first_lsn..=last_lsn`, checksummed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryBytes {
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    pub bytes: Vec<u8>,
}

/// The waits on the disk in progress, by id in the order they started.
#[derive(Debug, Default)]
struct DiskWaits {
    next_id: u64,
    started: BTreeMap<u64, (Instant, &'static str)>,
}

/// A wait on the disk in progress (see `Storage::disk_wait`); it ends when this
/// guard is dropped.
#[must_use = "the wait ends when the guard is dropped"]
pub struct DiskWait<'a> {
    storage: &'a Storage,
    id: u64,
}

impl Drop for DiskWait<'_> {
    fn drop(&mut self) {
        self.storage.disk_waits().started.remove(&self.id);
    }
}

/// The data directory's database. Cheap to clone; all clones share one sled
/// instance.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    config: StorageConfig,
    db: sled::Db,
    pub(crate) log: sled::Tree,
    pub(crate) checkpoints: sled::Tree,
    meta: sled::Tree,
    /// Values kept beside the log under the caller's keys (see `archive.rs`).
    archive: sled::Tree,
    /// Keys only, ordered, that lead to archive values (see `archive.rs`).
    archive_index: sled::Tree,
    /// sled's data file, opened only to fsync it: sled 0.34's `flush` issues
    /// sync_file_range, which reaches neither the device cache nor file metadata.
    data_file: File,
    /// Serialises checkpoint writes: two at once would write the same generation.
    pub(crate) checkpoint_lock: std::sync::Mutex<()>,
    /// The waits on the disk in progress, so a watchdog can see one that never
    /// ends (a stuck disk) and fail-stop the node instead of hanging with it.
    disk_waits: Mutex<DiskWaits>,
    /// Tests make the barrier fail from the n-th call on, to exercise fail-stop.
    #[cfg(test)]
    pub(crate) fail_barrier_from: std::sync::atomic::AtomicU64,
}

impl Storage {
    /// Opens (or creates) the database under `data_dir/sled`. Refuses a data dir
    /// written by a newer format, and limits under which sled could store a value
    /// outside its data file; upgrades a data dir of format 1 in place.
    pub fn open(data_dir: &Path, config: StorageConfig) -> Result<Storage, StorageError> {
        if config.record_bytes_max > RECORD_BODY_BYTES_MAX {
            return Err(StorageError::Limits(format!(
                "record_bytes_max is {} bytes; a record must fit one log entry of at most \
                 {SLED_VALUE_BYTES_MAX} bytes, so it may be {RECORD_BODY_BYTES_MAX} at most",
                config.record_bytes_max
            )));
        }
        let data_dir_error = |source| StorageError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(data_dir_error)?;
        // Probe writability with a real write: sled's own error for a read-only
        // directory is less clear.
        let probe = data_dir.join(".write-probe");
        std::fs::write(&probe, b"flashgate").map_err(data_dir_error)?;
        std::fs::remove_file(&probe).map_err(data_dir_error)?;

        let path = data_dir.join("sled");
        let db = open_sled(&path, config.cache_bytes_max)?;
        let open_tree = |name: &str| {
            db.open_tree(name).map_err(|error| StorageError::Open {
                path: path.clone(),
                message: error.to_string(),
            })
        };
        let log = open_tree("log")?;
        let checkpoints = open_tree("checkpoints")?;
        let meta = open_tree("meta")?;
        let archive = open_tree("archive")?;
        let archive_index = open_tree("archive_index")?;
        let data_file = File::open(path.join("db")).map_err(|source| StorageError::DataDir {
            path: path.join("db"),
            source,
        })?;
        let storage = Storage {
            inner: Arc::new(Inner {
                path: data_dir.to_path_buf(),
                config,
                db,
                log,
                checkpoints,
                meta,
                archive,
                archive_index,
                data_file,
                checkpoint_lock: std::sync::Mutex::new(()),
                disk_waits: Mutex::new(DiskWaits::default()),
                #[cfg(test)]
                fail_barrier_from: std::sync::atomic::AtomicU64::new(u64::MAX),
            }),
        };
        match storage.meta_u64(META_FORMAT_VERSION)? {
            Some(found) if found > u64::from(FORMAT_VERSION) => {
                return Err(StorageError::NewerFormat {
                    path: data_dir.to_path_buf(),
                    found: u32::try_from(found).unwrap_or(u32::MAX),
                    supported: FORMAT_VERSION,
                })
            }
            Some(found) if found < u64::from(FORMAT_VERSION) => {
                storage.upgrade_to_inline_values(found)?;
                storage.set_meta_u64(META_FORMAT_VERSION, u64::from(FORMAT_VERSION))?;
            }
            Some(_) => {}
            None => storage.set_meta_u64(META_FORMAT_VERSION, u64::from(FORMAT_VERSION))?,
        }
        sync_files_outside_the_barrier(&path)?;
        Ok(storage)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn config(&self) -> &StorageConfig {
        &self.inner.config
    }

    /// The durability barrier: returns only after everything written before the
    /// call is on the device (sled flush, then fsync of sled's data file). It is
    /// watched (`oldest_disk_wait`) while it runs.
    pub fn barrier(&self) -> Result<(), StorageError> {
        let _wait = self.disk_wait("fsync");
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering;
            if self.inner.fail_barrier_from.fetch_sub(1, Ordering::AcqRel) <= 1 {
                return Err(StorageError::Io("injected fsync failure".into()));
            }
        }
        self.inner.db.flush()?;
        self.inner.data_file.sync_all()?;
        Ok(())
    }

    /// Marks a wait on the disk (`what`: e.g. "fsync", "log write") until the
    /// returned guard is dropped, so `oldest_disk_wait` sees it.
    pub fn disk_wait(&self, what: &'static str) -> DiskWait<'_> {
        let mut waits = self.disk_waits();
        let id = waits.next_id;
        waits.next_id += 1;
        waits.started.insert(id, (Instant::now(), what));
        DiskWait { storage: self, id }
    }

    /// The wait on the disk in progress the longest, if any: how long it has
    /// waited so far and what it waits for.
    pub fn oldest_disk_wait(&self) -> Option<(Duration, &'static str)> {
        let waits = self.disk_waits();
        // Ids grow with time, so the first entry started first.
        let (_, (started, what)) = waits.started.first_key_value()?;
        Some((started.elapsed(), *what))
    }

    fn disk_waits(&self) -> std::sync::MutexGuard<'_, DiskWaits> {
        // The map is consistent after every statement: a panic elsewhere while
        // it was held left nothing half-done.
        self.inner
            .disk_waits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads a persistent number, e.g. the epoch.
    pub fn meta_u64(&self, key: &[u8]) -> Result<Option<u64>, StorageError> {
        match self.inner.meta.get(key)? {
            None => Ok(None),
            Some(bytes) => {
                let array: [u8; 8] = bytes.as_ref().try_into().map_err(|_| {
                    StorageError::CorruptCheckpoint(format!(
                        "meta value {} is {} bytes, not 8",
                        String::from_utf8_lossy(key),
                        bytes.len()
                    ))
                })?;
                Ok(Some(u64::from_be_bytes(array)))
            }
        }
    }

    /// Stores a persistent number; returns only after it is durable.
    pub fn set_meta_u64(&self, key: &[u8], value: u64) -> Result<(), StorageError> {
        self.set_meta_bytes(key, &value.to_be_bytes())
    }

    /// Reads a persistent byte string.
    pub fn meta_bytes(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.inner.meta.get(key)?.map(|bytes| bytes.to_vec()))
    }

    /// Stores a persistent byte string of at most `SLED_VALUE_BYTES_MAX` bytes;
    /// returns only after it is durable.
    pub fn set_meta_bytes(&self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        check_value("meta", key, value)?;
        self.inner.meta.insert(key, value)?;
        self.barrier()
    }

    /// Stores several persistent values (each at most `SLED_VALUE_BYTES_MAX`
    /// bytes) in one atomic write; returns only after they are durable (one
    /// barrier for all).
    pub fn set_meta_values(&self, values: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        self.apply_meta_values(values)?;
        self.barrier()
    }

    /// Applies several meta writes atomically, each value checked; not durable
    /// until `barrier`.
    pub(crate) fn apply_meta_values(&self, values: &[(&[u8], &[u8])]) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (key, value) in values {
            check_value("meta", key, value)?;
            batch.insert(*key, *value);
        }
        self.inner.meta.apply_batch(batch)?;
        Ok(())
    }

    /// Makes every barrier after the next `successes` fail.
    #[cfg(test)]
    pub(crate) fn fail_barriers_after(&self, successes: u64) {
        self.inner
            .fail_barrier_from
            .store(successes + 1, std::sync::atomic::Ordering::Release);
    }

    #[cfg(test)]
    pub(crate) fn log_tree(&self) -> &sled::Tree {
        &self.inner.log
    }

    pub(crate) fn archive_tree(&self) -> &sled::Tree {
        &self.inner.archive
    }

    pub(crate) fn archive_index_tree(&self) -> &sled::Tree {
        &self.inner.archive_index
    }

    pub(crate) fn checkpoint_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding it left no half-written pointer: the pointer is
        // one insert. Carry on.
        self.inner
            .checkpoint_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn checkpoint_tree(&self) -> &sled::Tree {
        &self.inner.checkpoints
    }

    /// The LSN of the last record in the log, if any.
    pub fn last_lsn(&self) -> Result<Option<Lsn>, StorageError> {
        let Some((key, value)) = self.inner.log.last()? else {
            return Ok(None);
        };
        let first = lsn_of_key(&key)?;
        let mut records = Vec::new();
        decode_entry(
            &value,
            first,
            self.inner.config.record_bytes_max,
            &mut records,
        )?;
        Ok(records.last().map(|record| record.lsn))
    }

    /// Reads every record after `after`, in LSN order, each checked. An error
    /// stops the scan.
    pub fn read_log_after<E: From<StorageError>>(
        &self,
        after: Lsn,
        mut visit: impl FnMut(&Record) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(wanted) = after.checked_add(1) else {
            return Ok(()); // no record can follow the last possible LSN
        };
        // The record after `after` may sit inside a batch keyed by an earlier LSN.
        // Without such a batch, the log must resume exactly at `wanted`.
        // `previous` is the last LSN the entry before the next one ended on.
        let (start, mut previous) = match self.inner.log.range(..=wanted.to_be_bytes()).next_back()
        {
            Some(entry) => (lsn_of_key(&entry.map_err(StorageError::from)?.0)?, None),
            None => (wanted, Some(after)),
        };
        // One record buffer for the whole scan: a replay reads millions.
        let mut spans = Vec::new();
        let mut record = Record {
            epoch: 0,
            lsn: 0,
            body: Vec::new(),
        };
        for entry in self.inner.log.range(start.to_be_bytes()..) {
            let (key, value) = entry.map_err(StorageError::from)?;
            let first = lsn_of_key(&key)?;
            if let Some(previous) =
                previous.filter(|previous| previous.checked_add(1) != Some(first))
            {
                return Err(StorageError::corrupt(
                    previous.saturating_add(1),
                    format!("log jumps from LSN {previous} to {first}"),
                )
                .into());
            }
            spans.clear();
            decode_entry_spans(
                &value,
                first,
                self.inner.config.record_bytes_max,
                &mut spans,
            )?;
            for (epoch, lsn, body) in spans.iter().filter(|(_, lsn, _)| *lsn > after) {
                record.epoch = *epoch;
                record.lsn = *lsn;
                record.body.clear();
                record.body.extend_from_slice(&value[body.clone()]);
                visit(&record)?;
            }
            previous = spans.last().map(|(_, lsn, _)| *lsn);
        }
        Ok(())
    }

    /// Whole log entries holding the records after `after`, oldest first, as
    /// stored (records with their checksums): what a primary ships to its standby.
    /// Stops once `bytes_max` is reached (at least one entry is returned when
    /// there is one). Each entry is checked before it leaves. The first entry may
    /// start at or before `after` when `after` is inside it.
    pub fn read_entries_after(
        &self,
        after: Lsn,
        bytes_max: usize,
    ) -> Result<Vec<EntryBytes>, StorageError> {
        let Some(wanted) = after.checked_add(1) else {
            return Ok(Vec::new()); // no record can follow the last possible LSN
        };
        let start = match self.inner.log.range(..=wanted.to_be_bytes()).next_back() {
            Some(entry) => lsn_of_key(&entry?.0)?,
            None => wanted,
        };
        let mut entries = Vec::new();
        let mut bytes = 0;
        for entry in self.inner.log.range(start.to_be_bytes()..) {
            let (key, value) = entry?;
            let first = lsn_of_key(&key)?;
            let count = verify_entry(&value, first, self.inner.config.record_bytes_max)?;
            // `verify_entry` found at least one record, of consecutive LSNs.
            let last = first + (count as u64 - 1);
            if last <= after {
                continue; // Entirely at or before `after`.
            }
            bytes += value.len();
            entries.push(EntryBytes {
                first_lsn: first,
                last_lsn: last,
                bytes: value.to_vec(),
            });
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(entries)
    }

    /// Inserts an entry received from the primary, after checking every record
    /// in it; not durable until `barrier`. Returns the entry's last LSN.
    ///
    /// A primary of this build sends entries of at most `SLED_VALUE_BYTES_MAX`
    /// bytes, stored byte for byte. A larger one (from a primary that still
    /// writes format 1) is stored as several entries under the limit, in one
    /// atomic write: the same records, more entry boundaries.
    pub fn insert_replicated(&self, first: Lsn, bytes: &[u8]) -> Result<Lsn, StorageError> {
        let record_bytes_max = self.inner.config.record_bytes_max;
        let count = verify_entry(bytes, first, record_bytes_max)?;
        if count == 0 {
            return Err(StorageError::corrupt(first, "an empty entry"));
        }
        if bytes.len() <= SLED_VALUE_BYTES_MAX {
            self.insert_entry(first, bytes)?;
        } else {
            tracing::debug!(
                first,
                bytes = bytes.len(),
                "splitting a replicated log entry over the value limit"
            );
            self.insert_entries(&split_entry(bytes, first, record_bytes_max)?)?;
        }
        Ok(first + count as u64 - 1)
    }

    /// Discards every record after `through`, durably: entries wholly after it
    /// are removed, an entry that straddles it is rewritten with its first part.
    /// Returns how many records were discarded.
    pub fn truncate_after(&self, through: Lsn) -> Result<u64, StorageError> {
        let record_bytes_max = self.inner.config.record_bytes_max;
        let mut discarded = 0;
        let mut batch = sled::Batch::default();
        let straddling = self.inner.log.range(..=through.to_be_bytes()).next_back();
        if let Some(entry) = straddling {
            let (key, value) = entry?;
            let first = lsn_of_key(&key)?;
            let mut records = Vec::new();
            decode_entry(&value, first, record_bytes_max, &mut records)?;
            if records.last().is_some_and(|record| record.lsn > through) {
                let mut kept = Vec::new();
                for record in records.iter().filter(|record| record.lsn <= through) {
                    crate::record::encode_record(&mut kept, record.epoch, record.lsn, &record.body);
                }
                discarded += records.iter().filter(|record| record.lsn > through).count() as u64;
                check_value("log", &key, &kept)?;
                batch.insert(key, kept);
            }
        }
        for entry in self.inner.log.range((through + 1).to_be_bytes()..) {
            let (key, value) = entry?;
            let first = lsn_of_key(&key)?;
            discarded += verify_entry(&value, first, record_bytes_max)? as u64;
            batch.remove(key);
        }
        self.inner.log.apply_batch(batch)?;
        self.barrier()?;
        Ok(discarded)
    }

    /// Empties the log and drops the checkpoint, durably: the data dir keeps only
    /// its meta facts, ready to be filled from a primary's checkpoint.
    pub fn clear_log_and_checkpoint(&self) -> Result<(), StorageError> {
        let _one_at_a_time = self.checkpoint_lock();
        let mut batch = sled::Batch::default();
        for key in self.inner.log.iter().keys() {
            batch.remove(key?);
        }
        self.inner.log.apply_batch(batch)?;
        let mut batch = sled::Batch::default();
        for key in self.inner.checkpoints.iter().keys() {
            batch.remove(key?);
        }
        self.inner.checkpoints.apply_batch(batch)?;
        self.barrier()
    }

    /// Whether the data dir holds no order data: no log record, no checkpoint.
    pub fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.inner.log.is_empty() && self.inner.checkpoints.is_empty())
    }

    /// Inserts one encoded batch (the writer thread's job); not durable until
    /// `barrier`.
    pub(crate) fn insert_entry(&self, first: Lsn, bytes: &[u8]) -> Result<(), StorageError> {
        let key = first.to_be_bytes();
        check_value("log", &key, bytes)?;
        self.inner.log.insert(key, bytes)?;
        Ok(())
    }

    /// Inserts the entries of one group commit in one atomic sled batch: after a
    /// crash the log holds all of them or none, never a gap. Not durable until
    /// `barrier`.
    pub(crate) fn insert_entries(&self, entries: &LogEntries) -> Result<(), StorageError> {
        if entries.entry_count() == 1 {
            // One entry (most group commits): one insert is atomic already,
            // without a sled batch's write lock and manifest.
            for (first, bytes) in entries.iter() {
                let key = first.to_be_bytes();
                check_value("log", &key, bytes)?;
                self.inner.log.insert(key, bytes)?;
            }
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (first, bytes) in entries.iter() {
            let key = first.to_be_bytes();
            check_value("log", &key, bytes)?;
            batch.insert(&key, bytes);
        }
        self.inner.log.apply_batch(batch)?;
        Ok(())
    }

    /// Format 1 → 2: rewrites every value over `SLED_VALUE_BYTES_MAX` under it,
    /// then passes the barrier, so from then on every value is in sled's data
    /// file and durable. Log entries are split (same records, more entry
    /// boundaries), the checkpoint is written again as pages (same chunks, same
    /// LSN), the epoch history keeps its newest `EPOCH_HISTORY_MAX` entries.
    /// Each step is atomic and can run again, so a crash during the upgrade
    /// leaves a data dir that the next start upgrades.
    fn upgrade_to_inline_values(&self, found: u64) -> Result<(), StorageError> {
        tracing::info!(
            path = %self.inner.path.display(),
            from = found,
            to = FORMAT_VERSION,
            "upgrading the data dir's storage format"
        );
        let record_bytes_max = self.inner.config.record_bytes_max;
        let mut split = 0;
        for entry in self.inner.log.iter() {
            let (key, value) = entry?;
            if value.len() > SLED_VALUE_BYTES_MAX {
                let first = lsn_of_key(&key)?;
                self.insert_entries(&split_entry(&value, first, record_bytes_max)?)?;
                split += 1;
            }
        }
        let rewrote_checkpoint = self.upgrade_checkpoint()?;
        self.upgrade_epoch_history()?;
        self.barrier()?;
        tracing::info!(
            split_log_entries = split,
            rewrote_checkpoint,
            "storage format upgraded"
        );
        Ok(())
    }

    /// Removes the log entries whose records all have LSN at most `through`.
    /// `through` must be the last LSN of an entry (a batch boundary).
    /// Several sled batches (`apply_in_batches`): a crash may leave some of
    /// these entries, which a read skips as the checkpoint covers them.
    pub(crate) fn trim_log(&self, through: Lsn) -> Result<usize, StorageError> {
        let keys = self
            .inner
            .log
            .range(..=through.to_be_bytes())
            .keys()
            .collect::<Result<Vec<_>, _>>()?;
        let count = keys.len();
        apply_in_batches(&self.inner.log, keys, |batch, key| batch.remove(key))?;
        Ok(count)
    }

    /// Size of the database on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }
}

/// Applies one change per item to `tree`, `SLED_BATCH_KEYS_MAX` items per
/// sled batch: each batch is atomic, the whole is not, so only for changes a
/// crash may leave half done.
pub(crate) fn apply_in_batches<T>(
    tree: &sled::Tree,
    items: impl IntoIterator<Item = T>,
    mut add: impl FnMut(&mut sled::Batch, T),
) -> Result<(), StorageError> {
    let mut batch = sled::Batch::default();
    let mut keys = 0;
    for item in items {
        add(&mut batch, item);
        keys += 1;
        if keys == SLED_BATCH_KEYS_MAX {
            tree.apply_batch(std::mem::take(&mut batch))?;
            keys = 0;
        }
    }
    if keys > 0 {
        tree.apply_batch(batch)?;
    }
    Ok(())
}

/// How long to wait for another process (or a just-dropped instance whose I/O
/// threads are finishing) to release the data dir's lock.
const LOCK_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled with its default segment size, after checking that this size
/// keeps every value flashgate's limits allow in sled's data file (sled refuses
/// to open a database created with another segment size).
fn open_sled(path: &Path, cache_bytes_max: u64) -> Result<sled::Db, StorageError> {
    let config = || {
        sled::Config::new()
            .path(path)
            .flush_every_ms(None)
            .cache_capacity(cache_bytes_max)
    };
    check_values_stay_inline(config().segment_size)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT_MAX;
    loop {
        match config().open() {
            Ok(db) => return Ok(db),
            Err(error) => {
                let message = error.to_string();
                let locked = message.contains("could not acquire lock");
                if !locked || std::time::Instant::now() >= deadline {
                    return Err(StorageError::Open {
                        path: path.to_path_buf(),
                        message,
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Makes durable, once per start, what the barrier does not cover: sled's
/// settings file (written without fsync when sled creates a database) and the
/// directory entries of `sled/` and the data dir. None of them change after.
fn sync_files_outside_the_barrier(sled_path: &Path) -> Result<(), StorageError> {
    let sync = |path: PathBuf| {
        File::open(&path)
            .and_then(|file| file.sync_all())
            .map_err(|source| StorageError::DataDir { path, source })
    };
    sync(sled_path.join("conf"))?;
    sync(sled_path.to_path_buf())?;
    if let Some(data_dir) = sled_path.parent() {
        sync(data_dir.to_path_buf())?;
    }
    Ok(())
}

/// The records of one stored entry, checked, cut into entries under the limit.
pub(crate) fn split_entry(
    bytes: &[u8],
    first: Lsn,
    record_bytes_max: usize,
) -> Result<LogEntries, StorageError> {
    let mut records = Vec::new();
    decode_entry(bytes, first, record_bytes_max, &mut records)?;
    let mut entries = LogEntries::with_capacity(bytes.len());
    for record in &records {
        entries.push(record.epoch, record.lsn, &record.body);
    }
    Ok(entries)
}

fn lsn_of_key(key: &[u8]) -> Result<Lsn, StorageError> {
    let array: [u8; 8] = key
        .try_into()
        .map_err(|_| StorageError::corrupt(0, format!("log key of {} bytes", key.len())))?;
    Ok(u64::from_be_bytes(array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_disk_wait_in_progress_is_reported_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        assert_eq!(storage.oldest_disk_wait(), None);
        let first = storage.disk_wait("log write");
        let second = storage.disk_wait("fsync");
        assert_eq!(
            storage.oldest_disk_wait().map(|(_, what)| what),
            Some("log write")
        );
        drop(first);
        assert_eq!(
            storage.oldest_disk_wait().map(|(_, what)| what),
            Some("fsync")
        );
        drop(second);
        assert_eq!(storage.oldest_disk_wait(), None);
        // A barrier is watched only while it runs.
        storage.barrier().unwrap();
        assert_eq!(storage.oldest_disk_wait(), None);
    }
}
