//! The shell's side of letting orders leave a shard's memory (the rules are in
//! `domain::retention`): writing their last state to the archive before the
//! event that drops them is logged, reading them back for an answer, keeping
//! the node's idempotency claims in step with the keys a shard forgets, and
//! copying the archive to a standby that catches up from a checkpoint.
//!
//! Order: the core applies `OrdersRetired` (the orders leave memory and wait
//! in its outbox), the shell archives them, and only then appends the event.
//! The record's barrier flushes the whole database, so once the record is
//! durable, so are the archived orders; a crash before that leaves the orders
//! in memory after replay (an archived copy without its event is harmless:
//! memory is read first). Replay and a standby archive what they retire too.

use dashmap::DashMap;
use flashgate_storage::{Checkpoint, Storage, StorageError};

use crate::codec::{
    archive_key, decode_archived, decode_chunk, encode_archived_order, encode_chunk,
    CheckpointChunk, ORDERS_PER_CHUNK,
};
use crate::domain::{CustomerId, IdempotencyKey, KeyEntry, Order, OrderChange, OrderId};
use crate::node::KeyClaim;

/// Writes orders that left memory to the archive, after their keys in the
/// archive's customer index (`crate::customer_archive`). Neither write is one
/// atomic batch (`flashgate_storage::SLED_BATCH_KEYS_MAX`): a crash before the
/// event is logged may leave some of them, which is harmless (see above).
pub fn archive_orders(
    storage: &Storage,
    orders: &[(Order, Vec<OrderChange>)],
) -> Result<(), StorageError> {
    if orders.is_empty() {
        return Ok(());
    }
    crate::customer_archive::index_archived(storage, orders)?;
    let values: Vec<(Vec<u8>, Vec<u8>)> = orders
        .iter()
        .map(|(order, changes)| {
            (
                archive_key(&order.id).to_vec(),
                encode_archived_order(order, changes),
            )
        })
        .collect();
    storage.archive_insert(&values)
}

/// Reads an order that left memory. An archived value that does not decode is
/// damage, reported as a storage error naming the order.
pub fn archived_order(storage: &Storage, id: &OrderId) -> Result<Option<Order>, StorageError> {
    Ok(archived_order_with_changes(storage, id)?.map(|(order, _)| order))
}

/// An order that left memory, with its history.
pub fn archived_order_with_changes(
    storage: &Storage,
    id: &OrderId,
) -> Result<Option<(Order, Vec<OrderChange>)>, StorageError> {
    let Some(bytes) = storage.archive_get(&archive_key(id))? else {
        return Ok(None);
    };
    decode_archived(&bytes).map(Some).map_err(|error| {
        StorageError::Io(format!(
            "archived order {id}: {error}; restore the data dir from a standby or backup"
        ))
    })
}

/// Records that a key is held by an order (from recovery or replication), so
/// it can never be claimed for another request while the shard remembers it.
pub(crate) fn claim_key(
    claims: &DashMap<(CustomerId, IdempotencyKey), KeyClaim>,
    customer: &CustomerId,
    key: &IdempotencyKey,
    entry: &KeyEntry,
) {
    claims.insert(
        (customer.clone(), key.clone()),
        KeyClaim::ordered(entry.sku.clone(), entry.quantity),
    );
}

/// Drops the claims of keys a shard forgot. A claim with a request in flight
/// stays until that request ends (it then decides as for a new key).
pub(crate) fn release_forgotten(
    claims: &DashMap<(CustomerId, IdempotencyKey), KeyClaim>,
    forgotten: Vec<(CustomerId, IdempotencyKey)>,
) {
    for key in forgotten {
        claims.remove_if_mut(&key, |_, claim| claim.forget());
    }
}

/// The checkpoint a standby catches up from: the stored one, then the archive
/// (`CheckpointChunk::Archived` chunks), so the standby can answer every
/// order the primary can. `None` without a checkpoint.
pub fn checkpoint_for_standby(storage: &Storage) -> Result<Option<Checkpoint>, StorageError> {
    let Some(mut checkpoint) = storage.read_checkpoint()? else {
        return Ok(None);
    };
    checkpoint.chunks.extend(archive_chunks(storage)?);
    Ok(Some(checkpoint))
}

/// The first byte of an encoded `CheckpointChunk::Archived`: bincode writes
/// an enum's variant index first, as a varint (one byte below 251).
const ARCHIVED_CHUNK_TAG: u8 = 4;
/// The first byte of an encoded `CheckpointChunk::ArchivedChanged`.
const ARCHIVED_CHANGED_CHUNK_TAG: u8 = 5;

/// Splits a checkpoint received from a primary into the chunks to store and
/// the archived orders it carried.
#[allow(clippy::type_complexity)]
pub fn split_archived(
    chunks: Vec<Vec<u8>>,
) -> Result<(Vec<Vec<u8>>, Vec<(Order, Vec<OrderChange>)>), String> {
    let mut stored = Vec::with_capacity(chunks.len());
    let mut archived = Vec::new();
    for bytes in chunks {
        // Only archived chunks are decoded here: the others (a shard's
        // orders, megabytes of them) are decoded once, by recovery.
        if !matches!(
            bytes.first(),
            Some(&ARCHIVED_CHUNK_TAG | &ARCHIVED_CHANGED_CHUNK_TAG)
        ) {
            stored.push(bytes);
            continue;
        }
        match decode_chunk(&bytes).map_err(|error| error.to_string())? {
            CheckpointChunk::Archived { orders } => {
                archived.extend(orders.into_iter().map(|order| (order, Vec::new())))
            }
            CheckpointChunk::ArchivedChanged { orders } => archived.extend(orders),
            _ => unreachable!("the tag names archived chunks only"),
        }
    }
    Ok((stored, archived))
}

/// Calls `visit` with every archived order, in key order, reading a page at a
/// time; a value that does not decode is `undecodable` with its key named.
pub fn visit_archived<E: From<StorageError>>(
    storage: &Storage,
    undecodable: impl Fn(String) -> E,
    mut visit: impl FnMut(Order, Vec<OrderChange>) -> Result<(), E>,
) -> Result<(), E> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = storage.archive_page(after.as_deref())?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = Some(last.clone());
        for (key, bytes) in page {
            let (order, changes) = decode_archived(&bytes).map_err(|error| {
                undecodable(format!("archived value under key {key:02x?}: {error}"))
            })?;
            visit(order, changes)?;
        }
    }
}

/// The archive as checkpoint chunks (`CheckpointChunk::Archived`), for a
/// standby that catches up from a checkpoint and so never saw these orders
/// leave memory. Reads a page at a time.
pub fn archive_chunks(storage: &Storage) -> Result<Vec<Vec<u8>>, StorageError> {
    let mut chunks = Vec::new();
    let mut orders = Vec::with_capacity(ORDERS_PER_CHUNK);
    let mut changed = Vec::new();
    visit_archived(storage, StorageError::Io, |order, changes| {
        if changes.is_empty() {
            orders.push(order);
        } else {
            changed.push((order, changes));
        }
        if orders.len() == ORDERS_PER_CHUNK {
            chunks.push(encode_chunk(&CheckpointChunk::Archived {
                orders: std::mem::take(&mut orders),
            }));
        }
        // A history is at most `CHANGES_PER_ORDER_MAX` changes: a chunk of
        // these stays far below a chunk's limit at a tenth of the count.
        if changed.len() == ORDERS_PER_CHUNK / 10 {
            chunks.push(encode_chunk(&CheckpointChunk::ArchivedChanged {
                orders: std::mem::take(&mut changed),
            }));
        }
        Ok(())
    })?;
    if !orders.is_empty() {
        chunks.push(encode_chunk(&CheckpointChunk::Archived { orders }));
    }
    if !changed.is_empty() {
        chunks.push(encode_chunk(&CheckpointChunk::ArchivedChanged {
            orders: changed,
        }));
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_archived_chunks_carry_the_archived_tag() {
        let archived = encode_chunk(&CheckpointChunk::Archived { orders: Vec::new() });
        assert_eq!(archived.first(), Some(&ARCHIVED_CHUNK_TAG));
        let others = [
            CheckpointChunk::ShardHeader {
                shard: 4,
                seq: 4,
                next_order_number: 4,
                skus: Vec::new(),
            },
            CheckpointChunk::Orders {
                shard: 4,
                orders: Vec::new(),
            },
            CheckpointChunk::Settled {
                shard: 4,
                settled: Vec::new(),
            },
            CheckpointChunk::Keys {
                shard: 4,
                keys: Vec::new(),
            },
        ];
        let changed = encode_chunk(&CheckpointChunk::ArchivedChanged { orders: Vec::new() });
        assert_eq!(changed.first(), Some(&ARCHIVED_CHANGED_CHUNK_TAG));
        for chunk in &others {
            assert_ne!(encode_chunk(chunk).first(), Some(&ARCHIVED_CHUNK_TAG));
            assert_ne!(
                encode_chunk(chunk).first(),
                Some(&ARCHIVED_CHANGED_CHUNK_TAG)
            );
        }
        assert_ne!(
            encode_chunk(&CheckpointChunk::Changes {
                shard: 4,
                changes: Vec::new()
            })
            .first(),
            Some(&ARCHIVED_CHANGED_CHUNK_TAG)
        );
        let (stored, orders) =
            split_archived(others.iter().map(encode_chunk).chain([archived]).collect()).unwrap();
        assert_eq!((stored.len(), orders.len()), (4, 0));
    }
}
