//! The order core's work per reservation, counted in instructions: the same
//! load as `cargo bench --bench core` (`core_reservations`), run once, so that
//! `valgrind --tool=callgrind` counts only the loop of `place_orders`. Unlike
//! a wall-clock figure on a shared machine, the count repeats run to run.
//!
//! ```text
//! cargo build --release -p flashgate-actors --example core_instructions
//! valgrind --tool=callgrind --toggle-collect='*place_orders*' \
//!     target/release/examples/core_instructions [skus] [orders]
//! ```
//!
//! `scripts/count-core.sh` runs both bench cases and prints instructions per
//! reservation. With a third argument, `rounds`, it also times that many
//! rounds (a fresh shard each) and prints the fastest and the median: on a
//! machine shared with other work the fastest round is the one least
//! disturbed.

use std::hint::black_box;

use flashgate_actors::domain::*;

fn shard_with(skus: usize, orders: u64) -> ShardCore {
    let mut core = ShardCore::new(ShardConfig {
        shard: 0,
        epoch: 1,
        orders_max: usize::try_from(orders).unwrap_or(usize::MAX).max(1),
        expiry_batch_max: 1_024,
        retention: Retention::default(),
    });
    for sku in 0..skus {
        let put = Command::PutSku(PutSku {
            sku: SkuId::parse(&format!("SKU-{sku}")).expect("a valid SKU id"),
            stock: Some(STOCK_MAX),
            settings: SkuSettings {
                per_customer_limit: Some(5),
                ..SkuSettings::default()
            },
        });
        core.execute(put, Timestamp(0))
            .reply
            .expect("the SKU is created");
    }
    core
}

fn orders(skus: usize, count: u64) -> Vec<Command> {
    (0..count)
        .map(|n| {
            Command::PlaceOrder(PlaceOrder {
                sku: SkuId::parse(&format!("SKU-{}", n as usize % skus)).expect("a valid SKU id"),
                quantity: 1,
                customer: CustomerId::parse(&format!("customer-{n}")).expect("a valid customer id"),
                idempotency_key: None,
            })
        })
        .collect()
}

/// The measured loop: what one criterion iteration of `core_reservations` runs.
#[inline(never)]
fn place_orders(core: &mut ShardCore, commands: Vec<Command>) {
    for command in commands {
        black_box(core.execute(command, Timestamp(1)));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let skus: usize = args
        .next()
        .map_or(1, |a| a.parse().expect("skus: a number"));
    let count: u64 = args
        .next()
        .map_or(10_000, |a| a.parse().expect("orders: a number"));
    let rounds: usize = args
        .next()
        .map_or(1, |a| a.parse().expect("rounds: a number"));
    let skus = skus.max(1);
    let mut nanos_per_order = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let mut core = shard_with(skus, count);
        let commands = orders(skus, count);
        let started = std::time::Instant::now();
        place_orders(&mut core, commands);
        nanos_per_order.push(started.elapsed().as_nanos() as f64 / count as f64);
        assert_eq!(
            core.live_order_count() as u64,
            count,
            "every order reserved"
        );
    }
    nanos_per_order.sort_by(f64::total_cmp);
    let fastest = nanos_per_order[0];
    let median = nanos_per_order[nanos_per_order.len() / 2];
    println!(
        "{count} reservations over {skus} skus, {} rounds: fastest {fastest:.0} ns per reservation ({:.2} M/s), median {median:.0} ns ({:.2} M/s)",
        nanos_per_order.len(),
        1_000.0 / fastest,
        1_000.0 / median,
    );
}
