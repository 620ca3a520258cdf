//! flashgate's order logic.
//!
//! # Layout
//! - `domain`: the deterministic, I/O-free per-shard order logic (SKUs, orders,
//!   commands, events).

pub mod domain;
