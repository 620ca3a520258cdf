//! Continuous archiving: a thread that copies every durable log record to an
//! archive directory, with its checksums, in segment files a point-in-time
//! restore replays after a backup (`flashgate restore --archive`).
//!
//! The order path hands the archiver nothing and never waits for it: the
//! thread reads the log from the disk (what is durable, up to
//! `LogProgress::durable_lsn`) every `ARCHIVE_POLL_INTERVAL`, so the queue
//! between the two is the log itself, bounded by
//! `ArchiveConfig::retention_records_max`: a checkpoint keeps the log from
//! the first record the archive lacks (`Node::checkpoint`), unless the
//! archive is further behind than that, when the log is trimmed anyway and
//! the archive gets a gap (reported; a restore refuses to replay across it).
//!
//! A segment `<first LSN, 20 digits>.fgs` holds backup frames
//! (`flashgate_storage::backup`) after a file header: each poll's log
//! entries (`frame::LOG_ENTRY`, as stored, every record with its CRC32),
//! then a `frame::ARCHIVED_THROUGH` frame (the last LSN, and when it was
//! archived, Unix milliseconds), after the entries are fsynced. A segment
//! being written ends in `.partial`; past `segment_bytes_max` it is fsynced,
//! renamed, and handed to `command` (as PostgreSQL's `archive_command`:
//! `%p` is the segment's path, `%f` its name; exit status 0 means copied),
//! retried until it succeeds.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use flashgate_storage::backup::{
    encode_entry_payload, encode_frame, file_header, FrameReader, FRAME_PAYLOAD_BYTES_MAX,
};
use flashgate_storage::{LogProgress, Lsn, Storage, StorageError};

use crate::backup::frame;

/// How often the archiver looks for newly durable records.
pub const ARCHIVE_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a failed archive command waits before it runs again.
pub const ARCHIVE_COMMAND_RETRY: Duration = Duration::from_secs(1);
/// The extension of a closed segment.
pub const SEGMENT_EXTENSION: &str = "fgs";
/// The suffix of the segment being written.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// The file in an archive dir naming the cluster whose log it holds (16
/// hex digits): a node of another cluster (a restored one, say) refuses it.
pub const CLUSTER_FILE: &str = "CLUSTER";

/// Where and how to archive.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    pub dir: PathBuf,
    /// Run on every closed segment (`%p` its path, `%f` its name).
    pub command: Option<String>,
    /// A segment is closed once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// Records the log keeps for an archive that is behind; beyond it, the log
    /// is trimmed and the archive gets a gap.
    pub retention_records_max: u64,
}

/// The archiver's progress, shared with the node (which keeps the log for
/// it) and the metrics.
#[derive(Debug, Default)]
pub struct ArchiveProgress {
    /// Every record up to this LSN is in the archive, fsynced.
    pub archived_lsn: AtomicU64,
    /// Records the log keeps for the archive (`retention_records_max`).
    pub retention_records_max: AtomicU64,
    /// Closed segments the command has not copied yet.
    pub command_pending: AtomicU64,
}

impl ArchiveProgress {
    /// The LSN up to which a checkpoint may trim the log: the archived one,
    /// unless the archive is further behind `durable` than the retention.
    pub fn trim_floor(&self, durable: Lsn) -> Lsn {
        let archived = self.archived_lsn.load(Ordering::Acquire);
        let retention = self.retention_records_max.load(Ordering::Acquire);
        if durable.saturating_sub(archived) > retention {
            durable
        } else {
            archived
        }
    }
}

/// Why the archive cannot be started.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive dir {path}: {reason}; check that it exists, is writable by this user, and holds only this node's archive")]
    Dir { path: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The archiver thread.
pub struct Archiver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    progress: Arc<ArchiveProgress>,
}

/// A segment's first LSN from its file name (closed or partial).
pub fn segment_first_lsn(name: &str) -> Option<Lsn> {
    let stem = name.strip_suffix(PARTIAL_SUFFIX).unwrap_or(name);
    let digits = stem.strip_suffix(&format!(".{SEGMENT_EXTENSION}"))?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// The segments of an archive dir (closed and partial), by first LSN.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(Lsn, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(first) = entry.file_name().to_str().and_then(segment_first_lsn) {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// `ARCHIVED_THROUGH`'s payload: the last LSN, then Unix milliseconds.
pub fn encode_archived_through(lsn: Lsn, unix_ms: u64) -> Vec<u8> {
    let mut payload = lsn.to_be_bytes().to_vec();
    payload.extend_from_slice(&unix_ms.to_be_bytes());
    payload
}

pub fn decode_archived_through(payload: &[u8]) -> Result<(Lsn, u64), String> {
    if payload.len() != 16 {
        return Err(format!(
            "an archived-through frame of {} bytes, not 16",
            payload.len()
        ));
    }
    Ok((
        u64::from_be_bytes(payload[..8].try_into().expect("8 bytes")),
        u64::from_be_bytes(payload[8..].try_into().expect("8 bytes")),
    ))
}

/// The last complete poll of a segment: the byte length up to its last
/// `ARCHIVED_THROUGH` frame, and that frame's LSN (`None` without one).
fn last_complete(path: &Path) -> Result<(u64, Option<Lsn>), String> {
    let file = File::open(path).map_err(|error| error.to_string())?;
    let mut reader = FrameReader::new(std::io::BufReader::new(file), FRAME_PAYLOAD_BYTES_MAX);
    if reader.read_file_header().is_err() {
        return Ok((0, None));
    }
    let mut complete = (reader.offset, None);
    // A torn tail (a crash while appending) ends the scan; what is before
    // the last archived-through frame is whole.
    while let Ok(Some((kind, payload))) = reader.next_frame() {
        if kind == frame::ARCHIVED_THROUGH {
            let (lsn, _) = decode_archived_through(&payload)?;
            complete = (reader.offset, Some(lsn));
        }
    }
    Ok(complete)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The segment being written.
struct Segment {
    first_lsn: Lsn,
    file: File,
    bytes: u64,
}

struct Worker {
    storage: Storage,
    log: Arc<LogProgress>,
    config: ArchiveConfig,
    progress: Arc<ArchiveProgress>,
    segment: Option<Segment>,
    /// Closed segments the command has yet to copy, oldest first.
    pending: Vec<PathBuf>,
    command_retry_at: Option<Instant>,
    /// The lag (records) at which the last "behind" warning was logged.
    warned_lag: u64,
}

impl Archiver {
    /// Opens the archive dir, finds where the archive ends (a torn tail of the
    /// last segment is cut), starts the thread, and from then on `node`'s
    /// checkpoints keep the log the archive lacks (up to the retention).
    pub fn start(node: &crate::Node, config: ArchiveConfig) -> Result<Archiver, ArchiveError> {
        let storage = node.storage.clone();
        let log = Arc::clone(&node.progress);
        let dir = config.dir.clone();
        let dir_error = |reason: String| ArchiveError::Dir {
            path: dir.clone(),
            reason,
        };
        std::fs::create_dir_all(&config.dir).map_err(|error| dir_error(error.to_string()))?;
        let cluster = format!("{:016x}", node.cluster_id()?);
        let cluster_file = config.dir.join(CLUSTER_FILE);
        match std::fs::read_to_string(&cluster_file) {
            Ok(found) if found.trim() == cluster => {}
            Ok(found) => {
                return Err(dir_error(format!(
                    "holds the log of cluster {}, this node is of cluster {cluster}; give this node an archive dir of its own",
                    found.trim()
                )))
            }
            // Named with the first segment: a new standby learns its
            // cluster id from its primary before it writes a record.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(dir_error(error.to_string())),
        }
        let found = segments(&config.dir).map_err(|error| dir_error(error.to_string()))?;
        let mut archived = None;
        for (_, path) in &found {
            let (length, last) = last_complete(path)
                .map_err(|reason| dir_error(format!("{}: {reason}", path.display())))?;
            let partial = path.to_string_lossy().ends_with(PARTIAL_SUFFIX);
            if partial {
                // Keep the whole polls, then close it: the next records start a
                // segment of their own.
                let file = OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|error| dir_error(error.to_string()))?;
                file.set_len(length)
                    .map_err(|error| dir_error(error.to_string()))?;
                file.sync_all()
                    .map_err(|error| dir_error(error.to_string()))?;
                if last.is_some() {
                    let closed = PathBuf::from(
                        path.to_string_lossy()
                            .strip_suffix(PARTIAL_SUFFIX)
                            .expect("a partial segment's name"),
                    );
                    std::fs::rename(path, &closed).map_err(|error| dir_error(error.to_string()))?;
                } else {
                    std::fs::remove_file(path).map_err(|error| dir_error(error.to_string()))?;
                }
            }
            archived = last.or(archived);
        }
        // A new archive starts where the log does.
        let archived = match archived {
            Some(lsn) => lsn,
            None => storage.checkpoint_covers_lsn()?,
        };
        let durable = log.durable_lsn();
        if archived > durable {
            return Err(dir_error(format!(
                "reaches LSN {archived}, beyond this node's log (LSN {durable}): it holds another history; give this node an empty archive dir"
            )));
        }
        let progress = Arc::new(ArchiveProgress::default());
        progress.archived_lsn.store(archived, Ordering::Release);
        metrics::gauge!("flashgate_archive_lsn").set(archived as f64);
        progress
            .retention_records_max
            .store(config.retention_records_max, Ordering::Release);
        let stop = Arc::new(AtomicBool::new(false));
        tracing::info!(dir = %config.dir.display(), archived_lsn = archived, "archiving the log");
        let mut worker = Worker {
            storage,
            log,
            config,
            progress: Arc::clone(&progress),
            segment: None,
            pending: Vec::new(),
            command_retry_at: None,
            warned_lag: 0,
        };
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("archiver".into())
            .spawn(move || worker.run(&stopping))
            .map_err(|error| dir_error(format!("cannot start the archiver thread: {error}")))?;
        node.keep_log_for(Arc::clone(&progress));
        Ok(Archiver {
            stop,
            thread: Some(thread),
            progress,
        })
    }

    pub fn progress(&self) -> &Arc<ArchiveProgress> {
        &self.progress
    }

    /// Archives what is durable, closes the segment, and stops the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Worker {
    fn run(&mut self, stop: &AtomicBool) {
        loop {
            let stopping = stop.load(Ordering::Acquire);
            if let Err(error) = self.archive_durable() {
                tracing::error!(dir = %self.config.dir.display(), %error, "ARCHIVE FAILED: records are not archived; the log keeps them up to archive_retention_records_max; fix the archive dir");
                metrics::counter!("flashgate_archive_failures_total").increment(1);
            }
            if stopping {
                self.close_segment();
                self.run_command();
                return;
            }
            self.run_command();
            std::thread::sleep(ARCHIVE_POLL_INTERVAL);
        }
    }

    /// Appends every record made durable since the last poll, fsyncs it, and
    /// then records how far the archive reaches.
    fn archive_durable(&mut self) -> Result<(), String> {
        let archived = self.progress.archived_lsn.load(Ordering::Acquire);
        let durable = self.log.durable_lsn();
        let lag = durable.saturating_sub(archived);
        metrics::gauge!("flashgate_archive_lag_records").set(lag as f64);
        if lag > self.config.retention_records_max / 2 && lag > self.warned_lag * 2 {
            self.warned_lag = lag;
            tracing::warn!(
                lag_records = lag,
                retention_records_max = self.config.retention_records_max,
                "the archive is behind the log"
            );
        }
        if durable <= archived {
            return Ok(());
        }
        let entries = match self.storage.read_entries_through(archived, durable) {
            Ok(entries) => entries,
            Err(StorageError::LogTrimmed { covers, .. }) => {
                tracing::error!(
                    archived_lsn = archived,
                    resumes_after = covers,
                    "ARCHIVE GAP: the log was trimmed past the archive (it was behind by more than archive_retention_records_max); a point-in-time restore cannot cross this gap: take a new backup"
                );
                metrics::counter!("flashgate_archive_gaps_total").increment(1);
                self.close_segment();
                self.progress.archived_lsn.store(covers, Ordering::Release);
                return Ok(());
            }
            Err(error) => return Err(error.to_string()),
        };
        let Some(first) = entries.first().map(|entry| entry.first_lsn) else {
            return Ok(());
        };
        let mut bytes = Vec::new();
        for entry in &entries {
            encode_frame(&mut bytes, frame::LOG_ENTRY, &encode_entry_payload(entry));
        }
        encode_frame(
            &mut bytes,
            frame::ARCHIVED_THROUGH,
            &encode_archived_through(durable, now_ms()),
        );
        let segment = self.open_segment(first)?;
        segment
            .file
            .write_all(&bytes)
            .map_err(|error| error.to_string())?;
        segment
            .file
            .sync_data()
            .map_err(|error| error.to_string())?;
        segment.bytes += bytes.len() as u64;
        let full = segment.bytes >= self.config.segment_bytes_max;
        self.progress.archived_lsn.store(durable, Ordering::Release);
        metrics::gauge!("flashgate_archive_lsn").set(durable as f64);
        if full {
            self.close_segment();
        }
        Ok(())
    }

    fn open_segment(&mut self, first_lsn: Lsn) -> Result<&mut Segment, String> {
        let cluster_file = self.config.dir.join(CLUSTER_FILE);
        if self.segment.is_none() && !cluster_file.exists() {
            let cluster =
                crate::meta::cluster_id(&self.storage).map_err(|error| error.to_string())?;
            std::fs::write(&cluster_file, format!("{cluster:016x}\n"))
                .and_then(|()| File::open(&cluster_file)?.sync_all())
                .map_err(|error| format!("{}: {error}", cluster_file.display()))?;
        }
        if self.segment.is_none() {
            let path = self.partial_path(first_lsn);
            let mut file =
                File::create(&path).map_err(|error| format!("{}: {error}", path.display()))?;
            file.write_all(&file_header())
                .map_err(|error| error.to_string())?;
            File::open(&self.config.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(|error| error.to_string())?;
            self.segment = Some(Segment {
                first_lsn,
                file,
                bytes: file_header().len() as u64,
            });
        }
        Ok(self.segment.as_mut().expect("a segment is open"))
    }

    fn closed_path(&self, first_lsn: Lsn) -> PathBuf {
        self.config
            .dir
            .join(format!("{first_lsn:020}.{SEGMENT_EXTENSION}"))
    }

    fn partial_path(&self, first_lsn: Lsn) -> PathBuf {
        self.config.dir.join(format!(
            "{first_lsn:020}.{SEGMENT_EXTENSION}{PARTIAL_SUFFIX}"
        ))
    }

    /// Closes the segment being written: fsynced, renamed, queued for the
    /// command.
    fn close_segment(&mut self) {
        let Some(segment) = self.segment.take() else {
            return;
        };
        let closed = self.closed_path(segment.first_lsn);
        let result = segment
            .file
            .sync_all()
            .and_then(|()| std::fs::rename(self.partial_path(segment.first_lsn), &closed))
            .and_then(|()| File::open(&self.config.dir)?.sync_all());
        match result {
            Ok(()) => {
                if self.config.command.is_some() {
                    self.pending.push(closed);
                    self.progress
                        .command_pending
                        .store(self.pending.len() as u64, Ordering::Release);
                }
            }
            Err(error) => {
                tracing::error!(segment = %closed.display(), %error, "ARCHIVE FAILED: a segment could not be closed")
            }
        }
    }

    /// Runs the command on the oldest closed segments it has not copied, in
    /// order; a failure waits `ARCHIVE_COMMAND_RETRY` and runs it again.
    fn run_command(&mut self) {
        let Some(command) = self.config.command.clone() else {
            return;
        };
        if self.command_retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        while let Some(path) = self.pending.first().cloned() {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let line = command
                .replace("%p", &path.to_string_lossy())
                .replace("%f", &name);
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(&line)
                .stdin(std::process::Stdio::null())
                .status();
            match status {
                Ok(status) if status.success() => {
                    self.pending.remove(0);
                    self.command_retry_at = None;
                }
                other => {
                    let outcome = match other {
                        Ok(status) => status.to_string(),
                        Err(error) => error.to_string(),
                    };
                    tracing::error!(segment = %path.display(), command = %line, %outcome, "ARCHIVE COMMAND FAILED: the segment is not copied; retrying");
                    metrics::counter!("flashgate_archive_command_failures_total").increment(1);
                    self.command_retry_at = Some(Instant::now() + ARCHIVE_COMMAND_RETRY);
                    break;
                }
            }
        }
        self.progress
            .command_pending
            .store(self.pending.len() as u64, Ordering::Release);
    }
}

impl Drop for Archiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_kept_for_the_archive_up_to_the_retention() {
        let progress = ArchiveProgress::default();
        progress.archived_lsn.store(100, Ordering::Release);
        progress.retention_records_max.store(50, Ordering::Release);
        assert_eq!(
            progress.trim_floor(120),
            100,
            "behind, within the retention"
        );
        assert_eq!(progress.trim_floor(150), 100, "at the retention");
        assert_eq!(progress.trim_floor(151), 151, "past it: trimmed anyway");
    }

    #[test]
    fn segment_names_carry_their_first_lsn() {
        assert_eq!(segment_first_lsn("00000000000000000042.fgs"), Some(42));
        assert_eq!(
            segment_first_lsn("00000000000000000042.fgs.partial"),
            Some(42)
        );
        assert_eq!(segment_first_lsn("42.fgs"), None);
        assert_eq!(segment_first_lsn("00000000000000000042.txt"), None);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.fgs.partial");
        let mut bytes = file_header();
        encode_frame(&mut bytes, frame::LOG_ENTRY, b"first poll's entry");
        encode_frame(
            &mut bytes,
            frame::ARCHIVED_THROUGH,
            &encode_archived_through(7, 1),
        );
        let whole = bytes.len() as u64;
        encode_frame(&mut bytes, frame::LOG_ENTRY, b"second poll's entry");
        encode_frame(
            &mut bytes,
            frame::ARCHIVED_THROUGH,
            &encode_archived_through(9, 2),
        );
        for cut in [whole as usize + 3, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert_eq!(
                last_complete(&path).unwrap(),
                (whole, Some(7)),
                "cut at {cut}"
            );
        }
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(last_complete(&path).unwrap(), (bytes.len() as u64, Some(9)));
    }
}
