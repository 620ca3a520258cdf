//! Restart cost without a server: builds a data dir of a given shape straight
//! through the core and the log writer, then times what `Node::start` does
//! with it before the node takes traffic (open the storage, load the
//! checkpoint, replay the log after it, verify every shard).
//!
//! ```sh
//! # 1,000,000 orders: 900,000 in a checkpoint, the last 100,000 in the log after it
//! cargo run --release -p flashgate-actors --example recovery -- generate DIR 1000000 100000
//! # the same orders, all in the log (a crash before any checkpoint)
//! cargo run --release -p flashgate-actors --example recovery -- generate DIR 1000000 1000000
//! # open + recover + verify, 5 times; prints each run and the medians
//! cargo run --release -p flashgate-actors --example recovery -- recover DIR 5
//! ```
//!
//! The data dir has the shape `scripts/bench-restart.sh` gives one through
//! HTTP: 2 shards, 8 SKUs, one unit per order, a distinct customer per order,
//! every order still reserved. `flashgate serve --data-dir DIR` starts on it.
//! Under `valgrind --tool=callgrind`, `recover DIR 1` counts the instructions
//! of one restart.

use std::path::Path;
use std::time::{Duration, Instant};

use flashgate_actors::codec::{encode_log_entry, LogEntry};
use flashgate_actors::domain::{
    Command, CustomerId, PlaceOrder, PutSku, Retention, ShardConfig, ShardCore, SkuId, SkuSettings,
    Timestamp,
};
use flashgate_actors::recovery::{recover, verify};
use flashgate_actors::shard_actor::snapshot_chunks;
use flashgate_storage::{Append, Completion, LogWriter, Lsn, Storage, StorageConfig, StorageError};

const SHARDS: u32 = 2;
const SKUS: usize = 8;
const SKU_STOCK: u64 = 100_000_000;

fn shard_configs() -> Vec<ShardConfig> {
    (0..SHARDS)
        .map(|shard| ShardConfig {
            shard,
            epoch: 1,
            orders_max: 20_000_000,
            expiry_batch_max: 4_096,
            retention: Retention::default(),
        })
        .collect()
}

/// Counts nothing: the writer's `join` waits for everything queued.
struct Ignore;

impl Completion<()> for Ignore {
    fn durable(&mut self, tickets: &mut Vec<()>, _last_lsn: Lsn) {
        tickets.clear();
    }

    fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<()>) {
        panic!("the log failed while generating: {error}");
    }
}

fn usage() -> ! {
    eprintln!("usage: recovery generate DIR ORDERS LOGGED | recovery recover DIR [RUNS]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize, default: Option<u64>| -> u64 {
        match args.get(index) {
            Some(value) => value.parse().unwrap_or_else(|_| usage()),
            None => default.unwrap_or_else(|| usage()),
        }
    };
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("generate"), Some(dir)) => generate(Path::new(dir), number(2, None), number(3, None)),
        (Some("recover"), Some(dir)) => time_recoveries(Path::new(dir), number(2, Some(5))),
        _ => usage(),
    }
}

/// Places `orders` orders; all but the last `logged` are only in a
/// checkpoint (their log records trimmed, as after a checkpoint), the rest are
/// log records after it. With `logged == orders` there is no checkpoint and
/// the SKUs' creation is logged too.
fn generate(dir: &Path, orders: u64, logged: u64) {
    assert!(logged <= orders, "LOGGED must be at most ORDERS");
    let storage = Storage::open(dir, StorageConfig::default()).expect("open the data dir");
    assert!(
        storage.last_lsn().expect("read the log").is_none(),
        "{} already holds a log",
        dir.display()
    );
    storage
        .set_meta_u64(b"shard_count", u64::from(SHARDS))
        .expect("store the shard count");
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let mut cores: Vec<ShardCore> = shard_configs().into_iter().map(ShardCore::new).collect();
    let mut seqs = vec![0u64; SHARDS as usize];
    let mut unlogged: Vec<LogEntry> = Vec::new();
    let mut logged_entries: Vec<LogEntry> = Vec::new();
    let mut execute = |command: Command, sku: &SkuId, to_log: bool| {
        let shard = (sku.stable_hash() % u64::from(SHARDS)) as usize;
        let execution = cores[shard].execute(command, now);
        execution.reply.expect("the generated command succeeds");
        for event in execution.events {
            seqs[shard] += 1;
            let entry = LogEntry {
                shard: shard as u32,
                seq: seqs[shard],
                event,
            };
            if to_log {
                logged_entries.push(entry);
            } else {
                unlogged.push(entry);
            }
        }
    };
    let skus: Vec<SkuId> = (0..SKUS)
        .map(|index| SkuId::parse(&format!("BENCH-{index}")).expect("a valid sku id"))
        .collect();
    for sku in &skus {
        let put = Command::PutSku(PutSku {
            sku: sku.clone(),
            stock: Some(SKU_STOCK),
            settings: SkuSettings::default(),
        });
        execute(put, sku, logged == orders);
    }
    for number in 0..orders {
        let sku = &skus[number as usize % SKUS];
        let place = Command::PlaceOrder(PlaceOrder {
            sku: sku.clone(),
            quantity: 1,
            customer: CustomerId::parse(&format!("c-{number}")).expect("a valid customer id"),
            idempotency_key: None,
        });
        execute(place, sku, number >= orders - logged);
    }
    let mut last_lsn = 0;
    if logged < orders {
        // The checkpoint reflects the state before the logged orders: rebuild
        // it from the events up to there (the records it covers are trimmed).
        let mut seqs = vec![0u64; SHARDS as usize];
        let mut at_checkpoint: Vec<ShardCore> =
            shard_configs().into_iter().map(ShardCore::new).collect();
        for entry in &unlogged {
            seqs[entry.shard as usize] = entry.seq;
            at_checkpoint[entry.shard as usize]
                .apply(&entry.event)
                .expect("the generated events apply");
        }
        let chunks: Vec<Vec<u8>> = at_checkpoint
            .iter()
            .zip(&seqs)
            .flat_map(|(core, seq)| snapshot_chunks(core, *seq))
            .collect();
        last_lsn = unlogged.len() as Lsn;
        storage
            .write_checkpoint(last_lsn, &chunks)
            .expect("write the checkpoint");
    }
    let writer = LogWriter::start(storage.clone(), Default::default(), 1, last_lsn, Ignore);
    let sender = writer.sender();
    for entry in &logged_entries {
        let append = Append {
            body: Some(encode_log_entry(entry)),
            ticket: (),
        };
        assert!(sender.append(append).is_ok(), "the log writer stopped");
    }
    drop(sender);
    writer.join();
    println!(
        "{}: {orders} orders, {} log records after a checkpoint of {} orders",
        dir.display(),
        logged_entries.len(),
        orders - logged
    );
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Opens, recovers and verifies `runs` times; prints each run and the medians.
fn time_recoveries(dir: &Path, runs: u64) {
    let phases = ["open", "checkpoint", "replay", "verify", "total"];
    let mut figures: Vec<Vec<f64>> = vec![Vec::new(); phases.len()];
    for run in 1..=runs.max(1) {
        let started = Instant::now();
        let storage = Storage::open(dir, StorageConfig::default()).expect("open the data dir");
        let open = started.elapsed();
        let recovered = recover(&storage, shard_configs()).expect("recover the data dir");
        let verify_elapsed = verify(&recovered.cores);
        let total = started.elapsed();
        let orders: usize = recovered.cores.iter().map(ShardCore::order_count).sum();
        let run_figures = [
            open,
            recovered.checkpoint_elapsed,
            recovered.replay_elapsed,
            verify_elapsed,
            total,
        ];
        let line: Vec<String> = phases
            .iter()
            .zip(run_figures)
            .map(|(phase, elapsed)| format!("{phase}_ms={:.0}", millis(elapsed)))
            .collect();
        println!(
            "run {run}: orders={orders} replayed_records={} {}",
            recovered.replayed_records,
            line.join(" ")
        );
        for (figure, elapsed) in figures.iter_mut().zip(run_figures) {
            figure.push(millis(elapsed));
        }
        if run == runs.max(1) {
            // A node keeps what it recovered: the last run's freeing is no
            // part of a restart, so an instruction count leaves it out.
            std::mem::forget(recovered);
        }
    }
    let medians: Vec<String> = phases
        .iter()
        .zip(figures)
        .map(|(phase, values)| format!("{phase}_ms={:.0}", median(values)))
        .collect();
    println!("median: {}", medians.join(" "));
}
