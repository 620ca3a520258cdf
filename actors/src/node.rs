//! `Node`: the running shards of one flashgate process, and the only way in.
//! It routes each request to the shard that owns it, bounds every shard's queue,
//! and answers only once what the answer reflects is durable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use dashmap::DashMap;
use flashgate_storage::{
    Completion, DurableBatch, EpochStart, LogProgress, LogWriter, Lsn, Storage, StorageError,
    WriterConfig,
};
use tokio::sync::{oneshot, watch};

use crate::cluster::{Cluster, ClusterConfig, ClusterStatus, Replication, Role};
use crate::domain::customers::{merge_listing, ListingPage, ListingPosition};
use crate::domain::{
    Cancel, Command, Confirm, CoreError, CustomerId, IdempotencyKey, Order, OrderChange, OrderId,
    PlaceOrder, PutSku, Reply, Restock, Retention, ShardConfig, Ship, Sku, SkuId, SkuStock,
    Timestamp,
};
use crate::error::NodeError;
use crate::meta::{ensure_cluster_id, read_fence};
use crate::outbox::{Holding, Outboxes};
use crate::recovery::{recover, RecoveryError};
use crate::retire::claim_key;
use crate::shard_actor::{Request, RequestKind, Requests, ShardActor, Snapshot};
use crate::ticket::{fail_tickets, Outcome, ReplyTo, Response, ShardShared, Ticket};
use crate::watchdog::DiskWatchdog;

pub(crate) const META_SHARD_COUNT: &[u8] = b"shard_count";
const META_EPOCH: &[u8] = b"epoch";
/// Most shards a node runs.
pub const SHARDS_MAX: u32 = 256;

/// How a node runs. Every limit is here.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Shards for a new data dir. An existing data dir keeps the count it was
    /// created with; asking for another is refused at start.
    pub shards: u32,
    /// Whether `shards` was asked for explicitly (then a mismatch is an error).
    pub shards_explicit: bool,
    /// Requests that may wait in one shard's mailbox; beyond it, `Overloaded`.
    pub mailbox_requests_max: usize,
    /// Most live orders (reserved, or confirmed and not yet settled) one shard
    /// holds; finished orders do not count (they leave memory, see `retention`).
    pub orders_per_shard_max: usize,
    /// How long finished orders and idempotency keys stay in a shard's memory.
    pub retention: Retention,
    /// How often shards look for expired reservations.
    pub expiry_interval: Duration,
    /// Most reservations one expiry pass expires.
    pub expiry_batch_max: usize,
    pub writer: WriterConfig,
    pub cluster: ClusterConfig,
    /// Longest one wait on the disk (a log write, an fsync) may last; past it the
    /// node fail-stops (`storage_failed`) instead of hanging with the disk.
    pub disk_stall_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            shards: 2,
            shards_explicit: false,
            mailbox_requests_max: 4_096,
            orders_per_shard_max: 20_000_000,
            retention: Retention::default(),
            expiry_interval: Duration::from_millis(250),
            expiry_batch_max: 4_096,
            writer: WriterConfig::default(),
            cluster: ClusterConfig::default(),
            disk_stall_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("data dir {path} was created with {stored} shards; start with --shards {stored} (a data dir cannot be re-sharded)")]
    ShardCount { path: String, stored: u64 },
    #[error("--shards must be between 1 and {SHARDS_MAX}, got {0}")]
    ShardsOutOfRange(u32),
}

pub(crate) struct ShardHandle {
    pub(crate) addr: Addr<ShardActor>,
    pub(crate) shared: Arc<ShardShared>,
}

/// A claim on an idempotency key. Every request with the key goes through its
/// claim; it is removed only when no request is in flight and none succeeded, so
/// a key with an order can never be claimed for a different request.
#[derive(Debug)]
pub struct KeyClaim {
    sku: SkuId,
    quantity: u32,
    in_flight: u32,
    ordered: bool,
}

impl KeyClaim {
    /// The claim of a key an order holds.
    pub(crate) fn ordered(sku: SkuId, quantity: u32) -> KeyClaim {
        KeyClaim {
            sku,
            quantity,
            in_flight: 0,
            ordered: true,
        }
    }

    /// The shard forgot the key: whether the claim can go now (no request with
    /// it in flight); else it goes when the last one ends without an order.
    pub(crate) fn forget(&mut self) -> bool {
        self.ordered = false;
        self.in_flight == 0
    }
}

/// What recovery found, for the start-up log line.
#[derive(Clone, Debug)]
pub struct StartReport {
    pub shards: u32,
    pub epoch: u64,
    pub orders: usize,
    pub skus: usize,
    pub replayed_records: u64,
    pub last_lsn: Lsn,
    pub checkpoint_elapsed: Duration,
    pub replay_elapsed: Duration,
    pub verify_elapsed: Duration,
    pub elapsed: Duration,
}

pub struct Node {
    /// This node, for the task that sends a loop turn's requests.
    this: std::sync::Weak<Node>,
    pub(crate) shards: Vec<ShardHandle>,
    /// Requests held until their thread's loop turn ends (`outbox.rs`).
    outboxes: Outboxes,
    /// Claims on idempotency keys, so a key reused for another SKU (and
    /// so another shard) is caught. The owning shard does the actual dedup.
    pub(crate) idempotency: Arc<DashMap<(CustomerId, IdempotencyKey), KeyClaim>>,
    pub(crate) storage: Storage,
    pub(crate) progress: Arc<LogProgress>,
    pub(crate) config: NodeConfig,
    pub(crate) cluster: Arc<Cluster>,
    /// Set once the disk watchdog fail-stopped the node; wakes every reply
    /// waiting on a write that may never return.
    failed: Arc<watch::Sender<bool>>,
    /// Orders refused from their shard's published gate, by code.
    edge_refusals: EdgeRefusals,
    /// The archiver's progress, when the log is archived: checkpoints keep
    /// the log it has not archived yet (`archiver.rs`).
    archive: std::sync::OnceLock<Arc<crate::archiver::ArchiveProgress>>,
    /// The events publisher's progress, when events are published:
    /// checkpoints keep the log it has not published (`log_hold.rs`).
    events: std::sync::OnceLock<Arc<crate::log_hold::LogHold>>,
}

/// `flashgate_orders_refused_at_edge_total{code}`: orders answered from a
/// shard's published gate (`domain::gate`) without a round trip to it.
struct EdgeRefusals {
    sold_out: metrics::Counter,
    sale_not_open: metrics::Counter,
}

impl EdgeRefusals {
    fn new() -> EdgeRefusals {
        let counter = |code: &'static str| metrics::counter!("flashgate_orders_refused_at_edge_total", "code" => code);
        EdgeRefusals {
            sold_out: counter("sold_out"),
            sale_not_open: counter("sale_not_open"),
        }
    }

    fn count(&self, refusal: &CoreError) {
        match refusal {
            CoreError::SoldOut(_) => self.sold_out.increment(1),
            CoreError::SaleNotOpen { .. } => self.sale_not_open.increment(1),
            _ => {}
        }
    }
}

/// What must be stopped, in order, when the node shuts down.
pub struct NodeRuntime {
    arbiters: Vec<Arbiter>,
    writer: LogWriter<Ticket>,
    watchdog: DiskWatchdog,
}

/// Runs on the log writer thread: hands each durable batch to the cluster,
/// which records each shard's durable progress and sends the replies that may
/// be sent (in sync mode, once the standby acknowledged them).
struct Notifier {
    cluster: Arc<Cluster>,
}

impl Completion<Ticket> for Notifier {
    fn durable(&mut self, tickets: &mut Vec<Ticket>, last_lsn: Lsn) {
        self.cluster.on_durable(tickets, last_lsn);
    }

    fn failed(&mut self, error: &StorageError, tickets: &mut Vec<Ticket>) {
        fail_tickets(
            std::mem::take(tickets),
            &NodeError::StorageFailed(error.to_string()),
        );
    }

    fn wants_entries(&self) -> bool {
        self.cluster.wants_entries()
    }

    fn entries_durable(&mut self, batch: DurableBatch) {
        self.cluster.entries_durable(batch);
    }
}

impl Node {
    /// Recovers the data dir and starts the log writer and one actor per shard,
    /// each on its own arbiter. Must run inside an actix system.
    pub fn start(
        storage: Storage,
        config: NodeConfig,
    ) -> Result<(Arc<Node>, NodeRuntime, StartReport), StartError> {
        let started = Instant::now();
        if config.shards == 0 || config.shards > SHARDS_MAX {
            return Err(StartError::ShardsOutOfRange(config.shards));
        }
        let shards = match storage.meta_u64(META_SHARD_COUNT)? {
            Some(stored) if config.shards_explicit && stored != u64::from(config.shards) => {
                return Err(StartError::ShardCount {
                    path: storage.path().display().to_string(),
                    stored,
                })
            }
            Some(stored) => u32::try_from(stored)
                .ok()
                .filter(|count| (1..=SHARDS_MAX).contains(count))
                .ok_or(StartError::ShardsOutOfRange(u32::MAX))?,
            None => {
                storage.set_meta_u64(META_SHARD_COUNT, u64::from(config.shards))?;
                config.shards
            }
        };
        if storage.epoch_history()?.is_empty() {
            // A new data dir (or one from before epoch histories): its log so
            // far belongs to its current epoch.
            let epoch = storage.meta_u64(META_EPOCH)?.unwrap_or(1).max(1);
            storage.set_epoch_history(
                &[EpochStart {
                    epoch,
                    first_lsn: 1,
                }],
                epoch,
            )?;
        }
        let epoch = storage.epoch()?;
        ensure_cluster_id(&storage)?;
        let fenced = read_fence(&storage)?.filter(|(fenced_epoch, _)| *fenced_epoch > epoch);
        let shard_configs = (0..shards)
            .map(|shard| ShardConfig {
                shard,
                epoch,
                orders_max: config.orders_per_shard_max,
                expiry_batch_max: config.expiry_batch_max,
                retention: config.retention.clone(),
            })
            .collect();
        let recovered = recover(&storage, shard_configs)?;
        let verify_elapsed = crate::recovery::verify(&recovered.cores);
        let report = StartReport {
            shards,
            epoch,
            orders: recovered.cores.iter().map(|core| core.order_count()).sum(),
            skus: recovered.cores.iter().map(|core| core.skus().count()).sum(),
            replayed_records: recovered.replayed_records,
            last_lsn: recovered.last_lsn,
            checkpoint_elapsed: recovered.checkpoint_elapsed,
            replay_elapsed: recovered.replay_elapsed,
            verify_elapsed,
            elapsed: started.elapsed(),
        };

        let mut cluster_config = config.cluster.clone();
        if fenced.is_some() && cluster_config.role == Role::Primary {
            cluster_config.role = Role::Fenced;
        }
        // A sync primary does not know what its standby holds of the log it
        // recovered (records refused for want of the standby are durable
        // here): nothing is answerable until the standby acknowledges it.
        let gated_from_start =
            cluster_config.role == Role::Primary && cluster_config.replication == Replication::Sync;
        let shared: Vec<Arc<ShardShared>> = recovered
            .seqs
            .iter()
            .map(|&seq| {
                let answerable = if gated_from_start { 0 } else { seq };
                Arc::new(ShardShared::new(seq, answerable))
            })
            .collect();
        let cluster = Arc::new(Cluster::new(cluster_config, epoch, shared.clone()));
        cluster.set_role(cluster.role());
        cluster.set_epoch(epoch);
        if let Some((fenced_epoch, primary)) = fenced {
            tracing::warn!(fenced_epoch, primary = %primary.http, "this node was fenced by a newer primary; it takes no orders");
            cluster.set_primary(Some(primary));
        }
        let notifier = Notifier {
            cluster: Arc::clone(&cluster),
        };
        let writer = LogWriter::start(
            storage.clone(),
            config.writer.clone(),
            epoch,
            recovered.last_lsn,
            notifier,
        );
        let progress = Arc::clone(writer.progress());
        let failed = Arc::new(watch::Sender::new(false));
        let watchdog = DiskWatchdog::start(
            storage.clone(),
            Arc::clone(&progress),
            Arc::clone(&failed),
            config.disk_stall_timeout,
        );
        let mut arbiters = Vec::with_capacity(shards as usize);
        let mut handles = Vec::with_capacity(shards as usize);
        let idempotency = Arc::new(DashMap::new());
        for ((core, seq), shared) in recovered.cores.into_iter().zip(recovered.seqs).zip(shared) {
            for ((customer, key), entry) in core.idempotency_keys() {
                claim_key(&idempotency, customer, key, entry);
            }
            let arbiter = Arbiter::new();
            let actor = ShardActor::new(
                core,
                seq,
                recovered.last_lsn,
                Arc::clone(&cluster),
                writer.sender(),
                Arc::clone(&progress),
                Arc::clone(&shared),
                config.expiry_interval,
                storage.clone(),
                Arc::clone(&idempotency),
            );
            // Snapshots bypass the request limit, so leave them room.
            let mailbox = config.mailbox_requests_max + 16;
            let addr = ShardActor::start_in_arbiter(&arbiter.handle(), move |ctx| {
                ctx.set_mailbox_capacity(mailbox);
                actor
            });
            arbiters.push(arbiter);
            handles.push(ShardHandle { addr, shared });
        }
        let node = Arc::new_cyclic(|this| Node {
            this: this.clone(),
            outboxes: Outboxes::new(handles.len()),
            shards: handles,
            idempotency,
            storage,
            progress,
            config,
            cluster,
            failed,
            edge_refusals: EdgeRefusals::new(),
            archive: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
        });
        let runtime = NodeRuntime {
            arbiters,
            writer,
            watchdog,
        };
        Ok((node, runtime, report))
    }

    /// From now on, checkpoints keep the log the archiver has not archived.
    pub fn keep_log_for(&self, archive: Arc<crate::archiver::ArchiveProgress>) {
        let _ = self.archive.set(archive);
    }

    /// From now on, checkpoints keep the log the events publisher has not
    /// published (up to its retention).
    pub fn keep_log_for_events(&self, hold: Arc<crate::log_hold::LogHold>) {
        let _ = self.events.set(hold);
    }

    /// How far the events publisher is behind this node's durable log, in
    /// records, the records the log keeps for it, and the gaps it found;
    /// `None` without one.
    pub fn events_lag(&self) -> Option<(u64, u64, u64)> {
        let hold = self.events.get()?;
        Some((
            hold.lag(self.progress.durable_lsn()),
            hold.retention_records_max.load(Ordering::Acquire),
            hold.gaps.load(Ordering::Acquire),
        ))
    }

    /// How far the archive is behind this node's durable log, in records,
    /// and the records the log keeps for it; `None` without an archive.
    pub fn archive_lag(&self) -> Option<(u64, u64)> {
        let archive = self.archive.get()?;
        let archived = archive.archived_lsn.load(Ordering::Acquire);
        let retention = archive.retention_records_max.load(Ordering::Acquire);
        Some((
            self.progress.durable_lsn().saturating_sub(archived),
            retention,
        ))
    }

    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    pub fn epoch(&self) -> u64 {
        self.cluster.epoch()
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The node's place in its cluster, for `/v1/cluster` and metrics.
    pub fn cluster_status(&self) -> ClusterStatus {
        self.cluster
            .status(self.progress.appended_lsn(), self.progress.durable_lsn())
    }

    pub fn progress(&self) -> &LogProgress {
        &self.progress
    }

    /// Requests waiting for each shard right now.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.shared.depth.load(Ordering::Acquire))
            .collect()
    }

    /// For each shard, the mailbox messages it has taken and the requests in
    /// them, since the node started.
    pub fn shard_traffic(&self) -> Vec<(u64, u64)> {
        self.shards
            .iter()
            .map(|shard| {
                (
                    shard.shared.messages.load(Ordering::Relaxed),
                    shard.shared.requests.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Why the node stopped taking writes, once it has.
    pub fn storage_failure(&self) -> Option<&str> {
        self.progress.failure()
    }

    pub fn shard_of(&self, sku: &SkuId) -> u32 {
        (sku.stable_hash() % self.shards.len() as u64) as u32
    }

    /// Sends a request to a shard and waits for its answer, which comes only once
    /// what it reflects is durable. A full mailbox is `Overloaded` at once.
    pub(crate) async fn ask(&self, shard: u32, kind: RequestKind) -> Result<Outcome, NodeError> {
        let (sender, answer) = oneshot::channel();
        let reply = ReplyTo::new(sender, self.outboxes.inbox());
        self.submit(shard, Request { kind, reply })?;
        self.answer(answer).await
    }

    /// Queues one request for a shard: on an event-loop thread it travels
    /// with the other requests this loop turn makes of the shard, as one
    /// message (`outbox.rs`). A full queue is `Overloaded` at once.
    fn submit(&self, shard: u32, request: Request) -> Result<(), NodeError> {
        self.admit(shard, 1)?;
        match self.outboxes.hold(shard, request) {
            Holding::Queued => {}
            Holding::First(turn, outbox) => {
                let this = self.this.clone();
                turn.spawn(async move {
                    if let Some(node) = this.upgrade() {
                        for (shard, requests) in outbox.take() {
                            node.deliver(shard, requests);
                        }
                    }
                });
            }
            Holding::Direct(request) => self.deliver(shard, vec![request]),
        }
        Ok(())
    }

    /// Waits for a shard's answer, or until the node fail-stops: a reply that
    /// waits on a stuck disk is refused then, never left hanging.
    async fn answer(&self, answer: oneshot::Receiver<Response>) -> Response {
        let mut failed = self.failed.subscribe();
        tokio::select! {
            // An answer already there was durable when it was sent.
            biased;
            answer = answer => match answer {
                Ok(response) => response,
                Err(_) => Err(self.stopped_error()),
            },
            _ = failed.wait_for(|failed| *failed) => Err(self.stopped_error()),
        }
    }

    /// Queues requests for a shard, or refuses them all when its queue is full.
    fn send(&self, shard: u32, requests: Vec<Request>) -> Result<(), NodeError> {
        self.admit(shard, requests.len())?;
        self.deliver(shard, requests);
        Ok(())
    }

    /// Counts `count` requests into a shard's queue, or refuses them all when
    /// it is full.
    fn admit(&self, shard: u32, count: usize) -> Result<(), NodeError> {
        let handle = &self.shards[shard as usize];
        let depth = handle.shared.depth.fetch_add(count, Ordering::AcqRel);
        if depth >= self.config.mailbox_requests_max {
            handle.shared.depth.fetch_sub(count, Ordering::AcqRel);
            metrics::counter!("flashgate_shard_overloaded_total").increment(count as u64);
            return Err(NodeError::Overloaded { shard, depth });
        }
        Ok(())
    }

    /// Sends admitted requests to their shard as one message; once the shard
    /// has stopped, answers them `shutting_down`.
    fn deliver(&self, shard: u32, requests: Vec<Request>) {
        let handle = &self.shards[shard as usize];
        let count = requests.len();
        // `depth` keeps the mailbox (counted in messages) below its capacity,
        // so this never parks.
        if let Err(error) = handle.addr.try_send(Requests(requests)) {
            handle.shared.depth.fetch_sub(count, Ordering::AcqRel);
            let Requests(requests) = match error {
                SendError::Full(requests) | SendError::Closed(requests) => requests,
            };
            for request in requests {
                request.reply.send(Err(NodeError::ShuttingDown));
            }
        }
    }

    /// Why a reply was dropped unsent: the log writer or the shard stopped.
    fn stopped_error(&self) -> NodeError {
        match self.progress.failure() {
            Some(reason) => NodeError::StorageFailed(reason.to_owned()),
            None => NodeError::ShuttingDown,
        }
    }

    pub(crate) async fn execute(&self, shard: u32, command: Command) -> Result<Reply, NodeError> {
        match self.ask(shard, RequestKind::Execute(command)).await? {
            Outcome::Reply(reply) => Ok(reply),
            other => unreachable!("a command answered {other:?}"),
        }
    }

    /// Reserves stock. Returns the order and whether it was created (false for an
    /// idempotent retry); returns only once the order is durable.
    pub async fn place_order(&self, command: PlaceOrder) -> Result<(Order, bool), NodeError> {
        self.cluster.check_writable()?;
        let (key, sole) = self.claim(&command)?;
        let shard = self.shard_of(&command.sku);
        if let Some(refusal) = sole
            .then(|| self.refusal_at_edge(shard, &command))
            .flatten()
        {
            let result = Err(refusal);
            self.release(key, &result);
            return result;
        }
        // If this future is dropped while waiting (the client went away), the
        // claim is never released and the key stays claimed: the safe side,
        // since the shard may still create the order.
        let result = self
            .execute(shard, Command::PlaceOrder(command))
            .await
            .map(placed);
        self.release(key, &result);
        result
    }

    /// Reserves stock for many orders at once, sending one message per shard.
    /// Answers in the order given; each as `place_order` would answer it.
    pub async fn place_orders(
        &self,
        commands: Vec<PlaceOrder>,
    ) -> Vec<Result<(Order, bool), NodeError>> {
        let count = commands.len();
        if let Err(error) = self.cluster.check_writable() {
            return (0..count).map(|_| Err(error.clone())).collect();
        }
        let mut results: Vec<Option<Result<(Order, bool), NodeError>>> =
            (0..count).map(|_| None).collect();
        let mut keys = Vec::with_capacity(count);
        let mut per_shard: Vec<(Vec<usize>, Vec<Request>)> = (0..self.shards.len())
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        let mut answers = Vec::with_capacity(count);
        let inbox = self.outboxes.inbox();
        for (index, command) in commands.into_iter().enumerate() {
            let shard = self.shard_of(&command.sku);
            match self.claim(&command) {
                Ok((key, sole)) => {
                    keys.push(key);
                    if let Some(refusal) = sole
                        .then(|| self.refusal_at_edge(shard, &command))
                        .flatten()
                    {
                        results[index] = Some(Err(refusal));
                        continue;
                    }
                }
                Err(error) => {
                    keys.push(None);
                    results[index] = Some(Err(error));
                    continue;
                }
            }
            let (sender, answer) = oneshot::channel();
            let (indexes, requests) = &mut per_shard[shard as usize];
            indexes.push(index);
            requests.push(Request {
                kind: RequestKind::Execute(Command::PlaceOrder(command)),
                reply: ReplyTo::new(sender, inbox.clone()),
            });
            answers.push((index, answer));
        }
        for (shard, (indexes, requests)) in per_shard.into_iter().enumerate() {
            if requests.is_empty() {
                continue;
            }
            if let Err(error) = self.send(shard as u32, requests) {
                for index in indexes {
                    results[index] = Some(Err(error.clone()));
                }
            }
        }
        for (index, answer) in answers {
            if results[index].is_some() {
                continue; // Its shard refused the batch.
            }
            let result = self.answer(answer).await.map(|outcome| match outcome {
                Outcome::Reply(reply) => placed(reply),
                other => unreachable!("an order answered {other:?}"),
            });
            results[index] = Some(result);
        }
        let results: Vec<_> = results
            .into_iter()
            .map(|result| result.expect("every order was answered"))
            .collect();
        for (key, result) in keys.into_iter().zip(&results) {
            self.release(key, result);
        }
        results
    }

    /// Whether `sku` is sold out as its shard last published it (`None`: an
    /// unknown SKU, or nothing published yet). It may lag the shard by the
    /// moment a publication takes; the waiting room reads it to stop and
    /// resume admissions, never to refuse an order.
    pub fn sold_out_published(&self, sku: &SkuId) -> Option<bool> {
        let shard = self.shard_of(sku);
        let gate = *self.shards[shard as usize].shared.gates.get(sku)?;
        Some(gate.sold_out)
    }

    /// The refusal `command`'s shard publishes for it (sold out, sale not
    /// open) once what it reflects is answerable: no round trip to the shard
    /// and no wait for the log (`domain::gate` has the rules). `None`: ask
    /// the shard. Only for an order whose key no other request or order holds.
    fn refusal_at_edge(&self, shard: u32, command: &PlaceOrder) -> Option<NodeError> {
        let shared = &self.shards[shard as usize].shared;
        let gate = *shared.gates.get(&command.sku)?;
        // Fail-stopped, the shard answers `storage_failed`.
        if !gate.may_refuse() || self.progress.failure().is_some() {
            return None;
        }
        let answerable = shared.answerable_seq.load(Ordering::Acquire);
        let now = Timestamp::from_system_time(SystemTime::now());
        let refusal = gate.refusal(&command.sku, command.quantity, now, answerable)?;
        self.edge_refusals.count(&refusal);
        Some(refusal.into())
    }

    /// Claims an order's idempotency key, or refuses a key first used for a
    /// different request. `None` when the order has no key. The flag says
    /// whether the order may be answered at the edge: it has no key, or no
    /// other request and no order holds its key (a retry of an order that
    /// exists must reach the shard, which answers with the order).
    fn claim(&self, command: &PlaceOrder) -> Result<(Option<ClaimKey>, bool), NodeError> {
        let Some(key) = &command.idempotency_key else {
            return Ok((None, true));
        };
        let key = (command.customer.clone(), key.clone());
        let mut claim = self
            .idempotency
            .entry(key.clone())
            .or_insert_with(|| KeyClaim {
                sku: command.sku.clone(),
                quantity: command.quantity,
                in_flight: 0,
                ordered: false,
            });
        if claim.sku != command.sku || claim.quantity != command.quantity {
            return Err(CoreError::IdempotencyKeyReused.into());
        }
        claim.in_flight += 1;
        let sole = claim.in_flight == 1 && !claim.ordered;
        Ok((Some(key), sole))
    }

    /// Ends one request's claim. A refused order frees its key, so a corrected
    /// retry may use it and refusals in a sold-out sale hold no memory.
    fn release(&self, key: Option<ClaimKey>, result: &Result<(Order, bool), NodeError>) {
        let Some(key) = key else { return };
        if let dashmap::Entry::Occupied(mut entry) = self.idempotency.entry(key) {
            let claim = entry.get_mut();
            claim.in_flight -= 1;
            claim.ordered |= result.is_ok();
            if claim.in_flight == 0 && !claim.ordered {
                entry.remove();
            }
        }
    }

    /// Confirms order `id`; with `customer`, only if it is theirs (another's
    /// is `UnknownOrder`).
    pub async fn confirm(
        &self,
        id: OrderId,
        customer: Option<CustomerId>,
    ) -> Result<Order, NodeError> {
        self.cluster.check_writable()?;
        order_of(
            self.execute_on_order(id, || {
                Command::Confirm(Confirm {
                    id,
                    customer: customer.clone(),
                })
            })
            .await?,
        )
    }

    /// Cancels order `id`; with `customer`, only if it is theirs (another's is
    /// `UnknownOrder`).
    pub async fn cancel(
        &self,
        id: OrderId,
        customer: Option<CustomerId>,
    ) -> Result<Order, NodeError> {
        self.cluster.check_writable()?;
        order_of(
            self.execute_on_order(id, || {
                Command::Cancel(Cancel {
                    id,
                    customer: customer.clone(),
                })
            })
            .await?,
        )
    }

    /// Ships order `id` (confirmed → shipped: final). A fulfilment call, never
    /// a buyer's.
    pub async fn ship(&self, id: OrderId) -> Result<Order, NodeError> {
        self.cluster.check_writable()?;
        order_of(
            self.execute_on_order(id, || Command::Ship(Ship { id }))
                .await?,
        )
    }

    /// Order `id` with its changes, oldest first; with `customer`, only if
    /// it is theirs.
    pub async fn order_history(
        &self,
        id: OrderId,
        customer: Option<&CustomerId>,
    ) -> Result<(Order, Vec<OrderChange>), NodeError> {
        let mut shard = self.owner_of(id)?;
        loop {
            match self.ask(shard, RequestKind::History(id)).await? {
                Outcome::History(Some((order, changes)))
                    if customer.is_none_or(|customer| order.customer == *customer) =>
                {
                    return Ok((order, changes))
                }
                Outcome::Moved(to) if to != shard && to < self.shard_count() => shard = to,
                _ => return Err(CoreError::UnknownOrder(id).into()),
            }
        }
    }

    /// Order `id`; with `customer`, only if it is theirs (another's is
    /// `UnknownOrder`, as if it did not exist).
    pub async fn order(
        &self,
        id: OrderId,
        customer: Option<&CustomerId>,
    ) -> Result<Order, NodeError> {
        let mut shard = self.owner_of(id)?;
        loop {
            match self.ask(shard, RequestKind::Order(id)).await? {
                Outcome::Order(Some(order))
                    if customer.is_none_or(|customer| order.customer == *customer) =>
                {
                    return Ok(order)
                }
                // An order moves once, to another shard: one more hop.
                Outcome::Moved(to) if to != shard && to < self.shard_count() => shard = to,
                _ => return Err(CoreError::UnknownOrder(id).into()),
            }
        }
    }

    /// Many orders at once, sending one message per shard (as `place_orders`
    /// does): one entry per id, in the order given, `None` where `order`
    /// would answer `UnknownOrder` (no such order, a shard this node does not
    /// have, or, with `customer`, another customer's). Callers bound the
    /// count (the front ends' `orders_read_max`). Each answer comes only once
    /// what it reflects is durable, as for `order`.
    pub async fn orders(
        &self,
        ids: &[OrderId],
        customer: Option<&CustomerId>,
    ) -> Result<Vec<Option<Order>>, NodeError> {
        let mut per_shard: Vec<(Vec<usize>, Vec<OrderId>)> = (0..self.shards.len())
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        for (index, id) in ids.iter().enumerate() {
            if let Ok(shard) = self.owner_of(*id) {
                let (indexes, shard_ids) = &mut per_shard[shard as usize];
                indexes.push(index);
                shard_ids.push(*id);
            }
        }
        let mut answers = Vec::new();
        for (shard, (indexes, shard_ids)) in per_shard.into_iter().enumerate() {
            if shard_ids.is_empty() {
                continue;
            }
            let (sender, answer) = oneshot::channel();
            let request = Request {
                kind: RequestKind::Orders(shard_ids),
                reply: ReplyTo::new(sender, self.outboxes.inbox()),
            };
            self.submit(shard as u32, request)?;
            answers.push((indexes, answer));
        }
        let mut found: Vec<Option<Order>> = (0..ids.len()).map(|_| None).collect();
        let mut moved = Vec::new();
        for (indexes, answer) in answers {
            let (orders, moved_here) = match self.answer(answer).await? {
                Outcome::Orders(orders, moved) => (orders, moved),
                other => unreachable!("a batched read answered {other:?}"),
            };
            assert_eq!(orders.len(), indexes.len(), "one answer per id");
            moved.extend(moved_here.into_iter().map(|(at, _)| indexes[at]));
            for (index, order) in indexes.into_iter().zip(orders) {
                found[index] = order
                    .filter(|order| customer.is_none_or(|customer| order.customer == *customer));
            }
        }
        // Orders that moved to another shard (rare): read one by one there.
        for index in moved {
            found[index] = match self.order(ids[index], customer).await {
                Ok(order) => Some(order),
                Err(NodeError::Rejected(CoreError::UnknownOrder(_))) => None,
                Err(error) => return Err(error),
            };
        }
        Ok(found)
    }

    /// One page of a customer's orders across every shard, newest first (by
    /// creation time, then id): at most `limit` orders created strictly
    /// before `before` (from the newest when `None`), and where the next
    /// page starts. Each shard answers from its memory (one message each, sent
    /// at once), each answer only once what it reflects is durable, as for
    /// `order`; then the archive's customer index is read, off the event
    /// loop, for orders that left memory, reading at most `scan_max` index
    /// keys (`crate::customer_archive`). Reading the archive after the shards
    /// answered means an order leaving memory meanwhile is found in one or the
    /// other; the shard of each archived order on the page is read once more,
    /// so that nothing shown is less than answerable (in sync mode, on the
    /// standby too). Callers bound `limit` and `scan_max`.
    pub async fn customer_orders(
        &self,
        customer: &CustomerId,
        before: Option<ListingPosition>,
        limit: usize,
        scan_max: usize,
    ) -> Result<ListingPage, NodeError> {
        let ask_for = limit.saturating_add(1);
        let mut answers = Vec::with_capacity(self.shards.len());
        for shard in 0..self.shard_count() {
            let (sender, answer) = oneshot::channel();
            let request = Request {
                kind: RequestKind::CustomerOrders {
                    customer: customer.clone(),
                    before,
                    limit: ask_for,
                },
                reply: ReplyTo::new(sender, self.outboxes.inbox()),
            };
            self.submit(shard, request)?;
            answers.push(answer);
        }
        let mut in_memory = Vec::new();
        for answer in answers {
            match self.answer(answer).await? {
                Outcome::CustomerOrders(orders) => in_memory.extend(orders),
                other => unreachable!("a customer's orders answered {other:?}"),
            }
        }
        let answered_ids: std::collections::HashSet<OrderId> =
            in_memory.iter().map(|order: &Order| order.id).collect();
        let storage = self.storage.clone();
        let owner = customer.clone();
        let archived = tokio::task::spawn_blocking(move || {
            crate::customer_archive::archived_customer_orders(
                &storage,
                &owner,
                before,
                ask_for,
                scan_max.max(ask_for),
            )
        })
        .await
        .map_err(|_| NodeError::ShuttingDown)?
        .map_err(|error| NodeError::StorageFailed(error.to_string()))?;
        let page = merge_listing(in_memory, archived.orders, archived.scanned_to, limit);
        // An order archived after its shard answered above may show a state
        // decided after that answer: the archive is written when the order
        // leaves memory, which with a short retention can come before its last
        // event is answerable. A read from each such order's shard, answered
        // only once everything the shard decided is answerable, covers it.
        let mut shards_to_wait_for: Vec<(u32, SkuId)> = Vec::new();
        for order in &page.orders {
            if !answered_ids.contains(&order.id) {
                let shard = self.owner_of(order.id)?;
                if !shards_to_wait_for.iter().any(|(known, _)| *known == shard) {
                    shards_to_wait_for.push((shard, order.sku.clone()));
                }
            }
        }
        for (shard, sku) in shards_to_wait_for {
            self.ask(shard, RequestKind::Sku(sku)).await?;
        }
        Ok(page)
    }

    /// Creates a SKU or changes its settings; returns it and whether it was created.
    pub async fn put_sku(&self, command: PutSku) -> Result<(Sku, bool), NodeError> {
        command.validate().map_err(CoreError::from)?;
        self.cluster.check_writable()?;
        let shard = self.shard_of(&command.sku);
        match self.execute(shard, Command::PutSku(command)).await? {
            Reply::Sku { sku, created } => Ok((sku, created)),
            other => unreachable!("put sku answered {other:?}"),
        }
    }

    /// Puts `command.room` on the SKU through its shard and the log (a
    /// write: primary only). The SKU after it.
    pub async fn set_waiting_room(
        &self,
        command: crate::domain::SetWaitingRoom,
    ) -> Result<Sku, NodeError> {
        self.cluster.check_writable()?;
        let shard = self.shard_of(&command.sku);
        match self
            .execute(shard, Command::SetWaitingRoom(command))
            .await?
        {
            Reply::Sku { sku, .. } => Ok(sku),
            other => unreachable!("set waiting room answered {other:?}"),
        }
    }

    /// `sku`'s waiting room and its sale's opening, as its shard last
    /// published them on this node (any role); `None`: no room. A map
    /// lookup, no round trip to the shard.
    pub fn waiting_room(
        &self,
        sku: &SkuId,
    ) -> Option<(crate::domain::WaitingRoom, Option<crate::domain::Timestamp>)> {
        let shard = self.shard_of(sku);
        let room = *self.shards[shard as usize].shared.waiting_rooms.get(sku)?;
        Some(room)
    }

    pub async fn restock(&self, command: Restock) -> Result<Sku, NodeError> {
        self.cluster.check_writable()?;
        let shard = self.shard_of(&command.sku);
        match self.execute(shard, Command::Restock(command)).await? {
            Reply::Sku { sku, .. } => Ok(sku),
            other => unreachable!("restock answered {other:?}"),
        }
    }

    pub async fn sku(&self, id: SkuId) -> Result<Sku, NodeError> {
        let shard = self.shard_of(&id);
        match self.ask(shard, RequestKind::Sku(id.clone())).await? {
            Outcome::Sku(Some(sku)) => Ok(sku),
            _ => Err(CoreError::UnknownSku(id).into()),
        }
    }

    /// Every SKU, sorted by id.
    pub async fn skus(&self) -> Result<Vec<Sku>, NodeError> {
        let mut all = Vec::new();
        for shard in 0..self.shard_count() {
            if let Outcome::Skus(skus) = self.ask(shard, RequestKind::Skus).await? {
                all.extend(skus);
            }
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// Every SKU's counters and low-stock threshold, sorted by id: one
    /// message per shard, answered like any read (only what is durable, and
    /// on a sync primary what the standby acknowledged).
    pub async fn stock(&self) -> Result<Vec<SkuStock>, NodeError> {
        let mut all = Vec::new();
        for shard in 0..self.shard_count() {
            if let Outcome::Stock(stock) = self.ask(shard, RequestKind::Stock).await? {
                all.extend(stock);
            }
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// Every SKU's sales figures decided on this node since it started
    /// (`crate::sales`), sorted by id: one message per shard.
    pub async fn sales(&self) -> Result<Vec<(SkuId, crate::sales::SkuSales)>, NodeError> {
        let mut all = Vec::new();
        for shard in 0..self.shard_count() {
            if let Outcome::Sales(sales) = self.ask(shard, RequestKind::Sales).await? {
                all.extend(sales);
            }
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    /// Reservations the shards ended since the node started: (confirmed,
    /// cancelled, expired unpaid). Decided on this node while it was primary.
    pub fn reservations_ended(&self) -> (u64, u64, u64) {
        self.shards.iter().fold((0, 0, 0), |(c, x, e), shard| {
            let ended = &shard.shared.reservations_ended;
            (
                c + ended.confirmed.load(Ordering::Relaxed),
                x + ended.cancelled.load(Ordering::Relaxed),
                e + ended.expired.load(Ordering::Relaxed),
            )
        })
    }

    pub(crate) fn owner_of(&self, id: OrderId) -> Result<u32, NodeError> {
        if id.shard < self.shard_count() {
            Ok(id.shard)
        } else {
            Err(CoreError::UnknownOrder(id).into())
        }
    }

    /// Writes a checkpoint of every shard and trims the log it covers. Shards pause
    /// only while they serialise their own state.
    pub async fn checkpoint(&self) -> Result<CheckpointReport, NodeError> {
        let started = Instant::now();
        let (mut covers_lsn, chunks, _) = self.snapshot_shards().await?;
        if let Some(archive) = self.archive.get() {
            // The log after what is archived stays, up to the retention
            // (a lower covered LSN is still true of the chunks).
            covers_lsn = covers_lsn.min(archive.trim_floor(self.progress.durable_lsn()));
        }
        if let Some(events) = self.events.get() {
            covers_lsn = covers_lsn.min(events.trim_floor(self.progress.durable_lsn()));
        }
        let storage = self.storage.clone();
        let chunk_count = chunks.len();
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        tokio::task::spawn_blocking(move || storage.write_checkpoint(covers_lsn, &chunks))
            .await
            .map_err(|_| NodeError::ShuttingDown)?
            .map_err(|error| NodeError::StorageFailed(error.to_string()))?;
        // The log starts after this LSN now (what a reader behind it lost).
        metrics::gauge!("flashgate_checkpoint_covers_lsn").set(covers_lsn as f64);
        Ok(CheckpointReport {
            covers_lsn,
            chunks: chunk_count,
            bytes,
            elapsed: started.elapsed(),
        })
    }

    /// Every shard's state as checkpoint chunks, and the LSN they cover: every
    /// record up to it is reflected in them (a shard may reflect later ones
    /// too; replay skips those by sequence number), and is durable. Each
    /// shard pauses only while its state is copied (`shard_image`); the
    /// longest such pause is returned. The encoding runs after, off the
    /// shards, one thread per shard.
    pub(crate) async fn snapshot_shards(&self) -> Result<(Lsn, Vec<Vec<u8>>, Duration), NodeError> {
        // Every record up to this LSN was decided before any shard is asked for
        // its snapshot below, so the snapshots contain it.
        let mut covers_lsn = self.progress.appended_lsn();
        let standby = self.cluster.role() != Role::Primary;
        let mut images = Vec::with_capacity(self.shards.len());
        let mut pause_longest = Duration::ZERO;
        for shard in 0..self.shard_count() {
            let handle = &self.shards[shard as usize];
            let snapshot = handle
                .addr
                .send(Snapshot)
                .await
                .map_err(|_| NodeError::ShuttingDown)?;
            // The checkpoint may hold only what is durable in the log.
            self.ask(shard, RequestKind::Durable).await?;
            if standby {
                // A standby's shards apply replicated batches after they are
                // written: the checkpoint covers what every shard applied.
                covers_lsn = covers_lsn.min(snapshot.applied_lsn);
            }
            pause_longest = pause_longest.max(snapshot.pause);
            images.push(snapshot.image);
        }
        let chunks = tokio::task::spawn_blocking(move || encode_images(images))
            .await
            .map_err(|_| NodeError::ShuttingDown)?;
        Ok((covers_lsn, chunks, pause_longest))
    }
}

/// The chunks of every shard's image, in shard order, encoded on up to one
/// thread per core.
fn encode_images(images: Vec<crate::shard_actor::ShardImage>) -> Vec<Vec<u8>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, images.len().max(1));
    let mut runs: Vec<Vec<(usize, crate::shard_actor::ShardImage)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (index, image) in images.into_iter().enumerate() {
        runs[index % threads].push((index, image));
    }
    let mut encoded: Vec<(usize, Vec<Vec<u8>>)> = std::thread::scope(|scope| {
        let encoders: Vec<_> = runs
            .into_iter()
            .map(|run| {
                scope.spawn(move || {
                    run.into_iter()
                        .map(|(index, image)| (index, crate::shard_actor::encode_image(image)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        encoders
            .into_iter()
            .flat_map(|encoder| encoder.join().expect("encoding shard images panicked"))
            .collect()
    });
    encoded.sort_by_key(|(index, _)| *index);
    encoded.into_iter().flat_map(|(_, chunks)| chunks).collect()
}

#[derive(Clone, Debug)]
pub struct CheckpointReport {
    pub covers_lsn: Lsn,
    pub chunks: usize,
    pub bytes: usize,
    pub elapsed: Duration,
}

impl NodeRuntime {
    /// Stops the shard actors, then lets the log writer write what is queued.
    /// Blocks: call it after the last request is answered. Waits on the disk:
    /// a caller that must not hang with a stuck disk bounds it.
    pub fn stop(self) {
        self.watchdog.stop();
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        for arbiter in self.arbiters {
            let _ = arbiter.join();
        }
        self.writer.join();
    }
}

type ClaimKey = (CustomerId, IdempotencyKey);

/// Records that an order holds its idempotency key (from recovery or
/// replication), so the key can never be claimed for another request.
pub(crate) fn claim_ordered(idempotency: &DashMap<ClaimKey, KeyClaim>, order: &Order) {
    if let Some(key) = &order.idempotency_key {
        idempotency.insert(
            (order.customer.clone(), key.clone()),
            KeyClaim::ordered(order.sku.clone(), order.quantity),
        );
    }
}

fn placed(reply: Reply) -> (Order, bool) {
    match reply {
        Reply::Order { order, created } => (order, created),
        other => unreachable!("place order answered {other:?}"),
    }
}

fn order_of(reply: Reply) -> Result<Order, NodeError> {
    match reply {
        Reply::Order { order, .. } => Ok(order),
        other => unreachable!("an order command answered {other:?}"),
    }
}
