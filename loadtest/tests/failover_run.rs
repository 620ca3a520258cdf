//! A load-test run against a fake two-node cluster over HTTP, through the real
//! `HttpClient` given both nodes as one target: the primary dies in the middle
//! of the run (after applying an order it never answers), and the standby,
//! which refused writes as `not_primary` until then, is promoted. The run must
//! follow the primary: every order gets an outcome, the order the dead node
//! applied comes back as a replay of the same order under its key, the audit
//! reads back from the new primary and passes, and the report shows the
//! switch. This is what proves a failover test with the load tester measures
//! the cluster, not the client's confusion.
//!
//! The two fake nodes share one store (replication without lag), speak the
//! gateway's JSON and problem+json, and change role on events, not on time:
//! the first node dies after placing `CRASH_AFTER_ORDERS` orders; the second
//! is promoted after refusing `PROMOTE_AFTER_REFUSALS` writes once the first
//! is dead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use flashgate_loadtest::progress::ProgressMode;
use flashgate_loadtest::run;
use flashgate_loadtest::scenario::{LoadModel, Scenario};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

const ADMIN_TOKEN: &str = "secret";
const CRASH_AFTER_ORDERS: u64 = 60;
const PROMOTE_AFTER_REFUSALS: u64 = 3;
const TIME: &str = "2026-11-27T09:00:00.000Z";
/// Far enough ahead that no reservation expires during the test.
const RESERVED_UNTIL: &str = "2099-01-01T00:00:00.000Z";

#[derive(Clone)]
struct SkuRow {
    total: u64,
    reserved: u64,
    sold: u64,
}

#[derive(Clone)]
struct OrderRow {
    sku: String,
    quantity: u64,
    customer_id: String,
    status: &'static str,
}

/// The orders and SKUs both nodes serve.
#[derive(Default)]
struct Store {
    skus: HashMap<String, SkuRow>,
    orders: HashMap<String, OrderRow>,
    keys: HashMap<(String, String), String>,
    next_id: u64,
}

/// Who is primary, and the events that change it.
#[derive(Default)]
struct Roles {
    primary: Option<usize>,
    first_dead: bool,
    placed_by_first: u64,
    refusals_after_death: u64,
}

#[derive(Default)]
struct Cluster {
    store: Mutex<Store>,
    roles: Mutex<Roles>,
    /// The first node's accept loop, aborted when it dies so that its port
    /// refuses connections.
    first_listener: Mutex<Option<AbortHandle>>,
}

/// A request as read.
struct Request {
    method: String,
    segments: Vec<String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An answer, or none: the node died holding the request.
type Answer = Option<(u16, &'static str, Vec<u8>)>;

fn ok(status: u16, body: Value) -> Answer {
    Some((status, "application/json", body.to_string().into_bytes()))
}

fn problem(status: u16, code: &str, detail: &str) -> Answer {
    let body = json!({
        "type": format!("urn:flashgate:problem:{code}"), "title": "Error",
        "status": status, "detail": detail, "code": code,
    });
    Some((
        status,
        "application/problem+json",
        body.to_string().into_bytes(),
    ))
}

fn sku_json(name: &str, sku: &SkuRow) -> Value {
    json!({
        "sku": name, "total": sku.total, "available": sku.total - sku.reserved - sku.sold,
        "reserved": sku.reserved, "sold": sku.sold, "per_customer_limit": null,
        "max_quantity_per_order": 10, "sale_starts_at": null, "reservation_ttl_secs": 600,
        "low_stock_threshold": 0, "low_stock": false,
    })
}

fn order_json(id: &str, order: &OrderRow) -> Value {
    json!({
        "order_id": id, "sku": order.sku, "quantity": order.quantity,
        "customer_id": order.customer_id, "status": order.status,
        "created_at": TIME, "reserved_until": RESERVED_UNTIL, "updated_at": TIME,
    })
}

impl Store {
    /// The primary's work: the gateway's API over the shared store.
    fn apply(&mut self, request: &Request) -> Answer {
        let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
        let admin = request.headers.get("authorization").map(String::as_str)
            == Some(&format!("Bearer {ADMIN_TOKEN}"));
        match (request.method.as_str(), segments.as_slice()) {
            ("PUT", ["v1", "skus", name]) if admin => {
                let body: Value = serde_json::from_slice(&request.body).ok()?;
                let created = !self.skus.contains_key(*name);
                let sku = self.skus.entry(name.to_string()).or_insert(SkuRow {
                    total: body["stock"].as_u64().unwrap_or(0),
                    reserved: 0,
                    sold: 0,
                });
                ok(if created { 201 } else { 200 }, sku_json(name, sku))
            }
            ("GET", ["v1", "skus", name]) => match self.skus.get(*name) {
                Some(sku) => ok(200, sku_json(name, sku)),
                None => problem(404, "unknown_sku", "no such SKU"),
            },
            ("POST", ["v1", "orders"]) => {
                let body: Value = serde_json::from_slice(&request.body).ok()?;
                let name = body["sku"].as_str().unwrap_or_default().to_owned();
                let customer_id = body["customer_id"].as_str().unwrap_or_default().to_owned();
                let quantity = body["quantity"].as_u64().unwrap_or(0);
                let key = request.headers.get("idempotency-key").cloned();
                if let Some(key) = &key {
                    if let Some(id) = self.keys.get(&(customer_id.clone(), key.clone())) {
                        return ok(200, order_json(id, &self.orders[id]));
                    }
                }
                let Some(sku) = self.skus.get_mut(&name) else {
                    return problem(404, "unknown_sku", "no such SKU");
                };
                if sku.total - sku.reserved - sku.sold < quantity {
                    return problem(409, "sold_out", "sold out");
                }
                sku.reserved += quantity;
                self.next_id += 1;
                let id = format!("1-0-{}", self.next_id);
                let order = OrderRow {
                    sku: name,
                    quantity,
                    customer_id: customer_id.clone(),
                    status: "reserved",
                };
                if let Some(key) = key {
                    self.keys.insert((customer_id, key), id.clone());
                }
                let answer = ok(201, order_json(&id, &order));
                self.orders.insert(id, order);
                answer
            }
            ("GET", ["v1", "orders", id]) => match self.orders.get(*id) {
                Some(order) => ok(200, order_json(id, order)),
                None => problem(404, "unknown_order", "no such order"),
            },
            ("POST", ["v1", "orders", id, action]) => {
                let Some(order) = self.orders.get_mut(*id) else {
                    return problem(404, "unknown_order", "no such order");
                };
                let sku = self.skus.get_mut(&order.sku)?;
                match (*action, order.status) {
                    ("confirm", "confirmed") | ("cancel", "cancelled") => {}
                    ("confirm", "reserved") => {
                        sku.reserved -= order.quantity;
                        sku.sold += order.quantity;
                        order.status = "confirmed";
                    }
                    ("cancel", "reserved") => {
                        sku.reserved -= order.quantity;
                        order.status = "cancelled";
                    }
                    ("cancel", "confirmed") => {
                        sku.sold -= order.quantity;
                        order.status = "cancelled";
                    }
                    _ => return problem(409, "invalid_transition", "not from this status"),
                }
                ok(200, order_json(id, order))
            }
            (_, ["v1", "skus", ..]) => problem(403, "forbidden", "the admin token is wrong"),
            _ => problem(404, "not_found", "no such resource"),
        }
    }
}

impl Cluster {
    /// What node `node` does with a request.
    fn handle(&self, node: usize, request: &Request) -> Answer {
        let write = request.method != "GET";
        let mut roles = self.roles.lock().unwrap();
        if node == 0 && roles.first_dead {
            // A request the dead node was still holding: never answered.
            return None;
        }
        if !write {
            drop(roles);
            return self.store.lock().unwrap().apply(request);
        }
        if roles.primary != Some(node) {
            if roles.first_dead {
                roles.refusals_after_death += 1;
                if roles.refusals_after_death >= PROMOTE_AFTER_REFUSALS {
                    roles.primary = Some(1);
                }
            }
            return problem(503, "not_primary", "this node is a standby");
        }
        let answer = self.store.lock().unwrap().apply(request);
        let is_order = request.method == "POST" && request.segments == ["v1", "orders"];
        if node == 0 && is_order {
            roles.placed_by_first += 1;
            if roles.placed_by_first == CRASH_AFTER_ORDERS {
                // Dies after applying this order, before answering it.
                roles.first_dead = true;
                roles.primary = None;
                if let Some(listener) = self.first_listener.lock().unwrap().take() {
                    listener.abort();
                }
                return None;
            }
        }
        answer
    }
}

async fn start_node(cluster: Arc<Cluster>, node: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let serving = cluster.clone();
    let accept = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket, serving.clone(), node));
        }
    });
    if node == 0 {
        *cluster.first_listener.lock().unwrap() = Some(accept.abort_handle());
    }
    url
}

async fn serve(mut socket: TcpStream, cluster: Arc<Cluster>, node: usize) {
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
    let request = Request {
        method,
        segments: path
            .trim_start_matches('/')
            .split('/')
            .map(str::to_owned)
            .collect(),
        headers,
        body: bytes[head_end..head_end + length].to_vec(),
    };
    let Some((status, content_type, body)) = cluster.handle(node, &request) else {
        return;
    };
    let head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.write_all(&body).await;
    let _ = socket.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_follows_the_primary_through_a_failover_and_audits_the_new_one() {
    let cluster = Arc::new(Cluster::default());
    cluster.roles.lock().unwrap().primary = Some(0);
    let first = start_node(cluster.clone(), 0).await;
    let second = start_node(cluster.clone(), 1).await;
    let scenario = Scenario {
        http: vec![format!("{first},{second}")],
        model: LoadModel::Closed,
        buyers: 4,
        duration_secs: 60.0,
        orders: Some(200),
        skus: 2,
        stock: 1000,
        create_skus: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        customers: 50,
        confirm_ratio: 0.3,
        cancel_ratio: 0.2,
        payment_delay_ms: 5,
        request_timeout_ms: 5_000,
        connect_timeout_ms: 1_000,
        failover_wait_ms: 10_000,
        seed: Some(7),
        ..Scenario::default()
    };
    scenario.validate().expect("a valid scenario");
    let report = run(&scenario, ProgressMode::Off)
        .await
        .expect("the run completes");

    assert!(report.audit.passed, "{}", report.summary());
    assert!(report.audit.sole_writer, "{}", report.summary());
    let totals = &report.totals;
    assert_eq!(totals.sent, 200);
    assert_eq!(totals.acknowledged + totals.errors, totals.sent);
    assert_eq!(totals.errors, 0, "{:?}", report.errors_by_code);
    // The order the first node applied and never answered, sent again under
    // its key: the new primary answers with the same order.
    assert_eq!(totals.replayed, 1, "{}", report.summary());

    assert_eq!(report.node_switches.len(), 1, "{:?}", report.node_switches);
    let switch = &report.node_switches[0];
    assert_eq!(
        (switch.from.as_str(), switch.to.as_str()),
        (first.as_str(), second.as_str())
    );
    assert_eq!(switch.transport, "http");
    assert!(switch.at_secs >= 0.0 && switch.at_secs <= report.measured_secs);
    assert_eq!(report.targets.len(), 1);
    assert_eq!(report.targets[0].nodes, [first.clone(), second.clone()]);
    assert_eq!(
        report.targets[0].current_node.as_deref(),
        Some(second.as_str())
    );
    let in_timeline: u64 = report.timeline.iter().map(|s| s.node_switches).sum();
    assert_eq!(in_timeline, 1);

    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["node_switches"][0]["to"], second.as_str());
    assert_eq!(json["targets"][0]["current_node"], second.as_str());
    let page = flashgate_loadtest::html::render(&report);
    assert!(page.contains("<h2>Events</h2>"));
    let marker = format!("#1 http → {second}");
    assert_eq!(
        page.split("<svg")
            .filter(|svg| svg.contains(&marker))
            .count(),
        2,
        "the throughput and latency charts mark the switch"
    );
    assert!(report.summary().contains(&format!("{first} -> {second}")));

    // The audit read back from the node that serves now: every order the run
    // holds is in the shared store, counted as the SKUs count it.
    let store = cluster.store.lock().unwrap();
    let held: u64 = store.skus.values().map(|sku| sku.reserved + sku.sold).sum();
    assert_eq!(held, totals.acknowledged - totals.cancelled);
}
