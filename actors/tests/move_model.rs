//! Orders moving between two shards, with crashes between the steps of a
//! move: random sequences of orders, changes, moves, confirms, cancels and
//! expiries on two shard cores, driven as the node drives them
//! (`Node::change_order`: begin on the order's shard, adopt on the other,
//! then finish or abort). A crash drops whatever step was next, rebuilds both
//! cores from their logs alone, and ends every half-done move as recovery
//! does (`Node::resolve_moves`: finished when the other shard holds the
//! order, aborted when it does not). After every step: no SKU holds more
//! than it has (the cores assert it), no order is held by both shards once
//! moves have ended, each customer's holding stays within its limit, and the
//! units held equal the live orders' quantities.

use std::collections::{BTreeMap, BTreeSet};

use flashgate_actors::domain::*;
use proptest::prelude::*;

/// SKUs of shard 0 and of shard 1.
const SKUS: [[&str; 2]; 2] = [["a0", "a1"], ["b0", "b1"]];
const STOCK: u64 = 6;
const LIMIT: u64 = 3;

#[derive(Clone, Debug)]
enum Step {
    Place {
        shard: usize,
        sku: usize,
        quantity: u32,
        customer: usize,
    },
    /// Change order `index` to SKU `sku` of shard `to` (a move when that is
    /// not where the order is), and `quantity`; crash after `steps` of the
    /// move's steps when `crash_after` is set.
    Change {
        index: usize,
        to: usize,
        sku: usize,
        quantity: Option<u32>,
        crash_after: Option<usize>,
    },
    Confirm(usize),
    Cancel(usize),
    Expire,
    Crash,
}

fn step() -> impl Strategy<Value = (Step, u64)> {
    let action = prop_oneof![
        5 => (0..2usize, 0..2usize, 1..3u32, 0..3usize).prop_map(|(shard, sku, quantity, customer)| {
            Step::Place { shard, sku, quantity, customer }
        }),
        5 => (0..12usize, 0..2usize, 0..2usize, prop::option::of(1..4u32), prop::option::weighted(0.3, 0..3usize))
            .prop_map(|(index, to, sku, quantity, crash_after)| Step::Change {
                index, to, sku, quantity, crash_after,
            }),
        2 => (0..12usize).prop_map(Step::Confirm),
        2 => (0..12usize).prop_map(Step::Cancel),
        1 => Just(Step::Expire),
        1 => Just(Step::Crash),
    ];
    (action, 0..800u64)
}

fn config(shard: u32) -> ShardConfig {
    ShardConfig {
        shard,
        epoch: 1,
        orders_max: 1_000,
        expiry_batch_max: 1_000,
        retention: Retention::default(),
    }
}

/// Two shards and their logs, driven as the node drives them.
struct Cluster {
    cores: [ShardCore; 2],
    logs: [Vec<Event>; 2],
    /// Every order ever acknowledged, by id, with the shard that placed it.
    orders: Vec<OrderId>,
}

impl Cluster {
    fn new() -> Cluster {
        let mut cluster = Cluster {
            cores: [ShardCore::new(config(0)), ShardCore::new(config(1))],
            logs: [Vec::new(), Vec::new()],
            orders: Vec::new(),
        };
        for (shard, skus) in SKUS.iter().enumerate() {
            for sku in skus {
                let put = Command::PutSku(PutSku {
                    sku: SkuId::parse(sku).unwrap(),
                    stock: Some(STOCK),
                    settings: SkuSettings {
                        per_customer_limit: Some(LIMIT),
                        reservation_ttl_secs: 2,
                        ..SkuSettings::default()
                    },
                });
                cluster.run(shard, put, 0).unwrap();
            }
        }
        cluster
    }

    /// One command on one shard; its events go to that shard's log.
    fn run(&mut self, shard: usize, command: Command, now: u64) -> Result<Reply, CoreError> {
        let execution = self.cores[shard].execute(command, Timestamp(now));
        self.cores[shard].take_retired();
        self.cores[shard].take_forgotten();
        self.logs[shard].extend(execution.events);
        execution.reply
    }

    /// The shard holding order `id` now.
    fn holder(&self, id: &OrderId) -> usize {
        let home = id.shard as usize;
        self.cores[home].moved_to(id).map_or(home, |to| to as usize)
    }

    /// Rebuilds both cores from their logs alone, as recovery replays them.
    fn crash(&mut self) {
        for shard in 0..2 {
            let mut core = ShardCore::new(config(shard as u32));
            for event in &self.logs[shard] {
                core.apply(event).expect("the log replays");
            }
            core.take_retired();
            core.take_forgotten();
            self.cores[shard] = core;
        }
        self.resolve_moves();
    }

    /// Ends every half-done move, as `Node::resolve_moves` does.
    fn resolve_moves(&mut self) {
        for from in 0..2 {
            let pending: Vec<(OrderId, u32)> = self.cores[from]
                .pending_moves()
                .map(|(id, pending)| (*id, pending.to_shard))
                .collect();
            for (id, to) in pending {
                let adopted = self.cores[to as usize].order(&id).is_some();
                let command = if adopted {
                    Command::FinishMove(FinishMove { id })
                } else {
                    Command::AbortMove(AbortMove { id })
                };
                self.run(from, command, 0).expect("a half-done move ends");
            }
        }
    }

    /// A change as the node drives it; `crash_after` stops after that many
    /// of a move's three steps and crashes.
    #[allow(clippy::too_many_arguments)]
    fn change(
        &mut self,
        id: OrderId,
        to: usize,
        sku: SkuId,
        quantity: Option<u32>,
        key: IdempotencyKey,
        crash_after: Option<usize>,
        now: u64,
    ) {
        let from = self.holder(&id);
        if from == to {
            let _ = self.run(
                from,
                Command::ChangeOrder(ChangeOrder {
                    id,
                    customer: None,
                    sku: Some(sku),
                    quantity,
                    key,
                }),
                now,
            );
            return;
        }
        let begun = self.run(
            from,
            Command::BeginMove(BeginMove {
                id,
                customer: None,
                to_shard: to as u32,
                to_sku: sku,
                to_quantity: quantity,
                key,
            }),
            now,
        );
        let Ok(Reply::Moving { order, history }) = begun else {
            return;
        };
        if crash_after == Some(1) {
            return self.crash();
        }
        let last = history.last().unwrap();
        let adopted = Order {
            sku: last.to_sku.clone(),
            quantity: last.to_quantity,
            ..order
        };
        let adoption = self.run(
            to,
            Command::AdoptOrder(AdoptOrder {
                order: Box::new(adopted),
                history,
            }),
            now,
        );
        if crash_after == Some(2) {
            return self.crash();
        }
        let end = match adoption {
            Ok(_) => Command::FinishMove(FinishMove { id }),
            Err(_) => Command::AbortMove(AbortMove { id }),
        };
        self.run(from, end, now).expect("a move ends");
        if crash_after == Some(0) {
            self.crash();
        }
    }

    /// What must hold after every step.
    fn check(&self, moves_ended: bool) -> Result<(), TestCaseError> {
        for core in &self.cores {
            core.assert_consistent();
        }
        let held: [BTreeSet<OrderId>; 2] = [0, 1].map(|shard| {
            self.cores[shard]
                .orders()
                .filter(|order| order.status.holds_stock())
                .map(|order| order.id)
                .collect()
        });
        if moves_ended {
            prop_assert!(
                held[0].is_disjoint(&held[1]),
                "an order held by both shards: {:?}",
                held[0].intersection(&held[1]).collect::<Vec<_>>()
            );
        }
        // Every acknowledged order is somewhere: in memory where it lives.
        for id in &self.orders {
            let holder = self.holder(id);
            prop_assert!(
                self.cores[holder].order(id).is_some(),
                "order {} lost (holder {})",
                id,
                holder
            );
        }
        // Limits: per SKU and customer, never more than the limit.
        let mut per_customer: BTreeMap<(String, String), u64> = BTreeMap::new();
        for core in &self.cores {
            for order in core.orders().filter(|order| order.status.holds_stock()) {
                if core.pending_move(&order.id).is_some() {
                    continue; // Held on both sides for a moment, by design.
                }
                *per_customer
                    .entry((order.sku.to_string(), order.customer.as_str().to_owned()))
                    .or_default() += u64::from(order.quantity);
            }
        }
        for ((sku, customer), units) in per_customer {
            prop_assert!(units <= LIMIT, "{customer} holds {units} of {sku}");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn moves_between_shards_survive_crashes_between_their_steps(
        steps in prop::collection::vec(step(), 1..80)
    ) {
        let mut cluster = Cluster::new();
        let mut now = 1_000_000u64;
        let mut keys = 0;
        for (step, advance_ms) in &steps {
            now += advance_ms;
            match step {
                Step::Place { shard, sku, quantity, customer } => {
                    let command = Command::PlaceOrder(PlaceOrder {
                        sku: SkuId::parse(SKUS[*shard][*sku]).unwrap(),
                        quantity: *quantity,
                        customer: CustomerId::parse(&format!("c{customer}")).unwrap(),
                        idempotency_key: None,
                    });
                    if let Ok(Reply::Order { order, created: true }) = cluster.run(*shard, command, now) {
                        cluster.orders.push(order.id);
                    }
                }
                Step::Change { index, to, sku, quantity, crash_after } => {
                    let Some(id) = cluster.orders.get(*index).copied() else { continue };
                    keys += 1;
                    cluster.change(
                        id,
                        *to,
                        SkuId::parse(SKUS[*to][*sku]).unwrap(),
                        *quantity,
                        IdempotencyKey::parse(&format!("change-{keys}")).unwrap(),
                        *crash_after,
                        now,
                    );
                }
                Step::Confirm(index) | Step::Cancel(index) => {
                    let Some(id) = cluster.orders.get(*index).copied() else { continue };
                    let command = match step {
                        Step::Confirm(_) => Command::Confirm(Confirm { id, customer: None }),
                        _ => Command::Cancel(Cancel { id, customer: None }),
                    };
                    let holder = cluster.holder(&id);
                    let _ = cluster.run(holder, command, now);
                }
                Step::Expire => {
                    for shard in 0..2 {
                        let _ = cluster.run(shard, Command::ExpireDue(ExpireDue), now);
                    }
                }
                Step::Crash => cluster.crash(),
            }
            cluster.check(true)?;
        }
    }
}
