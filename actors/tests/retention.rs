//! Finished orders and idempotency keys leaving a shard's memory, with
//! simulated time: each test names the promise it checks (memory follows live
//! state; limits, retries and answers are unchanged by what left).

use std::collections::HashMap;

use flashgate_actors::domain::*;

const SECOND: u64 = 1_000;

fn config() -> ShardConfig {
    ShardConfig {
        shard: 0,
        epoch: 1,
        orders_max: 2,
        expiry_batch_max: 100,
        retention: Retention {
            finished_order_secs: 10,
            confirmed_order_secs: 60,
            idempotency_key_secs: 100,
            retire_batch_max: 1_000,
        },
    }
}

/// A core with the shell's archive around it, as the shard actor keeps it.
struct Shard {
    core: ShardCore,
    archive: HashMap<OrderId, Order>,
    log: Vec<Event>,
}

impl Shard {
    fn new(stock: u64, limit: Option<u64>) -> Shard {
        let mut shard = Shard {
            core: ShardCore::new(config()),
            archive: HashMap::new(),
            log: Vec::new(),
        };
        shard
            .run(
                Command::PutSku(PutSku {
                    sku: SkuId::parse("A").unwrap(),
                    stock: Some(stock),
                    settings: SkuSettings {
                        per_customer_limit: limit,
                        ..SkuSettings::default()
                    },
                }),
                0,
            )
            .unwrap();
        shard
    }

    fn run(&mut self, command: Command, now: u64) -> Result<Reply, CoreError> {
        let execution = self.core.execute(command, Timestamp(now));
        for (order, _) in self.core.take_retired() {
            self.archive.insert(order.id, order);
        }
        self.core.take_forgotten();
        self.log.extend(execution.events);
        self.core.assert_consistent();
        execution.reply
    }

    fn place(&mut self, customer: &str, key: Option<&str>, now: u64) -> Result<Reply, CoreError> {
        self.run(
            Command::PlaceOrder(PlaceOrder {
                sku: SkuId::parse("A").unwrap(),
                quantity: 1,
                customer: CustomerId::parse(customer).unwrap(),
                idempotency_key: key.map(|key| IdempotencyKey::parse(key).unwrap()),
            }),
            now,
        )
    }

    fn placed(&mut self, customer: &str, key: Option<&str>, now: u64) -> OrderId {
        match self.place(customer, key, now) {
            Ok(Reply::Order {
                order,
                created: true,
            }) => order.id,
            other => panic!("expected a new order, got {other:?}"),
        }
    }

    fn cancel(&mut self, id: OrderId, now: u64) -> Result<Reply, CoreError> {
        self.run(Command::Cancel(Cancel { id, customer: None }), now)
    }

    fn retire(&mut self, now: u64) {
        self.run(Command::Retire(Retire), now).unwrap();
    }
}

/// Place + cancel churn on one unit leaves memory holding only what is live
/// (plus the retention window), while every order stays answerable from the
/// archive with its last status.
#[test]
fn churn_leaves_memory_after_the_retention_and_stays_answerable() {
    let mut shard = Shard::new(1, None);
    let mut ids = Vec::new();
    for cycle in 0..1_000 {
        let now = cycle * SECOND;
        let id = shard.placed("alice", None, now);
        shard.cancel(id, now).unwrap();
        ids.push(id);
        shard.retire(now);
        // Orders finished within the last 10 s stay; older ones are gone.
        assert!(
            shard.core.order_count() <= 11,
            "{}",
            shard.core.order_count()
        );
    }
    assert_eq!(shard.core.live_order_count(), 0);
    for id in &ids[..900] {
        assert!(shard.core.order(id).is_none());
        assert_eq!(shard.archive[id].status, OrderStatus::Cancelled);
    }
    // The cap counts live orders only: history never refuses a buyer.
    shard.placed("bob", None, 1_000 * SECOND);
}

/// A settled order (confirmed, then gone from memory) still counts toward
/// its customer's limit, across a checkpoint and a replay too; it can no
/// longer be cancelled.
#[test]
fn settled_units_count_toward_the_customer_limit_after_they_leave_memory() {
    let mut shard = Shard::new(10, Some(2));
    let first = shard.placed("alice", None, 0);
    shard
        .run(
            Command::Confirm(Confirm {
                id: first,
                customer: None,
            }),
            0,
        )
        .unwrap();
    let second = shard.placed("alice", None, 0);
    shard
        .run(
            Command::Confirm(Confirm {
                id: second,
                customer: None,
            }),
            0,
        )
        .unwrap();
    shard.retire(61 * SECOND);
    assert!(shard.core.order(&first).is_none() && shard.core.order(&second).is_none());
    assert_eq!(shard.core.live_order_count(), 0);
    let refused = shard.place("alice", None, 62 * SECOND);
    assert!(
        matches!(refused, Err(CoreError::LimitExceeded { held: 2, .. })),
        "{refused:?}"
    );
    // The core no longer knows the order; the archive answers, and a settled
    // order is not cancelled.
    assert_eq!(
        shard.cancel(first, 62 * SECOND),
        Err(CoreError::UnknownOrder(first))
    );
    assert!(matches!(
        answer_archived(shard.archive[&first].clone(), OrderStatus::Cancelled, None),
        Err(CoreError::InvalidTransition { .. })
    ));

    let image = shard.core.retained_image();
    let restored = ShardCore::restore(
        config(),
        shard.core.next_order_number(),
        shard.core.sku_images(),
        shard.core.orders().cloned(),
        image,
    )
    .unwrap();
    restored.assert_consistent();
    let alice = CustomerId::parse("alice").unwrap();
    let sku = SkuId::parse("A").unwrap();
    assert_eq!(restored.sku(&sku).unwrap().held_by(&alice), 2);
    let mut replayed = ShardCore::new(config());
    for event in &shard.log {
        replayed.apply(event).unwrap();
    }
    assert_eq!(replayed.sku(&sku).unwrap().held_by(&alice), 2);
    assert_eq!(replayed.retained_image(), shard.core.retained_image());
}

/// A SKU without a per-customer limit counts no holders; a limit set later
/// counts what each customer already holds, settled units included, in the
/// live core and in a replay of its log alike.
#[test]
fn a_limit_set_later_counts_what_customers_already_hold() {
    let mut shard = Shard::new(10, None);
    let settled = shard.placed("alice", None, 0);
    shard
        .run(
            Command::Confirm(Confirm {
                id: settled,
                customer: None,
            }),
            0,
        )
        .unwrap();
    shard.retire(61 * SECOND);
    assert!(shard.core.order(&settled).is_none());
    shard.placed("alice", None, 61 * SECOND);
    let sku = SkuId::parse("A").unwrap();
    let alice = CustomerId::parse("alice").unwrap();
    assert!(shard.core.sku(&sku).unwrap().held_by_customer.is_empty());

    let limit = |limit: Option<u64>| {
        Command::PutSku(PutSku {
            sku: SkuId::parse("A").unwrap(),
            stock: None,
            settings: SkuSettings {
                per_customer_limit: limit,
                ..SkuSettings::default()
            },
        })
    };
    shard.run(limit(Some(2)), 62 * SECOND).unwrap();
    assert_eq!(shard.core.sku(&sku).unwrap().held_by(&alice), 2);
    let refused = shard.place("alice", None, 62 * SECOND);
    assert!(
        matches!(refused, Err(CoreError::LimitExceeded { held: 2, .. })),
        "{refused:?}"
    );
    let mut replayed = ShardCore::new(config());
    for event in &shard.log {
        replayed.apply(event).unwrap();
    }
    replayed.assert_consistent();
    assert_eq!(replayed.sku(&sku).unwrap().held_by(&alice), 2);

    // Without the limit again, the holders are dropped, and buyers are not
    // held to it.
    shard.run(limit(None), 63 * SECOND).unwrap();
    assert!(shard.core.sku(&sku).unwrap().held_by_customer.is_empty());
    let cancelled = shard
        .core
        .orders()
        .find(|order| order.status == OrderStatus::Reserved);
    let cancelled = cancelled.unwrap().id;
    shard.cancel(cancelled, 63 * SECOND).unwrap();
    shard.placed("alice", None, 63 * SECOND);
}

/// A retry with an idempotency key gets the same order back after the order
/// left memory, for the key's retention; after it, the key makes a new order.
#[test]
fn a_key_outlives_its_order_in_memory_for_its_retention() {
    let mut shard = Shard::new(5, None);
    let id = shard.placed("alice", Some("k1"), 0);
    shard.cancel(id, SECOND).unwrap();
    shard.retire(20 * SECOND);
    assert!(shard.core.order(&id).is_none());
    assert_eq!(
        shard.place("alice", Some("k1"), 30 * SECOND),
        Ok(Reply::ArchivedOrder { id })
    );
    // A reuse for a different request is still refused.
    let reused = shard.run(
        Command::PlaceOrder(PlaceOrder {
            sku: SkuId::parse("A").unwrap(),
            quantity: 2,
            customer: CustomerId::parse("alice").unwrap(),
            idempotency_key: Some(IdempotencyKey::parse("k1").unwrap()),
        }),
        30 * SECOND,
    );
    assert_eq!(reused, Err(CoreError::IdempotencyKeyReused));
    shard.retire(99 * SECOND);
    assert!(shard
        .core
        .idempotency_key(
            &CustomerId::parse("alice").unwrap(),
            &IdempotencyKey::parse("k1").unwrap()
        )
        .is_some());
    shard.retire(100 * SECOND);
    let again = shard.placed("alice", Some("k1"), 101 * SECOND);
    assert_ne!(again, id);
}
