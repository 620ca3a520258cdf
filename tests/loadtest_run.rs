//! A short load-test run against the real `flashgate` binary, over HTTP and
//! QUIC at once, with confirms and cancels: the JSON report's totals must
//! agree with the SKU counters the server reports, the audit must pass, and
//! the HTML report must carry its charts. This is what proves the load tester
//! measures the server it claims to measure.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use common::{Launch, ADMIN_TOKEN, PAYMENTS_TOKEN, SERVICE_TOKEN};
use flashgate_loadtest::cli::{self, EXIT_PASSED};
use flashgate_loadtest::progress::ProgressMode;
use flashgate_loadtest::scenario::{LoadModel, Scenario};
use flashgate_loadtest::{html, run, Flags};

/// Longest a load-tester command line may take in these tests before the test
/// fails instead of waiting: far above its own bounds (`--duration`, the
/// setup, drain and audit bounds), so only a run that ignores them hits it.
const COMMAND_LINE_BOUND: Duration = Duration::from_secs(120);

/// Runs the load tester's command line (what `flashgate-loadtest ARGS` does)
/// on a thread of its own; fails the test when it has not ended within
/// `COMMAND_LINE_BOUND`.
fn loadtest_command_line(args: &[&str]) -> cli::Outcome {
    let flags =
        Flags::try_parse_from(std::iter::once("flashgate-loadtest").chain(args.iter().copied()))
            .expect("valid flags");
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(cli::execute(&flags, ProgressMode::Auto));
    });
    outcome
        .recv_timeout(COMMAND_LINE_BOUND)
        .unwrap_or_else(|_| {
            panic!("the load tester did not end within {COMMAND_LINE_BOUND:?}: {args:?}")
        })
}

/// The load tester given only a standby of a real pair (the documented
/// mistake: one node of the cluster, not the primary) must end on its own
/// with an error exit and a message naming the node, the primary it points
/// to and the flag to pass, both when it finds out while creating the SKUs
/// and when it finds out under load. Before, it sent at `rate 0/s` in silence
/// until its duration, then passed an audit of nothing.
#[test]
fn a_target_without_its_primary_ends_the_run_with_what_to_pass() {
    let primary = Launch::new().replicated("127.0.0.1:0").start();
    let standby = Launch::new()
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .start();
    primary.wait_for_cluster("the standby to connect", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
    // SKUs that exist on both nodes, for the run that does not create them.
    let created = loadtest_command_line(&[
        "--http",
        primary.base_url(),
        "--create-skus",
        "--admin-token",
        ADMIN_TOKEN,
        "--credential",
        SERVICE_TOKEN,
        "--sku-prefix",
        "np",
        "--skus",
        "2",
        "--orders",
        "20",
        "--buyers",
        "2",
        "--duration",
        "5",
    ]);
    assert_eq!(created.exit_code, EXIT_PASSED, "{:?}", created.errors);
    common::pair::wait_caught_up(&primary, &standby);

    let standby_url = standby.base_url().to_owned();
    let under_load = [
        "--http",
        standby_url.as_str(),
        "--credential",
        SERVICE_TOKEN,
        "--sku-prefix",
        "np",
        "--skus",
        "2",
        "--duration",
        "3",
        "--buyers",
        "4",
        "--failover-wait",
        "1000",
    ];
    let creating = [
        "--http",
        standby_url.as_str(),
        "--create-skus",
        "--admin-token",
        ADMIN_TOKEN,
        "--credential",
        SERVICE_TOKEN,
        "--skus",
        "2",
        "--duration",
        "3",
        "--failover-wait",
        "1000",
    ];
    for args in [&under_load[..], &creating[..]] {
        let outcome = loadtest_command_line(args);
        assert_ne!(outcome.exit_code, EXIT_PASSED, "{args:?}");
        let message = outcome.errors.join("\n");
        assert!(
            message.contains("no node of this target takes orders"),
            "{message}"
        );
        assert!(message.contains(&standby_url), "names the node: {message}");
        assert!(
            message.contains(&format!("--http {standby_url},{}", primary.base_url())),
            "says what to pass: {message}"
        );
    }
}

#[test]
fn a_short_run_over_both_transports_agrees_with_the_server() {
    let server = Launch::new().start();
    let quic = server.quic().expect("the test server listens for QUIC");
    let scenario = Scenario {
        http: vec![server.base_url().to_owned()],
        quic: vec![quic.addr.to_string()],
        fingerprint: Some(quic.sha256.clone()),
        batch: 4,
        model: LoadModel::Closed,
        buyers: 8,
        duration_secs: 2.0,
        orders: Some(600),
        skus: 4,
        // Less stock than orders, so some orders sell out.
        stock: 100,
        create_skus: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        credential: Some(SERVICE_TOKEN.into()),
        payments_credential: Some(PAYMENTS_TOKEN.into()),
        customers: 50,
        confirm_ratio: 0.3,
        cancel_ratio: 0.2,
        payment_delay_ms: 50,
        request_timeout_ms: 10_000,
        seed: Some(42),
        ..Scenario::default()
    };
    scenario.validate().expect("a valid scenario");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime
        .block_on(run(&scenario, ProgressMode::Off))
        .expect("the run completes");

    let json: serde_json::Value =
        serde_json::from_str(&report.to_json()).expect("the report is JSON");
    assert_eq!(json["audit"]["passed"], true, "{}", report.summary());
    assert!(json["audit"]["violations"].as_array().unwrap().is_empty());
    assert!(json["throughput_per_sec"].as_f64().unwrap() > 0.0);
    assert!(json["latency_us"]["overall"]["p99"].as_u64().is_some());
    assert!(json["latency_us"]["overall"]["p50"].as_u64().is_some());
    assert!(json["errors_by_code"].is_object());
    let sent = json["totals"]["sent"].as_u64().unwrap();
    let acknowledged = json["totals"]["acknowledged"].as_u64().unwrap();
    let cancelled = json["totals"]["cancelled"].as_u64().unwrap();
    let errors = json["totals"]["errors"].as_u64().unwrap();
    assert!(acknowledged > 0, "{}", report.summary());
    assert_eq!(
        sent,
        acknowledged + errors,
        "every sent order has an outcome"
    );

    // The server's own counters, read over HTTP: every acknowledged order
    // (one unit each) is reserved or sold unless the run cancelled it.
    let skus = json["skus"].as_array().unwrap();
    assert_eq!(skus.len(), 4);
    let mut held = 0;
    for sku in skus {
        let name = sku["sku"].as_str().unwrap();
        let counters = server.client().sku(name);
        held += counters["reserved"].as_u64().unwrap() + counters["sold"].as_u64().unwrap();
        assert!(counters["reserved"].as_u64().unwrap() + counters["sold"].as_u64().unwrap() <= 100);
    }
    assert_eq!(held, acknowledged - cancelled, "{}", report.summary());

    let page = html::render(&report);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(
        page.matches("<svg").count() >= 4,
        "the four charts are inline"
    );
    assert!(
        !page.contains("http://") || !page.contains("<script src"),
        "no network"
    );
    assert!(page.contains("PASSED"));
}

/// A run with changes mixed in (`--change-ratio`), over QUIC and HTTP: every
/// acknowledged change must be what the order holds when read back, refusals
/// (`change_across_shards` for a SKU on another shard, `sold_out`, ...) are
/// counted by code and leave the order as it was, and the SKU counters still
/// add up to the orders the run holds (no oversell). A load tester that
/// trusted its answers without reading the orders back could not tell a
/// change the node acknowledged but never applied.
#[test]
fn a_run_with_changes_audits_every_acknowledged_change() {
    let server = Launch::new().start();
    let quic = server.quic().expect("the test server listens for QUIC");
    let scenario = Scenario {
        http: vec![server.base_url().to_owned()],
        quic: vec![quic.addr.to_string()],
        fingerprint: Some(quic.sha256.clone()),
        batch: 4,
        model: LoadModel::Closed,
        buyers: 8,
        duration_secs: 3.0,
        orders: Some(500),
        skus: 4,
        // Less stock than orders, so some changes to more units sell out.
        stock: 100,
        create_skus: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        credential: Some(SERVICE_TOKEN.into()),
        payments_credential: Some(PAYMENTS_TOKEN.into()),
        customers: 50,
        confirm_ratio: 0.3,
        cancel_ratio: 0.2,
        change_ratio: 0.5,
        payment_delay_ms: 20,
        request_timeout_ms: 10_000,
        seed: Some(7),
        ..Scenario::default()
    };
    scenario.validate().expect("a valid scenario");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime
        .block_on(run(&scenario, ProgressMode::Off))
        .expect("the run completes");

    eprintln!("{}", report.summary());
    assert!(
        report.audit.passed,
        "{}\n{:?}",
        report.summary(),
        report.audit.violations
    );
    let changes = &report.totals.changes;
    assert!(changes.planned > 0, "{}", report.summary());
    assert!(changes.acknowledged > 0, "{}", report.summary());
    assert_eq!(
        changes.planned,
        changes.acknowledged + changes.refused_by_code.values().sum::<u64>() + changes.unknown,
        "every planned change has an outcome: {}",
        report.summary()
    );
    assert_eq!(changes.unknown, 0, "{}", report.summary());
    let json: serde_json::Value =
        serde_json::from_str(&report.to_json()).expect("the report is JSON");
    assert_eq!(
        json["totals"]["changes"]["acknowledged"].as_u64(),
        Some(changes.acknowledged)
    );
    assert!(
        report.summary().contains("changes: "),
        "{}",
        report.summary()
    );

    // The server's own counters: within stock on every SKU, and what the
    // run holds (the audit compared them order by order as sole writer).
    assert!(report.audit.sole_writer);
    for sku in json["skus"].as_array().unwrap() {
        let counters = server.client().sku(sku["sku"].as_str().unwrap());
        assert!(counters["reserved"].as_u64().unwrap() + counters["sold"].as_u64().unwrap() <= 100);
    }
}
