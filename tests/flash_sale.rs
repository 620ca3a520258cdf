mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{order_id, Server};
use serde_json::{json, Value};

const STOCK: u64 = 100;
const CUSTOMERS: usize = 500;
const ATTEMPTS: usize = 2_000;
const THREADS: usize = 64;

/// 2,000 concurrent attempts on 100 units sell exactly 100, never two to one
/// customer, and refuse the rest with a clear 409: the core promise of a flash
/// sale gateway is no oversell and no per-customer cheating under contention.
#[test]
fn a_contended_sale_sells_every_unit_exactly_once() {
    let server = Server::start();
    let api = server.client();
    api.put_sku("drop-1", json!({ "stock": STOCK, "per_customer_limit": 1 }));

    let next_attempt = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let api = api.clone();
            let next_attempt = Arc::clone(&next_attempt);
            std::thread::spawn(move || {
                let mut answers: Vec<(String, u16, Value)> = Vec::new();
                loop {
                    let attempt = next_attempt.fetch_add(1, Ordering::AcqRel);
                    if attempt >= ATTEMPTS {
                        return answers;
                    }
                    let customer = format!("customer-{:03}", attempt % CUSTOMERS);
                    let (status, body) = api.place_order("drop-1", 1, &customer);
                    answers.push((customer, status, body));
                }
            })
        })
        .collect();
    let answers: Vec<(String, u16, Value)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("an order thread panicked"))
        .collect();
    assert_eq!(answers.len(), ATTEMPTS);

    let mut orders_by_customer: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut refusals: HashMap<String, usize> = HashMap::new();
    let mut overloaded = 0;
    for (customer, status, body) in &answers {
        match (status, body["code"].as_str()) {
            (201, _) => {
                assert_eq!(body["sku"], "drop-1", "{body}");
                assert_eq!(body["quantity"], 1, "{body}");
                assert_eq!(body["customer_id"], customer.as_str(), "{body}");
                assert_eq!(body["status"], "reserved", "{body}");
                orders_by_customer.entry(customer).or_default().push(body);
            }
            (409, Some(code @ ("sold_out" | "limit_exceeded"))) => {
                *refusals.entry(code.to_owned()).or_default() += 1;
            }
            (503, Some("overloaded")) => overloaded += 1,
            _ => panic!("order for {customer} answered {status}: {body}"),
        }
    }
    // 64 clients cannot fill a shard's default queue of 4,096 requests.
    assert_eq!(overloaded, 0, "503 overloaded with default limits");

    let created: Vec<&Value> = orders_by_customer.values().flatten().copied().collect();
    assert_eq!(
        created.len() as u64,
        STOCK,
        "201s; refusals were {refusals:?}"
    );
    for (customer, orders) in &orders_by_customer {
        assert_eq!(orders.len(), 1, "{customer} got {orders:?}");
    }
    assert_eq!(
        refusals.values().sum::<usize>(),
        ATTEMPTS - STOCK as usize,
        "{refusals:?}"
    );
    let ids: HashSet<String> = created.iter().map(|order| order_id(order)).collect();
    assert_eq!(ids.len(), created.len(), "order ids are unique");

    let sku = api.sku("drop-1");
    assert_eq!(
        (
            &sku["available"],
            &sku["reserved"],
            &sku["sold"],
            &sku["total"]
        ),
        (&json!(0), &json!(STOCK), &json!(0), &json!(STOCK)),
        "{sku}"
    );
    for order in created {
        assert_eq!(&api.order(&order_id(order)), order);
    }
}
