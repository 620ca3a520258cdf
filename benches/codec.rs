//! Criterion benches of the byte formats on the order path, each alone:
//!
//! - `record`: one log record (header + CRC32 + a real order event's bincode
//!   body) encoded with `encode_record` and decoded, checksum verified, with
//!   `decode_entry`; also a 128-record entry, as the writer batches them.
//! - `frame`: a `PlaceOrder` request and an `Order` response framed with
//!   `encode_frame` and read back through `FrameReader`, as the QUIC front end
//!   and the client do.
//!
//! `cargo bench --bench codec`

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flashgate_actors::codec::{encode_log_entry, LogEntry};
use flashgate_actors::domain::{
    Command, CustomerId, PlaceOrder as DomainPlaceOrder, PutSku, Retention, ShardConfig, ShardCore,
    SkuId, SkuSettings as DomainSkuSettings, Timestamp, STOCK_MAX,
};
use flashgate_protocol::{
    encode_frame, FrameReader, Order, OrderStatus, PlaceOrder, Request, Response,
    FRAME_BYTES_MAX_LIMIT,
};
use flashgate_storage::{decode_entry, encode_record, Record};

const BODY_BYTES_MAX: usize = 1 << 20;
const ENTRY_RECORDS: u64 = 128;

/// The log entry body of one placed order, as the shard actor logs it.
fn order_event_body() -> Vec<u8> {
    let mut core = ShardCore::new(ShardConfig {
        shard: 0,
        epoch: 1,
        orders_max: 1_000,
        expiry_batch_max: 1_024,
        retention: Retention::default(),
    });
    let sku = SkuId::parse("BENCH-0").expect("a valid SKU id");
    core.execute(
        Command::PutSku(PutSku {
            sku: sku.clone(),
            stock: Some(STOCK_MAX),
            settings: DomainSkuSettings::default(),
        }),
        Timestamp(0),
    )
    .reply
    .expect("the SKU is created");
    let place = Command::PlaceOrder(DomainPlaceOrder {
        sku,
        quantity: 1,
        customer: CustomerId::parse("customer-123456").expect("a valid customer id"),
        idempotency_key: None,
    });
    let mut events = core.execute(place, Timestamp(1)).events;
    encode_log_entry(&LogEntry {
        shard: 0,
        seq: 2,
        event: events.remove(0),
    })
}

fn records(c: &mut Criterion) {
    let body = order_event_body();
    let mut one = Vec::new();
    encode_record(&mut one, 1, 1, &body);
    let mut entry = Vec::new();
    for lsn in 1..=ENTRY_RECORDS {
        encode_record(&mut entry, 1, lsn, &body);
    }

    let mut group = c.benchmark_group("record");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(4096);
        b.iter(|| {
            out.clear();
            encode_record(&mut out, 1, 1, black_box(&body));
            black_box(&out);
        })
    });
    group.bench_function("decode", |b| {
        let mut out: Vec<Record> = Vec::with_capacity(1);
        b.iter(|| {
            out.clear();
            decode_entry(black_box(&one), 1, BODY_BYTES_MAX, &mut out).expect("a valid record");
            black_box(&out);
        })
    });
    group.throughput(Throughput::Elements(ENTRY_RECORDS));
    group.bench_function("decode_entry_128", |b| {
        let mut out: Vec<Record> = Vec::with_capacity(ENTRY_RECORDS as usize);
        b.iter(|| {
            out.clear();
            decode_entry(black_box(&entry), 1, BODY_BYTES_MAX, &mut out).expect("a valid entry");
            black_box(&out);
        })
    });
    group.finish();
}

fn frames(c: &mut Criterion) {
    let request = Request::PlaceOrder(PlaceOrder {
        request_id: 42,
        sku: "BENCH-3".into(),
        quantity: 1,
        customer_id: "customer-123456".into(),
        idempotency_key: None,
    });
    let response = Response::Order {
        request_id: 42,
        created: true,
        order: Order {
            order_id: "1-0-123456".into(),
            sku: "BENCH-3".into(),
            quantity: 1,
            customer_id: "customer-123456".into(),
            status: OrderStatus::Reserved,
            created_at_ms: 1_700_000_000_000,
            reserved_until_ms: 1_700_000_600_000,
            updated_at_ms: 1_700_000_000_000,
        },
    };
    let mut request_bytes = Vec::new();
    encode_frame(&request, &mut request_bytes);
    let mut response_bytes = Vec::new();
    encode_frame(&response, &mut response_bytes);

    let mut group = c.benchmark_group("frame");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_place_order", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&request), &mut out);
            black_box(&out);
        })
    });
    group.bench_function("decode_place_order", |b| {
        let mut reader = FrameReader::new(FRAME_BYTES_MAX_LIMIT);
        b.iter(|| {
            reader.extend(black_box(&request_bytes));
            let decoded: Request = reader
                .next_frame()
                .expect("a valid frame")
                .expect("a whole frame");
            black_box(decoded);
        })
    });
    group.bench_function("encode_order_response", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode_frame(black_box(&response), &mut out);
            black_box(&out);
        })
    });
    group.bench_function("decode_order_response", |b| {
        let mut reader = FrameReader::new(FRAME_BYTES_MAX_LIMIT);
        b.iter(|| {
            reader.extend(black_box(&response_bytes));
            let decoded: Response = reader
                .next_frame()
                .expect("a valid frame")
                .expect("a whole frame");
            black_box(decoded);
        })
    });
    group.finish();
}

criterion_group!(benches, records, frames);
criterion_main!(benches);
