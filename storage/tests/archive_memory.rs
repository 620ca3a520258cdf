//! Archiving many orders at once keeps the node's memory near what they hold.
//! sled 0.34 copies a node for every key a batch changes and keeps what a
//! large batch allocated: written as one batch of 16,384 orders, archived
//! orders with a customer index key each left 5–7 KB of RSS apiece behind for
//! good. The archive writes `SLED_BATCH_KEYS_MAX` keys per batch. Measured as
//! this process's RSS, so this test binary holds this one test.

use flashgate_storage::{ArchiveEntry, Storage, StorageConfig, SLED_BATCH_KEYS_MAX};

/// Orders archived in one call each to the index and the archive, as a retire
/// pass of that many does (its default batch is 16,384).
const ORDERS: u64 = 20_000;
/// About an archived order's encoded size.
const VALUE_BYTES: usize = 200;
/// Most RSS growth per archived order (its value and its index key): one
/// sled batch for all of them cost 5–7 KB, batches of `SLED_BATCH_KEYS_MAX`
/// about 0.5–0.7 KB.
const RSS_PER_ORDER_MAX_BYTES: u64 = 2_048;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// An index key as a customer's would sort: scattered over the key space.
fn index_key(order: u64) -> Vec<u8> {
    let mut key = order
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .to_be_bytes()
        .to_vec();
    key.extend_from_slice(&order.to_be_bytes());
    key
}

fn archive_key(order: u64) -> Vec<u8> {
    order.to_be_bytes().to_vec()
}

fn value(order: u64) -> Vec<u8> {
    let mut value = vec![(order % 251) as u8; VALUE_BYTES];
    value[..8].copy_from_slice(&order.to_be_bytes());
    value
}

#[test]
fn archiving_twenty_thousand_orders_at_once_costs_about_what_they_hold() {
    assert!(
        SLED_BATCH_KEYS_MAX < ORDERS as usize,
        "the test spans batches"
    );
    let dir = tempfile::tempdir().expect("create a data dir");
    let storage = Storage::open(dir.path(), StorageConfig::default()).expect("open");
    // sled's own structures and the allocator's first arenas, before measuring.
    storage
        .archive_index_insert(&[index_key(u64::MAX)])
        .unwrap();
    storage
        .archive_insert(&[(archive_key(u64::MAX), value(0))])
        .unwrap();

    let before = resident_kib();
    let keys: Vec<Vec<u8>> = (0..ORDERS).map(index_key).collect();
    storage.archive_index_insert(&keys).expect("index keys");
    drop(keys);
    let values: Vec<ArchiveEntry> = (0..ORDERS)
        .map(|order| (archive_key(order), value(order)))
        .collect();
    storage.archive_insert(&values).expect("archived orders");
    drop(values);
    let growth_bytes = resident_kib().saturating_sub(before) * 1024;
    eprintln!(
        "RSS grew {} KiB for {ORDERS} archived orders: {} bytes each",
        growth_bytes / 1024,
        growth_bytes / ORDERS
    );
    assert!(
        growth_bytes <= ORDERS * RSS_PER_ORDER_MAX_BYTES,
        "archiving {ORDERS} orders grew RSS by {} bytes per order (at most {RSS_PER_ORDER_MAX_BYTES})",
        growth_bytes / ORDERS
    );

    // Every batch landed: each order reads back, its index key is there.
    for order in (0..ORDERS).step_by(97).chain([ORDERS - 1]) {
        assert_eq!(
            storage.archive_get(&archive_key(order)).unwrap(),
            Some(value(order)),
            "order {order}"
        );
    }
    let last = index_key(ORDERS - 1);
    let found = storage
        .archive_index_before(&last[..8], None, 10)
        .expect("read the index");
    assert_eq!(found, vec![last], "the last batch's index key");
}
