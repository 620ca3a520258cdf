//! A stalled standby, for real: the standby's process is SIGSTOPped (it keeps
//! its connection and sockets but runs no code, like a node in a VM freeze or
//! on a stalled disk) while the primary takes orders, then SIGCONTed or
//! killed. The promise under test: in sync mode no answer reports state the
//! standby does not hold, however often the client retries; `degrade` goes on
//! alone visibly and resyncs.

mod common;

use std::process::Command;

use common::pair::{
    assert_refusals_only, audit, silent_address, wait_caught_up, wait_degraded, wait_in_sync,
    Figures, Stopped,
};
use common::{order_id, Burst, Launch, Server, ADMIN_TOKEN, START_TIMEOUT};
use serde_json::{json, Value};

/// Shards of every node here: a pair runs with the same layout.
const SHARDS: &str = "2";
/// Large stock: these SKUs never sell out.
const ROOMY_STOCK: u64 = 1_000_000;
/// Small stock: the load sells it out, so overselling would show.
const SCARCE_STOCK: u64 = 40;
/// Threads of a `Burst`.
const LOAD_THREADS: usize = 4;
/// Acknowledged orders to wait for before the standby is stopped.
const CREATED_BEFORE_STALL: usize = 60;
/// Orders acknowledged after a resync (or while degraded), to show the sale
/// goes on.
const CREATED_AFTER: usize = 30;
/// How long answers wait for the standby: short, so a stall shows quickly.
const STANDBY_TIMEOUT: &str = "1s";

/// A primary of a sync pair with `standby_loss`, listening for replication on
/// a free port.
fn primary(standby_loss: &str) -> Launch {
    Launch::new()
        .replicated("127.0.0.1:0")
        .env("FLASHGATE_SHARDS", SHARDS)
        .arg("--replication")
        .arg("sync")
        .arg("--standby-loss")
        .arg(standby_loss)
        .arg("--standby-timeout")
        .arg(STANDBY_TIMEOUT)
}

/// A standby on `data_dir` following the replication address `follow`.
fn standby(data_dir: &std::path::Path, follow: &str) -> Launch {
    Launch::new()
        .data_dir(data_dir)
        .replicated("127.0.0.1:0")
        .standby_of(follow)
        .env("FLASHGATE_SHARDS", SHARDS)
}

/// `flashgate promote --node URL`, as an operator runs it after losing the
/// primary; panics unless it succeeds.
fn promote_with_cli(server: &Server) {
    let output = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["promote", "--node", &server.client().url(""), "--token"])
        .arg(ADMIN_TOKEN)
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .output()
        .expect("run flashgate promote");
    assert!(
        output.status.success(),
        "flashgate promote failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether an answer is the refusal a stalled standby calls for.
fn is_standby_unavailable(status: u16, body: &Value) -> bool {
    status == 503 && body["code"] == "standby_unavailable"
}

/// What the primary said with a 2xx, to be found again after the failover.
enum Told {
    Order(Value),
    Sku(Value),
}

/// Hole 1 of the promise, as a client meets it: with the standby stalled
/// (SIGSTOP, still connected), a primary in `sync` + `block` refuses an order
/// and a confirmation with 503 `standby_unavailable`, and must refuse them
/// again on every retry (same Idempotency-Key, as the refusal tells the client
/// to do) and must not show their unreplicated effect in reads, because the
/// standby does not hold them. Then the primary's machine is lost (SIGKILL the
/// primary, SIGKILL the stopped standby so the datagrams it never read die
/// with it, restart the standby on its data dir, `flashgate promote`): every
/// 2xx the primary gave must hold on the promoted standby. A paid order that
/// comes back `reserved` would expire.
#[test]
fn a_refusal_for_a_stalled_standby_holds_on_retry_and_after_failover() {
    const SKU: &str = "stall-retry";
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let mut primary = primary("block").start();
    let mut standby_node = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let api = primary.client();
    api.put_sku(SKU, json!({ "stock": ROOMY_STOCK }));
    // Reserved and replicated (a 201 in sync mode): the standby holds it.
    let reserved = api.reserve(SKU, 2, "stall-buyer");
    let reserved_id = order_id(&reserved);

    let stall = Stopped::stop(&standby_node);
    let mut told: Vec<Told> = vec![Told::Order(reserved.clone())];
    let mut broken: Vec<String> = Vec::new();

    // An order, refused, then retried under the same key.
    let order = json!({ "sku": SKU, "quantity": 3, "customer_id": "stall-retrier" });
    let key = [("Idempotency-Key", "stall-retry-order")];
    let (status, first) = api
        .try_post_json("/v1/orders", &order, &key)
        .expect("an answer to the order");
    assert!(
        is_standby_unavailable(status, &first),
        "with the standby stopped the order must be refused: {status} {first}"
    );
    let (status, retry) = api
        .try_post_json("/v1/orders", &order, &key)
        .expect("an answer to the retry");
    if !is_standby_unavailable(status, &retry) {
        broken.push(format!(
            "the retry of an order the standby lacks answered {status} {retry}, not 503 standby_unavailable"
        ));
    }
    if (200..300).contains(&status) {
        told.push(Told::Order(retry.clone()));
    }

    // A confirmation of the replicated order, refused, then retried.
    let confirm_path = format!("/v1/orders/{reserved_id}/confirm");
    let (status, first) = api.post_json(&confirm_path, &json!({}));
    assert!(
        is_standby_unavailable(status, &first),
        "with the standby stopped the confirmation must be refused: {status} {first}"
    );
    let (status, retry) = api.post_json(&confirm_path, &json!({}));
    if !is_standby_unavailable(status, &retry) {
        broken.push(format!(
            "the retry of a confirmation the standby lacks answered {status} {retry}, not 503 standby_unavailable"
        ));
    }
    if (200..300).contains(&status) {
        told.push(Told::Order(retry.clone()));
    }

    // Reads on the primary of the order and of its SKU: their state depends
    // on records the standby lacks.
    let (status, read) = api.get(&format!("/v1/orders/{reserved_id}"));
    if !is_standby_unavailable(status, &read) {
        broken.push(format!(
            "GET of the order whose confirmation the standby lacks answered {status} {read}, not 503 standby_unavailable"
        ));
    }
    if (200..300).contains(&status) {
        told.push(Told::Order(read));
    }
    let (status, read) = api.get(&format!("/v1/skus/{SKU}"));
    if !is_standby_unavailable(status, &read) {
        broken.push(format!(
            "GET of the SKU whose orders the standby lacks answered {status} {read}, not 503 standby_unavailable"
        ));
    }
    if (200..300).contains(&status) {
        told.push(Told::Sku(read));
    }

    // The primary's machine is lost; the stopped standby dies with what it
    // never read.
    primary.kill();
    stall.keep_stopped();
    standby_node.kill();
    let (_silent, nowhere) = silent_address();
    let restarted = standby(standby_dir.path(), &nowhere).start();
    promote_with_cli(&restarted);
    assert_eq!(restarted.cluster()["role"], "primary");
    for told in &told {
        match told {
            Told::Order(order) => {
                let id = order_id(order);
                let (status, stored) = restarted.client().get(&format!("/v1/orders/{id}"));
                if status != 200 {
                    broken.push(format!(
                        "after the failover order {id} answers {status} {stored}; the primary had answered 2xx with {order}"
                    ));
                } else if stored["status"] != order["status"] {
                    broken.push(format!(
                        "after the failover order {id} is {stored}; the primary had answered 2xx with {order}"
                    ));
                }
            }
            Told::Sku(sku) => {
                let stored = restarted.client().sku(SKU);
                if stored != *sku {
                    broken.push(format!(
                        "after the failover SKU {SKU} is {stored}; the primary had answered 2xx with {sku}"
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "answers reported state the standby did not hold:\n{}",
        broken.join("\n")
    );
    Figures {
        faults: 1,
        acknowledged: told.len(),
        ..Figures::default()
    }
    .report("a_refusal_for_a_stalled_standby_holds_on_retry_and_after_failover");
}

/// With `--standby-loss block`, a standby SIGSTOPped in the middle of a sale
/// gets the primary to refuse (503 `standby_unavailable`), first while the
/// stalled standby is still connected and then once the connection timed out,
/// and to acknowledge nothing while it is stalled; after SIGCONT the standby
/// reconnects and catches up, the sale goes on, and after a failover every
/// order ever acknowledged is on the promoted standby, none oversold. A stall
/// is the fault a sync pair meets most (a pause, a frozen VM, a slow disk).
#[test]
fn block_mode_acknowledges_nothing_while_the_standby_is_stalled() {
    const SKUS: [(&str, u64); 2] = [
        ("stall-block-roomy", ROOMY_STOCK),
        ("stall-block-scarce", SCARCE_STOCK),
    ];
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let mut primary = primary("block").start();
    let standby_node = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let api = primary.client();
    for (sku, stock) in SKUS {
        api.put_sku(sku, json!({ "stock": stock }));
    }

    let load = Burst::start_named(api, &SKUS.map(|(sku, _)| sku), LOAD_THREADS, "stall-block");
    load.wait_for_created(CREATED_BEFORE_STALL);
    let stall = Stopped::stop(&standby_node);
    // Every thread was refused once: from here on nothing may be acknowledged.
    load.wait_for("the first refusals", START_TIMEOUT, |load| {
        load.refused("standby_unavailable") >= LOAD_THREADS
    });
    let created_in_stall = load.created();
    let refused_in_stall = load.refused("standby_unavailable");
    // The stalled standby's connection times out; new orders are refused at once.
    primary.wait_for_cluster("the primary to see the standby gone", |status| {
        status["peer"]["connected"] != true && status["accepting_orders"] == false
    });
    load.wait_for(
        "refusals after the standby was dropped",
        START_TIMEOUT,
        |load| load.refused("standby_unavailable") >= refused_in_stall + 2 * LOAD_THREADS,
    );
    assert_eq!(
        load.created(),
        created_in_stall,
        "orders were acknowledged while the standby was stopped"
    );
    assert_eq!(primary.cluster()["degraded"], false);

    stall.resume();
    wait_in_sync(&primary);
    load.wait_for("orders after the resync", START_TIMEOUT, |load| {
        load.created() >= created_in_stall + CREATED_AFTER
    });
    let attempts = load.finish();
    assert_refusals_only(
        &attempts,
        &["standby_unavailable", "sold_out", "insufficient_stock"],
    );

    primary.kill();
    standby_node.promote();
    let figures = audit(&standby_node, &SKUS, &attempts);
    Figures {
        faults: 1,
        ..figures
    }
    .report("block_mode_acknowledges_nothing_while_the_standby_is_stalled");
}

/// With `--standby-loss degrade`, a SIGSTOPped standby costs one timeout, not
/// the sale: the primary degrades (shown in /v1/cluster with a reason) and
/// goes on acknowledging orders alone; after SIGCONT the standby catches up,
/// the degraded state clears, and after a failover the promoted standby holds
/// every order the primary ever acknowledged, the degraded window included.
#[test]
fn degrade_mode_goes_on_while_the_standby_is_stalled_and_resyncs() {
    const SKUS: [(&str, u64); 2] = [
        ("stall-degrade-roomy", ROOMY_STOCK),
        ("stall-degrade-scarce", SCARCE_STOCK),
    ];
    let standby_dir = tempfile::tempdir().expect("create a data dir");
    let mut primary = primary("degrade").start();
    let standby_node = standby(standby_dir.path(), primary.replication_addr()).start();
    wait_in_sync(&primary);
    let api = primary.client();
    for (sku, stock) in SKUS {
        api.put_sku(sku, json!({ "stock": stock }));
    }

    let load = Burst::start_named(
        api,
        &SKUS.map(|(sku, _)| sku),
        LOAD_THREADS,
        "stall-degrade",
    );
    load.wait_for_created(CREATED_BEFORE_STALL);
    let stall = Stopped::stop(&standby_node);
    wait_degraded(&primary, "the primary to degrade");
    let created_at_degrade = load.created();
    load.wait_for("orders while degraded", START_TIMEOUT, |load| {
        load.created() >= created_at_degrade + CREATED_AFTER
    });

    stall.resume();
    // The load keeps running: the standby must catch up with a primary that
    // keeps selling.
    wait_in_sync(&primary);
    let created_at_resync = load.created();
    load.wait_for("orders after the resync", START_TIMEOUT, |load| {
        load.created() >= created_at_resync + CREATED_AFTER
    });
    let attempts = load.finish();
    // Degrade never refuses a buyer for the standby's sake.
    assert_refusals_only(&attempts, &["sold_out", "insufficient_stock"]);

    wait_caught_up(&primary, &standby_node);
    primary.kill();
    standby_node.promote();
    let figures = audit(&standby_node, &SKUS, &attempts);
    Figures {
        faults: 1,
        ..figures
    }
    .report("degrade_mode_goes_on_while_the_standby_is_stalled_and_resyncs");
}
