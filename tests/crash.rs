mod common;

use common::{assert_counters_match, order_id, poll_until, settle, Burst, Launch, Outcome};
use serde_json::{json, Value};

const SKUS: &[&str] = &["crash-a", "crash-b", "crash-c"];
const STOCK: u64 = 1_000_000;
const THREADS: usize = 8;
/// Acknowledged orders to wait for before the kill.
const CREATED_BEFORE_KILL: usize = 150;

/// SIGKILL in the middle of a burst loses no acknowledged order and leaves every
/// SKU's counters equal to what its orders imply: "never lose an acknowledged
/// order" is the promise the write-ahead log exists for, and a crash is when it
/// is tested.
#[test]
fn a_kill_during_a_burst_loses_no_acknowledged_order() {
    crash_and_recover(&[], false);
}

/// The same with a checkpoint every second and the kill after one was written,
/// so recovery loads a checkpoint and replays the log written after it: the two
/// halves must fit together without losing or doubling an order.
#[test]
fn a_kill_after_a_checkpoint_recovers_checkpoint_and_log() {
    crash_and_recover(&[("FLASHGATE_CHECKPOINT_INTERVAL_SECS", "1")], true);
}

fn launch(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Launch {
    env.iter().fold(
        Launch::new()
            .data_dir(data_dir)
            .env("FLASHGATE_SHARDS", "4"),
        |launch, (name, value)| launch.env(name, value),
    )
}

/// Periodic checkpoints written so far, as the log reports them.
fn checkpoints_written(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|line| line.contains("checkpoint written") && !line.contains("final"))
        .count()
}

fn crash_and_recover(env: &[(&str, &str)], across_a_checkpoint: bool) {
    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = launch(data.path(), env).start();
    let api = server.client().clone();
    for sku in SKUS {
        api.put_sku(sku, json!({ "stock": STOCK }));
    }

    // Orders settled before the crash: confirmed ones must stay confirmed, the
    // cancelled one cancelled.
    let mut settled: Vec<Value> = Vec::new();
    for (i, sku) in SKUS.iter().enumerate() {
        let order = api.reserve(sku, i as u64 + 1, &format!("early-{i}"));
        let (status, confirmed) = api.confirm(&order_id(&order));
        assert_eq!(status, 200, "{confirmed}");
        assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
        settled.push(confirmed);
    }
    let order = api.reserve(SKUS[0], 2, "early-cancel");
    let (status, cancelled) = api.cancel(&order_id(&order));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    settled.push(cancelled);

    let burst = Burst::start(&api, SKUS, THREADS);
    burst.wait_for_created(CREATED_BEFORE_KILL);
    if across_a_checkpoint {
        let before = checkpoints_written(&server.stderr());
        poll_until("a periodic checkpoint", common::START_TIMEOUT, || {
            (checkpoints_written(&server.stderr()) > before).then_some(())
        });
        // More orders after the checkpoint, so the log has something to replay.
        burst.wait_for_created(burst.created() + CREATED_BEFORE_KILL);
    }
    server.kill();
    let attempts = burst.finish();

    let created = attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Outcome::Created(_)))
        .count();
    assert!(created >= CREATED_BEFORE_KILL, "{created} created");
    for attempt in &attempts {
        assert!(
            !matches!(attempt.outcome, Outcome::Answered(..)),
            "a burst order was refused: {attempt:?}"
        );
    }

    let server = launch(data.path(), env).start();
    let api = server.client();
    for order in &settled {
        assert_eq!(
            &api.order(&order_id(order)),
            order,
            "settled before the kill"
        );
    }
    let mut orders = settle(api, &attempts).orders;
    orders.extend(settled);
    assert_counters_match(api, SKUS, &orders);
    for sku in SKUS {
        assert_eq!(api.sku(sku)["total"], STOCK, "{sku}");
    }
}
