//! Failover: the primary dies in the middle of a sale, the standby is promoted,
//! and no order the primary acknowledged is lost; the old primary comes back
//! fenced and rejoins as a standby.

mod common;

use common::{
    acknowledged, assert_all_present, assert_counters_match, order_id, poll_until, settle, Attempt,
    Burst, Launch, Server, ADMIN_TOKEN, OPERATOR_TOKEN, START_TIMEOUT,
};
use serde_json::{json, Value};

const SKUS: &[&str] = &["sale-a", "sale-b", "sale-c"];
/// Limited stock: the burst sells some SKUs out, so overselling would show.
const STOCK: u64 = 400;
const THREADS: usize = 6;
/// Acknowledged orders to wait for before the primary is killed.
const CREATED_BEFORE_KILL: usize = 120;

fn primary(data_dir: &std::path::Path, replication_addr: &str) -> Launch {
    Launch::new()
        .data_dir(data_dir)
        .replicated(replication_addr)
        .env("FLASHGATE_SHARDS", "2")
}

/// A primary and its standby, the standby connected and in sync.
fn pair(primary_dir: &std::path::Path, standby_dir: &std::path::Path) -> (Server, Server) {
    let primary = primary(primary_dir, "127.0.0.1:0").start();
    let standby = Launch::new()
        .data_dir(standby_dir)
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_SHARDS", "2")
        .start();
    primary.wait_for_cluster("the standby to connect", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
    (primary, standby)
}

/// Runs a burst on `server` and SIGKILLs it once `CREATED_BEFORE_KILL` orders
/// were acknowledged; returns every attempt.
fn burst_then_kill(server: &mut Server) -> Vec<Attempt> {
    let burst = Burst::start(server.client(), SKUS, THREADS);
    burst.wait_for_created(CREATED_BEFORE_KILL);
    server.kill();
    burst.finish()
}

/// Orders after a failover: every attempt settled against the new primary (an
/// unanswered one retried under its key), then counters checked against them.
fn settle_on(server: &Server, attempts: &[Attempt]) -> Vec<Value> {
    let settled = settle(server.client(), attempts);
    assert_counters_match(server.client(), SKUS, &settled.orders);
    settled.orders
}

/// In sync mode, SIGKILL of the primary in the middle of a sale loses no order
/// it acknowledged: the promoted standby has every one, exactly as
/// acknowledged, and no SKU is oversold. This is the promise replication exists
/// for.
#[test]
fn a_promoted_standby_has_every_order_the_dead_primary_acknowledged() {
    let primary_dir = tempfile::tempdir().unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let (mut old, standby) = pair(primary_dir.path(), standby_dir.path());
    for sku in SKUS {
        old.client().put_sku(sku, json!({ "stock": STOCK }));
    }
    let attempts = burst_then_kill(&mut old);
    let acknowledged = acknowledged(&attempts);
    assert!(acknowledged.len() >= CREATED_BEFORE_KILL);

    let promoted = standby.promote();
    assert_eq!(promoted["epoch"], 2, "{promoted}");
    assert_all_present(&standby, &acknowledged);
    let orders = settle_on(&standby, &attempts);
    // New orders carry the new epoch in their ids.
    let (status, order) = standby.client().place_order("sale-a", 1, "after-failover");
    if status == 201 {
        assert!(order_id(&order).starts_with("2-"), "{order}");
    } else {
        assert_eq!(order["code"], "sold_out", "{order}");
    }
    assert!(orders.len() >= acknowledged.len());
}

/// The old primary, restarted on its data dir after the failover, never
/// acknowledges an order again: the new primary fences it, it rejoins as a
/// standby (discarding any tail the cluster never acknowledged), and ends with
/// the same orders and counters as the new primary.
#[test]
fn the_old_primary_comes_back_fenced_and_converges_as_a_standby() {
    let primary_dir = tempfile::tempdir().unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let (mut old, standby) = pair(primary_dir.path(), standby_dir.path());
    let old_replication = old.replication_addr().to_owned();
    for sku in SKUS {
        old.client().put_sku(sku, json!({ "stock": STOCK }));
    }
    let attempts = burst_then_kill(&mut old);
    standby.promote();

    // Restarted as it was, a primary, on the same replication address the new
    // primary keeps trying to fence.
    let returned = primary(primary_dir.path(), &old_replication).start();
    let status = returned.wait_for_cluster("the old primary to rejoin as a standby", |status| {
        status["role"] == "standby" && status["epoch"] == 2
    });
    assert_eq!(
        status["primary"]["http"],
        standby.client().url(""),
        "{status}"
    );
    let (status, refused) = returned.client().place_order("sale-a", 1, "too-late");
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["code"], "not_primary", "{refused}");
    assert_eq!(refused["primary"], standby.client().url(""), "{refused}");

    let orders = settle_on(&standby, &attempts);
    let target = standby.cluster()["durable_lsn"].clone();
    returned.wait_for_cluster("the old primary to catch up", |status| {
        status["durable_lsn"] == target
    });
    assert_all_present(&returned, &orders);
    for sku in SKUS {
        assert_eq!(returned.client().sku(sku), standby.client().sku(sku));
    }
    assert!(
        returned.stderr().contains("FENCED"),
        "{}",
        returned.stderr()
    );
}

/// Two failovers back and forth (A → B → A), each a SIGKILL in the middle of
/// a burst, and every order either primary acknowledged survives both.
#[test]
fn two_failovers_back_and_forth_lose_nothing() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (mut a, b) = pair(a_dir.path(), b_dir.path());
    let a_replication = a.replication_addr().to_owned();
    let b_replication = b.replication_addr().to_owned();
    for sku in SKUS {
        a.client().put_sku(sku, json!({ "stock": STOCK }));
    }
    let mut attempts = burst_then_kill(&mut a);
    b.promote();
    let first = settle_on(&b, &attempts);

    // A returns as a standby of B and catches up; then B dies.
    let a = Launch::new()
        .data_dir(a_dir.path())
        .replicated(&a_replication)
        .standby_of(&b_replication)
        .env("FLASHGATE_SHARDS", "2")
        .start();
    b.wait_for_cluster("A to follow B in sync", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
    let mut b = b;
    let second_attempts = {
        let burst = Burst::start_named(b.client(), SKUS, THREADS, "second");
        poll_until("orders on B", START_TIMEOUT, || {
            (burst.created() > 20 || b.client().sku("sale-a")["available"] == 0).then_some(())
        });
        b.kill();
        burst.finish()
    };
    a.promote();
    assert_eq!(a.cluster()["epoch"], 3);
    assert_all_present(&a, &first);
    assert_all_present(&a, &acknowledged(&second_attempts));
    attempts.extend(second_attempts);
    let orders = settle_on(&a, &attempts);

    // B returns as a standby of A and converges.
    let b = Launch::new()
        .data_dir(b_dir.path())
        .replicated(&b_replication)
        .standby_of(&a_replication)
        .env("FLASHGATE_SHARDS", "2")
        .start();
    let target = a.cluster()["durable_lsn"].clone();
    b.wait_for_cluster("B to catch up with A", |status| {
        status["role"] == "standby" && status["durable_lsn"] == target
    });
    assert_all_present(&b, &orders);
    for sku in SKUS {
        assert_eq!(b.client().sku(sku), a.client().sku(sku));
    }
    // Each read says which role answered it: only a primary's carries the
    // replication promise.
    for (node, role) in [(&a, "primary"), (&b, "standby")] {
        let api = node.client();
        let answer = api.send(api.request("GET", &format!("/v1/skus/{}", SKUS[0])), None);
        assert_eq!(answer.header("Flashgate-Node-Role"), Some(role));
    }
}

/// `flashgate switchover` hands the primary role over with no lost order and
/// no divergence: the old primary stops taking orders, the standby catches up
/// and is promoted, and the old primary follows it without discarding
/// anything.
#[test]
fn a_switchover_moves_the_primary_role_and_loses_nothing() {
    let primary_dir = tempfile::tempdir().unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let (old, standby) = pair(primary_dir.path(), standby_dir.path());
    for sku in SKUS {
        old.client().put_sku(sku, json!({ "stock": STOCK }));
    }
    let mut acknowledged = Vec::new();
    for i in 0..30 {
        acknowledged.push(
            old.client()
                .reserve(SKUS[i % SKUS.len()], 1, &format!("before-{i}")),
        );
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args([
            "switchover",
            "--primary",
            &old.client().url(""),
            "--standby",
        ])
        .arg(standby.client().url(""))
        .args(["--token", old.admin_token(), "--timeout", "30s"])
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .output()
        .expect("run flashgate switchover");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "switchover failed:\n{printed}");

    let status = standby.cluster();
    assert_eq!(status["role"], "primary", "{status}");
    let status = old.wait_for_cluster("the old primary to follow", |status| {
        status["role"] == "standby" && status["peer"]["connected"] == true
    });
    assert_eq!(status["epoch"], 2, "{status}");
    assert!(
        !old.stderr().contains("discarded log records"),
        "a planned switchover must not leave a tail to discard"
    );
    let (code, refused) = old.client().place_order(SKUS[0], 1, "to-the-old-one");
    assert_eq!(
        (code, refused["code"].as_str()),
        (503, Some("not_primary")),
        "{refused}"
    );
    for i in 0..10 {
        acknowledged.push(
            standby
                .client()
                .reserve(SKUS[i % SKUS.len()], 1, &format!("after-{i}")),
        );
    }
    assert_all_present(&standby, &acknowledged);
    let target = standby.cluster()["durable_lsn"].clone();
    old.wait_for_cluster("the old primary to catch up", |status| {
        status["durable_lsn"] == target
    });
    assert_all_present(&old, &acknowledged);
}

/// Runs `flashgate switchover` from `primary` to `standby` with `token`;
/// returns whether it succeeded and everything it printed.
fn run_switchover(primary: &Server, standby: &Server, token: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["switchover", "--primary", &primary.client().url("")])
        .args(["--standby", &standby.client().url("")])
        .args(["--token", token, "--timeout", "30s"])
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .output()
        .expect("run flashgate switchover");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), printed)
}

/// A switchover whose token may read the standby but not promote it (the two
/// nodes do not share their admin token) stops at its check, before the
/// primary stops taking orders: a planned operation must not leave a sale
/// with no node taking orders.
#[test]
fn a_switchover_whose_token_cannot_promote_the_standby_changes_nothing() {
    const STANDBY_ADMIN_TOKEN: &str = "integration-test-standby-admin-token";
    let primary_dir = tempfile::tempdir().unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let old = primary(primary_dir.path(), "127.0.0.1:0").start();
    // The primary's admin token is only an operator token on the standby.
    let standby = Launch::new()
        .data_dir(standby_dir.path())
        .replicated("127.0.0.1:0")
        .standby_of(old.replication_addr())
        .env("FLASHGATE_SHARDS", "2")
        .admin_token(STANDBY_ADMIN_TOKEN)
        .operator_tokens(&format!("{OPERATOR_TOKEN}\n{ADMIN_TOKEN}"))
        .start();
    old.wait_for_cluster("the standby to connect", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
    old.client().put_sku(SKUS[0], json!({ "stock": STOCK }));
    let before = old.client().reserve(SKUS[0], 1, "before-the-switchover");

    let (succeeded, printed) = run_switchover(&old, &standby, ADMIN_TOKEN);
    assert!(!succeeded, "the switchover cannot promote, yet:\n{printed}");
    assert!(printed.contains("step 1 (check)"), "{printed}");
    assert!(printed.contains("nothing was changed"), "{printed}");
    assert!(printed.contains("forbidden"), "{printed}");

    let status = old.cluster();
    assert_eq!(
        (
            status["role"].as_str(),
            status["accepting_orders"].as_bool()
        ),
        (Some("primary"), Some(true)),
        "{status}"
    );
    let after = old.client().reserve(SKUS[0], 1, "after-the-switchover");
    let api = standby.client().with_credential(Some(STANDBY_ADMIN_TOKEN));
    let (code, status) = api.get("/v1/cluster");
    assert_eq!((code, status["role"].as_str()), (200, Some("standby")));
    assert_all_present(&old, &[before, after]);
}

/// A handover can be undone: a primary that handed over (and takes no orders)
/// takes orders again after `POST /v1/admin/resume`, which a switchover whose
/// promotion failed uses; a primary that did not hand over is refused with
/// `handover_failed`. The check a switchover makes first changes nothing.
#[test]
fn a_handover_is_undone_by_resume() {
    let primary_dir = tempfile::tempdir().unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let (old, standby) = pair(primary_dir.path(), standby_dir.path());
    old.client().put_sku(SKUS[0], json!({ "stock": STOCK }));

    let (code, check) = old.client().get("/v1/admin/switchover-check");
    assert_eq!(code, 200, "{check}");
    assert_eq!(check["hand_over"]["possible"], true, "{check}");
    assert_eq!(check["promote"]["possible"], false, "{check}");
    let (code, check) = standby.client().get("/v1/admin/switchover-check");
    assert_eq!(code, 200, "{check}");
    assert_eq!(
        (&check["role"], &check["promote"]["possible"]),
        (&json!("standby"), &json!(true)),
        "{check}"
    );
    let operator = old.client().with_credential(Some(OPERATOR_TOKEN));
    let (code, refused) = operator.get("/v1/admin/switchover-check");
    assert_eq!((code, refused["code"].as_str()), (403, Some("forbidden")));

    let (code, refused) = old.client().admin_post("/v1/admin/resume", &json!({}));
    assert_eq!(
        (code, refused["code"].as_str()),
        (409, Some("handover_failed")),
        "{refused}"
    );
    let (code, handed_over) = old.client().admin_post("/v1/admin/handover", &json!({}));
    assert_eq!(code, 200, "{handed_over}");
    assert_eq!(old.cluster()["accepting_orders"], false);
    let (code, refused) = old.client().place_order(SKUS[0], 1, "during-the-handover");
    assert_eq!(code, 503, "{refused}");
    let (code, ready) = old.client().get("/readyz");
    assert_eq!((code, ready["status"].as_str()), (503, Some("not_ready")));
    let (code, ready) = standby.client().get("/readyz");
    assert_eq!(
        (code, ready["code"].as_str(), ready["role"].as_str()),
        (503, Some("not_primary"), Some("standby")),
        "a standby takes no orders: {ready}"
    );

    let (code, resumed) = old.client().admin_post("/v1/admin/resume", &json!({}));
    assert_eq!(code, 200, "{resumed}");
    assert_eq!(resumed["accepting_orders"], true, "{resumed}");
    let (code, ready) = old.client().get("/readyz");
    assert_eq!((code, ready["status"].as_str()), (200, Some("ready")));
    let order = old.client().reserve(SKUS[0], 1, "after-the-resume");
    assert_eq!(standby.cluster()["role"], "standby");
    assert_all_present(&old, &[order]);
}
