//! The failover probe: right after the promote request is sent, orders for a
//! SKU of its own go to the promoted node in a tight loop until one is
//! acknowledged. The failover time is from the promote request to that
//! acknowledgement: what a buyer would see, not what the node reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cli::admin::{AdminClient, Answer, Body, CallError, Problem};
use crate::cli::node_url::NodeUrl;

/// The probe's SKU, apart from the sale's so that the audit of the sale's
/// SKUs only sees the load tester's orders.
pub const PROBE_SKU: &str = "demo-failover-probe";
/// Its stock: far more than the probe ever buys (one unit).
pub const PROBE_STOCK: u64 = 1000;
/// The pause between two probes: the resolution of the measurement.
pub const PROBE_PAUSE: Duration = Duration::from_millis(1);
/// The longest one probe may take.
pub const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the probe waits for an acknowledgement.
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// The most probes sent, whatever the time.
pub const PROBE_ATTEMPTS_MAX: u64 = 100_000;

/// What one probe got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    Acknowledged,
    /// Refused with this code (`not_primary`, …), or `http_<status>` when the
    /// answer had no problem code.
    Refused(String),
    /// No answer: the error.
    NoAnswer(String),
}

/// Classifies one probe's outcome.
pub fn classify(result: &Result<Answer, CallError>) -> ProbeAnswer {
    match result {
        Ok(answer) if answer.is_success() => ProbeAnswer::Acknowledged,
        Ok(answer) => ProbeAnswer::Refused(
            serde_json::from_str::<Problem>(&answer.body)
                .map(|problem| problem.code)
                .unwrap_or_else(|_| format!("http_{}", answer.status)),
        ),
        Err(error) => ProbeAnswer::NoAnswer(error.to_string()),
    }
}

/// What the probe saw before the first acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probed {
    pub acknowledged_at: Instant,
    /// Refusals by code, and `no_answer`.
    pub refusals: BTreeMap<String, u64>,
}

impl Probed {
    /// `not_primary 57, no_answer 2`, or `none`.
    pub fn describe_refusals(&self) -> String {
        describe_counts(&self.refusals)
    }
}

fn describe_counts(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(code, count)| format!("{code} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// No order was acknowledged in time.
#[derive(Debug, thiserror::Error)]
#[error("no probe order was acknowledged by {node} within {waited:?} ({attempts} tried; refusals: {refusals}; last: {last}){}", hint(.refusals))]
pub struct ProbeError {
    pub node: String,
    pub waited: Duration,
    pub attempts: u64,
    pub refusals: String,
    pub last: String,
}

fn hint(refusals: &str) -> &'static str {
    if refusals.contains("standby_unavailable") {
        "; the promoted node refuses orders because it has no standby of its own and runs with \
         --standby-loss block: that setting trades availability for never acknowledging an order \
         held by one node only"
    } else {
        ""
    }
}

/// Sends probe orders to `node` until one is acknowledged, `stop` is set,
/// or `FAILOVER_TIMEOUT` or `PROBE_ATTEMPTS_MAX` is reached. Each probe has
/// its own customer and idempotency key, so a refusal leaves nothing behind.
pub fn probe(
    client: &AdminClient,
    node: &NodeUrl,
    stop: &AtomicBool,
) -> Result<Probed, ProbeError> {
    let started = Instant::now();
    let mut refusals = BTreeMap::new();
    let mut last = "nothing sent".to_owned();
    let mut attempts = 0;
    while attempts < PROBE_ATTEMPTS_MAX
        && started.elapsed() < FAILOVER_TIMEOUT
        && !stop.load(Ordering::Relaxed)
    {
        attempts += 1;
        let result = place_probe(client, node, attempts);
        match classify(&result) {
            ProbeAnswer::Acknowledged => {
                return Ok(Probed {
                    acknowledged_at: Instant::now(),
                    refusals,
                })
            }
            ProbeAnswer::Refused(code) => {
                last = match &result {
                    Ok(answer) => format!(
                        "{} {}",
                        answer.status,
                        answer.body.trim().chars().take(200).collect::<String>()
                    ),
                    Err(_) => code.clone(),
                };
                *refusals.entry(code).or_insert(0) += 1;
            }
            ProbeAnswer::NoAnswer(error) => {
                last = error;
                *refusals.entry("no_answer".to_owned()).or_insert(0) += 1;
            }
        }
        std::thread::sleep(PROBE_PAUSE);
    }
    Err(ProbeError {
        node: node.to_string(),
        waited: started.elapsed(),
        attempts,
        refusals: describe_counts(&refusals),
        last,
    })
}

/// Places probe order number `attempt`.
/// `client` carries the service token: the probe orders as the shop's back
/// end would, for a customer of its choosing.
pub fn place_probe(
    client: &AdminClient,
    node: &NodeUrl,
    attempt: u64,
) -> Result<Answer, CallError> {
    let customer = format!("probe-{attempt}");
    let order = json!({ "sku": PROBE_SKU, "quantity": 1, "customer_id": customer });
    client.send(
        "POST",
        node,
        "/v1/orders",
        Body::Json(&order),
        &[("Idempotency-Key", &customer)],
        true,
        PROBE_REQUEST_TIMEOUT,
    )
}

/// The failover time: from the promote request to the first acknowledged
/// order. `None` when the acknowledgement came first: the node took an order
/// while it was still a standby.
pub fn failover_time(promote_sent: Instant, acknowledged_at: Instant) -> Option<Duration> {
    acknowledged_at.checked_duration_since(promote_sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Answer, CallError> {
        Ok(Answer {
            status,
            body: body.into(),
        })
    }

    #[test]
    fn answers_are_told_apart_by_status_and_code() {
        assert_eq!(classify(&answer(201, "{}")), ProbeAnswer::Acknowledged);
        assert_eq!(
            classify(&answer(
                503,
                r#"{"code":"not_primary","detail":"this node is a standby","primary":null}"#
            )),
            ProbeAnswer::Refused("not_primary".into())
        );
        assert_eq!(
            classify(&answer(502, "bad gateway")),
            ProbeAnswer::Refused("http_502".into())
        );
        let unreachable = Err(CallError::Unreachable {
            request: "POST x".into(),
            reason: "Connection refused".into(),
        });
        assert!(
            matches!(classify(&unreachable), ProbeAnswer::NoAnswer(error) if error.contains("refused"))
        );
    }

    #[test]
    fn the_failover_time_starts_at_the_promote_request() {
        let promote_sent = Instant::now();
        let acknowledged = promote_sent + Duration::from_millis(120);
        assert_eq!(
            failover_time(promote_sent, acknowledged),
            Some(Duration::from_millis(120))
        );
        assert_eq!(
            failover_time(acknowledged, promote_sent),
            None,
            "an acknowledgement before the promotion is not a failover"
        );
    }

    #[test]
    fn a_node_that_keeps_refusing_is_reported_with_the_reason() {
        let mut refusals = BTreeMap::new();
        refusals.insert("not_primary".to_owned(), 3);
        refusals.insert("standby_unavailable".to_owned(), 40);
        let error = ProbeError {
            node: "http://127.0.0.1:1".into(),
            waited: FAILOVER_TIMEOUT,
            attempts: 43,
            refusals: describe_counts(&refusals),
            last: "503".into(),
        };
        let message = error.to_string();
        assert!(
            message.contains("not_primary 3, standby_unavailable 40"),
            "{message}"
        );
        assert!(message.contains("--standby-loss block"), "{message}");
        assert_eq!(describe_counts(&BTreeMap::new()), "none");
    }
}
