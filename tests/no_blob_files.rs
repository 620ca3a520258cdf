mod common;

use common::{acknowledged, assert_all_present, assert_counters_match, settle, Burst, Launch};
use serde_json::json;

const SKU: &str = "inline-a";
const THREADS: usize = 8;
/// Enough orders on one shard that its checkpoint chunk is several times sled's
/// blob threshold (about 128 KiB; an order is about 150 bytes in a chunk).
const ORDERS: usize = 3_000;

/// Files sled wrote beside its data file.
fn blob_files(data_dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("sled").join("blobs")) else {
        return Vec::new();
    };
    entries
        .map(|entry| {
            let entry = entry.expect("read sled/blobs/");
            entry.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

/// A sale with periodic checkpoints and a graceful stop (a final checkpoint
/// that trims the log) leaves no file in `<data-dir>/sled/blobs/`, and every
/// acknowledged order is there after a restart. sled writes a value too large
/// for its segments to a blob file that is never fsynced, outside the barrier
/// that every acknowledgement waits for: a power loss could take the bytes of
/// a checkpoint the log was already trimmed behind.
#[test]
fn a_sale_and_its_checkpoints_leave_no_file_in_sled_blobs() {
    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = Launch::new()
        .data_dir(data.path())
        .env("FLASHGATE_CHECKPOINT_INTERVAL_SECS", "1")
        .start();
    let api = server.client().clone();
    api.put_sku(SKU, json!({ "stock": 1_000_000 }));
    let burst = Burst::start(&api, &[SKU], THREADS);
    burst.wait_for_created(ORDERS);
    let attempts = burst.finish();
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr()
    );
    let blobs = blob_files(data.path());
    assert!(
        blobs.is_empty(),
        "{} files in sled/blobs/ lie outside the durability barrier: {:?}",
        blobs.len(),
        &blobs[..blobs.len().min(10)]
    );

    let server = Launch::new().data_dir(data.path()).start();
    let acknowledged = acknowledged(&attempts);
    assert!(acknowledged.len() >= ORDERS);
    assert_all_present(&server, &acknowledged);
    let settled = settle(server.client(), &attempts);
    assert_counters_match(server.client(), &[SKU], &settled.orders);
}
