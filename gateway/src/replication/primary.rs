//! The listening side of the replication channel. A dialer first proves the
//! cluster secret; then either it is a standby asking to follow (served if this
//! node is the primary: catch-up from the log or a checkpoint, then the live
//! log), or it is a node of a newer epoch, and this node fences itself.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use flashgate_actors::retire::checkpoint_for_standby;
use flashgate_actors::{PeerAddress, Role};
use flashgate_storage::agreed_through;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::mpsc;

use super::auth::CLOSE_AUTH_FAILED;
use super::wire::{
    self, history_from_wire, history_to_wire, Message, NodeInfo, Start, WireError,
    HANDSHAKE_BYTES_MAX,
};
use super::{auth, Control, Shared, SILENT_HEARTBEATS_MAX};

/// How long a dialer has to open its stream and prove the secret.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Acknowledgements waiting to be counted.
const ACKS_QUEUED_MAX: usize = 1024;

pub async fn accept(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let connection = match tokio::time::timeout(HANDSHAKE_TIMEOUT, incoming).await {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    tracing::debug!(%remote, %error, "replication handshake failed");
                    return;
                }
                Err(_) => return,
            };
            if let Err(error) = serve(&shared, &connection).await {
                tracing::info!(%remote, %error, "replication session ended");
            }
            connection.close(0u32.into(), b"done");
        });
    }
}

/// Authenticates a dialer and serves what it asks.
async fn serve(shared: &Arc<Shared>, connection: &Connection) -> Result<(), WireError> {
    let remote = connection.remote_address();
    let (mut send, mut recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| WireError::Io("no stream opened in time".into()))?
        .map_err(|error| WireError::Io(error.to_string()))?;
    let secret = &shared.settings.secret;
    let hello =
        wire::receive_within(&mut recv, HANDSHAKE_BYTES_MAX, HANDSHAKE_TIMEOUT, "hello").await?;
    let proven = matches!(&hello, Message::Hello { proof } if auth::verify(secret, auth::DIALER, connection, proof));
    if !proven {
        tracing::warn!(%remote, "REFUSED a replication peer: it did not prove the cluster secret");
        connection.close(CLOSE_AUTH_FAILED.into(), b"wrong cluster secret");
        return Ok(());
    }
    let proof = auth::proof(secret, auth::LISTENER, connection)
        .ok_or_else(|| WireError::Io("no keying material on this connection".into()))?;
    wire::send(&mut send, &Message::Hello { proof }).await?;
    let follow = wire::receive_within(
        &mut recv,
        HANDSHAKE_BYTES_MAX,
        HANDSHAKE_TIMEOUT,
        "follow request",
    )
    .await?;
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
        let own_cluster = node
            .cluster_id()
            .map_err(|error| WireError::Io(error.to_string()))?;
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
    let (acks, mut ack_receiver) = mpsc::channel(ACKS_QUEUED_MAX);
    let reader = tokio::spawn(read_acks(recv, acks));
    let result = ship(shared, &mut send, &mut ack_receiver, sent, generation).await;
    reader.abort();
    if shared.session.load(Ordering::Acquire) == generation {
        cluster.standby_disconnected();
        tracing::warn!(standby = %dialer.http, "standby disconnected");
    }
    result
}

async fn read_acks(mut recv: RecvStream, acks: mpsc::Sender<Result<u64, WireError>>) {
    loop {
        let result = match wire::receive(&mut recv, HANDSHAKE_BYTES_MAX).await {
            Ok(Message::Ack { durable_lsn }) => Ok(durable_lsn),
            Ok(other) => Err(WireError::Unexpected(other.name())),
            Err(error) => Err(error),
        };
        let stop = result.is_err();
        if acks.send(result).await.is_err() || stop {
            return;
        }
    }
}

/// Sends every durable entry after `sent`, then waits for more, a heartbeat
/// tick, or an acknowledgement.
async fn ship(
    shared: &Arc<Shared>,
    send: &mut SendStream,
    acks: &mut mpsc::Receiver<Result<u64, WireError>>,
    mut sent: u64,
    generation: u64,
) -> Result<(), WireError> {
    let node = &shared.node;
    let cluster = node.cluster();
    let progress = node.progress();
    let storage = node.storage();
    let mut heartbeat = tokio::time::interval(shared.settings.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The standby answers every heartbeat: one silent this long is stalled
    // (stopped, frozen, cut off) even while its connection looks alive.
    let silence_max = shared.settings.heartbeat * SILENT_HEARTBEATS_MAX;
    let mut heard_at = tokio::time::Instant::now();
    loop {
        if cluster.role() != Role::Primary || shared.session.load(Ordering::Acquire) != generation {
            return Ok(());
        }
        loop {
            let durable = progress.durable_lsn();
            if sent >= durable {
                break;
            }
            let mut entries = storage
                .read_entries_after(sent, shared.settings.message_bytes_max)
                .map_err(|error| WireError::Io(error.to_string()))?;
            entries.retain(|entry| entry.last_lsn <= durable);
            let Some(first) = entries.first() else { break };
            if first.first_lsn > sent + 1 {
                // A checkpoint trimmed what the standby still needs: it
                // reconnects and gets the checkpoint.
                return Err(WireError::Io(format!(
                    "the log after LSN {sent} was trimmed; the standby must reconnect"
                )));
            }
            sent = entries.last().map_or(sent, |entry| entry.last_lsn);
            let entries = entries
                .into_iter()
                .map(|entry| (entry.first_lsn, entry.bytes))
                .collect();
            let message = Message::Entries {
                epoch: cluster.epoch(),
                entries,
            };
            wire::send(send, &message).await?;
            cluster.note_behind();
        }
        tokio::select! {
            _ = cluster.durable_changed() => {}
            _ = heartbeat.tick() => {
                if heard_at.elapsed() >= silence_max {
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
            ack = acks.recv() => match ack {
                Some(Ok(lsn)) => {
                    heard_at = tokio::time::Instant::now();
                    cluster.standby_acked(lsn, progress.durable_lsn());
                }
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
        }
    }
}
