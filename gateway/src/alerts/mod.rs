//! Alerts: rules over what the node knows, raised and resolved, listed at
//! `GET /v1/alerts`, published on an in-process feed and delivered to
//! webhooks (docs/ALERTS.md).
//!
//! # Layout
//! - `engine`: `AlertEngine`, the rules (pure: `now` and an `Observation` in,
//!   the alerts raised and resolved out), `Alert`, `AlertKind`, `AlertRules`.
//! - `window`: `CounterWindow`, counters' growth over a window (pure).
//! - `feed`: `AlertFeed`, the active and recent alerts and the numbered
//!   events in a bounded ring (for a stream that resumes from an event id).
//! - `monitor`: the timer task that reads the node and runs the engine.
//! - `webhook`: signing (Standard Webhooks), backoff, and the delivery thread.

pub mod engine;
pub mod feed;
pub mod monitor;
pub mod webhook;
pub mod window;

pub use engine::{Alert, AlertChange, AlertEngine, AlertKind, AlertRules, Severity};
pub use feed::{AlertFeed, FeedEvent, FeedLimits, Missed};
pub use webhook::{WebhookConfig, Webhooks};

/// What the node keeps of its alerts, shared by the monitor, the HTTP API
/// and whoever reads the feed. (Refused admin calls are counted in
/// `RequestMetrics`, which both front ends share.)
pub struct Alerts {
    pub feed: AlertFeed,
    /// The webhook deliveries, when receivers are configured.
    pub webhooks: Option<Webhooks>,
}

impl Alerts {
    pub fn new(limits: FeedLimits, webhooks: Option<Webhooks>) -> Alerts {
        Alerts {
            feed: AlertFeed::new(limits),
            webhooks,
        }
    }
}
