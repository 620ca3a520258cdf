//! Who may do what, against the real binary over HTTP and QUIC: every caller
//! kind (no credential, a buyer token, service, payments, operator, admin, a
//! wrong token) against every endpoint, the attack that started it (anyone
//! cancelling or confirming anyone's order), credential guessing slowed per
//! address, and the development mode that needs no credentials.
//! (docs/SECURITY.md has the rules.)

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{
    buyer_token, order_id, poll_until, Client, Launch, Server, ADMIN_TOKEN, OPERATOR_TOKEN,
    PAYMENTS_TOKEN, SERVICE_TOKEN,
};
use flashgate_client::{ClientError, OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};
use serde_json::{json, Value};

/// A SKU whose sale is open, and one whose sale opens in a day.
const OPEN_SKU: &str = "auth-open";
const LATER_SKU: &str = "auth-later";

fn later_ms() -> u64 {
    jsonwebtoken::get_current_timestamp() * 1000 + 24 * 3600 * 1000
}

fn setup(api: &Client) {
    api.put_sku(OPEN_SKU, json!({ "stock": 100 }));
    let starts =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(later_ms()))
            .to_string();
    api.put_sku(LATER_SKU, json!({ "stock": 7, "sale_starts_at": starts }));
}

fn status(api: &Client, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = api.request(method, path);
    if body.is_some() {
        request = request.set("Content-Type", "application/json");
    }
    let answer = api.send(request, body.map(Value::to_string).as_deref());
    let body = if answer.text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&answer.text).unwrap_or(Value::Null)
    };
    (answer.status, body)
}

/// Every caller kind against every HTTP endpoint: the statuses are the rule
/// table of `gateway/src/auth`, seen from outside. A buyer's refusals on
/// another's order are 404 (as if absent), a wrong token is 401 everywhere.
#[test]
fn every_caller_against_every_endpoint_over_http() {
    let server = Server::start();
    let admin = server.client();
    setup(admin);
    let alice_token = buyer_token("alice");
    let bob_token = buyer_token("bob");
    let callers: [(&str, Option<&str>); 8] = [
        ("anonymous", None),
        ("alice", Some(&alice_token)),
        ("bob", Some(&bob_token)),
        ("service", Some(SERVICE_TOKEN)),
        ("payments", Some(PAYMENTS_TOKEN)),
        ("operator", Some(OPERATOR_TOKEN)),
        ("admin", Some(ADMIN_TOKEN)),
        ("wrong", Some("a-token-nobody-issued-0123")),
    ];
    // Columns: place for alice, read alice's order, cancel it, confirm it,
    // list SKUs, read the unopened SKU, restock, cluster status, metrics,
    // promote (a standalone node answers 409 not_standby to those allowed),
    // the switchover check, resume (409 handover_failed: nothing handed over).
    let expected: [(&str, [u16; 12]); 8] = [
        (
            "anonymous",
            [401, 401, 401, 401, 200, 404, 401, 401, 401, 401, 401, 401],
        ),
        (
            "alice",
            [201, 200, 200, 403, 200, 404, 403, 403, 403, 403, 403, 403],
        ),
        (
            "bob",
            [403, 404, 404, 403, 200, 404, 403, 403, 403, 403, 403, 403],
        ),
        (
            "service",
            [201, 200, 200, 403, 200, 200, 403, 403, 403, 403, 403, 403],
        ),
        (
            "payments",
            [403, 200, 200, 200, 200, 404, 403, 403, 403, 403, 403, 403],
        ),
        (
            "operator",
            [403, 200, 403, 403, 200, 200, 403, 200, 200, 403, 403, 403],
        ),
        (
            "admin",
            [201, 200, 200, 200, 200, 200, 200, 200, 200, 409, 200, 409],
        ),
        (
            "wrong",
            [401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401, 401],
        ),
    ];
    let order = json!({ "sku": OPEN_SKU, "quantity": 1, "customer_id": "alice" });
    for ((name, credential), (row_name, row)) in callers.iter().zip(expected) {
        assert_eq!(*name, row_name);
        let api = admin.with_credential(*credential);
        // Each caller acts on an order of alice's of its own, so that one
        // caller's cancel does not decide the next one's confirm.
        let target = order_id(&admin.reserve(OPEN_SKU, 1, "alice"));
        let confirm_target = order_id(&admin.reserve(OPEN_SKU, 1, "alice"));
        let got = [
            status(&api, "POST", "/v1/orders", Some(&order)).0,
            status(&api, "GET", &format!("/v1/orders/{target}"), None).0,
            status(&api, "POST", &format!("/v1/orders/{target}/cancel"), None).0,
            status(
                &api,
                "POST",
                &format!("/v1/orders/{confirm_target}/confirm"),
                None,
            )
            .0,
            status(&api, "GET", "/v1/skus", None).0,
            status(&api, "GET", &format!("/v1/skus/{LATER_SKU}"), None).0,
            status(
                &api,
                "POST",
                &format!("/v1/skus/{OPEN_SKU}/restock"),
                Some(&json!({ "quantity": 1 })),
            )
            .0,
            status(&api, "GET", "/v1/cluster", None).0,
            status(&api, "GET", "/metrics", None).0,
            status(&api, "POST", "/v1/admin/promote", Some(&json!({}))).0,
            status(&api, "GET", "/v1/admin/switchover-check", None).0,
            status(&api, "POST", "/v1/admin/resume", Some(&json!({}))).0,
        ];
        assert_eq!(got, row, "{name}");
    }
}

/// The attack of the report: with ids in sequence, a script cancelled every
/// reservation and confirmed unpaid ones. Now a stranger gets 401, another
/// buyer 404 (and learns nothing of the order), a buyer's token cannot
/// confirm, and a buyer cannot order in another's name; the victim's order is
/// untouched and its own buyer still sees it.
#[test]
fn a_buyer_cannot_touch_another_buyers_order() {
    let server = Server::start();
    setup(server.client());
    let alice = server.client().with_credential(Some(&buyer_token("alice")));
    let bob = server.client().with_credential(Some(&buyer_token("bob")));
    let stranger = server.client().with_credential(None);
    let (placed, order) = status(
        &alice,
        "POST",
        "/v1/orders",
        Some(&json!({ "sku": OPEN_SKU, "quantity": 1, "customer_id": "alice" })),
    );
    assert_eq!(placed, 201, "{order}");
    let id = order_id(&order);

    let (code, problem) = status(&stranger, "POST", &format!("/v1/orders/{id}/cancel"), None);
    assert_eq!(
        (code, problem["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (code, problem) = status(&bob, "POST", &format!("/v1/orders/{id}/cancel"), None);
    assert_eq!(
        (code, problem["code"].as_str()),
        (404, Some("unknown_order"))
    );
    let (code, problem) = status(&bob, "GET", &format!("/v1/orders/{id}"), None);
    assert_eq!(
        (code, problem["code"].as_str()),
        (404, Some("unknown_order"))
    );
    let (code, problem) = status(&bob, "POST", &format!("/v1/orders/{id}/confirm"), None);
    assert_eq!((code, problem["code"].as_str()), (403, Some("forbidden")));
    let (code, problem) = status(
        &bob,
        "POST",
        "/v1/orders",
        Some(&json!({ "sku": OPEN_SKU, "quantity": 1, "customer_id": "alice" })),
    );
    assert_eq!(
        (code, problem["code"].as_str()),
        (403, Some("customer_mismatch")),
        "{problem}"
    );
    assert!(problem["detail"].as_str().unwrap().contains("customer bob"));

    let (code, order) = status(&alice, "GET", &format!("/v1/orders/{id}"), None);
    assert_eq!((code, order["status"].as_str()), (200, Some("reserved")));
    let sku = server.client().sku(OPEN_SKU);
    assert_eq!(sku["reserved"], 1, "{sku}");
}

/// The refusal code of a failed call.
fn code<T>(result: Result<T, ClientError>) -> Option<String> {
    result
        .err()
        .and_then(|error| error.code().map(str::to_owned))
}

/// The same rules over QUIC: a connection acts as the credential it
/// authenticated with. Without one it reads the catalogue only; a buyer
/// orders for itself and cannot confirm; a service orders for anyone; a
/// refused credential fails the connect with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rules_over_quic() {
    let server = Server::start();
    setup(server.client());
    let quic = server.quic().expect("QUIC runs").clone();
    let fingerprint = quic.sha256.parse().expect("a fingerprint");
    let connect = |credential: Option<String>| {
        let config = QuicConfig {
            credential,
            connect_attempts_max: 1,
            ..QuicConfig::new(vec![quic.addr], Trust::Fingerprint(fingerprint))
        };
        QuicClient::connect(config)
    };
    let order = |customer: &str| PlaceOrder {
        sku: OPEN_SKU.into(),
        quantity: 1,
        customer_id: customer.into(),
        idempotency_key: None,
        queue_ticket: None,
    };

    let anonymous = connect(None).await.expect("connect without a credential");
    assert_eq!(anonymous.sku(OPEN_SKU).await.unwrap().total, 100);
    assert_eq!(
        code(anonymous.sku(LATER_SKU).await).as_deref(),
        Some("unknown_sku")
    );
    assert_eq!(
        code(anonymous.place(order("alice")).await).as_deref(),
        Some("unauthorized")
    );

    let alice = connect(Some(buyer_token("alice")))
        .await
        .expect("a buyer connects");
    let placed = alice
        .place(order("alice"))
        .await
        .expect("alice orders for herself");
    let id = placed.order.order_id.clone();
    assert_eq!(
        code(alice.place(order("bob")).await).as_deref(),
        Some("customer_mismatch")
    );
    assert_eq!(code(alice.confirm(&id).await).as_deref(), Some("forbidden"));
    let batch = alice
        .place_batch(vec![order("alice"), order("bob")])
        .await
        .expect("a batch is answered");
    assert!(batch[0].is_ok(), "{:?}", batch[0]);
    assert_eq!(
        batch[1].as_ref().err().and_then(ClientError::code),
        Some("customer_mismatch")
    );

    let bob = connect(Some(buyer_token("bob")))
        .await
        .expect("a buyer connects");
    assert_eq!(
        code(bob.cancel(&id).await).as_deref(),
        Some("unknown_order")
    );
    assert_eq!(code(bob.order(&id).await).as_deref(), Some("unknown_order"));

    let service = connect(Some(SERVICE_TOKEN.into()))
        .await
        .expect("a service connects");
    service
        .place(order("carol"))
        .await
        .expect("a service orders for anyone");
    assert_eq!(service.sku(LATER_SKU).await.unwrap().total, 7);
    assert_eq!(
        code(service.confirm(&id).await).as_deref(),
        Some("forbidden")
    );
    let payments = connect(Some(PAYMENTS_TOKEN.into()))
        .await
        .expect("payments connects");
    let confirmed = payments.confirm(&id).await.expect("payments confirms");
    assert_eq!(confirmed.status.as_str(), "confirmed");

    let refused = connect(Some("a-token-nobody-issued-0123".into())).await;
    let message = refused
        .err()
        .expect("a wrong credential fails the connect")
        .to_string();
    assert!(message.contains("unauthorized"), "{message}");
}

/// Every caller kind against every order and SKU request over QUIC: the same
/// table as over HTTP, each connection acting as the credential it
/// authenticated with ("ok", or the refusal's code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_against_every_request_over_quic() {
    let server = Server::start();
    let admin = server.client();
    setup(admin);
    let quic = server.quic().expect("QUIC runs").clone();
    let fingerprint: flashgate_client::Fingerprint = quic.sha256.parse().expect("a fingerprint");
    let alice_token = buyer_token("alice");
    let bob_token = buyer_token("bob");
    let callers: [(&str, Option<&str>, [&str; 6]); 7] = [
        (
            "anonymous",
            None,
            [
                "unauthorized",
                "unauthorized",
                "unauthorized",
                "unauthorized",
                "ok",
                "unknown_sku",
            ],
        ),
        (
            "alice",
            Some(&alice_token),
            ["ok", "ok", "ok", "forbidden", "ok", "unknown_sku"],
        ),
        (
            "bob",
            Some(&bob_token),
            [
                "customer_mismatch",
                "unknown_order",
                "unknown_order",
                "forbidden",
                "ok",
                "unknown_sku",
            ],
        ),
        (
            "service",
            Some(SERVICE_TOKEN),
            ["ok", "ok", "ok", "forbidden", "ok", "ok"],
        ),
        (
            "payments",
            Some(PAYMENTS_TOKEN),
            ["forbidden", "ok", "ok", "ok", "ok", "unknown_sku"],
        ),
        (
            "operator",
            Some(OPERATOR_TOKEN),
            ["forbidden", "ok", "forbidden", "forbidden", "ok", "ok"],
        ),
        (
            "admin",
            Some(ADMIN_TOKEN),
            ["ok", "ok", "ok", "ok", "ok", "ok"],
        ),
    ];
    let outcome = |result: Result<(), ClientError>| match result {
        Ok(()) => "ok".to_owned(),
        Err(error) => error.code().unwrap_or("no code").to_owned(),
    };
    for (name, credential, expected) in callers {
        let config = QuicConfig {
            credential: credential.map(str::to_owned),
            connect_attempts_max: 1,
            ..QuicConfig::new(vec![quic.addr], Trust::Fingerprint(fingerprint))
        };
        let client = QuicClient::connect(config).await.expect("connect");
        let target = order_id(&admin.reserve(OPEN_SKU, 1, "alice"));
        let confirm_target = order_id(&admin.reserve(OPEN_SKU, 1, "alice"));
        let order = PlaceOrder {
            sku: OPEN_SKU.into(),
            quantity: 1,
            customer_id: "alice".into(),
            idempotency_key: None,
            queue_ticket: None,
        };
        let got = [
            outcome(client.place(order).await.map(drop)),
            outcome(client.order(&target).await.map(drop)),
            outcome(client.cancel(&target).await.map(drop)),
            outcome(client.confirm(&confirm_target).await.map(drop)),
            outcome(client.sku(OPEN_SKU).await.map(drop)),
            outcome(client.sku(LATER_SKU).await.map(drop)),
        ];
        assert_eq!(got, expected, "{name}");
        client.close().await;
    }
}

/// Guessing is slowed, counted and logged once per address and window: past
/// `auth_failures_per_address_max` failures every call with a credential
/// from that address gets 429 with `Retry-After` (even with a right one,
/// so a guess proves nothing), until the window ends; calls without a
/// credential, and other addresses, are served throughout.
#[test]
fn credential_guessing_is_throttled_per_address_counted_and_logged_once() {
    const FAILURES_MAX: usize = 5;
    let server = Launch::new()
        .env(
            "FLASHGATE_AUTH_FAILURES_PER_ADDRESS_MAX",
            &FAILURES_MAX.to_string(),
        )
        .env("FLASHGATE_AUTH_FAILURE_WINDOW_SECS", "2")
        .start();
    setup(server.client());
    let guesser = server
        .client()
        .with_credential(Some("guess-0123456789abcdef"));
    for _ in 0..FAILURES_MAX {
        assert_eq!(status(&guesser, "GET", "/v1/skus", None).0, 401);
    }
    let throttled = guesser.send(guesser.request("GET", "/v1/skus"), None);
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    assert!(throttled.text.contains("too_many_auth_failures"));
    assert!(throttled.header("retry-after").is_some());
    // A right credential from the same address is refused too, unchecked.
    let operator = server.client().with_credential(Some(OPERATOR_TOKEN));
    assert_eq!(status(&operator, "GET", "/v1/cluster", None).0, 429);
    // The catalogue needs no credential and stays open.
    assert_eq!(
        status(
            &server.client().with_credential(None),
            "GET",
            "/v1/skus",
            None
        )
        .0,
        200
    );
    // Another address is not throttled.
    assert_eq!(
        get_from(&server, [127, 0, 0, 2], "/v1/cluster", OPERATOR_TOKEN),
        200
    );

    // The window ends: the address starts afresh.
    poll_until(
        "the throttle's window to end",
        Duration::from_secs(10),
        || (status(&operator, "GET", "/v1/cluster", None).0 == 200).then_some(()),
    );
    let metrics = {
        let api = server.client();
        let answer = api.send(api.request("GET", "/metrics"), None);
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.text
    };
    let invalid = metric(
        &metrics,
        r#"flashgate_auth_failures_total{front_end="http",outcome="invalid"}"#,
    );
    let throttled = metric(
        &metrics,
        r#"flashgate_auth_failures_total{front_end="http",outcome="throttled"}"#,
    );
    assert_eq!(invalid, FAILURES_MAX as u64, "{metrics}");
    assert!(throttled >= 2, "{metrics}");
    let log = server.stderr();
    let refused_lines = log.matches("a credential was refused").count();
    assert_eq!(refused_lines, 1, "one line per address and window:\n{log}");
    assert!(
        !log.contains("guess-0123456789abcdef"),
        "a guess is never logged"
    );
}

/// `GET path` with `Bearer token` from the local address `from` (loopback
/// has all of 127/8), over a raw connection; returns the status.
fn get_from(server: &Server, from: [u8; 4], path: &str, token: &str) -> u16 {
    let address: std::net::SocketAddr = server
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .expect("the node's address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(std::net::SocketAddr::from((from, 0)))
            .expect("bind the other loopback address");
        socket.connect(address).await.expect("connect from it")
    });
    let mut stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn metric(page: &str, series: &str) -> u64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Development mode takes buyer and payment calls without a credential, for
/// any customer, and keeps operator data closed; it is refused with
/// replication unless explicitly allowed, saying so.
#[test]
fn development_mode_is_open_to_buyers_and_refused_with_replication() {
    let server = Launch::new().arg("--buyer-auth").arg("development").start();
    setup(server.client());
    let anyone = server.client().with_credential(None);
    let (code, order) = status(
        &anyone,
        "POST",
        "/v1/orders",
        Some(&json!({ "sku": OPEN_SKU, "quantity": 1, "customer_id": "whoever" })),
    );
    assert_eq!(code, 201, "{order}");
    let id = order_id(&order);
    assert_eq!(
        status(&anyone, "POST", &format!("/v1/orders/{id}/confirm"), None).0,
        200
    );
    assert_eq!(status(&anyone, "GET", "/metrics", None).0, 401);
    assert!(server.stderr().contains("buyer_auth = development"));

    let refused = Launch::new()
        .arg("--buyer-auth")
        .arg("development")
        .replicated("127.0.0.1:0")
        .expect_exit();
    assert_eq!(refused.status.code(), Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("development_auth_with_replication"),
        "{}",
        refused.stderr
    );
}
