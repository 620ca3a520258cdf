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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Cancel, Command, Confirm, CustomerId, ExpireDue, OrderId, PlaceOrder, PutSku, Reply,
        Restock, Retention, ShardConfig, SkuSettings,
    };

    struct Run {
        core: ShardCore,
        tally: SalesTally,
    }

    impl Run {
        fn execute(&mut self, command: Command, now: u64) -> Option<OrderId> {
            let execution = self.core.execute(command, Timestamp(now));
            for event in &execution.events {
                self.tally.note(&self.core, event);
            }
            match execution.reply {
                Ok(Reply::Order { order, .. }) => Some(order.id),
                _ => None,
            }
        }

        fn place(&mut self, customer: &str, now: u64) -> Option<OrderId> {
            self.execute(
                Command::PlaceOrder(PlaceOrder {
                    sku: SkuId::parse("A").unwrap(),
                    quantity: 1,
                    customer: CustomerId::parse(customer).unwrap(),
                    idempotency_key: None,
                }),
                now,
            )
        }

        fn sales(&self) -> SkuSales {
            let all = self.tally.all();
            assert_eq!(all.len(), 1);
            all[0].1.clone()
        }
    }

    /// Reservations are counted with how they ended (the order's SKU found
    /// through the core), the first order is kept, and the sell-out time is
    /// set by the order that took the last unit and cleared when units come
    /// back (a cancellation, a restock).
    #[test]
    fn counts_reservations_their_ends_and_the_sell_out() {
        let mut run = Run {
            core: ShardCore::new(ShardConfig {
                shard: 0,
                epoch: 1,
                orders_max: 100,
                expiry_batch_max: 100,
                retention: Retention {
                    finished_order_secs: 3_600,
                    confirmed_order_secs: 3_600,
                    idempotency_key_secs: 3_600,
                    retire_batch_max: 100,
                },
            }),
            tally: SalesTally::default(),
        };
        let settings = SkuSettings {
            per_customer_limit: None,
            max_quantity_per_order: 10,
            sale_starts_at: None,
            reservation_ttl_secs: 60,
            low_stock_threshold: 0,
        };
        run.execute(
            Command::PutSku(PutSku {
                sku: SkuId::parse("A").unwrap(),
                stock: Some(2),
                settings,
            }),
            1_000,
        );
        let first = run.place("c1", 2_000).unwrap();
        let second = run.place("c2", 3_000).unwrap();
        assert_eq!(run.sales().sold_out_at, Some(Timestamp(3_000)));
        assert_eq!(run.place("c3", 3_500), None, "sold out");
        run.execute(
            Command::Confirm(Confirm {
                id: first,
                customer: None,
            }),
            4_000,
        );
        run.execute(
            Command::Cancel(Cancel {
                id: second,
                customer: None,
            }),
            5_000,
        );
        assert_eq!(run.sales().sold_out_at, None, "a unit came back");
        run.place("c4", 6_000).unwrap();
        assert_eq!(run.sales().sold_out_at, Some(Timestamp(6_000)));
        run.execute(
            Command::Restock(Restock {
                sku: SkuId::parse("A").unwrap(),
                quantity: 1,
            }),
            7_000,
        );
        assert_eq!(run.sales().sold_out_at, None, "restocked");
        run.execute(Command::ExpireDue(ExpireDue), 6_000 + 61_000);
        let sales = run.sales();
        assert_eq!(
            (
                sales.reserved_orders,
                sales.reserved_units,
                sales.confirmed_orders,
                sales.cancelled_orders,
                sales.expired_orders
            ),
            (3, 3, 1, 1, 1)
        );
        assert_eq!(sales.first_order_at, Some(Timestamp(2_000)));
    }
}
