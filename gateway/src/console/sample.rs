//! `Sampler`: one task per node reads what the console shows, every
//! `console_sample_interval_ms`, into a `Snapshot`, and publishes it
//! (already framed as a Server-Sent Event) on a `watch` channel. Every
//! stream sends the latest one: a slow reader skips snapshots, it never
//! queues them, and the node does the reading once however many pages are
//! open.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flashgate_actors::Node;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::histogram::{self, Buckets};
use crate::request::RequestMetrics;

/// One SKU as the console shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SkuLine {
    pub sku: String,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    pub low_stock_threshold: u64,
    /// When an order took the last unit (RFC 3339), decided on this node;
    /// absent while units are available.
    pub sold_out_at: Option<String>,
}

/// Latency quantiles over the last interval, in milliseconds (absent
/// without observations in it).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Quantiles {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The log writer over the last interval.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct LogFigures {
    /// Time from a batch's first record to its fsync's end.
    pub commit: Quantiles,
    /// Mean records per batch (group commit).
    pub batch_records_mean: Option<f64>,
    pub batches_per_sec: f64,
}

/// What the console shows at one moment (the `snapshot` event of
/// `GET /v1/console/stream`).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Snapshot {
    /// Milliseconds since the Unix epoch when it was taken.
    pub at_ms: u64,
    /// The seconds the rates below are over.
    pub interval_secs: f64,
    /// As `GET /v1/cluster` shows it.
    #[schema(value_type = Object)]
    pub cluster: Value,
    /// Every SKU; absent when the shards could not be read in time.
    pub skus: Option<Vec<SkuLine>>,
    /// Orders per second by outcome over the last interval (`created`,
    /// `replayed`, or a refusal's code), both front ends.
    pub orders_per_sec: Vec<(String, f64)>,
    /// Order latency (HTTP `POST /v1/orders` and QUIC orders).
    pub order_latency: Quantiles,
    /// Requests waiting for each shard now.
    pub shard_queue_depth: Vec<usize>,
    pub log: LogFigures,
    /// Why the log stopped taking writes, once it has.
    pub storage_failure: Option<String>,
    /// Console streams open on this node.
    pub streams_open: usize,
}

/// What the previous reading held, for the rates and windows.
#[derive(Default)]
struct Previous {
    at: Option<std::time::Instant>,
    outcomes: Vec<(&'static str, u64)>,
    latency: Buckets,
    commit: Buckets,
    batches: Buckets,
}

/// The sampler's shared end: the latest snapshot as an SSE frame.
pub struct Sampler {
    latest: watch::Sender<Option<Bytes>>,
}

impl Default for Sampler {
    fn default() -> Sampler {
        Sampler {
            latest: watch::Sender::new(None),
        }
    }
}

impl Sampler {
    /// A receiver of every new snapshot frame (the latest only).
    pub fn subscribe(&self) -> watch::Receiver<Option<Bytes>> {
        self.latest.subscribe()
    }

    /// Reads the node every `interval` until the task is dropped.
    pub async fn run(
        self: Arc<Self>,
        node: Arc<Node>,
        requests: Arc<RequestMetrics>,
        metrics: PrometheusHandle,
        streams: Arc<super::StreamSlots>,
        interval: Duration,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut previous = Previous::default();
        loop {
            ticker.tick().await;
            // Nobody watching: nothing read (the node pays for open pages only).
            if self.latest.receiver_count() == 0 {
                previous = Previous::default();
                continue;
            }
            let snapshot = take(
                &node,
                &requests,
                &metrics,
                &streams,
                interval,
                &mut previous,
            )
            .await;
            self.latest
                .send_replace(Some(super::stream::frame("snapshot", None, &snapshot)));
        }
    }
}

fn is_order(labels: &[(&str, &str)]) -> bool {
    let has = |key: &str, value: &str| labels.contains(&(key, value));
    (has("route", "/v1/orders") && has("method", "POST"))
        || has("request", "place_order")
        || has("request", "place_orders")
}

fn millis(seconds: Option<f64>) -> Option<f64> {
    seconds.map(|seconds| (seconds * 1e6).round() / 1e3)
}

async fn take(
    node: &Node,
    requests: &RequestMetrics,
    metrics: &PrometheusHandle,
    streams: &super::StreamSlots,
    interval: Duration,
    previous: &mut Previous,
) -> Snapshot {
    let now = std::time::Instant::now();
    let elapsed = previous
        .at
        .map_or(interval, |at| now.duration_since(at))
        .as_secs_f64()
        .max(1e-3);
    let first = previous.at.is_none();

    let outcomes = requests.order_outcomes();
    let orders_per_sec = outcomes
        .iter()
        .map(|(outcome, count)| {
            let before = previous
                .outcomes
                .iter()
                .find(|(known, _)| known == outcome)
                .map_or(0, |(_, count)| *count);
            let rate = if first {
                0.0
            } else {
                count.saturating_sub(before) as f64 / elapsed
            };
            ((*outcome).to_owned(), (rate * 10.0).round() / 10.0)
        })
        .collect();

    let text = metrics.render();
    let latency = histogram::read(&text, "flashgate_http_request_duration_seconds", is_order);
    let quic = histogram::read(&text, "flashgate_quic_request_duration_seconds", is_order);
    let latency = merge(latency, quic);
    let commit = histogram::read(&text, "flashgate_log_commit_seconds", |_| true);
    let batches = histogram::read(&text, "flashgate_log_batch_records", |_| true);
    let window = |now: &Buckets, before: &Buckets| {
        if first {
            Buckets::default()
        } else {
            now.since(before)
        }
    };
    let latency_window = window(&latency, &previous.latency);
    let commit_window = window(&commit, &previous.commit);
    let batch_window = window(&batches, &previous.batches);

    let skus = read_skus(node, interval).await;
    let snapshot = Snapshot {
        at_ms: super::now_ms(),
        interval_secs: (elapsed * 1000.0).round() / 1000.0,
        cluster: crate::http::status_json(&node.cluster_status()),
        skus,
        orders_per_sec,
        order_latency: Quantiles {
            p50_ms: millis(latency_window.quantile(0.5)),
            p99_ms: millis(latency_window.quantile(0.99)),
        },
        shard_queue_depth: node.queue_depths(),
        log: LogFigures {
            commit: Quantiles {
                p50_ms: millis(commit_window.quantile(0.5)),
                p99_ms: millis(commit_window.quantile(0.99)),
            },
            batch_records_mean: batch_window.mean().map(|mean| (mean * 10.0).round() / 10.0),
            batches_per_sec: (batch_window.count / elapsed * 10.0).round() / 10.0,
        },
        storage_failure: node.storage_failure().map(str::to_owned),
        streams_open: streams.open(),
    };
    *previous = Previous {
        at: Some(now),
        outcomes,
        latency,
        commit,
        batches,
    };
    snapshot
}

/// Two histograms with the same bounds as one (HTTP's and QUIC's).
fn merge(mut a: Buckets, b: Buckets) -> Buckets {
    for (le, count) in b.bounds {
        match a.bounds.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, total)) => *total += count,
            None => a.bounds.push((le, count)),
        }
    }
    a.bounds.sort_by(|x, y| x.0.total_cmp(&y.0));
    a.sum += b.sum;
    a.count += b.count;
    a
}

/// Every SKU's stock and sell-out time, read within `bound`; `None` when the
/// shards did not answer in time or refused (a failed log).
async fn read_skus(node: &Node, bound: Duration) -> Option<Vec<SkuLine>> {
    let read = async {
        let stock = node.stock().await?;
        let sales = node.sales().await?;
        Ok::<_, flashgate_actors::NodeError>((stock, sales))
    };
    let (stock, sales) = match tokio::time::timeout(bound, read).await {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => {
            tracing::debug!(%error, "the console could not read the stock this time");
            return None;
        }
        Err(_) => return None,
    };
    Some(
        stock
            .into_iter()
            .map(|sku| {
                let sold_out_at = sales
                    .binary_search_by(|(id, _)| id.cmp(&sku.id))
                    .ok()
                    .and_then(|index| sales[index].1.sold_out_at)
                    .filter(|_| sku.available == 0)
                    .map(|at| at.to_string());
                SkuLine {
                    sku: sku.id.as_str().to_owned(),
                    total: sku.total,
                    available: sku.available,
                    reserved: sku.reserved,
                    sold: sku.sold,
                    low_stock_threshold: sku.low_stock_threshold,
                    sold_out_at,
                }
            })
            .collect(),
    )
}
