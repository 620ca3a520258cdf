//! Live progress while the load runs: an indicatif bar on a terminal, one
//! plain line per second otherwise (logs, CI).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::watch;

use flashgate_client::OrderGateway;

use crate::order_flow::{lock, Engine};
use crate::recorder::Counters;

/// Whether to show progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    Off,
    /// A bar on a terminal, plain lines otherwise.
    Auto,
}

/// After this long without an acknowledged order (and with a failure to
/// show), the progress line says why.
pub const STALL_NOTICE_AFTER: Duration = Duration::from_secs(2);

/// Why nothing is being acknowledged: how long, and the last failure's code
/// and detail.
pub struct Stall {
    pub for_time: Duration,
    pub code: String,
    pub detail: String,
}

/// The progress task's line for one tick.
pub fn line(
    elapsed: Duration,
    counters: Counters,
    rate_per_sec: f64,
    stall: Option<&Stall>,
) -> String {
    let mut text = format!(
        "{:>6.1}s sent {} reserved {} sold_out {} errors {} rate {:.0}/s",
        elapsed.as_secs_f64(),
        counters.sent,
        counters.acknowledged,
        counters.sold_out,
        counters.errors,
        rate_per_sec
    );
    if let Some(stall) = stall {
        text.push_str(&format!(
            "; nothing acknowledged for {:.0}s, last error {}: {}",
            stall.for_time.as_secs_f64(),
            stall.code,
            stall.detail
        ));
    }
    text
}

/// Shows progress until `stop` changes. Reads the recorder's counters once a
/// tick.
pub async fn show<G: OrderGateway + Send + Sync + 'static>(
    engine: Arc<Engine<G>>,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let terminal = std::io::stdout().is_terminal();
    let tick = if terminal {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let bar = terminal.then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar
    });
    let mut interval = tokio::time::interval(tick);
    let mut previous = (Instant::now(), 0u64);
    let mut last_acknowledged_at = Instant::now();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        let counters = lock(&engine.recorder).counters();
        let now = Instant::now();
        let window = now.duration_since(previous.0).as_secs_f64().max(1e-3);
        let rate = counters.acknowledged.saturating_sub(previous.1) as f64 / window;
        if counters.acknowledged != previous.1 {
            last_acknowledged_at = now;
        }
        previous = (now, counters.acknowledged);
        let quiet = now.duration_since(last_acknowledged_at);
        let stall = (quiet >= STALL_NOTICE_AFTER)
            .then(|| {
                engine.last_error().unwrap_or_else(|| {
                    (
                        "none yet".to_owned(),
                        "no call has finished; the client is still waiting for a node that takes orders (up to --failover-wait per call)".to_owned(),
                    )
                })
            })
            .map(|(code, detail)| Stall {
                for_time: quiet,
                code,
                detail,
            });
        let text = line(start.elapsed(), counters, rate, stall.as_ref());
        match &bar {
            Some(bar) => bar.set_message(text),
            None => println!("{text}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stalled_run_says_why_in_its_progress_line() {
        let stall = Stall {
            for_time: Duration::from_secs(3),
            code: "not_primary".into(),
            detail: "this node does not take orders; the primary is at http://a:8080".into(),
        };
        let text = line(
            Duration::from_secs(5),
            Counters::default(),
            0.0,
            Some(&stall),
        );
        assert!(text.contains("rate 0/s"), "{text}");
        assert!(
            text.contains("nothing acknowledged for 3s, last error not_primary: this node does not take orders; the primary is at http://a:8080"),
            "{text}"
        );
        let quiet = line(Duration::from_secs(5), Counters::default(), 10.0, None);
        assert!(!quiet.contains("last error"), "{quiet}");
    }
}
