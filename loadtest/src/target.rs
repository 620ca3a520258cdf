//! `Endpoint`: one gateway the run sends orders to, with its transport and
//! batch size; `Target`: the HTTP or QUIC client behind `OrderGateway`, so the
//! engine is written once and tests can substitute a fake gateway.

use flashgate_client::{
    ClientError, HttpClient, NodeSwitch, Order, OrderGateway, PlaceOrder, Placed, QuicClient, Sku,
    SkuSettings,
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
pub enum Target {
    Http(HttpClient),
    Quic(QuicClient),
}

impl OrderGateway for Target {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        match self {
            Target::Http(client) => client.place(order).await,
            Target::Quic(client) => client.place(order).await,
        }
    }

    async fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        match self {
            Target::Http(client) => client.place_batch(orders).await,
            Target::Quic(client) => client.place_batch(orders).await,
        }
    }

    async fn order(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Target::Http(client) => client.order(order_id).await,
            Target::Quic(client) => client.order(order_id).await,
        }
    }

    async fn confirm(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Target::Http(client) => client.confirm(order_id).await,
            Target::Quic(client) => client.confirm(order_id).await,
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<Order, ClientError> {
        match self {
            Target::Http(client) => client.cancel(order_id).await,
            Target::Quic(client) => client.cancel(order_id).await,
        }
    }

    async fn sku(&self, sku: &str) -> Result<Sku, ClientError> {
        match self {
            Target::Http(client) => client.sku(sku).await,
            Target::Quic(client) => client.sku(sku).await,
        }
    }

    async fn put_sku(&self, sku: &str, settings: SkuSettings) -> Result<(Sku, bool), ClientError> {
        match self {
            Target::Http(client) => client.put_sku(sku, settings).await,
            Target::Quic(client) => client.put_sku(sku, settings).await,
        }
    }

    async fn restock(&self, sku: &str, quantity: u64) -> Result<Sku, ClientError> {
        match self {
            Target::Http(client) => client.restock(sku, quantity).await,
            Target::Quic(client) => client.restock(sku, quantity).await,
        }
    }

    fn current_node(&self) -> Option<String> {
        match self {
            Target::Http(client) => client.current_node(),
            Target::Quic(client) => client.current_node(),
        }
    }

    fn node_switches(&self) -> Vec<NodeSwitch> {
        match self {
            Target::Http(client) => client.node_switches(),
            Target::Quic(client) => client.node_switches(),
        }
    }
}
