//! Moving an order to a SKU of another shard (another size or colour kept
//! elsewhere): the order keeps its id; its units are taken on the new SKU
//! before they are given back on the old one. Four commands, each decided by
//! one shard, driven in turn by the node (`Node::change_order`):
//!
//! 1. `BeginMove` on the order's shard: the same checks as a change, then
//!    the order is frozen (`OrderMoveStarted`): no confirm, cancel, ship,
//!    change or expiry decides anything about it until the move ends.
//! 2. `AdoptOrder` on the new SKU's shard: the rules a new order of that SKU
//!    and quantity would meet; on success it holds the units and the order
//!    (`OrderAdopted`, carrying the order and its history).
//! 3. Then `FinishMove` on the first shard (`OrderMovedOut`: its units go
//!    back, the order leaves), or, when step 2 was refused, `AbortMove`
//!    (`OrderMoveAborted`: the order is as it was).
//!
//! A crash between two steps leaves a frozen order; recovery (and a promoted
//! standby) ends it: finished when the other shard adopted the order,
//! aborted when it did not (`Node::resolve_moves`). In between, both shards
//! hold units: never more units taken than exist, none lost.

use super::{apply_decided, check_offer, order_reply, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::order::{Order, OrderChange};
use crate::domain::shard::ShardCore;
use crate::domain::types::{CustomerId, IdempotencyKey, OrderId, SkuId, Timestamp};

/// Step 1, on the order's shard.
#[derive(Clone, Debug)]
pub struct BeginMove {
    pub id: OrderId,
    /// `Some`: only this customer's order.
    pub customer: Option<CustomerId>,
    pub to_shard: u32,
    pub to_sku: SkuId,
    /// `None` keeps the quantity.
    pub to_quantity: Option<u32>,
    pub key: IdempotencyKey,
}

/// Step 2, on the new SKU's shard: `order` as it will be there (its new SKU
/// and quantity), with its whole history (the move last).
#[derive(Clone, Debug)]
pub struct AdoptOrder {
    /// Boxed: a command is moved whole on every order's path, and this rare
    /// one would make every command 144 bytes instead of 104.
    pub order: Box<Order>,
    pub history: Vec<OrderChange>,
}

/// Step 3 when step 2 was refused, on the order's shard.
#[derive(Clone, Debug)]
pub struct AbortMove {
    pub id: OrderId,
}

/// Step 3 when step 2 succeeded, on the order's shard.
#[derive(Clone, Debug)]
pub struct FinishMove {
    pub id: OrderId,
}

/// A frozen order's move, as its shard remembers it until it ends.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PendingMove {
    pub to_shard: u32,
    pub change: OrderChange,
}

impl BeginMove {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let order = super::transition::owned_order(shard, &self.id, self.customer.as_ref())?;
        if order.id.shard != shard.config().shard {
            // Moved here once: a second move could return it to the shard
            // that still keeps its key and its forwarding entry.
            return Err(CoreError::ChangeAcrossShards {
                id: self.id,
                sku: self.to_sku,
            });
        }
        let history = shard.changes_of(&self.id);
        if history.iter().any(|change| change.key == self.key) {
            // This key changed the order here before, to a SKU of this
            // shard: not this request.
            return Err(CoreError::IdempotencyKeyReused);
        }
        super::change_order::changeable(order, now)?;
        super::change_order::room_for_a_change(self.id, history)?;
        let change = OrderChange {
            at: now,
            from_sku: order.sku.clone(),
            from_quantity: order.quantity,
            to_sku: self.to_sku,
            to_quantity: self.to_quantity.unwrap_or(order.quantity),
            key: self.key,
        };
        events.push(Event::OrderMoveStarted {
            id: self.id,
            to_shard: self.to_shard,
            change: change.clone(),
        });
        apply_decided(shard, events);
        let order = shard
            .order(&self.id)
            .expect("a frozen order is in memory")
            .clone();
        let mut history = shard.changes_of(&self.id).to_vec();
        history.push(change);
        Ok(Reply::Moving { order, history })
    }
}

impl AdoptOrder {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let id = self.order.id;
        if shard.order(&id).is_some() {
            return Err(CoreError::OrderBusy(id));
        }
        let to_sku = self.order.sku.clone();
        let sku = shard
            .sku(&to_sku)
            .ok_or_else(|| CoreError::UnknownSku(to_sku.clone()))?;
        check_offer(
            sku,
            self.order.quantity,
            sku.available,
            || sku.held_by(&self.order.customer),
            now,
        )?;
        if shard.live_order_count() >= shard.orders_max() {
            return Err(CoreError::OrderCapacityReached(shard.orders_max()));
        }
        events.push(Event::OrderAdopted {
            order: *self.order,
            history: self.history,
        });
        apply_decided(shard, events);
        Ok(order_reply(shard, &id, false))
    }
}

impl AbortMove {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        if shard.pending_move(&self.id).is_none() {
            return Err(CoreError::UnknownOrder(self.id));
        }
        events.push(Event::OrderMoveAborted { id: self.id });
        apply_decided(shard, events);
        Ok(order_reply(shard, &self.id, false))
    }
}

impl FinishMove {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let Some(order) = shard.order(&self.id).cloned() else {
            return Err(CoreError::UnknownOrder(self.id));
        };
        if shard.pending_move(&self.id).is_none() {
            return Err(CoreError::UnknownOrder(self.id));
        }
        events.push(Event::OrderMovedOut { id: self.id });
        apply_decided(shard, events);
        // The order as it was here; the node answers with the moved one.
        Ok(Reply::Order {
            order,
            created: false,
        })
    }
}
