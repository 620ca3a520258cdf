//! The replication channel's QUIC endpoint: a throwaway self-signed certificate
//! for TLS 1.3 encryption, a client that accepts any certificate (identity is
//! proven by the cluster secret, see `auth`), the replication ALPN, and windows
//! large enough for a catch-up stream where one is received (the dialer).
//!
//! The listener only ever receives small messages (a hello, a follow request,
//! acknowledgements), so its receive windows stay small, one bidirectional
//! stream is all a dialer may open, and its send window is small until the
//! dialer has proven the secret (`open_send_window`): a connection that has
//! proven nothing costs the listener little.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, Endpoint, ServerConfig, TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The ALPN id of the replication channel.
pub const ALPN: &[u8] = b"flashgate-replication/1";
/// The server name a dialer asks for (the certificate is not checked by name).
pub const SERVER_NAME: &str = "flashgate-replication";
/// A connection silent this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Flow-control windows: a catch-up stream of several MiB in flight.
const STREAM_WINDOW_BYTES: u32 = 32 << 20;
/// The listener's receive windows: room for the largest message it accepts
/// (`wire::HANDSHAKE_BYTES_MAX`, an acknowledgement) with its length prefix.
const LISTENER_RECEIVE_WINDOW_BYTES: u32 = 2 * super::wire::HANDSHAKE_BYTES_MAX as u32;
/// The listener's send window until the dialer has proven the secret: its
/// hello, with room.
const LISTENER_SEND_WINDOW_PRE_AUTH_BYTES: u64 = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot set up replication TLS: {0}")]
    Tls(String),
    #[error("cannot listen for replication on {addr}: {source}; pick a free address with --replication-addr")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The listener's transport: small receive windows, one stream, a small send
/// window until `open_send_window`.
fn listener_transport() -> Arc<TransportConfig> {
    let mut transport = base_transport();
    transport
        .stream_receive_window(VarInt::from_u32(LISTENER_RECEIVE_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(LISTENER_RECEIVE_WINDOW_BYTES))
        .send_window(LISTENER_SEND_WINDOW_PRE_AUTH_BYTES)
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_concurrent_bidi_streams(VarInt::from_u32(1));
    Arc::new(transport)
}

/// Lets a listener's connection send a catch-up at full speed, once its dialer
/// has proven the secret.
pub fn open_send_window(connection: &quinn::Connection) {
    connection.set_send_window(u64::from(STREAM_WINDOW_BYTES));
}

/// The dialer's transport: windows for a catch-up stream.
fn dialer_transport() -> Arc<TransportConfig> {
    let mut transport = base_transport();
    transport
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES))
        .send_window(u64::from(STREAM_WINDOW_BYTES))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_concurrent_bidi_streams(VarInt::from_u32(2));
    Arc::new(transport)
}

fn base_transport() -> TransportConfig {
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            IDLE_TIMEOUT
                .try_into()
                .expect("10 s is a valid idle timeout"),
        ))
        .keep_alive_interval(Some(Duration::from_secs(2)));
    transport
}

fn server_config() -> Result<ServerConfig, TransportError> {
    let generated = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
        .map_err(|error| TransportError::Tls(error.to_string()))?;
    let chain = vec![CertificateDer::from(generated.cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TransportError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|error| TransportError::Tls(error.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicServerConfig::try_from(tls).map_err(|error| TransportError::Tls(error.to_string()))?;
    let mut config = ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(listener_transport());
    Ok(config)
}

fn client_config() -> Result<ClientConfig, TransportError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| TransportError::Tls(error.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|error| TransportError::Tls(error.to_string()))?;
    let mut config = ClientConfig::new(Arc::new(crypto));
    config.transport_config(dialer_transport());
    Ok(config)
}

/// An endpoint that dials, and listens on `listen` when given.
pub fn endpoint(listen: Option<SocketAddr>) -> Result<Endpoint, TransportError> {
    let mut endpoint = match listen {
        Some(addr) => Endpoint::server(server_config()?, addr)
            .map_err(|source| TransportError::Bind { addr, source })?,
        None => {
            let any = SocketAddr::from(([0, 0, 0, 0], 0));
            Endpoint::client(any).map_err(|source| TransportError::Bind { addr: any, source })?
        }
    };
    endpoint.set_default_client_config(client_config()?);
    Ok(endpoint)
}

/// Accepts any certificate but checks the handshake's signatures: the
/// certificate is throwaway, and the cluster-secret proof bound to the session
/// is what authenticates the peer.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

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
