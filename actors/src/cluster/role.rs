//! Who may take writes, and how a primary replicates: the plain types of a
//! node's place in its cluster, and its settings.

use std::time::Duration;

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

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Role::Primary => 0,
            Role::Standby => 1,
            Role::Fenced => 2,
        }
    }

    pub(crate) fn from_u8(value: u8) -> Role {
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
