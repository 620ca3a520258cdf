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
//! reservation.

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
                customer: CustomerId::parse(&format!("customer-{n}"))
                    .expect("a valid customer id"),
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
    let skus: usize = args.next().map_or(1, |a| a.parse().expect("skus: a number"));
    let count: u64 = args
        .next()
        .map_or(10_000, |a| a.parse().expect("orders: a number"));
    let mut core = shard_with(skus.max(1), count);
    let commands = orders(skus.max(1), count);
    place_orders(&mut core, commands);
    assert_eq!(core.live_order_count() as u64, count, "every order reserved");
    println!("{count} reservations over {skus} skus");
}
