//! Order events out on a real NATS JetStream (`nats-server -js`): a consumer
//! reading the stream sees every acknowledged order's events exactly once
//! after dedup by event id, in log order per SKU, and the units per SKU by
//! status it rebuilds equal the node's counters — with NATS killed and
//! restarted mid-sale, with flashgate SIGKILLed and restarted mid-sale, and
//! across a failover to the standby. The order path never waits for NATS:
//! orders are taken while NATS is down.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{order_id, poll_until, Launch, Server};
use serde_json::{json, Value};

const STREAM: &str = "FLASHGATE";
const SKUS: [&str; 3] = ["tee", "cap", "mug"];
/// The SKU whose reservations expire (a one-second TTL).
const EXPIRING: &str = "mug";
/// Longest wait for the consumer to see what the node holds.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// A `nats-server` with JetStream on a loopback port and a store dir of its
/// own; killed on drop.
struct Nats {
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl Nats {
    /// `None` (with a SKIPPED line) where nats-server is not installed; CI
    /// installs it (.ci/run).
    fn start(store: &Path) -> Option<Nats> {
        if Command::new("nats-server")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED: nats-server is not installed (Debian package nats-server)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Nats {
            port,
            store: store.to_path_buf(),
            child: None,
        };
        nats.restart();
        Some(nats)
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        assert!(self.child.is_none(), "nats-server is running");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        self.child = Some(child);
        poll_until("nats-server to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .map(drop)
        });
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn node(nats: &Nats) -> Launch {
    Launch::new()
        .arg("--events-nats-url")
        .arg(nats.url())
        .env("FLASHGATE_SHARDS", "2")
}

fn create_skus(server: &Server) {
    for sku in SKUS {
        let ttl = if sku == EXPIRING { 1 } else { 600 };
        server
            .client()
            .put_sku(sku, json!({ "stock": 200, "reservation_ttl_secs": ttl }));
    }
}

/// `count` orders over the SKUs; of those created, some are confirmed (and
/// some of those shipped), some cancelled. Returns the ids acknowledged.
fn sell(server: &Server, round: &str, count: usize) -> Vec<String> {
    let client = server.client();
    let mut acknowledged = Vec::new();
    for index in 0..count {
        let sku = SKUS[index % SKUS.len()];
        let customer = format!("{round}-buyer-{index}");
        let (status, body) = client.place_order(sku, 1 + (index % 2) as u64, &customer);
        assert_eq!(status, 201, "order {index} of {round}: {body}");
        let id = order_id(&body);
        if sku != EXPIRING {
            match index % 5 {
                0 | 1 => assert_eq!(client.confirm(&id).0, 200),
                2 => {
                    assert_eq!(client.confirm(&id).0, 200);
                    let (status, body) =
                        client.admin_post(&format!("/v1/orders/{id}/ship"), &json!({}));
                    assert_eq!(status, 200, "{body}");
                }
                3 => assert_eq!(client.cancel(&id).0, 200),
                // Changed before it ships: to another SKU (possibly of
                // another shard, a move) and another quantity.
                _ => {
                    let to = SKUS[(index + 1) % SKUS.len()];
                    let to = if to == EXPIRING { SKUS[0] } else { to };
                    let request = client
                        .request("PATCH", &format!("/v1/orders/{id}"))
                        .set("Content-Type", "application/json")
                        .set("Idempotency-Key", &format!("{round}-change-{index}"));
                    let answer = client.send(
                        request,
                        Some(&json!({ "sku": to, "quantity": 1 }).to_string()),
                    );
                    assert_eq!(answer.status, 200, "{}", answer.json());
                }
            }
        }
        acknowledged.push(id);
    }
    acknowledged
}

/// What a consumer rebuilds from the stream.
#[derive(Debug, Default)]
struct Consumed {
    /// Each order's SKU, quantity and status.
    orders: HashMap<String, (String, u64, String)>,
    /// Per order, the kinds seen (after dedup by event id), in order.
    kinds: HashMap<String, Vec<String>>,
    /// Messages read, and how many were re-sends of an id already seen.
    messages: usize,
    duplicates: usize,
    gaps: usize,
}

impl Consumed {
    /// Units per SKU: (reserved, sold), sold being confirmed or shipped.
    fn units(&self) -> BTreeMap<String, (u64, u64)> {
        let mut units: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (sku, quantity, status) in self.orders.values() {
            let entry = units.entry(sku.clone()).or_default();
            match status.as_str() {
                "reserved" => entry.0 += quantity,
                "confirmed" | "shipped" => entry.1 += quantity,
                _ => {}
            }
        }
        units
    }
}

/// Reads the whole stream, message by message, as a consumer would: dedup
/// by event id, and check log order per SKU subject.
fn consume(nats_url: &str) -> Consumed {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let client = async_nats::connect(nats_url)
            .await
            .expect("connect to NATS");
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream
            .get_stream(STREAM)
            .await
            .expect("the stream exists");
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut consumed = Consumed::default();
        let mut seen = HashSet::new();
        let mut last_lsn: HashMap<String, u64> = HashMap::new();
        for sequence in 1..=last {
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            consumed.messages += 1;
            let event: Value = serde_json::from_slice(&message.payload).expect("JSON events");
            let id = event["id"].as_str().expect("an event id").to_owned();
            if !seen.insert(id) {
                consumed.duplicates += 1;
                continue;
            }
            if event["kind"] == "gap" {
                consumed.gaps += 1;
                continue;
            }
            assert_eq!(event["schema"], 1, "{event}");
            let subject = message.subject.to_string();
            let lsn = event["lsn"].as_u64().expect("an lsn");
            let previous = last_lsn.insert(subject.clone(), lsn).unwrap_or(0);
            assert!(
                lsn > previous,
                "{subject}: LSN {lsn} after {previous}: not in log order"
            );
            let Some(order) = event["order_id"].as_str() else {
                continue;
            };
            // A change keeps the order's status (a move says it too).
            let status = event["status"].as_str().map(str::to_owned);
            consumed
                .kinds
                .entry(order.to_owned())
                .or_default()
                .push(event["kind"].as_str().unwrap().to_owned());
            if event["kind"] == "order.reserved" {
                assert_eq!(
                    subject,
                    format!("flashgate.orders.{}", event["sku"].as_str().unwrap())
                );
                consumed.orders.insert(
                    order.to_owned(),
                    (
                        event["sku"].as_str().unwrap().to_owned(),
                        event["quantity"].as_u64().unwrap(),
                        status.expect("a reserved order's status"),
                    ),
                );
            } else {
                let known = consumed
                    .orders
                    .get_mut(order)
                    .unwrap_or_else(|| panic!("{event}: an event of an order never reserved"));
                if event["kind"] == "order.changed" {
                    assert_eq!(event["from_sku"], known.0.as_str(), "{event}");
                    assert_eq!(event["from_quantity"].as_u64(), Some(known.1), "{event}");
                    known.0 = event["sku"].as_str().unwrap().to_owned();
                    known.1 = event["quantity"].as_u64().unwrap();
                } else {
                    assert_eq!(event["sku"], known.0.as_str(), "{event}");
                }
                if let Some(status) = status {
                    known.2 = status;
                }
            }
        }
        consumed
    })
}

/// The node's units per SKU: (reserved, sold).
fn node_units(server: &Server) -> BTreeMap<String, (u64, u64)> {
    SKUS.iter()
        .map(|sku| {
            let body = server.client().sku(sku);
            (
                sku.to_string(),
                (
                    body["reserved"].as_u64().unwrap(),
                    body["sold"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Waits until the stream holds what the node holds, then checks every
/// acknowledged order is there once, each of its events once.
fn assert_stream_matches(server: &Server, nats: &Nats, acknowledged: &[String]) -> Consumed {
    let started = Instant::now();
    let consumed = poll_until(
        "the stream to hold what the node holds",
        CONVERGE_TIMEOUT,
        || {
            let expected = node_units(server);
            let consumed = consume(&nats.url());
            let seen = consumed.units();
            let all = expected
                .iter()
                .all(|(sku, units)| seen.get(sku).copied().unwrap_or_default() == *units);
            (all && acknowledged
                .iter()
                .all(|id| consumed.orders.contains_key(id)))
            .then_some(consumed)
        },
    );
    eprintln!(
        "stream converged in {:?}: {} messages, {} re-sends, {} orders",
        started.elapsed(),
        consumed.messages,
        consumed.duplicates,
        consumed.orders.len()
    );
    assert_eq!(consumed.gaps, 0, "no record was lost to the retention");
    for (order, kinds) in &consumed.kinds {
        let distinct: HashSet<&String> = kinds.iter().collect();
        assert_eq!(
            distinct.len(),
            kinds.len(),
            "order {order}: an event under two ids: {kinds:?}"
        );
        assert_eq!(kinds[0], "order.reserved", "order {order}: {kinds:?}");
    }
    consumed
}

/// A sale on one node: NATS killed mid-sale (orders go on) and restarted;
/// then flashgate SIGKILLed mid-sale and restarted. The stream ends up with
/// every event once, in order, and the same units as the node.
#[test]
fn every_event_reaches_the_stream_through_nats_and_node_crashes() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let Some(mut nats) = Nats::start(&dir.path().join("nats")) else {
        return;
    };
    let data_dir = dir.path().join("data");
    let mut server = node(&nats).data_dir(&data_dir).start();
    create_skus(&server);
    let mut acknowledged = sell(&server, "first", 45);

    // NATS dies: orders are still taken; the events wait in the log.
    nats.kill();
    acknowledged.extend(sell(&server, "nats-down", 45));
    nats.restart();
    acknowledged.extend(sell(&server, "nats-back", 30));

    // flashgate dies mid-sale (some events possibly unpublished) and comes
    // back on the same data.
    server.kill();
    let server = node(&nats).data_dir(&data_dir).start();
    acknowledged.extend(sell(&server, "restarted", 45));
    // The expiring SKU's reservations run out.
    poll_until(
        "the short reservations to expire",
        Duration::from_secs(20),
        || (server.client().sku(EXPIRING)["reserved"] == 0).then_some(()),
    );

    let consumed = assert_stream_matches(&server, &nats, &acknowledged);
    let kinds: HashSet<&str> = consumed
        .kinds
        .values()
        .flatten()
        .map(String::as_str)
        .collect();
    for kind in [
        "order.changed",
        "order.reserved",
        "order.confirmed",
        "order.cancelled",
        "order.expired",
        "order.shipped",
    ] {
        assert!(kinds.contains(kind), "no {kind} event in {kinds:?}");
    }
    // The node reports itself caught up.
    poll_until("the publisher to catch up", CONVERGE_TIMEOUT, || {
        let cluster = server.cluster();
        (cluster["events"]["lag_records"] == 0 && cluster["events"]["connected"] == true)
            .then_some(())
    });
}

/// A sync pair: the primary dies mid-sale, the standby is promoted and
/// publishes from where the cluster had got to: every order the dead
/// primary acknowledged, and every order after, is on the stream once.
#[test]
fn publishing_resumes_on_the_promoted_standby() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let Some(nats) = Nats::start(&dir.path().join("nats")) else {
        return;
    };
    let mut primary = node(&nats)
        .data_dir(&dir.path().join("primary"))
        .replicated("127.0.0.1:0")
        .start();
    let standby = node(&nats)
        .data_dir(&dir.path().join("standby"))
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .start();
    primary.wait_for_cluster("the standby to connect", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
    create_skus(&primary);
    let mut acknowledged = sell(&primary, "before", 60);
    primary.kill();
    let promoted = standby.promote();
    assert_eq!(promoted["epoch"], 2, "{promoted}");
    acknowledged.extend(sell(&standby, "after", 60));
    poll_until(
        "the short reservations to expire",
        Duration::from_secs(20),
        || (standby.client().sku(EXPIRING)["reserved"] == 0).then_some(()),
    );
    assert_stream_matches(&standby, &nats, &acknowledged);
}

/// NATS down for longer than the log keeps records for it
/// (`events_retention_records_max`, tiny here, checkpoints every second):
/// orders go on, the log is trimmed anyway, and when NATS is back the
/// publisher says so — one gap marker on `flashgate.gaps` naming the records
/// never published, the `events_gap` alert — and publishes what follows.
#[test]
fn past_the_retention_a_gap_is_published_and_raised_not_blocked_on() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let Some(mut nats) = Nats::start(&dir.path().join("nats")) else {
        return;
    };
    let server = node(&nats)
        .env("FLASHGATE_EVENTS_RETENTION_RECORDS_MAX", "10")
        .env("FLASHGATE_CHECKPOINT_INTERVAL_SECS", "1")
        .start();
    create_skus(&server);
    poll_until("the first events to be published", CONVERGE_TIMEOUT, || {
        (server.cluster()["events"]["lag_records"] == 0).then_some(())
    });
    nats.kill();
    // Orders are taken while the publisher cannot publish.
    let mut acknowledged = sell(&server, "nats-down", 40);
    // A checkpoint trims past the retention.
    let published = server.cluster()["events"]["published_lsn"]
        .as_u64()
        .unwrap();
    poll_until(
        "the log to be trimmed past the publisher",
        CONVERGE_TIMEOUT,
        || {
            let metrics = server.client().metrics_page();
            metrics
                .lines()
                .find_map(|line| line.strip_prefix("flashgate_checkpoint_covers_lsn "))
                .and_then(|value| value.trim().parse::<f64>().ok())
                .filter(|covers| *covers as u64 > published)
                .map(drop)
        },
    );
    nats.restart();
    let gap = poll_until("a gap marker on the stream", CONVERGE_TIMEOUT, || {
        let consumed = consume(&nats.url());
        (consumed.gaps > 0).then_some(consumed)
    });
    assert_eq!(gap.gaps, 1, "one gap marker");
    // The publisher is back (it published the marker): what follows the gap
    // is published. (Orders sold before it was back may fall in the gap: the
    // checkpoints every second trim past a publisher still waiting on its old
    // connection.)
    acknowledged.extend(sell(&server, "nats-back", 6));
    let after = poll_until(
        "the orders after the gap on the stream",
        CONVERGE_TIMEOUT,
        || {
            let consumed = consume(&nats.url());
            acknowledged[40..]
                .iter()
                .all(|id| consumed.orders.contains_key(id))
                .then_some(consumed)
        },
    );
    assert_eq!(after.gaps, 1, "still one gap marker");
    let operator = server
        .client()
        .with_credential(Some(common::OPERATOR_TOKEN));
    poll_until("the events_gap alert", CONVERGE_TIMEOUT, || {
        let (_, alerts) = operator.get("/v1/alerts");
        alerts["active"]
            .as_array()?
            .iter()
            .any(|alert| alert["kind"] == "events_gap")
            .then_some(())
    });
    assert_eq!(server.cluster()["events"]["gaps"], 1);
}
