//! `OrderGateway`: the calls both clients make, with the same meaning and the
//! same errors over QUIC and HTTP.

use std::future::Future;

use flashgate_protocol::{Order, Sku, SkuSettings};

use crate::error::ClientError;
use crate::failover::NodeSwitch;

/// An order to place. The client adds the request id; the server assigns the
/// order id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaceOrder {
    pub sku: String,
    /// Units, at least 1 and at most the SKU's `max_quantity_per_order`.
    pub quantity: u32,
    pub customer_id: String,
    /// Retries under the same key (per customer) make one order: set one
    /// whenever a call may be retried after a `Transport` error. The clients'
    /// failover sends an order again after an attempt that got no answer only
    /// when it carries a key.
    pub idempotency_key: Option<String>,
    /// For a SKU behind a waiting room: the admission ticket its queue gave
    /// this customer (`QueueTicket::admission_ticket`). HTTP sends it as the
    /// `Flashgate-Queue-Ticket` header; the binary protocol carries none (a
    /// QUIC order for such a SKU needs a trusted upstream's credential).
    pub queue_ticket: Option<String>,
}

impl PlaceOrder {
    /// An order without an idempotency key.
    pub fn new(sku: impl Into<String>, quantity: u32, customer_id: impl Into<String>) -> Self {
        PlaceOrder {
            sku: sku.into(),
            quantity,
            customer_id: customer_id.into(),
            idempotency_key: None,
            queue_ticket: None,
        }
    }

    /// The same order under an idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The same order with a waiting room's admission ticket.
    pub fn with_queue_ticket(mut self, ticket: impl Into<String>) -> Self {
        self.queue_ticket = Some(ticket.into());
        self
    }
}

/// A SKU's waiting room, as `OrderGateway::put_sku_with_waiting_room` puts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingRoom {
    /// Buyers admitted per second while units remain.
    pub admit_per_sec: u32,
    /// How long an admission may be used to order.
    pub admitted_ttl_secs: u32,
}

/// Where a waiting-room ticket stands (`join_queue`, `poll_queue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueTicket {
    /// The join ticket: what to poll with.
    pub ticket: String,
    /// `waiting`, `admitted`, `expired`, `used` or `sold_out`.
    pub status: String,
    /// 0-based place in line; `None` before the sale's opening draw.
    pub position: Option<u32>,
    pub ahead: u32,
    pub estimated_wait_secs: u64,
    pub units_remain: bool,
    /// Poll again no sooner than this.
    pub poll_after: std::time::Duration,
    /// Once admitted: the ticket that orders once (`PlaceOrder::with_queue_ticket`).
    pub admission_ticket: Option<String>,
}

fn http_only(call: &str) -> ClientError {
    ClientError::Config(format!(
        "{call}: waiting rooms are reached over the HTTP API only (use HttpClient)"
    ))
}

/// A placed order. `created` is false when the server answered a retry with
/// the order an earlier request under the same idempotency key made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub created: bool,
}

/// A change to a reserved or confirmed order (`OrderGateway::change`): its
/// new SKU and/or quantity; `None` keeps it. At least one must be set (the
/// server refuses an empty change with `invalid_field`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeOrder {
    /// Another SKU kept by the order's shard (another size, another colour).
    pub sku: Option<String>,
    /// Units, at least 1 and at most the SKU's `max_quantity_per_order`.
    pub quantity: Option<u32>,
}

impl ChangeOrder {
    /// A change of quantity only.
    pub fn quantity(quantity: u32) -> Self {
        ChangeOrder {
            sku: None,
            quantity: Some(quantity),
        }
    }

    /// A change of SKU only (the quantity stays).
    pub fn sku(sku: impl Into<String>) -> Self {
        ChangeOrder {
            sku: Some(sku.into()),
            quantity: None,
        }
    }

    /// The same change, also to this quantity.
    pub fn with_quantity(mut self, quantity: u32) -> Self {
        self.quantity = Some(quantity);
        self
    }
}

/// One change in an order's history, as the HTTP API shows it. Times are
/// milliseconds since the Unix epoch, UTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderChange {
    pub at_ms: u64,
    pub from_sku: String,
    pub from_quantity: u32,
    pub to_sku: String,
    pub to_quantity: u32,
}

/// A changed order (`OrderGateway::change`): the order after the change and,
/// over HTTP, its history of changes, oldest first. `changes` is `None` over
/// QUIC, whose `Order` carries no history (docs/PROTOCOL.md,
/// `ChangeOrder`): read it with `HttpClient`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub order: Order,
    pub changes: Option<Vec<OrderChange>>,
}

/// The answer to a batched read (`OrderGateway::read_orders`): every id asked
/// for is in exactly one of the two lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrdersRead {
    /// The orders found, in the order asked.
    pub orders: Vec<Order>,
    /// The ids the caller cannot see, as given: no such order, not an order
    /// id, or (for a buyer credential) another customer's.
    pub unknown: Vec<String>,
}

/// The gateway's API, implemented by `QuicClient` and `HttpClient`. Times in the
/// returned values are milliseconds since the Unix epoch, UTC, over both
/// transports. Every call either returns the server's answer or a
/// `ClientError` that says whether the outcome is known (see its docs).
///
/// Configured with several nodes of one cluster, a client follows the
/// primary: a call the node refuses as `not_primary`, or that cannot reach its
/// node, goes to the next node (see `FailoverConfig` for what is sent again and
/// for how long). Reads may be answered by a standby, up to its replication
/// lag behind the primary.
///
/// The returned futures are `Send`, so calls can be spawned; the trait is not
/// object safe: use it as a generic bound.
pub trait OrderGateway {
    /// Places one order (`POST /v1/orders`; QUIC `PlaceOrder`).
    fn place(&self, order: PlaceOrder) -> impl Future<Output = Result<Placed, ClientError>> + Send;

    /// Places many orders. The inner results are in the order of `orders`, one
    /// per order. QUIC sends one `PlaceOrders` frame and fails the whole call
    /// (the outer `Err`) if no frame of the call gets an answer; failover sends
    /// again only the orders a node refused as `not_primary` (and, after a
    /// frame that got no answer, only if every order carries an idempotency
    /// key). HTTP sends the orders as concurrent requests, so each order's
    /// failures are its own.
    /// Over QUIC keep a batch within the server's `quic_batch_orders_max` and
    /// `quic_frame_bytes_max`: a larger one is refused whole
    /// (`batch_too_large`, `frame_too_large`).
    fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> impl Future<Output = Result<Vec<Result<Placed, ClientError>>, ClientError>> + Send;

    /// The order with this id.
    fn order(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// Many orders in one request (`POST /v1/orders/read`; QUIC `GetOrders`),
    /// read by one node call that asks each shard once. Send at most the
    /// server's `orders_read_max` ids (1,000 unless configured): more is
    /// refused whole with `batch_too_large`. Safe to send again, like every
    /// read. The default implementation reads the orders one at a time with
    /// `order`, for gateways without a batched read: a type that wraps a
    /// client must forward this call, or its reads lose the batching.
    fn read_orders(
        &self,
        order_ids: &[String],
    ) -> impl Future<Output = Result<OrdersRead, ClientError>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut read = OrdersRead::default();
            for order_id in order_ids {
                match self.order(order_id).await {
                    Ok(order) => read.orders.push(order),
                    Err(error) if error.code() == Some(flashgate_protocol::code::UNKNOWN_ORDER) => {
                        read.unknown.push(order_id.clone())
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok(read)
        }
    }

    /// Payment succeeded: reserved → confirmed. Idempotent: the server answers
    /// a confirmed order unchanged, so failover may send it again.
    fn confirm(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// Reserved or confirmed → cancelled; the stock returns. Idempotent, like
    /// `confirm`.
    fn cancel(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// Fulfilment: confirmed → shipped (final: no cancel, no change after).
    /// Idempotent: the server answers a shipped order unchanged. Needs a
    /// fulfilment or admin credential.
    fn ship(&self, order_id: &str) -> impl Future<Output = Result<Order, ClientError>> + Send;

    /// Changes a reserved or confirmed order's SKU and/or quantity, all or
    /// nothing (`PATCH /v1/orders/{id}`; QUIC `ChangeOrder`): a refusal
    /// (`sold_out`, `limit_exceeded`, `invalid_transition` once shipped, ...)
    /// leaves the order as it was. `idempotency_key` (1 to 64 bytes) is
    /// required: the server answers the same change under the same key with
    /// the order as it is, so failover may send it again after an attempt
    /// that got no answer; another change under a used key is
    /// `idempotency_key_reused`. Use a new key for each change you mean.
    fn change(
        &self,
        order_id: &str,
        change: ChangeOrder,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Changed, ClientError>> + Send;

    /// A SKU's counters and settings.
    fn sku(&self, sku: &str) -> impl Future<Output = Result<Sku, ClientError>> + Send;

    /// Admin: creates a SKU (`settings.stock` required) or replaces its settings
    /// (send every setting to keep: `None` means the default). Returns the SKU
    /// and whether it was created. Needs the admin token in the client's
    /// config, else `ClientError::Config` without contacting the server.
    /// Failover may send it again after an attempt that got no answer (the
    /// same settings twice make the same SKU); `created` is then false if the
    /// first attempt created it.
    fn put_sku(
        &self,
        sku: &str,
        settings: SkuSettings,
    ) -> impl Future<Output = Result<(Sku, bool), ClientError>> + Send;

    /// Admin: adds `quantity` units of stock. Needs the admin token, like
    /// `put_sku`. Never sent again after an attempt that got no answer: that
    /// could add the stock twice.
    fn restock(
        &self,
        sku: &str,
        quantity: u64,
    ) -> impl Future<Output = Result<Sku, ClientError>> + Send;

    /// Admin: `put_sku` with the SKU behind a waiting room (HTTP only: the
    /// default answers `ClientError::Config`, as QUIC does).
    fn put_sku_with_waiting_room(
        &self,
        sku: &str,
        settings: SkuSettings,
        room: WaitingRoom,
    ) -> impl Future<Output = Result<(Sku, bool), ClientError>> + Send {
        let _ = (sku, settings, room);
        std::future::ready(Err(http_only("put_sku_with_waiting_room")))
    }

    /// Joins `sku`'s waiting room for `customer_id`
    /// (`POST /v1/skus/{sku}/queue`; HTTP only, like the default's refusal).
    fn join_queue(
        &self,
        sku: &str,
        customer_id: &str,
    ) -> impl Future<Output = Result<QueueTicket, ClientError>> + Send {
        let _ = (sku, customer_id);
        std::future::ready(Err(http_only("join_queue")))
    }

    /// Where a join ticket stands (`GET /v1/skus/{sku}/queue/{ticket}`; HTTP
    /// only). Poll no sooner than the last answer's `poll_after`.
    fn poll_queue(
        &self,
        sku: &str,
        ticket: &str,
    ) -> impl Future<Output = Result<QueueTicket, ClientError>> + Send {
        let _ = (sku, ticket);
        std::future::ready(Err(http_only("poll_queue")))
    }

    /// The node whose answer the last answered call returned (a refusal other
    /// than `not_primary` counts), as configured: an `IP:port` or a base URL.
    /// Before any answer, the node calls start at. `None` for a gateway that
    /// does not know its nodes (the default: a type that wraps a client must
    /// forward this and `node_switches`).
    fn current_node(&self) -> Option<String> {
        None
    }

    /// The changes of `current_node` so far, oldest first: each time a node
    /// other than the last one answered. The most recent
    /// `failover::NODE_SWITCHES_KEPT` are kept.
    fn node_switches(&self) -> Vec<NodeSwitch> {
        Vec::new()
    }
}

/// The error for an admin call on a client configured without an admin token.
pub(crate) fn missing_admin_token() -> ClientError {
    ClientError::Config(
        "this call needs the admin token: set admin_token in the client's config".into(),
    )
}
