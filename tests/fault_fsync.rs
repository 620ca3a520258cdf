//! A failing fsync on a running node, injected for real with libfiu.

mod common;

use common::faults::{assert_nothing_acknowledged_after, audit, put_skus, Fiu};
use common::{Burst, Launch, START_TIMEOUT};

/// flashgate's exit code after a stop of a node whose storage failed.
const EXIT_STORAGE_FAILED: i32 = 4;

/// When fsync starts failing under load, the node fail-stops (no 2xx after the
/// failure, 503 `storage_failed`, `/readyz` not ready, a loud log line, a
/// critical `storage_failed` alert), and after
/// a restart without the fault every order acknowledged before it is there with
/// counters that add up: a disk that lies about durability must never turn into
/// a lost order.
#[test]
fn a_failing_fsync_fail_stops_and_loses_nothing_acknowledged() {
    let Some(fiu) = Fiu::available() else { return };
    let skus = ["FSYNC-A", "FSYNC-B", "FSYNC-C"];
    let wrapper_args = fiu.run_args();
    let wrapper_args: Vec<&str> = wrapper_args.iter().map(String::as_str).collect();
    let mut server = Launch::new()
        .wrapped_by("fiu-run", &wrapper_args)
        .arg("--shards")
        .arg("2")
        .start();
    let client = server.client().clone();
    put_skus(&client, &skus);

    let burst = Burst::start_named(&client, &skus, 4, "fsync");
    burst.wait_for_created(100);
    fiu.control(
        server.pid().expect("flashgate runs") as u32,
        &[
            "enable name=posix/io/sync/fsync",
            "enable name=posix/io/sync/fdatasync",
        ],
    );
    // Every client meets the failure; keep going a little so that an
    // acknowledgement after it would be seen.
    burst.wait_for("40 storage_failed refusals", START_TIMEOUT, |burst| {
        burst.refused("storage_failed") >= 40
    });
    let attempts = burst.finish();
    let refusals = assert_nothing_acknowledged_after(&attempts, "storage_failed");

    let (status, readiness) = client.get("/readyz");
    assert_eq!(status, 503, "{readiness}");
    assert_eq!(readiness["status"], "not_ready", "{readiness}");
    let alert = common::poll_until("a storage_failed alert", START_TIMEOUT, || {
        let (status, alerts) = client.get("/v1/alerts");
        assert_eq!(status, 200, "{alerts}");
        alerts["active"]
            .as_array()?
            .iter()
            .find(|alert| alert["kind"] == "storage_failed")
            .cloned()
    });
    assert_eq!(alert["severity"], "critical", "{alert}");
    let stderr = server.stderr();
    assert!(
        stderr.contains("LOG WRITE FAILED")
            && stderr.contains(&server.data_dir().display().to_string()),
        "no loud line naming the data dir:\n{stderr}"
    );
    let exit = server.terminate();
    assert_eq!(
        exit.code(),
        Some(EXIT_STORAGE_FAILED),
        "a stop after a storage failure exits {EXIT_STORAGE_FAILED}, this one {exit}"
    );

    let restarted = Launch::new().data_dir(server.data_dir()).start();
    let audit = audit(restarted.client(), &skus, &attempts);
    eprintln!(
        "fsync failure: faults injected 1 (fsync and fdatasync fail from then on), attempts {}, acknowledged {}, refused storage_failed {refusals}, lost {}, oversold {}",
        attempts.len(),
        audit.acknowledged,
        audit.lost,
        audit.oversold
    );
    assert!(audit.acknowledged >= 100);
}
