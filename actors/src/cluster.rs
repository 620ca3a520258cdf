//! `Cluster`: this node's place in a primary/standby pair. Its role (who may take
//! writes), the replication mode, the standby as seen by a primary, the primary
//! as seen by a standby, and the sync gate: in sync mode an answer that the log
//! writer made durable here waits in the gate until the standby acknowledges
//! the same LSN, so no buyer hears "yes" for an order on one disk only.
//!
//! It holds no sockets: the gateway's replication shell reports connections and
//! acknowledgements here and reads the state back for `/v1/cluster`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flashgate_storage::Lsn;

use crate::error::NodeError;
use crate::shard_actor::{complete_tickets, ShardShared, Ticket};

/// Who may take writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Takes orders.
    Primary,
    /// Follows a primary: applies its log, answers reads, refuses writes.
    Standby,
    /// Was a primary and learned of a newer one: refuses writes until it
    /// follows the new primary.
    Fenced,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Fenced => "fenced",
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Role::Primary => 0,
            Role::Standby => 1,
            Role::Fenced => 2,
        }
    }

    fn from_u8(value: u8) -> Role {
        match value {
            0 => Role::Primary,
            1 => Role::Standby,
            _ => Role::Fenced,
        }
    }
}

/// When a primary answers a buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// No standby is configured: answer after local durability.
    Standalone,
    /// Answer after the order is durable here and on the standby.
    Sync,
    /// Answer after local durability; the standby follows with a lag.
    Async,
}

impl Replication {
    pub fn as_str(self) -> &'static str {
        match self {
            Replication::Standalone => "standalone",
            Replication::Sync => "sync",
            Replication::Async => "async",
        }
    }
}

/// What a sync primary does when its standby is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StandbyLoss {
    /// Orders wait for the standby, then get `StandbyUnavailable`.
    Block,
    /// After the timeout, go on alone (reported as degraded).
    Degrade,
}

impl StandbyLoss {
    pub fn as_str(self) -> &'static str {
        match self {
            StandbyLoss::Block => "block",
            StandbyLoss::Degrade => "degrade",
        }
    }
}

/// Where a node is reached. Carried in `not_primary` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerAddress {
    /// The HTTP base URL, e.g. `http://127.0.0.1:8080`.
    pub http: String,
    /// The QUIC front end's `host:port`, when it runs.
    pub quic: Option<String>,
    /// The replication listener's `host:port`, when it runs.
    pub replication: Option<String>,
}

/// How the node takes part in replication. Every limit is here.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub role: Role,
    pub replication: Replication,
    pub standby_loss: StandbyLoss,
    /// How long answers wait for the standby before `standby_loss` applies.
    pub standby_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            role: Role::Primary,
            replication: Replication::Standalone,
            standby_loss: StandbyLoss::Block,
            standby_timeout: Duration::from_secs(5),
        }
    }
}

/// Answers durable here, waiting for the standby to acknowledge `last_lsn`.
struct Held {
    last_lsn: Lsn,
    since: Instant,
    tickets: Vec<Ticket>,
}

struct Gate {
    /// The standby's durable LSN, as it last acknowledged.
    acked_lsn: Lsn,
    held: VecDeque<Held>,
}

/// The standby as a primary sees it.
#[derive(Clone, Debug, Default)]
pub struct StandbyStatus {
    pub connected: bool,
    /// Its replication connection's remote address.
    pub address: Option<String>,
    /// Its own advertised addresses.
    pub node: Option<PeerAddress>,
    /// When it connected or went away.
    pub since: Option<Instant>,
}

/// The primary as a standby sees it.
#[derive(Clone, Debug, Default)]
pub struct UpstreamStatus {
    pub connected: bool,
    /// The replication address followed.
    pub address: Option<String>,
    /// The primary's last durable LSN as it last said.
    pub durable_lsn: Lsn,
    /// When this node last heard from it.
    pub heard_at: Option<Instant>,
}

/// What `/v1/cluster` shows.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    pub role: Role,
    pub epoch: u64,
    pub replication: Replication,
    pub standby_loss: StandbyLoss,
    pub degraded: Option<String>,
    /// A primary preparing a switchover: it takes no writes.
    pub handing_over: bool,
    pub accepting_orders: bool,
    pub last_lsn: Lsn,
    pub durable_lsn: Lsn,
    /// On a primary, the standby's acknowledged LSN; on a standby, its own
    /// durable LSN.
    pub acked_lsn: Lsn,
    pub lag_records: u64,
    pub lag: Duration,
    pub primary: Option<PeerAddress>,
    pub standby: StandbyStatus,
    pub upstream: UpstreamStatus,
    pub replica_failure: Option<String>,
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
    /// Why the primary goes on without its standby, when it does.
    degraded: Mutex<Option<String>>,
    /// The current primary, as far as this node knows.
    primary: Mutex<Option<PeerAddress>>,
    standby: Mutex<StandbyStatus>,
    upstream: Mutex<UpstreamStatus>,
    gate: Mutex<Gate>,
    /// Since when the standby has been behind the primary's durable LSN.
    behind_since: Mutex<Option<Instant>>,
    /// Woken after every durable batch, for the replication streamer.
    durable: tokio::sync::Notify,
    /// Why applying the primary's log failed on this standby, once it has.
    replica_failure: std::sync::OnceLock<String>,
    shards: Vec<Arc<ShardShared>>,
}

impl Cluster {
    pub(crate) fn new(config: ClusterConfig, epoch: u64, shards: Vec<Arc<ShardShared>>) -> Cluster {
        Cluster {
            advertise: Mutex::new(PeerAddress::default()),
            role: AtomicU8::new(config.role.to_u8()),
            epoch: AtomicU64::new(epoch),
            handing_over: AtomicBool::new(false),
            degraded: Mutex::new(None),
            primary: Mutex::new(None),
            standby: Mutex::new(StandbyStatus {
                since: Some(Instant::now()),
                ..StandbyStatus::default()
            }),
            upstream: Mutex::new(UpstreamStatus::default()),
            gate: Mutex::new(Gate {
                acked_lsn: 0,
                held: VecDeque::new(),
            }),
            behind_since: Mutex::new(None),
            durable: tokio::sync::Notify::new(),
            replica_failure: std::sync::OnceLock::new(),
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
            return Err(NodeError::NotPrimary {
                primary: self.primary().filter(|_| self.role() != Role::Primary),
            });
        }
        if self.blocked_without_standby() {
            return Err(NodeError::StandbyUnavailable);
        }
        Ok(())
    }

    /// Sync with `block`, not degraded, and the standby gone longer than the
    /// timeout: new orders are refused at once instead of waiting.
    fn blocked_without_standby(&self) -> bool {
        if self.config.replication != Replication::Sync
            || self.config.standby_loss != StandbyLoss::Block
            || lock(&self.degraded).is_some()
        {
            return false;
        }
        let standby = lock(&self.standby);
        !standby.connected
            && standby
                .since
                .is_some_and(|since| since.elapsed() >= self.config.standby_timeout)
    }

    pub fn degraded(&self) -> Option<String> {
        lock(&self.degraded).clone()
    }

    /// Goes on without the standby, releasing every held answer.
    pub(crate) fn degrade(&self, reason: String) {
        {
            let mut degraded = lock(&self.degraded);
            if degraded.is_some() {
                return;
            }
            tracing::warn!(%reason, "REPLICATION DEGRADED: acknowledging orders on this node alone");
            *degraded = Some(reason);
        }
        metrics::gauge!("flashgate_replication_degraded").set(1.0);
        let held: Vec<Held> = lock(&self.gate).held.drain(..).collect();
        for mut held in held {
            complete_tickets(&self.shards, &mut held.tickets);
        }
    }

    fn end_degraded(&self) {
        if lock(&self.degraded).take().is_some() {
            tracing::info!("replication back in sync: the standby has caught up");
            metrics::gauge!("flashgate_replication_degraded").set(0.0);
        }
    }

    /// Called by the log writer with a durable batch's answers. Returns false
    /// (leaving `tickets` untouched) when they may be sent now; true when they
    /// wait in the gate for the standby.
    pub(crate) fn hold(&self, tickets: &mut Vec<Ticket>, last_lsn: Lsn) -> bool {
        self.durable.notify_one();
        if self.role() == Role::Fenced && tickets.iter().any(|ticket| ticket.seq > 0) {
            // Decided before the fence, durable after it: a newer primary
            // exists, so these are never acknowledged from here. Reads complete.
            let (records, reads): (Vec<Ticket>, Vec<Ticket>) =
                tickets.drain(..).partition(|ticket| ticket.seq > 0);
            self.refuse(
                records,
                &NodeError::NotPrimary {
                    primary: self.primary(),
                },
            );
            *tickets = reads;
            return false;
        }
        if self.config.replication != Replication::Sync
            || self.role() != Role::Primary
            || lock(&self.degraded).is_some()
        {
            return false;
        }
        let mut gate = lock(&self.gate);
        if gate.acked_lsn >= last_lsn {
            return false;
        }
        gate.held.push_back(Held {
            last_lsn,
            since: Instant::now(),
            tickets: std::mem::take(tickets),
        });
        true
    }

    /// The standby acknowledged everything up to `lsn` as durable: send the
    /// answers that waited for it.
    pub fn standby_acked(&self, lsn: Lsn, durable_lsn: Lsn) {
        let mut released = Vec::new();
        {
            let mut gate = lock(&self.gate);
            gate.acked_lsn = gate.acked_lsn.max(lsn);
            while gate
                .held
                .front()
                .is_some_and(|held| held.last_lsn <= gate.acked_lsn)
            {
                released.extend(gate.held.pop_front());
            }
        }
        for mut held in released {
            complete_tickets(&self.shards, &mut held.tickets);
        }
        metrics::gauge!("flashgate_replication_acked_lsn").set(lsn as f64);
        if self.track_lag(lsn, durable_lsn) {
            self.end_degraded();
        }
    }

    /// The primary's durable LSN grew past what the standby acknowledged.
    pub fn note_behind(&self) {
        lock(&self.behind_since).get_or_insert_with(Instant::now);
    }

    /// Lag bookkeeping on both sides: the standby has `standby_lsn` of the
    /// primary's `primary_lsn`. Returns whether it has caught up.
    fn track_lag(&self, standby_lsn: Lsn, primary_lsn: Lsn) -> bool {
        let mut behind = lock(&self.behind_since);
        let caught_up = standby_lsn >= primary_lsn;
        if caught_up {
            *behind = None;
        } else {
            behind.get_or_insert_with(Instant::now);
        }
        caught_up
    }

    pub fn acked_lsn(&self) -> Lsn {
        lock(&self.gate).acked_lsn
    }

    /// Waits until a batch becomes durable (or a spurious wake-up).
    pub async fn durable_changed(&self) {
        self.durable.notified().await;
    }

    pub fn standby_connected(&self, address: String, node: PeerAddress, acked_lsn: Lsn) {
        *lock(&self.standby) = StandbyStatus {
            connected: true,
            address: Some(address),
            node: Some(node),
            since: Some(Instant::now()),
        };
        lock(&self.gate).acked_lsn = acked_lsn;
        metrics::gauge!("flashgate_replication_standby_connected").set(1.0);
    }

    pub fn standby_disconnected(&self) {
        let mut standby = lock(&self.standby);
        standby.connected = false;
        standby.since = Some(Instant::now());
        metrics::gauge!("flashgate_replication_standby_connected").set(0.0);
    }

    pub fn standby(&self) -> StandbyStatus {
        lock(&self.standby).clone()
    }

    /// Applies the standby-loss rules; call a few times a second.
    pub fn tick(&self) {
        if self.role() != Role::Primary {
            // Answers that slipped into the gate while this node lost its
            // role: refused, never acknowledged.
            if !lock(&self.gate).held.is_empty() {
                self.fail_held(NodeError::NotPrimary {
                    primary: self.primary(),
                });
            }
            return;
        }
        if self.config.replication != Replication::Sync {
            return;
        }
        if lock(&self.degraded).is_some() {
            return;
        }
        let timeout = self.config.standby_timeout;
        let oldest_wait = lock(&self.gate)
            .held
            .front()
            .map(|held| held.since.elapsed());
        let standby_gone = {
            let standby = lock(&self.standby);
            !standby.connected
                && standby
                    .since
                    .is_some_and(|since| since.elapsed() >= timeout)
        };
        let timed_out = oldest_wait.is_some_and(|waited| waited >= timeout);
        if !timed_out && !standby_gone {
            return;
        }
        match self.config.standby_loss {
            StandbyLoss::Degrade => self.degrade(format!(
                "the standby did not acknowledge within {}",
                humantime::format_duration(timeout)
            )),
            StandbyLoss::Block => {
                if timed_out {
                    self.fail_held(NodeError::StandbyUnavailable);
                }
            }
        }
    }

    /// Fails every held answer: they are durable here but will not be
    /// acknowledged by the standby in time (or this node lost its role).
    pub(crate) fn fail_held(&self, error: NodeError) {
        let held: Vec<Held> = lock(&self.gate).held.drain(..).collect();
        let count: usize = held.iter().map(|held| held.tickets.len()).sum();
        if count > 0 {
            tracing::warn!(count, %error, "answers refused: not acknowledged by the standby");
        }
        for held in held {
            self.refuse(held.tickets, &error);
        }
    }

    /// Fails the answers of durable records. They are durable here, so reads
    /// may show them (an order refused this way may exist, which its refusal
    /// says); without marking them durable every later read of the shard would
    /// wait behind them.
    fn refuse(&self, tickets: Vec<Ticket>, error: &NodeError) {
        for ticket in tickets.iter().filter(|ticket| ticket.seq > 0) {
            let durable = &self.shards[ticket.shard as usize].durable_seq;
            durable.fetch_max(ticket.seq, Ordering::AcqRel);
        }
        for ticket in tickets {
            if let Some(reply) = ticket.reply {
                reply.fail(error.clone());
            }
        }
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
        let role = self.role();
        let upstream = self.upstream();
        let (acked_lsn, lag_records) = match role {
            Role::Primary => {
                let acked = self.acked_lsn();
                let lag = if self.standby().connected || acked > 0 {
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
        let lag = if lag_records == 0 {
            Duration::ZERO
        } else {
            lock(&self.behind_since).map_or(Duration::ZERO, |since| since.elapsed())
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
            lag,
            primary: self.primary(),
            standby: self.standby(),
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
        self.track_lag(own_durable, primary_durable);
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
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    use tokio::sync::oneshot;

    use super::*;
    use crate::shard_actor::{Outcome, PendingReply, Response, ShardShared};

    fn cluster(replication: Replication, standby_loss: StandbyLoss, timeout: Duration) -> Cluster {
        let shard = Arc::new(ShardShared {
            depth: AtomicUsize::new(0),
            durable_seq: AtomicU64::new(0),
        });
        let config = ClusterConfig {
            replication,
            standby_loss,
            standby_timeout: timeout,
            ..ClusterConfig::default()
        };
        Cluster::new(config, 1, vec![shard])
    }

    /// A durable record's ticket (shard 0, event `seq`) and where its answer goes.
    fn ticket(seq: u64) -> (Ticket, oneshot::Receiver<Response>) {
        let (sender, receiver) = oneshot::channel();
        let reply = PendingReply::new(sender, Ok(Outcome::Durable));
        let ticket = Ticket {
            shard: 0,
            seq,
            reply: Some(reply),
        };
        (ticket, receiver)
    }

    fn answered(receiver: &mut oneshot::Receiver<Response>) -> Option<Response> {
        receiver.try_recv().ok()
    }

    #[test]
    fn sync_answers_wait_for_the_standby_to_acknowledge_their_lsn() {
        let cluster = cluster(
            Replication::Sync,
            StandbyLoss::Block,
            Duration::from_secs(60),
        );
        cluster.standby_connected("s".into(), PeerAddress::default(), 0);
        let (first, mut first_answer) = ticket(1);
        let (second, mut second_answer) = ticket(2);
        let mut tickets = vec![first];
        assert!(cluster.hold(&mut tickets, 5));
        let mut tickets = vec![second];
        assert!(cluster.hold(&mut tickets, 9));
        cluster.standby_acked(4, 9);
        assert!(
            answered(&mut first_answer).is_none(),
            "LSN 5 is not acknowledged yet"
        );
        cluster.standby_acked(5, 9);
        assert!(matches!(
            answered(&mut first_answer),
            Some(Ok(Outcome::Durable))
        ));
        assert!(answered(&mut second_answer).is_none());
        cluster.standby_acked(9, 9);
        assert!(matches!(
            answered(&mut second_answer),
            Some(Ok(Outcome::Durable))
        ));
        // Already acknowledged: answered at once, never held.
        let (third, _) = ticket(3);
        let mut tickets = vec![third];
        assert!(!cluster.hold(&mut tickets, 8));
    }

    #[test]
    fn block_refuses_held_answers_after_the_timeout_and_new_orders_at_once() {
        let cluster = cluster(Replication::Sync, StandbyLoss::Block, Duration::ZERO);
        let (record, mut answer) = ticket(1);
        let mut tickets = vec![record];
        assert!(cluster.hold(&mut tickets, 1));
        cluster.tick();
        assert!(matches!(
            answered(&mut answer),
            Some(Err(NodeError::StandbyUnavailable))
        ));
        assert_eq!(cluster.check_writable(), Err(NodeError::StandbyUnavailable));
        assert!(cluster.degraded().is_none());
    }

    #[test]
    fn degrade_goes_on_alone_and_returns_to_sync_once_the_standby_caught_up() {
        let cluster = cluster(Replication::Sync, StandbyLoss::Degrade, Duration::ZERO);
        let (record, mut answer) = ticket(1);
        let mut tickets = vec![record];
        assert!(cluster.hold(&mut tickets, 1));
        cluster.tick();
        assert!(cluster.degraded().is_some());
        assert!(matches!(answered(&mut answer), Some(Ok(Outcome::Durable))));
        assert!(cluster.check_writable().is_ok());
        let (record, _) = ticket(2);
        let mut tickets = vec![record];
        assert!(!cluster.hold(&mut tickets, 2), "degraded: not held");
        cluster.standby_connected("s".into(), PeerAddress::default(), 1);
        cluster.standby_acked(1, 2);
        assert!(cluster.degraded().is_some(), "still behind");
        cluster.standby_acked(2, 2);
        assert!(cluster.degraded().is_none());
    }

    #[test]
    fn a_fenced_node_never_acknowledges_a_record_and_still_answers_reads() {
        let cluster = cluster(
            Replication::Async,
            StandbyLoss::Block,
            Duration::from_secs(60),
        );
        cluster.set_role(Role::Fenced);
        let (record, mut record_answer) = ticket(1);
        let (read, mut read_answer) = ticket(0);
        let mut tickets = vec![record, read];
        assert!(!cluster.hold(&mut tickets, 1));
        assert_eq!(tickets.len(), 1, "the read is left to complete");
        assert!(matches!(
            answered(&mut record_answer),
            Some(Err(NodeError::NotPrimary { .. }))
        ));
        assert!(answered(&mut read_answer).is_none());
        assert!(matches!(
            cluster.check_writable(),
            Err(NodeError::NotPrimary { .. })
        ));
    }
}
