//! `Confirm` (payment succeeded: reserved → confirmed), `Cancel` (reserved or
//! confirmed → cancelled, stock returns) and `Ship` (confirmed → shipped:
//! handed to the carrier, final). Each is idempotent: asking for the status an
//! order already has returns it unchanged (a confirm of a shipped order, too:
//! it was confirmed). Both may be limited to one
//! customer's orders: another customer's order is then `UnknownOrder`, as if it
//! did not exist (ids are sequential; existence is not a secret, but an order's
//! contents and its fate are its customer's).

use super::{apply_decided, order_reply, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::shard::ShardCore;
use crate::domain::types::{CustomerId, OrderId, Timestamp};

#[derive(Clone, Debug)]
pub struct Confirm {
    pub id: OrderId,
    /// `Some`: only this customer's order may be confirmed.
    pub customer: Option<CustomerId>,
}

#[derive(Clone, Debug)]
pub struct Cancel {
    pub id: OrderId,
    /// `Some`: only this customer's order may be cancelled.
    pub customer: Option<CustomerId>,
}

#[derive(Clone, Debug)]
pub struct Ship {
    pub id: OrderId,
}

/// The order `id` if it exists and, when `customer` is given, is theirs.
pub(super) fn owned_order<'a>(
    shard: &'a ShardCore,
    id: &OrderId,
    customer: Option<&CustomerId>,
) -> Result<&'a Order, CoreError> {
    if let Some(to) = shard.moved_to(id) {
        return Err(CoreError::Moved { id: *id, to });
    }
    if shard.pending_move(id).is_some() {
        return Err(CoreError::OrderBusy(*id));
    }
    shard
        .order(id)
        .filter(|order| customer.is_none_or(|customer| order.customer == *customer))
        .ok_or(CoreError::UnknownOrder(*id))
}

fn refuse(id: OrderId, from: OrderStatus, to: OrderStatus) -> CoreError {
    CoreError::InvalidTransition {
        id,
        from: from.as_str(),
        to: to.as_str(),
    }
}

impl Confirm {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let order = owned_order(shard, &self.id, self.customer.as_ref())?;
        match order.status {
            OrderStatus::Confirmed | OrderStatus::Shipped => {
                return Ok(order_reply(shard, &self.id, false))
            }
            OrderStatus::Cancelled | OrderStatus::Expired => {
                return Err(refuse(self.id, order.status, OrderStatus::Confirmed))
            }
            OrderStatus::Reserved => {}
        }
        if now >= order.reserved_until {
            // The reservation ran out before the expiry pass reached it: expire it
            // now, on the record, and refuse the confirmation.
            events.push(Event::OrderExpired {
                id: self.id,
                at: now,
            });
            apply_decided(shard, events);
            return Err(refuse(
                self.id,
                OrderStatus::Expired,
                OrderStatus::Confirmed,
            ));
        }
        events.push(Event::OrderConfirmed {
            id: self.id,
            at: now,
        });
        apply_decided(shard, events);
        Ok(order_reply(shard, &self.id, false))
    }
}

impl Cancel {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let order = owned_order(shard, &self.id, self.customer.as_ref())?;
        match order.status {
            OrderStatus::Cancelled => return Ok(order_reply(shard, &self.id, false)),
            OrderStatus::Expired | OrderStatus::Shipped => {
                return Err(refuse(self.id, order.status, OrderStatus::Cancelled))
            }
            OrderStatus::Reserved | OrderStatus::Confirmed => {}
        }
        events.push(Event::OrderCancelled {
            id: self.id,
            at: now,
        });
        apply_decided(shard, events);
        Ok(order_reply(shard, &self.id, false))
    }
}

impl Ship {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let order = owned_order(shard, &self.id, None)?;
        match order.status {
            OrderStatus::Shipped => return Ok(order_reply(shard, &self.id, false)),
            OrderStatus::Reserved | OrderStatus::Cancelled | OrderStatus::Expired => {
                return Err(refuse(self.id, order.status, OrderStatus::Shipped))
            }
            OrderStatus::Confirmed => {}
        }
        events.push(Event::OrderShipped {
            id: self.id,
            at: now,
        });
        apply_decided(shard, events);
        Ok(order_reply(shard, &self.id, false))
    }
}
