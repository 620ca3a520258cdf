//! Error codes. Order outcomes are the HTTP API's codes, with the same meaning;
//! the rest are about frames and connection limits.

// Order outcomes (the same as the HTTP API).
pub const SOLD_OUT: &str = "sold_out";
pub const INSUFFICIENT_STOCK: &str = "insufficient_stock";
pub const LIMIT_EXCEEDED: &str = "limit_exceeded";
pub const SALE_NOT_OPEN: &str = "sale_not_open";
pub const UNKNOWN_SKU: &str = "unknown_sku";
pub const UNKNOWN_ORDER: &str = "unknown_order";
pub const INVALID_TRANSITION: &str = "invalid_transition";
pub const INVALID_FIELD: &str = "invalid_field";
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";
pub const CAPACITY_REACHED: &str = "capacity_reached";
/// The order took its most changes (`CHANGES_PER_ORDER_MAX`); cancel it and
/// place a new one.
pub const TOO_MANY_CHANGES: &str = "too_many_changes";
/// An order that moved to another shard once already asked to move again.
pub const CHANGE_ACROSS_SHARDS: &str = "change_across_shards";
/// The order is in the middle of a change (a move between shards, a few
/// milliseconds); retry.
pub const ORDER_BUSY: &str = "order_busy";
pub const OVERLOADED: &str = "overloaded";
pub const STORAGE_FAILED: &str = "storage_failed";
pub const SHUTTING_DOWN: &str = "shutting_down";
pub const UNAUTHORIZED: &str = "unauthorized";
pub const FORBIDDEN: &str = "forbidden";
/// A buyer credential ordering for another customer than its own.
pub const CUSTOMER_MISMATCH: &str = "customer_mismatch";
/// Too many refused credentials from this address; wait, then retry.
pub const TOO_MANY_AUTH_FAILURES: &str = "too_many_auth_failures";
/// Over a rate limit (per client address, or per customer for orders):
/// retry after the time the detail (and over HTTP `Retry-After`) gives.
pub const RATE_LIMITED: &str = "rate_limited";
/// The SKU is behind a waiting room and the order carried no queue ticket
/// (over HTTP the `Flashgate-Queue-Ticket` header): join the queue first.
pub const QUEUE_TICKET_REQUIRED: &str = "queue_ticket_required";
/// The queue ticket was not issued by this waiting room for this customer
/// and SKU (forged, changed, another customer's or another SKU's).
pub const QUEUE_TICKET_INVALID: &str = "queue_ticket_invalid";
/// A join ticket whose holder has not been admitted yet: keep polling.
pub const NOT_ADMITTED_YET: &str = "not_admitted_yet";
/// The admission expired unused (its slot went to the next in line), or the
/// ticket is from before the waiting room restarted: join again.
pub const QUEUE_TICKET_EXPIRED: &str = "queue_ticket_expired";
/// The admission has already ordered; each orders once.
pub const QUEUE_TICKET_USED: &str = "queue_ticket_used";
/// The waiting room holds its maximum of buyers; retry later.
pub const QUEUE_FULL: &str = "queue_full";
/// The SKU has no waiting room (joining or polling one).
pub const NO_WAITING_ROOM: &str = "no_waiting_room";
/// This node does not take orders: it is a standby, or a primary fenced by a
/// newer one. Nothing was done; send the request to the current primary (the
/// detail names it when this node knows it).
pub const NOT_PRIMARY: &str = "not_primary";
/// The primary runs in sync replication and its standby is gone: the order was
/// not acknowledged by two nodes in time. Retry with the same idempotency key.
pub const STANDBY_UNAVAILABLE: &str = "standby_unavailable";

// Frames and limits (QUIC only).
/// The frame's body is not a valid message.
pub const MALFORMED_FRAME: &str = "malformed_frame";
/// The stream ended in the middle of a frame.
pub const TRUNCATED_FRAME: &str = "truncated_frame";
/// The frame's length is over the server's limit.
pub const FRAME_TOO_LARGE: &str = "frame_too_large";
/// The frame's version byte is not one this server speaks.
pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
/// The connection has its maximum of requests in flight; retry after answers arrive.
pub const TOO_MANY_IN_FLIGHT: &str = "too_many_in_flight";
/// A batch frame holds more orders than the server's limit.
pub const BATCH_TOO_LARGE: &str = "batch_too_large";
