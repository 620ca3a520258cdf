//! Criterion benches of the pieces on the order path that need no server:
//! reservations per second of the I/O-free shard core (one hot SKU, and spread
//! over many), and encoding plus checksumming of log records.
//!
//! `cargo bench --bench core`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flashgate_actors::codec::{encode_log_entry, LogEntry};
use flashgate_actors::domain::*;

const ORDERS: u64 = 10_000;

fn shard_with(skus: usize) -> ShardCore {
    let mut core = ShardCore::new(ShardConfig {
        shard: 0,
        epoch: 1,
        orders_max: 10_000_000,
        expiry_batch_max: 1_024,
        retention: Retention::default(),
    });
    for sku in 0..skus {
        let put = Command::PutSku(PutSku {
            sku: SkuId::parse(&format!("SKU-{sku}")).unwrap(),
            stock: Some(STOCK_MAX),
            settings: SkuSettings {
                per_customer_limit: Some(5),
                ..SkuSettings::default()
            },
        });
        core.execute(put, Timestamp(0)).reply.unwrap();
    }
    core
}

fn orders(skus: usize) -> Vec<Command> {
    (0..ORDERS)
        .map(|n| {
            Command::PlaceOrder(PlaceOrder {
                sku: SkuId::parse(&format!("SKU-{}", n as usize % skus)).unwrap(),
                quantity: 1,
                customer: CustomerId::parse(&format!("customer-{n}")).unwrap(),
                idempotency_key: None,
            })
        })
        .collect()
}

fn reservations(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_reservations");
    group.throughput(Throughput::Elements(ORDERS));
    for skus in [1, 64] {
        group.bench_function(format!("{skus}_skus"), |b| {
            b.iter_batched(
                || (shard_with(skus), orders(skus)),
                |(mut core, commands)| {
                    for command in commands {
                        black_box(core.execute(command, Timestamp(1)));
                    }
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
