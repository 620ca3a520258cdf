//! The batched order read, against the real binary: `POST /v1/orders/read`
//! and QUIC `GetOrders`, directly and through the client library. An audit
//! reads back every acknowledged order this way, so the answer must hold
//! every order found and name every id not found, keep the rule of the single
//! read (a buyer sees only its own orders), and refuse a request over the
//! limit whole instead of reading part of it.

mod common;

use std::collections::BTreeSet;

use common::{buyer_token, order_id, Launch, Server, ADMIN_TOKEN, SERVICE_TOKEN};
use flashgate_client::{
    HttpClient, HttpConfig, OrderGateway, OrdersRead, QuicClient, QuicConfig, Trust,
};
use serde_json::{json, Value};

/// The server's limit in these tests: small, so going over it is cheap.
const READ_MAX: usize = 4;
const SKU: &str = "read-sku";

fn start() -> Server {
    let server = Launch::new()
        .env("FLASHGATE_ORDERS_READ_MAX", &READ_MAX.to_string())
        .start();
    server.client().put_sku(SKU, json!({ "stock": 100 }));
    server
}

/// Two orders of alice's and one of bob's.
struct Orders {
    alice: [String; 2],
    bob: String,
}

fn place(server: &Server) -> Orders {
    let api = server.client();
    Orders {
        alice: [
            order_id(&api.reserve(SKU, 1, "alice")),
            order_id(&api.reserve(SKU, 2, "alice")),
        ],
        bob: order_id(&api.reserve(SKU, 1, "bob")),
    }
}

/// `POST /v1/orders/read` as `credential`: the status and the body.
fn read_over_http(server: &Server, credential: Option<&str>, ids: &[&str]) -> (u16, Value) {
    let api = server.client().with_credential(credential);
    let request = api
        .request("POST", "/v1/orders/read")
        .set("Content-Type", "application/json");
    let answer = api.send(request, Some(&json!({ "order_ids": ids }).to_string()));
    let body = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
    (answer.status, body)
}

fn ids_of(orders: &Value) -> Vec<String> {
    orders
        .as_array()
        .unwrap_or_else(|| panic!("an array of orders: {orders}"))
        .iter()
        .map(order_id)
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Over HTTP: found orders come back in the order asked with their state;
/// unknown ids, strings that are not ids and another buyer's order are all
/// listed as unknown (a buyer learns nothing of another's order); more ids
/// than `orders_read_max` is a 422 `batch_too_large` naming the limit; no
/// credential is a 401, as for a single read.
#[test]
fn a_batched_read_over_http_answers_each_id_under_the_single_reads_rules() {
    let server = start();
    let orders = place(&server);
    let [alice_1, alice_2] = &orders.alice;
    let bob = orders.bob.as_str();
    let no_such = "1-0-999999";

    let (status, body) = read_over_http(&server, Some(SERVICE_TOKEN), &[alice_2, bob, alice_1]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body["orders"]), [alice_2.as_str(), bob, alice_1]);
    assert_eq!(body["orders"][0]["quantity"], 2, "{body}");
    assert_eq!(body["orders"][0]["status"], "reserved", "{body}");
    assert_eq!(body["unknown"], json!([]), "{body}");

    server.client().cancel(alice_2);
    let alice = buyer_token("alice");
    let (status, body) = read_over_http(
        &server,
        Some(&alice),
        &[alice_1, bob, no_such, "not-an-order-id"],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body["orders"]), [alice_1.as_str()]);
    let unknown: BTreeSet<String> = serde_json::from_value(body["unknown"].clone()).unwrap();
    assert_eq!(unknown, set(&[bob, no_such, "not-an-order-id"]));
    let (_, body) = read_over_http(&server, Some(&alice), &[alice_2]);
    assert_eq!(body["orders"][0]["status"], "cancelled", "{body}");

    let (status, body) = read_over_http(
        &server,
        Some(ADMIN_TOKEN),
        &[alice_1.as_str(); READ_MAX + 1],
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("batch_too_large"))
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&format!("limit of {READ_MAX}")), "{detail}");
    let (status, body) = read_over_http(&server, Some(ADMIN_TOKEN), &[alice_1.as_str(); READ_MAX]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids_of(&body["orders"]).len(), READ_MAX);

    let (status, body) = read_over_http(&server, None, &[alice_1]);
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, body) = read_over_http(&server, Some(ADMIN_TOKEN), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({ "orders": [], "unknown": [] }));
}

async fn quic(server: &Server, credential: &str) -> QuicClient {
    let endpoint = server.quic().expect("the server listens for QUIC");
    let fingerprint = endpoint.sha256.parse().expect("a fingerprint");
    let config = QuicConfig {
        credential: Some(credential.to_owned()),
        connect_attempts_max: 1,
        ..QuicConfig::new(vec![endpoint.addr], Trust::Fingerprint(fingerprint))
    };
    QuicClient::connect(config).await.expect("QUIC connect")
}

fn http(server: &Server, credential: &str) -> HttpClient {
    let mut config = HttpConfig::new(server.base_url());
    config.credential = Some(credential.to_owned());
    HttpClient::new(config).expect("HTTP client")
}

fn owned(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn found(read: &OrdersRead) -> Vec<&str> {
    read.orders
        .iter()
        .map(|order| order.order_id.as_str())
        .collect()
}

/// The same checks through one client: what a service and a buyer see, and
/// a refusal over the limit that leaves the client usable.
async fn check_client(
    service: &(impl OrderGateway + Sync),
    alice: &(impl OrderGateway + Sync),
    orders: &Orders,
    transport: &str,
) {
    let [alice_1, alice_2] = &orders.alice;
    let bob = orders.bob.as_str();
    let read = service
        .read_orders(&owned(&[bob, alice_1, alice_2]))
        .await
        .unwrap_or_else(|error| panic!("{transport}: {error}"));
    assert_eq!(
        found(&read),
        [bob, alice_1.as_str(), alice_2],
        "{transport}"
    );
    assert!(read.unknown.is_empty(), "{transport}: {read:?}");
    assert_eq!(read.orders[2].quantity, 2, "{transport}");

    let read = alice
        .read_orders(&owned(&[alice_1, bob, "1-0-999999", "x"]))
        .await
        .unwrap_or_else(|error| panic!("{transport}: {error}"));
    assert_eq!(found(&read), [alice_1.as_str()], "{transport}");
    let unknown: BTreeSet<String> = read.unknown.into_iter().collect();
    assert_eq!(unknown, set(&[bob, "1-0-999999", "x"]), "{transport}");

    let error = service
        .read_orders(&owned(&[alice_1.as_str(); READ_MAX + 1]))
        .await
        .expect_err("over the limit");
    assert_eq!(
        error.code(),
        Some("batch_too_large"),
        "{transport}: {error}"
    );
    assert!(
        error.to_string().contains(&format!("limit of {READ_MAX}")),
        "{transport}: {error}"
    );
    let read = service
        .read_orders(&owned(&[bob]))
        .await
        .unwrap_or_else(|error| panic!("{transport} after a refusal: {error}"));
    assert_eq!(found(&read), [bob], "{transport}");
}

/// QUIC `GetOrders` and the HTTP endpoint through the client library give
/// the same answers: a service reads every order in the order asked; a buyer
/// reads its own and gets another's, a missing one and a malformed id back
/// as unknown; more than `orders_read_max` ids is refused `batch_too_large`
/// (over QUIC as an answer to that request, so the connection goes on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_reads_in_batches_over_quic_and_http() {
    let server = start();
    let orders = place(&server);
    let alice_token = buyer_token("alice");

    let service = quic(&server, SERVICE_TOKEN).await;
    let alice = quic(&server, &alice_token).await;
    check_client(&service, &alice, &orders, "quic").await;
    service.close().await;
    alice.close().await;

    let service = http(&server, SERVICE_TOKEN);
    let alice = http(&server, &alice_token);
    check_client(&service, &alice, &orders, "http").await;
}
