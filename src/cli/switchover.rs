//! `flashgate switchover --primary URL --standby URL --token TOKEN`: a planned
//! change of primary that loses no acknowledged order. Four steps, each
//! printed with its duration:
//!
//! 1. check: the primary is a primary with its standby connected, the standby
//!    a standby, and each node says, checked with the token given, that it
//!    could take its part now: the primary hand over, the standby be promoted
//!    (nothing is changed if not);
//! 2. handover: the primary stops taking orders and waits until its standby
//!    has acknowledged everything it logged;
//! 3. promote: the standby becomes the primary at a new epoch, and must hold
//!    the whole log the old primary handed over. When the promotion fails and
//!    the standby is still a standby of the old epoch, the handover is undone
//!    (`POST /v1/admin/resume`): the old primary takes orders again;
//! 4. follow: the old primary learns the new epoch over the replication
//!    channel and turns itself into a standby of the new primary; polled until
//!    it says so.
//!
//! The steps talk to the nodes through `ClusterApi`, so their order and their
//! errors are tested against a scripted pair.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::admin::{AdminClient, CallError, REQUEST_TIMEOUT};
use crate::cli::cluster::{ClusterStatus, HandedOver, Promoted, Resumed, Role, SwitchoverCheck};
use crate::cli::duration::{parse_duration, show_duration};
use crate::cli::node_url::NodeUrl;
use crate::cli::TokenArg;

/// The shortest and longest `--timeout`.
pub const TIMEOUT_MIN: Duration = Duration::from_secs(1);
pub const TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// How often step 4 asks the old primary whether it follows.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct SwitchoverArgs {
    /// HTTP base URL of the current primary, e.g. http://10.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub primary: NodeUrl,
    /// HTTP base URL of its standby, the next primary.
    #[arg(long, value_name = "URL")]
    pub standby: NodeUrl,
    #[command(flatten)]
    pub token: TokenArg,
    /// How long the whole switchover may take, e.g. 30s or 2m.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&timeout) {
        return Err(format!(
            "{text:?}: the timeout must be between {} and {}",
            show_duration(TIMEOUT_MIN),
            show_duration(TIMEOUT_MAX)
        ));
    }
    Ok(timeout)
}

/// The calls a switchover makes to the nodes.
pub trait ClusterApi {
    fn cluster(&self, node: &NodeUrl, timeout: Duration) -> Result<ClusterStatus, CallError>;
    fn handover(&self, node: &NodeUrl, timeout: Duration) -> Result<HandedOver, CallError>;
    fn promote(&self, node: &NodeUrl, timeout: Duration) -> Result<Promoted, CallError>;
    fn check(&self, node: &NodeUrl, timeout: Duration) -> Result<SwitchoverCheck, CallError>;
    fn resume(&self, node: &NodeUrl, timeout: Duration) -> Result<Resumed, CallError>;
}

impl ClusterApi for AdminClient {
    fn cluster(&self, node: &NodeUrl, timeout: Duration) -> Result<ClusterStatus, CallError> {
        AdminClient::cluster(self, node, timeout)
    }

    fn handover(&self, node: &NodeUrl, timeout: Duration) -> Result<HandedOver, CallError> {
        AdminClient::handover(self, node, timeout)
    }

    fn promote(&self, node: &NodeUrl, timeout: Duration) -> Result<Promoted, CallError> {
        AdminClient::promote(self, node, timeout)
    }

    fn check(&self, node: &NodeUrl, timeout: Duration) -> Result<SwitchoverCheck, CallError> {
        AdminClient::switchover_check(self, node, timeout)
    }

    fn resume(&self, node: &NodeUrl, timeout: Duration) -> Result<Resumed, CallError> {
        AdminClient::resume(self, node, timeout)
    }
}

/// Which nodes, and how long it may take.
#[derive(Clone, Debug)]
pub struct Plan {
    pub primary: NodeUrl,
    pub standby: NodeUrl,
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// How a switchover ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub promoted: Promoted,
    /// The old primary, as it reported itself once it followed.
    pub old_primary: ClusterStatus,
}

/// Why a switchover stopped; each message names the step and the state the
/// pair was left in.
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    #[error("--primary and --standby are the same URL ({0}); give the two nodes of the pair")]
    SameNode(NodeUrl),
    #[error("step 1 (check): {0}; nothing was changed")]
    Check(Box<CallError>),
    #[error("step 1 (check): {node} is {role}, not a primary ({status}); nothing was changed; give the node that takes orders as --primary")]
    PrimaryIsNot {
        node: NodeUrl,
        role: Role,
        status: String,
    },
    #[error("step 1 (check): {node} is {role}, not a standby ({status}); nothing was changed; give the primary's standby as --standby")]
    StandbyIsNot {
        node: NodeUrl,
        role: Role,
        status: String,
    },
    #[error("step 1 (check): the primary {node} has no connected standby ({status}); nothing was changed; start the standby and wait until GET /v1/cluster on the primary shows peer.connected")]
    NoStandby { node: NodeUrl, status: String },
    #[error(
        "step 1 (check): the primary {node} could not hand over now: {reason}; nothing was changed"
    )]
    CannotHandOver { node: NodeUrl, reason: String },
    #[error("step 1 (check): the standby {node} could not be promoted now: {reason}; nothing was changed")]
    CannotPromote { node: NodeUrl, reason: String },
    #[error("step 2 (handover) on {node}: {source}; the primary takes orders again unless GET /v1/cluster on it shows accepting_orders false; retry once its standby has caught up (lag_records)")]
    Handover {
        node: NodeUrl,
        #[source]
        source: Box<CallError>,
    },
    #[error("step 3 (promote) on {standby}: {source}; {undo}")]
    Promote {
        standby: NodeUrl,
        #[source]
        source: Box<CallError>,
        /// What became of the handover: undone, or what to do.
        undo: String,
    },
    #[error("step 3 (promote) on {standby}: the timeout ran out before the promotion could be asked for; {undo}")]
    PromoteOutOfTime { standby: NodeUrl, undo: String },
    #[error("step 3 (promote): {standby} took over a log that ends at LSN {promoted_lsn}, but the old primary had logged up to LSN {handed_over_lsn}, so records may be missing; compare the two nodes' logs before taking orders on {standby}")]
    Gap {
        standby: NodeUrl,
        promoted_lsn: u64,
        handed_over_lsn: u64,
    },
    #[error("step 4 (follow): {primary} did not report itself a standby at epoch {epoch} within the timeout (last seen: {last}); {standby} is the primary and takes orders; look at {primary}'s log")]
    NotFollowing {
        primary: NodeUrl,
        standby: NodeUrl,
        epoch: u64,
        last: String,
    },
    #[error("{step}: the timeout ran out before the step could start; {state}")]
    OutOfTime {
        step: &'static str,
        state: &'static str,
    },
}

/// Runs the command: 0 when the old primary follows the new one, 1 when a
/// step failed (the message names it).
pub fn run(args: SwitchoverArgs) -> ExitCode {
    let client = AdminClient::new(Some(args.token.token));
    let plan = Plan {
        primary: args.primary,
        standby: args.standby,
        timeout: args.timeout,
        poll_interval: POLL_INTERVAL,
    };
    match switchover(&client, &plan, &mut |line| println!("switchover: {line}")) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("flashgate: switchover failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Moves the primary role from `plan.primary` to `plan.standby` without losing
/// an acknowledged order. Reports each step through `report` as it ends.
/// Returns once the old primary reports itself a standby of the new epoch.
pub fn switchover(
    api: &impl ClusterApi,
    plan: &Plan,
    report: &mut dyn FnMut(&str),
) -> Result<Outcome, SwitchoverError> {
    if plan.primary == plan.standby {
        return Err(SwitchoverError::SameNode(plan.primary.clone()));
    }
    let started = Instant::now();
    let deadline = started + plan.timeout;
    let time_left = |step: &'static str, state: &'static str| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(SwitchoverError::OutOfTime { step, state })
        } else {
            Ok(left.min(REQUEST_TIMEOUT))
        }
    };

    // 1. check
    let step = Instant::now();
    let unchanged = "nothing was changed";
    let primary = api
        .cluster(&plan.primary, time_left("step 1 (check)", unchanged)?)
        .map_err(|error| SwitchoverError::Check(Box::new(error)))?;
    let standby = api
        .cluster(&plan.standby, time_left("step 1 (check)", unchanged)?)
        .map_err(|error| SwitchoverError::Check(Box::new(error)))?;
    check_pair(plan, &primary, &standby)?;
    let can = api
        .check(&plan.primary, time_left("step 1 (check)", unchanged)?)
        .map_err(|error| SwitchoverError::Check(Box::new(error)))?;
    if !can.hand_over.possible {
        return Err(SwitchoverError::CannotHandOver {
            node: plan.primary.clone(),
            reason: can.hand_over.reason.unwrap_or_default(),
        });
    }
    let can = api
        .check(&plan.standby, time_left("step 1 (check)", unchanged)?)
        .map_err(|error| SwitchoverError::Check(Box::new(error)))?;
    if !can.promote.possible {
        return Err(SwitchoverError::CannotPromote {
            node: plan.standby.clone(),
            reason: can.promote.reason.unwrap_or_default(),
        });
    }
    report(&format!(
        "1/4 check: {} is the primary ({}); {} is its standby ({}) ({})",
        plan.primary,
        primary.describe(),
        plan.standby,
        standby.describe(),
        show_duration(step.elapsed())
    ));

    // 2. handover
    let step = Instant::now();
    let handed_over = api
        .handover(&plan.primary, time_left("step 2 (handover)", unchanged)?)
        .map_err(|source| SwitchoverError::Handover {
            node: plan.primary.clone(),
            source: Box::new(source),
        })?;
    report(&format!(
        "2/4 handover: {} stopped taking orders; its standby has every record up to LSN {} ({})",
        plan.primary,
        handed_over.last_lsn,
        show_duration(step.elapsed())
    ));

    // 3. promote: on failure, the handover is undone if the standby is
    // still a standby of the old epoch.
    let step = Instant::now();
    let left = deadline.saturating_duration_since(Instant::now());
    // `None`: the timeout ran out before the promotion could be asked for.
    let promoted = (!left.is_zero()).then(|| api.promote(&plan.standby, left.min(REQUEST_TIMEOUT)));
    let promoted = match promoted {
        Some(Ok(promoted)) => promoted,
        failed => {
            let undo = undo_handover(api, plan, primary.epoch);
            report(&format!("3/4 promote failed; {undo}"));
            let standby = plan.standby.clone();
            return Err(match failed {
                Some(Err(source)) => SwitchoverError::Promote {
                    standby,
                    source: Box::new(source),
                    undo,
                },
                _ => SwitchoverError::PromoteOutOfTime { standby, undo },
            });
        }
    };
    if promoted.last_lsn < handed_over.last_lsn {
        return Err(SwitchoverError::Gap {
            standby: plan.standby.clone(),
            promoted_lsn: promoted.last_lsn,
            handed_over_lsn: handed_over.last_lsn,
        });
    }
    report(&format!(
        "3/4 promote: {} is the primary at epoch {}, log at LSN {} ({})",
        plan.standby,
        promoted.epoch,
        promoted.last_lsn,
        show_duration(step.elapsed())
    ));

    // 4. follow
    let step = Instant::now();
    let old_primary = wait_until_following(api, plan, promoted.epoch, deadline)?;
    report(&format!(
        "4/4 follow: {} is a standby at epoch {} ({})",
        plan.primary,
        old_primary.epoch,
        show_duration(step.elapsed())
    ));
    report(&format!(
        "done in {}: {} is the primary, {} its standby",
        show_duration(started.elapsed()),
        plan.standby,
        plan.primary
    ));
    Ok(Outcome {
        promoted,
        old_primary,
    })
}

/// After a failed promotion: when the standby still reports itself a
/// standby at `epoch` (it was not promoted), tells the old primary to take
/// orders again. Returns what became of the pair, for the error message.
/// Never resumes when the standby may have been promoted: two primaries of
/// one epoch must not take orders.
fn undo_handover(api: &impl ClusterApi, plan: &Plan, epoch: u64) -> String {
    let finish = format!(
        "finish with `flashgate promote --node {} --token <the admin token>` once it can be \
         reached, or undo with POST {}/v1/admin/resume once GET /v1/cluster on {} shows it \
         is still a standby at epoch {epoch}",
        plan.standby, plan.primary, plan.standby
    );
    match api.cluster(&plan.standby, REQUEST_TIMEOUT) {
        Ok(status) if status.role == Role::Standby && status.epoch == epoch => {
            match api.resume(&plan.primary, REQUEST_TIMEOUT) {
                Ok(resumed) if resumed.accepting_orders => format!(
                    "the handover was undone: {} takes orders again at epoch {}, {} is still its standby",
                    plan.primary, resumed.epoch, plan.standby
                ),
                Ok(resumed) => format!(
                    "the handover was undone, but {} does not take orders (epoch {}; GET /v1/cluster on it says why)",
                    plan.primary, resumed.epoch
                ),
                Err(error) => format!(
                    "the primary {} stopped taking orders at the handover and could not be told to resume ({error}); {finish}",
                    plan.primary
                ),
            }
        }
        Ok(status) => format!(
            "the primary {} stopped taking orders at the handover; the handover was not undone because {} now reports {}: check both nodes' GET /v1/cluster",
            plan.primary,
            plan.standby,
            status.describe()
        ),
        Err(error) => format!(
            "the primary {} stopped taking orders at the handover; the handover was not undone because the standby's state is unknown ({error}); {finish}",
            plan.primary
        ),
    }
}

/// Step 1's verdict on the two nodes' own reports.
pub fn check_pair(
    plan: &Plan,
    primary: &ClusterStatus,
    standby: &ClusterStatus,
) -> Result<(), SwitchoverError> {
    if primary.role != Role::Primary {
        return Err(SwitchoverError::PrimaryIsNot {
            node: plan.primary.clone(),
            role: primary.role,
            status: primary.describe(),
        });
    }
    if standby.role != Role::Standby {
        return Err(SwitchoverError::StandbyIsNot {
            node: plan.standby.clone(),
            role: standby.role,
            status: standby.describe(),
        });
    }
    if !primary.standby_connected() {
        return Err(SwitchoverError::NoStandby {
            node: plan.primary.clone(),
            status: primary.describe(),
        });
    }
    Ok(())
}

/// Step 4: asks the old primary until it reports itself a standby at `epoch`
/// or later, or `deadline` passes. Failed requests are retried: the node may
/// be busy turning itself into a standby.
fn wait_until_following(
    api: &impl ClusterApi,
    plan: &Plan,
    epoch: u64,
    deadline: Instant,
) -> Result<ClusterStatus, SwitchoverError> {
    let mut last = "no answer yet".to_owned();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SwitchoverError::NotFollowing {
                primary: plan.primary.clone(),
                standby: plan.standby.clone(),
                epoch,
                last,
            });
        }
        match api.cluster(&plan.primary, left.min(REQUEST_TIMEOUT)) {
            Ok(status) if status.follows_epoch(epoch) => return Ok(status),
            Ok(status) => last = status.describe(),
            Err(error) => last = error.to_string(),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(plan.poll_interval.min(left));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use clap::Parser;

    use super::*;
    use crate::cli::admin::Problem;
    use crate::cli::cluster::{Peer, PrimaryAddress, ReplicationMode, StandbyLoss, StepCheck};

    const PRIMARY: &str = "http://10.0.0.1:8080";
    const STANDBY: &str = "http://10.0.0.2:8080";

    fn status(role: Role, epoch: u64, connected: Option<bool>) -> ClusterStatus {
        ClusterStatus {
            role,
            epoch,
            last_lsn: 100,
            durable_lsn: 100,
            acked_lsn: 100,
            mode: ReplicationMode::Sync,
            standby_loss: StandbyLoss::Block,
            degraded: false,
            accepting_orders: role == Role::Primary,
            peer: connected.map(|connected| Peer {
                address: "10.0.0.9:7000".into(),
                connected,
                last_failure: None,
                failures: None,
            }),
            primary: Some(PrimaryAddress {
                http: PRIMARY.into(),
                quic: None,
            }),
            lag_records: 0,
            lag_ms: 0,
            degraded_reason: None,
        }
    }

    fn refused(code: &str) -> CallError {
        CallError::Refused {
            request: "POST somewhere".into(),
            status: 409,
            problem: Problem {
                code: code.into(),
                detail: "no".into(),
            },
        }
    }

    /// A scripted pair: each node's answers to `/v1/cluster` in turn (the last
    /// one repeats), and what handover and promote answer. Records the calls.
    struct Pair {
        primary_statuses: RefCell<VecDeque<Result<ClusterStatus, CallError>>>,
        standby_status: ClusterStatus,
        handover: RefCell<Option<Result<HandedOver, CallError>>>,
        promote: RefCell<Option<Result<Promoted, CallError>>>,
        /// What each node's switchover check answers (primary, standby).
        checks: RefCell<[Result<SwitchoverCheck, CallError>; 2]>,
        calls: RefCell<Vec<String>>,
    }

    fn check(role: Role, hand_over: Option<&str>, promote: Option<&str>) -> SwitchoverCheck {
        let step = |refusal: Option<&str>| StepCheck {
            possible: refusal.is_none(),
            reason: refusal.map(str::to_owned),
        };
        SwitchoverCheck {
            role,
            epoch: 1,
            hand_over: step(hand_over),
            promote: step(promote),
        }
    }

    impl Pair {
        fn healthy() -> Pair {
            Pair {
                primary_statuses: RefCell::new(VecDeque::from([
                    Ok(status(Role::Primary, 1, Some(true))),
                    Ok(status(Role::Fenced, 1, None)),
                    Err(CallError::Unreachable {
                        request: "GET".into(),
                        reason: "restarting".into(),
                    }),
                    Ok(status(Role::Standby, 2, Some(true))),
                ])),
                standby_status: status(Role::Standby, 1, Some(true)),
                handover: RefCell::new(Some(Ok(HandedOver {
                    epoch: 1,
                    last_lsn: 100,
                }))),
                promote: RefCell::new(Some(Ok(Promoted {
                    epoch: 2,
                    last_lsn: 101,
                    elapsed_ms: 3,
                }))),
                checks: RefCell::new([
                    Ok(check(Role::Primary, None, Some("this node is primary"))),
                    Ok(check(Role::Standby, Some("not writable"), None)),
                ]),
                calls: RefCell::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl ClusterApi for Pair {
        fn cluster(&self, node: &NodeUrl, _: Duration) -> Result<ClusterStatus, CallError> {
            self.calls.borrow_mut().push(format!("cluster {node}"));
            if node.to_string() == STANDBY {
                return Ok(self.standby_status.clone());
            }
            let mut statuses = self.primary_statuses.borrow_mut();
            if statuses.len() > 1 {
                statuses.pop_front().unwrap()
            } else {
                match statuses.front().unwrap() {
                    Ok(status) => Ok(status.clone()),
                    Err(_) => Err(refused("unavailable")),
                }
            }
        }

        fn handover(&self, node: &NodeUrl, _: Duration) -> Result<HandedOver, CallError> {
            self.calls.borrow_mut().push(format!("handover {node}"));
            self.handover.borrow_mut().take().unwrap()
        }

        fn promote(&self, node: &NodeUrl, _: Duration) -> Result<Promoted, CallError> {
            self.calls.borrow_mut().push(format!("promote {node}"));
            self.promote.borrow_mut().take().unwrap()
        }

        fn check(&self, node: &NodeUrl, _: Duration) -> Result<SwitchoverCheck, CallError> {
            self.calls.borrow_mut().push(format!("check {node}"));
            let index = usize::from(node.to_string() == STANDBY);
            let mut checks = self.checks.borrow_mut();
            std::mem::replace(&mut checks[index], Err(refused("asked twice")))
        }

        fn resume(&self, node: &NodeUrl, _: Duration) -> Result<Resumed, CallError> {
            self.calls.borrow_mut().push(format!("resume {node}"));
            Ok(Resumed {
                epoch: 1,
                accepting_orders: true,
            })
        }
    }

    fn plan(timeout: Duration) -> Plan {
        Plan {
            primary: PRIMARY.parse().unwrap(),
            standby: STANDBY.parse().unwrap(),
            timeout,
            poll_interval: Duration::ZERO,
        }
    }

    fn run_plan(pair: &Pair, timeout: Duration) -> (Result<Outcome, SwitchoverError>, Vec<String>) {
        let mut lines = Vec::new();
        let result = switchover(pair, &plan(timeout), &mut |line| {
            lines.push(line.to_owned())
        });
        (result, lines)
    }

    #[test]
    fn the_steps_run_in_order_and_end_when_the_old_primary_follows() {
        let pair = Pair::healthy();
        let (result, lines) = run_plan(&pair, Duration::from_secs(30));
        let outcome = result.unwrap();
        assert_eq!(outcome.promoted.epoch, 2);
        assert_eq!(outcome.old_primary.role, Role::Standby);
        assert_eq!(
            pair.calls(),
            [
                format!("cluster {PRIMARY}"),
                format!("cluster {STANDBY}"),
                format!("check {PRIMARY}"),
                format!("check {STANDBY}"),
                format!("handover {PRIMARY}"),
                format!("promote {STANDBY}"),
                // Fenced, then no answer, then a standby of epoch 2.
                format!("cluster {PRIMARY}"),
                format!("cluster {PRIMARY}"),
                format!("cluster {PRIMARY}"),
            ]
        );
        let steps: Vec<&str> = lines.iter().map(|line| &line[..3]).collect();
        assert_eq!(steps, ["1/4", "2/4", "3/4", "4/4", "don"]);
        assert!(lines[1].contains("up to LSN 100"), "{}", lines[1]);
        assert!(lines[2].contains("epoch 2"), "{}", lines[2]);
    }

    #[test]
    fn a_pair_that_is_not_ready_is_left_unchanged() {
        let pair = Pair::healthy();
        pair.primary_statuses.borrow_mut()[0] = Ok(status(Role::Primary, 1, Some(false)));
        let (result, _) = run_plan(&pair, Duration::from_secs(30));
        let error = result.unwrap_err();
        assert!(
            matches!(error, SwitchoverError::NoStandby { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("nothing was changed"), "{error}");
        assert_eq!(pair.calls().len(), 2, "no handover was asked for");

        let mut pair = Pair::healthy();
        pair.standby_status = status(Role::Primary, 1, None);
        let error = run_plan(&pair, Duration::from_secs(30)).0.unwrap_err();
        assert!(
            matches!(error, SwitchoverError::StandbyIsNot { .. }),
            "{error}"
        );

        let pair = Pair::healthy();
        pair.primary_statuses.borrow_mut()[0] = Ok(status(Role::Fenced, 1, None));
        let error = run_plan(&pair, Duration::from_secs(30)).0.unwrap_err();
        assert!(
            matches!(error, SwitchoverError::PrimaryIsNot { .. }),
            "{error}"
        );

        let pair = Pair::healthy();
        let error = switchover(
            &pair,
            &Plan {
                standby: PRIMARY.parse().unwrap(),
                ..plan(Duration::from_secs(30))
            },
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(error, SwitchoverError::SameNode(_)), "{error}");
        assert!(pair.calls().is_empty());
    }

    #[test]
    fn a_refused_handover_stops_before_the_promotion() {
        let pair = Pair::healthy();
        *pair.handover.borrow_mut() = Some(Err(refused("no_standby")));
        let error = run_plan(&pair, Duration::from_secs(30)).0.unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("step 2 (handover)"), "{message}");
        assert!(message.contains("no_standby"), "{message}");
        assert!(!pair.calls().iter().any(|call| call.starts_with("promote")));
    }

    #[test]
    fn a_failed_promotion_of_a_standby_still_at_the_old_epoch_undoes_the_handover() {
        let pair = Pair::healthy();
        *pair.promote.borrow_mut() = Some(Err(refused("storage_failed")));
        let (result, lines) = run_plan(&pair, Duration::from_secs(30));
        let message = result.unwrap_err().to_string();
        assert!(message.starts_with("step 3 (promote)"), "{message}");
        assert!(message.contains("the handover was undone"), "{message}");
        assert!(message.contains("takes orders again"), "{message}");
        let calls = pair.calls();
        assert_eq!(
            &calls[calls.len() - 2..],
            [format!("cluster {STANDBY}"), format!("resume {PRIMARY}")]
        );
        assert!(lines.last().unwrap().contains("3/4 promote failed"));
    }

    #[test]
    fn a_failed_promotion_of_a_standby_that_moved_on_is_not_undone_and_says_how_to_finish() {
        // The promote request timed out, and the standby then reports itself
        // the primary at epoch 2: the old primary must not resume.
        let pair = Pair::healthy();
        *pair.promote.borrow_mut() = Some(Err(CallError::Unreachable {
            request: format!("POST {STANDBY}/v1/admin/promote"),
            reason: "timed out".into(),
        }));
        let moved = Moved {
            pair: &pair,
            later: status(Role::Primary, 2, None),
            asked: RefCell::new(0),
        };
        let message = switchover(&moved, &plan(Duration::from_secs(30)), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(message.contains("was not undone"), "{message}");
        assert!(!pair.calls().iter().any(|call| call.starts_with("resume")));

        // A standby whose state cannot be read: not undone, and the message
        // says how to finish, with the token flag.
        let pair = Pair::healthy();
        *pair.promote.borrow_mut() = Some(Err(refused("forbidden")));
        let unreadable = Moved {
            pair: &pair,
            later: status(Role::Standby, 1, Some(true)),
            asked: RefCell::new(usize::MAX),
        };
        let message = switchover(&unreadable, &plan(Duration::from_secs(30)), &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(message.contains("was not undone"), "{message}");
        assert!(
            message.contains(&format!("flashgate promote --node {STANDBY} --token")),
            "{message}"
        );
        assert!(!pair.calls().iter().any(|call| call.starts_with("resume")));
    }

    /// A pair whose standby reports `later` from its second status on (or
    /// cannot be read at all, with `asked` at `usize::MAX`).
    struct Moved<'a> {
        pair: &'a Pair,
        later: ClusterStatus,
        asked: RefCell<usize>,
    }

    impl ClusterApi for Moved<'_> {
        fn cluster(&self, node: &NodeUrl, timeout: Duration) -> Result<ClusterStatus, CallError> {
            if node.to_string() != STANDBY {
                return self.pair.cluster(node, timeout);
            }
            let mut asked = self.asked.borrow_mut();
            if *asked == usize::MAX {
                if self
                    .pair
                    .calls()
                    .iter()
                    .any(|call| call.starts_with("promote"))
                {
                    return Err(refused("unavailable"));
                }
                return self.pair.cluster(node, timeout);
            }
            *asked += 1;
            if *asked == 1 {
                self.pair.cluster(node, timeout)
            } else {
                Ok(self.later.clone())
            }
        }
        fn handover(&self, node: &NodeUrl, timeout: Duration) -> Result<HandedOver, CallError> {
            self.pair.handover(node, timeout)
        }
        fn promote(&self, node: &NodeUrl, timeout: Duration) -> Result<Promoted, CallError> {
            self.pair.promote(node, timeout)
        }
        fn check(&self, node: &NodeUrl, timeout: Duration) -> Result<SwitchoverCheck, CallError> {
            self.pair.check(node, timeout)
        }
        fn resume(&self, node: &NodeUrl, timeout: Duration) -> Result<Resumed, CallError> {
            self.pair.resume(node, timeout)
        }
    }

    #[test]
    fn a_node_that_could_not_take_its_part_stops_the_switchover_before_any_change() {
        let pair = Pair::healthy();
        pair.checks.borrow_mut()[1] = Err(CallError::Refused {
            request: format!("GET {STANDBY}/v1/admin/switchover-check"),
            status: 403,
            problem: Problem {
                code: "forbidden".into(),
                detail: "this token may not move the primary role".into(),
            },
        });
        let message = run_plan(&pair, Duration::from_secs(30))
            .0
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("step 1 (check)"), "{message}");
        assert!(message.contains("nothing was changed"), "{message}");
        assert!(message.contains("--token"), "{message}");
        assert!(!pair.calls().iter().any(|call| call.starts_with("handover")));

        let pair = Pair::healthy();
        pair.checks.borrow_mut()[1] = Ok(check(
            Role::Standby,
            Some("not writable"),
            Some("this standby's state is incomplete"),
        ));
        let error = run_plan(&pair, Duration::from_secs(30)).0.unwrap_err();
        assert!(
            matches!(error, SwitchoverError::CannotPromote { .. }),
            "{error}"
        );
        assert!(!pair.calls().iter().any(|call| call.starts_with("handover")));

        let pair = Pair::healthy();
        pair.checks.borrow_mut()[0] = Ok(check(Role::Primary, Some("storage failed"), None));
        let error = run_plan(&pair, Duration::from_secs(30)).0.unwrap_err();
        assert!(
            matches!(error, SwitchoverError::CannotHandOver { .. }),
            "{error}"
        );
        assert!(!pair.calls().iter().any(|call| call.starts_with("handover")));
    }

    #[test]
    fn a_promoted_log_shorter_than_the_handed_over_one_is_an_error() {
        let pair = Pair::healthy();
        *pair.promote.borrow_mut() = Some(Ok(Promoted {
            epoch: 2,
            last_lsn: 99,
            elapsed_ms: 1,
        }));
        let error = run_plan(&pair, Duration::from_secs(30)).0.unwrap_err();
        assert!(
            matches!(
                error,
                SwitchoverError::Gap {
                    promoted_lsn: 99,
                    handed_over_lsn: 100,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn an_old_primary_that_never_follows_fails_step_4_with_what_it_last_said() {
        let pair = Pair::healthy();
        *pair.primary_statuses.borrow_mut() = VecDeque::from([
            Ok(status(Role::Primary, 1, Some(true))),
            Ok(status(Role::Fenced, 1, None)),
        ]);
        let error = run_plan(&pair, Duration::from_millis(50)).0.unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("step 4 (follow)"), "{message}");
        assert!(message.contains("fenced at epoch 1"), "{message}");
        assert!(
            message.contains(&format!("{STANDBY} is the primary")),
            "{message}"
        );
    }

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: SwitchoverArgs,
    }

    #[test]
    fn the_timeout_defaults_to_30s_and_is_bounded() {
        let base = [
            "switchover",
            "--primary",
            PRIMARY,
            "--standby",
            STANDBY,
            "--token",
            "t",
        ];
        let parsed = Command::try_parse_from(base).unwrap();
        assert_eq!(parsed.args.timeout, Duration::from_secs(30));
        let parsed =
            Command::try_parse_from(base.iter().copied().chain(["--timeout", "2m"])).unwrap();
        assert_eq!(parsed.args.timeout, Duration::from_secs(120));
        for bad in ["0s", "500ms", "2h", "30"] {
            assert!(
                Command::try_parse_from(base.iter().copied().chain(["--timeout", bad])).is_err(),
                "{bad}"
            );
        }
    }
}
