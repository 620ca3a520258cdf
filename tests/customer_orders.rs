//! A customer's order listing, `GET /v1/customers/{customer_id}/orders`,
//! against the real binary. A buyer's "my orders" page is built on it, so
//! a walk through its pages must show every order of that customer exactly
//! once, newest first, whichever shard owns it and whether it is live,
//! finished, or already gone from memory to the archive; and it must stay so
//! across a SIGKILL and restart, and on a standby.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{buyer_token, order_id, poll_until, Client, Launch};
use serde_json::{json, Value};

const SKUS: [&str; 6] = ["list-a", "list-b", "list-c", "list-d", "list-e", "list-f"];
const PAGE_MAX: usize = 5;
const WAIT: Duration = Duration::from_secs(30);

/// A node with 4 shards whose finished orders leave memory at once, so
/// that a listing must read the archive for them.
fn launch() -> Launch {
    Launch::new()
        .env("FLASHGATE_SHARDS", "4")
        .env("FLASHGATE_FINISHED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_CUSTOMER_ORDERS_PAGE_MAX", &PAGE_MAX.to_string())
}

fn set_up_skus(client: &Client) {
    for sku in SKUS {
        client.put_sku(sku, json!({ "stock": 1000, "per_customer_limit": 1000 }));
    }
}

fn path(customer: &str, query: &str) -> String {
    format!("/v1/customers/{customer}/orders{query}")
}

/// Every page of `customer`'s listing, `limit` at a time, in order; checks
/// each page's shape on the way.
fn walk(client: &Client, customer: &str, limit: usize) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let query = match &cursor {
            Some(cursor) => format!("?limit={limit}&cursor={cursor}"),
            None => format!("?limit={limit}"),
        };
        let (status, page) = client.get(&path(customer, &query));
        assert_eq!(status, 200, "{page}");
        let listed = page["orders"].as_array().expect("an array of orders");
        assert!(listed.len() <= limit, "{page}");
        orders.extend(listed.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return orders,
        }
    }
    panic!("the listing of {customer} never ended");
}

/// Order id → status, from a walk; asserts that the walk named each order
/// once, all of `customer`, newest first.
fn statuses(customer: &str, walked: &[Value]) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    for order in walked {
        assert_eq!(order["customer_id"], customer, "{order}");
        let status = order["status"].as_str().expect("a status").to_owned();
        assert!(
            seen.insert(order_id(order), status).is_none(),
            "listed twice: {order}"
        );
    }
    let created: Vec<&str> = walked
        .iter()
        .map(|order| order["created_at"].as_str().expect("created_at"))
        .collect();
    let mut newest_first = created.clone();
    // RFC 3339 in UTC with milliseconds sorts as text.
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(created, newest_first, "not newest first");
    seen
}

fn retired(client: &Client) -> f64 {
    client
        .metrics_page()
        .lines()
        .find_map(|line| line.strip_prefix("flashgate_orders_retired_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Places alice's and bob's orders over every SKU, cancels some of alice's
/// (they leave memory for the archive), confirms others; returns what
/// alice's listing must hold.
fn place_orders(client: &Client) -> BTreeMap<String, String> {
    let mut alice = BTreeMap::new();
    for n in 0..14 {
        let order = client.reserve(SKUS[n % SKUS.len()], 1, "alice");
        alice.insert(order_id(&order), "reserved".to_owned());
        if n % 4 == 1 {
            client.reserve(SKUS[n % SKUS.len()], 1, "bob");
        }
    }
    let ids: Vec<String> = alice.keys().cloned().collect();
    for (n, id) in ids.iter().enumerate() {
        match n % 3 {
            0 => {
                let (status, body) = client.cancel(id);
                assert_eq!(status, 200, "{body}");
                alice.insert(id.clone(), "cancelled".to_owned());
            }
            1 => {
                let (status, body) = client.confirm(id);
                assert_eq!(status, 200, "{body}");
                alice.insert(id.clone(), "confirmed".to_owned());
            }
            _ => {}
        }
    }
    let cancelled = alice.values().filter(|s| *s == "cancelled").count() as f64;
    poll_until("cancelled orders to leave memory", WAIT, || {
        (retired(client) >= cancelled).then_some(())
    });
    alice
}

/// Across four shards, with cancelled orders already in the archive: pages
/// of every size walk through each of alice's orders exactly once, newest
/// first, with its current status, and none of bob's; after a SIGKILL and a
/// restart (memory rebuilt from the log, the archive read back) the walk is
/// the same. Without the archive's index the cancelled orders would be
/// missing (checked: the walk then lacks every cancelled order).
#[test]
fn a_walk_through_the_pages_lists_every_order_once_newest_first_across_shards_and_restarts() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let data_dir = data.path().join("data");
    let mut server = launch().data_dir(&data_dir).start();
    set_up_skus(server.client());
    let alice = place_orders(server.client());
    let shards: BTreeSet<&str> = alice
        .keys()
        .map(|id| id.split('-').nth(1).expect("a shard"))
        .collect();
    assert!(shards.len() >= 2, "orders on one shard only: {shards:?}");

    for limit in [1, 3, PAGE_MAX] {
        let walked = walk(server.client(), "alice", limit);
        assert_eq!(statuses("alice", &walked), alice, "pages of {limit}");
    }
    let bob = walk(server.client(), "bob", PAGE_MAX);
    assert_eq!(statuses("bob", &bob).len(), 4);
    let first = walk(server.client(), "alice", PAGE_MAX);

    server.kill();
    let restarted = launch().data_dir(&data_dir).start();
    let again = walk(restarted.client(), "alice", 3);
    assert_eq!(statuses("alice", &again), alice, "after the restart");
    assert_eq!(
        again.iter().map(order_id).collect::<Vec<_>>(),
        first.iter().map(order_id).collect::<Vec<_>>(),
        "the same order after the restart"
    );
}

/// A buyer lists its own orders and is refused another's with
/// `customer_mismatch`; every bad request is a problem+json naming what was
/// wrong (no credential, a bad limit, cursor, customer id or parameter, a
/// wrong method), and an unknown customer has an empty last page. The API
/// promises this on every endpoint, and a listing that leaked another
/// buyer's orders would be a breach.
#[test]
fn a_buyer_lists_its_own_orders_only_and_bad_requests_say_what_was_wrong() {
    let server = launch().start();
    set_up_skus(server.client());
    let order = server.client().reserve(SKUS[0], 1, "carol");
    server.client().reserve(SKUS[1], 1, "dave");

    let carol = server.client().with_credential(Some(&buyer_token("carol")));
    let (status, page) = carol.get(&path("carol", ""));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["orders"].as_array().map(Vec::len), Some(1), "{page}");
    assert_eq!(order_id(&page["orders"][0]), order_id(&order));
    assert_eq!(page["next_cursor"], Value::Null);

    let refused = |client: &Client, path: &str, method: &str| {
        let answer = client.send(client.request(method, path), None);
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json"),
            "{path}: {}",
            answer.text
        );
        (answer.status, answer.json())
    };
    let (status, problem) = refused(&carol, &path("dave", ""), "GET");
    assert_eq!(
        (status, problem["code"].as_str()),
        (403, Some("customer_mismatch"))
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("carol"),
        "{problem}"
    );
    let anonymous = server.client().with_credential(None);
    let (status, problem) = refused(&anonymous, &path("carol", ""), "GET");
    assert_eq!(
        (status, problem["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let long = "x".repeat(65);
    for (query, customer, named) in [
        ("?limit=0", "carol", "limit"),
        ("?limit=6", "carol", "limit"),
        ("?limit=many", "carol", "limit"),
        ("?limit=2&limit=3", "carol", "limit"),
        ("?cursor=yesterday", "carol", "cursor"),
        ("?page=2", "carol", "page"),
        ("", long.as_str(), "customer_id"),
    ] {
        let (status, problem) = refused(server.client(), &path(customer, query), "GET");
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("invalid_field")),
            "{query}: {problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(named),
            "{query}: {problem}"
        );
    }
    let (status, problem) = refused(server.client(), &path("carol", ""), "POST");
    assert_eq!(
        (status, problem["code"].as_str()),
        (405, Some("method_not_allowed"))
    );

    let (status, page) = server.client().get(&path("nobody", ""));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page, json!({ "orders": [], "next_cursor": null }));
}

/// A standby lists what its primary lists, the archived orders included:
/// it archives (and indexes) what it retires from the replicated log, so a
/// buyer's order history survives a failover; once promoted, it lists new
/// orders above the old ones.
#[test]
fn a_standby_lists_what_its_primary_lists_and_goes_on_after_a_failover() {
    let mut primary = launch().replicated("127.0.0.1:0").start();
    let standby = launch()
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .start();
    set_up_skus(primary.client());
    let alice = place_orders(primary.client());
    let on_primary = walk(primary.client(), "alice", 4);
    assert_eq!(statuses("alice", &on_primary), alice);
    let ids: Vec<String> = on_primary.iter().map(order_id).collect();
    poll_until(
        "the standby to list alice's orders as its primary does",
        WAIT,
        || {
            let on_standby = walk(standby.client(), "alice", 4);
            (on_standby.iter().map(order_id).collect::<Vec<_>>() == ids
                && statuses("alice", &on_standby) == alice)
                .then_some(())
        },
    );

    // Failover: the promoted standby lists the same history, and a new
    // order on top of it.
    primary.kill();
    standby.promote();
    let newest = order_id(&standby.client().reserve(SKUS[2], 1, "alice"));
    let after = walk(standby.client(), "alice", 4);
    let mut expected = vec![newest];
    expected.extend(ids);
    assert_eq!(after.iter().map(order_id).collect::<Vec<_>>(), expected);
}
