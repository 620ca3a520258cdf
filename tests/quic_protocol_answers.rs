//! docs/PROTOCOL.md's answers to the questions a client writer would
//! otherwise guess at, checked against the real binary with raw frames: a
//! stream with no request, an empty batch, Restock's answer, repeated
//! transitions, the SKU rule of GetSku, a batch over the in-flight limit, a
//! varint written long, and the ALPN refusal.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Launch, QuicEndpoint, Server, ADMIN_TOKEN};
use flashgate_protocol::{
    code, encode_frame, FrameReader, OrderStatus, PlaceOrder, Request, Response, SkuSettings, ALPN,
    FRAME_BYTES_MAX_LIMIT, PROTOCOL_VERSION,
};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, ConnectionError, Endpoint, RecvStream, SendStream};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::time::timeout;

/// Longest wait for any one QUIC step.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A client endpoint trusting the server's printed certificate, offering `alpn`.
fn client_endpoint(quic: &QuicEndpoint, alpn: &[u8]) -> Endpoint {
    let pem = std::fs::read(&quic.certificate).expect("read the server's certificate");
    let certificate = CertificateDer::pem_slice_iter(&pem)
        .next()
        .expect("the certificate file holds a certificate")
        .expect("the certificate file is PEM");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).expect("trust the certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![alpn.to_vec()];
    let crypto = QuicClientConfig::try_from(crypto).expect("a QUIC client configuration");
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

async fn connect(server: &Server, alpn: &[u8]) -> (Endpoint, Result<Connection, ConnectionError>) {
    let quic = server.quic().expect("the server listens for QUIC");
    let endpoint = client_endpoint(quic, alpn);
    let connecting = endpoint
        .connect(quic.addr, "localhost")
        .expect("start a connection");
    let connection = timeout(STEP_TIMEOUT, connecting)
        .await
        .expect("the handshake ends");
    (endpoint, connection)
}

/// One stream: frames out, frames in.
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
        Stream {
            send,
            recv,
            frames: FrameReader::new(FRAME_BYTES_MAX_LIMIT),
        }
    }

    async fn write(&mut self, bytes: &[u8]) {
        timeout(STEP_TIMEOUT, self.send.write_all(bytes))
            .await
            .expect("the write finishes")
            .expect("write to the stream");
    }

    /// The next frame; `None` once the server finished the stream.
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
                .expect("the server answers or finishes")
                .expect("read from the stream");
            match chunk {
                Some(chunk) => self.frames.extend(&chunk.bytes),
                None => return None,
            }
        }
    }

    async fn call(&mut self, request: &Request) -> Response {
        let mut bytes = Vec::new();
        encode_frame(request, &mut bytes);
        self.write(&bytes).await;
        self.next().await.expect("an answer")
    }
}

fn error_code(response: &Response) -> (u64, &str) {
    match response {
        Response::Error {
            request_id, code, ..
        } => (*request_id, code.as_str()),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn place(request_id: u64, sku: &str, customer: &str) -> PlaceOrder {
    PlaceOrder {
        request_id,
        sku: sku.into(),
        quantity: 1,
        customer_id: customer.into(),
        idempotency_key: None,
    }
}

/// The answers docs/PROTOCOL.md gives (sections 2, 4, 5.3, 5.4, 6) are what
/// the server does: a client written from the document alone must not meet a
/// surprise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_answers_hold() {
    let server = Launch::new()
        .env("FLASHGATE_QUIC_IN_FLIGHT_PER_CONNECTION_MAX", "8")
        .env("FLASHGATE_QUIC_BATCH_ORDERS_MAX", "8")
        .start();
    let (_endpoint, connection) = connect(&server, ALPN).await;
    let connection = connection.expect("connect over QUIC");

    // Authenticate: the connection acts as the admin token from now on (it
    // may do every request this test makes).
    let mut authenticating = Stream::open(&connection).await;
    let authenticated = authenticating
        .call(&Request::Authenticate {
            request_id: 0,
            credential: ADMIN_TOKEN.into(),
        })
        .await;
    assert_eq!(
        authenticated,
        Response::Authenticated {
            request_id: 0,
            role: "admin".into(),
            customer_id: None,
        }
    );
    authenticating.send.finish().expect("finish the stream");
    assert_eq!(authenticating.next().await, None);

    // A stream with no request: finished by the server without a frame.
    let mut empty = Stream::open(&connection).await;
    empty.send.finish().expect("finish the stream");
    assert_eq!(empty.next().await, None);

    let mut stream = Stream::open(&connection).await;
    let created = stream
        .call(&Request::PutSku {
            request_id: 1,
            admin_token: ADMIN_TOKEN.into(),
            sku: "answers".into(),
            settings: SkuSettings {
                stock: Some(5),
                ..SkuSettings::default()
            },
        })
        .await;
    assert!(
        matches!(
            created,
            Response::Sku {
                request_id: 1,
                created: true,
                ..
            }
        ),
        "{created:?}"
    );

    // Restock is answered with the SKU, `created` false.
    match stream
        .call(&Request::Restock {
            request_id: 2,
            admin_token: ADMIN_TOKEN.into(),
            sku: "answers".into(),
            quantity: 3,
        })
        .await
    {
        Response::Sku {
            request_id: 2,
            created: false,
            sku,
        } => assert_eq!(sku.total, 8),
        other => panic!("{other:?}"),
    }

    // An empty batch is answered with an empty Batch.
    assert_eq!(
        stream.call(&Request::PlaceOrders { orders: vec![] }).await,
        Response::Batch { results: vec![] }
    );

    // Confirming a confirmed order and cancelling a cancelled one return it
    // unchanged; confirming a cancelled one is invalid_transition.
    let order = match stream
        .call(&Request::PlaceOrder(place(3, "answers", "carol")))
        .await
    {
        Response::Order { order, .. } => order,
        other => panic!("{other:?}"),
    };
    let mut last = None;
    for request_id in [4, 5] {
        match stream
            .call(&Request::Confirm {
                request_id,
                order_id: order.order_id.clone(),
            })
            .await
        {
            Response::Order { order, .. } => {
                assert_eq!(order.status, OrderStatus::Confirmed);
                if let Some(previous) = last.replace(order.updated_at_ms) {
                    assert_eq!(previous, order.updated_at_ms, "unchanged");
                }
            }
            other => panic!("{other:?}"),
        }
    }
    for request_id in [6, 7] {
        match stream
            .call(&Request::Cancel {
                request_id,
                order_id: order.order_id.clone(),
            })
            .await
        {
            Response::Order { order, .. } => assert_eq!(order.status, OrderStatus::Cancelled),
            other => panic!("{other:?}"),
        }
    }
    let refused = stream
        .call(&Request::Confirm {
            request_id: 8,
            order_id: order.order_id.clone(),
        })
        .await;
    assert_eq!(error_code(&refused), (8, code::INVALID_TRANSITION));

    // GetSku applies the SKU rule: a name breaking it is invalid_field.
    let refused = stream
        .call(&Request::GetSku {
            request_id: 9,
            sku: "no spaces".into(),
        })
        .await;
    assert_eq!(error_code(&refused), (9, code::INVALID_FIELD));

    // A batch that does not fit the in-flight limit whole is refused whole,
    // one too_many_in_flight per order: 8 in flight at most, and a batch of
    // 8 sent right behind another batch of 8 on a second stream.
    let mut other = Stream::open(&connection).await;
    let batch = |first: u64| Request::PlaceOrders {
        orders: (first..first + 8)
            .map(|id| place(id, "answers", &format!("batch-{id}")))
            .collect(),
    };
    let mut bytes = Vec::new();
    encode_frame(&batch(100), &mut bytes);
    encode_frame(&batch(200), &mut bytes);
    other.write(&bytes).await;
    let mut whole_refusals = 0;
    for _ in 0..2 {
        match other.next().await.expect("an answer per batch") {
            Response::Batch { results } => {
                assert_eq!(results.len(), 8);
                let refused = results
                    .iter()
                    .filter(|result| {
                        matches!(result, Response::Error { code, .. } if code == code::TOO_MANY_IN_FLIGHT)
                    })
                    .count();
                assert!(
                    refused == 0 || refused == 8,
                    "refused per order: {results:?}"
                );
                eprintln!("a batch of 8: {refused} refused too_many_in_flight");
                whole_refusals += usize::from(refused == 8);
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(whole_refusals <= 1);

    // A varint written longer than needed is malformed_frame, and the frame
    // the server sends back carries version 1.
    let mut long = Stream::open(&connection).await;
    let body = [4u8, 0xFB, 7, 0, 1, b'A'];
    let mut frame = (body.len() as u32 + 1).to_be_bytes().to_vec();
    frame.push(PROTOCOL_VERSION);
    frame.extend_from_slice(&body);
    long.write(&frame).await;
    match long.next().await.expect("a frame error") {
        Response::FrameError { code, .. } => assert_eq!(code, code::MALFORMED_FRAME),
        other => panic!("{other:?}"),
    }
}

/// A client that does not offer `flashgate/1` is refused in the handshake
/// with the TLS alert no_application_protocol, QUIC error 0x178, as
/// docs/PROTOCOL.md section 1 says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_alpn_is_refused_with_0x178() {
    let server = Launch::new().start();
    let (_endpoint, connection) = connect(&server, b"h3").await;
    match connection {
        Err(ConnectionError::ConnectionClosed(close)) => {
            assert_eq!(u64::from(close.error_code), 0x178, "{close:?}")
        }
        other => panic!("expected a refusal with 0x178, got {other:?}"),
    }
}
