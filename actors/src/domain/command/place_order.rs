//! `PlaceOrder`: reserve units of a SKU for a customer. The single-owner decision
//! that prevents oversell: the shard is the only writer of its SKUs' counters.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::Event;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::shard::ShardCore;
use crate::domain::types::{CustomerId, IdempotencyKey, InvalidField, SkuId, Timestamp};

#[derive(Clone, Debug)]
pub struct PlaceOrder {
    pub sku: SkuId,
    pub quantity: u32,
    pub customer: CustomerId,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl PlaceOrder {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Vec<Event>,
    ) -> Result<Reply, CoreError> {
        // A retry answers with the first result, before any rule is checked again:
        // stock may have run out since, but this customer's order exists.
        if let Some(key) = &self.idempotency_key {
            if let Some(existing) = shard.idempotency_key(&self.customer, key) {
                if existing.sku != self.sku || existing.quantity != self.quantity {
                    return Err(CoreError::IdempotencyKeyReused);
                }
                // An order that left memory is answered from the archive.
                return Ok(match shard.order(&existing.order) {
                    Some(order) => Reply::Order {
                        order: order.clone(),
                        created: false,
                    },
                    None => Reply::ArchivedOrder { id: existing.order },
                });
            }
        }
        let sku = shard
            .sku(&self.sku)
            .ok_or_else(|| CoreError::UnknownSku(self.sku.clone()))?;
        let max = sku.settings.max_quantity_per_order;
        if self.quantity == 0 || self.quantity > max {
            return Err(InvalidField::new(
                "quantity",
                format!("must be between 1 and {max} for sku {}", self.sku),
            )
            .into());
        }
        if let Some(starts_at) = sku.settings.sale_starts_at {
            if now < starts_at {
                return Err(CoreError::SaleNotOpen {
                    sku: self.sku,
                    starts_at,
                });
            }
        }
        let requested = u64::from(self.quantity);
        if sku.available == 0 {
            return Err(CoreError::SoldOut(self.sku));
        }
        if sku.available < requested {
            return Err(CoreError::InsufficientStock {
                sku: self.sku,
                available: sku.available,
                requested,
            });
        }
        if let Some(limit) = sku.settings.per_customer_limit {
            let held = sku.held_by(&self.customer);
            if held + requested > limit {
                return Err(CoreError::LimitExceeded {
                    sku: self.sku,
                    limit,
                    held,
                    requested,
                });
            }
        }
        if shard.live_order_count() >= shard.orders_max() {
            return Err(CoreError::OrderCapacityReached(shard.orders_max()));
        }
        let reserved_until = now.plus_secs(sku.settings.reservation_ttl_secs);
        // The order shares the shard's text of its SKU id, as it will in memory.
        let sku = sku.id.clone();
        let id = shard.allocate_order_id();
        let order = Order {
            id,
            sku,
            quantity: self.quantity,
            customer: self.customer,
            status: OrderStatus::Reserved,
            created_at: now,
            reserved_until,
            updated_at: now,
            idempotency_key: self.idempotency_key,
        };
        // A new order is in memory exactly as its event carries it: the reply
        // is the event's order, not a second look-up of the state.
        let reply = Reply::Order {
            order: order.clone(),
            created: true,
        };
        events.push(Event::OrderReserved(order));
        apply_decided(shard, events);
        Ok(reply)
    }
}
