//! `QuicClient` against an in-process QUIC server that speaks the protocol
//! crate's frames with scripted answers. It proves what the real server cannot
//! be made to show on demand: answers out of order, a held answer, a frame
//! error, a connection the server drops. (The black-box tests against the real
//! `flashgate` binary live in the workspace's tests/.)
//!
//! The fake server's script, by request:
//! - `GetSku "wait"`: no answer until the next request on the same stream, which
//!   is answered first; then the held ones are.
//! - `GetSku "poison"`: a `FrameError` (`malformed_frame`); then, like the real
//!   server, the answers to the requests read before, and the stream ends.
//! - `GetSku "close"`: the server closes the whole connection.
//! - `GetSku "missing"`: `Error unknown_sku`; any other `GetSku`: the SKU.
//! - `PlaceOrder`/`PlaceOrders`: an order, or `Error sold_out` for customer
//!   `"sold-out"`; `PutSku`/`Restock`: checked against admin token `secret`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flashgate_client::{
    ClientError, Fingerprint, OrderGateway, OrderStatus, PlaceOrder, QuicClient, QuicConfig,
    SkuSettings, TransportError, Trust,
};
use flashgate_protocol::{code, encode_frame, FrameReader, Order, Request, Response, Sku, ALPN};
use quinn::crypto::rustls::QuicServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;

const ADMIN_TOKEN: &str = "secret";

struct FakeServer {
    addr: SocketAddr,
    certificate: CertificateDer<'static>,
    certificate_pem: String,
    /// Every request the server read, in the order it read them.
    received: mpsc::UnboundedReceiver<Request>,
    connections: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    _endpoint: quinn::Endpoint,
}

impl FakeServer {
    fn start() -> FakeServer {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let certificate = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certificate.clone()], key)
            .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let config =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).unwrap()));
        let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
        let (sender, received) = mpsc::unbounded_channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let streams = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept(
            endpoint.clone(),
            sender,
            connections.clone(),
            streams.clone(),
        ));
        FakeServer {
            addr: endpoint.local_addr().unwrap(),
            certificate,
            certificate_pem: certified.cert.pem(),
            received,
            connections,
            streams,
            _endpoint: endpoint,
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_certificate(self.certificate.as_ref())
    }

    fn config(&self) -> QuicConfig {
        let mut config = QuicConfig::new(vec![self.addr], Trust::Fingerprint(self.fingerprint()));
        config.admin_token = Some(ADMIN_TOKEN.into());
        config.connect_attempts_max = 1;
        config
    }

    /// Waits until the server has read a `GetSku` for `sku`.
    async fn wait_for_get_sku(&mut self, sku: &str) {
        while let Some(request) = self.received.recv().await {
            if matches!(&request, Request::GetSku { sku: got, .. } if got == sku) {
                return;
            }
        }
        panic!("the server stopped before reading GetSku {sku:?}");
    }
}

async fn accept(
    endpoint: quinn::Endpoint,
    received: mpsc::UnboundedSender<Request>,
    connections: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
) {
    while let Some(incoming) = endpoint.accept().await {
        // A client that refuses the certificate fails its handshake here.
        let Ok(connection) = incoming.await else {
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let received = received.clone();
        let streams = streams.clone();
        tokio::spawn(async move {
            while let Ok((send, recv)) = connection.accept_bi().await {
                streams.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_stream(
                    connection.clone(),
                    send,
                    recv,
                    received.clone(),
                ));
            }
        });
    }
}

fn sku_answer(request_id: u64, sku: &str, created: bool) -> Response {
    Response::Sku {
        request_id,
        created,
        sku: Sku {
            sku: sku.into(),
            total: 10,
            available: 10,
            reserved: 0,
            sold: 0,
            per_customer_limit: None,
            max_quantity_per_order: 10,
            sale_starts_at_ms: None,
            reservation_ttl_secs: 600,
            low_stock_threshold: 0,
            low_stock: false,
        },
    }
}

fn order_answer(request_id: u64, order_id: &str, status: OrderStatus) -> Response {
    Response::Order {
        request_id,
        created: status == OrderStatus::Reserved,
        order: Order {
            order_id: order_id.into(),
            sku: "A".into(),
            quantity: 1,
            customer_id: "alice".into(),
            status,
            created_at_ms: 1_795_770_000_000,
            reserved_until_ms: 1_795_770_600_000,
            updated_at_ms: 1_795_770_000_000,
        },
    }
}

fn place_answer(order: &flashgate_protocol::PlaceOrder) -> Response {
    if order.customer_id == "sold-out" {
        return Response::Error {
            request_id: order.request_id,
            code: code::SOLD_OUT.into(),
            detail: format!("SKU {} is sold out", order.sku),
        };
    }
    order_answer(
        order.request_id,
        &format!("1-0-{}", order.request_id),
        OrderStatus::Reserved,
    )
}

fn admin_answer(request_id: u64, token: &str, answer: Response) -> Response {
    if token == ADMIN_TOKEN {
        answer
    } else {
        Response::Error {
            request_id,
            code: code::FORBIDDEN.into(),
            detail: "the admin token is wrong".into(),
        }
    }
}

async fn serve_stream(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    received: mpsc::UnboundedSender<Request>,
) {
    let mut reader = FrameReader::new(1 << 20);
    let mut held = Vec::new();
    let mut buffer = vec![0; 4096];
    while let Ok(Some(read)) = recv.read(&mut buffer).await {
        reader.extend(&buffer[..read]);
        while let Some(request) = reader.next_frame::<Request>().unwrap() {
            let _ = received.send(request.clone());
            let answer = match request {
                Request::GetSku { request_id, sku } => match sku.as_str() {
                    "wait" => {
                        held.push(request_id);
                        continue;
                    }
                    "poison" => {
                        let mut bytes = Vec::new();
                        let error = Response::FrameError {
                            code: code::MALFORMED_FRAME.into(),
                            detail: "frame body is not a valid message".into(),
                        };
                        encode_frame(&error, &mut bytes);
                        for request_id in held.drain(..) {
                            encode_frame(&sku_answer(request_id, "wait", false), &mut bytes);
                        }
                        let _ = send.write_all(&bytes).await;
                        let _ = send.finish();
                        return;
                    }
                    "close" => {
                        connection.close(0u32.into(), b"closed by the test");
                        return;
                    }
                    "missing" => Response::Error {
                        request_id,
                        code: code::UNKNOWN_SKU.into(),
                        detail: "no SKU missing".into(),
                    },
                    _ => sku_answer(request_id, &sku, false),
                },
                Request::PlaceOrder(order) => place_answer(&order),
                Request::PlaceOrders { orders } => Response::Batch {
                    results: orders.iter().map(place_answer).collect(),
                },
                Request::GetOrder {
                    request_id,
                    order_id,
                } => order_answer(request_id, &order_id, OrderStatus::Reserved),
                Request::Confirm {
                    request_id,
                    order_id,
                } => order_answer(request_id, &order_id, OrderStatus::Confirmed),
                Request::Cancel {
                    request_id,
                    order_id,
                } => order_answer(request_id, &order_id, OrderStatus::Cancelled),
                Request::PutSku {
                    request_id,
                    admin_token,
                    sku,
                    ..
                } => admin_answer(request_id, &admin_token, sku_answer(request_id, &sku, true)),
                Request::Restock {
                    request_id,
                    admin_token,
                    sku,
                    ..
                } => admin_answer(
                    request_id,
                    &admin_token,
                    sku_answer(request_id, &sku, false),
                ),
            };
            let mut bytes = Vec::new();
            encode_frame(&answer, &mut bytes);
            // Held requests are answered after this one, newest first.
            for request_id in held.drain(..).rev() {
                encode_frame(&sku_answer(request_id, "wait", false), &mut bytes);
            }
            if send.write_all(&bytes).await.is_err() {
                return;
            }
        }
    }
}

fn is_transport(result: &Result<impl std::fmt::Debug, ClientError>) -> bool {
    matches!(result, Err(ClientError::Transport(_)))
}

#[tokio::test]
async fn answers_out_of_order_reach_the_request_that_asked() {
    // One stream: the held request is answered after the one sent behind it,
    // so only matching by request id gives each caller its own SKU.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.stream_count = 1;
    let client = QuicClient::connect(config).await.unwrap();
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.sku("wait").await }
    });
    server.wait_for_get_sku("wait").await;
    assert_eq!(client.sku("go").await.unwrap().sku, "go");
    assert_eq!(held.await.unwrap().unwrap().sku, "wait");
}

#[tokio::test]
async fn concurrent_calls_share_the_stream_pool() {
    // 200 calls at once over a pool of 4 streams: every caller gets its own
    // answer, and the connection never holds more than the pool's streams.
    let server = FakeServer::start();
    let client = QuicClient::connect(server.config()).await.unwrap();
    let calls: Vec<_> = (0..200)
        .map(|index| {
            let client = client.clone();
            tokio::spawn(async move { (index, client.sku(&format!("SKU-{index}")).await) })
        })
        .collect();
    for call in calls {
        let (index, result) = call.await.unwrap();
        assert_eq!(result.unwrap().sku, format!("SKU-{index}"));
    }
    assert!(server.streams.load(Ordering::SeqCst) <= 4);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn every_call_maps_its_answer() {
    // The calls of the API, each with the answer type it expects, and the
    // server's refusals as `Server` errors with its code.
    let server = FakeServer::start();
    let client = QuicClient::connect(server.config()).await.unwrap();
    let placed = client
        .place(PlaceOrder::new("A", 1, "alice").with_idempotency_key("k-1"))
        .await
        .unwrap();
    assert!(placed.created);
    assert_eq!(placed.order.status, OrderStatus::Reserved);
    let order_id = placed.order.order_id;
    assert_eq!(client.order(&order_id).await.unwrap().order_id, order_id);
    assert_eq!(
        client.confirm(&order_id).await.unwrap().status,
        OrderStatus::Confirmed
    );
    assert_eq!(
        client.cancel(&order_id).await.unwrap().status,
        OrderStatus::Cancelled
    );
    let (sku, created) = client
        .put_sku(
            "A",
            SkuSettings {
                stock: Some(10),
                ..SkuSettings::default()
            },
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(sku.sku, "A");
    assert_eq!(client.restock("A", 5).await.unwrap().sku, "A");

    let refused = client
        .place(PlaceOrder::new("A", 1, "sold-out"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(code::SOLD_OUT));
    assert!(!refused.is_retryable());
    let missing = client.sku("missing").await.unwrap_err();
    assert_eq!(missing.code(), Some(code::UNKNOWN_SKU));
}

#[tokio::test]
async fn admin_calls_send_the_configured_token_and_need_one() {
    // The token from the config travels with every admin call; a client
    // without one refuses admin calls itself.
    let server = FakeServer::start();
    let mut wrong = server.config();
    wrong.admin_token = Some("guess".into());
    let wrong = QuicClient::connect(wrong).await.unwrap();
    let error = wrong.restock("A", 1).await.unwrap_err();
    assert_eq!(error.code(), Some(code::FORBIDDEN));

    let mut none = server.config();
    none.admin_token = None;
    let none = QuicClient::connect(none).await.unwrap();
    let error = none.put_sku("A", SkuSettings::default()).await.unwrap_err();
    assert!(matches!(error, ClientError::Config(_)), "{error}");
}

#[tokio::test]
async fn a_batch_is_one_frame_with_a_result_per_order() {
    // place_batch sends one PlaceOrders frame and gives each order its own
    // result, in order, refusals included.
    let mut server = FakeServer::start();
    let client = QuicClient::connect(server.config()).await.unwrap();
    let results = client
        .place_batch(vec![
            PlaceOrder::new("A", 1, "alice"),
            PlaceOrder::new("A", 1, "sold-out"),
            PlaceOrder::new("A", 2, "bob"),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].as_ref().unwrap().created);
    assert_eq!(
        results[1].as_ref().unwrap_err().code(),
        Some(code::SOLD_OUT)
    );
    assert!(results[2].is_ok());
    let Some(Request::PlaceOrders { orders }) = server.received.recv().await else {
        panic!("expected one PlaceOrders frame");
    };
    assert_eq!(orders.len(), 3);
    assert!(orders
        .windows(2)
        .all(|pair| pair[1].request_id == pair[0].request_id + 1));
    assert!(client.place_batch(Vec::new()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_frame_error_refuses_the_unread_requests_and_a_new_stream_takes_over() {
    // After a FrameError the server still answers what it read before (the
    // held request) and the refused request gets the server's code; the
    // stream is replaced, so the next call on the one-stream pool still works.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.stream_count = 1;
    let client = QuicClient::connect(config).await.unwrap();
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.sku("wait").await }
    });
    server.wait_for_get_sku("wait").await;
    let error = client.sku("poison").await.unwrap_err();
    assert_eq!(error.code(), Some(code::MALFORMED_FRAME));
    assert_eq!(held.await.unwrap().unwrap().sku, "wait");
    assert_eq!(client.sku("after").await.unwrap().sku, "after");
    assert_eq!(server.streams.load(Ordering::SeqCst), 2);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_dropped_connection_fails_in_flight_calls_and_the_next_call_reconnects() {
    // Requests in flight when the connection drops have an unknown outcome
    // (Transport); the client reconnects on the next call by itself.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.stream_count = 1;
    let client = QuicClient::connect(config).await.unwrap();
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.sku("wait").await }
    });
    server.wait_for_get_sku("wait").await;
    let closing = client.sku("close").await;
    assert!(is_transport(&closing), "{closing:?}");
    let held = held.await.unwrap();
    assert!(is_transport(&held), "{held:?}");
    assert!(held.unwrap_err().is_retryable());

    assert_eq!(client.sku("again").await.unwrap().sku, "again");
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_the_connection_stays_usable() {
    // A timeout is a Transport error; the late answer that follows is dropped
    // and the stream goes on serving.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.stream_count = 1;
    config.request_timeout = Duration::from_millis(300);
    let client = QuicClient::connect(config).await.unwrap();
    let error = client.sku("wait").await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Transport(TransportError::Timeout { after }) if after == Duration::from_millis(300)
        ),
        "{error}"
    );
    server.wait_for_get_sku("wait").await;
    assert_eq!(client.sku("next").await.unwrap().sku, "next");
    assert_eq!(client.sku("and next").await.unwrap().sku, "and next");
}

#[tokio::test]
async fn each_kind_of_trust_accepts_the_right_certificate() {
    // The pinned fingerprint, the certificate as PEM or DER, and the insecure
    // option connect; they all check the handshake with the same server.
    let server = FakeServer::start();
    let trusts = [
        Trust::Fingerprint(server.fingerprint()),
        Trust::Fingerprint(server.fingerprint().to_string().parse().unwrap()),
        Trust::Certificate(server.certificate_pem.clone().into_bytes()),
        Trust::Certificate(server.certificate.to_vec()),
        Trust::InsecureAcceptAnyCertificate,
    ];
    for trust in trusts {
        let mut config = server.config();
        config.trust = trust.clone();
        let client = QuicClient::connect(config).await.unwrap();
        assert_eq!(client.sku("A").await.unwrap().sku, "A", "{trust:?}");
        assert_eq!(client.server_addr(), Some(server.addr));
    }
}

#[tokio::test]
async fn a_wrong_certificate_is_refused() {
    // Another certificate, by fingerprint or as the trusted certificate, fails
    // the handshake: the client never talks to an impostor.
    let server = FakeServer::start();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let trusts = [
        Trust::Fingerprint(Fingerprint::of_certificate(other.cert.der())),
        Trust::Certificate(other.cert.pem().into_bytes()),
    ];
    for trust in trusts {
        let mut config = server.config();
        config.trust = trust.clone();
        let result = QuicClient::connect(config).await;
        assert!(
            matches!(
                result,
                Err(ClientError::Transport(TransportError::Connect(_)))
            ),
            "{trust:?}"
        );
    }
}

#[tokio::test]
async fn the_first_address_that_answers_is_used() {
    // A dead address ahead of the live one costs one connect timeout, then the
    // client settles on the live one.
    let server = FakeServer::start();
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = server.config();
    config.server_addrs = vec![dead, server.addr];
    config.connect_timeout = Duration::from_millis(300);
    let client = QuicClient::connect(config).await.unwrap();
    assert_eq!(client.server_addr(), Some(server.addr));
    assert_eq!(client.sku("A").await.unwrap().sku, "A");
}
