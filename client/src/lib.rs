//! Clients for flashgate: `QuicClient` speaks the binary protocol over QUIC
//! (pipelined over a few streams, reconnecting after a lost connection) and
//! `HttpClient` speaks the HTTP JSON API. Both implement `OrderGateway`: the same
//! calls, the protocol crate's `Order` and `Sku` (times in milliseconds since the
//! epoch) and one `ClientError`, whose `Server` variant carries the server's
//! error code (`"sold_out"`, ...), the same string over both transports.
//!
//! Given the nodes of a cluster (a primary and its standby), both clients
//! follow the primary: a call refused as `not_primary`, or that cannot reach its
//! node, moves on to the next node, within `FailoverConfig`'s bounds and never
//! in a way that could apply a request twice.
//!
//! ```no_run
//! use flashgate_client::{
//!     Fingerprint, HttpClient, HttpConfig, OrderGateway, PlaceOrder, QuicClient, QuicConfig,
//!     Trust,
//! };
//!
//! # async fn run() -> Result<(), flashgate_client::ClientError> {
//! // Pin the certificate `flashgate serve` printed ("QUIC certificate ... sha256 HEX").
//! let fingerprint: Fingerprint =
//!     "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".parse()?;
//! let quic = QuicClient::connect(QuicConfig::new(
//!     vec!["127.0.0.1:4433".parse().unwrap()],
//!     Trust::Fingerprint(fingerprint),
//! ))
//! .await?;
//! let order = PlaceOrder::new("SNEAKER-42", 1, "alice").with_idempotency_key("7f3c2a");
//! match quic.place(order).await {
//!     Ok(placed) => println!("order {}", placed.order.order_id),
//!     Err(error) if error.code() == Some("sold_out") => println!("too late"),
//!     Err(error) if error.is_retryable() => println!("retry with the same key: {error}"),
//!     Err(error) => return Err(error),
//! }
//!
//! let http = HttpClient::new(HttpConfig::new("http://127.0.0.1:8080"))?;
//! println!("{:?}", http.sku("SNEAKER-42").await?);
//!
//! // A primary and its standby: calls follow whichever is the primary.
//! let cluster = HttpClient::new(HttpConfig::with_base_urls([
//!     "http://127.0.0.1:8080",
//!     "http://127.0.0.1:8081",
//! ]))?;
//! cluster.place(PlaceOrder::new("SNEAKER-42", 1, "bob").with_idempotency_key("9d1e")).await?;
//! println!("answered by {:?}", cluster.current_node());
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `api`: `OrderGateway`, the calls both clients make; `PlaceOrder`, `Placed`,
//!   `ChangeOrder`, `Changed`.
//! - `error`: `ClientError` (server refusal, transport, protocol, config) and
//!   `TransportError`.
//! - `failover`: `FailoverConfig`, `NodeSwitch`; which node a call goes to and
//!   whether a failed attempt is sent again (no I/O).
//! - `cluster`: `Cluster`, the async shell that runs a call's attempts over
//!   the nodes.
//! - `quic`: `QuicClient` and `QuicConfig`: connection, stream pool, reader and
//!   writer tasks, reconnects.
//! - `pending`: matching answers to waiting requests by request id (no I/O).
//! - `trust`: `Trust` and `Fingerprint`, and the rustls verifiers behind them
//!   (QUIC and HTTPS).
//! - `http`: `HttpClient` and `HttpConfig`, over `http1`, the HTTP/1.1
//!   keep-alive transport (plain TCP, or TLS for `https://` nodes).
//! - `json`: the HTTP API's JSON and RFC 3339 times ↔ protocol types; problem+json
//!   → `ClientError` (no I/O).

pub mod api;
mod cluster;
pub mod error;
pub mod failover;
pub mod http;
mod http1;
mod json;
mod pending;
pub mod quic;
pub mod trust;

pub use api::{
    ChangeOrder, Changed, OrderChange, OrderGateway, OrdersRead, PlaceOrder, Placed, QueueTicket,
    WaitingRoom,
};
pub use error::{ClientError, TransportError};
pub use failover::{FailoverConfig, NodeSwitch};
pub use flashgate_protocol::{Order, OrderStatus, Sku, SkuSettings};
pub use http::{HttpClient, HttpConfig};
pub use quic::{QuicClient, QuicConfig};
pub use trust::{Fingerprint, Trust};
