//! Nothing an acknowledgement or a log trim depends on may lie outside what the
//! durability barrier fsyncs. The barrier fsyncs sled's data file (`sled/db`);
//! sled 0.34 writes any page too large for its log segments as a file of its own
//! under `sled/blobs/`, with no fsync. These tests drive the storage layer the
//! way a busy node does (group commits of thousands of records, checkpoints of
//! megabytes, a trim, a reopen) and check that `sled/blobs/` stays empty while
//! everything reads back.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use flashgate_storage::{
    Append, Completion, LogWriter, Lsn, Storage, StorageConfig, StorageError, WriterConfig,
};

/// About the size of sled 0.34's blob threshold with its default 512 KiB
/// segments: a page larger than this as one log item goes to `sled/blobs/`.
const SLED_BLOB_THRESHOLD_BYTES: usize = 512 * 1024 / 4 - 20 - 32;

/// A record body of this size makes a group commit of a few thousand records
/// several megabytes.
const BODY_BYTES: usize = 300;

/// Records per wave: queued back to back, so the writer commits them in a few
/// large groups.
const RECORDS_PER_WAVE: u64 = 12_000;

/// Longest wait for the writer to make a wave durable.
const DURABLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts durable records and the largest group commit, and wakes the waiter.
#[derive(Clone, Default)]
struct Durable(Arc<(Mutex<(u64, usize)>, Condvar)>);

impl Durable {
    fn wait_for(&self, records: u64) {
        let (state, changed) = &*self.0;
        let deadline = Instant::now() + DURABLE_TIMEOUT;
        let mut state = state.lock().unwrap();
        while state.0 < records {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("only {} of {records} records became durable", state.0));
            state = changed.wait_timeout(state, left).unwrap().0;
        }
    }

    fn largest_group(&self) -> usize {
        self.0 .0.lock().unwrap().1
    }
}

impl Completion<()> for Durable {
    fn durable(&mut self, tickets: &mut Vec<()>, _last_lsn: Lsn) {
        let (state, changed) = &*self.0;
        let mut state = state.lock().unwrap();
        state.0 += tickets.len() as u64;
        state.1 = state.1.max(tickets.len());
        tickets.clear();
        changed.notify_all();
    }

    fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<()>) {
        panic!("the log failed: {error}");
    }
}

/// A body that names its LSN, so a record read back in the wrong place shows.
fn body_of(lsn: Lsn) -> Vec<u8> {
    let mut body = vec![(lsn % 251) as u8; BODY_BYTES];
    body[..8].copy_from_slice(&lsn.to_le_bytes());
    body
}

/// A checkpoint chunk of `bytes` bytes whose content depends on `seed`.
fn chunk_of(seed: u8, bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Files sled wrote beside its data file: none may exist.
fn blob_files(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("sled").join("blobs")) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn append_wave(sender: &flashgate_storage::LogSender<()>, first: Lsn) {
    for lsn in first..first + RECORDS_PER_WAVE {
        let append = Append {
            body: Some(body_of(lsn)),
            ticket: (),
        };
        if sender.append(append).is_err() {
            panic!("the log writer stopped");
        }
    }
}

/// Large group commits, a checkpoint of several megabytes that trims the log,
/// a second checkpoint that replaces it, and a reopen leave no file under
/// `sled/blobs/`, and every record and chunk reads back as written.
#[test]
fn large_group_commits_and_checkpoints_leave_no_blob_file_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let first_chunks = vec![
        chunk_of(1, 3 << 20),
        chunk_of(2, 200_000),
        Vec::new(),
        chunk_of(3, 10),
    ];
    let second_chunks = vec![chunk_of(4, 1 << 20), chunk_of(5, 5_000)];
    let durable = Durable::default();
    {
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let writer = LogWriter::start(
            storage.clone(),
            WriterConfig::default(),
            1,
            0,
            durable.clone(),
        );
        let sender = writer.sender();
        append_wave(&sender, 1);
        durable.wait_for(RECORDS_PER_WAVE);
        // Every record of the first wave is durable: LSN RECORDS_PER_WAVE ends a
        // group commit, so a checkpoint may cover it and trim the log behind it.
        storage
            .write_checkpoint(RECORDS_PER_WAVE, &first_chunks)
            .unwrap();
        append_wave(&sender, RECORDS_PER_WAVE + 1);
        durable.wait_for(2 * RECORDS_PER_WAVE);
        storage
            .write_checkpoint(RECORDS_PER_WAVE, &second_chunks)
            .unwrap();
        append_wave(&sender, 2 * RECORDS_PER_WAVE + 1);
        drop(sender);
        writer.join();
    }
    // The test only proves something if groups were larger than sled's
    // threshold: otherwise the old layout would not have made blobs either.
    let largest_group_bytes = durable.largest_group() * BODY_BYTES;
    assert!(
        largest_group_bytes > 4 * SLED_BLOB_THRESHOLD_BYTES,
        "the largest group commit held only {largest_group_bytes} bytes of bodies"
    );

    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let checkpoint = storage.read_checkpoint().unwrap().unwrap();
    assert_eq!(checkpoint.covers_lsn, RECORDS_PER_WAVE);
    assert!(
        checkpoint.chunks == second_chunks,
        "the checkpoint read back differs from the one written"
    );
    let mut next = RECORDS_PER_WAVE + 1;
    storage
        .read_log_after::<StorageError>(RECORDS_PER_WAVE, |record| {
            assert_eq!(record.lsn, next);
            assert!(record.body == body_of(next), "body of LSN {next} differs");
            next += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(next, 3 * RECORDS_PER_WAVE + 1, "records missing at the end");
    assert_eq!(storage.last_lsn().unwrap(), Some(3 * RECORDS_PER_WAVE));
    drop(storage);

    let blobs = blob_files(dir.path());
    assert!(
        blobs.is_empty(),
        "{} files in sled/blobs/ lie outside the barrier: {:?}",
        blobs.len(),
        &blobs[..blobs.len().min(10)]
    );
}
