//! TLS for the HTTP API (`--http-tls-cert`, `--http-tls-key`): rustls with
//! its defaults (TLS 1.2 and 1.3, only AEAD suites with forward secrecy),
//! HTTP/2 and HTTP/1.1 offered by ALPN. The certificate is read again on
//! SIGHUP (`reload`): new handshakes get the new one, connections already
//! open keep theirs; a pair that does not load is refused with a log line and
//! the old one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::quic::tls::{load_configured, sha256_hex, TlsError};

/// The certificate every new handshake gets, swapped whole by `reload`.
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Arc::clone(&current))
    }
}

/// The HTTP API's TLS: where its pair is, and the certificate in use.
pub struct HttpTls {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: Arc<CurrentCertificate>,
}

impl HttpTls {
    /// Loads the pair; an error names the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> Result<HttpTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load_configured(cert, key)?;
        let certified = loaded.certified_key(&provider)?;
        Ok(HttpTls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: Arc::new(CurrentCertificate(RwLock::new(Arc::new(certified)))),
        })
    }

    /// Lowercase hex SHA-256 of the leaf certificate in use.
    pub fn fingerprint_sha256(&self) -> String {
        let current = self
            .current
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        current
            .cert
            .first()
            .map_or_else(String::new, |leaf| sha256_hex(leaf.as_ref()))
    }

    /// Reads the pair again and, if it loads, serves it to every new
    /// handshake; returns the new leaf's fingerprint.
    pub fn reload(&self) -> Result<String, TlsError> {
        let loaded = load_configured(&self.cert, &self.key)?;
        let certified = loaded.certified_key(&self.provider)?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(certified);
        Ok(loaded.fingerprint_sha256)
    }

    /// The rustls configuration for the HTTP listener.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| TlsError::Config(error.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&self.current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
