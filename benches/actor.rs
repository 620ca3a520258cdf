//! Criterion benches of one request's round trip through `Node` to its shard
//! actor and back, on a fresh data dir with the real durable log:
//!
//! - `actor_round_trip/place_order`: send → shard decides → log record written,
//!   flushed and fsynced → reply. One request at a time, so every order pays a
//!   whole fsync of its own (no group commit to share it with).
//! - `actor_round_trip/sku_read`: `Node::sku`, which only waits for durability
//!   of what its shard has pending; with nothing pending it is the bare actor
//!   round trip (HTTP-free, disk-free).
//!
//! `cargo bench --bench actor`

use std::time::Instant;

use actix_web::rt::System;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flashgate_actors::domain::{CustomerId, PlaceOrder};

mod common;

use common::sku_id;

fn round_trip(c: &mut Criterion) {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let system = System::new();
    let (node, runtime) = common::start_node(&system, data_dir.path());

    let mut group = c.benchmark_group("actor_round_trip");
    group.throughput(Throughput::Elements(1));
    common::configure_group(&mut group);
    let mut customer: u64 = 0;
    group.bench_function("place_order", |b| {
        b.iter_custom(|iterations| {
            system.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    customer += 1;
                    let command = PlaceOrder {
                        sku: sku_id(customer as usize),
                        quantity: 1,
                        customer: CustomerId::parse(&format!("customer-{customer}"))
                            .expect("a valid customer id"),
                        idempotency_key: None,
                    };
                    node.place_order(command)
                        .await
                        .expect("the order is placed");
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("sku_read", |b| {
        b.iter_custom(|iterations| {
            system.block_on(async {
                let started = Instant::now();
                for n in 0..iterations {
                    node.sku(sku_id(n as usize)).await.expect("the SKU exists");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    drop(node);
    runtime.stop();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
