//! The load of the order core's benches, shared by `benches/core.rs`
//! (criterion, wall clock) and `examples/core_instructions.rs` (one run, for
//! callgrind's instruction count): SKUs with a per-customer limit, and orders
//! of one unit, each for a distinct customer, spread over the SKUs.

use std::hint::black_box;

use flashgate_actors::domain::*;

/// Orders in one measured run.
pub const ORDERS: u64 = 10_000;

/// When the measured orders are placed.
pub const NOW: Timestamp = Timestamp(60_000);

/// A fresh shard with `skus` SKUs: every table of the shard grows from empty
/// during the measured run.
pub fn shard_with(skus: usize) -> ShardCore {
    let mut core = ShardCore::new(ShardConfig {
        shard: 0,
        epoch: 1,
        orders_max: 10_000_000,
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

/// A shard with `skus` SKUs whose tables have already grown for `orders`
/// orders, as a running shard's have: that many earlier orders were placed,
/// cancelled and left memory. The measured run then pays for deciding orders,
/// not for growing tables from empty.
pub fn warm_shard_with(skus: usize, orders: u64) -> ShardCore {
    let mut core = shard_with(skus);
    let placed: Vec<OrderId> = place_orders_of(&mut core, "earlier", skus, orders, Timestamp(0));
    for id in placed {
        let cancel = Command::Cancel(Cancel { id, customer: None });
        core.execute(cancel, Timestamp(0))
            .reply
            .expect("the earlier order is cancelled");
    }
    let retire = core.execute(Command::Retire(Retire), Timestamp(NOW.0 - 1));
    assert!(
        matches!(retire.reply, Ok(Reply::Retired { orders: n, .. }) if n as u64 == orders),
        "every earlier order left memory"
    );
    drop(core.take_retired());
    assert_eq!(core.order_count(), 0);
    core
}

fn place_orders_of(
    core: &mut ShardCore,
    prefix: &str,
    skus: usize,
    count: u64,
    now: Timestamp,
) -> Vec<OrderId> {
    orders_of(prefix, skus, count)
        .into_iter()
        .map(|command| match core.execute(command, now).reply {
            Ok(Reply::Order { order, .. }) => order.id,
            other => panic!("an earlier order was refused: {other:?}"),
        })
        .collect()
}

fn orders_of(prefix: &str, skus: usize, count: u64) -> Vec<Command> {
    (0..count)
        .map(|n| {
            Command::PlaceOrder(PlaceOrder {
                sku: SkuId::parse(&format!("SKU-{}", n as usize % skus)).expect("a valid SKU id"),
                quantity: 1,
                customer: CustomerId::parse(&format!("{prefix}-{n}")).expect("a valid customer id"),
                idempotency_key: None,
            })
        })
        .collect()
}

/// The measured orders: `ORDERS` of them, one unit each for customers
/// `customer-<n>`, spread over `skus` SKUs.
pub fn orders(skus: usize) -> Vec<Command> {
    orders_of("customer", skus, ORDERS)
}

/// The measured loop: every command decided and applied at `NOW`, its
/// result dropped. The result is kept from being optimised away by reference:
/// `black_box` by value would copy it twice more.
#[inline(never)]
pub fn place_orders(core: &mut ShardCore, commands: Vec<Command>) {
    for command in commands {
        let execution = core.execute(command, NOW);
        black_box(&execution);
    }
}
