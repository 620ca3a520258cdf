//! `OrderGateway`: the calls both clients make, with the same meaning and the
//! same errors over QUIC and HTTP.

use std::future::Future;

use flashgate_protocol::{Order, Sku, SkuSettings};

use crate::error::ClientError;

/// An order to place. The client adds the request id; the server assigns the
/// order id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub sku: String,
    /// Units, at least 1 and at most the SKU's `max_quantity_per_order`.
    pub quantity: u32,
    pub customer_id: String,
    /// Retries under the same key (per customer) make one order: set one
    /// whenever a call may be retried after a `Transport` error.
    pub idempotency_key: Option<String>,
}

impl PlaceOrder {
    /// An order without an idempotency key.
    pub fn new(sku: impl Into<String>, quantity: u32, customer_id: impl Into<String>) -> Self {
        PlaceOrder {
            sku: sku.into(),
            quantity,
            customer_id: customer_id.into(),
            idempotency_key: None,
        }
    }

    /// The same order under an idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A placed order. `created` is false when the server answered a retry with
/// the order an earlier request under the same idempotency key made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub created: bool,
}

/// The gateway's API, implemented by `QuicClient` and `HttpClient`. Times in the
/// returned values are milliseconds since the Unix epoch, UTC, over both
/// transports. Every call either returns the server's answer or a
/// `ClientError` that says whether the outcome is known (see its docs).
///
/// The returned futures are `Send`, so calls can be spawned; the trait is not
/// object safe: use it as a generic bound.
pub trait OrderGateway {
    /// Places one order (`POST /v1/orders`; QUIC `PlaceOrder`).
    fn place(&self, order: PlaceOrder) -> impl Future<Output = Result<Placed, ClientError>> + Send;

    /// Places many orders. The inner results are in the order of `orders`, one
    /// per order. QUIC sends one `PlaceOrders` frame and fails the whole call
    /// (the outer `Err`) if that frame gets no answer; HTTP sends the orders as
    /// concurrent requests, so each order's transport failure is its own.
    /// Over QUIC keep a batch within the server's `quic_batch_orders_max` and
    /// `quic_frame_bytes_max`: a larger one is refused whole
    /// (`batch_too_large`, `frame_too_large`).
    fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> impl Future<Output = Result<Vec<Result<Placed, ClientError>>, ClientError>> + Send;

    /// The order with this id.
    fn order(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// Payment succeeded: reserved → confirmed. Idempotent.
    fn confirm(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// Reserved or confirmed → cancelled; the stock returns. Idempotent.
    fn cancel(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// A SKU's counters and settings.
    fn sku(&self, sku: &str) -> impl Future<Output = Result<Sku, ClientError>> + Send;

    /// Admin: creates a SKU (`settings.stock` required) or replaces its settings
    /// (send every setting to keep: `None` means the default). Returns the SKU
    /// and whether it was created. Needs the admin token in the client's
    /// config, else `ClientError::Config` without contacting the server.
    fn put_sku(
        &self,
        sku: &str,
        settings: SkuSettings,
    ) -> impl Future<Output = Result<(Sku, bool), ClientError>> + Send;

    /// Admin: adds `quantity` units of stock. Needs the admin token, like
    /// `put_sku`.
    fn restock(
        &self,
        sku: &str,
        quantity: u64,
    ) -> impl Future<Output = Result<Sku, ClientError>> + Send;
}

/// The error for an admin call on a client configured without an admin token.
pub(crate) fn missing_admin_token() -> ClientError {
    ClientError::Config(
        "this call needs the admin token: set admin_token in the client's config".into(),
    )
}
