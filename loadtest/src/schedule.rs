//! The two load models. Closed: `buyers` tasks, each sending its next call
//! when the last is answered. Open: calls arrive at a constant rate whatever
//! the server does; each call's latency counts from its intended send time (as
//! wrk2 does; from when it was sent if that was up to a timer tick earlier),
//! calls sent later than intended are counted `late`, and at most
//! `outstanding_max` calls are in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_client::OrderGateway;
use tokio::task::JoinSet;

use crate::order_flow::{lock, Engine};
use crate::workload::{PlannedOrder, Workload};

/// A call sent more than this after its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(5);

/// The resolution of tokio's timer: a sleep ends on the first tick at or
/// after its deadline, up to this much late. An open-loop sender sleeps until
/// one tick before a call's intended time, so the call leaves at most a tick
/// early instead of up to a tick late (which would count the load tester's
/// timer as the server's latency).
const TIMER_TICK: Duration = Duration::from_millis(1);

/// The intended send time of arrival `index` (0-based) after the start, for
/// `rate` calls per second reached by a linear ramp over `ramp_up`: during the
/// ramp the rate grows as `rate * t / ramp_up`, so arrival `k` is at
/// `sqrt(2 * ramp_up * k / rate)`; after it, at a constant interval.
pub fn intended_offset(index: u64, rate: f64, ramp_up: Duration) -> Duration {
    let ramp_secs = ramp_up.as_secs_f64();
    let k = index as f64;
    let ramp_arrivals = rate * ramp_secs / 2.0;
    let seconds = if k < ramp_arrivals {
        (2.0 * ramp_secs * k / rate).sqrt()
    } else {
        ramp_secs + (k - ramp_arrivals) / rate
    };
    Duration::from_secs_f64(seconds.max(0.0))
}

/// The next call: an endpoint, round robin, and as many orders as it takes
/// in one call, drawn from `workload`; `None` once the order cap is reached.
fn next_call<G: OrderGateway + Send + Sync + 'static>(
    engine: &Engine<G>,
    workload: &mut Workload,
) -> Option<(usize, Vec<PlannedOrder>)> {
    let endpoint = engine.pick_endpoint();
    let wanted = u64::from(engine.endpoints[endpoint].batch);
    let (first, granted) = engine.claim_orders(wanted);
    if granted == 0 {
        return None;
    }
    let orders = (first..first + granted)
        .map(|seq| workload.next(seq))
        .collect();
    Some((endpoint, orders))
}

/// The closed model: `buyers` tasks started evenly over `ramp_up`. Returns
/// when every buyer has stopped (at the deadline or the order cap), or
/// `drain_timeout` after the deadline (calls still open then are abandoned),
/// or at once when the run is halted.
pub async fn closed<G: OrderGateway + Send + Sync + 'static>(
    engine: &Arc<Engine<G>>,
    mut workloads: Vec<Workload>,
    ramp_up: Duration,
    drain_timeout: Duration,
) {
    let start = Instant::now();
    let buyers = workloads.len().max(1) as u32;
    let mut tasks = JoinSet::new();
    for (index, mut workload) in workloads.drain(..).enumerate() {
        let engine = Arc::clone(engine);
        let begin = start + ramp_up.mul_f64(index as f64 / f64::from(buyers));
        tasks.spawn(async move {
            tokio::time::sleep_until(begin.into()).await;
            while !engine.stopped() {
                let Some((endpoint, orders)) = next_call(&engine, &mut workload) else {
                    break;
                };
                engine.place_call(endpoint, orders, Instant::now()).await;
            }
        });
    }
    engine
        .settle(&mut tasks, engine.deadline + drain_timeout)
        .await;
}

/// The open model: `rate` calls per second (ramped over `ramp_up`) until the
/// deadline or the order cap, at most `outstanding_max` in flight. Returns
/// when the last call is answered or `drain_timeout` after the load stopped
/// (calls still open then are abandoned: their orders' outcomes are
/// unknown), or at once when the run is halted.
///
/// `outstanding_max` long-lived senders share one arrival counter: a free
/// sender claims the next arrival, sleeps until its intended time (not at all
/// when it is already due) and sends it. No task is spawned per call and no
/// one dispatcher serialises the arrivals, so the sender keeps up with rates
/// where a task per call did not; when every sender is busy, arrivals wait
/// for one, are sent late and count from their intended time.
pub async fn open<G: OrderGateway + Send + Sync + 'static>(
    engine: &Arc<Engine<G>>,
    workloads: Vec<Workload>,
    rate: f64,
    ramp_up: Duration,
    drain_timeout: Duration,
) {
    let start = Instant::now();
    let arrivals = Arc::new(AtomicU64::new(0));
    let mut senders = JoinSet::new();
    for mut workload in workloads {
        let engine = Arc::clone(engine);
        let arrivals = Arc::clone(&arrivals);
        senders.spawn(async move {
            loop {
                let index = arrivals.fetch_add(1, Ordering::Relaxed);
                let intended = start + intended_offset(index, rate, ramp_up);
                if intended >= engine.deadline {
                    break;
                }
                let wake = intended.checked_sub(TIMER_TICK).unwrap_or(intended);
                if wake > Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake.into()) => {}
                        _ = engine.halted() => break,
                    }
                }
                if engine.stopped() {
                    break;
                }
                if intended.elapsed() > LATE_AFTER {
                    lock(&engine.recorder).late(1);
                }
                let Some((endpoint, orders)) = next_call(&engine, &mut workload) else {
                    break;
                };
                // Sent early (woken up to a tick before its time), a call
                // counts from when it left; sent late, from its intended time.
                let counted_from = intended.min(Instant::now());
                engine.place_call(endpoint, orders, counted_from).await;
            }
        });
    }
    // The senders stop claiming at the deadline; the calls they still have
    // open then get the drain bound.
    tokio::select! {
        _ = tokio::time::sleep_until(engine.deadline.into()) => {}
        _ = engine.halted() => {}
        _ = async { while senders.join_next().await.is_some() {} } => {}
    }
    let stopped_at = Instant::now().min(engine.deadline);
    engine
        .settle(&mut senders, stopped_at + drain_timeout)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_are_evenly_spaced_without_ramp() {
        let rate = 100.0;
        assert_eq!(intended_offset(0, rate, Duration::ZERO), Duration::ZERO);
        let tenth = intended_offset(10, rate, Duration::ZERO);
        assert!((tenth.as_secs_f64() - 0.1).abs() < 1e-9, "{tenth:?}");
    }

    #[test]
    fn a_ramp_starts_slow_and_joins_the_full_rate() {
        let rate = 100.0;
        let ramp = Duration::from_secs(2);
        // 100 arrivals during a 2 s ramp to 100/s, then one every 10 ms.
        let end_of_ramp = intended_offset(100, rate, ramp).as_secs_f64();
        assert!((end_of_ramp - 2.0).abs() < 1e-9, "{end_of_ramp}");
        let first_gap = intended_offset(1, rate, ramp).as_secs_f64();
        assert!(first_gap > 0.01, "{first_gap}");
        let later_gap = intended_offset(111, rate, ramp).as_secs_f64()
            - intended_offset(110, rate, ramp).as_secs_f64();
        assert!((later_gap - 0.01).abs() < 1e-9, "{later_gap}");
        // Monotonic.
        let offsets: Vec<f64> = (0..300)
            .map(|index| intended_offset(index, rate, ramp).as_secs_f64())
            .collect();
        assert!(offsets.windows(2).all(|pair| pair[0] <= pair[1]));
    }
}
