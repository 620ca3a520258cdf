//! The QUIC front end: trusted upstreams send orders in `flashgate_protocol`
//! frames over bidirectional QUIC streams (ALPN `flashgate/1`). It runs on a
//! thread of its own with its own tokio runtime and calls the same `Node` as the
//! HTTP API; like it, it answers only once what the answer reflects is durable.
//!
//! # Layout
//! - `server`: `QuicServer`: the thread, the endpoint, the accept loop (the
//!   handshake limits, Retry for unvalidated addresses, the limit of
//!   established connections) and the graceful shutdown.
//! - `connection`: one established connection: accepts its streams and shares
//!   its in-flight limit and its answer budget between them.
//! - `stream`: one stream: reads request frames, runs each request as it comes,
//!   writes each answer as it completes (out of order, under its request id).
//! - `convert`: wire ↔ domain through the domain's parse constructors; a
//!   refusal is the shared `crate::request::RequestError`, with the HTTP
//!   API's codes.
//! - `tls`: the certificate (configured, or generated into the data dir) and the
//!   rustls configuration.
//!
//! # Application error codes
//! Besides the frames, the server speaks through QUIC's own error codes:
//! `STREAM_STOP_*` in STOP_SENDING when it stops reading a stream, and
//! `CLOSE_*` in CONNECTION_CLOSE, whose reason says the same in words.

mod connection;
pub mod convert;
pub mod server;
mod stream;
pub mod tls;

use std::sync::Arc;

use flashgate_actors::Node;

pub use server::{QuicLimits, QuicServer};
pub use tls::{server_certificate, CertificateSource, ServerCertificate, TlsError};

/// STOP_SENDING code: the stream sent a frame that could not be read (or was over
/// a limit); the server answered it with a `Response::FrameError` and reads no more.
pub const STREAM_STOP_FRAME_ERROR: u32 = 1;
/// STOP_SENDING code: the server is shutting down and reads no more requests; it
/// still answers the ones it read.
pub const STREAM_STOP_SHUTTING_DOWN: u32 = 2;
/// STOP_SENDING code: the server could no longer write answers on this stream
/// (the client stopped reading them), so it reads no more requests.
pub const STREAM_STOP_ANSWERS_STOPPED: u32 = 3;

/// CONNECTION_CLOSE code: the server is shutting down.
pub const CLOSE_SHUTTING_DOWN: u32 = 1;
/// CONNECTION_CLOSE code: the server has its maximum of connections open.
pub const CLOSE_CONNECTION_LIMIT: u32 = 2;

/// Why the QUIC front end could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen for QUIC on {addr}: {source}; pick a free address with --quic-addr, or turn QUIC off with --no-quic")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("quic_idle_timeout_ms of {0:?} is too long for QUIC; choose a shorter one")]
    IdleTimeout(std::time::Duration),
    #[error("cannot start the QUIC thread: {0}")]
    Thread(std::io::Error),
    #[error("the QUIC thread stopped before it listened")]
    ThreadStopped,
}

/// What every connection and stream of one server reads.
struct Shared {
    node: Arc<Node>,
    admin_token: String,
    /// Identifies connections' credentials; shared with HTTP.
    gatekeeper: Arc<crate::auth::Gatekeeper>,
    /// The outcome counters, shared with HTTP.
    requests: Arc<crate::request::RequestMetrics>,
    /// Per-customer order limits, shared with HTTP.
    rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// The SKUs' waiting rooms, shared with HTTP.
    waiting_rooms: Arc<crate::waiting_room::WaitingRooms>,
    limits: QuicLimits,
}
