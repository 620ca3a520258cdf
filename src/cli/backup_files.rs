//! A backup directory: its files, its manifest, and the checks and the
//! loading `flashgate backup verify` and `flashgate restore` share.
//!
//! Layout (docs/OPERATIONS.md, "Backup"):
//! - `checkpoint.fgb`: every shard's checkpoint chunks;
//! - `log.fgb`: the log entries after the LSN the chunks cover, up to the
//!   backup's LSN;
//! - `archive.fgb`: the orders that had left memory;
//! - `manifest.json`: the formats, LSN, epoch, epoch history, cluster id,
//!   time, per-SKU totals, order count, a digest of the state, and each data
//!   file's size, frame count and SHA-256;
//! - `manifest.sha256`: the SHA-256 of `manifest.json`.
//!
//! The data files are backup frames (`flashgate_storage::backup`) after a
//! file header. A backup is checked in full before it is trusted: every
//! checksum, every frame, then a data dir built from it and rebuilt by the
//! node's own recovery, its invariants and its totals held against the
//! manifest.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flashgate_actors::backup::{
    frame, rebuild, BackupIdentity, DataDirWriter, RebuildError, RestoreError, RestoredIdentity,
};
use flashgate_actors::codec::encode_archived_order;
use flashgate_actors::domain::Order;
use flashgate_storage::backup::{
    decode_entry_payload, FrameError, FrameReader, BACKUP_FORMAT_VERSION, FRAME_PAYLOAD_BYTES_MAX,
};
use flashgate_storage::{EpochStart, Storage, StorageConfig, FORMAT_VERSION};
use serde::{Deserialize, Serialize};

pub const CHECKPOINT_FILE: &str = "checkpoint.fgb";
pub const LOG_FILE: &str = "log.fgb";
pub const ARCHIVE_FILE: &str = "archive.fgb";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const MANIFEST_SUM_FILE: &str = "manifest.sha256";
/// The data files, in the order they are written and loaded.
pub const DATA_FILES: [(&str, u8); 3] = [
    (CHECKPOINT_FILE, frame::CHUNK),
    (LOG_FILE, frame::LOG_ENTRY),
    (ARCHIVE_FILE, frame::ARCHIVED),
];

/// A backup's manifest (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The backup layout (`flashgate_storage::backup::BACKUP_FORMAT_VERSION`).
    pub backup_format: u32,
    /// The storage format of the node's data dir.
    pub storage_format: u32,
    pub flashgate_version: String,
    /// When the backup was written (RFC 3339, UTC).
    pub created_at: String,
    /// The node it was taken from.
    pub source: String,
    /// Every record up to this LSN is in the backup, none after it.
    pub lsn: u64,
    /// The LSN the checkpoint chunks cover; `log.fgb` holds the rest.
    pub covers_lsn: u64,
    pub epoch: u64,
    pub epoch_history: Vec<EpochEntry>,
    /// 16 hex digits.
    pub cluster_id: String,
    pub shard_count: u32,
    /// Orders held (in memory or archived).
    pub order_count: u64,
    pub skus: Vec<SkuTotals>,
    /// SHA-256 over the SKUs' totals and every order's state, independent of
    /// the order they are read in: two backups of one cluster at one LSN
    /// have the same.
    pub state_sha256: String,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochEntry {
    pub epoch: u64,
    pub first_lsn: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkuTotals {
    pub id: String,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub frames: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn identity(&self) -> Result<BackupIdentity, String> {
        let cluster_id = u64::from_str_radix(&self.cluster_id, 16)
            .map_err(|_| format!("cluster_id {:?} is not 16 hex digits", self.cluster_id))?;
        Ok(BackupIdentity {
            lsn: self.lsn,
            covers_lsn: self.covers_lsn,
            epoch: self.epoch,
            history: self
                .epoch_history
                .iter()
                .map(|entry| EpochStart {
                    epoch: entry.epoch,
                    first_lsn: entry.first_lsn,
                })
                .collect(),
            cluster_id,
            shard_count: self.shard_count,
            storage_format: self.storage_format,
        })
    }

    pub fn file(&self, name: &str) -> Result<&FileEntry, String> {
        self.files
            .iter()
            .find(|file| file.name == name)
            .ok_or_else(|| format!("{MANIFEST_FILE} lists no {name}"))
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    digest: ring::digest::Context,
    pub bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(self.digest.finish().as_ref()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.digest.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 and size of a file, read a buffer at a time.
pub fn file_sha256(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        digest.update(&buffer[..read]);
        bytes += read as u64;
    }
    Ok((hex(digest.finish().as_ref()), bytes))
}

/// The digest of a state: SHA-256 over the SKUs' totals (in id order) and
/// the wrapping sum of every order's SHA-256 (so the order orders are read
/// in does not matter).
#[derive(Default)]
pub struct StateDigest {
    orders_sum: [u64; 4],
}

impl StateDigest {
    pub fn add(&mut self, order: &Order) {
        let digest =
            ring::digest::digest(&ring::digest::SHA256, &encode_archived_order(order, &[]));
        for (lane, bytes) in self.orders_sum.iter_mut().zip(digest.as_ref().chunks(8)) {
            *lane = lane.wrapping_add(u64::from_be_bytes(bytes.try_into().expect("8 bytes")));
        }
    }

    pub fn finish(&self, skus: &[SkuTotals]) -> String {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for sku in skus {
            digest.update(
                format!(
                    "{} {} {} {} {}\n",
                    sku.id, sku.total, sku.available, sku.reserved, sku.sold
                )
                .as_bytes(),
            );
        }
        for lane in self.orders_sum {
            digest.update(&lane.to_be_bytes());
        }
        hex(digest.finish().as_ref())
    }
}

/// Why a backup is bad, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct BadBackup {
    pub file: String,
    pub reason: String,
}

fn bad(file: &str, reason: impl Into<String>) -> BadBackup {
    BadBackup {
        file: file.to_owned(),
        reason: reason.into(),
    }
}

/// Reads `manifest.json`, checked against `manifest.sha256`, and refuses a
/// backup or storage format newer than this build's.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BadBackup> {
    let sum = std::fs::read_to_string(dir.join(MANIFEST_SUM_FILE))
        .map_err(|error| bad(MANIFEST_SUM_FILE, format!("cannot be read: {error}")))?;
    let (sha256, _) = file_sha256(&dir.join(MANIFEST_FILE))
        .map_err(|error| bad(MANIFEST_FILE, format!("cannot be read: {error}")))?;
    if sum.trim_end_matches('\n') != sha256 {
        return Err(bad(
            MANIFEST_FILE,
            format!(
                "SHA-256 {sha256} does not match {MANIFEST_SUM_FILE} ({:?}): one of the two is damaged",
                sum.trim_end()
            ),
        ));
    }
    let text = std::fs::read(dir.join(MANIFEST_FILE))
        .map_err(|error| bad(MANIFEST_FILE, format!("cannot be read: {error}")))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|error| bad(MANIFEST_FILE, format!("is not a backup manifest: {error}")))?;
    if manifest.backup_format > BACKUP_FORMAT_VERSION {
        return Err(bad(
            MANIFEST_FILE,
            format!(
                "the backup is of backup format {}; this flashgate reads up to {BACKUP_FORMAT_VERSION}: use a newer flashgate",
                manifest.backup_format
            ),
        ));
    }
    if manifest.storage_format > FORMAT_VERSION {
        return Err(bad(
            MANIFEST_FILE,
            format!(
                "the backup is of storage format {}; this flashgate reads up to {FORMAT_VERSION}: use a newer flashgate",
                manifest.storage_format
            ),
        ));
    }
    manifest
        .identity()
        .map_err(|reason| bad(MANIFEST_FILE, reason))?;
    Ok(manifest)
}

/// Checks every data file's size and SHA-256 against the manifest.
pub fn check_files(
    dir: &Path,
    manifest: &Manifest,
    progress: &mut impl FnMut(String),
) -> Result<(), BadBackup> {
    for (name, _) in DATA_FILES {
        let listed = manifest
            .file(name)
            .map_err(|reason| bad(MANIFEST_FILE, reason))?;
        progress(format!("checking {name} ({} bytes)", listed.bytes));
        let (sha256, bytes) = file_sha256(&dir.join(name))
            .map_err(|error| bad(name, format!("cannot be read: {error}")))?;
        if bytes != listed.bytes {
            return Err(bad(
                name,
                format!("is {bytes} bytes; the manifest says {}", listed.bytes),
            ));
        }
        if sha256 != listed.sha256 {
            return Err(bad(
                name,
                format!(
                    "SHA-256 {sha256} does not match the manifest's {}",
                    listed.sha256
                ),
            ));
        }
    }
    Ok(())
}

/// Reads every frame of a data file, checked: the header, each frame's
/// checksum and kind, and their count against the manifest.
fn read_frames(
    dir: &Path,
    manifest: &Manifest,
    name: &str,
    kind: u8,
    mut visit: impl FnMut(Vec<u8>) -> Result<(), String>,
) -> Result<(), BadBackup> {
    let listed = manifest
        .file(name)
        .map_err(|reason| bad(MANIFEST_FILE, reason))?;
    let file = File::open(dir.join(name))
        .map_err(|error| bad(name, format!("cannot be read: {error}")))?;
    let mut reader = FrameReader::new(BufReader::new(file), FRAME_PAYLOAD_BYTES_MAX);
    let at = |reader: &FrameReader<_>, error: FrameError| {
        bad(name, format!("{error} (near byte {})", reader.offset))
    };
    reader
        .read_file_header()
        .map_err(|error| at(&reader, error))?;
    let mut frames = 0u64;
    loop {
        let next = reader.next_frame().map_err(|error| at(&reader, error))?;
        let Some((found, payload)) = next else { break };
        if found != kind {
            return Err(bad(
                name,
                format!("frame {frames} is of kind {found}, not {kind}"),
            ));
        }
        visit(payload).map_err(|reason| bad(name, format!("frame {frames}: {reason}")))?;
        frames += 1;
    }
    if frames != listed.frames {
        return Err(bad(
            name,
            format!("holds {frames} frames; the manifest says {}", listed.frames),
        ));
    }
    Ok(())
}

/// The state a backup rebuilt to, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub lsn: u64,
    /// The restored node's epoch.
    pub epoch: u64,
    pub order_count: u64,
    pub skus: Vec<SkuTotals>,
    pub state_sha256: String,
}

/// Builds a data dir at `data_dir` (empty) from the backup in `dir`, whose
/// files were checked (`check_files`), with `restored`'s identity; then
/// rebuilds it with the node's recovery and checks its invariants. Returns
/// the state it holds.
pub fn load(
    dir: &Path,
    manifest: &Manifest,
    data_dir: &Path,
    restored: RestoredIdentity,
    replay: Option<&ArchiveReplay>,
    progress: &mut impl FnMut(String),
) -> Result<Summary, LoadError> {
    let identity = manifest
        .identity()
        .map_err(|reason| bad(MANIFEST_FILE, reason))?;
    let storage = Storage::open(data_dir, StorageConfig::default())
        .map_err(|error| LoadError::Target(error.to_string()))?;
    let mut writer =
        DataDirWriter::begin(&storage, identity, restored).map_err(|error| match error {
            RestoreError::Refused(reason) => LoadError::Target(reason),
            RestoreError::Storage(error) => LoadError::Target(error.to_string()),
        })?;
    fn refused(name: &'static str) -> impl Fn(RestoreError) -> LoadError {
        move |error| match error {
            RestoreError::Refused(reason) => LoadError::Bad(bad(name, reason)),
            RestoreError::Storage(error) => LoadError::Target(error.to_string()),
        }
    }
    progress(format!("loading {CHECKPOINT_FILE}"));
    let mut chunks = Vec::new();
    read_frames(dir, manifest, CHECKPOINT_FILE, frame::CHUNK, |chunk| {
        chunks.push(chunk);
        Ok(())
    })?;
    writer
        .checkpoint(&chunks)
        .map_err(refused(CHECKPOINT_FILE))?;
    drop(chunks);
    progress(format!("loading {ARCHIVE_FILE}"));
    let mut archived = Ok(());
    read_frames(dir, manifest, ARCHIVE_FILE, frame::ARCHIVED, |value| {
        writer.archived(value).map_err(|error| match error {
            RestoreError::Refused(reason) => reason,
            RestoreError::Storage(error) => {
                let reason = error.to_string();
                archived = Err(LoadError::Target(reason.clone()));
                reason
            }
        })
    })
    .map_err(|error| archived.err().unwrap_or(LoadError::Bad(error)))?;
    progress(format!("loading {LOG_FILE}"));
    let mut logged = Ok(());
    read_frames(dir, manifest, LOG_FILE, frame::LOG_ENTRY, |payload| {
        let (first, bytes) = decode_entry_payload(&payload)?;
        writer.log_entry(first, bytes).map_err(|error| match error {
            RestoreError::Refused(reason) => reason,
            RestoreError::Storage(error) => {
                // A damaged record is the backup's fault, a failed write the target's.
                let reason = error.to_string();
                if !matches!(error, flashgate_storage::StorageError::Corrupt { .. }) {
                    logged = Err(LoadError::Target(reason.clone()));
                }
                reason
            }
        })
    })
    .map_err(|error| logged.err().unwrap_or(LoadError::Bad(error)))?;
    if let Some(replay) = replay {
        replay_archive(&mut writer, replay, progress)?;
    }
    let epoch = writer.finish().map_err(refused(LOG_FILE))?;
    progress("rebuilding the shards with the node's recovery".into());
    let mut digest = StateDigest::default();
    let rebuilt = rebuild(&storage, |order| digest.add(order)).map_err(|error| match error {
        RebuildError::Storage(error) => LoadError::Target(error.to_string()),
        other => LoadError::Bad(bad(
            &format!("{CHECKPOINT_FILE} and {LOG_FILE}"),
            other.to_string(),
        )),
    })?;
    let skus: Vec<SkuTotals> = rebuilt
        .skus
        .iter()
        .map(|sku| SkuTotals {
            id: sku.id.as_str().to_owned(),
            total: sku.total,
            available: sku.available,
            reserved: sku.reserved,
            sold: sku.sold,
        })
        .collect();
    Ok(Summary {
        lsn: rebuilt.last_lsn,
        epoch,
        order_count: rebuilt.order_count,
        state_sha256: digest.finish(&skus),
        skus,
    })
}

/// Why a backup could not be loaded: the backup, or the target directory.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad backup: {0}")]
    Bad(#[from] BadBackup),
    #[error("{0}")]
    Target(String),
}

/// Compares a rebuilt state with the manifest.
pub fn check_summary(manifest: &Manifest, summary: &Summary) -> Result<(), BadBackup> {
    let differs = |what: &str, found: String, listed: String| {
        bad(
            &format!("{CHECKPOINT_FILE}, {LOG_FILE} and {ARCHIVE_FILE}"),
            format!("rebuilt, they hold {what} {found}; {MANIFEST_FILE} says {listed}"),
        )
    };
    if summary.lsn != manifest.lsn {
        return Err(differs(
            "a log to LSN",
            summary.lsn.to_string(),
            manifest.lsn.to_string(),
        ));
    }
    if summary.order_count != manifest.order_count {
        return Err(differs(
            "orders:",
            summary.order_count.to_string(),
            manifest.order_count.to_string(),
        ));
    }
    if summary.skus != manifest.skus {
        return Err(differs(
            "SKU totals",
            format!("{:?}", summary.skus),
            format!("{:?}", manifest.skus),
        ));
    }
    if summary.state_sha256 != manifest.state_sha256 {
        return Err(differs(
            "a state of SHA-256",
            summary.state_sha256.clone(),
            manifest.state_sha256.clone(),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = BufWriter::new(File::create(path)?);
    file.write_all(bytes)?;
    file.into_inner()
        .map_err(|error| error.into_error())?
        .sync_all()
}

/// Fsyncs a directory, so the names in it (a rename) are durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// The parent of `path` (`.` for a bare name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `path` with `suffix` added to its last component.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    parent_of(path).join(name)
}

/// Whether `path` is absent or an empty directory.
pub fn is_absent_or_empty(path: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(error) => Err(error),
    }
}

/// A point-in-time restore's replay of a log archive after the backup.
#[derive(Clone, Debug)]
pub struct ArchiveReplay {
    /// The archive dir (`flashgate serve --archive-dir`, or a copy of its
    /// segments).
    pub dir: PathBuf,
    pub target: ReplayTarget,
}

/// How far a point-in-time restore replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayTarget {
    /// Everything the archive holds.
    End,
    /// Every record up to this LSN (the archive must reach it).
    Lsn(u64),
    /// Every record archived at or before this time (Unix milliseconds).
    Time(u64),
}

/// Stores the archive's records after the backup, up to the target: each
/// segment in LSN order, each poll's entries once its `ARCHIVED_THROUGH`
/// frame (fsynced after them) says they are whole. A torn tail is ignored;
/// a gap, a damaged frame or record, or a target LSN the archive does not
/// reach is refused, naming the segment.
fn replay_archive(
    writer: &mut DataDirWriter<'_>,
    replay: &ArchiveReplay,
    progress: &mut impl FnMut(String),
) -> Result<(), LoadError> {
    let archive_name = replay.dir.display().to_string();
    let segments = flashgate_actors::archiver::segments(&replay.dir)
        .map_err(|error| bad(&archive_name, format!("cannot be read: {error}")))?;
    let through = match replay.target {
        ReplayTarget::Lsn(lsn) => lsn,
        _ => u64::MAX,
    };
    let start = writer.last_lsn();
    if through < start {
        return Err(LoadError::Bad(bad(
            &archive_name,
            format!("--to-lsn {through} is before the backup's LSN {start}"),
        )));
    }
    let mut archived_at = None;
    'segments: for (first, path) in segments {
        if writer.last_lsn() >= through {
            break;
        }
        let name = path.display().to_string();
        if first > writer.last_lsn() + 1 {
            return Err(LoadError::Bad(bad(
                &name,
                format!(
                    "starts at LSN {first}; the restore reached {}: the archive has a gap (or starts after the backup)",
                    writer.last_lsn()
                ),
            )));
        }
        progress(format!("replaying {name}"));
        let file =
            File::open(&path).map_err(|error| bad(&name, format!("cannot be read: {error}")))?;
        let mut reader = FrameReader::new(BufReader::new(file), FRAME_PAYLOAD_BYTES_MAX);
        reader
            .read_file_header()
            .map_err(|error| bad(&name, error.to_string()))?;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        loop {
            let next = match reader.next_frame() {
                Ok(next) => next,
                // A torn tail of the segment being written when the node
                // stopped: what precedes it is whole.
                Err(FrameError::Truncated(_)) if name.ends_with(".partial") => None,
                Err(error) => {
                    return Err(LoadError::Bad(bad(
                        &name,
                        format!("{error} (near byte {})", reader.offset),
                    )))
                }
            };
            let Some((kind, payload)) = next else { break };
            match kind {
                frame::LOG_ENTRY => pending.push(payload),
                frame::ARCHIVED_THROUGH => {
                    let (_, at_ms) = flashgate_actors::archiver::decode_archived_through(&payload)
                        .map_err(|reason| bad(&name, reason))?;
                    if let ReplayTarget::Time(target) = replay.target {
                        if at_ms > target {
                            let batch_first = pending
                                .first()
                                .and_then(|payload| decode_entry_payload(payload).ok())
                                .map(|(first, _)| first);
                            if batch_first.is_some_and(|first| first <= start) {
                                return Err(LoadError::Bad(bad(
                                    &name,
                                    format!("--to-time is before records the backup holds (archived at {at_ms} ms since 1970, up to LSN {start}): restore an older backup"),
                                )));
                            }
                            break 'segments;
                        }
                    }
                    for payload in pending.drain(..) {
                        let (first, bytes) =
                            decode_entry_payload(&payload).map_err(|reason| bad(&name, reason))?;
                        writer.replay_entry(first, bytes, through).map_err(
                            |error| match error {
                                RestoreError::Refused(reason) => LoadError::Bad(bad(&name, reason)),
                                RestoreError::Storage(error) => match error {
                                    flashgate_storage::StorageError::Corrupt { .. } => {
                                        LoadError::Bad(bad(&name, error.to_string()))
                                    }
                                    other => LoadError::Target(other.to_string()),
                                },
                            },
                        )?;
                    }
                    archived_at = Some(at_ms);
                    if writer.last_lsn() >= through {
                        break 'segments;
                    }
                }
                other => {
                    return Err(LoadError::Bad(bad(
                        &name,
                        format!("a frame of kind {other} in an archive segment"),
                    )))
                }
            }
        }
    }
    if let ReplayTarget::Lsn(lsn) = replay.target {
        if writer.last_lsn() < lsn {
            return Err(LoadError::Bad(bad(
                &archive_name,
                format!("ends at LSN {}, before --to-lsn {lsn}", writer.last_lsn()),
            )));
        }
    }
    progress(format!(
        "replayed the archive from LSN {} to {}{}",
        start + 1,
        writer.last_lsn(),
        archived_at.map_or_else(String::new, |ms| format!(
            " (archived at {})",
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)
            )
        ))
    ));
    Ok(())
}
