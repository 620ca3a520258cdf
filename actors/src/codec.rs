//! How the order logic's events and snapshots become log and checkpoint bytes:
//! bincode 2 (standard config), always decoded with a size limit.

use bincode::{Decode, Encode};

use crate::domain::retention::SettledImage;
use crate::domain::{
    Event, Order, OrderChange, OrderId, RetainedKey, SkuImage, CHANGES_PER_ORDER_MAX,
};

/// Largest log record body this build encodes or decodes: the storage layer's,
/// so a record always fits one sled value that sled keeps in its data file.
/// Events are far smaller: ids are at most 64 bytes each, and the largest event
/// (an order with every id at 64 bytes and every number at its maximum)
/// encodes to about 300 bytes (see the tests).
pub const RECORD_BODY_BYTES_MAX: usize = flashgate_storage::RECORD_BODY_BYTES_MAX;
/// Largest checkpoint chunk this build decodes.
pub const CHUNK_BYTES_MAX: usize = 64 << 20;
/// Orders per checkpoint chunk; about 150 bytes each keeps chunks near 1 MiB.
pub const ORDERS_PER_CHUNK: usize = 8_192;
/// Retained keys per checkpoint chunk (each at most about 300 bytes).
pub const KEYS_PER_CHUNK: usize = 8_192;
/// Bytes of an order's key in the archive: epoch, shard, number, big-endian,
/// so the archive is in order id order.
pub const ARCHIVE_KEY_BYTES: usize = 20;

/// The body of one log record: an event of one shard, numbered in that shard's
/// sequence. Replay checks that each shard's sequence has no gap.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LogEntry {
    pub shard: u32,
    pub seq: u64,
    pub event: Event,
}

/// One checkpoint chunk. Each shard writes a header, then its orders in chunks.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum CheckpointChunk {
    ShardHeader {
        shard: u32,
        /// The shard's last event sequence number the chunks reflect.
        seq: u64,
        next_order_number: u64,
        skus: Vec<SkuImage>,
    },
    Orders {
        shard: u32,
        orders: Vec<Order>,
    },
    /// Units of settled orders (confirmed orders that left memory), per SKU
    /// and customer: they stay sold and count toward the customer's limit.
    Settled {
        shard: u32,
        settled: Vec<SettledImage>,
    },
    /// Idempotency keys of orders that left memory, still honoured.
    Keys {
        shard: u32,
        keys: Vec<RetainedKey>,
    },
    /// Orders that left memory, as the archive holds them: sent to a standby
    /// that catches up from a checkpoint (never stored in one).
    Archived {
        orders: Vec<Order>,
    },
    /// Orders that left memory with their history (changed orders), as the
    /// archive holds them: sent to a standby like `Archived`.
    ArchivedChanged {
        orders: Vec<(Order, Vec<OrderChange>)>,
    },
    /// The history of a shard's changed orders in memory.
    Changes {
        shard: u32,
        changes: Vec<(OrderId, Vec<OrderChange>)>,
    },
    /// A shard's frozen orders (moves not yet ended) and the orders that
    /// moved away from it, and where.
    Moves {
        shard: u32,
        moving: Vec<(OrderId, crate::domain::PendingMove)>,
        moved_out: Vec<(OrderId, u32)>,
    },
    /// A shard's SKUs that have a waiting room, with its settings.
    WaitingRooms {
        shard: u32,
        rooms: Vec<(crate::domain::SkuId, crate::domain::WaitingRoom)>,
    },
}

/// An order's key in the archive.
pub fn archive_key(id: &OrderId) -> [u8; ARCHIVE_KEY_BYTES] {
    let mut key = [0; ARCHIVE_KEY_BYTES];
    key[..8].copy_from_slice(&id.epoch.to_be_bytes());
    key[8..12].copy_from_slice(&id.shard.to_be_bytes());
    key[12..].copy_from_slice(&id.number.to_be_bytes());
    key
}

/// An order as the archive stores it: the order's bincode, as in its events,
/// then, for an order that was changed, its history (`OrderChange`s) — an
/// unchanged order's value is the order alone, as before changes existed.
/// Never more than `RECORD_BODY_BYTES_MAX` bytes (asserted: a history is
/// bounded by `CHANGES_PER_ORDER_MAX`).
pub fn encode_archived_order(order: &Order, changes: &[OrderChange]) -> Vec<u8> {
    let mut bytes =
        bincode::encode_to_vec(order, bincode::config::standard()).expect("orders always encode");
    if !changes.is_empty() {
        bincode::encode_into_std_write(changes, &mut bytes, bincode::config::standard())
            .expect("histories always encode");
    }
    assert!(bytes.len() <= RECORD_BODY_BYTES_MAX);
    bytes
}

pub fn decode_archived_order(bytes: &[u8]) -> Result<Order, DecodeError> {
    decode_archived(bytes).map(|(order, _)| order)
}

/// An archived order and its history (empty for an order never changed).
pub fn decode_archived(bytes: &[u8]) -> Result<(Order, Vec<OrderChange>), DecodeError> {
    let config = bincode::config::standard().with_limit::<RECORD_BODY_BYTES_MAX>();
    let what = "archived order";
    let (order, used): (Order, usize) =
        bincode::decode_from_slice(bytes, config).map_err(|source| DecodeError { what, source })?;
    if used == bytes.len() {
        return Ok((order, Vec::new()));
    }
    let changes: Vec<OrderChange> = decode_all(&bytes[used..], config, what)?;
    if changes.is_empty() || changes.len() > CHANGES_PER_ORDER_MAX {
        return Err(DecodeError {
            what,
            source: bincode::error::DecodeError::Other("a history of no or too many changes"),
        });
    }
    Ok((order, changes))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode {what}: {source}")]
pub struct DecodeError {
    what: &'static str,
    source: bincode::error::DecodeError,
}

/// Encodes a log record body; never more than `RECORD_BODY_BYTES_MAX` bytes
/// (asserted: the domain's validators bound every field).
pub fn encode_log_entry(entry: &LogEntry) -> Vec<u8> {
    let bytes =
        bincode::encode_to_vec(entry, bincode::config::standard()).expect("events always encode");
    assert!(
        bytes.len() <= RECORD_BODY_BYTES_MAX,
        "a log record body of {} bytes is over the limit of {RECORD_BODY_BYTES_MAX}",
        bytes.len()
    );
    bytes
}

pub fn decode_log_entry(bytes: &[u8]) -> Result<LogEntry, DecodeError> {
    let config = bincode::config::standard().with_limit::<RECORD_BODY_BYTES_MAX>();
    decode_all(bytes, config, "log record body")
}

/// The shard a log record body names, read from its first field
/// (`LogEntry::shard`) without decoding the rest: recovery hands each record
/// to its shard's thread by it. `decode_log_entry` still checks the whole body.
pub fn log_entry_shard(bytes: &[u8]) -> Result<u32, DecodeError> {
    let config = bincode::config::standard().with_limit::<RECORD_BODY_BYTES_MAX>();
    bincode::decode_from_slice::<u32, _>(bytes, config)
        .map(|(shard, _)| shard)
        .map_err(|source| DecodeError {
            what: "log record body",
            source,
        })
}

/// What a checkpoint chunk holds, read from its first bytes without decoding
/// the rest: recovery hands each shard its chunks, and sizes the shard's
/// tables from the order counts, before it decodes them. `decode_chunk` still
/// checks every chunk whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkHead {
    /// An `Orders` chunk: its shard and how many orders it holds.
    Orders { shard: u32, orders: usize },
    /// Any other chunk of one shard's state (the header included).
    Shard { shard: u32 },
    /// `Archived` or `ArchivedChanged`: a standby's catch-up, no shard's.
    Archived,
}

impl CheckpointChunk {
    /// What `chunk_head` reads of this chunk's bytes.
    pub fn head(&self) -> ChunkHead {
        match self {
            CheckpointChunk::Orders { shard, orders } => ChunkHead::Orders {
                shard: *shard,
                orders: orders.len(),
            },
            CheckpointChunk::Archived { .. } | CheckpointChunk::ArchivedChanged { .. } => {
                ChunkHead::Archived
            }
            CheckpointChunk::ShardHeader { shard, .. }
            | CheckpointChunk::Settled { shard, .. }
            | CheckpointChunk::Keys { shard, .. }
            | CheckpointChunk::Changes { shard, .. }
            | CheckpointChunk::Moves { shard, .. }
            | CheckpointChunk::WaitingRooms { shard, .. } => ChunkHead::Shard { shard: *shard },
        }
    }
}

/// `CheckpointChunk`'s variant indexes as bincode writes them (the order of
/// declaration); `chunk_head_agrees_with_the_decoded_chunk` holds them to it.
const CHUNK_VARIANT_ORDERS: u32 = 1;
const CHUNK_VARIANT_ARCHIVED: u32 = 4;
const CHUNK_VARIANT_ARCHIVED_CHANGED: u32 = 5;

/// Reads a chunk's head: its variant, then its first field (every variant
/// but the archived ones starts with its shard), then, of an `Orders` chunk,
/// the length of its order list, which may not exceed the bytes left (every
/// order takes more than one).
pub fn chunk_head(bytes: &[u8]) -> Result<ChunkHead, DecodeError> {
    let config = bincode::config::standard().with_limit::<CHUNK_BYTES_MAX>();
    let error = |source| DecodeError {
        what: "checkpoint chunk",
        source,
    };
    let (variant, _): (u32, usize) = bincode::decode_from_slice(bytes, config).map_err(error)?;
    if variant == CHUNK_VARIANT_ARCHIVED || variant == CHUNK_VARIANT_ARCHIVED_CHANGED {
        return Ok(ChunkHead::Archived);
    }
    if variant != CHUNK_VARIANT_ORDERS {
        let ((_, shard), _): ((u32, u32), usize) =
            bincode::decode_from_slice(bytes, config).map_err(error)?;
        return Ok(ChunkHead::Shard { shard });
    }
    let ((_, shard, orders), read): ((u32, u32, u64), usize) =
        bincode::decode_from_slice(bytes, config).map_err(error)?;
    let left = bytes.len() - read;
    match usize::try_from(orders) {
        Ok(orders) if orders <= left => Ok(ChunkHead::Orders { shard, orders }),
        _ => Err(error(bincode::error::DecodeError::OtherString(format!(
            "claims {orders} orders in {left} bytes"
        )))),
    }
}

pub fn encode_chunk(chunk: &CheckpointChunk) -> Vec<u8> {
    bincode::encode_to_vec(chunk, bincode::config::standard()).expect("snapshots always encode")
}

pub fn decode_chunk(bytes: &[u8]) -> Result<CheckpointChunk, DecodeError> {
    let config = bincode::config::standard().with_limit::<CHUNK_BYTES_MAX>();
    decode_all(bytes, config, "checkpoint chunk")
}

fn decode_all<T: Decode<()>>(
    bytes: &[u8],
    config: impl bincode::config::Config,
    what: &'static str,
) -> Result<T, DecodeError> {
    let (value, read) =
        bincode::decode_from_slice(bytes, config).map_err(|source| DecodeError { what, source })?;
    if read != bytes.len() {
        return Err(DecodeError {
            what,
            source: bincode::error::DecodeError::OtherString(format!(
                "{} trailing bytes",
                bytes.len() - read
            )),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::retention::{KEYS_PER_FORGET_EVENT, ORDERS_PER_RETIRE_EVENT};
    use crate::domain::types::ID_LENGTH_MAX;
    use crate::domain::{
        CustomerId, IdempotencyKey, Order, OrderId, OrderStatus, SkuId, SkuSettings, Timestamp,
    };

    /// Every event with every field at its largest: ids of 64 bytes (the
    /// validators' limit; a multi-byte character counts its bytes), numbers at
    /// their type's maximum.
    fn largest_entries() -> Vec<LogEntry> {
        let id = "x".repeat(ID_LENGTH_MAX);
        let sku = SkuId::parse(&id).unwrap();
        let order_id = OrderId {
            epoch: u64::MAX,
            shard: u32::MAX,
            number: u64::MAX,
        };
        let settings = SkuSettings {
            per_customer_limit: Some(u64::MAX),
            max_quantity_per_order: u32::MAX,
            sale_starts_at: Some(Timestamp(u64::MAX)),
            reservation_ttl_secs: u32::MAX,
            low_stock_threshold: u64::MAX,
        };
        let at = Timestamp(u64::MAX);
        let events = vec![
            Event::SkuCreated {
                sku: sku.clone(),
                stock: u64::MAX,
                settings: settings.clone(),
            },
            Event::SkuSettingsChanged {
                sku: sku.clone(),
                settings,
            },
            Event::Restocked {
                sku: sku.clone(),
                quantity: u64::MAX,
            },
            Event::OrderReserved(Order {
                id: order_id,
                sku,
                quantity: u32::MAX,
                customer: CustomerId::parse(&"é".repeat(ID_LENGTH_MAX / 2)).unwrap(),
                status: OrderStatus::Expired,
                created_at: at,
                reserved_until: at,
                updated_at: at,
                idempotency_key: Some(IdempotencyKey::parse(&id).unwrap()),
            }),
            Event::OrderConfirmed { id: order_id, at },
            Event::OrderCancelled { id: order_id, at },
            Event::OrderExpired { id: order_id, at },
            Event::OrdersRetired {
                ids: vec![order_id; ORDERS_PER_RETIRE_EVENT],
            },
            Event::KeysForgotten {
                keys: vec![
                    (
                        CustomerId::parse(&"é".repeat(ID_LENGTH_MAX / 2)).unwrap(),
                        IdempotencyKey::parse(&id).unwrap()
                    );
                    KEYS_PER_FORGET_EVENT
                ],
            },
            Event::WaitingRoomSet {
                sku: SkuId::parse(&id).unwrap(),
                room: Some(crate::domain::WaitingRoom {
                    admit_per_sec: u32::MAX,
                    admitted_ttl_secs: u32::MAX,
                    queue_length_max: u32::MAX,
                }),
            },
        ];
        events
            .into_iter()
            .map(|event| LogEntry {
                shard: u32::MAX,
                seq: u64::MAX,
                event,
            })
            .collect()
    }

    #[test]
    fn the_largest_event_fits_one_record_with_room_to_spare() {
        let largest = largest_entries()
            .iter()
            .map(|entry| {
                let bytes = encode_log_entry(entry);
                assert_eq!(&decode_log_entry(&bytes).unwrap(), entry);
                bytes.len()
            })
            .max()
            .unwrap();
        // A quarter of the limit: a new field cannot silently reach it.
        assert!(
            largest * 4 <= RECORD_BODY_BYTES_MAX,
            "the largest event encodes to {largest} bytes; the limit is {RECORD_BODY_BYTES_MAX}"
        );
    }

    /// One entry of each kind that carries an id a person chose, and the
    /// checkpoint chunks that carry them, as this format writes them.
    fn golden_samples() -> (Vec<LogEntry>, Vec<CheckpointChunk>) {
        let sku = SkuId::parse("TSHIRT-red.L").unwrap();
        let customer = CustomerId::parse("Zoë@example.com").unwrap();
        let key = IdempotencyKey::parse("retry-1").unwrap();
        let id = OrderId {
            epoch: 3,
            shard: 1,
            number: 1042,
        };
        let order = Order {
            id,
            sku: sku.clone(),
            quantity: 2,
            customer: customer.clone(),
            status: OrderStatus::Reserved,
            created_at: Timestamp(1_764_234_000_000),
            reserved_until: Timestamp(1_764_234_600_000),
            updated_at: Timestamp(1_764_234_000_000),
            idempotency_key: Some(key.clone()),
        };
        let entries = vec![
            LogEntry {
                shard: 1,
                seq: 7,
                event: Event::SkuCreated {
                    sku: sku.clone(),
                    stock: 100,
                    settings: SkuSettings::default(),
                },
            },
            LogEntry {
                shard: 1,
                seq: 8,
                event: Event::OrderReserved(order.clone()),
            },
            LogEntry {
                shard: 1,
                seq: 9,
                event: Event::KeysForgotten {
                    keys: vec![(customer.clone(), key.clone())],
                },
            },
        ];
        let chunks = vec![
            CheckpointChunk::Orders {
                shard: 1,
                orders: vec![order],
            },
            CheckpointChunk::Settled {
                shard: 1,
                settled: vec![SettledImage {
                    sku: sku.clone(),
                    by_customer: vec![(customer.clone(), 3)],
                }],
            },
            CheckpointChunk::Keys {
                shard: 1,
                keys: vec![crate::domain::RetainedKey {
                    customer,
                    key,
                    entry: crate::domain::KeyEntry {
                        order: id,
                        sku,
                        quantity: 2,
                        created_at: Timestamp(1_764_234_000_000),
                        retired: true,
                    },
                }],
            },
        ];
        (entries, chunks)
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The bytes of log records and checkpoint chunks never change with the
    /// in-memory representation of ids: a data dir written by an older build
    /// must replay in a newer one, and a standby of either build must read the
    /// other's log.
    #[test]
    fn log_and_checkpoint_bytes_are_the_format_s() {
        let (entries, chunks) = golden_samples();
        let entries: Vec<String> = entries.iter().map(|e| hex(&encode_log_entry(e))).collect();
        let chunks: Vec<String> = chunks.iter().map(|c| hex(&encode_chunk(c))).collect();
        assert_eq!(entries, GOLDEN_ENTRIES);
        assert_eq!(chunks, GOLDEN_CHUNKS);
        let (entries, chunks) = golden_samples();
        for entry in entries {
            assert_eq!(decode_log_entry(&encode_log_entry(&entry)).unwrap(), entry);
        }
        for chunk in chunks {
            assert_eq!(decode_chunk(&encode_chunk(&chunk)).unwrap(), chunk);
        }
    }

    /// The head read without decoding names what the whole decode finds, for
    /// every kind of chunk; an order count beyond the bytes is refused.
    #[test]
    fn chunk_head_agrees_with_the_decoded_chunk() {
        let (_, mut chunks) = golden_samples();
        let order = match &chunks[0] {
            CheckpointChunk::Orders { orders, .. } => orders[0].clone(),
            _ => unreachable!(),
        };
        chunks.extend([
            CheckpointChunk::ShardHeader {
                shard: 300,
                seq: 9,
                next_order_number: 2,
                skus: Vec::new(),
            },
            CheckpointChunk::Orders {
                shard: 70_000,
                orders: vec![order.clone(); 3],
            },
            CheckpointChunk::Archived {
                orders: vec![order.clone(); 2],
            },
            CheckpointChunk::ArchivedChanged { orders: Vec::new() },
            CheckpointChunk::Changes {
                shard: 2,
                changes: Vec::new(),
            },
            CheckpointChunk::Moves {
                shard: 3,
                moving: Vec::new(),
                moved_out: vec![(order.id, 1)],
            },
            CheckpointChunk::WaitingRooms {
                shard: 4,
                rooms: Vec::new(),
            },
        ]);
        for chunk in chunks {
            let expected = chunk.head();
            assert_eq!(
                chunk_head(&encode_chunk(&chunk)).unwrap(),
                expected,
                "{chunk:?}"
            );
        }
        // An Orders chunk of shard 1 claiming 250 orders in no bytes.
        let error = chunk_head(&[1, 1, 250]).unwrap_err().to_string();
        assert!(error.contains("claims 250 orders in 0 bytes"), "{error}");
        assert!(chunk_head(&[]).is_err());
    }

    /// Written by the build before ids were shared (`String` ids); see
    /// `golden_samples`.
    const GOLDEN_ENTRIES: [&str; 3] = [
        "0107000c5453484952542d7265642e4c64000a00fb580200",
        "0108030301fb12040c5453484952542d7265642e4c02105a6fc3ab406578616d706c652e636f6d00fd80768ac49a010000fd409e93c49a010000fd80768ac49a010000010772657472792d31",
        "01090801105a6fc3ab406578616d706c652e636f6d0772657472792d31",
    ];
    const GOLDEN_CHUNKS: [&str; 3] = [
        "0101010301fb12040c5453484952542d7265642e4c02105a6fc3ab406578616d706c652e636f6d00fd80768ac49a010000fd409e93c49a010000fd80768ac49a010000010772657472792d31",
        "0201010c5453484952542d7265642e4c01105a6fc3ab406578616d706c652e636f6d03",
        "030101105a6fc3ab406578616d706c652e636f6d0772657472792d310301fb12040c5453484952542d7265642e4c02fd80768ac49a01000001",
    ];

    #[test]
    fn the_shard_read_ahead_is_the_one_the_whole_entry_names() {
        for shard in [0, 1, 250, 251, 65_535, 65_536, u32::MAX] {
            for mut entry in largest_entries() {
                entry.shard = shard;
                let bytes = encode_log_entry(&entry);
                assert_eq!(log_entry_shard(&bytes).unwrap(), shard);
            }
        }
        assert!(log_entry_shard(&[]).is_err());
        assert!(log_entry_shard(&[0xfc]).is_err());
    }

    #[test]
    fn log_entries_round_trip_and_garbage_is_an_error() {
        let entry = LogEntry {
            shard: 2,
            seq: 9,
            event: Event::SkuCreated {
                sku: SkuId::parse("A").unwrap(),
                stock: 5,
                settings: SkuSettings::default(),
            },
        };
        let bytes = encode_log_entry(&entry);
        assert_eq!(decode_log_entry(&bytes).unwrap(), entry);
        assert!(decode_log_entry(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_log_entry(&longer).is_err());
        // A length prefix claiming a huge string must fail on the limit, not allocate.
        let bomb = [
            2u8, 9, 0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ];
        assert!(decode_log_entry(&bomb).is_err());
    }
}
