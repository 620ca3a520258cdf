//! Backups, the node's side: a consistent snapshot of a running node at one
//! LSN, a data dir built from a backup's parts, and the state a backup holds
//! once rebuilt by the real recovery.
//!
//! A snapshot is the checkpoint chunks of every shard (each shard pauses
//! only while it serialises itself, as for a checkpoint), the log records
//! after the LSN those chunks cover up to the LSN `through` that was durable
//! once every shard was serialised, the archive of orders that left memory,
//! and the node's identity. Loading the chunks and replaying those records,
//! as recovery does, gives the state at `through` exactly: a shard's chunk
//! may already hold some of the records, and replay skips them by sequence
//! number. The archive is read after the snapshot, so every order that left
//! memory up to `through` is in it; one that left after is also still in a
//! shard, which is read first.

use std::time::Duration;

use flashgate_storage::{
    EntryBytes, EpochStart, Lsn, Storage, StorageError, EPOCH_HISTORY_MAX, FORMAT_VERSION,
};

use crate::codec::{archive_key, decode_archived_order};
use crate::domain::{Order, ShardConfig, ShardCore, Sku};
use crate::error::NodeError;
use crate::meta::{cluster_id, META_CLUSTER_ID};
use crate::node::{Node, NodeConfig, META_SHARD_COUNT};
use crate::recovery::{recover, RecoveryError};
use crate::retire::visit_archived;

/// How often a snapshot is taken again when a checkpoint trimmed the log
/// between the shards' serialisation and the read of the log after it.
pub const SNAPSHOT_ATTEMPTS_MAX: u32 = 3;
/// Archived orders written to a restored data dir in one batch.
pub const RESTORE_ARCHIVE_BATCH_MAX: usize = 4_096;

/// Who a backup came from and where it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupIdentity {
    /// Every record up to this LSN is in the backup, and none after it.
    pub lsn: Lsn,
    /// The LSN the checkpoint chunks cover; the log records after it follow.
    pub covers_lsn: Lsn,
    /// The node's epoch when the snapshot was taken.
    pub epoch: u64,
    /// Which epoch wrote which LSNs, up to `lsn`.
    pub history: Vec<EpochStart>,
    pub cluster_id: u64,
    pub shard_count: u32,
    /// The storage format of the node's data dir.
    pub storage_format: u32,
}

/// A consistent snapshot of a running node at `identity.lsn`, without its
/// archive (read a page at a time while it is sent: `Storage::archive_page`).
pub struct BackupSnapshot {
    pub identity: BackupIdentity,
    pub chunks: Vec<Vec<u8>>,
    /// The log records in (`covers_lsn`, `lsn`], as stored.
    pub log: Vec<EntryBytes>,
    /// The longest time one shard served nothing else while serialised.
    pub pause_longest: Duration,
}

impl Node {
    /// Takes a consistent snapshot at the LSN durable once every shard was
    /// serialised (see the module doc). Works on a primary and on a standby
    /// (whose shards may lag their log; the records read cover the lag). Each
    /// shard pauses only while it serialises itself; nothing else waits.
    pub async fn backup_snapshot(&self) -> Result<BackupSnapshot, NodeError> {
        let mut attempt = 1;
        loop {
            let (covers_lsn, chunks, pause_longest) = self.snapshot_shards().await?;
            // Every record a chunk reflects is durable now (`snapshot_shards`
            // waited for it), and a durable LSN is the end of a write.
            let through = self.progress.durable_lsn().max(covers_lsn);
            let storage = self.storage.clone();
            let read = tokio::task::spawn_blocking(move || {
                let log = storage.read_entries_through(covers_lsn, through)?;
                let history = storage.epoch_history()?;
                let cluster_id = cluster_id(&storage)?;
                Ok::<_, StorageError>((log, history, cluster_id))
            })
            .await
            .map_err(|_| NodeError::ShuttingDown)?;
            let (log, history, cluster_id) = match read {
                Ok(read) => read,
                Err(StorageError::LogTrimmed { .. }) if attempt < SNAPSHOT_ATTEMPTS_MAX => {
                    attempt += 1;
                    continue;
                }
                Err(error) => return Err(NodeError::StorageFailed(error.to_string())),
            };
            // An epoch that starts after `through` has no record here; the
            // one that starts right after it (a promotion with nothing
            // written yet) is kept.
            let history = history
                .into_iter()
                .filter(|start| start.first_lsn <= through.saturating_add(1))
                .collect();
            return Ok(BackupSnapshot {
                identity: BackupIdentity {
                    lsn: through,
                    covers_lsn,
                    epoch: self.epoch(),
                    history,
                    cluster_id,
                    shard_count: self.shard_count(),
                    storage_format: FORMAT_VERSION,
                },
                chunks,
                log,
                pause_longest,
            });
        }
    }
}

/// Which identity a restored data dir takes (docs/OPERATIONS.md, "Restore").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoredIdentity {
    /// A new cluster: a new random cluster id, and the epoch after the
    /// backup's. No node of the old cluster can follow it, be followed by it,
    /// fence it or be fenced by it.
    NewCluster,
    /// The old cluster's id, at `epoch` (above every epoch the old cluster
    /// used): it replaces the old cluster, whose nodes it fences when they meet.
    KeepCluster { epoch: u64 },
}

/// Why a backup cannot be restored as asked.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Refused(String),
}

/// Builds a data dir from a backup's parts, in this order: `begin` (the
/// identity), `checkpoint`, `archived` and `log_entry` as often as needed,
/// optionally `replay_entry` (records of a log archive after the backup's
/// LSN), then `finish`, which writes the restored epoch history and makes
/// everything durable. The data dir is empty before; a crash before `finish`
/// leaves one the caller discards.
pub struct DataDirWriter<'a> {
    storage: &'a Storage,
    identity: BackupIdentity,
    restored: RestoredIdentity,
    /// The backup's epoch history, and the epochs the replayed records start.
    history: Vec<EpochStart>,
    archive: Vec<(Vec<u8>, Vec<u8>)>,
    next_lsn: Lsn,
}

impl<'a> DataDirWriter<'a> {
    /// Checks the backup's formats and the target, and writes the shard
    /// count and the restored cluster id.
    pub fn begin(
        storage: &'a Storage,
        identity: BackupIdentity,
        restored: RestoredIdentity,
    ) -> Result<DataDirWriter<'a>, RestoreError> {
        if identity.storage_format > FORMAT_VERSION {
            return Err(RestoreError::Refused(format!(
                "the backup is of storage format {}; this flashgate writes format {FORMAT_VERSION}: restore with a newer flashgate",
                identity.storage_format
            )));
        }
        if !storage.is_empty()? || storage.meta_u64(META_SHARD_COUNT)?.is_some() {
            return Err(RestoreError::Refused(format!(
                "{} already holds a data dir; restore into an empty directory",
                storage.path().display()
            )));
        }
        let cluster = match restored {
            RestoredIdentity::NewCluster => crate::meta::random_u64(),
            RestoredIdentity::KeepCluster { .. } => identity.cluster_id,
        };
        let writer = DataDirWriter {
            storage,
            history: identity.history.clone(),
            next_lsn: identity.covers_lsn + 1,
            identity,
            restored,
            archive: Vec::new(),
        };
        writer.restored_epoch()?;
        storage.set_meta_u64(META_SHARD_COUNT, u64::from(writer.identity.shard_count))?;
        storage.set_meta_u64(META_CLUSTER_ID, cluster)?;
        Ok(writer)
    }

    /// The epoch the restored node starts: above every epoch its log holds.
    fn restored_epoch(&self) -> Result<u64, RestoreError> {
        let newest = self
            .history
            .iter()
            .map(|start| start.epoch)
            .max()
            .unwrap_or(0)
            .max(self.identity.epoch);
        match self.restored {
            RestoredIdentity::NewCluster => Ok(newest + 1),
            RestoredIdentity::KeepCluster { epoch } if epoch > newest => Ok(epoch),
            RestoredIdentity::KeepCluster { epoch } => Err(RestoreError::Refused(format!(
                "--epoch {epoch} is not above the restored log's epoch {newest}: a restored node keeping the cluster id needs an epoch above every epoch the cluster used (see `flashgate status` on its nodes)"
            ))),
        }
    }

    /// Stores the backup's checkpoint chunks, covering `covers_lsn`.
    pub fn checkpoint(&mut self, chunks: &[Vec<u8>]) -> Result<(), RestoreError> {
        if let Some(chunk) = chunks
            .iter()
            .find(|chunk| chunk.len() > self.storage.config().chunk_bytes_max)
        {
            return Err(RestoreError::Refused(format!(
                "a checkpoint chunk of {} bytes is over the limit of {}",
                chunk.len(),
                self.storage.config().chunk_bytes_max
            )));
        }
        self.storage
            .write_checkpoint(self.identity.covers_lsn, chunks)?;
        Ok(())
    }

    /// Stores an archived order (as the archive holds it), checked.
    pub fn archived(&mut self, value: Vec<u8>) -> Result<(), RestoreError> {
        let order = decode_archived_order(&value)
            .map_err(|error| RestoreError::Refused(format!("an archived order: {error}")))?;
        self.archive.push((archive_key(&order.id).to_vec(), value));
        if self.archive.len() >= RESTORE_ARCHIVE_BATCH_MAX {
            self.storage
                .archive_insert(&std::mem::take(&mut self.archive))?;
        }
        Ok(())
    }

    /// Stores a log entry of the backup; entries come in LSN order without a
    /// gap, from the one after `covers_lsn` to the backup's LSN.
    pub fn log_entry(&mut self, first_lsn: Lsn, bytes: &[u8]) -> Result<(), RestoreError> {
        if first_lsn != self.next_lsn {
            return Err(RestoreError::Refused(format!(
                "the log jumps to LSN {first_lsn} where {} was next",
                self.next_lsn
            )));
        }
        let last = self.storage.insert_replicated(first_lsn, bytes)?;
        if last > self.identity.lsn {
            return Err(RestoreError::Refused(format!(
                "the log holds LSN {last}, after the backup's LSN {}",
                self.identity.lsn
            )));
        }
        self.next_lsn = last + 1;
        Ok(())
    }

    /// The last LSN stored so far.
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn - 1
    }

    /// Stores the records of an archived log entry (`first_lsn`, `bytes`, as
    /// stored) that follow what is stored, up to `through`: a point-in-time
    /// restore's replay after the backup. Records already stored are
    /// skipped; a gap is refused. Returns the last LSN stored.
    pub fn replay_entry(
        &mut self,
        first_lsn: Lsn,
        bytes: &[u8],
        through: Lsn,
    ) -> Result<Lsn, RestoreError> {
        if self.next_lsn <= self.identity.lsn {
            return Err(RestoreError::Refused(format!(
                "the backup's log ends at LSN {}, before its LSN {}",
                self.last_lsn(),
                self.identity.lsn
            )));
        }
        let mut records = Vec::new();
        flashgate_storage::decode_entry(
            bytes,
            first_lsn,
            self.storage.config().record_bytes_max,
            &mut records,
        )?;
        let mut kept = Vec::new();
        let mut kept_first = None;
        for record in records
            .iter()
            .filter(|record| record.lsn >= self.next_lsn && record.lsn <= through)
        {
            if kept_first.is_none() && record.lsn != self.next_lsn {
                return Err(RestoreError::Refused(format!(
                    "the archive jumps to LSN {} where {} was next: it has a gap",
                    record.lsn, self.next_lsn
                )));
            }
            kept_first.get_or_insert(record.lsn);
            if self
                .history
                .last()
                .is_none_or(|start| record.epoch > start.epoch)
            {
                self.history.push(EpochStart {
                    epoch: record.epoch,
                    first_lsn: record.lsn,
                });
            }
            flashgate_storage::encode_record(&mut kept, record.epoch, record.lsn, &record.body);
        }
        if let Some(first) = kept_first {
            self.next_lsn = self.storage.insert_replicated(first, &kept)? + 1;
        }
        Ok(self.last_lsn())
    }

    /// Checks that the log reached the backup's LSN, writes the restored
    /// epoch history (the new epoch starting after the last record) and
    /// makes the data dir durable. Returns the restored epoch.
    pub fn finish(mut self) -> Result<u64, RestoreError> {
        if self.next_lsn <= self.identity.lsn {
            return Err(RestoreError::Refused(format!(
                "the log ends at LSN {}, the backup's LSN is {}",
                self.last_lsn(),
                self.identity.lsn
            )));
        }
        let epoch = self.restored_epoch()?;
        let mut history = std::mem::take(&mut self.history);
        history.push(EpochStart {
            epoch,
            first_lsn: self.next_lsn,
        });
        let start = history.len().saturating_sub(EPOCH_HISTORY_MAX);
        self.storage
            .archive_insert(&std::mem::take(&mut self.archive))?;
        self.storage.set_epoch_history(&history[start..], epoch)?;
        self.storage.barrier()?;
        Ok(epoch)
    }
}

/// A data dir's state as recovery rebuilt it, checked.
pub struct Rebuilt {
    /// The last LSN in the log (or covered by the checkpoint).
    pub last_lsn: Lsn,
    pub skus: Vec<Sku>,
    /// Orders in shard memory plus orders only in the archive.
    pub order_count: u64,
    pub replayed_records: u64,
}

/// Why a rebuilt data dir is not sound.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Invariant(String),
}

/// Rebuilds `storage`'s shards with the real recovery (checkpoint, then the
/// log replayed through the same `ShardCore::apply` as live), checks every
/// shard's counters against its orders (available + reserved + sold ==
/// total, counters equal the orders), and calls `visit` once for every
/// order: those in memory, then those only in the archive.
pub fn rebuild(storage: &Storage, mut visit: impl FnMut(&Order)) -> Result<Rebuilt, RebuildError> {
    let shard_count = storage
        .meta_u64(META_SHARD_COUNT)?
        .and_then(|count| u32::try_from(count).ok())
        .ok_or_else(|| RebuildError::Invariant("the data dir has no shard count".into()))?;
    let defaults = NodeConfig::default();
    let epoch = storage.epoch()?;
    let configs = (0..shard_count)
        .map(|shard| ShardConfig {
            shard,
            epoch,
            orders_max: defaults.orders_per_shard_max,
            expiry_batch_max: defaults.expiry_batch_max,
            retention: defaults.retention.clone(),
        })
        .collect();
    let recovered = recover(storage, configs)?;
    check_invariants(&recovered.cores)?;
    let mut order_count = 0u64;
    for core in &recovered.cores {
        for order in core.orders() {
            visit(order);
            order_count += 1;
        }
    }
    visit_archived(storage, RebuildError::Invariant, |order, _| {
        let in_memory = recovered
            .cores
            .get(order.id.shard as usize)
            .is_some_and(|core| core.order(&order.id).is_some());
        if !in_memory {
            visit(&order);
            order_count += 1;
        }
        Ok(())
    })?;
    let mut skus: Vec<Sku> = recovered
        .cores
        .iter()
        .flat_map(|core| core.skus().cloned())
        .collect();
    skus.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(Rebuilt {
        last_lsn: recovered.last_lsn,
        skus,
        order_count,
        replayed_records: recovered.replayed_records,
    })
}

/// `ShardCore::assert_consistent` on every shard, its panic turned into an
/// error naming the shard.
fn check_invariants(cores: &[ShardCore]) -> Result<(), RebuildError> {
    for (shard, core) in cores.iter().enumerate() {
        let checked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.assert_consistent()));
        if let Err(panic) = checked {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "an invariant does not hold".into());
            return Err(RebuildError::Invariant(format!("shard {shard}: {reason}")));
        }
    }
    Ok(())
}

/// The kinds of the frames (`flashgate_storage::backup`) a backup is made
/// of, in the stream a node sends and in the files `flashgate backup`
/// writes.
pub mod frame {
    /// `BackupIdentity` (`encode_identity`); the stream's first frame.
    pub const IDENTITY: u8 = 1;
    /// A checkpoint chunk, as a shard serialised it.
    pub const CHUNK: u8 = 2;
    /// A log entry: its first LSN (u64 BE), then its records as stored.
    pub const LOG_ENTRY: u8 = 3;
    /// An order that left memory, as the archive holds it.
    pub const ARCHIVED: u8 = 4;
    /// The stream's last frame: how many of each came (`encode_end`).
    pub const END: u8 = 5;
    /// In an archive segment, after a poll's entries: the last LSN archived
    /// and when (`archiver::encode_archived_through`).
    pub const ARCHIVED_THROUGH: u8 = 6;
}

/// Bytes of an encoded `BackupIdentity` before its epoch history.
const IDENTITY_FIXED_BYTES: usize = 8 * 4 + 4 * 3;

/// A `BackupIdentity` as a frame payload: LSN, covered LSN, epoch, cluster
/// id (u64 BE each), shard count, storage format, history length (u32 BE
/// each), then each history entry's epoch and first LSN (u64 BE each).
pub fn encode_identity(identity: &BackupIdentity) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(IDENTITY_FIXED_BYTES + 16 * identity.history.len());
    for value in [
        identity.lsn,
        identity.covers_lsn,
        identity.epoch,
        identity.cluster_id,
    ] {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    for value in [
        identity.shard_count,
        identity.storage_format,
        identity.history.len() as u32,
    ] {
        bytes.extend_from_slice(&value.to_be_bytes());
    }
    for start in &identity.history {
        bytes.extend_from_slice(&start.epoch.to_be_bytes());
        bytes.extend_from_slice(&start.first_lsn.to_be_bytes());
    }
    bytes
}

/// Reads `encode_identity`'s bytes, checked for length and for an epoch
/// history in order.
pub fn decode_identity(bytes: &[u8]) -> Result<BackupIdentity, String> {
    if bytes.len() < IDENTITY_FIXED_BYTES {
        return Err(format!("the identity is {} bytes, too short", bytes.len()));
    }
    let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let u32_at = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let entries = u32_at(40) as usize;
    if entries > EPOCH_HISTORY_MAX || bytes.len() != IDENTITY_FIXED_BYTES + 16 * entries {
        return Err(format!(
            "the identity is {} bytes for {entries} epoch history entries",
            bytes.len()
        ));
    }
    let history: Vec<EpochStart> = (0..entries)
        .map(|index| {
            let at = IDENTITY_FIXED_BYTES + 16 * index;
            EpochStart {
                epoch: u64_at(at),
                first_lsn: u64_at(at + 8),
            }
        })
        .collect();
    if history
        .windows(2)
        .any(|pair| pair[1].epoch <= pair[0].epoch || pair[1].first_lsn < pair[0].first_lsn)
    {
        return Err("the epoch history is out of order".into());
    }
    let identity = BackupIdentity {
        lsn: u64_at(0),
        covers_lsn: u64_at(8),
        epoch: u64_at(16),
        cluster_id: u64_at(24),
        shard_count: u32_at(32),
        storage_format: u32_at(36),
        history,
    };
    if identity.covers_lsn > identity.lsn {
        return Err(format!(
            "the checkpoint covers LSN {}, after the backup's LSN {}",
            identity.covers_lsn, identity.lsn
        ));
    }
    if !(1..=crate::node::SHARDS_MAX).contains(&identity.shard_count) {
        return Err(format!("{} shards", identity.shard_count));
    }
    Ok(identity)
}

/// How many frames of each kind a backup holds: the `END` frame's payload
/// (three u64 BE), so a stream cut short is told from a complete one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounts {
    pub chunks: u64,
    pub log_entries: u64,
    pub archived: u64,
}

pub fn encode_end(counts: &FrameCounts) -> Vec<u8> {
    [counts.chunks, counts.log_entries, counts.archived]
        .iter()
        .flat_map(|count| count.to_be_bytes())
        .collect()
}

pub fn decode_end(bytes: &[u8]) -> Result<FrameCounts, String> {
    if bytes.len() != 24 {
        return Err(format!("the end frame is {} bytes, not 24", bytes.len()));
    }
    let at = |index: usize| {
        u64::from_be_bytes(bytes[index * 8..index * 8 + 8].try_into().expect("8 bytes"))
    };
    Ok(FrameCounts {
        chunks: at(0),
        log_entries: at(1),
        archived: at(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_reads_back_and_a_damaged_one_is_refused() {
        let identity = BackupIdentity {
            lsn: 900,
            covers_lsn: 850,
            epoch: 3,
            history: vec![
                EpochStart {
                    epoch: 1,
                    first_lsn: 1,
                },
                EpochStart {
                    epoch: 3,
                    first_lsn: 400,
                },
            ],
            cluster_id: 0xfeed,
            shard_count: 4,
            storage_format: FORMAT_VERSION,
        };
        let bytes = encode_identity(&identity);
        assert_eq!(decode_identity(&bytes), Ok(identity.clone()));
        assert!(decode_identity(&bytes[..bytes.len() - 1]).is_err());
        let mut backwards = identity.clone();
        backwards.history.reverse();
        assert!(decode_identity(&encode_identity(&backwards)).is_err());
        let mut ahead = identity;
        ahead.covers_lsn = 901;
        assert!(decode_identity(&encode_identity(&ahead)).is_err());
        let counts = FrameCounts {
            chunks: 1,
            log_entries: 2,
            archived: 3,
        };
        assert_eq!(decode_end(&encode_end(&counts)), Ok(counts));
    }
}
