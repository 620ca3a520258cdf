//! `SyncGate`: when a primary may send an answer, as a pure state machine.
//!
//! The log writer hands the gate every durable batch's tickets with the
//! batch's last LSN; the replication shell reports the standby's connection
//! and acknowledgements; a timer calls `tick`. Every input carries `now`, and
//! every output (`Output`) says which answers to send and which to refuse:
//! the gate sleeps, polls and reads no clock, so it runs the same under
//! simulated time (actors/tests/replication_sim.rs) as in the node.
//!
//! The rules, in order:
//! 1. A node that is not the primary never acknowledges a record: on a fenced
//!    node a record's answer is refused with `NotPrimary`; other answers
//!    (reads) are released. Answers held when the node loses its role are
//!    refused at the next `tick`.
//! 2. Without sync replication, or while degraded, answers go out once
//!    durable here.
//! 3. In sync mode an answer goes out only once the standby acknowledged an
//!    LSN at least its batch's last LSN. That covers every record the answer
//!    reflects: its own, and for an answer without a record (a read, an
//!    idempotent replay, a refusal) every record its shard had decided
//!    before, which the log wrote in the same batch or an earlier one.
//! 4. `block`: an answer not acknowledged within `standby_timeout` is refused
//!    with `StandbyUnavailable`, and while the standby has been disconnected
//!    longer than that, new answers are refused at once. A refused answer
//!    raises no watermark, so every retry waits for the standby again.
//! 5. `degrade`: after `standby_timeout` (an answer waiting, or the standby
//!    disconnected) the gate releases everything and goes on alone, reported
//!    as degraded. A connected standby brings it back in two steps, so that
//!    one following a primary under constant load gets there: once it
//!    acknowledges the LSN that was durable here when it first reported back
//!    (its catch-up target, fixed), answers wait for it again (still reported
//!    degraded); once it acknowledges the last LSN any answer was released
//!    for, nothing reported is missing on it, and the gate is in sync.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use flashgate_storage::Lsn;

use super::role::{Replication, Role, StandbyLoss};

/// What the gate needs to know of a ticket.
pub trait GateTicket {
    /// Whether it is a log record (as opposed to an answer that only reflects
    /// records).
    fn is_record(&self) -> bool;
}

/// Why the gate refused answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Sync mode: the standby did not acknowledge in time.
    StandbyUnavailable,
    /// The node is not (or no longer) the primary.
    NotPrimary,
}

/// The gate's settings.
#[derive(Clone, Copy, Debug)]
pub struct GateConfig {
    pub replication: Replication,
    pub standby_loss: StandbyLoss,
    /// How long an answer waits for the standby before `standby_loss` applies.
    pub standby_timeout: Duration,
}

/// What a step decided. The caller sends `released`, fails `refused` with
/// `refusal`, and reports the changes of degraded state.
#[must_use]
#[derive(Debug)]
pub struct Output<T> {
    pub released: Vec<T>,
    pub refused: Vec<T>,
    pub refusal: Option<Refusal>,
    /// This step started degraded mode, for this reason.
    pub degraded: Option<String>,
    /// This step ended degraded mode: the standby caught up.
    pub back_in_sync: bool,
}

impl<T> Default for Output<T> {
    fn default() -> Output<T> {
        Output {
            released: Vec::new(),
            refused: Vec::new(),
            refusal: None,
            degraded: None,
            back_in_sync: false,
        }
    }
}

impl<T> Output<T> {
    fn release(released: Vec<T>) -> Output<T> {
        Output {
            released,
            ..Output::default()
        }
    }

    fn refuse(refused: Vec<T>, refusal: Refusal) -> Output<T> {
        Output {
            refusal: (!refused.is_empty()).then_some(refusal),
            refused,
            ..Output::default()
        }
    }

    /// Whether the step decided nothing.
    pub fn is_empty(&self) -> bool {
        self.released.is_empty()
            && self.refused.is_empty()
            && self.degraded.is_none()
            && !self.back_in_sync
    }
}

/// Answers durable here, waiting for the standby to acknowledge `last_lsn`.
#[derive(Debug)]
struct Held<T> {
    last_lsn: Lsn,
    since: Instant,
    tickets: Vec<T>,
}

/// The sync gate of one primary. See the module doc for its rules.
#[derive(Debug)]
pub struct SyncGate<T> {
    config: GateConfig,
    /// The standby's durable LSN, as it last acknowledged.
    acked_lsn: Lsn,
    /// Oldest first; `last_lsn` never decreases along the queue.
    held: VecDeque<Held<T>>,
    /// Why the primary goes on without its standby, when it does.
    degraded: Option<String>,
    standby_connected: bool,
    /// When the standby connected or went away.
    standby_since: Instant,
    /// While degraded with a standby connected: the LSN it must acknowledge
    /// before answers wait for it again (rule 5).
    catch_up_lsn: Option<Lsn>,
    /// While degraded: answers wait for the standby again (rule 5).
    resyncing: bool,
    /// The last LSN an answer was released for: what a standby must hold
    /// before the gate is back in sync.
    released_lsn: Lsn,
}

impl<T: GateTicket> SyncGate<T> {
    /// A gate whose standby is not connected (yet), as of `now`.
    pub fn new(config: GateConfig, now: Instant) -> SyncGate<T> {
        SyncGate {
            config,
            acked_lsn: 0,
            held: VecDeque::new(),
            degraded: None,
            standby_connected: false,
            standby_since: now,
            catch_up_lsn: None,
            resyncing: false,
            released_lsn: 0,
        }
    }

    pub fn config(&self) -> &GateConfig {
        &self.config
    }

    pub fn acked_lsn(&self) -> Lsn {
        self.acked_lsn
    }

    pub fn degraded(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    pub fn standby_connected(&self) -> bool {
        self.standby_connected
    }

    /// When the standby connected or went away.
    pub fn standby_since(&self) -> Instant {
        self.standby_since
    }

    /// Answers waiting for the standby.
    pub fn held_count(&self) -> usize {
        self.held.iter().map(|held| held.tickets.len()).sum()
    }

    /// Whether answers must wait for the standby at all.
    fn gating(&self, role: Role) -> bool {
        role == Role::Primary
            && self.config.replication == Replication::Sync
            && (self.degraded.is_none() || self.resyncing)
    }

    /// Sync with `block`, not degraded, and the standby disconnected for longer
    /// than the timeout: answers are refused at once instead of waiting.
    pub fn blocked(&self, now: Instant) -> bool {
        self.config.replication == Replication::Sync
            && self.config.standby_loss == StandbyLoss::Block
            && self.degraded.is_none()
            && self.standby_gone(now)
    }

    fn standby_gone(&self, now: Instant) -> bool {
        !self.standby_connected
            && now.saturating_duration_since(self.standby_since) >= self.config.standby_timeout
    }

    /// A batch became durable here: its tickets, and the batch's last LSN (for
    /// a batch of answers only, the last LSN written before them).
    pub fn durable(
        &mut self,
        role: Role,
        tickets: Vec<T>,
        last_lsn: Lsn,
        now: Instant,
    ) -> Output<T> {
        if role == Role::Fenced {
            // Decided before the fence, durable after it: a newer primary
            // exists, so these records are never acknowledged from here.
            let (records, reads): (Vec<T>, Vec<T>) =
                tickets.into_iter().partition(GateTicket::is_record);
            return Output {
                released: reads,
                ..Output::refuse(records, Refusal::NotPrimary)
            };
        }
        if !self.gating(role) || self.acked_lsn >= last_lsn {
            self.released_lsn = self.released_lsn.max(last_lsn);
            return Output::release(tickets);
        }
        if self.blocked(now) {
            return Output::refuse(tickets, Refusal::StandbyUnavailable);
        }
        debug_assert!(self
            .held
            .back()
            .is_none_or(|held| held.last_lsn <= last_lsn));
        self.held.push_back(Held {
            last_lsn,
            since: now,
            tickets,
        });
        Output::default()
    }

    /// The standby acknowledged everything through `lsn` as durable; the
    /// primary's own durable LSN is `primary_durable_lsn`.
    pub fn acked(&mut self, lsn: Lsn, primary_durable_lsn: Lsn) -> Output<T> {
        self.acked_lsn = self.acked_lsn.max(lsn);
        let mut output = Output::default();
        while let Some(held) = self.held.pop_front() {
            if held.last_lsn > self.acked_lsn {
                self.held.push_front(held);
                break;
            }
            self.released_lsn = self.released_lsn.max(held.last_lsn);
            output.released.extend(held.tickets);
        }
        if self.degraded.is_some() && self.standby_connected {
            let target = *self.catch_up_lsn.get_or_insert(primary_durable_lsn);
            self.resyncing |= self.acked_lsn >= target;
            if self.resyncing && self.acked_lsn >= self.released_lsn {
                self.degraded = None;
                self.catch_up_lsn = None;
                self.resyncing = false;
                output.back_in_sync = true;
            }
        }
        output
    }

    /// A standby connected, having everything through `acked_lsn`. A new
    /// standby may have less than the last one acknowledged: answers then wait
    /// for it to catch up.
    pub fn standby_connected_at(
        &mut self,
        acked_lsn: Lsn,
        primary_durable_lsn: Lsn,
        now: Instant,
    ) -> Output<T> {
        self.standby_connected = true;
        self.standby_since = now;
        self.acked_lsn = acked_lsn;
        self.catch_up_lsn = None;
        self.acked(acked_lsn, primary_durable_lsn)
    }

    /// The standby went away. While resyncing (rule 5) the gate goes on alone
    /// again, releasing what waited for it.
    pub fn standby_disconnected_at(&mut self, now: Instant) -> Output<T> {
        self.standby_connected = false;
        self.standby_since = now;
        self.catch_up_lsn = None;
        match self.degraded.clone() {
            Some(reason) if self.resyncing => self.degrade(reason),
            _ => Output::default(),
        }
    }

    /// Applies the timeouts (rules 1, 4 and 5); call a few times a second.
    pub fn tick(&mut self, role: Role, now: Instant) -> Output<T> {
        if role != Role::Primary {
            // Answers that slipped into the gate while this node lost its
            // role: refused, never acknowledged.
            return self.refuse_all(Refusal::NotPrimary);
        }
        if !self.gating(role) {
            return Output::default();
        }
        let timeout = self.config.standby_timeout;
        let timed_out = self
            .held
            .front()
            .is_some_and(|held| now.saturating_duration_since(held.since) >= timeout);
        match self.config.standby_loss {
            StandbyLoss::Degrade if timed_out || self.standby_gone(now) => self.degrade(format!(
                "the standby did not acknowledge within {}",
                humantime::format_duration(timeout)
            )),
            StandbyLoss::Block if timed_out => self.refuse_all(Refusal::StandbyUnavailable),
            _ => Output::default(),
        }
    }

    /// Goes on without the standby, releasing every held answer. Nothing when
    /// already degraded.
    pub fn degrade(&mut self, reason: String) -> Output<T> {
        let newly = self.degraded.is_none();
        if !newly && !self.resyncing {
            return Output::default();
        }
        self.degraded = Some(reason.clone());
        self.resyncing = false;
        self.catch_up_lsn = None;
        let held: Vec<Held<T>> = self.held.drain(..).collect();
        if let Some(last) = held.last() {
            self.released_lsn = self.released_lsn.max(last.last_lsn);
        }
        Output {
            degraded: newly.then_some(reason),
            ..Output::release(held.into_iter().flat_map(|held| held.tickets).collect())
        }
    }

    /// Refuses every held answer (the standby will not acknowledge them in
    /// time, or this node lost its role).
    pub fn refuse_all(&mut self, refusal: Refusal) -> Output<T> {
        let refused = self.held.drain(..).flat_map(|held| held.tickets).collect();
        Output::refuse(refused, refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ticket: an id, and whether it is a record.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct T(u32, bool);

    impl GateTicket for T {
        fn is_record(&self) -> bool {
            self.1
        }
    }

    fn gate(standby_loss: StandbyLoss, timeout_ms: u64, now: Instant) -> SyncGate<T> {
        SyncGate::new(
            GateConfig {
                replication: Replication::Sync,
                standby_loss,
                standby_timeout: Duration::from_millis(timeout_ms),
            },
            now,
        )
    }

    fn ms(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn answers_wait_for_the_standby_to_acknowledge_their_batch() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Block, 1_000, t0);
        assert!(gate.standby_connected_at(0, 0, t0).is_empty());
        assert!(gate
            .durable(Role::Primary, vec![T(1, true)], 5, t0)
            .is_empty());
        assert!(gate
            .durable(Role::Primary, vec![T(2, false)], 9, t0)
            .is_empty());
        assert!(
            gate.acked(4, 9).released.is_empty(),
            "LSN 5 is not acknowledged yet"
        );
        assert_eq!(gate.acked(5, 9).released, vec![T(1, true)]);
        assert_eq!(gate.acked(9, 9).released, vec![T(2, false)]);
        let output = gate.durable(Role::Primary, vec![T(3, false)], 8, t0);
        assert_eq!(output.released, vec![T(3, false)], "already acknowledged");
    }

    #[test]
    fn block_refuses_after_the_timeout_and_every_retry_until_the_standby_has_it() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Block, 1_000, t0);
        let _ = gate.standby_connected_at(10, 10, t0);
        // The standby stalls (still connected): a record at LSN 11 waits...
        assert!(gate
            .durable(Role::Primary, vec![T(1, true)], 11, t0)
            .is_empty());
        assert!(gate.tick(Role::Primary, ms(t0, 999)).is_empty());
        let output = gate.tick(Role::Primary, ms(t0, 1_000));
        assert_eq!(output.refused, vec![T(1, true)]);
        assert_eq!(output.refusal, Some(Refusal::StandbyUnavailable));
        // ...and a retry (an answer reflecting LSN 11, no new record) waits
        // and is refused the same way: it is not answered from memory.
        assert!(gate
            .durable(Role::Primary, vec![T(2, false)], 11, ms(t0, 1_100))
            .is_empty());
        let output = gate.tick(Role::Primary, ms(t0, 2_100));
        assert_eq!(output.refused, vec![T(2, false)]);
        // Once the standby has LSN 11, the next retry is answered.
        assert!(gate.acked(11, 11).is_empty());
        let output = gate.durable(Role::Primary, vec![T(3, false)], 11, ms(t0, 2_200));
        assert_eq!(output.released, vec![T(3, false)]);
        assert!(gate.degraded().is_none());
    }

    #[test]
    fn block_refuses_at_once_while_the_standby_is_gone() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Block, 1_000, t0);
        let _ = gate.standby_connected_at(3, 3, t0);
        assert!(gate.standby_disconnected_at(ms(t0, 10)).is_empty());
        assert!(!gate.blocked(ms(t0, 500)));
        assert!(gate
            .durable(Role::Primary, vec![T(1, false)], 4, ms(t0, 500))
            .is_empty());
        assert!(gate.blocked(ms(t0, 1_010)));
        let output = gate.durable(Role::Primary, vec![T(2, false)], 4, ms(t0, 1_010));
        assert_eq!(output.refused, vec![T(2, false)]);
        // Answers that reflect only what the standby has still go out.
        let output = gate.durable(Role::Primary, vec![T(3, false)], 3, ms(t0, 1_010));
        assert_eq!(output.released, vec![T(3, false)]);
        let output = gate.tick(Role::Primary, ms(t0, 1_500));
        assert_eq!(output.refused, vec![T(1, false)]);
    }

    #[test]
    fn degrade_goes_on_alone_and_returns_to_sync_once_the_standby_caught_up() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Degrade, 100, t0);
        let _ = gate.standby_connected_at(0, 0, t0);
        assert!(gate
            .durable(Role::Primary, vec![T(1, true)], 1, t0)
            .is_empty());
        let output = gate.tick(Role::Primary, ms(t0, 100));
        assert_eq!(output.released, vec![T(1, true)]);
        assert!(output.degraded.is_some());
        let output = gate.durable(Role::Primary, vec![T(2, true)], 2, ms(t0, 101));
        assert_eq!(output.released, vec![T(2, true)], "degraded: not held");
        assert!(!gate.acked(1, 2).back_in_sync, "still behind");
        assert!(gate.acked(2, 2).back_in_sync);
        assert!(gate.degraded().is_none());
    }

    #[test]
    fn a_standby_catching_up_under_constant_load_brings_degrade_back_to_sync() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Degrade, 100, t0);
        let _ = gate.degrade("promoted".into());
        // The standby connects with LSN 10 of 100; the primary keeps writing,
        // so the standby is always behind its durable LSN...
        assert!(!gate.standby_connected_at(10, 100, t0).back_in_sync);
        assert!(!gate.acked(60, 150).back_in_sync);
        // ...but it reaches the target it was set when it reported back, and
        // answers wait for it again, while still degraded...
        assert!(
            gate.durable(Role::Primary, vec![T(1, true)], 180, t0)
                .released
                .len()
                == 1
        );
        assert!(!gate.acked(100, 200).back_in_sync);
        assert!(gate
            .durable(Role::Primary, vec![T(2, true)], 200, t0)
            .is_empty());
        assert!(gate.degraded().is_some());
        // ...until it holds everything an answer was released for.
        let output = gate.acked(180, 200);
        assert!(output.back_in_sync && output.released.is_empty());
        assert_eq!(gate.acked(200, 220).released, vec![T(2, true)]);
    }

    #[test]
    fn a_disconnected_standby_degrades_even_with_nothing_waiting() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Degrade, 100, t0);
        assert!(gate.tick(Role::Primary, ms(t0, 99)).is_empty());
        assert!(gate.tick(Role::Primary, ms(t0, 100)).degraded.is_some());
    }

    #[test]
    fn a_fenced_node_never_acknowledges_a_record_and_still_answers_reads() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Block, 1_000, t0);
        let output = gate.durable(Role::Fenced, vec![T(1, true), T(2, false)], 1, t0);
        assert_eq!(output.refused, vec![T(1, true)]);
        assert_eq!(output.refusal, Some(Refusal::NotPrimary));
        assert_eq!(output.released, vec![T(2, false)]);
    }

    #[test]
    fn answers_held_when_the_role_is_lost_are_refused() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Degrade, 1_000, t0);
        let _ = gate.standby_connected_at(0, 0, t0);
        assert!(gate
            .durable(Role::Primary, vec![T(1, true)], 1, t0)
            .is_empty());
        let output = gate.tick(Role::Fenced, t0);
        assert_eq!(output.refused, vec![T(1, true)]);
        assert_eq!(output.refusal, Some(Refusal::NotPrimary));
        assert!(
            gate.acked(1, 1).released.is_empty(),
            "never released afterwards"
        );
    }

    #[test]
    fn a_new_standby_with_less_makes_answers_wait_for_it() {
        let t0 = Instant::now();
        let mut gate = gate(StandbyLoss::Block, 1_000, t0);
        let _ = gate.standby_connected_at(50, 50, t0);
        assert!(gate.standby_disconnected_at(t0).is_empty());
        let _ = gate.standby_connected_at(0, 50, t0);
        assert!(gate
            .durable(Role::Primary, vec![T(1, false)], 50, t0)
            .is_empty());
        assert_eq!(gate.acked(50, 50).released, vec![T(1, false)]);
    }
}
