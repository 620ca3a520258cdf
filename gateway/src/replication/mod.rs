//! The replication shell: the QUIC channel between a primary and its standby,
//! on its own thread and tokio runtime. The state it moves lives in
//! `flashgate_actors` (`Node`, `Cluster`); this is sockets, framing, the
//! cluster-secret handshake and timers.
//!
//! # Layout
//! - `wire`: the messages and their framing.
//! - `auth`: the cluster-secret proofs, bound to the TLS session.
//! - `transport`: the QUIC endpoint (listens and dials).
//! - `primary`: serving a dialer: a standby that follows, or a newer primary
//!   that fences this node.
//! - `standby`: following a primary, and fencing an old primary after a
//!   promotion.

mod auth;
mod primary;
mod standby;
mod transport;
mod wire;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flashgate_actors::{Node, NodeError, PromoteReport, Role};
use quinn::Endpoint;
use tokio::sync::{mpsc, oneshot, watch};

pub use transport::TransportError;

/// Entry points for the fuzz targets (fuzz/): the replication channel's pure
/// decoding and proof check, as a session runs them before and after the peer
/// proved the cluster secret. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::auth::{sign, verify_material, DIALER, LISTENER};
    pub use super::wire::{
        decode, decode_handshake, encode, history_from_wire, history_to_wire, Message, NodeInfo,
        Start, WireError, HANDSHAKE_BYTES_MAX, MESSAGE_BYTES_LIMIT, PEER_ADDRESS_BYTES_MAX,
        PRE_AUTH_MESSAGE_BYTES_MAX,
    };
}

/// How a node replicates. Every limit is here.
#[derive(Clone, Debug)]
pub struct ReplicationSettings {
    /// The cluster secret both ends prove.
    pub secret: Vec<u8>,
    /// Where to listen for a standby (and for fencing).
    pub listen: Option<SocketAddr>,
    /// The primary's replication address, for a standby.
    pub follow: Option<String>,
    /// How often a primary sends a heartbeat.
    pub heartbeat: Duration,
    /// Most log bytes in one message.
    pub message_bytes_max: usize,
    /// Log bytes a primary sends ahead of its standby's acknowledgements (the
    /// replication window): it keeps streaming while earlier messages await
    /// their ack, and waits for one past this. One message always may go.
    pub unacked_bytes_max: usize,
    /// Promote this standby after hearing nothing from the primary this long.
    pub auto_promote_after: Option<Duration>,
    /// Listener connections that have not proven the secret yet; more are
    /// refused at once.
    pub unauthenticated_sessions_max: usize,
    /// From a dialer's first packet to its proven secret and follow request.
    pub handshake_timeout: Duration,
}

/// Heartbeats a standby may miss before it reconnects, and answers to them a
/// primary may miss before it drops its standby.
const SILENT_HEARTBEATS_MAX: u32 = 10;
/// How often the standby-loss rules are applied.
const TICK: Duration = Duration::from_millis(50);

enum Control {
    Promote(oneshot::Sender<Result<PromoteReport, NodeError>>),
    /// A standby lost its primary for longer than `auto_promote_after`.
    AutoPromote,
    /// Follow this replication address (after this node was fenced by the
    /// primary there).
    Follow(String),
}

struct Shared {
    node: Arc<Node>,
    settings: ReplicationSettings,
    endpoint: Endpoint,
    control: mpsc::UnboundedSender<Control>,
    /// The current standby session; an older one ends when a newer starts.
    session: AtomicU64,
}

/// The running replication channel.
pub struct Replication {
    control: mpsc::UnboundedSender<Control>,
    shutdown: watch::Sender<bool>,
    local_addr: Option<SocketAddr>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Replication {
    /// Binds the listener (when configured) and starts following (when this
    /// node is not the primary). Returns once bound.
    pub fn start(
        node: Arc<Node>,
        settings: ReplicationSettings,
    ) -> Result<Replication, TransportError> {
        let (control, control_receiver) = mpsc::unbounded_channel();
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let (bound_sender, bound) = std::sync::mpsc::channel();
        let thread_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("flashgate-replication".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = bound_sender.send(Err(TransportError::Tls(error.to_string())));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let endpoint = match transport::endpoint(settings.listen) {
                        Ok(endpoint) => endpoint,
                        Err(error) => {
                            let _ = bound_sender.send(Err(error));
                            return;
                        }
                    };
                    let local = settings.listen.and_then(|_| endpoint.local_addr().ok());
                    let _ = bound_sender.send(Ok(local));
                    let shared = Arc::new(Shared {
                        node,
                        settings,
                        endpoint,
                        control: thread_control,
                        session: AtomicU64::new(0),
                    });
                    run(shared, control_receiver, shutdown_receiver).await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|error| TransportError::Tls(error.to_string()))?;
        let local_addr = bound
            .recv()
            .map_err(|_| TransportError::Tls("the replication thread stopped".into()))??;
        Ok(Replication {
            control,
            shutdown,
            local_addr,
            thread: std::sync::Mutex::new(Some(thread)),
        })
    }

    /// The bound listener address, when listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops following and promotes this standby. See `Node::promote`.
    pub async fn promote(&self) -> Result<PromoteReport, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.control
            .send(Control::Promote(reply))
            .map_err(|_| NodeError::ShuttingDown)?;
        answer.await.map_err(|_| NodeError::ShuttingDown)?
    }

    /// Ends every session and waits for the thread.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// A follower task and how to stop it.
struct Following {
    target: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Following {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn start_following(shared: &Arc<Shared>, target: String) -> Following {
    let (stop, stop_receiver) = watch::channel(false);
    tracing::info!(primary = %target, "following the primary");
    let task = tokio::spawn(standby::follow(
        Arc::clone(shared),
        target.clone(),
        stop_receiver,
    ));
    Following { target, stop, task }
}

async fn run(
    shared: Arc<Shared>,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = shared
        .settings
        .listen
        .is_some()
        .then(|| tokio::spawn(primary::accept(Arc::clone(&shared))));
    let cluster = Arc::clone(shared.node.cluster());
    let mut following: Option<Following> = None;
    let mut fencer: Option<tokio::task::JoinHandle<()>> = None;
    // The primary this node followed last: the one to fence after a promotion.
    let mut followed: Option<String> = None;
    let initial = match cluster.role() {
        Role::Primary => None,
        Role::Standby => shared.settings.follow.clone(),
        Role::Fenced => cluster.primary().and_then(|primary| primary.replication),
    };
    if let Some(target) = initial {
        followed = Some(target.clone());
        following = Some(start_following(&shared, target));
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                cluster.tick();
                publish_metrics(&shared.node);
            }
            command = control.recv() => {
                let Some(command) = command else { break };
                match command {
                    Control::Promote(reply) => {
                        let result = promote(&shared, following.take(), &mut fencer, followed.clone()).await;
                        let _ = reply.send(result);
                    }
                    Control::AutoPromote => {
                        tracing::warn!("AUTO-PROMOTION: the primary has been silent longer than auto_promote_after");
                        if let Err(error) = promote(&shared, following.take(), &mut fencer, followed.clone()).await {
                            tracing::error!(%error, "automatic promotion failed");
                        }
                    }
                    Control::Follow(target) => {
                        if following.as_ref().is_some_and(|f| f.target == target && !f.task.is_finished()) {
                            continue;
                        }
                        if let Some(previous) = following.take() {
                            previous.stop().await;
                        }
                        followed = Some(target.clone());
                        following = Some(start_following(&shared, target));
                    }
                }
            }
        }
    }
    if let Some(following) = following {
        following.stop().await;
    }
    if let Some(fencer) = fencer {
        fencer.abort();
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    shared.endpoint.close(0u32.into(), b"shutting down");
}

async fn promote(
    shared: &Arc<Shared>,
    following: Option<Following>,
    fencer: &mut Option<tokio::task::JoinHandle<()>>,
    followed: Option<String>,
) -> Result<PromoteReport, NodeError> {
    let role = shared.node.cluster().role();
    if role != Role::Standby {
        return Err(NodeError::NotStandby(role.as_str()));
    }
    // Nothing more may arrive from the old primary: stop, and let what was
    // received be written, before the epoch changes.
    if let Some(following) = following {
        following.stop().await;
    }
    let report = shared.node.promote().await?;
    // Moves of orders between shards the old primary left half done.
    tokio::spawn(Arc::clone(&shared.node).resolve_moves_logged());
    if let Some(old) = followed {
        tracing::info!(old_primary = %old, "will fence the old primary whenever it is reachable");
        *fencer = Some(tokio::spawn(standby::fence(Arc::clone(shared), old)));
    }
    Ok(report)
}

fn publish_metrics(node: &Node) {
    let status = node.cluster_status();
    // One series per node with its role and mode as labels (value 1), so a
    // dashboard can show both without decoding numbers.
    for role in [Role::Primary, Role::Standby, Role::Fenced] {
        let current = if role == status.role { 1.0 } else { 0.0 };
        metrics::gauge!("flashgate_cluster_info", "role" => role.as_str(), "mode" => status.replication.as_str())
            .set(current);
    }
    metrics::gauge!("flashgate_log_appended_lsn").set(status.last_lsn as f64);
    metrics::gauge!("flashgate_replication_lag_records").set(status.lag_records as f64);
    metrics::gauge!("flashgate_replication_lag_seconds").set(status.lag.as_secs_f64());
    metrics::gauge!("flashgate_replication_degraded").set(if status.degraded.is_some() {
        1.0
    } else {
        0.0
    });
}
