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
//!
//! A server also has a role, for the failover tests: a `Primary` answers as
//! above; a `Standby` answers reads and refuses every write with
//! `not_primary`, as a real standby does; a `Crashing` node reads a write and
//! closes the connection without answering, like a primary that dies after
//! receiving it (the write may or may not have been applied); a node
//! `HandingOver` places a batch's orders but refuses those of customers named
//! `moved-*` with `not_primary`, to show which orders a client sends again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flashgate_client::{
    ChangeOrder, ClientError, FailoverConfig, Fingerprint, OrderGateway, OrderStatus, PlaceOrder,
    QuicClient, QuicConfig, SkuSettings, TransportError, Trust,
};
use flashgate_protocol::{code, encode_frame, FrameReader, Order, Request, Response, Sku, ALPN};
use quinn::crypto::rustls::QuicServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::mpsc;

const ADMIN_TOKEN: &str = "secret";

/// How a fake node answers writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Primary,
    Standby,
    Crashing,
    HandingOver,
}

struct FakeServer {
    addr: SocketAddr,
    certificate: CertificateDer<'static>,
    certificate_pem: String,
    /// Every request the server read, in the order it read them.
    received: mpsc::UnboundedReceiver<Request>,
    connections: Arc<AtomicUsize>,
    streams: Arc<AtomicUsize>,
    role: Arc<Mutex<Role>>,
    endpoint: quinn::Endpoint,
}

impl FakeServer {
    fn start() -> FakeServer {
        FakeServer::start_as(Role::Primary)
    }

    fn start_as(role: Role) -> FakeServer {
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
        let role = Arc::new(Mutex::new(role));
        tokio::spawn(accept(
            endpoint.clone(),
            sender,
            connections.clone(),
            streams.clone(),
            role.clone(),
        ));
        FakeServer {
            addr: endpoint.local_addr().unwrap(),
            certificate,
            certificate_pem: certified.cert.pem(),
            received,
            connections,
            streams,
            role,
            endpoint,
        }
    }

    fn set_role(&self, role: Role) {
        *self.role.lock().unwrap() = role;
    }

    /// The node dies: its connections close and it takes no new ones.
    fn stop(&self) {
        self.endpoint.close(0u32.into(), b"stopped by the test");
    }

    /// Every request the server has read so far.
    fn drain_received(&mut self) -> Vec<Request> {
        let mut requests = Vec::new();
        while let Ok(request) = self.received.try_recv() {
            requests.push(request);
        }
        requests
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
    role: Arc<Mutex<Role>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        // A client that refuses the certificate fails its handshake here.
        let Ok(connection) = incoming.await else {
            continue;
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let received = received.clone();
        let streams = streams.clone();
        let role = role.clone();
        tokio::spawn(async move {
            while let Ok((send, recv)) = connection.accept_bi().await {
                streams.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_stream(
                    connection.clone(),
                    send,
                    recv,
                    received.clone(),
                    role.clone(),
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

fn not_primary(request_id: u64) -> Response {
    Response::Error {
        request_id,
        code: code::NOT_PRIMARY.into(),
        detail: "this node is a standby".into(),
    }
}

/// A standby's answer to a write: `not_primary`, for each order of a batch.
/// `None` for a read, which a standby serves.
fn standby_answer(request: &Request) -> Option<Response> {
    match request {
        Request::GetOrder { .. }
        | Request::GetOrders { .. }
        | Request::GetSku { .. }
        | Request::Authenticate { .. } => None,
        Request::PlaceOrders { orders } => Some(Response::Batch {
            results: orders
                .iter()
                .map(|order| not_primary(order.request_id))
                .collect(),
        }),
        Request::PlaceOrder(order) => Some(not_primary(order.request_id)),
        Request::Confirm { request_id, .. }
        | Request::Cancel { request_id, .. }
        | Request::Ship { request_id, .. }
        | Request::ChangeOrder { request_id, .. }
        | Request::PutSku { request_id, .. }
        | Request::Restock { request_id, .. } => Some(not_primary(*request_id)),
    }
}

async fn serve_stream(
    connection: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    received: mpsc::UnboundedSender<Request>,
    role: Arc<Mutex<Role>>,
) {
    let mut reader = FrameReader::new(1 << 20);
    let mut held = Vec::new();
    let mut buffer = vec![0; 4096];
    while let Ok(Some(read)) = recv.read(&mut buffer).await {
        reader.extend(&buffer[..read]);
        while let Some(request) = reader.next_frame::<Request>().unwrap() {
            let _ = received.send(request.clone());
            let role = *role.lock().unwrap();
            let refusal = match role {
                Role::Primary => None,
                Role::Standby => standby_answer(&request),
                Role::Crashing if standby_answer(&request).is_some() => {
                    connection.close(0u32.into(), b"crashed");
                    return;
                }
                Role::Crashing => None,
                Role::HandingOver => match &request {
                    Request::PlaceOrders { orders } => Some(Response::Batch {
                        results: orders
                            .iter()
                            .map(|order| {
                                if order.customer_id.starts_with("moved") {
                                    not_primary(order.request_id)
                                } else {
                                    place_answer(order)
                                }
                            })
                            .collect(),
                    }),
                    _ => None,
                },
            };
            let answer = match (refusal, request) {
                (Some(refusal), _) => refusal,
                (None, request) => match request {
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
                    Request::Authenticate {
                        request_id,
                        credential,
                    } => match credential.as_str() {
                        "wrong-credential" => Response::Error {
                            request_id,
                            code: code::UNAUTHORIZED.into(),
                            detail: "the credential is not one this node knows".into(),
                        },
                        _ => Response::Authenticated {
                            request_id,
                            role: "service".into(),
                            customer_id: None,
                        },
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
                    Request::Ship {
                        request_id,
                        order_id,
                    } => order_answer(request_id, &order_id, OrderStatus::Shipped),
                    // The order as the change asked; an empty key is refused
                    // as the server refuses it.
                    Request::ChangeOrder {
                        request_id,
                        order_id,
                        sku,
                        quantity,
                        idempotency_key,
                    } => match order_answer(request_id, &order_id, OrderStatus::Reserved) {
                        _ if idempotency_key.is_empty() => Response::Error {
                            request_id,
                            code: code::INVALID_FIELD.into(),
                            detail: "idempotency_key: must be 1 to 64 bytes".into(),
                        },
                        Response::Order { mut order, .. } => {
                            order.sku = sku.unwrap_or(order.sku);
                            order.quantity = quantity.unwrap_or(order.quantity);
                            Response::Order {
                                request_id,
                                created: false,
                                order,
                            }
                        }
                        _ => unreachable!("order_answer answers an order"),
                    },
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
                    // Ids starting with `missing` are unknown; the rest reserved.
                    Request::GetOrders {
                        request_id,
                        order_ids,
                    } => {
                        let (unknown, found): (Vec<String>, Vec<String>) = order_ids
                            .into_iter()
                            .partition(|order_id| order_id.starts_with("missing"));
                        Response::Orders {
                            request_id,
                            orders: found
                                .iter()
                                .map(|order_id| {
                                    match order_answer(request_id, order_id, OrderStatus::Reserved)
                                    {
                                        Response::Order { order, .. } => order,
                                        _ => unreachable!("order_answer answers an order"),
                                    }
                                })
                                .collect(),
                            unknown,
                        }
                    }
                },
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
async fn a_credential_is_sent_once_per_connection_before_any_call() {
    // With a credential the first thing the server reads on a new connection
    // is an Authenticate carrying it; a refusal fails the connect and says why.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.credential = Some("service-credential-0123456789".into());
    let client = QuicClient::connect(config).await.unwrap();
    client.sku("A").await.unwrap();
    let received = server.drain_received();
    assert!(
        matches!(
            received.first(),
            Some(Request::Authenticate { credential, .. }) if credential == "service-credential-0123456789"
        ),
        "{received:?}"
    );
    assert_eq!(
        received
            .iter()
            .filter(|request| matches!(request, Request::Authenticate { .. }))
            .count(),
        1
    );

    let mut refused = server.config();
    refused.credential = Some("wrong-credential".into());
    let error = QuicClient::connect(refused).await.err().unwrap();
    assert!(error.to_string().contains("unauthorized"), "{error}");
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
    // (Transport); the client reconnects on the next call by itself. Failover
    // is off: it would send the reads again, to the same node.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.stream_count = 1;
    config.failover = FailoverConfig::off();
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
    // and the stream goes on serving. Failover is off: it would send the read
    // again.
    let mut server = FakeServer::start();
    let mut config = server.config();
    config.stream_count = 1;
    config.failover = FailoverConfig::off();
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

/// A client of `nodes` (in that order) that trusts each node's own
/// certificate, as a cluster of nodes with self-signed certificates needs,
/// and fails over quickly.
fn cluster_config(nodes: &[&FakeServer]) -> QuicConfig {
    let pems: String = nodes
        .iter()
        .map(|node| node.certificate_pem.as_str())
        .collect();
    let mut config = QuicConfig::new(
        nodes.iter().map(|node| node.addr).collect(),
        Trust::Certificate(pems.into_bytes()),
    );
    config.connect_attempts_max = 1;
    config.connect_timeout = Duration::from_millis(300);
    config.failover = FailoverConfig {
        wait_max: Duration::from_secs(5),
        backoff_first: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
    };
    config
}

fn count_writes(requests: &[Request]) -> usize {
    requests
        .iter()
        .filter(|request| {
            matches!(
                request,
                Request::PlaceOrder(_)
                    | Request::PlaceOrders { .. }
                    | Request::Confirm { .. }
                    | Request::ChangeOrder { .. }
            )
        })
        .count()
}

#[tokio::test]
async fn a_not_primary_answer_moves_calls_to_the_node_that_takes_them() {
    // The client starts at the standby (the first address). Its refusal is
    // safe to send elsewhere, even for an order without a key: the call
    // succeeds on the primary, and the client stays there.
    let mut standby = FakeServer::start_as(Role::Standby);
    let mut primary = FakeServer::start();
    let client = QuicClient::connect(cluster_config(&[&standby, &primary]))
        .await
        .unwrap();
    assert_eq!(client.current_node(), Some(standby.addr.to_string()));

    let placed = client
        .place(PlaceOrder::new("A", 1, "alice"))
        .await
        .unwrap();
    assert!(placed.created);
    assert_eq!(client.current_node(), Some(primary.addr.to_string()));
    let switches = client.node_switches();
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].from, standby.addr.to_string());
    assert_eq!(switches[0].to, primary.addr.to_string());

    let order_id = placed.order.order_id;
    assert_eq!(
        client.confirm(&order_id).await.unwrap().status,
        OrderStatus::Confirmed
    );
    let results = client
        .place_batch(vec![
            PlaceOrder::new("A", 1, "bob"),
            PlaceOrder::new("A", 1, "carol"),
        ])
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(count_writes(&standby.drain_received()), 1);
    assert_eq!(count_writes(&primary.drain_received()), 3);
}

#[tokio::test]
async fn a_batch_sends_again_only_the_orders_refused_as_not_primary() {
    // The first node answers two orders of the batch (one sold out) and
    // refuses one as not_primary: only that one goes to the second node, and
    // the results still line up with the orders.
    let mut first = FakeServer::start_as(Role::HandingOver);
    let mut second = FakeServer::start();
    let client = QuicClient::connect(cluster_config(&[&first, &second]))
        .await
        .unwrap();
    let results = client
        .place_batch(vec![
            PlaceOrder::new("A", 1, "alice"),
            PlaceOrder::new("A", 1, "moved-bob"),
            PlaceOrder::new("A", 1, "sold-out"),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    assert!(results[1].is_ok());
    assert_eq!(
        results[2].as_ref().unwrap_err().code(),
        Some(code::SOLD_OUT)
    );
    let Some(Request::PlaceOrders { orders }) = first.drain_received().pop() else {
        panic!("the first node read the batch");
    };
    assert_eq!(orders.len(), 3);
    let Some(Request::PlaceOrders { orders }) = second.drain_received().pop() else {
        panic!("the second node read the refused order");
    };
    let customers: Vec<&str> = orders.iter().map(|o| o.customer_id.as_str()).collect();
    assert_eq!(customers, ["moved-bob"]);
}

#[tokio::test]
async fn a_node_that_dies_is_left_for_the_next() {
    // The primary dies; its standby is promoted. The next calls cannot reach
    // the dead node (nothing was sent) and go to the new primary.
    let old = FakeServer::start();
    let new = FakeServer::start_as(Role::Standby);
    let client = QuicClient::connect(cluster_config(&[&old, &new]))
        .await
        .unwrap();
    assert!(client.place(PlaceOrder::new("A", 1, "alice")).await.is_ok());
    old.stop();
    new.set_role(Role::Primary);
    let placed = client
        .place(PlaceOrder::new("A", 1, "bob").with_idempotency_key("k-bob"))
        .await
        .unwrap();
    assert!(placed.created);
    assert_eq!(client.sku("A").await.unwrap().sku, "A");
    assert_eq!(client.current_node(), Some(new.addr.to_string()));
    assert_eq!(client.server_addr(), Some(new.addr));
}

#[tokio::test]
async fn an_order_that_may_have_been_applied_is_sent_again_only_under_a_key() {
    // The first node reads the order and dies without answering: it may have
    // been applied. Without a key, sending it again could buy twice, so the
    // call fails with the unknown outcome and the second node never sees it;
    // with a key, the second node gets it and answers.
    let mut crashing = FakeServer::start_as(Role::Crashing);
    let mut primary = FakeServer::start();

    let client = QuicClient::connect(cluster_config(&[&crashing, &primary]))
        .await
        .unwrap();
    let error = client
        .place(PlaceOrder::new("A", 1, "alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Transport(TransportError::ConnectionLost(_))
        ),
        "{error}"
    );
    assert!(error.may_have_been_applied());
    let unkeyed_batch = QuicClient::connect(cluster_config(&[&crashing, &primary]))
        .await
        .unwrap()
        .place_batch(vec![
            PlaceOrder::new("A", 1, "bob").with_idempotency_key("k-bob"),
            PlaceOrder::new("A", 1, "carol"),
        ])
        .await;
    assert!(
        matches!(unkeyed_batch, Err(ClientError::Transport(_))),
        "{unkeyed_batch:?}"
    );
    assert_eq!(count_writes(&primary.drain_received()), 0);
    assert_eq!(count_writes(&crashing.drain_received()), 2);

    let keyed = QuicClient::connect(cluster_config(&[&crashing, &primary]))
        .await
        .unwrap();
    let placed = keyed
        .place(PlaceOrder::new("A", 1, "alice").with_idempotency_key("k-alice"))
        .await
        .unwrap();
    assert_eq!(placed.order.customer_id, "alice");
    let results = keyed
        .place_batch(vec![
            PlaceOrder::new("A", 1, "bob").with_idempotency_key("k-bob"),
            PlaceOrder::new("A", 1, "carol").with_idempotency_key("k-carol"),
        ])
        .await;
    assert!(results.is_ok(), "{results:?}");
    let sent_again = primary.drain_received();
    assert!(sent_again.iter().any(|request| matches!(
        request,
        Request::PlaceOrder(order) if order.idempotency_key.as_deref() == Some("k-alice")
    )));
}

#[tokio::test]
async fn a_change_is_one_frame_with_its_key_and_is_sent_again_under_it() {
    // A change carries the order, what changes and its key in one
    // `ChangeOrder`, and the answer is the changed order without a history
    // (the binary protocol has none). The key makes a change safe to send
    // again: when a node reads it and dies without answering, the change goes
    // to the next node under the same key, which the server answers once.
    let mut crashing = FakeServer::start_as(Role::Crashing);
    let mut primary = FakeServer::start();
    let client = QuicClient::connect(cluster_config(&[&crashing, &primary]))
        .await
        .unwrap();
    let changed = client
        .change("1-0-7", ChangeOrder::sku("B").with_quantity(3), "change-1")
        .await
        .unwrap();
    assert_eq!(changed.order.order_id, "1-0-7");
    assert_eq!(
        (changed.order.sku.as_str(), changed.order.quantity),
        ("B", 3)
    );
    assert_eq!(changed.changes, None);
    let change = |requests: Vec<Request>| {
        requests
            .into_iter()
            .filter(|request| matches!(request, Request::ChangeOrder { .. }))
            .collect::<Vec<_>>()
    };
    let expected = |request_id| Request::ChangeOrder {
        request_id,
        order_id: "1-0-7".into(),
        sku: Some("B".into()),
        quantity: Some(3),
        idempotency_key: "change-1".into(),
    };
    let first = change(crashing.drain_received());
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0], expected(first[0].request_id().unwrap()));
    let again = change(primary.drain_received());
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0], expected(again[0].request_id().unwrap()));

    let refused = client
        .change("1-0-7", ChangeOrder::quantity(2), "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(code::INVALID_FIELD));
}

#[tokio::test]
async fn when_no_node_takes_a_call_it_fails_after_the_failover_wait() {
    // Both nodes are standbys: writes come back as not_primary once the wait
    // is over (nothing was done), while reads are served. Once one node is
    // promoted, the same client's writes go through.
    let first = FakeServer::start_as(Role::Standby);
    let second = FakeServer::start_as(Role::Standby);
    let mut config = cluster_config(&[&first, &second]);
    config.failover.wait_max = Duration::from_millis(200);
    let client = QuicClient::connect(config).await.unwrap();
    let error = client
        .place(PlaceOrder::new("A", 1, "alice"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(code::NOT_PRIMARY));
    assert!(error.is_retryable());
    assert!(!error.may_have_been_applied());
    assert_eq!(client.sku("A").await.unwrap().sku, "A");

    second.set_role(Role::Primary);
    assert!(client.place(PlaceOrder::new("A", 1, "alice")).await.is_ok());
    assert_eq!(client.current_node(), Some(second.addr.to_string()));
}
