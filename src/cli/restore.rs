//! `flashgate restore --from DIR --data-dir NEW`: builds a data dir from a
//! backup. The backup is checked in full first (as `flashgate backup
//! verify`); the data dir is built under `NEW.partial`, rebuilt by the
//! node's recovery and held against the manifest, and renamed to `NEW` only
//! then. A node started on `NEW` serves every order of the backup.
//!
//! Identity (docs/OPERATIONS.md, "Restore: which identity"): by default the
//! restored node is a new cluster (a new cluster id, the epoch after the
//! backup's), so no node of the old cluster can follow it, be followed by
//! it, or fence it or be fenced by it. `--keep-cluster-id --epoch N` keeps
//! the old id at an epoch N above every epoch the old cluster used: the
//! restored node then replaces the old cluster, and fences its nodes when
//! they meet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use flashgate_actors::backup::RestoredIdentity;

use crate::cli::backup_files::{
    check_files, check_summary, is_absent_or_empty, load, parent_of, read_manifest, sync_dir,
    with_suffix, ArchiveReplay, LoadError, ReplayTarget, Summary,
};

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup directory (written by `flashgate backup`).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The data dir to create; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Keep the backup's cluster id instead of starting a new cluster; needs
    /// --epoch. Only to replace the old cluster, whose nodes must be stopped
    /// for good: a restored node of the same cluster fences them when they meet.
    #[arg(long, requires = "epoch")]
    pub keep_cluster_id: bool,
    /// With --keep-cluster-id: the restored node's epoch, above every epoch
    /// the old cluster used (`flashgate status` on its nodes shows theirs).
    #[arg(long, value_name = "N", requires = "keep_cluster_id")]
    pub epoch: Option<u64>,
    /// Point-in-time restore: replay this log archive (`flashgate serve
    /// --archive-dir`, or a copy of its segments) after the backup.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// With --archive: replay every record up to this LSN, and none after.
    #[arg(
        long,
        value_name = "N",
        requires = "archive",
        conflicts_with = "to_time"
    )]
    pub to_lsn: Option<u64>,
    /// With --archive: replay every record archived at or before this time
    /// (RFC 3339, e.g. 2026-11-29T17:00:00Z), and none after.
    #[arg(long, value_name = "TIME", requires = "archive", value_parser = parse_time)]
    pub to_time: Option<u64>,
}

/// An RFC 3339 time as Unix milliseconds.
fn parse_time(text: &str) -> Result<u64, String> {
    let time = humantime::parse_rfc3339_weak(text)
        .map_err(|error| format!("{error}: give a time like 2026-11-29T17:00:00Z"))?;
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .map_err(|_| "a time before 1970".to_owned())
}

pub fn run(args: RestoreArgs) -> ExitCode {
    let restored = match (args.keep_cluster_id, args.epoch) {
        (true, Some(epoch)) => RestoredIdentity::KeepCluster { epoch },
        _ => RestoredIdentity::NewCluster,
    };
    let replay = args.archive.map(|dir| ArchiveReplay {
        dir,
        target: match (args.to_lsn, args.to_time) {
            (Some(lsn), _) => ReplayTarget::Lsn(lsn),
            (None, Some(ms)) => ReplayTarget::Time(ms),
            (None, None) => ReplayTarget::End,
        },
    });
    match restore(&args.from, &args.data_dir, restored, replay.as_ref()) {
        Ok(summary) => {
            println!(
                "flashgate: restored {} into {}: LSN {}, {} orders, {} SKUs; the node starts at epoch {}{}",
                args.from.display(),
                args.data_dir.display(),
                summary.lsn,
                summary.order_count,
                summary.skus.len(),
                summary.epoch,
                match restored {
                    RestoredIdentity::NewCluster => " as a new cluster",
                    RestoredIdentity::KeepCluster { .. } => " in the backup's cluster",
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("flashgate: restore failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: String) {
    eprintln!("flashgate: {line}");
}

/// Restores the backup in `from` into `data_dir`, then replays `replay`'s
/// archive if given. Returns what the restored data dir holds.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    restored: RestoredIdentity,
    replay: Option<&ArchiveReplay>,
) -> Result<Summary, String> {
    let started = Instant::now();
    let empty = is_absent_or_empty(data_dir)
        .map_err(|error| format!("cannot read {}: {error}", data_dir.display()))?;
    if !empty {
        return Err(format!(
            "{} is not empty; restore into a new or empty directory (nothing was changed)",
            data_dir.display()
        ));
    }
    if !from.is_dir() {
        return Err(format!("{} is not a backup directory", from.display()));
    }
    let manifest = read_manifest(from).map_err(|error| format!("bad backup: {error}"))?;
    check_files(from, &manifest, &mut say).map_err(|error| format!("bad backup: {error}"))?;
    let partial = with_suffix(data_dir, ".partial");
    if partial.exists() {
        return Err(format!(
            "{} exists: a restore was interrupted there; remove it, then restore again",
            partial.display()
        ));
    }
    let result = load(from, &manifest, &partial, restored, replay, &mut say)
        .map_err(|error| match error {
            LoadError::Bad(bad) => format!("bad backup: {bad}"),
            LoadError::Target(reason) => format!("{}: {reason}", partial.display()),
        })
        .and_then(|summary| {
            // After a replay the state is later than the manifest's.
            if replay.is_none() {
                check_summary(&manifest, &summary)
                    .map_err(|error| format!("bad backup: {error}"))?;
            }
            Ok(summary)
        })
        .and_then(|summary| {
            // The storage is closed (dropped by `load`): rename it into place.
            if data_dir.exists() {
                std::fs::remove_dir(data_dir)
                    .map_err(|error| format!("cannot replace {}: {error}", data_dir.display()))?;
            }
            sync_dir(&partial)
                .map_err(|error| format!("cannot fsync {}: {error}", partial.display()))?;
            std::fs::rename(&partial, data_dir).map_err(|error| {
                format!(
                    "cannot rename {} to {}: {error}",
                    partial.display(),
                    data_dir.display()
                )
            })?;
            sync_dir(&parent_of(data_dir)).map_err(|error| {
                format!("cannot fsync {}: {error}", parent_of(data_dir).display())
            })?;
            Ok(summary)
        });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    let summary = result?;
    say(format!("restore complete in {:.1?}", started.elapsed()));
    Ok(summary)
}
