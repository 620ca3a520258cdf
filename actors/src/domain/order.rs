//! An order and its life cycle.

use bincode::{Decode, Encode};

use super::types::{CustomerId, IdempotencyKey, OrderId, SkuId, Timestamp};

/// `reserved` → `confirmed` (payment succeeded) or `expired` (TTL passed);
/// `reserved` or `confirmed` → `cancelled`; `confirmed` → `shipped` (handed to
/// the carrier: final, it can no longer be cancelled or changed).
///
/// New statuses go at the end: the log, the archive and the QUIC protocol
/// store the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum OrderStatus {
    Reserved,
    Confirmed,
    Cancelled,
    Expired,
    Shipped,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Reserved => "reserved",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Shipped => "shipped",
        }
    }

    /// Whether the order still holds stock (and counts toward the customer's limit).
    pub fn holds_stock(self) -> bool {
        matches!(
            self,
            OrderStatus::Reserved | OrderStatus::Confirmed | OrderStatus::Shipped
        )
    }

    /// Whether the order's units are sold: paid for, and shipped or not.
    pub fn is_sold(self) -> bool {
        matches!(self, OrderStatus::Confirmed | OrderStatus::Shipped)
    }
}

/// Most changes one order takes: its history stays small enough for one log
/// record and one archive value.
pub const CHANGES_PER_ORDER_MAX: usize = 16;

/// One change of an order before it shipped: its SKU and quantity before and
/// after, when, and under which idempotency key (a retry of the change under
/// the same key changes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OrderChange {
    pub at: Timestamp,
    pub from_sku: SkuId,
    pub from_quantity: u32,
    pub to_sku: SkuId,
    pub to_quantity: u32,
    pub key: IdempotencyKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Order {
    pub id: OrderId,
    pub sku: SkuId,
    pub quantity: u32,
    pub customer: CustomerId,
    pub status: OrderStatus,
    pub created_at: Timestamp,
    /// When an unconfirmed reservation expires.
    pub reserved_until: Timestamp,
    /// When the status last changed.
    pub updated_at: Timestamp,
    pub idempotency_key: Option<IdempotencyKey>,
}
