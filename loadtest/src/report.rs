//! `Report`: everything a run measured and the audit's verdict, serialised as
//! the JSON report (every field is documented in docs/LOADTEST.md), and the
//! human summary printed at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use flashgate_client::NodeSwitch;
use serde::Serialize;

use crate::audit::AuditReport;
use crate::recorder::{LatencySummary, Second};
use crate::scenario::Scenario;
use crate::target::Transport;

/// Order counts of the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Orders sent (each once, retries not counted).
    pub sent: u64,
    /// Orders answered with an order (created or replayed).
    pub acknowledged: u64,
    pub created: u64,
    /// Acknowledged with the order an earlier attempt of the same key made.
    pub replayed: u64,
    /// Orders that ended in an error (any code, transport errors included).
    pub errors: u64,
    /// Orders still in flight when the drain bound (`--drain-timeout`) ran
    /// out: abandoned, their outcome unknown (`sent - acknowledged - errors`).
    pub abandoned: u64,
    /// Open model: calls sent later than intended.
    pub late: u64,
    /// Attempts repeated after a timeout or transport error.
    pub retries: u64,
    /// Acknowledged orders the run confirmed / cancelled (applied).
    pub confirmed: u64,
    pub cancelled: u64,
    /// The changes the run made (`--change-ratio`), by outcome.
    pub changes: crate::ledger::ChangeTotals,
}

/// Latencies in µs, from each order's intended send time to its answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latencies {
    pub overall: LatencySummary,
    /// By outcome: `created`, `replayed`, each error code, `transport_error`.
    pub by_outcome: BTreeMap<String, LatencySummary>,
}

/// A SKU's counters as read back after the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkuState {
    pub sku: String,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
}

/// A target at the end of the run: its nodes and which one answered last
/// (where the audit's read-backs went).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetState {
    /// `http` or `quic`.
    pub transport: String,
    /// The target as given (comma-separated nodes for a cluster).
    pub target: String,
    pub nodes: Vec<String>,
    /// The node whose answer the target's last answered call returned.
    pub current_node: Option<String>,
}

/// A change of the node that answers a target: the client followed the
/// primary to another node (a failover), or reached another node after its
/// node failed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSwitchRecord {
    /// Seconds from the start of the load to the new node's first answer;
    /// negative while the SKUs were prepared, past `measured_secs` during the
    /// drain and the audit.
    pub at_secs: f64,
    pub transport: String,
    /// The target as given.
    pub target: String,
    pub from: String,
    pub to: String,
}

impl NodeSwitchRecord {
    /// A client's switch, timed from `start`.
    pub fn new(
        switch: NodeSwitch,
        start: Instant,
        transport: Transport,
        target: &str,
    ) -> NodeSwitchRecord {
        let at_secs = if switch.at >= start {
            (switch.at - start).as_secs_f64()
        } else {
            -(start - switch.at).as_secs_f64()
        };
        NodeSwitchRecord {
            at_secs,
            transport: transport.as_str().to_owned(),
            target: target.to_owned(),
            from: switch.from,
            to: switch.to,
        }
    }
}

/// The JSON report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub run_id: String,
    /// The scenario as run (the admin token left out).
    pub scenario: Scenario,
    pub started_at_unix_ms: u64,
    /// Seconds from the first order to the end of the load (the audit not
    /// included).
    pub measured_secs: f64,
    /// Acknowledged orders per second over `measured_secs`.
    pub throughput_per_sec: f64,
    pub totals: Totals,
    pub latency_us: Latencies,
    /// Error label → orders that ended with it.
    pub errors_by_code: BTreeMap<String, u64>,
    pub timeline: Vec<Second>,
    /// Every target and the node that answered it last.
    pub targets: Vec<TargetState>,
    /// Every change of answering node, in time order.
    pub node_switches: Vec<NodeSwitchRecord>,
    pub skus: Vec<SkuState>,
    pub audit: AuditReport,
    /// Seconds the audit took to read back every acknowledged order.
    pub read_back_secs: f64,
    /// The waiting-room scenario: joins, admissions, time in queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room: Option<crate::queue::WaitingRoomReport>,
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data")
    }

    /// The final human summary.
    pub fn summary(&self) -> String {
        let mut text = String::new();
        let totals = &self.totals;
        let _ = writeln!(
            text,
            "run {}: {:.1} s, {} sent, {} acknowledged ({} created, {} replayed), {} errors, {} late, {} retries",
            self.run_id,
            self.measured_secs,
            totals.sent,
            totals.acknowledged,
            totals.created,
            totals.replayed,
            totals.errors,
            totals.late,
            totals.retries
        );
        let _ = writeln!(
            text,
            "throughput: {:.1} acknowledged orders/s",
            self.throughput_per_sec
        );
        let _ = writeln!(
            text,
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let rows = std::iter::once(("overall", &self.latency_us.overall)).chain(
            self.latency_us
                .by_outcome
                .iter()
                .map(|(label, summary)| (label.as_str(), summary)),
        );
        for (label, summary) in rows {
            let _ = writeln!(
                text,
                "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                label,
                summary.count,
                summary.p50,
                summary.p90,
                summary.p99,
                summary.p999,
                summary.max
            );
        }
        let changes = &totals.changes;
        if changes.planned > 0 {
            let refused: Vec<String> = changes
                .refused_by_code
                .iter()
                .map(|(code, count)| format!("{count} {code}"))
                .collect();
            let _ = writeln!(
                text,
                "changes: {} planned, {} acknowledged, {} refused ({}), {} unknown",
                changes.planned,
                changes.acknowledged,
                changes.refused_by_code.values().sum::<u64>(),
                if refused.is_empty() {
                    "none".to_owned()
                } else {
                    refused.join(", ")
                },
                changes.unknown
            );
        }
        if let Some(room) = &self.waiting_room {
            let _ = writeln!(
                text,
                "waiting room: {} joined, {} admitted, {} sold out while waiting, {} expired, {} gave up at the deadline, {} failed, {} polls",
                room.joined,
                room.admitted,
                room.sold_out_while_waiting,
                room.expired,
                room.gave_up_at_deadline,
                room.failed,
                room.polls
            );
            let wait = &room.time_in_queue_ms;
            let _ = writeln!(
                text,
                "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "time in queue (ms)", wait.count, wait.p50, wait.p90, wait.p99, wait.p999, wait.max
            );
        }
        if totals.abandoned > 0 {
            let _ = writeln!(
                text,
                "abandoned: {} orders still in flight when --drain-timeout ({} ms) ran out; their outcome is unknown",
                totals.abandoned, self.scenario.drain_timeout_ms
            );
        }
        if self.errors_by_code.is_empty() {
            let _ = writeln!(text, "errors: none");
        } else {
            let errors: Vec<String> = self
                .errors_by_code
                .iter()
                .map(|(code, count)| format!("{code} {count}"))
                .collect();
            let _ = writeln!(text, "errors: {}", errors.join(", "));
        }
        for switch in &self.node_switches {
            let _ = writeln!(
                text,
                "node switch at {:.2} s: {} {} -> {}",
                switch.at_secs, switch.transport, switch.from, switch.to
            );
        }
        if self.audit.passed {
            let _ = writeln!(
                text,
                "audit: PASSED ({} orders, {} SKUs checked{})",
                self.audit.orders_checked,
                self.audit.skus_checked,
                if self.audit.sole_writer {
                    ", counters matched"
                } else {
                    ""
                }
            );
        }
        let _ = writeln!(
            text,
            "read back {} orders in {:.2} s",
            self.audit.orders_checked, self.read_back_secs
        );
        if !self.audit.passed {
            let _ = writeln!(
                text,
                "audit: FAILED, {} violations {:?}",
                self.audit.violation_count, self.audit.violations_by_kind
            );
            for violation in self.audit.violations.iter().take(20) {
                let _ = writeln!(
                    text,
                    "  {:?} sku {} order {}: {}",
                    violation.kind,
                    violation.sku.as_deref().unwrap_or("-"),
                    violation.order_id.as_deref().unwrap_or("-"),
                    violation.detail
                );
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_switch_is_timed_from_the_start_of_the_load_before_or_after_it() {
        let start = Instant::now() + Duration::from_secs(5);
        let switch = |at| NodeSwitch {
            at,
            from: "127.0.0.1:4433".into(),
            to: "127.0.0.1:4434".into(),
        };
        let before = NodeSwitchRecord::new(
            switch(start - Duration::from_millis(1500)),
            start,
            Transport::Quic,
            "127.0.0.1:4433,127.0.0.1:4434",
        );
        assert_eq!(before.at_secs, -1.5);
        assert_eq!(before.transport, "quic");
        let after = NodeSwitchRecord::new(
            switch(start + Duration::from_millis(250)),
            start,
            Transport::Quic,
            "127.0.0.1:4433,127.0.0.1:4434",
        );
        assert_eq!(after.at_secs, 0.25);
        assert_eq!(
            (after.from.as_str(), after.to.as_str()),
            ("127.0.0.1:4433", "127.0.0.1:4434")
        );
    }
}
