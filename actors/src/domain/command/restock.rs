//! `Restock`: add units to a SKU's stock.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::Event;
use crate::domain::shard::ShardCore;
use crate::domain::sku::STOCK_MAX;
use crate::domain::types::{InvalidField, SkuId};

#[derive(Clone, Debug)]
pub struct Restock {
    pub sku: SkuId,
    pub quantity: u64,
}

impl Restock {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        events: &mut Vec<Event>,
    ) -> Result<Reply, CoreError> {
        let sku = shard
            .sku(&self.sku)
            .ok_or_else(|| CoreError::UnknownSku(self.sku.clone()))?;
        if self.quantity == 0 || sku.total.saturating_add(self.quantity) > STOCK_MAX {
            return Err(InvalidField::new(
                "quantity",
                format!(
                    "must be at least 1 and keep the total at most {STOCK_MAX} (it is {})",
                    sku.total
                ),
            )
            .into());
        }
        events.push(Event::Restocked {
            sku: self.sku.clone(),
            quantity: self.quantity,
        });
        apply_decided(shard, events);
        let sku = shard
            .sku(&self.sku)
            .expect("sku exists after restock")
            .clone();
        Ok(Reply::Sku {
            sku,
            created: false,
        })
    }
}
