mod common;

use common::{assert_counters_match, settle, Burst, Launch, Outcome};
use serde_json::json;

const SKUS: &[&str] = &["term-a", "term-b"];
const THREADS: usize = 8;
const CREATED_BEFORE_SIGTERM: usize = 100;

/// SIGTERM in the middle of a burst exits 0 and keeps every order it
/// acknowledged: deploys stop the process this way many times a day, and a
/// routine restart must not cost a customer their order.
#[test]
fn sigterm_during_a_burst_exits_cleanly_and_keeps_every_acknowledged_order() {
    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = Launch::new().data_dir(data.path()).start();
    let api = server.client().clone();
    for sku in SKUS {
        api.put_sku(sku, json!({ "stock": 1_000_000 }));
    }
    let burst = Burst::start(&api, SKUS, THREADS);
    burst.wait_for_created(CREATED_BEFORE_SIGTERM);
    let status = server.terminate();
    let attempts = burst.finish();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr()
    );
    for attempt in &attempts {
        match &attempt.outcome {
            Outcome::Created(_) | Outcome::Lost(_) => {}
            Outcome::Answered(status, body) => {
                // Only a refusal that says the node is stopping is acceptable.
                assert_eq!(*status, 503, "{attempt:?}");
                let code = body["code"].as_str();
                assert!(
                    matches!(code, Some("shutting_down" | "not_ready")),
                    "{attempt:?}"
                );
            }
        }
    }

    let server = Launch::new().data_dir(data.path()).start();
    let api = server.client();
    let settled = settle(api, &attempts);
    // A graceful stop finishes what it started: no order was made whose answer
    // was cut off.
    assert!(
        settled.unanswered.is_empty(),
        "orders made but never answered: {:?}",
        settled.unanswered
    );
    assert_counters_match(api, SKUS, &settled.orders);
}

/// A data dir that is a regular file stops the start with a message naming the
/// path: an operator must learn at once, and from the message alone, why the
/// node did not come up.
#[test]
fn a_data_dir_that_is_a_file_fails_the_start_and_names_the_path() {
    let dir = tempfile::tempdir().expect("create a temporary dir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "flashgate").expect("write a regular file");
    let exited = Launch::new().data_dir(&file).expect_exit();
    assert!(!exited.status.success(), "{exited:?}");
    assert!(
        exited.stderr.contains("data dir") && exited.stderr.contains(&*file.to_string_lossy()),
        "{}",
        exited.stderr
    );
}

/// Bad configuration values, wherever they come from, stop the start with a
/// non-zero exit and a message naming the setting: a typo must never start a
/// node with a setting silently ignored or defaulted.
#[test]
fn bad_configuration_fails_the_start_and_names_the_setting() {
    let dir = tempfile::tempdir().expect("create a temporary dir");
    let unknown_key = dir.path().join("unknown-key.toml");
    std::fs::write(&unknown_key, "shardz = 4\n").expect("write a config file");
    let wrong_type = dir.path().join("wrong-type.toml");
    std::fs::write(&wrong_type, "http_body_bytes_max = \"lots\"\n").expect("write a config file");
    let missing = dir.path().join("absent.toml");

    let cases = [
        (
            "FLASHGATE_SHARDS=abc",
            Launch::new().env("FLASHGATE_SHARDS", "abc"),
            "shards",
        ),
        (
            "FLASHGATE_EXPIRY_INTERVAL_MS=0",
            Launch::new().env("FLASHGATE_EXPIRY_INTERVAL_MS", "0"),
            "expiry_interval_ms",
        ),
        (
            "FLASHGATE_SHARDS=0",
            Launch::new().env("FLASHGATE_SHARDS", "0"),
            "shards",
        ),
        (
            "unknown key in --config",
            Launch::new()
                .arg("--config")
                .arg(unknown_key.to_string_lossy()),
            "shardz",
        ),
        (
            "wrong type in --config",
            Launch::new()
                .arg("--config")
                .arg(wrong_type.to_string_lossy()),
            "http_body_bytes_max",
        ),
        (
            "missing --config file",
            Launch::new().arg("--config").arg(missing.to_string_lossy()),
            "absent.toml",
        ),
    ];
    for (what, launch, named) in cases {
        let exited = launch.expect_exit();
        assert!(!exited.status.success(), "{what}: {exited:?}");
        // Environment variables are named as such, in upper case.
        assert!(
            exited
                .stderr
                .to_ascii_lowercase()
                .contains(&named.to_ascii_lowercase()),
            "{what}: stderr does not name {named:?}:\n{}",
            exited.stderr
        );
    }
}

/// A data dir keeps the shard count it was created with; asking for another is
/// refused with the count to use, because re-sharding would move SKUs away from
/// their orders.
#[test]
fn a_different_shard_count_for_an_existing_data_dir_fails_the_start() {
    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = Launch::new()
        .data_dir(data.path())
        .env("FLASHGATE_SHARDS", "4")
        .start();
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown: {status:?}");
    let exited = Launch::new()
        .data_dir(data.path())
        .env("FLASHGATE_SHARDS", "2")
        .expect_exit();
    assert!(!exited.status.success(), "{exited:?}");
    assert!(exited.stderr.contains("4 shards"), "{}", exited.stderr);
}

/// A node whose log goes to a file writes plain text: colour codes are for
/// terminals, and in a log file or a log shipper they are noise that breaks
/// grep and parsers.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let mut server = Launch::new().start();
    server.client().put_sku("plain-log", json!({ "stock": 1 }));
    assert_eq!(server.terminate().code(), Some(0));
    let log = server.stderr();
    assert!(log.contains("INFO"), "the log has lines: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {:?}",
        &log[..log.len().min(400)]
    );
}
