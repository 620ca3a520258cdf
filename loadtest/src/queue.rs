//! The waiting-room step of an order (`--waiting-room-admit-per-sec`): join
//! the SKU's queue, poll the ticket no sooner than each answer's
//! `poll_after` says, and hand back the admission once admitted; count what
//! happened and the time from joining to admission (HDR, ms).

use std::time::{Duration, Instant};

use flashgate_client::{ClientError, OrderGateway};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::order_flow::{lock, Engine};
use crate::recorder::{error_label, LatencySummary};
use crate::workload::PlannedOrder;

/// Longest time in queue the histogram holds (an hour, in ms); longer waits
/// are recorded as this.
const TIME_IN_QUEUE_MS_MAX: u64 = 3_600_000;
/// The shortest pause between two polls, whatever the server hints: the
/// load tester must not poll harder than a buyer's browser would.
const POLL_AFTER_MIN: Duration = Duration::from_millis(20);

/// What the waiting room did with the run's orders.
pub struct QueueStats {
    pub joined: u64,
    pub admitted: u64,
    /// Still waiting when the SKU sold out.
    pub sold_out: u64,
    /// Admitted but not used in time (should not happen: the order follows
    /// at once).
    pub expired: u64,
    /// Still waiting when the run's duration ended.
    pub gave_up: u64,
    /// A join or poll that failed (its code in `errors`).
    pub failed: u64,
    pub polls: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
    time_in_queue_ms: Histogram<u64>,
}

impl Default for QueueStats {
    fn default() -> QueueStats {
        QueueStats {
            joined: 0,
            admitted: 0,
            sold_out: 0,
            expired: 0,
            gave_up: 0,
            failed: 0,
            polls: 0,
            errors: Default::default(),
            time_in_queue_ms: Histogram::new_with_bounds(1, TIME_IN_QUEUE_MS_MAX, 3)
                .expect("valid histogram bounds"),
        }
    }
}

/// The waiting room's part of the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WaitingRoomReport {
    pub joined: u64,
    pub admitted: u64,
    pub sold_out_while_waiting: u64,
    pub expired: u64,
    pub gave_up_at_deadline: u64,
    pub failed: u64,
    pub polls: u64,
    pub errors_by_code: std::collections::BTreeMap<String, u64>,
    /// From joining to the poll that found the ticket admitted, in ms.
    pub time_in_queue_ms: LatencySummary,
}

impl QueueStats {
    pub fn report(&self) -> WaitingRoomReport {
        WaitingRoomReport {
            joined: self.joined,
            admitted: self.admitted,
            sold_out_while_waiting: self.sold_out,
            expired: self.expired,
            gave_up_at_deadline: self.gave_up,
            failed: self.failed,
            polls: self.polls,
            errors_by_code: self.errors.clone(),
            time_in_queue_ms: LatencySummary::of(&self.time_in_queue_ms),
        }
    }

    fn failed(&mut self, error: &ClientError) {
        self.failed += 1;
        *self.errors.entry(error_label(error)).or_default() += 1;
    }
}

impl<G: OrderGateway + Send + Sync + 'static> Engine<G> {
    /// Queues `order`'s customer for its SKU at endpoint `endpoint` until
    /// admitted (the admission ticket), or until the SKU sells out, the
    /// run's deadline passes or a call fails (`None`, counted).
    pub async fn queue_through(&self, endpoint: usize, order: &PlannedOrder) -> Option<String> {
        let stats = self.waiting_room.as_ref()?;
        let gateway = &self.endpoints[endpoint].gateway;
        let joined_at = Instant::now();
        let mut ticket = match gateway.join_queue(&order.sku, &order.customer_id).await {
            Ok(ticket) => ticket,
            Err(error) => {
                lock(stats).failed(&error);
                return None;
            }
        };
        lock(stats).joined += 1;
        let join_ticket = ticket.ticket.clone();
        loop {
            match ticket.status.as_str() {
                "admitted" => {
                    let waited_ms = joined_at.elapsed().as_millis() as u64;
                    let mut stats = lock(stats);
                    stats.admitted += 1;
                    stats
                        .time_in_queue_ms
                        .saturating_record(waited_ms.clamp(1, TIME_IN_QUEUE_MS_MAX));
                    return ticket.admission_ticket;
                }
                "sold_out" => {
                    lock(stats).sold_out += 1;
                    return None;
                }
                "expired" | "used" => {
                    lock(stats).expired += 1;
                    return None;
                }
                _ => {}
            }
            let pause = ticket.poll_after.max(POLL_AFTER_MIN);
            if Instant::now() + pause > self.deadline || self.is_halted() {
                lock(stats).gave_up += 1;
                return None;
            }
            tokio::time::sleep(pause).await;
            lock(stats).polls += 1;
            ticket = match gateway.poll_queue(&order.sku, &join_ticket).await {
                Ok(ticket) => ticket,
                Err(error) => {
                    lock(stats).failed(&error);
                    return None;
                }
            };
        }
    }
}
