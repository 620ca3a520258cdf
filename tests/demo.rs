//! Black-box tests of `flashgate demo`, the README's first command: it must
//! run the whole product (two nodes, a sale, a crash, a failover, an audit)
//! to a passing audit on any machine that builds flashgate, and it must never
//! leave a node running behind it, whether it ends or is stopped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest a whole demo may take (a debug build on a small machine included).
const DEMO_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest the demo may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `flashgate demo` and its stdout, line by line.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    output: Vec<String>,
    _dir: tempfile::TempDir,
    workdir: PathBuf,
}

impl Demo {
    fn start() -> Demo {
        Demo::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Demo {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let workdir = dir.path().join("demo");
        let mut child = Command::new(env!("CARGO_BIN_EXE_flashgate"))
            .arg("demo")
            .arg("--dir")
            .arg(&workdir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn flashgate demo");
        let (sender, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout is piped"))
                as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr is piped")),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let _ = sender.send(line);
                }
            });
        }
        Demo {
            child,
            lines,
            output: Vec::new(),
            _dir: dir,
            workdir,
        }
    }

    /// Reads output until a line starts with `prefix`; panics with the output
    /// so far if the demo ends first or `timeout` passes.
    fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.output.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "no line starting with {prefix:?} within {timeout:?}; output:\n{}",
                        self.output.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the process to exit (bounded), then returns its status and
    /// all its output. The directory lives as long as `self`.
    fn wait(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for flashgate demo") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.output.extend(self.lines.try_iter());
                panic!(
                    "flashgate demo still ran after {timeout:?}; output:\n{}",
                    self.output.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // The reader threads end with the pipes; take what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.output.push(line);
        }
        (status, std::mem::take(&mut self.output))
    }
}

/// The pids of the nodes the demo said it started (`… pid N, …`).
fn node_pids(output: &[String]) -> Vec<libc::pid_t> {
    output
        .iter()
        .filter(|line| line.starts_with("setup: node "))
        .filter_map(|line| {
            let after = line.split(", pid ").nth(1)?;
            after.split(',').next()?.trim().parse().ok()
        })
        .collect()
}

/// Whether process `pid` is gone (or only a zombie no one has reaped yet).
fn is_gone(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks whether the process exists.
    if unsafe { libc::kill(pid, 0) } == -1 {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn assert_nodes_gone(output: &[String]) {
    let pids = node_pids(output);
    assert_eq!(
        pids.len(),
        2,
        "the demo names its two nodes' pids:\n{}",
        output.join("\n")
    );
    for pid in pids {
        assert!(
            is_gone(pid),
            "node pid {pid} still runs after the demo ended:\n{}",
            output.join("\n")
        );
    }
}

/// The README's first command works: the sale survives the crash of the
/// primary, the audit passes on the promoted standby, the failover time and
/// the report are given, and both nodes are stopped at the end.
#[test]
fn the_demo_survives_a_crash_mid_sale_and_passes_its_audit() {
    let mut demo = Demo::start();
    let (status, output) = demo.wait(DEMO_TIMEOUT);
    let text = output.join("\n");
    assert!(status.success(), "flashgate demo exited {status}:\n{text}");
    assert!(
        output
            .iter()
            .any(|line| line.trim_start().starts_with("audit: PASSED")),
        "{text}"
    );
    let failover = output
        .iter()
        .find_map(|line| line.strip_prefix("failover time: "))
        .unwrap_or_else(|| panic!("no failover time:\n{text}"));
    assert!(
        failover.contains(" ms") || failover.contains(" s"),
        "{failover}"
    );
    let report = output
        .iter()
        .find_map(|line| line.strip_prefix("report: "))
        .unwrap_or_else(|| panic!("no report line:\n{text}"));
    let report = PathBuf::from(report.trim());
    assert!(report.starts_with(&demo.workdir), "{}", report.display());
    let html = std::fs::read_to_string(&report)
        .unwrap_or_else(|error| panic!("{}: {error}", report.display()));
    assert!(html.contains("<svg"), "the report has its charts");
    assert_nodes_gone(&output);
}

/// Stopping the demo with SIGTERM in the middle of the sale stops its nodes
/// too: a demo must not leave servers running on the machine.
#[test]
fn sigterm_mid_sale_stops_the_demo_and_both_nodes() {
    let mut demo = Demo::start();
    demo.wait_for_line("sale: ", DEMO_TIMEOUT);
    let pid = libc::pid_t::try_from(demo.child.id()).expect("pid fits pid_t");
    // SAFETY: `pid` is our own child, not yet reaped, so it names that process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "send SIGTERM");
    let (status, output) = demo.wait(STOP_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        output.join("\n")
    );
    assert_nodes_gone(&output);
}

/// `demo --console` keeps the cluster up after the sale, a primary and a
/// new standby, each serving its console, prints where and the admin token,
/// and Ctrl-C stops every node it started: a new user can look at the whole
/// product in a browser, and nothing outlives the demo.
#[test]
fn demo_console_keeps_the_cluster_up_until_ctrl_c() {
    let mut demo = Demo::start_with(&["--console"]);
    let primary = demo.wait_for_line("console: http://", DEMO_TIMEOUT);
    let standby = demo.wait_for_line("console: http://", DEMO_TIMEOUT);
    let token = demo.wait_for_line("console: admin token ", DEMO_TIMEOUT);
    let token = token
        .trim_start_matches("console: admin token ")
        .trim()
        .to_owned();
    let url = |line: &str| line.split_whitespace().nth(1).expect("a URL").to_owned();
    let (primary, standby) = (url(&primary), url(&standby));
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .try_proxy_from_env(false)
        .build();
    for (console, role) in [(&primary, "primary"), (&standby, "standby")] {
        let page = agent.get(console).call().expect("the console page");
        assert_eq!(page.status(), 200, "{console}");
        assert_eq!(page.content_type(), "text/html");
        let cluster = console.replace("/console", "/v1/cluster");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let status: serde_json::Value = agent
                .get(&cluster)
                .set("Authorization", &format!("Bearer {token}"))
                .call()
                .expect("GET /v1/cluster with the printed token")
                .into_json()
                .expect("JSON");
            if status["role"] == role && status["peer"]["connected"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "{cluster}: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let pid = libc::pid_t::try_from(demo.child.id()).expect("pid fits pid_t");
    // SAFETY: `pid` is our own child, not yet reaped, so it names that process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "send SIGINT");
    let (status, output) = demo.wait(STOP_TIMEOUT);
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGINT),
        "{}",
        output.join("\n")
    );
    assert_nodes_gone(&output);
    let node_c = output
        .iter()
        .find_map(|line| line.strip_prefix("console: node c, "))
        .and_then(|rest| {
            rest.split(", pid ")
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse()
                .ok()
        })
        .expect("the demo names node c's pid");
    assert!(
        is_gone(node_c),
        "node c ({node_c}) still runs:\n{}",
        output.join("\n")
    );
}
