//! flashgate's front ends: the HTTP API, configuration, metrics. The only crate
//! that knows HTTP and JSON.
//!
//! # Layout
//! - `config`: `Config`, its defaults and layers (file, environment, flags).
//! - `server`: `serve`, the process's life: start, listen, signals, shutdown.
//! - `http`: the routes, one file per group (`orders`, `skus`, `ops`, `admin`).
//! - `wire`: JSON request parsing and response bodies.
//! - `problem`: `ApiError`, RFC 9457 problem responses with a `code`.
//! - `token`: the admin token, configured or generated into the data dir.

pub mod config;
pub mod http;
pub mod problem;
pub mod server;
pub mod token;
pub mod wire;

pub use config::{Config, ConfigError, LogFormat, Overrides};
pub use server::{serve, ServeError};
