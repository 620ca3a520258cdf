//! `SkuGate`: what a shard publishes of a SKU so that the front ends can
//! refuse an order for it without a round trip to the shard: sold out, or its
//! sale not open yet. Most of a flash sale's traffic is buyers pressing "buy"
//! after the last unit went; each of those answered here costs the shard and
//! the log nothing.
//!
//! The rules, each erring towards "ask the shard":
//! 1. A gate reflects its SKU after the shard's event `seq`, and is used only
//!    once that event is answerable (durable, and in sync mode acknowledged by
//!    the standby): a refusal never reports state the disk or the standby
//!    does not have, exactly as the shard's own refusals wait for it.
//! 2. The shard publishes a SKU's gate for every decision that touches the
//!    SKU, as soon as it is decided and before its events go to the log (whose
//!    writer may answer them before the shard runs again): a unit that becomes
//!    available again (cancel, expiry, restock, a settings change) clears the
//!    gate before anyone hears of it or can be sold it, and a buyer refused
//!    meanwhile asked at a moment the shard had no unit for them.
//! 3. Only what the shard decides from the SKU alone, in the shard's order:
//!    an order over the SKU's maximum quantity goes to the shard (which names
//!    the field), then `sale_not_open`, then `sold_out`. An idempotent retry
//!    goes to the shard too (the caller's business: its order may exist).

use super::command::CoreError;
use super::sku::Sku;
use super::types::{SkuId, Timestamp};

/// A SKU's state as far as a refusal at the front end needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkuGate {
    /// The shard's last event when this was published.
    pub seq: u64,
    pub sold_out: bool,
    pub sale_starts_at: Option<Timestamp>,
    pub max_quantity_per_order: u32,
}

impl SkuGate {
    /// `sku` as it is after the shard's event `seq`.
    pub fn of(sku: &Sku, seq: u64) -> SkuGate {
        SkuGate {
            seq,
            sold_out: sku.available == 0,
            sale_starts_at: sku.settings.sale_starts_at,
            max_quantity_per_order: sku.settings.max_quantity_per_order,
        }
    }

    /// Whether `other` says the same of its SKU, whatever event each was
    /// published after: a shard republishes a SKU's gate only when this
    /// changes, since an older `seq` that said the same is as true now.
    pub fn same_state(&self, other: &SkuGate) -> bool {
        self.sold_out == other.sold_out
            && self.sale_starts_at == other.sale_starts_at
            && self.max_quantity_per_order == other.max_quantity_per_order
    }

    /// Whether this gate could refuse anything: most orders meet a SKU that
    /// is on sale with units left, and are sent on without more checks.
    pub fn may_refuse(&self) -> bool {
        self.sold_out || self.sale_starts_at.is_some()
    }

    /// The refusal the shard would answer an order of `quantity` units of
    /// `sku` at `now`, when its shard's events through `answerable_seq` may be
    /// reported; `None`: ask the shard.
    pub fn refusal(
        &self,
        sku: &SkuId,
        quantity: u32,
        now: Timestamp,
        answerable_seq: u64,
    ) -> Option<CoreError> {
        if answerable_seq < self.seq || quantity > self.max_quantity_per_order {
            return None;
        }
        if let Some(starts_at) = self.sale_starts_at {
            if now < starts_at {
                return Some(CoreError::SaleNotOpen {
                    sku: sku.clone(),
                    starts_at,
                });
            }
        }
        self.sold_out.then(|| CoreError::SoldOut(sku.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sku::SkuSettings;

    fn sku(available: u64, starts_at: Option<u64>) -> Sku {
        let settings = SkuSettings {
            sale_starts_at: starts_at.map(Timestamp),
            max_quantity_per_order: 2,
            ..SkuSettings::default()
        };
        let mut sku = Sku::new(SkuId::parse("S").unwrap(), 10, settings);
        sku.available = available;
        sku.sold = 10 - available;
        sku
    }

    fn refusal(gate: &SkuGate, quantity: u32, now: u64, answerable: u64) -> Option<&'static str> {
        let id = SkuId::parse("S").unwrap();
        gate.refusal(&id, quantity, Timestamp(now), answerable)
            .map(|error| match error {
                CoreError::SoldOut(_) => "sold_out",
                CoreError::SaleNotOpen { .. } => "sale_not_open",
                _ => "other",
            })
    }

    #[test]
    fn a_sold_out_sku_is_refused_once_its_sell_out_is_answerable() {
        let gate = SkuGate::of(&sku(0, None), 7);
        assert_eq!(
            refusal(&gate, 1, 0, 6),
            None,
            "the sell-out is not durable yet"
        );
        assert_eq!(refusal(&gate, 1, 0, 7), Some("sold_out"));
        assert_eq!(refusal(&gate, 1, 0, 8), Some("sold_out"));
    }

    #[test]
    fn a_sku_with_units_is_always_asked() {
        let gate = SkuGate::of(&sku(1, None), 3);
        assert_eq!(refusal(&gate, 1, 0, 3), None);
        assert_eq!(
            refusal(&gate, 2, 0, 3),
            None,
            "insufficient stock is the shard's"
        );
    }

    #[test]
    fn before_the_opening_the_sale_is_not_open_and_from_it_the_stock_decides() {
        let gate = SkuGate::of(&sku(0, Some(1_000)), 1);
        assert_eq!(refusal(&gate, 1, 999, 1), Some("sale_not_open"));
        assert_eq!(refusal(&gate, 1, 1_000, 1), Some("sold_out"));
        let gate = SkuGate::of(&sku(5, Some(1_000)), 1);
        assert_eq!(refusal(&gate, 1, 999, 1), Some("sale_not_open"));
        assert_eq!(refusal(&gate, 1, 1_000, 1), None);
    }

    #[test]
    fn an_order_over_the_skus_maximum_quantity_goes_to_the_shard() {
        // The shard names the quantity field first; the gate never answers
        // for it.
        let gate = SkuGate::of(&sku(0, Some(1_000)), 1);
        assert_eq!(refusal(&gate, 3, 0, 1), None);
        assert_eq!(refusal(&gate, 2, 0, 1), Some("sale_not_open"));
    }
}
