use crate::domain::CoreError;
use crate::peer::PeerAddress;

fn not_primary_message(primary: &Option<PeerAddress>) -> String {
    match primary {
        Some(primary) => format!(
            "this node does not take orders; the primary is at {}",
            primary.http
        ),
        None => {
            "this node does not take orders and does not know the current primary; try another node"
                .into()
        }
    }
}

/// Why the node could not answer a request, beyond the order rules themselves.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The order rules refused the command.
    #[error(transparent)]
    Rejected(#[from] CoreError),
    /// The shard's mailbox is full; the caller should retry shortly.
    #[error("shard {shard} has {depth} requests waiting, its limit; retry shortly")]
    Overloaded { shard: u32, depth: usize },
    /// The log cannot persist; the node takes no more writes (fail-stop).
    #[error("the order log failed and this node takes no more writes: {0}")]
    StorageFailed(String),
    /// This node does not take writes: it is a standby, a fenced old primary, or
    /// a primary handing over. Nothing was done.
    #[error("{}", not_primary_message(primary))]
    NotPrimary { primary: Option<PeerAddress> },
    /// Sync replication: the standby did not acknowledge in time. The order may
    /// exist; retry with the same idempotency key.
    #[error("the standby did not acknowledge in time (sync replication); the outcome is unknown: retry with the same idempotency key")]
    StandbyUnavailable,
    /// A promotion asked of a node that is not a standby.
    #[error("this node is {0}, not a standby; only a standby can be promoted")]
    NotStandby(&'static str),
    /// A switchover could not be prepared.
    #[error("{0}")]
    Handover(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}
