//! `PlaceOrder`: reserve units of a SKU for a customer. The single-owner decision
//! that prevents oversell: the shard is the only writer of its SKUs' counters.

use super::{check_offer, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::order::{Order, OrderStatus};
use crate::domain::shard::{Execution, ShardCore};
use crate::domain::sku::QUANTITY_PER_ORDER_MAX;
use crate::domain::types::{CustomerId, IdempotencyKey, InvalidField, SkuId, Timestamp};

#[derive(Clone, Debug)]
pub struct PlaceOrder {
    pub sku: SkuId,
    pub quantity: u32,
    pub customer: CustomerId,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl PlaceOrder {
    /// An order as a front end received it, as a command: `sku` and
    /// `customer` by their rules, `quantity` from 1 to
    /// `QUANTITY_PER_ORDER_MAX` (the SKU's own maximum is the shard's
    /// decision). The key is parsed by the caller, which knows where it came
    /// from (a header, a frame field) and so how to name it. The error names
    /// the first field that breaks its rule, in that order.
    pub fn parse(
        sku: &str,
        quantity: u64,
        customer: &str,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<PlaceOrder, InvalidField> {
        let sku = SkuId::parse(sku)?;
        let quantity = u32::try_from(quantity)
            .ok()
            .filter(|quantity| (1..=QUANTITY_PER_ORDER_MAX).contains(quantity))
            .ok_or_else(|| {
                InvalidField::new(
                    "quantity",
                    format!("must be between 1 and {QUANTITY_PER_ORDER_MAX}"),
                )
            })?;
        let customer = CustomerId::parse(customer)?;
        Ok(PlaceOrder {
            sku,
            quantity,
            customer,
            idempotency_key,
        })
    }

    /// Decides the order at `now`; a new one is applied to `shard`. Builds
    /// the execution where the caller receives it, not in steps that move
    /// it: the reply and the event are over 100 bytes each, and this is the
    /// order path.
    pub(super) fn execute(self, shard: &mut ShardCore, now: Timestamp) -> Execution {
        match self.decide(shard, now) {
            Ok(Decided::New { order, caller_sku }) => {
                // Applied as replay applies its `Event::OrderReserved`.
                shard
                    .apply_reserved(&order)
                    .expect("an order decided by the core applies to the state it was decided on");
                // A new order is in memory exactly as its event carries it:
                // the reply is the event's order, not a second look-up of
                // the state. It carries the caller's own copy of the SKU id
                // (the same text) back to the caller, whose thread made it
                // and frees it: the shard's thread neither frees it nor
                // counts another reference to its own copy.
                Execution {
                    reply: Ok(Reply::Order {
                        order: Order {
                            sku: caller_sku,
                            customer: order.customer.clone(),
                            idempotency_key: order.idempotency_key.clone(),
                            ..order
                        },
                        created: true,
                    }),
                    events: smallvec::smallvec![Event::OrderReserved(order)],
                }
            }
            Ok(Decided::Retry(reply)) => Execution {
                reply: Ok(reply),
                events: Events::new(),
            },
            Err(refused) => Execution {
                reply: Err(refused),
                events: Events::new(),
            },
        }
    }

    fn decide(self, shard: &mut ShardCore, now: Timestamp) -> Result<Decided, CoreError> {
        // A retry answers with the first result, before any rule is checked again:
        // stock may have run out since, but this customer's order exists.
        if let Some(key) = &self.idempotency_key {
            if let Some(existing) = shard.idempotency_key(&self.customer, key) {
                if existing.sku != self.sku || existing.quantity != self.quantity {
                    return Err(CoreError::IdempotencyKeyReused);
                }
                // An order that left memory is answered from the archive.
                return Ok(Decided::Retry(match shard.order(&existing.order) {
                    Some(order) => Reply::Order {
                        order: order.clone(),
                        created: false,
                    },
                    None => Reply::ArchivedOrder { id: existing.order },
                }));
            }
        }
        let sku = shard
            .sku(&self.sku)
            .ok_or_else(|| CoreError::UnknownSku(self.sku.clone()))?;
        check_offer(
            sku,
            self.quantity,
            sku.available,
            || sku.held_by(&self.customer),
            now,
        )?;
        if shard.live_order_count() >= shard.orders_max() {
            return Err(CoreError::OrderCapacityReached(shard.orders_max()));
        }
        let reserved_until = now.plus_secs(sku.settings.reservation_ttl_secs);
        // The order shares the shard's text of its SKU id, as it will in memory.
        let sku = sku.id.clone();
        let id = shard.allocate_order_id();
        Ok(Decided::New {
            order: Order {
                id,
                sku,
                quantity: self.quantity,
                customer: self.customer,
                status: OrderStatus::Reserved,
                created_at: now,
                reserved_until,
                updated_at: now,
                idempotency_key: self.idempotency_key,
            },
            caller_sku: self.sku,
        })
    }
}

/// What `PlaceOrder::decide` found.
enum Decided {
    /// A new order, to be reserved, and the caller's copy of its SKU id.
    New { order: Order, caller_sku: SkuId },
    /// A retry of an order placed before under the same key: its answer.
    Retry(Reply),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of an incoming order is refused with its field named, and
    /// a valid order keeps its values: both front ends build orders here.
    #[test]
    fn parse_names_the_field_of_each_broken_rule() {
        let key = IdempotencyKey::parse("retry-1").unwrap();
        let order = PlaceOrder::parse("SNEAKER-42", 3, "alice", Some(key.clone())).unwrap();
        assert_eq!(order.sku.as_str(), "SNEAKER-42");
        assert_eq!(order.quantity, 3);
        assert_eq!(order.customer.as_str(), "alice");
        assert_eq!(order.idempotency_key, Some(key));
        let max = u64::from(QUANTITY_PER_ORDER_MAX);
        assert!(PlaceOrder::parse("A", max, "alice", None).is_ok());
        for (sku, quantity, customer, field) in [
            ("no spaces", 1, "alice", "sku"),
            ("", 1, "alice", "sku"),
            ("A", 0, "alice", "quantity"),
            ("A", max + 1, "alice", "quantity"),
            ("A", u64::from(u32::MAX) + 1, "alice", "quantity"),
            ("A", 1, "", "customer_id"),
            ("A", 1, "al\u{200b}ice", "customer_id"),
        ] {
            let error = PlaceOrder::parse(sku, quantity, customer, None).unwrap_err();
            assert_eq!(error.field, field, "{sku:?} {quantity} {customer:?}");
            assert!(error.to_string().starts_with(field), "{error}");
        }
        let error = PlaceOrder::parse("A", 0, "alice", None).unwrap_err();
        assert_eq!(
            error.rule,
            format!("must be between 1 and {QUANTITY_PER_ORDER_MAX}")
        );
    }

    /// A placed order answers with exactly the order its event logs and the
    /// shard holds (the reply carries the caller's copy of the SKU id, the
    /// same text), and its one event is held inline: the order path
    /// allocates nothing for its events.
    #[test]
    fn a_placed_order_answers_what_it_logs_and_holds() {
        use crate::domain::command::{Command, PutSku};
        use crate::domain::retention::Retention;
        use crate::domain::shard::ShardConfig;
        use crate::domain::sku::SkuSettings;

        let mut shard = ShardCore::new(ShardConfig {
            shard: 0,
            epoch: 1,
            orders_max: 10,
            expiry_batch_max: 10,
            retention: Retention::default(),
        });
        let put = Command::PutSku(PutSku {
            sku: SkuId::parse("A").unwrap(),
            stock: Some(5),
            settings: SkuSettings::default(),
        });
        shard.execute(put, Timestamp(0)).reply.unwrap();
        let key = IdempotencyKey::parse("retry-1").unwrap();
        let place = PlaceOrder::parse("A", 2, "alice", Some(key)).unwrap();
        let execution = shard.execute(Command::PlaceOrder(place), Timestamp(1_000));
        let Ok(Reply::Order { order, created }) = execution.reply else {
            panic!("the order is placed: {:?}", execution.reply);
        };
        assert!(created);
        assert!(!execution.events.spilled(), "one event, held inline");
        assert_eq!(
            execution.events.as_slice(),
            [Event::OrderReserved(order.clone())]
        );
        assert_eq!(shard.order(&order.id), Some(&order));
        assert_eq!(shard.sku(&order.sku).unwrap().reserved, 2);
    }
}
