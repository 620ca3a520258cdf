//! `Trust`: which server certificate the QUIC and HTTPS clients accept, and
//! the rustls configurations that enforce it. Every verifier here still checks the
//! handshake signatures with the ring provider's algorithms, so the server must
//! hold the private key of the certificate it shows.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use flashgate_protocol::ALPN;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::ClientError;

/// Which certificate the server must present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// One or more certificates, PEM (`-----BEGIN CERTIFICATE-----` blocks) or
    /// a single DER certificate. The server's certificate must either be one of
    /// them byte for byte (pinning: its name and validity dates are not
    /// checked), or chain to one of them as a CA, in which case name, validity
    /// and chain are checked as a browser would.
    Certificate(Vec<u8>),
    /// The SHA-256 of the server certificate's DER, as
    /// `flashgate serve` prints it (`QUIC certificate PATH sha256 HEX`).
    Fingerprint(Fingerprint),
    /// INSECURE: accepts any certificate, so anyone on the network path can
    /// impersonate the server and read or change every order. Only for a
    /// throwaway local test; never with real customers or a real admin token.
    InsecureAcceptAnyCertificate,
}

/// A SHA-256 certificate fingerprint. Parses from 64 hex digits (either case,
/// optionally `:`-separated as `openssl x509 -fingerprint -sha256` prints it)
/// and displays as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Fingerprint {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl FromStr for Fingerprint {
    type Err = ClientError;

    fn from_str(text: &str) -> Result<Fingerprint, ClientError> {
        let invalid = || {
            ClientError::Config(format!(
                "fingerprint {text:?}: expected a SHA-256 as 64 hex digits"
            ))
        };
        let digits: Vec<u8> = text.trim().bytes().filter(|byte| *byte != b':').collect();
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            *byte = high << 4 | low;
        }
        Ok(Fingerprint(bytes))
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The TLS 1.3 client configuration for `trust`, offering the flashgate ALPN.
pub(crate) fn client_tls_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier(trust, &provider)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| ClientError::Config(format!("TLS 1.3 with ring: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The ALPN protocol the HTTPS client offers: its transport speaks HTTP/1.1.
pub(crate) const HTTP_1_1_ALPN: &[u8] = b"http/1.1";

/// The HTTPS client configuration for `trust`: TLS 1.3 or 1.2 with the ring
/// provider's suites only (all AEAD with forward secrecy: no CBC, RC4 or
/// static RSA key exchange), offering HTTP/1.1 by ALPN.
pub(crate) fn https_tls_config(trust: &Trust) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier(trust, &provider)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| ClientError::Config(format!("TLS 1.3/1.2 with ring: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![HTTP_1_1_ALPN.to_vec()];
    Ok(config)
}

/// The certificate verifier that enforces `trust`.
fn verifier(
    trust: &Trust,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, ClientError> {
    let algorithms = provider.signature_verification_algorithms;
    let verifier = match trust {
        Trust::Certificate(bytes) => Verifier::certificates(bytes, provider)?,
        Trust::Fingerprint(fingerprint) => Verifier {
            policy: Policy::Fingerprint(*fingerprint),
            algorithms,
        },
        Trust::InsecureAcceptAnyCertificate => {
            tracing::warn!(
                "certificate verification is OFF (Trust::InsecureAcceptAnyCertificate): \
                 anyone on the path can impersonate the server"
            );
            Verifier {
                policy: Policy::AnyCertificate,
                algorithms,
            }
        }
    };
    Ok(Arc::new(verifier))
}

/// Reads `Trust::Certificate`'s bytes: PEM blocks or one DER certificate.
fn parse_certificates(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let is_pem = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
    if !is_pem {
        return Ok(vec![CertificateDer::from(bytes.to_vec())]);
    }
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ClientError::Config(format!("trusted certificate PEM: {error}")))?;
    if certificates.is_empty() {
        return Err(ClientError::Config(
            "trusted certificate PEM holds no CERTIFICATE block".into(),
        ));
    }
    Ok(certificates)
}

/// The server showed a certificate whose SHA-256 is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the server's certificate has SHA-256 {found}, not the trusted {expected}")]
struct FingerprintMismatch {
    expected: Fingerprint,
    found: Fingerprint,
}

/// Which certificate a server may show. Whatever the policy, the handshake's
/// signatures are checked with the provider's algorithms.
#[derive(Debug)]
enum Policy {
    /// `Trust::Certificate`: the exact certificate, or one it issued.
    Certificates {
        pinned: Vec<CertificateDer<'static>>,
        chain: Arc<WebPkiServerVerifier>,
    },
    /// `Trust::Fingerprint`: the end-entity certificate's SHA-256 must match.
    /// The name and validity dates are not checked: the fingerprint names one
    /// certificate, which is stronger than both.
    Fingerprint(Fingerprint),
    /// `Trust::InsecureAcceptAnyCertificate`: any certificate at all.
    AnyCertificate,
}

#[derive(Debug)]
struct Verifier {
    policy: Policy,
    algorithms: WebPkiSupportedAlgorithms,
}

impl Verifier {
    fn certificates(bytes: &[u8], provider: &Arc<CryptoProvider>) -> Result<Verifier, ClientError> {
        let pinned = parse_certificates(bytes)?;
        let mut roots = RootCertStore::empty();
        for certificate in &pinned {
            roots.add(certificate.clone()).map_err(|error| {
                ClientError::Config(format!(
                    "trusted certificate is not a valid X.509 certificate: {error}"
                ))
            })?;
        }
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|error| ClientError::Config(format!("trusted certificate: {error}")))?;
        Ok(Verifier {
            policy: Policy::Certificates { pinned, chain },
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.policy {
            Policy::Certificates { pinned, chain } => {
                if pinned
                    .iter()
                    .any(|pinned| pinned.as_ref() == end_entity.as_ref())
                {
                    return Ok(ServerCertVerified::assertion());
                }
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Policy::Fingerprint(expected) => {
                let found = Fingerprint::of_certificate(end_entity.as_ref());
                if found == *expected {
                    return Ok(ServerCertVerified::assertion());
                }
                let mismatch = FingerprintMismatch {
                    expected: *expected,
                    found,
                };
                Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                    OtherError(Arc::new(mismatch)),
                )))
            }
            Policy::AnyCertificate => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn fingerprints_parse_from_hex_and_print_lowercase() {
        let fingerprint: Fingerprint = HEX.parse().unwrap();
        assert_eq!(fingerprint.0[0], 0x00);
        assert_eq!(fingerprint.0[1], 0x11);
        assert_eq!(fingerprint.0[31], 0xff);
        assert_eq!(fingerprint.to_string(), HEX);
        let upper: Fingerprint = HEX.to_ascii_uppercase().parse().unwrap();
        assert_eq!(upper, fingerprint);
        let colons = HEX
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(colons.parse::<Fingerprint>().unwrap(), fingerprint);
        assert_eq!(
            format!(" {HEX}\n").parse::<Fingerprint>().unwrap(),
            fingerprint
        );
    }

    #[test]
    fn bad_fingerprints_are_config_errors() {
        for bad in [
            "",
            "abc",
            &HEX[..62],
            &format!("{HEX}00"),
            &HEX.replace('a', "g"),
        ] {
            assert!(
                matches!(bad.parse::<Fingerprint>(), Err(ClientError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_der() {
        // SHA-256 of the empty input.
        assert_eq!(
            Fingerprint::of_certificate(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn only_the_pinned_fingerprint_passes() {
        let certificate = CertificateDer::from(b"not even a certificate".to_vec());
        let name = ServerName::try_from("localhost").unwrap();
        let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
        let verifier = Verifier {
            policy: Policy::Fingerprint(Fingerprint::of_certificate(certificate.as_ref())),
            algorithms,
        };
        assert!(verifier
            .verify_server_cert(&certificate, &[], &name, &[], UnixTime::now())
            .is_ok());
        let other = Verifier {
            policy: Policy::Fingerprint(HEX.parse().unwrap()),
            algorithms,
        };
        let error = other
            .verify_server_cert(&certificate, &[], &name, &[], UnixTime::now())
            .unwrap_err();
        assert!(error.to_string().contains(HEX), "{error}");
    }

    #[test]
    fn certificate_trust_needs_a_real_certificate() {
        assert!(matches!(
            client_tls_config(&Trust::Certificate(b"garbage".to_vec())),
            Err(ClientError::Config(_))
        ));
        assert!(matches!(
            client_tls_config(&Trust::Certificate(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec()
            )),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn configs_offer_the_flashgate_alpn() {
        let config = client_tls_config(&Trust::Fingerprint(HEX.parse().unwrap())).unwrap();
        assert_eq!(config.alpn_protocols, vec![ALPN.to_vec()]);
    }

    #[test]
    fn https_configs_offer_http11_and_only_aead_suites() {
        let config = https_tls_config(&Trust::Fingerprint(HEX.parse().unwrap())).unwrap();
        assert_eq!(config.alpn_protocols, vec![HTTP_1_1_ALPN.to_vec()]);
        let suites = &config.crypto_provider().cipher_suites;
        assert!(!suites.is_empty());
        for suite in suites {
            let name = format!("{:?}", suite.suite());
            assert!(
                name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                "{name} is not an AEAD suite"
            );
        }
    }
}
