//! The waiting room against the real binary: a SKU put behind one takes
//! orders only with an admission ticket its queue gave (once, for that
//! customer and SKU, before it expires); early joiners are drawn into a
//! random order at the opening; admission follows the configured rate; every
//! waiter learns of a sell-out on its next poll; over QUIC only a trusted
//! upstream's credential orders such a SKU; the settings survive a restart
//! (replayed from the log) and follow the cluster to a promoted standby, and
//! the old queue's tickets are refused.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use common::{poll_until, Client, Launch, Server, ADMIN_TOKEN, SERVICE_TOKEN};
use serde_json::{json, Value};

/// Longest wait for a state the server reaches by itself (an opening, an
/// admission at the configured rate, an expiry).
const STATE_WAIT: Duration = Duration::from_secs(30);

/// Puts `sku` with `stock` units behind a waiting room with `room`.
fn put_room_sku(client: &Client, sku: &str, stock: u64, room: Value, extra: Value) -> Value {
    let mut body = json!({ "stock": stock, "waiting_room": room });
    if let Value::Object(extra) = extra {
        body.as_object_mut().unwrap().extend(extra);
    }
    client.put_sku(sku, body)
}

/// `POST /v1/skus/{sku}/queue` for `customer`: the status and body.
fn join(client: &Client, sku: &str, customer: &str) -> (u16, Value) {
    client.post_json(
        &format!("/v1/skus/{sku}/queue"),
        &json!({ "customer_id": customer }),
    )
}

/// Joins and asserts 201; returns the ticket body.
fn joined(client: &Client, sku: &str, customer: &str) -> Value {
    let (status, body) = join(client, sku, customer);
    assert_eq!(status, 201, "join {sku} for {customer}: {body}");
    body
}

/// `GET /v1/skus/{sku}/queue/{ticket}`: the status and body.
fn poll(client: &Client, sku: &str, ticket: &str) -> (u16, Value) {
    client.get(&format!("/v1/skus/{sku}/queue/{ticket}"))
}

fn polled(client: &Client, sku: &str, ticket: &str) -> Value {
    let (status, body) = poll(client, sku, ticket);
    assert_eq!(status, 200, "poll: {body}");
    body
}

/// An order of one `sku` for `customer` with `ticket` in the header (or
/// none), under `idempotency_key` if given: the status and body.
fn order(
    client: &Client,
    sku: &str,
    customer: &str,
    ticket: Option<&str>,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let mut headers = Vec::new();
    if let Some(ticket) = ticket {
        headers.push(("Flashgate-Queue-Ticket", ticket));
    }
    if let Some(key) = idempotency_key {
        headers.push(("Idempotency-Key", key));
    }
    client
        .try_post_json(
            "/v1/orders",
            &json!({ "sku": sku, "quantity": 1, "customer_id": customer }),
            &headers,
        )
        .expect("an answer")
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

/// A server whose poll hints are short, so tests poll often.
fn launch() -> Server {
    Launch::new()
        .env("FLASHGATE_WAITING_ROOM_POLL_AFTER_MIN_MS", "50")
        .env("FLASHGATE_WAITING_ROOM_POLL_AFTER_MAX_MS", "500")
        .start()
}

/// Admission tickets are bound to their customer and SKU, order once, and
/// cannot be forged; a join ticket does not order; an order without a
/// ticket is told to queue; a customer holds one place. Without these the queue is decoration: anyone
/// could skip it or order twice with one admission.
#[test]
fn only_an_admitted_ticket_orders_once_for_its_customer_and_sku() {
    let server = launch();
    let client = server.client();
    let room = json!({ "admit_per_sec": 1, "admitted_ttl_secs": 600 });
    let sku = put_room_sku(client, "WR-A", 10, room.clone(), json!({}));
    assert_eq!(sku["waiting_room"]["admit_per_sec"], 1, "{sku}");
    put_room_sku(client, "WR-B", 10, room, json!({}));
    client.put_sku("PLAIN", json!({ "stock": 5 }));

    let alice = joined(client, "WR-A", "alice");
    assert_eq!(alice["position"], 0, "{alice}");
    assert_eq!(
        alice["status"], "admitted",
        "the first second's admission: {alice}"
    );
    let bob = joined(client, "WR-A", "bob");
    assert_eq!(bob["position"], 1, "{bob}");
    // One place per customer: joining again is not another draw.
    let bob_again = joined(client, "WR-A", "bob");
    assert_eq!(bob_again["ticket"], bob["ticket"], "{bob_again}");
    assert_eq!(bob_again["queue_length"], 2, "{bob_again}");
    let admission = alice["admission_ticket"]
        .as_str()
        .expect("an admission")
        .to_owned();
    let join_ticket = alice["ticket"].as_str().unwrap().to_owned();

    let (status, body) = order(client, "WR-A", "alice", None, None);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_required"),
        "{body}"
    );
    let (status, body) = order(client, "WR-A", "alice", Some(&join_ticket), None);
    assert_eq!((status, code(&body)), (409, "not_admitted_yet"), "{body}");
    let (status, body) = order(client, "WR-A", "bob", Some(&admission), None);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_invalid"),
        "another customer: {body}"
    );
    let (status, body) = order(client, "WR-B", "alice", Some(&admission), None);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_invalid"),
        "another SKU: {body}"
    );
    // A forged ticket: alice's claims with the signature of bob's ticket.
    let (payload, _) = admission.split_once('.').unwrap();
    let (_, bob_signature) = bob["ticket"].as_str().unwrap().split_once('.').unwrap();
    let forged = format!("{payload}.{bob_signature}");
    let (status, body) = order(client, "WR-A", "alice", Some(&forged), None);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_invalid"),
        "forged: {body}"
    );

    let (status, body) = order(client, "WR-A", "alice", Some(&admission), Some("k-1"));
    assert_eq!(status, 201, "the admission orders: {body}");
    let (status, again) = order(client, "WR-A", "alice", Some(&admission), Some("k-1"));
    assert_eq!(status, 200, "a retry of the same order: {again}");
    assert_eq!(again["order_id"], body["order_id"]);
    let (status, body) = order(client, "WR-A", "alice", Some(&admission), Some("k-2"));
    assert_eq!((status, code(&body)), (409, "queue_ticket_used"), "{body}");
    assert_eq!(polled(client, "WR-A", &join_ticket)["status"], "used");
    let metrics = client.metrics_page();
    for line in [
        "flashgate_waiting_room_orders_total{outcome=\"admitted\"} 2",
        "flashgate_waiting_room_orders_total{outcome=\"queue_ticket_used\"} 1",
        "flashgate_waiting_room_joins_total 2",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }

    // A SKU without a room orders as before; joining it is refused.
    assert_eq!(client.place_order("PLAIN", 1, "alice").0, 201);
    let (status, body) = join(client, "PLAIN", "alice");
    assert_eq!((status, code(&body)), (404, "no_waiting_room"), "{body}");
    // A buyer polls only its own tickets.
    let buyer = client.with_credential(Some(&common::buyer_token("carol")));
    let (status, body) = poll(&buyer, "WR-A", &join_ticket);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_invalid"),
        "{body}"
    );
    let (status, body) = poll(client, "WR-A", "not-a-ticket");
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_invalid"),
        "{body}"
    );
}

/// Bad room settings are refused with the member and its rule, and nothing
/// is changed.
#[test]
fn bad_room_settings_are_refused_with_the_member_named() {
    let server = launch();
    let client = server.client();
    for (room, member) in [
        (
            json!({ "admitted_ttl_secs": 60 }),
            "waiting_room.admit_per_sec",
        ),
        (
            json!({ "admit_per_sec": 0, "admitted_ttl_secs": 60 }),
            "waiting_room.admit_per_sec",
        ),
        (
            json!({ "admit_per_sec": 5, "admitted_ttl_secs": 0 }),
            "waiting_room.admitted_ttl_secs",
        ),
        (
            json!({ "admit_per_sec": 5, "admitted_ttl_secs": 60, "queue_length_max": 100_000_000 }),
            "waiting_room.queue_length_max",
        ),
        (
            json!({ "admit_per_sec": 5, "admitted_ttl_secs": 60, "rate": 1 }),
            "waiting_room",
        ),
        (json!(7), "waiting_room"),
    ] {
        let (status, body) = client.admin_put(
            "/v1/skus/WR-BAD",
            &json!({ "stock": 1, "waiting_room": room }),
        );
        assert_eq!(
            (status, code(&body)),
            (422, "invalid_field"),
            "{room}: {body}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains(member),
            "{room}: {body}"
        );
    }
    let (status, _) = client.get("/v1/skus/WR-BAD");
    assert_eq!(status, 404, "nothing was created");
}

/// Those who join before the opening have no position until it, then hold
/// a random permutation of the first places (a FIFO queue would give them
/// their join order, and this test would fail); a later joiner comes after
/// all of them. This is what makes refreshing early pointless.
#[test]
fn early_joiners_are_drawn_in_a_random_order_at_the_opening() {
    let server = launch();
    let client = server.client();
    const EARLY: usize = 40;
    let opens_at = SystemTime::now() + Duration::from_secs(4);
    put_room_sku(
        client,
        "WR-DRAW",
        100,
        json!({ "admit_per_sec": 1, "admitted_ttl_secs": 600 }),
        json!({ "sale_starts_at": humantime::format_rfc3339_millis(opens_at).to_string() }),
    );
    let mut tickets = Vec::new();
    for index in 0..EARLY {
        let body = joined(client, "WR-DRAW", &format!("early-{index}"));
        assert!(
            body["position"].is_null(),
            "no position before the draw: {body}"
        );
        assert!(body["opens_at"].is_string(), "{body}");
        assert_eq!(body["status"], "waiting", "{body}");
        tickets.push(body["ticket"].as_str().unwrap().to_owned());
    }
    assert!(
        SystemTime::now() < opens_at,
        "the joins took past the opening: this machine is too slow for the test's margin"
    );
    poll_until("the sale opens and the draw is made", STATE_WAIT, || {
        polled(client, "WR-DRAW", &tickets[0])["position"]
            .as_u64()
            .map(|_| ())
    });
    let positions: Vec<u64> = tickets
        .iter()
        .map(|ticket| {
            polled(client, "WR-DRAW", ticket)["position"]
                .as_u64()
                .expect("a position after the draw")
        })
        .collect();
    let distinct: BTreeSet<u64> = positions.iter().copied().collect();
    assert_eq!(
        distinct,
        (0..EARLY as u64).collect::<BTreeSet<_>>(),
        "the early joiners hold the first places: {positions:?}"
    );
    let join_order: Vec<u64> = (0..EARLY as u64).collect();
    assert_ne!(positions, join_order, "drawn, not first come first served");
    let late = joined(client, "WR-DRAW", "late");
    assert_eq!(late["position"], EARLY as u64, "{late}");
}

/// Admission goes at the configured rate, in queue order, until everyone
/// is in: counted over polls, never more than the first second's burst plus
/// the rate times the time since the room was set up (measured by the test,
/// so a slow machine only loosens the bound), and everyone eventually.
#[test]
fn admission_follows_the_configured_rate_in_queue_order() {
    let server = launch();
    let client = server.client();
    const BUYERS: usize = 12;
    const RATE: u64 = 2;
    let set_up = Instant::now();
    put_room_sku(
        client,
        "WR-RATE",
        100,
        json!({ "admit_per_sec": RATE, "admitted_ttl_secs": 600 }),
        json!({}),
    );
    let tickets: Vec<String> = (0..BUYERS)
        .map(|index| {
            joined(client, "WR-RATE", &format!("buyer-{index}"))["ticket"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut rounds = 0;
    let mut seen_counts = BTreeSet::new();
    poll_until("everyone is admitted", STATE_WAIT, || {
        rounds += 1;
        // Back to front: admissions go front to back, so when a ticket is
        // seen admitted, every ticket before it (polled later) is too.
        let answers: Vec<Value> = tickets
            .iter()
            .rev()
            .map(|ticket| polled(client, "WR-RATE", ticket))
            .collect();
        let elapsed_secs = set_up.elapsed().as_secs_f64();
        let mut admitted: Vec<u64> = answers
            .iter()
            .filter(|answer| answer["status"] == "admitted")
            .map(|answer| answer["position"].as_u64().unwrap())
            .collect();
        admitted.sort_unstable();
        let bound = RATE as f64 * (1.0 + elapsed_secs);
        assert!(
            admitted.len() as f64 <= bound,
            "{} admitted after {elapsed_secs:.2} s: over {RATE}/s",
            admitted.len()
        );
        assert_eq!(
            admitted,
            (0..admitted.len() as u64).collect::<Vec<_>>(),
            "admitted in queue order"
        );
        for answer in &answers {
            if answer["status"] == "waiting" {
                // Those in front were polled after it: at least as many of
                // them are admitted as when it was polled.
                let ahead = answer["ahead"].as_u64().unwrap();
                let position = answer["position"].as_u64().unwrap();
                assert!(ahead <= position, "{answer}");
                assert!(ahead + admitted.len() as u64 >= position, "{answer}");
                assert!(answer["poll_after_ms"].as_u64().unwrap() >= 50, "{answer}");
            }
        }
        seen_counts.insert(admitted.len());
        (admitted.len() == BUYERS).then_some(())
    });
    assert!(
        seen_counts.len() > 2,
        "admission came in steps, not at once: {seen_counts:?} over {rounds} rounds"
    );
}

/// An admission not used in time is refused as expired (its slot went to the
/// next in line), and its poll says so.
#[test]
fn an_expired_admission_is_refused() {
    let server = launch();
    let client = server.client();
    put_room_sku(
        client,
        "WR-TTL",
        10,
        json!({ "admit_per_sec": 1, "admitted_ttl_secs": 1 }),
        json!({}),
    );
    let alice = joined(client, "WR-TTL", "alice");
    let admission = alice["admission_ticket"]
        .as_str()
        .expect("admitted")
        .to_owned();
    let ticket = alice["ticket"].as_str().unwrap().to_owned();
    poll_until("the admission expires", STATE_WAIT, || {
        (polled(client, "WR-TTL", &ticket)["status"] == "expired").then_some(())
    });
    let (status, body) = order(client, "WR-TTL", "alice", Some(&admission), None);
    assert_eq!(
        (status, code(&body)),
        (410, "queue_ticket_expired"),
        "{body}"
    );
}

/// When the last unit is sold, every waiting ticket reads `sold_out` on its
/// next poll, so nobody waits for what is gone.
#[test]
fn waiters_learn_of_the_sell_out() {
    let server = launch();
    let client = server.client();
    put_room_sku(
        client,
        "WR-GONE",
        1,
        json!({ "admit_per_sec": 1, "admitted_ttl_secs": 600 }),
        json!({}),
    );
    let first = joined(client, "WR-GONE", "first");
    let waiters: Vec<String> = (0..5)
        .map(|index| {
            let body = joined(client, "WR-GONE", &format!("waiter-{index}"));
            assert_eq!(body["status"], "waiting", "{body}");
            assert_eq!(body["units_remain"], true, "{body}");
            body["ticket"].as_str().unwrap().to_owned()
        })
        .collect();
    let admission = first["admission_ticket"].as_str().expect("admitted");
    let (status, body) = order(client, "WR-GONE", "first", Some(admission), None);
    assert_eq!(status, 201, "{body}");
    for ticket in &waiters {
        let answer = poll_until("the waiter sees the sell-out", STATE_WAIT, || {
            let answer = polled(client, "WR-GONE", ticket);
            (answer["status"] == "sold_out").then_some(answer)
        });
        assert_eq!(answer["units_remain"], false, "{answer}");
        assert!(answer["admission_ticket"].is_null(), "{answer}");
    }
}

/// Over QUIC, which carries no ticket, a SKU behind a waiting room takes
/// orders only from a trusted upstream's credential
/// (`waiting_room_bypass_tokens_file`); any other is told to queue.
#[test]
fn over_quic_only_a_trusted_upstream_orders_a_sku_behind_a_room() {
    use flashgate_client::{ClientError, OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};
    let dir = tempfile::tempdir().unwrap();
    let bypass = dir.path().join("bypass-tokens");
    std::fs::write(&bypass, SERVICE_TOKEN).unwrap();
    std::fs::set_permissions(&bypass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let server = Launch::new()
        .env(
            "FLASHGATE_WAITING_ROOM_BYPASS_TOKENS_FILE",
            bypass.to_str().unwrap(),
        )
        .start();
    put_room_sku(
        server.client(),
        "WR-QUIC",
        10,
        json!({ "admit_per_sec": 1, "admitted_ttl_secs": 60 }),
        json!({}),
    );
    let endpoint = server.quic().expect("QUIC");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let connect = |credential: &str| {
            let mut config = QuicConfig::new(
                vec![endpoint.addr],
                Trust::Fingerprint(endpoint.sha256.parse().unwrap()),
            );
            config.credential = Some(credential.to_owned());
            QuicClient::connect(config)
        };
        let other = connect(ADMIN_TOKEN).await.expect("connect");
        let error = other
            .place(PlaceOrder::new("WR-QUIC", 1, "alice"))
            .await
            .expect_err("no ticket over QUIC");
        assert!(
            matches!(&error, ClientError::Server { code, .. } if code == "queue_ticket_required"),
            "{error}"
        );
        let upstream = connect(SERVICE_TOKEN).await.expect("connect");
        let placed = upstream
            .place(PlaceOrder::new("WR-QUIC", 1, "alice"))
            .await
            .expect("a trusted upstream orders");
        assert_eq!(placed.order.sku, "WR-QUIC");
        let batch = upstream
            .place_batch(vec![PlaceOrder::new("WR-QUIC", 1, "bob")])
            .await
            .expect("a batch");
        assert!(batch[0].is_ok(), "{batch:?}");
    });
}

/// The room's settings are kept across a restart; the queue is not, and a
/// join ticket from before is refused as expired, so its holder joins again;
/// an admission from before still orders (same `waiting_room_secret_file`).
#[test]
fn settings_survive_a_restart_and_old_join_tickets_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let secret = data.path().join("waiting-room-secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef-waiting-room").unwrap();
    let launch = || {
        Launch::new().data_dir(&data_dir).env(
            "FLASHGATE_WAITING_ROOM_SECRET_FILE",
            secret.to_str().unwrap(),
        )
    };
    let mut server = launch().start();
    let client = server.client();
    put_room_sku(
        client,
        "WR-KEEP",
        10,
        json!({ "admit_per_sec": 1, "admitted_ttl_secs": 60 }),
        json!({}),
    );
    let first = joined(client, "WR-KEEP", "first");
    let admission = first["admission_ticket"]
        .as_str()
        .expect("admitted")
        .to_owned();
    let ticket = joined(client, "WR-KEEP", "second")["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    server.terminate();
    let server = launch().start();
    let client = server.client();
    assert_eq!(client.sku("WR-KEEP")["waiting_room"]["admit_per_sec"], 1);
    let (status, body) = poll(client, "WR-KEEP", &ticket);
    assert_eq!(
        (status, code(&body)),
        (410, "queue_ticket_expired"),
        "{body}"
    );
    let (status, body) = order(client, "WR-KEEP", "second", None, None);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_required"),
        "{body}"
    );
    assert_eq!(joined(client, "WR-KEEP", "second")["position"], 0);
    let (status, body) = order(client, "WR-KEEP", "first", Some(&admission), None);
    assert_eq!(
        status, 201,
        "an admission is checked by its signature: {body}"
    );
}

/// A room's settings are replicated state: put on the primary, the standby
/// holds them without a call to it, a room put on the standby is refused as
/// a write, and once the primary is killed and the standby promoted an order
/// for that SKU without an admitted ticket is refused there. Without this a
/// failover sells a waiting-room SKU to whoever presses first.
#[test]
fn the_room_follows_the_cluster_through_a_failover() {
    let primary_dir = tempfile::tempdir().unwrap();
    let standby_dir = tempfile::tempdir().unwrap();
    let mut primary = Launch::new()
        .data_dir(primary_dir.path())
        .replicated("127.0.0.1:0")
        .env("FLASHGATE_WAITING_ROOM_POLL_AFTER_MIN_MS", "50")
        .start();
    let standby = Launch::new()
        .data_dir(standby_dir.path())
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_WAITING_ROOM_POLL_AFTER_MIN_MS", "50")
        .start();
    primary.wait_for_cluster("the standby to connect", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
    let room = json!({ "admit_per_sec": 1, "admitted_ttl_secs": 60, "queue_length_max": 50 });
    put_room_sku(primary.client(), "WR-HA", 10, room.clone(), json!({}));
    common::pair::wait_caught_up(&primary, &standby);
    let on_standby = poll_until("the standby to hold the room", STATE_WAIT, || {
        let sku = standby.client().sku("WR-HA");
        (!sku["waiting_room"].is_null()).then_some(sku)
    });
    assert_eq!(on_standby["waiting_room"], room, "{on_standby}");
    // A write: the standby refuses it and points at the primary.
    let (status, body) = standby.client().admin_put(
        "/v1/skus/WR-HA/waiting-room",
        &json!({ "waiting_room": null }),
    );
    assert_eq!((status, code(&body)), (503, "not_primary"), "{body}");

    primary.kill();
    let promoted = standby.promote();
    assert_eq!(promoted["epoch"], 2, "{promoted}");
    let client = standby.client();
    let (status, body) = order(client, "WR-HA", "mallory", None, None);
    assert_eq!(
        (status, code(&body)),
        (403, "queue_ticket_required"),
        "{body}"
    );
    let admitted = joined(client, "WR-HA", "alice");
    let admission = admitted["admission_ticket"]
        .as_str()
        .expect("the first join is admitted")
        .to_owned();
    let (status, body) = order(client, "WR-HA", "alice", Some(&admission), None);
    assert_eq!(status, 201, "{body}");
    let (status, body) = client.admin_put(
        "/v1/skus/NOPE/waiting-room",
        &json!({ "waiting_room": room }),
    );
    assert_eq!((status, code(&body)), (404, "unknown_sku"), "{body}");
    // The new primary removes the room through its own log.
    let (status, body) = client.admin_put(
        "/v1/skus/WR-HA/waiting-room",
        &json!({ "waiting_room": null }),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = order(client, "WR-HA", "bob", None, None);
    assert_eq!(status, 201, "{body}");
}

/// The load tester's waiting-room scenario against a real node: every order
/// joins the queue, polls it honouring `poll_after`, and is placed only with
/// its admission; the report counts every join's end and the time in queue,
/// every sent order was admitted, and the audit passes. This is what lets a
/// sale behind a waiting room be rehearsed before it runs.
#[test]
fn the_load_tester_queues_each_order_and_reports_time_in_queue() {
    use flashgate_loadtest::progress::ProgressMode;
    use flashgate_loadtest::scenario::{LoadModel, Scenario};
    let server = launch();
    let scenario = Scenario {
        http: vec![server.base_url().to_owned()],
        model: LoadModel::Closed,
        buyers: 8,
        duration_secs: 20.0,
        orders: Some(60),
        skus: 1,
        stock: 20,
        create_skus: true,
        admin_token: Some(ADMIN_TOKEN.into()),
        credential: Some(SERVICE_TOKEN.into()),
        customers: 200,
        waiting_room_admit_per_sec: Some(10),
        waiting_room_admitted_ttl_secs: 60,
        request_timeout_ms: 10_000,
        seed: Some(7),
        ..Scenario::default()
    };
    scenario.validate().expect("a valid scenario");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime
        .block_on(flashgate_loadtest::run(&scenario, ProgressMode::Off))
        .expect("the run completes");
    eprintln!("{}", report.summary());
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["audit"]["passed"], true, "{}", report.summary());
    let room = &json["waiting_room"];
    let joined = room["joined"].as_u64().unwrap();
    let admitted = room["admitted"].as_u64().unwrap();
    assert!(admitted > 0, "{}", report.summary());
    let ends = admitted
        + room["sold_out_while_waiting"].as_u64().unwrap()
        + room["expired"].as_u64().unwrap()
        + room["gave_up_at_deadline"].as_u64().unwrap();
    assert_eq!(ends, joined, "every join ended one way: {room}");
    assert_eq!(room["time_in_queue_ms"]["count"], admitted, "{room}");
    assert!(room["time_in_queue_ms"]["p50"].as_u64().is_some(), "{room}");
    assert!(room["polls"].as_u64().unwrap() > 0, "{room}");
    assert_eq!(
        json["totals"]["sent"].as_u64().unwrap(),
        admitted,
        "only admitted orders are sent: {}",
        report.summary()
    );
    let acknowledged = json["totals"]["acknowledged"].as_u64().unwrap();
    assert!(
        acknowledged > 0 && acknowledged <= 20,
        "{}",
        report.summary()
    );
    let sku = json["skus"][0]["sku"].as_str().unwrap();
    let counters = server.client().sku(sku);
    assert_eq!(
        counters["reserved"].as_u64().unwrap() + counters["sold"].as_u64().unwrap(),
        acknowledged,
        "the node holds exactly the acknowledged orders"
    );
    assert!(report.summary().contains("time in queue (ms)"));
}
