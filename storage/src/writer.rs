//! The group-commit log writer: one thread that takes appends from a bounded
//! crossbeam channel, writes each batch as log entries of at most
//! `SLED_VALUE_BYTES_MAX` bytes in one atomic sled batch, passes the durability
//! barrier, and only then reports the batch durable. While it waits on the disk,
//! the next batch gathers in the channel, so one fsync serves many orders.
//!
//! A durable batch's entries can be handed on in memory (`DurableBatch`), so a
//! replication streamer ships what the writer just wrote without reading it
//! back from sled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::error::StorageError;
use crate::record::{verify_entry, LogEntries, Lsn};
use crate::store::Storage;

/// Limits of the writer.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Appends that may wait in the channel; a full channel makes senders wait.
    pub queue_records_max: usize,
    /// Most records in one batch.
    pub batch_records_max: usize,
    /// Most bytes in one batch; a batch closes once it reaches this.
    pub batch_bytes_max: usize,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            queue_records_max: 65_536,
            batch_records_max: 8_192,
            batch_bytes_max: 4 << 20,
        }
    }
}

/// One record to append, and what to hand back when it is durable. With no body
/// it is a marker: it writes nothing and completes once everything appended
/// before it is durable.
pub struct Append<T> {
    pub body: Option<Vec<u8>>,
    pub ticket: T,
}

/// Told of each batch's fate. Runs on the writer thread: keep it short.
pub trait Completion<T>: Send + 'static {
    /// Everything appended with `tickets` (in append order) is durable; the
    /// batch's last record has `last_lsn`. Drain the tickets.
    fn durable(&mut self, tickets: &mut Vec<T>, last_lsn: Lsn);
    /// The log failed: none of `tickets` (this batch and everything still queued)
    /// nor anything appended later will be durable. Called once; the writer stops
    /// after it.
    fn failed(&mut self, error: &StorageError, tickets: &mut Vec<T>);

    /// Whether the next durable batch's entries are wanted (`entries_durable`);
    /// asked once per batch, after its barrier. Default: no, and the writer
    /// copies nothing.
    fn wants_entries(&self) -> bool {
        false
    }

    /// The entries of a batch that just passed its barrier, exactly as
    /// written, handed on before `durable` and before `LogProgress` reports
    /// the batch durable, so whoever ships them finds them no later than it
    /// learns of the batch. Only called when `wants_entries` said yes.
    fn entries_durable(&mut self, batch: DurableBatch) {
        let _ = batch;
    }
}

/// The log entries of one durable group commit, in memory: the same bytes the
/// writer inserted into sled under the same keys (each entry's first LSN), so
/// a streamer ships them as if it had read them back. Cheap to clone (shared
/// bytes); an entry's bytes are a slice of them, never a copy.
#[derive(Clone, Debug)]
pub struct DurableBatch {
    bytes: Bytes,
    /// Each entry's first LSN and where it starts in `bytes`.
    starts: std::sync::Arc<[(Lsn, usize)]>,
    last_lsn: Lsn,
}

impl DurableBatch {
    fn copy_of(entries: &LogEntries, last_lsn: Lsn) -> DurableBatch {
        let (bytes, starts) = entries.parts();
        DurableBatch {
            bytes: Bytes::copy_from_slice(bytes),
            starts: starts.into(),
            last_lsn,
        }
    }

    /// A batch of entries already checked (`verify_entry`) and contiguous:
    /// (first LSN, bytes) in LSN order. For tests and tools.
    pub fn from_entries(entries: &[(Lsn, &[u8])], last_lsn: Lsn) -> DurableBatch {
        let mut bytes = Vec::new();
        let mut starts = Vec::with_capacity(entries.len());
        for (first, entry) in entries {
            starts.push((*first, bytes.len()));
            bytes.extend_from_slice(entry);
        }
        DurableBatch {
            bytes: Bytes::from(bytes),
            starts: starts.into(),
            last_lsn,
        }
    }

    /// The first record's LSN.
    pub fn first_lsn(&self) -> Lsn {
        self.starts
            .first()
            .map_or(self.last_lsn + 1, |&(first, _)| first)
    }

    /// The last record's LSN.
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    /// Bytes of all its entries.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// The entries holding a record after `after`, whole: (first LSN, last
    /// LSN, bytes), in LSN order. The bytes share the batch's memory.
    pub fn entries_after(&self, after: Lsn) -> impl Iterator<Item = (Lsn, Lsn, Bytes)> + '_ {
        self.starts
            .iter()
            .enumerate()
            .filter_map(move |(index, &(first, start))| {
                let (last, end) = match self.starts.get(index + 1) {
                    Some(&(next, next_start)) => (next - 1, next_start),
                    None => (self.last_lsn, self.bytes.len()),
                };
                (last > after).then(|| (first, last, self.bytes.slice(start..end)))
            })
    }
}

/// Where the log stands, readable from any thread.
#[derive(Debug, Default)]
pub struct LogProgress {
    appended_lsn: AtomicU64,
    durable_lsn: AtomicU64,
    epoch: AtomicU64,
    failure: OnceLock<String>,
}

impl LogProgress {
    /// The last LSN handed out. Always a batch boundary.
    pub fn appended_lsn(&self) -> Lsn {
        self.appended_lsn.load(Ordering::Acquire)
    }

    /// Every record up to this LSN is durable.
    pub fn durable_lsn(&self) -> Lsn {
        self.durable_lsn.load(Ordering::Acquire)
    }

    /// The epoch new records are stamped with.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::AcqRel);
    }

    /// Sets where the log stands after records were written (or discarded)
    /// outside the writer: on a standby, which writes what its primary sends.
    /// The writer must be idle (no appends queued); its next record gets
    /// `lsn + 1`.
    pub fn reset_to(&self, lsn: Lsn) {
        self.appended_lsn.store(lsn, Ordering::Release);
        self.durable_lsn.store(lsn, Ordering::Release);
    }

    /// Why the log stopped, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Fail-stops the log from outside the writer, e.g. when a watchdog sees a
    /// write stuck in the disk: from now on nothing appended is reported durable,
    /// not even the batch being written (the writer fails it when, if ever, its
    /// write returns). Returns false if the log had already failed.
    pub fn fail_stop(&self, reason: String) -> bool {
        self.failure.set(reason).is_ok()
    }
}

/// The sending side of the writer. Dropping it (every clone of `sender`) lets the
/// writer drain what is queued and stop; `join` waits for that.
pub struct LogWriter<T> {
    sender: Sender<Append<T>>,
    progress: Arc<LogProgress>,
    thread: JoinHandle<()>,
}

impl<T: Send + 'static> LogWriter<T> {
    /// Starts the writer thread. The first record it writes gets `last_lsn + 1`.
    pub fn start(
        storage: Storage,
        config: WriterConfig,
        epoch: u64,
        last_lsn: Lsn,
        completion: impl Completion<T>,
    ) -> LogWriter<T> {
        assert!(config.queue_records_max > 0 && config.batch_records_max > 0);
        let (sender, receiver) = crossbeam_channel::bounded(config.queue_records_max);
        let progress = Arc::new(LogProgress::default());
        progress.appended_lsn.store(last_lsn, Ordering::Release);
        progress.durable_lsn.store(last_lsn, Ordering::Release);
        progress.epoch.store(epoch, Ordering::Release);
        let thread_progress = Arc::clone(&progress);
        let thread = std::thread::Builder::new()
            .name("flashgate-log".into())
            .spawn(move || run(storage, config, receiver, thread_progress, completion))
            .expect("spawn the log writer thread");
        LogWriter {
            sender,
            progress,
            thread,
        }
    }

    pub fn sender(&self) -> LogSender<T> {
        LogSender {
            sender: self.sender.clone(),
        }
    }

    pub fn progress(&self) -> &Arc<LogProgress> {
        &self.progress
    }

    /// Closes this handle's sender and waits for the thread to write everything
    /// already queued. Other `LogSender`s must be dropped first.
    pub fn join(self) {
        drop(self.sender);
        if self.thread.join().is_err() {
            tracing::error!("the log writer thread panicked");
        }
    }
}

/// A cloneable handle for appending to the log.
pub struct LogSender<T> {
    sender: Sender<Append<T>>,
}

impl<T> Clone for LogSender<T> {
    fn clone(&self) -> Self {
        LogSender {
            sender: self.sender.clone(),
        }
    }
}

impl<T> LogSender<T> {
    /// Queues a record, waiting while the queue is full (back pressure). Once the
    /// writer has stopped, hands the append back.
    pub fn append(&self, append: Append<T>) -> Result<(), Append<T>> {
        match self.sender.try_send(append) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(append)) => {
                self.sender.send(append).map_err(|error| error.into_inner())
            }
            Err(TrySendError::Disconnected(append)) => Err(append),
        }
    }

    /// Appends waiting in the queue right now.
    pub fn queued(&self) -> usize {
        self.sender.len()
    }
}

fn run<T>(
    storage: Storage,
    config: WriterConfig,
    receiver: Receiver<Append<T>>,
    progress: Arc<LogProgress>,
    mut completion: impl Completion<T>,
) {
    let mut tickets: Vec<T> = Vec::with_capacity(config.batch_records_max);
    let mut entries = LogEntries::with_capacity(config.batch_bytes_max);
    let record_bytes_max = storage.config().record_bytes_max;
    #[cfg(debug_assertions)]
    let panic_after = crate::fault::panic_after("log_writer");
    #[cfg(debug_assertions)]
    let mut records_written = 0u64;
    // Block for the first append of a batch, then take whatever else is queued.
    while let Ok(first) = receiver.recv() {
        let started = Instant::now();
        // Read each time: on a standby the log grows outside this thread.
        let mut next_lsn = progress.appended_lsn() + 1;
        let epoch = progress.epoch();
        let first_lsn = next_lsn;
        tickets.clear();
        entries.clear();
        let mut next = Some(first);
        while let Some(append) = next {
            if let Some(body) = append.body {
                assert!(body.len() <= record_bytes_max, "record body over the limit");
                entries.push(epoch, next_lsn, &body);
                next_lsn += 1;
            }
            tickets.push(append.ticket);
            next = if tickets.len() < config.batch_records_max
                && entries.bytes_len() < config.batch_bytes_max
            {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        let records = next_lsn - first_lsn;
        if records == 0 {
            // Only markers: everything before them is durable already.
            completion.durable(&mut tickets, first_lsn - 1);
            continue;
        }
        let last_lsn = next_lsn - 1;
        progress.appended_lsn.store(last_lsn, Ordering::Release);
        // Check the checksums right before the bytes leave for the disk: a
        // corruption in memory must not become a durable record.
        let verified: usize = entries
            .iter()
            .map(|(first, bytes)| {
                verify_entry(bytes, first, record_bytes_max)
                    .expect("a batch verifies right after encoding")
            })
            .sum();
        assert_eq!(verified as u64, records);
        #[cfg(debug_assertions)]
        {
            records_written += records;
            if panic_after.is_some_and(|after| records_written > after) {
                panic!("fault point log_writer: injected panic after {records_written} records");
            }
        }
        let written = {
            let _wait = storage.disk_wait("log write");
            storage
                .insert_entries(&entries)
                .and_then(|()| storage.barrier())
        };
        // A watchdog may have fail-stopped the log while this write hung: its
        // replies were refused already, so the batch must not count as durable.
        let written = match (written, progress.failure()) {
            (Ok(()), Some(reason)) => Err(StorageError::Stopped(reason.to_owned())),
            (written, _) => written,
        };
        match written {
            Ok(()) => {
                if completion.wants_entries() {
                    completion.entries_durable(DurableBatch::copy_of(&entries, last_lsn));
                }
                progress.durable_lsn.store(last_lsn, Ordering::Release);
                metrics::histogram!("flashgate_log_batch_records").record(records as f64);
                metrics::histogram!("flashgate_log_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                completion.durable(&mut tickets, last_lsn);
            }
            Err(error) => {
                // Fail-stop: nothing after this point may be acknowledged.
                let data_dir = storage.path().display();
                tracing::error!(%error, %data_dir, first_lsn, last_lsn, "LOG WRITE FAILED in data dir {data_dir}: this node stops taking writes; fix the disk, then restart it (every acknowledged order is in the log)");
                let _ = progress
                    .failure
                    .set(format!("data dir {data_dir}: {error}"));
                tickets.extend(receiver.try_iter().map(|append| append.ticket));
                completion.failed(&error, &mut tickets);
                drop(receiver);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inline::{RECORD_BODY_BYTES_MAX, SLED_VALUE_BYTES_MAX};
    use crate::record::encode_record;
    use crate::store::StorageConfig;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<(u32, Lsn)>>>);

    impl Completion<u32> for Collect {
        fn durable(&mut self, tickets: &mut Vec<u32>, last_lsn: Lsn) {
            let first = last_lsn + 1 - tickets.len() as u64;
            let mut seen = self.0.lock().unwrap();
            for (i, ticket) in tickets.drain(..).enumerate() {
                seen.push((ticket, first + i as u64));
            }
        }
        fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<u32>) {
            panic!("unexpected failure: {error}");
        }
    }

    #[test]
    fn appended_records_are_durable_in_order_and_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let collect = Collect::default();
        {
            let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
            let writer = LogWriter::start(storage, WriterConfig::default(), 4, 0, collect.clone());
            let sender = writer.sender();
            for i in 0..1000u32 {
                sender
                    .append(Append {
                        body: Some(i.to_le_bytes().to_vec()),
                        ticket: i,
                    })
                    .unwrap_or_else(|_| panic!("the writer stopped"));
            }
            drop(sender);
            writer.join();
        }
        let seen = collect.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 1000);
        for (i, (ticket, lsn)) in seen.iter().enumerate() {
            assert_eq!((*ticket, *lsn), (i as u32, i as u64 + 1));
        }
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        assert_eq!(storage.last_lsn().unwrap(), Some(1000));
        let mut bodies = Vec::new();
        storage
            .read_log_after::<StorageError>(990, |record| {
                assert_eq!(record.epoch, 4);
                bodies.push(u32::from_le_bytes(record.body[..4].try_into().unwrap()));
                Ok(())
            })
            .unwrap();
        assert_eq!(bodies, (990..1000).collect::<Vec<u32>>());
    }

    /// Records the order in which tickets complete; markers are tickets >= 1000.
    #[derive(Clone, Default)]
    struct Order(Arc<Mutex<Vec<u32>>>);

    impl Completion<u32> for Order {
        fn durable(&mut self, tickets: &mut Vec<u32>, _last_lsn: Lsn) {
            self.0.lock().unwrap().extend(tickets.drain(..));
        }
        fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<u32>) {
            panic!("unexpected failure: {error}");
        }
    }

    /// Keeps the batches handed over, as a replication streamer would.
    #[derive(Clone, Default)]
    struct Shipped {
        wanted: Arc<std::sync::atomic::AtomicBool>,
        batches: Arc<Mutex<Vec<DurableBatch>>>,
    }

    impl Completion<u32> for Shipped {
        fn durable(&mut self, tickets: &mut Vec<u32>, _last_lsn: Lsn) {
            tickets.clear();
        }
        fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<u32>) {
            panic!("unexpected failure: {error}");
        }
        fn wants_entries(&self) -> bool {
            self.wanted.load(Ordering::Acquire)
        }
        fn entries_durable(&mut self, batch: DurableBatch) {
            self.batches.lock().unwrap().push(batch);
        }
    }

    /// What a streamer ships from memory is what a standby that reads the log
    /// back gets: the same entries, byte for byte, under the same first LSNs.
    #[test]
    fn a_durable_batch_handed_over_is_what_the_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let shipped = Shipped::default();
        let writer = LogWriter::start(
            storage.clone(),
            WriterConfig::default(),
            1,
            0,
            shipped.clone(),
        );
        let sender = writer.sender();
        let append = |ticket: u32| {
            let body = Some(vec![ticket as u8; 100 + ticket as usize % 300]);
            if sender.append(Append { body, ticket }).is_err() {
                panic!("the writer stopped");
            }
        };
        // Not wanted: nothing is handed over (nor copied).
        append(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while writer.progress().durable_lsn() < 1 {
            assert!(std::time::Instant::now() < deadline, "never durable");
            std::thread::yield_now();
        }
        assert!(shipped.batches.lock().unwrap().is_empty());
        shipped.wanted.store(true, Ordering::Release);
        for ticket in 1..3_000u32 {
            append(ticket);
        }
        drop(sender);
        writer.join();
        let batches = shipped.batches.lock().unwrap();
        let mut from_memory = Vec::new();
        let mut next = 2;
        for batch in batches.iter() {
            assert_eq!(batch.first_lsn(), next, "batches follow each other");
            next = batch.last_lsn() + 1;
            for (first, last, bytes) in batch.entries_after(0) {
                from_memory.push((first, last, bytes.to_vec()));
            }
        }
        assert_eq!(next, 3_001);
        let from_disk: Vec<(Lsn, Lsn, Vec<u8>)> = storage
            .read_entries_after(1, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|entry| (entry.first_lsn, entry.last_lsn, entry.bytes))
            .collect();
        assert!(from_memory.len() > 1);
        assert!(
            from_memory == from_disk,
            "the same entries as the log holds"
        );
        // Entries at or before an LSN are skipped, an entry holding it is not.
        let batch = batches.last().unwrap();
        let entries: Vec<(Lsn, Lsn)> = batch
            .entries_after(0)
            .map(|(first, last, _)| (first, last))
            .collect();
        let (first, last) = entries[0];
        assert_eq!(batch.entries_after(first).next().unwrap().0, first);
        assert_eq!(
            batch.entries_after(last).count(),
            entries.len() - 1,
            "the entry ending at the LSN is skipped"
        );
    }

    #[test]
    fn markers_complete_after_what_was_appended_before_them_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let order = Order::default();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let writer = LogWriter::start(
            storage.clone(),
            WriterConfig::default(),
            1,
            0,
            order.clone(),
        );
        let sender = writer.sender();
        let append = |body: Option<&[u8]>, ticket| {
            sender
                .append(Append {
                    body: body.map(<[u8]>::to_vec),
                    ticket,
                })
                .unwrap_or_else(|_| panic!("the writer stopped"))
        };
        append(None, 1000);
        append(Some(b"a"), 1);
        append(None, 1001);
        append(Some(b"b"), 2);
        append(None, 1002);
        drop(sender);
        writer.join();
        assert_eq!(*order.0.lock().unwrap(), vec![1000, 1, 1001, 2, 1002]);
        assert_eq!(storage.last_lsn().unwrap(), Some(2), "markers take no LSN");
    }

    #[derive(Clone, Default)]
    struct Outcomes {
        durable: Arc<Mutex<Vec<u32>>>,
        failed: Arc<Mutex<Vec<u32>>>,
    }

    impl Completion<u32> for Outcomes {
        fn durable(&mut self, tickets: &mut Vec<u32>, _last_lsn: Lsn) {
            self.durable.lock().unwrap().extend(tickets.drain(..));
        }
        fn failed(&mut self, _error: &StorageError, tickets: &mut Vec<u32>) {
            self.failed.lock().unwrap().extend(tickets.drain(..));
        }
    }

    #[test]
    fn a_failed_fsync_stops_the_writer_and_acknowledges_nothing_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let outcomes = Outcomes::default();
        let writer = LogWriter::start(
            storage.clone(),
            WriterConfig::default(),
            1,
            0,
            outcomes.clone(),
        );
        let sender = writer.sender();
        let append = |ticket: u32| {
            sender.append(Append {
                body: Some(ticket.to_le_bytes().to_vec()),
                ticket,
            })
        };
        assert!(append(1).is_ok());
        // Wait for ticket 1 to be durable before breaking the disk.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while writer.progress().durable_lsn() < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "first record never became durable"
            );
            std::thread::yield_now();
        }
        storage.fail_barriers_after(0);
        assert!(append(2).is_ok());
        // The writer stops after the failure: a later append is handed back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while writer.progress().failure().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the failure was never reported"
            );
            std::thread::yield_now();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut ticket = 3;
        while append(ticket).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "appends after the failure must be refused"
            );
            ticket += 1;
            std::thread::yield_now();
        }
        assert_eq!(*outcomes.durable.lock().unwrap(), vec![1]);
        assert_eq!(outcomes.failed.lock().unwrap().first(), Some(&2));
        assert!(writer.progress().failure().unwrap().contains("injected"));
        drop(sender);
        writer.join();
    }

    #[test]
    fn a_batch_written_after_an_outside_fail_stop_is_never_reported_durable() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let outcomes = Outcomes::default();
        let writer = LogWriter::start(storage, WriterConfig::default(), 1, 0, outcomes.clone());
        // As the disk watchdog does while a write hangs: the write that returns
        // afterwards must not acknowledge anything.
        assert!(writer.progress().fail_stop("the disk is stuck".into()));
        assert!(!writer.progress().fail_stop("a second reason".into()));
        let sender = writer.sender();
        let _ = sender.append(Append {
            body: Some(b"x".to_vec()),
            ticket: 1,
        });
        drop(sender);
        let progress = Arc::clone(writer.progress());
        writer.join();
        assert!(outcomes.durable.lock().unwrap().is_empty());
        assert_eq!(*outcomes.failed.lock().unwrap(), vec![1]);
        assert_eq!(progress.durable_lsn(), 0);
        assert_eq!(progress.failure(), Some("the disk is stuck"));
    }

    #[test]
    fn a_checkpoint_trims_the_log_it_covers() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut bytes = Vec::new();
        for lsn in 1..=3 {
            bytes.clear();
            encode_record(&mut bytes, 1, lsn, b"x");
            storage.insert_entry(lsn, &bytes).unwrap();
        }
        storage.write_checkpoint(2, &[b"state".to_vec()]).unwrap();
        assert_eq!(storage.log_tree().len(), 1);
        let mut lsns = Vec::new();
        storage
            .read_log_after::<StorageError>(2, |record| {
                lsns.push(record.lsn);
                Ok(())
            })
            .unwrap();
        assert_eq!(lsns, vec![3]);
    }

    #[test]
    fn a_gap_in_the_log_is_an_error_naming_the_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut bytes = Vec::new();
        for lsn in [1, 2, 4] {
            bytes.clear();
            encode_record(&mut bytes, 1, lsn, b"x");
            storage.insert_entry(lsn, &bytes).unwrap();
        }
        let error = storage
            .read_log_after::<StorageError>(0, |_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(error, StorageError::Corrupt { lsn: 3, .. }),
            "{error}"
        );
    }

    #[test]
    fn a_log_that_resumes_after_a_gap_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1, 150, b"x");
        storage.insert_entry(150, &bytes).unwrap();
        let error = storage
            .read_log_after::<StorageError>(100, |_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(error, StorageError::Corrupt { lsn: 101, .. }),
            "{error}"
        );
        storage
            .read_log_after::<StorageError>(149, |_| Ok(()))
            .unwrap();
    }

    #[test]
    fn nothing_follows_the_last_possible_lsn_and_a_log_ending_on_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1, u64::MAX - 1, b"x");
        encode_record(&mut bytes, 1, u64::MAX, b"y");
        storage.insert_entry(u64::MAX - 1, &bytes).unwrap();
        let mut lsns = Vec::new();
        storage
            .read_log_after::<StorageError>(u64::MAX - 2, |record| {
                lsns.push(record.lsn);
                Ok(())
            })
            .unwrap();
        assert_eq!(lsns, vec![u64::MAX - 1, u64::MAX]);
        storage
            .read_log_after::<StorageError>(u64::MAX, |_| panic!("no record after the last LSN"))
            .unwrap();
        assert!(storage
            .read_entries_after(u64::MAX, usize::MAX)
            .unwrap()
            .is_empty());
        assert_eq!(
            storage.read_entries_after(u64::MAX - 1, 1).unwrap().len(),
            1
        );
    }

    #[test]
    fn entries_ship_whole_and_a_tail_is_discarded_at_any_lsn() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut bytes = Vec::new();
        // Entries of three records each: LSNs 1-3, 4-6, 7-9.
        for first in [1u64, 4, 7] {
            bytes.clear();
            for lsn in first..first + 3 {
                encode_record(&mut bytes, 1, lsn, b"x");
            }
            storage.insert_entry(first, &bytes).unwrap();
        }
        let firsts = |after| {
            storage
                .read_entries_after(after, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|entry| entry.first_lsn)
                .collect::<Vec<_>>()
        };
        assert_eq!(firsts(0), vec![1, 4, 7]);
        assert_eq!(firsts(3), vec![4, 7]);
        assert_eq!(firsts(5), vec![4, 7], "the entry holding LSN 6 ships whole");
        assert_eq!(firsts(9), Vec::<Lsn>::new());
        assert_eq!(storage.read_entries_after(0, 1).unwrap().len(), 1);

        // A copy on another node: whole entries, checked.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Storage::open(other_dir.path(), StorageConfig::default()).unwrap();
        for entry in storage.read_entries_after(0, usize::MAX).unwrap() {
            assert_eq!(entry.last_lsn, entry.first_lsn + 2);
            let last = other.insert_replicated(entry.first_lsn, &entry.bytes);
            assert_eq!(last.unwrap(), entry.last_lsn);
        }
        let mut damaged = storage.read_entries_after(0, 1).unwrap().remove(0).bytes;
        damaged[30] ^= 1;
        assert!(other.insert_replicated(1, &damaged).is_err());

        assert_eq!(other.truncate_after(5).unwrap(), 4);
        assert_eq!(other.last_lsn().unwrap(), Some(5));
        assert_eq!(other.truncate_after(3).unwrap(), 2);
        assert_eq!(other.last_lsn().unwrap(), Some(3));
        other.clear_log_and_checkpoint().unwrap();
        assert!(other.is_empty().unwrap());
    }

    #[test]
    fn a_newer_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
            storage.set_meta_u64(b"format_version", 99).unwrap();
        }
        let error = Storage::open(dir.path(), StorageConfig::default())
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(
            message.contains("format 99") && message.contains("newer flashgate"),
            "{message}"
        );
    }

    #[test]
    fn a_value_over_the_limit_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let error = storage
            .set_meta_bytes(b"big", &vec![1; SLED_VALUE_BYTES_MAX + 1])
            .unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("sled tree meta") && message.contains("fsyncs"),
            "{message}"
        );
        assert_eq!(storage.meta_bytes(b"big").unwrap(), None);
        storage
            .set_meta_bytes(b"big", &vec![1; SLED_VALUE_BYTES_MAX])
            .unwrap();
        assert!(storage
            .insert_entry(1, &vec![0; SLED_VALUE_BYTES_MAX + 1])
            .is_err());
        assert!(storage.is_empty().unwrap());
    }

    #[test]
    fn a_record_limit_that_does_not_fit_one_entry_is_refused_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig {
            record_bytes_max: RECORD_BODY_BYTES_MAX + 1,
            ..StorageConfig::default()
        };
        let message = Storage::open(dir.path(), config).err().unwrap().to_string();
        assert!(message.contains("record_bytes_max"), "{message}");
    }

    #[test]
    #[should_panic(expected = "record body over the limit")]
    fn the_writer_refuses_a_record_body_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let (sender, receiver) = crossbeam_channel::bounded(1);
        sender
            .send(Append {
                body: Some(vec![0; RECORD_BODY_BYTES_MAX + 1]),
                ticket: 1u32,
            })
            .unwrap();
        drop(sender);
        let progress = Arc::new(LogProgress::default());
        run(
            storage,
            WriterConfig::default(),
            receiver,
            progress,
            Order::default(),
        );
    }

    /// A primary of an older build sends a whole group commit as one entry; the
    /// standby stores it as entries under the limit and ships the same records.
    #[test]
    fn a_replicated_entry_over_the_limit_is_stored_as_entries_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let mut bytes = Vec::new();
        for lsn in 1..=100 {
            encode_record(&mut bytes, 1, lsn, &[lsn as u8; 500]);
        }
        assert!(bytes.len() > SLED_VALUE_BYTES_MAX);
        assert_eq!(storage.insert_replicated(1, &bytes).unwrap(), 100);
        let shipped = storage.read_entries_after(0, usize::MAX).unwrap();
        assert!(shipped.len() > 1);
        let mut joined = Vec::new();
        for entry in &shipped {
            assert!(entry.bytes.len() <= SLED_VALUE_BYTES_MAX);
            joined.extend_from_slice(&entry.bytes);
        }
        assert!(joined == bytes, "the same records, byte for byte");
        assert_eq!(storage.last_lsn().unwrap(), Some(100));
    }

    #[test]
    fn a_large_group_commit_is_written_as_entries_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let order = Order::default();
        let writer = LogWriter::start(
            storage.clone(),
            WriterConfig::default(),
            1,
            0,
            order.clone(),
        );
        let sender = writer.sender();
        for ticket in 0..5_000u32 {
            let body = Some(vec![ticket as u8; 100 + ticket as usize % 400]);
            if sender.append(Append { body, ticket }).is_err() {
                panic!("the writer stopped");
            }
        }
        drop(sender);
        writer.join();
        assert_eq!(order.0.lock().unwrap().len(), 5_000);
        let mut entries = 0;
        for entry in storage.log_tree().iter() {
            let (_, value) = entry.unwrap();
            assert!(value.len() <= SLED_VALUE_BYTES_MAX, "{} bytes", value.len());
            entries += 1;
        }
        assert!(entries > 100, "{entries} entries");
        let mut next = 1;
        storage
            .read_log_after::<StorageError>(0, |record| {
                let ticket = (record.lsn - 1) as u32;
                assert_eq!(record.lsn, next);
                assert!(record.body == vec![ticket as u8; 100 + ticket as usize % 400]);
                next += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(next, 5_001);
    }
}
