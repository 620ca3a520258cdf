//! One shard's state: its SKUs and their orders. Commands decide (see `command/`),
//! events change state (here). Live execution and replay share `apply`, so a
//! replayed log rebuilds exactly the state the primary had.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;

use bincode::{Decode, Encode};

use super::command::{Command, CoreError, Reply};
use super::command::{PendingMove, WaitingRoom};
use super::customers::{CustomerOrders, ListingPosition};
use super::due::DueQueue;
use super::event::{Event, Events};
use super::order::{Order, OrderChange, OrderStatus, CHANGES_PER_ORDER_MAX};
use super::retention::{KeyEntry, RetainedImage, RetainedKey, Retention, Settled, SettledImage};
use super::sku::{Sku, SkuSettings};
use super::types::{CustomerId, IdMap, IdempotencyKey, OrderId, SkuId, Timestamp};

/// Customers per `SettledImage` in a checkpoint, so one SKU with many buyers
/// never makes one huge chunk.
pub const SETTLED_CUSTOMERS_PER_IMAGE: usize = 8_192;

/// Limits and identity of one shard.
#[derive(Clone, Debug)]
pub struct ShardConfig {
    /// This shard's index; new order ids carry it.
    pub shard: u32,
    /// The node's current epoch; new order ids carry it.
    pub epoch: u64,
    /// Most live orders (reserved, or confirmed and not yet settled) the shard
    /// holds; beyond it, new orders are refused. Finished orders do not count:
    /// they leave memory after `retention`.
    pub orders_max: usize,
    /// Most reservations one expiry pass expires, so a pass never stalls the shard.
    pub expiry_batch_max: usize,
    /// How long finished orders and idempotency keys stay in memory.
    pub retention: Retention,
}

/// The result of one command: the reply for the caller, and the events to log.
/// State already reflects the events; the caller must log them before it tells
/// anyone the reply.
#[derive(Debug)]
pub struct Execution {
    pub reply: Result<Reply, CoreError>,
    pub events: Events,
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

/// What an event changed of a shard's SKUs (`ShardCore::sku_touched_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touched<'a> {
    Nothing,
    One(&'a SkuId),
    Any,
}

pub struct ShardCore {
    config: ShardConfig,
    skus: IdMap<SkuId, Sku>,
    /// Orders in memory: live ones, and finished ones within their retention.
    orders: IdMap<OrderId, Order>,
    /// Orders in memory that hold stock (reserved or confirmed).
    live_orders: usize,
    by_idempotency_key: IdMap<(CustomerId, IdempotencyKey), KeyEntry>,
    /// Each customer's orders in memory, for its order listing.
    by_customer: CustomerOrders,
    /// Reserved orders by expiry time.
    expiry_queue: DueQueue,
    /// Confirmed and finished orders in memory, by when they may leave it.
    retire_queue: DueQueue,
    /// Keys whose order left memory, by when they may be forgotten.
    key_queue: BTreeSet<(Timestamp, CustomerId, IdempotencyKey)>,
    /// Per SKU, the units of settled orders (confirmed orders that left memory).
    settled: IdMap<SkuId, Settled>,
    /// The history of every changed order in memory (`OrderChanged`).
    changes: IdMap<OrderId, Vec<OrderChange>>,
    /// Orders frozen while they move to another shard (`command::move_order`).
    moving: IdMap<OrderId, PendingMove>,
    /// Orders of this shard's numbering that moved to another shard, and
    /// which: a command or a read of one is sent on there.
    moved_out: IdMap<OrderId, u32>,
    /// Orders that left memory since the shell last took them, with their
    /// history: it archives them.
    retired: Vec<(Order, Vec<OrderChange>)>,
    /// Keys forgotten since the shell last took them.
    forgotten: Vec<(CustomerId, IdempotencyKey)>,
    next_order_number: u64,
    /// Each SKU's waiting-room settings, for SKUs that have a room
    /// (`Event::WaitingRoomSet`); beside the SKU, since `SkuSettings`'
    /// layout is in existing logs and checkpoints.
    waiting_rooms: IdMap<SkuId, WaitingRoom>,
}

impl ShardCore {
    pub fn new(config: ShardConfig) -> ShardCore {
        assert!(config.orders_max > 0);
        assert!(config.expiry_batch_max > 0);
        ShardCore {
            config,
            skus: IdMap::default(),
            orders: IdMap::default(),
            live_orders: 0,
            by_idempotency_key: IdMap::default(),
            by_customer: CustomerOrders::default(),
            expiry_queue: DueQueue::new(),
            retire_queue: DueQueue::new(),
            key_queue: BTreeSet::new(),
            settled: IdMap::default(),
            changes: IdMap::default(),
            moving: IdMap::default(),
            moved_out: IdMap::default(),
            retired: Vec::new(),
            forgotten: Vec::new(),
            next_order_number: 1,
            waiting_rooms: IdMap::default(),
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

    /// `id`'s waiting-room settings, if it has a room.
    pub fn waiting_room(&self, id: &SkuId) -> Option<WaitingRoom> {
        self.waiting_rooms.get(id).copied()
    }

    /// Every SKU's waiting room, in SKU order (for a checkpoint).
    pub fn waiting_rooms(&self) -> Vec<(SkuId, WaitingRoom)> {
        let mut rooms: Vec<(SkuId, WaitingRoom)> = self
            .waiting_rooms
            .iter()
            .map(|(sku, room)| (sku.clone(), *room))
            .collect();
        rooms.sort_by(|a, b| a.0.cmp(&b.0));
        rooms
    }

    /// Puts back the rooms a checkpoint carries: each names a known SKU.
    pub fn restore_waiting_rooms(
        &mut self,
        rooms: impl IntoIterator<Item = (SkuId, WaitingRoom)>,
    ) -> Result<(), InconsistentEvent> {
        for (sku, room) in rooms {
            if !self.skus.contains_key(&sku) {
                return Err(inconsistent(format!("waiting room of unknown sku {sku}")));
            }
            if self.waiting_rooms.insert(sku.clone(), room).is_some() {
                return Err(inconsistent(format!(
                    "waiting room of sku {sku} stored twice"
                )));
            }
        }
        Ok(())
    }

    /// Which SKU's counters or settings `event` changed. Call it after
    /// applying the event: an order it names is in memory then (`Any` if it
    /// is not, which the caller must treat as every SKU).
    pub fn sku_touched_by<'a>(&'a self, event: &'a Event) -> Touched<'a> {
        match event {
            Event::SkuCreated { sku, .. }
            | Event::SkuSettingsChanged { sku, .. }
            | Event::Restocked { sku, .. }
            | Event::WaitingRoomSet { sku, .. } => Touched::One(sku),
            Event::OrderReserved(order) => Touched::One(&order.sku),
            Event::OrderConfirmed { id, .. }
            | Event::OrderCancelled { id, .. }
            | Event::OrderExpired { id, .. }
            | Event::OrderShipped { id, .. } => match self.order(id) {
                Some(order) => Touched::One(&order.sku),
                None => Touched::Any,
            },
            // Two SKUs when it moved between them.
            Event::OrderChanged { change, .. } if change.from_sku == change.to_sku => {
                Touched::One(&change.to_sku)
            }
            Event::OrderChanged { .. } | Event::OrderMovedOut { .. } => Touched::Any,
            Event::OrderAdopted { order, .. } => Touched::One(&order.sku),
            Event::OrderMoveStarted { .. } | Event::OrderMoveAborted { .. } => Touched::Nothing,
            Event::OrdersRetired { .. } | Event::KeysForgotten { .. } => Touched::Nothing,
        }
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

    /// The changes of order `id` (in memory), oldest first.
    pub fn changes_of(&self, id: &OrderId) -> &[OrderChange] {
        self.changes.get(id).map_or(&[], Vec::as_slice)
    }

    /// The move order `id` is frozen in, if any.
    pub fn pending_move(&self, id: &OrderId) -> Option<&PendingMove> {
        self.moving.get(id)
    }

    /// Every frozen order's move (for a checkpoint, and for recovery, which
    /// ends each).
    pub fn pending_moves(&self) -> impl Iterator<Item = (&OrderId, &PendingMove)> {
        self.moving.iter()
    }

    /// The shard order `id` moved to, when it moved away from this one.
    pub fn moved_to(&self, id: &OrderId) -> Option<u32> {
        self.moved_out.get(id).copied()
    }

    /// Every order that moved away, and where (for a checkpoint).
    pub fn moved_out(&self) -> impl Iterator<Item = (&OrderId, &u32)> {
        self.moved_out.iter()
    }

    /// Puts back the moves of frozen orders, and the orders that moved away,
    /// restored from a checkpoint.
    pub fn restore_moves(
        &mut self,
        moves: impl IntoIterator<Item = (OrderId, PendingMove)>,
        moved_out: impl IntoIterator<Item = (OrderId, u32)>,
    ) -> Result<(), InconsistentEvent> {
        for (id, pending) in moves {
            self.freeze(&id, pending)?;
        }
        for (id, to) in moved_out {
            if self.orders.contains_key(&id) || self.moved_out.insert(id, to).is_some() {
                return Err(inconsistent(format!("moved order {id} stored twice")));
            }
        }
        Ok(())
    }

    /// Every changed order in memory with its history (for a checkpoint).
    pub fn changes(&self) -> impl Iterator<Item = (&OrderId, &Vec<OrderChange>)> {
        self.changes.iter()
    }

    /// Puts back the history of orders restored from a checkpoint; each must
    /// be an order in memory whose SKU and quantity are its last change's.
    pub fn restore_changes(
        &mut self,
        changes: impl IntoIterator<Item = (OrderId, Vec<OrderChange>)>,
    ) -> Result<(), InconsistentEvent> {
        for (id, history) in changes {
            let order = self
                .orders
                .get(&id)
                .ok_or_else(|| inconsistent(format!("changes of unknown order {id}")))?;
            let last = history
                .last()
                .ok_or_else(|| inconsistent(format!("an empty history of order {id}")))?;
            if last.to_sku != order.sku
                || last.to_quantity != order.quantity
                || history.len() > CHANGES_PER_ORDER_MAX
            {
                return Err(inconsistent(format!(
                    "the history of order {id} does not end in its SKU and quantity"
                )));
            }
            // The order's key stands for the request that placed it: what
            // the order held before its first change.
            if let Some(key) = &order.idempotency_key {
                let first = &history[0];
                if let Some(entry) = self
                    .by_idempotency_key
                    .get_mut(&(order.customer.clone(), key.clone()))
                    .filter(|entry| entry.order == id)
                {
                    entry.sku = first.from_sku.clone();
                    entry.quantity = first.from_quantity;
                }
            }
            if self.changes.insert(id, history).is_some() {
                return Err(inconsistent(format!(
                    "the history of order {id} stored twice"
                )));
            }
        }
        Ok(())
    }

    /// Orders in memory (live, and finished within their retention).
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// Makes room for `additional` more orders at once: a recovery that knows
    /// how many records its log holds grows the table once, instead of
    /// rehashing it at every doubling.
    pub fn reserve_orders(&mut self, additional: usize) {
        self.orders.reserve(additional);
    }

    /// Orders in memory that hold stock: what `orders_max` bounds.
    pub fn live_order_count(&self) -> usize {
        self.live_orders
    }

    /// Up to `limit` of the customer's orders in memory created strictly
    /// before `before` (all when `None`), newest first (by creation time,
    /// then id). Costs a binary search and the page, not a scan.
    pub fn customer_orders(
        &self,
        customer: &CustomerId,
        before: Option<ListingPosition>,
        limit: usize,
    ) -> Vec<&Order> {
        self.by_customer
            .newest_before(customer, before, limit)
            .into_iter()
            .map(|position| {
                self.orders
                    .get(&position.id)
                    .expect("the customer index names orders in memory only")
            })
            .collect()
    }

    /// What the shard remembers of a customer's idempotency key, if anything.
    pub fn idempotency_key(
        &self,
        customer: &CustomerId,
        key: &IdempotencyKey,
    ) -> Option<&KeyEntry> {
        self.by_idempotency_key
            .get(&(customer.clone(), key.clone()))
    }

    /// Every key the shard remembers, with its entry (live orders' and
    /// retired ones').
    pub fn idempotency_keys(
        &self,
    ) -> impl Iterator<Item = (&(CustomerId, IdempotencyKey), &KeyEntry)> {
        self.by_idempotency_key.iter()
    }

    /// Takes the orders that left memory since the last call. The shell must
    /// archive each before it answers anything that reflects their leaving.
    pub fn take_retired(&mut self) -> Vec<(Order, Vec<OrderChange>)> {
        std::mem::take(&mut self.retired)
    }

    /// Takes the keys forgotten since the last call.
    pub fn take_forgotten(&mut self) -> Vec<(CustomerId, IdempotencyKey)> {
        std::mem::take(&mut self.forgotten)
    }

    /// The earliest instant at which an order or a key may leave memory.
    pub fn next_retirement(&self) -> Option<Timestamp> {
        let order = self.retire_queue.first().map(|(at, _)| at);
        let key = self.key_queue.first().map(|(at, _, _)| *at);
        order.into_iter().chain(key).min()
    }

    pub(crate) fn due_retirements(&self, now: Timestamp) -> impl Iterator<Item = OrderId> + '_ {
        self.retire_queue.due(now).map(|(_, id)| id)
    }

    pub(crate) fn due_keys(
        &self,
        now: Timestamp,
    ) -> impl Iterator<Item = (CustomerId, IdempotencyKey)> + '_ {
        self.key_queue
            .iter()
            .take_while(move |(at, _, _)| *at <= now)
            .map(|(_, customer, key)| (customer.clone(), key.clone()))
    }

    /// The earliest instant at which a reservation is due to expire.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.expiry_queue.first().map(|(at, _)| at)
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
        self.expiry_queue.due(now).map(|(_, id)| id)
    }

    /// Decides a command at `now`, applies its events, and returns the reply and
    /// the events to log. Panics if an invariant breaks: no reply may leave the
    /// shard oversold.
    #[inline]
    pub fn execute(&mut self, command: Command, now: Timestamp) -> Execution {
        // A command's decision allocated order numbers it may not use (a refused
        // order); that is fine, numbers only need to be unique.
        command.execute(self, now)
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
                let changed = self.sku_mut(sku)?;
                let counted = changed.counts_holders();
                changed.settings = settings.clone();
                if !changed.counts_holders() {
                    changed.held_by_customer = IdMap::default();
                } else if !counted {
                    self.count_holders(sku);
                }
            }
            Event::WaitingRoomSet { sku, room } => {
                self.sku_mut(sku)?;
                match room {
                    Some(room) => self.waiting_rooms.insert(sku.clone(), *room),
                    None => self.waiting_rooms.remove(sku),
                };
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
                // `transition` allows a cancel only from reserved or confirmed.
                let from = self.status_of(id)?;
                let (sku, quantity, customer) = self.transition(id, OrderStatus::Cancelled, *at)?;
                self.sku_mut(&sku)?
                    .give_back(&customer, quantity, from.is_sold());
            }
            Event::OrderExpired { id, at } => {
                let (sku, quantity, customer) = self.transition(id, OrderStatus::Expired, *at)?;
                let sku = self.sku_mut(&sku)?;
                sku.reserved -= quantity;
                sku.available += quantity;
                sku.release(&customer, quantity);
                sku.assert_invariants();
            }
            Event::OrderShipped { id, at } => {
                // Sold it was and sold it stays: no counter moves.
                self.transition(id, OrderStatus::Shipped, *at)?;
            }
            Event::OrderChanged { id, change } => self.apply_changed(id, change)?,
            Event::OrderMoveStarted {
                id,
                to_shard,
                change,
            } => {
                let order = self
                    .orders
                    .get(id)
                    .ok_or_else(|| inconsistent(format!("moving order {id} is unknown")))?;
                if order.sku != change.from_sku || order.quantity != change.from_quantity {
                    return Err(inconsistent(format!(
                        "order {id} starts a move from what it does not hold"
                    )));
                }
                self.freeze(
                    id,
                    PendingMove {
                        to_shard: *to_shard,
                        change: change.clone(),
                    },
                )?;
            }
            Event::OrderMoveAborted { id } => {
                self.moving.remove(id).ok_or_else(|| {
                    inconsistent(format!("order {id} aborts a move it is not in"))
                })?;
                let order = self.orders.get(id).expect("a frozen order is in memory");
                if order.status == OrderStatus::Reserved {
                    self.expiry_queue.insert((order.reserved_until, *id));
                }
                if let Some(at) = self.config.retention.order_leaves_at(order) {
                    self.retire_queue.insert((at, *id));
                }
            }
            Event::OrderMovedOut { id } => self.apply_moved_out(id)?,
            Event::OrderAdopted { order, history } => self.apply_adopted(order, history)?,
            Event::OrdersRetired { ids } => {
                for id in ids {
                    self.retire(id)?;
                }
            }
            Event::KeysForgotten { keys } => {
                for key in keys {
                    self.forget(key)?;
                }
            }
        }
        Ok(())
    }

    /// The key of an order that left memory stays, marked retired, until
    /// its retention: then `KeysForgotten` drops it.
    fn retire_key(&mut self, order: &Order) {
        let Some(key) = &order.idempotency_key else {
            return;
        };
        let customer_key = (order.customer.clone(), key.clone());
        if let Some(entry) = self.by_idempotency_key.get_mut(&customer_key) {
            if entry.order == order.id && !entry.retired {
                entry.retired = true;
                let at = self.config.retention.key_forgotten_at(entry.created_at);
                self.key_queue.insert((at, customer_key.0, customer_key.1));
            }
        }
    }

    /// Lets a confirmed or finished order leave memory. A confirmed one is
    /// settled: its units stay sold and held by its customer.
    fn retire(&mut self, id: &OrderId) -> Result<(), InconsistentEvent> {
        let order = self
            .orders
            .get(id)
            .ok_or_else(|| inconsistent(format!("retired order {id} is unknown")))?;
        let Some(leaves_at) = self.config.retention.order_leaves_at(order) else {
            return Err(inconsistent(format!("order {id} retired while reserved")));
        };
        let order = self.orders.remove(id).expect("checked above");
        self.retire_queue.remove(&(leaves_at, *id));
        self.by_customer.remove(&order);
        if order.status.is_sold() {
            self.live_orders -= 1;
            let settled = self.settled.entry(order.sku.clone()).or_default();
            let quantity = u64::from(order.quantity);
            settled.sold += quantity;
            *settled
                .by_customer
                .entry(order.customer.clone())
                .or_default() += quantity;
        }
        self.retire_key(&order);
        let changes = self.changes.remove(id).unwrap_or_default();
        self.retired.push((order, changes));
        Ok(())
    }

    /// Forgets the key of an order that left memory.
    fn forget(&mut self, key: &(CustomerId, IdempotencyKey)) -> Result<(), InconsistentEvent> {
        let entry = self.by_idempotency_key.get(key).ok_or_else(|| {
            inconsistent(format!(
                "forgotten key of customer {} is unknown",
                key.0.as_str()
            ))
        })?;
        if !entry.retired {
            return Err(inconsistent(format!(
                "key of order {} forgotten while the order is in memory",
                entry.order
            )));
        }
        let at = self.config.retention.key_forgotten_at(entry.created_at);
        self.key_queue.remove(&(at, key.0.clone(), key.1.clone()));
        self.by_idempotency_key.remove(key);
        self.forgotten.push(key.clone());
        Ok(())
    }

    /// Freezes order `id` for `pending`: it leaves the expiry and retire
    /// queues until the move ends.
    fn freeze(&mut self, id: &OrderId, pending: PendingMove) -> Result<(), InconsistentEvent> {
        let order = self
            .orders
            .get(id)
            .ok_or_else(|| inconsistent(format!("moving order {id} is unknown")))?;
        if !matches!(order.status, OrderStatus::Reserved | OrderStatus::Confirmed) {
            return Err(inconsistent(format!(
                "order {id} moves while {}",
                order.status.as_str()
            )));
        }
        if order.status == OrderStatus::Reserved {
            self.expiry_queue.remove(&(order.reserved_until, *id));
        }
        if let Some(at) = self.config.retention.order_leaves_at(order) {
            self.retire_queue.remove(&(at, *id));
        }
        if self.moving.insert(*id, pending).is_some() {
            return Err(inconsistent(format!("order {id} moves twice at once")));
        }
        Ok(())
    }

    /// A frozen order's move finished: its units go back here and it
    /// leaves (it lives on in the other shard). Its key stays, as a retired
    /// order's does, until its retention.
    fn apply_moved_out(&mut self, id: &OrderId) -> Result<(), InconsistentEvent> {
        let pending = self
            .moving
            .remove(id)
            .ok_or_else(|| inconsistent(format!("order {id} moved out without a move")))?;
        self.moved_out.insert(*id, pending.to_shard);
        let order = self.orders.remove(id).expect("a frozen order is in memory");
        self.by_customer.remove(&order);
        let quantity = u64::from(order.quantity);
        self.sku_mut(&order.sku)?
            .give_back(&order.customer, quantity, order.status.is_sold());
        self.live_orders -= 1;
        self.changes.remove(id);
        self.retire_key(&order);
        Ok(())
    }

    /// An order moved here from another shard: it takes its units here, in
    /// its status. Its idempotency key stays with the shard that placed it.
    fn apply_adopted(
        &mut self,
        order: &Order,
        history: &[OrderChange],
    ) -> Result<(), InconsistentEvent> {
        if !matches!(order.status, OrderStatus::Reserved | OrderStatus::Confirmed)
            || self.orders.contains_key(&order.id)
            || history.is_empty()
            || history.len() > CHANGES_PER_ORDER_MAX
        {
            return Err(inconsistent(format!(
                "order {} cannot be adopted",
                order.id
            )));
        }
        self.take_in(order, "adopts")?;
        self.changes.insert(order.id, history.to_vec());
        Ok(())
    }

    /// The order gives back what it held and takes what `change` says, on
    /// the same SKU or another of this shard, keeping its status.
    fn apply_changed(
        &mut self,
        id: &OrderId,
        change: &OrderChange,
    ) -> Result<(), InconsistentEvent> {
        let order = self
            .orders
            .get(id)
            .ok_or_else(|| inconsistent(format!("changed order {id} is unknown")))?;
        if !matches!(order.status, OrderStatus::Reserved | OrderStatus::Confirmed)
            || order.sku != change.from_sku
            || order.quantity != change.from_quantity
        {
            return Err(inconsistent(format!(
                "order {id} ({}, {} of {}) cannot take a change from {} of {}",
                order.status.as_str(),
                order.quantity,
                order.sku,
                change.from_quantity,
                change.from_sku
            )));
        }
        if self.changes_of(id).len() >= CHANGES_PER_ORDER_MAX {
            return Err(inconsistent(format!("order {id} changed too often")));
        }
        let (customer, status) = (order.customer.clone(), order.status);
        let from = u64::from(change.from_quantity);
        let to = u64::from(change.to_quantity);
        self.sku_mut(&change.from_sku)?
            .give_back(&customer, from, status.is_sold());
        let sku = self.sku_mut(&change.to_sku)?;
        if sku.available < to {
            return Err(inconsistent(format!(
                "order {id} changes to {to} of sku {} with only {} available",
                change.to_sku, sku.available
            )));
        }
        sku.take(&customer, to, status.is_sold());
        let to_sku = sku.id.clone();
        let order = self.orders.get_mut(id).expect("checked above");
        order.sku = to_sku;
        order.quantity = change.to_quantity;
        self.changes.entry(*id).or_default().push(change.clone());
        Ok(())
    }

    /// Applies `Event::OrderReserved(order)`.
    pub(super) fn apply_reserved(&mut self, order: &Order) -> Result<(), InconsistentEvent> {
        if order.status != OrderStatus::Reserved {
            return Err(inconsistent(format!(
                "order {} logged as new but not reserved",
                order.id
            )));
        }
        self.take_in(order, "reserves")
    }

    /// Order `order` (new here) takes its units of its SKU, in its status,
    /// and enters memory and the indexes: the order table, the idempotency
    /// keys, the expiry and retire queues, the id counter and the customer
    /// index. `what` names the event in the error of a log that does not fit;
    /// nothing changes then. Each table is looked up once.
    fn take_in(&mut self, order: &Order, what: &str) -> Result<(), InconsistentEvent> {
        let quantity = u64::from(order.quantity);
        let slot = match self.orders.entry(order.id) {
            Entry::Occupied(_) => {
                return Err(inconsistent(format!(
                    "order {} {what} while it is already in memory",
                    order.id
                )))
            }
            Entry::Vacant(slot) => slot,
        };
        let sku = self
            .skus
            .get_mut(&order.sku)
            .ok_or_else(|| inconsistent(format!("unknown sku {}", order.sku)))?;
        if sku.available < quantity {
            return Err(inconsistent(format!(
                "order {} {what} {} of sku {} with only {} available",
                order.id, quantity, order.sku, sku.available
            )));
        }
        sku.take(&order.customer, quantity, order.status.is_sold());
        // Every order of a SKU shares the SKU's id text.
        let order = slot.insert(Order {
            sku: sku.id.clone(),
            customer: order.customer.clone(),
            idempotency_key: order.idempotency_key.clone(),
            ..*order
        });
        // An order adopted from another shard keeps its key there.
        if let Some(key) = order
            .idempotency_key
            .as_ref()
            .filter(|_| order.id.shard == self.config.shard)
        {
            self.by_idempotency_key
                .insert((order.customer.clone(), key.clone()), KeyEntry::of(order));
        }
        if order.status == OrderStatus::Reserved {
            self.expiry_queue.insert((order.reserved_until, order.id));
        }
        if order.status.holds_stock() {
            self.live_orders += 1;
        }
        if let Some(at) = self.config.retention.order_leaves_at(order) {
            self.retire_queue.insert((at, order.id));
        }
        if order.id.shard == self.config.shard && order.id.epoch == self.config.epoch {
            self.next_order_number = self.next_order_number.max(order.id.number + 1);
        }
        self.by_customer.insert(order);
        Ok(())
    }

    /// Adds a key entry; a key already taken by another order is a log that
    /// does not fit.
    fn index_key(
        &mut self,
        customer: CustomerId,
        key: IdempotencyKey,
        entry: KeyEntry,
    ) -> Result<(), InconsistentEvent> {
        if entry.retired {
            let at = self.config.retention.key_forgotten_at(entry.created_at);
            self.key_queue.insert((at, customer.clone(), key.clone()));
        }
        match self.by_idempotency_key.insert((customer, key), entry) {
            Some(previous) => Err(inconsistent(format!(
                "an idempotency key of order {} is also held by another order",
                previous.order
            ))),
            None => Ok(()),
        }
    }

    /// Fills a SKU's `held_by_customer` from what its customers hold: its
    /// orders in memory that hold stock, and its settled units. For a SKU
    /// that just got a per-customer limit: O(orders in memory), once per
    /// such change.
    fn count_holders(&mut self, id: &SkuId) {
        let Some(sku) = self.skus.get_mut(id) else {
            return;
        };
        assert!(sku.held_by_customer.is_empty());
        if let Some(settled) = self.settled.get(id) {
            for (customer, quantity) in &settled.by_customer {
                sku.hold(customer, *quantity);
            }
        }
        for order in self.orders.values() {
            if order.sku == *id && order.status.holds_stock() {
                sku.hold(&order.customer, u64::from(order.quantity));
            }
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
            OrderStatus::Cancelled => {
                matches!(order.status, OrderStatus::Reserved | OrderStatus::Confirmed)
            }
            OrderStatus::Shipped => order.status == OrderStatus::Confirmed,
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
        if let Some(leaves_at) = self.config.retention.order_leaves_at(order) {
            self.retire_queue.remove(&(leaves_at, *id));
        }
        if order.status.holds_stock() && !to.holds_stock() {
            self.live_orders -= 1;
        }
        order.status = to;
        order.updated_at = at;
        if let Some(leaves_at) = self.config.retention.order_leaves_at(order) {
            self.retire_queue.insert((leaves_at, *id));
        }
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

    /// What the shard keeps of orders that left memory, for a checkpoint.
    pub fn retained_image(&self) -> RetainedImage {
        let mut settled = Vec::new();
        let mut skus: Vec<&SkuId> = self.settled.keys().collect();
        skus.sort();
        for sku in skus {
            let mut customers: Vec<(CustomerId, u64)> = self.settled[sku]
                .by_customer
                .iter()
                .map(|(customer, quantity)| (customer.clone(), *quantity))
                .collect();
            customers.sort();
            for part in customers.chunks(SETTLED_CUSTOMERS_PER_IMAGE) {
                settled.push(SettledImage {
                    sku: sku.clone(),
                    by_customer: part.to_vec(),
                });
            }
        }
        let mut keys: Vec<RetainedKey> = self
            .by_idempotency_key
            .iter()
            .filter(|(_, entry)| entry.retired)
            .map(|((customer, key), entry)| RetainedKey {
                customer: customer.clone(),
                key: key.clone(),
                entry: entry.clone(),
            })
            .collect();
        keys.sort_by(|a, b| (&a.customer, &a.key).cmp(&(&b.customer, &b.key)));
        RetainedImage { settled, keys }
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
        retained: RetainedImage,
    ) -> Result<ShardCore, InconsistentEvent> {
        let orders: Vec<Order> = orders.into_iter().collect();
        let count = orders.len();
        ShardCore::restore_chunks(
            config,
            next_order_number,
            skus,
            count,
            std::iter::once(Ok(orders)),
            retained,
        )
    }

    /// `restore` from the orders of a checkpoint's chunks, each handed over
    /// as it is decoded (a failed decode stops the restore with its reason),
    /// with `orders_count` the orders they hold in all: the tables are sized
    /// once, and each chunk's orders enter them while they are still in the
    /// cache.
    pub fn restore_chunks(
        config: ShardConfig,
        next_order_number: u64,
        skus: Vec<SkuImage>,
        orders_count: usize,
        order_chunks: impl IntoIterator<Item = Result<Vec<Order>, InconsistentEvent>>,
        retained: RetainedImage,
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
        let mut implied: IdMap<SkuId, (u64, u64)> = IdMap::default();
        for image in retained.settled {
            let sku = core.skus.get_mut(&image.sku).ok_or_else(|| {
                inconsistent(format!("settled units name unknown sku {}", image.sku))
            })?;
            let settled = core.settled.entry(image.sku.clone()).or_default();
            for (customer, quantity) in image.by_customer {
                if quantity == 0 || settled.by_customer.contains_key(&customer) {
                    return Err(inconsistent(format!(
                        "settled units of sku {} stored twice or empty",
                        image.sku
                    )));
                }
                settled.sold += quantity;
                sku.hold(&customer, quantity);
                settled.by_customer.insert(customer, quantity);
            }
            implied.entry(image.sku).or_default().1 = settled.sold;
        }
        for retained in retained.keys {
            if !retained.entry.retired {
                return Err(inconsistent(format!(
                    "the key of order {} is stored as retained but not retired",
                    retained.entry.order
                )));
            }
            core.index_key(retained.customer, retained.key, retained.entry)?;
        }
        core.restore_orders(orders_count, order_chunks, &mut implied)?;
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

    /// Adds a checkpoint's orders to a shard being restored: the order table,
    /// the SKUs' holders, the indexes, and what they hold to `implied`
    /// (reserved, sold per SKU). Sizes the tables once from `orders_count`,
    /// looks each order's SKU up once,
    /// and builds the time queues from sorted runs instead of an insert per
    /// order: a restart restores millions of orders.
    fn restore_orders(
        &mut self,
        orders_count: usize,
        order_chunks: impl IntoIterator<Item = Result<Vec<Order>, InconsistentEvent>>,
        implied: &mut IdMap<SkuId, (u64, u64)>,
    ) -> Result<(), InconsistentEvent> {
        let mut skus: Vec<(&SkuId, &mut Sku)> = self.skus.iter_mut().collect();
        let positions: IdMap<&SkuId, usize> = skus
            .iter()
            .enumerate()
            .map(|(position, (id, _))| (*id, position))
            .collect();
        // A holder holds at least one unit: a SKU's units held bound its
        // holders, as the orders bound them (the unused room is given back
        // below).
        for (_, sku) in skus.iter_mut().filter(|(_, sku)| sku.counts_holders()) {
            let units =
                usize::try_from(sku.reserved.saturating_add(sku.sold)).unwrap_or(usize::MAX);
            sku.held_by_customer.reserve(units.min(orders_count));
        }
        self.orders.reserve(orders_count);
        let mut counts = vec![(0u64, 0u64); skus.len()];
        let mut expiring = Vec::new();
        let mut retiring = Vec::new();
        let mut by_customer = self.by_customer.bulk(orders_count);
        for orders in order_chunks {
            for mut order in orders? {
                let position = *positions.get(&order.sku).ok_or_else(|| {
                    inconsistent(format!(
                        "order {} names unknown sku {}",
                        order.id, order.sku
                    ))
                })?;
                // Every order of a SKU shares the SKU's id text.
                order.sku = skus[position].0.clone();
                let slot = match self.orders.entry(order.id) {
                    Entry::Occupied(_) => {
                        return Err(inconsistent(format!("order {} stored twice", order.id)))
                    }
                    Entry::Vacant(slot) => slot,
                };
                let quantity = u64::from(order.quantity);
                match order.status {
                    OrderStatus::Reserved => counts[position].0 += quantity,
                    OrderStatus::Confirmed | OrderStatus::Shipped => counts[position].1 += quantity,
                    OrderStatus::Cancelled | OrderStatus::Expired => {}
                }
                if order.status.holds_stock() {
                    skus[position].1.hold(&order.customer, quantity);
                    self.live_orders += 1;
                }
                if let Some(key) = &order.idempotency_key {
                    match self
                        .by_idempotency_key
                        .entry((order.customer.clone(), key.clone()))
                    {
                        Entry::Occupied(_) => {
                            return Err(inconsistent(format!(
                                "the idempotency key of order {} is stored twice",
                                order.id
                            )))
                        }
                        Entry::Vacant(entry) => {
                            entry.insert(KeyEntry::of(&order));
                        }
                    }
                }
                if order.status == OrderStatus::Reserved {
                    expiring.push((order.reserved_until, order.id));
                }
                if let Some(at) = self.config.retention.order_leaves_at(&order) {
                    retiring.push((at, order.id));
                }
                if order.id.shard == self.config.shard && order.id.epoch == self.config.epoch {
                    self.next_order_number = self.next_order_number.max(order.id.number + 1);
                }
                by_customer.add(&order);
                slot.insert(order);
            }
        }
        by_customer.finish();
        for ((id, sku), (reserved, sold)) in skus.iter_mut().zip(counts) {
            let implied = implied.entry((*id).clone()).or_default();
            implied.0 += reserved;
            implied.1 += sold;
            // Many orders of one customer, or few orders of many units,
            // reserved more than it needs.
            if sku.held_by_customer.capacity() > 4 * sku.held_by_customer.len().max(1) {
                sku.held_by_customer.shrink_to_fit();
            }
        }
        // Inserted in order, each lands at the end of its queue's sorted run.
        expiring.sort_unstable();
        for key in expiring {
            self.expiry_queue.insert(key);
        }
        retiring.sort_unstable();
        for key in retiring {
            self.retire_queue.insert(key);
        }
        Ok(())
    }

    /// Checks every SKU's counters against its orders. O(orders): for tests and
    /// recovery, not the order path.
    pub fn assert_consistent(&self) {
        // What the orders imply per SKU: units reserved, units sold, and
        // the units each customer holds, for a SKU that counts its holders.
        // Sized up front from what the SKUs say they hold: if the orders
        // imply other holders, the comparison below fails anyway.
        type Implied<'a> = (u64, u64, Option<IdMap<&'a CustomerId, u64>>);
        let mut implied: IdMap<&SkuId, Implied> = self
            .skus
            .values()
            .map(|sku| {
                let held = sku.counts_holders().then(|| {
                    let mut held = IdMap::default();
                    held.reserve(sku.held_by_customer.len());
                    held
                });
                (&sku.id, (0, 0, held))
            })
            .collect();
        for (sku, settled) in &self.settled {
            let entry = implied.entry(sku).or_default();
            entry.1 += settled.sold;
            if let Some(held) = &mut entry.2 {
                for (customer, quantity) in &settled.by_customer {
                    *held.entry(customer).or_default() += quantity;
                }
            }
            assert_eq!(
                settled.sold,
                settled.by_customer.values().sum::<u64>(),
                "sku {sku} settled units"
            );
        }
        for ((customer, key), entry) in &self.by_idempotency_key {
            match self.orders.get(&entry.order) {
                Some(order) => {
                    assert!(!entry.retired, "key of an order in memory marked retired");
                    assert_eq!(order.idempotency_key.as_ref(), Some(key));
                    assert_eq!(&order.customer, customer);
                }
                None => assert!(entry.retired, "key of order {} lost its order", entry.order),
            }
        }
        let mut live = 0;
        for order in self.orders.values() {
            let entry = implied.entry(&order.sku).or_default();
            let quantity = u64::from(order.quantity);
            match order.status {
                OrderStatus::Reserved => entry.0 += quantity,
                OrderStatus::Confirmed | OrderStatus::Shipped => entry.1 += quantity,
                _ => {}
            }
            if order.status.holds_stock() {
                live += 1;
                if let Some(held) = &mut entry.2 {
                    *held.entry(&order.customer).or_default() += quantity;
                }
            }
        }
        assert_eq!(self.live_orders, live, "live order count");
        assert_eq!(
            self.by_customer.len(),
            self.orders.len(),
            "customer index size"
        );
        for (customer, positions) in self.by_customer.iter() {
            for position in positions {
                let order = self
                    .orders
                    .get(&position.id)
                    .expect("the customer index names an order not in memory");
                assert_eq!(&order.customer, customer, "customer index owner");
                assert_eq!(
                    *position,
                    ListingPosition::of(order),
                    "customer index position"
                );
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
            let Some(held) = held else {
                assert!(
                    sku.held_by_customer.is_empty(),
                    "sku {} counts holders without a per-customer limit",
                    sku.id
                );
                continue;
            };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Command, PlaceOrder, PutSku, RequestedSettings};

    /// A shard with SKU "L" (limit 5) and SKU "U" (no limit), and orders of
    /// alice (2 units of L) and bob (1 of L, 1 of U).
    fn shard() -> ShardCore {
        let mut core = ShardCore::new(ShardConfig {
            shard: 0,
            epoch: 1,
            orders_max: 100,
            expiry_batch_max: 100,
            retention: Retention::default(),
        });
        let now = Timestamp(1_000);
        for (sku, limit) in [("L", Some(5)), ("U", None)] {
            let settings = RequestedSettings {
                per_customer_limit: limit,
                ..RequestedSettings::default()
            };
            let put = PutSku::parse(sku, Some(10), settings).unwrap();
            core.execute(Command::PutSku(put), now).reply.unwrap();
        }
        for (sku, customer, quantity) in [("L", "alice", 2), ("L", "bob", 1), ("U", "bob", 1)] {
            let place = PlaceOrder {
                sku: SkuId::parse(sku).unwrap(),
                quantity,
                customer: CustomerId::parse(customer).unwrap(),
                idempotency_key: None,
            };
            core.execute(Command::PlaceOrder(place), now).reply.unwrap();
        }
        core
    }

    /// The verification finds every way a SKU's holder counts can disagree
    /// with its orders.
    #[test]
    fn the_verification_finds_wrong_holder_counts() {
        shard().assert_consistent();
        let alice = CustomerId::parse("alice").unwrap();
        let carol = CustomerId::parse("carol").unwrap();
        type Damage = fn(&mut IdMap<CustomerId, u64>, &CustomerId, &CustomerId);
        let damage: [(&str, Damage); 5] = [
            ("a count too high", |held, alice, _| {
                *held.get_mut(alice).unwrap() += 1
            }),
            ("a count too low", |held, alice, _| {
                *held.get_mut(alice).unwrap() -= 1
            }),
            ("a holder missing", |held, alice, _| {
                held.remove(alice);
            }),
            ("a holder too many", |held, _, carol| {
                held.insert(carol.clone(), 1);
            }),
            ("a holder moved", |held, alice, carol| {
                let units = held.remove(alice).unwrap();
                held.insert(carol.clone(), units);
            }),
        ];
        for (what, damage) in damage {
            let mut core = shard();
            let sku = core.skus.get_mut(&SkuId::parse("L").unwrap()).unwrap();
            damage(&mut sku.held_by_customer, &alice, &carol);
            let found = std::panic::catch_unwind(|| core.assert_consistent());
            assert!(found.is_err(), "{what} was not found");
        }
        // A SKU without a limit keeps no holders.
        let mut core = shard();
        let sku = core.skus.get_mut(&SkuId::parse("U").unwrap()).unwrap();
        sku.held_by_customer.insert(alice, 1);
        assert!(std::panic::catch_unwind(|| core.assert_consistent()).is_err());
    }
}
