//! Criterion benches of the pieces on the order path that need no server:
//! reservations per second of the I/O-free shard core (one hot SKU, and spread
//! over many), and encoding plus checksumming of log records.
//!
//! `cargo bench --bench core`; instructions per reservation:
//! `scripts/count-core.sh`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flashgate_actors::codec::{encode_log_entry, LogEntry};
use flashgate_actors::domain::*;

#[path = "common/core_load.rs"]
mod core_load;

use core_load::{orders, place_orders, shard_with, warm_shard_with, ORDERS};

/// `<n>_skus`: a fresh shard, whose tables grow from empty in every measured
/// run; `<n>_skus_warm`: a shard whose tables have already grown (a running
/// shard's case). See docs/PERFORMANCE.md.
fn reservations(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_reservations");
    group.throughput(Throughput::Elements(ORDERS));
    for skus in [1, 64] {
        group.bench_function(format!("{skus}_skus"), |b| {
            b.iter_batched(
                || (shard_with(skus), orders(skus)),
                |(mut core, commands)| {
                    place_orders(&mut core, commands);
                    core
                },
                BatchSize::LargeInput,
            )
        });
    }
    for skus in [1, 64] {
        group.bench_function(format!("{skus}_skus_warm"), |b| {
            b.iter_batched(
                || (warm_shard_with(skus, ORDERS), orders(skus)),
                |(mut core, commands)| {
                    place_orders(&mut core, commands);
                    core
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn log_records(c: &mut Criterion) {
    let mut core = shard_with(1);
    let mut events = core.execute(orders(1).remove(0), Timestamp(1)).events;
    let entry = LogEntry {
        shard: 0,
        seq: 1,
        event: events.remove(0),
    };
    let mut group = c.benchmark_group("log_record");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_event_and_frame", |b| {
        let mut batch = Vec::with_capacity(4096);
        b.iter(|| {
            batch.clear();
            let body = encode_log_entry(black_box(&entry));
            flashgate_storage::encode_record(&mut batch, 1, 1, &body);
            black_box(&batch);
        })
    });
    group.finish();
}

criterion_group!(benches, reservations, log_records);
criterion_main!(benches);
