//! `ShardActor`: the actix actor that owns one `ShardCore`. It reads the clock,
//! runs commands through the core, numbers the resulting events in the shard's
//! sequence and hands them to the log writer together with the reply, which the
//! writer sends once the events are durable. It decides nothing the core could.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use dashmap::DashMap;
use flashgate_storage::{Append, LogProgress, LogSender, Lsn, Storage};

use crate::cluster::Cluster;
use crate::codec::{
    encode_chunk, encode_log_entry, CheckpointChunk, LogEntry, KEYS_PER_CHUNK, ORDERS_PER_CHUNK,
};
use crate::domain::ListingPosition;
use crate::domain::{
    answer_archived, answer_archived_change, Command, CoreError, CustomerId, Event, ExpireDue,
    IdMap, IdempotencyKey, OrderId, OrderStatus, Reply, Retire, ShardCore, SkuGate, SkuId,
    Timestamp, Touched,
};
use crate::error::NodeError;
use crate::node::KeyClaim;
use crate::retire::{
    archive_orders, archived_order, archived_order_with_changes, release_forgotten,
};
pub use crate::ticket::{
    Outcome, PendingReply, ReplyTo, Response, ShardShared, Ticket, TicketKind, Woken,
};

pub enum RequestKind {
    Execute(Command),
    Order(OrderId),
    Sku(SkuId),
    Skus,
    /// Every SKU's counters and threshold, without holdings
    /// (`Outcome::Stock`): what the alert monitor reads.
    Stock,
    /// Answers once everything the shard decided so far is durable on this
    /// node (not waiting for a standby).
    Durable,
    /// Many orders of this shard, answered by one `Outcome::Orders` (one entry
    /// per id, in the order given): a batched read costs one mailbox hop per
    /// shard, not one per order.
    Orders(Vec<OrderId>),
    /// One order with its history of changes (`Outcome::History`).
    History(OrderId),
    /// The shard's frozen orders and where each moves (`Outcome::PendingMoves`).
    PendingMoves,
    /// What this shard decided for each SKU since the node started
    /// (`Outcome::Sales`, `crate::sales`): the sales report.
    Sales,
    /// Up to `limit` of a customer's orders in this shard's memory created
    /// before `before`, newest first (`Outcome::CustomerOrders`).
    CustomerOrders {
        customer: CustomerId,
        before: Option<ListingPosition>,
        limit: usize,
    },
}

/// A request to a shard. The answer goes to `reply`, never before what it
/// reflects is durable.
pub struct Request {
    pub kind: RequestKind,
    pub reply: ReplyTo,
}

/// Requests to one shard, handled in order: one message for many requests (a
/// batch frame), so a batch costs one mailbox hop.
pub struct Requests(pub Vec<Request>);

impl Message for Requests {
    type Result = ();
}

/// Serialises the shard's whole state for a checkpoint.
pub struct Snapshot;

pub struct ShardSnapshot {
    pub seq: u64,
    /// On a standby, the LSN of the last replicated batch the shard applied.
    pub applied_lsn: Lsn,
    /// The shard's state, to encode off its thread (`encode_image`).
    pub image: ShardImage,
    /// How long the shard served nothing else while its state was taken.
    pub pause: Duration,
}

/// A standby applies its share of a replicated batch. Every shard gets one per
/// batch, with or without entries, so each knows how far it has applied.
pub struct Apply {
    pub entries: Vec<LogEntry>,
    pub last_lsn: Lsn,
}

impl Message for Apply {
    type Result = ();
}

/// Replaces the shard's state with one rebuilt from storage (after a standby
/// discarded a tail or installed its primary's checkpoint).
pub struct Replace {
    pub core: ShardCore,
    pub seq: u64,
    pub applied_lsn: Lsn,
}

impl Message for Replace {
    type Result = ();
}

/// A promotion: new order ids carry `epoch`.
pub struct SetEpoch(pub u64);

impl Message for SetEpoch {
    type Result = ();
}

impl Message for Snapshot {
    type Result = ShardSnapshot;
}

pub struct ShardActor {
    core: ShardCore,
    index: u32,
    /// The shard's last event sequence number.
    seq: u64,
    applied_lsn: Lsn,
    cluster: Arc<Cluster>,
    log: LogSender<Ticket>,
    progress: Arc<LogProgress>,
    shared: Arc<ShardShared>,
    expiry_interval: Duration,
    /// Where orders that left memory are kept and read back from.
    storage: Storage,
    /// The node's idempotency claims: a key the core forgets is released here.
    claims: Arc<DashMap<(CustomerId, IdempotencyKey), KeyClaim>>,
    /// The callers' inboxes that answers sent while serving a message were
    /// left in: woken once the message is served.
    woken: Woken,
    /// The gates last published in `shared.gates`, to republish one only
    /// when what it says changes (`SkuGate::same_state`).
    published: IdMap<SkuId, SkuGate>,
    /// The waiting rooms last published in `shared.waiting_rooms`.
    published_rooms: IdMap<SkuId, (crate::domain::WaitingRoom, Option<crate::domain::Timestamp>)>,
    /// Per SKU, what this shard decided since the node started (the report).
    sales: crate::sales::SalesTally,
    /// The fault point `shard` (debug builds only): panic once `seq` passes it.
    #[cfg(debug_assertions)]
    panic_after_seq: Option<u64>,
}

impl ShardActor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: ShardCore,
        seq: u64,
        applied_lsn: Lsn,
        cluster: Arc<Cluster>,
        log: LogSender<Ticket>,
        progress: Arc<LogProgress>,
        shared: Arc<ShardShared>,
        expiry_interval: Duration,
        storage: Storage,
        claims: Arc<DashMap<(CustomerId, IdempotencyKey), KeyClaim>>,
    ) -> ShardActor {
        ShardActor {
            index: core.config().shard,
            core,
            seq,
            applied_lsn,
            cluster,
            log,
            progress,
            shared,
            expiry_interval,
            storage,
            claims,
            woken: Woken::default(),
            published: IdMap::default(),
            published_rooms: IdMap::default(),
            sales: crate::sales::SalesTally::default(),
            #[cfg(debug_assertions)]
            panic_after_seq: flashgate_storage::fault::panic_after("shard")
                .map(|after| seq + after),
        }
    }

    /// Runs a command and appends its events; the reply rides on the last one.
    fn execute(&mut self, command: Command, reply: Option<ReplyTo>) {
        // Fail-stop: once the log has failed, nothing more is decided.
        if let Some(reason) = self.progress.failure() {
            if let Some(reply) = reply {
                reply.send(Err(NodeError::StorageFailed(reason.to_owned())));
            }
            return;
        }
        // Only a primary decides; a standby's state comes from its primary's log.
        if !self.cluster.takes_writes() {
            if let Some(reply) = reply {
                reply.send(Err(NodeError::NotPrimary {
                    primary: self.cluster.primary(),
                }));
            }
            return;
        }
        let now = Timestamp::from_system_time(SystemTime::now());
        // A confirm or cancel of an order that left memory is answered from
        // the archive.
        let transition = match &command {
            Command::Confirm(confirm) => Some((OrderStatus::Confirmed, confirm.customer.clone())),
            Command::Cancel(cancel) => Some((OrderStatus::Cancelled, cancel.customer.clone())),
            Command::Ship(_) => Some((OrderStatus::Shipped, None)),
            _ => None,
        };
        let change = match &command {
            Command::ChangeOrder(change) => Some(change.customer.clone()),
            _ => None,
        };
        let execution = self.core.execute(command, now);
        // Orders that left memory are archived before the event that drops
        // them is logged, so the record's barrier makes both durable.
        if !self.archive_retired() {
            if let Some(reply) = reply {
                reply.send(Err(NodeError::StorageFailed(self.failure_reason())));
            }
            return;
        }
        let reply_result = match (execution.reply, transition) {
            (Err(CoreError::UnknownOrder(id)), None) if change.is_some() => {
                let customer = change.flatten();
                self.answer_from_archive(id, |order| {
                    answer_archived_change(order, customer.as_ref())
                })
            }
            (Err(CoreError::UnknownOrder(id)), Some((to, customer))) => {
                self.answer_from_archive(id, |order| answer_archived(order, to, customer.as_ref()))
            }
            (Ok(Reply::ArchivedOrder { id }), _) => self.answer_from_archive(id, |order| {
                Ok(Reply::Order {
                    order,
                    created: false,
                })
            }),
            (reply, _) => reply.map_err(NodeError::from),
        };
        let response = reply_result.map(Outcome::Reply);
        let mut pending = reply.map(|sender| PendingReply::new(sender, response));
        let mut changed = GateChanges::default();
        for event in &execution.events {
            changed.note(&self.core, event);
        }
        let count = execution.events.len();
        // Before the events go to the log: once they are durable the log
        // writer may send their answer at once, and a buyer who hears that a
        // unit was freed must find it offered. The gates carry the last of
        // these events' numbers, so no refusal uses them before that event is
        // answerable.
        self.publish_gates(changed, self.seq + count as u64);
        for (index, event) in execution.events.into_iter().enumerate() {
            self.count_ended(&event);
            self.sales.note(&self.core, &event);
            let reply = if index + 1 == count {
                pending.take()
            } else {
                None
            };
            if !self.append(event, reply) {
                return;
            }
        }
        if let Some(pending) = pending {
            self.respond(pending);
        }
    }

    /// Publishes the gates of the SKUs `changed` names, as the shard's state
    /// after its event `seq`.
    fn publish_gates(&mut self, changed: GateChanges, seq: u64) {
        if changed.all {
            let ids: Vec<SkuId> = self.core.skus().map(|sku| sku.id.clone()).collect();
            for id in ids {
                self.publish_gate(id, seq);
            }
        } else if let Some(id) = changed.one {
            self.publish_gate(id, seq);
        }
    }

    fn publish_gate(&mut self, id: SkuId, seq: u64) {
        let Some(sku) = self.core.sku(&id) else {
            return;
        };
        let room = self
            .core
            .waiting_room(&id)
            .map(|room| (room, sku.settings.sale_starts_at));
        let gate = SkuGate::of(sku, seq);
        if self.published_rooms.get(&id) != room.as_ref() {
            match room {
                Some(room) => {
                    self.shared.waiting_rooms.insert(id.clone(), room);
                    self.published_rooms.insert(id.clone(), room);
                }
                None => {
                    self.shared.waiting_rooms.remove(&id);
                    self.published_rooms.remove(&id);
                }
            }
        }
        if self
            .published
            .get(&id)
            .is_some_and(|published| published.same_state(&gate))
        {
            return;
        }
        self.shared.gates.insert(id.clone(), gate);
        self.published.insert(id, gate);
    }

    /// Publishes every SKU's gate afresh (a new or replaced core).
    fn publish_all_gates(&mut self) {
        self.published.clear();
        self.shared.gates.clear();
        self.published_rooms.clear();
        self.shared.waiting_rooms.clear();
        self.publish_gates(
            GateChanges {
                one: None,
                all: true,
            },
            self.seq,
        );
    }

    /// Counts a reservation this shard ended (`ShardShared::reservations_ended`):
    /// one relaxed add, no allocation.
    fn count_ended(&self, event: &Event) {
        let ended = &self.shared.reservations_ended;
        let counter = match event {
            Event::OrderConfirmed { .. } => &ended.confirmed,
            Event::OrderCancelled { .. } => &ended.cancelled,
            Event::OrderExpired { .. } => &ended.expired,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends one event with the reply that waits for it. Returns false, having
    /// failed the reply, once the log writer has stopped.
    fn append(&mut self, event: Event, reply: Option<PendingReply>) -> bool {
        self.seq += 1;
        #[cfg(debug_assertions)]
        if self.panic_after_seq.is_some_and(|after| self.seq > after) {
            panic!(
                "fault point shard: injected panic in shard {} at event {}",
                self.index, self.seq
            );
        }
        let body = encode_log_entry(&LogEntry {
            shard: self.index,
            seq: self.seq,
            event,
        });
        let ticket = Ticket {
            shard: self.index,
            seq: self.seq,
            kind: TicketKind::Record,
            reply,
        };
        // Waits while the log queue is full: back pressure that fills this
        // shard's mailbox, which callers then see as `Overloaded`.
        match self.log.append(Append {
            body: Some(body),
            ticket,
        }) {
            Ok(()) => true,
            Err(rejected) => {
                if let Some(reply) = rejected.ticket.reply {
                    reply.fail(NodeError::StorageFailed(self.failure_reason()));
                }
                false
            }
        }
    }

    /// Sends an answer that appended nothing, reflecting the shard's state
    /// through its last event: at once if that is answerable (durable, and in
    /// sync mode acknowledged by the standby), else behind its records as a
    /// marker, which waits where they wait.
    fn respond(&mut self, pending: PendingReply) {
        self.respond_when(pending, TicketKind::Answer);
    }

    /// Like `respond`, for `kind` of marker: `LocalDurable` waits for this
    /// node's disk only.
    fn respond_when(&mut self, pending: PendingReply, kind: TicketKind) {
        let reached = match kind {
            TicketKind::LocalDurable => &self.shared.durable_seq,
            _ => &self.shared.answerable_seq,
        };
        if reached.load(Ordering::Acquire) >= self.seq {
            // Woken once the whole message is served.
            pending.deliver(&mut self.woken);
            return;
        }
        let marker = Append {
            body: None,
            ticket: Ticket {
                shard: self.index,
                seq: self.seq,
                kind,
                reply: Some(pending),
            },
        };
        if let Err(rejected) = self.log.append(marker) {
            if let Some(reply) = rejected.ticket.reply {
                reply.fail(NodeError::StorageFailed(self.failure_reason()));
            }
        }
    }

    /// Archives the orders the core let go of and releases the claims of the
    /// keys it forgot. False, with the node fail-stopped, when the archive
    /// write failed: the orders are out of memory and must not be logged gone.
    fn archive_retired(&mut self) -> bool {
        release_forgotten(&self.claims, self.core.take_forgotten());
        let retired = self.core.take_retired();
        if retired.is_empty() {
            return true;
        }
        metrics::counter!("flashgate_orders_retired_total").increment(retired.len() as u64);
        match archive_orders(&self.storage, &retired) {
            Ok(()) => true,
            Err(error) => {
                let reason = format!(
                    "writing {} finished orders of shard {} to the archive failed: {error}",
                    retired.len(),
                    self.index
                );
                tracing::error!(data_dir = %self.storage.path().display(), "{reason}");
                self.progress.fail_stop(reason);
                false
            }
        }
    }

    /// Answers a command about order `id` from its archived copy: `answer`
    /// decides on it, and an order the archive lacks is unknown.
    fn answer_from_archive(
        &self,
        id: OrderId,
        answer: impl FnOnce(crate::domain::Order) -> Result<Reply, CoreError>,
    ) -> Result<Reply, NodeError> {
        match archived_order(&self.storage, &id) {
            Ok(Some(order)) => answer(order).map_err(NodeError::from),
            Ok(None) => Err(CoreError::UnknownOrder(id).into()),
            Err(error) => Err(NodeError::StorageFailed(error.to_string())),
        }
    }

    fn failure_reason(&self) -> String {
        self.progress
            .failure()
            .unwrap_or("the log writer has stopped")
            .to_owned()
    }
}

/// The SKUs whose gates an execution or an applied batch may have changed:
/// one (an order, a restock), or all of the shard's.
#[derive(Default)]
struct GateChanges {
    one: Option<SkuId>,
    all: bool,
}

impl GateChanges {
    /// Notes what `event`, already applied to `core`, touched.
    fn note(&mut self, core: &ShardCore, event: &Event) {
        if self.all {
            return;
        }
        match core.sku_touched_by(event) {
            Touched::Nothing => {}
            Touched::One(sku) => match &self.one {
                None => self.one = Some(sku.clone()),
                Some(one) if one == sku => {}
                Some(_) => self.all = true,
            },
            Touched::Any => self.all = true,
        }
    }
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.publish_all_gates();
        ctx.run_interval(self.expiry_interval, |actor, _| {
            if actor.core.next_expiry().is_none() || !actor.cluster.takes_writes() {
                return;
            }
            let before = actor.seq;
            actor.execute(Command::ExpireDue(ExpireDue), None);
            let expired = actor.seq - before;
            if expired > 0 {
                metrics::counter!("flashgate_orders_expired_total").increment(expired);
            }
        });
        ctx.run_interval(self.expiry_interval, |actor, _| {
            let now = Timestamp::from_system_time(SystemTime::now());
            let due = actor.core.next_retirement().is_some_and(|at| at <= now);
            if due && actor.cluster.takes_writes() {
                actor.execute(Command::Retire(Retire), None);
            }
        });
    }
}

impl Handler<Requests> for ShardActor {
    type Result = ();

    fn handle(&mut self, Requests(requests): Requests, _: &mut Self::Context) {
        self.shared
            .depth
            .fetch_sub(requests.len(), Ordering::AcqRel);
        self.shared.messages.fetch_add(1, Ordering::Relaxed);
        self.shared
            .requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        for request in requests {
            self.serve(request);
        }
        self.woken.wake();
    }
}

impl ShardActor {
    fn serve(&mut self, request: Request) {
        let outcome = match request.kind {
            RequestKind::Execute(command) => return self.execute(command, Some(request.reply)),
            RequestKind::Order(id) => match self.core.order(&id) {
                Some(order) => Outcome::Order(Some(order.clone())),
                None if self.core.moved_to(&id).is_some() => {
                    Outcome::Moved(self.core.moved_to(&id).expect("checked"))
                }
                None => match archived_order(&self.storage, &id) {
                    Ok(order) => Outcome::Order(order),
                    Err(error) => {
                        let error = NodeError::StorageFailed(error.to_string());
                        return self.respond(PendingReply::new(request.reply, Err(error)));
                    }
                },
            },
            RequestKind::History(id) => match self.core.order(&id) {
                Some(order) => {
                    Outcome::History(Some((order.clone(), self.core.changes_of(&id).to_vec())))
                }
                None if self.core.moved_to(&id).is_some() => {
                    Outcome::Moved(self.core.moved_to(&id).expect("checked"))
                }
                None => match archived_order_with_changes(&self.storage, &id) {
                    Ok(found) => Outcome::History(found),
                    Err(error) => {
                        let error = NodeError::StorageFailed(error.to_string());
                        return self.respond(PendingReply::new(request.reply, Err(error)));
                    }
                },
            },
            RequestKind::PendingMoves => Outcome::PendingMoves(
                self.core
                    .pending_moves()
                    .map(|(id, pending)| (*id, pending.to_shard))
                    .collect(),
            ),
            RequestKind::Sku(id) => Outcome::Sku(self.core.sku(&id).cloned()),
            RequestKind::Skus => Outcome::Skus(self.core.skus().cloned().collect()),
            RequestKind::Stock => Outcome::Stock(self.core.skus().map(|sku| sku.stock()).collect()),
            RequestKind::Sales => Outcome::Sales(self.sales.all()),
            RequestKind::CustomerOrders {
                customer,
                before,
                limit,
            } => Outcome::CustomerOrders(
                self.core
                    .customer_orders(&customer, before, limit)
                    .into_iter()
                    .cloned()
                    .collect(),
            ),
            RequestKind::Durable => {
                let pending = PendingReply::new(request.reply, Ok(Outcome::Durable));
                return self.respond_when(pending, TicketKind::LocalDurable);
            }
            RequestKind::Orders(ids) => {
                let mut orders = Vec::with_capacity(ids.len());
                let mut moved = Vec::new();
                for (index, id) in ids.iter().enumerate() {
                    if let Some(to) = self.core.moved_to(id) {
                        moved.push((index, to));
                        orders.push(None);
                        continue;
                    }
                    orders.push(match self.core.order(id) {
                        Some(order) => Some(order.clone()),
                        None => match archived_order(&self.storage, id) {
                            Ok(order) => order,
                            Err(error) => {
                                let error = NodeError::StorageFailed(error.to_string());
                                return self.respond(PendingReply::new(request.reply, Err(error)));
                            }
                        },
                    });
                }
                Outcome::Orders(orders, moved)
            }
        };
        self.respond(PendingReply::new(request.reply, Ok(outcome)));
    }
}

impl Handler<Snapshot> for ShardActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        let started = std::time::Instant::now();
        let image = shard_image(&self.core, self.seq);
        MessageResult(ShardSnapshot {
            seq: self.seq,
            applied_lsn: self.applied_lsn,
            image,
            pause: started.elapsed(),
        })
    }
}

impl Handler<Apply> for ShardActor {
    type Result = ();

    fn handle(&mut self, apply: Apply, _: &mut Self::Context) {
        if self.cluster.replica_failure().is_some() {
            return;
        }
        // A standby's gates are ready for the moment it is promoted.
        let mut changed = GateChanges::default();
        for entry in apply.entries {
            if entry.seq <= self.seq {
                continue; // Already applied (a batch sent twice after a reconnect).
            }
            if entry.seq != self.seq + 1 {
                self.cluster.set_replica_failure(format!(
                    "shard {} jumps from event {} to {}",
                    self.index, self.seq, entry.seq
                ));
                return;
            }
            if let Err(error) = self.core.apply(&entry.event) {
                self.cluster
                    .set_replica_failure(format!("shard {}: {}", self.index, error.0));
                return;
            }
            changed.note(&self.core, &entry.event);
            // Replay archives it again should this node stop before the
            // write is durable.
            if !self.archive_retired() {
                self.cluster.set_replica_failure(self.failure_reason());
                return;
            }
            self.seq = entry.seq;
        }
        self.applied_lsn = self.applied_lsn.max(apply.last_lsn);
        self.shared.set_applied(self.seq);
        self.publish_gates(changed, self.seq);
    }
}

impl Handler<Replace> for ShardActor {
    type Result = ();

    fn handle(&mut self, replace: Replace, _: &mut Self::Context) {
        self.core = replace.core;
        self.seq = replace.seq;
        self.applied_lsn = replace.applied_lsn;
        self.shared.set_applied(self.seq);
        self.publish_all_gates();
    }
}

impl Handler<SetEpoch> for ShardActor {
    type Result = ();

    fn handle(&mut self, SetEpoch(epoch): SetEpoch, _: &mut Self::Context) {
        if epoch > self.core.config().epoch {
            self.core.set_epoch(epoch);
        }
    }
}

/// The checkpoint chunks of one shard: a header, then its orders.
pub fn snapshot_chunks(core: &ShardCore, seq: u64) -> Vec<Vec<u8>> {
    encode_image(shard_image(core, seq))
}

/// One shard's state as its checkpoint chunks hold it, not yet encoded:
/// taken on the shard's thread (the orders are copied, their texts shared,
/// so it costs a fraction of the encoding), encoded anywhere after
/// (`encode_image`), while the shard serves again.
pub struct ShardImage {
    shard: u32,
    seq: u64,
    next_order_number: u64,
    skus: Vec<crate::domain::SkuImage>,
    orders: Vec<crate::domain::Order>,
    retained: crate::domain::RetainedImage,
    changes: Vec<(crate::domain::OrderId, Vec<crate::domain::OrderChange>)>,
    moving: Vec<(crate::domain::OrderId, crate::domain::PendingMove)>,
    moved_out: Vec<(crate::domain::OrderId, u32)>,
    waiting_rooms: Vec<(SkuId, crate::domain::WaitingRoom)>,
}

/// A shard's state at `seq`, to encode later.
pub fn shard_image(core: &ShardCore, seq: u64) -> ShardImage {
    ShardImage {
        shard: core.config().shard,
        seq,
        next_order_number: core.next_order_number(),
        skus: core.sku_images(),
        orders: core.orders().cloned().collect(),
        retained: core.retained_image(),
        changes: core
            .changes()
            .map(|(id, history)| (*id, history.clone()))
            .collect(),
        moving: core
            .pending_moves()
            .map(|(id, pending)| (*id, pending.clone()))
            .collect(),
        moved_out: core.moved_out().map(|(id, to)| (*id, *to)).collect(),
        waiting_rooms: core.waiting_rooms(),
    }
}

/// The checkpoint chunks of a shard's image: a header, then its orders.
pub fn encode_image(image: ShardImage) -> Vec<Vec<u8>> {
    let ShardImage {
        shard,
        seq,
        next_order_number,
        skus,
        orders,
        retained,
        changes,
        moving,
        moved_out,
        waiting_rooms,
    } = image;
    let mut chunks = vec![encode_chunk(&CheckpointChunk::ShardHeader {
        shard,
        seq,
        next_order_number,
        skus,
    })];
    for orders in orders.chunks(ORDERS_PER_CHUNK) {
        chunks.push(encode_chunk(&CheckpointChunk::Orders {
            shard,
            orders: orders.to_vec(),
        }));
    }
    for settled in retained.settled.chunks(16) {
        chunks.push(encode_chunk(&CheckpointChunk::Settled {
            shard,
            settled: settled.to_vec(),
        }));
    }
    for keys in retained.keys.chunks(KEYS_PER_CHUNK) {
        chunks.push(encode_chunk(&CheckpointChunk::Keys {
            shard,
            keys: keys.to_vec(),
        }));
    }
    // A history is at most `CHANGES_PER_ORDER_MAX` changes.
    for changes in changes.chunks(ORDERS_PER_CHUNK / 10) {
        chunks.push(encode_chunk(&CheckpointChunk::Changes {
            shard,
            changes: changes.to_vec(),
        }));
    }
    for moving in moving.chunks(ORDERS_PER_CHUNK / 10) {
        chunks.push(encode_chunk(&CheckpointChunk::Moves {
            shard,
            moving: moving.to_vec(),
            moved_out: Vec::new(),
        }));
    }
    for moved_out in moved_out.chunks(ORDERS_PER_CHUNK) {
        chunks.push(encode_chunk(&CheckpointChunk::Moves {
            shard,
            moving: Vec::new(),
            moved_out: moved_out.to_vec(),
        }));
    }
    // Each at most about 80 bytes.
    for rooms in waiting_rooms.chunks(ORDERS_PER_CHUNK) {
        chunks.push(encode_chunk(&CheckpointChunk::WaitingRooms {
            shard,
            rooms: rooms.to_vec(),
        }));
    }
    chunks
}
