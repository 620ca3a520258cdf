//! flashgate's front ends: the HTTP API, the QUIC front end, configuration,
//! metrics. The only crate that knows HTTP, JSON, QUIC and wire frames.
//!
//! # Layout
//! - `events`: order events out on NATS JetStream, the log as the outbox
//!   (schema and resume point pure, the publisher a thread of its own).
//! - `alerts`: the alert rules (pure), the monitor that runs them, the
//!   alert feed, and webhook delivery (docs/ALERTS.md).
//! - `console`: the operator console: its embedded page, the sampler and
//!   live stream it reads, the sales report (docs/CONSOLE.md).
//! - `auth`: who may do what: callers, the rule table both front ends share,
//!   credentials (tokens, buyer JWTs), the per-address failure throttle.
//! - `config`: `Config`, its defaults and layers (file, environment, flags).
//! - `server`: `serve`, the process's life: start, listen, signals, shutdown.
//! - `http`: the routes, one file per group (`orders`, `skus`, `ops`, `admin`),
//!   and `openapi`: the OpenAPI 3.1 document of them, served at `/openapi.json`.
//! - `quic`: the QUIC front end (binary frames of `flashgate_protocol`) on its
//!   own thread and tokio runtime.
//! - `replication`: the replication channel between a primary and its
//!   standby (QUIC, cluster-secret handshake) on its own thread.
//! - `error_code`: the one mapping from node errors to the codes both front ends
//!   answer.
//! - `wire`: JSON request parsing and response bodies.
//! - `problem`: `RequestError`, RFC 9457 problem responses with a `code`.
//! - `token`: the admin token, configured or generated into the data dir.
//! - `http_limits`: per-address connection cap and request-head limits,
//!   before any handler.
//! - `waiting_room`: the optional per-SKU waiting room: the queue (pure),
//!   signed tickets, the check of an order's admission.
//! - `log_limit`: client-caused log lines at WARN or below, rate-limited per kind.

pub mod alerts;
pub mod auth;
pub mod config;
pub mod console;
pub mod error_code;
pub mod events;
pub mod http;
pub mod http_limits;
pub mod http_tls;
pub mod log_limit;
pub mod problem;
pub mod quic;
pub mod rate_limit;
pub mod replication;
pub mod request;
pub mod server;
pub mod token;
pub mod waiting_room;
pub mod wire;

pub use config::{Config, ConfigError, LogFormat, Overrides};
pub use server::{serve, ServeError, EXIT_STOP_ABANDONED, EXIT_STORAGE_FAILED};
