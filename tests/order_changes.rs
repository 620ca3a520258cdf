//! Changes before shipping, over HTTP: `PATCH /v1/orders/{id}` changes a
//! reserved or confirmed order's quantity or SKU all or nothing — within its
//! shard, and to a SKU of another shard (a move) — keeps its id, shows its
//! history, and survives a crash; a refusal leaves the order as it was.

mod common;

use common::{order_id, Launch, Server};
use serde_json::{json, Value};

fn patch(server: &Server, id: &str, key: &str, body: &Value) -> (u16, Value) {
    let client = server.client();
    let request = client
        .request("PATCH", &format!("/v1/orders/{id}"))
        .set("Content-Type", "application/json")
        .set("Idempotency-Key", key);
    let answer = client.send(request, Some(&body.to_string()));
    (answer.status, answer.json())
}

/// The shard an order id names (`<epoch>-<shard>-<number>`).
fn shard_of(id: &str) -> u64 {
    id.split('-').nth(1).unwrap().parse().unwrap()
}

fn units(server: &Server, sku: &str) -> (u64, u64, u64) {
    let body = server.client().sku(sku);
    (
        body["available"].as_u64().unwrap(),
        body["reserved"].as_u64().unwrap(),
        body["sold"].as_u64().unwrap(),
    )
}

/// Within one shard: quantity up and down, another SKU, refusals that leave
/// the order as it was, idempotent retries, history on GET, bad input.
#[test]
fn changes_within_a_shard_are_all_or_nothing() {
    let server = Launch::new().env("FLASHGATE_SHARDS", "1").start();
    let client = server.client();
    client.put_sku("tee-m", json!({ "stock": 5, "per_customer_limit": 4 }));
    client.put_sku("tee-l", json!({ "stock": 1 }));
    let id = order_id(&client.reserve("tee-m", 2, "alice"));

    let (status, body) = patch(&server, &id, "k1", &json!({ "quantity": 3 }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["quantity"], 3);
    assert_eq!(units(&server, "tee-m"), (2, 3, 0));
    // The same request again: the order as it is; another body: refused.
    let (status, body) = patch(&server, &id, "k1", &json!({ "quantity": 3 }));
    assert_eq!((status, body["quantity"].as_u64()), (200, Some(3)));
    let (status, body) = patch(&server, &id, "k1", &json!({ "quantity": 1 }));
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    // Over the limit of 4: refused, nothing moved.
    let (status, body) = patch(&server, &id, "k2", &json!({ "quantity": 5 }));
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("limit_exceeded"))
    );
    assert_eq!(units(&server, "tee-m"), (2, 3, 0));
    // Another SKU with too little stock: refused, nothing moved.
    let (status, body) = patch(&server, &id, "k3", &json!({ "sku": "tee-l" }));
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("insufficient_stock"))
    );
    // Another SKU with enough: the units move at once.
    let (status, body) = patch(
        &server,
        &id,
        "k4",
        &json!({ "sku": "tee-l", "quantity": 1 }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["sku"].as_str(), body["order_id"].as_str()),
        (Some("tee-l"), Some(id.as_str()))
    );
    assert_eq!(units(&server, "tee-m"), (5, 0, 0));
    assert_eq!(units(&server, "tee-l"), (0, 1, 0));
    let read = client.order(&id);
    let changes = read["changes"].as_array().expect("a history");
    assert_eq!(changes.len(), 2, "{read}");
    assert_eq!(changes[1]["from_sku"], "tee-m");
    assert_eq!(changes[1]["to_sku"], "tee-l");

    // Bad input is said so.
    let (status, body) = patch(&server, &id, "k5", &json!({}));
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let (status, body) = patch(&server, &id, "k6", &json!({ "quantity": 0 }));
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let request = client
        .request("PATCH", &format!("/v1/orders/{id}"))
        .set("Content-Type", "application/json");
    let answer = client.send(request, Some(r#"{"quantity": 1}"#));
    assert_eq!(answer.status, 422);
    assert!(answer.json()["detail"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));

    // Shipped: final.
    assert_eq!(client.confirm(&id).0, 200);
    let (status, _) = client.admin_post(&format!("/v1/orders/{id}/ship"), &json!({}));
    assert_eq!(status, 200);
    let (status, body) = patch(&server, &id, "k7", &json!({ "sku": "tee-m" }));
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("invalid_transition"))
    );
}

/// To a SKU of another shard: the order moves (same id, new SKU), its units
/// are released on the old SKU and held on the new one; a refused move
/// leaves it as it was; commands and reads follow it; after a SIGKILL and
/// a restart everything is as acknowledged.
#[test]
fn a_move_to_another_shard_keeps_the_order_and_its_units_exact() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let data_dir = dir.path().join("data");
    let mut server = Launch::new()
        .env("FLASHGATE_SHARDS", "4")
        .data_dir(&data_dir)
        .start();
    let client = server.client();
    // Find two SKUs on different shards: an order's id names its shard.
    let mut by_shard = std::collections::BTreeMap::new();
    for index in 0..32 {
        let sku = format!("size-{index}");
        client.put_sku(&sku, json!({ "stock": 3 }));
        let probe = order_id(&client.reserve(&sku, 1, "probe"));
        assert_eq!(client.cancel(&probe).0, 200);
        by_shard.entry(shard_of(&probe)).or_insert(sku);
        if by_shard.len() >= 2 {
            break;
        }
    }
    let mut skus = by_shard.into_values();
    let (from, to) = (skus.next().unwrap(), skus.next().unwrap());

    let id = order_id(&client.reserve(&from, 2, "bob"));
    // The target has too little: refused, the order as it was.
    let (status, body) = patch(&server, &id, "m0", &json!({ "sku": to, "quantity": 4 }));
    assert!(status == 409 || status == 422, "{status} {body}");
    assert_eq!(units(&server, &from), (1, 2, 0));
    assert_eq!(units(&server, &to), (3, 0, 0));
    assert_eq!(client.order(&id)["sku"], from.as_str());

    // A move that fits.
    let (status, body) = patch(&server, &id, "m1", &json!({ "sku": to }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], id.as_str());
    assert_eq!(
        (body["sku"].as_str(), body["quantity"].as_u64()),
        (Some(to.as_str()), Some(2))
    );
    assert_eq!(units(&server, &from), (3, 0, 0));
    assert_eq!(units(&server, &to), (1, 2, 0));
    // The same request again: answered by the shard it moved to.
    let (status, body) = patch(&server, &id, "m1", &json!({ "sku": to }));
    assert_eq!((status, body["sku"].as_str()), (200, Some(to.as_str())));
    assert_eq!(units(&server, &to), (1, 2, 0));
    // Reads and commands follow it.
    assert_eq!(client.order(&id)["sku"], to.as_str());
    let (status, read) = client.post_json("/v1/orders/read", &json!({ "order_ids": [id] }));
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["orders"][0]["sku"], to.as_str(), "{read}");
    assert_eq!(client.confirm(&id).0, 200);
    assert_eq!(units(&server, &to), (1, 0, 2));
    // Once moved, it changes within its new shard only.
    let (status, body) = patch(&server, &id, "m2", &json!({ "quantity": 1 }));
    assert_eq!((status, body["quantity"].as_u64()), (200, Some(1)));
    assert_eq!(units(&server, &to), (2, 0, 1));

    // SIGKILL and restart: as acknowledged.
    server.kill();
    let server = Launch::new()
        .env("FLASHGATE_SHARDS", "4")
        .data_dir(&data_dir)
        .start();
    let client = server.client();
    let read = client.order(&id);
    assert_eq!(
        (read["sku"].as_str(), read["status"].as_str()),
        (Some(to.as_str()), Some("confirmed"))
    );
    assert_eq!(read["changes"].as_array().unwrap().len(), 2, "{read}");
    assert_eq!(units(&server, &from), (3, 0, 0));
    assert_eq!(units(&server, &to), (2, 0, 1));
    assert_eq!(client.cancel(&id).0, 200);
    assert_eq!(units(&server, &to), (3, 0, 0));
}
