//! What the fault-injection tests share: guards for the filesystems they mount
//! (a size-limited tmpfs, a bindfs FUSE mount whose process can be frozen),
//! libfiu's remote control, the per-client "nothing acknowledged after the
//! refusal" check, and the audit after a restart.
//!
//! Every guard undoes what it did in `Drop`, also when the test fails: it resumes
//! a frozen process before it unmounts, and unmounts lazily when a mount is
//! still busy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::{
    assert_counters_match, poll_until, settle, Attempt, Client, Outcome, Server, START_TIMEOUT,
};

/// Prints why a fault test cannot run here and returns true; the caller
/// returns. Where the tools exist (this project's CI installs them), tests run.
pub fn skipped(reason: &str) -> bool {
    eprintln!("SKIPPED: {reason}");
    true
}

/// Whether `program` can be found on the PATH.
pub fn have_program(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether this process may mount filesystems (root).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a command to completion and panics, with its output, unless it succeeds.
pub fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether `path` is a mount point right now.
pub fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| mount_point == wanted)
}

/// Unmounts `path`, lazily if it is still busy. Never panics (runs in `Drop`).
fn unmount(path: &Path) {
    if !is_mounted(path) {
        return;
    }
    let plain = Command::new("umount").arg(path).status();
    if plain.is_ok_and(|status| status.success()) {
        return;
    }
    let lazy = Command::new("umount").arg("-l").arg(path).status();
    if !lazy.is_ok_and(|status| status.success()) {
        eprintln!("could not unmount {}; unmount it by hand", path.display());
    }
}

/// A tmpfs of a fixed size, mounted on a fresh directory; unmounted on drop.
/// Declare it before the `Server` that uses it, so the server stops first.
pub struct Tmpfs {
    mount_point: PathBuf,
    _parent: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes`; `None` (after printing why) where this
    /// process may not mount.
    pub fn mount(size_bytes: u64) -> Option<Tmpfs> {
        if !is_root() {
            skipped("mounting a tmpfs needs root");
            return None;
        }
        let parent = tempfile::tempdir().expect("create a temporary directory");
        let mount_point = parent.path().join("tmpfs");
        std::fs::create_dir(&mount_point).expect("create the mount point");
        let options = format!("size={size_bytes},mode=0700");
        let mount_path = mount_point.to_string_lossy().into_owned();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &options, "tmpfs", &mount_path],
        );
        Some(Tmpfs {
            mount_point,
            _parent: parent,
        })
    }

    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Writes `path` until the filesystem is full; returns the bytes written.
    pub fn fill(&self, path: &Path) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(path).expect("create the filler file");
        let block = vec![0xA5u8; 64 * 1024];
        let mut written = 0u64;
        // Bounded by the filesystem's size: every pass writes or stops.
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(count) => written += count as u64,
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(error) => panic!("filling {}: {error}", path.display()),
            }
        }
        // Whatever a smaller write could still take.
        while let Ok(count) = file.write(&block[..512]) {
            if count == 0 {
                break;
            }
            written += count as u64;
        }
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(&self.mount_point);
    }
}

/// A bindfs FUSE mount of a source directory, its bindfs process ours (run in
/// the foreground). `freeze` (SIGSTOP) makes every I/O on the mount hang until
/// `thaw` (SIGCONT): a stuck disk. On drop: thaw, unmount, reap.
pub struct Bindfs {
    process: Option<Child>,
    source: PathBuf,
    mount_point: PathBuf,
    _parent: TempDir,
}

impl Bindfs {
    /// Mounts a fresh source directory on a fresh mount point; `None` (after
    /// printing why) where FUSE or bindfs is not available.
    pub fn mount() -> Option<Bindfs> {
        if !have_program("bindfs") {
            skipped("bindfs is not installed (Debian package bindfs)");
            return None;
        }
        if !Path::new("/dev/fuse").exists() {
            skipped("/dev/fuse does not exist: FUSE is not available");
            return None;
        }
        if !is_root() {
            skipped("a FUSE mount for the stuck-disk test needs root");
            return None;
        }
        let parent = tempfile::tempdir().expect("create a temporary directory");
        let source = parent.path().join("source");
        let mount_point = parent.path().join("mount");
        std::fs::create_dir(&source).expect("create the bindfs source");
        std::fs::create_dir(&mount_point).expect("create the bindfs mount point");
        let process = Command::new("bindfs")
            .arg("-f")
            .arg(&source)
            .arg(&mount_point)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bindfs");
        let mut bindfs = Bindfs {
            process: Some(process),
            source,
            mount_point,
            _parent: parent,
        };
        poll_until("the bindfs mount", START_TIMEOUT, || {
            if let Some(status) = bindfs.process.as_mut().and_then(|p| p.try_wait().ok()?) {
                panic!("bindfs exited before mounting: {status}");
            }
            is_mounted(&bindfs.mount_point).then_some(())
        });
        Some(bindfs)
    }

    /// The mounted directory (I/O here goes through bindfs).
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// The directory underneath (I/O here does not touch bindfs).
    pub fn source(&self) -> &Path {
        &self.source
    }

    fn signal(&self, signal: libc::c_int) {
        let Some(process) = &self.process else { return };
        let pid = libc::pid_t::try_from(process.id()).expect("pid fits pid_t");
        // SAFETY: `pid` is our own child, not yet reaped, so it names that process.
        unsafe { libc::kill(pid, signal) };
    }

    /// SIGSTOP bindfs: from now on every I/O on the mount hangs.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT bindfs: I/O on the mount goes through again.
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Thaws, unmounts and reaps bindfs. Idempotent; never panics.
    pub fn unmount(&mut self) {
        self.thaw();
        if is_mounted(&self.mount_point) {
            let fuse = Command::new("fusermount")
                .arg("-u")
                .arg(&self.mount_point)
                .stderr(Stdio::null())
                .status();
            if !fuse.is_ok_and(|status| status.success()) {
                unmount(&self.mount_point);
            }
        }
        if let Some(mut process) = self.process.take() {
            // bindfs exits once unmounted; make sure of it.
            for _ in 0..100 {
                if process.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for Bindfs {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// A server whose data dir is on a bindfs mount, with the mount. Dropping it
/// thaws bindfs before the server is killed and reaped: a thread of a dying
/// process can wait uninterruptibly inside a frozen FUSE mount (e.g. a write's
/// xattr check), and the process cannot be reaped until bindfs answers.
pub struct ServerOnBindfs {
    pub server: Option<Server>,
    pub bindfs: Bindfs,
}

impl ServerOnBindfs {
    pub fn server(&mut self) -> &mut Server {
        self.server.as_mut().expect("the server is running")
    }
}

impl Drop for ServerOnBindfs {
    fn drop(&mut self) {
        self.bindfs.thaw();
        drop(self.server.take());
        self.bindfs.unmount();
    }
}

/// Whether process `pid` has exited: gone, or a zombie. A process whose last
/// thread is stuck in the kernel (a frozen FUSE mount) stays a zombie until
/// the kernel lets that thread go; it has exited all the same: it answers
/// nothing, holds no port, and its exit status is decided.
pub fn has_exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some('Z' | 'X'))
}

/// libfiu's remote control of a process started under `fiu-run -x -f PREFIX`.
pub struct Fiu {
    control_prefix: PathBuf,
    _dir: TempDir,
}

impl Fiu {
    /// `None` (after printing why) where libfiu's tools are not installed.
    pub fn available() -> Option<Fiu> {
        if !have_program("fiu-run") || !have_program("fiu-ctrl") {
            skipped("fiu-run/fiu-ctrl are not installed (Debian package fiu-utils)");
            return None;
        }
        let dir = tempfile::tempdir().expect("create a temporary directory");
        Some(Fiu {
            control_prefix: dir.path().join("fiu-ctrl"),
            _dir: dir,
        })
    }

    /// The `fiu-run` arguments that preload libfiu's POSIX wrappers and open
    /// the remote control (for `Launch::wrapped_by("fiu-run", ..)`).
    pub fn run_args(&self) -> Vec<String> {
        vec![
            "-x".to_owned(),
            "-f".to_owned(),
            self.control_prefix.to_string_lossy().into_owned(),
        ]
    }

    /// Runs `fiu-ctrl -c COMMAND ... PID`.
    pub fn control(&self, pid: u32, commands: &[&str]) {
        let prefix = self.control_prefix.to_string_lossy().into_owned();
        let pid = pid.to_string();
        let mut args = vec!["-f", prefix.as_str()];
        for command in commands {
            args.extend(["-c", command]);
        }
        args.push(&pid);
        run("fiu-ctrl", &args);
    }
}

/// Puts a SKU with more stock than any test here sells, so every refusal comes
/// from the fault, never from an empty shelf.
pub fn put_skus(client: &Client, skus: &[&str]) {
    for sku in skus {
        client.put_sku(sku, json!({ "stock": 1_000_000 }));
    }
}

/// Each burst thread's attempts, in the order it made them (keys are
/// `NAME-THREAD-INDEX`).
fn by_thread(attempts: &[Attempt]) -> BTreeMap<String, Vec<(usize, &Attempt)>> {
    let mut threads: BTreeMap<String, Vec<(usize, &Attempt)>> = BTreeMap::new();
    for attempt in attempts {
        let (thread, index) = attempt
            .idempotency_key
            .rsplit_once('-')
            .expect("burst keys are NAME-THREAD-INDEX");
        let index = index.parse().expect("the index is a number");
        threads
            .entry(thread.to_owned())
            .or_default()
            .push((index, attempt));
    }
    for attempts in threads.values_mut() {
        attempts.sort_by_key(|(index, _)| *index);
    }
    threads
}

/// Fail-stop as each client saw it: once a client was refused with `code`, it
/// got no acknowledgement (2xx) again. Returns how many refusals with `code`
/// there were.
pub fn assert_nothing_acknowledged_after(attempts: &[Attempt], code: &str) -> usize {
    let mut refusals = 0;
    for (thread, attempts) in by_thread(attempts) {
        let mut refused_at = None;
        for (index, attempt) in attempts {
            match &attempt.outcome {
                Outcome::Answered(503, body) if body["code"] == code => {
                    refusals += 1;
                    refused_at.get_or_insert(index);
                }
                Outcome::Created(order) => assert!(
                    refused_at.is_none(),
                    "client {thread} was refused with {code} at attempt {refused_at:?}, then got order {order} acknowledged at attempt {index}"
                ),
                _ => {}
            }
        }
    }
    refusals
}

/// What `audit` found on the restarted node.
#[derive(Debug)]
pub struct Audit {
    /// Orders the clients got a 201 for; every one was found as acknowledged.
    pub acknowledged: usize,
    /// Acknowledged orders missing or changed: always 0 (`audit` panics first).
    pub lost: usize,
    /// Units sold or reserved beyond a SKU's total: always 0.
    pub oversold: u64,
}

/// After a restart: every acknowledged order is there as acknowledged, every
/// attempt without an answer is settled under its key, and each SKU's counters
/// add up to its total and agree with its orders.
pub fn audit(client: &Client, skus: &[&str], attempts: &[Attempt]) -> Audit {
    let acknowledged = attempts.iter().filter(|a| a.created().is_some()).count();
    let settled = settle(client, attempts);
    assert_counters_match(client, skus, &settled.orders);
    let mut oversold = 0;
    for sku in skus {
        let body = client.sku(sku);
        let count = |field: &str| body[field].as_u64().expect("counters are numbers");
        let held = count("available") + count("reserved") + count("sold");
        assert_eq!(held, count("total"), "sku {sku}: {body}");
        oversold += (count("reserved") + count("sold")).saturating_sub(count("total"));
    }
    Audit {
        acknowledged,
        lost: 0,
        oversold,
    }
}
