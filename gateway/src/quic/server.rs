//! `QuicServer`: the QUIC front end's thread, its tokio runtime, the endpoint and
//! its accept loop, the limits, and the graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flashgate_actors::Node;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Connection, Endpoint, IdleTimeout, Incoming, TransportConfig, VarInt};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::connection::serve_connection;
use super::tls::TlsError;
use super::{QuicError, Shared, CLOSE_CONNECTION_LIMIT, CLOSE_SHUTTING_DOWN};
use crate::config::Config;

/// Bytes quinn may buffer for one connection attempt the accept loop has not
/// handled yet (packets after the first); the loop handles each at once, so
/// this only needs room for a client's first flight.
const INCOMING_BUFFER_BYTES: u64 = 64 * 1024;
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
    pub handshake_timeout: Duration,
    pub handshakes_max: usize,
    pub handshakes_unvalidated_max: usize,
    pub answer_bytes_per_connection_max: usize,
    pub in_flight_per_connection_max: usize,
    pub batch_orders_max: usize,
    /// Most ids in one `GetOrders`; more is answered `batch_too_large`.
    pub orders_read_max: usize,
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
            handshake_timeout: Duration::from_millis(config.quic_handshake_timeout_ms),
            handshakes_max: config.quic_handshakes_max,
            handshakes_unvalidated_max: config.quic_handshakes_unvalidated_max,
            answer_bytes_per_connection_max: config.quic_answer_bytes_per_connection_max,
            in_flight_per_connection_max: config.quic_in_flight_per_connection_max,
            batch_orders_max: config.quic_batch_orders_max,
            orders_read_max: config.orders_read_max,
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
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        node: Arc<Node>,
        admin_token: String,
        gatekeeper: Arc<crate::auth::Gatekeeper>,
        requests: Arc<crate::request::RequestMetrics>,
        rate_limits: Arc<crate::rate_limit::RateLimits>,
        waiting_rooms: Arc<crate::waiting_room::WaitingRooms>,
        tls: rustls::ServerConfig,
        addr: SocketAddr,
        limits: QuicLimits,
    ) -> Result<QuicServer, QuicError> {
        let server_config = server_config(tls, &limits)?;
        let shared = Arc::new(Shared {
            node,
            admin_token,
            gatekeeper,
            requests,
            rate_limits,
            waiting_rooms,
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
                    // Orders made by one worker's ready tasks reach each shard
                    // as one message, as an HTTP worker's do.
                    .on_thread_start(flashgate_actors::outbox::mark_event_loop_thread)
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
        ))
        // Request bytes a client may send ahead of what the server has read:
        // two frames per stream, so one frame can arrive while the one
        // before it is decoded, and the open streams' worth per connection.
        .stream_receive_window(stream_receive_window(limits))
        .receive_window(connection_receive_window(limits))
        // Answers written but not yet acknowledged, per connection: with the
        // answer budget (`stream.rs`) this bounds what a client that does not
        // read can make the server hold.
        .send_window(limits.answer_bytes_per_connection_max as u64);
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    // Attempts quinn holds for the accept loop: the loop disposes of each at
    // once, so a backlog beyond the handshake limit would only be refused.
    config
        .max_incoming(limits.handshakes_max)
        .incoming_buffer_size(INCOMING_BUFFER_BYTES)
        .incoming_buffer_size_total(INCOMING_BUFFER_BYTES * limits.handshakes_max as u64);
    Ok(config)
}

/// Request bytes one stream may have in flight to the server: two frames.
fn stream_receive_window(limits: &QuicLimits) -> VarInt {
    VarInt::from_u64(2 * limits.frame_bytes_max as u64).unwrap_or(VarInt::MAX)
}

/// Request bytes one connection may have in flight: every open stream's window.
fn connection_receive_window(limits: &QuicLimits) -> VarInt {
    let stream = 2 * limits.frame_bytes_max as u64;
    VarInt::from_u64(stream.saturating_mul(u64::from(limits.streams_per_connection_max)))
        .unwrap_or(VarInt::MAX)
}

/// What to do with a new connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admission {
    /// Start the handshake.
    Handshake,
    /// Send a QUIC Retry: the client must prove it receives at its address.
    Retry,
    /// Refuse at once (CONNECTION_REFUSED): too many handshakes in progress.
    Refuse,
}

/// Handshakes in progress.
#[derive(Clone, Copy, Debug, Default)]
struct Handshakes {
    total: usize,
    /// Of `total`, those from addresses not validated.
    unvalidated: usize,
}

/// Decides a new attempt (pure): refused when `handshakes_max` are in
/// progress; sent a Retry when it comes from an unvalidated address and
/// `handshakes_unvalidated_max` such handshakes are in progress; else its
/// handshake starts. An attempt that comes back with a Retry token has a
/// validated address and is never sent a second Retry.
fn admit(in_progress: Handshakes, address_validated: bool, limits: &QuicLimits) -> Admission {
    if in_progress.total >= limits.handshakes_max {
        Admission::Refuse
    } else if !address_validated && in_progress.unvalidated >= limits.handshakes_unvalidated_max {
        Admission::Retry
    } else {
        Admission::Handshake
    }
}

/// The result of one handshake task.
struct Handshaken {
    connection: Option<Connection>,
    address_validated: bool,
}

/// Runs one handshake to its end, for at most `timeout`; `None` when it failed
/// or took too long (the attempt is then dropped, which closes it).
async fn handshake(incoming: Incoming, timeout: Duration) -> Handshaken {
    let remote = incoming.remote_address();
    let address_validated = incoming.remote_address_validated();
    let connection = match incoming.accept() {
        Ok(connecting) => match tokio::time::timeout(timeout, connecting).await {
            Ok(Ok(connection)) => Some(connection),
            Ok(Err(error)) => {
                tracing::debug!(%remote, %error, "QUIC handshake failed");
                None
            }
            Err(_) => {
                metrics::counter!("flashgate_quic_handshakes_timed_out_total").increment(1);
                tracing::debug!(%remote, ?timeout, "QUIC handshake took too long; dropped");
                None
            }
        },
        Err(error) => {
            tracing::debug!(%remote, %error, "QUIC connection not accepted");
            None
        }
    };
    Handshaken {
        connection,
        address_validated,
    }
}

/// Accepts connections until the shutdown, then drains: refuses new
/// connections, waits (at most the shutdown timeout) for the open ones to
/// answer what they took and close, and closes the endpoint.
///
/// A connection attempt is first a handshake, bounded in number
/// (`handshakes_max`), in time (`handshake_timeout`) and, from unvalidated
/// addresses, by a Retry past `handshakes_unvalidated_max`; only once its
/// handshake is done does it count against `connections_max`. So clients
/// that never finish a handshake (or spoof their address) hold no connection
/// slot, and hold a handshake slot only for the handshake timeout.
async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let limits = &shared.limits;
    let mut connections = JoinSet::new();
    let mut handshakes = JoinSet::new();
    let mut in_progress = Handshakes::default();
    // Handed to each connection; `shutdown` itself is borrowed by the select.
    let connection_shutdown = shutdown.clone();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => break,
            Some(_) = connections.join_next() => {}
            Some(joined) = handshakes.join_next() => {
                // A handshake task never panics and is aborted only at shutdown.
                if let Ok(Handshaken { connection, address_validated }) = joined {
                    in_progress.total -= 1;
                    if !address_validated {
                        in_progress.unvalidated -= 1;
                    }
                    if let Some(connection) = connection {
                        while connections.try_join_next().is_some() {}
                        if connections.len() >= limits.connections_max {
                            refuse(&connection, limits.connections_max);
                        } else {
                            connections.spawn(serve_connection(
                                connection,
                                Arc::clone(&shared),
                                connection_shutdown.clone(),
                            ));
                        }
                    }
                }
            }
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let address_validated = incoming.remote_address_validated();
                match admit(in_progress, address_validated, limits) {
                    Admission::Handshake => {
                        in_progress.total += 1;
                        if !address_validated {
                            in_progress.unvalidated += 1;
                        }
                        handshakes.spawn(handshake(incoming, limits.handshake_timeout));
                    }
                    Admission::Retry => {
                        metrics::counter!("flashgate_quic_retries_total").increment(1);
                        // An unvalidated attempt may always be sent a Retry.
                        if let Err(error) = incoming.retry() {
                            error.into_incoming().refuse();
                        }
                    }
                    Admission::Refuse => {
                        metrics::counter!("flashgate_quic_handshakes_refused_total").increment(1);
                        tracing::debug!(
                            remote = %incoming.remote_address(),
                            handshakes_max = limits.handshakes_max,
                            "QUIC connection refused: too many handshakes in progress"
                        );
                        incoming.refuse();
                    }
                }
            }
        }
        metrics::gauge!("flashgate_quic_connections").set(connections.len() as f64);
        metrics::gauge!("flashgate_quic_handshakes").set(in_progress.total as f64);
    }

    tracing::info!(
        connections = connections.len(),
        "QUIC: no new connections; finishing in-flight requests"
    );
    handshakes.abort_all();
    metrics::gauge!("flashgate_quic_handshakes").set(0.0);
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

/// Closes an established connection over the limit, with a reason (QUIC
/// carries a reason only once the handshake is done).
fn refuse(connection: &Connection, connections_max: usize) {
    metrics::counter!("flashgate_quic_connections_refused_total").increment(1);
    tracing::debug!(
        remote = %connection.remote_address(),
        connections_max,
        "QUIC connection refused: at the connection limit"
    );
    let reason = format!(
        "flashgate has its limit of {connections_max} QUIC connections open; retry later or use another node"
    );
    connection.close(VarInt::from_u32(CLOSE_CONNECTION_LIMIT), reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> QuicLimits {
        QuicLimits::from_config(&Config {
            quic_handshakes_max: 10,
            quic_handshakes_unvalidated_max: 4,
            ..Config::default()
        })
    }

    fn in_progress(total: usize, unvalidated: usize) -> Handshakes {
        Handshakes { total, unvalidated }
    }

    #[test]
    fn unvalidated_addresses_get_a_retry_past_their_share_and_everyone_a_refusal_past_the_limit() {
        let limits = limits();
        assert_eq!(
            admit(in_progress(0, 0), false, &limits),
            Admission::Handshake
        );
        assert_eq!(
            admit(in_progress(3, 3), false, &limits),
            Admission::Handshake
        );
        assert_eq!(admit(in_progress(4, 4), false, &limits), Admission::Retry);
        // A validated address is not held back by the unvalidated ones.
        assert_eq!(
            admit(in_progress(4, 4), true, &limits),
            Admission::Handshake
        );
        assert_eq!(
            admit(in_progress(9, 4), true, &limits),
            Admission::Handshake
        );
        assert_eq!(admit(in_progress(10, 4), true, &limits), Admission::Refuse);
        assert_eq!(admit(in_progress(10, 0), false, &limits), Admission::Refuse);
        let always = QuicLimits {
            handshakes_unvalidated_max: 0,
            ..limits
        };
        assert_eq!(admit(in_progress(0, 0), false, &always), Admission::Retry);
        assert_eq!(
            admit(in_progress(0, 0), true, &always),
            Admission::Handshake
        );
    }
}
