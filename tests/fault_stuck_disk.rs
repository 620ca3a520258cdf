//! A stuck disk: the data dir on a bindfs FUSE mount whose process the test
//! freezes (SIGSTOP), so every I/O on it hangs.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use common::faults::{
    assert_nothing_acknowledged_after, audit, has_exited, put_skus, Bindfs, ServerOnBindfs,
};
use common::{poll_until, Burst, Launch, START_TIMEOUT};

/// The node's `--disk-stall-timeout` in these tests.
const DISK_STALL_TIMEOUT: &str = "1s";
/// The node's shutdown timeout (`FLASHGATE_SHUTDOWN_TIMEOUT_SECS`).
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;
/// The stop bound those give (`Config::stop_bound`: the shutdown timeout plus
/// twice the stall timeout), and the slack a loaded machine gets on top of it
/// before the test calls the stop hung.
const STOP_BOUND: Duration = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 2);
const STOP_SLACK: Duration = Duration::from_secs(10);
/// flashgate's exit codes after a stop that skipped or abandoned its final
/// checkpoint (README, "exit").
const EXIT_STOP_ABANDONED: i32 = 3;
const EXIT_STORAGE_FAILED: i32 = 4;

fn launch_on(data_dir: &std::path::Path) -> Launch {
    Launch::new()
        .data_dir(data_dir)
        .env(
            "FLASHGATE_SHUTDOWN_TIMEOUT_SECS",
            &SHUTDOWN_TIMEOUT_SECS.to_string(),
        )
        .arg("--disk-stall-timeout")
        .arg(DISK_STALL_TIMEOUT)
        .arg("--shards")
        .arg("2")
}

/// SIGTERM with the disk still frozen: the process must exit within its bound.
/// Then thaws the disk (so the kernel lets go of a thread caught in it) and
/// returns the exit status.
fn stop_with_the_disk_stuck(node: &mut ServerOnBindfs) -> ExitStatus {
    let pid = node.server().pid().expect("flashgate runs") as u32;
    node.server().signal(libc::SIGTERM);
    poll_until(
        "the node to exit with its disk still stuck",
        STOP_BOUND + STOP_SLACK,
        || has_exited(pid).then_some(()),
    );
    node.bindfs.thaw();
    let exit = node.server().wait_exit(START_TIMEOUT);
    assert!(
        matches!(exit.code(), Some(EXIT_STOP_ABANDONED | EXIT_STORAGE_FAILED)),
        "a stop on a stuck disk exited {exit} (signal {:?}); stderr:\n{}",
        exit.signal(),
        node.server().stderr()
    );
    exit
}

/// When the disk stops answering under load, the node does not hang with it:
/// orders get 503 `storage_failed` (never a late 2xx), `/readyz` reports not
/// ready, SIGTERM ends the process within its bound while the disk is still
/// stuck, and after a restart every acknowledged order is there. A node that
/// neither answers nor exits cannot be replaced by its standby or supervisor.
#[test]
fn a_stuck_disk_fail_stops_the_node_and_a_stop_still_ends() {
    let Some(bindfs) = Bindfs::mount() else {
        return;
    };
    let skus = ["STUCK-A", "STUCK-B", "STUCK-C"];
    let server = launch_on(&bindfs.path().join("data")).start();
    let mut node = ServerOnBindfs {
        server: Some(server),
        bindfs,
    };
    let client = node.server().client().clone();
    put_skus(&client, &skus);

    let burst = Burst::start_named(&client, &skus, 4, "stuck");
    burst.wait_for_created(100);
    node.bindfs.freeze();
    // A request the node left hanging would end as a client timeout
    // (REQUEST_TIMEOUT) and stop its burst thread, failing the wait below.
    burst.wait_for("40 storage_failed refusals", START_TIMEOUT, |burst| {
        burst.refused("storage_failed") >= 40
    });
    let attempts = burst.finish();
    let refusals = assert_nothing_acknowledged_after(&attempts, "storage_failed");

    let (status, readiness) = client.get("/readyz");
    assert_eq!(status, 503, "{readiness}");
    let detail = readiness["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("the disk is stuck"), "{readiness}");
    let data_dir = node.server().data_dir().display().to_string();
    let stderr = node.server().stderr();
    assert!(
        stderr.contains("DISK STALLED") && stderr.contains(&data_dir),
        "no loud line naming the data dir:\n{stderr}"
    );

    let exit = stop_with_the_disk_stuck(&mut node);
    let stderr = node.server().stderr();
    assert!(
        stderr.contains("final checkpoint skipped") || stderr.contains("STOP ABANDONED"),
        "the stop does not say what became of the final checkpoint:\n{stderr}"
    );

    node.bindfs.unmount();
    let restarted = launch_on(&node.bindfs.source().join("data")).start();
    let audit = audit(restarted.client(), &skus, &attempts);
    eprintln!(
        "stuck disk: faults injected 1 (bindfs frozen under load), attempts {}, acknowledged {}, refused storage_failed {refusals}, lost {}, oversold {}, stop ended with {exit}",
        attempts.len(),
        audit.acknowledged,
        audit.lost,
        audit.oversold
    );
}

/// A graceful stop whose final checkpoint meets a stuck disk still ends within
/// its bound, saying what became of the checkpoint; the log holds everything, so
/// the restarted node has every acknowledged order.
#[test]
fn a_stop_on_a_stuck_disk_ends_within_its_bound() {
    let Some(bindfs) = Bindfs::mount() else {
        return;
    };
    let skus = ["IDLE-A", "IDLE-B"];
    let server = launch_on(&bindfs.path().join("data")).start();
    let mut node = ServerOnBindfs {
        server: Some(server),
        bindfs,
    };
    let client = node.server().client().clone();
    put_skus(&client, &skus);
    let burst = Burst::start_named(&client, &skus, 2, "idle");
    burst.wait_for_created(50);
    let attempts = burst.finish();
    // No write is waiting when the disk sticks: only the stop meets it.
    node.bindfs.freeze();
    let exit = stop_with_the_disk_stuck(&mut node);
    let stderr = node.server().stderr();
    assert!(
        stderr.contains("final checkpoint abandoned")
            || stderr.contains("STOP ABANDONED")
            || stderr.contains("final checkpoint skipped"),
        "the stop does not say what became of the final checkpoint:\n{stderr}"
    );

    node.bindfs.unmount();
    let restarted = launch_on(&node.bindfs.source().join("data")).start();
    let audit = audit(restarted.client(), &skus, &attempts);
    eprintln!(
        "stop on a stuck disk: faults injected 1 (bindfs frozen before SIGTERM), acknowledged {}, lost {}, oversold {}, stop ended with {exit}",
        audit.acknowledged, audit.lost, audit.oversold
    );
}
