//! `Restock`: add units to a SKU's stock.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::shard::ShardCore;
use crate::domain::sku::STOCK_MAX;
use crate::domain::types::{InvalidField, SkuId};

#[derive(Clone, Debug)]
pub struct Restock {
    pub sku: SkuId,
    pub quantity: u64,
}

impl Restock {
    /// A restock request as a command: the SKU id by its rule, `quantity`
    /// from 1 to `STOCK_MAX`. Whether the new total stays within `STOCK_MAX`
    /// is the shard's decision, which knows the total.
    pub fn parse(sku: &str, quantity: u64) -> Result<Restock, InvalidField> {
        let sku = SkuId::parse(sku)?;
        if quantity == 0 || quantity > STOCK_MAX {
            return Err(InvalidField::new(
                "quantity",
                format!("must be between 1 and {STOCK_MAX}"),
            ));
        }
        Ok(Restock { sku, quantity })
    }

    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        events: &mut Events,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The SKU id and the quantity are refused by their rules, with the
    /// field named; a valid restock keeps its values.
    #[test]
    fn parse_names_the_field_of_each_broken_rule() {
        let command = Restock::parse("A", 5).unwrap();
        assert_eq!((command.sku.as_str(), command.quantity), ("A", 5));
        assert!(Restock::parse("A", STOCK_MAX).is_ok());
        assert_eq!(Restock::parse("no spaces", 5).unwrap_err().field, "sku");
        for quantity in [0, STOCK_MAX + 1] {
            let error = Restock::parse("A", quantity).unwrap_err();
            assert_eq!(error.field, "quantity");
            assert!(
                error.to_string().starts_with("quantity: must be between 1"),
                "{error}"
            );
        }
    }
}
