//! The monitor: the shell around `AlertEngine`. On a timer it reads what
//! the node already knows (every SKU's stock on a primary, the order
//! outcome counters, the reservations the shards ended, the cluster status,
//! the log's failure, refused admin calls, disabled webhook receivers),
//! passes it with the clock to the engine, and publishes the changes to the
//! feed and the webhooks. The order path pays only its counters.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flashgate_actors::domain::Timestamp;
use flashgate_actors::{Node, Role};
use flashgate_protocol::code;

use super::engine::{AlertEngine, ArchiveView, ClusterView, EventsView, Observation};
use super::window::Counters;
use super::Alerts;
use crate::request::RequestMetrics;

/// Runs the rules every `interval` until the task is dropped.
pub async fn run(
    node: Arc<Node>,
    requests: Arc<RequestMetrics>,
    alerts: Arc<Alerts>,
    mut engine: AlertEngine,
    interval: Duration,
    metrics_skus_max: usize,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let status = node.cluster_status();
        // Stock is read on a primary only (a standby's mirrors it; its SKU
        // alerts come from the primary), within one interval.
        let stock = if status.role == Role::Primary && node.storage_failure().is_none() {
            match tokio::time::timeout(interval, node.stock()).await {
                Ok(Ok(stock)) => Some(stock),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "the alert monitor could not read the stock this time");
                    None
                }
                Err(_) => None,
            }
        } else {
            None
        };
        if let Some(stock) = &stock {
            export_stock(stock, metrics_skus_max);
        }
        let (confirmed, cancelled, expired) = node.reservations_ended();
        let counters = Counters {
            orders: requests.orders_taken(),
            replayed: requests.orders_with_outcome("replayed"),
            key_reused: requests.orders_with_outcome(code::IDEMPOTENCY_KEY_REUSED),
            limit_exceeded: requests.orders_with_outcome(code::LIMIT_EXCEEDED),
            overloaded: requests.orders_with_outcome(code::OVERLOADED),
            confirmed,
            cancelled,
            expired,
            admin_auth_refused: requests.admin_auth_refusals(),
        };
        let disabled = alerts
            .webhooks
            .as_ref()
            .map(|webhooks| webhooks.stats().disabled())
            .unwrap_or_default();
        let observation = Observation {
            now: Timestamp::from_system_time(SystemTime::now()),
            stock: stock.as_deref(),
            counters,
            cluster: ClusterView {
                role: status.role,
                epoch: status.epoch,
                replication: status.replication,
                standby_connected: status.standby.connected,
                degraded: status.degraded.clone(),
                lag_ms: status.lag.as_millis() as u64,
                lag_records: status.lag_records,
            },
            storage_failure: node.storage_failure(),
            archive: node
                .archive_lag()
                .map(|(lag_records, retention_records_max)| ArchiveView {
                    lag_records,
                    retention_records_max,
                }),
            events: node
                .events_lag()
                .map(|(lag_records, retention_records_max, gaps)| EventsView {
                    lag_records,
                    retention_records_max,
                    gaps,
                }),
            disabled_webhooks: &disabled,
        };
        let changes = engine.evaluate(&observation);
        for event in alerts.feed.publish(changes) {
            if let Some(webhooks) = &alerts.webhooks {
                webhooks.enqueue(event);
            }
        }
    }
}

/// Every SKU's stock as gauges, for the Prometheus rules
/// (deploy/prometheus/flashgate-alerts.yml). SKUs are created by an admin
/// only, so the series are as many as the SKUs.
/// The stock of the first `skus_max` SKUs by id, as gauges: a label value
/// per SKU, so bounded (`metrics_skus_max`).
fn export_stock(stock: &[flashgate_actors::domain::SkuStock], skus_max: usize) {
    let mut first: Vec<&flashgate_actors::domain::SkuStock> = stock.iter().collect();
    first.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    for sku in first.into_iter().take(skus_max) {
        let id = sku.id.as_str().to_owned();
        metrics::gauge!("flashgate_sku_total_units", "sku" => id.clone()).set(sku.total as f64);
        metrics::gauge!("flashgate_sku_available_units", "sku" => id.clone())
            .set(sku.available as f64);
        metrics::gauge!("flashgate_sku_reserved_units", "sku" => id.clone())
            .set(sku.reserved as f64);
        metrics::gauge!("flashgate_sku_sold_units", "sku" => id.clone()).set(sku.sold as f64);
        metrics::gauge!("flashgate_sku_low_stock_threshold_units", "sku" => id)
            .set(sku.low_stock_threshold as f64);
    }
}
