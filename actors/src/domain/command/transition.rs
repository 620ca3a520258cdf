//! `Confirm` (payment succeeded: reserved → confirmed) and `Cancel` (reserved or
//! confirmed → cancelled, stock returns). Both are idempotent: asking for the
//! status an order already has returns it unchanged.

use super::{apply_decided, order_reply, CoreError, Reply};
use crate::domain::event::Event;
use crate::domain::order::OrderStatus;
use crate::domain::shard::ShardCore;
use crate::domain::types::{OrderId, Timestamp};

#[derive(Clone, Debug)]
pub struct Confirm {
    pub id: OrderId,
}

#[derive(Clone, Debug)]
pub struct Cancel {
    pub id: OrderId,
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
        events: &mut Vec<Event>,
    ) -> Result<Reply, CoreError> {
        let order = shard
            .order(&self.id)
            .ok_or(CoreError::UnknownOrder(self.id))?;
        match order.status {
            OrderStatus::Confirmed => return Ok(order_reply(shard, &self.id, false)),
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
        events: &mut Vec<Event>,
    ) -> Result<Reply, CoreError> {
        let order = shard
            .order(&self.id)
            .ok_or(CoreError::UnknownOrder(self.id))?;
        match order.status {
            OrderStatus::Cancelled => return Ok(order_reply(shard, &self.id, false)),
            OrderStatus::Expired => {
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
