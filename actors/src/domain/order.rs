//! An order and its life cycle.

use bincode::{Decode, Encode};

use super::types::{CustomerId, IdempotencyKey, OrderId, SkuId, Timestamp};

/// `reserved` → `confirmed` (payment succeeded) or `expired` (TTL passed);
/// `reserved` or `confirmed` → `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum OrderStatus {
    Reserved,
    Confirmed,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Reserved => "reserved",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    /// Whether the order still holds stock (and counts toward the customer's limit).
    pub fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Reserved | OrderStatus::Confirmed)
    }
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
