//! Criterion benches of the group-commit log writer with the real durability
//! barrier (sled flush + fsync) on a temp dir: `records` appends queued back to
//! back, then a wait until all of them are durable. The time per iteration is
//! the commit latency of a batch of that size; the throughput is records/s.
//!
//! 8192 records (about 1 MB) is a group commit larger than sled's blob threshold
//! (about 128 KiB) as one value: it measures splitting a group into entries that
//! sled keeps inline.
//!
//! The writer takes whatever is queued when it wakes, so a burst may be written
//! as two batches (the first record alone, then the rest): that is the real
//! writer's behaviour, not a bench artefact.
//!
//! `cargo bench --bench log`

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flashgate_storage::{
    Append, Completion, LogWriter, Lsn, Storage, StorageConfig, StorageError, WriterConfig,
};

/// About the size of one order's log record body (bincode event).
const BODY_BYTES: usize = 96;

/// Counts durable records and wakes the bench thread waiting for them.
#[derive(Clone, Default)]
struct Durable(Arc<(Mutex<u64>, Condvar)>);

impl Durable {
    fn wait_for(&self, records: u64) {
        let (count, changed) = &*self.0;
        let mut count = count.lock().expect("the lock is not poisoned");
        while *count < records {
            count = changed.wait(count).expect("the lock is not poisoned");
        }
    }
}

impl Completion<()> for Durable {
    fn durable(&mut self, tickets: &mut Vec<()>, _last_lsn: Lsn) {
        let (count, changed) = &*self.0;
        *count.lock().expect("the lock is not poisoned") += tickets.len() as u64;
        tickets.clear();
        changed.notify_all();
    }

    fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<()>) {
        panic!("the log failed during the bench: {error}");
    }
}

fn group_commit(c: &mut Criterion) {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let storage = Storage::open(data_dir.path(), StorageConfig::default()).expect("open storage");
    let durable = Durable::default();
    let writer = LogWriter::start(storage, WriterConfig::default(), 1, 0, durable.clone());
    let sender = writer.sender();
    let body = vec![0x5a; BODY_BYTES];
    let mut appended: u64 = 0;

    let mut group = c.benchmark_group("log_group_commit");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for records in [1u64, 16, 128, 1024, 8192] {
        group.throughput(Throughput::Elements(records));
        group.bench_with_input(
            BenchmarkId::from_parameter(records),
            &records,
            |b, &records| {
                b.iter_custom(|iterations| {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        for _ in 0..records {
                            let append = Append {
                                body: Some(body.clone()),
                                ticket: (),
                            };
                            if sender.append(append).is_err() {
                                panic!("the log writer stopped");
                            }
                        }
                        appended += records;
                        durable.wait_for(appended);
                    }
                    started.elapsed()
                })
            },
        );
    }
    group.finish();
    drop(sender);
    writer.join();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
