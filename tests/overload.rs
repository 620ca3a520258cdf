//! When a shard's queue is full the answer is 503 `overloaded` with a
//! Retry-After, at once, instead of unbounded waiting or memory; nothing is
//! sold twice meanwhile, every 201 is a real order, and the node keeps serving
//! once the burst is over. Limits are tiny here (a queue of one request, a log
//! queue of one record) so a modest burst is enough to hit them.

mod common;

use std::sync::{Arc, Barrier};

use common::Launch;
use serde_json::json;

const THREADS: usize = 32;
const ROUNDS_MAX: usize = 50;

#[test]
fn a_full_shard_queue_answers_503_overloaded_and_the_node_recovers() {
    let server = Launch::new()
        .arg("--shards")
        .arg("1")
        .env("FLASHGATE_MAILBOX_REQUESTS_MAX", "1")
        .env("FLASHGATE_LOG_QUEUE_RECORDS_MAX", "1")
        .start();
    let api = server.client();
    api.put_sku("HOT", json!({ "stock": 1_000_000 }));

    let mut created = 0;
    let mut overloaded = 0;
    let mut round = 0;
    while overloaded == 0 {
        round += 1;
        assert!(
            round <= ROUNDS_MAX,
            "{ROUNDS_MAX} bursts of {THREADS} never filled a queue of one"
        );
        let start = Arc::new(Barrier::new(THREADS));
        let answers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let api = api.clone();
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    let request = api.request("POST", "/v1/orders").set("Content-Type", "application/json");
                    let body = json!({ "sku": "HOT", "quantity": 1, "customer_id": format!("r{round}-t{thread}") });
                    api.send(request, Some(&body.to_string()))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|handle| handle.join().expect("a request thread panicked"))
            .collect();
        for answer in answers {
            match answer.status {
                201 => created += 1,
                503 => {
                    let problem = answer.json();
                    assert_eq!(problem["code"], "overloaded", "{problem}");
                    let retry_after = answer
                        .header("Retry-After")
                        .expect("a 503 overloaded says when to retry");
                    assert!(
                        retry_after.parse::<u32>().is_ok_and(|secs| secs >= 1),
                        "Retry-After: {retry_after}"
                    );
                    overloaded += 1;
                }
                other => panic!("unexpected answer {other}: {}", answer.text),
            }
        }
    }

    // The burst is over: orders go through again, and the counters hold exactly
    // the orders that were acknowledged.
    let (status, order) = api.place_order("HOT", 1, "after-the-burst");
    assert_eq!(status, 201, "{order}");
    let sku = api.sku("HOT");
    assert_eq!(sku["reserved"], json!(created + 1), "{sku}");
    assert_eq!(sku["available"], json!(1_000_000 - created - 1), "{sku}");
    let metrics = api.request("GET", "/metrics");
    let text = api.send(metrics, None).text;
    for family in [
        "flashgate_orders_total{outcome=\"overloaded\"}",
        "flashgate_orders_total{outcome=\"created\"}",
        "flashgate_http_request_duration_seconds_bucket",
        "flashgate_log_batch_records_bucket",
        "flashgate_log_commit_seconds_bucket",
        "flashgate_shard_queue_depth{shard=\"0\"}",
    ] {
        assert!(text.contains(family), "/metrics lacks {family}");
    }
    // No counter or histogram is labelled by SKU (a buyer names SKUs); only
    // the stock gauges of SKUs that exist are, bounded by metrics_skus_max.
    for line in text.lines().filter(|line| line.contains("sku=")) {
        assert!(
            line.starts_with("flashgate_sku_") && line.contains("_units{"),
            "a per-SKU label outside the stock gauges: {line}"
        );
    }
}
