//! Rebuilding the shards from a data dir: load the checkpoint, then replay the log
//! after it. Each shard's events carry a sequence number; replay skips what the
//! checkpoint already holds and refuses a gap.
//!
//! Shards are independent, so the work runs side by side on scoped threads:
//! - the checkpoint's chunks are sorted to their shards by their heads
//!   (`codec::chunk_head`), and each shard decodes its chunks and rebuilds
//!   itself from them on a thread of its own, each chunk's orders entering
//!   the tables as soon as they are decoded;
//! - the log is read (and every record checked) on the calling thread, and
//!   each record handed, in LSN order, to its shard's thread, which decodes
//!   and applies it;
//! - `verify` checks each shard on a thread of its own.
//!
//! Every check of the sequential version stays: each chunk and record is
//! decoded in full with its size limit, a shard's events apply in LSN order,
//! and the first error (the lowest LSN when several shards fail) is returned.

use std::time::{Duration, Instant};

use flashgate_storage::{Lsn, Storage, StorageError};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::codec::{
    chunk_head, decode_chunk, decode_log_entry, log_entry_shard, CheckpointChunk, ChunkHead,
    DecodeError,
};
use crate::domain::{
    InconsistentEvent, OrderChange, OrderId, RetainedImage, ShardConfig, ShardCore, SkuImage,
};
use crate::retire::archive_orders;

/// Most orders a shard makes room for ahead of a replay (see
/// `ShardCore::reserve_orders`), about 150 MiB of table: the log's records
/// bound the orders it adds, but orders may have left memory since, so a
/// longer log grows the table as it goes instead.
pub const REPLAY_RESERVE_ORDERS_MAX: usize = 1 << 20;
/// Log records handed to a shard's replay thread at once.
pub const REPLAY_BATCH_RECORDS: usize = 1_024;
/// Batches that may wait for a shard's replay thread: bounds the memory the
/// log reader runs ahead by (per shard, about this many times
/// `REPLAY_BATCH_RECORDS` records).
pub const REPLAY_BATCHES_QUEUED_MAX: usize = 8;

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

impl RecoveryError {
    /// The LSN of the log record this error is about, if it is about one.
    fn lsn(&self) -> Option<Lsn> {
        match self {
            RecoveryError::Decode { lsn, .. } | RecoveryError::Inconsistent { lsn, .. } => {
                Some(*lsn)
            }
            RecoveryError::Storage(StorageError::Corrupt { lsn, .. }) => Some(*lsn),
            _ => None,
        }
    }
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
    pub checkpoint_elapsed: Duration,
    pub replay_elapsed: Duration,
}

/// One shard's part of a checkpoint, as stored: its state chunks (the
/// header first) and its `Orders` chunks, each kind in its stored order.
#[derive(Default)]
struct ShardChunks {
    state: Vec<Vec<u8>>,
    orders: Vec<Vec<u8>>,
    /// The orders its `Orders` chunks hold, as their heads say.
    order_count: usize,
}

/// One shard's state from a checkpoint, but its orders.
struct ShardParts {
    seq: u64,
    next_order_number: u64,
    skus: Vec<SkuImage>,
    retained: RetainedImage,
    /// The history of changed orders in memory.
    changes: Vec<(OrderId, Vec<OrderChange>)>,
    moving: Vec<(OrderId, crate::domain::PendingMove)>,
    moved_out: Vec<(OrderId, u32)>,
    waiting_rooms: Vec<(crate::domain::SkuId, crate::domain::WaitingRoom)>,
}

fn checkpoint_error(error: DecodeError) -> RecoveryError {
    RecoveryError::Checkpoint(error.to_string())
}

/// Decodes a shard's state chunks, checking that the shard has one header
/// and that it comes first.
fn decode_shard_state(
    shard: usize,
    chunks: &[Vec<u8>],
) -> Result<Option<ShardParts>, RecoveryError> {
    let Some((first, rest)) = chunks.split_first() else {
        return Ok(None);
    };
    let mut part = match decode_chunk(first).map_err(checkpoint_error)? {
        CheckpointChunk::ShardHeader {
            seq,
            next_order_number,
            skus,
            ..
        } => ShardParts {
            seq,
            next_order_number,
            skus,
            retained: RetainedImage::default(),
            changes: Vec::new(),
            moving: Vec::new(),
            moved_out: Vec::new(),
            waiting_rooms: Vec::new(),
        },
        _ => {
            return Err(RecoveryError::Checkpoint(format!(
                "state of shard {shard} before its header"
            )))
        }
    };
    for bytes in rest {
        match decode_chunk(bytes).map_err(checkpoint_error)? {
            CheckpointChunk::ShardHeader { .. } => {
                return Err(RecoveryError::Checkpoint(format!(
                    "shard {shard} stored twice"
                )))
            }
            CheckpointChunk::Settled { settled, .. } => part.retained.settled.extend(settled),
            CheckpointChunk::Keys { keys, .. } => part.retained.keys.extend(keys),
            CheckpointChunk::Changes { changes, .. } => part.changes.extend(changes),
            CheckpointChunk::Moves {
                moving, moved_out, ..
            } => {
                part.moving.extend(moving);
                part.moved_out.extend(moved_out);
            }
            CheckpointChunk::WaitingRooms { rooms, .. } => part.waiting_rooms.extend(rooms),
            CheckpointChunk::Orders { .. }
            | CheckpointChunk::Archived { .. }
            | CheckpointChunk::ArchivedChanged { .. } => {
                unreachable!("sorted by its head, which the decode agrees with")
            }
        }
    }
    Ok(Some(part))
}

/// Rebuilds a shard from its chunks: its state first, then its orders, each
/// `Orders` chunk decoded as the restore reaches it.
fn restore_shard(
    config: ShardConfig,
    part: ShardChunks,
) -> Result<(ShardCore, u64), RecoveryError> {
    let shard = config.shard;
    let Some(state) = decode_shard_state(shard as usize, &part.state)? else {
        return Ok((ShardCore::new(config), 0));
    };
    let orders = part.orders.iter().map(|bytes| match decode_chunk(bytes) {
        Ok(CheckpointChunk::Orders { orders, .. }) => Ok(orders),
        Ok(_) => unreachable!("sorted by its head, which the decode agrees with"),
        Err(error) => Err(InconsistentEvent(error.to_string())),
    });
    let core = ShardCore::restore_chunks(
        config,
        state.next_order_number,
        state.skus,
        part.order_count,
        orders,
        state.retained,
    )
    .and_then(|mut core| core.restore_changes(state.changes).map(|()| core))
    .and_then(|mut core| {
        core.restore_moves(state.moving, state.moved_out)
            .map(|()| core)
    })
    .and_then(|mut core| {
        core.restore_waiting_rooms(state.waiting_rooms)
            .map(|()| core)
    })
    .map_err(|InconsistentEvent(reason)| {
        RecoveryError::Checkpoint(format!("shard {shard}: {reason}"))
    })?;
    Ok((core, state.seq))
}

/// Sorts a checkpoint's chunks to their shards by their heads, keeping each
/// shard's chunks in their stored order; a shard's orders may not come
/// before its state.
fn group_by_shard(
    chunks: Vec<Vec<u8>>,
    shard_count: usize,
) -> Result<Vec<ShardChunks>, RecoveryError> {
    let mut parts: Vec<ShardChunks> = (0..shard_count).map(|_| ShardChunks::default()).collect();
    for bytes in chunks {
        let (shard, orders) = match chunk_head(&bytes).map_err(checkpoint_error)? {
            ChunkHead::Orders { shard, orders } => (shard, Some(orders)),
            ChunkHead::Shard { shard } => (shard, None),
            ChunkHead::Archived => {
                return Err(RecoveryError::Checkpoint(
                    "holds archived orders, which only a checkpoint sent to a standby carries"
                        .into(),
                ))
            }
        };
        let part = parts.get_mut(shard as usize).ok_or_else(|| {
            RecoveryError::Checkpoint(format!("names shard {shard} of only {shard_count}"))
        })?;
        match orders {
            None => part.state.push(bytes),
            Some(_) if part.state.is_empty() => {
                return Err(RecoveryError::Checkpoint(format!(
                    "orders of shard {shard} before its header"
                )))
            }
            Some(orders) => {
                part.order_count += orders;
                part.orders.push(bytes);
            }
        }
    }
    Ok(parts)
}

/// Rebuilds every shard from its part of the checkpoint, a thread per shard.
fn restore_shards(
    configs: Vec<ShardConfig>,
    parts: Vec<ShardChunks>,
) -> Result<(Vec<ShardCore>, Vec<u64>), RecoveryError> {
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
    let mut cores = Vec::with_capacity(restored.len());
    let mut seqs = Vec::with_capacity(restored.len());
    for result in restored {
        let (core, seq) = result?;
        cores.push(core);
        seqs.push(seq);
    }
    Ok((cores, seqs))
}

/// Log records for one shard's replay thread: their LSNs and bodies, the
/// bodies back to back in one buffer.
#[derive(Default)]
struct RecordBatch {
    /// Each record's LSN and the end of its body in `bodies`.
    records: Vec<(Lsn, usize)>,
    bodies: Vec<u8>,
}

impl RecordBatch {
    fn push(&mut self, lsn: Lsn, body: &[u8]) {
        self.bodies.extend_from_slice(body);
        self.records.push((lsn, self.bodies.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (Lsn, &[u8])> {
        let mut start = 0;
        self.records.iter().map(move |&(lsn, end)| {
            let body = &self.bodies[start..end];
            start = end;
            (lsn, body)
        })
    }
}

/// A shard's replay: applies its records in LSN order. Stops at the first
/// record that does not decode, skips what the checkpoint holds, refuses a
/// gap in the shard's sequence.
struct ShardReplay<'a> {
    shard: u32,
    core: &'a mut ShardCore,
    seq: &'a mut u64,
    storage: &'a Storage,
    /// Orders to make room for before the first record (on this thread: a
    /// table that must grow is rehashed here, beside the other shards).
    reserve: usize,
    replayed: u64,
}

impl ShardReplay<'_> {
    fn apply(&mut self, lsn: Lsn, body: &[u8]) -> Result<(), RecoveryError> {
        let entry =
            decode_log_entry(body).map_err(|source| RecoveryError::Decode { lsn, source })?;
        let inconsistent = |reason: String| RecoveryError::Inconsistent { lsn, reason };
        if entry.shard != self.shard {
            return Err(inconsistent(format!(
                "handed to shard {} but names shard {}",
                self.shard, entry.shard
            )));
        }
        if entry.seq <= *self.seq {
            return Ok(()); // Already in the checkpoint.
        }
        if entry.seq != *self.seq + 1 {
            return Err(inconsistent(format!(
                "shard {} jumps from event {} to {}",
                self.shard, self.seq, entry.seq
            )));
        }
        self.core
            .apply(&entry.event)
            .map_err(|InconsistentEvent(reason)| inconsistent(reason))?;
        // Orders that leave memory in replay are archived again: the node that
        // logged their leaving may have stopped before its archive write was
        // durable (a standby archives after it writes the record).
        let retired = self.core.take_retired();
        self.core.take_forgotten();
        archive_orders(self.storage, &retired)?;
        *self.seq = entry.seq;
        self.replayed += 1;
        Ok(())
    }

    /// Applies every batch received until the reader hangs up or a record fails.
    fn run(mut self, batches: Receiver<RecordBatch>) -> Result<u64, RecoveryError> {
        let live_max = self.core.config().orders_max;
        self.core.reserve_orders(self.reserve.min(live_max));
        for batch in batches {
            for (lsn, body) in batch.iter() {
                self.apply(lsn, body)?;
            }
        }
        Ok(self.replayed)
    }
}

/// Why the log reader stopped early.
enum ReadStop {
    Failed(RecoveryError),
    /// A shard's replay thread stopped on an error of its own.
    ShardStopped,
}

impl From<StorageError> for ReadStop {
    fn from(error: StorageError) -> ReadStop {
        ReadStop::Failed(error.into())
    }
}

/// Replays the log after `covers_lsn` into `cores`: this thread reads and
/// checks the records and hands each to its shard's thread. Returns the last
/// LSN read and the records applied.
fn replay(
    storage: &Storage,
    cores: &mut [ShardCore],
    seqs: &mut [u64],
    covers_lsn: Lsn,
) -> Result<(Lsn, u64), RecoveryError> {
    let shard_count = cores.len();
    // Each record of the log after the checkpoint adds at most one order;
    // shards share them about evenly.
    let tail_records = storage
        .last_lsn()?
        .map_or(0, |last| last.saturating_sub(covers_lsn));
    let reserve = usize::try_from(tail_records / shard_count.max(1) as u64)
        .unwrap_or(usize::MAX)
        .min(REPLAY_RESERVE_ORDERS_MAX);
    let mut last_lsn = covers_lsn;
    let (read, applied): (Result<(), ReadStop>, Vec<Result<u64, RecoveryError>>) =
        std::thread::scope(|scope| {
            let mut senders: Vec<SyncSender<RecordBatch>> = Vec::with_capacity(shard_count);
            let mut handles = Vec::with_capacity(shard_count);
            for (shard, (core, seq)) in cores.iter_mut().zip(seqs.iter_mut()).enumerate() {
                let (sender, receiver) = sync_channel(REPLAY_BATCHES_QUEUED_MAX);
                senders.push(sender);
                let replay = ShardReplay {
                    shard: shard as u32,
                    core,
                    seq,
                    storage,
                    reserve,
                    replayed: 0,
                };
                handles.push(scope.spawn(move || replay.run(receiver)));
            }
            let mut batches: Vec<RecordBatch> =
                (0..shard_count).map(|_| RecordBatch::default()).collect();
            let mut read = storage.read_log_after::<ReadStop>(covers_lsn, |record| {
                let lsn = record.lsn;
                let shard = log_entry_shard(&record.body)
                    .map_err(|source| ReadStop::Failed(RecoveryError::Decode { lsn, source }))?
                    as usize;
                let batch = batches.get_mut(shard).ok_or_else(|| {
                    ReadStop::Failed(RecoveryError::Inconsistent {
                        lsn,
                        reason: format!("names shard {shard} of only {shard_count}"),
                    })
                })?;
                last_lsn = lsn;
                batch.push(lsn, &record.body);
                if batch.records.len() == REPLAY_BATCH_RECORDS {
                    senders[shard]
                        .send(std::mem::take(batch))
                        .map_err(|_| ReadStop::ShardStopped)?;
                }
                Ok(())
            });
            if read.is_ok() {
                for (sender, batch) in senders.iter().zip(batches) {
                    if !batch.records.is_empty() && sender.send(batch).is_err() {
                        read = Err(ReadStop::ShardStopped);
                    }
                }
            }
            drop(senders);
            let applied = handles
                .into_iter()
                .map(|handle| handle.join().expect("replaying a shard panicked"))
                .collect();
            (read, applied)
        });
    let mut errors = Vec::new();
    let mut replayed = 0;
    for result in applied {
        match result {
            Ok(count) => replayed += count,
            Err(error) => errors.push(error),
        }
    }
    match read {
        Ok(()) => {}
        Err(ReadStop::Failed(error)) => errors.push(error),
        Err(ReadStop::ShardStopped) => assert!(
            !errors.is_empty(),
            "a shard's replay stops early only on an error"
        ),
    }
    // Of several errors, the one at the lowest LSN: the one a replay in LSN
    // order would have stopped at.
    if let Some(error) = errors
        .into_iter()
        .min_by_key(|error| error.lsn().unwrap_or(Lsn::MAX))
    {
        return Err(error);
    }
    Ok((last_lsn, replayed))
}

pub fn recover(storage: &Storage, configs: Vec<ShardConfig>) -> Result<Recovered, RecoveryError> {
    let started = Instant::now();
    let indexed = crate::customer_archive::index_archive_once(storage)?;
    if indexed > 0 {
        tracing::info!(
            orders = indexed,
            "indexed the archived orders by customer (once, for a data dir archived before the index)"
        );
    }
    let shard_count = configs.len();
    let (mut cores, mut seqs, covers_lsn) = match storage.read_checkpoint()? {
        None => (
            configs.into_iter().map(ShardCore::new).collect(),
            vec![0; shard_count],
            0,
        ),
        Some(checkpoint) => {
            let parts = group_by_shard(checkpoint.chunks, shard_count)?;
            let (cores, seqs) = restore_shards(configs, parts)?;
            (cores, seqs, checkpoint.covers_lsn)
        }
    };
    let checkpoint_elapsed = started.elapsed();
    let (last_lsn, replayed_records) = replay(storage, &mut cores, &mut seqs, covers_lsn)?;
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
pub fn verify(cores: &[ShardCore]) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for core in cores {
            scope.spawn(|| core.assert_consistent());
        }
    });
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_chunk;
    use crate::domain::{
        Command, Event, PutSku, RequestedSettings, Retention, SetWaitingRoom, SkuId, Timestamp,
        WaitingRoom,
    };
    use crate::shard_actor::{encode_image, shard_image};

    fn config() -> ShardConfig {
        ShardConfig {
            shard: 0,
            epoch: 1,
            orders_max: 100,
            expiry_batch_max: 100,
            retention: Retention::default(),
        }
    }

    /// A SKU's waiting room is replicated state: a replay of the shard's
    /// events and a rebuild from its checkpoint both hold it (and its
    /// removal), so a restart, a standby and a restored backup all put the
    /// SKU behind its room.
    #[test]
    fn replay_and_a_checkpoint_rebuild_the_waiting_rooms() {
        let now = Timestamp(1_000);
        let mut core = ShardCore::new(config());
        let mut log: Vec<Event> = Vec::new();
        let mut run = |core: &mut ShardCore, command: Command| {
            let execution = core.execute(command, now);
            execution.reply.unwrap();
            log.extend(execution.events);
        };
        for sku in ["A", "B"] {
            run(
                &mut core,
                Command::PutSku(
                    PutSku::parse(sku, Some(10), RequestedSettings::default()).unwrap(),
                ),
            );
        }
        let room = WaitingRoom::parse(50, 120, 1_000).unwrap();
        let a = SkuId::parse("A").unwrap();
        let b = SkuId::parse("B").unwrap();
        for (sku, room) in [(&a, Some(room)), (&b, Some(room)), (&b, None)] {
            run(
                &mut core,
                Command::SetWaitingRoom(SetWaitingRoom {
                    sku: sku.clone(),
                    room,
                }),
            );
        }
        assert_eq!(core.waiting_room(&a), Some(room));
        assert_eq!(core.waiting_room(&b), None);

        let mut replayed = ShardCore::new(config());
        for event in &log {
            replayed.apply(event).unwrap();
        }
        assert_eq!(replayed.waiting_rooms(), vec![(a.clone(), room)]);

        let chunks = encode_image(shard_image(&core, log.len() as u64));
        let mut parts = group_by_shard(chunks, 1).unwrap();
        let (rebuilt, seq) = restore_shard(config(), parts.remove(0)).unwrap();
        assert_eq!(seq, log.len() as u64);
        assert_eq!(rebuilt.waiting_rooms(), vec![(a, room)]);
        assert_eq!(rebuilt.waiting_room(&b), None);

        // A room naming a SKU the checkpoint does not hold is refused.
        let bad = [
            CheckpointChunk::ShardHeader {
                shard: 0,
                seq: 1,
                next_order_number: 1,
                skus: Vec::new(),
            },
            CheckpointChunk::WaitingRooms {
                shard: 0,
                rooms: vec![(SkuId::parse("C").unwrap(), room)],
            },
        ];
        let bad = bad.iter().map(encode_chunk).collect();
        let mut parts = group_by_shard(bad, 1).unwrap();
        assert!(restore_shard(config(), parts.remove(0)).is_err());

        // A shard's orders stored before its header are refused by name.
        let orders_first = [
            CheckpointChunk::Orders {
                shard: 0,
                orders: Vec::new(),
            },
            CheckpointChunk::ShardHeader {
                shard: 0,
                seq: 1,
                next_order_number: 1,
                skus: Vec::new(),
            },
        ];
        let error = group_by_shard(orders_first.iter().map(encode_chunk).collect(), 1)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("orders of shard 0 before its header"),
            "{error}"
        );
    }

    /// Only a SKU that exists takes a room, and setting what is set logs
    /// nothing.
    #[test]
    fn a_room_needs_its_sku_and_an_unchanged_room_logs_nothing() {
        let now = Timestamp(1_000);
        let mut core = ShardCore::new(config());
        let room = WaitingRoom::parse(1, 1, 1).unwrap();
        let set = |sku: &str| {
            Command::SetWaitingRoom(SetWaitingRoom {
                sku: SkuId::parse(sku).unwrap(),
                room: Some(room),
            })
        };
        let execution = core.execute(set("A"), now);
        assert!(matches!(
            execution.reply,
            Err(crate::domain::CoreError::UnknownSku(_))
        ));
        assert!(execution.events.is_empty());
        core.execute(
            Command::PutSku(PutSku::parse("A", Some(1), RequestedSettings::default()).unwrap()),
            now,
        )
        .reply
        .unwrap();
        assert_eq!(core.execute(set("A"), now).events.len(), 1);
        assert!(core.execute(set("A"), now).events.is_empty());
        assert!(WaitingRoom::parse(0, 1, 1).is_err());
        assert!(WaitingRoom::parse(1, 86_401, 1).is_err());
        assert!(WaitingRoom::parse(1, 1, 0).is_err());
    }
}
