//! Sold out and not yet open are answered at the front end, from what the
//! SKU's shard publishes, without a round trip to the shard or a wait for the
//! log (`actors/src/domain/gate.rs`); and the fast path only ever errs towards
//! asking the shard: a unit freed by a cancel, an expiry or a restock is sold
//! to the very next buyer, and an idempotent retry still gets its order.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{poll_until, Client, Launch, Server};
use serde_json::{json, Value};

/// Orders answered from a shard's gate since the node started, for `code`.
fn refused_at_edge(client: &Client, code: &str) -> u64 {
    let prefix = format!("flashgate_orders_refused_at_edge_total{{code=\"{code}\"}} ");
    client
        .metrics_page()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().expect("a counter"))
}

fn refusal(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["code"].as_str().unwrap_or(""))
}

/// After the last unit went, buyers are refused at the edge; a cancel, a
/// restock and an idempotent retry each reach the shard at once.
#[test]
fn a_sold_out_sku_is_refused_at_the_edge_and_a_freed_unit_sells_at_once() {
    let server = Launch::new().start();
    let api = server.client();
    api.put_sku("DROP", json!({ "stock": 2 }));
    let first = api.reserve("DROP", 1, "early-1");
    let keyed = api.try_post_json(
        "/v1/orders",
        &json!({ "sku": "DROP", "quantity": 1, "customer_id": "early-2" }),
        &[("idempotency-key", "retry-me")],
    );
    let keyed = keyed.expect("an answer");
    assert_eq!(keyed.0, 201, "{}", keyed.1);

    // Sold out, and durable: every later buyer is refused at the edge.
    let before = refused_at_edge(api, "sold_out");
    for buyer in 0..50 {
        let answer = api.place_order("DROP", 1, &format!("late-{buyer}"));
        assert_eq!(refusal(&answer), (409, "sold_out"), "{}", answer.1);
    }
    assert_eq!(refused_at_edge(api, "sold_out") - before, 50);

    // A retry of an order that exists is the shard's: it answers the order.
    let retry = api
        .try_post_json(
            "/v1/orders",
            &json!({ "sku": "DROP", "quantity": 1, "customer_id": "early-2" }),
            &[("idempotency-key", "retry-me")],
        )
        .expect("an answer");
    assert_eq!(
        retry.0, 200,
        "the retry is answered with its order: {}",
        retry.1
    );
    assert_eq!(retry.1["order_id"], keyed.1["order_id"]);

    // A cancel frees a unit: the next buyer gets it, then the edge refuses again.
    let order_id = first["order_id"].as_str().unwrap();
    assert_eq!(api.cancel(order_id).0, 200);
    api.reserve("DROP", 1, "after-cancel");
    let answer = api.place_order("DROP", 1, "after-resale");
    assert_eq!(refusal(&answer), (409, "sold_out"), "{}", answer.1);

    // A restock does the same.
    let (status, body) = api.admin_post("/v1/skus/DROP/restock", &json!({ "quantity": 1 }));
    assert_eq!(status, 200, "{body}");
    api.reserve("DROP", 1, "after-restock");
    let answer = api.place_order("DROP", 1, "after-restock-2");
    assert_eq!(refusal(&answer), (409, "sold_out"), "{}", answer.1);

    let sku = api.sku("DROP");
    assert_eq!(sku["available"], 0, "{sku}");
    assert_eq!(sku["total"], 3, "{sku}");
}

/// Before its opening a SKU is refused `sale_not_open` at the edge, with the
/// opening time, as the shard would answer.
#[test]
fn a_sale_not_open_is_refused_at_the_edge() {
    let server = Launch::new().start();
    let api = server.client();
    api.put_sku(
        "LATER",
        json!({ "stock": 5, "sale_starts_at": "2999-01-01T00:00:00Z" }),
    );
    // The SKU's creation is durable once its PUT is answered.
    for buyer in 0..10 {
        let answer = api.place_order("LATER", 1, &format!("eager-{buyer}"));
        assert_eq!(refusal(&answer), (409, "sale_not_open"), "{}", answer.1);
        assert!(
            answer.1["detail"]
                .as_str()
                .unwrap_or("")
                .contains("2999-01-01"),
            "{}",
            answer.1
        );
    }
    assert_eq!(refused_at_edge(api, "sale_not_open"), 10);
    // Opening the sale now lets the next buyer in.
    api.put_sku("LATER", json!({ "sale_starts_at": "2000-01-01T00:00:00Z" }));
    api.reserve("LATER", 1, "first-in");
}

/// A reservation that expires unpaid is offered again at once: the expiry
/// pass clears the SKU's gate before any buyer could be sold the unit.
#[test]
fn an_expired_reservation_is_offered_again_at_once() {
    let server = Launch::new()
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "50")
        .start();
    let api = server.client();
    api.put_sku("SHORT", json!({ "stock": 1, "reservation_ttl_secs": 1 }));
    let held = api.reserve("SHORT", 1, "slow-payer");
    let answer = api.place_order("SHORT", 1, "waiting");
    assert_eq!(refusal(&answer), (409, "sold_out"), "{}", answer.1);
    let order_id = held["order_id"].as_str().unwrap().to_owned();
    poll_until("the reservation expires", Duration::from_secs(10), || {
        (api.order(&order_id)["status"] == "expired").then_some(())
    });
    api.reserve("SHORT", 1, "waiting");
}

/// A sale with cancels throughout, over HTTP: 8 buyers keep ordering while
/// 30 of their orders are cancelled; once the cancels stop, the buyers sell
/// every freed unit again. A gate that stayed "sold out" after a cancel
/// would refuse them all and leave units unsold.
#[test]
fn a_sale_with_cancels_leaves_no_unit_unsold() {
    const STOCK: u64 = 20;
    const CANCELS: usize = 30;
    let server = Launch::new().start();
    let api = server.client().clone();
    api.put_sku("RUSH", json!({ "stock": STOCK }));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let cancels_done = Arc::new(AtomicBool::new(false));
    let sold_out_after_cancels = Arc::new(AtomicU64::new(0));
    let buyers: Vec<_> = (0..8)
        .map(|buyer| {
            let api = api.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let cancels_done = Arc::clone(&cancels_done);
            let sold_out_after_cancels = Arc::clone(&sold_out_after_cancels);
            std::thread::spawn(move || {
                for attempt in 0..100_000u64 {
                    // Stop once the cancels are over and the SKU has been
                    // refused to this buyer enough times since.
                    if sold_out_after_cancels.load(Ordering::SeqCst) >= 200 {
                        return;
                    }
                    let done = cancels_done.load(Ordering::SeqCst);
                    let (status, body) =
                        api.place_order("RUSH", 1, &format!("buyer-{buyer}-{attempt}"));
                    match (status, body["code"].as_str()) {
                        (201, _) => {
                            let id = body["order_id"].as_str().unwrap().to_owned();
                            acknowledged.lock().unwrap().push(id);
                        }
                        (409, Some("sold_out")) if done => {
                            sold_out_after_cancels.fetch_add(1, Ordering::SeqCst);
                        }
                        (409, Some("sold_out")) => {}
                        other => panic!("unexpected answer {other:?}: {body}"),
                    }
                }
            })
        })
        .collect();
    let mut cancelled = 0;
    poll_until("30 cancels", Duration::from_secs(60), || {
        let id = acknowledged.lock().unwrap().pop();
        if let Some(id) = id {
            assert_eq!(api.cancel(&id).0, 200);
            cancelled += 1;
        }
        (cancelled == CANCELS).then_some(())
    });
    cancels_done.store(true, Ordering::SeqCst);
    for buyer in buyers {
        buyer.join().expect("a buyer thread");
    }
    let sku = api.sku("RUSH");
    assert_eq!(sku["available"], 0, "a freed unit was left unsold: {sku}");
    assert_eq!(sku["reserved"], STOCK, "{sku}");
    assert!(refused_at_edge(&api, "sold_out") > 0);
    check_counts(&server, STOCK + CANCELS as u64);
}

/// The node created exactly `orders` orders (sold + cancelled), per its
/// metrics: none lost, none beyond the stock.
fn check_counts(server: &Server, orders: u64) {
    let page = server.client().metrics_page();
    let created = page
        .lines()
        .find_map(|line| line.strip_prefix("flashgate_orders_total{outcome=\"created\"} "))
        .map_or(0, |value| value.trim().parse::<u64>().expect("a counter"));
    assert_eq!(created, orders, "orders created");
}

/// Over QUIC the same: single orders and a batch for a sold-out SKU are
/// refused at the edge (both front ends call one `Node`).
#[test]
fn over_quic_single_orders_and_batches_are_refused_at_the_edge() {
    use flashgate_client::{ClientError, OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};

    let server = Launch::new().start();
    let api = server.client();
    api.put_sku("GONE", json!({ "stock": 1 }));
    api.reserve("GONE", 1, "the-one");
    let before = refused_at_edge(api, "sold_out");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let endpoint = server.quic().expect("the server listens for QUIC");
        let fingerprint = endpoint.sha256.parse().expect("a fingerprint");
        let mut config = QuicConfig::new(vec![endpoint.addr], Trust::Fingerprint(fingerprint));
        config.credential = Some(server.admin_token().to_owned());
        let client = QuicClient::connect(config).await.expect("QUIC connect");
        let code = |error: ClientError| match error {
            ClientError::Server { code, .. } => code,
            other => panic!("expected a refusal, got {other}"),
        };
        let single = client.place(PlaceOrder::new("GONE", 1, "quic-1")).await;
        assert_eq!(code(single.unwrap_err()), "sold_out");
        let batch = (0..10)
            .map(|i| PlaceOrder::new("GONE", 1, format!("quic-batch-{i}")))
            .collect();
        let results = client.place_batch(batch).await.expect("a batch answer");
        assert_eq!(results.len(), 10);
        for result in results {
            assert_eq!(code(result.unwrap_err()), "sold_out");
        }
    });
    assert_eq!(refused_at_edge(api, "sold_out") - before, 11);
}

/// A unit freed by a cancel is offered to the very next order every time,
/// also when the cancel's answer leaves before the shard has moved on: 8
/// buyers, each on a SKU of one unit, place and cancel 150 times.
#[test]
fn every_cancelled_unit_is_offered_to_the_next_order() {
    let server = Launch::new().start();
    let api = server.client().clone();
    let buyers: Vec<_> = (0..8)
        .map(|buyer| {
            let api = api.clone();
            let sku = format!("ONE-{buyer}");
            api.put_sku(&sku, json!({ "stock": 1 }));
            std::thread::spawn(move || {
                for cycle in 0..150 {
                    let (status, order) = api.place_order(&sku, 1, &format!("b-{buyer}"));
                    assert_eq!(status, 201, "cycle {cycle} on {sku}: {order}");
                    let id = order["order_id"].as_str().unwrap().to_owned();
                    assert_eq!(api.cancel(&id).0, 200);
                }
            })
        })
        .collect();
    for buyer in buyers {
        buyer.join().expect("every order of every cycle was placed");
    }
}
