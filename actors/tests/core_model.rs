//! The per-shard core against a simple model: random command sequences must give
//! the same replies and counters as the model, keep every invariant, and leave a
//! log whose replay (and whose checkpoint) rebuilds exactly the same state. This
//! is the proof that the order rules sell no unit twice and that the log is
//! enough to recover. Finished orders leave memory on `Retire` steps (a short
//! simulated retention): the test plays the shell, keeping an archive of what
//! left, and the model must still see every order, every customer's limit and
//! every idempotent retry as if nothing had left. A customer's order listing,
//! walked page by page through the memory index and the archive, must be the
//! model's orders of that customer, newest first, each once.

use std::collections::{BTreeMap, HashMap};

use flashgate_actors::domain::*;
use proptest::prelude::*;

const SKUS: [&str; 3] = ["A", "B", "C"];

#[derive(Clone, Debug)]
enum Step {
    Put {
        sku: usize,
        stock: Option<u64>,
        limit: Option<u64>,
        max_quantity: u32,
        ttl_secs: u32,
        opens_in_ms: Option<u64>,
    },
    Restock {
        sku: usize,
        quantity: u64,
    },
    Place {
        sku: usize,
        quantity: u32,
        customer: usize,
        key: Option<usize>,
    },
    /// Confirm order `index`, acting for one customer (`Some`) or for any.
    Confirm(usize, Option<usize>),
    /// Cancel order `index`, acting for one customer (`Some`) or for any.
    Cancel(usize, Option<usize>),
    /// Ship order `index` (a fulfilment call: for any customer).
    Ship(usize),
    /// Confirm (for any customer) the `k`-th (modulo) order the model holds
    /// as paid, if any: where shipping meets a payment retry. Resolved to
    /// `Confirm` before it runs.
    ConfirmPaid(usize),
    /// Ship the `k`-th (modulo) paid order, if any. Resolved to `Ship`.
    ShipPaid(usize),
    /// Change order `index` (acting for one customer or for any) to another
    /// SKU and/or quantity, under key `key`.
    Change {
        index: usize,
        actor: Option<usize>,
        sku: Option<usize>,
        quantity: Option<u32>,
        key: usize,
    },
    Expire,
    Retire,
}

/// The simulated retention: short against the steps' time advances, so
/// orders and keys leave memory during a run; a small batch, so a pass can
/// leave some behind.
const FINISHED_MS: u64 = 2_000;
const CONFIRMED_MS: u64 = 5_000;
const KEY_MS: u64 = 8_000;
const RETIRE_BATCH_MAX: usize = 3;

fn step() -> impl Strategy<Value = (Step, u64)> {
    let put = (
        0..3usize,
        prop::option::weighted(0.8, 0..12u64),
        prop::option::of(1..4u64),
        1..5u32,
        1..4u32,
        prop::option::weighted(0.2, 0..3000u64),
    )
        .prop_map(
            |(sku, stock, limit, max_quantity, ttl_secs, opens_in_ms)| Step::Put {
                sku,
                stock,
                limit,
                max_quantity,
                ttl_secs,
                opens_in_ms,
            },
        );
    let place = (0..3usize, 0..6u32, 0..4usize, prop::option::of(0..3usize)).prop_map(
        |(sku, quantity, customer, key)| Step::Place {
            sku,
            quantity,
            customer,
            key,
        },
    );
    let action = prop_oneof![
        2 => put,
        1 => (0..3usize, 0..4u64).prop_map(|(sku, quantity)| Step::Restock { sku, quantity }),
        8 => place,
        3 => (0..40usize, prop::option::of(0..4usize))
            .prop_map(|(index, actor)| Step::Confirm(index, actor)),
        2 => (0..40usize, prop::option::of(0..4usize))
            .prop_map(|(index, actor)| Step::Cancel(index, actor)),
        1 => (0..40usize).prop_map(Step::Ship),
        2 => (0..8usize).prop_map(Step::ShipPaid),
        1 => (0..8usize).prop_map(Step::ConfirmPaid),
        4 => (
            0..24usize,
            prop::option::weighted(0.2, 0..4usize),
            prop::option::of(0..3usize),
            prop::option::of(0..6u32),
            0..3usize,
        )
            .prop_map(|(index, actor, sku, quantity, key)| Step::Change {
                index,
                actor,
                sku,
                quantity,
                key,
            }),
        1 => Just(Step::Expire),
        2 => Just(Step::Retire),
    ];
    (action, 0..1500u64)
}

#[derive(Clone, Debug, PartialEq)]
struct ModelSku {
    total: u64,
    limit: Option<u64>,
    max_quantity: u32,
    ttl_secs: u32,
    opens_at: Option<u64>,
}

#[derive(Clone, Debug)]
struct ModelOrder {
    sku: usize,
    customer: usize,
    quantity: u64,
    status: OrderStatus,
    until: u64,
    key: Option<usize>,
    /// The SKU and quantity it was placed with (what its key stands for).
    placed: (usize, u64),
    /// The keys of its changes, with the SKU and quantity each asked for.
    changes: Vec<(usize, usize, u64)>,
    created: u64,
    /// When the status last changed.
    updated: u64,
    /// Left memory (then answered from the archive).
    retired: bool,
    /// Its key was forgotten: a new order may take the key.
    key_forgotten: bool,
}

/// The model: plain vectors, every answer computed from scratch.
#[derive(Default)]
struct Model {
    skus: HashMap<usize, ModelSku>,
    orders: Vec<ModelOrder>,
}

impl Model {
    fn held(&self, sku: usize, status: OrderStatus) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.sku == sku && o.status == status)
            .map(|o| o.quantity)
            .sum()
    }

    fn available(&self, sku: usize) -> u64 {
        self.skus[&sku].total - self.held(sku, OrderStatus::Reserved) - self.sold(sku)
    }

    /// Units paid for: confirmed, shipped or not.
    fn sold(&self, sku: usize) -> u64 {
        self.held(sku, OrderStatus::Confirmed) + self.held(sku, OrderStatus::Shipped)
    }

    fn held_by(&self, sku: usize, customer: usize) -> u64 {
        self.orders
            .iter()
            .filter(|o| o.sku == sku && o.customer == customer && o.status.holds_stock())
            .map(|o| o.quantity)
            .sum()
    }

    /// `ConfirmPaid` and `ShipPaid` as the plain step they pick (an expiry
    /// pass when no order is paid); every other step as it is.
    fn resolve(&self, step: &Step) -> Step {
        let paid: Vec<usize> = (0..self.orders.len())
            .filter(|&index| self.orders[index].status.is_sold())
            .collect();
        let pick = |k: usize| paid.get(k % paid.len().max(1)).copied();
        match step {
            Step::ConfirmPaid(k) => {
                pick(*k).map_or(Step::Expire, |index| Step::Confirm(index, None))
            }
            Step::ShipPaid(k) => pick(*k).map_or(Step::Expire, Step::Ship),
            other => other.clone(),
        }
    }

    /// What a change answers, and does.
    fn change(
        &mut self,
        index: usize,
        actor: Option<usize>,
        sku: Option<usize>,
        quantity: Option<u32>,
        key: usize,
        now: u64,
    ) -> Option<&'static str> {
        // Refused by the front end's parse, before any order is looked at.
        if (sku.is_none() && quantity.is_none()) || quantity == Some(0) {
            return Some("invalid_field");
        }
        let Some(order) = self
            .orders
            .get(index)
            .filter(|order| actor.is_none_or(|actor| order.customer == actor))
            .cloned()
        else {
            return Some("unknown_order");
        };
        let target = (
            sku.unwrap_or(order.sku),
            quantity.map_or(order.quantity, u64::from),
        );
        if order.retired {
            return Some("invalid_transition");
        }
        if let Some((_, sku, quantity)) = order.changes.iter().find(|(k, _, _)| *k == key) {
            return if (*sku, *quantity) == target {
                None
            } else {
                Some("idempotency_key_reused")
            };
        }
        if !matches!(order.status, OrderStatus::Reserved | OrderStatus::Confirmed)
            || (order.status == OrderStatus::Reserved && now >= order.until)
        {
            return Some("invalid_transition");
        }
        if target == (order.sku, order.quantity) {
            return None;
        }
        if order.changes.len() >= CHANGES_PER_ORDER_MAX {
            return Some("too_many_changes");
        }
        let Some(settings) = self.skus.get(&target.0).cloned() else {
            return Some("unknown_sku");
        };
        if target.1 > u64::from(settings.max_quantity) {
            return Some("invalid_field");
        }
        if settings.opens_at.is_some_and(|at| now < at) {
            return Some("sale_not_open");
        }
        let own = if target.0 == order.sku {
            order.quantity
        } else {
            0
        };
        let available = self.available(target.0) + own;
        if available == 0 {
            return Some("sold_out");
        }
        if available < target.1 {
            return Some("insufficient_stock");
        }
        if settings
            .limit
            .is_some_and(|limit| self.held_by(target.0, order.customer) - own + target.1 > limit)
        {
            return Some("limit_exceeded");
        }
        let order = &mut self.orders[index];
        order.sku = target.0;
        order.quantity = target.1;
        order.changes.push((key, target.0, target.1));
        None
    }

    /// The error code the model expects, or None for success.
    fn apply(&mut self, step: &Step, now: u64) -> Option<&'static str> {
        match step {
            Step::Put {
                sku,
                stock,
                limit,
                max_quantity,
                ttl_secs,
                opens_in_ms,
            } => {
                let settings = ModelSku {
                    total: 0,
                    limit: *limit,
                    max_quantity: *max_quantity,
                    ttl_secs: *ttl_secs,
                    opens_at: opens_in_ms.map(|ms| now + ms),
                };
                match self.skus.get_mut(sku) {
                    Some(existing) => {
                        if stock.is_some_and(|s| s != existing.total) {
                            return Some("invalid_field");
                        }
                        *existing = ModelSku {
                            total: existing.total,
                            ..settings
                        };
                    }
                    None => {
                        let Some(stock) = stock else {
                            return Some("invalid_field");
                        };
                        self.skus.insert(
                            *sku,
                            ModelSku {
                                total: *stock,
                                ..settings
                            },
                        );
                    }
                }
                None
            }
            Step::Restock { sku, quantity } => {
                let Some(existing) = self.skus.get_mut(sku) else {
                    return Some("unknown_sku");
                };
                if *quantity == 0 {
                    return Some("invalid_field");
                }
                existing.total += quantity;
                None
            }
            Step::Place {
                sku,
                quantity,
                customer,
                key,
            } => {
                if let Some(key) = key {
                    if let Some(first) = self.orders.iter().find(|o| {
                        o.customer == *customer && o.key == Some(*key) && !o.key_forgotten
                    }) {
                        return if first.placed == (*sku, u64::from(*quantity)) {
                            None
                        } else {
                            Some("idempotency_key_reused")
                        };
                    }
                }
                let Some(settings) = self.skus.get(sku).cloned() else {
                    return Some("unknown_sku");
                };
                if *quantity == 0 || *quantity > settings.max_quantity {
                    return Some("invalid_field");
                }
                if settings.opens_at.is_some_and(|at| now < at) {
                    return Some("sale_not_open");
                }
                let available = self.available(*sku);
                let quantity = u64::from(*quantity);
                if available == 0 {
                    return Some("sold_out");
                }
                if available < quantity {
                    return Some("insufficient_stock");
                }
                if settings
                    .limit
                    .is_some_and(|limit| self.held_by(*sku, *customer) + quantity > limit)
                {
                    return Some("limit_exceeded");
                }
                self.orders.push(ModelOrder {
                    sku: *sku,
                    customer: *customer,
                    quantity,
                    status: OrderStatus::Reserved,
                    until: now + u64::from(settings.ttl_secs) * 1000,
                    key: *key,
                    placed: (*sku, quantity),
                    changes: Vec::new(),
                    created: now,
                    updated: now,
                    retired: false,
                    key_forgotten: false,
                });
                None
            }
            Step::Confirm(index, actor) => {
                // Another customer's order is as good as absent.
                let Some(order) = self
                    .orders
                    .get_mut(*index)
                    .filter(|order| actor.is_none_or(|actor| order.customer == actor))
                else {
                    return Some("unknown_order");
                };
                match order.status {
                    OrderStatus::Confirmed | OrderStatus::Shipped => None,
                    OrderStatus::Cancelled | OrderStatus::Expired => Some("invalid_transition"),
                    OrderStatus::Reserved if now >= order.until => {
                        order.status = OrderStatus::Expired;
                        order.updated = now;
                        Some("invalid_transition")
                    }
                    OrderStatus::Reserved => {
                        order.status = OrderStatus::Confirmed;
                        order.updated = now;
                        None
                    }
                }
            }
            Step::Cancel(index, actor) => {
                // Another customer's order is as good as absent.
                let Some(order) = self
                    .orders
                    .get_mut(*index)
                    .filter(|order| actor.is_none_or(|actor| order.customer == actor))
                else {
                    return Some("unknown_order");
                };
                match order.status {
                    OrderStatus::Cancelled => None,
                    OrderStatus::Expired | OrderStatus::Shipped => Some("invalid_transition"),
                    // Settled: confirmed and gone from memory.
                    OrderStatus::Confirmed if order.retired => Some("invalid_transition"),
                    _ => {
                        order.status = OrderStatus::Cancelled;
                        order.updated = now;
                        None
                    }
                }
            }
            Step::Ship(index) => {
                let Some(order) = self.orders.get_mut(*index) else {
                    return Some("unknown_order");
                };
                match order.status {
                    OrderStatus::Shipped => None,
                    // Settled: confirmed and gone from memory.
                    OrderStatus::Confirmed if order.retired => Some("invalid_transition"),
                    OrderStatus::Confirmed => {
                        order.status = OrderStatus::Shipped;
                        order.updated = now;
                        None
                    }
                    _ => Some("invalid_transition"),
                }
            }
            Step::ConfirmPaid(_) | Step::ShipPaid(_) => unreachable!("resolved before it runs"),
            Step::Change {
                index,
                actor,
                sku,
                quantity,
                key,
            } => self.change(*index, *actor, *sku, *quantity, *key, now),
            Step::Expire => {
                for order in &mut self.orders {
                    if order.status == OrderStatus::Reserved && order.until <= now {
                        order.status = OrderStatus::Expired;
                        order.updated = now;
                    }
                }
                None
            }
            Step::Retire => {
                // Keys first: those of orders that left memory before this pass.
                let mut keys: Vec<(u64, String, String, usize)> = self
                    .orders
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.retired && !o.key_forgotten && o.created + KEY_MS <= now)
                    .filter_map(|(index, o)| {
                        let key = o.key?;
                        let customer = format!("customer-{}", o.customer);
                        Some((o.created + KEY_MS, customer, format!("key-{key}"), index))
                    })
                    .collect();
                keys.sort();
                let mut leaving: Vec<(u64, usize)> = self
                    .orders
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| !o.retired && o.status != OrderStatus::Reserved)
                    .map(|(index, o)| {
                        let retention = if o.status == OrderStatus::Confirmed {
                            CONFIRMED_MS
                        } else {
                            FINISHED_MS
                        };
                        (o.updated + retention, index)
                    })
                    .filter(|(at, _)| *at <= now)
                    .collect();
                leaving.sort();
                for (_, _, _, index) in keys.into_iter().take(RETIRE_BATCH_MAX) {
                    self.orders[index].key_forgotten = true;
                }
                for (_, index) in leaving.into_iter().take(RETIRE_BATCH_MAX) {
                    self.orders[index].retired = true;
                }
                None
            }
        }
    }
}

fn code(error: &CoreError) -> &'static str {
    match error {
        CoreError::SoldOut(_) => "sold_out",
        CoreError::InsufficientStock { .. } => "insufficient_stock",
        CoreError::LimitExceeded { .. } => "limit_exceeded",
        CoreError::SaleNotOpen { .. } => "sale_not_open",
        CoreError::UnknownSku(_) => "unknown_sku",
        CoreError::UnknownOrder(_) => "unknown_order",
        CoreError::InvalidTransition { .. } => "invalid_transition",
        CoreError::InvalidField(_) => "invalid_field",
        CoreError::IdempotencyKeyReused => "idempotency_key_reused",
        CoreError::OrderCapacityReached(_) => "capacity_reached",
        CoreError::TooManyChanges { .. } => "too_many_changes",
        CoreError::ChangeAcrossShards { .. } => "change_across_shards",
        CoreError::OrderBusy(_) => "order_busy",
        CoreError::Moved { .. } => "moved",
    }
}

fn config() -> ShardConfig {
    ShardConfig {
        shard: 0,
        epoch: 1,
        orders_max: 1_000,
        expiry_batch_max: 1_000,
        retention: Retention {
            finished_order_secs: FINISHED_MS / 1000,
            confirmed_order_secs: CONFIRMED_MS / 1000,
            idempotency_key_secs: KEY_MS / 1000,
            retire_batch_max: RETIRE_BATCH_MAX,
        },
    }
}

/// The shell's part, as the shard actor does it: orders that leave memory go
/// to the archive, and a command about one is answered from there.
#[derive(Default)]
struct Shell {
    archive: BTreeMap<OrderId, (Order, Vec<OrderChange>)>,
}

impl Shell {
    fn execute(&mut self, core: &mut ShardCore, command: Command, now: u64) -> Execution {
        let transition = match &command {
            Command::Confirm(confirm) => Some((OrderStatus::Confirmed, confirm.customer.clone())),
            Command::Cancel(cancel) => Some((OrderStatus::Cancelled, cancel.customer.clone())),
            Command::Ship(_) => Some((OrderStatus::Shipped, None)),
            _ => None,
        };
        let change = match &command {
            Command::ChangeOrder(change) => Some(change.customer.clone()),
            _ => None,
        };
        let mut execution = core.execute(command, Timestamp(now));
        self.take(core);
        execution.reply = match (execution.reply, transition) {
            (Err(CoreError::UnknownOrder(id)), None) if change.is_some() => {
                match self.archive.get(&id) {
                    Some((order, _)) => {
                        answer_archived_change(order.clone(), change.flatten().as_ref())
                    }
                    None => Err(CoreError::UnknownOrder(id)),
                }
            }
            (Err(CoreError::UnknownOrder(id)), Some((to, customer))) => match self.archive.get(&id)
            {
                Some((order, _)) => answer_archived(order.clone(), to, customer.as_ref()),
                None => Err(CoreError::UnknownOrder(id)),
            },
            (Ok(Reply::ArchivedOrder { id }), _) => Ok(Reply::Order {
                order: self.archive[&id].0.clone(),
                created: false,
            }),
            (reply, _) => reply,
        };
        execution
    }

    fn take(&mut self, core: &mut ShardCore) {
        for (order, changes) in core.take_retired() {
            assert!(core.order(&order.id).is_none());
            assert!(core.changes_of(&order.id).is_empty());
            self.archive.insert(order.id, (order, changes));
        }
        core.take_forgotten();
    }

    fn order(&self, core: &ShardCore, id: &OrderId) -> Option<Order> {
        core.order(id)
            .or_else(|| self.archive.get(id).map(|(order, _)| order))
            .cloned()
    }
}

fn customer_id(index: usize) -> CustomerId {
    CustomerId::parse(&format!("customer-{index}")).unwrap()
}

fn sku_id(index: usize) -> SkuId {
    SkuId::parse(SKUS[index]).unwrap()
}

fn command(step: &Step, now: u64, ids: &[OrderId]) -> Command {
    let order_id = |index: usize| {
        ids.get(index).copied().unwrap_or(OrderId {
            epoch: 1,
            shard: 0,
            number: 10_000 + index as u64,
        })
    };
    match step {
        Step::Put {
            sku,
            stock,
            limit,
            max_quantity,
            ttl_secs,
            opens_in_ms,
        } => Command::PutSku(PutSku {
            sku: sku_id(*sku),
            stock: *stock,
            settings: SkuSettings {
                per_customer_limit: *limit,
                max_quantity_per_order: *max_quantity,
                sale_starts_at: opens_in_ms.map(|ms| Timestamp(now + ms)),
                reservation_ttl_secs: *ttl_secs,
                low_stock_threshold: 0,
            },
        }),
        Step::Restock { sku, quantity } => Command::Restock(Restock {
            sku: sku_id(*sku),
            quantity: *quantity,
        }),
        Step::Place {
            sku,
            quantity,
            customer,
            key,
        } => Command::PlaceOrder(PlaceOrder {
            sku: sku_id(*sku),
            quantity: *quantity,
            customer: customer_id(*customer),
            idempotency_key: key.map(|k| IdempotencyKey::parse(&format!("key-{k}")).unwrap()),
        }),
        Step::Confirm(index, actor) => Command::Confirm(Confirm {
            id: order_id(*index),
            customer: actor.map(customer_id),
        }),
        Step::Cancel(index, actor) => Command::Cancel(Cancel {
            id: order_id(*index),
            customer: actor.map(customer_id),
        }),
        Step::Ship(index) => Command::Ship(Ship {
            id: order_id(*index),
        }),
        Step::ConfirmPaid(_) | Step::ShipPaid(_) => unreachable!("resolved before it runs"),
        Step::Change {
            index,
            actor,
            sku,
            quantity,
            key,
        } => Command::ChangeOrder(
            ChangeOrder::parse(
                order_id(*index),
                actor.map(customer_id),
                sku.map(|sku| SKUS[sku]),
                quantity.map(u64::from),
                IdempotencyKey::parse(&format!("change-{key}")).unwrap(),
            )
            .expect("refused changes never reach the core (see the run loop)"),
        ),
        Step::Expire => Command::ExpireDue(ExpireDue),
        Step::Retire => Command::Retire(Retire),
    }
}

type State = (
    Vec<SkuImage>,
    Vec<Order>,
    RetainedImage,
    Vec<KeyEntry>,
    usize,
    Vec<(OrderId, Vec<OrderChange>)>,
);

fn state_of(core: &ShardCore) -> State {
    let mut orders: Vec<Order> = core.orders().cloned().collect();
    orders.sort_by_key(|order| order.id);
    let mut keys: Vec<KeyEntry> = core
        .idempotency_keys()
        .map(|(_, entry)| entry.clone())
        .collect();
    keys.sort_by_key(|entry| entry.order);
    let mut changes: Vec<(OrderId, Vec<OrderChange>)> = core
        .changes()
        .map(|(id, history)| (*id, history.clone()))
        .collect();
    changes.sort_by_key(|(id, _)| *id);
    (
        core.sku_images(),
        orders,
        core.retained_image(),
        keys,
        core.live_order_count(),
        changes,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn core_matches_model_and_replay_rebuilds_it(steps in prop::collection::vec(step(), 1..120)) {
        let mut core = ShardCore::new(config());
        let mut shell = Shell::default();
        let mut model = Model::default();
        let mut log: Vec<Event> = Vec::new();
        let mut ids: Vec<OrderId> = Vec::new();
        let mut now = 1_000_000u64;
        for (step, advance_ms) in &steps {
            now += advance_ms;
            let step = &model.resolve(step);
            let expected = model.apply(step, now);
            if let Step::Change { sku, quantity, .. } = step {
                if (sku.is_none() && quantity.is_none()) || *quantity == Some(0) {
                    // The front end refuses it; the core never sees it.
                    prop_assert_eq!(expected, Some("invalid_field"));
                    continue;
                }
            }
            let execution = shell.execute(&mut core, command(step, now, &ids), now);
            let got = execution.reply.as_ref().err().map(code);
            prop_assert_eq!(got, expected, "step {:?} at {}", step, now);
            if let Ok(Reply::Order { order, created: true }) = &execution.reply {
                ids.push(order.id);
            }
            log.extend(execution.events);
            core.assert_consistent();
            for (index, name) in SKUS.iter().enumerate() {
                let sku = core.sku(&SkuId::parse(name).unwrap());
                match model.skus.get(&index) {
                    None => prop_assert!(sku.is_none()),
                    Some(expected) => {
                        let sku = sku.unwrap();
                        prop_assert_eq!(sku.total, expected.total);
                        prop_assert_eq!(sku.available, model.available(index));
                        prop_assert_eq!(sku.reserved, model.held(index, OrderStatus::Reserved));
                        prop_assert_eq!(sku.sold, model.sold(index));
                        // Only a SKU with a per-customer limit counts its
                        // holders; one that got its limit later counted
                        // them when it did.
                        prop_assert_eq!(sku.counts_holders(), expected.limit.is_some());
                        if !sku.counts_holders() {
                            prop_assert!(sku.held_by_customer.is_empty());
                            continue;
                        }
                        for customer in 0..4 {
                            let id = CustomerId::parse(&format!("customer-{customer}")).unwrap();
                            prop_assert_eq!(sku.held_by(&id), model.held_by(index, customer));
                        }
                    }
                }
            }
        }
        prop_assert_eq!(ids.len(), model.orders.len());
        for (id, expected) in ids.iter().zip(&model.orders) {
            prop_assert_eq!(core.order(id).is_none(), expected.retired, "order {}", id);
            prop_assert_eq!(shell.order(&core, id).unwrap().status, expected.status);
        }

        // A customer's listing, walked two at a time through the memory index
        // and the archive, is the model's orders of that customer, newest
        // first, each once, with its current status.
        for customer in 0..4 {
            let id = CustomerId::parse(&format!("customer-{customer}")).unwrap();
            let mut expected: Vec<(u64, OrderId, OrderStatus)> = ids
                .iter()
                .zip(&model.orders)
                .filter(|(_, order)| order.customer == customer)
                .map(|(id, order)| (order.created, *id, order.status))
                .collect();
            expected.sort_by_key(|order| std::cmp::Reverse((order.0, order.1)));
            let mut walked = Vec::new();
            let mut cursor = None;
            for _ in 0..=expected.len() {
                let in_memory: Vec<Order> =
                    core.customer_orders(&id, cursor, 3).into_iter().cloned().collect();
                let mut archived: Vec<Order> = shell
                    .archive
                    .values()
                    .map(|(order, _)| order)
                    .filter(|order| order.customer == id)
                    .filter(|order| cursor.is_none_or(|c| ListingPosition::of(order) < c))
                    .cloned()
                    .collect();
                archived.sort_by_key(|order| std::cmp::Reverse(ListingPosition::of(order)));
                archived.truncate(3);
                let page = customers::merge_listing(in_memory, archived, None, 2);
                prop_assert!(page.orders.len() <= 2);
                walked.extend(
                    page.orders
                        .iter()
                        .map(|order| (order.created_at.0, order.id, order.status)),
                );
                cursor = page.next;
                if cursor.is_none() {
                    break;
                }
            }
            prop_assert!(cursor.is_none(), "the walk of customer {} never ended", customer);
            prop_assert_eq!(walked, expected, "customer {}", customer);
        }

        // Replay: the events alone rebuild the same state, and archive the same
        // orders.
        let mut replayed = ShardCore::new(config());
        let mut replay_archive = Shell::default();
        for event in &log {
            replayed.apply(event).unwrap();
            replay_archive.take(&mut replayed);
        }
        replayed.assert_consistent();
        prop_assert_eq!(state_of(&replayed), state_of(&core));
        prop_assert_eq!(&replay_archive.archive, &shell.archive);

        // Checkpoint: the persisted fields alone rebuild the same state, and go on
        // numbering orders where the original left off.
        let (images, orders, retained, _, _, changes) = state_of(&core);
        let mut restored =
            ShardCore::restore(config(), core.next_order_number(), images, orders, retained).unwrap();
        restored.restore_changes(changes).unwrap();
        restored.assert_consistent();
        prop_assert_eq!(state_of(&restored), state_of(&core));
        prop_assert_eq!(restored.next_order_number(), core.next_order_number());
    }
}

#[test]
fn replay_refuses_an_event_that_would_oversell() {
    let mut core = ShardCore::new(config());
    let sku = SkuId::parse("A").unwrap();
    core.apply(&Event::SkuCreated {
        sku: sku.clone(),
        stock: 1,
        settings: SkuSettings::default(),
    })
    .unwrap();
    let order = |number| Order {
        id: OrderId {
            epoch: 1,
            shard: 0,
            number,
        },
        sku: sku.clone(),
        quantity: 1,
        customer: CustomerId::parse("c").unwrap(),
        status: OrderStatus::Reserved,
        created_at: Timestamp(0),
        reserved_until: Timestamp(1),
        updated_at: Timestamp(0),
        idempotency_key: None,
    };
    core.apply(&Event::OrderReserved(order(1))).unwrap();
    let error = core.apply(&Event::OrderReserved(order(2))).unwrap_err();
    assert!(error.0.contains("available"), "{error}");
    core.assert_consistent();
}
