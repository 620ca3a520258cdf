//! Following the primary among a cluster's nodes: which node a call goes to,
//! whether a failed attempt may be sent again, and after what pause. Pure
//! bookkeeping, no I/O and no clock reads (callers pass `now`); `cluster` is the
//! async shell both clients run their calls through.
//!
//! The rules, in the order they are applied to a failed attempt:
//! 1. A `not_primary` refusal is always sent again elsewhere: the node did
//!    nothing with it.
//! 2. A request that was not sent (the node could not be reached) is always
//!    sent again elsewhere.
//! 3. A request that was sent and got no answer may have been applied: it is
//!    sent again only when that cannot apply it twice (`Resend::Safe`: reads,
//!    confirm, cancel, put SKU, and orders that all carry an idempotency key).
//! 4. Every node gets one attempt per round; between rounds the call pauses,
//!    `backoff_first` doubling up to `backoff_max`; no attempt starts later than
//!    `wait_max` after the call's first failure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// The highest `FailoverConfig::wait_max` a config may set.
pub const FAILOVER_WAIT_MAX_LIMIT: Duration = Duration::from_secs(600);
/// The shortest `FailoverConfig::backoff_first` a config may set, so that a
/// call cannot spin on nodes that refuse at once.
pub const FAILOVER_BACKOFF_MIN: Duration = Duration::from_millis(1);
/// Attempts one call makes at most, whatever the timing: a bound on the loop
/// even when every node refuses at once.
pub const ATTEMPTS_PER_CALL_MAX: u32 = 10_000;
/// Node switches a client keeps for `OrderGateway::node_switches` (the most
/// recent ones).
pub const NODE_SWITCHES_KEPT: usize = 1024;

/// How long and how often a call looks for a node that takes it, when its
/// node refuses it as `not_primary` or cannot be reached. Shared by
/// `QuicConfig` and `HttpConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailoverConfig {
    /// No attempt starts later than this after a call's first failure; the
    /// call then returns its error. Zero turns failover off: a call returns
    /// its first failure. Up to `FAILOVER_WAIT_MAX_LIMIT`. Default 10 s.
    ///
    /// An attempt that started in time may still take up to the request
    /// timeout, so a call ends within about `wait_max` plus the request
    /// timeout after its first failure.
    pub wait_max: Duration,
    /// The pause after a round in which every node failed once. At least
    /// `FAILOVER_BACKOFF_MIN`. Default 50 ms.
    pub backoff_first: Duration,
    /// Each further round's pause doubles up to this. At least
    /// `backoff_first`. Default 1 s.
    pub backoff_max: Duration,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            wait_max: Duration::from_secs(10),
            backoff_first: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

impl FailoverConfig {
    /// No failover: every call returns its first failure.
    pub fn off() -> FailoverConfig {
        FailoverConfig {
            wait_max: Duration::ZERO,
            ..FailoverConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), ClientError> {
        if self.wait_max > FAILOVER_WAIT_MAX_LIMIT {
            return Err(ClientError::Config(format!(
                "failover.wait_max: must be at most {}",
                humantime::format_duration(FAILOVER_WAIT_MAX_LIMIT)
            )));
        }
        if self.backoff_first < FAILOVER_BACKOFF_MIN || self.backoff_max < self.backoff_first {
            return Err(ClientError::Config(format!(
                "failover.backoff_first: must be at least {} and at most failover.backoff_max",
                humantime::format_duration(FAILOVER_BACKOFF_MIN)
            )));
        }
        Ok(())
    }
}

/// A change of the node that answers a client's calls, as
/// `OrderGateway::node_switches` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSwitch {
    /// When the new node gave its first answer.
    pub at: Instant,
    /// The node that answered before, as configured (a base URL or an
    /// `IP:port`).
    pub from: String,
    /// The node that answers now.
    pub to: String,
}

/// Whether a request that may have reached the server can be sent again
/// without the risk of applying it twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    /// A read, a transition the server answers unchanged when it was already
    /// made (confirm, cancel), a put of the same settings, or orders that all
    /// carry an idempotency key.
    Safe,
    /// An order without an idempotency key, or a restock: sent again, it could
    /// buy or add twice.
    Unsafe,
}

impl Resend {
    /// Orders can be sent again when every one of them carries a key.
    pub(crate) fn orders<'a>(mut keys: impl Iterator<Item = Option<&'a str>>) -> Resend {
        if keys.all(|key| key.is_some()) {
            Resend::Safe
        } else {
            Resend::Unsafe
        }
    }
}

/// How one attempt at one node failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The node answered `not_primary`; nothing was done. `primary` is the
    /// configured node it named as the primary, if it named one of them.
    NotPrimary { primary: Option<usize> },
    /// The node could not be reached; the request was not sent.
    NotSent,
    /// The request was sent, or may have been, and no answer came: it may
    /// have been applied.
    Unanswered,
}

/// An attempt's node and the route's generation when the attempt began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub node: usize,
    generation: u64,
}

/// Where a client's calls go, and which node answered last. One per client;
/// every call's attempts read and move it.
#[derive(Debug)]
pub(crate) struct Route {
    nodes: usize,
    /// The node calls go to now.
    target: usize,
    /// Bumped at every move of `target`, so that the calls that failed at the
    /// same node together move the client once, not once each.
    generation: u64,
    /// The node whose answer the last answered call returned.
    answered_by: usize,
    /// The generation at which the attempt that set `answered_by` began: an
    /// answer to an older attempt, arriving late, does not switch back.
    answered_generation: u64,
    /// Changes of `answered_by`: when, from, to (the most recent
    /// `NODE_SWITCHES_KEPT`).
    switches: VecDeque<(Instant, usize, usize)>,
}

impl Route {
    /// A route over `nodes` nodes (at least one) that starts at `first`.
    pub(crate) fn new(nodes: usize, first: usize) -> Route {
        assert!(nodes > 0 && first < nodes, "a route needs its first node");
        Route {
            nodes,
            target: first,
            generation: 0,
            answered_by: first,
            answered_generation: 0,
            switches: VecDeque::new(),
        }
    }

    /// Where the next attempt goes.
    pub(crate) fn next_attempt(&self) -> Attempt {
        Attempt {
            node: self.target,
            generation: self.generation,
        }
    }

    /// An attempt failed: calls move on from its node (to the primary it
    /// named, else to the next node), unless another call moved them since the
    /// attempt began.
    pub(crate) fn failed(&mut self, attempt: Attempt, failure: Failure) {
        if attempt.generation != self.generation {
            return;
        }
        let next = match failure {
            Failure::NotPrimary {
                primary: Some(primary),
            } if primary < self.nodes && primary != attempt.node => primary,
            _ => (attempt.node + 1) % self.nodes,
        };
        if next != self.target {
            self.target = next;
            self.generation += 1;
        }
    }

    /// The attempt's node answered (with anything but `not_primary`) at
    /// `now`. An attempt that began before the latest answered one is no news:
    /// its answer may arrive after calls moved on.
    pub(crate) fn answered(&mut self, attempt: Attempt, now: Instant) {
        debug_assert!(attempt.node < self.nodes);
        if attempt.generation < self.answered_generation {
            return;
        }
        self.answered_generation = attempt.generation;
        let node = attempt.node;
        if node == self.answered_by {
            return;
        }
        if self.switches.len() == NODE_SWITCHES_KEPT {
            self.switches.pop_front();
        }
        self.switches.push_back((now, self.answered_by, node));
        self.answered_by = node;
    }

    /// The node whose answer the last answered call returned (before any
    /// answer, the node calls started at).
    pub(crate) fn answered_by(&self) -> usize {
        self.answered_by
    }

    /// The changes of answering node, oldest first: when, from, to.
    pub(crate) fn switches(&self) -> impl Iterator<Item = (Instant, usize, usize)> + '_ {
        self.switches.iter().copied()
    }
}

/// What a call does after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send it again (to where the route now points) after this pause.
    Retry { pause: Duration },
    /// Return this error: the failed attempt's, unless an attempt of the call
    /// got no answer, whose error then says that the outcome is unknown.
    GiveUp(ClientError),
}

/// One call's failed attempts: whether the next one may go, and when.
#[derive(Debug)]
pub(crate) struct Attempts {
    config: FailoverConfig,
    nodes: u32,
    failures: u32,
    /// Failures since the last pause: a round ends when every node failed once.
    round_failures: u32,
    /// Set at the first failure: no attempt starts after it.
    deadline: Option<Instant>,
    backoff: Duration,
    /// The error of the last attempt that got no answer, if one did: the
    /// call's outcome is unknown unless a later attempt is answered.
    unanswered: Option<ClientError>,
}

impl Attempts {
    pub(crate) fn new(config: FailoverConfig, nodes: usize) -> Attempts {
        Attempts {
            config,
            nodes: u32::try_from(nodes.max(1)).unwrap_or(u32::MAX),
            failures: 0,
            round_failures: 0,
            deadline: None,
            backoff: config.backoff_first,
            unanswered: None,
        }
    }

    /// Decides after an attempt that failed at `now` as `failure` with
    /// `error`; `resend` says whether what would be sent again is safe to
    /// send twice.
    pub(crate) fn after(
        &mut self,
        failure: Failure,
        error: ClientError,
        resend: Resend,
        now: Instant,
    ) -> Next {
        let error = if failure == Failure::Unanswered {
            self.unanswered = Some(error.clone());
            error
        } else {
            self.unanswered.clone().unwrap_or(error)
        };
        if failure == Failure::Unanswered && resend == Resend::Unsafe {
            return Next::GiveUp(error);
        }
        let deadline = *self.deadline.get_or_insert(now + self.config.wait_max);
        self.failures = self.failures.saturating_add(1);
        if now >= deadline || self.failures >= ATTEMPTS_PER_CALL_MAX {
            return Next::GiveUp(error);
        }
        self.round_failures += 1;
        let pause = if self.round_failures >= self.nodes {
            self.round_failures = 0;
            let pause = self.backoff;
            self.backoff = (self.backoff * 2).min(self.config.backoff_max);
            pause
        } else {
            Duration::ZERO
        };
        Next::Retry {
            pause: pause.min(deadline - now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn refused() -> ClientError {
        ClientError::Server {
            code: "not_primary".into(),
            detail: "standby".into(),
        }
    }

    fn lost() -> ClientError {
        ClientError::Transport(crate::error::TransportError::ConnectionLost("reset".into()))
    }

    fn unreachable() -> ClientError {
        ClientError::Transport(crate::error::TransportError::Connect("refused".into()))
    }

    fn error_of(failure: Failure) -> ClientError {
        match failure {
            Failure::NotPrimary { .. } => refused(),
            Failure::NotSent => unreachable(),
            Failure::Unanswered => lost(),
        }
    }

    fn config() -> FailoverConfig {
        FailoverConfig {
            wait_max: 1000 * MS,
            backoff_first: 50 * MS,
            backoff_max: 200 * MS,
        }
    }

    #[test]
    fn a_refusal_moves_calls_to_the_named_primary_or_the_next_node() {
        let mut route = Route::new(3, 0);
        let first = route.next_attempt();
        route.failed(first, Failure::NotPrimary { primary: Some(2) });
        assert_eq!(route.next_attempt().node, 2);
        route.failed(route.next_attempt(), Failure::NotPrimary { primary: None });
        assert_eq!(route.next_attempt().node, 0);
        route.failed(route.next_attempt(), Failure::NotSent);
        assert_eq!(route.next_attempt().node, 1);
        // A node naming itself, or a node that is not configured, is no hint.
        route.failed(
            route.next_attempt(),
            Failure::NotPrimary { primary: Some(1) },
        );
        assert_eq!(route.next_attempt().node, 2);
        route.failed(
            route.next_attempt(),
            Failure::NotPrimary { primary: Some(7) },
        );
        assert_eq!(route.next_attempt().node, 0);
    }

    #[test]
    fn calls_that_failed_at_the_same_node_move_the_client_once() {
        let mut route = Route::new(3, 0);
        let a = route.next_attempt();
        let b = route.next_attempt();
        route.failed(a, Failure::Unanswered);
        route.failed(b, Failure::Unanswered);
        assert_eq!(route.next_attempt().node, 1);
    }

    #[test]
    fn a_switch_is_recorded_when_another_node_answers() {
        let start = Instant::now();
        let mut route = Route::new(2, 0);
        route.answered(route.next_attempt(), start);
        assert_eq!(route.switches().count(), 0);
        route.failed(route.next_attempt(), Failure::NotSent);
        // Moving is not switching: the switch is when the new node answers.
        assert_eq!(route.switches().count(), 0);
        route.answered(route.next_attempt(), start + MS);
        route.answered(route.next_attempt(), start + 2 * MS);
        assert_eq!(route.switches().collect::<Vec<_>>(), [(start + MS, 0, 1)]);
        assert_eq!(route.answered_by(), 1);
    }

    #[test]
    fn a_late_answer_to_an_attempt_from_before_the_move_is_not_a_switch_back() {
        let start = Instant::now();
        let mut route = Route::new(2, 0);
        let early = route.next_attempt();
        route.failed(route.next_attempt(), Failure::Unanswered);
        route.answered(route.next_attempt(), start);
        route.answered(early, start + MS);
        assert_eq!(route.answered_by(), 1);
        assert_eq!(route.switches().collect::<Vec<_>>(), [(start, 0, 1)]);
    }

    #[test]
    fn switches_kept_are_bounded() {
        let start = Instant::now();
        let mut route = Route::new(2, 0);
        for _ in 0..NODE_SWITCHES_KEPT + 10 {
            route.failed(route.next_attempt(), Failure::NotSent);
            route.answered(route.next_attempt(), start);
        }
        assert_eq!(route.switches().count(), NODE_SWITCHES_KEPT);
    }

    /// One failed attempt of `attempts`, with the error such a failure has.
    fn fail(attempts: &mut Attempts, failure: Failure, resend: Resend, now: Instant) -> Next {
        attempts.after(failure, error_of(failure), resend, now)
    }

    const NOT_PRIMARY: Failure = Failure::NotPrimary { primary: None };

    #[test]
    fn refusals_and_unsent_requests_are_always_retried() {
        let now = Instant::now();
        let mut attempts = Attempts::new(config(), 2);
        assert_eq!(
            fail(&mut attempts, NOT_PRIMARY, Resend::Unsafe, now),
            Next::Retry {
                pause: Duration::ZERO
            }
        );
        assert_eq!(
            fail(&mut attempts, Failure::NotSent, Resend::Unsafe, now),
            Next::Retry { pause: 50 * MS }
        );
    }

    #[test]
    fn an_unanswered_request_is_retried_only_when_safe() {
        let now = Instant::now();
        let mut unsafe_call = Attempts::new(config(), 2);
        assert_eq!(
            fail(&mut unsafe_call, Failure::Unanswered, Resend::Unsafe, now),
            Next::GiveUp(lost())
        );
        let mut safe_call = Attempts::new(config(), 2);
        assert!(matches!(
            fail(&mut safe_call, Failure::Unanswered, Resend::Safe, now),
            Next::Retry { .. }
        ));
    }

    #[test]
    fn a_call_that_may_have_been_applied_gives_up_with_the_unknown_outcome() {
        // Lost on one node, refused by the next until the wait is over: the
        // first attempt may have been applied, so the refusal is not the answer.
        let start = Instant::now();
        let mut attempts = Attempts::new(config(), 2);
        assert!(matches!(
            fail(&mut attempts, Failure::Unanswered, Resend::Safe, start),
            Next::Retry { .. }
        ));
        assert_eq!(
            fail(&mut attempts, NOT_PRIMARY, Resend::Safe, start + 1000 * MS),
            Next::GiveUp(lost())
        );
        // Without a lost attempt, the last refusal is the answer.
        let mut attempts = Attempts::new(config(), 2);
        assert!(matches!(
            fail(&mut attempts, Failure::NotSent, Resend::Safe, start),
            Next::Retry { .. }
        ));
        assert_eq!(
            fail(&mut attempts, NOT_PRIMARY, Resend::Safe, start + 1000 * MS),
            Next::GiveUp(refused())
        );
    }

    #[test]
    fn rounds_pause_with_a_doubling_backoff_up_to_its_maximum() {
        let now = Instant::now();
        let mut attempts = Attempts::new(config(), 2);
        let pauses: Vec<Duration> = (0..10)
            .map(
                |_| match fail(&mut attempts, Failure::NotSent, Resend::Safe, now) {
                    Next::Retry { pause } => pause,
                    Next::GiveUp(error) => panic!("gave up before the deadline: {error}"),
                },
            )
            .collect();
        let expected: Vec<Duration> = [0, 50, 0, 100, 0, 200, 0, 200, 0, 200]
            .iter()
            .map(|&n| n * MS)
            .collect();
        assert_eq!(pauses, expected);
    }

    #[test]
    fn no_attempt_starts_after_the_wait() {
        let start = Instant::now();
        let mut attempts = Attempts::new(config(), 1);
        // The pause is cut to what is left of the wait, then the call gives up.
        assert_eq!(
            fail(&mut attempts, Failure::NotSent, Resend::Safe, start),
            Next::Retry { pause: 50 * MS }
        );
        assert_eq!(
            fail(
                &mut attempts,
                Failure::NotSent,
                Resend::Safe,
                start + 980 * MS
            ),
            Next::Retry { pause: 20 * MS }
        );
        assert_eq!(
            fail(
                &mut attempts,
                Failure::NotSent,
                Resend::Safe,
                start + 1000 * MS
            ),
            Next::GiveUp(unreachable())
        );
    }

    #[test]
    fn no_wait_means_no_failover() {
        let mut attempts = Attempts::new(FailoverConfig::off(), 3);
        assert_eq!(
            fail(&mut attempts, NOT_PRIMARY, Resend::Safe, Instant::now()),
            Next::GiveUp(refused())
        );
    }

    #[test]
    fn the_attempts_of_one_call_are_bounded() {
        let now = Instant::now();
        let mut config = config();
        config.wait_max = FAILOVER_WAIT_MAX_LIMIT;
        let mut attempts = Attempts::new(config, 16);
        let retries = (0..)
            .take_while(|_| {
                matches!(
                    fail(&mut attempts, Failure::NotSent, Resend::Safe, now),
                    Next::Retry { .. }
                )
            })
            .count();
        assert_eq!(retries as u32, ATTEMPTS_PER_CALL_MAX - 1);
    }

    #[test]
    fn orders_are_safe_to_resend_only_when_all_carry_a_key() {
        assert_eq!(
            Resend::orders([Some("a"), Some("b")].into_iter()),
            Resend::Safe
        );
        assert_eq!(
            Resend::orders([Some("a"), None].into_iter()),
            Resend::Unsafe
        );
        assert_eq!(Resend::orders(std::iter::empty()), Resend::Safe);
    }

    #[test]
    fn configs_outside_the_limits_are_refused() {
        FailoverConfig::default().validate().unwrap();
        FailoverConfig::off().validate().unwrap();
        let too_long = FailoverConfig {
            wait_max: FAILOVER_WAIT_MAX_LIMIT + MS,
            ..FailoverConfig::default()
        };
        assert!(too_long.validate().is_err());
        let spinning = FailoverConfig {
            backoff_first: Duration::ZERO,
            ..FailoverConfig::default()
        };
        assert!(spinning.validate().is_err());
        let inverted = FailoverConfig {
            backoff_first: 2 * MS,
            backoff_max: MS,
            ..FailoverConfig::default()
        };
        assert!(inverted.validate().is_err());
    }
}
