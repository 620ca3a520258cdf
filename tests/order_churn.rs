//! Memory follows live state, not history: finished orders leave a shard's
//! memory, stay readable from the data dir with the same body, keep counting
//! toward customers' limits, and keep answering idempotent retries; against
//! the real binary (docs/RELIABILITY.md, "Hostile clients").

mod common;

use std::time::Duration;

use common::{order_id, poll_until, Client, Launch, Server};
use serde_json::{json, Value};

/// Threads churning, each on a SKU of one unit of its own (all in one shard).
const CHURN_THREADS: usize = 8;
/// Place + cancel cycles per thread before the first RSS reading (the
/// allocator and the caches reach their working size).
const WARM_UP_CYCLES: usize = 500;
/// Place + cancel cycles per thread that are measured: 20,000 in all.
const CHURN_CYCLES: usize = 2_500;
/// Live orders a shard may hold: far fewer than the orders the churn makes,
/// so a cap that counted history would refuse buyers.
const LIVE_ORDERS_MAX: usize = 1_000;
/// The storage engine's page cache in the test: what was written (the log,
/// the archive of finished orders) stays cached up to it.
const STORAGE_CACHE_BYTES: u64 = 2 << 20;
/// Most the node's memory may grow during the 20,000 cycles: the page cache
/// filling up, and 6 MiB more. Kept in memory, the finished orders took about
/// 0.8 to 1.1 KiB each: 16 to 22 MiB.
const CHURN_RSS_GROWTH_MAX_KIB: u64 = STORAGE_CACHE_BYTES / 1024 + 6 * 1024;
/// Longest wait for the retire passes to catch up with the churn.
const RETIRE_WAIT: Duration = Duration::from_secs(60);

fn launch(data_dir: &std::path::Path) -> Server {
    Launch::new()
        .data_dir(data_dir)
        .arg("--shards")
        .arg("1")
        .env(
            "FLASHGATE_ORDERS_PER_SHARD_MAX",
            &LIVE_ORDERS_MAX.to_string(),
        )
        .env("FLASHGATE_FINISHED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_CONFIRMED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_IDEMPOTENCY_KEY_RETENTION_SECS", "3600")
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "50")
        .env(
            "FLASHGATE_STORAGE_CACHE_BYTES_MAX",
            &STORAGE_CACHE_BYTES.to_string(),
        )
        .start()
}

/// Orders that have left the node's memory since it started, from /metrics.
fn retired_total(api: &Client) -> u64 {
    let answer = api.send(api.request("GET", "/metrics"), None);
    assert_eq!(answer.status, 200, "GET /metrics");
    answer
        .text
        .lines()
        .find_map(|line| line.strip_prefix("flashgate_orders_retired_total "))
        .map_or(0, |value| value.trim().parse::<f64>().unwrap_or(0.0) as u64)
}

fn wait_retired(api: &Client, at_least: u64) {
    poll_until(
        &format!("{at_least} orders to leave memory"),
        RETIRE_WAIT,
        || (retired_total(api) >= at_least).then_some(()),
    );
}

/// Places and cancels on `sku` `cycles` times; every order must be accepted.
/// Returns the first order's cancel answer.
fn churn(api: &Client, sku: &str, customer: &str, cycles: usize) -> Value {
    let mut first = None;
    for cycle in 0..cycles {
        let (status, order) = api.place_order(sku, 1, customer);
        assert_eq!(status, 201, "cycle {cycle} on {sku}: {order}");
        let (status, cancelled) = api.cancel(&order_id(&order));
        assert_eq!(status, 200, "cancel in cycle {cycle} on {sku}: {cancelled}");
        assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
        first.get_or_insert(cancelled);
    }
    first.expect("at least one cycle")
}

fn churn_in_parallel(api: &Client, cycles: usize) -> Vec<Value> {
    let threads: Vec<_> = (0..CHURN_THREADS)
        .map(|thread| {
            let api = api.clone();
            std::thread::spawn(move || {
                churn(
                    &api,
                    &format!("churn-{thread}"),
                    &format!("buyer-{thread}"),
                    cycles,
                )
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|thread| thread.join().expect("a churn thread panicked"))
        .collect()
}

fn place_with_key(api: &Client, body: &Value, key: &str) -> (u16, Value) {
    api.try_post_json("/v1/orders", body, &[("Idempotency-Key", key)])
        .unwrap_or_else(|error| panic!("POST /v1/orders with {body}: no answer: {error}"))
}

/// Place + cancel on SKUs of one unit used to keep every finished order in
/// memory for good (28,763 cycles: +32 MiB), and the per-shard cap counted
/// them, so a long sale would end up refusing every buyer of the shard. Now
/// 20,000 cycles against a cap of 1,000 live orders are all served, memory
/// stays within a bound far below the old growth, and the orders that left
/// memory answer with the body they had, after a restart too; a retry with
/// an idempotency key gets its order back, and a settled order still counts
/// toward its customer's limit.
#[test]
fn order_churn_is_served_in_bounded_memory_and_history_stays_readable() {
    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = launch(data.path());
    let api = server.client().clone();
    for thread in 0..CHURN_THREADS {
        api.put_sku(&format!("churn-{thread}"), json!({ "stock": 1 }));
    }
    api.put_sku("limited", json!({ "stock": 5, "per_customer_limit": 1 }));

    churn_in_parallel(&api, WARM_UP_CYCLES);
    let warm_up_orders = (CHURN_THREADS * WARM_UP_CYCLES) as u64;
    wait_retired(&api, warm_up_orders);
    let before = server.resident_kib();
    let firsts = churn_in_parallel(&api, CHURN_CYCLES);
    let churned = warm_up_orders + (CHURN_THREADS * CHURN_CYCLES) as u64;
    wait_retired(&api, churned);
    let growth = server.resident_kib().saturating_sub(before);
    eprintln!(
        "RSS {before} KiB before {} cycles, grew {growth} KiB",
        CHURN_THREADS * CHURN_CYCLES
    );
    assert!(
        growth <= CHURN_RSS_GROWTH_MAX_KIB,
        "{} place + cancel cycles grew the node by {growth} KiB",
        CHURN_THREADS * CHURN_CYCLES
    );
    // Orders that left memory read as they were answered.
    for cancelled in &firsts {
        assert_eq!(&api.order(&order_id(cancelled)), cancelled);
    }

    // A retry with a key whose order left memory gets that order back.
    let keyed = json!({ "sku": "churn-0", "quantity": 1, "customer_id": "kim" });
    let (status, placed) = place_with_key(&api, &keyed, "kim-checkout-1");
    assert_eq!(status, 201, "{placed}");
    let (status, cancelled) = api.cancel(&order_id(&placed));
    assert_eq!(status, 200, "{cancelled}");
    // A settled order (confirmed, then out of memory) keeps its unit sold and
    // counted toward the customer's limit of 1, and is no longer cancelled.
    let settled = api.reserve("limited", 1, "alice");
    let (status, confirmed) = api.confirm(&order_id(&settled));
    assert_eq!(status, 200, "{confirmed}");
    wait_retired(&api, churned + 2);

    let check_history = |api: &Client, available: u64| {
        for cancelled in &firsts {
            assert_eq!(&api.order(&order_id(cancelled)), cancelled);
        }
        let (status, retried) = place_with_key(api, &keyed, "kim-checkout-1");
        assert_eq!((status, &retried), (200, &cancelled), "retry of kim's key");
        let (status, refused) = api.place_order("limited", 1, "alice");
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["code"], "limit_exceeded", "{refused}");
        let (status, refused) = api.cancel(&order_id(&settled));
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["code"], "invalid_transition", "{refused}");
        assert_eq!(api.order(&order_id(&settled)), confirmed);
        let sku = api.sku("limited");
        assert_eq!(
            (&sku["available"], &sku["sold"]),
            (&json!(available), &json!(1)),
            "{sku}"
        );
    };
    check_history(&api, 4);
    // Buyers are served: history never fills the shard.
    api.reserve("limited", 1, "bob");

    assert!(server.terminate().success(), "{}", server.stderr());
    let server = launch(data.path());
    let api = server.client().clone();
    check_history(&api, 3);
    // Bob's second order is refused by his limit, not by history.
    let (status, refused) = api.place_order("limited", 1, "bob");
    assert_eq!(refused["code"], "limit_exceeded", "{status} {refused}");
}

fn checkpoints_written(server: &Server) -> usize {
    server.stderr().matches("checkpoint written").count()
}

/// A promoted standby answers the orders that left its primary's memory as
/// the primary did: a standby that joins late catches up from a checkpoint
/// that no longer holds them (the archive comes with it), and then applies
/// the primary's later retirements from the log. Settled units and keys
/// come along too.
#[test]
fn a_promoted_standby_answers_the_orders_that_left_memory() {
    let primary_dir = tempfile::tempdir().expect("create a data dir");
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let mut primary = Launch::new()
        .data_dir(primary_dir.path())
        .replicated("127.0.0.1:0")
        .arg("--replication")
        .arg("async")
        .arg("--shards")
        .arg("1")
        .env("FLASHGATE_FINISHED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_CONFIRMED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "50")
        .env("FLASHGATE_CHECKPOINT_INTERVAL_SECS", "1")
        .start();
    let api = primary.client().clone();
    api.put_sku("churn-0", json!({ "stock": 1 }));
    api.put_sku("limited", json!({ "stock": 5, "per_customer_limit": 1 }));
    let early = churn(&api, "churn-0", "early", 100);
    let keyed = json!({ "sku": "churn-0", "quantity": 1, "customer_id": "kim" });
    let (status, placed) = place_with_key(&api, &keyed, "kim-checkout-1");
    assert_eq!(status, 201, "{placed}");
    let (_, keyed_cancelled) = api.cancel(&order_id(&placed));
    let settled = api.reserve("limited", 1, "alice");
    let (status, confirmed) = api.confirm(&order_id(&settled));
    assert_eq!(status, 200, "{confirmed}");
    wait_retired(&api, 102);
    // A checkpoint after the retirements: it no longer holds those orders.
    let written = checkpoints_written(&primary);
    poll_until("two more checkpoints", RETIRE_WAIT, || {
        (checkpoints_written(&primary) >= written + 2).then_some(())
    });

    let standby = Launch::new()
        .data_dir(standby_dir.path())
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .arg("--shards")
        .arg("1")
        .start();
    primary.wait_for_cluster("the standby to connect", |status| {
        status["peer"]["connected"] == true
    });
    assert!(
        primary
            .stderr()
            .contains("sending a checkpoint to the standby"),
        "the standby caught up from a checkpoint"
    );
    // Orders that leave memory from now on reach the standby through the log.
    let late = churn(&api, "churn-0", "late", 100);
    wait_retired(&api, 202);
    common::pair::wait_caught_up(&primary, &standby);
    primary.kill();
    standby.promote();

    let promoted = standby.client();
    assert_eq!(promoted.order(&order_id(&early)), early);
    assert_eq!(promoted.order(&order_id(&late)), late);
    assert_eq!(promoted.order(&order_id(&settled)), confirmed);
    let (status, retried) = place_with_key(promoted, &keyed, "kim-checkout-1");
    assert_eq!(
        (status, &retried),
        (200, &keyed_cancelled),
        "retry of kim's key"
    );
    let (status, refused) = promoted.place_order("limited", 1, "alice");
    assert_eq!(refused["code"], "limit_exceeded", "{status} {refused}");
    promoted.reserve("limited", 1, "bob");
}
