//! `POST /v1/admin/backup`: a consistent snapshot of this node at one LSN,
//! streamed as backup frames (`flashgate_storage::backup`, kinds in
//! `flashgate_actors::backup::frame`): the identity, the checkpoint chunks,
//! the log records up to the LSN, the archive, then the counts. `flashgate
//! backup` (src/cli/backup.rs) writes them to a backup directory.
//!
//! Each shard pauses only while it serialises itself (as for a periodic
//! checkpoint); the rest is read off the order path: the log and the
//! archive from the disk, a page at a time, as the client takes the bytes.
//! A stream that ends without its `END` frame is incomplete, and the client
//! keeps nothing of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use flashgate_actors::backup::{encode_end, encode_identity, frame, FrameCounts};
use flashgate_storage::backup::{encode_entry_payload, encode_frame};
use flashgate_storage::{EntryBytes, Storage};

use super::caller::allowed;
use super::AppState;
use crate::auth::Action;
use crate::request::RequestError;

/// Backups a node sends at once: each holds a snapshot of every shard in
/// memory while it is sent.
pub const BACKUPS_CONCURRENT_MAX: usize = 1;
/// Bytes gathered into one piece of the answer before it is handed to the
/// connection.
const PIECE_BYTES: usize = 1 << 20;

/// Backups being sent by this process.
static BACKUPS_RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Holds one of the `BACKUPS_CONCURRENT_MAX` places until dropped (when the
/// stream ends or the client goes away).
struct BackupPlace;

impl BackupPlace {
    fn take() -> Option<BackupPlace> {
        BACKUPS_RUNNING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < BACKUPS_CONCURRENT_MAX).then_some(running + 1)
            })
            .ok()
            .map(|_| BackupPlace)
    }
}

impl Drop for BackupPlace {
    fn drop(&mut self) {
        BACKUPS_RUNNING.fetch_sub(1, Ordering::AcqRel);
    }
}

#[utoipa::path(
    post,
    operation_id = "backup",
    path = "/v1/admin/backup",
    tag = "cluster",
    summary = "A consistent backup of this node (primary or standby) at one LSN",
    description = "Streams backup frames (see docs/OPERATIONS.md, \"Backup\"); `flashgate backup` reads them. \
        Buyers are not stalled: each shard pauses only while it serialises its own state.",
    responses(
        (status = 200, description = "The backup's frames, ending with an end frame", content_type = "application/octet-stream", body = String),
        (status = 409, description = "`backup_in_progress`: this node is sending a backup already", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn backup(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::TakeBackup)?;
    let place =
        BackupPlace::take().ok_or(RequestError::BackupInProgress(BACKUPS_CONCURRENT_MAX))?;
    let started = Instant::now();
    let snapshot = state.node.backup_snapshot().await?;
    tracing::info!(
        lsn = snapshot.identity.lsn,
        covers_lsn = snapshot.identity.covers_lsn,
        chunks = snapshot.chunks.len(),
        log_entries = snapshot.log.len(),
        shard_pause_longest_ms = snapshot.pause_longest.as_secs_f64() * 1e3,
        snapshot_ms = started.elapsed().as_millis() as u64,
        "backup snapshot taken; sending it"
    );
    let mut first = Vec::new();
    encode_frame(
        &mut first,
        frame::IDENTITY,
        &encode_identity(&snapshot.identity),
    );
    let sending = Sending {
        storage: state.node.storage().clone(),
        first: Some(first),
        chunks: snapshot.chunks.into_iter(),
        log: snapshot.log.into_iter(),
        archive_after: None,
        archive_done: false,
        counts: FrameCounts::default(),
        ended: false,
        started,
        _place: place,
    };
    let stream = futures_util::stream::unfold(sending, |mut sending| async move {
        let piece = sending.next_piece().await;
        piece.map(|piece| (piece, sending))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .streaming(stream))
}

/// What is left to send of one backup.
struct Sending {
    storage: Storage,
    first: Option<Vec<u8>>,
    chunks: std::vec::IntoIter<Vec<u8>>,
    log: std::vec::IntoIter<EntryBytes>,
    /// The last archive key sent.
    archive_after: Option<Vec<u8>>,
    archive_done: bool,
    counts: FrameCounts,
    ended: bool,
    started: Instant,
    _place: BackupPlace,
}

impl Sending {
    /// The next piece of the answer (about `PIECE_BYTES`), `None` after the
    /// `END` frame. A failed archive read ends the stream without `END`.
    async fn next_piece(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.ended {
            return None;
        }
        let mut piece = self.first.take().unwrap_or_default();
        while piece.len() < PIECE_BYTES {
            if let Some(chunk) = self.chunks.next() {
                encode_frame(&mut piece, frame::CHUNK, &chunk);
                self.counts.chunks += 1;
            } else if let Some(entry) = self.log.next() {
                encode_frame(&mut piece, frame::LOG_ENTRY, &encode_entry_payload(&entry));
                self.counts.log_entries += 1;
            } else if !self.archive_done {
                let storage = self.storage.clone();
                let after = self.archive_after.take();
                let page =
                    tokio::task::spawn_blocking(move || storage.archive_page(after.as_deref()))
                        .await
                        .map_err(|error| error.to_string())
                        .and_then(|page| page.map_err(|error| error.to_string()));
                let page = match page {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::error!(%error, "a backup could not read the archive; the backup is incomplete");
                        self.ended = true;
                        return Some(Err(std::io::Error::other(error)));
                    }
                };
                match page.last() {
                    None => self.archive_done = true,
                    Some((last, _)) => self.archive_after = Some(last.clone()),
                }
                for (_, value) in page {
                    encode_frame(&mut piece, frame::ARCHIVED, &value);
                    self.counts.archived += 1;
                }
            } else {
                encode_frame(&mut piece, frame::END, &encode_end(&self.counts));
                self.ended = true;
                tracing::info!(
                    chunks = self.counts.chunks,
                    log_entries = self.counts.log_entries,
                    archived = self.counts.archived,
                    elapsed_ms = self.started.elapsed().as_millis() as u64,
                    "backup sent"
                );
                break;
            }
        }
        Some(Ok(Bytes::from(piece)))
    }
}
