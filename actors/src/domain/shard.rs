//! One shard's state: its SKUs and their orders. Commands decide (see `command/`),
//! events change state (here). Live execution and replay share `apply`, so a
//! replayed log rebuilds exactly the state the primary had.

use std::collections::{BTreeSet, HashMap};

use bincode::{Decode, Encode};

use super::command::{Command, CoreError, Reply};
use super::event::Event;
use super::order::{Order, OrderStatus};
use super::sku::{Sku, SkuSettings};
use super::types::{CustomerId, IdempotencyKey, OrderId, SkuId, Timestamp};

/// Limits and identity of one shard.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// This shard's index; new order ids carry it.
    pub shard: u32,
    /// The node's current epoch; new order ids carry it.
    pub epoch: u64,
    /// Most orders (of any status) the shard keeps; beyond it, new orders are refused.
    pub orders_max: usize,
    /// Most reservations one expiry pass expires, so a pass never stalls the shard.
    pub expiry_batch_max: usize,
}

/// The result of one command: the reply for the caller, and the events to log.
/// State already reflects the events; the caller must log them before it tells
/// anyone the reply.
#[derive(Debug)]
pub struct Execution {
    pub reply: Result<Reply, CoreError>,
    pub events: Vec<Event>,
}

/// An event that does not fit the state it is applied to: the log is corrupt or
/// was written by a different history. Replay stops on it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event does not fit the shard's state: {0}")]
pub struct InconsistentEvent(pub String);

fn inconsistent(message: impl Into<String>) -> InconsistentEvent {
    InconsistentEvent(message.into())
}

/// A SKU's persistent fields, as checkpoints store them. Per-customer holdings
/// are derived from orders on restore.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SkuImage {
    pub id: SkuId,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    pub settings: SkuSettings,
}

pub struct ShardCore {
    config: ShardConfig,
    skus: HashMap<SkuId, Sku>,
    orders: HashMap<OrderId, Order>,
    by_idempotency_key: HashMap<(CustomerId, IdempotencyKey), OrderId>,
    /// Reserved orders by expiry time.
    expiry_queue: BTreeSet<(Timestamp, OrderId)>,
    next_order_number: u64,
}

impl ShardCore {
    pub fn new(config: ShardConfig) -> ShardCore {
        assert!(config.orders_max > 0);
        assert!(config.expiry_batch_max > 0);
        ShardCore {
            config,
            skus: HashMap::new(),
            orders: HashMap::new(),
            by_idempotency_key: HashMap::new(),
            expiry_queue: BTreeSet::new(),
            next_order_number: 1,
        }
    }

    pub fn config(&self) -> &ShardConfig {
        &self.config
    }

    /// A new epoch (after a promotion): new order ids carry it.
    pub fn set_epoch(&mut self, epoch: u64) {
        assert!(epoch >= self.config.epoch, "epochs only grow");
        self.config.epoch = epoch;
    }

    pub fn sku(&self, id: &SkuId) -> Option<&Sku> {
        self.skus.get(id)
    }

    pub fn skus(&self) -> impl Iterator<Item = &Sku> {
        self.skus.values()
    }

    pub fn order(&self, id: &OrderId) -> Option<&Order> {
        self.orders.get(id)
    }

    pub fn orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.values()
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    pub fn order_by_idempotency_key(
        &self,
        customer: &CustomerId,
        key: &IdempotencyKey,
    ) -> Option<&Order> {
        let id = self
            .by_idempotency_key
            .get(&(customer.clone(), key.clone()))?;
        self.orders.get(id)
    }

    /// The earliest instant at which a reservation is due to expire.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiry_queue.first().map(|(at, _)| *at)
    }

    pub(crate) fn allocate_order_id(&mut self) -> OrderId {
        let id = OrderId {
            epoch: self.config.epoch,
            shard: self.config.shard,
            number: self.next_order_number,
        };
        self.next_order_number += 1;
        id
    }

    pub(crate) fn orders_max(&self) -> usize {
        self.config.orders_max
    }

    pub(crate) fn expiry_batch_max(&self) -> usize {
        self.config.expiry_batch_max
    }

    pub(crate) fn due_reservations(&self, now: Timestamp) -> impl Iterator<Item = OrderId> + '_ {
        self.expiry_queue
            .iter()
            .take_while(move |(at, _)| *at <= now)
            .map(|(_, id)| *id)
    }

    /// Decides a command at `now`, applies its events, and returns the reply and
    /// the events to log. Panics if an invariant breaks: no reply may leave the
    /// shard oversold.
    pub fn execute(&mut self, command: Command, now: Timestamp) -> Execution {
        let (reply, events) = command.decide(self, now);
        // A command's decision allocated order numbers it may not use (a refused
        // order); that is fine, numbers only need to be unique.
        Execution { reply, events }
    }

    /// Applies one event. Live execution reaches here through `execute` with
    /// events it just decided; replay reaches here with events from the log.
    pub fn apply(&mut self, event: &Event) -> Result<(), InconsistentEvent> {
        match event {
            Event::SkuCreated {
                sku,
                stock,
                settings,
            } => {
                if self.skus.contains_key(sku) {
                    return Err(inconsistent(format!("sku {sku} created twice")));
                }
                let created = Sku::new(sku.clone(), *stock, settings.clone());
                created.assert_invariants();
                self.skus.insert(sku.clone(), created);
            }
            Event::SkuSettingsChanged { sku, settings } => {
                self.sku_mut(sku)?.settings = settings.clone();
            }
            Event::Restocked { sku, quantity } => {
                let sku = self.sku_mut(sku)?;
                sku.total += quantity;
                sku.available += quantity;
                sku.assert_invariants();
            }
            Event::OrderReserved(order) => self.apply_reserved(order)?,
            Event::OrderConfirmed { id, at } => {
                let (sku, quantity, _) = self.transition(id, OrderStatus::Confirmed, *at)?;
                let sku = self.sku_mut(&sku)?;
                sku.reserved -= quantity;
                sku.sold += quantity;
                sku.assert_invariants();
            }
            Event::OrderCancelled { id, at } => {
                let from = self.status_of(id)?;
                let (sku, quantity, customer) = self.transition(id, OrderStatus::Cancelled, *at)?;
                let sku = self.sku_mut(&sku)?;
                match from {
                    OrderStatus::Reserved => sku.reserved -= quantity,
                    OrderStatus::Confirmed => sku.sold -= quantity,
                    _ => unreachable!("transition() allows cancel only from reserved or confirmed"),
                }
                sku.available += quantity;
                sku.release(&customer, quantity);
                sku.assert_invariants();
            }
            Event::OrderExpired { id, at } => {
                let (sku, quantity, customer) = self.transition(id, OrderStatus::Expired, *at)?;
                let sku = self.sku_mut(&sku)?;
                sku.reserved -= quantity;
                sku.available += quantity;
                sku.release(&customer, quantity);
                sku.assert_invariants();
            }
        }
        Ok(())
    }

    fn apply_reserved(&mut self, order: &Order) -> Result<(), InconsistentEvent> {
        if order.status != OrderStatus::Reserved {
            return Err(inconsistent(format!(
                "order {} logged as new but not reserved",
                order.id
            )));
        }
        if self.orders.contains_key(&order.id) {
            return Err(inconsistent(format!("order {} reserved twice", order.id)));
        }
        let quantity = u64::from(order.quantity);
        let sku = self.sku_mut(&order.sku)?;
        if sku.available < quantity {
            return Err(inconsistent(format!(
                "order {} reserves {} of sku {} with only {} available",
                order.id, quantity, order.sku, sku.available
            )));
        }
        sku.available -= quantity;
        sku.reserved += quantity;
        sku.hold(&order.customer, quantity);
        sku.assert_invariants();
        self.index_order(order);
        self.orders.insert(order.id, order.clone());
        Ok(())
    }

    /// Keeps the derived indexes (idempotency keys, expiry queue, id counter) in step
    /// with a newly known order.
    fn index_order(&mut self, order: &Order) {
        if let Some(key) = &order.idempotency_key {
            self.by_idempotency_key
                .insert((order.customer.clone(), key.clone()), order.id);
        }
        if order.status == OrderStatus::Reserved {
            self.expiry_queue.insert((order.reserved_until, order.id));
        }
        if order.id.shard == self.config.shard && order.id.epoch == self.config.epoch {
            self.next_order_number = self.next_order_number.max(order.id.number + 1);
        }
    }

    fn sku_mut(&mut self, id: &SkuId) -> Result<&mut Sku, InconsistentEvent> {
        self.skus
            .get_mut(id)
            .ok_or_else(|| inconsistent(format!("unknown sku {id}")))
    }

    fn status_of(&self, id: &OrderId) -> Result<OrderStatus, InconsistentEvent> {
        self.orders
            .get(id)
            .map(|order| order.status)
            .ok_or_else(|| inconsistent(format!("unknown order {id}")))
    }

    /// Moves an order to `to`, checking the move is allowed; returns what the SKU
    /// counters need.
    fn transition(
        &mut self,
        id: &OrderId,
        to: OrderStatus,
        at: Timestamp,
    ) -> Result<(SkuId, u64, CustomerId), InconsistentEvent> {
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| inconsistent(format!("unknown order {id}")))?;
        let allowed = match to {
            OrderStatus::Confirmed | OrderStatus::Expired => order.status == OrderStatus::Reserved,
            OrderStatus::Cancelled => order.status.holds_stock(),
            OrderStatus::Reserved => false,
        };
        if !allowed {
            return Err(inconsistent(format!(
                "order {id} cannot move from {} to {}",
                order.status.as_str(),
                to.as_str()
            )));
        }
        if order.status == OrderStatus::Reserved {
            self.expiry_queue.remove(&(order.reserved_until, *id));
        }
        order.status = to;
        order.updated_at = at;
        Ok((
            order.sku.clone(),
            u64::from(order.quantity),
            order.customer.clone(),
        ))
    }

    /// The counters and settings of every SKU, for a checkpoint.
    pub fn sku_images(&self) -> Vec<SkuImage> {
        let mut images: Vec<SkuImage> = self
            .skus
            .values()
            .map(|sku| SkuImage {
                id: sku.id.clone(),
                total: sku.total,
                available: sku.available,
                reserved: sku.reserved,
                sold: sku.sold,
                settings: sku.settings.clone(),
            })
            .collect();
        images.sort_by(|a, b| a.id.cmp(&b.id));
        images
    }

    pub fn next_order_number(&self) -> u64 {
        self.next_order_number
    }

    /// Rebuilds a shard from a checkpoint. Checks that the stored counters equal
    /// what the orders imply, so a damaged checkpoint is refused, not served.
    pub fn restore(
        config: ShardConfig,
        next_order_number: u64,
        skus: Vec<SkuImage>,
        orders: impl IntoIterator<Item = Order>,
    ) -> Result<ShardCore, InconsistentEvent> {
        let mut core = ShardCore::new(config);
        core.next_order_number = next_order_number.max(1);
        for image in skus {
            let mut sku = Sku::new(image.id.clone(), image.total, image.settings);
            sku.available = image.available;
            sku.reserved = image.reserved;
            sku.sold = image.sold;
            if sku
                .available
                .checked_add(sku.reserved)
                .and_then(|s| s.checked_add(sku.sold))
                != Some(sku.total)
            {
                return Err(inconsistent(format!(
                    "checkpoint counters of sku {} do not add up",
                    sku.id
                )));
            }
            core.skus.insert(image.id, sku);
        }
        let mut implied: HashMap<SkuId, (u64, u64)> = HashMap::new();
        for order in orders {
            let quantity = u64::from(order.quantity);
            let sku = core.skus.get_mut(&order.sku).ok_or_else(|| {
                inconsistent(format!(
                    "order {} names unknown sku {}",
                    order.id, order.sku
                ))
            })?;
            let counts = implied.entry(order.sku.clone()).or_default();
            match order.status {
                OrderStatus::Reserved => counts.0 += quantity,
                OrderStatus::Confirmed => counts.1 += quantity,
                OrderStatus::Cancelled | OrderStatus::Expired => {}
            }
            if order.status.holds_stock() {
                sku.hold(&order.customer, quantity);
            }
            if core.orders.contains_key(&order.id) {
                return Err(inconsistent(format!("order {} stored twice", order.id)));
            }
            core.index_order(&order);
            core.orders.insert(order.id, order);
        }
        for sku in core.skus.values() {
            let (reserved, sold) = implied.get(&sku.id).copied().unwrap_or((0, 0));
            if (reserved, sold) != (sku.reserved, sku.sold) {
                return Err(inconsistent(format!(
                    "sku {}: counters say reserved {} sold {}, orders say reserved {} sold {}",
                    sku.id, sku.reserved, sku.sold, reserved, sold
                )));
            }
        }
        Ok(core)
    }

    /// Checks every SKU's counters against its orders. O(orders): for tests and
    /// recovery, not the order path.
    pub fn assert_consistent(&self) {
        let mut implied: HashMap<&SkuId, (u64, u64, HashMap<&CustomerId, u64>)> = HashMap::new();
        for order in self.orders.values() {
            let entry = implied.entry(&order.sku).or_default();
            let quantity = u64::from(order.quantity);
            match order.status {
                OrderStatus::Reserved => entry.0 += quantity,
                OrderStatus::Confirmed => entry.1 += quantity,
                _ => {}
            }
            if order.status.holds_stock() {
                *entry.2.entry(&order.customer).or_default() += quantity;
            }
        }
        for sku in self.skus.values() {
            sku.assert_invariants();
            let (reserved, sold, held) = implied.remove(&sku.id).unwrap_or_default();
            assert_eq!(
                (sku.reserved, sku.sold),
                (reserved, sold),
                "sku {} counters",
                sku.id
            );
            assert_eq!(
                sku.held_by_customer.len(),
                held.len(),
                "sku {} holders",
                sku.id
            );
            for (customer, quantity) in held {
                assert_eq!(
                    sku.held_by(customer),
                    quantity,
                    "sku {} holder {customer:?}",
                    sku.id
                );
            }
        }
        assert!(implied.is_empty(), "orders name unknown SKUs");
    }
}
