use crate::domain::CoreError;

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
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}
