//! `ShardActor`: the actix actor that owns one `ShardCore`. It reads the clock,
//! runs commands through the core, numbers the resulting events in the shard's
//! sequence and hands them to the log writer. It decides nothing the core could.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use flashgate_storage::{Append, LogProgress, LogSender};

use crate::codec::{encode_chunk, encode_log_entry, CheckpointChunk, LogEntry, ORDERS_PER_CHUNK};
use crate::domain::{Command, ExpireDue, Order, OrderId, Reply, ShardCore, Sku, SkuId, Timestamp};
use crate::error::NodeError;

/// A log ticket: which shard's which event a record holds.
pub type Ticket = (u32, u64);

/// The result of a message to a shard, and the shard sequence number that must be
/// durable before anyone is told: the shard's latest event when it answered, so
/// nothing a caller sees is ahead of the disk.
pub struct Answer<T> {
    pub result: Result<T, NodeError>,
    pub wait_seq: u64,
}

/// Runs a command (a write).
pub struct Execute(pub Command);

impl Message for Execute {
    type Result = Answer<Reply>;
}

/// Reads state without changing it.
pub enum Read {
    Order(OrderId),
    Sku(SkuId),
    Skus,
}

pub enum ReadReply {
    Order(Option<Order>),
    Sku(Option<Sku>),
    Skus(Vec<Sku>),
}

impl Message for Read {
    type Result = Answer<ReadReply>;
}

/// Serialises the shard's whole state for a checkpoint.
pub struct Snapshot;

pub struct ShardSnapshot {
    pub seq: u64,
    pub chunks: Vec<Vec<u8>>,
}

impl Message for Snapshot {
    type Result = ShardSnapshot;
}

pub struct ShardActor {
    core: ShardCore,
    index: u32,
    /// The shard's last event sequence number.
    seq: u64,
    log: LogSender<Ticket>,
    progress: Arc<LogProgress>,
    expiry_interval: Duration,
}

impl ShardActor {
    pub fn new(
        core: ShardCore,
        seq: u64,
        log: LogSender<Ticket>,
        progress: Arc<LogProgress>,
        expiry_interval: Duration,
    ) -> ShardActor {
        ShardActor {
            index: core.config().shard,
            core,
            seq,
            log,
            progress,
            expiry_interval,
        }
    }

    fn answer<T>(&self, result: Result<T, NodeError>) -> Answer<T> {
        Answer {
            result,
            wait_seq: self.seq,
        }
    }

    fn run(&mut self, command: Command) -> Result<Reply, NodeError> {
        // Fail-stop: once the log has failed, nothing more is decided.
        if let Some(reason) = self.progress.failure() {
            return Err(NodeError::StorageFailed(reason.to_owned()));
        }
        let now = Timestamp::from_system_time(SystemTime::now());
        let execution = self.core.execute(command, now);
        for event in execution.events {
            self.seq += 1;
            let body = encode_log_entry(&LogEntry {
                shard: self.index,
                seq: self.seq,
                event,
            });
            // Waits while the log queue is full: back pressure that fills this
            // shard's mailbox, which callers then see as `Overloaded`.
            self.log
                .append(Append {
                    body,
                    ticket: (self.index, self.seq),
                })
                .map_err(|error| NodeError::StorageFailed(error.to_string()))?;
        }
        execution.reply.map_err(NodeError::from)
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.expiry_interval, |actor, _| {
            if actor.core.next_expiry().is_none() {
                return;
            }
            match actor.run(Command::ExpireDue(ExpireDue)) {
                Ok(Reply::Expired { count }) if count > 0 => {
                    metrics::counter!("flashgate_orders_expired_total").increment(count as u64);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(shard = actor.index, %error, "expiry pass failed"),
            }
        });
    }
}

impl Handler<Execute> for ShardActor {
    type Result = MessageResult<Execute>;

    fn handle(&mut self, Execute(command): Execute, _: &mut Self::Context) -> Self::Result {
        let result = self.run(command);
        MessageResult(self.answer(result))
    }
}

impl Handler<Read> for ShardActor {
    type Result = MessageResult<Read>;

    fn handle(&mut self, read: Read, _: &mut Self::Context) -> Self::Result {
        let reply = match read {
            Read::Order(id) => ReadReply::Order(self.core.order(&id).cloned()),
            Read::Sku(id) => ReadReply::Sku(self.core.sku(&id).cloned()),
            Read::Skus => ReadReply::Skus(self.core.skus().cloned().collect()),
        };
        MessageResult(self.answer(Ok(reply)))
    }
}

impl Handler<Snapshot> for ShardActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(ShardSnapshot {
            seq: self.seq,
            chunks: snapshot_chunks(&self.core, self.seq),
        })
    }
}

/// The checkpoint chunks of one shard: a header, then its orders.
pub fn snapshot_chunks(core: &ShardCore, seq: u64) -> Vec<Vec<u8>> {
    let shard = core.config().shard;
    let mut chunks = vec![encode_chunk(&CheckpointChunk::ShardHeader {
        shard,
        seq,
        next_order_number: core.next_order_number(),
        skus: core.sku_images(),
    })];
    let mut orders = Vec::with_capacity(ORDERS_PER_CHUNK);
    for order in core.orders() {
        orders.push(order.clone());
        if orders.len() == ORDERS_PER_CHUNK {
            chunks.push(encode_chunk(&CheckpointChunk::Orders {
                shard,
                orders: std::mem::take(&mut orders),
            }));
        }
    }
    if !orders.is_empty() {
        chunks.push(encode_chunk(&CheckpointChunk::Orders { shard, orders }));
    }
    chunks
}
