//! What the fault tests of a primary/standby pair share: waiting for the pair
//! to be in sync, stopping and continuing a process (SIGSTOP/SIGCONT), and
//! the audit after a failover (every acknowledged order present, nothing
//! oversold), which prints the figures a run reports.

use std::time::Duration;

use serde_json::Value;

use super::{acknowledged, order_id, poll_until, Attempt, Client, Outcome, Server};

/// Longest wait for a pair to be back in sync after a fault ends: the
/// standby's reconnect back-off and a catch-up on a busy debug build.
pub const RESYNC_TIMEOUT: Duration = Duration::from_secs(90);

/// Waits until `primary` reports its standby connected and in sync.
pub fn wait_in_sync(primary: &Server) -> Value {
    poll_until(
        "the standby to be connected and in sync",
        RESYNC_TIMEOUT,
        || {
            let status = primary.cluster();
            (status["peer"]["connected"] == true && status["degraded"] == false).then_some(status)
        },
    )
}

/// Waits until `standby` holds everything `primary` has made durable.
pub fn wait_caught_up(primary: &Server, standby: &Server) {
    let target = primary.cluster()["durable_lsn"].clone();
    standby.wait_for_cluster("the standby to hold the primary's log", |status| {
        // The primary's LSN read again too: it may log a last record (a
        // retire pass, an expiry) after `target` was read, which the standby
        // then holds as well.
        status["durable_lsn"] == target || status["durable_lsn"] == primary.cluster()["durable_lsn"]
    });
}

/// A UDP port on which nothing answers for as long as the socket lives: the
/// address of a primary that is gone.
pub fn silent_address() -> (std::net::UdpSocket, String) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    let addr = socket.local_addr().expect("its address").to_string();
    (socket, addr)
}

/// Waits until `primary` reports it degraded (with a reason) and still taking
/// orders.
pub fn wait_degraded(primary: &Server, what: &str) -> Value {
    let status = primary.wait_for_cluster(what, |status| status["degraded"] == true);
    assert!(
        status["degraded_reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty()),
        "{status}"
    );
    assert_eq!(status["accepting_orders"], true, "{status}");
    status
}

/// A process held by SIGSTOP; continued (SIGCONT) when dropped, unless it was
/// continued or killed before.
pub struct Stopped<'a> {
    server: Option<&'a Server>,
}

impl<'a> Stopped<'a> {
    /// SIGSTOPs `server` and returns once every thread of it has stopped: it
    /// keeps its sockets and memory but runs no code, as a node does in a long
    /// GC-like pause, a VM freeze or a stalled disk. `kill` returns before
    /// that: one thread takes the signal and stops the others, and on a busy
    /// machine the rest run on for milliseconds, long enough to take and
    /// acknowledge a request sent meanwhile.
    pub fn stop(server: &'a Server) -> Stopped<'a> {
        server.signal(libc::SIGSTOP);
        let pid = server.pid().expect("the server is running");
        poll_until(
            "every thread of the SIGSTOPped process to stop",
            STOP_TIMEOUT,
            || all_threads_stopped(pid).then_some(()),
        );
        Stopped {
            server: Some(server),
        }
    }

    /// SIGCONTs the process.
    pub fn resume(mut self) {
        if let Some(server) = self.server.take() {
            server.signal(libc::SIGCONT);
        }
    }

    /// Leaves the process stopped (e.g. to SIGKILL it next).
    pub fn keep_stopped(mut self) {
        self.server = None;
    }
}

/// Longest wait for a SIGSTOPped process to stop every thread.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether every thread of `pid` is stopped (state `T` in
/// `/proc/<pid>/task/<tid>/stat`, read after the command name's last `)`).
fn all_threads_stopped(pid: libc::pid_t) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.server.take().and_then(Server::pid) {
            // SAFETY: our own child, not yet reaped; failure only means it is
            // gone already.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
    }
}

/// Every answer that is not a 201 is one of `allowed` refusal codes, and every
/// attempt got an answer.
pub fn assert_refusals_only(attempts: &[Attempt], allowed: &[&str]) {
    for attempt in attempts {
        match &attempt.outcome {
            Outcome::Created(_) => {}
            Outcome::Answered(status, body) => assert!(
                body["code"]
                    .as_str()
                    .is_some_and(|code| allowed.contains(&code)),
                "order {} ({} {}) answered {status}: {body}; expected 201 or one of {allowed:?}",
                attempt.idempotency_key,
                attempt.quantity,
                attempt.sku
            ),
            Outcome::Lost(error) => panic!(
                "order {} ({} {}) got no answer: {error}",
                attempt.idempotency_key, attempt.quantity, attempt.sku
            ),
        }
    }
}

/// What an audit found; `lost` and `oversold` are 0 when it returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub faults: usize,
    pub acknowledged: usize,
    pub refused: usize,
    pub lost: usize,
    pub oversold: usize,
}

impl Figures {
    /// Prints the figures on one line, for the record of a run.
    pub fn report(&self, test: &str) {
        eprintln!(
            "FIGURES {test}: faults injected {}, orders acknowledged {}, refused {}, lost {}, oversold {}",
            self.faults, self.acknowledged, self.refused, self.lost, self.oversold
        );
    }
}

/// Audits `attempts` against `server` (after a failover, the promoted node):
/// every order acknowledged with a 201 is there exactly as acknowledged, and
/// no SKU of `skus` (id, stock) holds more than its stock or less than was
/// acknowledged of it. Panics listing every lost order or oversold SKU.
pub fn audit(server: &Server, skus: &[(&str, u64)], attempts: &[Attempt]) -> Figures {
    let acknowledged = acknowledged(attempts);
    let mut lost = Vec::new();
    for order in &acknowledged {
        let id = order_id(order);
        let (status, stored) = server.client().get(&format!("/v1/orders/{id}"));
        if status != 200 {
            lost.push(format!("{id}: {status} {stored}"));
        } else if &stored != order {
            lost.push(format!(
                "{id} changed: acknowledged {order}, stored {stored}"
            ));
        }
    }
    let oversold: Vec<String> = skus
        .iter()
        .filter_map(|(sku, stock)| oversold(server.client(), sku, *stock, attempts))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged orders missing or changed on {}:\n{}",
        lost.len(),
        server.base_url(),
        lost.join("\n")
    );
    assert!(oversold.is_empty(), "{}", oversold.join("\n"));
    Figures {
        faults: 0,
        acknowledged: acknowledged.len(),
        refused: attempts.len() - acknowledged.len(),
        lost: lost.len(),
        oversold: oversold.len(),
    }
}

/// Why `sku` is oversold or short of what was acknowledged, if it is.
fn oversold(client: &Client, sku: &str, stock: u64, attempts: &[Attempt]) -> Option<String> {
    let body = client.sku(sku);
    let number = |field: &str| body[field].as_u64();
    let (Some(total), Some(available), Some(reserved), Some(sold)) = (
        number("total"),
        number("available"),
        number("reserved"),
        number("sold"),
    ) else {
        return Some(format!("{sku}: counters are not numbers: {body}"));
    };
    let acknowledged: u64 = attempts
        .iter()
        .filter(|attempt| attempt.sku == sku && attempt.created().is_some())
        .map(|attempt| attempt.quantity)
        .sum();
    if total != stock || available + reserved + sold != total {
        return Some(format!("{sku}: stock {stock}, counters {body}"));
    }
    (acknowledged > reserved + sold)
        .then(|| format!("{sku}: {acknowledged} units acknowledged but the counters hold {body}"))
}
