//! A full disk during a sale: the data dir on a small tmpfs the test fills.

mod common;

use common::faults::{assert_nothing_acknowledged_after, audit, put_skus, Tmpfs};
use common::{acknowledged, order_id, Burst, Launch, START_TIMEOUT};

/// flashgate's exit code after a stop of a node whose storage failed.
const EXIT_STORAGE_FAILED: i32 = 4;

/// Size of the tmpfs the data dir lives on: room for the node to start and
/// take orders, small enough to fill at once.
const TMPFS_BYTES: u64 = 32 << 20;

/// When the data dir's filesystem fills up during a sale, the node fail-stops
/// with a message naming the data dir and ENOSPC (so an operator knows what to
/// free), acknowledges nothing after it, and once space is freed and the node
/// restarted, every acknowledged order is there and the counters add up.
#[test]
fn a_full_disk_fail_stops_naming_the_data_dir_and_loses_nothing() {
    let Some(tmpfs) = Tmpfs::mount(TMPFS_BYTES) else {
        return;
    };
    let skus = ["FULL-A", "FULL-B", "FULL-C"];
    let data_dir = tmpfs.path().join("data");
    let mut server = Launch::new()
        .data_dir(&data_dir)
        .arg("--shards")
        .arg("2")
        .start();
    let client = server.client().clone();
    put_skus(&client, &skus);

    let burst = Burst::start_named(&client, &skus, 4, "full");
    burst.wait_for_created(100);
    let filler = tmpfs.path().join("filler");
    let filled = tmpfs.fill(&filler);
    burst.wait_for("40 storage_failed refusals", START_TIMEOUT, |burst| {
        burst.refused("storage_failed") >= 40
    });
    let attempts = burst.finish();
    let refusals = assert_nothing_acknowledged_after(&attempts, "storage_failed");

    let (status, readiness) = client.get("/readyz");
    assert_eq!(status, 503, "{readiness}");
    let detail = readiness["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&data_dir.display().to_string()) && detail.contains("ENOSPC"),
        "the failure must name the data dir and ENOSPC: {readiness}"
    );
    // Reads after the fail-stop show only durable state: an acknowledged order
    // exactly as acknowledged, or a refusal when its shard holds decisions the
    // disk never took.
    for order in acknowledged(&attempts).iter().take(20) {
        let id = order_id(order);
        let (status, body) = client.get(&format!("/v1/orders/{id}"));
        match status {
            200 => assert_eq!(&body, order, "order {id} read after the fail-stop"),
            503 => assert_eq!(body["code"], "storage_failed", "{body}"),
            _ => panic!("GET /v1/orders/{id} after the fail-stop answered {status}: {body}"),
        }
    }
    let stderr = server.stderr();
    assert!(
        stderr.contains("LOG WRITE FAILED") && stderr.contains("ENOSPC"),
        "no loud line naming ENOSPC:\n{stderr}"
    );
    let exit = server.terminate();
    assert_eq!(
        exit.code(),
        Some(EXIT_STORAGE_FAILED),
        "a stop after a storage failure exits {EXIT_STORAGE_FAILED}, this one {exit}"
    );

    std::fs::remove_file(&filler).expect("free the space");
    let restarted = Launch::new().data_dir(&data_dir).start();
    let audit = audit(restarted.client(), &skus, &attempts);
    eprintln!(
        "disk full: faults injected 1 (filler of {filled} bytes on a {TMPFS_BYTES}-byte tmpfs), attempts {}, acknowledged {}, refused storage_failed {refusals}, lost {}, oversold {}",
        attempts.len(),
        audit.acknowledged,
        audit.lost,
        audit.oversold
    );
    drop(restarted);
}
