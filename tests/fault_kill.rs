//! SIGKILL at the worst moments, repeated: during group commits under a load
//! of orders, confirms and cancels, while a checkpoint is being written, and
//! during start-up and recovery itself; on a standalone node, and on the
//! primary of a sync pair followed by a failover. After every restart or
//! promotion, the node is audited against everything clients were told since
//! the start of the run.
//!
//! The moments are drawn from a seeded generator; the seed is printed, and
//! `FLASHGATE_KILL_SEED=<seed>` replays a run's choices (the exact moments
//! still depend on the machine's speed).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use common::audit::{
    assert_passed, audit, seed_from_env, violations, History, Load, LoadConfig, Rng, RunLogs,
};
use common::{Launch, Server, START_TIMEOUT};
use flashgate_loadtest::audit::{AuditReport, ViolationKind};
use serde_json::json;

/// The environment variable that replays a run's seed.
const SEED_VAR: &str = "FLASHGATE_KILL_SEED";
/// Seconds between periodic checkpoints: short, so kills often find one.
const CHECKPOINT_INTERVAL_SECS: u64 = 1;
/// The SKUs, their stock and reservation TTL: one that never sells out, one
/// that does (so an oversell would show; cancels and expiries give units back),
/// one whose reservations expire during the run.
const SKUS: [(&str, u64, u32); 3] = [
    ("kill-roomy", 1_000_000, 600),
    ("kill-scarce", 150, 600),
    ("kill-short", 1_000_000, 2),
];
/// The load between two kills: enough threads that group commits gather
/// several records, paced so that it outlasts the latest kill.
const LOAD: LoadConfig = LoadConfig {
    threads: 8,
    steps_max: 400,
    think_time_max: Duration::from_millis(10),
};
/// A kill under load comes at most this long after the first acknowledgement.
const LOAD_KILL_DELAY_MAX: Duration = Duration::from_millis(1200);
/// Of the kills under load, the percentage aimed at a periodic checkpoint.
const CHECKPOINT_KILL_PERCENT: u64 = 40;
/// After a kill, the percentage of restarts that are first SIGKILLed during
/// start-up (one kill or more in a row).
const START_KILL_PERCENT: u64 = 45;
const START_KILLS_IN_A_ROW_MAX: u64 = 2;
/// The latest kill during start-up, in percent of how long the last start
/// took (more than 100: some kills come just after it listens).
const START_KILL_LATEST_PERCENT: u32 = 150;
/// How often to look at a node's log while waiting for a checkpoint.
const CHECKPOINT_POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Kills of the standalone test, at least.
const STANDALONE_KILLS_MIN: usize = 16;
/// Rounds (kills under load) of the standalone test, at most: every round
/// adds its orders to what each later audit reads back, so the rounds are few
/// and the kills during start-up make up the rest.
const STANDALONE_ROUNDS_MAX: usize = 10;
/// Failovers of the pair test.
const FAILOVERS: usize = 5;
/// Shards of every node.
const SHARDS: &str = "4";

/// Where the kills of one test landed.
#[derive(Debug, Default)]
struct Kills {
    /// Under load, at a random moment (group commits are continuous).
    under_load: usize,
    /// Aimed at a periodic checkpoint, and of those, how many came before the
    /// checkpoint's "written" line (so during it, or just before it).
    at_checkpoint: usize,
    before_checkpoint_written: usize,
    /// During a restart, and of those, how many before it listened.
    during_start: usize,
    before_listening: usize,
    /// Kills under load or at a checkpoint that came after every load thread
    /// had run its steps (the node idle but for expiries and checkpoints).
    after_the_load_ended: usize,
}

impl Kills {
    fn total(&self) -> usize {
        self.under_load + self.at_checkpoint + self.during_start
    }
}

fn stocks() -> Vec<(&'static str, u64)> {
    SKUS.iter().map(|(sku, stock, _)| (*sku, *stock)).collect()
}

fn sku_names() -> Vec<&'static str> {
    SKUS.iter().map(|(sku, _, _)| *sku).collect()
}

fn node(data_dir: &Path) -> Launch {
    Launch::new()
        .data_dir(data_dir)
        .env("FLASHGATE_SHARDS", SHARDS)
        .env(
            "FLASHGATE_CHECKPOINT_INTERVAL_SECS",
            &CHECKPOINT_INTERVAL_SECS.to_string(),
        )
}

fn create_skus(server: &Server) {
    for (sku, stock, ttl) in SKUS {
        server
            .client()
            .put_sku(sku, json!({ "stock": stock, "reservation_ttl_secs": ttl }));
    }
}

/// `text` without its ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// One periodic checkpoint, as a node's log reports it.
#[derive(Clone, Copy, Debug)]
struct CheckpointLine {
    covers_lsn: u64,
    elapsed_ms: u64,
    /// The time stamp of the line (when the checkpoint was done).
    written_at: Option<SystemTime>,
}

/// The periodic checkpoints in a node's log, in order.
fn checkpoints_written(stderr: &str) -> Vec<CheckpointLine> {
    let field = |line: &str, name: &str| {
        line.split_whitespace()
            .find_map(|field| field.strip_prefix(name))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    without_colours(stderr)
        .lines()
        .filter(|line| line.contains("checkpoint written") && !line.contains("final"))
        .map(|line| CheckpointLine {
            covers_lsn: field(line, "covers_lsn="),
            elapsed_ms: field(line, "elapsed_ms="),
            written_at: line
                .split_whitespace()
                .next()
                .and_then(|stamp| humantime::parse_rfc3339(stamp).ok()),
        })
        .collect()
}

/// Waits for the next periodic checkpoint to be written, then SIGKILLs the
/// node at a moment inside the one after it: that one starts one interval
/// after the one just written started (the log's time stamp minus its
/// duration), and is assumed to take about as long. Returns whether the kill
/// came before that checkpoint's "written" line.
fn kill_in_next_checkpoint(server: &mut Server, rng: &mut Rng) -> bool {
    let seen = checkpoints_written(&server.stderr()).len();
    let deadline = Instant::now() + START_TIMEOUT;
    let last = loop {
        let written = checkpoints_written(&server.stderr());
        if written.len() > seen {
            break written[written.len() - 1];
        }
        assert!(
            Instant::now() < deadline,
            "no periodic checkpoint within {START_TIMEOUT:?}"
        );
        std::thread::sleep(CHECKPOINT_POLL_INTERVAL);
    };
    let elapsed = Duration::from_millis(last.elapsed_ms.max(1));
    let written_at = last.written_at.unwrap_or_else(SystemTime::now);
    let at = written_at - elapsed
        + Duration::from_secs(CHECKPOINT_INTERVAL_SECS)
        + rng.duration(Duration::ZERO, elapsed);
    // The moment of the fault, not a wait for an event.
    std::thread::sleep(at.duration_since(SystemTime::now()).unwrap_or_default());
    server.kill();
    checkpoints_written(&server.stderr()).len() == seen + 1
}

/// Starts a load on `server`, waits until it gets answers, and SIGKILLs the
/// node at a random moment (sometimes aimed at a checkpoint); keeps its log
/// under `name`.
fn load_then_kill(
    server: &mut Server,
    history: &History,
    name: &str,
    rng: &mut Rng,
    kills: &mut Kills,
    logs: &mut RunLogs,
) {
    let load = Load::start(server.client(), history, &sku_names(), LOAD, name, rng);
    common::poll_until("the load's first acknowledgement", START_TIMEOUT, || {
        (load.acknowledged() > 0 || load.ended()).then_some(())
    });
    if rng.chance(CHECKPOINT_KILL_PERCENT) {
        kills.at_checkpoint += 1;
        if kill_in_next_checkpoint(server, rng) {
            kills.before_checkpoint_written += 1;
        }
    } else {
        // The moment of the fault, not a wait for an event.
        std::thread::sleep(rng.duration(Duration::ZERO, LOAD_KILL_DELAY_MAX));
        server.kill();
        kills.under_load += 1;
    }
    if load.ended() && load.steps_run_out() {
        kills.after_the_load_ended += 1;
    }
    load.finish();
    logs.keep(name, server);
}

/// With a chance of `START_KILL_PERCENT` (always when `forced`), SIGKILLs
/// `launch` during start-up, once or more in a row, at random moments up to
/// `START_KILL_LATEST_PERCENT` of `start_up` (how long the last start took):
/// mostly during recovery, sometimes just after it listens.
fn maybe_kill_during_start(
    launch: &Launch,
    start_up: Duration,
    forced: bool,
    rng: &mut Rng,
    kills: &mut Kills,
    logs: &mut RunLogs,
) {
    if !rng.chance(START_KILL_PERCENT) && !forced {
        return;
    }
    for _ in 0..=rng.below(START_KILLS_IN_A_ROW_MAX) {
        let killed = launch.clone().start_and_kill_after(
            rng.duration(Duration::ZERO, start_up * START_KILL_LATEST_PERCENT / 100),
        );
        kills.during_start += 1;
        if !killed.listened {
            kills.before_listening += 1;
        }
        logs.keep_text("killed-during-start", &killed.stderr);
    }
}

/// Starts `launch` and returns the server and how long it took to listen.
fn timed_start(launch: Launch) -> (Server, Duration) {
    let started = Instant::now();
    let server = launch.start();
    (server, started.elapsed())
}

/// Tallies of the audits of one test.
#[derive(Debug, Default)]
struct Findings {
    audits: usize,
    /// Acknowledged orders missing, changed, or in a state their answers
    /// cannot explain (a confirm answered 200 read back `reserved`).
    lost: u64,
    oversold: u64,
    duplicates: u64,
}

impl Findings {
    /// Counts `report`'s findings, then fails the test on any violation.
    fn add(&mut self, report: &AuditReport, context: &str) {
        self.audits += 1;
        self.lost += violations(report, ViolationKind::MissingOrder)
            + violations(report, ViolationKind::ChangedOrder)
            + violations(report, ViolationKind::StatusMismatch);
        self.oversold += violations(report, ViolationKind::Oversell);
        self.duplicates += violations(report, ViolationKind::DuplicateOrderId);
        assert_passed(report, context);
    }
}

fn summary(test: &str, seed: u64, kills: &Kills, history: &History, findings: &Findings) {
    let counts = history.counts();
    // Straight to the process's stderr, past the test harness's capture, so
    // the figures of a passing run can be collected.
    let _ = writeln!(
        std::io::stderr(),
        "fault_kill {test}: seed {seed}, kills {} (under load {}, aimed at a checkpoint {} of which {} before it was written, during start-up {} of which {} before listening; {} after the load had run its steps), audits {}, orders acknowledged {} ({} acknowledgements with replays), confirms acknowledged {}, cancels acknowledged {}, placements unknown {}, lost: {}, oversold: {}, duplicates: {}",
        kills.total(),
        kills.under_load,
        kills.at_checkpoint,
        kills.before_checkpoint_written,
        kills.during_start,
        kills.before_listening,
        kills.after_the_load_ended,
        findings.audits,
        counts.orders,
        counts.acknowledgements,
        counts.confirms,
        counts.cancels,
        counts.unknown,
        findings.lost,
        findings.oversold,
        findings.duplicates,
    );
}

/// A standalone node SIGKILLed again and again at random moments (under load,
/// in a checkpoint, during its own recovery) and restarted on its data dir
/// never loses an acknowledged order or transition, never oversells and never
/// makes two orders of one key: every 2xx was on disk before it was sent, and
/// recovery must find it there however often it is interrupted.
#[test]
fn a_standalone_node_killed_again_and_again_loses_nothing() {
    let seed = seed_from_env(SEED_VAR);
    let mut rng = Rng::new(seed);
    let data = tempfile::tempdir().expect("create a data dir");
    let launch = node(data.path());
    let (mut server, mut start_up) = timed_start(launch.clone());
    create_skus(&server);
    let history = History::default();
    let mut kills = Kills::default();
    let mut findings = Findings::default();
    // Declared after the server, so it is dropped (and copies the live log)
    // before the server is.
    let mut logs = RunLogs::new("standalone", seed);
    logs.watch("node", &server);

    for round in 0..STANDALONE_ROUNDS_MAX {
        if kills.total() >= STANDALONE_KILLS_MIN {
            break;
        }
        load_then_kill(
            &mut server,
            &history,
            &format!("round{round}"),
            &mut rng,
            &mut kills,
            &mut logs,
        );
        // Kills still needed after this round's, were every later round to
        // add one: then this restart is killed too.
        let short_of_kills =
            STANDALONE_KILLS_MIN.saturating_sub(kills.total()) > STANDALONE_ROUNDS_MAX - round - 1;
        maybe_kill_during_start(
            &launch,
            start_up,
            short_of_kills,
            &mut rng,
            &mut kills,
            &mut logs,
        );
        (server, start_up) = timed_start(launch.clone());
        logs.watch("node", &server);
        history.settle(server.client(), &mut rng);
        let report = audit(server.client(), &history, &stocks());
        findings.add(
            &report,
            &format!("after kill {} (seed {seed})", kills.total()),
        );
    }
    summary("standalone", seed, &kills, &history, &findings);
    assert!(
        kills.total() >= STANDALONE_KILLS_MIN,
        "only {} kills",
        kills.total()
    );
}

/// One node of a pair: its process, data dir and replication address (kept
/// across restarts, so the other node always finds it).
struct PairNode {
    server: Server,
    data_dir: PathBuf,
    replication_addr: String,
}

/// Waits until `primary` reports its standby connected and in sync.
fn wait_in_sync(primary: &Server) {
    primary.wait_for_cluster("the standby to connect and be in sync", |status| {
        status["peer"]["connected"] == true && status["degraded"] == false
    });
}

/// Waits until `standby` is connected to `primary` and holds everything
/// `primary` has made durable. (A promoted primary whose standby caught up
/// from a checkpoint stays degraded until its next write, see
/// `a_promoted_primary_is_in_sync_once_its_standby_caught_up_from_a_checkpoint`;
/// so this does not wait for `degraded` to end.)
fn wait_caught_up(primary: &Server, standby: &Server) {
    common::poll_until("the standby to catch up", START_TIMEOUT, || {
        let primary = primary.cluster();
        let standby = standby.cluster();
        (primary["peer"]["connected"] == true
            && standby["role"] == "standby"
            && standby["durable_lsn"].as_u64() >= primary["durable_lsn"].as_u64())
        .then_some(())
    });
}

/// Promotes `standby`, by the admin API or by `flashgate promote`.
fn promote(standby: &Server, with_the_command: bool) {
    if !with_the_command {
        standby.promote();
        return;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args(["promote", "--node", &standby.client().url("")])
        .args(["--token", standby.admin_token()])
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .output()
        .expect("run flashgate promote");
    assert!(
        output.status.success(),
        "flashgate promote failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A primary and a standby in sync replication (`block`) lose nothing when
/// the primary is SIGKILLed again and again at random moments: each time the
/// standby is promoted and audited against every answer either node ever gave,
/// and the old primary (sometimes killed again while it starts) rejoins as the
/// new primary's standby. This is the pair's promise: a 2xx is on two disks,
/// whichever node dies next.
#[test]
fn a_pair_whose_primary_is_killed_again_and_again_loses_nothing() {
    let seed = seed_from_env(SEED_VAR);
    let mut rng = Rng::new(seed ^ 0x5eed_fa11);
    let a_dir = tempfile::tempdir().expect("create a data dir");
    let b_dir = tempfile::tempdir().expect("create a data dir");
    let (a, mut start_up) = timed_start(node(a_dir.path()).replicated("127.0.0.1:0"));
    let a_replication = a.replication_addr().to_owned();
    let b = node(b_dir.path())
        .replicated("127.0.0.1:0")
        .standby_of(&a_replication)
        .start();
    let mut primary = PairNode {
        data_dir: a_dir.path().to_path_buf(),
        replication_addr: a_replication,
        server: a,
    };
    let mut standby = PairNode {
        data_dir: b_dir.path().to_path_buf(),
        replication_addr: b.replication_addr().to_owned(),
        server: b,
    };
    wait_in_sync(&primary.server);
    create_skus(&primary.server);
    let history = History::default();
    let mut kills = Kills::default();
    let mut findings = Findings::default();
    // Declared after the servers, so it is dropped (and copies the live logs)
    // before they are.
    let mut logs = RunLogs::new("pair", seed);
    logs.watch("primary", &primary.server);
    logs.watch("standby", &standby.server);

    for failover in 0..FAILOVERS {
        wait_caught_up(&primary.server, &standby.server);
        load_then_kill(
            &mut primary.server,
            &history,
            &format!("failover{failover}"),
            &mut rng,
            &mut kills,
            &mut logs,
        );
        promote(&standby.server, failover % 2 == 1);
        history.settle(standby.server.client(), &mut rng);
        let report = audit(standby.server.client(), &history, &stocks());
        findings.add(&report, &format!("after failover {failover} (seed {seed})"));

        // The old primary comes back as the new primary's standby.
        let rejoin = node(&primary.data_dir)
            .replicated(&primary.replication_addr)
            .standby_of(&standby.replication_addr);
        maybe_kill_during_start(&rejoin, start_up, false, &mut rng, &mut kills, &mut logs);
        let (rejoined, took) = timed_start(rejoin);
        start_up = took;
        // The promoted node is the primary now, the rejoined one its standby.
        let old = std::mem::replace(&mut primary, standby);
        standby = PairNode {
            server: rejoined,
            data_dir: old.data_dir,
            replication_addr: old.replication_addr,
        };
        logs.watch("primary", &primary.server);
        logs.watch("standby", &standby.server);
    }

    // At the end, the standby holds what the primary holds.
    wait_caught_up(&primary.server, &standby.server);
    let report = audit(primary.server.client(), &history, &stocks());
    findings.add(&report, &format!("of the last primary (seed {seed})"));
    let report = audit(standby.server.client(), &history, &stocks());
    findings.add(&report, &format!("of the last standby (seed {seed})"));
    summary("pair", seed, &kills, &history, &findings);
}

/// Orders on the promoted primary before its new standby joins.
const ORDERS_AFTER_PROMOTION: usize = 20;
/// Longest wait for a promoted primary to leave the degraded state once its
/// standby holds everything it has, and how often to look.
const BACK_IN_SYNC_TIMEOUT: Duration = Duration::from_secs(5);
const BACK_IN_SYNC_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// A promoted primary whose new standby caught up by installing its
/// checkpoint is in sync again: an order waits for the standby (and, the
/// standby stalled, is refused with `standby_unavailable`) instead of being
/// acknowledged on one disk and lost with that disk. Found by the
/// repeated-kill test above, where the promoted primary stayed degraded with
/// its standby caught up until an expiry happened to write something.
#[test]
fn a_promoted_primary_waits_for_a_standby_that_caught_up_from_a_checkpoint() {
    let a_dir = tempfile::tempdir().expect("create a data dir");
    let b_dir = tempfile::tempdir().expect("create a data dir");
    let pair_node = |data_dir: &Path| node(data_dir).arg("--standby-timeout").arg("1s");
    let mut a = pair_node(a_dir.path()).replicated("127.0.0.1:0").start();
    let a_replication = a.replication_addr().to_owned();
    let mut b = pair_node(b_dir.path())
        .replicated("127.0.0.1:0")
        .standby_of(&a_replication)
        .start();
    let b_replication = b.replication_addr().to_owned();
    let mut logs = RunLogs::new("checkpoint-catch-up", 0);
    wait_in_sync(&a);
    a.client().put_sku("rejoin", json!({ "stock": 1_000 }));
    a.client().reserve("rejoin", 1, "before");
    a.kill();
    logs.keep("a-killed", &a);
    b.promote();
    for i in 0..ORDERS_AFTER_PROMOTION {
        b.client().reserve("rejoin", 1, &format!("after-{i}"));
    }
    // A checkpoint on B that covers more than A holds: A catches up from it.
    let durable = b.cluster()["durable_lsn"].as_u64().expect("a durable LSN");
    common::poll_until("a checkpoint covering the orders", START_TIMEOUT, || {
        checkpoints_written(&b.stderr())
            .iter()
            .any(|line| line.covers_lsn >= durable)
            .then_some(())
    });
    let mut a = pair_node(a_dir.path())
        .replicated(&a_replication)
        .standby_of(&b_replication)
        .start();
    wait_caught_up(&b, &a);
    assert!(
        a.stderr().contains("installing the primary's checkpoint"),
        "the standby was expected to catch up from a checkpoint:\n{}",
        a.stderr()
    );

    // The standby's acknowledgement may still be on its way: give the primary
    // a bounded while to leave the degraded state (today it never does).
    let deadline = Instant::now() + BACK_IN_SYNC_TIMEOUT;
    let status_before = loop {
        let status = b.cluster();
        if status["degraded"] == false || Instant::now() >= deadline {
            break status;
        }
        std::thread::sleep(BACK_IN_SYNC_POLL_INTERVAL);
    };
    // The pair is in sync: with the standby stalled, an order cannot be on
    // both disks, so it must be refused.
    a.signal(libc::SIGSTOP);
    let (status, order) = b.client().place_order("rejoin", 1, "while-stalled");
    if status == 503 {
        assert_eq!(order["code"], "standby_unavailable", "{order}");
        return;
    }
    assert_eq!(status, 201, "{order}");
    // Acknowledged on B alone. B's machine is lost, and the stalled standby
    // with it (the entries it never read die with it); A is promoted.
    b.kill();
    a.kill();
    logs.keep("b-killed", &b);
    logs.keep("a-rejoined-killed", &a);
    let a = pair_node(a_dir.path())
        .replicated(&a_replication)
        .standby_of(&b_replication)
        .start();
    a.promote();
    let id = common::order_id(&order);
    let (found, stored) = a.client().get(&format!("/v1/orders/{id}"));
    logs.keep("a-promoted", &a);
    assert_eq!(
        found, 200,
        "order {id} was acknowledged (201) by the primary while its standby was stalled, and is lost with the primary ({stored}); the primary reported, with its standby caught up: {status_before}"
    );
}
