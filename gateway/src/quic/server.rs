//! `QuicServer`: the QUIC front end's thread, its tokio runtime, the endpoint and
//! its accept loop, the limits, and the graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flashgate_actors::Node;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, IdleTimeout, Incoming, TransportConfig, VarInt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::connection::serve_connection;
use super::tls::TlsError;
use super::{QuicError, Shared, CLOSE_CONNECTION_LIMIT, CLOSE_SHUTTING_DOWN};
use crate::config::Config;

/// Connections over the limit that may be handshaking at once so that their
/// CONNECTION_CLOSE can carry a reason (QUIC sends a reason only once the
/// handshake is done). Beyond it they are refused without one.
const REFUSALS_IN_PROGRESS_MAX: usize = 64;
/// Longest handshake of a connection that is refused with a reason.
const REFUSAL_HANDSHAKE_MAX: Duration = Duration::from_secs(5);
/// Longest wait, after closing the endpoint, for the CONNECTION_CLOSE frames to
/// go out, so clients learn at once instead of at their idle timeout.
const CLOSE_DRAIN_MAX: Duration = Duration::from_secs(2);
/// Worker threads of the QUIC runtime at most.
const WORKER_THREADS_MAX: usize = 4;

/// Every limit of the QUIC front end; see `Config`'s `quic_*` fields.
#[derive(Clone, Debug)]
pub struct QuicLimits {
    pub frame_bytes_max: usize,
    pub streams_per_connection_max: u32,
    pub connections_max: usize,
    pub in_flight_per_connection_max: usize,
    pub batch_orders_max: usize,
    pub idle_timeout: Duration,
    /// How long in-flight requests may take to finish at shutdown.
    pub shutdown_timeout: Duration,
}

impl QuicLimits {
    pub fn from_config(config: &Config) -> QuicLimits {
        QuicLimits {
            frame_bytes_max: config.quic_frame_bytes_max,
            streams_per_connection_max: config.quic_streams_per_connection_max,
            connections_max: config.quic_connections_max,
            in_flight_per_connection_max: config.quic_in_flight_per_connection_max,
            batch_orders_max: config.quic_batch_orders_max,
            idle_timeout: Duration::from_millis(config.quic_idle_timeout_ms),
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
        }
    }
}

/// A running QUIC front end. Dropping it starts the shutdown without waiting
/// for it; `stop` starts it and waits.
pub struct QuicServer {
    local_addr: SocketAddr,
    shutdown: Arc<watch::Sender<bool>>,
    stopped: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the QUIC front end's graceful shutdown; cheap to clone, callable from
/// any thread, and harmless to call twice.
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl QuicServer {
    /// Binds `addr` and serves QUIC on a thread of its own, with its own tokio
    /// runtime. Returns once the endpoint is bound (or could not be).
    pub async fn start(
        node: Arc<Node>,
        admin_token: String,
        gatekeeper: Arc<crate::auth::Gatekeeper>,
        tls: rustls::ServerConfig,
        addr: SocketAddr,
        limits: QuicLimits,
    ) -> Result<QuicServer, QuicError> {
        let server_config = server_config(tls, &limits)?;
        let shared = Arc::new(Shared {
            node,
            admin_token,
            gatekeeper,
            limits,
        });
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let (bound_sender, bound) = oneshot::channel();
        let (stopped_sender, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("flashgate-quic".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(Config::cores().min(WORKER_THREADS_MAX))
                    .thread_name("flashgate-quic-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = bound_sender.send(Err(QuicError::Thread(error)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let endpoint = match Endpoint::server(server_config, addr)
                        .and_then(|endpoint| Ok((endpoint.local_addr()?, endpoint)))
                    {
                        Ok((local_addr, endpoint)) => {
                            let _ = bound_sender.send(Ok(local_addr));
                            endpoint
                        }
                        Err(source) => {
                            let _ = bound_sender.send(Err(QuicError::Bind {
                                addr: addr.to_string(),
                                source,
                            }));
                            return;
                        }
                    };
                    accept_loop(endpoint, shared, shutdown_receiver).await;
                });
                // Cancels whatever outlived the shutdown deadline.
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = stopped_sender.send(());
            })
            .map_err(QuicError::Thread)?;
        let local_addr = match bound.await {
            Ok(Ok(local_addr)) => local_addr,
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(QuicError::ThreadStopped),
        };
        Ok(QuicServer {
            local_addr,
            shutdown: Arc::new(shutdown),
            stopped: Some(stopped),
            thread: Some(thread),
        })
    }

    /// The bound address (with the actual port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(Arc::clone(&self.shutdown))
    }

    /// Shuts down gracefully and returns once done: no new connections; requests
    /// already read are answered (for at most the shutdown timeout); then every
    /// connection is closed with `CLOSE_SHUTTING_DOWN`.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        if let Some(stopped) = self.stopped.take() {
            if stopped.await.is_err() {
                tracing::error!("the QUIC thread stopped abnormally");
            }
        }
        if let Some(thread) = self.thread.take() {
            // It has signalled its end (or died): joining does not block.
            let _ = thread.join();
        }
    }
}

impl Drop for QuicServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

fn server_config(
    tls: rustls::ServerConfig,
    limits: &QuicLimits,
) -> Result<quinn::ServerConfig, QuicError> {
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|error| QuicError::Tls(TlsError::Config(error.to_string())))?;
    let mut transport = TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(VarInt::from_u32(limits.streams_per_connection_max))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(limits.idle_timeout)
                .map_err(|_| QuicError::IdleTimeout(limits.idle_timeout))?,
        ));
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Accepts connections up to the limit until the shutdown, then drains: refuses
/// new connections, waits (at most the shutdown timeout) for the open ones to
/// answer what they took and close, and closes the endpoint.
async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let limits = &shared.limits;
    let mut connections = JoinSet::new();
    let mut refusals = JoinSet::new();
    // Handed to each connection; `shutdown` itself is borrowed by the select.
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => break,
            Some(_) = connections.join_next() => {}
            Some(_) = refusals.join_next() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                while connections.try_join_next().is_some() {}
                if connections.len() >= limits.connections_max {
                    refuse(incoming, limits.connections_max, &mut refusals);
                } else {
                    connections.spawn(serve_connection(
                        incoming,
                        Arc::clone(&shared),
                        connection_shutdown.clone(),
                    ));
                }
            }
        }
        metrics::gauge!("flashgate_quic_connections").set(connections.len() as f64);
    }

    tracing::info!(
        connections = connections.len(),
        "QUIC: no new connections; finishing in-flight requests"
    );
    refusals.abort_all();
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        loop {
            tokio::select! {
                joined = connections.join_next() => if joined.is_none() { break },
                Some(incoming) = endpoint.accept() => incoming.refuse(),
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "QUIC connections still busy after the shutdown timeout; closing them"
        );
    }
    metrics::gauge!("flashgate_quic_connections").set(0.0);
    endpoint.close(
        VarInt::from_u32(CLOSE_SHUTTING_DOWN),
        b"flashgate is shutting down",
    );
    let _ = tokio::time::timeout(CLOSE_DRAIN_MAX, endpoint.wait_idle()).await;
    tracing::info!("QUIC stopped");
}

/// Refuses a connection over the limit: completes its handshake so that the
/// CONNECTION_CLOSE can say why, unless too many refusals are already under
/// way; then it is refused at once, without a reason.
fn refuse(incoming: Incoming, connections_max: usize, refusals: &mut JoinSet<()>) {
    metrics::counter!("flashgate_quic_connections_refused_total").increment(1);
    tracing::debug!(
        remote = %incoming.remote_address(),
        connections_max,
        "QUIC connection refused: at the connection limit"
    );
    if refusals.len() >= REFUSALS_IN_PROGRESS_MAX {
        incoming.refuse();
        return;
    }
    refusals.spawn(async move {
        let Ok(connecting) = incoming.accept() else {
            return;
        };
        if let Ok(Ok(connection)) = tokio::time::timeout(REFUSAL_HANDSHAKE_MAX, connecting).await {
            let reason = format!(
                "flashgate has its limit of {connections_max} QUIC connections open; retry later or use another node"
            );
            connection.close(VarInt::from_u32(CLOSE_CONNECTION_LIMIT), reason.as_bytes());
        }
    });
}
