//! `flashgate status --node URL --token TOKEN`: one node's state for a
//! terminal: role and epoch, whether it would take an order now (and if not,
//! why), its log positions, its peer (and why it cannot follow, on a refused
//! standby), the replication lag and whether it runs degraded. Read from
//! `GET /v1/cluster` (an operator or admin token) and `GET /readyz`.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::admin::{AdminClient, Body, CallError};
use crate::cli::cluster::{ClusterStatus, Readiness, ReplicationMode, Role};
use crate::cli::node_url::NodeUrl;
use crate::cli::TokenArg;

/// The longest each of the two requests may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// HTTP base URL of the node, e.g. http://10.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub node: NodeUrl,
    #[command(flatten)]
    pub token: TokenArg,
}

/// Runs the command: 0 when the node answered (whatever its state; the
/// `ready` line says whether it takes orders), 1 when it could not be asked.
pub fn run(args: StatusArgs) -> ExitCode {
    let client = AdminClient::new(Some(args.token.token));
    match status(&client, &args.node) {
        Ok((cluster, readiness)) => {
            for line in describe(&args.node, &cluster, &readiness) {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("flashgate: status failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The node's cluster status and readiness.
pub fn status(
    client: &AdminClient,
    node: &NodeUrl,
) -> Result<(ClusterStatus, Readiness), CallError> {
    let cluster = client.cluster(node, STATUS_TIMEOUT)?;
    // 503 is an answer here: it says why the node would refuse an order.
    let answer = client.send(
        "GET",
        node,
        "/readyz",
        Body::Empty,
        &[],
        false,
        STATUS_TIMEOUT,
    )?;
    let readiness = serde_json::from_str(&answer.body).map_err(|error| CallError::Unexpected {
        request: format!("GET {node}/readyz"),
        status: answer.status,
        reason: format!("a body that is not a readiness answer ({error})"),
    })?;
    Ok((cluster, readiness))
}

/// The lines printed for a person, aligned, one fact each.
pub fn describe(node: &NodeUrl, cluster: &ClusterStatus, readiness: &Readiness) -> Vec<String> {
    let mut lines = vec![format!("node:     {node}")];
    let mode = match (cluster.role, cluster.mode) {
        (Role::Primary, ReplicationMode::Standalone) => " (standalone)".to_owned(),
        (Role::Primary, mode) => format!(
            " (replication {mode}, standby loss {})",
            cluster.standby_loss
        ),
        (Role::Standby | Role::Fenced, _) => String::new(),
    };
    lines.push(format!(
        "role:     {} at epoch {}{mode}",
        cluster.role, cluster.epoch
    ));
    lines.push(if readiness.is_ready() {
        "ready:    yes, it would take an order now".to_owned()
    } else {
        format!(
            "ready:    no ({}): {}",
            readiness.code.as_deref().unwrap_or("not_ready"),
            readiness.detail.as_deref().unwrap_or("no reason given")
        )
    });
    lines.push(format!(
        "log:      last LSN {}, durable {}{}",
        cluster.last_lsn,
        cluster.durable_lsn,
        if cluster.role == Role::Primary && cluster.peer.is_some() {
            format!(", acknowledged by the standby {}", cluster.acked_lsn)
        } else {
            String::new()
        }
    ));
    let kind = match cluster.role {
        Role::Primary => "standby",
        Role::Standby | Role::Fenced => "primary",
    };
    lines.push(match &cluster.peer {
        None => format!("peer:     no {kind}"),
        Some(peer) => {
            let mut line = format!(
                "peer:     {kind} {} {}",
                peer.address,
                if peer.connected {
                    "connected"
                } else {
                    "not connected"
                }
            );
            if let Some(failure) = &peer.last_failure {
                line.push_str(&format!(
                    "; {} failed attempt(s), the last: {failure}",
                    peer.failures.unwrap_or(1)
                ));
            }
            line
        }
    });
    if let (Some(primary), Role::Standby | Role::Fenced) = (&cluster.primary, cluster.role) {
        lines.push(format!(
            "primary:  {}{}",
            primary.http,
            primary
                .quic
                .as_ref()
                .map_or_else(String::new, |quic| format!(" (QUIC {quic})"))
        ));
    }
    if cluster.mode != ReplicationMode::Standalone {
        lines.push(format!(
            "lag:      {} records, {} ms",
            cluster.lag_records, cluster.lag_ms
        ));
    }
    if cluster.degraded {
        lines.push(format!(
            "degraded: yes: {}",
            cluster
                .degraded_reason
                .as_deref()
                .unwrap_or("no reason given")
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::cluster::{Peer, PrimaryAddress, StandbyLoss};

    fn cluster(role: Role) -> ClusterStatus {
        ClusterStatus {
            role,
            epoch: 3,
            last_lsn: 120,
            durable_lsn: 118,
            acked_lsn: 110,
            mode: ReplicationMode::Sync,
            standby_loss: StandbyLoss::Block,
            degraded: false,
            accepting_orders: role == Role::Primary,
            peer: Some(Peer {
                address: "10.0.0.9:7000".into(),
                connected: true,
                last_failure: None,
                failures: None,
            }),
            primary: Some(PrimaryAddress {
                http: "http://10.0.0.1:8080".into(),
                quic: Some("10.0.0.1:4433".into()),
            }),
            lag_records: 8,
            lag_ms: 12,
            degraded_reason: None,
        }
    }

    fn node() -> NodeUrl {
        "http://10.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn a_ready_primary_shows_its_mode_its_standby_and_the_lag() {
        let ready = Readiness {
            status: "ready".into(),
            code: None,
            detail: None,
        };
        let lines = describe(&node(), &cluster(Role::Primary), &ready);
        let text = lines.join("\n");
        assert!(lines[1].contains("primary at epoch 3 (replication sync, standby loss block)"));
        assert!(text.contains("ready:    yes"), "{text}");
        assert!(text.contains("acknowledged by the standby 110"), "{text}");
        assert!(
            text.contains("peer:     standby 10.0.0.9:7000 connected"),
            "{text}"
        );
        assert!(text.contains("lag:      8 records, 12 ms"), "{text}");
        assert!(!text.contains("degraded"), "{text}");
    }

    #[test]
    fn a_refused_standby_shows_why_it_is_not_ready_and_cannot_follow() {
        let mut standby = cluster(Role::Standby);
        standby.peer = Some(Peer {
            address: "10.0.0.1:7000".into(),
            connected: false,
            last_failure: Some("10.0.0.1:7000 refused this node's cluster secret".into()),
            failures: Some(4),
        });
        let not_ready = Readiness {
            status: "not_ready".into(),
            code: Some("not_primary".into()),
            detail: Some("this node would refuse an order now: not the primary".into()),
        };
        let text = describe(&node(), &standby, &not_ready).join("\n");
        assert!(text.contains("ready:    no (not_primary)"), "{text}");
        assert!(
            text.contains("not connected; 4 failed attempt(s), the last: 10.0.0.1:7000 refused this node's cluster secret"),
            "{text}"
        );
        assert!(
            text.contains("primary:  http://10.0.0.1:8080 (QUIC 10.0.0.1:4433)"),
            "{text}"
        );
    }

    #[test]
    fn a_degraded_primary_says_why() {
        let mut primary = cluster(Role::Primary);
        primary.degraded = true;
        primary.degraded_reason = Some("the standby is gone".into());
        let ready = Readiness {
            status: "ready".into(),
            code: None,
            detail: None,
        };
        let text = describe(&node(), &primary, &ready).join("\n");
        assert!(
            text.contains("degraded: yes: the standby is gone"),
            "{text}"
        );
    }
}
