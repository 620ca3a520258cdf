//! The listening side of the replication channel. A dialer first proves the
//! cluster secret; then either it is a standby asking to follow (served if this
//! node is the primary: catch-up from the log or a checkpoint, then the live
//! log), or it is a node of a newer epoch, and this node fences itself.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use flashgate_actors::cluster::Shipment;
use flashgate_actors::retire::checkpoint_for_standby;
use flashgate_actors::{PeerAddress, Role};
use flashgate_storage::{agreed_through, DurableBatch};
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{Notify, Semaphore};

use super::auth::{CLOSE_AUTH_FAILED, CLOSE_HANDSHAKE_FAILED};
use super::wire::{
    self, history_from_wire, history_to_wire, Message, NodeInfo, Start, WireError,
    HANDSHAKE_BYTES_MAX,
};
use super::{auth, transport, Control, Shared, SILENT_HEARTBEATS_MAX};

/// Durable batches the log writer keeps in memory for the streamer
/// (`ShipBuffer`); past it the oldest are dropped and read back from disk
/// when their turn comes.
const SHIP_BUFFER_BYTES_MAX: usize = 32 << 20;
/// Log target of the lines a failed handshake causes: a dialer that proved
/// nothing chooses how many there are, so they are rate-limited
/// (`crate::log_limit`).
const HANDSHAKE_LOG_TARGET: &str = "flashgate::outside::replication_handshake";

/// Why a dialer's handshake failed, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandshakeFailure {
    /// Not done within `handshake_timeout`.
    Timeout,
    /// A message longer than `PRE_AUTH_MESSAGE_BYTES_MAX`.
    TooLarge,
    /// A message that does not decode, or not the one expected.
    Malformed,
    /// A hello without a valid proof of the cluster secret.
    WrongSecret,
    /// The QUIC handshake or the stream failed.
    Connection,
}

impl HandshakeFailure {
    fn as_str(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::TooLarge => "too_large",
            HandshakeFailure::Malformed => "malformed",
            HandshakeFailure::WrongSecret => "wrong_secret",
            HandshakeFailure::Connection => "connection",
        }
    }

    fn of(error: &WireError) -> HandshakeFailure {
        match error {
            WireError::TooLarge(..) => HandshakeFailure::TooLarge,
            WireError::Malformed(_) | WireError::Unexpected(_) => HandshakeFailure::Malformed,
            WireError::Io(_) | WireError::Closed => HandshakeFailure::Connection,
        }
    }
}

/// A dialer that proved the secret, and what it asked.
struct Authenticated {
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
    follow: Message,
}

/// Accepts dialers. At most `unauthenticated_sessions_max` connections may be
/// between their first packet and their follow request (which follows the
/// proof of the secret at once); a new one beyond it is
/// refused at once (QUIC CONNECTION_REFUSED) and counted in
/// `flashgate_replication_sessions_refused_total`. Each has
/// `handshake_timeout` from its first packet to its follow request.
pub async fn accept(shared: Arc<Shared>) {
    let unauthenticated_max = shared.settings.unauthenticated_sessions_max;
    let unauthenticated = Arc::new(Semaphore::new(unauthenticated_max));
    while let Some(incoming) = shared.endpoint.accept().await {
        let remote = incoming.remote_address();
        let Ok(permit) = Arc::clone(&unauthenticated).try_acquire_owned() else {
            metrics::counter!(
                "flashgate_replication_sessions_refused_total",
                "reason" => "unauthenticated_sessions_max"
            )
            .increment(1);
            tracing::warn!(
                target: "flashgate::outside::replication_refused",
                %remote,
                "refused a replication connection: {unauthenticated_max} connections have not proven the cluster secret yet (replication_unauthenticated_sessions_max)"
            );
            incoming.refuse();
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            // Counted and logged where it failed.
            let Some(authenticated) = authenticate(&shared, incoming).await else {
                return;
            };
            drop(permit);
            let connection = authenticated.connection.clone();
            if let Err(error) = serve(&shared, authenticated).await {
                tracing::info!(%remote, %error, "replication session ended");
            }
            connection.close(0u32.into(), b"done");
        });
    }
}

fn handshake_failed(remote: SocketAddr, failure: HandshakeFailure, error: Option<&WireError>) {
    metrics::counter!("flashgate_replication_handshakes_failed_total", "reason" => failure.as_str())
        .increment(1);
    let reason = failure.as_str();
    match (failure, error) {
        (HandshakeFailure::WrongSecret, _) => {
            tracing::warn!(target: HANDSHAKE_LOG_TARGET, %remote, "REFUSED a replication peer: it did not prove the cluster secret")
        }
        (_, Some(error)) => {
            tracing::warn!(target: HANDSHAKE_LOG_TARGET, %remote, reason, %error, "a replication dialer failed its handshake")
        }
        (_, None) => {
            tracing::warn!(target: HANDSHAKE_LOG_TARGET, %remote, reason, "a replication dialer failed its handshake")
        }
    }
}

/// Completes the QUIC handshake, takes the dialer's one stream, checks its
/// proof of the secret, and reads its follow request; every message with the
/// handshake's small limit, all within `handshake_timeout` of the first
/// packet. A failure is counted, logged and closes the connection (`None`).
async fn authenticate(shared: &Shared, incoming: quinn::Incoming) -> Option<Authenticated> {
    let remote = incoming.remote_address();
    let timeout = shared.settings.handshake_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    let connection = match tokio::time::timeout_at(deadline, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            let error = WireError::Io(error.to_string());
            handshake_failed(remote, HandshakeFailure::Connection, Some(&error));
            return None;
        }
        Err(_) => {
            handshake_failed(remote, HandshakeFailure::Timeout, None);
            return None;
        }
    };
    let steps = async {
        let (mut send, mut recv) = connection.accept_bi().await.map_err(|error| {
            (
                HandshakeFailure::Connection,
                WireError::Io(error.to_string()),
            )
        })?;
        let failed = |error: WireError| (HandshakeFailure::of(&error), error);
        let secret = &shared.settings.secret;
        let hello = wire::receive_handshake(&mut recv).await.map_err(failed)?;
        let proven = matches!(&hello, Message::Hello { proof } if auth::verify(secret, auth::DIALER, &connection, proof));
        if !proven {
            connection.close(CLOSE_AUTH_FAILED.into(), b"wrong cluster secret");
            return Err((
                HandshakeFailure::WrongSecret,
                WireError::Unexpected("no valid proof of the cluster secret"),
            ));
        }
        transport::open_send_window(&connection);
        let proof = auth::proof(secret, auth::LISTENER, &connection).ok_or_else(|| {
            failed(WireError::Io(
                "no keying material on this connection".into(),
            ))
        })?;
        wire::send(&mut send, &Message::Hello { proof })
            .await
            .map_err(failed)?;
        let follow = wire::receive_handshake(&mut recv).await.map_err(failed)?;
        Ok((send, recv, follow))
    };
    let result = tokio::time::timeout_at(deadline, steps)
        .await
        .unwrap_or_else(|_| {
            Err((
                HandshakeFailure::Timeout,
                WireError::Io(format!(
                    "no proof of the cluster secret and follow request within {}",
                    humantime::format_duration(timeout)
                )),
            ))
        });
    match result {
        Ok((send, recv, follow)) => Some(Authenticated {
            connection,
            send,
            recv,
            follow,
        }),
        Err((failure, error)) => {
            handshake_failed(remote, failure, Some(&error));
            connection.close(CLOSE_HANDSHAKE_FAILED.into(), failure.as_str().as_bytes());
            None
        }
    }
}

/// Serves an authenticated dialer: a standby that follows, or a node of a
/// newer epoch that fences this one.
async fn serve(shared: &Arc<Shared>, authenticated: Authenticated) -> Result<(), WireError> {
    let Authenticated {
        connection,
        mut send,
        recv,
        follow,
    } = authenticated;
    let connection = &connection;
    let remote = connection.remote_address();
    let Message::Follow {
        node: dialer,
        is_primary,
        epoch,
        cluster_id,
        last_lsn,
        history,
        empty,
    } = follow
    else {
        return Err(WireError::Unexpected(follow.name()));
    };
    let node = &shared.node;
    let cluster = node.cluster();
    let own_epoch = cluster.epoch();
    let own_cluster = node
        .cluster_id()
        .map_err(|error| WireError::Io(error.to_string()))?;
    if epoch > own_epoch && cluster_id != own_cluster && !empty {
        // A node holding another cluster's data (a restore into a new
        // cluster id, say) never fences this one, whatever its epoch.
        let reason = format!(
            "the dialer belongs to another cluster ({cluster_id:016x}, this one is {own_cluster:016x}); a node of another cluster cannot fence this one"
        );
        tracing::warn!(%remote, %reason, "refused a dialer of a newer epoch");
        // Nothing in the refusal is for the dialer to act on: no epoch it
        // could fence itself by, no primary to follow.
        let refusal = Message::Refused {
            reason,
            epoch: 0,
            primary: None,
        };
        wire::send(&mut send, &refusal).await?;
        let _ = send.finish();
        let _ = send.stopped().await;
        return Ok(());
    }
    if epoch > own_epoch {
        // A node of a newer epoch: a promotion happened without this node.
        let primary = PeerAddress::from(dialer.clone());
        let fenced_node = Arc::clone(node);
        let fenced = tokio::task::spawn_blocking(move || fenced_node.fence(epoch, primary))
            .await
            .map_err(|error| WireError::Io(error.to_string()))?
            .map_err(|error| WireError::Io(error.to_string()))?;
        wire::send(&mut send, &Message::Fenced { epoch: own_epoch }).await?;
        let _ = send.finish();
        if fenced && is_primary {
            if let Some(target) = dialer.replication {
                let _ = shared.control.send(Control::Follow(target));
            }
        }
        let _ = send.stopped().await;
        return Ok(());
    }
    let refuse = |reason: String| Message::Refused {
        reason,
        epoch: own_epoch,
        primary: cluster.primary().map(NodeInfo::from),
    };
    let refusal = if is_primary {
        Some(format!(
            "this node is at epoch {own_epoch}, not older than the dialer's {epoch}"
        ))
    } else if cluster.role() != Role::Primary {
        Some(format!(
            "this node is a {}, not the primary",
            cluster.role().as_str()
        ))
    } else {
        (cluster_id != own_cluster && !empty).then(|| format!(
            "the follower's data dir belongs to another cluster ({cluster_id:016x}, this one is {own_cluster:016x}); empty it to follow this primary"
        ))
    };
    if let Some(reason) = refusal {
        tracing::info!(%remote, %reason, "refused a follower");
        wire::send(&mut send, &refuse(reason)).await?;
        let _ = send.finish();
        let _ = send.stopped().await;
        return Ok(());
    }
    stream_to_standby(
        shared,
        connection,
        send,
        recv,
        dialer,
        last_lsn,
        history_from_wire(&history),
    )
    .await
}

/// Brings a standby up to date and streams the log to it until the session
/// ends, counting its acknowledgements.
async fn stream_to_standby(
    shared: &Arc<Shared>,
    connection: &Connection,
    mut send: SendStream,
    recv: RecvStream,
    dialer: NodeInfo,
    follower_last: u64,
    follower_history: Vec<flashgate_storage::EpochStart>,
) -> Result<(), WireError> {
    let node = &shared.node;
    let cluster = node.cluster();
    let storage = node.storage();
    let io = |error: flashgate_storage::StorageError| WireError::Io(error.to_string());
    let history = storage.epoch_history().map_err(io)?;
    let durable = node.progress().durable_lsn();
    let keep_through = agreed_through(&history, durable, &follower_history, follower_last);
    let welcome = |start| Message::Welcome {
        epoch: cluster.epoch(),
        cluster_id: node.cluster_id().unwrap_or(0),
        history: history_to_wire(&history),
        primary: NodeInfo::from(cluster.advertise()),
        replication: cluster.config().replication.as_str().to_owned(),
        standby_loss: cluster.config().standby_loss.as_str().to_owned(),
        start,
    };
    if keep_through < follower_last {
        tracing::warn!(
            standby = %dialer.http,
            follower_last,
            keep_through,
            "the standby holds records this primary does not: it discards them"
        );
        wire::send(&mut send, &welcome(Start::DiscardAfter { keep_through })).await?;
        let _ = send.finish();
        let _ = send.stopped().await;
        return Ok(());
    }
    let covers = storage.checkpoint_covers_lsn().map_err(io)?;
    let mut sent = follower_last;
    if follower_last < covers {
        let reader = storage.clone();
        // With the archive: orders that left memory before the checkpoint.
        let checkpoint = tokio::task::spawn_blocking(move || checkpoint_for_standby(&reader))
            .await
            .map_err(|error| WireError::Io(error.to_string()))?
            .map_err(io)?
            .ok_or_else(|| WireError::Io("the checkpoint disappeared".into()))?;
        tracing::info!(standby = %dialer.http, covers_lsn = checkpoint.covers_lsn, chunks = checkpoint.chunks.len(), "sending a checkpoint to the standby");
        let chunk_count = u32::try_from(checkpoint.chunks.len()).expect("fewer than 2^32 chunks");
        wire::send(
            &mut send,
            &welcome(Start::Checkpoint {
                covers_lsn: checkpoint.covers_lsn,
                chunk_count,
            }),
        )
        .await?;
        for bytes in checkpoint.chunks {
            wire::send(&mut send, &Message::CheckpointChunk { bytes }).await?;
        }
        sent = checkpoint.covers_lsn;
    } else {
        wire::send(&mut send, &welcome(Start::Log)).await?;
    }

    let generation = shared.session.fetch_add(1, Ordering::AcqRel) + 1;
    cluster.standby_connected(
        connection.remote_address().to_string(),
        PeerAddress::from(dialer.clone()),
        follower_last,
        node.progress().durable_lsn(),
    );
    tracing::info!(standby = %dialer.http, from_lsn = sent, "standby connected");
    let acks = Arc::new(Acks::new());
    let mut reader = tokio::spawn(read_acks(recv, Arc::clone(shared), Arc::clone(&acks)));
    cluster.start_shipping(SHIP_BUFFER_BYTES_MAX);
    let result = ship(shared, &mut send, &mut reader, &acks, sent, generation).await;
    reader.abort();
    if shared.session.load(Ordering::Acquire) == generation {
        cluster.stop_shipping();
        cluster.standby_disconnected();
        tracing::warn!(standby = %dialer.http, "standby disconnected");
    }
    result
}

/// What the acknowledgement reader tells the streamer.
#[derive(Debug)]
struct Acks {
    /// The highest LSN the standby acknowledged in this session.
    lsn: AtomicU64,
    /// When the last acknowledgement (heartbeat answers included) arrived,
    /// in milliseconds after `since`.
    heard_ms: AtomicU64,
    since: tokio::time::Instant,
    /// Woken on every acknowledgement, for a streamer waiting on its window.
    arrived: Notify,
}

impl Acks {
    fn new() -> Acks {
        Acks {
            lsn: AtomicU64::new(0),
            heard_ms: AtomicU64::new(0),
            since: tokio::time::Instant::now(),
            arrived: Notify::new(),
        }
    }

    fn heard_at(&self) -> tokio::time::Instant {
        self.since + std::time::Duration::from_millis(self.heard_ms.load(Ordering::Acquire))
    }
}

/// Reads the standby's acknowledgements and hands each to the gate at once,
/// on this task (no hop through the streamer). Returns why the stream ended.
async fn read_acks(mut recv: RecvStream, shared: Arc<Shared>, acks: Arc<Acks>) -> WireError {
    let cluster = shared.node.cluster();
    let progress = shared.node.progress();
    loop {
        match wire::receive(&mut recv, HANDSHAKE_BYTES_MAX).await {
            Ok(Message::Ack { durable_lsn }) => {
                cluster.standby_acked(durable_lsn, progress.durable_lsn());
                acks.lsn.fetch_max(durable_lsn, Ordering::AcqRel);
                let heard_ms = u64::try_from(acks.since.elapsed().as_millis()).unwrap_or(u64::MAX);
                acks.heard_ms.fetch_max(heard_ms, Ordering::AcqRel);
                acks.arrived.notify_one();
            }
            Ok(other) => return WireError::Unexpected(other.name()),
            Err(error) => return error,
        }
    }
}

/// Log bytes sent to the standby and not yet acknowledged, per message:
/// what the replication window counts.
#[derive(Debug, Default)]
struct InFlight {
    /// (last LSN of a message, its log bytes), oldest first.
    messages: VecDeque<(u64, usize)>,
    bytes: usize,
}

impl InFlight {
    fn sent(&mut self, last_lsn: u64, bytes: usize) {
        self.messages.push_back((last_lsn, bytes));
        self.bytes += bytes;
    }

    fn acked(&mut self, lsn: u64) {
        while let Some(&(last, bytes)) = self.messages.front() {
            if last > lsn {
                break;
            }
            self.bytes -= bytes;
            self.messages.pop_front();
        }
    }

    /// Whether another message may go out: always when nothing is in
    /// flight (a message larger than the window still moves), else while
    /// under `window_bytes_max`.
    fn open(&self, window_bytes_max: usize) -> bool {
        self.messages.is_empty() || self.bytes < window_bytes_max
    }
}

/// Sends every durable entry after `sent` the window allows, then waits for
/// more, a heartbeat tick, or an acknowledgement. Batches the log writer
/// handed over (`Cluster::take_shipment`) go out from memory; what it did not
/// hand over (written before this session, or dropped while the standby was
/// far behind) is read from the log on disk.
async fn ship(
    shared: &Arc<Shared>,
    send: &mut SendStream,
    reader: &mut tokio::task::JoinHandle<WireError>,
    acks: &Acks,
    mut sent: u64,
    generation: u64,
) -> Result<(), WireError> {
    let node = &shared.node;
    let cluster = node.cluster();
    let progress = node.progress();
    let storage = node.storage();
    let message_bytes_max = shared.settings.message_bytes_max;
    let window_bytes_max = shared.settings.unacked_bytes_max;
    let mut in_flight = InFlight::default();
    let mut heartbeat = tokio::time::interval(shared.settings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The standby answers every heartbeat: one silent this long is stalled
    // (stopped, frozen, cut off) even while its connection looks alive.
    let silence_max = shared.settings.heartbeat * SILENT_HEARTBEATS_MAX;
    loop {
        if cluster.role() != Role::Primary || shared.session.load(Ordering::Acquire) != generation {
            return Ok(());
        }
        while in_flight.open(window_bytes_max) {
            let durable = progress.durable_lsn();
            let (entries, bytes) = match cluster.take_shipment(sent, message_bytes_max) {
                Shipment::Batches(batches) => {
                    let mut bytes = 0;
                    let entries: Vec<(u64, Bytes)> = batches
                        .iter()
                        .flat_map(|batch| batch.entries_after(sent))
                        .map(|(first, _, entry)| {
                            bytes += entry.len();
                            (first, entry)
                        })
                        .collect();
                    sent = batches.last().map_or(sent, DurableBatch::last_lsn);
                    (entries, bytes)
                }
                Shipment::Gap { first_kept } => {
                    match read_back(
                        storage,
                        sent,
                        durable.min(first_kept - 1),
                        message_bytes_max,
                    )? {
                        Some(read) => {
                            sent = read.last_lsn;
                            (read.entries, read.bytes)
                        }
                        None => break,
                    }
                }
                Shipment::Nothing if durable > sent => {
                    match read_back(storage, sent, durable, message_bytes_max)? {
                        Some(read) => {
                            sent = read.last_lsn;
                            (read.entries, read.bytes)
                        }
                        None => break,
                    }
                }
                Shipment::Nothing => break,
            };
            let mut frame = wire::entries_frame(cluster.epoch(), &entries);
            wire::send_chunks(send, &mut frame).await?;
            in_flight.sent(sent, bytes);
            cluster.note_behind();
        }
        let window_open = in_flight.open(window_bytes_max);
        tokio::select! {
            _ = cluster.durable_changed(), if window_open => {}
            _ = acks.arrived.notified(), if !window_open => {}
            _ = heartbeat.tick() => {
                if acks.heard_at().elapsed() >= silence_max {
                    return Err(WireError::Io(format!(
                        "no word from the standby for {}",
                        humantime::format_duration(silence_max)
                    )));
                }
                let message = Message::Heartbeat {
                    epoch: cluster.epoch(),
                    durable_lsn: progress.durable_lsn(),
                };
                wire::send(send, &message).await?;
            }
            ended = &mut *reader => {
                return Err(match ended {
                    Ok(error) => error,
                    Err(error) => WireError::Io(error.to_string()),
                });
            }
        }
        in_flight.acked(acks.lsn.load(Ordering::Acquire));
    }
}

/// Entries read back from the log on disk.
struct ReadBack {
    /// The last LSN they hold.
    last_lsn: u64,
    entries: Vec<(u64, Bytes)>,
    bytes: usize,
}

/// Reads whole entries after `sent` from the log on disk, those ending at or
/// before `through`, up to about `bytes_max` bytes; `None` when there is none.
fn read_back(
    storage: &flashgate_storage::Storage,
    sent: u64,
    through: u64,
    bytes_max: usize,
) -> Result<Option<ReadBack>, WireError> {
    let mut entries = storage
        .read_entries_after(sent, bytes_max)
        .map_err(|error| WireError::Io(error.to_string()))?;
    entries.retain(|entry| entry.last_lsn <= through);
    let Some(first) = entries.first() else {
        return Ok(None);
    };
    if first.first_lsn > sent + 1 {
        // A checkpoint trimmed what the standby still needs: it reconnects
        // and gets the checkpoint.
        return Err(WireError::Io(format!(
            "the log after LSN {sent} was trimmed; the standby must reconnect"
        )));
    }
    let last = entries.last().map_or(sent, |entry| entry.last_lsn);
    let bytes = entries.iter().map(|entry| entry.bytes.len()).sum();
    let entries = entries
        .into_iter()
        .map(|entry| (entry.first_lsn, Bytes::from(entry.bytes)))
        .collect();
    Ok(Some(ReadBack {
        last_lsn: last,
        entries,
        bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[test]
    fn the_window_closes_at_its_bytes_and_an_acknowledgement_opens_it() {
        let mut in_flight = InFlight::default();
        assert!(in_flight.open(100), "nothing in flight: always open");
        in_flight.sent(10, 60);
        assert!(in_flight.open(100));
        in_flight.sent(20, 60);
        assert!(!in_flight.open(100), "120 bytes unacknowledged of 100");
        in_flight.acked(15);
        assert_eq!(
            in_flight.bytes, 60,
            "an ack inside a message frees nothing of it"
        );
        in_flight.acked(10);
        assert_eq!(in_flight.bytes, 60);
        in_flight.acked(20);
        assert_eq!(in_flight.bytes, 0);
        in_flight.sent(30, 1000);
        assert!(!in_flight.open(100), "one message over the window fills it");
        in_flight.acked(30);
        assert!(in_flight.open(100));
    }
}
