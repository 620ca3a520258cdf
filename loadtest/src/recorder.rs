//! `Recorder`: what the load did, as it happens: HDR latency histograms (µs)
//! per outcome and overall, counters, errors by code, and a per-second
//! timeline. Shared by all tasks behind a mutex; every call is short.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flashgate_client::ClientError;
use hdrhistogram::Histogram;
use serde::Serialize;

/// The highest latency a histogram holds (one hour, in µs); larger values are
/// recorded as this.
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Significant digits of the overall and per-outcome histograms.
const SIGNIFICANT_DIGITS: u8 = 3;
/// Significant digits of a timeline second's histogram (only p50/p99 are kept).
const SECOND_SIGNIFICANT_DIGITS: u8 = 2;
/// The timeline's length limit (the duration's hard cap plus the drain).
pub const TIMELINE_SECONDS_MAX: usize = 4000;

/// The outcome label of a successful placement.
pub const CREATED: &str = "created";
/// The outcome label of a placement answered with an earlier order of the
/// same idempotency key.
pub const REPLAYED: &str = "replayed";
/// The outcome label of a call that got no answer.
pub const TRANSPORT_ERROR: &str = "transport_error";

/// The label of a failed call: the server's code, or the kind of client
/// failure.
pub fn error_label(error: &ClientError) -> String {
    match error {
        ClientError::Server { code, .. } => code.clone(),
        ClientError::Transport(_) => TRANSPORT_ERROR.into(),
        ClientError::Protocol(_) => "protocol_error".into(),
        ClientError::Config(_) => "config_error".into(),
    }
}

/// Whether an outcome label is a refusal by the sale's own rules (sold out,
/// not enough stock, the customer's limit, the sale not open): the expected
/// end of many orders in a flash sale, counted apart from failures
/// (transport errors, timeouts, `overloaded`, `not_primary`, 5xx, ...).
pub fn is_business_refusal(label: &str) -> bool {
    use flashgate_protocol::code;
    [
        code::SOLD_OUT,
        code::INSUFFICIENT_STOCK,
        code::LIMIT_EXCEEDED,
        code::SALE_NOT_OPEN,
    ]
    .contains(&label)
}

/// Percentiles of one histogram, in µs.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
            mean: histogram.mean(),
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    /// Seconds since the start of the load.
    pub second: u64,
    /// Orders sent for the first time in this second.
    pub sent: u64,
    /// Orders acknowledged (created or replayed) in this second.
    pub acknowledged: u64,
    /// Orders that ended in an error in this second (business refusals
    /// included).
    pub errors: u64,
    /// Of `errors`, the business refusals (`is_business_refusal`): the
    /// expected outcomes of a sale, not failures.
    pub refused: u64,
    /// Median and 99th percentile of the latencies of orders answered in
    /// this second, µs (0 when none).
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    /// Times a target's client switched to another node in this second.
    pub node_switches: u64,
}

/// A copy of the counters, for progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub sent: u64,
    pub acknowledged: u64,
    pub sold_out: u64,
    pub errors: u64,
    pub late: u64,
    pub retries: u64,
}

/// Everything recorded, shared by the tasks behind a mutex.
pub struct Recorder {
    start: Instant,
    overall: Histogram<u64>,
    by_outcome: BTreeMap<String, Histogram<u64>>,
    errors_by_code: BTreeMap<String, u64>,
    counters: Counters,
    created: u64,
    replayed: u64,
    timeline: Vec<Second>,
    /// The histogram of the newest second that has latencies; completions
    /// are recorded under the lock with the clock read there, so seconds
    /// only grow.
    current_second: Option<(u64, Histogram<u64>)>,
}

fn histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, digits)
        .expect("constant bounds and digits are valid")
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            overall: histogram(SIGNIFICANT_DIGITS),
            by_outcome: BTreeMap::new(),
            errors_by_code: BTreeMap::new(),
            counters: Counters::default(),
            created: 0,
            replayed: 0,
            timeline: Vec::new(),
            current_second: None,
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    fn second_of(&mut self, at: Instant) -> Option<&mut Second> {
        let second = at.saturating_duration_since(self.start).as_secs();
        let index = usize::try_from(second).ok()?;
        if index >= TIMELINE_SECONDS_MAX {
            return None;
        }
        while self.timeline.len() <= index {
            let next = self.timeline.len() as u64;
            self.timeline.push(Second {
                second: next,
                ..Second::default()
            });
        }
        self.timeline.get_mut(index)
    }

    /// `orders` orders were sent for the first time.
    pub fn sent(&mut self, orders: u64) {
        self.counters.sent += orders;
        if let Some(second) = self.second_of(Instant::now()) {
            second.sent += orders;
        }
    }

    /// A request went out later than intended (open model).
    pub fn late(&mut self, calls: u64) {
        self.counters.late += calls;
    }

    /// A target's client switched nodes `at_secs` after the start (counted in
    /// the timeline; a switch before the start is not).
    pub fn node_switch(&mut self, at_secs: f64) {
        let Ok(offset) = Duration::try_from_secs_f64(at_secs) else {
            return;
        };
        if let Some(second) = self.second_of(self.start + offset) {
            second.node_switches += 1;
        }
    }

    /// An order is sent again after a transport error or timeout.
    pub fn retried(&mut self) {
        self.counters.retries += 1;
    }

    /// An order's final outcome: `label` is `created`, `replayed` or an error
    /// label; `latency` counts from its intended send time.
    pub fn finished(&mut self, label: &str, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        self.overall.saturating_record(micros);
        // Looked up by `&str` first: allocating the label for every order is
        // measurable at a hundred thousand orders a second.
        match self.by_outcome.get_mut(label) {
            Some(outcome) => outcome.saturating_record(micros),
            None => {
                let mut outcome = histogram(SIGNIFICANT_DIGITS);
                outcome.saturating_record(micros);
                self.by_outcome.insert(label.to_owned(), outcome);
            }
        }
        let acknowledged = label == CREATED || label == REPLAYED;
        match label {
            CREATED => self.created += 1,
            REPLAYED => self.replayed += 1,
            code => {
                self.counters.errors += 1;
                if code == flashgate_protocol::code::SOLD_OUT {
                    self.counters.sold_out += 1;
                }
                match self.errors_by_code.get_mut(code) {
                    Some(count) => *count += 1,
                    None => {
                        self.errors_by_code.insert(code.to_owned(), 1);
                    }
                }
            }
        }
        if acknowledged {
            self.counters.acknowledged += 1;
        }
        let now = Instant::now();
        let second_index = now.saturating_duration_since(self.start).as_secs();
        if let Some(second) = self.second_of(now) {
            if acknowledged {
                second.acknowledged += 1;
            } else {
                second.errors += 1;
                if is_business_refusal(label) {
                    second.refused += 1;
                }
            }
        }
        if self.current_second.as_ref().map(|(second, _)| *second) != Some(second_index) {
            self.close_second();
            self.current_second = Some((second_index, histogram(SECOND_SIGNIFICANT_DIGITS)));
        }
        if let Some((_, histogram)) = &mut self.current_second {
            histogram.saturating_record(micros);
        }
    }

    /// Stores the current second's percentiles in the timeline.
    fn close_second(&mut self) {
        if let Some((second, histogram)) = self.current_second.take() {
            if let Some(entry) = usize::try_from(second)
                .ok()
                .and_then(|index| self.timeline.get_mut(index))
            {
                entry.latency_us_p50 = histogram.value_at_quantile(0.50);
                entry.latency_us_p99 = histogram.value_at_quantile(0.99);
            }
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The recorded results, with the last second's percentiles closed.
    pub fn finish(mut self) -> Recorded {
        self.close_second();
        Recorded {
            overall: LatencySummary::of(&self.overall),
            by_outcome: self
                .by_outcome
                .iter()
                .map(|(label, histogram)| (label.clone(), LatencySummary::of(histogram)))
                .collect(),
            errors_by_code: self.errors_by_code,
            counters: self.counters,
            created: self.created,
            replayed: self.replayed,
            timeline: self.timeline,
        }
    }
}

/// The recorder's results after the load.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    pub overall: LatencySummary,
    pub by_outcome: BTreeMap<String, LatencySummary>,
    pub errors_by_code: BTreeMap<String, u64>,
    pub counters: Counters,
    pub created: u64,
    pub replayed: u64,
    pub timeline: Vec<Second>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_and_summarised() {
        let mut recorder = Recorder::new(Instant::now());
        recorder.sent(3);
        recorder.finished(CREATED, Duration::from_millis(2));
        recorder.finished(REPLAYED, Duration::from_millis(4));
        recorder.finished("sold_out", Duration::from_millis(1));
        let recorded = recorder.finish();
        assert_eq!(recorded.counters.sent, 3);
        assert_eq!(recorded.counters.acknowledged, 2);
        assert_eq!(recorded.counters.sold_out, 1);
        assert_eq!(recorded.errors_by_code.get("sold_out"), Some(&1));
        assert_eq!(recorded.overall.count, 3);
        assert!(recorded.overall.max >= 4000);
        assert_eq!(recorded.by_outcome.len(), 3);
        let total_acknowledged: u64 = recorded.timeline.iter().map(|s| s.acknowledged).sum();
        assert_eq!(total_acknowledged, 2);
        assert!(recorded.timeline[0].latency_us_p99 >= 3900);
    }

    #[test]
    fn node_switches_land_in_their_second() {
        let mut recorder = Recorder::new(Instant::now());
        recorder.node_switch(2.5);
        recorder.node_switch(2.9);
        recorder.node_switch(-1.0);
        let recorded = recorder.finish();
        assert_eq!(recorded.timeline.len(), 3);
        assert_eq!(recorded.timeline[2].node_switches, 2);
        let total: u64 = recorded.timeline.iter().map(|s| s.node_switches).sum();
        assert_eq!(total, 2);
    }
}
