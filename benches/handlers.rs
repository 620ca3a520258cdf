//! Criterion benches of the front ends in process, each against a real `Node` on
//! a fresh data dir (durable log, sled flush + fsync before every answer):
//!
//! - `http/place_order`: `POST /v1/orders` through an actix-web test service
//!   built with `flashgate_gateway::http::configure`: JSON parsing, validation,
//!   the node round trip, the JSON answer. No sockets: the HTTP stack's
//!   connection handling is not in the figure.
//! - `quic/place_order` and `quic/place_batch_64`: a `QuicServer` on
//!   127.0.0.1:0 and one `QuicClient` (fingerprint-pinned), one order per
//!   request, and batch frames of 64 orders.
//!
//! Every call carries a service token (`Authorization: Bearer` over HTTP, an
//! `Authenticate` per connection over QUIC), so the figures include the
//! credential check.
//!
//! One request at a time, so each figure is a latency that includes a whole
//! fsync; the load tests (`scripts/compare.sh`) measure throughput under
//! concurrency.
//!
//! `cargo bench --bench handlers`

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::{header, StatusCode};
use actix_web::rt::System;
use actix_web::{test, web, App};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flashgate_client::{OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};
use flashgate_gateway::auth::{Credentials, Gatekeeper};
use flashgate_gateway::http::{configure, AppState, Readiness};
use flashgate_gateway::quic::{server_certificate, QuicLimits, QuicServer};
use flashgate_gateway::Config;
use metrics_exporter_prometheus::PrometheusBuilder;

mod common;

use common::SKUS;
const BATCH_ORDERS: usize = 64;
const ADMIN_TOKEN: &str = "bench-token-0123456789";
const SERVICE_TOKEN: &str = "bench-service-token-0123456789";

fn handlers(c: &mut Criterion) {
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let system = System::new();
    let (node, runtime) = common::start_node(&system, data_dir.path());
    let tokens = data_dir.path().join("service-tokens");
    std::fs::write(&tokens, SERVICE_TOKEN).expect("write the service tokens file");
    let config = Config {
        service_tokens_file: Some(tokens),
        data_dir: data_dir.path().to_owned(),
        ..Config::default()
    };
    let gatekeeper = Arc::new(Gatekeeper::new(
        Credentials::load(&config, ADMIN_TOKEN).expect("credentials"),
        config.auth_throttle(),
    ));

    let requests = Arc::new(flashgate_gateway::request::RequestMetrics::default());
    let rate_limits = Arc::new(flashgate_gateway::rate_limit::RateLimits::new(
        &config.rate_limits(),
    ));
    let waiting_rooms = Arc::new(
        flashgate_gateway::waiting_room::WaitingRooms::open(
            config.waiting_rooms().expect("waiting-room settings"),
        )
        .expect("waiting rooms"),
    );
    // HTTP: the routes as `flashgate serve` mounts them, without a socket.
    let state = web::Data::new(AppState {
        node: Arc::clone(&node),
        gatekeeper: Arc::clone(&gatekeeper),
        body: config.body_limits(),
        metrics: PrometheusBuilder::new().build_recorder().handle(),
        readiness: Arc::new(Readiness::default()),
        replication: Arc::new(std::sync::OnceLock::new()),
        orders_read_max: config.orders_read_max,
        customer_orders: flashgate_gateway::http::CustomerOrderLimits::of(&config),
        requests: Arc::clone(&requests),
        rate_limits: Arc::clone(&rate_limits),
        waiting_rooms: Arc::clone(&waiting_rooms),
        alerts: Arc::new(flashgate_gateway::alerts::Alerts::new(
            flashgate_gateway::alerts::FeedLimits {
                recent_max: 1,
                events_max: 1,
            },
            None,
        )),
        events: None,
        console: Arc::new(flashgate_gateway::console::Console::new(1)),
    });
    let app = system.block_on(test::init_service(
        App::new().app_data(state).configure(configure),
    ));
    let mut group = c.benchmark_group("http");
    common::configure_group(&mut group);
    group.throughput(Throughput::Elements(1));
    let mut customer: u64 = 0;
    group.bench_function("place_order", |b| {
        b.iter_custom(|iterations| {
            system.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    customer += 1;
                    let body = format!(
                        r#"{{"sku":"BENCH-{}","quantity":1,"customer_id":"http-{customer}"}}"#,
                        customer as usize % SKUS
                    );
                    let request = test::TestRequest::post()
                        .uri("/v1/orders")
                        .insert_header((header::CONTENT_TYPE, "application/json"))
                        .insert_header((header::AUTHORIZATION, format!("Bearer {SERVICE_TOKEN}")))
                        .set_payload(body)
                        .to_request();
                    let response = test::call_service(&app, request).await;
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    drop(app);

    // QUIC: the real server on a loopback port and the client library.
    let certificate = server_certificate(data_dir.path(), None, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .expect("a generated certificate");
    let tls = certificate.rustls_config().expect("a TLS config");
    let quic = system
        .block_on(QuicServer::start(
            Arc::clone(&node),
            ADMIN_TOKEN.into(),
            gatekeeper,
            requests,
            rate_limits,
            waiting_rooms,
            tls,
            SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            QuicLimits::from_config(&config),
        ))
        .expect("start the QUIC server");
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let fingerprint = certificate
        .fingerprint_sha256
        .parse()
        .expect("a SHA-256 fingerprint");
    let quic_config = QuicConfig {
        credential: Some(SERVICE_TOKEN.into()),
        ..QuicConfig::new(vec![quic.local_addr()], Trust::Fingerprint(fingerprint))
    };
    let client = client_runtime
        .block_on(QuicClient::connect(quic_config))
        .expect("connect");
    let mut group = c.benchmark_group("quic");
    common::configure_group(&mut group);
    group.throughput(Throughput::Elements(1));
    group.bench_function("place_order", |b| {
        b.iter_custom(|iterations| {
            client_runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    customer += 1;
                    let order = PlaceOrder::new(
                        format!("BENCH-{}", customer as usize % SKUS),
                        1,
                        format!("quic-{customer}"),
                    );
                    client.place(order).await.expect("the order is placed");
                }
                started.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(BATCH_ORDERS as u64));
    group.bench_function("place_batch_64", |b| {
        b.iter_custom(|iterations| {
            client_runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iterations {
                    let orders = (0..BATCH_ORDERS)
                        .map(|n| {
                            customer += 1;
                            PlaceOrder::new(
                                format!("BENCH-{}", n % SKUS),
                                1,
                                format!("quic-{customer}"),
                            )
                        })
                        .collect();
                    let results = client
                        .place_batch(orders)
                        .await
                        .expect("the batch is answered");
                    assert!(results.iter().all(Result::is_ok), "every order is placed");
                }
                started.elapsed()
            })
        })
    });
    group.finish();
    client_runtime.block_on(client.close());
    system.block_on(quic.stop());
    drop(node);
    runtime.stop();
}

criterion_group!(benches, handlers);
criterion_main!(benches);
