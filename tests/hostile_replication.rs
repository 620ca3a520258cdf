//! The replication port before a dialer has proven the cluster secret, attacked
//! from outside against the real binary: connections that never authenticate,
//! streams stuffed with bytes, an oversized first message. The primary's
//! memory stays bounded, the excess is refused and counted, and its real
//! standby keeps acknowledging orders. (docs/RELIABILITY.md, "Hostile clients".)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::pair::wait_in_sync;
use common::{poll_until, Burst, Launch, Server, ADMIN_TOKEN};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::json;
use tokio::time::timeout;

/// The replication channel's ALPN id (part of the wire contract).
const REPLICATION_ALPN: &[u8] = b"flashgate-replication/1";
/// The close code of a dialer whose handshake broke a rule.
const CLOSE_HANDSHAKE_FAILED: u32 = 2;
/// Connections the primary may hold that have not proven the secret (a small
/// `replication_unauthenticated_sessions_max` for the test).
const UNAUTHENTICATED_MAX: usize = 8;
/// Attacking connections that never prove the secret.
const ATTACK_CONNECTIONS: usize = 300;
/// Attacking connections in their QUIC handshake at once.
const ATTACK_PARALLEL: usize = 50;
/// Junk bytes an accepted attacker writes on a second stream the listener
/// never reads: before the fix it buffered them for the whole handshake.
const JUNK_BYTES: usize = 1 << 20;
/// A first message over the 4 KiB handshake limit but under the 64 KiB one
/// the listener used to read.
const OVERSIZED_HELLO_BYTES: u32 = 8 << 10;
/// The handshake deadline of the test: longer than the attack takes to set up,
/// so that the attackers' sessions are all held at once.
const HANDSHAKE_TIMEOUT_MS: &str = "20000";
/// Most the primary's peak memory may grow under the attack. Buffering the
/// junk would take ATTACK_CONNECTIONS × 1 MiB.
const PEAK_RSS_GROWTH_MAX_KIB: u64 = 48 * 1024;
/// Longest wait for one QUIC step of an attacker.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an attacker waits for a stream the listener need not grant.
const NOT_GRANTED_WAIT: Duration = Duration::from_millis(500);
/// Longest wait for the server to close the held attackers by its deadline.
const DEADLINE_WAIT: Duration = Duration::from_secs(90);
/// Threads placing orders while the attack runs.
const BUYER_THREADS: usize = 2;

/// Accepts any certificate: the attacker does not care who the listener is.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn attacker_endpoint() -> Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![REPLICATION_ALPN.to_vec()];
    let crypto = QuicClientConfig::try_from(tls).expect("a QUIC client configuration");
    let mut endpoint =
        Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("bind an endpoint");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// What became of one attacking connection.
enum Attempted {
    /// The listener completed the QUIC handshake: it holds a session. The
    /// streams are kept open with it (a finished stream would end it).
    Accepted {
        connection: Connection,
        _streams: Vec<quinn::SendStream>,
    },
    /// The listener refused the connection at once.
    Refused,
}

/// Connects without ever proving the secret. Accepted, it sends three bytes
/// of a length prefix on its first stream (the listener waits for the fourth)
/// and, when a second stream is granted, `JUNK_BYTES` on it.
async fn attack(endpoint: Endpoint, target: SocketAddr) -> Attempted {
    let connecting = endpoint
        .connect(target, "flashgate-replication")
        .expect("start a connection");
    let connection = match timeout(STEP_TIMEOUT, connecting).await {
        Err(_) => panic!("the listener neither accepted nor refused within {STEP_TIMEOUT:?}"),
        Ok(Err(ConnectionError::ConnectionClosed(close)))
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            return Attempted::Refused
        }
        Ok(Err(error)) => panic!("an attacking connection failed otherwise: {error}"),
        Ok(Ok(connection)) => connection,
    };
    let mut streams = Vec::new();
    if let Ok(Ok((mut send, _recv))) = timeout(STEP_TIMEOUT, connection.open_bi()).await {
        let _ = send.write_all(&[0, 0, 0]).await;
        streams.push(send);
    }
    if let Ok(Ok((mut send, _recv))) = timeout(NOT_GRANTED_WAIT, connection.open_bi()).await {
        let junk = vec![0x5a; JUNK_BYTES];
        let _ = timeout(STEP_TIMEOUT, send.write_all(&junk)).await;
        streams.push(send);
    }
    Attempted::Accepted {
        connection,
        _streams: streams,
    }
}

fn peak_resident_kib(server: &Server) -> u64 {
    server.status_kib("VmHWM:")
}

/// The value of the metric series `series` (name and labels as printed), or 0.
fn metric(server: &Server, series: &str) -> f64 {
    let api = server.client();
    let request = api
        .request("GET", "/metrics")
        .set("Authorization", &format!("Bearer {ADMIN_TOKEN}"));
    let answer = api.send(request, None);
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer
        .text
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

/// The replication listener used to accept every connection before it proved
/// anything (4,500 were accepted), let each buffer up to 32 MiB on streams it
/// never read for ~10 s, and read a first message of up to 64 KiB decoded
/// with a 65 MiB limit. Now at most `replication_unauthenticated_sessions_max`
/// connections are held before their proof, every other is refused at once
/// and counted, a dialer gets one stream and small windows, the held ones are
/// closed at the handshake deadline, and a first message over 4 KiB ends the
/// connection. Meanwhile the primary's standby keeps acknowledging orders.
#[test]
fn unauthenticated_replication_connections_are_capped_and_cost_little() {
    let primary = Launch::new()
        .replicated("127.0.0.1:0")
        .env("FLASHGATE_SHARDS", "2")
        .env(
            "FLASHGATE_REPLICATION_UNAUTHENTICATED_SESSIONS_MAX",
            &UNAUTHENTICATED_MAX.to_string(),
        )
        .env(
            "FLASHGATE_REPLICATION_HANDSHAKE_TIMEOUT_MS",
            HANDSHAKE_TIMEOUT_MS,
        )
        .start();
    let target: SocketAddr = primary
        .replication_addr()
        .parse()
        .expect("a replication address");
    let standby = Launch::new()
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_SHARDS", "2")
        .start();
    wait_in_sync(&primary);
    let api = primary.client();
    api.put_sku("during-attack", json!({ "stock": 1_000_000 }));
    let rss_before = primary.resident_kib();

    // Buyers order throughout; with sync replication every 201 is an order
    // the standby has too.
    let buyers = Burst::start(api, &["during-attack"], BUYER_THREADS);
    buyers.wait_for_created(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let endpoint = runtime.block_on(async { attacker_endpoint() });
    let attempts: Vec<Attempted> = runtime.block_on(async {
        let mut attempts = Vec::with_capacity(ATTACK_CONNECTIONS);
        for wave in (0..ATTACK_CONNECTIONS)
            .collect::<Vec<_>>()
            .chunks(ATTACK_PARALLEL)
        {
            let tasks: Vec<_> = wave
                .iter()
                .map(|_| tokio::spawn(attack(endpoint.clone(), target)))
                .collect();
            for task in tasks {
                attempts.push(task.await.expect("an attacker task"));
            }
        }
        attempts
    });
    let held: Vec<Connection> = attempts
        .iter()
        .filter_map(|attempt| match attempt {
            Attempted::Accepted { connection, .. } => Some(connection.clone()),
            Attempted::Refused => None,
        })
        .collect();
    let refused = attempts.len() - held.len();
    let peak_growth_kib = peak_resident_kib(&primary).saturating_sub(rss_before);
    let created_during_attack = buyers.created();
    eprintln!(
        "attack: {} connections, {} held by the listener, {refused} refused; primary peak RSS growth {} KiB; {created_during_attack} orders acknowledged so far",
        attempts.len(),
        held.len(),
        peak_growth_kib
    );
    assert!(
        held.len() <= UNAUTHENTICATED_MAX,
        "the listener accepted {} connections that proved nothing; the cap is {UNAUTHENTICATED_MAX}",
        held.len()
    );
    let counted = metric(
        &primary,
        "flashgate_replication_sessions_refused_total{reason=\"unauthenticated_sessions_max\"}",
    );
    assert!(
        counted >= refused as f64,
        "{refused} refusals, {counted} counted"
    );
    assert!(
        peak_growth_kib <= PEAK_RSS_GROWTH_MAX_KIB,
        "the primary's peak memory grew by {peak_growth_kib} KiB under the attack"
    );

    // The held sessions end at the handshake deadline, each counted.
    for connection in &held {
        runtime.block_on(async {
            timeout(DEADLINE_WAIT, connection.closed())
                .await
                .expect("the listener closes an unauthenticated session at its deadline")
        });
    }
    poll_until(
        "the timed-out handshakes to be counted",
        STEP_TIMEOUT,
        || {
            let timed_out = metric(
                &primary,
                "flashgate_replication_handshakes_failed_total{reason=\"timeout\"}",
            );
            (timed_out >= held.len() as f64).then_some(())
        },
    );

    // A first message over the handshake limit ends the connection at once,
    // without the listener reading it.
    let close = runtime.block_on(async {
        let connection = timeout(
            STEP_TIMEOUT,
            endpoint
                .connect(target, "flashgate-replication")
                .expect("start a connection"),
        )
        .await
        .expect("the handshake finishes")
        .expect("accepted once the held sessions are gone");
        let (mut send, _recv) = timeout(STEP_TIMEOUT, connection.open_bi())
            .await
            .expect("a stream")
            .expect("a stream");
        let mut message = OVERSIZED_HELLO_BYTES.to_be_bytes().to_vec();
        message.resize(4 + OVERSIZED_HELLO_BYTES as usize, 0);
        let _ = send.write_all(&message).await;
        timeout(STEP_TIMEOUT, connection.closed())
            .await
            .expect("the listener closes the connection")
    });
    match close {
        ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, VarInt::from_u32(CLOSE_HANDSHAKE_FAILED));
            assert_eq!(&close.reason[..], b"too_large");
        }
        other => panic!("closed otherwise: {other}"),
    }
    assert!(
        metric(
            &primary,
            "flashgate_replication_handshakes_failed_total{reason=\"too_large\"}"
        ) >= 1.0
    );
    drop(held);
    drop(attempts);
    runtime.block_on(async { endpoint.wait_idle().await });

    // Orders went on being acknowledged by both nodes, during and after.
    let after = buyers.created();
    buyers.wait_for_created(after + 5);
    let attempts = buyers.finish();
    common::pair::assert_refusals_only(&attempts, &[]);
    common::pair::wait_caught_up(&primary, &standby);
    assert_eq!(primary.cluster()["peer"]["connected"], true);
    eprintln!(
        "orders acknowledged during and after the attack: {}",
        attempts.len()
    );
}

/// A standby started with another cluster's secret does not follow, and says
/// so where an operator looks: `/v1/cluster` names the refusal and counts the
/// failed attempts, and the failures are counted in metrics, instead of
/// `peer: null` and a log line a second.
#[test]
fn a_refused_standby_shows_why_in_its_cluster_status() {
    let primary = Launch::new().replicated("127.0.0.1:0").start();
    let standby = Launch::new()
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env(
            "FLASHGATE_CLUSTER_SECRET",
            "another-cluster-secret-0123456789",
        )
        .start();
    let status = standby.wait_for_cluster("the refusal to show", |status| {
        status["peer"]["failures"].as_u64().unwrap_or(0) >= 2
    });
    let peer = &status["peer"];
    assert_eq!(peer["address"], primary.replication_addr(), "{status}");
    assert_eq!(peer["connected"], false, "{status}");
    let failure = peer["last_failure"].as_str().unwrap_or_default();
    assert!(failure.contains("cluster secret"), "{status}");
    assert!(
        metric(
            &standby,
            "flashgate_replication_follow_failures_total{kind=\"refused\"}"
        ) >= 2.0
    );
    assert_eq!(primary.cluster()["peer"], serde_json::Value::Null);

    // `flashgate status` shows the same to an operator at a terminal.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["status", "--node", &standby.client().url("")])
        .args(["--token", ADMIN_TOKEN])
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .output()
        .expect("run flashgate status");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(printed.contains("role:     standby at epoch"), "{printed}");
    assert!(printed.contains("ready:    no (not_primary)"), "{printed}");
    assert!(
        printed.contains("failed attempt(s), the last:"),
        "{printed}"
    );
    assert!(printed.contains("cluster secret"), "{printed}");
}
