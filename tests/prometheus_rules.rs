//! The Prometheus rules in deploy/prometheus/ against the real node: every
//! metric they name is one flashgate exports (a rule over a misspelt name
//! never fires, silently), and `promtool` still parses them and passes
//! their unit tests.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{order_id, poll_until, Launch};
use serde_json::json;

const RULES: &str = include_str!("../deploy/prometheus/flashgate-alerts.yml");
/// Longest wait for a reservation of one second to expire.
const EXPIRY_TIMEOUT: Duration = Duration::from_secs(15);

/// The metric names an expression text mentions (`flashgate_…`).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("flashgate_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Metrics that only a pair of nodes exports (a standby's connection, a
/// promotion's epoch): checked against the source instead of a live node.
const PAIR_ONLY: &[&str] = &[
    "flashgate_replication_standby_connected",
    "flashgate_cluster_epoch",
];

/// Every metric the rules name is on a real node's `/metrics` page once it
/// has sold, expired a reservation, refused an admin call and tried a
/// webhook; the two only a pair exports are metric names in the source.
#[test]
fn the_rules_name_only_metrics_the_node_exports() {
    let names = metric_names(RULES);
    assert!(names.len() >= 15, "{names:?}");
    let server = Launch::new()
        .replicated("127.0.0.1:0")
        .arg("--webhook-url")
        .arg("http://127.0.0.1:9/hook")
        .env(
            "FLASHGATE_WEBHOOK_SECRET",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "50")
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "100")
        .env("FLASHGATE_REPLICATION", "async")
        .start();
    let api = server.client();
    api.put_sku(
        "r-1",
        json!({ "stock": 3, "reservation_ttl_secs": 1, "low_stock_threshold": 1 }),
    );
    let expiring = api.reserve("r-1", 1, "buyer-a");
    let paid = api.reserve("r-1", 1, "buyer-b");
    assert_eq!(api.confirm(&order_id(&paid)).0, 200);
    let guesser = api.with_credential(Some("not-the-admin-token-0123"));
    let refused = guesser.send(guesser.request("GET", "/metrics"), None);
    assert_eq!(refused.status, 401, "{}", refused.text);
    let id = order_id(&expiring);
    poll_until("the reservation to expire", EXPIRY_TIMEOUT, || {
        (api.order(&id)["status"] == "expired").then_some(())
    });
    let page = poll_until("every metric the rules name", EXPIRY_TIMEOUT, || {
        let page = api.metrics_page();
        let exported = metric_names(&page);
        names
            .iter()
            .filter(|name| !PAIR_ONLY.contains(&name.as_str()))
            .all(|name| exported.contains(name))
            .then_some(page)
    });
    let sources: String = ["actors/src", "gateway/src"]
        .iter()
        .flat_map(|dir| walk(Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)))
        .filter_map(|file| std::fs::read_to_string(file).ok())
        .collect();
    for name in PAIR_ONLY {
        assert!(names.contains(*name), "{name} is no longer in the rules");
        assert!(
            sources.contains(&format!("\"{name}\"")),
            "{name} is named by the rules and exported nowhere"
        );
    }
    assert!(
        page.contains("flashgate_orders_total{outcome=\"created\"} 2"),
        "{page}"
    );
}

fn walk(dir: std::path::PathBuf) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// `promtool check rules` parses the rules and `promtool test rules` runs
/// their unit tests (deploy/prometheus/flashgate-alerts-test.yml): a rule
/// that stops parsing, or stops firing on its condition, fails here.
#[test]
fn promtool_checks_and_tests_the_rules() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let promtool = match Command::new("promtool").arg("--version").output() {
        Ok(output) if output.status.success() => "promtool",
        _ => {
            eprintln!("SKIPPED: promtool is not installed (Debian package prometheus; .ci/run installs it)");
            return;
        }
    };
    for args in [
        ["check", "rules", "flashgate-alerts.yml"],
        ["test", "rules", "flashgate-alerts-test.yml"],
    ] {
        let output = Command::new(promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
