//! `Endpoint`: one gateway the run sends orders to, with its transport and
//! batch size; `Target`: the HTTP or QUIC clients behind `OrderGateway` (one
//! with the orders credential, and one with the payments credential for
//! confirmations), so the engine is written once and tests can substitute a
//! fake gateway.

use flashgate_client::{
    ChangeOrder, Changed, ClientError, HttpClient, NodeSwitch, Order, OrderGateway, OrdersRead,
    PlaceOrder, Placed, QueueTicket, QuicClient, Sku, SkuSettings, WaitingRoom,
};

/// The transport of an endpoint, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Http,
    Quic,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Quic => "quic",
        }
    }
}

/// One gateway (one node, or the nodes of one cluster behind one client), how
/// it is reached, and how many orders go in one call (`place_batch` when more
/// than one).
pub struct Endpoint<G> {
    pub gateway: G,
    pub transport: Transport,
    /// The target as given on the command line (comma-separated nodes for a
    /// cluster), for messages and the report.
    pub address: String,
    pub batch: u32,
}

/// A real client: HTTP or QUIC.
pub enum Client {
    Http(HttpClient),
    Quic(QuicClient),
}

/// The clients of one endpoint: `orders` for every call but confirmations,
/// which go through `payments` when it is given (a payments credential: a
/// service credential may not confirm).
pub struct Target {
    pub orders: Client,
    pub payments: Option<Client>,
}

impl OrderGateway for Target {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        self.orders.place(order).await
    }

    async fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        self.orders.place_batch(orders).await
    }

    async fn order(&self, order_id: &str) -> Result<Order, ClientError> {
        self.orders.order(order_id).await
    }

    async fn read_orders(&self, order_ids: &[String]) -> Result<OrdersRead, ClientError> {
        self.orders.read_orders(order_ids).await
    }

    async fn confirm(&self, order_id: &str) -> Result<Order, ClientError> {
        self.payments
            .as_ref()
            .unwrap_or(&self.orders)
            .confirm(order_id)
            .await
    }

    async fn cancel(&self, order_id: &str) -> Result<Order, ClientError> {
        self.orders.cancel(order_id).await
    }

    async fn ship(&self, order_id: &str) -> Result<Order, ClientError> {
        self.orders.ship(order_id).await
    }

    async fn change(
        &self,
        order_id: &str,
        change: ChangeOrder,
        idempotency_key: &str,
    ) -> Result<Changed, ClientError> {
        self.orders.change(order_id, change, idempotency_key).await
    }

    async fn sku(&self, sku: &str) -> Result<Sku, ClientError> {
        self.orders.sku(sku).await
    }

    async fn put_sku(&self, sku: &str, settings: SkuSettings) -> Result<(Sku, bool), ClientError> {
        self.orders.put_sku(sku, settings).await
    }

    async fn restock(&self, sku: &str, quantity: u64) -> Result<Sku, ClientError> {
        self.orders.restock(sku, quantity).await
    }

    async fn put_sku_with_waiting_room(
        &self,
        sku: &str,
        settings: SkuSettings,
        room: WaitingRoom,
    ) -> Result<(Sku, bool), ClientError> {
        self.orders
            .put_sku_with_waiting_room(sku, settings, room)
            .await
    }

    async fn join_queue(&self, sku: &str, customer_id: &str) -> Result<QueueTicket, ClientError> {
        self.orders.join_queue(sku, customer_id).await
    }

    async fn poll_queue(&self, sku: &str, ticket: &str) -> Result<QueueTicket, ClientError> {
        self.orders.poll_queue(sku, ticket).await
    }

    fn current_node(&self) -> Option<String> {
        self.orders.current_node()
    }

    fn node_switches(&self) -> Vec<NodeSwitch> {
        self.orders.node_switches()
    }
}

impl OrderGateway for Client {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        match self {
            Client::Http(client) => client.place(order).await,
            Client::Quic(client) => client.place(order).await,
        }
    }

    async fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        match self {
            Client::Http(client) => client.place_batch(orders).await,
            Client::Quic(client) => client.place_batch(orders).await,
        }
    }

    async fn order(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Client::Http(client) => client.order(order_id).await,
            Client::Quic(client) => client.order(order_id).await,
        }
    }

    async fn read_orders(&self, order_ids: &[String]) -> Result<OrdersRead, ClientError> {
        match self {
            Client::Http(client) => client.read_orders(order_ids).await,
            Client::Quic(client) => client.read_orders(order_ids).await,
        }
    }

    async fn confirm(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Client::Http(client) => client.confirm(order_id).await,
            Client::Quic(client) => client.confirm(order_id).await,
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Client::Http(client) => client.cancel(order_id).await,
            Client::Quic(client) => client.cancel(order_id).await,
        }
    }

    async fn ship(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Client::Http(client) => client.ship(order_id).await,
            Client::Quic(client) => client.ship(order_id).await,
        }
    }

    async fn change(
        &self,
        order_id: &str,
        change: ChangeOrder,
        idempotency_key: &str,
    ) -> Result<Changed, ClientError> {
        match self {
            Client::Http(client) => client.change(order_id, change, idempotency_key).await,
            Client::Quic(client) => client.change(order_id, change, idempotency_key).await,
        }
    }

    async fn sku(&self, sku: &str) -> Result<Sku, ClientError> {
        match self {
            Client::Http(client) => client.sku(sku).await,
            Client::Quic(client) => client.sku(sku).await,
        }
    }

    async fn put_sku(&self, sku: &str, settings: SkuSettings) -> Result<(Sku, bool), ClientError> {
        match self {
            Client::Http(client) => client.put_sku(sku, settings).await,
            Client::Quic(client) => client.put_sku(sku, settings).await,
        }
    }

    async fn restock(&self, sku: &str, quantity: u64) -> Result<Sku, ClientError> {
        match self {
            Client::Http(client) => client.restock(sku, quantity).await,
            Client::Quic(client) => client.restock(sku, quantity).await,
        }
    }

    async fn put_sku_with_waiting_room(
        &self,
        sku: &str,
        settings: SkuSettings,
        room: WaitingRoom,
    ) -> Result<(Sku, bool), ClientError> {
        match self {
            Client::Http(client) => client.put_sku_with_waiting_room(sku, settings, room).await,
            Client::Quic(client) => client.put_sku_with_waiting_room(sku, settings, room).await,
        }
    }

    async fn join_queue(&self, sku: &str, customer_id: &str) -> Result<QueueTicket, ClientError> {
        match self {
            Client::Http(client) => client.join_queue(sku, customer_id).await,
            Client::Quic(client) => client.join_queue(sku, customer_id).await,
        }
    }

    async fn poll_queue(&self, sku: &str, ticket: &str) -> Result<QueueTicket, ClientError> {
        match self {
            Client::Http(client) => client.poll_queue(sku, ticket).await,
            Client::Quic(client) => client.poll_queue(sku, ticket).await,
        }
    }

    fn current_node(&self) -> Option<String> {
        match self {
            Client::Http(client) => client.current_node(),
            Client::Quic(client) => client.current_node(),
        }
    }

    fn node_switches(&self) -> Vec<NodeSwitch> {
        match self {
            Client::Http(client) => client.node_switches(),
            Client::Quic(client) => client.node_switches(),
        }
    }
}
