//! Archived orders by customer: the archive's index (`Storage::archive_index_*`)
//! that lets a customer's order listing reach orders that left memory, newest
//! first, without reading the whole archive.
//!
//! An index key is the customer's digest, the order's creation time and its
//! archive key, 32 bytes, so keys of one customer sort by
//! `(created_at, order id)`, as `ListingPosition` does:
//!
//! ```text
//! [0..6)   FNV-1a 64 of the customer id, its first 6 bytes
//! [6..12)  created_at, milliseconds, 48 bits big-endian (RFC 3339 ends before 2^48)
//! [12..32) the order's archive key (epoch u64, shard u32, number u64, big-endian)
//! ```
//!
//! The digest only narrows the search: two customers may share it, so a
//! reader compares each archived order's customer and skips the others. A
//! listing reads at most `scan_max` keys per page; customers sharing a
//! digest cost each other a shorter page, never a missing order.
//!
//! Keys are written with the archived values they lead to, by
//! `retire::archive_orders` (the live path, replay, a standby's catch-up) and
//! the restore of a backup, and never removed. A data dir archived before the
//! index existed is indexed once at start (`index_archive_once`).

use flashgate_storage::{Storage, StorageError};

use crate::codec::{archive_key, ARCHIVE_KEY_BYTES};
use crate::domain::{CustomerId, ListingPosition, Order, OrderId, Timestamp};
use crate::retire::{archived_order, visit_archived};

const DIGEST_BYTES: usize = 6;
const TIME_BYTES: usize = 6;
/// Bytes of one index key: at the storage's 32-byte key limit.
pub const INDEX_KEY_BYTES: usize = DIGEST_BYTES + TIME_BYTES + ARCHIVE_KEY_BYTES;
/// Most keys written in one batch when indexing an existing archive.
const INDEX_BATCH_KEYS_MAX: usize = 8_192;
/// Meta key set once the whole archive is indexed.
const META_ARCHIVE_INDEXED: &[u8] = b"archive_indexed_by_customer";

/// The first bytes of every index key of `customer`.
pub fn customer_prefix(customer: &CustomerId) -> [u8; DIGEST_BYTES] {
    // FNV-1a 64: stable across builds and machines, unlike the keyed hash the
    // maps in memory use.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in customer.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let mut prefix = [0; DIGEST_BYTES];
    prefix.copy_from_slice(&hash.to_be_bytes()[..DIGEST_BYTES]);
    prefix
}

/// The index key of a customer's order at `position`.
pub fn index_key(customer: &CustomerId, position: ListingPosition) -> [u8; INDEX_KEY_BYTES] {
    let mut key = [0; INDEX_KEY_BYTES];
    key[..DIGEST_BYTES].copy_from_slice(&customer_prefix(customer));
    // Saturating keeps the order for any time RFC 3339 can write (below 2^48).
    let time = position.created_at.0.min((1 << (8 * TIME_BYTES)) - 1);
    key[DIGEST_BYTES..DIGEST_BYTES + TIME_BYTES]
        .copy_from_slice(&time.to_be_bytes()[8 - TIME_BYTES..]);
    key[DIGEST_BYTES + TIME_BYTES..].copy_from_slice(&archive_key(&position.id));
    key
}

/// The position an index key names; `None` for a key of another shape.
fn position_of(key: &[u8]) -> Option<ListingPosition> {
    if key.len() != INDEX_KEY_BYTES {
        return None;
    }
    let mut time = [0; 8];
    time[8 - TIME_BYTES..].copy_from_slice(&key[DIGEST_BYTES..DIGEST_BYTES + TIME_BYTES]);
    let id = &key[DIGEST_BYTES + TIME_BYTES..];
    Some(ListingPosition {
        created_at: Timestamp(u64::from_be_bytes(time)),
        id: OrderId {
            epoch: u64::from_be_bytes(id[..8].try_into().ok()?),
            shard: u32::from_be_bytes(id[8..12].try_into().ok()?),
            number: u64::from_be_bytes(id[12..].try_into().ok()?),
        },
    })
}

/// Writes the index keys of orders about to be archived (before their values,
/// so a value never exists without its key).
pub fn index_archived(
    storage: &Storage,
    orders: &[(Order, Vec<crate::domain::OrderChange>)],
) -> Result<(), StorageError> {
    let keys: Vec<Vec<u8>> = orders
        .iter()
        .map(|(order, _)| index_key(&order.customer, ListingPosition::of(order)).to_vec())
        .collect();
    storage.archive_index_insert(&keys)
}

/// A customer's archived orders, from one page of the index.
#[derive(Debug, Default)]
pub struct ArchivedPage {
    /// The customer's archived orders, newest first.
    pub orders: Vec<Order>,
    /// Set when the scan stopped at `scan_max` keys before finding `limit`
    /// orders: the last position it read. Archived orders older than it were
    /// not looked at, so a page must end there.
    pub scanned_to: Option<ListingPosition>,
}

/// Up to `limit` of the customer's archived orders created strictly before
/// `before` (any, when `None`), newest first, reading at most `scan_max`
/// index keys (`scan_max >= limit`). May read the disk.
pub fn archived_customer_orders(
    storage: &Storage,
    customer: &CustomerId,
    before: Option<ListingPosition>,
    limit: usize,
    scan_max: usize,
) -> Result<ArchivedPage, StorageError> {
    let prefix = customer_prefix(customer);
    let mut cursor = before.map(|before| index_key(customer, before));
    let mut page = ArchivedPage::default();
    let mut scanned = 0;
    while page.orders.len() < limit && scanned < scan_max {
        let want = (limit - page.orders.len()).min(scan_max - scanned);
        let keys = storage.archive_index_before(
            &prefix,
            cursor.as_ref().map(|key| key.as_slice()),
            want,
        )?;
        let exhausted = keys.len() < want;
        for key in keys {
            scanned += 1;
            let Some(position) = position_of(&key) else {
                continue;
            };
            cursor = Some(index_key(customer, position));
            match archived_order(storage, &position.id)? {
                Some(order)
                    if order.customer == *customer && ListingPosition::of(&order) == position =>
                {
                    page.orders.push(order);
                }
                // Another customer with the same digest, or a key whose value
                // a standby's re-sync replaced: not this customer's.
                _ => {}
            }
        }
        if exhausted {
            return Ok(page);
        }
    }
    if page.orders.len() < limit {
        page.scanned_to = cursor.as_ref().and_then(|key| position_of(key));
    }
    Ok(page)
}

/// Indexes every archived order once, for a data dir whose archive was
/// written before the index existed; a no-op on later starts. Re-running after
/// a crash midway is safe: keys are rewritten, the mark is set last.
pub fn index_archive_once(storage: &Storage) -> Result<usize, StorageError> {
    if storage.meta_u64(META_ARCHIVE_INDEXED)?.is_some() {
        return Ok(0);
    }
    let mut indexed = 0;
    if storage.archive_len() > 0 {
        let mut keys = Vec::new();
        visit_archived(
            storage,
            |message| StorageError::Io(format!("indexing the archive: {message}")),
            |order, _| {
                keys.push(index_key(&order.customer, ListingPosition::of(&order)).to_vec());
                if keys.len() >= INDEX_BATCH_KEYS_MAX {
                    indexed += keys.len();
                    storage.archive_index_insert(&std::mem::take(&mut keys))?;
                }
                Ok(())
            },
        )?;
        indexed += keys.len();
        storage.archive_index_insert(&keys)?;
        storage.barrier()?;
    }
    storage.set_meta_u64(META_ARCHIVE_INDEXED, 1)?;
    storage.barrier()?;
    Ok(indexed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderStatus, SkuId};
    use crate::retire::archive_orders;
    use flashgate_storage::StorageConfig;

    fn order(customer: &str, shard: u32, number: u64, created_at: u64) -> Order {
        Order {
            id: OrderId {
                epoch: 2,
                shard,
                number,
            },
            sku: SkuId::parse("SKU").unwrap(),
            quantity: 1,
            customer: CustomerId::parse(customer).unwrap(),
            status: OrderStatus::Cancelled,
            created_at: Timestamp(created_at),
            reserved_until: Timestamp(created_at + 1),
            updated_at: Timestamp(created_at),
            idempotency_key: None,
        }
    }

    fn numbers(orders: &[Order]) -> Vec<u64> {
        orders.iter().map(|order| order.id.number).collect()
    }

    #[test]
    fn keys_sort_as_positions_and_read_back() {
        let ann = CustomerId::parse("ann").unwrap();
        let a = ListingPosition::of(&order("ann", 7, 1, 500));
        let b = ListingPosition::of(&order("ann", 1, 9, 501));
        assert!(index_key(&ann, a) < index_key(&ann, b));
        assert_eq!(position_of(&index_key(&ann, a)), Some(a));
        let last = ListingPosition {
            created_at: Timestamp::MAX,
            ..a
        };
        assert_eq!(position_of(&index_key(&ann, last)), Some(last));
    }

    #[test]
    fn pages_of_archived_orders_run_newest_first_across_shards() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let orders = [
            order("ann", 0, 1, 100),
            order("ann", 3, 1, 400),
            order("bob", 0, 2, 300),
            order("ann", 1, 1, 200),
            order("ann", 0, 3, 300),
        ];
        let orders: Vec<_> = orders
            .into_iter()
            .map(|order| (order, Vec::new()))
            .collect();
        archive_orders(&storage, &orders).unwrap();
        let ann = CustomerId::parse("ann").unwrap();
        let first = archived_customer_orders(&storage, &ann, None, 3, 100).unwrap();
        assert_eq!(numbers(&first.orders), [1, 3, 1]);
        assert_eq!(first.orders[0].id.shard, 3);
        assert_eq!(first.scanned_to, None);
        let after = ListingPosition::of(first.orders.last().unwrap());
        let second = archived_customer_orders(&storage, &ann, Some(after), 3, 100).unwrap();
        assert_eq!(numbers(&second.orders), [1]);
        assert_eq!(second.orders[0].created_at, Timestamp(100));
        // A scan bound below the page stops early and says where.
        let short = archived_customer_orders(&storage, &ann, None, 3, 2).unwrap();
        assert_eq!(short.orders.len(), 2);
        assert_eq!(
            short.scanned_to,
            Some(ListingPosition::of(&short.orders[1]))
        );
    }

    #[test]
    fn an_archive_written_without_the_index_is_indexed_once_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let orders = [order("ann", 0, 1, 100), order("ann", 1, 1, 200)];
        // As an older version wrote it: values only.
        let values: Vec<(Vec<u8>, Vec<u8>)> = orders
            .iter()
            .map(|order| {
                (
                    archive_key(&order.id).to_vec(),
                    crate::codec::encode_archived_order(order, &[]),
                )
            })
            .collect();
        storage.archive_insert(&values).unwrap();
        let ann = CustomerId::parse("ann").unwrap();
        let missing = archived_customer_orders(&storage, &ann, None, 10, 10).unwrap();
        assert!(missing.orders.is_empty());
        assert_eq!(index_archive_once(&storage).unwrap(), 2);
        assert_eq!(index_archive_once(&storage).unwrap(), 0, "once");
        let found = archived_customer_orders(&storage, &ann, None, 10, 10).unwrap();
        assert_eq!(numbers(&found.orders), [1, 1]);
        assert_eq!(found.orders[0].id.shard, 1);
    }
}
