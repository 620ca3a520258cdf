//! `PutSku`: create a SKU with its stock, or change an existing SKU's settings.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::shard::ShardCore;
use crate::domain::sku::{
    RequestedSettings, SkuSettings, QUANTITY_PER_ORDER_MAX, RESERVATION_TTL_SECS_MAX, STOCK_MAX,
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
    /// A put-SKU request as a command: the SKU id by its rule, the absent
    /// settings at their defaults (`SkuSettings::with_defaults`), and every
    /// field checked (`validate`); the error names the first field that
    /// breaks its rule. Whether `stock` fits an existing SKU is the shard's
    /// decision.
    pub fn parse(
        sku: &str,
        stock: Option<u64>,
        requested: RequestedSettings,
    ) -> Result<PutSku, InvalidField> {
        let command = PutSku {
            sku: SkuId::parse(sku)?,
            stock,
            settings: SkuSettings::with_defaults(requested),
        };
        command.validate()?;
        Ok(command)
    }

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
        // Above the most stock a SKU may have, a limit could never bind.
        if settings
            .per_customer_limit
            .is_some_and(|limit| limit == 0 || limit > STOCK_MAX)
        {
            return Err(InvalidField::new(
                "per_customer_limit",
                format!("must be between 1 and {STOCK_MAX} when given"),
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
        events: &mut Events,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sku::{MAX_QUANTITY_PER_ORDER_DEFAULT, RESERVATION_TTL_SECS_DEFAULT};

    /// An absent setting takes its default, a given one is kept: both front
    /// ends build SKU settings here, so neither can drift from the other.
    #[test]
    fn parse_applies_the_defaults_and_keeps_what_was_given() {
        let command = PutSku::parse("A", Some(5), RequestedSettings::default()).unwrap();
        assert_eq!(command.sku.as_str(), "A");
        assert_eq!(command.stock, Some(5));
        assert_eq!(command.settings, SkuSettings::default());
        assert_eq!(
            (
                command.settings.per_customer_limit,
                command.settings.max_quantity_per_order,
                command.settings.reservation_ttl_secs,
            ),
            (
                None,
                MAX_QUANTITY_PER_ORDER_DEFAULT,
                RESERVATION_TTL_SECS_DEFAULT
            )
        );
        let given = RequestedSettings {
            per_customer_limit: Some(2),
            max_quantity_per_order: Some(3),
            sale_starts_at: Some(Timestamp(1_700_000_000_123)),
            reservation_ttl_secs: Some(60),
            low_stock_threshold: Some(7),
        };
        let command = PutSku::parse("A", None, given).unwrap();
        assert_eq!(
            command.settings,
            SkuSettings {
                per_customer_limit: Some(2),
                max_quantity_per_order: 3,
                sale_starts_at: Some(Timestamp(1_700_000_000_123)),
                reservation_ttl_secs: 60,
                low_stock_threshold: 7,
            }
        );
    }

    /// Each setting's rule is refused with the setting named.
    #[test]
    fn parse_names_the_field_of_each_broken_rule() {
        let refused = |sku: &str, stock: Option<u64>, requested: RequestedSettings| {
            PutSku::parse(sku, stock, requested).unwrap_err().field
        };
        let none = RequestedSettings::default;
        assert_eq!(refused("no spaces", Some(1), none()), "sku");
        assert_eq!(refused("A", Some(STOCK_MAX + 1), none()), "stock");
        for (requested, field) in [
            (
                RequestedSettings {
                    per_customer_limit: Some(0),
                    ..none()
                },
                "per_customer_limit",
            ),
            (
                RequestedSettings {
                    per_customer_limit: Some(STOCK_MAX + 1),
                    ..none()
                },
                "per_customer_limit",
            ),
            (
                RequestedSettings {
                    max_quantity_per_order: Some(0),
                    ..none()
                },
                "max_quantity_per_order",
            ),
            (
                RequestedSettings {
                    max_quantity_per_order: Some(QUANTITY_PER_ORDER_MAX + 1),
                    ..none()
                },
                "max_quantity_per_order",
            ),
            (
                RequestedSettings {
                    reservation_ttl_secs: Some(0),
                    ..none()
                },
                "reservation_ttl_secs",
            ),
            (
                RequestedSettings {
                    reservation_ttl_secs: Some(RESERVATION_TTL_SECS_MAX + 1),
                    ..none()
                },
                "reservation_ttl_secs",
            ),
            (
                RequestedSettings {
                    sale_starts_at: Some(Timestamp(Timestamp::MAX.0 + 1)),
                    ..none()
                },
                "sale_starts_at",
            ),
            (
                RequestedSettings {
                    low_stock_threshold: Some(STOCK_MAX + 1),
                    ..none()
                },
                "low_stock_threshold",
            ),
        ] {
            assert_eq!(
                refused("A", Some(1), requested.clone()),
                field,
                "{requested:?}"
            );
        }
    }
}
