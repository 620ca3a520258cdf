//! `flashgate backup --node URL --token T --out DIR` takes a consistent
//! backup of a running node (primary or standby) over its HTTP API
//! (`POST /v1/admin/backup`); `flashgate backup verify DIR` checks one.
//!
//! The backup is written under `DIR.partial`, checked in full (rebuilt by
//! the node's own recovery into a scratch data dir, which also gives the
//! manifest its totals), and renamed to `DIR` only then: a directory named
//! `DIR` is always a complete backup. Files and directories are fsynced
//! before the rename, and the parent directory after it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use flashgate_actors::backup::{decode_end, decode_identity, frame, RestoredIdentity};
use flashgate_storage::backup::{
    file_header, write_frame, FrameReader, BACKUP_FORMAT_VERSION, FRAME_PAYLOAD_BYTES_MAX,
};

use crate::cli::admin::{request_name, CONNECT_TIMEOUT};
use crate::cli::backup_files::{
    check_files, check_summary, hex, load, parent_of, read_manifest, sync_dir, with_suffix,
    write_synced, EpochEntry, FileEntry, HashingWriter, LoadError, Manifest, DATA_FILES,
    MANIFEST_FILE, MANIFEST_SUM_FILE,
};
use crate::cli::node_url::NodeUrl;

/// The longest the node may take to start answering (it serialises every
/// shard first), and the longest a read of the answer may stall after.
pub const BACKUP_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a long backup prints a progress line.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// HTTP base URL of the node to back up (primary or standby), e.g. http://10.0.0.2:8080.
    #[arg(long, value_name = "URL", required = true)]
    pub node: Option<NodeUrl>,
    #[arg(
        long = "token",
        value_name = "TOKEN",
        env = "FLASHGATE_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = crate::cli::parse_admin_token,
        required = true
    )]
    /// The node's admin token.
    pub token: Option<String>,
    /// The backup directory to create; it must not exist.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// Check a backup in full: every checksum, every frame, the shards
    /// rebuilt by the node's recovery and their invariants, the totals
    /// against the manifest. Exit status 0: good; 1: bad, with the reason.
    Verify {
        /// The backup directory.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Runs `flashgate backup` or `flashgate backup verify`.
pub fn run(args: BackupArgs) -> ExitCode {
    if let Some(BackupCommand::Verify { dir }) = args.command {
        return verify(&dir);
    }
    let (Some(node), Some(token), Some(out)) = (args.node, args.token, args.out) else {
        eprintln!("flashgate: backup needs --node, --token and --out");
        return ExitCode::FAILURE;
    };
    match take(&node, &token, &out) {
        Ok(manifest) => {
            println!(
                "flashgate: backup of {node} written to {}: LSN {}, epoch {}, cluster {}, {} orders, {} SKUs",
                out.display(),
                manifest.lsn,
                manifest.epoch,
                manifest.cluster_id,
                manifest.order_count,
                manifest.skus.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("flashgate: backup failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn say(line: String) {
    eprintln!("flashgate: {line}");
}

/// Takes the backup into `out` (through `out.partial`). Returns its manifest.
pub fn take(node: &NodeUrl, token: &str, out: &Path) -> Result<Manifest, String> {
    let started = Instant::now();
    if out.exists() {
        return Err(format!(
            "{} exists; give a new directory with --out (a backup is never written over another)",
            out.display()
        ));
    }
    let partial = with_suffix(out, ".partial");
    if partial.exists() {
        return Err(format!(
            "{} exists: a backup was interrupted there; remove it, then run the backup again",
            partial.display()
        ));
    }
    std::fs::create_dir_all(&partial)
        .map_err(|error| format!("cannot create {}: {error}", partial.display()))?;
    let result = take_into(node, token, out, &partial, started);
    if result.is_err() {
        // An incomplete backup is never left under a name that looks complete;
        // its partial directory goes too.
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

fn take_into(
    node: &NodeUrl,
    token: &str,
    out: &Path,
    partial: &Path,
    started: Instant,
) -> Result<Manifest, String> {
    let request = request_name("POST", node, "/v1/admin/backup");
    say(format!("asking {node} for a backup"));
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(BACKUP_READ_TIMEOUT)
        .build();
    let response = agent
        .post(&node.join("/v1/admin/backup"))
        .set("Authorization", &format!("Bearer {token}"))
        .call();
    let response = match response {
        Ok(response) => response,
        Err(ureq::Error::Status(status, response)) => {
            let body = response.into_string().unwrap_or_default();
            let answer = crate::cli::admin::Answer { status, body };
            return Err(crate::cli::admin::decode::<serde_json::Value>(&request, &answer)
                .err()
                .map_or_else(|| format!("{request}: answered {status}"), |error| error.to_string()));
        }
        Err(error) => {
            return Err(format!(
                "{request}: no answer ({error}); check that the node runs and that its HTTP address is right"
            ))
        }
    };
    let mut reader = FrameReader::new(response.into_reader(), FRAME_PAYLOAD_BYTES_MAX);
    let cut = |what: String| format!("{request}: {what}; nothing was kept");
    let identity = match reader.next_frame() {
        Ok(Some((frame::IDENTITY, payload))) => decode_identity(&payload).map_err(cut)?,
        Ok(Some((kind, _))) => return Err(cut(format!("the answer starts with a frame of kind {kind}, not the identity; is the node a flashgate of this version?"))),
        Ok(None) => return Err(cut("the answer is empty".into())),
        Err(error) => return Err(cut(error.to_string())),
    };
    say(format!(
        "snapshot at LSN {} (epoch {}, {} shards); receiving",
        identity.lsn, identity.epoch, identity.shard_count
    ));
    let mut files = Vec::new();
    for (name, kind) in DATA_FILES {
        let file = File::create(partial.join(name))
            .map_err(|error| format!("cannot create {}: {error}", partial.join(name).display()))?;
        let mut writer = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        writer
            .write_all(&file_header())
            .map_err(|error| format!("cannot write {name}: {error}"))?;
        files.push((name, kind, writer, 0u64));
    }
    let mut last_progress = Instant::now();
    let counts = loop {
        let next = reader
            .next_frame()
            .map_err(|error| cut(format!("{error} after {} bytes", reader.offset)))?;
        let Some((kind, payload)) = next else {
            return Err(cut(format!(
                "the node stopped sending after {} bytes, before the end of the backup",
                reader.offset
            )));
        };
        if kind == frame::END {
            break decode_end(&payload).map_err(cut)?;
        }
        let Some((name, _, writer, frames)) = files
            .iter_mut()
            .find(|(_, file_kind, _, _)| *file_kind == kind)
        else {
            return Err(cut(format!("a frame of unknown kind {kind}")));
        };
        write_frame(writer, kind, &payload)
            .map_err(|error| format!("cannot write {name}: {error}"))?;
        *frames += 1;
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            say(format!(
                "received {} MiB in {:.0?}",
                reader.offset >> 20,
                started.elapsed()
            ));
        }
    };
    let mut entries = Vec::new();
    for ((name, _, writer, frames), expected) in
        files
            .into_iter()
            .zip([counts.chunks, counts.log_entries, counts.archived])
    {
        if frames != expected {
            return Err(cut(format!(
                "{name}: {frames} frames arrived, the node sent {expected}"
            )));
        }
        let (buffered, sha256, bytes) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|error| format!("cannot write {name}: {}", error.error()))?;
        file.sync_all()
            .map_err(|error| format!("cannot fsync {name}: {error}"))?;
        entries.push(FileEntry {
            name: name.to_string(),
            bytes,
            frames,
            sha256,
        });
    }
    say(format!(
        "received {} MiB; checking the backup: rebuilding it with the node's recovery",
        reader.offset >> 20
    ));
    let mut manifest = Manifest {
        backup_format: BACKUP_FORMAT_VERSION,
        storage_format: identity.storage_format,
        flashgate_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        source: node.to_string(),
        lsn: identity.lsn,
        covers_lsn: identity.covers_lsn,
        epoch: identity.epoch,
        epoch_history: identity
            .history
            .iter()
            .map(|start| EpochEntry {
                epoch: start.epoch,
                first_lsn: start.first_lsn,
            })
            .collect(),
        cluster_id: format!("{:016x}", identity.cluster_id),
        shard_count: identity.shard_count,
        order_count: 0,
        skus: Vec::new(),
        state_sha256: String::new(),
        files: entries,
    };
    let scratch = tempfile::Builder::new()
        .prefix(".flashgate-backup-check-")
        .tempdir_in(parent_of(out))
        .map_err(|error| {
            format!(
                "cannot create a scratch directory beside {}: {error}",
                out.display()
            )
        })?;
    let summary = load(
        partial,
        &manifest,
        scratch.path(),
        RestoredIdentity::NewCluster,
        None,
        &mut say,
    )
    .map_err(|error| match error {
        LoadError::Bad(bad) => format!("the backup received does not rebuild: {bad}"),
        LoadError::Target(reason) => format!(
            "checking the backup in {}: {reason}",
            scratch.path().display()
        ),
    })?;
    drop(scratch);
    manifest.order_count = summary.order_count;
    manifest.skus = summary.skus;
    manifest.state_sha256 = summary.state_sha256;
    if summary.lsn != manifest.lsn {
        return Err(format!(
            "the backup rebuilds to LSN {}, the node said {}; nothing was kept",
            summary.lsn, manifest.lsn
        ));
    }
    let mut text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    text.push(b'\n');
    write_synced(&partial.join(MANIFEST_FILE), &text)
        .map_err(|error| format!("cannot write {MANIFEST_FILE}: {error}"))?;
    let sum = format!(
        "{}\n",
        hex(ring::digest::digest(&ring::digest::SHA256, &text).as_ref())
    );
    write_synced(&partial.join(MANIFEST_SUM_FILE), sum.as_bytes())
        .map_err(|error| format!("cannot write {MANIFEST_SUM_FILE}: {error}"))?;
    sync_dir(partial).map_err(|error| format!("cannot fsync {}: {error}", partial.display()))?;
    std::fs::rename(partial, out).map_err(|error| {
        format!(
            "cannot rename {} to {}: {error}",
            partial.display(),
            out.display()
        )
    })?;
    sync_dir(&parent_of(out))
        .map_err(|error| format!("cannot fsync {}: {error}", parent_of(out).display()))?;
    say(format!("backup complete in {:.1?}", started.elapsed()));
    Ok(manifest)
}

/// `flashgate backup verify DIR`: 0 when the backup is good, 1 with the
/// reason (naming the file) when not.
fn verify(dir: &Path) -> ExitCode {
    match verify_backup(dir) {
        Ok(manifest) => {
            println!(
                "flashgate: backup {} is good: LSN {}, epoch {}, cluster {}, {} shards, {} orders, taken {} from {}",
                dir.display(),
                manifest.lsn,
                manifest.epoch,
                manifest.cluster_id,
                manifest.shard_count,
                manifest.order_count,
                manifest.created_at,
                manifest.source
            );
            for sku in &manifest.skus {
                println!(
                    "  {}: total {}, available {}, reserved {}, sold {}",
                    sku.id, sku.total, sku.available, sku.reserved, sku.sold
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("flashgate: backup {} is bad: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// Checks the backup in `dir` in full (see the module doc of
/// `backup_files`). Returns its manifest when good.
pub fn verify_backup(dir: &Path) -> Result<Manifest, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let manifest = read_manifest(dir).map_err(|error| error.to_string())?;
    check_files(dir, &manifest, &mut say).map_err(|error| error.to_string())?;
    let scratch = tempfile::Builder::new()
        .prefix(".flashgate-backup-check-")
        .tempdir()
        .map_err(|error| format!("cannot create a scratch directory: {error}"))?;
    let summary = load(
        dir,
        &manifest,
        scratch.path(),
        RestoredIdentity::NewCluster,
        None,
        &mut say,
    )
    .map_err(|error| match error {
        LoadError::Bad(bad) => bad.to_string(),
        LoadError::Target(reason) => format!(
            "could not be checked: the scratch data dir in {}: {reason}",
            scratch.path().display()
        ),
    })?;
    check_summary(&manifest, &summary).map_err(|error| error.to_string())?;
    Ok(manifest)
}
