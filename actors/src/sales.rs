//! `SalesTally`: what one shard decided for each of its SKUs since the node
//! started (reservations made, and how they ended; the first order and the
//! sell-out), for the sales report (`GET /v1/admin/report`). Kept by the
//! shard's own thread beside its core, so counting costs one map look-up per
//! event and no lock. Only what this node decided while primary is counted:
//! a standby applying its primary's records counts nothing, and a restart
//! starts from zero (the stock counters in the core are what survives).

use crate::domain::{Event, IdMap, ShardCore, SkuId, Timestamp};

/// One SKU's figures decided on this node since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SkuSales {
    /// Orders reserved (created), and their units.
    pub reserved_orders: u64,
    pub reserved_units: u64,
    /// Reservations confirmed (paid), cancelled, expired unpaid.
    pub confirmed_orders: u64,
    pub cancelled_orders: u64,
    pub expired_orders: u64,
    /// The first order reserved on this node.
    pub first_order_at: Option<Timestamp>,
    /// When an order took the last available unit; cleared when units are
    /// available again (a restock, a cancellation, an expiry).
    pub sold_out_at: Option<Timestamp>,
}

/// Every SKU's `SkuSales` of one shard.
#[derive(Debug, Default)]
pub struct SalesTally {
    skus: IdMap<SkuId, SkuSales>,
}

impl SalesTally {
    /// Counts `event`, which `core` has applied already (so the order and
    /// the SKU's stock are read as the event left them).
    pub fn note(&mut self, core: &ShardCore, event: &Event) {
        let (sku, at) = match event {
            Event::OrderReserved(order) => {
                let sales = self.skus.entry(order.sku.clone()).or_default();
                sales.reserved_orders += 1;
                sales.reserved_units += u64::from(order.quantity);
                sales.first_order_at.get_or_insert(order.created_at);
                (order.sku.clone(), Some(order.created_at))
            }
            Event::OrderConfirmed { id, at }
            | Event::OrderCancelled { id, at }
            | Event::OrderExpired { id, at } => {
                let Some(order) = core.order(id) else { return };
                let sales = self.skus.entry(order.sku.clone()).or_default();
                match event {
                    Event::OrderConfirmed { .. } => sales.confirmed_orders += 1,
                    Event::OrderCancelled { .. } => sales.cancelled_orders += 1,
                    _ => sales.expired_orders += 1,
                }
                (order.sku.clone(), Some(*at))
            }
            Event::Restocked { sku, .. } => (sku.clone(), None),
            _ => return,
        };
        let Some(stock) = core.sku(&sku) else { return };
        let sales = self.skus.entry(sku).or_default();
        if stock.available == 0 {
            if sales.sold_out_at.is_none() {
                sales.sold_out_at = at;
            }
        } else {
            sales.sold_out_at = None;
        }
    }

    /// Every SKU's figures, in no particular order.
    pub fn all(&self) -> Vec<(SkuId, SkuSales)> {
        self.skus
            .iter()
            .map(|(sku, sales)| (sku.clone(), sales.clone()))
            .collect()
    }
}
