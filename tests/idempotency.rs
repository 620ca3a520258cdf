mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use common::{order_id, Client, Launch};
use serde_json::{json, Value};

const RETRIES: usize = 50;
const KEY: &str = "checkout-7f3a";

fn place_with_key(api: &Client, body: &Value) -> (u16, Value) {
    api.try_post_json("/v1/orders", body, &[("Idempotency-Key", KEY)])
        .unwrap_or_else(|error| panic!("POST /v1/orders with {body}: no answer: {error}"))
}

/// One Idempotency-Key sent 50 times at once makes exactly one order, a changed
/// body under that key is refused, and the key still answers with the same order
/// after a restart: clients retry on timeouts, and a retry must never buy twice.
#[test]
fn concurrent_and_later_retries_of_one_key_make_one_order() {
    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = Launch::new().data_dir(data.path()).start();
    let api = server.client().clone();
    api.put_sku("sneaker-42", json!({ "stock": 10 }));
    api.put_sku("sneaker-43", json!({ "stock": 10 }));
    let body = json!({ "sku": "sneaker-42", "quantity": 1, "customer_id": "ada" });

    let start = Arc::new(Barrier::new(RETRIES));
    let threads: Vec<_> = (0..RETRIES)
        .map(|_| {
            let api = api.clone();
            let body = body.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                place_with_key(&api, &body)
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = threads
        .into_iter()
        .map(|thread| thread.join().expect("a retry thread panicked"))
        .collect();

    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    let replayed = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!((created, replayed), (1, RETRIES - 1), "{answers:?}");
    let ids: HashSet<String> = answers.iter().map(|(_, order)| order_id(order)).collect();
    assert_eq!(ids.len(), 1, "one order id across all answers: {ids:?}");
    let order = answers[0].1.clone();
    assert_eq!(order["status"], "reserved", "{order}");
    let sku = api.sku("sneaker-42");
    assert_eq!(
        (&sku["available"], &sku["reserved"]),
        (&json!(9), &json!(1)),
        "{sku}"
    );

    let different_quantity = json!({ "sku": "sneaker-42", "quantity": 2, "customer_id": "ada" });
    let different_sku = json!({ "sku": "sneaker-43", "quantity": 1, "customer_id": "ada" });
    for changed in [&different_quantity, &different_sku] {
        let (status, problem) = place_with_key(&api, changed);
        assert_eq!(status, 422, "{changed}: {problem}");
        assert_eq!(problem["code"], "idempotency_key_reused", "{problem}");
    }
    // The key belongs to the customer: another customer may use the same one.
    let other_customer = json!({ "sku": "sneaker-42", "quantity": 1, "customer_id": "grace" });
    let (status, other_order) = place_with_key(&api, &other_customer);
    assert_eq!(status, 201, "{other_order}");
    assert_ne!(order_id(&other_order), order_id(&order));

    assert!(server.terminate().success(), "graceful shutdown");
    let server = Launch::new().data_dir(data.path()).start();
    let api = server.client();
    let (status, retried) = place_with_key(api, &body);
    assert_eq!(status, 200, "{retried}");
    assert_eq!(retried, order, "the same order after the restart");
    for changed in [&different_quantity, &different_sku] {
        let (status, problem) = place_with_key(api, changed);
        assert_eq!(status, 422, "{changed} after the restart: {problem}");
        assert_eq!(problem["code"], "idempotency_key_reused", "{problem}");
    }
    let sku = api.sku("sneaker-42");
    assert_eq!(
        (&sku["available"], &sku["reserved"]),
        (&json!(8), &json!(2)),
        "{sku}"
    );
    assert_eq!(api.sku("sneaker-43")["available"], 10);
}

/// A refused order does not use up its Idempotency-Key: a client that fixes its
/// request (another SKU, another quantity) and retries under the same key gets an
/// order, and a sold-out sale's refusals hold no key. A key with an order stays
/// bound to it.
#[test]
fn a_refused_order_frees_its_key_for_a_corrected_request() {
    let server = Launch::new().start();
    let api = server.client();
    api.put_sku("shoe", json!({ "stock": 1 }));

    let ghost = json!({ "sku": "ghost", "quantity": 1, "customer_id": "c1" });
    let (status, problem) = place_with_key(api, &ghost);
    assert_eq!(
        (status, problem["code"].as_str()),
        (404, Some("unknown_sku")),
        "{problem}"
    );

    let too_many = json!({ "sku": "shoe", "quantity": 2, "customer_id": "c1" });
    let (status, problem) = place_with_key(api, &too_many);
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("insufficient_stock")),
        "{problem}"
    );

    let fixed = json!({ "sku": "shoe", "quantity": 1, "customer_id": "c1" });
    let (status, first) = place_with_key(api, &fixed);
    assert_eq!(status, 201, "{first}");

    // Now the key has an order: a different request under it is refused, and the
    // original request replays.
    let (status, problem) = place_with_key(api, &too_many);
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{problem}"
    );
    let (status, again) = place_with_key(api, &fixed);
    assert_eq!(status, 200, "{again}");
    assert_eq!(order_id(&again), order_id(&first));
}
