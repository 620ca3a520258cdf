//! What the black-box tests share: `Launch` starts the real `flashgate` binary on
//! free ports (HTTP and QUIC), `Server` owns the running process, `Client` talks HTTP to it the
//! way a user would, and `Burst` keeps orders flowing from several threads while
//! a test kills or stops the process. `audit` records every answer clients
//! got across kills, restarts and failovers, and audits a node against it.
//!
//! Every wait here is bounded: a test that cannot reach the state it waits for
//! fails with a message saying what it waited for, instead of hanging.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod audit;
pub mod faults;
pub mod netns;
pub mod pair;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The admin token every test server is started with.
pub const ADMIN_TOKEN: &str = "integration-test-admin-token";
/// The service, payments and operator tokens every test server knows.
pub const SERVICE_TOKEN: &str = "integration-test-service-token";
pub const PAYMENTS_TOKEN: &str = "integration-test-payments-token";
pub const OPERATOR_TOKEN: &str = "integration-test-operator-token";
/// The HMAC secret of the buyer tokens every test server takes.
pub const JWT_SECRET: &str = "integration-test-buyer-token-secret-0123456789";

/// A buyer token (JWT, HS256) for `customer`, valid for an hour.
pub fn buyer_token(customer: &str) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
    }
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims { sub: customer, exp },
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign a buyer token")
}

/// Longest wait for the process to print its listening line, or to exit.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest wait for a graceful shutdown after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest any single HTTP request may take before the client gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `poll_until` waits between two looks.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

const LISTENING_PREFIX: &str = "flashgate: listening on http ";
/// The line of a node serving its HTTP API over TLS (`--http-tls-cert`).
const HTTPS_LISTENING_PREFIX: &str = "flashgate: listening on https ";
const QUIC_LISTENING_PREFIX: &str = "flashgate: listening on quic ";
const QUIC_CERTIFICATE_PREFIX: &str = "flashgate: QUIC certificate ";
const REPLICATION_LISTENING_PREFIX: &str = "flashgate: listening on replication ";
/// The cluster secret of test clusters (`Launch::replicated`).
pub const CLUSTER_SECRET: &str = "integration-test-cluster-secret";

/// Where a server listens for QUIC and the certificate it printed.
#[derive(Clone, Debug)]
pub struct QuicEndpoint {
    pub addr: std::net::SocketAddr,
    /// The PEM certificate file the server printed.
    pub certificate: PathBuf,
    /// The SHA-256 of the certificate's DER it printed, lowercase hex.
    pub sha256: String,
}

/// How to start `flashgate serve`: a data dir (a fresh temporary one unless
/// given), extra environment variables and extra arguments, and optionally a
/// network namespace to run in.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    data_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    netns: Option<NetnsPlacement>,
    /// A program (and its arguments) that runs flashgate, e.g. `fiu-run -x`.
    wrapper: Vec<String>,
    /// The admin token, when not `ADMIN_TOKEN`.
    admin_token: Option<String>,
    /// The operator tokens file's text, when not `OPERATOR_TOKEN`.
    operator_tokens: Option<String>,
}

/// Where a process runs when it runs in a network namespace of its own.
#[derive(Clone, Debug)]
struct NetnsPlacement {
    /// The namespace's name, as `ip netns` knows it.
    name: String,
    /// The address (of that namespace) the HTTP and QUIC front ends bind.
    host: std::net::IpAddr,
}

/// A process that exited on its own: how, and what it wrote to stderr.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stderr: String,
}

impl Launch {
    pub fn new() -> Launch {
        Launch::default()
    }

    /// Uses `data_dir` instead of a fresh temporary directory, e.g. to restart on
    /// the data of an earlier process.
    pub fn data_dir(mut self, data_dir: &Path) -> Launch {
        self.data_dir = Some(data_dir.to_path_buf());
        self
    }

    /// Another admin token than `ADMIN_TOKEN` (the test client's admin calls
    /// then fail: send this token yourself).
    pub fn admin_token(mut self, token: &str) -> Launch {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// The operator tokens file's text (one token a line) instead of
    /// `OPERATOR_TOKEN`.
    pub fn operator_tokens(mut self, tokens: &str) -> Launch {
        self.operator_tokens = Some(tokens.to_owned());
        self
    }

    /// Sets an environment variable of the process, e.g. `FLASHGATE_SHARDS`.
    pub fn env(mut self, name: &str, value: &str) -> Launch {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A node of a test cluster: the cluster secret, and a replication listener
    /// on `replication_addr` (`127.0.0.1:0` for any free port).
    pub fn replicated(self, replication_addr: &str) -> Launch {
        self.env("FLASHGATE_CLUSTER_SECRET", CLUSTER_SECRET)
            .arg("--replication-addr")
            .arg(replication_addr)
    }

    /// A standby of the primary whose replication listener is at `primary`.
    pub fn standby_of(self, primary: &str) -> Launch {
        self.arg("--role")
            .arg("standby")
            .arg("--follow")
            .arg(primary)
    }

    /// Runs the process inside the network namespace `name` (through `ip
    /// netns exec`, which execs in place, so the process id is flashgate's),
    /// its HTTP and QUIC front ends bound to `host`, an address of that
    /// namespace the test process can reach.
    pub fn in_netns(mut self, name: &str, host: std::net::IpAddr) -> Launch {
        self.netns = Some(NetnsPlacement {
            name: name.to_owned(),
            host,
        });
        self
    }

    /// Runs flashgate through `program` (with `args` before flashgate's command
    /// line), e.g. `fiu-run -x`; the wrapper must exec flashgate in its place, so
    /// the process id is flashgate's.
    pub fn wrapped_by(mut self, program: &str, args: &[&str]) -> Launch {
        self.wrapper = std::iter::once(program)
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        self
    }

    /// Adds a command-line argument after the standard ones.
    pub fn arg(mut self, arg: impl Into<String>) -> Launch {
        self.args.push(arg.into());
        self
    }

    /// Starts the process and returns once it accepts connections. Panics, with
    /// the process's stderr, if it exits first or does not listen within
    /// `START_TIMEOUT`.
    pub fn start(self) -> Server {
        let log_dir = tempfile::tempdir().expect("create a temporary log dir");
        let (data_dir, owned_data_dir) = match &self.data_dir {
            Some(data_dir) => (data_dir.clone(), None),
            None => {
                let owned = tempfile::tempdir().expect("create a temporary data dir");
                (owned.path().join("data"), Some(owned))
            }
        };
        let stderr_path = log_dir.path().join("stderr.log");
        let mut child = self
            .command(&data_dir, &stderr_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn flashgate");

        // Read stdout on a thread so the wait for the listening line is bounded,
        // and keep reading after it so the pipe never fills.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Once the listening line is found nobody receives; keep draining.
                let _ = lines_sender.send(line);
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        // The QUIC lines come before the HTTP line.
        let mut quic_addr = None;
        let mut quic_certificate = None;
        let mut replication_addr = None;
        let (scheme, addr) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(LISTENING_PREFIX) {
                        break ("http", addr.trim().to_owned());
                    }
                    if let Some(addr) = line.strip_prefix(HTTPS_LISTENING_PREFIX) {
                        break ("https", addr.trim().to_owned());
                    }
                    if let Some(addr) = line.strip_prefix(REPLICATION_LISTENING_PREFIX) {
                        replication_addr = Some(addr.trim().to_owned());
                    }
                    if let Some(addr) = line.strip_prefix(QUIC_LISTENING_PREFIX) {
                        quic_addr = Some(addr.trim().parse().unwrap_or_else(|error| {
                            panic!("unreadable QUIC address in {line:?}: {error}")
                        }));
                    }
                    if let Some(rest) = line.strip_prefix(QUIC_CERTIFICATE_PREFIX) {
                        let (path, sha256) = rest
                            .rsplit_once(" sha256 ")
                            .unwrap_or_else(|| panic!("unreadable certificate line {line:?}"));
                        quic_certificate = Some((PathBuf::from(path), sha256.trim().to_owned()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_bounded(&mut child, START_TIMEOUT);
                    panic!(
                        "flashgate exited ({status:?}) before it listened; stderr:\n{}",
                        read_to_string_lossy(&stderr_path)
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "flashgate did not print its listening line within {START_TIMEOUT:?}; stderr:\n{}",
                        read_to_string_lossy(&stderr_path)
                    );
                }
            }
        };
        let quic = match (quic_addr, quic_certificate) {
            (Some(addr), Some((certificate, sha256))) => Some(QuicEndpoint {
                addr,
                certificate,
                sha256,
            }),
            (None, None) => None,
            (addr, certificate) => panic!(
                "flashgate printed only one of its QUIC lines: address {addr:?}, certificate {certificate:?}"
            ),
        };
        Server {
            child: Some(child),
            client: Client::new(format!("{scheme}://{addr}")),
            quic,
            replication_addr,
            data_dir,
            stderr_path,
            _log_dir: log_dir,
            _owned_data_dir: owned_data_dir,
        }
    }

    /// Runs a process that is expected to fail at start-up and returns how it
    /// exited. Panics if it starts listening or runs longer than `START_TIMEOUT`.
    pub fn expect_exit(self) -> Exited {
        let log_dir = tempfile::tempdir().expect("create a temporary log dir");
        let data_dir = match &self.data_dir {
            Some(data_dir) => data_dir.clone(),
            None => log_dir.path().join("data"),
        };
        let stderr_path = log_dir.path().join("stderr.log");
        let mut child = self
            .command(&data_dir, &stderr_path)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn flashgate");
        let status = wait_bounded(&mut child, START_TIMEOUT);
        let stderr = read_to_string_lossy(&stderr_path);
        let Some(status) = status else {
            panic!(
                "flashgate was expected to exit at start-up but still ran after {START_TIMEOUT:?}; stderr:\n{stderr}"
            );
        };
        Exited { status, stderr }
    }

    fn command(&self, data_dir: &Path, stderr_path: &Path) -> Command {
        let stderr = std::fs::File::create(stderr_path).expect("create the stderr log");
        // Every test server knows the test credentials, kept beside its log.
        let credentials_dir = stderr_path.parent().expect("the log dir");
        let credential_file = |name: &str, content: &str| {
            let path = credentials_dir.join(name);
            std::fs::write(&path, content).expect("write a credentials file");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod a credentials file");
            path
        };
        let credential_args = [
            (
                "--service-tokens-file",
                credential_file("service-tokens", SERVICE_TOKEN),
            ),
            (
                "--payments-tokens-file",
                credential_file("payments-tokens", PAYMENTS_TOKEN),
            ),
            (
                "--operator-tokens-file",
                credential_file(
                    "operator-tokens",
                    self.operator_tokens.as_deref().unwrap_or(OPERATOR_TOKEN),
                ),
            ),
            (
                "--jwt-hmac-secret-file",
                credential_file("jwt-secret", JWT_SECRET),
            ),
        ];
        let binary = env!("CARGO_BIN_EXE_flashgate");
        // The program that runs flashgate: a wrapper that execs it in place
        // (`fiu-run -x`), `ip netns exec` into a namespace, or flashgate itself.
        let mut program: Vec<String> = self.wrapper.clone();
        let front_end_addr = match &self.netns {
            Some(placement) => {
                let netns = ["ip", "netns", "exec", placement.name.as_str()];
                program.splice(0..0, netns.iter().map(|part| (*part).to_owned()));
                std::net::SocketAddr::new(placement.host, 0).to_string()
            }
            None => "127.0.0.1:0".to_owned(),
        };
        let mut command = match program.split_first() {
            None => Command::new(binary),
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(binary);
                command
            }
        };
        // Settings of the environment the tests run in must not leak into the server.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("FLASHGATE_") {
                command.env_remove(name);
            }
        }
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg(&front_end_addr)
            .arg("--quic-addr")
            .arg(&front_end_addr)
            .arg("--admin-token")
            .arg(self.admin_token.as_deref().unwrap_or(ADMIN_TOKEN))
            .args(credential_args.iter().flat_map(|(flag, path)| {
                [
                    std::ffi::OsString::from(flag),
                    path.clone().into_os_string(),
                ]
            }))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stderr(Stdio::from(stderr));
        command
    }
}

/// A running `flashgate serve`. Dropping it kills the process.
pub struct Server {
    child: Option<Child>,
    client: Client,
    quic: Option<QuicEndpoint>,
    replication_addr: Option<String>,
    data_dir: PathBuf,
    stderr_path: PathBuf,
    _log_dir: TempDir,
    _owned_data_dir: Option<TempDir>,
}

impl Server {
    /// Starts a server on a fresh data dir with default settings.
    pub fn start() -> Server {
        Launch::new().start()
    }

    /// A client for this server; clone it to use it from other threads.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn base_url(&self) -> &str {
        &self.client.base_url
    }

    /// Where the server listens for QUIC; `None` when started with `--no-quic`.
    pub fn quic(&self) -> Option<&QuicEndpoint> {
        self.quic.as_ref()
    }

    pub fn admin_token(&self) -> &str {
        ADMIN_TOKEN
    }

    /// Where the server listens for replication (`host:port`), when it does.
    pub fn replication_addr(&self) -> &str {
        self.replication_addr
            .as_deref()
            .expect("the server listens for replication")
    }

    /// `GET /v1/cluster`.
    pub fn cluster(&self) -> Value {
        let (status, body) = self.client.get("/v1/cluster");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until `GET /v1/cluster` satisfies `check`; returns that status.
    pub fn wait_for_cluster(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        poll_until(what, START_TIMEOUT, || {
            let status = self.cluster();
            check(&status).then_some(status)
        })
    }

    /// `POST /v1/admin/promote`; panics unless it answers 200.
    pub fn promote(&self) -> Value {
        let (status, body) = self.client.admin_post("/v1/admin/promote", &json!({}));
        assert_eq!(status, 200, "promote: {body}");
        body
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A `kB` field of the process's `/proc/<pid>/status` (`VmRSS:`,
    /// `VmHWM:`, …).
    pub fn status_kib(&self, field: &str) -> u64 {
        let pid = self.pid().expect("the server runs");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read its status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("a {field} line"))
    }

    /// The process's resident memory in KiB.
    pub fn resident_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The process id, e.g. to SIGSTOP it; `None` once it was killed or
    /// stopped by this handle (the id may then name another process).
    pub fn pid(&self) -> Option<libc::pid_t> {
        let child = self.child.as_ref()?;
        libc::pid_t::try_from(child.id()).ok()
    }

    /// Waits (at most `timeout`) for the process to exit on its own and returns
    /// how it exited; panics, with its stderr, if it still runs then.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        match wait_bounded(&mut child, timeout) {
            Some(status) => status,
            None => panic!(
                "flashgate still ran {timeout:?} later; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`, `libc::SIGSTOP`) to the process
    /// and returns.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.pid().expect("the server is running");
        // SAFETY: `pid` is our own child, not yet reaped, so it names that process.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            sent,
            0,
            "signal {signal} to flashgate: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Everything the process wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        read_to_string_lossy(&self.stderr_path)
    }

    /// SIGKILL: the process gets no chance to flush or checkpoint. Returns once it
    /// is gone, so its data dir can be reopened.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().expect("SIGKILL flashgate");
        child.wait().expect("reap flashgate");
    }

    /// SIGTERM, then waits (at most `STOP_TIMEOUT`) for the process to exit and
    /// returns its exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: `pid` is our own child, not yet reaped, so it names that process.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(
            sent,
            0,
            "SIGTERM flashgate: {}",
            std::io::Error::last_os_error()
        );
        match wait_bounded(&mut child, STOP_TIMEOUT) {
            Some(status) => status,
            None => panic!(
                "flashgate did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let stderr = self.stderr();
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- last lines of flashgate's stderr ({}) ---\n{}",
                self.client.base_url,
                tail.join("\n")
            );
        }
    }
}

/// Waits for `child` to exit, at most `timeout`; kills it if it is still running
/// then and returns `None`.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for flashgate") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn read_to_string_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Calls `check` until it returns `Some`, at most `timeout`; panics naming `what`
/// if it never does.
pub fn poll_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// An HTTP answer, whatever its status.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|error| {
            panic!(
                "status {} body is not JSON ({error}): {:?}",
                self.status, self.text
            )
        })
    }
}

/// Talks to one server over HTTP with a pooled keep-alive agent. Cheap to clone;
/// clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base_url: String,
    /// Sent as `Authorization: Bearer` with every request built by `request`
    /// (the admin token unless `with_credential` said otherwise).
    credential: Option<String>,
}

impl Client {
    fn new(base_url: String) -> Client {
        let agent = ureq::AgentBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .try_proxy_from_env(false)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .build();
        Client {
            agent,
            base_url,
            credential: Some(ADMIN_TOKEN.to_owned()),
        }
    }

    /// The same client (sharing the pool) sending `credential`, or none.
    pub fn with_credential(&self, credential: Option<&str>) -> Client {
        Client {
            credential: credential.map(str::to_owned),
            ..self.clone()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request to build by hand, for the cases the helpers do not cover.
    pub fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &self.url(path));
        match &self.credential {
            Some(credential) => request.set("Authorization", &format!("Bearer {credential}")),
            None => request,
        }
    }

    /// Sends `request` with `body` (or none) and returns the answer for every
    /// status; `Err` only when no HTTP answer came back.
    pub fn try_send(&self, request: ureq::Request, body: Option<&str>) -> Result<Answer, String> {
        let result = match body {
            Some(body) => request.send_string(body),
            None => request.call(),
        };
        read_answer(result)
    }

    /// Like `try_send`, but a missing answer fails the test.
    pub fn send(&self, request: ureq::Request, body: Option<&str>) -> Answer {
        let description = format!("{} {}", request.method(), request.url());
        self.try_send(request, body)
            .unwrap_or_else(|error| panic!("{description}: no answer: {error}"))
    }

    /// `GET /metrics` with this client's credential (operator data: the
    /// default admin token may read it); panics unless it answers 200.
    pub fn metrics_page(&self) -> String {
        let answer = self.send(self.request("GET", "/metrics"), None);
        assert_eq!(answer.status, 200, "{}", answer.text);
        answer.text
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let answer = self.send(self.request("GET", path), None);
        (answer.status, answer.json())
    }

    /// POSTs `body` as `application/json`.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let answer = self.send(
            json_request(self.request("POST", path)),
            Some(&body.to_string()),
        );
        (answer.status, answer.json())
    }

    /// POSTs `body` as `application/json`; `Err` when no answer came back.
    pub fn try_post_json(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        let mut request = json_request(self.request("POST", path));
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let answer = self.try_send(request, Some(&body.to_string()))?;
        Ok((answer.status, answer.json()))
    }

    /// POSTs `body` with the admin token.
    pub fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = admin(json_request(self.request("POST", path)));
        let answer = self.send(request, Some(&body.to_string()));
        (answer.status, answer.json())
    }

    /// PUTs `body` with the admin token.
    pub fn admin_put(&self, path: &str, body: &Value) -> (u16, Value) {
        let request = admin(json_request(self.request("PUT", path)));
        let answer = self.send(request, Some(&body.to_string()));
        (answer.status, answer.json())
    }

    /// Creates (or updates) a SKU and asserts it worked; returns its body.
    pub fn put_sku(&self, sku: &str, settings: Value) -> Value {
        let (status, body) = self.admin_put(&format!("/v1/skus/{sku}"), &settings);
        assert!(
            status == 201 || status == 200,
            "PUT /v1/skus/{sku} answered {status}: {body}"
        );
        body
    }

    /// `GET /v1/skus/{sku}`, asserting 200.
    pub fn sku(&self, sku: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/skus/{sku}"));
        assert_eq!(status, 200, "GET /v1/skus/{sku}: {body}");
        body
    }

    /// `GET /v1/orders/{id}`, asserting 200.
    pub fn order(&self, order_id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/orders/{order_id}"));
        assert_eq!(status, 200, "GET /v1/orders/{order_id}: {body}");
        body
    }

    /// Places an order with `POST /v1/orders`.
    pub fn place_order(&self, sku: &str, quantity: u64, customer: &str) -> (u16, Value) {
        self.post_json(
            "/v1/orders",
            &json!({ "sku": sku, "quantity": quantity, "customer_id": customer }),
        )
    }

    /// Places an order and asserts it was created; returns the order.
    pub fn reserve(&self, sku: &str, quantity: u64, customer: &str) -> Value {
        let (status, body) = self.place_order(sku, quantity, customer);
        assert_eq!(
            status, 201,
            "order of {quantity} {sku} for {customer}: {body}"
        );
        assert_eq!(body["status"], "reserved", "{body}");
        body
    }

    /// `POST /v1/orders/{id}/confirm`.
    pub fn confirm(&self, order_id: &str) -> (u16, Value) {
        self.post_json(&format!("/v1/orders/{order_id}/confirm"), &json!({}))
    }

    /// `POST /v1/orders/{id}/cancel`.
    pub fn cancel(&self, order_id: &str) -> (u16, Value) {
        self.post_json(&format!("/v1/orders/{order_id}/cancel"), &json!({}))
    }
}

/// Turns what ureq returns into an `Answer` for every HTTP status; `Err` only
/// when no HTTP answer came back.
pub fn read_answer(result: Result<ureq::Response, ureq::Error>) -> Result<Answer, String> {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(ureq::Error::Transport(transport)) => return Err(transport.to_string()),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter_map(|name| {
            let value = response.header(&name)?.to_owned();
            Some((name.to_ascii_lowercase(), value))
        })
        .collect();
    let text = response
        .into_string()
        .map_err(|error| format!("reading the body: {error}"))?;
    Ok(Answer {
        status,
        headers,
        text,
    })
}

fn json_request(request: ureq::Request) -> ureq::Request {
    request.set("Content-Type", "application/json")
}

fn admin(request: ureq::Request) -> ureq::Request {
    request.set("Authorization", &format!("Bearer {ADMIN_TOKEN}"))
}

/// The id of an order body.
pub fn order_id(order: &Value) -> String {
    order["order_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no order_id in {order}"))
        .to_owned()
}

/// One order a `Burst` tried to place, and what came of it.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub sku: String,
    pub quantity: u64,
    pub customer: String,
    pub idempotency_key: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    /// 201: the server acknowledged the order.
    Created(Value),
    /// Any other HTTP answer.
    Answered(u16, Value),
    /// No answer (the server went away mid-request): the order may or may not exist.
    Lost(String),
}

impl Attempt {
    /// The order the server acknowledged with a 201, if it did.
    pub fn created(&self) -> Option<&Value> {
        match &self.outcome {
            Outcome::Created(order) => Some(order),
            _ => None,
        }
    }

    /// The request body, the same for the first try and every retry.
    pub fn body(&self) -> Value {
        json!({ "sku": self.sku, "quantity": self.quantity, "customer_id": self.customer })
    }
}

/// Threads placing orders, each with its own Idempotency-Key, until told to stop,
/// until the server stops answering, or until `ATTEMPTS_PER_THREAD_MAX`.
pub struct Burst {
    stop: Arc<AtomicBool>,
    created: Arc<AtomicUsize>,
    /// Refusals so far, by problem `code`.
    refused: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    threads: Vec<JoinHandle<Vec<Attempt>>>,
}

/// Bounds each burst thread's loop.
pub const ATTEMPTS_PER_THREAD_MAX: usize = 20_000;

impl Burst {
    /// Starts `threads` threads ordering 1 to 3 units of the given SKUs in turn.
    pub fn start(client: &Client, skus: &[&str], threads: usize) -> Burst {
        Burst::start_named(client, skus, threads, "burst")
    }

    /// As `start`, with idempotency keys and customers named after `name`, so
    /// two bursts on one cluster never share a key.
    pub fn start_named(client: &Client, skus: &[&str], threads: usize, name: &str) -> Burst {
        let name = name.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let created = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(std::sync::Mutex::new(HashMap::new()));
        let skus: Vec<String> = skus.iter().map(|sku| (*sku).to_owned()).collect();
        let threads = (0..threads)
            .map(|thread| {
                let client = client.clone();
                let stop = Arc::clone(&stop);
                let created = Arc::clone(&created);
                let refused = Arc::clone(&refused);
                let skus = skus.clone();
                let name = name.clone();
                std::thread::spawn(move || {
                    let mut attempts = Vec::new();
                    for i in 0..ATTEMPTS_PER_THREAD_MAX {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let mut attempt = Attempt {
                            sku: skus[(thread + i) % skus.len()].clone(),
                            quantity: (i % 3) as u64 + 1,
                            customer: format!("{name}-{thread}-{}", i % 7),
                            idempotency_key: format!("{name}-{thread}-{i}"),
                            outcome: Outcome::Lost(String::new()),
                        };
                        let result = client.try_post_json(
                            "/v1/orders",
                            &attempt.body(),
                            &[("Idempotency-Key", &attempt.idempotency_key)],
                        );
                        let lost = result.is_err();
                        attempt.outcome = match result {
                            Ok((201, order)) => {
                                created.fetch_add(1, Ordering::AcqRel);
                                Outcome::Created(order)
                            }
                            Ok((status, body)) => {
                                if let Some(code) = body["code"].as_str() {
                                    let mut refused = refused.lock().expect("refusal counts");
                                    *refused.entry(code.to_owned()).or_insert(0) += 1;
                                }
                                Outcome::Answered(status, body)
                            }
                            Err(error) => Outcome::Lost(error),
                        };
                        attempts.push(attempt);
                        if lost {
                            // The server is gone; later requests would only be refused.
                            break;
                        }
                    }
                    attempts
                })
            })
            .collect();
        Burst {
            stop,
            created,
            refused,
            threads,
        }
    }

    /// Orders acknowledged with 201 so far.
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Acquire)
    }

    /// Answers refused with problem `code` so far.
    pub fn refused(&self, code: &str) -> usize {
        let refused = self.refused.lock().expect("refusal counts");
        refused.get(code).copied().unwrap_or(0)
    }

    /// Waits until at least `count` orders were acknowledged.
    pub fn wait_for_created(&self, count: usize) {
        self.wait_for(
            &format!("{count} acknowledged orders"),
            START_TIMEOUT,
            |burst| burst.created() >= count,
        );
    }

    /// Waits (at most `timeout`) until `check` holds for this burst's counters.
    pub fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&Burst) -> bool) {
        poll_until(what, timeout, || {
            assert!(
                !self.threads.iter().all(|thread| thread.is_finished()),
                "every burst thread stopped before {what}"
            );
            check(self).then_some(())
        });
    }

    /// Stops the threads and returns every attempt.
    pub fn finish(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::Release);
        self.threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a burst thread panicked"))
            .collect()
    }
}

/// The orders a burst got a 201 for, as acknowledged.
pub fn acknowledged(attempts: &[Attempt]) -> Vec<Value> {
    attempts
        .iter()
        .filter_map(Attempt::created)
        .cloned()
        .collect()
}

/// Every acknowledged order is on `server` exactly as acknowledged.
pub fn assert_all_present(server: &Server, acknowledged: &[Value]) {
    for order in acknowledged {
        let id = order_id(order);
        let (status, stored) = server.client().get(&format!("/v1/orders/{id}"));
        assert_eq!(
            status,
            200,
            "acknowledged order {id} is missing on {}: {stored}",
            server.base_url()
        );
        assert_eq!(&stored, order, "acknowledged order {id} changed");
    }
}

/// What `settle` found.
pub struct Settled {
    /// Every order the burst made, as the server shows it now.
    pub orders: Vec<Value>,
    /// Attempts the client got no 201 for whose order nonetheless existed (the
    /// retry answered 200): executed, but the answer never arrived.
    pub unanswered: Vec<Attempt>,
}

/// Brings a burst's outcome up to date on a (restarted) server: checks that every
/// acknowledged order is there as acknowledged, and retries every attempt without
/// a 201 under its Idempotency-Key, so that afterwards every order the server
/// holds from the burst is known.
pub fn settle(client: &Client, attempts: &[Attempt]) -> Settled {
    let mut settled = Settled {
        orders: Vec::with_capacity(attempts.len()),
        unanswered: Vec::new(),
    };
    for attempt in attempts {
        let order = match &attempt.outcome {
            Outcome::Created(acknowledged) => {
                let id = order_id(acknowledged);
                let stored = client.order(&id);
                assert_eq!(
                    &stored, acknowledged,
                    "acknowledged order {id} differs after the restart"
                );
                stored
            }
            Outcome::Answered(..) | Outcome::Lost(_) => {
                let (status, order) = client
                    .try_post_json(
                        "/v1/orders",
                        &attempt.body(),
                        &[("Idempotency-Key", &attempt.idempotency_key)],
                    )
                    .unwrap_or_else(|error| panic!("retry of {attempt:?}: {error}"));
                match status {
                    200 => settled.unanswered.push(attempt.clone()),
                    201 => {}
                    _ => panic!("retry of {attempt:?} answered {status}: {order}"),
                }
                assert_eq!(order["sku"], attempt.sku.as_str(), "{order}");
                assert_eq!(order["quantity"], attempt.quantity, "{order}");
                assert_eq!(order["customer_id"], attempt.customer.as_str(), "{order}");
                order
            }
        };
        settled.orders.push(order);
    }
    settled
}

/// Checks every SKU's counters against the orders that name it: `reserved` and
/// `sold` are the sums of the reserved and confirmed orders' quantities, and
/// `available` is what is left of `total`. `orders` must be every order of those
/// SKUs.
pub fn assert_counters_match(client: &Client, skus: &[&str], orders: &[Value]) {
    for sku in skus {
        let mut reserved = 0;
        let mut sold = 0;
        for order in orders.iter().filter(|order| order["sku"] == *sku) {
            let quantity = order["quantity"].as_u64().expect("quantity is a number");
            match order["status"].as_str() {
                Some("reserved") => reserved += quantity,
                Some("confirmed") => sold += quantity,
                Some("cancelled" | "expired") => {}
                other => panic!("order with status {other:?}: {order}"),
            }
        }
        let body = client.sku(sku);
        let total = body["total"].as_u64().expect("total is a number");
        assert_eq!(
            (body["reserved"].as_u64(), body["sold"].as_u64()),
            (Some(reserved), Some(sold)),
            "sku {sku}: counters {body} disagree with its orders"
        );
        assert_eq!(
            body["available"].as_u64(),
            Some(total - reserved - sold),
            "sku {sku}: {body}"
        );
    }
}
