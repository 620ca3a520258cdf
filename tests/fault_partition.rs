//! Network partitions between a primary and its standby, for real: each node
//! runs in a network namespace of its own, joined by a veth pair that carries
//! replication, and the link is cut and healed while orders flow, in both
//! directions at once (link down) and in one direction only (every packet one
//! side sends dropped). The test reaches each node's HTTP over a link of its
//! own that no cut touches. Needs root (`ip netns`); elsewhere each test
//! prints `SKIPPED:` and returns.

mod common;

use common::netns::{Cut, Side, Topology};
use common::pair::{
    assert_refusals_only, audit, wait_caught_up, wait_degraded, wait_in_sync, Figures,
    RESYNC_TIMEOUT,
};
use common::{acknowledged, order_id, Attempt, Burst, Launch, Outcome, Server, START_TIMEOUT};
use serde_json::json;

/// Shards of every node here: a pair runs with the same layout.
const SHARDS: &str = "2";
/// Large stock: these SKUs never sell out.
const ROOMY_STOCK: u64 = 1_000_000;
/// Small stock: the load sells it out, so overselling would show.
const SCARCE_STOCK: u64 = 40;
/// Threads of a `Burst`.
const LOAD_THREADS: usize = 4;
/// Acknowledged orders to wait for before a cut, and after each heal.
const CREATED_BETWEEN_CUTS: usize = 30;
/// How long answers wait for the standby: short, so a cut shows quickly.
const STANDBY_TIMEOUT: &str = "1s";
/// How long a standby with automatic promotion waits for a silent primary.
const AUTO_PROMOTE_AFTER: &str = "1s";
/// Port of every node's replication listener (each node has its own
/// addresses, so one port serves all).
const REPLICATION_PORT: u16 = 4434;

/// A node of a sync pair with `standby_loss`, in `side`'s namespace,
/// listening for replication on its end of the replication link.
fn node(net: &Topology, side: Side, standby_loss: &str) -> Launch {
    net.launch(side)
        .replicated(&replication_addr(net, side))
        .env("FLASHGATE_SHARDS", SHARDS)
        .arg("--replication")
        .arg("sync")
        .arg("--standby-loss")
        .arg(standby_loss)
        .arg("--standby-timeout")
        .arg(STANDBY_TIMEOUT)
}

fn replication_addr(net: &Topology, side: Side) -> String {
    std::net::SocketAddr::new(net.link_addr(side), REPLICATION_PORT).to_string()
}

/// A primary and its standby across the replication link, in sync, with
/// `skus` created.
fn pair(
    net: &Topology,
    standby_loss: &str,
    standby_args: &[&str],
    skus: &[(&str, u64)],
) -> (Server, Server) {
    let primary = node(net, Side::Primary, standby_loss).start();
    let standby = standby_args.iter().fold(
        node(net, Side::Standby, standby_loss).standby_of(&replication_addr(net, Side::Primary)),
        |launch, arg| launch.arg(*arg),
    );
    let standby = standby.start();
    wait_in_sync(&primary);
    for (sku, stock) in skus {
        primary.client().put_sku(sku, json!({ "stock": stock }));
    }
    (primary, standby)
}

/// With `--standby-loss block`, a primary cut off from its standby, in both
/// directions and in each one alone, acknowledges nothing while the link is
/// cut (503 `standby_unavailable` instead); after each heal the standby
/// catches up and the sale goes on, and after a final failover every order
/// ever acknowledged is on the promoted standby, none oversold. A partition
/// must never turn a 201 into an order on one disk only.
#[test]
fn block_mode_acknowledges_nothing_across_a_partition() {
    const TEST: &str = "block_mode_acknowledges_nothing_across_a_partition";
    const SKUS: [(&str, u64); 2] = [
        ("cut-block-roomy", ROOMY_STOCK),
        ("cut-block-scarce", SCARCE_STOCK),
    ];
    let Some(net) = Topology::create(TEST) else {
        return;
    };
    let (mut primary, standby) = pair(&net, "block", &[], &SKUS);
    let load = Burst::start_named(
        primary.client(),
        &SKUS.map(|(sku, _)| sku),
        LOAD_THREADS,
        "cut-block",
    );
    load.wait_for_created(CREATED_BETWEEN_CUTS);
    for cut in Cut::ALL {
        net.cut(cut);
        let refused = load.refused("standby_unavailable");
        // Every thread was refused once: from here on nothing may be
        // acknowledged until the link heals.
        load.wait_for(
            &format!("refusals after `{}`", cut.command(&net)),
            START_TIMEOUT,
            |load| load.refused("standby_unavailable") >= refused + LOAD_THREADS,
        );
        let created_in_cut = load.created();
        load.wait_for("more refusals while cut", START_TIMEOUT, |load| {
            load.refused("standby_unavailable") >= refused + 3 * LOAD_THREADS
        });
        assert_eq!(
            load.created(),
            created_in_cut,
            "orders were acknowledged while the replication link was cut ({cut:?}: `{}`)",
            cut.command(&net)
        );
        let status = primary.cluster();
        assert_eq!(status["degraded"], false, "{status}");
        assert_eq!(status["role"], "primary", "{status}");

        net.heal();
        wait_in_sync(&primary);
        load.wait_for(
            &format!("orders after healing {cut:?}"),
            RESYNC_TIMEOUT,
            |load| load.created() >= created_in_cut + CREATED_BETWEEN_CUTS,
        );
    }
    let attempts = load.finish();
    assert_refusals_only(
        &attempts,
        &["standby_unavailable", "sold_out", "insufficient_stock"],
    );

    primary.kill();
    standby.promote();
    let figures = audit(&standby, &SKUS, &attempts);
    Figures {
        faults: Cut::ALL.len(),
        ..figures
    }
    .report(TEST);
}

/// With `--standby-loss degrade`, a cut replication link (both directions,
/// then each one alone) costs one timeout, not the sale: the primary degrades,
/// says so in /v1/cluster, and goes on alone; after each heal the standby
/// catches up while orders still flow and the degraded state clears; after a
/// failover the promoted standby holds every order ever acknowledged.
#[test]
fn degrade_mode_goes_on_across_a_partition_and_resyncs() {
    const TEST: &str = "degrade_mode_goes_on_across_a_partition_and_resyncs";
    const SKUS: [(&str, u64); 2] = [
        ("cut-degrade-roomy", ROOMY_STOCK),
        ("cut-degrade-scarce", SCARCE_STOCK),
    ];
    let Some(net) = Topology::create(TEST) else {
        return;
    };
    let (mut primary, standby) = pair(&net, "degrade", &[], &SKUS);
    let load = Burst::start_named(
        primary.client(),
        &SKUS.map(|(sku, _)| sku),
        LOAD_THREADS,
        "cut-degrade",
    );
    load.wait_for_created(CREATED_BETWEEN_CUTS);
    for cut in Cut::ALL {
        net.cut(cut);
        wait_degraded(
            &primary,
            &format!("the primary to degrade after `{}`", cut.command(&net)),
        );
        let created_at_degrade = load.created();
        load.wait_for("orders while degraded", START_TIMEOUT, |load| {
            load.created() >= created_at_degrade + CREATED_BETWEEN_CUTS
        });

        net.heal();
        wait_in_sync(&primary);
        let created_at_resync = load.created();
        load.wait_for(
            &format!("orders after healing {cut:?}"),
            START_TIMEOUT,
            |load| load.created() >= created_at_resync + CREATED_BETWEEN_CUTS,
        );
    }
    let attempts = load.finish();
    // Degrade never refuses a buyer for the standby's sake.
    assert_refusals_only(&attempts, &["sold_out", "insufficient_stock"]);

    wait_caught_up(&primary, &standby);
    primary.kill();
    standby.promote();
    let figures = audit(&standby, &SKUS, &attempts);
    Figures {
        faults: Cut::ALL.len(),
        ..figures
    }
    .report(TEST);
}

/// A standby with `--auto-promote-after` that loses its primary to a
/// partition promotes itself; from then on the old primary, still running and
/// still reached by buyers, acknowledges nothing: new orders, retries of
/// refused ones under their keys and confirmations all get a non-2xx answer.
/// After the heal the new primary fences it (it follows the new primary and
/// refuses orders with `not_primary`), and every order acknowledged before
/// the partition is on the new primary. Two primaries that both say yes would
/// sell the same stock twice.
fn auto_promotion_fences_the_cut_off_primary(test: &str, cut: Cut) {
    const SKUS: [(&str, u64); 2] = [
        ("cut-auto-roomy", ROOMY_STOCK),
        ("cut-auto-scarce", SCARCE_STOCK),
    ];
    let Some(net) = Topology::create(test) else {
        return;
    };
    let (old, standby) = pair(
        &net,
        "block",
        &["--auto-promote-after", AUTO_PROMOTE_AFTER],
        &SKUS,
    );
    let old_epoch = old.cluster()["epoch"].as_u64().expect("epoch is a number");
    let before = Burst::start_named(
        old.client(),
        &SKUS.map(|(sku, _)| sku),
        LOAD_THREADS,
        "cut-auto",
    );
    before.wait_for_created(CREATED_BETWEEN_CUTS);
    // An order acknowledged (so on both disks) before the partition, to
    // confirm on the old primary after it.
    let paid = old.client().reserve(SKUS[0].0, 1, "cut-auto-paid");

    net.cut(cut);
    let status = standby.wait_for_cluster(
        &format!(
            "the standby to promote itself after `{}`",
            cut.command(&net)
        ),
        |status| status["role"] == "primary",
    );
    let new_epoch = status["epoch"].as_u64().expect("epoch is a number");
    assert!(new_epoch > old_epoch, "{status}");
    let mut attempts = before.finish();

    // Everything sent to the old primary from now on is after the promotion.
    let after = Burst::start_named(
        old.client(),
        &SKUS.map(|(sku, _)| sku),
        LOAD_THREADS,
        "cut-auto-after",
    );
    after.wait_for("refusals by the old primary", START_TIMEOUT, |burst| {
        burst.refused("standby_unavailable") + burst.refused("not_primary") >= 2 * LOAD_THREADS
    });
    let after_attempts = after.finish();
    let mut acknowledged_after: Vec<String> = acknowledged(&after_attempts)
        .iter()
        .map(|order| format!("new order {}: {order}", order_id(order)))
        .collect();
    for attempt in attempts
        .iter()
        .filter(|attempt| attempt.created().is_none())
    {
        let (status, body) = old
            .client()
            .try_post_json(
                "/v1/orders",
                &attempt.body(),
                &[("Idempotency-Key", &attempt.idempotency_key)],
            )
            .unwrap_or_else(|error| panic!("retry of {}: {error}", attempt.idempotency_key));
        if (200..300).contains(&status) {
            acknowledged_after.push(format!(
                "retry of {}: {status} {body}",
                attempt.idempotency_key
            ));
        }
    }
    let paid_id = order_id(&paid);
    for _ in 0..2 {
        let (status, body) = old.client().confirm(&paid_id);
        if (200..300).contains(&status) {
            acknowledged_after.push(format!("confirmation of {paid_id}: {status} {body}"));
        }
    }
    assert!(
        acknowledged_after.is_empty(),
        "the old primary acknowledged after the standby promoted itself (epoch {new_epoch}):\n{}",
        acknowledged_after.join("\n")
    );

    // The new primary takes orders meanwhile.
    let on_new = standby.client().reserve(SKUS[0].0, 1, "cut-auto-new");

    net.heal();
    let fenced = old.wait_for_cluster("the old primary to be fenced after the heal", |status| {
        status["role"] != "primary" && status["epoch"] == new_epoch
    });
    let (status, refused) = old.client().place_order(SKUS[0].0, 1, "cut-auto-too-late");
    assert_eq!(
        (status, refused["code"].as_str()),
        (503, Some("not_primary")),
        "{fenced} {refused}"
    );

    attempts.extend(after_attempts);
    attempts.push(Attempt {
        sku: SKUS[0].0.to_owned(),
        quantity: 1,
        customer: "cut-auto-paid".into(),
        idempotency_key: String::new(),
        outcome: Outcome::Created(paid),
    });
    attempts.push(Attempt {
        sku: SKUS[0].0.to_owned(),
        quantity: 1,
        customer: "cut-auto-new".into(),
        idempotency_key: String::new(),
        outcome: Outcome::Created(on_new),
    });
    let figures = audit(&standby, &SKUS, &attempts);
    // The fenced node follows the new primary, discarding the tail it wrote
    // alone, and ends with the same state.
    let target = standby.cluster()["durable_lsn"].clone();
    old.wait_for_cluster("the old primary to catch up with the new one", |status| {
        status["role"] == "standby" && status["durable_lsn"] == target
    });
    for (sku, _) in SKUS {
        assert_eq!(old.client().sku(sku), standby.client().sku(sku), "{sku}");
    }
    Figures {
        faults: 1,
        ..figures
    }
    .report(test);
}

/// A partition in both directions (link down): the standby promotes itself,
/// the old primary acknowledges nothing after that and is fenced after the
/// heal; nothing acknowledged before is lost.
#[test]
fn auto_promotion_fences_a_primary_cut_off_in_both_directions() {
    auto_promotion_fences_the_cut_off_primary(
        "auto_promotion_fences_a_primary_cut_off_in_both_directions",
        Cut::Both,
    );
}

/// A partition in one direction (everything the primary sends is lost, the
/// standby's packets still arrive): the standby hears nothing and promotes
/// itself; the old primary acknowledges nothing after that and is fenced
/// after the heal; nothing acknowledged before is lost.
#[test]
fn auto_promotion_fences_a_primary_whose_packets_are_lost() {
    auto_promotion_fences_the_cut_off_primary(
        "auto_promotion_fences_a_primary_whose_packets_are_lost",
        Cut::FromPrimary,
    );
}

/// A partition in the other direction (everything the standby sends is lost,
/// the primary's packets still arrive): the primary hears no acknowledgement
/// and refuses, its connection times out, the standby then hears nothing and
/// promotes itself; the old primary acknowledges nothing after that and is
/// fenced after the heal; nothing acknowledged before is lost.
#[test]
fn auto_promotion_fences_a_primary_that_hears_nothing() {
    auto_promotion_fences_the_cut_off_primary(
        "auto_promotion_fences_a_primary_that_hears_nothing",
        Cut::FromStandby,
    );
}
