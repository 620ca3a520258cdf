//! Log lines an outside client causes, bounded: a malformed HTTP request, a
//! replication dialer that fails its handshake. Each such line is logged at
//! WARN or below, whatever level its source chose, and each kind of line passes
//! a token bucket; what the bucket refuses is counted and reported as one
//! "N similar lines suppressed" line per kind and `SUMMARY_INTERVAL`.
//!
//! The rule is `LineLimiter`, pure (the caller passes `now`); `ClientLines` is
//! the tracing layer around it. A line is client-caused when its target is in
//! `CLIENT_CAUSED_TARGETS` or starts with `OUTSIDE_PREFIX` (flashgate's own
//! client-caused lines use `target: "flashgate::outside::<kind>"`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Targets of flashgate's own client-caused lines start with this.
pub const OUTSIDE_PREFIX: &str = "flashgate::outside::";
/// The target the admitted lines and the summaries are logged under.
pub const ADMITTED_TARGET: &str = "flashgate::outside";
/// Libraries' targets whose lines a client causes: actix-http logs a malformed
/// request ("stream error: request parse error …") at ERROR.
pub const CLIENT_CAUSED_TARGETS: &[&str] =
    &["actix_http::h1::dispatcher", "actix_http::h1::decoder"];
/// How often suppressed lines are summarised, per kind.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// Whether a line of `target` is caused by an outside client.
pub fn is_client_caused(target: &str) -> bool {
    target.starts_with(OUTSIDE_PREFIX) || CLIENT_CAUSED_TARGETS.contains(&target)
}

/// How many client-caused lines of one kind may be logged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineLimits {
    /// Lines logged at once before the rate applies.
    pub burst_lines: u32,
    /// Lines per minute in the long run.
    pub lines_per_minute: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Duration,
    suppressed: u64,
}

/// A token bucket per kind of line. Kinds are the targets of log call sites,
/// a fixed set in the binary, so the map is bounded.
#[derive(Debug)]
pub struct LineLimiter {
    limits: LineLimits,
    buckets: HashMap<&'static str, Bucket>,
}

impl LineLimiter {
    pub fn new(limits: LineLimits) -> LineLimiter {
        LineLimiter {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Whether one more line of `kind` may be logged at `now` (time since any
    /// fixed origin, never decreasing). A refused line is counted for the
    /// next summary.
    pub fn admit(&mut self, kind: &'static str, now: Duration) -> bool {
        let burst = f64::from(self.limits.burst_lines);
        let per_second = f64::from(self.limits.lines_per_minute) / 60.0;
        let bucket = self.buckets.entry(kind).or_insert(Bucket {
            tokens: burst,
            refilled_at: now,
            suppressed: 0,
        });
        let elapsed = now.saturating_sub(bucket.refilled_at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.refilled_at = now.max(bucket.refilled_at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            bucket.suppressed += 1;
            false
        }
    }

    /// The kinds with lines suppressed since the last call, and how many;
    /// their counts start again from zero.
    pub fn take_suppressed(&mut self) -> Vec<(&'static str, u64)> {
        let mut suppressed: Vec<_> = self
            .buckets
            .iter_mut()
            .filter(|(_, bucket)| bucket.suppressed > 0)
            .map(|(kind, bucket)| (*kind, std::mem::take(&mut bucket.suppressed)))
            .collect();
        suppressed.sort_unstable();
        suppressed
    }
}

/// The tracing layer that logs admitted client-caused lines again, at WARN or
/// below, under `ADMITTED_TARGET`. The layer that writes lines must skip
/// client-caused targets (`is_client_caused`), or they would appear twice.
#[derive(Clone)]
pub struct ClientLines {
    limiter: Arc<Mutex<LineLimiter>>,
    origin: Instant,
}

impl ClientLines {
    pub fn new(limits: LineLimits) -> ClientLines {
        ClientLines {
            limiter: Arc::new(Mutex::new(LineLimiter::new(limits))),
            origin: Instant::now(),
        }
    }

    /// Starts the thread that logs, every `SUMMARY_INTERVAL`, how many lines
    /// of each kind were suppressed.
    pub fn start_summaries(&self) {
        let limiter = Arc::clone(&self.limiter);
        let spawned = std::thread::Builder::new()
            .name("flashgate-log-summary".into())
            .spawn(move || loop {
                std::thread::sleep(SUMMARY_INTERVAL);
                let suppressed = limiter
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take_suppressed();
                for (kind, lines) in suppressed {
                    tracing::warn!(
                        target: ADMITTED_TARGET,
                        source = kind,
                        suppressed = lines,
                        "{lines} similar lines suppressed in the last {}s (client-caused lines are rate-limited)",
                        SUMMARY_INTERVAL.as_secs()
                    );
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the log summary thread; suppressed lines are not summarised");
        }
    }
}

impl<S: Subscriber> Layer<S> for ClientLines {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        if !is_client_caused(metadata.target()) {
            return;
        }
        let admitted = self
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(metadata.target(), self.origin.elapsed());
        if !admitted {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let source = metadata.target();
        let text = text.0;
        // Logged again outside the limiter's lock: this event passes through
        // this layer too, and is ignored by its target.
        match *metadata.level() {
            Level::ERROR | Level::WARN => {
                tracing::warn!(target: ADMITTED_TARGET, source, "{text}")
            }
            Level::INFO => tracing::info!(target: ADMITTED_TARGET, source, "{text}"),
            Level::DEBUG => tracing::debug!(target: ADMITTED_TARGET, source, "{text}"),
            Level::TRACE => tracing::trace!(target: ADMITTED_TARGET, source, "{text}"),
        }
    }
}

/// An event's message and fields as one line of text.
#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let separator = if self.0.is_empty() { "" } else { " " };
        if field.name() == "message" {
            let _ = write!(self.0, "{separator}{value:?}");
        } else {
            let _ = write!(self.0, "{separator}{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let separator = if self.0.is_empty() { "" } else { " " };
        if field.name() == "message" {
            let _ = write!(self.0, "{separator}{value}");
        } else {
            let _ = write!(self.0, "{separator}{}={value}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: LineLimits = LineLimits {
        burst_lines: 3,
        lines_per_minute: 60,
    };

    fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value)
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_and_the_rest_is_counted() {
        let mut limiter = LineLimiter::new(LIMITS);
        let admitted = (0..1_000).filter(|_| limiter.admit("a", secs(0.0))).count();
        assert_eq!(admitted, 3);
        assert_eq!(limiter.take_suppressed(), vec![("a", 997)]);
        assert_eq!(limiter.take_suppressed(), vec![]);
        // One line per second (60 per minute) comes back.
        assert!(!limiter.admit("a", secs(0.5)));
        assert!(limiter.admit("a", secs(1.0)));
        assert!(!limiter.admit("a", secs(1.5)));
        assert_eq!(limiter.take_suppressed(), vec![("a", 2)]);
    }

    #[test]
    fn a_quiet_kind_refills_to_its_burst_and_no_further() {
        let mut limiter = LineLimiter::new(LIMITS);
        for _ in 0..3 {
            assert!(limiter.admit("a", secs(0.0)));
        }
        let admitted = (0..10)
            .filter(|_| limiter.admit("a", secs(3_600.0)))
            .count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn kinds_have_their_own_buckets() {
        let mut limiter = LineLimiter::new(LIMITS);
        for _ in 0..10 {
            limiter.admit("a", secs(0.0));
        }
        assert!(limiter.admit("b", secs(0.0)));
        assert_eq!(limiter.take_suppressed(), vec![("a", 7)]);
    }

    #[test]
    fn over_a_long_flood_lines_follow_the_rate() {
        let limits = LineLimits {
            burst_lines: 5,
            lines_per_minute: 6,
        };
        let mut limiter = LineLimiter::new(limits);
        // 100 lines a second for ten minutes: the burst, then 6 a minute.
        let admitted = (0..60_000)
            .filter(|step| limiter.admit("a", Duration::from_millis(step * 10)))
            .count();
        assert!((5 + 59..=5 + 60).contains(&admitted), "{admitted}");
    }

    #[test]
    fn client_caused_targets_are_recognised() {
        assert!(is_client_caused("actix_http::h1::dispatcher"));
        assert!(is_client_caused(
            "flashgate::outside::replication_handshake"
        ));
        assert!(!is_client_caused(ADMITTED_TARGET));
        assert!(!is_client_caused("flashgate_gateway::server"));
    }
}
