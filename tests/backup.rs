//! Backup, verify and restore with the real binary: `flashgate backup` of a
//! running node under load, `flashgate backup verify` against damage, and
//! `flashgate restore` into a new data dir that a node then serves.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pair::wait_caught_up;
use common::{assert_counters_match, order_id, poll_until, Client, Launch, Server, ADMIN_TOKEN};
use serde_json::{json, Value};

const SKUS: [&str; 3] = ["backup-a", "backup-b", "backup-c"];
/// Stock no test runs out of.
const STOCK: u64 = 1_000_000;
/// Longest one CLI command may run (a debug build, a shared machine).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// Orders each churn thread makes at most.
const CHURN_ORDERS_MAX: usize = 5_000;

/// What a CLI command did.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `flashgate ARGS`, bounded by `COMMAND_TIMEOUT`.
fn flashgate(args: &[&str]) -> Run {
    let logs = tempfile::tempdir().expect("a temporary directory");
    let stdout_path = logs.path().join("stdout");
    let stderr_path = logs.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(args)
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn flashgate");
    let status = poll_until(
        &format!("flashgate {args:?} to finish"),
        COMMAND_TIMEOUT,
        || child.try_wait().expect("wait for flashgate"),
    );
    Run {
        status,
        stdout: std::fs::read_to_string(stdout_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(stderr_path).unwrap_or_default(),
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Takes a backup of `server` into `out`; panics with its output if it fails.
fn backup(server: &Server, out: &Path) -> Value {
    let run = flashgate(&[
        "backup",
        "--node",
        server.base_url(),
        "--token",
        ADMIN_TOKEN,
        "--out",
        path_str(out),
    ]);
    assert!(
        run.status.success(),
        "backup failed: {}\n{}",
        run.stdout,
        run.stderr
    );
    manifest(out)
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json"))
        .expect("manifest.json is JSON")
}

fn restore(from: &Path, data_dir: &Path) -> Run {
    flashgate(&[
        "restore",
        "--from",
        path_str(from),
        "--data-dir",
        path_str(data_dir),
    ])
}

fn verify(dir: &Path) -> Run {
    flashgate(&["backup", "verify", path_str(dir)])
}

/// Waits until more than `sold` units of the first SKU are held or sold.
fn wait_for_orders(client: &Client, sold: u64) {
    poll_until("orders to flow", COMMAND_TIMEOUT, || {
        let sku = client.sku(SKUS[0]);
        (sku["total"].as_u64()? - sku["available"].as_u64()? > sold).then_some(())
    });
}

fn set_up_skus(client: &Client) {
    for sku in SKUS {
        client.put_sku(sku, json!({ "stock": STOCK, "reservation_ttl_secs": 3600 }));
    }
}

/// An order a churn thread placed, and every status it was acknowledged in,
/// with when.
#[derive(Clone, Debug)]
struct Tracked {
    id: String,
    /// (acknowledged at, status), oldest first.
    statuses: Vec<(Instant, String)>,
}

/// Threads that place orders and confirm or cancel most of them, recording
/// every acknowledged status, until stopped.
struct Churn {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<Tracked>>>,
}

impl Churn {
    fn start(client: &Client, threads: usize) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|thread| {
                let client = client.clone();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut tracked = Vec::new();
                    for i in 0..CHURN_ORDERS_MAX {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let sku = SKUS[(thread + i) % SKUS.len()];
                        let (status, order) = client.place_order(
                            sku,
                            (i % 3) as u64 + 1,
                            &format!("churn-{thread}-{}", i % 11),
                        );
                        assert_eq!(status, 201, "{order}");
                        let mut order_track = Tracked {
                            id: order_id(&order),
                            statuses: vec![(Instant::now(), "reserved".into())],
                        };
                        let change = match i % 3 {
                            0 => Some(client.confirm(&order_track.id)),
                            1 => Some(client.cancel(&order_track.id)),
                            _ => None,
                        };
                        if let Some((status, changed)) = change {
                            assert_eq!(status, 200, "{changed}");
                            let now = changed["status"].as_str().expect("a status").to_owned();
                            order_track.statuses.push((Instant::now(), now));
                        }
                        tracked.push(order_track);
                    }
                    tracked
                })
            })
            .collect();
        Churn { stop, threads }
    }

    fn finish(self) -> Vec<Tracked> {
        self.stop.store(true, Ordering::Release);
        self.threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a churn thread panicked"))
            .collect()
    }
}

/// A backup taken while orders, confirms and cancels flow, then SIGKILL,
/// then a restore into a new dir: every order acknowledged before the backup
/// began is served by a node started on it, in the status it was last
/// acknowledged in before then (or a later one), the counters match the
/// orders, the manifest's totals are the node's, and the node takes new
/// orders in a new epoch. This is the promise of an online backup: consistent
/// at one LSN without stopping the sale.
#[test]
fn a_backup_under_load_restores_every_order_acknowledged_before_it() {
    let mut server = Launch::new()
        .env("FLASHGATE_SHARDS", "4")
        // Finished orders leave memory at once: the archive is in the backup too.
        .env("FLASHGATE_FINISHED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_CONFIRMED_ORDER_RETENTION_SECS", "0")
        .start();
    set_up_skus(server.client());
    let churn = Churn::start(server.client(), 4);
    wait_for_orders(server.client(), 200);
    let work = tempfile::tempdir().expect("a temporary directory");
    let out = work.path().join("backup-1");
    let backup_began = Instant::now();
    let manifest = backup(&server, &out);
    let backup_ended = Instant::now();
    let tracked = churn.finish();
    server.kill();

    let data_dir = work.path().join("restored");
    let run = restore(&out, &data_dir);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    let restored = Launch::new().data_dir(&data_dir).start();
    let client = restored.client();

    let mut present = Vec::new();
    let mut checked_before = 0;
    for order in &tracked {
        let (status, stored) = client.get(&format!("/v1/orders/{}", order.id));
        let created_at = order.statuses[0].0;
        if created_at < backup_began {
            assert_eq!(
                status, 200,
                "order {} acknowledged before the backup is missing: {stored}",
                order.id
            );
            // The last status acknowledged before the backup began, or one
            // acknowledged after it (the backup's LSN is later than its start).
            let allowed: Vec<&str> = order
                .statuses
                .iter()
                .enumerate()
                .filter(|(index, (at, _))| {
                    *at >= backup_began
                        || order
                            .statuses
                            .get(index + 1)
                            .is_none_or(|(next, _)| *next >= backup_began)
                })
                .map(|(_, (_, status))| status.as_str())
                .collect();
            let stored_status = stored["status"].as_str().expect("a status");
            assert!(
                allowed.contains(&stored_status),
                "order {} is {stored_status}; acknowledged as {:?}",
                order.id,
                order.statuses
            );
            checked_before += 1;
        } else if created_at > backup_ended {
            assert_eq!(
                status, 404,
                "order {} placed after the backup is in it: {stored}",
                order.id
            );
        }
        if status == 200 {
            present.push(stored);
        }
    }
    assert!(
        checked_before > 200,
        "only {checked_before} orders before the backup"
    );
    assert_counters_match(client, &SKUS, &present);
    assert_eq!(manifest["order_count"].as_u64(), Some(present.len() as u64));
    for sku in manifest["skus"].as_array().expect("skus") {
        let live = client.sku(sku["id"].as_str().expect("an id"));
        for field in ["total", "available", "reserved", "sold"] {
            assert_eq!(live[field], sku[field], "{field} of {sku} vs {live}");
        }
    }
    // A new cluster: a new id, the epoch after the backup's, new orders taken.
    let cluster = restored.cluster();
    let epoch = manifest["epoch"].as_u64().expect("an epoch");
    assert_eq!(cluster["epoch"].as_u64(), Some(epoch + 1), "{cluster}");
    let (status, order) = client.place_order(SKUS[0], 1, "after-restore");
    assert_eq!(status, 201, "{order}");
    assert!(
        order_id(&order).starts_with(&format!("{}-", epoch + 1)),
        "{order}"
    );
}

/// Flips one byte in the middle of `path`.
fn flip_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read a backup file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(path, bytes).expect("write a backup file");
}

/// A copy of the backup directory `from` at `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a copy");
    for entry in std::fs::read_dir(from).expect("read a backup") {
        let entry = entry.expect("a backup entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a backup file");
    }
}

/// `manifest.json` rewritten by `change`, with `manifest.sha256` made to
/// match: a manifest that only its content can refuse.
fn rewrite_manifest(dir: &Path, change: impl FnOnce(&mut Value)) {
    let mut manifest = manifest(dir);
    change(&mut manifest);
    let text = serde_json::to_vec_pretty(&manifest).expect("JSON");
    std::fs::write(dir.join("manifest.json"), &text).expect("write manifest.json");
    let digest = ring::digest::digest(&ring::digest::SHA256, &text);
    let hex: String = digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    std::fs::write(dir.join("manifest.sha256"), format!("{hex}\n")).expect("write manifest.sha256");
}

/// `flashgate backup verify` finds a flipped byte in every kind of file of a
/// backup, a missing file and a truncated one, and names the file; a good
/// backup passes. `flashgate restore` refuses a non-empty target, a bad
/// backup and a backup of a newer format, and changes nothing then. A
/// backup that is trusted without these checks could fail on the day it is
/// needed.
#[test]
fn verify_finds_damage_and_restore_refuses_what_it_cannot_trust() {
    let server = Launch::new()
        .env("FLASHGATE_SHARDS", "2")
        .env("FLASHGATE_FINISHED_ORDER_RETENTION_SECS", "0")
        .env("FLASHGATE_CONFIRMED_ORDER_RETENTION_SECS", "0")
        .start();
    set_up_skus(server.client());
    let churn = Churn::start(server.client(), 2);
    wait_for_orders(server.client(), 60);
    // Finished orders have left memory: the backup has an archive to damage.
    poll_until("orders to leave memory", COMMAND_TIMEOUT, || {
        server
            .client()
            .metrics_page()
            .lines()
            .find_map(|line| line.strip_prefix("flashgate_orders_retired_total "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|retired| *retired > 10.0)
            .map(|_| ())
    });
    let work = tempfile::tempdir().expect("a temporary directory");
    let good = work.path().join("good");
    backup(&server, &good);
    churn.finish();

    let run = verify(&good);
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("is good"), "{}", run.stdout);
    let archived = manifest(&good)["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|file| file["name"] == "archive.fgb")
        .and_then(|file| file["frames"].as_u64());
    assert!(
        archived > Some(0),
        "the archive is empty: {}",
        manifest(&good)
    );

    let mut cases: Vec<(String, PathBuf, String)> = Vec::new();
    for name in [
        "checkpoint.fgb",
        "log.fgb",
        "archive.fgb",
        "manifest.json",
        "manifest.sha256",
    ] {
        let dir = work.path().join(format!("flipped-{name}"));
        copy_dir(&good, &dir);
        flip_byte(&dir.join(name));
        cases.push((format!("a flipped byte in {name}"), dir, name.into()));
    }
    for name in ["checkpoint.fgb", "archive.fgb", "manifest.json"] {
        let dir = work.path().join(format!("missing-{name}"));
        copy_dir(&good, &dir);
        std::fs::remove_file(dir.join(name)).expect("remove a file");
        cases.push((format!("{name} missing"), dir, name.into()));
        let dir = work.path().join(format!("truncated-{name}"));
        copy_dir(&good, &dir);
        let path = dir.join(name);
        let length = std::fs::metadata(&path).expect("a file").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_len(length - 7))
            .expect("truncate a file");
        cases.push((format!("{name} truncated"), dir, name.into()));
    }
    for (what, dir, name) in &cases {
        let run = verify(dir);
        assert!(
            !run.status.success(),
            "verify passed {what}: {}",
            run.stdout
        );
        assert!(
            run.stderr.contains("is bad") && run.stderr.contains(name.as_str()),
            "verify of {what} does not name {name}: {}",
            run.stderr
        );
    }

    // Restore refuses a bad backup, and leaves no data dir behind.
    let (what, bad_dir, _) = &cases[0];
    let target = work.path().join("from-bad");
    let run = restore(bad_dir, &target);
    assert!(!run.status.success(), "restore took {what}");
    assert!(run.stderr.contains("bad backup"), "{}", run.stderr);
    assert!(!target.exists() && !work.path().join("from-bad.partial").exists());

    // A non-empty target.
    let occupied = work.path().join("occupied");
    std::fs::create_dir_all(&occupied).expect("a directory");
    std::fs::write(occupied.join("keep-me"), b"precious").expect("a file");
    let run = restore(&good, &occupied);
    assert!(!run.status.success());
    assert!(run.stderr.contains("not empty"), "{}", run.stderr);
    assert_eq!(
        std::fs::read(occupied.join("keep-me")).expect("kept"),
        b"precious"
    );

    // A newer backup format, and a newer storage format.
    for field in ["backup_format", "storage_format"] {
        let dir = work.path().join(format!("newer-{field}"));
        copy_dir(&good, &dir);
        rewrite_manifest(&dir, |manifest| {
            manifest[field] = json!(manifest[field].as_u64().expect("a format") + 1)
        });
        let target = work.path().join(format!("from-newer-{field}"));
        let run = restore(&dir, &target);
        assert!(!run.status.success(), "restore took a newer {field}");
        assert!(run.stderr.contains("newer flashgate"), "{}", run.stderr);
        assert!(!target.exists());
    }

    // The manifest's totals are checked against the rebuilt state too.
    let dir = work.path().join("lying-manifest");
    copy_dir(&good, &dir);
    rewrite_manifest(&dir, |manifest| {
        manifest["order_count"] = json!(manifest["order_count"].as_u64().expect("a count") + 1)
    });
    let run = verify(&dir);
    assert!(!run.status.success());
    assert!(run.stderr.contains("orders"), "{}", run.stderr);

    // The good backup restores.
    let run = restore(&good, &work.path().join("from-good"));
    assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
}

/// A backup taken from a standby is the same backup as one taken from its
/// primary at the same LSN (same identity, same totals, same orders): a
/// standby can take the backups, and cost the primary nothing.
#[test]
fn a_backup_of_the_standby_equals_one_of_its_primary() {
    let primary = Launch::new()
        .replicated("127.0.0.1:0")
        .env("FLASHGATE_SHARDS", "2")
        .start();
    let standby_data = tempfile::tempdir().expect("a temporary directory");
    let standby = Launch::new()
        .data_dir(&standby_data.path().join("data"))
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_SHARDS", "2")
        .start();
    set_up_skus(primary.client());
    let churn = Churn::start(primary.client(), 2);
    wait_for_orders(primary.client(), 60);
    churn.finish();
    wait_caught_up(&primary, &standby);
    let work = tempfile::tempdir().expect("a temporary directory");
    let of_primary = backup(&primary, &work.path().join("of-primary"));
    let of_standby = backup(&standby, &work.path().join("of-standby"));
    let fields = [
        "lsn",
        "epoch",
        "epoch_history",
        "cluster_id",
        "shard_count",
        "order_count",
        "skus",
        "state_sha256",
    ];
    let pick = |manifest: &Value| -> HashMap<&str, Value> {
        fields
            .iter()
            .map(|field| (*field, manifest[*field].clone()))
            .collect()
    };
    assert!(
        of_primary["order_count"].as_u64() > Some(60),
        "{of_primary}"
    );
    assert_eq!(pick(&of_standby), pick(&of_primary));
}

/// A node restored as a new cluster (the default) and the old cluster never
/// act on each other: started by mistake as a standby of the old primary,
/// the restored node (whose epoch is above the old primary's) is refused,
/// and the old primary is not fenced: it keeps taking orders. With
/// `--keep-cluster-id` the restored node takes the epoch asked for, and one
/// not above the backup's is refused. Without these rules, a restore drill
/// pointed at the wrong address would stop the live sale.
#[test]
fn a_restored_node_never_fences_or_follows_the_old_cluster() {
    // Asynchronous: the old primary takes orders without a standby.
    let primary = Launch::new()
        .replicated("127.0.0.1:0")
        .arg("--replication")
        .arg("async")
        .env("FLASHGATE_SHARDS", "2")
        .start();
    set_up_skus(primary.client());
    for customer in ["ann", "bob", "cyd"] {
        primary.client().reserve(SKUS[1], 2, customer);
    }
    let work = tempfile::tempdir().expect("a temporary directory");
    let out = work.path().join("backup");
    let manifest = backup(&primary, &out);
    let epoch = manifest["epoch"].as_u64().expect("an epoch");

    let data_dir = work.path().join("restored");
    let run = restore(&out, &data_dir);
    assert!(run.status.success(), "{}", run.stderr);
    let restored = Launch::new()
        .data_dir(&data_dir)
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_SHARDS", "2")
        .start();
    let status =
        restored.wait_for_cluster("the old primary to refuse the restored node", |status| {
            status["peer"]["last_failure"]
                .as_str()
                .is_some_and(|failure| failure.contains("another cluster"))
        });
    assert_eq!(status["epoch"].as_u64(), Some(epoch + 1), "{status}");
    let old = primary.cluster();
    assert_eq!(
        (old["role"].as_str(), old["epoch"].as_u64()),
        (Some("primary"), Some(epoch)),
        "{old}"
    );
    let (status, order) = primary.client().place_order(SKUS[1], 1, "still-selling");
    assert_eq!(
        status, 201,
        "the old primary stopped taking orders: {order}"
    );

    // Keeping the cluster id needs an epoch above the backup's.
    let kept = work.path().join("kept");
    let epoch_text = epoch.to_string();
    let run = flashgate(&[
        "restore",
        "--from",
        path_str(&out),
        "--data-dir",
        path_str(&kept),
        "--keep-cluster-id",
        "--epoch",
        &epoch_text,
    ]);
    assert!(!run.status.success());
    assert!(run.stderr.contains("not above"), "{}", run.stderr);
    assert!(!kept.exists());
    let higher = (epoch + 5).to_string();
    let run = flashgate(&[
        "restore",
        "--from",
        path_str(&out),
        "--data-dir",
        path_str(&kept),
        "--keep-cluster-id",
        "--epoch",
        &higher,
    ]);
    assert!(run.status.success(), "{}", run.stderr);
    let node = Launch::new().data_dir(&kept).start();
    assert_eq!(node.cluster()["epoch"].as_u64(), Some(epoch + 5));
    for customer in ["ann", "bob", "cyd"] {
        let (status, orders) = node.client().get(&format!("/v1/skus/{}", SKUS[1]));
        assert_eq!(status, 200, "{orders} {customer}");
    }
    assert_eq!(node.client().sku(SKUS[1])["reserved"].as_u64(), Some(6));
}

/// The archived LSN the node reports (`flashgate_archive_lsn`).
fn archived_lsn(server: &Server) -> Option<u64> {
    server
        .client()
        .metrics_page()
        .lines()
        .find_map(|line| line.strip_prefix("flashgate_archive_lsn "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map(|value| value as u64)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// A point-in-time restore (a backup, then the log archive replayed after
/// it) holds exactly the orders up to its target, to an LSN and to a time,
/// and every order with the archive replayed to its end; the archive command
/// copies every closed segment, and a gap in the archive is refused. This is
/// what recovers the orders a backup alone would lose, up to the moment
/// before an operator's mistake.
#[test]
fn a_point_in_time_restore_holds_exactly_the_orders_up_to_its_target() {
    let work = tempfile::tempdir().expect("a temporary directory");
    let archive = work.path().join("archive");
    let copies = work.path().join("copies");
    std::fs::create_dir_all(&copies).expect("a directory");
    let mut server = Launch::new()
        .env("FLASHGATE_SHARDS", "2")
        .env("FLASHGATE_ARCHIVE_SEGMENT_BYTES_MAX", "400")
        .arg("--archive-dir")
        .arg(path_str(&archive))
        .arg("--archive-command")
        .arg(format!("cp %p {}/%f", path_str(&copies)))
        .start();
    set_up_skus(server.client());
    let before: Vec<String> = (0..3)
        .map(|i| order_id(&server.client().reserve(SKUS[0], 1, &format!("before-{i}"))))
        .collect();
    let out = work.path().join("backup");
    backup(&server, &out);
    // One order at a time: the LSN it made durable, and a time after it
    // was archived and before the next one was placed.
    let mut after = Vec::new();
    for i in 0..12 {
        let id = order_id(
            &server
                .client()
                .reserve(SKUS[i % 3], 1, &format!("after-{i}")),
        );
        let lsn = server.cluster()["durable_lsn"].as_u64().expect("an LSN");
        poll_until("the order to be archived", COMMAND_TIMEOUT, || {
            (archived_lsn(&server)? >= lsn).then_some(())
        });
        let at_ms = now_ms();
        poll_until("the clock to pass a millisecond", COMMAND_TIMEOUT, || {
            (now_ms() > at_ms).then_some(())
        });
        after.push((id, lsn, at_ms));
    }
    server.kill();

    let check = |name: &str, args: &[&str], present: usize| {
        let data_dir = work.path().join(name);
        let mut command = vec![
            "restore",
            "--from",
            path_str(&out),
            "--data-dir",
            path_str(&data_dir),
            "--archive",
            path_str(&archive),
        ];
        command.extend_from_slice(args);
        let run = flashgate(&command);
        assert!(
            run.status.success(),
            "{name}: {}\n{}",
            run.stdout,
            run.stderr
        );
        let node = Launch::new().data_dir(&data_dir).start();
        for id in &before {
            assert_eq!(
                node.client().get(&format!("/v1/orders/{id}")).0,
                200,
                "{name}: {id}"
            );
        }
        for (index, (id, _, _)) in after.iter().enumerate() {
            let expected = if index < present { 200 } else { 404 };
            assert_eq!(
                node.client().get(&format!("/v1/orders/{id}")).0,
                expected,
                "{name}: order {index} ({id})"
            );
        }
        let reserved: u64 = SKUS
            .iter()
            .map(|sku| {
                node.client().sku(sku)["reserved"]
                    .as_u64()
                    .expect("a count")
            })
            .sum();
        assert_eq!(reserved, (before.len() + present) as u64, "{name}");
        let (status, order) = node.client().place_order(SKUS[0], 1, "after-restore");
        assert_eq!(status, 201, "{name}: {order}");
    };
    let to_lsn = after[4].1.to_string();
    check("to-lsn", &["--to-lsn", &to_lsn], 5);
    let to_time =
        humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(after[8].2))
            .to_string();
    check("to-time", &["--to-time", &to_time], 9);
    check("to-end", &[], after.len());

    // The command copied every closed segment, byte for byte.
    let closed: Vec<PathBuf> = std::fs::read_dir(&archive)
        .expect("the archive")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "fgs"))
        .collect();
    assert!(
        closed.len() >= 2,
        "{closed:?} of {:?}",
        std::fs::read_dir(&archive).map(|entries| entries
            .map(|entry| entry.map(|entry| (
                entry.file_name(),
                entry.metadata().map(|meta| meta.len()).ok()
            )))
            .collect::<Vec<_>>())
    );
    for path in &closed {
        let copy = copies.join(path.file_name().expect("a name"));
        assert_eq!(
            std::fs::read(&copy).expect("a copied segment"),
            std::fs::read(path).expect("a segment"),
            "{}",
            copy.display()
        );
    }
    // A gap: a segment in the middle missing.
    let mut names: Vec<PathBuf> = closed.clone();
    names.sort();
    std::fs::remove_file(&names[1]).expect("remove a segment");
    let data_dir = work.path().join("with-gap");
    let run = flashgate(&[
        "restore",
        "--from",
        path_str(&out),
        "--data-dir",
        path_str(&data_dir),
        "--archive",
        path_str(&archive),
    ]);
    assert!(
        !run.status.success(),
        "restored across a gap: {}",
        run.stdout
    );
    assert!(run.stderr.contains("gap"), "{}", run.stderr);
    assert!(!data_dir.exists());

    // A restored node (a new cluster) does not append to the old archive.
    let exited = Launch::new()
        .data_dir(&work.path().join("to-end"))
        .arg("--archive-dir")
        .arg(path_str(&archive))
        .expect_exit();
    assert!(!exited.status.success());
    assert!(
        exited.stderr.contains("holds the log of cluster"),
        "{}",
        exited.stderr
    );
}
