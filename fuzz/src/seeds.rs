//! Valid encodings of each target's input: the seed corpora. Written to
//! `corpus/<target>/` by `cargo run --example write_seeds`; the fuzzer mutates
//! them, so each seed shows it a well-formed message it could not easily
//! guess (checksums, length prefixes, variant indexes).

use flashgate_actors::codec::{
    encode_archived_order, encode_chunk, encode_log_entry, CheckpointChunk, LogEntry,
};
use flashgate_actors::domain::{
    CustomerId, Event, IdempotencyKey, Order, OrderId, OrderStatus, SkuId, SkuImage, SkuSettings,
    Timestamp,
};
use flashgate_gateway::replication::fuzzing::{encode, sign, Message, NodeInfo, Start, DIALER};
use flashgate_protocol as wire;
use flashgate_storage::encode_record;

/// The secret and keying material the `replication_handshake` target checks
/// proofs against.
pub const CLUSTER_SECRET: &[u8] = b"fuzz cluster secret 0123456789abcdef";
pub const KEYING_MATERIAL: [u8; 32] = [0x5a; 32];

/// Every target's seeds: (target, seed name, bytes).
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push((target, name.to_owned(), bytes));
    };
    for (index, stream) in quic_request_streams().into_iter().enumerate() {
        add("quic_frames", &format!("requests-{index}"), stream);
    }
    for (index, stream) in quic_response_streams().into_iter().enumerate() {
        add("quic_frames", &format!("responses-{index}"), stream);
    }
    for (index, stream) in handshakes().into_iter().enumerate() {
        add(
            "replication_handshake",
            &format!("handshake-{index}"),
            stream,
        );
    }
    for (index, message) in replication_messages().iter().enumerate() {
        add(
            "replication_wire",
            &format!("{}-{index}", message.name().replace(' ', "-")),
            encode(message)[4..].to_vec(),
        );
    }
    for (index, entry) in log_entries().iter().enumerate() {
        add(
            "log_record",
            &format!("record-{index}"),
            encode_log_entry(entry),
        );
    }
    for (index, status) in [
        OrderStatus::Reserved,
        OrderStatus::Confirmed,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ]
    .into_iter()
    .enumerate()
    {
        add(
            "archived_order",
            &format!("order-{index}"),
            encode_archived_order(&order(index as u64 + 1, status), &[]),
        );
    }
    for (index, entry) in log_entry_bytes().into_iter().enumerate() {
        add("log_entry", &format!("entry-{index}"), entry);
    }
    for (index, chunk) in checkpoint_chunks().iter().enumerate() {
        add(
            "checkpoint_chunk",
            &format!("chunk-{index}"),
            encode_chunk(chunk),
        );
    }
    for (index, body) in http_bodies().into_iter().enumerate() {
        add("http_json", &format!("body-{index}"), body);
    }
    for (index, text) in config_files().into_iter().enumerate() {
        add("config", &format!("config-{index}.toml"), text.into_bytes());
    }
    seeds
}

fn place(request_id: u64, key: Option<&str>) -> wire::PlaceOrder {
    wire::PlaceOrder {
        request_id,
        sku: "SNEAKER-42".into(),
        quantity: 2,
        customer_id: "alice".into(),
        idempotency_key: key.map(str::to_owned),
    }
}

fn frames<M: bincode::Encode>(messages: &[M]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for message in messages {
        wire::encode_frame(message, &mut bytes);
    }
    bytes
}

/// A quic_frames input: mode byte (bit 0: responses), chunk-size byte, stream.
fn quic_input(mode: u8, size: u8, stream: Vec<u8>) -> Vec<u8> {
    let mut input = vec![mode, size];
    input.extend(stream);
    input
}

fn quic_request_streams() -> Vec<Vec<u8>> {
    let requests = vec![
        wire::Request::PlaceOrder(place(1, Some("k1"))),
        wire::Request::GetOrder {
            request_id: 2,
            order_id: "1-0-7".into(),
        },
        wire::Request::Confirm {
            request_id: 3,
            order_id: "1-0-7".into(),
        },
        wire::Request::Cancel {
            request_id: 4,
            order_id: "1-1-8".into(),
        },
        wire::Request::GetSku {
            request_id: 5,
            sku: "SNEAKER-42".into(),
        },
        wire::Request::PlaceOrders {
            orders: vec![place(6, None), place(7, Some("k7"))],
        },
        wire::Request::PutSku {
            request_id: 8,
            admin_token: "fuzz-admin-token-0123456789abcdef".into(),
            sku: "SNEAKER-42".into(),
            settings: wire::SkuSettings {
                stock: Some(100),
                per_customer_limit: Some(2),
                max_quantity_per_order: Some(2),
                sale_starts_at_ms: Some(1_795_000_000_000),
                reservation_ttl_secs: Some(600),
                low_stock_threshold: Some(5),
            },
        },
        wire::Request::Restock {
            request_id: 9,
            admin_token: "wrong".into(),
            sku: "SNEAKER-42".into(),
            quantity: 10,
        },
    ];
    let mut streams: Vec<Vec<u8>> = requests
        .iter()
        .map(|request| quic_input(0, 7, frames(std::slice::from_ref(request))))
        .collect();
    streams.push(quic_input(2, 1, frames(&requests)));
    streams
}

fn quic_response_streams() -> Vec<Vec<u8>> {
    let order = wire::Order {
        order_id: "1-0-7".into(),
        sku: "SKU-1".into(),
        quantity: 2,
        customer_id: "c1".into(),
        status: wire::OrderStatus::Reserved,
        created_at_ms: 1_795_000_000_000,
        reserved_until_ms: 1_795_000_600_000,
        updated_at_ms: 1_795_000_000_000,
    };
    let sku = wire::Sku {
        sku: "SKU-1".into(),
        total: 10,
        available: 8,
        reserved: 2,
        sold: 0,
        per_customer_limit: Some(2),
        max_quantity_per_order: 2,
        sale_starts_at_ms: None,
        reservation_ttl_secs: 600,
        low_stock_threshold: 1,
        low_stock: false,
    };
    let responses = vec![
        wire::Response::Order {
            request_id: 300,
            created: true,
            order: order.clone(),
        },
        wire::Response::Sku {
            request_id: 5,
            created: false,
            sku,
        },
        wire::Response::Error {
            request_id: 9,
            code: wire::code::SOLD_OUT.into(),
            detail: "sku SKU-1 is sold out".into(),
        },
        wire::Response::Batch {
            results: vec![
                wire::Response::Order {
                    request_id: 1,
                    created: false,
                    order,
                },
                wire::Response::Error {
                    request_id: 2,
                    code: wire::code::INVALID_FIELD.into(),
                    detail: "quantity: must be between 1 and 1000".into(),
                },
            ],
        },
        wire::Response::FrameError {
            code: wire::code::MALFORMED_FRAME.into(),
            detail: "frame body is not a valid message".into(),
        },
    ];
    vec![quic_input(1, 5, frames(&responses))]
}

fn node(http: &str) -> NodeInfo {
    NodeInfo {
        http: http.into(),
        quic: Some("127.0.0.1:4433".into()),
        replication: Some("127.0.0.1:7000".into()),
    }
}

fn follow() -> Message {
    Message::Follow {
        node: node("http://127.0.0.1:8081"),
        is_primary: false,
        epoch: 2,
        cluster_id: 77,
        last_lsn: 1500,
        history: vec![(1, 1), (2, 100)],
        empty: false,
    }
}

/// Handshake streams: mode byte (bit 0: the harness puts in the right proof),
/// then a Hello and a Follow, length-prefixed.
fn handshakes() -> Vec<Vec<u8>> {
    let right = sign(CLUSTER_SECRET, DIALER, &KEYING_MATERIAL);
    let mut proven = vec![0];
    proven.extend(encode(&Message::Hello { proof: right }));
    proven.extend(encode(&follow()));
    let mut wrong = vec![0];
    wrong.extend(encode(&Message::Hello { proof: [7; 32] }));
    wrong.extend(encode(&follow()));
    let mut substituted = vec![1];
    substituted.extend(encode(&Message::Hello { proof: [0; 32] }));
    substituted.extend(encode(&follow()));
    vec![proven, wrong, substituted]
}

fn replication_messages() -> Vec<Message> {
    let entry = log_entry_bytes().remove(0);
    vec![
        Message::Hello { proof: [1; 32] },
        follow(),
        Message::Welcome {
            epoch: 3,
            cluster_id: 77,
            history: vec![(1, 1), (3, 200)],
            primary: node("http://127.0.0.1:8080"),
            replication: "sync".into(),
            standby_loss: "keep-serving".into(),
            start: Start::Log,
        },
        Message::Welcome {
            epoch: 3,
            cluster_id: 77,
            history: vec![(3, 1)],
            primary: node("http://127.0.0.1:8080"),
            replication: "async".into(),
            standby_loss: "stop-writes".into(),
            start: Start::Checkpoint {
                covers_lsn: 900,
                chunk_count: 2,
            },
        },
        Message::Welcome {
            epoch: 4,
            cluster_id: 77,
            history: vec![(4, 1)],
            primary: node("http://127.0.0.1:8080"),
            replication: "sync".into(),
            standby_loss: "keep-serving".into(),
            start: Start::DiscardAfter { keep_through: 50 },
        },
        Message::Refused {
            reason: "not the primary".into(),
            epoch: 5,
            primary: Some(node("http://127.0.0.1:8080")),
        },
        Message::Fenced { epoch: 6 },
        Message::CheckpointChunk {
            bytes: encode_chunk(&checkpoint_chunks()[0]),
        },
        Message::Entries {
            epoch: 3,
            entries: vec![(10, entry)],
        },
        Message::Heartbeat {
            epoch: 3,
            durable_lsn: 12,
        },
        Message::Ack { durable_lsn: 12 },
    ]
}

fn order(number: u64, status: OrderStatus) -> Order {
    Order {
        id: OrderId {
            epoch: 1,
            shard: 0,
            number,
        },
        sku: SkuId::parse("SNEAKER-42").expect("valid"),
        quantity: 2,
        customer: CustomerId::parse("alice").expect("valid"),
        status,
        created_at: Timestamp(1_795_000_000_000),
        reserved_until: Timestamp(1_795_000_600_000),
        updated_at: Timestamp(1_795_000_000_000),
        idempotency_key: Some(IdempotencyKey::parse("k1").expect("valid")),
    }
}

fn settings() -> SkuSettings {
    SkuSettings {
        per_customer_limit: Some(2),
        sale_starts_at: Some(Timestamp(1_795_000_000_000)),
        ..SkuSettings::default()
    }
}

fn log_entries() -> Vec<LogEntry> {
    let sku = SkuId::parse("SNEAKER-42").expect("valid");
    let id = OrderId {
        epoch: 1,
        shard: 0,
        number: 7,
    };
    let at = Timestamp(1_795_000_100_000);
    let events = vec![
        Event::SkuCreated {
            sku: sku.clone(),
            stock: 100,
            settings: settings(),
        },
        Event::SkuSettingsChanged {
            sku: sku.clone(),
            settings: SkuSettings::default(),
        },
        Event::Restocked { sku, quantity: 5 },
        Event::OrderReserved(order(7, OrderStatus::Reserved)),
        Event::OrderConfirmed { id, at },
        Event::OrderCancelled { id, at },
        Event::OrderExpired { id, at },
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(seq, event)| LogEntry {
            shard: 1,
            seq: seq as u64 + 1,
            event,
        })
        .collect()
}

/// log_entry inputs: mode byte (bit 0: the harness recomputes CRCs), the first
/// LSN (u64 little-endian), then the entry.
fn log_entry_bytes() -> Vec<Vec<u8>> {
    let mut inputs = Vec::new();
    let entries = log_entries();
    for (mode, group) in [(0u8, &entries[..1]), (0, &entries[..]), (1, &entries[3..5])] {
        let first = 10u64;
        let mut input = vec![mode];
        input.extend_from_slice(&first.to_le_bytes());
        for (index, entry) in group.iter().enumerate() {
            encode_record(
                &mut input,
                3,
                first + index as u64,
                &encode_log_entry(entry),
            );
        }
        inputs.push(input);
    }
    inputs
}

fn checkpoint_chunks() -> Vec<CheckpointChunk> {
    vec![
        CheckpointChunk::ShardHeader {
            shard: 1,
            seq: 42,
            next_order_number: 9,
            skus: vec![SkuImage {
                id: SkuId::parse("SNEAKER-42").expect("valid"),
                total: 100,
                available: 96,
                reserved: 2,
                sold: 2,
                settings: settings(),
            }],
        },
        CheckpointChunk::Orders {
            shard: 1,
            orders: vec![
                order(7, OrderStatus::Reserved),
                order(8, OrderStatus::Confirmed),
                order(9, OrderStatus::Cancelled),
            ],
        },
    ]
}

/// http_json inputs: body-kind byte (0 place order, 1 put SKU, 2 restock), body.
fn http_bodies() -> Vec<Vec<u8>> {
    let bodies: [(u8, &str); 7] = [
        (
            0,
            r#"{"sku":"SNEAKER-42","quantity":1,"customer_id":"alice"}"#,
        ),
        (
            0,
            r#"{"sku":"SNEAKER-42","quantity":1,"quantity":5,"customer_id":"al\u200bice"}"#,
        ),
        (
            1,
            r#"{"stock":100,"per_customer_limit":2,"max_quantity_per_order":2,"sale_starts_at":"2026-11-27T09:00:00Z","reservation_ttl_secs":600,"low_stock_threshold":5}"#,
        ),
        (
            1,
            r#"{"stock":-0,"reservation_ttl_secs":4294967296,"low_stock_threshold":1.0}"#,
        ),
        (1, r#"{}"#),
        (2, r#"{"quantity":10}"#),
        (2, r#"{"quantity":1e3,"extra":[null,true,{"a":"b"}]}"#),
    ];
    bodies
        .iter()
        .map(|(kind, body)| {
            let mut input = vec![*kind];
            input.extend_from_slice(body.as_bytes());
            input
        })
        .collect()
}

fn config_files() -> Vec<String> {
    vec![
        "data_dir = \"/var/lib/flashgate\"\nhttp_addr = \"127.0.0.1:8080\"\nshards = 4\nlog_format = \"json\"\n".into(),
        "quic_enabled = true\nquic_addr = \"127.0.0.1:4433\"\nquic_frame_bytes_max = 65536\nquic_batch_orders_max = 64\nquic_idle_timeout_ms = 30000\n".into(),
        "role = \"standby\"\nfollow = \"127.0.0.1:7000\"\nreplication_addr = \"127.0.0.1:7001\"\nreplication = \"sync\"\nstandby_loss = \"keep-serving\"\ncluster_secret = \"0123456789abcdef0123456789abcdef\"\nauto_promote_after_ms = 5000\n".into(),
        "http_body_bytes_max = 4096\nhttp_body_read_timeout_ms = 5000\norders_per_shard_max = 1000000\ncheckpoint_interval_secs = 60\nlog_batch_bytes_max = 1048576\n".into(),
    ]
}
