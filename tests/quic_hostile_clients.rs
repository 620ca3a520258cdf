//! What a hostile or buggy QUIC client can make the node hold: handshakes
//! that never finish, and answers never read. Each attack is made from
//! outside against the real binary over loopback, the bound is checked
//! (connection and handshake counts, resident memory), and a legitimate
//! client is served during and after it. (docs/RELIABILITY.md, "Hostile
//! clients: QUIC".)

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{poll_until, Launch, QuicEndpoint, Server, ADMIN_TOKEN, SERVICE_TOKEN};
use flashgate_client::{OrderGateway, PlaceOrder as ClientOrder, QuicClient, QuicConfig, Trust};
use flashgate_protocol::{encode_frame, PlaceOrder, Request, SkuSettings, ALPN};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio::time::timeout;

/// Longest wait for any one step the test awaits.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn quic_of(server: &Server) -> &QuicEndpoint {
    server.quic().expect("the server listens for QUIC")
}

/// A legitimate client: the client library, pinning the printed fingerprint.
async fn buyer(server: &Server) -> QuicClient {
    let quic = quic_of(server);
    let fingerprint = quic.sha256.parse().expect("the printed fingerprint parses");
    let mut config = QuicConfig::new(vec![quic.addr], Trust::Fingerprint(fingerprint));
    config.admin_token = Some(ADMIN_TOKEN.to_owned());
    config.credential = Some(SERVICE_TOKEN.to_owned());
    config.stream_count = 1;
    QuicClient::connect(config)
        .await
        .expect("a legitimate client connects")
}

/// Connects, creates `sku` if asked, and places one order: what a buyer
/// does. Returns the client, still connected.
async fn buy(server: &Server, sku: &str, customer: &str, create: bool) -> QuicClient {
    let client = buyer(server).await;
    if create {
        let settings = SkuSettings {
            stock: Some(100),
            ..SkuSettings::default()
        };
        client.put_sku(sku, settings).await.expect("create the SKU");
    }
    let order = client
        .place(ClientOrder::new(sku, 1, customer))
        .await
        .expect("the buyer's order is placed");
    assert_eq!(order.order.customer_id, customer);
    client
}

/// The value of an unlabelled series on the metrics page (0 when absent).
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Established connections the node under the handshake flood may hold.
const FLOOD_CONNECTIONS_MAX: usize = 4;
/// Handshakes it may run at once.
const FLOOD_HANDSHAKES_MAX: usize = 16;
/// Handshakes from unvalidated addresses before it answers with a Retry.
const FLOOD_UNVALIDATED_MAX: usize = 4;
/// Distinct Initial packets the flood replays, each from fresh source ports.
const FLOOD_INITIALS: usize = 24;
/// Rounds of the flood at most (it stops earlier when the test is done).
const FLOOD_ROUNDS_MAX: usize = 400;
/// Between two rounds of the flood.
const FLOOD_ROUND_PAUSE: Duration = Duration::from_millis(50);

/// The destination connection id of a QUIC long-header packet.
fn destination_cid(datagram: &[u8]) -> Option<&[u8]> {
    let length = usize::from(*datagram.get(5)?);
    datagram.get(6..6 + length)
}

/// `count` distinct client Initial packets, as a real client sends them: a
/// quinn client connects to a socket of the test, which keeps the first
/// datagram of each connection and never answers.
async fn capture_initials(count: usize) -> Vec<Vec<u8>> {
    let capture = UdpSocket::bind("127.0.0.1:0").expect("bind the capture socket");
    capture
        .set_read_timeout(Some(STEP_TIMEOUT))
        .expect("a read timeout");
    let target = capture.local_addr().expect("its address");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(crypto).expect("a QUIC client configuration");
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a client endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    // Kept until the capture is done: a dropped attempt sends nothing more.
    let attempts: Vec<_> = (0..count)
        .map(|_| {
            endpoint
                .connect(target, "localhost")
                .expect("start a connection")
        })
        .collect();
    let initials = tokio::task::spawn_blocking(move || {
        let mut seen = HashSet::new();
        let mut initials = Vec::new();
        let mut buffer = [0u8; 2048];
        while initials.len() < count {
            let (length, _) = capture
                .recv_from(&mut buffer)
                .expect("the client sends its Initial packets");
            let datagram = &buffer[..length];
            if let Some(cid) = destination_cid(datagram) {
                if seen.insert(cid.to_vec()) {
                    initials.push(datagram.to_vec());
                }
            }
        }
        initials
    })
    .await
    .expect("capture the Initial packets");
    drop(attempts);
    endpoint.close(VarInt::from_u32(0), b"captured");
    initials
}

/// Replays the Initial packets to `server`, each round from fresh source
/// ports (new addresses to the server), never answering: handshakes that never
/// finish, from addresses that never prove themselves. Stops when `stop` is
/// set or after `FLOOD_ROUNDS_MAX` rounds.
fn flood(
    initials: Vec<Vec<u8>>,
    server: SocketAddr,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..FLOOD_ROUNDS_MAX {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // Open for the round, so the server's answers meet a socket.
            let sockets: Vec<UdpSocket> = initials
                .iter()
                .filter_map(|initial| {
                    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
                    socket.send_to(initial, server).ok()?;
                    Some(socket)
                })
                .collect();
            rounds.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(FLOOD_ROUND_PAUSE);
            drop(sockets);
        }
    })
}

/// Stops the flood when dropped, also when the test fails.
struct FloodGuard {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FloodGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A stream of handshakes that never finish, from ever new source ports, used
/// to count against `quic_connections_max` from their first packet and hold
/// their slot until the idle timeout: about 1,100 of them locked every QUIC
/// client out for 30 s. Now a connection counts only once established, a
/// handshake is dropped after `quic_handshake_timeout_ms`, handshakes are
/// bounded in number, and past a few from unvalidated addresses new ones get
/// a QUIC Retry, which a spoofing flood cannot answer. A legitimate client
/// connects and orders during the flood and after it, the counted connections
/// never exceed the legitimate ones, and the flood's handshakes are gone once
/// their deadline passes.
#[test]
fn unfinished_handshakes_hold_no_connection_slot() {
    let server = Launch::new()
        .env(
            "FLASHGATE_QUIC_CONNECTIONS_MAX",
            &FLOOD_CONNECTIONS_MAX.to_string(),
        )
        .env(
            "FLASHGATE_QUIC_HANDSHAKES_MAX",
            &FLOOD_HANDSHAKES_MAX.to_string(),
        )
        .env(
            "FLASHGATE_QUIC_HANDSHAKES_UNVALIDATED_MAX",
            &FLOOD_UNVALIDATED_MAX.to_string(),
        )
        .env("FLASHGATE_QUIC_HANDSHAKE_TIMEOUT_MS", "2000")
        .start();
    let runtime = runtime();
    let initials = runtime.block_on(capture_initials(FLOOD_INITIALS));
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let mut guard = FloodGuard {
        stop: Arc::clone(&stop),
        thread: Some(flood(
            initials,
            quic_of(&server).addr,
            stop,
            Arc::clone(&rounds),
        )),
    };
    // Two rounds: more unfinished handshakes than the node has connections.
    poll_until("two rounds of the flood", STEP_TIMEOUT, || {
        (rounds.load(Ordering::Relaxed) >= 2).then_some(())
    });

    let during_the_flood =
        runtime.block_on(buy(&server, "flood-sku", "buyer-during-the-flood", true));
    let page = server.client().metrics_page();
    runtime.block_on(during_the_flood.close());
    let during = (
        metric(&page, "flashgate_quic_connections"),
        metric(&page, "flashgate_quic_handshakes"),
        metric(&page, "flashgate_quic_retries_total"),
    );
    eprintln!(
        "during the flood ({} rounds): connections {}, handshakes {}, retries {}",
        rounds.load(Ordering::Relaxed),
        during.0,
        during.1,
        during.2
    );
    assert!(
        during.0 == 1.0,
        "only the buyer's connection counts, not the flood's: {}",
        during.0
    );
    assert!(during.1 <= FLOOD_HANDSHAKES_MAX as f64, "{}", during.1);
    assert!(during.2 >= 1.0, "no Retry was sent to the flood");

    drop(guard.thread.take().map(|thread| {
        guard.stop.store(true, Ordering::Relaxed);
        thread.join()
    }));
    // Each unfinished handshake ends at its deadline.
    poll_until("the flood's handshakes to end", STEP_TIMEOUT, || {
        (metric(&server.client().metrics_page(), "flashgate_quic_handshakes") == 0.0).then_some(())
    });
    let after_the_flood =
        runtime.block_on(buy(&server, "flood-sku", "buyer-after-the-flood", false));
    runtime.block_on(after_the_flood.close());
    let page = server.client().metrics_page();
    assert!(metric(&page, "flashgate_quic_handshakes_timed_out_total") >= 1.0);
}

/// Connections of the attack on answers never read.
const SILENT_CONNECTIONS: usize = 4;
/// Streams of each, each sending batch frames.
const SILENT_STREAMS: usize = 4;
/// Batch frames each stream sends at most (it stops once the server no
/// longer reads them).
const SILENT_FRAMES: usize = 60;
/// Orders in each batch frame; each is refused with a long detail, so a frame
/// of about 8 KB draws an answer of about 100 KB.
const SILENT_BATCH_ORDERS: usize = 1000;
/// The answer budget of the node under this attack.
const ANSWER_BYTES_MAX: usize = 256 * 1024;
/// Its in-flight limit per connection.
const IN_FLIGHT_MAX: usize = 1024;
/// The node's defaults that the bound below depends on.
const FRAME_BYTES_MAX: usize = 64 * 1024;
const STREAMS_PER_CONNECTION_MAX: usize = 16;
/// The most one order's answer in a batch takes (config.rs,
/// `QUIC_BATCH_ORDERS_MAX_LIMIT`).
const ANSWER_BYTES_PER_ORDER_MAX: usize = 300;
/// Memory the node may grow by besides what the limits allow (allocator
/// slack, runtime buffers, the legitimate client).
const RSS_SLACK_KIB: u64 = 24 * 1024;
/// Longest a write of the attack may wait: past it the server is taken to
/// have stopped reading that stream.
const WRITE_STALL: Duration = Duration::from_secs(2);

/// What the limits let one connection pin: the answer budget, the same again
/// in QUIC's send window, request bytes in its receive windows, the answers
/// of requests in flight waiting for room, and each stream's refusal of one
/// batch waiting for room.
fn connection_bound_kib() -> u64 {
    let bytes = 2 * ANSWER_BYTES_MAX
        + STREAMS_PER_CONNECTION_MAX * 2 * FRAME_BYTES_MAX
        + (IN_FLIGHT_MAX + SILENT_STREAMS * SILENT_BATCH_ORDERS) * ANSWER_BYTES_PER_ORDER_MAX;
    (bytes / 1024) as u64
}

/// A raw connection whose client grants the server almost no room to send
/// (small receive windows) and never reads.
async fn silent_connection(quic: &QuicEndpoint) -> (Endpoint, Connection) {
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
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(crypto).expect("a QUIC client configuration");
    let mut transport = quinn::TransportConfig::default();
    transport
        .stream_receive_window(VarInt::from_u32(4096))
        .receive_window(VarInt::from_u32(16 * 1024))
        .keep_alive_interval(Some(Duration::from_secs(1)));
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a client endpoint");
    endpoint.set_default_client_config(config);
    let connection = timeout(
        STEP_TIMEOUT,
        endpoint
            .connect(quic.addr, "localhost")
            .expect("start a connection"),
    )
    .await
    .expect("the handshake finishes")
    .expect("connect over QUIC");
    (endpoint, connection)
}

/// One batch frame of orders that are each refused (`quantity` 0).
fn refused_batch(stream: usize) -> Vec<u8> {
    let orders = (0..SILENT_BATCH_ORDERS)
        .map(|index| PlaceOrder {
            request_id: (stream * SILENT_BATCH_ORDERS + index) as u64,
            sku: "S".into(),
            quantity: 0,
            customer_id: "c".into(),
            idempotency_key: None,
        })
        .collect();
    let mut bytes = Vec::new();
    encode_frame(&Request::PlaceOrders { orders }, &mut bytes);
    bytes
}

/// Writes batch frames on one stream and never reads; returns how many
/// writes completed before one stalled (the frames the client's QUIC took,
/// not all read by the server) and the stream, which the caller keeps open:
/// dropping its receiving side would tell the server to stop sending.
async fn send_unread(
    connection: Connection,
    stream: usize,
) -> (usize, Option<(SendStream, RecvStream)>) {
    let Ok((mut send, recv)) = connection.open_bi().await else {
        return (0, None);
    };
    let frame = refused_batch(stream);
    let mut sent = 0;
    for _ in 0..SILENT_FRAMES {
        match timeout(WRITE_STALL, send.write_all(&frame)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    (sent, Some((send, recv)))
}

/// A client that sends requests (here batch frames whose answers are 12 times
/// their size) and never reads the answers used to pin about 100 MiB per
/// connection: answers were bounded by count per stream, not bytes, and
/// `too_many_in_flight` refusals were queued without any bound. Now every
/// answer takes room in a per-connection byte budget, and with none left the
/// server stops reading the connection's requests: resident memory stays
/// under a bound computed from the configured limits, another client is
/// served meanwhile, and closing the silent connections gives the memory
/// back (it grows no further).
#[test]
fn answers_never_read_pin_a_bounded_number_of_bytes() {
    let server = Launch::new()
        .env(
            "FLASHGATE_QUIC_ANSWER_BYTES_PER_CONNECTION_MAX",
            &ANSWER_BYTES_MAX.to_string(),
        )
        .env(
            "FLASHGATE_QUIC_IN_FLIGHT_PER_CONNECTION_MAX",
            &IN_FLIGHT_MAX.to_string(),
        )
        .start();
    let runtime = runtime();
    let buyer = runtime.block_on(buy(&server, "silent-sku", "buyer-before", true));
    runtime.block_on(buyer.close());
    let before = server.resident_kib();

    let quic = quic_of(&server).clone();
    let (endpoints, streams, sent) = runtime.block_on(async {
        let mut endpoints = Vec::new();
        let mut writers = tokio::task::JoinSet::new();
        for connection_index in 0..SILENT_CONNECTIONS {
            let (endpoint, connection) = silent_connection(&quic).await;
            for stream in 0..SILENT_STREAMS {
                writers.spawn(send_unread(
                    connection.clone(),
                    connection_index * SILENT_STREAMS + stream,
                ));
            }
            endpoints.push((endpoint, connection));
        }
        let mut sent = 0;
        let mut streams = Vec::new();
        while let Some(joined) = writers.join_next().await {
            let (frames, stream) = joined.expect("a writer task");
            sent += frames;
            streams.extend(stream);
        }
        (endpoints, streams, sent)
    });
    // While the server takes what it will and its answers pile up, its
    // memory must stay under the bound; then the budget holds answers back.
    let bound = connection_bound_kib() * SILENT_CONNECTIONS as u64 + RSS_SLACK_KIB;
    let check = || {
        let resident = server.resident_kib();
        assert!(
            resident.saturating_sub(before) <= bound,
            "the server grew by {} KiB for {SILENT_CONNECTIONS} connections that never read (bound {bound} KiB)",
            resident.saturating_sub(before)
        );
        resident
    };
    let mut during = check();
    poll_until(
        "the answer budget to hold answers back",
        STEP_TIMEOUT,
        || {
            during = during.max(check());
            (metric(
                &server.client().metrics_page(),
                "flashgate_quic_answer_budget_waits_total",
            ) >= 1.0)
                .then_some(())
        },
    );
    let buyer = runtime.block_on(buy(&server, "silent-sku", "buyer-during", false));
    runtime.block_on(buyer.close());
    during = during.max(check());
    eprintln!(
        "answers never read: {sent} batch frames written; RSS {before} KiB before, at most {during} KiB during (growth bound {bound} KiB)"
    );

    runtime.block_on(async {
        drop(streams);
        for (endpoint, connection) in &endpoints {
            connection.close(VarInt::from_u32(0), b"done");
            endpoint.close(VarInt::from_u32(0), b"done");
        }
        for (endpoint, _) in &endpoints {
            let _ = timeout(STEP_TIMEOUT, endpoint.wait_idle()).await;
        }
    });
    poll_until("the silent connections to be gone", STEP_TIMEOUT, || {
        (metric(
            &server.client().metrics_page(),
            "flashgate_quic_connections",
        ) == 0.0)
            .then_some(())
    });
    let buyer = runtime.block_on(buy(&server, "silent-sku", "buyer-after", false));
    runtime.block_on(buyer.close());
    let after = server.resident_kib();
    eprintln!("answers never read: RSS {after} KiB after the connections closed");
    assert!(
        after <= during + 4 * 1024,
        "memory grew after the connections closed: {during} → {after} KiB"
    );
}
