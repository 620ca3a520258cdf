//! The one mapping from node errors to the machine-readable codes both front
//! ends answer: the HTTP API puts the code in its problem body, the QUIC front
//! end in its `Response::Error`. Keeping it here means an order refused over
//! QUIC carries exactly the code the same refusal carries over HTTP.

use flashgate_actors::domain::CoreError;
use flashgate_actors::NodeError;
use flashgate_protocol::code;

/// A promotion asked of a node that is not a standby (HTTP admin API only).
pub const NOT_STANDBY: &str = "not_standby";
/// A switchover could not be prepared (HTTP admin API only).
pub const HANDOVER_FAILED: &str = "handover_failed";

/// The code of a node error; one of `flashgate_protocol::code`'s order outcomes.
pub fn node_error_code(error: &NodeError) -> &'static str {
    match error {
        NodeError::Rejected(rejected) => core_error_code(rejected),
        NodeError::Overloaded { .. } => code::OVERLOADED,
        NodeError::StorageFailed(_) => code::STORAGE_FAILED,
        NodeError::ShuttingDown => code::SHUTTING_DOWN,
        NodeError::NotPrimary { .. } => code::NOT_PRIMARY,
        NodeError::StandbyUnavailable => code::STANDBY_UNAVAILABLE,
        NodeError::NotStandby(_) => NOT_STANDBY,
        NodeError::Handover(_) => HANDOVER_FAILED,
    }
}

/// The code of an order rule's refusal.
pub fn core_error_code(error: &CoreError) -> &'static str {
    match error {
        CoreError::SoldOut(_) => code::SOLD_OUT,
        CoreError::InsufficientStock { .. } => code::INSUFFICIENT_STOCK,
        CoreError::LimitExceeded { .. } => code::LIMIT_EXCEEDED,
        CoreError::SaleNotOpen { .. } => code::SALE_NOT_OPEN,
        CoreError::UnknownSku(_) => code::UNKNOWN_SKU,
        CoreError::UnknownOrder(_) => code::UNKNOWN_ORDER,
        CoreError::InvalidTransition { .. } => code::INVALID_TRANSITION,
        CoreError::InvalidField(_) => code::INVALID_FIELD,
        CoreError::IdempotencyKeyReused => code::IDEMPOTENCY_KEY_REUSED,
        CoreError::OrderCapacityReached(_) => code::CAPACITY_REACHED,
        CoreError::TooManyChanges { .. } => code::TOO_MANY_CHANGES,
        CoreError::ChangeAcrossShards { .. } => code::CHANGE_ACROSS_SHARDS,
        CoreError::OrderBusy(_) => code::ORDER_BUSY,
        // Followed by the node; never reaches a caller.
        CoreError::Moved { .. } => code::UNKNOWN_ORDER,
    }
}
