//! `ChangeOrder`: a reserved or confirmed order takes another quantity and/or
//! another SKU of the same shard (another size, another colour), all or
//! nothing: every rule a new order of that SKU and quantity would meet is
//! checked against the stock and the customer's holding as they would be
//! without this order, and a refusal leaves the order as it was. Fewer units
//! go back to stock at once; more are taken only if stock and the
//! per-customer limit allow. The order keeps its id, status and times; the
//! change joins its history.
//!
//! Idempotent by key: a change whose key is already in the order's history
//! answers the order as it is now (the same request) or is refused as a
//! reused key (another request).

use super::{apply_decided, check_offer, order_reply, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::order::{Order, OrderChange, OrderStatus, CHANGES_PER_ORDER_MAX};
use crate::domain::shard::ShardCore;
use crate::domain::sku::QUANTITY_PER_ORDER_MAX;
use crate::domain::types::{CustomerId, IdempotencyKey, InvalidField, OrderId, SkuId, Timestamp};

#[derive(Clone, Debug)]
pub struct ChangeOrder {
    pub id: OrderId,
    /// `Some`: only this customer's order may be changed.
    pub customer: Option<CustomerId>,
    /// The new SKU; `None` keeps it.
    pub sku: Option<SkuId>,
    /// The new quantity; `None` keeps it.
    pub quantity: Option<u32>,
    pub key: IdempotencyKey,
}

/// Whether `order` may change now (stay or move): reserved and not yet due
/// to expire, or confirmed.
pub(super) fn changeable(order: &Order, now: Timestamp) -> Result<(), CoreError> {
    let from = match order.status {
        OrderStatus::Confirmed => return Ok(()),
        OrderStatus::Reserved if now < order.reserved_until => return Ok(()),
        OrderStatus::Reserved => "expired",
        other => other.as_str(),
    };
    Err(CoreError::InvalidTransition {
        id: order.id,
        from,
        to: "changed",
    })
}

/// Whether an order with `history` may take one more change.
pub(super) fn room_for_a_change(id: OrderId, history: &[OrderChange]) -> Result<(), CoreError> {
    if history.len() >= CHANGES_PER_ORDER_MAX {
        return Err(CoreError::TooManyChanges {
            id,
            max: CHANGES_PER_ORDER_MAX,
        });
    }
    Ok(())
}

impl ChangeOrder {
    /// A change as a front end received it: at least one of `sku` and
    /// `quantity`; `sku` by its rule, `quantity` from 1 to
    /// `QUANTITY_PER_ORDER_MAX` (the SKU's own maximum is the shard's
    /// decision). The error names the first field that breaks its rule.
    pub fn parse(
        id: OrderId,
        customer: Option<CustomerId>,
        sku: Option<&str>,
        quantity: Option<u64>,
        key: IdempotencyKey,
    ) -> Result<ChangeOrder, InvalidField> {
        if sku.is_none() && quantity.is_none() {
            return Err(InvalidField::new(
                "body",
                "must name what changes: `quantity`, `sku` or both",
            ));
        }
        let sku = sku.map(SkuId::parse).transpose()?;
        let quantity = quantity
            .map(|quantity| {
                u32::try_from(quantity)
                    .ok()
                    .filter(|quantity| (1..=QUANTITY_PER_ORDER_MAX).contains(quantity))
                    .ok_or_else(|| {
                        InvalidField::new(
                            "quantity",
                            format!("must be between 1 and {QUANTITY_PER_ORDER_MAX}"),
                        )
                    })
            })
            .transpose()?;
        Ok(ChangeOrder {
            id,
            customer,
            sku,
            quantity,
            key,
        })
    }

    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let order = super::transition::owned_order(shard, &self.id, self.customer.as_ref())?;
        let to_sku = self.sku.clone().unwrap_or_else(|| order.sku.clone());
        let to_quantity = self.quantity.unwrap_or(order.quantity);
        let history = shard.changes_of(&self.id);
        if let Some(earlier) = history.iter().find(|change| change.key == self.key) {
            // The same request again: answered as the order is now.
            return if earlier.to_sku == to_sku && earlier.to_quantity == to_quantity {
                Ok(order_reply(shard, &self.id, false))
            } else {
                Err(CoreError::IdempotencyKeyReused)
            };
        }
        changeable(order, now)?;
        if to_sku == order.sku && to_quantity == order.quantity {
            // Nothing to change.
            return Ok(order_reply(shard, &self.id, false));
        }
        room_for_a_change(order.id, history)?;
        let sku = shard
            .sku(&to_sku)
            .ok_or_else(|| CoreError::UnknownSku(to_sku.clone()))?;
        // What the target SKU would offer, and what the customer would hold
        // of it, without this order.
        let own = if to_sku == order.sku {
            u64::from(order.quantity)
        } else {
            0
        };
        let held = || sku.held_by(&order.customer).saturating_sub(own);
        check_offer(sku, to_quantity, sku.available + own, held, now)?;
        let change = OrderChange {
            at: now,
            from_sku: order.sku.clone(),
            from_quantity: order.quantity,
            to_sku: sku.id.clone(),
            to_quantity,
            key: self.key,
        };
        events.push(Event::OrderChanged {
            id: self.id,
            change,
        });
        apply_decided(shard, events);
        Ok(order_reply(shard, &self.id, false))
    }
}
