//! Replication modes, end to end: what a primary does when its standby dies
//! (`block` refuses, `degrade` goes on alone and says so), how an empty standby
//! catches up with a large primary that keeps selling, that a replication
//! window smaller than one message still moves every order, how a node
//! without the cluster secret is kept out, and when a standby may promote
//! itself.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pair::{assert_refusals_only, silent_address, wait_caught_up, wait_in_sync};
use common::{
    acknowledged, assert_all_present, order_id, poll_until, Attempt, Burst, Client, Launch, Server,
    ADMIN_TOKEN, START_TIMEOUT,
};
use flashgate_client::{OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};
use serde_json::{json, Value};

/// Shards of every node here: a pair runs with the same layout.
const SHARDS: &str = "2";
/// Large stock: these SKUs never sell out.
const ROOMY_STOCK: u64 = 1_000_000;
/// Small stock: the load sells it out, so overselling would show.
const SCARCE_STOCK: u64 = 40;
/// Threads of a `Burst`.
const LOAD_THREADS: usize = 4;
/// Acknowledged orders to wait for before the standby is killed.
const CREATED_BEFORE_KILL: usize = 60;
/// `standby_unavailable` answers to wait for after the standby was killed.
const REFUSALS_TO_SEE: usize = 8;
/// Orders acknowledged after the primary degraded, to show it goes on.
const CREATED_WHILE_DEGRADED: usize = 30;
/// Orders on the primary before an empty standby joins it.
const BULK_ORDERS: usize = 100_000;
/// Orders per QUIC `PlaceOrders` frame (the server's default limit is 1024).
const BULK_BATCH_ORDERS: usize = 1_000;
/// QUIC batches in flight at once while loading.
const BULK_BATCHES_IN_FLIGHT: usize = 4;
/// Longest wait for an empty standby to catch up with `BULK_ORDERS` orders.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(240);
/// Every how many bulk orders one is compared between primary and standby.
const BULK_SAMPLE_EVERY: usize = 50;
/// A cluster secret other than the test clusters' one.
const WRONG_SECRET: &str = "not-the-cluster-secret-of-this-pair";

/// A primary listening for replication on a free port.
fn primary(extra: &[&str]) -> Launch {
    extra.iter().fold(
        Launch::new()
            .replicated("127.0.0.1:0")
            .env("FLASHGATE_SHARDS", SHARDS),
        |launch, arg| launch.arg(*arg),
    )
}

/// A standby on `data_dir` following the replication address `follow`.
fn standby(data_dir: &Path, follow: &str) -> Launch {
    Launch::new()
        .data_dir(data_dir)
        .replicated("127.0.0.1:0")
        .standby_of(follow)
        .env("FLASHGATE_SHARDS", SHARDS)
}

/// acknowledged of it fits in them.
fn assert_not_oversold(client: &Client, sku: &str, stock: u64, attempts: &[Attempt]) {
    let body = client.sku(sku);
    let number = |field: &str| {
        body[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} of {sku} is not a number: {body}"))
    };
    let (total, available, reserved, sold) = (
        number("total"),
        number("available"),
        number("reserved"),
        number("sold"),
    );
    assert_eq!(total, stock, "{sku}: {body}");
    assert_eq!(available + reserved + sold, total, "{sku}: {body}");
    let acknowledged: u64 = attempts
        .iter()
        .filter(|attempt| attempt.sku == sku && attempt.created().is_some())
        .map(|attempt| attempt.quantity)
        .sum();
    assert!(
        acknowledged <= reserved + sold,
        "{sku}: {acknowledged} units acknowledged but the counters hold {body}"
    );
}

/// The value of an unlabelled gauge in a Prometheus text page.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// With `--standby-loss block`, a standby SIGKILLed in the middle of a sale
/// makes the primary refuse (503 `standby_unavailable`) instead of
/// acknowledging orders only it holds; every order a buyer got a 201 for is on
/// the standby's own disk, and no SKU is oversold. This is the promise of sync
/// replication: a 201 means two disks.
#[test]
fn block_mode_acknowledges_only_orders_on_both_disks() {
    const SKUS: [&str; 2] = ["block-roomy", "block-scarce"];
    const STOCKS: [u64; 2] = [ROOMY_STOCK, SCARCE_STOCK];
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let mut primary = primary(&["--standby-timeout", "1s"]).start();
    let mut first_standby = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let api = primary.client();
    api.put_sku(SKUS[0], json!({ "stock": ROOMY_STOCK }));
    api.put_sku(SKUS[1], json!({ "stock": SCARCE_STOCK }));

    let load = Burst::start_named(api, &SKUS, LOAD_THREADS, "block");
    load.wait_for("orders before the kill", START_TIMEOUT, |load| {
        load.created() >= CREATED_BEFORE_KILL
    });
    first_standby.kill();
    load.wait_for("standby_unavailable answers", START_TIMEOUT, |load| {
        load.refused("standby_unavailable") >= REFUSALS_TO_SEE
    });

    // Once the primary knows the standby is gone, it refuses new orders before
    // executing them (checked below on its own disk).
    let status = primary.wait_for_cluster("the primary to stop accepting orders", |status| {
        status["accepting_orders"] == false && status["peer"]["connected"] != true
    });
    assert_eq!(status["degraded"], false, "{status}");
    let attempts = load.finish();
    assert_refusals_only(
        &attempts,
        &["standby_unavailable", "sold_out", "insufficient_stock"],
    );
    let late_order = json!({ "sku": SKUS[0], "quantity": 1, "customer_id": "after-the-loss" });
    let late_key = [("Idempotency-Key", "after-the-loss")];
    let (status, refusal) = api
        .try_post_json("/v1/orders", &late_order, &late_key)
        .expect("an answer to a late order");
    assert_eq!(status, 503, "{refusal}");
    assert_eq!(refusal["code"], "standby_unavailable", "{refusal}");
    // Readiness means "would take an order now": a load balancer must not
    // send buyers to a primary that refuses them.
    let (status, ready) = api.get("/readyz");
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        (ready["code"].as_str(), ready["accepting_orders"].as_bool()),
        (Some("standby_unavailable"), Some(false)),
        "{ready}"
    );
    // Reads report state, so they wait for the standby like orders do: a
    // shard holding records the standby may lack (the refused ones are
    // durable here) answers 503 standby_unavailable, at once while the
    // standby is gone, rather than show what a failover would take back.
    let mut unavailable = 0;
    for sku in SKUS {
        let (status, body) = api.get(&format!("/v1/skus/{sku}"));
        if status == 503 {
            assert_eq!(body["code"], "standby_unavailable", "{body}");
            unavailable += 1;
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(unavailable > 0, "no read waited for the standby");
    for order in acknowledged(&attempts).iter().take(5) {
        let id = order["order_id"].as_str().expect("an order id");
        let (status, stored) = api.get(&format!("/v1/orders/{id}"));
        assert!(
            status == 200 || stored["code"] == "standby_unavailable",
            "reading {id} after the refusals: {status} {stored}"
        );
    }

    // The standby, restarted on its disk with no primary to follow, serves
    // exactly what it had: every acknowledged order must be there.
    let (_silent, nowhere) = silent_address();
    let restarted = standby(standby_dir.path(), &nowhere).start();
    assert_eq!(restarted.cluster()["role"], "standby");
    let acknowledged = acknowledged(&attempts);
    assert!(acknowledged.len() >= CREATED_BEFORE_KILL);
    assert_all_present(&restarted, &acknowledged);
    for (sku, stock) in SKUS.iter().zip(STOCKS) {
        assert_not_oversold(restarted.client(), sku, stock, &attempts);
    }

    // The primary's own disk, read by restarting it alone on its data dir:
    // never more sold than stock, and the late order was refused before it
    // was executed (under its key it is new).
    primary.kill();
    let alone = Launch::new()
        .data_dir(primary.data_dir())
        .env("FLASHGATE_SHARDS", SHARDS)
        .start();
    for (sku, stock) in SKUS.iter().zip(STOCKS) {
        assert_not_oversold(alone.client(), sku, stock, &attempts);
    }
    let (status, order) = alone
        .client()
        .try_post_json("/v1/orders", &late_order, &late_key)
        .expect("an answer to the late order's retry");
    assert_eq!(status, 201, "the refused order had been executed: {order}");
}

/// With `--standby-loss degrade`, a dead standby costs one timeout, not the
/// sale: the primary goes on acknowledging orders alone and says so loudly (in
/// /v1/cluster, /readyz, /metrics and its log), and when the standby returns
/// and catches up it is back in sync holding every acknowledged order. An
/// operator must be able to see the window in which orders live on one disk.
#[test]
fn degrade_mode_goes_on_alone_visibly_and_resyncs() {
    const SKUS: [&str; 2] = ["degrade-roomy", "degrade-scarce"];
    const STOCKS: [u64; 2] = [ROOMY_STOCK, SCARCE_STOCK];
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let primary = primary(&["--standby-timeout", "1s", "--standby-loss", "degrade"]).start();
    let mut first_standby = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let api = primary.client();
    api.put_sku(SKUS[0], json!({ "stock": ROOMY_STOCK }));
    api.put_sku(SKUS[1], json!({ "stock": SCARCE_STOCK }));
    assert_eq!(
        gauge(&api.metrics_page(), "flashgate_replication_degraded"),
        Some(0.0)
    );

    let load = Burst::start_named(api, &SKUS, LOAD_THREADS, "degrade");
    load.wait_for("orders before the kill", START_TIMEOUT, |load| {
        load.created() >= CREATED_BEFORE_KILL
    });
    first_standby.kill();
    let status = primary.wait_for_cluster("the primary to degrade", |status| {
        status["degraded"] == true
    });
    let created_at_degrade = load.created();
    load.wait_for(
        "orders acknowledged while degraded",
        START_TIMEOUT,
        |load| load.created() >= created_at_degrade + CREATED_WHILE_DEGRADED,
    );
    let attempts = load.finish();
    // Degrade never refuses a buyer for the standby's sake.
    assert_refusals_only(&attempts, &["sold_out", "insufficient_stock"]);

    let reason = status["degraded_reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no degraded_reason: {status}"));
    assert!(!reason.is_empty(), "{status}");
    assert_eq!(status["accepting_orders"], true, "{status}");
    let (ready_status, ready) = api.get("/readyz");
    assert_eq!(ready_status, 200, "{ready}");
    assert_eq!(ready["degraded"], reason, "{ready}");
    assert_eq!(
        gauge(&api.metrics_page(), "flashgate_replication_degraded"),
        Some(1.0)
    );
    assert!(
        primary.stderr().contains("REPLICATION DEGRADED"),
        "{}",
        primary.stderr()
    );
    for (sku, stock) in SKUS.iter().zip(STOCKS) {
        assert_not_oversold(api, sku, stock, &attempts);
    }

    // The standby comes back on its data dir and catches up.
    let returned = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let (_, ready) = api.get("/readyz");
    assert_eq!(ready["degraded"], Value::Null, "{ready}");
    assert_eq!(
        gauge(&api.metrics_page(), "flashgate_replication_degraded"),
        Some(0.0)
    );
    wait_caught_up(&primary, &returned);
    assert_all_present(&returned, &acknowledged(&attempts));
    for sku in SKUS {
        assert_eq!(returned.client().sku(sku), api.sku(sku), "{sku}");
    }

    // In sync again: a 201 means the standby has the order.
    let after = api.reserve(SKUS[0], 1, "after-the-resync");
    assert_all_present(&returned, &[after]);
}

/// Periodic checkpoints written so far, as the log reports them.
fn checkpoints_written(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|line| line.contains("checkpoint written") && !line.contains("final"))
        .count()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Places `BULK_ORDERS` orders of one unit over QUIC, spread over `skus`, and
/// returns their ids; fails unless every one is created.
fn bulk_load(server: &Server, skus: &[&str]) -> Vec<String> {
    let endpoint = server.quic().expect("the server listens for QUIC").clone();
    let skus: Vec<String> = skus.iter().map(|sku| (*sku).to_owned()).collect();
    runtime().block_on(async move {
        let fingerprint = endpoint
            .sha256
            .parse()
            .expect("the printed fingerprint parses");
        let mut config = QuicConfig::new(vec![endpoint.addr], Trust::Fingerprint(fingerprint));
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        config.credential = Some(ADMIN_TOKEN.to_owned());
        config.requests_in_flight_max = BULK_BATCH_ORDERS * BULK_BATCHES_IN_FLIGHT;
        // A debug build on a busy machine: a batch answer may be slow to come.
        config.request_timeout = Duration::from_secs(120);
        let client = QuicClient::connect(config).await.expect("QUIC connect");
        let batches: Vec<Vec<PlaceOrder>> = (0..BULK_ORDERS)
            .map(|i| PlaceOrder::new(skus[i % skus.len()].clone(), 1, format!("bulk-{}", i % 997)))
            .collect::<Vec<_>>()
            .chunks(BULK_BATCH_ORDERS)
            .map(<[PlaceOrder]>::to_vec)
            .collect();
        let mut ids = Vec::with_capacity(BULK_ORDERS);
        for wave in batches.chunks(BULK_BATCHES_IN_FLIGHT) {
            let mut tasks = tokio::task::JoinSet::new();
            for (position, batch) in wave.iter().cloned().enumerate() {
                let client = client.clone();
                tasks.spawn(async move { (position, client.place_batch(batch).await) });
            }
            let mut answers = Vec::with_capacity(wave.len());
            while let Some(joined) = tasks.join_next().await {
                let (position, answer) = joined.expect("a bulk task panicked");
                answers.push((position, answer.expect("a bulk batch is answered")));
            }
            answers.sort_by_key(|(position, _)| *position);
            for (_, results) in answers {
                for result in results {
                    let placed = result.expect("every bulk order is created");
                    assert!(placed.created, "{placed:?}");
                    ids.push(placed.order.order_id);
                }
            }
        }
        client.close().await;
        ids
    })
}

/// An empty standby joining a primary that holds 100,000 orders catches up
/// (checkpoint transfer, then the log) while the primary keeps acknowledging
/// orders, and ends with the same counters and orders. Adding a standby to a
/// running sale must not stop the sale, and must not copy it wrong.
#[test]
fn an_empty_standby_catches_up_with_a_large_primary_that_keeps_selling() {
    const SKUS: &[&str] = &["catch-a", "catch-b", "catch-c", "catch-d"];
    let primary = primary(&["--standby-timeout", "1s", "--standby-loss", "degrade"])
        .env("FLASHGATE_CHECKPOINT_INTERVAL_SECS", "1")
        .start();
    let api = primary.client();
    for sku in SKUS {
        api.put_sku(sku, json!({ "stock": ROOMY_STOCK }));
    }
    let bulk = bulk_load(&primary, SKUS);
    assert_eq!(bulk.len(), BULK_ORDERS);
    // A checkpoint started after the bulk was acknowledged covers it: the
    // second one written from now on. The standby then starts from it.
    let written_before = checkpoints_written(&primary.stderr());
    poll_until("two more checkpoints", START_TIMEOUT, || {
        (checkpoints_written(&primary.stderr()) >= written_before + 2).then_some(())
    });

    let load = Burst::start_named(api, SKUS, 2, "catch-up");
    load.wait_for("the load to start", START_TIMEOUT, |load| {
        load.created() > 0
    });
    let created_before_standby = load.created();
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let standby = standby(&standby_dir.path().join("data"), primary.replication_addr()).start();
    poll_until("the standby to catch up", CATCH_UP_TIMEOUT, || {
        let status = primary.cluster();
        (status["peer"]["connected"] == true && status["degraded"] == false).then_some(())
    });
    let created_while_catching_up = load.created() - created_before_standby;
    let attempts = load.finish();
    assert!(
        created_while_catching_up > 0,
        "no order was acknowledged while the standby caught up"
    );
    assert_refusals_only(&attempts, &[]);

    wait_caught_up(&primary, &standby);
    assert!(
        standby
            .stderr()
            .contains("installing the primary's checkpoint"),
        "the standby did not start from a checkpoint:\n{}",
        standby.stderr()
    );

    let load_orders = acknowledged(&attempts);
    for sku in SKUS {
        let on_primary = api.sku(sku);
        assert_eq!(standby.client().sku(sku), on_primary, "{sku}");
        let units: u64 = attempts
            .iter()
            .filter(|attempt| attempt.sku == *sku && attempt.created().is_some())
            .map(|attempt| attempt.quantity)
            .sum::<u64>()
            + (BULK_ORDERS / SKUS.len()) as u64;
        assert_eq!(on_primary["reserved"], units, "{sku}: {on_primary}");
    }
    assert_all_present(&standby, &load_orders);
    for id in bulk.iter().step_by(BULK_SAMPLE_EVERY) {
        let on_primary = api.order(id);
        assert_eq!(on_primary["status"], "reserved", "{on_primary}");
        assert_eq!(standby.client().order(id), on_primary, "order {id}");
    }
}

/// A node that cannot prove the cluster secret gets nothing: the primary
/// refuses it, it says it was refused, and it holds none of the primary's data.
/// The secret is what stops a stray or hostile process from reading the order
/// log or posing as a standby.
/// A replication window smaller than one message
/// (`replication_unacked_bytes_max = 1`: the primary sends one message, then
/// waits for its acknowledgement) still moves every order to the standby, and
/// in sync `block` mode each 201 means the order is on the standby's disk:
/// the window bounds what is in flight without ever stalling the stream.
#[test]
fn a_window_smaller_than_one_message_still_moves_every_order() {
    const SKU: &str = "window-roomy";
    const CREATED: usize = 300;
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let primary = primary(&["--standby-timeout", "30s"])
        .env("FLASHGATE_REPLICATION_UNACKED_BYTES_MAX", "1")
        .start();
    let standby = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let api = primary.client();
    api.put_sku(SKU, json!({ "stock": ROOMY_STOCK }));
    let load = Burst::start_named(api, &[SKU], LOAD_THREADS, "window");
    load.wait_for("orders through a one-byte window", START_TIMEOUT, |load| {
        load.created() >= CREATED
    });
    let attempts = load.finish();
    assert_refusals_only(&attempts, &[]);
    let acknowledged = acknowledged(&attempts);
    assert!(acknowledged.len() >= CREATED);
    wait_caught_up(&primary, &standby);
    assert_all_present(&standby, &acknowledged);
    assert_eq!(primary.cluster()["degraded"], false);
}

#[test]
fn a_node_with_the_wrong_cluster_secret_is_refused() {
    // Async, so the lone primary takes writes without waiting for a standby.
    let primary = primary(&["--replication", "async"]).start();
    primary
        .client()
        .put_sku("secret", json!({ "stock": ROOMY_STOCK }));
    let intruder = Launch::new()
        .env("FLASHGATE_CLUSTER_SECRET", WRONG_SECRET)
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_SHARDS", SHARDS)
        .start();
    poll_until("the primary to log the refusal", START_TIMEOUT, || {
        primary
            .stderr()
            .contains("REFUSED a replication peer: it did not prove the cluster secret")
            .then_some(())
    });
    poll_until("the intruder to log its refusal", START_TIMEOUT, || {
        intruder
            .stderr()
            .contains("refused this node's cluster secret")
            .then_some(())
    });
    let status = primary.cluster();
    assert_ne!(status["peer"]["connected"], true, "{status}");
    let status = intruder.cluster();
    assert_eq!(status["role"], "standby", "{status}");
    assert_ne!(status["peer"]["connected"], true, "{status}");
    let (status, body) = intruder.client().get("/v1/skus/secret");
    assert_eq!(status, 404, "the intruder holds the primary's SKU: {body}");
    assert_eq!(body["code"], "unknown_sku", "{body}");
}

/// `--auto-promote-after` is refused at start wherever an automatic promotion
/// could lose acknowledged orders or make two primaries: with async
/// replication, with `--standby-loss degrade`, and on a primary. The message
/// names the reason, so an operator can fix the command line.
#[test]
fn auto_promotion_is_refused_unless_sync_and_block() {
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--role",
                "standby",
                "--follow",
                "127.0.0.1:1",
                "--replication",
                "async",
            ],
            "auto_promote_after needs --replication sync",
        ),
        (
            &[
                "--role",
                "standby",
                "--follow",
                "127.0.0.1:1",
                "--standby-loss",
                "degrade",
            ],
            "auto_promote_after needs --standby-loss block",
        ),
        (&[], "auto_promote_after is for a standby"),
    ];
    for (args, message) in cases {
        let launch = args.iter().fold(
            Launch::new()
                .replicated("127.0.0.1:0")
                .arg("--auto-promote-after")
                .arg("1s"),
            |launch, arg| launch.arg(*arg),
        );
        let exited = launch.expect_exit();
        assert!(!exited.status.success(), "{args:?}: {exited:?}");
        assert!(
            exited.stderr.contains(message),
            "{args:?}: expected {message:?} in:\n{}",
            exited.stderr
        );
    }
}

/// A standby with `--auto-promote-after` of a sync + block primary takes over
/// by itself when the primary dies: it becomes the primary, takes orders, and
/// has every order the dead primary acknowledged. Safe because block mode
/// never acknowledged an order the standby lacked.
#[test]
fn a_standby_promotes_itself_when_its_sync_block_primary_dies() {
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let mut old = primary(&[]).start();
    let standby = standby(standby_dir.path(), old.replication_addr())
        .arg("--auto-promote-after")
        .arg("1s")
        .start();
    wait_in_sync(&old);
    let old_epoch = old.cluster()["epoch"].as_u64().expect("epoch is a number");
    old.client()
        .put_sku("auto", json!({ "stock": ROOMY_STOCK }));
    let acknowledged: Vec<Value> = (0..5)
        .map(|i| old.client().reserve("auto", 1, &format!("before-{i}")))
        .collect();
    let (status, refusal) = standby.client().place_order("auto", 1, "too-early");
    assert_eq!(status, 503, "{refusal}");
    assert_eq!(refusal["code"], "not_primary", "{refusal}");

    old.kill();
    let status = standby.wait_for_cluster("the standby to promote itself", |status| {
        status["role"] == "primary"
    });
    assert!(
        status["epoch"]
            .as_u64()
            .is_some_and(|epoch| epoch > old_epoch),
        "{status}"
    );
    // Nothing follows the new primary yet: it says it is alone.
    assert_eq!(status["degraded"], true, "{status}");
    assert!(
        standby.stderr().contains("AUTO-PROMOTION"),
        "{}",
        standby.stderr()
    );
    assert_all_present(&standby, &acknowledged);
    let after = standby.client().reserve("auto", 1, "after-the-promotion");
    assert!(
        order_id(&after).starts_with(&format!("{}-", status["epoch"])),
        "{after}"
    );
    let sku = standby.client().sku("auto");
    assert_eq!(sku["reserved"], 6, "{sku}");
}
