//! The HTTP API over TLS (`--http-tls-cert`, `--http-tls-key`) against the
//! real binary, driven by curl as a buyer's client would: HTTP/2 and HTTP/1.1
//! negotiated by ALPN, TLS before 1.2 and weak TLS 1.2 suites refused, and the
//! certificate read again on SIGHUP (a broken pair is refused and the old one
//! stays). Then by flashgate's own client library and load tester over
//! `https://`: an order placed and read, a certificate they do not trust
//! refused, and a short sale that passes its audit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use common::{poll_until, Launch, Server, ADMIN_TOKEN, SERVICE_TOKEN};
use flashgate_client::{
    ClientError, Fingerprint, HttpClient, HttpConfig, OrderGateway, OrderStatus, PlaceOrder,
    SkuSettings, TransportError, Trust,
};
use flashgate_loadtest::cli::{self, EXIT_PASSED};
use flashgate_loadtest::progress::ProgressMode;
use flashgate_loadtest::Flags;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a leaf for `localhost` it signed, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: a leaf named as its issuer would look self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("flashgate test CA {name}"));
    let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("a leaf key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("a leaf certificate");
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.cert, leaf.pem()).unwrap();
    std::fs::write(&pki.key, leaf_key.serialize_pem()).unwrap();
    pki
}

fn port(server: &Server) -> String {
    let url = server.base_url();
    url.rsplit_once(':').expect("a port").1.to_owned()
}

/// Runs curl against `https://localhost:<port><path>` trusting `ca`; the
/// exit code and what `--write-out` printed.
fn curl(server: &Server, ca: &Path, path: &str, extra: &[&str]) -> (i32, String) {
    let port = port(server);
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "10"])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg("--cacert")
        .arg(ca)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("curl runs (Debian package curl)");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn launch(pki: &Pki) -> Server {
    Launch::new()
        .arg("--http-tls-cert")
        .arg(pki.cert.to_str().unwrap())
        .arg("--http-tls-key")
        .arg(pki.key.to_str().unwrap())
        .start()
}

/// ALPN gives HTTP/2 to a client that offers it and HTTP/1.1 to one that
/// does not; an order goes through over TLS; TLS 1.1 is refused.
#[test]
fn https_speaks_http2_and_http11_and_refuses_old_tls() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path(), "first");
    let server = launch(&pki);
    assert!(
        server.base_url().starts_with("https://"),
        "{}",
        server.base_url()
    );
    assert_eq!(
        curl(&server, &pki.ca, "/healthz", &["--http2"]),
        (0, "200 2".into())
    );
    assert_eq!(
        curl(&server, &pki.ca, "/healthz", &["--http1.1"]),
        (0, "200 1.1".into())
    );
    let token = format!("Authorization: Bearer {}", server.admin_token());
    let put = curl(
        &server,
        &pki.ca,
        "/v1/skus/TLS",
        &[
            "-X",
            "PUT",
            "-H",
            &token,
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"stock": 5}"#,
            "--http2",
        ],
    );
    assert_eq!(put, (0, "201 2".into()));
    let order = curl(
        &server,
        &pki.ca,
        "/v1/orders",
        &[
            "-H",
            &token,
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"sku": "TLS", "quantity": 1, "customer_id": "c-1"}"#,
            "--http2",
        ],
    );
    assert_eq!(order, (0, "201 2".into()));
    // TLS 1.0 and 1.1 only: no handshake (curl exit 35, SSL connect error).
    let (code, _) = curl(
        &server,
        &pki.ca,
        "/healthz",
        &["--tlsv1.0", "--tls-max", "1.1"],
    );
    assert_ne!(code, 0, "a TLS 1.1 handshake must fail");
    // TLS 1.2 with a CBC suite (SHA-1 MAC) only: no handshake. The same
    // version with an AEAD suite is taken, so the refusal is the suite's.
    let (code, _) = curl(
        &server,
        &pki.ca,
        "/healthz",
        &["--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-SHA"],
    );
    assert_eq!(code, 35, "a weak TLS 1.2 suite must fail the handshake");
    let strong = curl(
        &server,
        &pki.ca,
        "/healthz",
        &[
            "--tls-max",
            "1.2",
            "--ciphers",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "--http1.1",
        ],
    );
    assert_eq!(strong, (0, "200 1.1".into()), "TLS 1.2 with AES-GCM");
    // A certificate the client does not trust: refused by the client.
    let other = write_pki(dir.path(), "other");
    let (code, _) = curl(&server, &other.ca, "/healthz", &[]);
    assert_eq!(code, 60, "curl: peer certificate cannot be authenticated");
}

/// SIGHUP reads the pair again: new handshakes get the new certificate. A
/// pair that does not load (key of another certificate) is refused and the
/// one in use stays.
#[test]
fn sighup_reloads_the_certificate_and_keeps_it_when_the_new_pair_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_pki(dir.path(), "first");
    let served = Pki {
        ca: first.ca.clone(),
        cert: dir.path().join("served-cert.pem"),
        key: dir.path().join("served-key.pem"),
    };
    std::fs::copy(&first.cert, &served.cert).unwrap();
    std::fs::copy(&first.key, &served.key).unwrap();
    let server = launch(&served);
    assert_eq!(curl(&server, &first.ca, "/healthz", &[]).0, 0);

    let second = write_pki(dir.path(), "second");
    std::fs::copy(&second.cert, &served.cert).unwrap();
    std::fs::copy(&second.key, &served.key).unwrap();
    server.signal(libc::SIGHUP);
    poll_until(
        "the new certificate is served",
        Duration::from_secs(10),
        || (curl(&server, &second.ca, "/healthz", &[]).0 == 0).then_some(()),
    );
    assert_eq!(curl(&server, &first.ca, "/healthz", &[]).0, 60);

    // A broken pair: the third certificate with the second's key.
    let third = write_pki(dir.path(), "third");
    std::fs::copy(&third.cert, &served.cert).unwrap();
    server.signal(libc::SIGHUP);
    poll_until(
        "the refused reload is logged",
        Duration::from_secs(10),
        || server.stderr().contains("not reloaded").then_some(()),
    );
    assert_eq!(curl(&server, &second.ca, "/healthz", &[]).0, 0);
}

/// `https://localhost:<port>`: the name the test certificates carry.
fn https_url(server: &Server) -> String {
    format!("https://localhost:{}", port(server))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The DER of the first certificate in a PEM file.
fn der_of(pem_path: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(pem_path)
        .expect("a PEM certificate")
        .to_vec()
}

/// The client library speaks HTTPS with the same `Trust` as QUIC: trusting
/// the CA (name and chain checked) or pinning the certificate's SHA-256, it
/// creates a SKU, places an order and reads it back from a real node serving
/// TLS. This is what lets buyers' and services' traffic leave plain HTTP.
#[test]
fn the_client_library_places_and_reads_an_order_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path(), "client");
    let server = launch(&pki);
    let ca = std::fs::read(&pki.ca).unwrap();
    let fingerprint = Fingerprint::of_certificate(&der_of(&pki.cert));
    runtime().block_on(async {
        for trust in [Trust::Certificate(ca), Trust::Fingerprint(fingerprint)] {
            let mut config = HttpConfig::new(https_url(&server));
            config.trust = Some(trust.clone());
            config.admin_token = Some(ADMIN_TOKEN.into());
            config.credential = Some(SERVICE_TOKEN.into());
            let client = HttpClient::new(config).expect("an https client");
            let settings = SkuSettings {
                stock: Some(3),
                ..SkuSettings::default()
            };
            client.put_sku("HTTPS-1", settings).await.expect("put_sku");
            let placed = client
                .place(
                    PlaceOrder::new("HTTPS-1", 1, "carol").with_idempotency_key(format!(
                        "https-{}",
                        matches!(trust, Trust::Certificate(_))
                    )),
                )
                .await
                .unwrap_or_else(|error| panic!("place over https with {trust:?}: {error}"));
            let read = client.order(&placed.order.order_id).await.expect("read");
            assert_eq!(read.order_id, placed.order.order_id);
            assert_eq!(read.status, OrderStatus::Reserved);
            assert_eq!(read.customer_id, "carol");
        }
    });
}

/// A certificate the client does not trust (another CA, another pinned
/// fingerprint) ends the call at once with a connect error that says so and
/// sends nothing; a missing trust for an `https://` URL is a config error.
/// Without this, a buyer's client could hand orders and tokens to whoever
/// answers on the path.
#[test]
fn an_untrusted_certificate_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path(), "served");
    let other = write_pki(dir.path(), "other");
    let server = launch(&pki);
    let other_ca = std::fs::read(&other.ca).unwrap();
    let other_fingerprint = Fingerprint::of_certificate(&der_of(&other.cert));
    runtime().block_on(async {
        for trust in [
            Trust::Certificate(other_ca),
            Trust::Fingerprint(other_fingerprint),
        ] {
            let mut config = HttpConfig::new(https_url(&server));
            config.trust = Some(trust.clone());
            config.credential = Some(SERVICE_TOKEN.into());
            let client = HttpClient::new(config).expect("an https client");
            let error = client
                .place(PlaceOrder::new("NOPE", 1, "mallory").with_idempotency_key("k"))
                .await
                .expect_err("an untrusted certificate must be refused");
            let ClientError::Transport(TransportError::Connect(message)) = &error else {
                panic!("{trust:?}: expected a connect error, got {error:?}");
            };
            assert!(message.contains("does not trust"), "{message}");
            assert!(!error.may_have_been_applied(), "{error}");
        }
        let missing = HttpClient::new(HttpConfig::new(https_url(&server)));
        let Err(ClientError::Config(message)) = missing else {
            panic!("https:// without a trust must be a config error");
        };
        assert!(message.contains("trust"), "{message}");
    });
}

/// Longest the load tester's command line may take here before the test
/// fails instead of waiting: far above its own bounds.
const COMMAND_LINE_BOUND: Duration = Duration::from_secs(120);

/// The load tester's `--cert` applies to `https://` targets: a short sale
/// over HTTPS (create SKUs, orders from several buyers, some sold out) ends
/// with its audit passed, and the orders it counts are those the node holds.
#[test]
fn the_load_tester_runs_a_sale_over_https_and_passes_its_audit() {
    let dir = tempfile::tempdir().unwrap();
    let pki = write_pki(dir.path(), "loadtest");
    let server = launch(&pki);
    let report = dir.path().join("report.json");
    let url = https_url(&server);
    let args = vec![
        "flashgate-loadtest".to_owned(),
        "--http".into(),
        url,
        "--cert".into(),
        pki.ca.to_str().unwrap().into(),
        "--create-skus".into(),
        "--admin-token".into(),
        ADMIN_TOKEN.into(),
        "--credential".into(),
        SERVICE_TOKEN.into(),
        "--sku-prefix".into(),
        "tls".into(),
        "--skus".into(),
        "2".into(),
        "--stock".into(),
        "40".into(),
        "--orders".into(),
        "120".into(),
        "--buyers".into(),
        "4".into(),
        "--duration".into(),
        "5".into(),
        "--report-json".into(),
        report.to_str().unwrap().into(),
    ];
    let flags = Flags::try_parse_from(&args).expect("valid flags");
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(cli::execute(&flags, ProgressMode::Off));
    });
    let outcome = outcome
        .recv_timeout(COMMAND_LINE_BOUND)
        .expect("the load tester ends within its bounds");
    assert_eq!(outcome.exit_code, EXIT_PASSED, "{:?}", outcome.errors);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["audit"]["passed"], true, "{json}");
    let acknowledged = json["totals"]["acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 0, "{json}");
    // The node's own counters, read over HTTPS with the client library.
    let mut config = HttpConfig::new(https_url(&server));
    config.trust = Some(Trust::Certificate(std::fs::read(&pki.ca).unwrap()));
    let client = HttpClient::new(config).expect("an https client");
    let held: u64 = runtime().block_on(async {
        let mut held = 0;
        for sku in json["skus"].as_array().expect("the report's SKUs") {
            let name = sku["sku"].as_str().expect("a SKU name");
            let counters = client.sku(name).await.expect("the SKU's counters");
            held += counters.reserved + counters.sold;
        }
        held
    });
    assert_eq!(held, acknowledged, "{json}");

    // The same run without a trust is refused before it sends anything.
    let mut untrusted = args.clone();
    let at = untrusted.iter().position(|arg| arg == "--cert").unwrap();
    untrusted.drain(at..at + 2);
    let flags = Flags::try_parse_from(&untrusted).expect("valid flags");
    let outcome = cli::execute(&flags, ProgressMode::Off);
    assert_eq!(outcome.exit_code, cli::EXIT_CONFIG, "{:?}", outcome.errors);
    assert!(
        outcome
            .errors
            .iter()
            .any(|error| error.contains("https://")),
        "{:?}",
        outcome.errors
    );
}
