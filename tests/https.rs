//! The HTTP API over TLS (`--http-tls-cert`, `--http-tls-key`) against the
//! real binary, driven by curl as a buyer's client would: HTTP/2 and HTTP/1.1
//! negotiated by ALPN, TLS before 1.2 refused, and the certificate read again
//! on SIGHUP (a broken pair is refused and the old one stays).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{poll_until, Launch, Server};
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
