//! The operator console (docs/CONSOLE.md): the page at `GET /console`, the
//! live stream it reads (`GET /v1/console/stream`, Server-Sent Events) and
//! the sales report (`GET /v1/admin/report`). The HTTP handlers are in
//! `http/console.rs`; this module holds what they serve.
//!
//! # Layout
//! - `ledger`: `OrderLedger`, each SKU's order attempts by outcome, counted
//!   where an order's outcome is counted (both front ends).
//! - `histogram`: Prometheus histogram text read back into buckets, and
//!   quantiles of what a window added (pure).
//! - `sample`: `Sampler`, the one task that reads the node every
//!   `console_sample_interval_ms` into a `Snapshot` shared by every stream.
//! - `stream`: `StreamSlots` (the cap on concurrent streams) and the
//!   event stream itself: alert events by id with resumption, snapshots,
//!   keep-alives (its framing is pure).
//! - `report`: the sales report as JSON and CSV (pure).
//! - `assets`: the page, its script and style sheet, embedded in the binary.

pub mod assets;
pub mod histogram;
pub mod ledger;
pub mod report;
pub mod sample;
pub mod stream;

pub use ledger::OrderLedger;
pub use sample::{Sampler, Snapshot};
pub use stream::StreamSlots;

/// The default of `Config::report_skus_max`.
pub const REPORT_SKUS_MAX_DEFAULT: usize = 10_000;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// What the console's routes share: the sampler, the stream cap, and when
/// the node started (the report's "since start").
pub struct Console {
    pub sampler: std::sync::Arc<Sampler>,
    pub streams: std::sync::Arc<StreamSlots>,
    pub started: flashgate_actors::domain::Timestamp,
}

impl Console {
    /// A console allowing `streams_max` concurrent streams.
    pub fn new(streams_max: usize) -> Console {
        Console {
            sampler: std::sync::Arc::new(Sampler::default()),
            streams: std::sync::Arc::new(StreamSlots::new(streams_max)),
            started: flashgate_actors::domain::Timestamp(now_ms()),
        }
    }
}
