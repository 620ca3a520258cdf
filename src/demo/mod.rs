//! `flashgate demo`: the whole product in one command. Two nodes of this
//! executable in sync replication, a flash sale driven by the load tester
//! against both, the primary killed (SIGKILL) in the middle of it, the standby
//! promoted as an operator would (`flashgate promote`'s code), the failover
//! time measured as a buyer sees it, and the load tester's audit of every
//! acknowledged order at the end.
//!
//! Phases, each printed as it ends: setup (directory, secret, nodes, standby
//! connected), sale, crash, failover, the rest of the sale, audit, cleanup.
//! The nodes never outlive the demo: `Nodes` kills them when dropped (normal
//! end, error, panic), SIGINT and SIGTERM kill them before the process exits,
//! and on Linux the kernel kills them if the demo itself is killed.
//!
//! # Layout
//! - `workdir`: `Workdir`, the directory, the cluster secret, free ports.
//! - `nodes`: the `serve` command lines (`serve_args`, pure) and `Nodes`, the
//!   running processes.
//! - `sale`: `SALE`, the catalog and load; `LoadRun`, the load tester on a
//!   thread; `check_stock`, pure.
//! - `probe`: the failover probe and `failover_time`.
//! - `signals`: Ctrl-C and SIGTERM.

mod nodes;
mod probe;
mod sale;
mod signals;
mod workdir;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_loadtest::{html, LoadtestError};
use serde_json::json;

use crate::cli::admin::{AdminClient, Body, CallError, REQUEST_TIMEOUT};
use crate::cli::cluster::ClusterStatus;
use crate::cli::duration::show_duration;
use crate::cli::node_url::NodeUrl;
use crate::cli::promote;
use nodes::{serve_command, NodeSpec, Nodes, ServeRole, StartError, NODE_START_TIMEOUT};
use probe::{
    classify, failover_time, place_probe, ProbeAnswer, ProbeError, PROBE_SKU, PROBE_STOCK,
};
use sale::{check_stock, Credentials, LoadError, LoadRun, LOAD_FINISH_GRACE, SALE};
use workdir::{free_udp_addresses, random_hex, Workdir, WorkdirError, ADMIN_TOKEN_BYTES};

/// The longest the standby may take to connect to the primary.
pub const STANDBY_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the primary is asked whether its standby is connected.
const CONNECT_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The longest a `GET /v1/cluster` may take during the demo.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Put the nodes' data and logs, the cluster secret and the reports in DIR
    /// (new or empty), and keep all of it [default: a new temporary directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep the nodes' data at the end too (the logs and reports are always kept).
    #[arg(long)]
    pub keep: bool,
    /// After the sale, keep the cluster up (node b, the new primary, and a
    /// new standby, node c) until Ctrl-C, and print the console's address
    /// and the admin token, to look at the whole product in a browser.
    #[arg(long)]
    pub console: bool,
}

/// Why the demo could not be run to its end. An audit that fails is not an
/// error: the demo ends, says so, and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Workdir(#[from] WorkdirError),
    #[error("cannot handle Ctrl-C and SIGTERM: {0}")]
    Signals(#[source] io::Error),
    #[error("cannot find this executable, which the nodes run: {0}")]
    Executable(#[source] io::Error),
    #[error("cannot make {what}: {source}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("node {node} ({role}) did not start: {source}")]
    NodeStart {
        node: &'static str,
        role: &'static str,
        #[source]
        source: StartError,
    },
    #[error("node {node} exited ({status}) while node b connected to node a; {log} says why")]
    NodeExited {
        node: &'static str,
        status: String,
        log: PathBuf,
    },
    #[error("node b did not connect to node a as its standby within {timeout:?} (last: {last}); the nodes' logs say why")]
    StandbyNotConnected { timeout: Duration, last: String },
    #[error("{step}: {source}")]
    Call {
        step: &'static str,
        #[source]
        source: Box<CallError>,
    },
    #[error("the sale's scenario is invalid: {0}")]
    Scenario(#[source] Box<LoadtestError>),
    #[error("the sale: {0}")]
    Load(#[source] Box<LoadError>),
    #[error("the sale ended before the crash it was meant to survive")]
    SaleEndedEarly,
    #[error("cannot kill node a: {0}")]
    Kill(#[source] io::Error),
    #[error("node b took an order while it was still a standby ({0}); a standby must refuse orders with not_primary")]
    StandbyTookOrder(String),
    #[error("failover: promote node b: {0}")]
    Promote(#[source] Box<CallError>),
    #[error("failover: {0}")]
    Probe(#[source] ProbeError),
    #[error("failover: the probe thread panicked")]
    ProbePanicked,
    #[error("cannot write the report {path}: {source}")]
    Report {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn call_error(step: &'static str) -> impl FnOnce(CallError) -> DemoError {
    move |source| DemoError::Call {
        step,
        source: Box::new(source),
    }
}

/// Runs the demo: 0 when the audit and the stock check passed, 1 when they
/// did not, 3 when the demo could not be run to its end (the message says
/// why, and the nodes' logs are kept).
pub fn run(args: DemoArgs) -> ExitCode {
    match demo(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("flashgate demo: {error}");
            ExitCode::from(3)
        }
    }
}

fn demo(args: DemoArgs) -> Result<bool, DemoError> {
    let workdir = Workdir::create(args.dir, args.keep)?;
    println!(
        "flashgate demo: a primary and a standby in sync replication, a flash sale, \
         the primary killed mid-sale, the standby promoted, and an audit of every acknowledged order"
    );
    println!("setup: directory {}", workdir.path().display());
    let nodes = Nodes::new();
    let tidy = workdir.tidy();
    {
        let killer = nodes.killer();
        let tidy = tidy.clone();
        let dir = workdir.path().to_path_buf();
        signals::on_interrupt(move |interrupt| {
            killer.kill_all();
            let failures = tidy.run();
            eprintln!(
                "flashgate demo: {}: stopped the nodes; their logs are in {}",
                interrupt.name(),
                dir.display()
            );
            for failure in failures {
                eprintln!("flashgate demo: could not remove {failure}");
            }
            std::process::exit(interrupt.exit_code());
        })
        .map_err(DemoError::Signals)?;
    }

    let result = phases(&workdir, &nodes, args.console);

    drop(nodes);
    let failures = tidy.run();
    if workdir.keeps_data() {
        println!(
            "cleanup: stopped the nodes; their data, logs and the reports are in {}",
            workdir.path().display()
        );
    } else {
        println!(
            "cleanup: stopped the nodes and removed their data; their logs and the reports stay in {} \
             (--keep keeps the data too)",
            workdir.path().display()
        );
    }
    for failure in failures {
        eprintln!("flashgate demo: could not remove {failure}");
    }
    result
}

/// A node the demo started.
struct Started {
    url: NodeUrl,
    pid: u32,
}

fn start_node(
    nodes: &Nodes,
    executable: &Path,
    spec: &NodeSpec,
    admin_token: &str,
    log: &Path,
) -> Result<Started, DemoError> {
    let role = match spec.role {
        ServeRole::Primary => "primary",
        ServeRole::Standby { .. } => "standby",
    };
    let failed = |source| DemoError::NodeStart {
        node: spec.name,
        role,
        source,
    };
    let pid = nodes
        .start(spec.name, serve_command(executable, spec, admin_token), log)
        .map_err(failed)?;
    let address = nodes
        .wait_for_http(spec.name, log, NODE_START_TIMEOUT)
        .map_err(failed)?;
    let url = format!("http://{address}")
        .parse()
        .map_err(|_| failed(StartError::BadAddress(address.to_string())))?;
    Ok(Started { url, pid })
}

/// Waits until node a reports its standby connected; fails at once if a node
/// exits. Returns how long it took.
fn wait_for_standby(
    admin: &AdminClient,
    nodes: &Nodes,
    workdir: &Workdir,
    primary: &NodeUrl,
) -> Result<Duration, DemoError> {
    let started = Instant::now();
    loop {
        let last = match admin.cluster(primary, STATUS_TIMEOUT) {
            Ok(status) if status.standby_connected() => return Ok(started.elapsed()),
            Ok(status) => status.describe(),
            Err(error) => error.to_string(),
        };
        for node in ["a", "b"] {
            if let Some(status) = nodes.exited(node) {
                return Err(DemoError::NodeExited {
                    node,
                    status: status.to_string(),
                    log: workdir.node_log(node),
                });
            }
        }
        if started.elapsed() >= STANDBY_CONNECT_TIMEOUT {
            return Err(DemoError::StandbyNotConnected {
                timeout: STANDBY_CONNECT_TIMEOUT,
                last,
            });
        }
        std::thread::sleep(CONNECT_POLL_INTERVAL);
    }
}

/// Everything between setup and cleanup. Returns whether the audit and the
/// stock check passed.
fn phases(workdir: &Workdir, nodes: &Nodes, console: bool) -> Result<bool, DemoError> {
    // Setup: a secret, tokens, two nodes, the standby connected.
    let secret = workdir.write_cluster_secret()?;
    let (service_tokens_file, service_token) = workdir.write_secret("service-tokens")?;
    let (payments_tokens_file, payments_token) = workdir.write_secret("payments-tokens")?;
    let token = random_hex(ADMIN_TOKEN_BYTES).map_err(|source| DemoError::Setup {
        what: "an admin token",
        source,
    })?;
    let replication = free_udp_addresses(2).map_err(|source| DemoError::Setup {
        what: "free replication ports",
        source,
    })?;
    let executable = std::env::current_exe().map_err(DemoError::Executable)?;
    let spec_a = NodeSpec {
        name: "a",
        role: ServeRole::Primary,
        data_dir: workdir.node_data("a"),
        replication_addr: replication[0],
        cluster_secret_file: secret.clone(),
        service_tokens_file: service_tokens_file.clone(),
        payments_tokens_file: payments_tokens_file.clone(),
    };
    let a = start_node(nodes, &executable, &spec_a, &token, &workdir.node_log("a"))?;
    println!(
        "setup: node a, the primary: {}, replication {}, pid {}, log {}",
        a.url,
        spec_a.replication_addr,
        a.pid,
        workdir.node_log("a").display()
    );
    let spec_b = NodeSpec {
        name: "b",
        role: ServeRole::Standby {
            follow: spec_a.replication_addr,
        },
        data_dir: workdir.node_data("b"),
        replication_addr: replication[1],
        cluster_secret_file: secret,
        service_tokens_file,
        payments_tokens_file,
    };
    let b = start_node(nodes, &executable, &spec_b, &token, &workdir.node_log("b"))?;
    println!(
        "setup: node b, its standby: {}, replication {}, pid {}, log {}",
        b.url,
        spec_b.replication_addr,
        b.pid,
        workdir.node_log("b").display()
    );
    let admin = AdminClient::new(Some(token.clone()));
    let waited = wait_for_standby(&admin, nodes, workdir, &a.url)?;
    println!(
        "setup: node b connected to node a in {}; node a acknowledges an order only once node b has it too",
        show_duration(waited)
    );
    admin
        .call::<serde_json::Value>(
            "PUT",
            &a.url,
            &format!("/v1/skus/{PROBE_SKU}"),
            Body::Json(&json!({ "stock": PROBE_STOCK })),
            true,
            REQUEST_TIMEOUT,
        )
        .map_err(call_error("create the failover probe's SKU on node a"))?;

    // The sale, until the crash.
    let plan = &SALE;
    let scenario = plan
        .scenario(
            &[a.url.clone(), b.url.clone()],
            &Credentials {
                admin: token.clone(),
                service: service_token.clone(),
                payments: payments_token,
            },
        )
        .map_err(|error| DemoError::Scenario(Box::new(error)))?;
    println!("sale: {}", plan.describe());
    println!(
        "sale: the load tester sends them over HTTP to the pair; node b refuses orders (not_primary) while it is a standby"
    );
    let load = LoadRun::start(scenario).map_err(|error| DemoError::Load(Box::new(error)))?;
    if let Some(ended) = load.wait_until(load.started + plan.crash_after) {
        return Err(match ended {
            Err(error) => DemoError::Load(Box::new(error)),
            Ok(_) => DemoError::SaleEndedEarly,
        });
    }

    // The crash.
    let before = admin.cluster(&a.url, STATUS_TIMEOUT).ok();
    nodes.kill("a").map_err(DemoError::Kill)?;
    println!(
        "crash: {} into the sale, SIGKILL node a (pid {}){}",
        show_duration(load.started.elapsed()),
        a.pid,
        before.as_ref().map_or_else(String::new, describe_crash)
    );

    // The failover.
    let probes = AdminClient::new(Some(service_token));
    match classify(&place_probe(&probes, &b.url, 0)) {
        ProbeAnswer::Acknowledged => {
            return Err(DemoError::StandbyTookOrder("before the promotion".into()))
        }
        ProbeAnswer::Refused(code) => {
            println!("failover: node b, still a standby, refuses orders: {code}")
        }
        ProbeAnswer::NoAnswer(error) => println!("failover: node b does not answer: {error}"),
    }
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = Arc::clone(&stop);
        let node = b.url.clone();
        std::thread::Builder::new()
            .name("demo-probe".into())
            .spawn(move || probe::probe(&probes, &node, &stop))
            .map_err(|source| DemoError::Setup {
                what: "the probe thread",
                source,
            })?
    };
    let promote_sent = Instant::now();
    let promoted = promote::promote(&admin, &b.url);
    let round_trip = promote_sent.elapsed();
    let promoted = match promoted {
        Ok(promoted) => promoted,
        Err(error) => {
            stop.store(true, Ordering::Relaxed);
            let _ = prober.join();
            return Err(DemoError::Promote(Box::new(error)));
        }
    };
    println!(
        "failover: {}",
        promote::describe(&b.url, &promoted, round_trip)
    );
    let probed = prober
        .join()
        .map_err(|_| DemoError::ProbePanicked)?
        .map_err(DemoError::Probe)?;
    let failover = failover_time(promote_sent, probed.acknowledged_at).ok_or_else(|| {
        DemoError::StandbyTookOrder("a probe was acknowledged before the promote request".into())
    })?;
    println!(
        "failover: node b acknowledged its first order {} after the promote request (probes refused before: {})",
        show_duration(failover),
        probed.describe_refusals()
    );
    println!("sale: goes on against node b, the new primary");

    // The rest of the sale, the reports, the audit.
    let finish_by = load.started + plan.duration + LOAD_FINISH_GRACE;
    let report = load
        .finish(finish_by.saturating_duration_since(Instant::now()))
        .map_err(|error| DemoError::Load(Box::new(error)))?;
    let html_path = workdir.report_html();
    for (path, text) in [
        (workdir.report_json(), report.to_json()),
        (html_path.clone(), html::render(&report)),
    ] {
        std::fs::write(&path, text).map_err(|source| DemoError::Report { path, source })?;
    }
    println!("sale: ended; the load tester's summary:");
    for line in report.summary().lines() {
        println!("  {line}");
    }
    let stock = check_stock(&report.skus, plan.skus);
    println!(
        "stock: {} of {} SKUs sold out; {} units sold of {}",
        stock.sold_out,
        plan.skus,
        stock.units_sold,
        plan.units()
    );
    for problem in &stock.problems {
        println!("stock: PROBLEM {problem}");
    }
    let passed = report.audit.passed && stock.passed();
    println!(
        "audit: {}",
        if report.audit.passed {
            "PASSED: every acknowledged order is on the new primary as acknowledged, none twice, no SKU oversold"
        } else {
            "FAILED: see the violations above and in the report"
        }
    );
    println!(
        "failover time: {} (from the promote request to the first order the new primary acknowledged)",
        show_duration(failover)
    );
    println!("report: {}", html_path.display());
    println!("result: {}", if passed { "PASSED" } else { "FAILED" });
    if console {
        keep_up_for_the_console(workdir, nodes, &executable, &spec_b, &b, &token)?;
    }
    Ok(passed)
}

/// How often `--console` checks that node b still runs.
const CONSOLE_WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// `--console`: a new standby (node c) for node b, the console's address
/// and the admin token printed, then the nodes kept up until Ctrl-C (whose
/// handler stops them and exits) or until node b exits.
fn keep_up_for_the_console(
    workdir: &Workdir,
    nodes: &Nodes,
    executable: &Path,
    spec_b: &NodeSpec,
    b: &Started,
    token: &str,
) -> Result<(), DemoError> {
    let replication = free_udp_addresses(1).map_err(|source| DemoError::Setup {
        what: "a free replication port for node c",
        source,
    })?;
    let spec_c = NodeSpec {
        name: "c",
        role: ServeRole::Standby {
            follow: spec_b.replication_addr,
        },
        data_dir: workdir.node_data("c"),
        replication_addr: replication[0],
        cluster_secret_file: spec_b.cluster_secret_file.clone(),
        service_tokens_file: spec_b.service_tokens_file.clone(),
        payments_tokens_file: spec_b.payments_tokens_file.clone(),
    };
    let c = start_node(nodes, executable, &spec_c, token, &workdir.node_log("c"))?;
    println!(
        "console: node c, a new standby of node b: {}, pid {}, log {}",
        c.url,
        c.pid,
        workdir.node_log("c").display()
    );
    println!("console: {}/console (node b, the primary)", b.url);
    println!("console: {}/console (node c, its standby)", c.url);
    println!("console: admin token {token}");
    println!("console: the nodes keep running until Ctrl-C");
    loop {
        std::thread::sleep(CONSOLE_WATCH_INTERVAL);
        if let Some(status) = nodes.exited("b") {
            println!(
                "console: node b exited ({status}); stopping; its log is {}",
                workdir.node_log("b").display()
            );
            return Ok(());
        }
    }
}

/// What node a said just before it was killed.
fn describe_crash(status: &ClusterStatus) -> String {
    format!(
        "; it had logged up to LSN {}, and node b had acknowledged up to LSN {}",
        status.last_lsn, status.acked_lsn
    )
}
