//! The answers of the cluster endpoints, parsed: `ClusterStatus`
//! (`GET /v1/cluster`), `Promoted` (`POST /v1/admin/promote`) and `HandedOver`
//! (`POST /v1/admin/handover`). Plain data and the questions the commands ask
//! of it; no I/O. Fields a newer node adds are ignored.

use std::fmt;

use serde::Deserialize;

/// What a node is in its pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes orders.
    Primary,
    /// Follows a primary's log; refuses orders with `not_primary`.
    Standby,
    /// A former primary that learnt of a newer epoch; refuses orders.
    Fenced,
}

impl fmt::Display for Role {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
            Role::Fenced => "fenced",
        })
    }
}

/// How a primary waits for its standby before it acknowledges an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// Only once the standby has the order too.
    Sync,
    /// Once the order is durable locally.
    Async,
    /// No standby is configured.
    Standalone,
}

impl fmt::Display for ReplicationMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            ReplicationMode::Sync => "sync",
            ReplicationMode::Async => "async",
            ReplicationMode::Standalone => "standalone",
        })
    }
}

/// What a sync primary does when its standby is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StandbyLoss {
    /// Refuse orders until a standby is back.
    Block,
    /// Go on alone (and report `degraded`).
    Degrade,
}

impl fmt::Display for StandbyLoss {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            StandbyLoss::Block => "block",
            StandbyLoss::Degrade => "degrade",
        })
    }
}

/// The other node of the pair, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Peer {
    pub address: String,
    pub connected: bool,
    /// On a standby: why its last attempt to follow failed, until one works.
    #[serde(default)]
    pub last_failure: Option<String>,
    /// On a standby: attempts that failed in a row.
    #[serde(default)]
    pub failures: Option<u64>,
}

/// Where the current primary takes orders, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PrimaryAddress {
    /// Its HTTP base URL, `http://host:port`.
    pub http: String,
    /// Its QUIC address, `host:port`, when it runs QUIC.
    pub quic: Option<String>,
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ClusterStatus {
    pub role: Role,
    /// Raised by every promotion; the node with the highest epoch is the primary.
    pub epoch: u64,
    pub last_lsn: u64,
    pub durable_lsn: u64,
    /// On a primary: the last record its standby acknowledged.
    pub acked_lsn: u64,
    pub mode: ReplicationMode,
    pub standby_loss: StandbyLoss,
    pub degraded: bool,
    pub accepting_orders: bool,
    pub peer: Option<Peer>,
    pub primary: Option<PrimaryAddress>,
    pub lag_records: u64,
    pub lag_ms: u64,
    /// Why a primary is degraded (going on without its standby), if it is.
    #[serde(default)]
    pub degraded_reason: Option<String>,
}

impl ClusterStatus {
    /// Whether this node is a primary with its standby connected.
    pub fn standby_connected(&self) -> bool {
        self.role == Role::Primary && self.peer.as_ref().is_some_and(|peer| peer.connected)
    }

    /// Whether this node is a standby of the primary promoted to `epoch` (or
    /// of a later one). An epoch belongs to exactly one promotion, so this
    /// does not depend on how the new primary's address is spelt.
    pub fn follows_epoch(&self, epoch: u64) -> bool {
        self.role == Role::Standby && self.epoch >= epoch
    }

    /// One line for a person: role, epoch, log position, peer.
    pub fn describe(&self) -> String {
        let peer = match &self.peer {
            Some(peer) if peer.connected => format!("peer {} connected", peer.address),
            Some(peer) => format!("peer {} not connected", peer.address),
            None => "no peer".to_owned(),
        };
        let primary = match (&self.primary, self.role) {
            (Some(primary), Role::Standby | Role::Fenced) => format!(", primary {}", primary.http),
            _ => String::new(),
        };
        format!(
            "{} at epoch {}, log at LSN {}, {peer}{primary}",
            self.role, self.epoch, self.last_lsn
        )
    }
}

/// `GET /readyz`: whether the node would take an order now, and if not the
/// code an order would get and why.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// `POST /v1/admin/promote`: the node is now the primary.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Promoted {
    /// The new epoch; the old primary is fenced once it learns of it.
    pub epoch: u64,
    /// The end of the log the new primary took over.
    pub last_lsn: u64,
    /// How long the promotion took on the node.
    pub elapsed_ms: u64,
}

/// `POST /v1/admin/handover`: the primary stopped taking orders and its
/// standby has acknowledged every record up to `last_lsn`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HandedOver {
    pub epoch: u64,
    pub last_lsn: u64,
}

/// `POST /v1/admin/resume`: the handover is undone.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Resumed {
    pub epoch: u64,
    pub accepting_orders: bool,
}

/// One part of a switchover as a node could take it now.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct StepCheck {
    pub possible: bool,
    pub reason: Option<String>,
}

/// `GET /v1/admin/switchover-check`: what the node could do now, with the
/// credential the check was made with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SwitchoverCheck {
    pub role: Role,
    pub epoch: u64,
    pub hand_over: StepCheck,
    pub promote: StepCheck,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = r#"{"role":"primary","epoch":3,"last_lsn":120,"durable_lsn":120,
        "acked_lsn":118,"mode":"sync","standby_loss":"block","degraded":false,
        "accepting_orders":true,"peer":{"address":"127.0.0.1:7001","connected":true},
        "primary":{"http":"http://127.0.0.1:8080","quic":"127.0.0.1:4433"},
        "lag_records":2,"lag_ms":1}"#;

    const STANDBY: &str = r#"{"role":"standby","epoch":4,"last_lsn":120,"durable_lsn":120,
        "acked_lsn":0,"mode":"sync","standby_loss":"degrade","degraded":false,
        "accepting_orders":false,"peer":null,
        "primary":{"http":"http://127.0.0.1:8081","quic":null},
        "lag_records":0,"lag_ms":0,"a_field_from_a_newer_node":1}"#;

    #[test]
    fn the_documented_answer_parses() {
        let status: ClusterStatus = serde_json::from_str(PRIMARY).unwrap();
        assert_eq!(status.role, Role::Primary);
        assert_eq!(status.epoch, 3);
        assert_eq!(status.acked_lsn, 118);
        assert_eq!(status.mode, ReplicationMode::Sync);
        assert_eq!(status.standby_loss, StandbyLoss::Block);
        assert_eq!(
            status.primary.as_ref().and_then(|p| p.quic.as_deref()),
            Some("127.0.0.1:4433")
        );
        assert!(status.standby_connected());
        assert!(!status.follows_epoch(3));
    }

    #[test]
    fn a_standby_follows_the_epoch_it_learnt_and_unknown_fields_are_ignored() {
        let status: ClusterStatus = serde_json::from_str(STANDBY).unwrap();
        assert_eq!(status.role, Role::Standby);
        assert_eq!(status.peer, None);
        assert!(status.follows_epoch(4));
        assert!(status.follows_epoch(3));
        assert!(!status.follows_epoch(5), "a standby of an older primary");
        assert!(!status.standby_connected());
        assert_eq!(
            status.describe(),
            "standby at epoch 4, log at LSN 120, no peer, primary http://127.0.0.1:8081"
        );
    }

    #[test]
    fn a_primary_whose_standby_dropped_has_no_standby_connected() {
        let mut status: ClusterStatus = serde_json::from_str(PRIMARY).unwrap();
        status.peer.as_mut().unwrap().connected = false;
        assert!(!status.standby_connected());
        status.peer = None;
        assert!(!status.standby_connected());
        // A fenced node that still remembers its old peer is not a primary.
        let mut fenced: ClusterStatus = serde_json::from_str(PRIMARY).unwrap();
        fenced.role = Role::Fenced;
        assert!(!fenced.standby_connected());
        assert!(!fenced.follows_epoch(3));
    }

    #[test]
    fn an_unknown_role_or_a_missing_field_is_an_error() {
        let unknown_role = PRIMARY.replace(r#""role":"primary""#, r#""role":"leader""#);
        assert!(serde_json::from_str::<ClusterStatus>(&unknown_role).is_err());
        let no_epoch = PRIMARY.replace(r#""epoch":3,"#, "");
        assert!(serde_json::from_str::<ClusterStatus>(&no_epoch).is_err());
    }

    #[test]
    fn promote_and_handover_answers_parse() {
        let promoted: Promoted =
            serde_json::from_str(r#"{"epoch":5,"last_lsn":130,"elapsed_ms":12}"#).unwrap();
        assert_eq!(
            promoted,
            Promoted {
                epoch: 5,
                last_lsn: 130,
                elapsed_ms: 12
            }
        );
        let handed: HandedOver = serde_json::from_str(r#"{"epoch":4,"last_lsn":129}"#).unwrap();
        assert_eq!(
            handed,
            HandedOver {
                epoch: 4,
                last_lsn: 129
            }
        );
    }
}
