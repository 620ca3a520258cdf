//! flashgate's order logic.
//!
//! # Layout
//! - `domain`: the deterministic, I/O-free per-shard order logic (SKUs, orders,
//!   commands, events). Commands and `now` in; reply and events out.
//! - `codec`: events and snapshots as bincode bytes for the log and checkpoints.
//! - `shard_actor`: `ShardActor`, the actix actor owning one shard's state.
//! - `node`: `Node`, routing to shards, bounded queues, waiting for durability,
//!   checkpoints.
//! - `recovery`: rebuilding shards from checkpoint + log.
//! - `archiver`: continuous archiving of the durable log to segment files.
//! - `backup`: a consistent snapshot of a running node at one LSN, a data
//!   dir built from a backup, and a backup's state rebuilt and checked.
//! - `retire`: finished orders leaving a shard's memory: the archive they are
//!   answered from afterwards, the node's idempotency claims kept in step.
//! - `customer_archive`: the archive's index of orders by customer and time,
//!   for a customer's order listing.
//! - `ticket`: answers on their way out (`Ticket`, `PendingReply`) and each
//!   shard's durable and answerable watermarks.
//! - `cluster`: `Cluster`, the node's role, replication mode and sync gate
//!   (`cluster::SyncGate`, a pure state machine), lag and status.
//! - `replica`: the standby side of `Node`: applying the primary's log,
//!   discarding a tail, promotion, fencing, handover.
//! - `log_hold`: `LogHold`, the log a checkpoint keeps for a reader that is
//!   behind (the events publisher).
//! - `meta`: the cluster facts kept in the data dir (cluster id, fence).
//! - `peer`: `PeerAddress`, where a node is reached.
//! - `watchdog`: `DiskWatchdog`, fail-stop when a wait on the disk never ends.
//! - `error`: `NodeError`, what a caller of `Node` can get back.

pub mod archiver;
pub mod backup;
pub mod cluster;
pub mod codec;
pub mod customer_archive;
pub mod domain;
pub mod error;
pub mod log_hold;
mod meta;
mod moves;
pub mod node;
pub mod outbox;
pub mod peer;
pub mod recovery;
pub mod replica;
pub mod retire;
pub mod sales;
pub mod shard_actor;
pub mod ticket;
mod watchdog;

pub use cluster::{ClusterConfig, ClusterStatus, Replication, Role, StandbyLoss};
pub use error::NodeError;
pub use node::{CheckpointReport, Node, NodeConfig, NodeRuntime, StartError, StartReport};
pub use peer::PeerAddress;
pub use replica::{FollowerState, PromoteReport, ReplicaCursor, ReplicaError, Replicated};
