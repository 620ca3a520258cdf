//! How the order logic's events and snapshots become log and checkpoint bytes:
//! bincode 2 (standard config), always decoded with a size limit.

use bincode::{Decode, Encode};

use crate::domain::{Event, Order, SkuImage};

/// Largest log record body this build decodes. Events are far smaller: ids are at
/// most 64 bytes each.
pub const RECORD_BODY_BYTES_MAX: usize = 64 << 10;
/// Largest checkpoint chunk this build decodes.
pub const CHUNK_BYTES_MAX: usize = 64 << 20;
/// Orders per checkpoint chunk; about 150 bytes each keeps chunks near 1 MiB.
pub const ORDERS_PER_CHUNK: usize = 8_192;

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
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode {what}: {source}")]
pub struct DecodeError {
    what: &'static str,
    source: bincode::error::DecodeError,
}

pub fn encode_log_entry(entry: &LogEntry) -> Vec<u8> {
    bincode::encode_to_vec(entry, bincode::config::standard()).expect("events always encode")
}

pub fn decode_log_entry(bytes: &[u8]) -> Result<LogEntry, DecodeError> {
    let config = bincode::config::standard().with_limit::<RECORD_BODY_BYTES_MAX>();
    decode_all(bytes, config, "log record body")
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
    use crate::domain::{SkuId, SkuSettings};

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
