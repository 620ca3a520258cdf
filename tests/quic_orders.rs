//! Orders over QUIC through the client library, against the real binary: the
//! same guarantees as over HTTP (no oversell, limits, idempotency) when buyers
//! come over QUIC, over HTTP, or both at once on the same SKU; and an order the
//! server acknowledged survives the client vanishing and the server crashing.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use common::{Launch, Server, ADMIN_TOKEN};
use flashgate_client::{
    ClientError, HttpClient, HttpConfig, OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust,
};
use flashgate_protocol::{OrderStatus, SkuSettings};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn quic(server: &Server) -> QuicClient {
    let endpoint = server.quic().expect("the server listens for QUIC");
    let fingerprint = endpoint
        .sha256
        .parse()
        .expect("the printed fingerprint parses");
    let mut config = QuicConfig::new(vec![endpoint.addr], Trust::Fingerprint(fingerprint));
    config.admin_token = Some(ADMIN_TOKEN.to_owned());
    config.credential = Some(ADMIN_TOKEN.to_owned());
    QuicClient::connect(config).await.expect("QUIC connect")
}

fn http(server: &Server) -> HttpClient {
    let mut config = HttpConfig::new(server.base_url());
    config.admin_token = Some(ADMIN_TOKEN.to_owned());
    config.credential = Some(ADMIN_TOKEN.to_owned());
    HttpClient::new(config).expect("HTTP client")
}

fn settings(stock: u64, limit: u64) -> SkuSettings {
    SkuSettings {
        stock: Some(stock),
        per_customer_limit: Some(limit),
        ..SkuSettings::default()
    }
}

fn refusal_code(error: &ClientError) -> String {
    match error {
        ClientError::Server { code, .. } => code.clone(),
        other => panic!("expected a refusal from the server, got {other}"),
    }
}

/// The flash sale of the foundation, over QUIC: 100 units, a limit of 1, 2,000
/// attempts from 500 customers over 4 connections, single orders and batches
/// mixed → exactly 100 orders, no customer twice, counters that agree.
#[test]
fn flash_sale_over_quic_sells_every_unit_once() {
    let server = Launch::new().start();
    runtime().block_on(async {
        let admin = quic(&server).await;
        admin.put_sku("DROP", settings(100, 1)).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for connection in 0..4 {
            let client = Arc::new(quic(&server).await);
            for chunk in 0..10 {
                let client = Arc::clone(&client);
                tasks.spawn(async move {
                    // 50 attempts per task: 5 tasks as one batch each, 5 as single orders.
                    let orders: Vec<PlaceOrder> = (0..50)
                        .map(|i| {
                            let attempt = connection * 500 + chunk * 50 + i;
                            PlaceOrder::new("DROP", 1, format!("buyer-{}", attempt % 500))
                        })
                        .collect();
                    if chunk % 2 == 0 {
                        client
                            .place_batch(orders)
                            .await
                            .expect("the batch is answered")
                    } else {
                        let mut results = Vec::new();
                        for order in orders {
                            results.push(client.place(order).await);
                        }
                        results
                    }
                });
            }
        }
        let mut buyers = HashSet::new();
        let mut refusals: HashMap<String, usize> = HashMap::new();
        let mut attempts = 0;
        while let Some(results) = tasks.join_next().await {
            for result in results.unwrap() {
                attempts += 1;
                match result {
                    Ok(placed) => {
                        assert!(placed.created);
                        assert!(
                            buyers.insert(placed.order.customer_id.clone()),
                            "a customer bought twice"
                        );
                    }
                    Err(error) => *refusals.entry(refusal_code(&error)).or_default() += 1,
                }
            }
        }
        assert_eq!(attempts, 2_000);
        assert_eq!(buyers.len(), 100, "refusals: {refusals:?}");
        assert!(
            refusals
                .keys()
                .all(|code| code == "sold_out" || code == "limit_exceeded"),
            "unexpected refusals: {refusals:?}"
        );
        let sku = admin.sku("DROP").await.unwrap();
        assert_eq!(
            (sku.available, sku.reserved, sku.sold, sku.total),
            (0, 100, 0, 100)
        );
    });
}

/// Buyers over HTTP and over QUIC compete for one SKU at the same time: the total
/// sold is exactly the stock and no customer passes the limit, whichever way
/// each order came in.
#[test]
fn http_and_quic_buyers_share_one_stock() {
    let server = Launch::new().start();
    runtime().block_on(async {
        let quic_client = Arc::new(quic(&server).await);
        let http_client = Arc::new(http(&server));
        quic_client
            .put_sku("MIXED", settings(150, 2))
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        // 120 customers each try 3 orders: one over HTTP, two over QUIC.
        for customer in 0..120 {
            for attempt in 0..3 {
                let quic_client = Arc::clone(&quic_client);
                let http_client = Arc::clone(&http_client);
                tasks.spawn(async move {
                    let order = PlaceOrder::new("MIXED", 1, format!("c-{customer}"));
                    if attempt == 0 {
                        http_client.place(order).await
                    } else {
                        quic_client.place(order).await
                    }
                });
            }
        }
        let mut held: HashMap<String, u32> = HashMap::new();
        let mut created = 0;
        while let Some(result) = tasks.join_next().await {
            match result.unwrap() {
                Ok(placed) => {
                    created += 1;
                    *held.entry(placed.order.customer_id).or_default() += placed.order.quantity;
                }
                Err(error) => {
                    let code = refusal_code(&error);
                    assert!(code == "sold_out" || code == "limit_exceeded", "{code}");
                }
            }
        }
        assert_eq!(created, 150, "exactly the stock is sold");
        assert!(
            held.values().all(|units| *units <= 2),
            "a customer passed the limit"
        );
        let sku = http_client.sku("MIXED").await.unwrap();
        assert_eq!((sku.available, sku.reserved), (0, 150));
    });
}

/// One idempotency key sent 30 times at once over QUIC and 20 times over HTTP
/// makes one order; every answer names it, and exactly one says it created it.
#[test]
fn one_key_over_quic_and_http_makes_one_order() {
    let server = Launch::new().start();
    runtime().block_on(async {
        let quic_client = Arc::new(quic(&server).await);
        let http_client = Arc::new(http(&server));
        quic_client.put_sku("KEYED", settings(10, 5)).await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for attempt in 0..50 {
            let quic_client = Arc::clone(&quic_client);
            let http_client = Arc::clone(&http_client);
            tasks.spawn(async move {
                let order = PlaceOrder::new("KEYED", 1, "ada").with_idempotency_key("checkout-1");
                if attempt % 5 < 3 {
                    quic_client.place(order).await
                } else {
                    http_client.place(order).await
                }
            });
        }
        let mut ids = HashSet::new();
        let mut created = 0;
        while let Some(result) = tasks.join_next().await {
            let placed = result
                .unwrap()
                .expect("every retry is answered with the order");
            ids.insert(placed.order.order_id);
            created += usize::from(placed.created);
        }
        assert_eq!(ids.len(), 1, "one order for one key: {ids:?}");
        assert_eq!(created, 1);
        // A retry over HTTP after the QUIC ones, and a different body under the key.
        let retry = PlaceOrder::new("KEYED", 1, "ada").with_idempotency_key("checkout-1");
        let again = http_client.place(retry).await.unwrap();
        assert!(!again.created && ids.contains(&again.order.order_id));
        let changed = PlaceOrder::new("KEYED", 2, "ada").with_idempotency_key("checkout-1");
        let refused = quic_client.place(changed).await.unwrap_err();
        assert_eq!(refusal_code(&refused), "idempotency_key_reused");
        let sku = http_client.sku("KEYED").await.unwrap();
        assert_eq!(sku.reserved, 1);
    });
}

/// An order acknowledged over QUIC right before the client vanishes (its
/// connection dropped without a goodbye) is there, also after the server is
/// killed and restarted: an answer is only sent once the order is durable.
#[test]
fn an_order_acknowledged_before_the_client_drops_survives() {
    let mut server = Launch::new().start();
    let data_dir = server.data_dir().to_path_buf();
    let (order_id, confirmed_id) = runtime().block_on(async {
        let client = quic(&server).await;
        client.put_sku("LAST", settings(5, 5)).await.unwrap();
        let confirmed = client
            .place(PlaceOrder::new("LAST", 1, "bea"))
            .await
            .unwrap()
            .order;
        client.confirm(&confirmed.order_id).await.unwrap();
        let placed = client
            .place(PlaceOrder::new("LAST", 2, "cal"))
            .await
            .unwrap();
        // Dropped, not closed: no CONNECTION_CLOSE is sent before it goes.
        drop(client);
        (placed.order.order_id, confirmed.order_id)
    });
    server.kill();
    let server = Launch::new().data_dir(&data_dir).start();
    runtime().block_on(async {
        let client = http(&server);
        let order = client.order(&order_id).await.unwrap();
        assert_eq!(
            (order.status, order.quantity, order.customer_id.as_str()),
            (OrderStatus::Reserved, 2, "cal")
        );
        let confirmed = client.order(&confirmed_id).await.unwrap();
        assert_eq!(confirmed.status, OrderStatus::Confirmed);
        let sku = client.sku("LAST").await.unwrap();
        assert_eq!((sku.available, sku.reserved, sku.sold), (2, 2, 1));
    });
}

/// A sale time RFC 3339 cannot write (past the year 9999) is refused over QUIC
/// with `invalid_field`, so no later read over HTTP has to print it.
#[test]
fn a_sale_time_past_the_year_9999_is_refused() {
    let server = Launch::new().start();
    runtime().block_on(async {
        let client = quic(&server).await;
        let far = SkuSettings {
            stock: Some(1),
            sale_starts_at_ms: Some(u64::MAX),
            ..SkuSettings::default()
        };
        let refused = client.put_sku("FAR", far).await.unwrap_err();
        assert_eq!(refusal_code(&refused), "invalid_field");
        assert!(refused.to_string().contains("sale_starts_at"), "{refused}");
        let error = http(&server).sku("FAR").await.unwrap_err();
        assert_eq!(refusal_code(&error), "unknown_sku");
    });
}

/// A client that authenticates and then keeps open as many streams as the
/// node allows a connection (the default 16), each busy: every stream of its
/// pool opens and every call is answered. The server gives a finished
/// stream's place back only after a few more have finished (quinn batches
/// `MAX_STREAMS`), so `Authenticate` must not take a stream of its own.
#[test]
fn a_pool_as_large_as_the_node_allows_runs_after_authenticating() {
    const STREAMS: usize = 16;
    const BUYERS: usize = 64;
    const ORDERS_PER_BUYER: usize = 20;
    let server = Launch::new()
        .env(
            "FLASHGATE_QUIC_STREAMS_PER_CONNECTION_MAX",
            &STREAMS.to_string(),
        )
        .start();
    runtime().block_on(async {
        let endpoint = server.quic().expect("the server listens for QUIC");
        let fingerprint = endpoint.sha256.parse().expect("a fingerprint");
        let mut config = QuicConfig::new(vec![endpoint.addr], Trust::Fingerprint(fingerprint));
        config.admin_token = Some(ADMIN_TOKEN.to_owned());
        config.credential = Some(ADMIN_TOKEN.to_owned());
        config.stream_count = STREAMS;
        // A stream that never opens fails its calls after this, not never.
        config.request_timeout = std::time::Duration::from_secs(5);
        let client = Arc::new(QuicClient::connect(config).await.expect("QUIC connect"));
        client.put_sku("POOL", settings(10_000, 1)).await.unwrap();
        let mut buyers = tokio::task::JoinSet::new();
        for buyer in 0..BUYERS {
            let client = Arc::clone(&client);
            buyers.spawn(async move {
                for order in 0..ORDERS_PER_BUYER {
                    client
                        .place(PlaceOrder::new("POOL", 1, format!("pool-{buyer}-{order}")))
                        .await
                        .expect("every call on every stream of the pool is answered");
                }
            });
        }
        while let Some(done) = buyers.join_next().await {
            done.expect("a buyer placed all its orders");
        }
        let sku = client.sku("POOL").await.unwrap();
        assert_eq!(sku.reserved, (BUYERS * ORDERS_PER_BUYER) as u64);
    });
}

/// One bad request of each kind, sent through `client`: what the server
/// answered each, as (code, detail). Every one is refused, so none changes
/// anything.
async fn refusals_of<G: OrderGateway>(client: &G) -> Vec<(String, String)> {
    let mut answers = Vec::new();
    let mut refused = |result: Result<(), ClientError>| match result {
        Err(ClientError::Server { code, detail }) => answers.push((code, detail)),
        other => panic!("expected a refusal from the server, got {other:?}"),
    };
    for order in [
        PlaceOrder::new("no spaces", 1, "alice"),
        PlaceOrder::new("SAME", 0, "alice"),
        PlaceOrder::new("SAME", 1_000_001, "alice"),
        PlaceOrder::new("SAME", 1, ""),
        PlaceOrder::new("SAME", 1, "al\u{200b}ice"),
        // Over the SKU's own maximum of 5: the shard's rule.
        PlaceOrder::new("SAME", 6, "alice"),
        PlaceOrder::new("NOPE", 1, "alice"),
    ] {
        refused(client.place(order).await.map(drop));
    }
    refused(client.order("nope").await.map(drop));
    refused(client.confirm("1-0-999999").await.map(drop));
    let zero_quantity_max = SkuSettings {
        stock: Some(1),
        max_quantity_per_order: Some(0),
        ..SkuSettings::default()
    };
    refused(client.put_sku("NEW", zero_quantity_max).await.map(drop));
    let no_stock = SkuSettings::default();
    refused(client.put_sku("NEW", no_stock).await.map(drop));
    refused(client.restock("SAME", 0).await.map(drop));
    refused(client.restock("NOPE", 1).await.map(drop));
    answers
}

/// The same bad request gets the same code and the same detail over HTTP and
/// over QUIC: both front ends parse through the domain's constructors and
/// refuse with one error type, so a client can switch transports without
/// learning a second set of refusals.
#[test]
fn the_same_bad_request_is_refused_alike_over_http_and_quic() {
    let server = Launch::new().start();
    runtime().block_on(async {
        let quic_client = quic(&server).await;
        let same = SkuSettings {
            stock: Some(10),
            max_quantity_per_order: Some(5),
            ..SkuSettings::default()
        };
        quic_client.put_sku("SAME", same).await.unwrap();
        let over_http = refusals_of(&http(&server)).await;
        let over_quic = refusals_of(&quic_client).await;
        assert_eq!(over_http, over_quic);
        let codes: Vec<&str> = over_http.iter().map(|(code, _)| code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "invalid_field",
                "invalid_field",
                "invalid_field",
                "invalid_field",
                "invalid_field",
                "invalid_field",
                "unknown_sku",
                "unknown_order",
                "unknown_order",
                "invalid_field",
                "invalid_field",
                "invalid_field",
                "unknown_sku",
            ]
        );
        // Each field refusal names its field first.
        let fields = [
            (0, "sku:"),
            (1, "quantity:"),
            (2, "quantity:"),
            (3, "customer_id:"),
            (4, "customer_id:"),
            (5, "quantity:"),
            (9, "max_quantity_per_order:"),
            (10, "stock:"),
            (11, "quantity:"),
        ];
        for (index, field) in fields {
            assert!(
                over_http[index].1.starts_with(field),
                "{:?}",
                over_http[index]
            );
        }
        // Nothing was placed or changed.
        let sku = quic_client.sku("SAME").await.unwrap();
        assert_eq!((sku.total, sku.available), (10, 10));
    });
}
