//! `Cluster`: this node's place in a primary/standby pair, as the shell around
//! pure parts. It holds the role and epoch (who may take writes), the sync
//! gate (`gate.rs`: in sync mode an answer durable here waits until the
//! standby acknowledges its LSN, so no buyer hears "yes" for an order on one
//! disk only), the lag bookkeeping and what `/v1/cluster` shows (`status.rs`).
//!
//! The shell reads the clock and passes it in, sends or fails the answers the
//! gate decides about, and logs and counts changes of state. It holds no
//! sockets: the gateway's replication shell reports connections and
//! acknowledgements here and reads the state back.
//!
//! # Layout
//! - `role`: `Role`, `Replication`, `StandbyLoss`, `ClusterConfig`.
//! - `gate`: `SyncGate`, the sync gate and standby-loss rules (pure).
//! - `status`: `ClusterStatus` and `LagTracker` (pure).
//! - `ship`: `ShipBuffer`, durable batches handed from the log writer to the
//!   replication streamer in memory (pure).

mod gate;
mod role;
mod ship;
mod status;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use flashgate_storage::{DurableBatch, Lsn};
use tokio::sync::{watch, Notify};

pub use gate::{GateConfig, GateTicket, Output, Refusal, SyncGate};
pub use role::{ClusterConfig, Replication, Role, StandbyLoss};
pub use ship::{ShipBuffer, Shipment};
pub use status::{ClusterStatus, LagTracker, StandbyStatus, UpstreamStatus};

use crate::error::NodeError;
use crate::peer::PeerAddress;
use crate::ticket::{
    complete_tickets, fail_tickets, mark_durable, ShardShared, Ticket, TicketKind,
};

impl GateTicket for Ticket {
    fn is_record(&self) -> bool {
        Ticket::is_record(self)
    }
}

/// The standby's progress as a primary sees it, for those who wait on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StandbyProgress {
    pub connected: bool,
    pub acked_lsn: Lsn,
}

/// The shared cluster state of one node.
pub struct Cluster {
    config: ClusterConfig,
    /// This node's own addresses, told to peers; set once the front ends are
    /// bound (`set_advertise`).
    advertise: Mutex<PeerAddress>,
    role: AtomicU8,
    epoch: AtomicU64,
    /// Set by a primary preparing a switchover: no new writes.
    handing_over: AtomicBool,
    /// The current primary, as far as this node knows.
    primary: Mutex<Option<PeerAddress>>,
    /// The standby's addresses (its connection state is the gate's).
    standby: Mutex<StandbyStatus>,
    upstream: Mutex<UpstreamStatus>,
    gate: Mutex<SyncGate<Ticket>>,
    lag: Mutex<LagTracker>,
    /// Woken after every durable batch, for the replication streamer.
    durable: Notify,
    /// Durable batches for the replication streamer, while one ships.
    ship: Mutex<ShipBuffer>,
    /// Whether a streamer ships (read on the log writer's thread per batch,
    /// without the lock).
    shipping: AtomicBool,
    /// The standby's progress, for a handover waiting for it.
    standby_progress: watch::Sender<StandbyProgress>,
    /// Why applying the primary's log failed on this standby, once it has.
    replica_failure: OnceLock<String>,
    shards: Vec<Arc<ShardShared>>,
}

impl Cluster {
    pub(crate) fn new(config: ClusterConfig, epoch: u64, shards: Vec<Arc<ShardShared>>) -> Cluster {
        let gate = SyncGate::new(
            GateConfig {
                replication: config.replication,
                standby_loss: config.standby_loss,
                standby_timeout: config.standby_timeout,
            },
            Instant::now(),
        );
        Cluster {
            advertise: Mutex::new(PeerAddress::default()),
            role: AtomicU8::new(config.role.to_u8()),
            epoch: AtomicU64::new(epoch),
            handing_over: AtomicBool::new(false),
            primary: Mutex::new(None),
            standby: Mutex::new(StandbyStatus::default()),
            upstream: Mutex::new(UpstreamStatus::default()),
            gate: Mutex::new(gate),
            lag: Mutex::new(LagTracker::default()),
            durable: Notify::new(),
            ship: Mutex::new(ShipBuffer::new(0)),
            shipping: AtomicBool::new(false),
            standby_progress: watch::Sender::new(StandbyProgress::default()),
            replica_failure: OnceLock::new(),
            shards,
            config,
        }
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// This node's own addresses.
    pub fn advertise(&self) -> PeerAddress {
        lock(&self.advertise).clone()
    }

    /// Records the addresses the front ends actually bound (port 0 becomes a
    /// real port), before anyone is told them.
    pub fn set_advertise(&self, advertise: PeerAddress) {
        *lock(&self.advertise) = advertise.clone();
        if self.role() == Role::Primary {
            self.set_primary(Some(advertise));
        }
    }

    pub fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    pub(crate) fn set_role(&self, role: Role) {
        self.role.store(role.to_u8(), Ordering::Release);
        metrics::gauge!("flashgate_cluster_role").set(f64::from(role.to_u8()));
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn set_epoch(&self, epoch: u64) {
        self.epoch.fetch_max(epoch, Ordering::AcqRel);
        metrics::gauge!("flashgate_cluster_epoch").set(epoch as f64);
    }

    /// Whether shards may decide anything new (orders, expiries).
    pub fn takes_writes(&self) -> bool {
        self.role() == Role::Primary && !self.handing_over.load(Ordering::Acquire)
    }

    pub fn primary(&self) -> Option<PeerAddress> {
        lock(&self.primary).clone()
    }

    pub(crate) fn set_primary(&self, primary: Option<PeerAddress>) {
        *lock(&self.primary) = primary;
    }

    /// Why a write is refused right now, if it is.
    pub fn check_writable(&self) -> Result<(), NodeError> {
        if !self.takes_writes() {
            return Err(self.not_primary());
        }
        if self.gate().blocked(Instant::now()) {
            return Err(NodeError::StandbyUnavailable);
        }
        Ok(())
    }

    fn not_primary(&self) -> NodeError {
        NodeError::NotPrimary {
            primary: self.primary().filter(|_| self.role() != Role::Primary),
        }
    }

    pub fn degraded(&self) -> Option<String> {
        self.gate().degraded().map(str::to_owned)
    }

    /// Goes on without the standby, releasing every held answer.
    pub(crate) fn degrade(&self, reason: String) {
        let output = self.gate().degrade(reason);
        self.execute(output);
    }

    /// Called by the log writer with a durable batch's tickets (drained) and
    /// its last LSN. Answers that may be sent are sent; in sync mode the rest
    /// wait in the gate for the standby.
    pub(crate) fn on_durable(&self, tickets: &mut Vec<Ticket>, last_lsn: Lsn) {
        self.durable.notify_one();
        mark_durable(&self.shards, tickets);
        let local = |ticket: &Ticket| ticket.kind == TicketKind::LocalDurable;
        let gated = if tickets.iter().any(local) {
            // These wait for this node's disk only, standby or not.
            let (local, gated): (Vec<Ticket>, Vec<Ticket>) = tickets.drain(..).partition(local);
            complete_tickets(&self.shards, local);
            gated
        } else {
            // Leaves the writer its buffer's capacity for the next batch.
            let mut gated = Vec::with_capacity(tickets.len());
            gated.append(tickets);
            gated
        };
        if gated.is_empty() {
            return;
        }
        let output = self
            .gate()
            .durable(self.role(), gated, last_lsn, Instant::now());
        self.execute(output);
    }

    /// Whether the log writer should hand over its durable batches: a
    /// streamer ships them.
    pub(crate) fn wants_entries(&self) -> bool {
        self.shipping.load(Ordering::Acquire)
    }

    /// Called by the log writer with a batch that just passed its barrier,
    /// before its answers reach the gate: kept for the streamer.
    pub(crate) fn entries_durable(&self, batch: DurableBatch) {
        lock(&self.ship).push(batch);
    }

    /// A replication streamer ships from now on: keep up to `bytes_max`
    /// bytes of durable batches for it (`ShipBuffer`).
    pub fn start_shipping(&self, bytes_max: usize) {
        lock(&self.ship).start(bytes_max);
        self.shipping.store(true, Ordering::Release);
    }

    /// No streamer ships any more: keep nothing.
    pub fn stop_shipping(&self) {
        self.shipping.store(false, Ordering::Release);
        lock(&self.ship).stop();
    }

    /// The durable batches kept after `sent`, up to about `bytes_max` bytes;
    /// see `ShipBuffer::take_after`.
    pub fn take_shipment(&self, sent: Lsn, bytes_max: usize) -> Shipment {
        lock(&self.ship).take_after(sent, bytes_max)
    }

    /// Sends and fails what the gate decided, and reports its changes.
    fn execute(&self, output: Output<Ticket>) {
        if let Some(reason) = &output.degraded {
            tracing::warn!(%reason, "REPLICATION DEGRADED: acknowledging orders on this node alone");
            metrics::gauge!("flashgate_replication_degraded").set(1.0);
        }
        if output.back_in_sync {
            tracing::info!("replication back in sync: the standby has caught up");
            metrics::gauge!("flashgate_replication_degraded").set(0.0);
        }
        complete_tickets(&self.shards, output.released);
        if let Some(refusal) = output.refusal {
            let error = match refusal {
                Refusal::StandbyUnavailable => NodeError::StandbyUnavailable,
                Refusal::NotPrimary => NodeError::NotPrimary {
                    primary: self.primary(),
                },
            };
            let count = output.refused.len();
            if refusal == Refusal::StandbyUnavailable {
                tracing::warn!(count, %error, "answers refused: not acknowledged by the standby");
                metrics::counter!("flashgate_replication_refused_total").increment(count as u64);
            }
            fail_tickets(output.refused, &error);
        }
    }

    /// The standby acknowledged everything up to `lsn` as durable: send the
    /// answers that waited for it.
    pub fn standby_acked(&self, lsn: Lsn, durable_lsn: Lsn) {
        let output = self.gate().acked(lsn, durable_lsn);
        self.after_ack(output, lsn, durable_lsn);
    }

    /// What follows every acknowledgement (a connection's first included):
    /// its answers, the lag, the metric, the waiters.
    fn after_ack(&self, output: Output<Ticket>, lsn: Lsn, durable_lsn: Lsn) {
        self.execute(output);
        metrics::gauge!("flashgate_replication_acked_lsn").set(lsn as f64);
        lock(&self.lag).observe(lsn, durable_lsn, Instant::now());
        self.publish_progress();
    }

    /// The primary's durable LSN grew past what the standby acknowledged.
    pub fn note_behind(&self) {
        lock(&self.lag).note_behind(Instant::now());
    }

    pub fn acked_lsn(&self) -> Lsn {
        self.gate().acked_lsn()
    }

    /// Waits until a batch becomes durable (or a spurious wake-up).
    pub async fn durable_changed(&self) {
        self.durable.notified().await;
    }

    /// Waits until the standby acknowledged `lsn`, or went away, or
    /// `deadline` passed. Returns the standby's progress at that point.
    pub async fn wait_for_standby(
        &self,
        lsn: Lsn,
        deadline: tokio::time::Instant,
    ) -> StandbyProgress {
        let mut progress = self.standby_progress.subscribe();
        let reached = async {
            progress
                .wait_for(|now| now.acked_lsn >= lsn || !now.connected)
                .await
                .map(|now| *now)
        };
        match tokio::time::timeout_at(deadline, reached).await {
            Ok(Ok(now)) => now,
            _ => *self.standby_progress.borrow(),
        }
    }

    fn publish_progress(&self) {
        let now = {
            let gate = self.gate();
            StandbyProgress {
                connected: gate.standby_connected(),
                acked_lsn: gate.acked_lsn(),
            }
        };
        self.standby_progress.send_replace(now);
    }

    pub fn standby_connected(
        &self,
        address: String,
        node: PeerAddress,
        acked_lsn: Lsn,
        durable_lsn: Lsn,
    ) {
        {
            let mut standby = lock(&self.standby);
            standby.address = Some(address);
            standby.node = Some(node);
        }
        // Its first report counts as an acknowledgement: a standby that
        // already has everything is in sync now, not at its next write.
        let output = self
            .gate()
            .standby_connected_at(acked_lsn, durable_lsn, Instant::now());
        metrics::gauge!("flashgate_replication_standby_connected").set(1.0);
        self.after_ack(output, acked_lsn, durable_lsn);
    }

    pub fn standby_disconnected(&self) {
        let output = self.gate().standby_disconnected_at(Instant::now());
        self.execute(output);
        metrics::gauge!("flashgate_replication_standby_connected").set(0.0);
        self.publish_progress();
    }

    pub fn standby(&self) -> StandbyStatus {
        let (connected, since) = {
            let gate = self.gate();
            (gate.standby_connected(), gate.standby_since())
        };
        StandbyStatus {
            connected,
            since: Some(since),
            ..lock(&self.standby).clone()
        }
    }

    /// Applies the standby-loss rules; call a few times a second.
    pub fn tick(&self) {
        let output = self.gate().tick(self.role(), Instant::now());
        self.execute(output);
    }

    /// Refuses every held answer: this node lost its role.
    pub(crate) fn fail_held(&self) {
        let output = self.gate().refuse_all(Refusal::NotPrimary);
        self.execute(output);
    }

    pub(crate) fn set_handing_over(&self, on: bool) {
        self.handing_over.store(on, Ordering::Release);
    }

    pub fn handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Acquire)
    }

    pub fn upstream(&self) -> UpstreamStatus {
        lock(&self.upstream).clone()
    }

    /// A standby's view of its primary: connected, or heard from.
    pub fn upstream_update(&self, update: impl FnOnce(&mut UpstreamStatus)) {
        update(&mut lock(&self.upstream));
    }

    pub fn replica_failure(&self) -> Option<&str> {
        self.replica_failure.get().map(String::as_str)
    }

    pub(crate) fn set_replica_failure(&self, reason: String) {
        if self.replica_failure.set(reason.clone()).is_ok() {
            tracing::error!(%reason, "REPLICA FAILED: this standby stops following");
        }
    }

    pub(crate) fn status(&self, last_lsn: Lsn, durable_lsn: Lsn) -> ClusterStatus {
        let now = Instant::now();
        let role = self.role();
        let upstream = self.upstream();
        let standby = self.standby();
        let (acked_lsn, lag_records) = match role {
            Role::Primary => {
                let acked = self.acked_lsn();
                let lag = if standby.connected || acked > 0 {
                    durable_lsn.saturating_sub(acked)
                } else {
                    0
                };
                (acked, lag)
            }
            _ => (
                durable_lsn,
                upstream.durable_lsn.saturating_sub(durable_lsn),
            ),
        };
        ClusterStatus {
            role,
            epoch: self.epoch(),
            replication: self.config.replication,
            standby_loss: self.config.standby_loss,
            degraded: self.degraded(),
            handing_over: self.handing_over(),
            accepting_orders: self.check_writable().is_ok(),
            last_lsn,
            durable_lsn,
            acked_lsn,
            lag_records,
            lag: lock(&self.lag).lag(lag_records, now),
            primary: self.primary(),
            standby,
            upstream,
            replica_failure: self.replica_failure().map(str::to_owned),
        }
    }

    /// A standby's lag bookkeeping: the primary said its durable LSN.
    pub fn upstream_durable(&self, primary_durable: Lsn, own_durable: Lsn) {
        self.upstream_update(|upstream| {
            upstream.durable_lsn = upstream.durable_lsn.max(primary_durable);
            upstream.heard_at = Some(Instant::now());
        });
        lock(&self.lag).observe(own_durable, primary_durable, Instant::now());
    }

    fn gate(&self) -> MutexGuard<'_, SyncGate<Ticket>> {
        lock(&self.gate)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section above leaves its data consistent; a panic inside
    // one does not make it unusable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;
    use crate::ticket::{Outcome, PendingReply, ReplyTo, Response};

    fn cluster(replication: Replication, standby_loss: StandbyLoss, timeout: Duration) -> Cluster {
        let config = ClusterConfig {
            replication,
            standby_loss,
            standby_timeout: timeout,
            ..ClusterConfig::default()
        };
        Cluster::new(config, 1, vec![Arc::new(ShardShared::new(0, 0))])
    }

    /// A ticket of shard 0 through event `seq` and where its answer goes.
    fn ticket(kind: TicketKind, seq: u64) -> (Ticket, oneshot::Receiver<Response>) {
        let (sender, receiver) = oneshot::channel();
        let reply = PendingReply::new(ReplyTo::new(sender, None), Ok(Outcome::Durable));
        let ticket = Ticket {
            shard: 0,
            seq,
            kind,
            reply: Some(reply),
        };
        (ticket, receiver)
    }

    fn answered(receiver: &mut oneshot::Receiver<Response>) -> Option<Response> {
        receiver.try_recv().ok()
    }

    #[test]
    fn a_refused_record_stays_unanswerable_until_the_standby_acknowledges_it() {
        let cluster = cluster(Replication::Sync, StandbyLoss::Block, Duration::ZERO);
        cluster.standby_connected("s".into(), PeerAddress::default(), 0, 0);
        let (record, mut answer) = ticket(TicketKind::Record, 1);
        cluster.on_durable(&mut vec![record], 1);
        cluster.tick();
        assert!(matches!(
            answered(&mut answer),
            Some(Err(NodeError::StandbyUnavailable))
        ));
        let shard = &cluster.shards[0];
        assert_eq!(shard.durable_seq.load(Ordering::Acquire), 1);
        assert_eq!(
            shard.answerable_seq.load(Ordering::Acquire),
            0,
            "a refused record must not make later answers skip the gate"
        );
        // A checkpoint's barrier waits for this disk only.
        let (local, mut local_answer) = ticket(TicketKind::LocalDurable, 1);
        cluster.on_durable(&mut vec![local], 1);
        assert!(matches!(answered(&mut local_answer), Some(Ok(_))));
        // The retry's answer waits; once the standby has LSN 1 it goes out.
        let (retry, mut retry_answer) = ticket(TicketKind::Answer, 1);
        cluster.on_durable(&mut vec![retry], 1);
        assert!(answered(&mut retry_answer).is_none());
        cluster.standby_acked(1, 1);
        assert!(matches!(answered(&mut retry_answer), Some(Ok(_))));
        assert_eq!(shard.answerable_seq.load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_fenced_node_refuses_records_and_answers_reads() {
        let cluster = cluster(
            Replication::Async,
            StandbyLoss::Block,
            Duration::from_secs(60),
        );
        cluster.set_role(Role::Fenced);
        let (record, mut record_answer) = ticket(TicketKind::Record, 1);
        let (read, mut read_answer) = ticket(TicketKind::Answer, 1);
        cluster.on_durable(&mut vec![record, read], 1);
        assert!(matches!(
            answered(&mut record_answer),
            Some(Err(NodeError::NotPrimary { .. }))
        ));
        assert!(matches!(answered(&mut read_answer), Some(Ok(_))));
        assert!(matches!(
            cluster.check_writable(),
            Err(NodeError::NotPrimary { .. })
        ));
    }

    #[tokio::test]
    async fn a_handover_wait_ends_when_the_standby_acknowledges() {
        let cluster = Arc::new(cluster(
            Replication::Sync,
            StandbyLoss::Block,
            Duration::from_secs(60),
        ));
        cluster.standby_connected("s".into(), PeerAddress::default(), 3, 5);
        let waiting = {
            let cluster = Arc::clone(&cluster);
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
                cluster.wait_for_standby(5, deadline).await
            })
        };
        tokio::task::yield_now().await;
        cluster.standby_acked(5, 5);
        let progress = waiting.await.expect("the wait ends");
        assert_eq!(progress.acked_lsn, 5);
        assert!(progress.connected);
    }
}
