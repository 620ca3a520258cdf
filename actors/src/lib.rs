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
//! - `cluster`: `Cluster`, the node's role, replication mode and sync gate.
//! - `replica`: the standby side of `Node`: applying the primary's log,
//!   discarding a tail, promotion, fencing, handover.
//! - `watchdog`: `DiskWatchdog`, fail-stop when a wait on the disk never ends.
//! - `error`: `NodeError`, what a caller of `Node` can get back.

pub mod cluster;
pub mod codec;
pub mod domain;
pub mod error;
pub mod node;
pub mod recovery;
pub mod replica;
pub mod shard_actor;
mod watchdog;

pub use cluster::{ClusterConfig, ClusterStatus, PeerAddress, Replication, Role, StandbyLoss};
pub use error::NodeError;
pub use node::{CheckpointReport, Node, NodeConfig, NodeRuntime, StartError, StartReport};
pub use replica::{FollowerState, PromoteReport, ReplicaError};
