//! The messages carried in frames. Field order is the wire order (bincode encodes
//! structs as their fields in sequence, enums as a variant index then fields); do
//! not reorder fields or variants: that changes the protocol.

use bincode::{Decode, Encode};

/// A request from a client. Every request carries a client-chosen `request_id`,
/// echoed in its response, so many can be in flight on one stream.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Request {
    /// Variant 0.
    PlaceOrder(PlaceOrder),
    /// Variant 1.
    GetOrder { request_id: u64, order_id: String },
    /// Variant 2: payment succeeded.
    Confirm { request_id: u64, order_id: String },
    /// Variant 3.
    Cancel { request_id: u64, order_id: String },
    /// Variant 4.
    GetSku { request_id: u64, sku: String },
    /// Variant 5: many orders in one frame, answered by one `Response::Batch`.
    PlaceOrders { orders: Vec<PlaceOrder> },
    /// Variant 6 (admin): create a SKU, or change its settings.
    PutSku {
        request_id: u64,
        admin_token: String,
        sku: String,
        settings: SkuSettings,
    },
    /// Variant 7 (admin): add stock.
    Restock {
        request_id: u64,
        admin_token: String,
        sku: String,
        quantity: u64,
    },
    /// Variant 8: who this connection acts as, from now on, on every stream: a
    /// service, payments, operator or admin token, or a buyer token (JWT).
    /// Answered by `Response::Authenticated`, or an `Error` (`unauthorized`,
    /// `too_many_auth_failures`) after which the connection is anonymous.
    Authenticate { request_id: u64, credential: String },
    /// Variant 9: many orders read at once (the audit's read-back), answered by
    /// one `Response::Orders`. At most the server's `orders_read_max` ids
    /// (more is an `Error` with `batch_too_large`, nothing read). The same
    /// rule as `GetOrder`: a buyer sees only its own orders, another's is
    /// reported unknown.
    GetOrders {
        request_id: u64,
        order_ids: Vec<String>,
    },
    /// Variant 10 (fulfilment or admin): a confirmed order was handed to the
    /// carrier. Answered by `Response::Order` (status `Shipped`).
    Ship { request_id: u64, order_id: String },
    /// Variant 11: change a reserved or confirmed order's quantity and/or SKU
    /// (`None` keeps it; at least one must be given), all or nothing. The
    /// same rules, authorization and codes as `PATCH /v1/orders/{id}`: a
    /// buyer changes only its own orders (another's is `unknown_order`), a
    /// service or admin any. Answered by `Response::Order` (the order after
    /// the change, `created` false); its history of changes is read over
    /// HTTP (`GET /v1/orders/{id}`). Resending under the same
    /// `idempotency_key` with the same change answers the order as it is;
    /// another change under a used key is `idempotency_key_reused`.
    ChangeOrder {
        request_id: u64,
        order_id: String,
        sku: Option<String>,
        quantity: Option<u32>,
        idempotency_key: String,
    },
}

impl Request {
    /// The request id this request is answered under (`None` for a batch, whose
    /// orders each carry their own).
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Request::PlaceOrder(order) => Some(order.request_id),
            Request::GetOrder { request_id, .. }
            | Request::Confirm { request_id, .. }
            | Request::Cancel { request_id, .. }
            | Request::GetSku { request_id, .. }
            | Request::PutSku { request_id, .. }
            | Request::Restock { request_id, .. }
            | Request::Authenticate { request_id, .. }
            | Request::GetOrders { request_id, .. }
            | Request::Ship { request_id, .. }
            | Request::ChangeOrder { request_id, .. } => Some(*request_id),
            Request::PlaceOrders { .. } => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PlaceOrder {
    pub request_id: u64,
    pub sku: String,
    pub quantity: u32,
    pub customer_id: String,
    /// Retries of one order under one key (per customer) make one order.
    pub idempotency_key: Option<String>,
}

/// A SKU's settings for `PutSku`; `None` takes the default (or, on an update,
/// the default again: send every setting you want kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct SkuSettings {
    /// Required at creation; on an update absent or equal to the total.
    pub stock: Option<u64>,
    pub per_customer_limit: Option<u64>,
    pub max_quantity_per_order: Option<u32>,
    /// Milliseconds since the Unix epoch, UTC.
    pub sale_starts_at_ms: Option<u64>,
    pub reservation_ttl_secs: Option<u32>,
    pub low_stock_threshold: Option<u64>,
}

/// A response from the server.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Response {
    /// Variant 0: the order after the request. `created` is false for an
    /// idempotent retry and for every request but a new order.
    Order {
        request_id: u64,
        created: bool,
        order: Order,
    },
    /// Variant 1: the SKU after the request; `created` only for `PutSku`.
    Sku {
        request_id: u64,
        created: bool,
        sku: Sku,
    },
    /// Variant 2: the request was refused; `code` is one of `code::*`.
    Error {
        request_id: u64,
        code: String,
        detail: String,
    },
    /// Variant 3: the answers to a `PlaceOrders` frame, one per order, in the
    /// frame's order (each an `Order` or an `Error`).
    Batch { results: Vec<Response> },
    /// Variant 4: a frame could not be read (its request id is unknown). The
    /// server then ends the stream; other streams are unaffected.
    FrameError { code: String, detail: String },
    /// Variant 5: the answer to `Authenticate`: the connection's role
    /// (`service`, `payments`, `operator`, `admin`, `buyer`) and, for a buyer,
    /// its customer id.
    Authenticated {
        request_id: u64,
        role: String,
        customer_id: Option<String>,
    },
    /// Variant 6: the answer to `GetOrders`. Every id asked for is in exactly
    /// one of the two lists: `orders` holds the orders found (in the order
    /// asked), `unknown` the ids this caller cannot see (no such order, not an
    /// order id, or another buyer's), as given.
    Orders {
        request_id: u64,
        orders: Vec<Order>,
        unknown: Vec<String>,
    },
}

impl Response {
    /// The request id answered (`None` for a batch or a frame error).
    pub fn request_id(&self) -> Option<u64> {
        match self {
            Response::Order { request_id, .. }
            | Response::Sku { request_id, .. }
            | Response::Error { request_id, .. }
            | Response::Authenticated { request_id, .. }
            | Response::Orders { request_id, .. } => Some(*request_id),
            Response::Batch { .. } | Response::FrameError { .. } => None,
        }
    }
}

/// Encoded as a variant index: 0 reserved, 1 confirmed, 2 cancelled, 3 expired,
/// 4 shipped.
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

    pub fn parse(value: &str) -> Option<OrderStatus> {
        match value {
            "reserved" => Some(OrderStatus::Reserved),
            "confirmed" => Some(OrderStatus::Confirmed),
            "cancelled" => Some(OrderStatus::Cancelled),
            "expired" => Some(OrderStatus::Expired),
            "shipped" => Some(OrderStatus::Shipped),
            _ => None,
        }
    }
}

/// An order. Times are milliseconds since the Unix epoch, UTC.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Order {
    pub order_id: String,
    pub sku: String,
    pub quantity: u32,
    pub customer_id: String,
    pub status: OrderStatus,
    pub created_at_ms: u64,
    pub reserved_until_ms: u64,
    pub updated_at_ms: u64,
}

/// A SKU's counters and settings.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Sku {
    pub sku: String,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    pub per_customer_limit: Option<u64>,
    pub max_quantity_per_order: u32,
    pub sale_starts_at_ms: Option<u64>,
    pub reservation_ttl_secs: u32,
    pub low_stock_threshold: u64,
    pub low_stock: bool,
}
