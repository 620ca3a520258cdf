//! `PutSku`: create a SKU with its stock, or change an existing SKU's settings.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::Event;
use crate::domain::shard::ShardCore;
use crate::domain::sku::{
    SkuSettings, QUANTITY_PER_ORDER_MAX, RESERVATION_TTL_SECS_MAX, STOCK_MAX,
};
use crate::domain::types::{InvalidField, SkuId, Timestamp};

#[derive(Clone, Debug)]
pub struct PutSku {
    pub sku: SkuId,
    /// Stock at creation. On an update it must be absent or equal the SKU's total:
    /// stock only grows through `Restock`.
    pub stock: Option<u64>,
    pub settings: SkuSettings,
}

impl PutSku {
    /// Checks every field against its rule; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidField> {
        if let Some(stock) = self.stock {
            if stock > STOCK_MAX {
                return Err(InvalidField::new(
                    "stock",
                    format!("must be at most {STOCK_MAX}"),
                ));
            }
        }
        let settings = &self.settings;
        if settings.per_customer_limit == Some(0) {
            return Err(InvalidField::new(
                "per_customer_limit",
                "must be at least 1 when given",
            ));
        }
        if settings.max_quantity_per_order == 0
            || settings.max_quantity_per_order > QUANTITY_PER_ORDER_MAX
        {
            return Err(InvalidField::new(
                "max_quantity_per_order",
                format!("must be between 1 and {QUANTITY_PER_ORDER_MAX}"),
            ));
        }
        if settings.reservation_ttl_secs == 0
            || settings.reservation_ttl_secs > RESERVATION_TTL_SECS_MAX
        {
            return Err(InvalidField::new(
                "reservation_ttl_secs",
                format!("must be between 1 and {RESERVATION_TTL_SECS_MAX}"),
            ));
        }
        if settings
            .sale_starts_at
            .is_some_and(|at| at > Timestamp::MAX)
        {
            return Err(InvalidField::new(
                "sale_starts_at",
                "must be at most 9999-12-31T23:59:59.999Z",
            ));
        }
        if settings.low_stock_threshold > STOCK_MAX {
            return Err(InvalidField::new(
                "low_stock_threshold",
                format!("must be at most {STOCK_MAX}"),
            ));
        }
        Ok(())
    }

    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        events: &mut Vec<Event>,
    ) -> Result<Reply, CoreError> {
        self.validate()?;
        let created = match shard.sku(&self.sku) {
            Some(existing) => {
                if self.stock.is_some_and(|stock| stock != existing.total) {
                    return Err(InvalidField::new(
                        "stock",
                        format!(
                            "is only set when the SKU is created (its total is {}); add stock with restock",
                            existing.total
                        ),
                    )
                    .into());
                }
                if existing.settings != self.settings {
                    events.push(Event::SkuSettingsChanged {
                        sku: self.sku.clone(),
                        settings: self.settings,
                    });
                }
                false
            }
            None => {
                let stock = self
                    .stock
                    .ok_or_else(|| InvalidField::new("stock", "is required to create a SKU"))?;
                events.push(Event::SkuCreated {
                    sku: self.sku.clone(),
                    stock,
                    settings: self.settings,
                });
                true
            }
        };
        apply_decided(shard, events);
        let sku = shard.sku(&self.sku).expect("sku exists after put").clone();
        Ok(Reply::Sku { sku, created })
    }
}
