//! The disk watchdog: a thread that fail-stops the node when one wait on the
//! disk (a log write, an fsync, a metadata write) lasts longer than
//! `disk_stall_timeout`. A stuck disk (a hung device, a frozen network or FUSE
//! filesystem) otherwise hangs every writer behind it, and a node that neither
//! answers nor fails cannot be replaced by its standby or its supervisor.
//!
//! The fail-stop is the same as after a failed fsync: the log's failure is set,
//! so shards refuse commands with `storage_failed`; every reply still waiting is
//! refused (`Node` wakes its waiters through `failed`); `/readyz` reports not
//! ready. Nothing the stuck write carried is ever acknowledged, even if the write
//! returns later.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flashgate_storage::{LogProgress, Storage};
use tokio::sync::watch;

/// How many times per `disk_stall_timeout` the watchdog looks: a stall is seen
/// at most a quarter of the timeout late.
const CHECKS_PER_TIMEOUT: u32 = 4;
/// The shortest interval between two looks.
const CHECK_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// Whether a wait on the disk that has lasted `waited` is a stall.
pub(crate) fn is_stalled(waited: Duration, limit: Duration) -> bool {
    waited >= limit
}

/// The running watchdog thread; `stop` ends it.
pub(crate) struct DiskWatchdog {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl DiskWatchdog {
    /// Starts watching `storage`'s waits on the disk. On a stall it fail-stops
    /// `progress`, sets `failed` and ends.
    pub(crate) fn start(
        storage: Storage,
        progress: Arc<LogProgress>,
        failed: Arc<watch::Sender<bool>>,
        limit: Duration,
    ) -> DiskWatchdog {
        let (stop, stopped) = mpsc::channel();
        let interval = (limit / CHECKS_PER_TIMEOUT).max(CHECK_INTERVAL_MIN);
        let thread = std::thread::Builder::new()
            .name("flashgate-disk-watchdog".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                let Some((waited, what)) = storage.oldest_disk_wait() else {
                    continue;
                };
                if !is_stalled(waited, limit) {
                    continue;
                }
                let data_dir = storage.path().display();
                let reason = format!(
                    "data dir {data_dir}: a {what} has not returned for {} ms (disk_stall_timeout {} ms); the disk is stuck",
                    waited.as_millis(),
                    limit.as_millis()
                );
                if progress.fail_stop(reason.clone()) {
                    tracing::error!(%data_dir, waited_ms = waited.as_millis() as u64, what, "DISK STALLED: {reason}; this node stops taking writes and refuses every waiting answer; restart it once the disk answers (every acknowledged order is in the log)");
                }
                failed.send_replace(true);
                return;
            })
            .expect("spawn the disk watchdog thread");
        DiskWatchdog { stop, thread }
    }

    /// Ends the thread. Never waits on the disk.
    pub(crate) fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the disk watchdog thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_a_stall_from_the_limit_on() {
        let limit = Duration::from_secs(5);
        assert!(!is_stalled(Duration::from_millis(4_999), limit));
        assert!(is_stalled(limit, limit));
    }

    #[test]
    fn a_stuck_disk_wait_fail_stops_the_log_and_wakes_waiters() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), Default::default()).unwrap();
        let progress = Arc::new(LogProgress::default());
        let (failed, mut failed_seen) = watch::channel(false);
        let watchdog = DiskWatchdog::start(
            storage.clone(),
            Arc::clone(&progress),
            Arc::new(failed),
            Duration::from_millis(50),
        );
        // A wait that never ends while the watchdog looks: the stuck disk.
        let wait = storage.disk_wait("fsync");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                failed_seen.wait_for(|failed| *failed),
            )
            .await
            .expect("the watchdog fail-stops within the bound")
            .expect("the sender lives");
        });
        drop(wait);
        let reason = progress.failure().expect("the log failed");
        assert!(
            reason.contains(&dir.path().display().to_string()) && reason.contains("fsync"),
            "{reason}"
        );
        watchdog.stop();
    }
}
