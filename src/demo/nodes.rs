//! The demo's two nodes: the `flashgate serve` command line of each (pure,
//! `serve_args`), and `Nodes`, which owns the running processes and kills
//! them when it is dropped, so that neither an error nor a panic leaves a node
//! running.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The longest a node may take to print its HTTP address.
pub const NODE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the log is read while waiting for a node to listen.
const START_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Lines of a node's log quoted when it fails to start.
const LOG_TAIL_LINES: usize = 15;
/// The line `flashgate serve` prints once it takes HTTP requests.
pub const HTTP_LISTENING_PREFIX: &str = "flashgate: listening on http ";

/// The pair's replication settings: an order is acknowledged only once both
/// nodes have it, and a primary whose standby is gone refuses orders rather
/// than go on alone.
pub const REPLICATION: &str = "sync";
pub const STANDBY_LOSS: &str = "block";

/// How a node starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeRole {
    Primary,
    /// Follows the primary whose replication address is `follow`.
    Standby {
        follow: SocketAddr,
    },
}

/// Everything that differs between the two nodes' command lines.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// `a`, `b`, or `c` (the standby `--console` adds).
    pub name: &'static str,
    pub role: ServeRole,
    pub data_dir: PathBuf,
    /// Where this node listens for a standby. Both nodes get one, so that the
    /// standby, once promoted, can take a standby of its own.
    pub replication_addr: SocketAddr,
    pub cluster_secret_file: PathBuf,
    /// The load tester's credentials: a service token (orders for every
    /// customer) and a payments token (confirmations).
    pub service_tokens_file: PathBuf,
    pub payments_tokens_file: PathBuf,
}

/// The arguments of `flashgate` for a node: HTTP and QUIC on free loopback
/// ports (the node prints the ones it got). The admin token is not among them
/// (it goes in the environment, out of sight of `ps`).
pub fn serve_args(spec: &NodeSpec) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["serve".into()];
    let mut flag = |name: &str, value: OsString| {
        args.push(name.into());
        args.push(value);
    };
    match &spec.role {
        ServeRole::Primary => flag("--role", "primary".into()),
        ServeRole::Standby { follow } => {
            flag("--role", "standby".into());
            flag("--follow", follow.to_string().into());
        }
    }
    flag("--data-dir", spec.data_dir.clone().into_os_string());
    flag("--http-addr", "127.0.0.1:0".into());
    flag("--quic-addr", "127.0.0.1:0".into());
    flag(
        "--replication-addr",
        spec.replication_addr.to_string().into(),
    );
    flag("--replication", REPLICATION.into());
    flag("--standby-loss", STANDBY_LOSS.into());
    flag(
        "--cluster-secret-file",
        spec.cluster_secret_file.clone().into_os_string(),
    );
    flag(
        "--service-tokens-file",
        spec.service_tokens_file.clone().into_os_string(),
    );
    flag(
        "--payments-tokens-file",
        spec.payments_tokens_file.clone().into_os_string(),
    );
    args
}

/// The whole command for a node: this executable with `serve_args`, the admin
/// token in the environment, and none of the caller's other `FLASHGATE_*`
/// settings (the demo's nodes are configured by the demo alone).
pub fn serve_command(executable: &Path, spec: &NodeSpec, admin_token: &str) -> Command {
    let mut command = Command::new(executable);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FLASHGATE_") {
            command.env_remove(name);
        }
    }
    command
        .args(serve_args(spec))
        .env("FLASHGATE_ADMIN_TOKEN", admin_token);
    command
}

/// The address on the first line of `log` that starts with `prefix`.
pub fn listening_address(log: &str, prefix: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|address| address.trim().to_owned())
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a node did not come up.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open its log {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {executable}: {source}")]
    Spawn {
        executable: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("it exited ({status}) before it listened; the end of {log}:\n{tail}")]
    Exited {
        status: ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("it did not print its HTTP address within {timeout:?}; the end of {log}:\n{tail}")]
    Timeout {
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("it printed an HTTP address that is not host:port: {0:?}")]
    BadAddress(String),
}

/// A node process the demo started.
struct Running {
    name: &'static str,
    child: Child,
}

/// The running nodes. Dropping it kills (SIGKILL) and reaps every node still
/// running.
pub struct Nodes {
    running: Arc<Mutex<Vec<Running>>>,
}

/// A handle that can kill every node, for the signal handler; it does not
/// kill on drop.
#[derive(Clone)]
pub struct Killer {
    running: Arc<Mutex<Vec<Running>>>,
}

fn lock(running: &Mutex<Vec<Running>>) -> MutexGuard<'_, Vec<Running>> {
    // Killing must work even after a panic elsewhere while the lock was held.
    running
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn kill_all(running: &Mutex<Vec<Running>>) {
    for mut node in lock(running).drain(..) {
        // The node may have exited already; either way, reap it.
        let _ = node.child.kill();
        let _ = node.child.wait();
    }
}

impl Nodes {
    pub fn new() -> Nodes {
        Nodes {
            running: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn killer(&self) -> Killer {
        Killer {
            running: Arc::clone(&self.running),
        }
    }

    /// Starts `command` as node `name`, its stdout and stderr appended to
    /// `log`, and returns its pid. The node gets a process group of its own
    /// (a Ctrl-C in the terminal reaches the demo, which then stops the
    /// nodes), and on Linux it is killed if the thread that started it dies
    /// without cleaning up (start nodes from the main thread).
    pub fn start(
        &self,
        name: &'static str,
        mut command: Command,
        log: &Path,
    ) -> Result<u32, StartError> {
        let log_error = |source| StartError::Log {
            path: log.to_path_buf(),
            source,
        };
        let stdout = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(log_error)?;
        let stderr = stdout.try_clone().map_err(log_error)?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        die_with_parent(&mut command);
        // Spawn under the lock, so that a signal handler killing every node
        // cannot run between the spawn and the registration.
        let mut running = lock(&self.running);
        let child = command.spawn().map_err(|source| StartError::Spawn {
            executable: PathBuf::from(command.get_program()),
            source,
        })?;
        let pid = child.id();
        running.push(Running { name, child });
        Ok(pid)
    }

    /// How node `name` exited, if it has.
    pub fn exited(&self, name: &str) -> Option<ExitStatus> {
        let mut running = lock(&self.running);
        let node = running.iter_mut().find(|node| node.name == name)?;
        node.child.try_wait().ok().flatten()
    }

    /// SIGKILL node `name` and reap it: it gets no chance to flush or to say
    /// goodbye to its standby. Returns once it is gone.
    pub fn kill(&self, name: &str) -> io::Result<()> {
        let mut running = lock(&self.running);
        let Some(index) = running.iter().position(|node| node.name == name) else {
            return Ok(());
        };
        let mut node = running.remove(index);
        node.child.kill()?;
        node.child.wait().map(|_| ())
    }

    /// Waits until node `name` prints its HTTP address in `log`, and returns
    /// it. Bounded by `timeout`; fails at once if the node exits.
    pub fn wait_for_http(
        &self,
        name: &str,
        log: &Path,
        timeout: Duration,
    ) -> Result<SocketAddr, StartError> {
        let deadline = Instant::now() + timeout;
        let read = || {
            std::fs::read(log)
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                .unwrap_or_default()
        };
        loop {
            let text = read();
            if let Some(address) = listening_address(&text, HTTP_LISTENING_PREFIX) {
                return address.parse().map_err(|_| StartError::BadAddress(address));
            }
            if let Some(status) = self.exited(name) {
                // Read again for the tail: what it wrote between the read
                // above and its exit is in the file now.
                let text = read();
                return Err(StartError::Exited {
                    status,
                    log: log.to_path_buf(),
                    tail: tail(&text, LOG_TAIL_LINES),
                });
            }
            if Instant::now() >= deadline {
                return Err(StartError::Timeout {
                    timeout,
                    log: log.to_path_buf(),
                    tail: tail(&text, LOG_TAIL_LINES),
                });
            }
            std::thread::sleep(START_POLL_INTERVAL);
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        kill_all(&self.running);
    }
}

impl Killer {
    /// Kills and reaps every node still running.
    pub fn kill_all(&self) {
        kill_all(&self.running);
    }
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it dies,
/// so that even a demo killed with SIGKILL leaves no node behind.
#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec; it calls
    // only prctl and getppid, which are async-signal-safe, and allocates
    // nothing (an io::Error from an OS error code holds just the code).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the request took effect.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(role: ServeRole) -> NodeSpec {
        NodeSpec {
            name: "b",
            role,
            data_dir: PathBuf::from("/tmp/demo/node-b"),
            replication_addr: "127.0.0.1:7002".parse().unwrap(),
            cluster_secret_file: PathBuf::from("/tmp/demo/cluster-secret"),
            service_tokens_file: PathBuf::from("/tmp/demo/service-tokens"),
            payments_tokens_file: PathBuf::from("/tmp/demo/payments-tokens"),
        }
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect()
    }

    #[test]
    fn a_standby_follows_the_primary_and_both_listen_for_replication() {
        let follow = "127.0.0.1:7001".parse().unwrap();
        let args = strings(serve_args(&spec(ServeRole::Standby { follow })));
        assert_eq!(
            args,
            [
                "serve",
                "--role",
                "standby",
                "--follow",
                "127.0.0.1:7001",
                "--data-dir",
                "/tmp/demo/node-b",
                "--http-addr",
                "127.0.0.1:0",
                "--quic-addr",
                "127.0.0.1:0",
                "--replication-addr",
                "127.0.0.1:7002",
                "--replication",
                "sync",
                "--standby-loss",
                "block",
                "--cluster-secret-file",
                "/tmp/demo/cluster-secret",
                "--service-tokens-file",
                "/tmp/demo/service-tokens",
                "--payments-tokens-file",
                "/tmp/demo/payments-tokens",
            ]
        );
    }

    #[test]
    fn a_primary_follows_nobody_and_the_token_stays_off_the_command_line() {
        let args = strings(serve_args(&spec(ServeRole::Primary)));
        assert_eq!(&args[..3], ["serve", "--role", "primary"]);
        assert!(!args.iter().any(|arg| arg == "--follow"));
        assert!(args.iter().any(|arg| arg == "--replication-addr"));

        let command = serve_command(
            Path::new("/bin/flashgate"),
            &spec(ServeRole::Primary),
            "token-0123456789abcdef",
        );
        assert!(!command
            .get_args()
            .any(|arg| arg.to_string_lossy().contains("token-")));
        assert!(command
            .get_envs()
            .any(|(name, value)| name == "FLASHGATE_ADMIN_TOKEN"
                && value == Some("token-0123456789abcdef".as_ref())));
    }

    #[test]
    fn the_http_address_is_read_from_the_log() {
        let log = "flashgate: QUIC certificate /d/cert.pem sha256 ab12\n\
                   flashgate: listening on quic 127.0.0.1:40001\n\
                   2026-01-01T00:00:00Z INFO replication ready\n\
                   flashgate: listening on http 127.0.0.1:40002\n";
        assert_eq!(
            listening_address(log, HTTP_LISTENING_PREFIX).as_deref(),
            Some("127.0.0.1:40002")
        );
        assert_eq!(listening_address("starting\n", HTTP_LISTENING_PREFIX), None);
        assert_eq!(tail("1\n2\n3\n", 2), "2\n3");
        assert_eq!(tail("", 2), "");
    }

    fn is_gone(pid: u32) -> bool {
        // SAFETY: signal 0 only checks whether the process exists.
        let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
        result == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    #[test]
    fn dropping_the_nodes_kills_every_process_and_kill_stops_one() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleep.log");
        let nodes = Nodes::new();
        let sleep = |name| {
            let mut command = Command::new("sleep");
            command.arg("600");
            nodes.start(name, command, &log).unwrap()
        };
        let first = sleep("a");
        let second = sleep("b");
        assert!(!is_gone(first) && !is_gone(second));
        assert_eq!(nodes.exited("a"), None);

        nodes.kill("a").unwrap();
        assert!(is_gone(first), "kill reaps the node");
        assert!(!is_gone(second));
        nodes.kill("a").unwrap();

        drop(nodes);
        assert!(is_gone(second), "drop kills and reaps what is left");
    }

    #[test]
    fn a_node_that_exits_before_it_listens_is_reported_with_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node.log");
        let nodes = Nodes::new();
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'flashgate: invalid configuration: no secret' >&2; exit 2",
        ]);
        nodes.start("a", command, &log).unwrap();
        let error = nodes
            .wait_for_http("a", &log, NODE_START_TIMEOUT)
            .unwrap_err();
        assert!(matches!(error, StartError::Exited { .. }), "{error}");
        assert!(error.to_string().contains("no secret"), "{error}");
    }

    #[test]
    fn a_node_that_listens_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("node.log");
        let nodes = Nodes::new();
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'flashgate: listening on http 127.0.0.1:45678'; exec sleep 600",
        ]);
        let pid = nodes.start("a", command, &log).unwrap();
        let address = nodes.wait_for_http("a", &log, NODE_START_TIMEOUT).unwrap();
        assert_eq!(address, "127.0.0.1:45678".parse().unwrap());
        drop(nodes);
        assert!(is_gone(pid));
    }
}
