//! What `/v1/cluster` shows, and the lag bookkeeping behind it (pure: callers
//! pass `now`).

use std::time::{Duration, Instant};

use flashgate_storage::Lsn;

use super::role::{Replication, Role, StandbyLoss};
use crate::peer::PeerAddress;

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
    /// Why the last attempt to follow it failed (a refusal, no answer), until
    /// an attempt succeeds.
    pub last_failure: Option<String>,
    /// Attempts that failed in a row since the last that succeeded.
    pub failures: u64,
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

/// Since when the standby has been behind the primary, on either side.
#[derive(Debug, Default)]
pub struct LagTracker {
    behind_since: Option<Instant>,
}

impl LagTracker {
    /// The primary's durable LSN grew past what the standby has.
    pub fn note_behind(&mut self, now: Instant) {
        self.behind_since.get_or_insert(now);
    }

    /// The standby has `standby_lsn` of the primary's `primary_lsn`. Returns
    /// whether it has caught up.
    pub fn observe(&mut self, standby_lsn: Lsn, primary_lsn: Lsn, now: Instant) -> bool {
        let caught_up = standby_lsn >= primary_lsn;
        if caught_up {
            self.behind_since = None;
        } else {
            self.behind_since.get_or_insert(now);
        }
        caught_up
    }

    /// How long the standby has been behind, when `lag_records` says it is.
    pub fn lag(&self, lag_records: u64, now: Instant) -> Duration {
        match self.behind_since {
            Some(since) if lag_records > 0 => now.saturating_duration_since(since),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_runs_from_the_first_time_behind_until_caught_up() {
        let t0 = Instant::now();
        let mut lag = LagTracker::default();
        assert!(!lag.observe(3, 5, t0));
        lag.note_behind(t0 + Duration::from_secs(1));
        assert_eq!(
            lag.lag(2, t0 + Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert_eq!(lag.lag(0, t0 + Duration::from_secs(2)), Duration::ZERO);
        assert!(lag.observe(5, 5, t0 + Duration::from_secs(3)));
        assert_eq!(lag.lag(1, t0 + Duration::from_secs(4)), Duration::ZERO);
    }
}
