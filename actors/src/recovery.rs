//! Rebuilding the shards from a data dir: load the checkpoint, then replay the log
//! after it. Each shard's events carry a sequence number; replay skips what the
//! checkpoint already holds and refuses a gap.

use flashgate_storage::{Lsn, Storage, StorageError};

use crate::codec::{decode_chunk, decode_log_entry, CheckpointChunk, DecodeError};
use crate::domain::{InconsistentEvent, Order, RetainedImage, ShardConfig, ShardCore, SkuImage};
use crate::retire::archive_orders;

/// Why a data dir could not be loaded. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("log record at LSN {lsn}: {source}; restore the data dir from a standby or backup")]
    Decode { lsn: Lsn, source: DecodeError },
    #[error("log record at LSN {lsn}: {reason}; restore the data dir from a standby or backup")]
    Inconsistent { lsn: Lsn, reason: String },
    #[error("checkpoint: {0}; restore the data dir from a standby or backup")]
    Checkpoint(String),
}

/// What recovery rebuilt.
pub struct Recovered {
    pub cores: Vec<ShardCore>,
    /// Each shard's last event sequence number.
    pub seqs: Vec<u64>,
    /// The last LSN in the log (or covered by the checkpoint); new records follow it.
    pub last_lsn: Lsn,
    pub replayed_records: u64,
    /// Time spent loading the checkpoint, and replaying the log after it.
    pub checkpoint_elapsed: std::time::Duration,
    pub replay_elapsed: std::time::Duration,
}

struct ShardParts {
    seq: u64,
    next_order_number: u64,
    skus: Vec<SkuImage>,
    orders: Vec<Order>,
    retained: RetainedImage,
}

fn restore_shard(
    config: ShardConfig,
    part: Option<ShardParts>,
) -> Result<(ShardCore, u64), RecoveryError> {
    let shard = config.shard;
    match part {
        None => Ok((ShardCore::new(config), 0)),
        Some(part) => {
            let core = ShardCore::restore(
                config,
                part.next_order_number,
                part.skus,
                part.orders,
                part.retained,
            )
            .map_err(|InconsistentEvent(reason)| {
                RecoveryError::Checkpoint(format!("shard {shard}: {reason}"))
            })?;
            Ok((core, part.seq))
        }
    }
}

fn header_of(
    slot: &mut Option<ShardParts>,
    shard: usize,
) -> Result<&mut ShardParts, RecoveryError> {
    slot.as_mut().ok_or_else(|| {
        RecoveryError::Checkpoint(format!("state of shard {shard} before its header"))
    })
}

pub fn recover(storage: &Storage, configs: Vec<ShardConfig>) -> Result<Recovered, RecoveryError> {
    let started = std::time::Instant::now();
    let shard_count = configs.len();
    let mut parts: Vec<Option<ShardParts>> = (0..shard_count).map(|_| None).collect();
    let mut covers_lsn = 0;
    if let Some(checkpoint) = storage.read_checkpoint()? {
        covers_lsn = checkpoint.covers_lsn;
        for bytes in &checkpoint.chunks {
            let chunk = decode_chunk(bytes)
                .map_err(|error| RecoveryError::Checkpoint(error.to_string()))?;
            let shard =
                match &chunk {
                    CheckpointChunk::ShardHeader { shard, .. }
                    | CheckpointChunk::Orders { shard, .. }
                    | CheckpointChunk::Settled { shard, .. }
                    | CheckpointChunk::Keys { shard, .. } => *shard,
                    CheckpointChunk::Archived { .. } => return Err(RecoveryError::Checkpoint(
                        "holds archived orders, which only a checkpoint sent to a standby carries"
                            .into(),
                    )),
                } as usize;
            let slot = parts.get_mut(shard).ok_or_else(|| {
                RecoveryError::Checkpoint(format!("names shard {shard} of only {shard_count}"))
            })?;
            match chunk {
                CheckpointChunk::ShardHeader {
                    seq,
                    next_order_number,
                    skus,
                    ..
                } => {
                    if slot.is_some() {
                        return Err(RecoveryError::Checkpoint(format!(
                            "shard {shard} stored twice"
                        )));
                    }
                    *slot = Some(ShardParts {
                        seq,
                        next_order_number,
                        skus,
                        orders: Vec::new(),
                        retained: RetainedImage::default(),
                    });
                }
                CheckpointChunk::Orders { orders, .. } => slot
                    .as_mut()
                    .ok_or_else(|| {
                        RecoveryError::Checkpoint(format!(
                            "orders of shard {shard} before its header"
                        ))
                    })?
                    .orders
                    .extend(orders),
                CheckpointChunk::Settled { settled, .. } => {
                    header_of(slot, shard)?.retained.settled.extend(settled)
                }
                CheckpointChunk::Keys { keys, .. } => {
                    header_of(slot, shard)?.retained.keys.extend(keys)
                }
                CheckpointChunk::Archived { .. } => unreachable!("refused above"),
            }
        }
    }

    // Shards are independent: rebuild them side by side.
    let restored: Vec<Result<(ShardCore, u64), RecoveryError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .into_iter()
            .zip(parts)
            .map(|(config, part)| scope.spawn(move || restore_shard(config, part)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("restoring a shard panicked"))
            .collect()
    });
    let mut cores = Vec::with_capacity(shard_count);
    let mut seqs = Vec::with_capacity(shard_count);
    for result in restored {
        let (core, seq) = result?;
        cores.push(core);
        seqs.push(seq);
    }

    let checkpoint_elapsed = started.elapsed();
    let mut last_lsn = covers_lsn;
    let mut replayed_records = 0;
    storage.read_log_after::<RecoveryError>(covers_lsn, |record| {
        let lsn = record.lsn;
        let entry = decode_log_entry(&record.body)
            .map_err(|source| RecoveryError::Decode { lsn, source })?;
        let shard = entry.shard as usize;
        let inconsistent = |reason: String| RecoveryError::Inconsistent { lsn, reason };
        let seq = seqs
            .get_mut(shard)
            .ok_or_else(|| inconsistent(format!("names shard {shard} of only {shard_count}")))?;
        last_lsn = lsn;
        if entry.seq <= *seq {
            return Ok(()); // Already in the checkpoint.
        }
        if entry.seq != *seq + 1 {
            return Err(inconsistent(format!(
                "shard {shard} jumps from event {} to {}",
                seq, entry.seq
            )));
        }
        cores[shard]
            .apply(&entry.event)
            .map_err(|InconsistentEvent(reason)| inconsistent(reason))?;
        // Orders that leave memory in replay are archived again: the node that
        // logged their leaving may have stopped before its archive write was
        // durable (a standby archives after it writes the record).
        let retired = cores[shard].take_retired();
        cores[shard].take_forgotten();
        archive_orders(storage, &retired)?;
        *seq = entry.seq;
        replayed_records += 1;
        Ok(())
    })?;
    Ok(Recovered {
        cores,
        seqs,
        last_lsn,
        replayed_records,
        checkpoint_elapsed,
        replay_elapsed: started.elapsed() - checkpoint_elapsed,
    })
}

/// A full cross-check of every shard's counters against its orders
/// (`ShardCore::assert_consistent`), one thread per shard, before the node
/// takes traffic: O(orders), and worth it once per start. Panics on a
/// mismatch. Returns how long it took.
pub fn verify(cores: &[ShardCore]) -> std::time::Duration {
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for core in cores {
            scope.spawn(|| core.assert_consistent());
        }
    });
    started.elapsed()
}
