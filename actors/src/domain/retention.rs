//! How long finished orders and idempotency keys stay in a shard's memory, and
//! what a shard keeps of them once they leave it.
//!
//! A shard's memory follows its live state, not its history:
//! - A cancelled or expired order leaves memory `finished_order_secs` after it
//!   finished; a confirmed order `confirmed_order_secs` after its confirmation.
//!   It leaves with an `OrdersRetired` event; the shell writes its last state to
//!   the archive first, and answers it from there ever after (same body).
//! - A confirmed order that left memory is *settled*: its units stay sold and
//!   count toward its customer's `per_customer_limit` forever (one counter per
//!   customer and SKU, `Settled`), and it can no longer be cancelled.
//! - An idempotency key outlives its order's stay in memory: a retry with the
//!   key is answered with the archived order until `idempotency_key_secs` after
//!   the order was placed. Then a `KeysForgotten` event drops it, and a request
//!   with that key is a new order.
//!
//! Leaving memory is decided by the primary's clock and logged, like expiry:
//! replay and a standby apply the same events and hold the same state.

use bincode::{Decode, Encode};

use super::command::{CoreError, Reply};
use super::order::{Order, OrderStatus};
use super::types::{CustomerId, IdMap, IdempotencyKey, OrderId, SkuId, Timestamp};

/// Most order ids one `OrdersRetired` event names: the largest such event
/// (every id at its largest varint) stays far below a log record's limit.
pub const ORDERS_PER_RETIRE_EVENT: usize = 24;
/// Most keys one `KeysForgotten` event names (each up to 2 × 64 bytes).
pub const KEYS_PER_FORGET_EVENT: usize = 5;

/// Default seconds a cancelled or expired order stays in memory.
pub const FINISHED_ORDER_RETENTION_SECS_DEFAULT: u64 = 10;
/// Default seconds a confirmed order stays in memory (and can be cancelled).
pub const CONFIRMED_ORDER_RETENTION_SECS_DEFAULT: u64 = 24 * 3600;
/// Default seconds an idempotency key is honoured after its order was placed.
pub const IDEMPOTENCY_KEY_RETENTION_SECS_DEFAULT: u64 = 3600;
/// Default most orders, and most keys, one retire pass lets go of.
pub const RETIRE_BATCH_MAX_DEFAULT: usize = 16_384;

/// How long finished orders and keys stay in memory. Changing it between
/// starts is safe: the events name what left, so replay never depends on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// A cancelled or expired order stays in memory this long after it finished.
    pub finished_order_secs: u64,
    /// A confirmed order stays in memory, and can be cancelled, this long after
    /// its confirmation; then it is settled.
    pub confirmed_order_secs: u64,
    /// A retry with an idempotency key gets its order back at least this long
    /// after the order was placed.
    pub idempotency_key_secs: u64,
    /// Most orders, and most keys, one retire pass lets go of, so a pass never
    /// stalls the shard.
    pub retire_batch_max: usize,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            finished_order_secs: FINISHED_ORDER_RETENTION_SECS_DEFAULT,
            confirmed_order_secs: CONFIRMED_ORDER_RETENTION_SECS_DEFAULT,
            idempotency_key_secs: IDEMPOTENCY_KEY_RETENTION_SECS_DEFAULT,
            retire_batch_max: RETIRE_BATCH_MAX_DEFAULT,
        }
    }
}

fn plus(at: Timestamp, secs: u64) -> Timestamp {
    Timestamp(at.0.saturating_add(secs.saturating_mul(1000)))
}

impl Retention {
    /// When an order in memory may leave it; `None` while it is reserved.
    pub fn order_leaves_at(&self, order: &Order) -> Option<Timestamp> {
        match order.status {
            OrderStatus::Reserved => None,
            OrderStatus::Confirmed => Some(plus(order.updated_at, self.confirmed_order_secs)),
            OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::Shipped => {
                Some(plus(order.updated_at, self.finished_order_secs))
            }
        }
    }

    /// When the key of an order placed at `created_at` may be forgotten.
    pub fn key_forgotten_at(&self, created_at: Timestamp) -> Timestamp {
        plus(created_at, self.idempotency_key_secs)
    }
}

/// What a shard remembers of an idempotency key: its order, and the request
/// it was first used for (a reuse for another SKU or quantity is refused).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct KeyEntry {
    pub order: OrderId,
    pub sku: SkuId,
    pub quantity: u32,
    pub created_at: Timestamp,
    /// Whether the order has left memory (its key is then on the forget queue).
    pub retired: bool,
}

impl KeyEntry {
    /// The entry of a key whose order is in memory.
    pub fn of(order: &Order) -> KeyEntry {
        KeyEntry {
            order: order.id,
            sku: order.sku.clone(),
            quantity: order.quantity,
            created_at: order.created_at,
            retired: false,
        }
    }
}

/// A key whose order left memory, as a checkpoint stores it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct RetainedKey {
    pub customer: CustomerId,
    pub key: IdempotencyKey,
    pub entry: KeyEntry,
}

/// What settled orders (confirmed orders that left memory) of one SKU hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    pub sold: u64,
    pub by_customer: IdMap<CustomerId, u64>,
}

/// A SKU's settled units, as a checkpoint stores them (a SKU with many
/// customers takes several).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SettledImage {
    pub sku: SkuId,
    /// Units sold by settled orders of `by_customer` (a part of the SKU's
    /// settled units when it takes several images).
    pub by_customer: Vec<(CustomerId, u64)>,
}

/// What a shard keeps of orders that left its memory, for a checkpoint: the
/// settled units per SKU and customer, and the keys still honoured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetainedImage {
    pub settled: Vec<SettledImage>,
    pub keys: Vec<RetainedKey>,
}

/// What a change of an order that left memory answers: it is finished or
/// settled, so `invalid_transition`; with `customer`, another customer's
/// order is unknown, as in memory.
pub fn answer_archived_change(
    order: Order,
    customer: Option<&CustomerId>,
) -> Result<Reply, CoreError> {
    if customer.is_some_and(|customer| order.customer != *customer) {
        return Err(CoreError::UnknownOrder(order.id));
    }
    Err(CoreError::InvalidTransition {
        id: order.id,
        from: if order.status.is_sold() {
            "settled"
        } else {
            order.status.as_str()
        },
        to: "changed",
    })
}

/// What `Confirm`, `Cancel` or `Ship` (`to`) of an order that left memory
/// answers, given its archived last state: the order unchanged when it already
/// has that status (or, for a confirm, was shipped), else
/// `invalid_transition`, as while it was in memory. The one difference: a
/// settled order (confirmed, then retired) can no longer be cancelled or
/// shipped. With `customer`, another customer's order is unknown, as in
/// memory.
pub fn answer_archived(
    order: Order,
    to: OrderStatus,
    customer: Option<&CustomerId>,
) -> Result<Reply, CoreError> {
    if customer.is_some_and(|customer| order.customer != *customer) {
        return Err(CoreError::UnknownOrder(order.id));
    }
    if order.status == to || (to == OrderStatus::Confirmed && order.status == OrderStatus::Shipped)
    {
        return Ok(Reply::Order {
            order,
            created: false,
        });
    }
    // A sold order out of memory is settled: final, whatever its status says.
    let from = if order.status.is_sold() {
        "settled"
    } else {
        order.status.as_str()
    };
    Err(CoreError::InvalidTransition {
        id: order.id,
        from,
        to: to.as_str(),
    })
}
