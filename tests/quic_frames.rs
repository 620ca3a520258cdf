//! The QUIC front end, black-box: a raw quinn client that trusts exactly the
//! certificate the server printed talks binary frames to the real binary.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Launch, QuicEndpoint, Server, ADMIN_TOKEN};
use flashgate_gateway::quic::{
    CLOSE_CONNECTION_LIMIT, CLOSE_SHUTTING_DOWN, STREAM_STOP_FRAME_ERROR,
};
use flashgate_protocol::{
    code, encode_frame, FrameReader, OrderStatus, PlaceOrder, Request, Response, SkuSettings, ALPN,
    FRAME_BYTES_MAX_LIMIT,
};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream, VarInt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::time::timeout;

/// Longest wait for any one QUIC step (handshake, answer, stream end).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stream the server must not grant yet is given to open anyway.
const NOT_GRANTED_WAIT: Duration = Duration::from_millis(500);
/// The reservation TTL a SKU gets by default.
const DEFAULT_TTL_MS: u64 = 600_000;

/// A client endpoint and one connection to the server.
struct Peer {
    // Kept so the client's endpoint outlives its connection.
    _endpoint: Endpoint,
    connection: Connection,
}

/// A client endpoint that trusts only the certificate the server printed, after
/// checking that the printed fingerprint is that certificate's.
fn client_endpoint(quic: &QuicEndpoint) -> Endpoint {
    let pem = std::fs::read(&quic.certificate)
        .unwrap_or_else(|error| panic!("read {}: {error}", quic.certificate.display()));
    let certificate = CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("the certificate file holds a certificate")
        .expect("the certificate file is PEM");
    let digest = ring::digest::digest(&ring::digest::SHA256, certificate.as_ref());
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        hex, quic.sha256,
        "the printed fingerprint is the certificate's"
    );

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(certificate)
        .expect("trust the server's certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(crypto).expect("a QUIC client configuration");
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

fn quic_of(server: &Server) -> &QuicEndpoint {
    server.quic().expect("the server listens for QUIC")
}

/// Connects as `localhost`; `Err` when the server refuses or closes at once.
async fn try_connect(server: &Server) -> Result<Peer, ConnectionError> {
    let quic = quic_of(server);
    let endpoint = client_endpoint(quic);
    let connecting = endpoint
        .connect(quic.addr, "localhost")
        .expect("start a connection");
    let connection = timeout(STEP_TIMEOUT, connecting)
        .await
        .expect("the handshake finishes")?;
    Ok(Peer {
        _endpoint: endpoint,
        connection,
    })
}

/// Connects and authenticates with the admin token, which may do everything.
async fn connect(server: &Server) -> Peer {
    let peer = try_connect(server).await.expect("connect over QUIC");
    authenticate(&peer.connection, ADMIN_TOKEN).await;
    peer
}

/// Sends `Authenticate` on a stream of its own and expects `Authenticated`.
async fn authenticate(connection: &Connection, credential: &str) -> Response {
    let mut stream = Stream::open(connection).await;
    let answer = stream
        .call(&Request::Authenticate {
            request_id: 0,
            credential: credential.to_owned(),
        })
        .await;
    stream.finish().await;
    answer
}

/// One bidirectional stream and a reader for the frames the server sends on it.
struct Stream {
    send: SendStream,
    recv: RecvStream,
    frames: FrameReader,
}

impl Stream {
    async fn open(connection: &Connection) -> Stream {
        let (send, recv) = timeout(STEP_TIMEOUT, connection.open_bi())
            .await
            .expect("the stream opens")
            .expect("open a stream");
        Stream::new(send, recv)
    }

    fn new(send: SendStream, recv: RecvStream) -> Stream {
        Stream {
            send,
            recv,
            frames: FrameReader::new(FRAME_BYTES_MAX_LIMIT),
        }
    }

    async fn send(&mut self, request: &Request) {
        let mut bytes = Vec::new();
        encode_frame(request, &mut bytes);
        self.write(&bytes).await;
    }

    async fn write(&mut self, bytes: &[u8]) {
        timeout(STEP_TIMEOUT, self.send.write_all(bytes))
            .await
            .expect("the write finishes")
            .expect("write to the stream");
    }

    /// The next frame from the server; `None` once it finished the stream.
    async fn next(&mut self) -> Option<Response> {
        loop {
            if let Some(response) = self
                .frames
                .next_frame()
                .expect("the server sends valid frames")
            {
                return Some(response);
            }
            let chunk = timeout(STEP_TIMEOUT, self.recv.read_chunk(64 * 1024, true))
                .await
                .expect("the server answers or finishes the stream")
                .expect("read from the stream");
            match chunk {
                Some(chunk) => self.frames.extend(&chunk.bytes),
                None => {
                    self.frames
                        .finish()
                        .expect("the server ends between frames");
                    return None;
                }
            }
        }
    }

    async fn receive(&mut self) -> Response {
        self.next().await.expect("an answer before the stream ends")
    }

    async fn call(&mut self, request: &Request) -> Response {
        self.send(request).await;
        self.receive().await
    }

    /// Finishes the client's side and expects the server to finish its own.
    async fn finish(&mut self) {
        self.send.finish().expect("finish the stream");
        assert_eq!(
            self.next().await,
            None,
            "the server finishes the stream too"
        );
    }
}

fn order(request_id: u64, sku: &str, quantity: u32, customer: &str) -> PlaceOrder {
    PlaceOrder {
        request_id,
        sku: sku.into(),
        quantity,
        customer_id: customer.into(),
        idempotency_key: None,
    }
}

fn put_sku(request_id: u64, admin_token: &str, sku: &str, stock: u64) -> Request {
    Request::PutSku {
        request_id,
        admin_token: admin_token.into(),
        sku: sku.into(),
        settings: SkuSettings {
            stock: Some(stock),
            ..SkuSettings::default()
        },
    }
}

fn get_sku(request_id: u64, sku: &str) -> Request {
    Request::GetSku {
        request_id,
        sku: sku.into(),
    }
}

/// Creates `sku` with `stock` units over `stream`, asserting it worked.
async fn create_sku(stream: &mut Stream, sku: &str, stock: u64) {
    match stream.call(&put_sku(1, ADMIN_TOKEN, sku, stock)).await {
        Response::Sku {
            request_id: 1,
            sku: created,
            ..
        } => assert_eq!(created.total, stock),
        other => panic!("PutSku {sku}: {other:?}"),
    }
}

/// Asserts `response` is an error with `code` under `request_id`.
fn assert_error(response: &Response, request_id: u64, expected: &str) {
    match response {
        Response::Error {
            request_id: id,
            code,
            detail,
        } => {
            assert_eq!((*id, code.as_str()), (request_id, expected), "{detail}");
            assert!(!detail.is_empty(), "an error says what was wrong");
        }
        other => panic!("expected {expected} for request {request_id}, got {other:?}"),
    }
}

/// Places one order over a fresh stream and returns it.
async fn place_one(
    connection: &Connection,
    request_id: u64,
    sku: &str,
) -> flashgate_protocol::Order {
    let mut stream = Stream::open(connection).await;
    let response = stream
        .call(&Request::PlaceOrder(order(request_id, sku, 1, "someone")))
        .await;
    stream.finish().await;
    match response {
        Response::Order {
            request_id: id,
            created: true,
            order,
        } if id == request_id => order,
        other => panic!("order {request_id} of {sku}: {other:?}"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// A single order and a pipelined batch are answered under their own request
/// ids, the batch in its order with a bad order refused in its place, and what
/// QUIC sold is what HTTP shows: upstreams match answers to requests by id
/// alone, so a wrong or missing id would attach an order to the wrong buyer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_and_batches_are_answered_under_their_request_ids() {
    let server = Launch::new().start();
    let peer = connect(&server).await;
    let mut stream = Stream::open(&peer.connection).await;
    create_sku(&mut stream, "quic-a", 100).await;

    let before = now_ms();
    let response = stream
        .call(&Request::PlaceOrder(order(7, "quic-a", 2, "alice")))
        .await;
    let Response::Order {
        request_id: 7,
        created: true,
        order: first,
    } = response
    else {
        panic!("order 7: {response:?}");
    };
    assert_eq!(first.status, OrderStatus::Reserved);
    assert_eq!(
        (
            first.sku.as_str(),
            first.quantity,
            first.customer_id.as_str()
        ),
        ("quic-a", 2, "alice")
    );
    // Milliseconds since the Unix epoch, not seconds: within the test's run.
    assert!(
        first.created_at_ms >= before && first.created_at_ms <= now_ms(),
        "{first:?}"
    );
    assert_eq!(
        first.reserved_until_ms - first.created_at_ms,
        DEFAULT_TTL_MS
    );

    // Two requests in flight on one stream; the answers may come in any order.
    stream
        .send(&Request::PlaceOrders {
            orders: vec![
                order(100, "quic-a", 1, "bob"),
                order(101, "not a sku", 1, "carol"),
                order(102, "quic-a", 3, "dave"),
            ],
        })
        .await;
    stream
        .send(&Request::GetOrder {
            request_id: 8,
            order_id: first.order_id.clone(),
        })
        .await;
    let mut batch = None;
    let mut lookup = None;
    for _ in 0..2 {
        match stream.receive().await {
            Response::Batch { results } => batch = Some(results),
            Response::Order {
                request_id: 8,
                created,
                order,
            } => lookup = Some((created, order)),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let batch = batch.expect("the batch is answered");
    let ids: Vec<_> = batch.iter().map(Response::request_id).collect();
    assert_eq!(ids, [Some(100), Some(101), Some(102)]);
    for (result, (customer, quantity)) in [&batch[0], &batch[2]]
        .into_iter()
        .zip([("bob", 1), ("dave", 3)])
    {
        match result {
            Response::Order {
                created: true,
                order,
                ..
            } => assert_eq!(
                (order.customer_id.as_str(), order.quantity),
                (customer, quantity)
            ),
            other => panic!("batched order of {customer}: {other:?}"),
        }
    }
    assert_error(&batch[1], 101, code::INVALID_FIELD);
    assert_eq!(lookup, Some((false, first.clone())));

    match stream.call(&get_sku(9, "quic-a")).await {
        Response::Sku {
            request_id: 9, sku, ..
        } => assert_eq!((sku.reserved, sku.available), (6, 94)),
        other => panic!("GetSku: {other:?}"),
    }
    stream.finish().await;

    // The same node answers HTTP.
    let api = server.client();
    assert_eq!(api.order(&first.order_id)["customer_id"], "alice");
    assert_eq!(api.sku("quic-a")["reserved"], 6);
}

/// A malformed, a truncated, an oversized and a wrong-version frame each get a
/// `FrameError` with its code on their own stream, which the server then stops
/// reading and finishes, while another stream of the same connection and another
/// connection keep working: one broken upstream message must cost that stream
/// only, never the orders of everyone else sharing the connection or the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_a_frame_error_and_disturb_no_other_stream() {
    let server = Launch::new().start();
    let peer = connect(&server).await;
    let mut healthy = Stream::open(&peer.connection).await;
    create_sku(&mut healthy, "quic-b", 100).await;

    let mut whole = Vec::new();
    encode_frame(
        &Request::PlaceOrder(order(5, "quic-b", 1, "eve")),
        &mut whole,
    );
    let mut oversized = vec![0, 0x10, 0, 0, 1]; // 1 MiB, over the 64 KiB default
    oversized.extend_from_slice(&[0; 64]);
    let cases: [(&str, Vec<u8>, bool, &str); 4] = [
        // Version 1, then variant 200 of `Request`, which has 8.
        (
            "malformed",
            vec![0, 0, 0, 3, 1, 200, 200],
            false,
            code::MALFORMED_FRAME,
        ),
        (
            "truncated",
            whole[..whole.len() / 2].to_vec(),
            true,
            code::TRUNCATED_FRAME,
        ),
        ("oversized", oversized, false, code::FRAME_TOO_LARGE),
        (
            "unknown version",
            vec![0, 0, 0, 2, 9, 0],
            false,
            code::UNSUPPORTED_VERSION,
        ),
    ];
    for (name, bytes, finish, expected) in cases {
        let mut stream = Stream::open(&peer.connection).await;
        stream.write(&bytes).await;
        if finish {
            stream.send.finish().expect("finish the stream");
        }
        match stream.receive().await {
            Response::FrameError { code, detail } => {
                assert_eq!(code, expected, "{name}: {detail}")
            }
            other => panic!("{name}: expected a frame error, got {other:?}"),
        }
        assert_eq!(
            stream.next().await,
            None,
            "{name}: the server finishes the stream"
        );
        if !finish {
            let stopped = timeout(STEP_TIMEOUT, stream.send.stopped())
                .await
                .expect("the server stops the stream");
            assert_eq!(
                stopped.expect("the stream is stopped, not lost"),
                Some(VarInt::from_u32(STREAM_STOP_FRAME_ERROR)),
                "{name}: the server stops reading"
            );
        }
    }

    match healthy.call(&get_sku(2, "quic-b")).await {
        Response::Sku { request_id: 2, .. } => {}
        other => panic!("the healthy stream after the bad frames: {other:?}"),
    }
    healthy.finish().await;
    place_one(&peer.connection, 3, "quic-b").await;
    let other = connect(&server).await;
    place_one(&other.connection, 4, "quic-b").await;
}

/// With `quic_streams_per_connection_max` 2, a third stream does not open while
/// two are open and opens (and works) once one finishes: the limit is QUIC's own
/// flow control, so a client waits for a slot instead of being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_third_stream_waits_until_one_of_two_finishes() {
    let server = Launch::new()
        .env("FLASHGATE_QUIC_STREAMS_PER_CONNECTION_MAX", "2")
        .start();
    let peer = connect(&server).await;
    let mut first = Stream::open(&peer.connection).await;
    create_sku(&mut first, "quic-c", 10).await;
    let mut second = Stream::open(&peer.connection).await;
    assert!(matches!(
        second.call(&get_sku(2, "quic-c")).await,
        Response::Sku { request_id: 2, .. }
    ));

    let third = timeout(NOT_GRANTED_WAIT, peer.connection.open_bi()).await;
    assert!(third.is_err(), "a third stream opened while two were open");

    first.finish().await;
    let (send, recv) = timeout(STEP_TIMEOUT, peer.connection.open_bi())
        .await
        .expect("a third stream opens once one of two finished")
        .expect("open the third stream");
    let mut third = Stream::new(send, recv);
    assert!(matches!(
        third.call(&get_sku(3, "quic-c")).await,
        Response::Sku { request_id: 3, .. }
    ));
    assert!(matches!(
        second.call(&get_sku(4, "quic-c")).await,
        Response::Sku { request_id: 4, .. }
    ));
}

/// On a connection that did not authenticate as admin, admin requests with a
/// wrong token are `forbidden`, with none `unauthorized`, and change nothing;
/// the right token works: the binary protocol must not be a way around the
/// admin guard of the HTTP API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_need_the_admin_token() {
    let server = Launch::new().start();
    let peer = try_connect(&server).await.expect("connect over QUIC");
    let mut stream = Stream::open(&peer.connection).await;
    let wrong = "not-the-admin-token-at-all";

    let response = stream.call(&put_sku(1, wrong, "guarded", 10)).await;
    assert_error(&response, 1, code::FORBIDDEN);
    let response = stream.call(&put_sku(2, "", "guarded", 10)).await;
    assert_error(&response, 2, code::UNAUTHORIZED);
    let response = stream.call(&get_sku(3, "guarded")).await;
    assert_error(&response, 3, code::UNKNOWN_SKU);

    create_sku(&mut stream, "guarded", 10).await;
    let restock = |request_id, admin_token: &str| Request::Restock {
        request_id,
        admin_token: admin_token.into(),
        sku: "guarded".into(),
        quantity: 5,
    };
    let response = stream.call(&restock(4, wrong)).await;
    assert_error(&response, 4, code::FORBIDDEN);
    match stream.call(&restock(5, ADMIN_TOKEN)).await {
        Response::Sku {
            request_id: 5, sku, ..
        } => assert_eq!(sku.total, 15, "only the right token restocked"),
        other => panic!("restock with the right token: {other:?}"),
    }
    stream.finish().await;
}

/// Over `quic_connections_max` a connection is closed with a reason naming the
/// limit, the open one keeps working, and its slot is free again once it closes:
/// an upstream must learn why it cannot connect, not wait out a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_with_a_reason() {
    let server = Launch::new()
        .env("FLASHGATE_QUIC_CONNECTIONS_MAX", "1")
        .start();
    let first = connect(&server).await;
    let mut stream = Stream::open(&first.connection).await;
    create_sku(&mut stream, "quic-d", 10).await;

    let refused = match try_connect(&server).await {
        Ok(peer) => timeout(STEP_TIMEOUT, peer.connection.closed())
            .await
            .expect("the server closes the connection over its limit"),
        Err(error) => error,
    };
    match refused {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, VarInt::from_u32(CLOSE_CONNECTION_LIMIT));
            let reason = String::from_utf8_lossy(&close.reason);
            assert!(reason.contains("limit of 1"), "{reason}");
        }
        other => panic!("expected a close with a reason, got {other:?}"),
    }
    assert!(matches!(
        stream.call(&get_sku(2, "quic-d")).await,
        Response::Sku { request_id: 2, .. }
    ));
    stream.finish().await;

    // The server frees the slot once it sees the close; until then a new
    // connection is still over the limit, so try until one gets in.
    first.connection.close(VarInt::from_u32(0), b"done");
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(peer) = try_connect(&server).await {
            // The server may still close this one as over the limit: then the
            // stream does not open, and the next round tries again.
            let mut bytes = Vec::new();
            encode_frame(&get_sku(3, "quic-d"), &mut bytes);
            if let Ok(Ok((mut send, recv))) = timeout(STEP_TIMEOUT, peer.connection.open_bi()).await
            {
                if let Ok(Ok(())) = timeout(STEP_TIMEOUT, send.write_all(&bytes)).await {
                    let mut stream = Stream::new(send, recv);
                    if let Some(Response::Sku { request_id: 3, .. }) = try_next(&mut stream).await {
                        break;
                    }
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no connection got in after the first one closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next answer, or `None` when the connection was closed instead.
async fn try_next(stream: &mut Stream) -> Option<Response> {
    loop {
        if let Ok(Some(response)) = stream.frames.next_frame() {
            return Some(response);
        }
        let chunk = timeout(STEP_TIMEOUT, stream.recv.read_chunk(64 * 1024, true))
            .await
            .expect("the server answers or closes");
        match chunk {
            Ok(Some(chunk)) => stream.frames.extend(&chunk.bytes),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// SIGTERM closes QUIC connections with `CLOSE_SHUTTING_DOWN`, exits 0, and keeps
/// every order acknowledged over QUIC: a routine restart must neither hang
/// upstreams until their idle timeout nor lose what they were told was sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_quic_connections_and_keeps_acknowledged_orders() {
    let data = tempfile::tempdir().expect("create a data dir");
    let server = Launch::new().data_dir(data.path()).start();
    let peer = connect(&server).await;
    let mut stream = Stream::open(&peer.connection).await;
    create_sku(&mut stream, "quic-e", 10).await;
    let placed = place_one(&peer.connection, 2, "quic-e").await;

    let (server, status) = tokio::task::spawn_blocking(move || {
        let mut server = server;
        let status = server.terminate();
        (server, status)
    })
    .await
    .expect("terminate the server");
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr()
    );
    match timeout(STEP_TIMEOUT, peer.connection.closed())
        .await
        .expect("the connection is closed")
    {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, VarInt::from_u32(CLOSE_SHUTTING_DOWN))
        }
        other => panic!("expected a close for the shutdown, got {other:?}"),
    }

    let restarted = Launch::new().data_dir(data.path()).start();
    let stored = restarted.client().order(&placed.order_id);
    assert_eq!(stored["status"], "reserved", "{stored}");
}

/// The generated certificate is kept in the data dir with a private key of mode
/// 0600 and reused after a restart: upstreams pin its fingerprint, so a restart
/// must not change it, and the key must not be readable by other users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_certificate_is_private_and_survives_a_restart() {
    use std::os::unix::fs::PermissionsExt;

    let data = tempfile::tempdir().expect("create a data dir");
    let mut server = Launch::new().data_dir(data.path()).start();
    let first = quic_of(&server).clone();
    assert_eq!(first.certificate, data.path().join("quic-cert.pem"));
    let mode = std::fs::metadata(data.path().join("quic-key.pem"))
        .expect("the key is in the data dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    server.kill();

    let restarted = Launch::new().data_dir(data.path()).start();
    assert_eq!(quic_of(&restarted).sha256, first.sha256);
    let peer = connect(&restarted).await;
    let mut stream = Stream::open(&peer.connection).await;
    create_sku(&mut stream, "quic-f", 1).await;
}

/// `--quic-cert`/`--quic-key` serve the given certificate (printed with its
/// path and fingerprint, and nothing generated), and one without the other stops
/// the start with a message naming both: an operator's certificate must be used
/// as given, never silently replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_certificate_is_served_and_half_a_pair_is_refused() {
    let pair = tempfile::tempdir().expect("create a dir for the pair");
    let mut generator = Launch::new().data_dir(pair.path()).start();
    let generated = quic_of(&generator).clone();
    generator.kill();
    let cert = pair.path().join("quic-cert.pem");
    let key = pair.path().join("quic-key.pem");

    let server = Launch::new()
        .arg("--quic-cert")
        .arg(cert.display().to_string())
        .arg("--quic-key")
        .arg(key.display().to_string())
        .start();
    assert_eq!(quic_of(&server).certificate, cert);
    assert_eq!(quic_of(&server).sha256, generated.sha256);
    assert!(!server.data_dir().join("quic-cert.pem").exists());
    let peer = connect(&server).await;
    let mut stream = Stream::open(&peer.connection).await;
    create_sku(&mut stream, "quic-g", 1).await;

    let exited = Launch::new()
        .arg("--quic-cert")
        .arg(cert.display().to_string())
        .expect_exit();
    assert_eq!(exited.status.code(), Some(2), "{}", exited.stderr);
    assert!(exited.stderr.contains("quic_key"), "{}", exited.stderr);
}

/// `--no-quic` starts no QUIC front end (no address, no certificate) and HTTP
/// works as before: an operator who does not want UDP exposed can turn it off.
#[test]
fn no_quic_turns_quic_off_and_keeps_http() {
    let server = Launch::new().arg("--no-quic").start();
    assert!(server.quic().is_none(), "no QUIC line is printed");
    assert!(!server.data_dir().join("quic-cert.pem").exists());
    server
        .client()
        .put_sku("plain", serde_json::json!({ "stock": 1 }));
    server.client().reserve("plain", 1, "frank");
}

/// Connections of the attack on claimed frame lengths.
const CLAIMING_CONNECTIONS: usize = 40;
/// Streams per connection that claim a full frame and send nothing more (one
/// stream of the 16 a connection may open is left for the probe).
const CLAIMING_STREAMS: usize = 15;
/// Most the server's memory may grow under the attack. Buffers sized by the
/// claims would be 40 × 15 × 64 KiB = 37.5 MiB.
const CLAIM_RSS_GROWTH_MAX_KIB: u64 = 12 * 1024;

/// A frame's length prefix is a claim, not a payment: a client that opens
/// streams, sends a prefix claiming the largest frame and then nothing used
/// to make the server allocate (and zero) the whole frame per stream (1,000
/// connections × 16 streams took 1 GiB). Buffers now grow as bytes arrive:
/// hundreds of such streams leave the server's memory nearly unchanged, and
/// every connection still gets its answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claimed_frame_lengths_cost_no_memory_until_bytes_arrive() {
    let server = Launch::new().start();
    let setup = connect(&server).await;
    let mut stream = Stream::open(&setup.connection).await;
    create_sku(&mut stream, "claims", 1_000).await;
    let before = server.resident_kib();

    let mut peers = Vec::new();
    let mut claims = Vec::new();
    let claim = {
        let length = 60_000u32.to_be_bytes();
        let mut bytes = length.to_vec();
        bytes.push(flashgate_protocol::PROTOCOL_VERSION);
        bytes
    };
    for _ in 0..CLAIMING_CONNECTIONS {
        // Anonymous: the catalogue needs no credential, and every stream of
        // the connection is the test's.
        let peer = try_connect(&server).await.expect("connect over QUIC");
        for _ in 0..CLAIMING_STREAMS {
            let mut stream = Stream::open(&peer.connection).await;
            stream.write(&claim).await;
            claims.push(stream);
        }
        peers.push(peer);
    }
    // Each connection's last stream is served while its claims wait: by
    // then the server has read their prefixes.
    for (index, peer) in peers.iter().enumerate() {
        let mut probe = Stream::open(&peer.connection).await;
        let response = probe.call(&get_sku(index as u64, "claims")).await;
        assert!(
            matches!(response, Response::Sku { .. }),
            "connection {index}: {response:?}"
        );
    }
    let growth = server.resident_kib().saturating_sub(before);
    assert!(
        growth <= CLAIM_RSS_GROWTH_MAX_KIB,
        "the server grew by {growth} KiB for {} claimed frames",
        claims.len()
    );
}
