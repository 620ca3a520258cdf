//! The dialing side of the replication channel: a standby following its
//! primary (catch up, then apply the live log and acknowledge what is durable),
//! and a freshly promoted primary fencing the old one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_actors::{PeerAddress, ReplicaCursor, ReplicaError, Role};
use flashgate_storage::Lsn;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{mpsc, watch};

use super::auth::CLOSE_AUTH_FAILED;
use super::transport::SERVER_NAME;
use super::wire::{
    self, history_from_wire, history_to_wire, Message, NodeInfo, Start, WireError,
    HANDSHAKE_BYTES_MAX,
};
use super::{auth, Control, Shared, SILENT_HEARTBEATS_MAX};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait between connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(50);
/// The longest wait between attempts the dialed node refused (a wrong secret,
/// another cluster, not the primary): mostly a configuration to fix, so fewer
/// attempts and log lines, yet a refusal of the moment (a node between roles
/// in a switchover) still clears within a few seconds.
const REFUSED_RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a new primary tries to reach the old one to fence it.
const FENCE_RETRY: Duration = Duration::from_millis(500);
/// Replicated batches waiting for the disk; beyond it the stream waits (and
/// QUIC flow control holds the primary back).
const BATCHES_QUEUED_MAX: usize = 64;
/// The most log bytes written under one barrier.
const WRITE_BYTES_MAX: usize = 16 << 20;

/// How one session ended.
enum Ended {
    Stopped,
    /// The dialed node named another primary.
    Redirect(String),
    /// Connect again at once (after discarding a tail).
    Reconnect,
    Failed(String),
    /// The dialed node refused this one (another cluster, a wrong secret).
    Refused(String),
    /// This standby cannot go on (its state does not match the primary's log).
    Fatal(String),
}

impl Ended {
    /// Why a handshake ended the session, as text.
    fn into_reason(self) -> String {
        match self {
            Ended::Failed(reason) | Ended::Refused(reason) | Ended::Fatal(reason) => reason,
            Ended::Redirect(next) => format!("redirected to {next}"),
            Ended::Reconnect => "asked to reconnect".into(),
            Ended::Stopped => "stopped".into(),
        }
    }
}

/// What the follower loop remembers across sessions.
struct FollowState {
    /// When the primary was last heard from (`None` until it first was).
    heard_at: Option<Instant>,
    /// Whether the primary runs sync with `block`, the only mode in which an
    /// automatic promotion is safe.
    primary_blocks: bool,
}

/// Follows `target` until stopped: connects, catches up, applies the live log,
/// reconnects after a failure.
pub async fn follow(shared: Arc<Shared>, mut target: String, mut stop: watch::Receiver<bool>) {
    let mut state = FollowState {
        heard_at: None,
        primary_blocks: false,
    };
    let mut retry = RETRY_MIN;
    let mut last_failure = String::new();
    // Whether the last attempt was refused (its retries back off further).
    let mut refused;
    loop {
        if *stop.borrow() {
            return;
        }
        match session(&shared, &target, &mut stop, &mut state).await {
            Ended::Stopped => return,
            Ended::Redirect(next) => {
                tracing::info!(from = %target, to = %next, "the primary moved; following it");
                target = next;
                continue;
            }
            Ended::Reconnect => {
                retry = RETRY_MIN;
                continue;
            }
            Ended::Failed(reason) => {
                refused = false;
                note_failure(&shared, &target, "failed", &reason);
                if reason != last_failure {
                    tracing::warn!(primary = %target, %reason, "not following the primary; retrying");
                    last_failure = reason;
                }
            }
            Ended::Refused(reason) => {
                refused = true;
                note_failure(&shared, &target, "refused", &reason);
                if reason != last_failure {
                    tracing::error!(primary = %target, %reason, retry_max = ?REFUSED_RETRY_MAX, "REFUSED by the primary: this standby does not follow it; fix the configuration (cluster secret, data dir of this cluster); retrying with back-off");
                    last_failure = reason;
                }
                retry = retry.max(RETRY_MAX);
            }
            Ended::Fatal(reason) => {
                tracing::error!(primary = %target, %reason, "this standby stops following: its state cannot take the primary's log; restart it with an empty data dir to resync");
                return;
            }
        }
        if should_auto_promote(&shared, &state) {
            let _ = shared.control.send(Control::AutoPromote);
            return;
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        let cap = if refused {
            REFUSED_RETRY_MAX
        } else {
            RETRY_MAX
        };
        retry = (retry * 2).min(cap);
    }
}

/// Records a failed attempt to follow `target`: shown in `/v1/cluster`
/// (`peer.last_failure`, `peer.failures`) and counted by `kind` (`failed`:
/// no connection or a broken session; `refused`: the primary refused this
/// node).
fn note_failure(shared: &Shared, target: &str, kind: &'static str, reason: &str) {
    metrics::counter!("flashgate_replication_follow_failures_total", "kind" => kind).increment(1);
    shared.node.cluster().upstream_update(|upstream| {
        upstream.address = Some(target.to_owned());
        upstream.last_failure = Some(reason.to_owned());
        upstream.failures += 1;
    });
}

fn should_auto_promote(shared: &Shared, state: &FollowState) -> bool {
    let Some(after) = shared.settings.auto_promote_after else {
        return false;
    };
    state.primary_blocks
        && shared.node.cluster().role() == Role::Standby
        && state.heard_at.is_some_and(|heard| heard.elapsed() >= after)
}

async fn connect(shared: &Shared, target: &str) -> Result<Connection, String> {
    let addr = tokio::net::lookup_host(target)
        .await
        .map_err(|error| format!("cannot resolve {target}: {error}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to no address"))?;
    let connecting = shared
        .endpoint
        .connect(addr, SERVER_NAME)
        .map_err(|error| error.to_string())?;
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!(
            "no answer from {target} within {CONNECT_TIMEOUT:?}"
        )),
    }
}

/// Opens the session's stream and exchanges cluster-secret proofs.
async fn handshake(
    shared: &Shared,
    connection: &Connection,
    target: &str,
) -> Result<(SendStream, RecvStream), Ended> {
    let failed = |error: &dyn std::fmt::Display| Ended::Failed(error.to_string());
    let (mut send, mut recv) = connection.open_bi().await.map_err(|error| failed(&error))?;
    let secret = &shared.settings.secret;
    let proof = auth::proof(secret, auth::DIALER, connection)
        .ok_or_else(|| failed(&"no keying material on this connection"))?;
    wire::send(&mut send, &Message::Hello { proof })
        .await
        .map_err(|error| failed(&error))?;
    let answer = wire::receive_within(&mut recv, CONNECT_TIMEOUT, "hello").await;
    match answer {
        Ok(Message::Hello { proof })
            if auth::verify(secret, auth::LISTENER, connection, &proof) =>
        {
            Ok((send, recv))
        }
        Ok(_) => {
            tracing::error!(peer = %target, "REFUSED the node at {target}: it did not prove the cluster secret");
            connection.close(CLOSE_AUTH_FAILED.into(), b"wrong cluster secret");
            Err(Ended::Refused(format!(
                "{target} did not prove the cluster secret"
            )))
        }
        _ => match connection.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(close))
                if close.error_code == CLOSE_AUTH_FAILED.into() =>
            {
                tracing::error!(peer = %target, "the node at {target} refused this node's cluster secret");
                Err(Ended::Refused(format!(
                    "{target} refused this node's cluster secret"
                )))
            }
            Some(reason) => Err(failed(&reason)),
            None => Err(failed(&format!("{target} did not answer the handshake"))),
        },
    }
}

fn follow_request(shared: &Shared, is_primary: bool) -> Result<Message, String> {
    let node = &shared.node;
    let state = node.follower_state().map_err(|error| error.to_string())?;
    Ok(Message::Follow {
        node: NodeInfo::from(node.cluster().advertise()),
        is_primary,
        epoch: state.epoch,
        cluster_id: state.cluster_id,
        last_lsn: state.last_lsn,
        history: history_to_wire(&state.history),
        empty: state.empty,
    })
}

async fn session(
    shared: &Arc<Shared>,
    target: &str,
    stop: &mut watch::Receiver<bool>,
    state: &mut FollowState,
) -> Ended {
    let connection = match connect(shared, target).await {
        Ok(connection) => connection,
        Err(reason) => return Ended::Failed(reason),
    };
    let ended = follow_on(shared, &connection, target, stop, state).await;
    connection.close(0u32.into(), b"done");
    shared
        .node
        .cluster()
        .upstream_update(|upstream| upstream.connected = false);
    ended
}

async fn follow_on(
    shared: &Arc<Shared>,
    connection: &Connection,
    target: &str,
    stop: &mut watch::Receiver<bool>,
    state: &mut FollowState,
) -> Ended {
    let node = &shared.node;
    let (mut send, mut recv) = match handshake(shared, connection, target).await {
        Ok(stream) => stream,
        Err(ended) => return ended,
    };
    let request = match follow_request(shared, false) {
        Ok(request) => request,
        Err(reason) => return Ended::Failed(reason),
    };
    if let Err(error) = wire::send(&mut send, &request).await {
        return Ended::Failed(error.to_string());
    }
    let answer = match wire::receive(&mut recv, wire::MESSAGE_BYTES_LIMIT).await {
        Ok(answer) => answer,
        Err(error) => return Ended::Failed(error.to_string()),
    };
    let (epoch, cluster_id, history, primary, start) = match answer {
        Message::Welcome {
            epoch,
            cluster_id,
            history,
            primary,
            replication,
            standby_loss,
            start,
        } => {
            state.primary_blocks = replication == "sync" && standby_loss == "block";
            if shared.settings.auto_promote_after.is_some() && !state.primary_blocks {
                tracing::warn!(%replication, %standby_loss, "automatic promotion is off: the primary does not run sync replication with standby_loss = block, so it may acknowledge orders this standby lacks");
            }
            (epoch, cluster_id, history, primary, start)
        }
        Message::Refused {
            reason, primary, ..
        } => {
            let next = primary
                .and_then(|primary| primary.replication)
                .filter(|next| next != target);
            return match next {
                Some(next) => Ended::Redirect(next),
                None => Ended::Refused(format!("{target} refused: {reason}")),
            };
        }
        other => return Ended::Failed(format!("unexpected {} from {target}", other.name())),
    };
    state.heard_at = Some(Instant::now());
    match start {
        Start::DiscardAfter { keep_through } => {
            return match node.discard_tail(keep_through).await {
                Ok(_) => Ended::Reconnect,
                Err(error) => Ended::Fatal(error.to_string()),
            };
        }
        Start::Checkpoint {
            covers_lsn,
            chunk_count,
        } => {
            let mut chunks = Vec::with_capacity(chunk_count as usize);
            for _ in 0..chunk_count {
                match wire::receive(&mut recv, wire::MESSAGE_BYTES_LIMIT).await {
                    Ok(Message::CheckpointChunk { bytes }) => chunks.push(bytes),
                    Ok(other) => {
                        return Ended::Failed(format!(
                            "unexpected {} in a checkpoint",
                            other.name()
                        ))
                    }
                    Err(error) => return Ended::Failed(error.to_string()),
                }
            }
            tracing::info!(
                covers_lsn,
                chunks = chunks.len(),
                "installing the primary's checkpoint"
            );
            if let Err(error) = node.install_checkpoint(covers_lsn, chunks).await {
                return Ended::Fatal(error.to_string());
            }
        }
        Start::Log => {}
    }
    let adopting = Arc::clone(node);
    let history = history_from_wire(&history);
    let primary = PeerAddress::from(primary);
    let adopted = tokio::task::spawn_blocking(move || {
        adopting.adopt_primary(cluster_id, epoch, &history, primary)
    })
    .await;
    match adopted {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Ended::Fatal(error.to_string()),
        Err(error) => return Ended::Failed(error.to_string()),
    }
    node.cluster().upstream_update(|upstream| {
        upstream.connected = true;
        upstream.address = Some(target.to_owned());
        upstream.heard_at = Some(Instant::now());
        upstream.last_failure = None;
        upstream.failures = 0;
    });
    tracing::info!(primary = %target, epoch, from_lsn = node.progress().appended_lsn(), "following the primary");
    apply_stream(shared, send, recv, stop, state).await
}

/// The live part of a session: entries go to a writer thread (disk, then the
/// shards), its durable LSNs go back as acknowledgements.
async fn apply_stream(
    shared: &Arc<Shared>,
    mut send: SendStream,
    recv: RecvStream,
    stop: &mut watch::Receiver<bool>,
    state: &mut FollowState,
) -> Ended {
    let node = Arc::clone(&shared.node);
    let cluster = Arc::clone(node.cluster());
    let (batches, batch_receiver) = mpsc::channel::<Vec<(Lsn, Vec<u8>)>>(BATCHES_QUEUED_MAX);
    let (acks, mut ack_receiver) = mpsc::unbounded_channel::<Result<Lsn, ReplicaError>>();
    let writer_node = Arc::clone(&node);
    let writer = std::thread::Builder::new()
        .name("flashgate-replica".into())
        .spawn(move || write_batches(writer_node, batch_receiver, acks));
    let writer = match writer {
        Ok(writer) => writer,
        Err(error) => return Ended::Failed(error.to_string()),
    };
    let (messages, mut message_receiver) = mpsc::channel(BATCHES_QUEUED_MAX);
    let heard = Arc::new(Heard::new());
    let reader = tokio::spawn(read_messages(
        recv,
        messages,
        batches.clone(),
        Arc::clone(&heard),
    ));
    let heartbeat = shared.settings.heartbeat;
    let mut silence_max = heartbeat * SILENT_HEARTBEATS_MAX;
    if let Some(after) = shared.settings.auto_promote_after {
        silence_max = silence_max.min(after);
    }
    let mut check = tokio::time::interval(heartbeat);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ended = loop {
        tokio::select! {
            _ = stop.changed() => break Ended::Stopped,
            message = message_receiver.recv() => match message {
                Some(Ok(Message::Heartbeat { durable_lsn, .. })) => {
                    state.heard_at = Some(Instant::now());
                    let own = node.progress().durable_lsn();
                    cluster.upstream_durable(durable_lsn, own);
                    // Answered, so the primary hears a stalled standby's
                    // silence as fast as this side hears the primary's.
                    if let Err(error) = wire::send(&mut send, &Message::Ack { durable_lsn: own }).await {
                        break Ended::Failed(error.to_string());
                    }
                }
                Some(Ok(other)) => break Ended::Failed(format!("unexpected {} from the primary", other.name())),
                Some(Err(error)) => break Ended::Failed(error.to_string()),
                None => break Ended::Failed("the primary ended the session".into()),
            },
            ack = ack_receiver.recv() => match ack {
                Some(Ok(lsn)) => {
                    cluster.upstream_durable(cluster.upstream().durable_lsn, lsn);
                    if let Err(error) = wire::send(&mut send, &Message::Ack { durable_lsn: lsn }).await {
                        break Ended::Failed(error.to_string());
                    }
                }
                Some(Err(error)) => break Ended::Fatal(error.to_string()),
                None => break Ended::Failed("the replica writer stopped".into()),
            },
            _ = check.tick() => {
                state.heard_at = state.heard_at.max(heard.at());
                if let Some(reason) = cluster.replica_failure() {
                    break Ended::Fatal(reason.to_owned());
                }
                if state.heard_at.is_some_and(|heard| heard.elapsed() >= silence_max) {
                    break Ended::Failed(format!("no word from the primary for {silence_max:?}"));
                }
            }
        }
    };
    reader.abort();
    state.heard_at = state.heard_at.max(heard.at());
    // Everything received is written before the session counts as over: a
    // promotion right after must see all of it.
    drop(batches);
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    ended
}

/// When the reader last received log entries from the primary.
#[derive(Debug)]
struct Heard {
    since: Instant,
    /// Milliseconds after `since`, plus one; 0 while nothing was received.
    at_ms: std::sync::atomic::AtomicU64,
}

impl Heard {
    fn new() -> Heard {
        Heard {
            since: Instant::now(),
            at_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn heard_now(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.at_ms
            .fetch_max(ms + 1, std::sync::atomic::Ordering::AcqRel);
    }

    fn at(&self) -> Option<Instant> {
        match self.at_ms.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            ms => Some(self.since + Duration::from_millis(ms - 1)),
        }
    }
}

/// Reads the primary's messages: log entries go straight to the replica
/// writer (`batches`, bounded: a full queue holds the stream back), the rest
/// to the session's loop.
async fn read_messages(
    mut recv: RecvStream,
    messages: mpsc::Sender<Result<Message, WireError>>,
    batches: mpsc::Sender<Vec<(Lsn, Vec<u8>)>>,
    heard: Arc<Heard>,
) {
    loop {
        let result = match wire::receive(&mut recv, wire::MESSAGE_BYTES_LIMIT).await {
            Ok(Message::Entries { entries, .. }) => {
                heard.heard_now();
                if batches.send(entries).await.is_ok() {
                    continue;
                }
                Err(WireError::Io("the replica writer stopped".into()))
            }
            other => other,
        };
        let stop = result.is_err();
        if messages.send(result).await.is_err() || stop {
            return;
        }
    }
}

/// The replica writer thread: takes what is queued, writes it under one
/// barrier, reports the durable LSN at once (to be acknowledged), then hands
/// the records to the shards while the next batch gathers.
fn write_batches(
    node: Arc<flashgate_actors::Node>,
    mut batches: mpsc::Receiver<Vec<(Lsn, Vec<u8>)>>,
    acks: mpsc::UnboundedSender<Result<Lsn, ReplicaError>>,
) {
    let mut cursor = ReplicaCursor::default();
    while let Some(mut entries) = batches.blocking_recv() {
        let mut bytes: usize = entries.iter().map(|(_, entry)| entry.len()).sum();
        while bytes < WRITE_BYTES_MAX {
            let Ok(more) = batches.try_recv() else { break };
            bytes += more.iter().map(|(_, entry)| entry.len()).sum::<usize>();
            entries.extend(more);
        }
        let applied = node
            .replicate_write(entries, &mut cursor)
            .and_then(|replicated| {
                if acks.send(Ok(replicated.last_lsn())).is_err() {
                    return Err(ReplicaError::ShuttingDown);
                }
                node.apply_replicated(replicated)
            });
        if let Err(error) = applied {
            let _ = acks.send(Err(error));
            return;
        }
    }
}

/// After a promotion: reach the old primary and tell it about the new epoch,
/// so it never takes another order. Retries until it is reached.
pub async fn fence(shared: Arc<Shared>, old: String) {
    loop {
        if shared.node.cluster().role() != Role::Primary {
            return;
        }
        match fence_once(&shared, &old).await {
            Ok(()) => return,
            Err(reason) => {
                tracing::debug!(old_primary = %old, %reason, "old primary not fenced yet")
            }
        }
        tokio::time::sleep(FENCE_RETRY).await;
    }
}

async fn fence_once(shared: &Arc<Shared>, old: &str) -> Result<(), String> {
    let connection = connect(shared, old).await?;
    let result = async {
        let (mut send, mut recv) = handshake(shared, &connection, old)
            .await
            .map_err(Ended::into_reason)?;
        wire::send(&mut send, &follow_request(shared, true)?)
            .await
            .map_err(|error| error.to_string())?;
        match wire::receive(&mut recv, HANDSHAKE_BYTES_MAX).await {
            Ok(Message::Fenced { epoch }) => {
                tracing::warn!(old_primary = %old, old_epoch = epoch, "fenced the old primary: it takes no more orders");
                Ok(())
            }
            Ok(Message::Refused { reason, epoch, primary }) => {
                let own = shared.node.cluster().epoch();
                if epoch > own {
                    // The other node is newer: this one is the stale primary.
                    let primary = primary.map(PeerAddress::from).unwrap_or_default();
                    let target = primary.replication.clone();
                    let node = Arc::clone(&shared.node);
                    let fenced = tokio::task::spawn_blocking(move || node.fence(epoch, primary)).await;
                    if matches!(fenced, Ok(Ok(true))) {
                        if let Some(target) = target {
                            let _ = shared.control.send(Control::Follow(target));
                        }
                    }
                }
                tracing::info!(old_primary = %old, %reason, "the old primary is not a stale primary");
                Ok(())
            }
            Ok(other) => Err(format!("unexpected {}", other.name())),
            Err(error) => Err(error.to_string()),
        }
    }
    .await;
    connection.close(0u32.into(), b"done");
    result
}
