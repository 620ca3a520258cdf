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

/// The progress task's line for one tick.
pub fn line(elapsed: Duration, counters: Counters, rate_per_sec: f64) -> String {
    format!(
        "{:>6.1}s sent {} reserved {} sold_out {} errors {} rate {:.0}/s",
        elapsed.as_secs_f64(),
        counters.sent,
        counters.acknowledged,
        counters.sold_out,
        counters.errors,
        rate_per_sec
    )
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
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => break,
        }
        let counters = lock(&engine.recorder).counters();
        let now = Instant::now();
        let window = now.duration_since(previous.0).as_secs_f64().max(1e-3);
        let rate = counters.acknowledged.saturating_sub(previous.1) as f64 / window;
        previous = (now, counters.acknowledged);
        let text = line(start.elapsed(), counters, rate);
        match &bar {
            Some(bar) => bar.set_message(text),
            None => println!("{text}"),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
