//! The replication side of `Node`: what a standby does with its primary's log
//! (write it with the same barrier, apply it to warm shards), how a tail or a
//! whole state is replaced, and the role changes: promotion, fencing, adopting
//! a primary, handing over. The network is the gateway's; this is the state.

use std::time::{Duration, Instant};

use flashgate_storage::{
    decode_entry, encode_record, EpochStart, Lsn, Record, StorageError, ARCHIVE_PAGE_VALUES_MAX,
};

use crate::cluster::{Replication, Role};
use crate::codec::{decode_log_entry, LogEntry};
use crate::domain::{Event, ShardConfig};
use crate::error::NodeError;
use crate::meta::{
    cluster_id, read_fence, write_fence, META_CLUSTER_ID, META_FENCED_EPOCH, META_FENCED_PRIMARY,
};
use crate::node::{claim_ordered, Node};
use crate::peer::PeerAddress;
use crate::recovery::{recover, RecoveryError};
use crate::retire::{archive_orders, claim_key, split_archived};
use crate::shard_actor::{Apply, Replace, RequestKind, SetEpoch};

/// Why a standby cannot take what its primary sent. It stops following.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("the primary sent LSN {got} where {expected} was next")]
    Gap { expected: Lsn, got: Lsn },
    #[error("the primary sent a record of epoch {record} while at epoch {primary}")]
    FutureEpoch { record: u64, primary: u64 },
    #[error("log record at LSN {lsn}: {reason}")]
    Decode { lsn: Lsn, reason: String },
    #[error("this node is {0}; it does not follow a primary now")]
    NotFollowing(&'static str),
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Records a standby wrote durably (`Node::replicate_write`), still to be
/// applied to its shards (`Node::apply_replicated`).
#[must_use]
#[derive(Debug)]
pub struct Replicated {
    records: Vec<Record>,
    last_lsn: Lsn,
}

impl Replicated {
    /// Everything up to this LSN is durable here: what to acknowledge.
    pub fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }
}

/// What a standby's replica writer carries from one batch to the next within
/// one session: the epoch history of its log, read from disk once instead of
/// per batch. Only `replicate_write` changes the history during a session.
#[derive(Debug, Default)]
pub struct ReplicaCursor {
    history: Option<Vec<EpochStart>>,
}

/// What a promotion did.
#[derive(Clone, Debug)]
pub struct PromoteReport {
    pub epoch: u64,
    pub last_lsn: Lsn,
    pub elapsed: Duration,
}

/// What a standby says about itself when it asks to follow.
#[derive(Clone, Debug)]
pub struct FollowerState {
    pub cluster_id: u64,
    pub epoch: u64,
    pub last_lsn: Lsn,
    pub history: Vec<EpochStart>,
    /// Holds no order data: may adopt any cluster.
    pub empty: bool,
}

impl Node {
    /// This node's log position and epoch history, as a follower reports them.
    pub fn follower_state(&self) -> Result<FollowerState, StorageError> {
        Ok(FollowerState {
            cluster_id: self.cluster_id()?,
            epoch: self.storage.epoch()?,
            last_lsn: self.progress.appended_lsn(),
            history: self.storage.epoch_history()?,
            empty: self.storage.is_empty()?,
        })
    }

    pub fn cluster_id(&self) -> Result<u64, StorageError> {
        cluster_id(&self.storage)
    }

    /// Standby: writes entries received from the primary to the local log with
    /// the same durability barrier, then hands them to the shards. Returns the
    /// LSN now durable here: what to acknowledge. Blocking (disk I/O).
    /// `replicate_write` and `apply_replicated` are its two halves, for a
    /// caller that acknowledges in between.
    pub fn replicate<B: AsRef<[u8]>>(&self, entries: Vec<(Lsn, B)>) -> Result<Lsn, ReplicaError> {
        let replicated = self.replicate_write(entries, &mut ReplicaCursor::default())?;
        self.apply_replicated(replicated)
    }

    /// Standby: writes entries received from the primary to the local log
    /// (each checked record by record), under one barrier. Returns once they
    /// are durable here, with what the shards still have to apply
    /// (`apply_replicated`); its `last_lsn` may be acknowledged at once.
    /// Blocking (disk I/O).
    ///
    /// Records at or before the local log's end are skipped (sent twice after
    /// a reconnect); anything else must continue the log exactly. `cursor`
    /// carries the epoch history from one call to the next: use one per
    /// session, on the one thread that writes the session's batches.
    pub fn replicate_write<B: AsRef<[u8]>>(
        &self,
        entries: Vec<(Lsn, B)>,
        cursor: &mut ReplicaCursor,
    ) -> Result<Replicated, ReplicaError> {
        let role = self.cluster.role();
        if role != Role::Standby {
            return Err(ReplicaError::NotFollowing(role.as_str()));
        }
        let record_bytes_max = self.storage.config().record_bytes_max;
        let primary_epoch = self.cluster.epoch();
        let mut last = self.progress.appended_lsn();
        let mut records: Vec<Record> = Vec::new();
        let mut applied: Vec<Record> = Vec::new();
        let mut written = false;
        if cursor.history.is_none() {
            cursor.history = Some(self.storage.epoch_history()?);
        }
        // Read once per session; a copy is changed only when a batch starts
        // an epoch, and kept once that is durable.
        let known = cursor.history.as_deref().unwrap_or_default();
        let mut started: Vec<EpochStart> = Vec::new();
        for (first, bytes) in entries {
            let bytes = bytes.as_ref();
            records.clear();
            decode_entry(bytes, first, record_bytes_max, &mut records)?;
            let Some(end) = records.last().map(|record| record.lsn) else {
                continue;
            };
            if end <= last {
                continue;
            }
            if let Some(record) = records.iter().find(|record| record.epoch > primary_epoch) {
                return Err(ReplicaError::FutureEpoch {
                    record: record.epoch,
                    primary: primary_epoch,
                });
            }
            let new_first = first.max(last + 1);
            if new_first != last + 1 || first > last + 1 {
                return Err(ReplicaError::Gap {
                    expected: last + 1,
                    got: first,
                });
            }
            if new_first == first {
                self.storage.insert_replicated(first, bytes)?;
            } else {
                // The entry overlaps what is here: keep the new part only.
                let mut tail = Vec::with_capacity(bytes.len());
                for record in records.iter().filter(|record| record.lsn > last) {
                    encode_record(&mut tail, record.epoch, record.lsn, &record.body);
                }
                self.storage.insert_replicated(new_first, &tail)?;
            }
            for record in records.iter().filter(|record| record.lsn > last) {
                if started
                    .last()
                    .or(known.last())
                    .is_none_or(|start| record.epoch > start.epoch)
                {
                    started.push(EpochStart {
                        epoch: record.epoch,
                        first_lsn: record.lsn,
                    });
                }
            }
            applied.extend(records.drain(..).filter(|record| record.lsn > last));
            last = end;
            written = true;
        }
        if written {
            let history = (!started.is_empty()).then(|| [known, &started].concat());
            if let Some(history) = &history {
                // A new epoch starts in this batch: durable with its records.
                self.storage.stage_epoch_history(history, primary_epoch)?;
            }
            self.storage.barrier()?;
            self.progress.reset_to(last);
            if history.is_some() {
                cursor.history = history;
            }
        }
        Ok(Replicated {
            records: applied,
            last_lsn: last,
        })
    }

    /// Standby: hands records `replicate_write` made durable to the shards.
    /// Returns their last LSN. A record that does not decode stops this
    /// standby for good (`Cluster::replica_failure`: it can no longer be
    /// promoted), as a shard that cannot apply one does.
    pub fn apply_replicated(&self, replicated: Replicated) -> Result<Lsn, ReplicaError> {
        let Replicated { records, last_lsn } = replicated;
        if records.is_empty() {
            return Ok(last_lsn);
        }
        if let Err(error) = self.apply_to_shards(&records, last_lsn) {
            self.cluster.set_replica_failure(error.to_string());
            return Err(error);
        }
        Ok(last_lsn)
    }

    /// Routes durable replicated records to their shards (warm standby), and
    /// notes the idempotency keys the orders hold.
    fn apply_to_shards(&self, records: &[Record], last_lsn: Lsn) -> Result<(), ReplicaError> {
        let mut per_shard: Vec<Vec<LogEntry>> =
            (0..self.shards.len()).map(|_| Vec::new()).collect();
        for record in records {
            let entry = decode_log_entry(&record.body).map_err(|error| ReplicaError::Decode {
                lsn: record.lsn,
                reason: error.to_string(),
            })?;
            if let Event::OrderReserved(order) = &entry.event {
                claim_ordered(&self.idempotency, order);
            }
            let shard = entry.shard as usize;
            let Some(slot) = per_shard.get_mut(shard) else {
                return Err(ReplicaError::Decode {
                    lsn: record.lsn,
                    reason: format!("names shard {shard} of only {}", self.shards.len()),
                });
            };
            slot.push(entry);
        }
        for (handle, entries) in self.shards.iter().zip(per_shard) {
            // Unbounded on purpose: what the primary logged must be applied;
            // the replication window bounds how much is in flight.
            handle.addr.do_send(Apply { entries, last_lsn });
        }
        Ok(())
    }

    /// Rebuilds every shard from this node's storage (after a tail was discarded
    /// or a checkpoint installed). Standby only.
    pub async fn reload(&self) -> Result<Lsn, ReplicaError> {
        let storage = self.storage.clone();
        let configs = self.shard_configs();
        let recovered = tokio::task::spawn_blocking(move || recover(&storage, configs))
            .await
            .map_err(|_| ReplicaError::ShuttingDown)??;
        self.idempotency.clear();
        for core in &recovered.cores {
            for ((customer, key), entry) in core.idempotency_keys() {
                claim_key(&self.idempotency, customer, key, entry);
            }
        }
        self.progress.reset_to(recovered.last_lsn);
        for ((handle, core), seq) in self.shards.iter().zip(recovered.cores).zip(recovered.seqs) {
            handle.shared.set_applied(seq);
            handle
                .addr
                .send(Replace {
                    core,
                    seq,
                    applied_lsn: recovered.last_lsn,
                })
                .await
                .map_err(|_| ReplicaError::ShuttingDown)?;
        }
        Ok(recovered.last_lsn)
    }

    fn shard_configs(&self) -> Vec<ShardConfig> {
        (0..self.shard_count())
            .map(|shard| ShardConfig {
                shard,
                epoch: self.cluster.epoch(),
                orders_max: self.config.orders_per_shard_max,
                expiry_batch_max: self.config.expiry_batch_max,
                retention: self.config.retention.clone(),
            })
            .collect()
    }

    /// Standby: discards every record after `keep_through` (never acknowledged
    /// by the cluster) and rebuilds the shards. When a checkpoint already covers
    /// part of that tail, everything is dropped, to be refilled from the primary.
    pub async fn discard_tail(&self, keep_through: Lsn) -> Result<u64, ReplicaError> {
        let storage = self.storage.clone();
        let discarded = tokio::task::spawn_blocking(move || -> Result<u64, StorageError> {
            let covered = storage.read_checkpoint()?.map_or(0, |c| c.covers_lsn);
            let last = storage.last_lsn()?.unwrap_or(covered).max(covered);
            if covered > keep_through {
                storage.clear_log_and_checkpoint()?;
                Ok(last)
            } else {
                storage.truncate_after(keep_through)
            }
        })
        .await
        .map_err(|_| ReplicaError::ShuttingDown)??;
        tracing::warn!(
            keep_through,
            discarded,
            "discarded log records the cluster never acknowledged"
        );
        self.reload().await?;
        Ok(discarded)
    }

    /// Standby: replaces everything with the primary's checkpoint, then rebuilds
    /// the shards from it. The log after it follows from the primary.
    pub async fn install_checkpoint(
        &self,
        covers_lsn: Lsn,
        chunks: Vec<Vec<u8>>,
    ) -> Result<(), ReplicaError> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError> {
            // Orders that left the primary's memory before its checkpoint come
            // along; they are archived here before the checkpoint is switched
            // in (whose barrier makes them durable).
            let (chunks, archived) = split_archived(chunks).map_err(|reason| {
                StorageError::Io(format!("the primary's checkpoint: {reason}"))
            })?;
            storage.clear_log_and_checkpoint()?;
            for orders in archived.chunks(ARCHIVE_PAGE_VALUES_MAX) {
                archive_orders(&storage, orders)?;
            }
            storage.write_checkpoint(covers_lsn, &chunks)
        })
        .await
        .map_err(|_| ReplicaError::ShuttingDown)??;
        self.reload().await?;
        Ok(())
    }

    /// Follows `primary` as a standby from now on, adopting its cluster id,
    /// epoch and epoch history (durably). Call once the log agrees with the
    /// primary's: after any tail was discarded.
    pub fn adopt_primary(
        &self,
        cluster_id: u64,
        epoch: u64,
        history: &[EpochStart],
        primary: PeerAddress,
    ) -> Result<(), StorageError> {
        // The history describes this node's log: the primary's epochs that
        // start past it are added as their records arrive (`replicate`).
        let last = self.progress.appended_lsn();
        let mut own: Vec<EpochStart> = history
            .iter()
            .copied()
            .filter(|start| start.first_lsn <= last + 1)
            .collect();
        if own.is_empty() {
            own = self.storage.epoch_history()?;
        }
        let cluster_id = cluster_id.to_be_bytes();
        let no_fence = 0u64.to_be_bytes();
        let mut values: Vec<(&[u8], &[u8])> = vec![(META_CLUSTER_ID, &cluster_id)];
        if read_fence(&self.storage)?.is_some_and(|(fenced, _)| fenced <= epoch) {
            // Following the primary that fenced this node (or a newer one).
            values.extend([
                (META_FENCED_EPOCH, &no_fence[..]),
                (META_FENCED_PRIMARY, b""),
            ]);
        }
        self.storage.set_meta_values(&values)?;
        self.storage.set_epoch_history(&own, epoch)?;
        self.cluster.set_epoch(epoch);
        self.progress.set_epoch(epoch);
        self.cluster.set_primary(Some(primary));
        if self.cluster.role() != Role::Standby {
            tracing::info!(epoch, "now a standby of the current primary");
        }
        self.cluster.set_handing_over(false);
        self.cluster.set_role(Role::Standby);
        Ok(())
    }

    /// A newer primary exists (its epoch is above ours): stop taking orders for
    /// good (persisted, so a restart stays fenced), and refuse every answer still
    /// waiting for the standby. Returns false if `epoch` is not newer.
    pub fn fence(&self, epoch: u64, primary: PeerAddress) -> Result<bool, StorageError> {
        if epoch <= self.cluster.epoch() || self.cluster.role() == Role::Standby {
            return Ok(false);
        }
        write_fence(&self.storage, epoch, &primary)?;
        let was = self.cluster.role();
        self.cluster.set_role(Role::Fenced);
        self.cluster.set_primary(Some(primary.clone()));
        self.cluster.fail_held();
        tracing::warn!(epoch, was = was.as_str(), primary = %primary.http, "FENCED: a newer primary exists; this node takes no more orders");
        Ok(true)
    }

    /// Whether `hand_over` could start now: a writable primary with a
    /// connected standby. Changes nothing.
    pub fn check_hand_over(&self) -> Result<(), NodeError> {
        self.cluster.check_writable()?;
        if self.cluster.config().replication == Replication::Standalone
            || !self.cluster.standby().connected
        {
            return Err(NodeError::Handover(
                "no standby is connected; a switchover needs one that follows this primary".into(),
            ));
        }
        Ok(())
    }

    /// Undoes a handover whose switchover did not go on (its standby was not
    /// promoted): this primary takes orders again. Refused unless this node is
    /// a primary that handed over. The caller checks that the standby is still
    /// a standby of this epoch; if it was promoted after all, its fencing
    /// stops this node again.
    pub fn resume_orders(&self) -> Result<(), NodeError> {
        let role = self.cluster.role();
        if role != Role::Primary {
            return Err(NodeError::Handover(format!(
                "this node is {}, not a primary that handed over; nothing to resume",
                role.as_str()
            )));
        }
        if !self.cluster.handing_over() {
            return Err(NodeError::Handover(
                "this primary has not handed over: it takes orders already".into(),
            ));
        }
        self.cluster.set_handing_over(false);
        tracing::warn!(
            epoch = self.cluster.epoch(),
            "HANDOVER UNDONE: this primary takes orders again"
        );
        Ok(())
    }

    /// Whether `promote` could run now: a standby whose replicated state is
    /// complete. Changes nothing.
    pub fn check_promote(&self) -> Result<(), NodeError> {
        let role = self.cluster.role();
        if role != Role::Standby {
            return Err(NodeError::NotStandby(role.as_str()));
        }
        if let Some(reason) = self.cluster.replica_failure() {
            return Err(NodeError::StorageFailed(format!(
                "this standby's state is incomplete ({reason}); it cannot be promoted"
            )));
        }
        Ok(())
    }

    /// Makes this standby the primary: a new epoch, persisted before anything
    /// else; every replicated record applied; then orders are taken. The caller
    /// must have stopped following first.
    pub async fn promote(&self) -> Result<PromoteReport, NodeError> {
        self.check_promote()?;
        let started = Instant::now();
        let last_lsn = self.progress.appended_lsn();
        let storage = self.storage.clone();
        let epoch = tokio::task::spawn_blocking(move || storage.start_epoch(last_lsn + 1))
            .await
            .map_err(|_| NodeError::ShuttingDown)?
            .map_err(|error| NodeError::StorageFailed(error.to_string()))?;
        for shard in 0..self.shard_count() {
            let handle = &self.shards[shard as usize];
            handle
                .addr
                .send(SetEpoch(epoch))
                .await
                .map_err(|_| NodeError::ShuttingDown)?;
            // Behind every `Apply` already queued: once answered, the shard holds
            // everything replicated.
            self.ask(shard, RequestKind::Durable).await?;
        }
        self.progress.set_epoch(epoch);
        self.cluster.set_epoch(epoch);
        if self.cluster.config().replication == Replication::Sync {
            self.cluster.degrade(
                "promoted after the primary was lost; no standby has caught up yet".into(),
            );
        }
        self.cluster.set_primary(Some(self.cluster.advertise()));
        self.cluster.set_role(Role::Primary);
        tracing::warn!(epoch, last_lsn, "PROMOTED: this node is the primary");
        Ok(PromoteReport {
            epoch,
            last_lsn,
            elapsed: started.elapsed(),
        })
    }

    /// First step of a planned switchover: stop taking writes, let everything
    /// decided become durable, and wait until the standby acknowledged it all.
    /// Returns the last LSN. On failure, takes writes again.
    pub async fn hand_over(&self, wait_max: Duration) -> Result<Lsn, NodeError> {
        self.check_hand_over()?;
        self.cluster.set_handing_over(true);
        let deadline = Instant::now() + wait_max;
        let result = async {
            for shard in 0..self.shard_count() {
                self.ask(shard, RequestKind::Durable).await?;
            }
            let last = self.progress.appended_lsn();
            let reached = self
                .cluster
                .wait_for_standby(last, tokio::time::Instant::from_std(deadline))
                .await;
            if reached.acked_lsn < last {
                return Err(NodeError::Handover(format!(
                    "the standby acknowledged LSN {} of {last} within {}{}",
                    reached.acked_lsn,
                    humantime::format_duration(wait_max),
                    if reached.connected {
                        ""
                    } else {
                        " and went away"
                    }
                )));
            }
            Ok(last)
        }
        .await;
        if result.is_err() {
            self.cluster.set_handing_over(false);
        }
        result
    }
}
