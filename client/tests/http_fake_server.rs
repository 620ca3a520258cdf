//! `HttpClient` against an in-process HTTP/1.1 server with scripted answers in
//! the gateway's formats (JSON bodies with RFC 3339 times, problem+json
//! errors). It proves the conversions and status handling end to end; the
//! black-box tests against the real `flashgate` binary live in the workspace's
//! tests/.
//!
//! A server also has a role, for the failover tests: a `Primary` answers as
//! scripted; a `Standby` serves reads and refuses writes (POST, PUT) with a 503
//! `not_primary` problem naming the primary it knows; a `Crashing` node reads
//! a write and closes the connection without answering (it may or may not
//! have applied it); a primary `WithoutStandby` answers writes with 503
//! `standby_unavailable`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashgate_client::{
    ChangeOrder, ClientError, FailoverConfig, HttpClient, HttpConfig, OrderChange, OrderGateway,
    OrderStatus, PlaceOrder, SkuSettings, TransportError,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const ADMIN_TOKEN: &str = "secret";
/// 2026-11-27T09:00:00.000Z.
const NINE_AM_MS: u64 = 1_795_770_000_000;

/// A request as the server read it.
#[derive(Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// How a fake node answers writes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    /// Refuses writes as `not_primary`, naming this base URL as the primary.
    Standby {
        primary: Option<String>,
    },
    Crashing,
    WithoutStandby,
}

struct FakeServer {
    url: String,
    seen: mpsc::UnboundedReceiver<Seen>,
    role: Arc<Mutex<Role>>,
}

impl FakeServer {
    async fn start() -> FakeServer {
        FakeServer::start_as(Role::Primary).await
    }

    async fn start_as(role: Role) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, seen) = mpsc::unbounded_channel();
        let role = Arc::new(Mutex::new(role));
        let serving_role = role.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, sender.clone(), serving_role.clone()));
            }
        });
        FakeServer {
            url: format!("http://{addr}"),
            seen,
            role,
        }
    }

    fn set_role(&self, role: Role) {
        *self.role.lock().unwrap() = role;
    }

    /// The writes (POST, PUT) the server has read so far.
    fn writes_seen(&mut self) -> Vec<Seen> {
        let mut writes = Vec::new();
        while let Ok(seen) = self.seen.try_recv() {
            if seen.method != "GET" {
                writes.push(seen);
            }
        }
        writes
    }

    fn client(&self) -> HttpClient {
        let mut config = HttpConfig::new(&self.url);
        config.admin_token = Some(ADMIN_TOKEN.into());
        HttpClient::new(config).unwrap()
    }

    /// The next request the server read.
    async fn next_seen(&mut self) -> Seen {
        self.seen.recv().await.expect("the server is running")
    }
}

fn order_json(order_id: &str, status: &str) -> Value {
    json!({
        "order_id": order_id, "sku": "A", "quantity": 1, "customer_id": "alice",
        "status": status,
        "created_at": "2026-11-27T09:00:00.000Z",
        "reserved_until": "2026-11-27T09:10:00.000Z",
        "updated_at": "2026-11-27T09:00:00.250Z",
    })
}

fn sku_json(sku: &str) -> Value {
    json!({
        "sku": sku, "total": 10, "available": 9, "reserved": 1, "sold": 0,
        "per_customer_limit": null, "max_quantity_per_order": 10,
        "sale_starts_at": "2026-11-27T09:00:00.000Z", "reservation_ttl_secs": 600,
        "low_stock_threshold": 0, "low_stock": false,
    })
}

fn problem(status: u16, code: &str, detail: &str) -> (u16, &'static str, Vec<u8>) {
    let body = json!({
        "type": format!("urn:flashgate:problem:{code}"), "title": "Error",
        "status": status, "detail": detail, "code": code,
    });
    (
        status,
        "application/problem+json",
        body.to_string().into_bytes(),
    )
}

fn ok(status: u16, body: Value) -> (u16, &'static str, Vec<u8>) {
    (status, "application/json", body.to_string().into_bytes())
}

/// The script: what the gateway would answer.
fn answer(seen: &Seen) -> (u16, &'static str, Vec<u8>) {
    let segments: Vec<&str> = seen.path.trim_start_matches('/').split('/').collect();
    let admin = seen.headers.get("authorization").map(String::as_str)
        == Some(&format!("Bearer {ADMIN_TOKEN}"));
    match (seen.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "orders"]) => {
            let body: Value = serde_json::from_slice(&seen.body).unwrap();
            if body["customer_id"] == "sold-out" {
                return problem(409, "sold_out", "SKU A is sold out");
            }
            let replay = seen.headers.get("idempotency-key").map(String::as_str) == Some("seen");
            ok(
                if replay { 200 } else { 201 },
                order_json("1-0-1", "reserved"),
            )
        }
        ("GET", ["v1", "orders", id]) => ok(200, order_json(id, "reserved")),
        ("POST", ["v1", "orders", id, "confirm"]) => ok(200, order_json(id, "confirmed")),
        ("POST", ["v1", "orders", id, "cancel"]) => ok(200, order_json(id, "cancelled")),
        ("PATCH", ["v1", "orders", id]) => {
            let body: Value = serde_json::from_slice(&seen.body).unwrap();
            let mut order = order_json(id, "reserved");
            order["sku"] = body.get("sku").cloned().unwrap_or(json!("A"));
            order["quantity"] = body.get("quantity").cloned().unwrap_or(json!(1));
            order["changes"] = json!([{
                "at": "2026-11-27T09:00:01.000Z",
                "from_sku": "A", "from_quantity": 1,
                "to_sku": order["sku"], "to_quantity": order["quantity"],
            }]);
            ok(200, order)
        }
        ("GET", ["v1", "skus"]) => ok(200, json!([sku_json("A"), sku_json("B")])),
        ("GET", ["v1", "skus", "missing"]) => problem(404, "unknown_sku", "no SKU missing"),
        ("GET", ["v1", "skus", "proxy"]) => (502, "text/html", b"<h1>Bad Gateway</h1>".to_vec()),
        ("GET", ["v1", "skus", "huge"]) => ok(200, json!({ "padding": "x".repeat(4096) })),
        ("GET", ["v1", "skus", sku]) => ok(200, sku_json(sku)),
        ("PUT", ["v1", "skus", sku]) if admin => ok(201, sku_json(sku)),
        ("POST", ["v1", "skus", sku, "restock"]) if admin => ok(200, sku_json(sku)),
        ("PUT" | "POST", ["v1", "skus", ..]) => {
            problem(403, "forbidden", "the admin token is wrong")
        }
        _ => problem(404, "not_found", "no such resource"),
    }
}

/// A write's refusal by a node in `role`, if it refuses it.
fn refusal(role: &Role, seen: &Seen) -> Option<(u16, &'static str, Vec<u8>)> {
    if seen.method == "GET" {
        return None;
    }
    match role {
        Role::Primary | Role::Crashing => None,
        Role::Standby { primary } => {
            let mut body = json!({
                "type": "urn:flashgate:problem:not_primary", "title": "Service Unavailable",
                "status": 503, "code": "not_primary", "detail": "this node is a standby",
            });
            if let Some(primary) = primary {
                body["primary"] = json!(primary);
            }
            Some((
                503,
                "application/problem+json",
                body.to_string().into_bytes(),
            ))
        }
        Role::WithoutStandby => Some(problem(
            503,
            "standby_unavailable",
            "the standby did not acknowledge in time",
        )),
    }
}

async fn serve(mut socket: TcpStream, seen: mpsc::UnboundedSender<Seen>, role: Arc<Mutex<Role>>) {
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => bytes.extend_from_slice(&buffer[..read]),
        }
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let path = request_line.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        match socket.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => bytes.extend_from_slice(&buffer[..read]),
        }
    }
    let request = Seen {
        method,
        path,
        headers,
        body: bytes[head_end..head_end + length].to_vec(),
    };
    let role = role.lock().unwrap().clone();
    if role == Role::Crashing && request.method != "GET" {
        // Read, maybe applied, never answered.
        let _ = seen.send(request);
        return;
    }
    let (status, content_type, body) = refusal(&role, &request).unwrap_or_else(|| answer(&request));
    let _ = seen.send(request);
    let head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(&body).await;
    let _ = socket.shutdown().await;
}

#[tokio::test]
async fn every_call_maps_its_answer_and_times_become_milliseconds() {
    // The API's calls over HTTP give the same types as over QUIC: RFC 3339
    // times arrive as milliseconds, 201 means created and 200 a replay.
    let mut server = FakeServer::start().await;
    let client = server.client();

    let placed = client
        .place(PlaceOrder::new("A", 1, "alice").with_idempotency_key("k-1"))
        .await
        .unwrap();
    assert!(placed.created);
    assert_eq!(placed.order.created_at_ms, NINE_AM_MS);
    assert_eq!(placed.order.reserved_until_ms, NINE_AM_MS + 600_000);
    assert_eq!(placed.order.updated_at_ms, NINE_AM_MS + 250);
    let seen = server.next_seen().await;
    assert_eq!(seen.headers.get("idempotency-key").unwrap(), "k-1");
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        json!({ "sku": "A", "quantity": 1, "customer_id": "alice" })
    );

    let replay = client
        .place(PlaceOrder::new("A", 1, "alice").with_idempotency_key("seen"))
        .await
        .unwrap();
    assert!(!replay.created);

    assert_eq!(client.order("1-0-1").await.unwrap().order_id, "1-0-1");
    assert_eq!(
        client.confirm("1-0-1").await.unwrap().status,
        OrderStatus::Confirmed
    );
    assert_eq!(
        client.cancel("1-0-1").await.unwrap().status,
        OrderStatus::Cancelled
    );
    let sku = client.sku("A").await.unwrap();
    assert_eq!(sku.sale_starts_at_ms, Some(NINE_AM_MS));
    assert_eq!(client.skus().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_change_is_a_patch_under_its_key_and_its_history_is_read() {
    // A change is `PATCH /v1/orders/{id}` with the `Idempotency-Key` header
    // and a body naming only what changes; the answer's order and its
    // `changes` (times as milliseconds) reach the caller. A key HTTP cannot
    // carry is refused before anything is sent.
    let mut server = FakeServer::start().await;
    let client = server.client();
    let changed = client
        .change("1-0-1", ChangeOrder::quantity(3), "change-1")
        .await
        .unwrap();
    let seen = server.next_seen().await;
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("PATCH", "/v1/orders/1-0-1")
    );
    assert_eq!(seen.headers.get("idempotency-key").unwrap(), "change-1");
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body, json!({ "quantity": 3 }));
    assert_eq!(
        (changed.order.sku.as_str(), changed.order.quantity),
        ("A", 3)
    );
    assert_eq!(
        changed.changes,
        Some(vec![OrderChange {
            at_ms: NINE_AM_MS + 1_000,
            from_sku: "A".into(),
            from_quantity: 1,
            to_sku: "A".into(),
            to_quantity: 3,
        }])
    );

    let moved = client
        .change("1-0-1", ChangeOrder::sku("B").with_quantity(2), "change-2")
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&server.next_seen().await.body).unwrap();
    assert_eq!(body, json!({ "sku": "B", "quantity": 2 }));
    assert_eq!((moved.order.sku.as_str(), moved.order.quantity), ("B", 2));

    let refused = client
        .change("1-0-1", ChangeOrder::quantity(2), "bad\nkey")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("invalid_field"));
    assert!(server.writes_seen().is_empty());
}

#[tokio::test]
async fn admin_calls_send_the_token_and_settings_as_the_api_reads_them() {
    // put_sku sends only the settings that are set, times as RFC 3339, with
    // the configured bearer token; a wrong token comes back as `forbidden`.
    let mut server = FakeServer::start().await;
    let client = server.client();
    let settings = SkuSettings {
        stock: Some(100),
        per_customer_limit: Some(1),
        sale_starts_at_ms: Some(NINE_AM_MS),
        ..SkuSettings::default()
    };
    let (sku, created) = client.put_sku("SNEAKER-42", settings).await.unwrap();
    assert!(created);
    assert_eq!(sku.sku, "SNEAKER-42");
    let seen = server.next_seen().await;
    assert_eq!(seen.method, "PUT");
    assert_eq!(seen.path, "/v1/skus/SNEAKER-42");
    assert_eq!(
        seen.headers.get("authorization").unwrap(),
        &format!("Bearer {ADMIN_TOKEN}")
    );
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        json!({ "stock": 100, "per_customer_limit": 1, "sale_starts_at": "2026-11-27T09:00:00.000Z" })
    );
    assert_eq!(client.restock("SNEAKER-42", 5).await.unwrap().total, 10);
    let seen = server.next_seen().await;
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap(),
        json!({ "quantity": 5 })
    );

    let mut wrong = HttpConfig::new(&server.url);
    wrong.admin_token = Some("guess".into());
    let error = HttpClient::new(wrong)
        .unwrap()
        .restock("A", 1)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("forbidden"));
}

#[tokio::test]
async fn refusals_carry_the_servers_code_and_other_failures_say_what_they_are() {
    // problem+json becomes `Server` with the code; a proxy's HTML 502 is a
    // transport failure; an over-limit body is refused unread. Failover is
    // off: it would send the read behind the 502 again.
    let server = FakeServer::start().await;
    let mut config = HttpConfig::new(&server.url);
    config.failover = FailoverConfig::off();
    let client = HttpClient::new(config).unwrap();
    let sold_out = client
        .place(PlaceOrder::new("A", 1, "sold-out"))
        .await
        .unwrap_err();
    assert_eq!(
        sold_out,
        ClientError::Server {
            code: "sold_out".into(),
            detail: "SKU A is sold out".into()
        }
    );
    assert_eq!(
        client.sku("missing").await.unwrap_err().code(),
        Some("unknown_sku")
    );
    let proxy = client.sku("proxy").await.unwrap_err();
    assert!(
        matches!(proxy, ClientError::Transport(TransportError::Http(_))),
        "{proxy}"
    );
    assert!(proxy.is_retryable());

    let mut small = HttpConfig::new(&server.url);
    small.response_bytes_max = 1024;
    let huge = HttpClient::new(small)
        .unwrap()
        .sku("huge")
        .await
        .unwrap_err();
    assert!(matches!(huge, ClientError::Protocol(_)), "{huge}");
}

#[tokio::test]
async fn a_batch_gives_each_order_its_own_result_in_order() {
    // Over HTTP a batch is concurrent requests; the results still line up
    // with the orders.
    let server = FakeServer::start().await;
    let client = server.client();
    let results = client
        .place_batch(vec![
            PlaceOrder::new("A", 1, "alice"),
            PlaceOrder::new("A", 1, "sold-out"),
            PlaceOrder::new("A", 1, "bob"),
        ])
        .await
        .unwrap();
    assert!(results[0].as_ref().unwrap().created);
    assert_eq!(results[1].as_ref().unwrap_err().code(), Some("sold_out"));
    assert!(results[2].is_ok());
}

#[tokio::test]
async fn an_unreachable_base_url_fails_over_to_the_next() {
    // Nothing listens on the first URL; the connect fails (nothing was sent),
    // so the client tries the next one, and a client with only the dead URL
    // reports a connect failure once its failover wait is over.
    let server = FakeServer::start().await;
    let dead: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut config = HttpConfig::new(format!("http://{dead}"));
    config.base_urls.push(server.url.clone());
    let client = HttpClient::new(config).unwrap();
    assert_eq!(client.sku("A").await.unwrap().sku, "A");
    assert_eq!(client.sku("B").await.unwrap().sku, "B");
    assert_eq!(client.current_node().as_deref(), Some(server.url.as_str()));

    let mut alone = HttpConfig::new(format!("http://{dead}"));
    alone.failover = quick_failover();
    let alone = HttpClient::new(alone).unwrap();
    let error = alone.sku("A").await.unwrap_err();
    assert!(
        matches!(error, ClientError::Transport(TransportError::Connect(_))),
        "{error}"
    );
}

/// Failover that gives up soon, for tests where no node takes a call.
fn quick_failover() -> FailoverConfig {
    FailoverConfig {
        wait_max: Duration::from_millis(200),
        backoff_first: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
    }
}

/// A client of the nodes, in that order.
fn cluster_client(nodes: &[&FakeServer]) -> HttpClient {
    let mut config = HttpConfig::with_base_urls(nodes.iter().map(|node| node.url.clone()));
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.failover.backoff_first = Duration::from_millis(10);
    HttpClient::new(config).unwrap()
}

#[tokio::test]
async fn a_not_primary_refusal_moves_the_call_to_the_primary_it_names() {
    // The first node is a standby that knows the primary is the third node:
    // the client goes straight there, skipping the second (another standby).
    // The refusal did nothing, so even an order without a key is sent again.
    let third = FakeServer::start().await;
    let first = FakeServer::start_as(Role::Standby {
        primary: Some(third.url.clone()),
    })
    .await;
    let mut second = FakeServer::start_as(Role::Standby { primary: None }).await;
    let mut third = third;
    let client = cluster_client(&[&first, &second, &third]);
    assert_eq!(client.current_node().as_deref(), Some(first.url.as_str()));

    let placed = client
        .place(PlaceOrder::new("A", 1, "alice"))
        .await
        .unwrap();
    assert!(placed.created);
    assert_eq!(client.current_node().as_deref(), Some(third.url.as_str()));
    let switches = client.node_switches();
    assert_eq!(switches.len(), 1);
    assert_eq!(
        (switches[0].from.as_str(), switches[0].to.as_str()),
        (first.url.as_str(), third.url.as_str())
    );
    assert!(second.writes_seen().is_empty());
    assert_eq!(third.writes_seen().len(), 1);

    // The client stays with the primary.
    assert_eq!(
        client.cancel("1-0-1").await.unwrap().status,
        OrderStatus::Cancelled
    );
    assert_eq!(third.writes_seen().len(), 1);
}

#[tokio::test]
async fn an_order_that_may_have_been_applied_is_sent_again_only_under_a_key() {
    // The first node reads the order and closes the connection without an
    // answer. Without a key the call fails with the unknown outcome and the
    // second node never sees the order; with one, the second node answers.
    let mut crashing = FakeServer::start_as(Role::Crashing).await;
    let mut primary = FakeServer::start().await;
    let error = cluster_client(&[&crashing, &primary])
        .place(PlaceOrder::new("A", 1, "alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Transport(TransportError::Http(_))),
        "{error}"
    );
    assert!(error.may_have_been_applied());
    assert!(primary.writes_seen().is_empty());

    let placed = cluster_client(&[&crashing, &primary])
        .place(PlaceOrder::new("A", 1, "alice").with_idempotency_key("k-alice"))
        .await
        .unwrap();
    assert_eq!(placed.order.customer_id, "alice");
    let sent_again = primary.writes_seen();
    assert_eq!(sent_again.len(), 1);
    assert_eq!(
        sent_again[0].headers.get("idempotency-key").unwrap(),
        "k-alice"
    );
    assert_eq!(crashing.writes_seen().len(), 2);

    // A restock could add twice: never sent again after a lost answer.
    let error = cluster_client(&[&crashing, &primary])
        .restock("A", 5)
        .await
        .unwrap_err();
    assert!(error.may_have_been_applied(), "{error}");
    assert!(primary.writes_seen().is_empty());
}

#[tokio::test]
async fn when_no_node_takes_a_call_it_fails_after_the_failover_wait() {
    // Two standbys and no primary: a write comes back as not_primary once the
    // wait is over (nothing was done), while reads are served. After a
    // promotion the same client's writes go through.
    let first = FakeServer::start_as(Role::Standby { primary: None }).await;
    let second = FakeServer::start_as(Role::Standby { primary: None }).await;
    let mut config = HttpConfig::with_base_urls([first.url.clone(), second.url.clone()]);
    config.failover = quick_failover();
    let client = HttpClient::new(config).unwrap();
    let error = client
        .place(PlaceOrder::new("A", 1, "alice"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("not_primary"));
    assert!(error.is_retryable());
    assert!(!error.may_have_been_applied());
    assert_eq!(client.sku("A").await.unwrap().sku, "A");

    second.set_role(Role::Primary);
    assert!(client.place(PlaceOrder::new("A", 1, "alice")).await.is_ok());
    assert_eq!(client.current_node().as_deref(), Some(second.url.as_str()));
}

#[tokio::test]
async fn standby_unavailable_is_an_answer_not_a_reason_to_move() {
    // The primary could not reach its standby: the order may exist there, and
    // no other node is primary. The client returns the answer at once; the
    // caller retries with the same key.
    let primary = FakeServer::start_as(Role::WithoutStandby).await;
    let mut other = FakeServer::start().await;
    let error = cluster_client(&[&primary, &other])
        .place(PlaceOrder::new("A", 1, "alice").with_idempotency_key("k-1"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("standby_unavailable"));
    assert!(error.may_have_been_applied());
    assert!(error.is_retryable());
    assert!(other.writes_seen().is_empty());
}
