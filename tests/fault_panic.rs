//! A panicking thread fails the whole node (debug builds' fault points).

mod common;

use std::os::unix::process::ExitStatusExt;

use common::faults::{audit, put_skus};
use common::{Burst, Launch, START_TIMEOUT};

/// Starts a node whose thread at `point` panics after `after` records, keeps
/// orders flowing until the process dies, and checks the fail-stop: the process
/// aborts (SIGABRT) with a loud line naming the thread, and after a restart every
/// order it acknowledged is there with counters that add up.
fn panic_fails_the_node(point: &str, after: u64, thread_named: &str) {
    let skus = ["PANIC-A", "PANIC-B", "PANIC-C"];
    let mut server = Launch::new()
        .env("FLASHGATE_FAULT_PANIC", &format!("{point}:{after}"))
        .arg("--shards")
        .arg("2")
        .start();
    let client = server.client().clone();
    put_skus(&client, &skus);
    let burst = Burst::start_named(&client, &skus, 4, point);
    let status = server.wait_exit(START_TIMEOUT);
    let attempts = burst.finish();
    let stderr = server.stderr();
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "the node must abort on a panic, it exited {status}; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("PANIC in thread") && stderr.contains(thread_named),
        "no loud line naming the panicking thread ({thread_named}):\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("fault point {point}")),
        "the line does not carry the panic's message:\n{stderr}"
    );

    let restarted = Launch::new().data_dir(server.data_dir()).start();
    let audit = audit(restarted.client(), &skus, &attempts);
    eprintln!(
        "panic in {point}: faults injected 1, attempts {}, acknowledged {}, lost {}, oversold {}",
        attempts.len(),
        audit.acknowledged,
        audit.lost,
        audit.oversold
    );
}

/// A panic in the log writer aborts the process instead of leaving a node that
/// reports ready while nothing it decides ever becomes durable.
#[test]
fn a_panic_in_the_log_writer_aborts_the_node_and_loses_nothing() {
    panic_fails_the_node("log_writer", 150, "'flashgate-log'");
}

/// A panic in a shard actor aborts the process instead of leaving a node whose
/// shard silently answers nothing.
#[test]
fn a_panic_in_a_shard_aborts_the_node_and_loses_nothing() {
    panic_fails_the_node("shard", 80, "in thread 'actix-rt|system:0|arbiter:");
}
